//! The progress bar on stderr: the stage, the elapsed load, and the live figures.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Stage;
use crate::load::Recorder;

pub(super) fn bar(quiet: bool, duration: Duration) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(duration.as_secs().max(1)), target);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len}s {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Shows the phase, the elapsed load and the live figures: throughput, errors, fds, tasks.
pub(super) fn show(s: &Stage<'_>, recorder: &Recorder, elapsed: Duration, phase: &str) {
    let (ok, failed) = recorder.snapshot_totals();
    let secs = elapsed.as_secs_f64().max(0.001);
    let l = s.sampler.latest().unwrap_or_default();
    s.bar.set_prefix(phase.chars().take(9).collect::<String>());
    s.bar
        .set_position(elapsed.as_secs().min(s.scenario.load.duration.as_secs()));
    s.bar.set_message(format!(
        "{:.0} req/s  err {:.2}%  fds {}  tasks {}",
        (ok + failed) as f64 / secs,
        if ok + failed > 0 {
            100.0 * failed as f64 / (ok + failed) as f64
        } else {
            0.0
        },
        l.fds.total(),
        l.metrics
            .and_then(|m| m.tokio_alive_tasks)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
    ));
}
