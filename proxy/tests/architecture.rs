//! The proxy's layer rules, read from its own source (in the spirit of rust-analyzer's
//! architecture invariants): every `crate::…` path written in `src/` (outside comments and
//! test modules) must point down the layers, and no two modules may import each other, also
//! inside a layer's folder. A new import against these rules fails here, naming file and path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, top-down. A module may use the modules below it and `ops`; `ops`
/// uses nothing of the crate but itself; nothing uses `app` but `main.rs` and `lib.rs`.
const LAYERS: &[&str] = &[
    "app",      // composition root: settings, building and wiring, start, shutdown
    "http",     // routes, the authenticated entry, origin guard, refusals → HTTP
    "mcp",      // the rmcp ServerHandler, per-instance services, errors → JSON-RPC
    "sessions", // downstream sessions, their subscriptions and fan-out
    "upstream", // upstream clients, transports, the connection manager
    "data",     // store (the only SQL), caches, usage write-behind, invalidation
    "domain",   // pure: model, seed, routing, catalog, capabilities, keys, payloads
];
/// Usable from every layer; imports nothing of the crate outside itself.
const BESIDE: &str = "ops";

/// One `crate::` path written in a file of module `from`.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    from: Vec<String>,
    to: Vec<String>,
}

/// The module path of a source file: `src/data/store.rs` → `["data", "store"]`,
/// `src/upstream/mod.rs` → `["upstream"]`, `src/sessions.rs` → `["sessions"]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` module(s).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let line = line.split("//").next().unwrap_or("");
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if pending_cfg_test && trimmed.starts_with("mod ") {
            pending_cfg_test = false;
            if opens > closes {
                skip_depth = Some(depth);
                depth += opens - closes;
            }
            continue; // `mod tests;` (a sibling file) or the opening line of the block
        }
        pending_cfg_test = false;
        depth += opens - closes;
        if let Some(at) = skip_depth {
            if depth <= at {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every `crate::a::b…` path in `code`, as its first two segments (`use crate::{a, b::c}` too).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs = segments(item.trim());
                if !segs.is_empty() {
                    found.push(segs);
                }
            }
        } else {
            let segs = segments(rest);
            if !segs.is_empty() {
                found.push(segs);
            }
        }
    }
    found
}

/// The modules named right after `super::` in `code` (`use super::{a, b::C}` too).
fn super_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        rest = &rest[at + "super::".len()..];
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for item in items {
            if let Some(first) = segments(item.trim()).into_iter().next() {
                found.push(first);
            }
        }
    }
    found
}

/// The first two `::`-separated identifiers at the start of `s`.
fn segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    for _ in 0..2 {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            break;
        }
        rest = &rest[ident.len()..];
        segs.push(ident);
        match rest.strip_prefix("::") {
            Some(r) if !r.starts_with('{') => rest = r,
            _ => break,
        }
    }
    segs
}

fn imports(src: &Path) -> Vec<Import> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut all = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().to_path_buf();
        let name = rel.to_string_lossy().to_string();
        if name == "lib.rs" || name == "main.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let from = module_of(&rel);
        let code = code(&text);
        let mut paths = crate_paths(&code);
        if let [folder, _] = from.as_slice() {
            // `super::x` in `folder/y.rs` is the sibling `crate::folder::x`.
            for sibling in super_paths(&code) {
                paths.push(vec![folder.clone(), sibling]);
            }
        }
        for to in paths {
            all.push(Import {
                file: name.clone(),
                from: from.clone(),
                to,
            });
        }
    }
    all
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Imports against the layer rules, as `file: from → crate::to`.
fn layer_violations(imports: &[Import]) -> Vec<String> {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut bad = Vec::new();
    for i in imports {
        let (from, to) = (i.from[0].as_str(), i.to[0].as_str());
        if from == to {
            continue;
        }
        let allowed = match (from, to) {
            (BESIDE, _) => false,
            (_, BESIDE) => true,
            _ => matches!((rank(from), rank(to)), (Some(f), Some(t)) if t > f),
        };
        if !allowed {
            bad.push(format!(
                "{}: {from} must not use crate::{}",
                i.file,
                i.to.join("::")
            ));
        }
    }
    bad
}

/// Pairs of modules (top-level, or siblings inside one folder) that reach each other.
fn cycles(imports: &[Import]) -> Vec<String> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in imports {
        // Compare at the depth where the two paths part: top-level modules, or two
        // submodules of the same folder.
        let (a, b) = if i.from[0] != i.to[0] {
            (i.from[0].clone(), i.to[0].clone())
        } else if i.from.len() > 1 && i.to.len() > 1 && i.from[1] != i.to[1] {
            (i.from[..2].join("::"), i.to[..2].join("::"))
        } else {
            continue;
        };
        edges.entry(a).or_default().insert(b);
    }
    let mut found = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![start.clone()];
        let mut seen = BTreeSet::new();
        while let Some(m) = stack.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if next == start {
                    found.insert(format!("{start} reaches itself through {m}"));
                } else if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let imports = imports(&src);
    assert!(
        imports.len() > 100,
        "the scan found only {} imports: is it reading src/?",
        imports.len()
    );
    let tops: BTreeSet<&str> = imports.iter().map(|i| i.from[0].as_str()).collect();
    for top in &tops {
        assert!(
            LAYERS.contains(top) || *top == BESIDE,
            "module {top} is in no layer: add it to LAYERS (top-down) or make it part of one"
        );
    }
    let bad = layer_violations(&imports);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = cycles(&imports(&src));
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

/// The checks themselves catch what they are for (a rule that cannot fail proves nothing).
#[test]
fn the_checks_catch_an_upward_import_and_a_cycle() {
    let text = "use crate::mcp::ClientGone;\nuse crate::{ops::metrics, domain::model};\n\
                // use crate::app::state;\n#[cfg(test)]\nmod tests {\n    use crate::app::x;\n}\n";
    let to: Vec<Vec<String>> = crate_paths(&code(text));
    assert_eq!(
        to,
        vec![
            vec!["mcp".to_string()],
            vec!["ops".to_string(), "metrics".to_string()],
            vec!["domain".to_string(), "model".to_string()],
        ]
    );
    assert_eq!(
        super_paths("use super::{relay::Downstream, Era};\nlet x = super::cancel::flush();"),
        ["relay", "cancel"]
    );
    let import = |file: &str, from: &[&str], to: &[&str]| Import {
        file: file.to_string(),
        from: from.iter().map(|s| s.to_string()).collect(),
        to: to.iter().map(|s| s.to_string()).collect(),
    };
    let upward = [import(
        "data/store.rs",
        &["data", "store"],
        &["mcp", "error"],
    )];
    assert_eq!(layer_violations(&upward).len(), 1);
    let from_ops = [import(
        "ops/metrics.rs",
        &["ops", "metrics"],
        &["domain", "model"],
    )];
    assert_eq!(layer_violations(&from_ops).len(), 1);
    let fine = [
        import("mcp/mod.rs", &["mcp"], &["ops", "metrics"]),
        import("http/entry.rs", &["http", "entry"], &["data", "cache"]),
    ];
    assert!(layer_violations(&fine).is_empty());
    let circle = [
        import(
            "data/store.rs",
            &["data", "store"],
            &["data", "invalidation"],
        ),
        import(
            "data/invalidation.rs",
            &["data", "invalidation"],
            &["data", "store"],
        ),
    ];
    assert_eq!(cycles(&circle).len(), 2);
}
