//! Instance secrets: [`Secret`] (a value that never prints) and the [`Keyring`] that seals
//! them at rest with AES-256-GCM (aws-lc-rs, already the TLS stack's crypto). Pure: no IO
//! but the system random source for nonces and new keys.
//!
//! A sealed value is `v1.<key id>.<hex nonce ‖ ciphertext ‖ tag>`, bound (as associated data)
//! to its instance and name, so a sealed value copied onto another row does not open. The key
//! id (8 hex digits of a hash of the key) says which key sealed it: a replica holds the current
//! key and any previous ones while a rotation rolls out.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// A secret value. `Debug` shows `Secret(***)` and there is no `Display`, so a secret cannot
/// reach a log line, an error or a listing by formatting; [`Secret::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the one place that must send it (an upstream header, a child's env).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a key or a sealed value was refused. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "a secret key must be 64 hex digits (32 random bytes, e.g. `mcp-proxy secrets new-key`)"
    )]
    BadKey,
    #[error("sealed with key {0}, which this proxy does not hold")]
    UnknownKey(String),
    #[error("not a sealed value of this proxy")]
    Malformed,
    #[error("does not open with key {0} (tampered with, or moved from another instance or name)")]
    Tampered(String),
}

/// One AES-256-GCM key and its id.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    key: Arc<LessSafeKey>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// Parses 64 hex digits (surrounding whitespace ignored, so a key file may end in a newline).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| SealError::BadKey)?;
        let digest = Sha256::new()
            .chain_update(b"mcp-proxy secret key id\0")
            .chain_update(bytes)
            .finalize();
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            id: hex::encode(&digest[..4]),
            key: Arc::new(LessSafeKey::new(key)),
        })
    }

    /// A new random key, as the 64 hex digits [`SecretKey::parse`] reads.
    pub fn generate() -> String {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random source works");
        hex::encode(bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The key new values are sealed with, and the previous keys still accepted for opening.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: SecretKey,
    previous: Vec<SecretKey>,
}

/// The associated data binding a sealed value to its row.
fn aad(instance: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(instance.len() + name.len() + 1);
    aad.extend_from_slice(instance.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl Keyring {
    pub fn new(current: SecretKey, previous: Vec<SecretKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key new values are sealed with.
    pub fn key_id(&self) -> &str {
        self.current.id()
    }

    /// Whether a value sealed with `key_id` opens here.
    pub fn holds(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, id: &str) -> Option<&SecretKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    /// Seals `value` for `instance`'s secret `name` with the current key.
    pub fn seal(&self, instance: &str, name: &str, value: &Secret) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random source works");
        let mut data = value.expose().as_bytes().to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(instance, name)),
                &mut data,
            )
            .expect("AES-GCM seals any length a secret has");
        format!(
            "v1.{}.{}{}",
            self.current.id,
            hex::encode(nonce),
            hex::encode(data)
        )
    }

    /// Opens what [`Keyring::seal`] made for the same `instance` and `name`.
    pub fn open(&self, instance: &str, name: &str, sealed: &str) -> Result<Secret, SealError> {
        let key_id = sealed_key_id(sealed).ok_or(SealError::Malformed)?;
        let key = self
            .key(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_string()))?;
        let body = &sealed["v1.".len() + key_id.len() + 1..];
        let mut data = hex::decode(body).map_err(|_| SealError::Malformed)?;
        if data.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let ciphertext = data.split_off(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = data.try_into().map_err(|_| SealError::Malformed)?;
        let mut ciphertext = ciphertext;
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(instance, name)),
                &mut ciphertext,
            )
            .map_err(|_| SealError::Tampered(key_id.to_string()))?;
        let text = std::str::from_utf8(plain).map_err(|_| SealError::Malformed)?;
        Ok(Secret::new(text))
    }
}

/// The id of the key that sealed `sealed`, if it is a sealed value at all.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    let rest = sealed.strip_prefix("v1.")?;
    let (id, _) = rest.split_once('.')?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(SecretKey::parse(&SecretKey::generate()).unwrap(), vec![])
    }

    #[test]
    fn seals_and_opens_only_for_the_same_row_and_key() {
        let ring = keyring();
        let token = Secret::new("ghp_s3cret");
        let sealed = ring.seal("team-a", "TOKEN", &token);
        assert!(!sealed.contains("s3cret"), "{sealed}");
        assert_eq!(sealed_key_id(&sealed), Some(ring.key_id()));
        assert_eq!(ring.open("team-a", "TOKEN", &sealed).unwrap(), token);
        // another row, another key, a flipped bit: refused, never garbage
        assert!(matches!(
            ring.open("team-b", "TOKEN", &sealed),
            Err(SealError::Tampered(_))
        ));
        assert!(matches!(
            ring.open("team-a", "OTHER", &sealed),
            Err(SealError::Tampered(_))
        ));
        assert!(matches!(
            keyring().open("team-a", "TOKEN", &sealed),
            Err(SealError::UnknownKey(_))
        ));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(matches!(
            ring.open("team-a", "TOKEN", &flipped),
            Err(SealError::Tampered(_))
        ));
        assert_eq!(
            ring.open("team-a", "TOKEN", "plain"),
            Err(SealError::Malformed)
        );
        // the same value sealed twice differs (a fresh nonce each time)
        assert_ne!(sealed, ring.seal("team-a", "TOKEN", &token));
    }

    #[test]
    fn a_previous_key_still_opens_while_new_values_use_the_current_one() {
        let old = SecretKey::parse(&SecretKey::generate()).unwrap();
        let sealed = Keyring::new(old.clone(), vec![]).seal("i", "N", &Secret::new("v"));
        let new = SecretKey::parse(&SecretKey::generate()).unwrap();
        let ring = Keyring::new(new.clone(), vec![old.clone()]);
        assert!(ring.holds(old.id()) && ring.holds(new.id()));
        assert_eq!(ring.open("i", "N", &sealed).unwrap().expose(), "v");
        assert_eq!(
            sealed_key_id(&ring.seal("i", "N", &Secret::new("v"))),
            Some(new.id())
        );
    }

    #[test]
    fn keys_are_64_hex_digits_and_secrets_never_print() {
        assert_eq!(SecretKey::parse("abc").unwrap_err(), SealError::BadKey);
        assert_eq!(
            SecretKey::parse(&"zz".repeat(32)).unwrap_err(),
            SealError::BadKey
        );
        let text = format!("{}\n", SecretKey::generate());
        let key = SecretKey::parse(&text).unwrap();
        assert_eq!(key.id(), SecretKey::parse(&text).unwrap().id());
        assert!(!format!("{key:?}").contains(text.trim()));
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
