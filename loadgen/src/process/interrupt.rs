//! The two-signal interrupt handler of every subcommand that owns children: the first
//! Ctrl-C / SIGTERM asks for an orderly teardown, the second kills at once and exits.

use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the handler: `first` on the first Ctrl-C / SIGTERM; on the second, `second`
/// (SIGKILL what is left) and then exit with `exit_code`, without unwinding.
pub fn on_two_signals(
    exit_code: i32,
    first: impl Fn() + Send + 'static,
    second: impl Fn() + Send + 'static,
) {
    let seen = AtomicBool::new(false);
    if let Err(e) = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            second();
            std::process::exit(exit_code);
        }
        first();
    }) {
        eprintln!("mcp-loadgen: cannot install the Ctrl-C handler: {e}");
    }
}
