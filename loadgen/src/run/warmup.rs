//! Stage 2, warm-up: the target's tools listed once (each mix tool must be there; its
//! `inputSchema` gives the calls' arguments the scenario does not), then the scenario's load
//! for `load.warmup`, against the started target; its figures are not kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::Stage;
use crate::load::{self, Plan, discover};
use crate::scenario::{Op, OpKind};

/// How many times the tools are listed before a missing mix tool is an error (an upstream
/// that fails now and then is left out of one listing, not of three).
const LISTINGS: usize = 3;

/// Lists the tools, then warms up; returns the tools' schemas for the measured load.
pub(super) async fn warm_up(s: &Stage<'_>) -> anyhow::Result<BTreeMap<String, Value>> {
    let scenario = s.scenario;
    let schemas = tool_schemas(s).await?;
    if scenario.load.warmup.is_zero() {
        return Ok(schemas);
    }
    s.bar.set_prefix("warm-up");
    let plan = Arc::new(
        Plan::new(scenario, &s.tgt.url, &s.tgt.headers, scenario.load.warmup)?
            .with_schemas(schemas.clone()),
    );
    load::attack(plan).await?;
    Ok(schemas)
}

/// The target's tools (name → `inputSchema`), listed in the scenario's (first) era; an
/// error naming each mix tool it does not list (entries of `expect_errors` need not be
/// listed: their error is the answer). No listing when the mix calls no tool.
async fn tool_schemas(s: &Stage<'_>) -> anyhow::Result<BTreeMap<String, Value>> {
    let load = &s.scenario.load;
    let calls: Vec<String> = s
        .scenario
        .ops()
        .into_iter()
        .filter_map(|(op, _)| match op {
            Op::Call(name) if !load.expect_errors.contains(&op_label(&name)) => Some(name),
            _ => None,
        })
        .collect();
    if calls.is_empty() {
        return Ok(BTreeMap::new());
    }
    let protocol = load
        .protocols
        .keys()
        .next()
        .copied()
        .unwrap_or(load.protocol);
    let headers = load::header_map(&s.tgt.headers)?;
    let mut listed = BTreeMap::new();
    for attempt in 1..=LISTINGS {
        let tools =
            discover::list_tools(&s.tgt.url, &headers, protocol, load.timeout(OpKind::List))
                .await
                .with_context(|| format!("listing the target's tools at {}", s.tgt.url));
        match tools {
            Ok(tools) => listed.extend(tools),
            Err(e) if attempt == LISTINGS => return Err(e),
            Err(_) => {}
        }
        let missing = discover::missing_tools(calls.iter().map(String::as_str), &listed);
        match missing {
            None => return Ok(listed),
            Some(m) if attempt == LISTINGS => bail!(m),
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    Ok(listed)
}

fn op_label(name: &str) -> String {
    Op::Call(name.to_string()).label()
}
