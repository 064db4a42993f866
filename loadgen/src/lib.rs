//! `mcp-loadgen`: the harness that drives load at an MCP endpoint and watches the target's
//! resources return to baseline (SPEC "The harness").
//!
//! A run ([`run`]) reads a [`scenario`], starts what it needs ([`target`]), drives goose
//! users that speak MCP ([`load`], [`mcp`]), samples the target from outside ([`sampler`] over
//! [`probe`]), and decides ([`verdict`]) with the SPEC's exit codes. With replicas, it also
//! owns a throw-away [`postgres`] cluster and the [`haproxy`] in front of the replicas.

pub mod gate;
pub mod haproxy;
pub mod load;
pub mod mcp;
mod owned;
pub mod postgres;
pub mod probe;
pub mod replicas;
pub mod report;
pub mod run;
pub mod sampler;
pub mod scenario;
pub mod target;
pub mod verdict;
