//! `mcp-loadgen`: the harness that drives load at an MCP endpoint and watches the target's
//! resources return to baseline (SPEC "The harness").
//!
//! A run ([`run`]) reads a [`scenario`], starts what it needs ([`target`], its children
//! through [`process`]), drives goose users that speak MCP ([`load`]), samples the target from
//! outside ([`observe`]), decides ([`verdict`]) with the SPEC's exit codes and writes the
//! [`report`]. [`cli`] is the command line (`run`, `merge`, `report`, `gate`).
//!
//! Layers (enforced by `tests/architecture.rs`): `report` and `process` import nothing else of
//! the crate; `scenario`, `observe`, `load` sit on them; `verdict` decides from those;
//! `target` starts what a scenario needs; `run` strings the stages together; `cli` is on top
//! and nothing imports it.

pub mod cli;
pub mod load;
pub mod observe;
pub mod process;
pub mod report;
pub mod run;
pub mod scenario;
pub mod target;
pub mod verdict;
