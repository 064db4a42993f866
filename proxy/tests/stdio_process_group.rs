//! Contract (SPEC "Upstream lifecycle"): a stdio upstream runs in its own process group, and
//! closing it (idle reaping here, shutdown too) is stdin close → SIGTERM → SIGKILL to the whole
//! group, always reaped: no zombie, and no orphan, even for a grandchild the upstream started
//! or an upstream that ignores both stdin EOF and SIGTERM. (Own file: it counts processes.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use mcp_loadgen::observe::probe;
use serde_json::json;

/// Live (non-zombie) processes whose process group is `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // fields after the command's closing paren: state ppid pgrp …
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

fn seed(script: &str) -> String {
    format!(
        "[[upstream]]\nname = \"local\"\ntransport = \"stdio\"\ncommand = \"sh\"\nargs = [\"-c\", {script:?}]\nconnection = \"shared\"\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"local\"]\napi_keys = [\"{KEY}\"]\n"
    )
}

#[tokio::test]
async fn closing_a_stdio_upstream_ends_its_whole_process_group() {
    let me = std::process::id();
    let bin = mock_bin();
    let baseline = probe::children(me).unwrap();
    for (case, script) in [
        // a well-behaved server that left a grandchild running in its group
        (
            "grandchild",
            format!(
                "sleep 1000 >/dev/null 2>&1 & exec '{}' stdio",
                bin.display()
            ),
        ),
        // a server that ignores stdin EOF and SIGTERM: only SIGKILL ends it
        (
            "stubborn",
            format!(
                "trap '' TERM; '{}' stdio; sleep 1000 >/dev/null 2>&1",
                bin.display()
            ),
        ),
    ] {
        let proxy = start_proxy(&seed(&script), |s| {
            s.upstream_idle_timeout = Duration::from_millis(200);
        })
        .await;
        let c = client(&proxy.url("demo"), KEY).await;
        c.call_tool(call("echo", json!({ "text": "x" })))
            .await
            .unwrap();
        let kids = probe::child_pids(me).unwrap();
        let new: Vec<u32> = kids
            .into_iter()
            .filter(|p| group_members(*p).contains(p))
            .collect();
        assert_eq!(new.len(), 1, "{case}: one upstream group leader: {new:?}");
        let leader = new[0];
        let members = group_members(leader);
        assert!(
            members.len() >= 2,
            "{case}: the upstream and its grandchild share its group: {members:?}"
        );
        // idle reaping closes the client: the whole group must go, and be reaped
        let started = Instant::now();
        let gone = eventually(Duration::from_secs(15), || group_members(leader).is_empty()).await;
        assert!(
            gone,
            "{case}: group {leader} still has {:?}",
            group_members(leader)
        );
        eprintln!(
            "{case}: group of {} ended {:?} after close",
            members.len(),
            started.elapsed()
        );
        assert!(
            eventually(Duration::from_secs(2), || probe::children(me).unwrap()
                == baseline)
            .await,
            "{case}: children {:?} vs baseline {baseline:?}",
            probe::children(me).unwrap()
        );
        assert_eq!(probe::children(me).unwrap().zombies, 0);
        c.cancel().await.unwrap();
        proxy.shutdown().await;
    }
}
