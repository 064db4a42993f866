//! DNS-rebinding protection, as the MCP Streamable HTTP transport requires: the `Host` of every
//! request to an MCP endpoint must be an allowed host, and a browser's `Origin`, when present,
//! an allowed origin; otherwise 403, before the key is even looked at (so a page on another
//! origin learns nothing, valid key or not). One concern, one layer: `http::router` puts it
//! in front of `/mcp/{instance_id}`. Pure matching, unit-tested here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Gateway;
use super::refusal::Refusal;

/// The middleware: 403 `forbidden_host` / `forbidden_origin`, naming the value and the setting.
pub async fn guard(State(state): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let settings = &state.limits;
    if let Err((code, message)) = check(
        request.headers(),
        &settings.allowed_hosts,
        &settings.allowed_origins,
    ) {
        state.metrics.request("origin", "refused");
        return Refusal::Forbidden { code, message }.into_response();
    }
    next.run(request).await
}

/// The refusal's error code and message, naming the value and the setting.
fn check(
    headers: &HeaderMap,
    hosts: &[String],
    origins: &[String],
) -> Result<(), (&'static str, String)> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host, hosts) {
        return Err((
            "forbidden_host",
            format!(
                "Host {host:?} is not allowed (allowed hosts: --allowed-hosts / MCP_PROXY_ALLOWED_HOSTS)"
            ),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, origins) {
            return Err((
                "forbidden_origin",
                format!(
                    "Origin {origin:?} is not allowed (allowed origins: --allowed-origins / MCP_PROXY_ALLOWED_ORIGINS)"
                ),
            ));
        }
    }
    Ok(())
}

/// Splits `host[:port]` (IPv6 in brackets) into the lower-cased host and the port.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p.parse().ok()?)),
            Some(_) => (authority, None), // a bare IPv6 address
            None => (authority, None),
        }
    };
    Some((host.to_ascii_lowercase(), port))
}

/// `Host` against entries `host` (any port) or `host:port`.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let Some((h, port)) = split_authority(host) else {
        return false;
    };
    allowed.iter().any(|entry| match split_authority(entry) {
        Some((eh, None)) => eh == h,
        Some((eh, Some(ep))) => eh == h && port == Some(ep),
        None => false,
    })
}

/// `Origin` against entries `scheme://host:port`, `scheme://host:*` (any port),
/// `scheme://host` (the scheme's default port) or `null`.
fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim();
    if origin == "null" {
        return allowed.iter().any(|a| a.trim() == "null");
    }
    let Some((scheme, h, port)) = parse_origin(origin, false) else {
        return false;
    };
    let port = match port {
        Some(Port::Is(p)) => Some(p),
        _ => default_port(&scheme),
    };
    allowed.iter().any(|entry| match parse_origin(entry, true) {
        Some((es, eh, ep)) if es == scheme && eh == h => match ep {
            Some(Port::Any) => true,
            Some(Port::Is(p)) => port == Some(p),
            None => port == default_port(&es),
        },
        _ => false,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Port {
    Is(u16),
    Any,
}

/// `scheme://host[:port]` (and `:*` when `wildcard`) → lower-cased scheme, host, port.
fn parse_origin(value: &str, wildcard: bool) -> Option<(String, String, Option<Port>)> {
    let (scheme, rest) = value.trim().split_once("://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return None;
    }
    let (authority, any) = match rest.strip_suffix(":*") {
        Some(a) if wildcard => (a, true),
        Some(_) => return None,
        None => (rest, false),
    };
    let (host, port) = split_authority(authority)?;
    let port = if any {
        Some(Port::Any)
    } else {
        port.map(Port::Is)
    };
    Some((scheme.to_ascii_lowercase(), host, port))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hosts() {
        let allowed = list(&["localhost", "127.0.0.1", "::1", "mcp.example.com:443"]);
        assert!(host_allowed("localhost:8080", &allowed));
        assert!(host_allowed("LOCALHOST", &allowed));
        assert!(host_allowed("127.0.0.1:1", &allowed));
        assert!(host_allowed("[::1]:8080", &allowed));
        assert!(host_allowed("mcp.example.com:443", &allowed));
        assert!(!host_allowed("mcp.example.com:8443", &allowed));
        assert!(!host_allowed("mcp.example.com", &allowed));
        assert!(!host_allowed("evil.example:8080", &allowed));
        assert!(!host_allowed("localhost.evil.example", &allowed));
        assert!(!host_allowed("", &allowed));
        assert!(!host_allowed("localhost:notaport", &allowed));
    }

    #[test]
    fn origins() {
        let allowed = list(&[
            "http://localhost:*",
            "https://app.example.com",
            "https://admin.example.com:8443",
        ]);
        assert!(origin_allowed("http://localhost:3000", &allowed));
        assert!(origin_allowed("http://localhost", &allowed));
        assert!(!origin_allowed("https://localhost:3000", &allowed));
        assert!(origin_allowed("https://app.example.com", &allowed));
        assert!(origin_allowed("https://app.example.com:443", &allowed));
        assert!(!origin_allowed("https://app.example.com:444", &allowed));
        assert!(origin_allowed("https://admin.example.com:8443", &allowed));
        assert!(!origin_allowed("https://admin.example.com", &allowed));
        assert!(!origin_allowed("http://evil.example", &allowed));
        assert!(!origin_allowed("null", &allowed));
        assert!(origin_allowed("null", &list(&["null"])));
        assert!(!origin_allowed("garbage", &allowed));
        assert!(
            !origin_allowed("http://localhost:*", &allowed),
            "a wildcard is not an origin"
        );
    }
}
