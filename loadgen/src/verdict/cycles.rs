//! Memory judged by repetition (`[leaks] cycles = N`, N ≥ 2): the lowest RSS of each round
//! (from its load start to its settle's end) is a leak when it grows round after round, not
//! when the first round warms a heap or a JIT. A garbage-collected runtime (Node, Python, Go)
//! grows tens of MiB between collections and drops back at one (often when the next round's
//! load starts: it does not collect when idle), so its readings after the settles climb in a
//! saw-tooth while its troughs hold; a proxy that keeps every session grows in every round,
//! troughs included.
//!
//! The rule: the rounds after the first grew by more than `rss_noise_mib` each — all of them,
//! allowing one in four that held (a leak growing into pages freed earlier) but none that fell
//! by more than the noise (a collection that gave memory back: what was held was garbage) —
//! and together by more than `rss_mib`. Pure: no IO.

use super::{Check, Kind};
use crate::report::rounds::Round;
use crate::report::sample::RESOURCES;
use crate::scenario::Leaks;

const MIB: f64 = 1024.0 * 1024.0;

/// The lowest RSS of each round, in MiB.
fn rss_series(rounds: &[Round]) -> Vec<f64> {
    rounds
        .iter()
        .filter(|r| r.settled.probed && !r.settled.gone)
        .map(|r| r.rss_low_bytes as f64 / MIB)
        .collect()
}

/// The `rss` leak check of a run in rounds: baseline = the first round's trough, value =
/// the last round's, peak = the highest trough, limit = `rss_mib`.
pub fn rss_check(rounds: &[Round], leaks: &Leaks) -> Check {
    let rss = rss_series(rounds);
    let skipped = (rss.len() < 2).then(|| {
        "fewer than two rounds could be read (no PID to probe, or the target exited)".to_string()
    });
    let (first, last) = (rss.first().copied(), rss.last().copied());
    let passed = skipped.is_some() || !grows(&rss, leaks);
    Check {
        name: "rss".into(),
        kind: Kind::Leak,
        unit: "MiB".into(),
        baseline: first,
        peak: rss.iter().copied().reduce(f64::max),
        value: last,
        limit: leaks.rss_mib,
        passed,
        skipped,
    }
}

/// Did the series grow round after round (every step but one in four by more than the
/// noise, none falling by more than it), and by more than the tolerance in all?
fn grows(rss: &[f64], leaks: &Leaks) -> bool {
    let noise = leaks.rss_noise_mib;
    let steps: Vec<f64> = rss.windows(2).map(|w| w[1] - w[0]).collect();
    let growing = steps.iter().filter(|g| **g > noise).count();
    let fell = steps.iter().any(|g| *g < -noise);
    let total = rss.last().unwrap_or(&0.0) - rss.first().unwrap_or(&0.0);
    !steps.is_empty() && !fell && growing >= steps.len() - steps.len() / 4 && total > leaks.rss_mib
}

/// What the rounds say, for the report's notes: RSS per round, its growth per round and per
/// session over the rounds after the first, and each count that grew in every round.
pub fn notes(rounds: &[Round], leaks: &Leaks) -> Vec<String> {
    let mut out = Vec::new();
    let rss = rss_series(rounds);
    if rss.len() >= 2 {
        let per_round = (rss[rss.len() - 1] - rss[0]) / (rss.len() - 1) as f64;
        let sessions: u64 = rounds.iter().skip(1).map(|r| r.sessions_opened).sum();
        let per_session = if sessions > 0 {
            let kib = per_round * 1024.0 * (rss.len() - 1) as f64 / sessions as f64;
            format!(", {kib:.1} KiB per session")
        } else {
            String::new()
        };
        out.push(format!(
            "rss, lowest in each round: {} MiB; {:+.1} MiB a round after the first{per_session} (a leak when the rounds after the first each grow more than {} MiB, one in four may hold and none fall, and together more than {} MiB)",
            rss.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" → "),
            per_round,
            leaks.rss_noise_mib,
            leaks.rss_mib
        ));
    }
    for r in RESOURCES.iter().filter(|r| r.name != "rss") {
        let v: Vec<f64> = rounds.iter().filter_map(|x| (r.read)(&x.settled)).collect();
        if v.len() >= 2 && v.windows(2).all(|w| w[1] > w[0]) {
            out.push(format!(
                "{} grew in every round: {}",
                r.name,
                v.iter()
                    .map(|x| format!("{x}"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::Sample;

    fn rounds(mib: &[f64]) -> Vec<Round> {
        mib.iter()
            .enumerate()
            .map(|(i, m)| Round {
                index: i as u32 + 1,
                sessions_opened: 1000,
                settled: Sample {
                    probed: true,
                    rss_bytes: (m * MIB) as u64 + (30 << 20),
                    ..Sample::default()
                },
                rss_low_bytes: (m * MIB) as u64,
                ..Round::default()
            })
            .collect()
    }

    #[test]
    fn a_heap_that_warms_in_the_first_round_then_holds_passes() {
        // Node: +40 MiB in the first round, then noise around a plateau
        let c = rss_check(&rounds(&[95.0, 96.5, 95.8, 97.0, 96.2]), &Leaks::default());
        assert!(c.passed, "{c:?}");
        assert!(c.skipped.is_none());
    }

    #[test]
    fn growth_in_every_round_beyond_the_noise_fails_with_the_readings() {
        let c = rss_check(
            &rounds(&[95.0, 105.0, 115.5, 124.0, 135.0]),
            &Leaks::default(),
        );
        assert!(!c.passed, "{c:?}");
        assert_eq!(c.baseline, Some(95.0));
        assert_eq!(c.value, Some(135.0));
        let notes = notes(
            &rounds(&[95.0, 105.0, 115.5, 124.0, 135.0]),
            &Leaks::default(),
        );
        assert!(notes[0].contains("+10.0 MiB a round"), "{notes:?}");
        assert!(notes[0].contains("10.2 KiB per session"), "{notes:?}");
    }

    #[test]
    fn a_leak_that_skips_one_round_in_four_still_fails() {
        // the leak grew into pages freed earlier for one round
        let c = rss_check(
            &rounds(&[95.0, 105.0, 115.0, 114.0, 125.0]),
            &Leaks::default(),
        );
        assert!(!c.passed, "{c:?}");
    }

    #[test]
    fn a_saw_tooth_whose_collection_gives_memory_back_is_no_leak() {
        // supergateway's tree, sessions DELETEd: troughs climb, then a collection drops one
        let c = rss_check(
            &rounds(&[152.4, 208.2, 224.7, 156.7, 202.2]),
            &Leaks::default(),
        );
        assert!(c.passed, "{c:?}");
    }

    #[test]
    fn growth_that_does_not_repeat_is_no_leak() {
        // two rounds of four held: a heap that grew in steps and settled, not a leak
        let c = rss_check(
            &rounds(&[95.0, 115.0, 114.5, 115.0, 140.0]),
            &Leaks::default(),
        );
        assert!(c.passed, "{c:?}");
    }

    #[test]
    fn small_steady_growth_within_the_tolerance_passes() {
        let c = rss_check(
            &rounds(&[95.0, 98.0, 101.0, 104.0, 107.0]),
            &Leaks::default(),
        );
        assert!(c.passed, "12 MiB over four rounds is within 16 MiB: {c:?}");
    }

    #[test]
    fn fewer_than_two_readable_rounds_is_skipped_saying_why() {
        let mut r = rounds(&[95.0, 105.0]);
        r[1].settled.gone = true;
        let c = rss_check(&r, &Leaks::default());
        assert!(c.passed && c.skipped.is_some(), "{c:?}");
    }
}
