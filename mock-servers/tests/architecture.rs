//! The mock's layer rules, read from its own source: every `crate::…`/`super::…` path written
//! in `src/` (outside comments and test modules) must point down the table, and no two modules
//! may import each other. The scanner is the workspace's `testkit/architecture.rs`.

#[path = "../../testkit/architecture.rs"]
mod architecture;

use architecture::{circle_report, layer_violations, sources};

/// Each module and what it may use besides itself, top-down: the transports, then the one
/// handler and its tools, then sessions and catalogues, then the pure leaves. The test support
/// (`recorder`, `wire`) uses nothing of the mock and nothing of the mock uses it.
const LAYERS: &[(&str, &[&str])] = &[
    // transports: Streamable HTTP (with its fault middleware and control port, and the legacy
    // HTTP+SSE transport) and stdio
    (
        "http",
        &[
            "control",
            "http_faults",
            "handler",
            "tools",
            "faults",
            "paging",
            "session",
            "tls",
            "require_header",
            "legacy_sse",
        ],
    ),
    // the 2024-11-05 HTTP+SSE transport beside /mcp (behind the same middlewares; the faults
    // that play on its stream are handed over by http_faults)
    ("legacy_sse", &["http_faults", "tools"]),
    // the TLS listener (and the test certificates) under the HTTP transport
    ("tls", &[]),
    // the credentials check, the outermost middleware in front of rmcp (before the faults)
    ("require_header", &["faults"]),
    ("control", &["http_faults", "faults"]),
    ("http_faults", &["tools", "faults"]),
    ("stdio", &["tools", "faults", "stats_file"]),
    ("stats_file", &["faults"]),
    // the ServerHandler and the tools (client_requests are tools that ask the client)
    (
        "handler",
        &[
            "tools",
            "client_requests",
            "prompts",
            "resources",
            "session",
            "paging",
            "faults",
        ],
    ),
    ("client_requests", &["tools", "session"]),
    ("tools", &["session", "resources", "paging", "faults"]),
    // sessions and catalogues
    ("session", &["resources"]),
    ("prompts", &["resources"]),
    // pure leaves
    ("resources", &[]),
    ("paging", &[]),
    ("faults", &[]),
    // test support (feature `test-support`)
    ("recorder", &[]),
    ("wire", &[]),
];

#[test]
fn every_import_points_down_the_table() {
    let files = sources(env!("CARGO_MANIFEST_DIR"));
    assert!(files.len() > 15, "found only {} files", files.len());
    let bad = layer_violations(&files, LAYERS);
    assert!(
        bad.is_empty(),
        "imports against the table:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let bad = circle_report(&sources(env!("CARGO_MANIFEST_DIR")));
    assert!(bad.is_empty(), "import circles:\n{}", bad.join("\n"));
}
