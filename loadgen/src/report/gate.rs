//! The merge gate's result (`mcp-loadgen gate`): every scenario's run, its exit code and
//! report; rendered by `render::gate`.

use std::path::PathBuf;

use super::Report;

/// One scenario's run.
pub struct Ran {
    /// The scenario file's stem (`hangs` for `hangs.toml`): its report folder's name.
    pub id: String,
    pub file: PathBuf,
    pub code: i32,
    pub seconds: f64,
    /// None when the run wrote no report (exit 3).
    pub report: Option<Report>,
    /// The end of the run's stderr, for a run that could not be judged.
    pub stderr_tail: String,
}

pub struct Gate {
    pub ran: Vec<Ran>,
    pub exit_code: i32,
    pub seconds: f64,
}
