//! `MCP_LOADGEN_PG_BINDIR` / `MCP_LOADGEN_HAPROXY_BIN` come first, and a missing PostgreSQL
//! or HAProxy is an error naming the install command. Alone in its file: it sets environment
//! variables, which no other test in this process may be reading at the same time.

use mcp_loadgen::target::deployment::haproxy::{self, Haproxy, HaproxyOptions};
use mcp_loadgen::target::deployment::postgres::{self, Postgres};

#[test]
fn a_missing_binary_names_the_override_and_the_install_command() {
    // SAFETY: the only test in this binary; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var(postgres::BINDIR_ENV, "/nonexistent");
        std::env::set_var(haproxy::BIN_ENV, "/nonexistent");
    }
    let e = format!("{:#}", Postgres::locate().unwrap_err());
    for want in [
        "MCP_LOADGEN_PG_BINDIR=/nonexistent",
        "apt-get install -y postgresql",
    ] {
        assert!(e.contains(want), "`{want}` not in: {e}");
    }
    let e = format!("{:#}", Haproxy::locate().unwrap_err());
    for want in [
        "MCP_LOADGEN_HAPROXY_BIN=/nonexistent",
        "apt-get install -y haproxy",
    ] {
        assert!(e.contains(want), "`{want}` not in: {e}");
    }

    // start fails the same way, before it writes anything
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(Postgres::start(dir.path()))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(e.contains("apt-get install -y postgresql"), "{e}");
    let e = rt
        .block_on(Haproxy::start(
            dir.path(),
            "127.0.0.1:1".parse().unwrap(),
            &[("r1".into(), "127.0.0.1:2".parse().unwrap())],
            &HaproxyOptions::default(),
        ))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(e.contains("apt-get install -y haproxy"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
