//! Stage 2, warm-up: the scenario's load for `load.warmup`, against the started target; its
//! figures are not kept.

use std::sync::Arc;

use super::Stage;
use crate::load::{self, Plan};

pub(super) async fn warm_up(s: &Stage<'_>) -> anyhow::Result<()> {
    let scenario = s.scenario;
    if scenario.load.warmup.is_zero() {
        return Ok(());
    }
    s.bar.set_prefix("warm-up");
    let plan = Arc::new(Plan::new(
        scenario,
        &s.tgt.url,
        &s.tgt.headers,
        scenario.load.warmup,
    )?);
    load::attack(plan).await?;
    Ok(())
}
