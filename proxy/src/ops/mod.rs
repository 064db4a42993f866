//! Operational helpers every layer may use: metrics, the memory guard, backoff, the open-files
//! limit, a log-line limiter, and (only with the `planted-leaks` feature) the planted leaks.

pub mod backoff;
pub mod fd_limit;
pub mod log_limit;
pub mod memory;
pub mod metrics;
#[cfg(feature = "planted-leaks")]
pub mod planted;
