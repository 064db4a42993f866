//! Operational helpers every layer may use: metrics, the memory guard, backoff, a log-line
//! limiter, and (only with the `planted-leaks` feature) the planted leaks.

pub mod backoff;
pub mod log_limit;
pub mod memory;
pub mod metrics;
#[cfg(feature = "planted-leaks")]
pub mod planted;
