//! `mcp-loadgen`: the harness that drives load against an MCP endpoint and watches the
//! target's resources return to baseline.
//!
//! Today this crate holds the part the proxy's own tests already need: [`probe`], which reads
//! a process's file descriptors and child processes from `/proc` from the outside. The goose
//! runner, the verdict and the reports are built on top of it (see the SPEC's harness section).

pub mod probe;
