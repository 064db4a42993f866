//! The HTTP clients upstreams are reached through. One pooled `reqwest::Client` serves every
//! upstream without a `ca_file`: rustls, the platform's root certificates, and the proxy the
//! environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`). An upstream with a private CA
//! gets the client of its PEM (the platform's roots plus the file's), looked at each connect
//! (its size and modification time; read again only when they change): a replaced file gets a
//! new client, and the old client's pool ends with its last connection.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How the pools of every client keep idle connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
}

/// The default client and one per private CA in use.
pub struct HttpClients {
    pool: PoolSettings,
    default: reqwest::Client,
    /// By `ca_file` path: the file's size and modification time when its client was built,
    /// and that client.
    by_ca: Mutex<HashMap<String, (Stamp, reqwest::Client)>>,
}

impl HttpClients {
    pub fn new(pool: PoolSettings) -> reqwest::Result<Self> {
        Ok(Self {
            pool,
            default: builder(pool).build()?,
            by_ca: Mutex::default(),
        })
    }

    /// The client for an upstream trusting `ca_file` besides the platform's roots (`None`:
    /// the default client). The error names the file and what is wrong with it.
    pub async fn client(&self, ca_file: Option<&str>) -> Result<reqwest::Client, String> {
        let Some(path) = ca_file else {
            return Ok(self.default.clone());
        };
        let unreadable = |e: std::io::Error| format!("cannot read ca_file {path:?}: {e}");
        let meta = tokio::fs::metadata(path).await.map_err(unreadable)?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((held, client)) = self.lock().get(path)
            && *held == stamp
        {
            return Ok(client.clone());
        }
        let pem = tokio::fs::read(path).await.map_err(unreadable)?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {path:?} is not PEM certificates: {e}"))?;
        if roots.is_empty() {
            return Err(format!("ca_file {path:?} holds no certificate"));
        }
        let client = builder(self.pool)
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| format!("ca_file {path:?}: {e}"))?;
        self.lock()
            .insert(path.to_string(), (stamp, client.clone()));
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Stamp, reqwest::Client)>> {
        self.by_ca.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A file's size and modification time: what tells it was replaced.
type Stamp = (u64, Option<std::time::SystemTime>);

fn builder(pool: PoolSettings) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tcp_nodelay(true)
        .pool_idle_timeout(pool.idle_timeout)
        .pool_max_idle_per_host(pool.max_idle_per_host)
}
