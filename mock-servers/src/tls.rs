//! TLS for the HTTP mock (`--tls-cert`/`--tls-key`): a listener that hands axum connections
//! whose handshake is done. Handshakes run off the accept loop, each bounded, so a slow or
//! plaintext client does not hold up the others; the accept task ends with the listener.
//! And throw-away certificates ([`TestCerts`], made with rcgen) for tests and for the
//! harness's TLS upstreams (`--tls-self-signed DIR`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long one client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server config for a PEM certificate chain and its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate chain {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate does not match its key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves TLS over the connections `inner` accepts.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `inner`, the accept task and every handshake on `tasks` (the
    /// server's, which its shutdown waits for); they stop when this listener is dropped or
    /// `stop` is cancelled, a handshake also after [`HANDSHAKE_TIMEOUT`].
    pub fn new<L>(
        mut inner: L,
        config: Arc<rustls::ServerConfig>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> std::io::Result<Self>
    where
        L: Listener<Io = TcpStream, Addr = SocketAddr>,
    {
        let local = inner.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let handshakes = tasks.clone();
        tasks.spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    accepted = inner.accept() => accepted,
                    () = tx.closed() => return,
                    () = stop.cancelled() => return,
                };
                let (acceptor, tx, stop) = (acceptor.clone(), tx.clone(), stop.clone());
                handshakes.spawn(async move {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    let outcome = tokio::select! {
                        outcome = handshake => outcome,
                        () = stop.cancelled() => return,
                    };
                    match outcome {
                        Ok(Ok(tls)) => {
                            tokio::select! {
                                _ = tx.send((tls, addr)) => {}
                                () = stop.cancelled() => {}
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // the accept task never ends while this receiver lives
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A throw-away certificate authority and a server certificate it signed for `localhost` and
/// `127.0.0.1`, written as PEM files into a directory.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate: what a client trusts (`ca_file`).
    pub ca: std::path::PathBuf,
    /// The server's certificate chain and key (`--tls-cert`, `--tls-key`).
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TestCerts {
    /// Makes a new CA and server certificate in `dir` (created if missing): `ca.pem`,
    /// `cert.pem` and `key.pem`.
    pub fn generate(dir: &Path) -> anyhow::Result<TestCerts> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("mock-mcp throw-away CA {:08x}", rand::random::<u32>()),
        );
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate()?;
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?
            .signed_by(&leaf_key, &issuer)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let certs = TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&certs.ca, ca_cert.pem())?;
        std::fs::write(&certs.cert, leaf.pem())?;
        std::fs::write(&certs.key, leaf_key.serialize_pem())?;
        Ok(certs)
    }
}
