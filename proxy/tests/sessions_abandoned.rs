//! Contract (issue 5): 1,000 sessions opened and never DELETEd are reaped after the idle TTL,
//! and the process's fds, TCP sockets and tokio tasks return to their baseline. (Own file: it
//! counts process-wide resources, so no other test may run beside it.)

mod common;

use std::time::Duration;

use common::sessions::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_abandoned_sessions_are_reaped_after_the_idle_ttl() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.session_idle_timeout = Duration::from_millis(500);
    })
    .await;
    let url = proxy.url("demo");
    let state = proxy.proxy.state.clone();
    // warm up lazily created state, and let that session be reaped too
    open_session(&http(), &url).await;
    assert!(eventually(Duration::from_secs(5), || state.sessions.count() == 0).await);
    let baseline = stable_resources().await;

    let http = http();
    let mut peak = 0;
    for chunk in 0..10 {
        let opens = (0..100).map(|_| open_session(&http, &url));
        futures::future::join_all(opens).await;
        peak = peak.max(state.sessions.count());
        let _ = chunk;
    }
    let during = Resources::now();
    drop(http);
    eprintln!("1000 sessions opened; live sessions peak {peak}");
    assert!(peak >= 100, "sessions were live: {peak}");
    assert!(
        eventually(Duration::from_secs(10), || state.sessions.count() == 0).await,
        "{} sessions never reaped",
        state.sessions.count()
    );
    assert_eq!(state.session_count().await, 0, "rmcp still holds sessions");
    let after = settle_within(&baseline, Duration::from_secs(10)).await;
    eprintln!(
        "abandoned sessions: baseline {}\n  during   {}\n  after    {}",
        baseline.line(),
        during.line(),
        after.line()
    );
    let grew = after.growth_over(&baseline);
    assert!(grew.is_empty(), "grew over the baseline: {grew:?}");
    proxy.shutdown().await;
}
