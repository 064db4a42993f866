//! The layers of `loadgen/src`, enforced: every `crate::…` path (and `super::…` path) written
//! in a module's files is checked against [`LAYERS`], and no two modules of one folder import
//! each other in a circle. Test files (`*_tests.rs`) and `#[cfg(test)]` modules are skipped;
//! comments are ignored.
//!
//! A failure names the file and the import. To change a rule, change the table: it is the
//! architecture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
];

/// `src/run/settle.rs` → `run::settle`; `src/run/mod.rs` → `run`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without `#[cfg(test)] mod x { … }` blocks.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // skip the attributes, then the module: a `mod x;` line or a braced block
            while let Some(next) = lines.peek() {
                if next.trim_start().starts_with("#[") {
                    lines.next();
                } else {
                    break;
                }
            }
            if let Some(item) = lines.next()
                && item.contains('{')
            {
                let mut depth = brace_depth(item);
                while depth > 0 {
                    let Some(l) = lines.next() else { break };
                    depth += brace_depth(l);
                }
            }
            continue;
        }
        let code = match line.find(" // ") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn brace_depth(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The crate modules a piece of code names: `crate::a::b`, `crate::{a, b::c}` and
/// `super::x` (resolved against `here`), as full paths of up to two segments.
fn imports(code: &str, here: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty() && p.chars().next().unwrap().is_ascii_lowercase())
            .collect()
    };
    let mut push = |segs: Vec<String>| {
        if !segs.is_empty() {
            out.insert(segs.into_iter().take(2).collect::<Vec<_>>().join("::"));
        }
    };
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `mcp_loadgen_crate::`, not ours
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                push(ident(item.trim()));
            }
        } else {
            push(ident(rest));
        }
    }
    // `super::` from `a/b.rs` (module `a::b`) is `a`; from `a/b/mod.rs` (also `a::b`) too
    let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
    for (i, _) in code.match_indices("super::") {
        if i > 0 && code[..i].ends_with("::") {
            continue; // `super::super::` is rare; its first `super::` is enough
        }
        let rest = &code[i + "super::".len()..];
        let mut segs = parent.clone();
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let mut s = parent.clone();
                s.extend(ident(item.trim()));
                push(s);
            }
        } else {
            segs.extend(ident(rest));
            push(segs);
        }
    }
    out
}

/// Every file's code: (file, its module path, its code without comments and tests).
fn sources() -> Vec<(PathBuf, Vec<String>, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            !name.ends_with("_tests.rs") && name != "lib.rs" && name != "main.rs"
        })
        .map(|f| {
            let here = module_path(&src, &f);
            let text = std::fs::read_to_string(&f).unwrap();
            let rel = f.strip_prefix(&src).unwrap().to_path_buf();
            (rel, here, code(&text))
        })
        .collect()
}

/// Every file's imports: (file, its module path, the crate paths it names).
fn graph() -> Vec<(PathBuf, Vec<String>, BTreeSet<String>)> {
    sources()
        .into_iter()
        .map(|(file, here, code)| {
            let names = imports(&code, &here);
            (file, here, names)
        })
        .collect()
}

fn layer_violations(files: &[(PathBuf, Vec<String>, BTreeSet<String>)]) -> Vec<String> {
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut bad = Vec::new();
    for (file, here, names) in files {
        let top = here[0].as_str();
        let Some(allowed) = layers.get(top) else {
            bad.push(format!(
                "{}: module `{top}` is not in the LAYERS table",
                file.display()
            ));
            continue;
        };
        for n in names {
            let target = n.split("::").next().unwrap();
            if target != top && !allowed.contains(&target) {
                bad.push(format!(
                    "{}: `{top}` imports `crate::{n}` (allowed: {allowed:?})",
                    file.display()
                ));
            }
        }
        let path = here.join("::");
        for (m, banned) in INNER {
            if path == *m || path.starts_with(&format!("{m}::")) {
                for n in names {
                    if banned
                        .iter()
                        .any(|b| n == b || n.starts_with(&format!("{b}::")))
                    {
                        bad.push(format!("{}: `{path}` imports `crate::{n}`", file.display()));
                    }
                }
            }
        }
    }
    bad
}

/// Circles in `edges` (each printed once, as the modules on it).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        let n = t.index.len();
        t.index.insert(v.to_string(), n);
        t.low.insert(v.to_string(), n);
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        for w in t.edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// Edges between the modules one level below `parent` (`[]`: the top-level modules), each
/// with the file and import that makes it.
fn level_edges(
    files: &[(PathBuf, Vec<String>, BTreeSet<String>)],
    parent: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let depth = parent.len();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, here, names) in files {
        if here.len() <= depth || here[..depth] != *parent {
            continue;
        }
        let from = here[depth].clone();
        edges.entry(from.clone()).or_default();
        for n in names {
            let segs: Vec<&str> = n.split("::").collect();
            if segs.len() > depth
                && segs[..depth] == parent.iter().map(String::as_str).collect::<Vec<_>>()[..]
                && segs[depth] != from
            {
                edges
                    .entry(from.clone())
                    .or_default()
                    .insert(segs[depth].to_string());
            }
        }
    }
    edges
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let files = graph();
    assert!(files.len() > 20, "found only {} files", files.len());
    let bad = layer_violations(&files);
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn no_two_modules_of_one_folder_import_each_other_in_a_circle() {
    let files = graph();
    let mut parents: BTreeSet<Vec<String>> = BTreeSet::new();
    parents.insert(Vec::new());
    for (_, here, _) in &files {
        for i in 1..here.len() {
            parents.insert(here[..i].to_vec());
        }
    }
    let mut bad = Vec::new();
    for parent in &parents {
        for circle in circles(&level_edges(&files, parent)) {
            let folder = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            // name the files and imports on the circle
            let witnesses: Vec<String> = files
                .iter()
                .filter(|(_, here, _)| {
                    here.len() > parent.len()
                        && here[..parent.len()] == parent[..]
                        && circle.contains(&here[parent.len()])
                })
                .flat_map(|(file, here, names)| {
                    let from = &here[parent.len()];
                    names
                        .iter()
                        .filter(|n| {
                            let segs: Vec<&str> = n.split("::").collect();
                            segs.len() > parent.len()
                                && circle.iter().any(|c| c == segs[parent.len()] && c != from)
                                && segs[..parent.len()]
                                    == parent.iter().map(String::as_str).collect::<Vec<_>>()[..]
                        })
                        .map(|n| format!("  {}: crate::{n}", file.display()))
                        .collect::<Vec<_>>()
                })
                .collect();
            bad.push(format!(
                "in {folder}: {} import each other\n{}",
                circle.join(" → "),
                witnesses.join("\n")
            ));
        }
    }
    assert!(bad.is_empty(), "import circles:\n{}", bad.join("\n"));
}

#[test]
fn what_one_module_owns_appears_nowhere_else() {
    let mut bad = Vec::new();
    for (file, here, code) in sources() {
        let path = here.join("::");
        for (text, owners, why) in ONLY_IN {
            let owned = owners
                .iter()
                .any(|o| path == *o || path.starts_with(&format!("{o}::")));
            if !owned && code.contains(text) {
                bad.push(format!(
                    "{}: `{text}` outside {owners:?} ({why})",
                    file.display()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "misplaced:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_a_violation_and_a_circle() {
    // the parser reads a `use` group, a path in an expression and `super::`
    let names = imports(
        &code(
            "use crate::{load::Plan, report};\nlet x = crate::run::HARNESS_ERROR;\nuse super::sample::Sample;\n// crate::cli in a comment\n",
        ),
        &["report".into(), "check".into()],
    );
    let expected: BTreeSet<String> = ["load", "report", "run", "report::sample"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);
    // report importing load is a violation, named with its file
    let files = vec![(
        PathBuf::from("report/check.rs"),
        vec!["report".to_string(), "check".to_string()],
        names,
    )];
    let bad = layer_violations(&files);
    assert!(
        bad.iter()
            .any(|b| b.contains("report/check.rs") && b.contains("crate::load")),
        "{bad:?}"
    );
    assert!(bad.iter().any(|b| b.contains("crate::run")), "{bad:?}");
    // a → b → a is a circle
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("a".into());
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
    // test code is not read
    assert!(
        !code("#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\nfn f() {}\n").contains("cli")
    );
}
