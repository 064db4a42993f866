//! The layers of `loadgen/src`, enforced: every `crate::…` path (and `super::…` path) written
//! in a module's files is checked against [`LAYERS`] and [`INNER`], no two modules of one
//! folder import each other in a circle, and what one module owns ([`ONLY_IN`]) appears nowhere
//! else. The scanner is the workspace's `testkit/architecture.rs` (test files, `#[cfg(test)]`
//! modules and comments are not read).
//!
//! A failure names the file and the import. To change a rule, change the table: it is the
//! architecture.

#[path = "../../testkit/architecture.rs"]
mod architecture;

use architecture::{circle_report, layer_violations, sources};

/// Every top-level module of the crate, and the top-level modules it may import (besides
/// itself, std and third-party crates). Read it bottom-up: `report` (the data model and its
/// renderers) and `process` (children, ports, signals) stand on nothing; `cli` is on top and
/// nothing imports it.
const LAYERS: &[(&str, &[&str])] = &[
    ("report", &[]),
    ("process", &[]),
    ("scenario", &["report"]),
    ("observe", &["process", "report"]),
    ("load", &["scenario", "report"]),
    ("verdict", &["scenario", "load", "report"]),
    (
        "target",
        &["scenario", "observe", "load", "process", "report"],
    ),
    (
        "run",
        &[
            "scenario", "observe", "load", "process", "report", "target", "verdict",
        ],
    ),
    ("cli", &["run", "scenario", "process", "report", "verdict"]),
];

/// Inside a folder: (module path, what it must not import). `report::render` is the
/// renderers; the data model does not look at how it is shown, except `Report::render`, which
/// writes the files.
const INNER: &[(&str, &[&str])] = &[
    // the runtime's converters and the data types do not depend on the renderers
    ("report::check", &["report::render"]),
    ("report::sample", &["report::render"]),
    ("report::deployment", &["report::render"]),
    ("report::histogram", &["report::render"]),
    ("report::capacity", &["report::render"]),
    ("report::merge", &["report::render"]),
];

/// What one place alone may write: (text in the code, the modules where it may appear, why).
const ONLY_IN: &[(&str, &[&str], &str)] = &[
    (
        "Check {",
        &["verdict", "report::check"],
        "checks are built by verdict",
    ),
    (
        "Check::threshold(",
        &["verdict"],
        "checks are built by verdict",
    ),
    (
        "process::exit",
        &["process::interrupt"],
        "only the second interrupt exits; cli returns its exit code",
    ),
    (
        "\"--database-url\"",
        &["target::bundled"],
        "mcp-proxy's command line lives in target/bundled.rs",
    ),
    (
        "\"--db-pool-size\"",
        &["target::bundled"],
        "mcp-proxy's command line lives in target/bundled.rs",
    ),
    (
        "\"keys\"",
        &["target::bundled"],
        "mcp-proxy's command line lives in target/bundled.rs",
    ),
    (
        "/mcp/",
        &["target::bundled"],
        "mcp-proxy's paths live in target/bundled.rs",
    ),
    (
        "MCP_PROXY_SECRET_KEY",
        &["target::bundled"],
        "mcp-proxy's environment lives in target/bundled.rs",
    ),
];

/// `INNER` rules: a module path under a folder that must not import another.
fn inner_violations(files: &[architecture::Source]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in files {
        let path = f.module.join("::");
        for (m, banned) in INNER {
            if path != *m && !path.starts_with(&format!("{m}::")) {
                continue;
            }
            for n in &f.imports {
                if banned
                    .iter()
                    .any(|b| n == b || n.starts_with(&format!("{b}::")))
                {
                    bad.push(format!(
                        "{}: `{path}` imports `crate::{n}`",
                        f.file.display()
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let files = sources(env!("CARGO_MANIFEST_DIR"));
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut bad = layer_violations(&files, LAYERS);
    bad.extend(inner_violations(&files));
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn no_two_modules_of_one_folder_import_each_other_in_a_circle() {
    let bad = circle_report(&sources(env!("CARGO_MANIFEST_DIR")));
    assert!(bad.is_empty(), "import circles:\n{}", bad.join("\n"));
}

#[test]
fn what_one_module_owns_appears_nowhere_else() {
    let mut bad = Vec::new();
    for f in sources(env!("CARGO_MANIFEST_DIR")) {
        let path = f.module.join("::");
        for (text, owners, why) in ONLY_IN {
            let owned = owners
                .iter()
                .any(|o| path == *o || path.starts_with(&format!("{o}::")));
            if !owned && f.code.contains(text) {
                bad.push(format!(
                    "{}: `{text}` outside {owners:?} ({why})",
                    f.file.display()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "misplaced:\n{}", bad.join("\n"));
}

#[test]
fn an_inner_rule_catches_its_import() {
    let file = architecture::Source {
        file: "report/check.rs".into(),
        module: vec!["report".into(), "check".into()],
        code: String::new(),
        imports: ["report::render".to_string()].into_iter().collect(),
    };
    let bad = inner_violations(&[file]);
    assert_eq!(bad.len(), 1, "{bad:?}");
}
