use super::*;
use crate::report::check::Kind;

fn proc(pid: u32, start: u64) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid: 1,
        start,
        comm: "p".into(),
        cmdline: format!("p {pid}"),
        state: 'S',
        ..ProcessInfo::default()
    }
}

fn snap(procs: Vec<ProcessInfo>) -> TreeSnapshot {
    TreeSnapshot {
        procs,
        sockets: Vec::new(),
    }
}

#[test]
fn growth_beyond_tolerance_is_named_and_within_it_is_not() {
    let l = Leaks {
        fds: 1,
        threads: 2,
        ..Leaks::default()
    };
    let base = snap(vec![proc(10, 1), proc(11, 1)]);
    let mut a = proc(10, 1);
    a.fds.socket = 12;
    a.threads = 3;
    a.rss_bytes = 40 * 1024 * 1024;
    let mut b = proc(11, 1);
    b.fds.pipe = 1;
    b.threads = 2;
    let g = grown(&base, &snap(vec![a, b]), &l);
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(
        g[0].grew,
        ["fds +12 (socket +12)", "threads +3", "rss +40 MiB"]
    );
}

#[test]
fn a_reused_pid_is_a_new_process_and_fails_children_by_identity() {
    let l = Leaks::default();
    let base = snap(vec![proc(1, 1), proc(10, 1)]);
    let mut orphan = proc(10, 2);
    orphan.orphan = true;
    let g = grown(&base, &snap(vec![proc(1, 1), orphan]), &l);
    assert_eq!(g[0].grew, ["new process", "orphan"]);
    let mut checks = vec![Check {
        name: "children".into(),
        kind: Kind::Leak,
        unit: "processes".into(),
        baseline: Some(1.0),
        peak: None,
        value: Some(1.0),
        limit: 0.0,
        passed: true,
        skipped: None,
    }];
    judge_children_by_identity(&mut checks, &g, &l);
    assert!(!checks[0].passed);
    assert_eq!(
        culprits(&checks, &g),
        ["children grew in: PID 10 p (p 10): new process, orphan"]
    );
    // a clean tree: nothing grew, nothing fails
    assert!(grown(&base, &base, &l).is_empty());
}

#[test]
fn a_replaced_root_is_not_compared_by_identity() {
    // a replica the harness restarted: its slot follows a new process with new children
    let base = snap(vec![proc(1, 1), proc(10, 1)]);
    let end = snap(vec![proc(2, 5), proc(20, 6)]);
    assert!(grown(&base, &end, &Leaks::default()).is_empty());
}

#[test]
fn a_new_process_counts_only_when_it_is_still_there_a_moment_later() {
    let l = Leaks::default();
    let base = snap(vec![proc(10, 1)]);
    // a leaked child (20) in both readings; a poll loop's short-lived helper (21, then 22)
    let first = grown(
        &base,
        &snap(vec![proc(10, 1), proc(20, 5), proc(21, 6)]),
        &l,
    );
    let again = grown(
        &base,
        &snap(vec![proc(10, 1), proc(20, 5), proc(22, 7)]),
        &l,
    );
    let kept = lasting(first, &again);
    assert_eq!(kept.iter().map(|g| g.pid).collect::<Vec<_>>(), vec![20]);
    let mut checks = vec![Check {
        name: "children".into(),
        kind: Kind::Leak,
        unit: "processes".into(),
        baseline: Some(1.0),
        peak: Some(2.0),
        value: Some(2.0),
        limit: 0.0,
        passed: true,
        skipped: None,
    }];
    judge_children_by_identity(&mut checks, &kept, &l);
    assert!(!checks[0].passed, "the lasting new child fails `children`");
    // only churn: nothing left
    let first = grown(&base, &snap(vec![proc(10, 1), proc(21, 6)]), &l);
    let again = grown(&base, &snap(vec![proc(10, 1), proc(22, 7)]), &l);
    assert!(lasting(first, &again).is_empty());
}

#[test]
fn a_failed_rss_grown_in_node_says_how_to_judge_live_memory() {
    let l = Leaks::default();
    let grew = |comm: &str| {
        let base = snap(vec![proc(10, 1)]);
        let mut p = proc(10, 1);
        p.comm = comm.into();
        p.cmdline = format!("{comm} gateway.js");
        p.rss_bytes = 40 * 1024 * 1024;
        grown(&base, &snap(vec![p]), &l)
    };
    let rss = |passed: bool| Check {
        name: "rss".into(),
        kind: Kind::Leak,
        unit: "MiB".into(),
        baseline: Some(222.0),
        peak: Some(253.0),
        value: Some(253.0),
        limit: 16.0,
        passed,
        skipped: None,
    };
    let hint = gc_hint(&[rss(false)], &grew("node")).expect("a hint for Node");
    assert!(hint.starts_with("rss: PID 10 is Node"), "{hint}");
    assert!(hint.contains("NODE_OPTIONS"), "{hint}");
    // rss passed, or what grew is not Node: nothing to say
    assert_eq!(gc_hint(&[rss(true)], &grew("node")), None);
    assert_eq!(gc_hint(&[rss(false)], &grew("python3")), None);
}
