//! `--require-header "Name: value"` ([`MockConfig::require_headers`](crate::MockConfig)): an
//! upstream that wants credentials. The outermost middleware in front of rmcp's `/mcp` and the
//! legacy HTTP+SSE routes `/sse` and `/messages` (before the HTTP faults; `/control` is not
//! behind it): a request without every required header at exactly its value gets 401 with
//! `WWW-Authenticate: Bearer realm="mock-mcp"` and
//! `{"error":"unauthorized","message":"missing or wrong NAME header"}`, counted in
//! `unauthorized`; one with them goes on to the faults and rmcp, counted in `authorized`.
//!
//! Invariant: what a request presented is never echoed, logged or counted by value.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::faults::FaultState;

/// One header a request must carry, at exactly this value. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct RequiredHeader {
    /// As written (for the refusal's message).
    label: String,
    name: HeaderName,
    value: HeaderValue,
}

impl RequiredHeader {
    /// `name` at `value`; an error says which part is wrong (never repeating the value).
    pub fn new(name: &str, value: &str) -> Result<Self, String> {
        let label = name.trim();
        if label.is_empty() {
            return Err("the header name is empty".into());
        }
        let name = HeaderName::from_str(label)
            .map_err(|_| format!("`{label}` is not a valid header name"))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("the value of {label} is empty"));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of {label} holds a character a header cannot carry"))?;
        Ok(Self {
            label: label.to_string(),
            name,
            value,
        })
    }

    /// The header's name, as written.
    pub fn name(&self) -> &str {
        &self.label
    }

    /// Whether `headers` carry this header at exactly its value (one of its values, if repeated).
    fn satisfied_by(&self, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get_all(&self.name)
            .iter()
            .any(|v| v.as_bytes() == self.value.as_bytes())
    }
}

/// `"Name: value"` (split at the first `:`, both sides trimmed).
impl FromStr for RequiredHeader {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, value) = spec.split_once(':').ok_or_else(|| {
            "expected \"Name: value\" (e.g. \"Authorization: Bearer abc\"): no `:`".to_string()
        })?;
        Self::new(name, value).map_err(|e| {
            format!("expected \"Name: value\" (e.g. \"Authorization: Bearer abc\"): {e}")
        })
    }
}

impl fmt::Debug for RequiredHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequiredHeader({}: ***)", self.label)
    }
}

/// What the middleware checks, and where it counts.
#[derive(Debug)]
pub struct HeaderCheck {
    required: Vec<RequiredHeader>,
    state: Arc<FaultState>,
}

impl HeaderCheck {
    pub fn new(required: Vec<RequiredHeader>, state: Arc<FaultState>) -> Self {
        Self { required, state }
    }
}

/// The middleware in front of the HTTP faults and rmcp's `/mcp` service.
pub async fn apply(
    State(check): State<Arc<HeaderCheck>>,
    request: Request,
    next: Next,
) -> Response {
    if check.required.is_empty() {
        return next.run(request).await;
    }
    if let Some(missing) = check
        .required
        .iter()
        .find(|r| !r.satisfied_by(request.headers()))
    {
        check.state.count_authorization(false);
        tracing::debug!(header = missing.name(), "refused: missing or wrong header");
        return unauthorized(missing.name());
    }
    check.state.count_authorization(true);
    next.run(request).await
}

/// 401 naming the header, never what was presented.
fn unauthorized(name: &str) -> Response {
    let body = serde_json::json!({
        "error": "unauthorized",
        "message": format!("missing or wrong {name} header"),
    });
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"mock-mcp\"")],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_wrong() {
        let h: RequiredHeader = "Authorization: Bearer abc".parse().unwrap();
        assert_eq!(h.name(), "Authorization");
        assert_eq!(h.value, "Bearer abc");
        let h: RequiredHeader = "X-Api-Key:k:with:colons ".parse().unwrap();
        assert_eq!(
            (h.name(), h.value.to_str().unwrap()),
            ("X-Api-Key", "k:with:colons")
        );
        for (spec, says) in [
            ("Authorization Bearer abc", "no `:`"),
            (": abc", "name is empty"),
            ("Bad Name: abc", "`Bad Name` is not a valid header name"),
            ("X-Key:   ", "value of X-Key is empty"),
            ("X-Key: a\u{7}b", "cannot carry"),
        ] {
            let e = spec.parse::<RequiredHeader>().unwrap_err();
            assert!(e.contains(says), "{spec:?}: {e}");
            assert!(e.contains("\"Name: value\""), "{e}");
        }
    }

    #[test]
    fn debug_hides_the_value() {
        let h: RequiredHeader = "Authorization: Bearer s3cret".parse().unwrap();
        let shown = format!("{h:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
    }
}
