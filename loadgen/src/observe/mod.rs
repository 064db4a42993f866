//! Watching the target from outside: the `/proc` [`probe`] of one process, the whole
//! process [`tree`] below the target, and the [`sampler`] that reads the tree (and the
//! target's `/metrics`) every 250 ms; after the settle, the [`sessions`] the load opened
//! asked whether they are still held, and the mocks' [`upstream`] counts read.
//!
//! Invariant: observing never disturbs the target (no signals, no ptrace).

pub mod metrics;
pub mod probe;
pub mod sampler;
pub mod sessions;
pub mod tree;
pub mod upstream;
