//! The rounds of a run with `[leaks] cycles = N` (N ≥ 2): each round's load window, the
//! sessions it opened and the reading after its settle, as `report.json` keeps them.
//!
//! The data only: `run` fills it in, `verdict::cycles` judges it, `render` draws it.

use serde::{Deserialize, Serialize};

use super::sample::{RESOURCES, Resource, Sample};

/// One round of the measured load and what the target held after its settle.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Round {
    /// 1-based.
    pub index: u32,
    pub load_start_t_ms: u64,
    pub load_end_t_ms: u64,
    /// Sessions the round's users opened.
    pub sessions_opened: u64,
    /// The last sample of the round's settle.
    pub settled: Sample,
    /// The lowest RSS from the round's load start to its settle's end: the trough after a
    /// garbage collection, where a heap that only grew between collections shows what it
    /// holds.
    #[serde(default)]
    pub rss_low_bytes: u64,
}

impl Round {
    /// Is `t_ms` inside this round's load?
    pub fn loading_at(&self, t_ms: u64) -> bool {
        (self.load_start_t_ms..=self.load_end_t_ms).contains(&t_ms)
    }
}

/// `r`'s reading after each round (rounds it cannot read are left out).
pub fn series(r: &Resource, rounds: &[Round]) -> Vec<(u32, f64)> {
    rounds
        .iter()
        .filter_map(|x| (r.read)(&x.settled).map(|v| (x.index, v)))
        .collect()
}

/// The resources a round can be read for (the probe's, or the target's /metrics).
pub fn readable(rounds: &[Round]) -> impl Iterator<Item = &'static Resource> + '_ {
    RESOURCES
        .iter()
        .filter(move |r| rounds.iter().any(|x| (r.read)(&x.settled).is_some()))
}
