//! What the proxy knows: the SQL store (the only module that knows SQL), the caches in front
//! of it, the `last_used_at` write-behind, and cross-replica invalidation of the caches.

pub mod cache;
pub mod invalidation;
pub mod store;
pub mod url;
pub mod usage;
