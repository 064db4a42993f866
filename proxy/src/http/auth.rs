//! API-key authentication: extraction (Bearer, `X-API-Key`, `?api_key=`), SHA-256 hashing,
//! constant-time comparison, and the decision. Lookups go through [`crate::data::cache::AuthCache`];
//! hashing is [`crate::domain::keys::hash_key`].

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::data::cache::AuthCache;
use crate::domain::keys::hash_key;
use crate::domain::model::ApiKeyRecord;
use crate::ops::log_limit::LogLimiter;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why a key does not open an instance. Mapped to HTTP in [`super::refusal`] only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing API key: send `Authorization: Bearer KEY`, `X-API-Key: KEY` or `?api_key=KEY`"
    )]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key has been revoked")]
    Revoked,
    /// The key is valid but for another instance (or the instance does not exist): reported as
    /// 404 so instance ids cannot be probed.
    #[error("no such instance")]
    NotFound,
    #[error("authentication store unavailable")]
    Unavailable,
}

/// Takes the API key from `Authorization: Bearer`, then `X-API-Key`, then `?api_key=`.
pub fn extract_key<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = value.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
            && !token.trim().is_empty()
        {
            return Some(token.trim().into());
        }
    }
    if let Some(value) = headers.get("x-api-key").and_then(|v| v.to_str().ok())
        && !value.trim().is_empty()
    {
        return Some(value.trim().into());
    }
    let query = query?;
    form_urlencoded_get(query, "api_key")
}

fn form_urlencoded_get<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    form_urlencoded::parse(query.as_bytes())
        .find_map(|(k, v)| (k == name && !v.is_empty()).then_some(v))
}

/// Decides whether `key` opens `instance_id`. The stored hash is compared with the presented
/// one in constant time, and so is the instance id.
pub async fn authenticate(
    cache: &AuthCache,
    instance_id: &str,
    key: Option<&str>,
) -> Result<Arc<ApiKeyRecord>, AuthError> {
    let key = key.ok_or(AuthError::Missing)?;
    let hash = hash_key(key);
    let record = cache
        .lookup(&hash)
        .await
        .map_err(|_| AuthError::Unavailable)?;
    let record = record.ok_or(AuthError::Invalid)?;
    if !bool::from(record.key_hash.ct_eq(&hash)) {
        return Err(AuthError::Invalid);
    }
    if record.revoked {
        return Err(AuthError::Revoked);
    }
    if !bool::from(record.instance_id.as_bytes().ct_eq(instance_id.as_bytes())) {
        return Err(AuthError::NotFound);
    }
    Ok(record)
}

impl AuthError {
    /// The refusal's label in logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing_api_key",
            Self::Invalid => "invalid_api_key",
            Self::Revoked => "revoked_api_key",
            Self::NotFound => "other_instance_or_unknown",
            Self::Unavailable => "store_unavailable",
        }
    }
}

/// Logs a refused request (at most one line per reason per second, with the count of those
/// held back): the instance, the reason, the client's IP address when known, and the key's
/// fingerprint (the first 8 hex digits of its SHA-256), never the key.
pub fn log_refusal(
    limiter: &LogLimiter,
    instance_id: &str,
    error: &AuthError,
    key: Option<&str>,
    client: Option<SocketAddr>,
) {
    let reason = error.reason();
    let Some(held_back) = limiter.admit(reason) else {
        return;
    };
    let fingerprint = key.map(|k| hex::encode(&hash_key(k)[..4]));
    let fingerprint = fingerprint.as_deref().unwrap_or("-");
    let client = client.map(|a| a.ip().to_string());
    let client = client.as_deref().unwrap_or("-");
    match error {
        AuthError::Unavailable => tracing::error!(
            instance = instance_id,
            reason,
            key = fingerprint,
            client,
            held_back,
            "request refused: the key store is unavailable"
        ),
        _ => tracing::warn!(
            instance = instance_id,
            reason,
            key = fingerprint,
            client,
            held_back,
            "request refused: {error}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn extracts_from_each_place_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(extract_key(&h, Some("api_key=q1")).as_deref(), Some("q1"));
        assert_eq!(
            extract_key(&h, Some("a=1&api_key=a%2Bb")).as_deref(),
            Some("a+b")
        );
        assert_eq!(extract_key(&h, Some("api_key=")), None);
        h.insert("x-api-key", HeaderValue::from_static("x1"));
        assert_eq!(extract_key(&h, Some("api_key=q1")).as_deref(), Some("x1"));
        h.insert("authorization", HeaderValue::from_static("Bearer b1"));
        assert_eq!(extract_key(&h, None).as_deref(), Some("b1"));
        h.insert("authorization", HeaderValue::from_static("Basic Zm9v"));
        assert_eq!(extract_key(&h, None).as_deref(), Some("x1"));
    }

    #[test]
    fn hash_is_sha256_hex_of_plaintext() {
        assert_eq!(
            hex::encode(hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
