//! API keys at rest: the SHA-256 of a plaintext key is the only form ever stored or cached.

use sha2::{Digest, Sha256};

/// SHA-256 of a plaintext key, the only form ever stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}
