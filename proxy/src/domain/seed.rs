//! The seed file (SPEC contract): parsed and validated here, applied by `store::Store::apply_seed`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::domain::model::{
    ConnectionMode, Credentials, PrefixMode, UpstreamConfig, UpstreamTransport, is_valid_slug,
};
use crate::domain::secrets::Secret;
use crate::domain::template;

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
    headers: BTreeMap<String, String>,
    #[serde(default)]
    forward_headers: BTreeMap<String, String>,
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
    /// Plaintext here; sealed when stored.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
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
    /// Added to (or replacing) the instance's stored secrets; others it has stay.
    pub secrets: BTreeMap<String, Secret>,
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
        // Every error of a file names the file.
        Seed::parse(&text).map_err(|e| match e {
            SeedError::Parse { message, .. } | SeedError::Invalid(message) => SeedError::Parse {
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
            let secrets = validate_secrets(&i.id, i.secrets)?;
            instances.push(SeedInstance {
                id: i.id,
                prefix: i.prefix,
                upstreams: i.upstreams,
                api_keys: i.api_keys,
                secrets,
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
        wire @ ("streamable-http" | "sse") => {
            let Some(url) = u.url.clone() else {
                return Err(bad(format!("transport \"{wire}\" needs `url`")));
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
            check_headers(&u.headers).map_err(bad)?;
            let (ca_file, headers) = (u.ca_file.clone(), u.headers.clone());
            match wire {
                "sse" => UpstreamTransport::Sse {
                    url,
                    ca_file,
                    headers,
                },
                _ => UpstreamTransport::StreamableHttp {
                    url,
                    ca_file,
                    headers,
                },
            }
        }
        "stdio" => {
            let Some(command) = u.command.clone().filter(|c| !c.is_empty()) else {
                return Err(bad("transport \"stdio\" needs `command`".into()));
            };
            if u.url.is_some() || u.ca_file.is_some() || !u.headers.is_empty() {
                return Err(bad(
                    "`url`, `ca_file` and `headers` are only for transports \"streamable-http\" \
                     and \"sse\" (a stdio upstream takes `env`)"
                        .into(),
                ));
            }
            check_env(&u.env).map_err(bad)?;
            UpstreamTransport::Stdio {
                command,
                args: u.args.clone(),
                env: u.env.clone(),
            }
        }
        other => {
            return Err(bad(format!(
                "unknown transport {other:?} (expected \"streamable-http\", \"sse\" or \"stdio\")"
            )));
        }
    };
    check_forward_headers(&u.forward_headers, u.connection, &transport).map_err(bad)?;
    Ok(UpstreamConfig {
        name: u.name,
        transport,
        connection: u.connection,
        forward_headers: u.forward_headers,
        credentials: Credentials::default(),
    })
}

/// Headers the transport sets itself (or that would break it): never from a seed.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "transfer-encoding",
];

/// An HTTP header name a seed may set: a token (RFC 9110) and not one the transport owns.
fn check_header_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("{name:?} is not a valid HTTP header name"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("header {name:?} is set by the transport itself"));
    }
    Ok(())
}

/// A template's syntax, and no control character in its literal text (a header or env value
/// cannot carry one).
fn check_template(what: &str, value: &str) -> Result<(), String> {
    template::names(value).map_err(|e| format!("{what}: {e}"))?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{what}: the value holds a control character"));
    }
    Ok(())
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in headers {
        check_header_name(name).map_err(|e| format!("headers: {e}"))?;
        check_template(&format!("headers.{name}"), value)?;
    }
    Ok(())
}

fn check_env(env: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!("env: {name:?} is not a variable name"));
        }
        check_template(&format!("env.{name}"), value)?;
    }
    Ok(())
}

/// `forward_headers` carries one caller's header: only onto a connection that serves one
/// caller (`per-session`, `per-request`), and only over HTTP.
fn check_forward_headers(
    forward: &BTreeMap<String, String>,
    connection: ConnectionMode,
    transport: &UpstreamTransport,
) -> Result<(), String> {
    if forward.is_empty() {
        return Ok(());
    }
    if connection == ConnectionMode::Shared {
        return Err(
            "`forward_headers` needs connection = \"per-session\" or \"per-request\": \
             a shared connection serves every caller of the instance, so one caller's header \
             would reach the upstream for all of them"
                .into(),
        );
    }
    if matches!(transport, UpstreamTransport::Stdio { .. }) {
        return Err("`forward_headers` applies to HTTP upstreams".into());
    }
    for (from, to) in forward {
        check_header_name(from).map_err(|e| format!("forward_headers: {e}"))?;
        check_header_name(to).map_err(|e| format!("forward_headers: {e}"))?;
    }
    Ok(())
}

/// An instance's seeded secrets: valid names, values of one line. Never echoes a value.
fn validate_secrets(
    instance: &str,
    secrets: BTreeMap<String, String>,
) -> Result<BTreeMap<String, Secret>, SeedError> {
    let mut out = BTreeMap::new();
    for (name, value) in secrets {
        if !template::is_valid_name(&name) {
            return Err(SeedError::Invalid(format!(
                "instance {instance:?}: secret name {name:?} must be [A-Za-z_][A-Za-z0-9_]*"
            )));
        }
        if value.is_empty() || value.chars().any(|c| c.is_control()) {
            return Err(SeedError::Invalid(format!(
                "instance {instance:?}: secret {name:?} must be one non-empty line"
            )));
        }
        out.insert(name, Secret::new(value));
    }
    Ok(out)
}

/// The first secret an instance lacks: `(instance, upstream, name)` for the first instance
/// (in `uses` order) whose upstream's templates name a secret not in its `have` set.
pub fn first_missing_secret<'a>(
    uses: impl IntoIterator<Item = (&'a str, &'a UpstreamConfig)>,
    have: impl Fn(&str, &str) -> bool,
) -> Option<(String, String, String)> {
    uses.into_iter().find_map(|(instance, upstream)| {
        upstream
            .secret_names()
            .into_iter()
            .find(|name| !have(instance, name))
            .map(|name| {
                (
                    instance.to_string(),
                    upstream.name.clone(),
                    name.to_string(),
                )
            })
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
            UpstreamTransport::StreamableHttp { url, ca_file: None, .. } if url.starts_with("https://")
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

#[cfg(test)]
mod credential_tests {
    use super::*;

    fn seed(upstream_extra: &str, instance_extra: &str) -> Result<Seed, SeedError> {
        Seed::parse(&format!(
            "[[upstream]]\nname=\"gh\"\ntransport=\"streamable-http\"\nurl=\"https://api.example.com/mcp\"\n{upstream_extra}\n\
             [[instance]]\nid=\"team-a\"\nupstreams=[\"gh\"]\n{instance_extra}"
        ))
    }

    #[test]
    fn headers_templates_and_instance_secrets() {
        let s = seed(
            "headers = { Authorization = \"Bearer ${TOKEN}\", X-Org = \"acme\" }",
            "secrets = { TOKEN = \"ghp_abc123\" }",
        )
        .unwrap();
        let up = &s.upstreams[0];
        assert_eq!(up.secret_names().into_iter().collect::<Vec<_>>(), ["TOKEN"]);
        assert_eq!(s.instances[0].secrets["TOKEN"].expose(), "ghp_abc123");
        // a seed's Debug (what an error or a log could show) never holds a secret
        assert!(!format!("{s:?}").contains("ghp_abc123"));
        let mut bound = up.clone();
        bound.credentials.secrets = s.instances[0].secrets.clone();
        let rendered = bound.rendered().unwrap();
        assert_eq!(rendered[0].0, "Authorization");
        assert_eq!(rendered[0].1.expose(), "Bearer ghp_abc123");
        let missing = up.rendered().unwrap_err().to_string();
        assert!(
            missing.contains("\"gh\"") && missing.contains("${TOKEN}"),
            "{missing}"
        );
    }

    #[test]
    fn bad_credentials_are_refused_saying_why() {
        let e = |u: &str, i: &str| seed(u, i).unwrap_err().to_string();
        assert!(e("headers = { Authorization = \"Bearer ${TOKEN\" }", "").contains("unclosed"));
        assert!(e("headers = { \"Bad Name\" = \"x\" }", "").contains("not a valid HTTP header"));
        assert!(e("headers = { Mcp-Session-Id = \"x\" }", "").contains("set by the transport"));
        assert!(e("headers = { X = \"a\\nb\" }", "").contains("control character"));
        let shared = e(
            "forward_headers = { X-Upstream-Authorization = \"Authorization\" }",
            "",
        );
        assert!(
            shared.contains("per-session") && shared.contains("every caller"),
            "{shared}"
        );
        assert!(
            seed(
                "connection = \"per-request\"\nforward_headers = { X-Upstream-Authorization = \"Authorization\" }",
                ""
            )
            .is_ok()
        );
        let name = e("", "secrets = { \"1BAD\" = \"x\" }");
        assert!(name.contains("team-a") && name.contains("1BAD"), "{name}");
        let value = e("", "secrets = { TOKEN = \"\" }");
        assert!(value.contains("non-empty"), "{value}");
        let stdio = Seed::parse(
            "[[upstream]]\nname=\"s\"\ntransport=\"stdio\"\ncommand=\"x\"\nheaders={A=\"b\"}",
        )
        .unwrap_err()
        .to_string();
        assert!(stdio.contains("takes `env`"), "{stdio}");
    }

    #[test]
    fn the_first_missing_secret_names_instance_upstream_and_name() {
        let s = seed(
            "headers = { Authorization = \"Bearer ${TOKEN}\", X-Team = \"${TEAM}\" }",
            "secrets = { TOKEN = \"t\" }",
        )
        .unwrap();
        let have = |_: &str, name: &str| name == "TOKEN";
        assert_eq!(
            first_missing_secret([("team-a", &s.upstreams[0])], have),
            Some(("team-a".into(), "gh".into(), "TEAM".into()))
        );
        assert_eq!(
            first_missing_secret([("team-a", &s.upstreams[0])], |_, _| true),
            None
        );
    }
}

#[cfg(test)]
mod sse_tests {
    use super::*;

    #[test]
    fn legacy_sse_upstreams_take_a_url_headers_and_forwarded_headers() {
        let seed = Seed::parse(
            "[[upstream]]\nname=\"old\"\ntransport=\"sse\"\nurl=\"http://127.0.0.1:9/sse\"\n\
             connection=\"per-request\"\nheaders={ Authorization = \"Bearer ${T}\" }\n\
             forward_headers={ X-User = \"X-Upstream-User\" }\n",
        )
        .unwrap();
        let up = &seed.upstreams[0];
        assert!(
            matches!(&up.transport, UpstreamTransport::Sse { url, ca_file: None, headers }
            if url.ends_with("/sse") && headers.contains_key("Authorization"))
        );
        assert_eq!(up.transport.wire(), "sse");
        assert_eq!(up.secret_names().into_iter().collect::<Vec<_>>(), ["T"]);
        let e = Seed::parse("[[upstream]]\nname=\"old\"\ntransport=\"sse\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transport \"sse\" needs `url`"), "{e}");
        let e = Seed::parse(
            "[[upstream]]\nname=\"old\"\ntransport=\"sse\"\nurl=\"http://h/sse\"\nca_file=\"/x.pem\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("applies to https://"), "{e}");
    }
}
