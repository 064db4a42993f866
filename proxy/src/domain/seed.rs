//! The seed file (SPEC contract): parsed and validated here, applied by `store::Store::apply_seed`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::domain::model::{
    ConnectionMode, PrefixMode, UpstreamConfig, UpstreamTransport, is_valid_slug,
};

/// A seed file that failed to load: the message names the file, the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid seed file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid seed: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    upstream: Vec<SeedUpstream>,
    #[serde(default)]
    instance: Vec<SeedInstanceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUpstream {
    name: String,
    transport: String,
    url: Option<String>,
    ca_file: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    connection: ConnectionMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedInstanceFile {
    id: String,
    upstreams: Vec<String>,
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default)]
    prefix: PrefixMode,
}

/// A validated seed, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub upstreams: Vec<UpstreamConfig>,
    pub instances: Vec<SeedInstance>,
}

/// One instance of a validated seed; `api_keys` are plaintext and get hashed when stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedInstance {
    pub id: String,
    pub prefix: PrefixMode,
    pub upstreams: Vec<String>,
    pub api_keys: Vec<String>,
}

/// Whether `id` is acceptable as an instance id (it appears in the URL path).
pub fn is_valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Seed {
    /// Reads and validates a seed file.
    pub fn load(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Seed::parse(&text).map_err(|e| match e {
            SeedError::Parse { message, .. } => SeedError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates seed TOML.
    pub fn parse(text: &str) -> Result<Seed, SeedError> {
        let file: SeedFile = toml::from_str(text).map_err(|e| SeedError::Parse {
            path: "<inline>".into(),
            message: e.to_string(),
        })?;
        let mut names = HashSet::new();
        let mut upstreams = Vec::with_capacity(file.upstream.len());
        for u in file.upstream {
            upstreams.push(validate_upstream(u, &mut names)?);
        }
        let mut ids = HashSet::new();
        let mut instances = Vec::with_capacity(file.instance.len());
        for i in file.instance {
            if !is_valid_instance_id(&i.id) {
                return Err(SeedError::Invalid(format!(
                    "instance id {:?} must be 1-128 characters of [A-Za-z0-9._-]",
                    i.id
                )));
            }
            if !ids.insert(i.id.clone()) {
                return Err(SeedError::Invalid(format!(
                    "instance {:?} is defined twice",
                    i.id
                )));
            }
            let mut seen = HashSet::new();
            for name in &i.upstreams {
                if !names.contains(name) {
                    return Err(SeedError::Invalid(format!(
                        "instance {:?} names upstream {name:?}, which is not defined in this seed",
                        i.id
                    )));
                }
                if !seen.insert(name) {
                    return Err(SeedError::Invalid(format!(
                        "instance {:?} lists upstream {name:?} twice",
                        i.id
                    )));
                }
            }
            if let Some(k) = i.api_keys.iter().find(|k| k.len() < 8) {
                return Err(SeedError::Invalid(format!(
                    "instance {:?}: api key {:?}… is shorter than 8 characters",
                    i.id,
                    k.chars().take(2).collect::<String>()
                )));
            }
            instances.push(SeedInstance {
                id: i.id,
                prefix: i.prefix,
                upstreams: i.upstreams,
                api_keys: i.api_keys,
            });
        }
        Ok(Seed {
            upstreams,
            instances,
        })
    }
}

fn validate_upstream(
    u: SeedUpstream,
    names: &mut HashSet<String>,
) -> Result<UpstreamConfig, SeedError> {
    let bad = |msg: String| SeedError::Invalid(format!("upstream {:?}: {msg}", u.name));
    if !is_valid_slug(&u.name) {
        return Err(bad("name must be a slug of [a-z0-9-]+".into()));
    }
    if u.name.contains("--") || u.name.contains("__") {
        return Err(bad("name must not contain a double separator".into()));
    }
    if !names.insert(u.name.clone()) {
        return Err(bad("defined twice".into()));
    }
    let transport = match u.transport.as_str() {
        "streamable-http" => {
            let Some(url) = u.url.clone() else {
                return Err(bad("transport \"streamable-http\" needs `url`".into()));
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(format!(
                    "url {url:?} must start with http:// or https://"
                )));
            }
            if u.command.is_some() {
                return Err(bad("`command` is only for transport \"stdio\"".into()));
            }
            if let Some(ca_file) = &u.ca_file {
                if !url.starts_with("https://") {
                    return Err(bad(format!(
                        "`ca_file` applies to https:// urls, not {url:?}"
                    )));
                }
                check_ca_file(ca_file).map_err(bad)?;
            }
            UpstreamTransport::StreamableHttp {
                url,
                ca_file: u.ca_file.clone(),
            }
        }
        "stdio" => {
            let Some(command) = u.command.clone().filter(|c| !c.is_empty()) else {
                return Err(bad("transport \"stdio\" needs `command`".into()));
            };
            if u.url.is_some() || u.ca_file.is_some() {
                return Err(bad(
                    "`url` and `ca_file` are only for transport \"streamable-http\"".into(),
                ));
            }
            UpstreamTransport::Stdio {
                command,
                args: u.args.clone(),
                env: u.env.clone(),
            }
        }
        other => {
            return Err(bad(format!(
                "unknown transport {other:?} (expected \"streamable-http\" or \"stdio\")"
            )));
        }
    };
    Ok(UpstreamConfig {
        name: u.name,
        transport,
        connection: u.connection,
    })
}

/// A `ca_file` must hold at least one PEM certificate where the seed is applied (each replica
/// reads it again at connect, so a missing file there is a connect error naming it).
fn check_ca_file(path: &str) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {path:?}: {e}"))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(format!("ca_file {path:?} holds no PEM certificate"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[upstream]]
name = "echo"
transport = "streamable-http"
url = "http://127.0.0.1:9001/mcp"

[[upstream]]
name = "local"
transport = "stdio"
command = "mock-mcp"
args = ["stdio"]
env = { K = "V" }
connection = "per-request"

[[instance]]
id = "demo"
upstreams = ["echo", "local"]
api_keys = ["demo-key-0001"]
prefix = "always"
"#;

    #[test]
    fn parses_the_spec_example() {
        let seed = Seed::parse(GOOD).unwrap();
        assert_eq!(seed.upstreams.len(), 2);
        assert_eq!(seed.upstreams[1].connection, ConnectionMode::PerRequest);
        assert_eq!(seed.instances[0].prefix, PrefixMode::Always);
        assert!(matches!(
            &seed.upstreams[1].transport,
            UpstreamTransport::Stdio { env, .. } if env["K"] == "V"
        ));
    }

    fn err(text: &str) -> String {
        Seed::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_input_naming_the_problem() {
        assert!(
            err("[[upstream]]\nname=\"Echo\"\ntransport=\"stdio\"\ncommand=\"x\"").contains("slug")
        );
        assert!(err("[[upstream]]\nname=\"e\"\ntransport=\"ws\"").contains("unknown transport"));
        assert!(err("[[upstream]]\nname=\"e\"\ntransport=\"stdio\"").contains("needs `command`"));
        assert!(
            err("[[upstream]]\nname=\"e\"\ntransport=\"streamable-http\"").contains("needs `url`")
        );
        assert!(err("[[instance]]\nid=\"a\"\nupstreams=[\"nope\"]").contains("not defined"));
        assert!(err("[[instance]]\nid=\"a/b\"\nupstreams=[]").contains("instance id"));
        assert!(err("bogus = 1").contains("unknown field"));
        assert!(
            err("[[instance]]\nid=\"a\"\nupstreams=[]\nprefix=\"sometimes\"").contains("prefix")
        );
        assert!(
            err("[[upstream]]\nname=\"e\"\ntransport=\"stdio\"\ncommand=\"x\"\nconnection=\"pooled\"")
                .contains("connection")
        );
        assert!(
            err("[[instance]]\nid=\"a\"\nupstreams=[]\napi_keys=[\"short\"]").contains("shorter")
        );
    }

    fn https(extra: &str) -> String {
        format!(
            "[[upstream]]\nname=\"hosted\"\ntransport=\"streamable-http\"\nurl=\"https://mcp.example.com/mcp\"\n{extra}"
        )
    }

    #[test]
    fn https_upstreams_with_or_without_a_private_ca() {
        let seed = Seed::parse(&https("")).unwrap();
        assert!(matches!(
            &seed.upstreams[0].transport,
            UpstreamTransport::StreamableHttp { url, ca_file: None } if url.starts_with("https://")
        ));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let ca = ca.display().to_string();
        let seed = Seed::parse(&https(&format!("ca_file={ca:?}"))).unwrap();
        assert!(matches!(
            &seed.upstreams[0].transport,
            UpstreamTransport::StreamableHttp { ca_file: Some(f), .. } if *f == ca
        ));
    }

    #[test]
    fn a_bad_ca_file_is_refused_naming_the_upstream_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let e = err(&https(&format!("ca_file={missing:?}")));
        assert!(
            e.contains("upstream \"hosted\"")
                && e.contains("cannot read ca_file")
                && e.contains(&missing),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = err(&https(&format!("ca_file={:?}", junk.display().to_string())));
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let plain = "[[upstream]]\nname=\"p\"\ntransport=\"streamable-http\"\nurl=\"http://127.0.0.1:1/mcp\"\nca_file=\"/x.pem\"";
        assert!(err(plain).contains("applies to https://"), "{}", err(plain));
        let stdio =
            "[[upstream]]\nname=\"s\"\ntransport=\"stdio\"\ncommand=\"x\"\nca_file=\"/x.pem\"";
        assert!(err(stdio).contains("only for transport"), "{}", err(stdio));
    }
}
