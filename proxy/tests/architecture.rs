//! The proxy's layer rules, read from its own source (in the spirit of rust-analyzer's
//! architecture invariants): every `crate::…`/`super::…` path written in `src/` (outside
//! comments and test modules) must point down the layers, and no two modules may import each
//! other, also inside a layer's folder. A new import against these rules fails here, naming
//! file and path. The scanner is the workspace's `testkit/architecture.rs`.

#[path = "../../testkit/architecture.rs"]
mod architecture;

use architecture::{circle_report, layer_violations, sources};

/// Each layer, top-down, and what it may use besides itself: every layer below it and `ops`.
/// `ops` (metrics, memory guard, backoff, planted leaks) uses nothing of the crate; nothing
/// uses `app` (only `main.rs` and `lib.rs`, which are not layers).
const LAYERS: &[(&str, &[&str])] = &[
    // composition root: settings, building and wiring, start, shutdown
    (
        "app",
        &[
            "http", "mcp", "sessions", "upstream", "data", "domain", "ops",
        ],
    ),
    // routes, the authenticated entry, origin guard, refusals → HTTP
    (
        "http",
        &["mcp", "sessions", "upstream", "data", "domain", "ops"],
    ),
    // the rmcp ServerHandler, per-instance services, errors → JSON-RPC
    ("mcp", &["sessions", "upstream", "data", "domain", "ops"]),
    // downstream sessions, their subscriptions and fan-out
    ("sessions", &["upstream", "data", "domain", "ops"]),
    // upstream clients, transports, the connection manager (events up through a trait)
    ("upstream", &["data", "domain", "ops"]),
    // store (the only SQL), caches, usage write-behind, invalidation
    ("data", &["domain", "ops"]),
    // pure: model, seed, routing, catalog, capabilities, keys, payloads
    ("domain", &[]),
    ("ops", &[]),
];

#[test]
fn every_import_points_down_the_layers() {
    let files = sources(env!("CARGO_MANIFEST_DIR"));
    assert!(files.len() > 30, "found only {} files", files.len());
    let bad = layer_violations(&files, LAYERS);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let bad = circle_report(&sources(env!("CARGO_MANIFEST_DIR")));
    assert!(bad.is_empty(), "import circles:\n{}", bad.join("\n"));
}
