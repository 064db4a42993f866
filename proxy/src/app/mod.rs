//! The composition root: settings, building every part and wiring them together, the
//! lifecycle of a running proxy (`start` → `RunningProxy` → shutdown).

pub mod settings;
pub mod shutdown;
pub mod start;
pub mod start_errors;
pub mod state;
