//! What the proxy knows: the SQL store (the only module that knows SQL), the caches in front
//! of it, the `last_used_at` write-behind, and invalidation of the caches by other replicas
//! (PostgreSQL) and other processes (SQLite's change log).

pub mod cache;
pub mod changes;
pub mod invalidation;
pub mod store;
pub mod url;
pub mod usage;
