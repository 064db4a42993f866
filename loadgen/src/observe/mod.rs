//! Watching the target from outside: the `/proc` [`probe`] of one process, the whole
//! process [`tree`] below the target, and the [`sampler`] that reads the tree (and the
//! target's `/metrics`) every 250 ms.
//!
//! Invariant: observing never disturbs the target (no signals, no ptrace).

pub mod metrics;
pub mod probe;
pub mod sampler;
pub mod tree;
