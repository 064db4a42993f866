//! The source scanner every crate's `tests/architecture.rs` shares (included with
//! `#[path = "../../testkit/architecture.rs"] mod architecture;`): it reads a crate's `src/`,
//! finds every `crate::…` and `super::…` path written outside comments, `*_tests.rs` files and
//! `#[cfg(test)]` modules, and checks them against the crate's layer table and for circles
//! between the modules of any folder. The rules live in each crate's test; this file only reads.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file of a crate: its path under `src/`, its module path (`src/run/settle.rs` →
/// `run::settle`), its code without comments and tests, and the crate paths it names (at most
/// two segments: `report::sample`).
pub struct Source {
    pub file: PathBuf,
    pub module: Vec<String>,
    pub code: String,
    pub imports: BTreeSet<String>,
}

/// Every file of the crate at `manifest_dir` but `lib.rs`, `main.rs` and `*_tests.rs`.
pub fn sources(manifest_dir: &str) -> Vec<Source> {
    let src = Path::new(manifest_dir).join("src");
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
            let module = module_path(&src, &f);
            let code = code(&std::fs::read_to_string(&f).unwrap());
            let imports = imports(&code, &module);
            let file = f.strip_prefix(&src).unwrap().to_path_buf();
            Source {
                file,
                module,
                code,
                imports,
            }
        })
        .collect()
}

/// Imports against `layers` (each top-level module and the top-level modules it may use,
/// besides itself), and top-level modules the table does not name, as `file: what`.
pub fn layer_violations(files: &[Source], layers: &[(&str, &[&str])]) -> Vec<String> {
    let layers: BTreeMap<&str, &[&str]> = layers.iter().copied().collect();
    let mut bad = Vec::new();
    for f in files {
        let top = f.module[0].as_str();
        let Some(allowed) = layers.get(top) else {
            bad.push(format!(
                "{}: module `{top}` is not in the LAYERS table",
                f.file.display()
            ));
            continue;
        };
        for n in &f.imports {
            let target = n.split("::").next().unwrap();
            if target != top && !allowed.contains(&target) {
                bad.push(format!(
                    "{}: `{top}` imports `crate::{n}` (allowed: {allowed:?})",
                    f.file.display()
                ));
            }
        }
    }
    bad
}

/// Every circle between the modules of one folder (the crate root included), each named with
/// the files and imports that make it.
pub fn circle_report(files: &[Source]) -> Vec<String> {
    let mut parents: BTreeSet<Vec<String>> = BTreeSet::new();
    parents.insert(Vec::new());
    for f in files {
        for i in 1..f.module.len() {
            parents.insert(f.module[..i].to_vec());
        }
    }
    let mut bad = Vec::new();
    for parent in &parents {
        for circle in circles(&level_edges(files, parent)) {
            let folder = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            let witnesses: Vec<String> = files
                .iter()
                .filter(|f| {
                    f.module.len() > parent.len()
                        && f.module[..parent.len()] == parent[..]
                        && circle.contains(&f.module[parent.len()])
                })
                .flat_map(|f| witnesses(f, parent, &circle))
                .collect();
            bad.push(format!(
                "in {folder}: {} import each other\n{}",
                circle.join(" → "),
                witnesses.join("\n")
            ));
        }
    }
    bad
}

/// The imports of `f` that point at another module of `circle` under `parent`.
fn witnesses(f: &Source, parent: &[String], circle: &[String]) -> Vec<String> {
    let from = &f.module[parent.len()];
    f.imports
        .iter()
        .filter(|n| {
            let segs: Vec<&str> = n.split("::").collect();
            segs.len() > parent.len()
                && circle.iter().any(|c| c == segs[parent.len()] && c != from)
                && segs[..parent.len()] == parent.iter().map(String::as_str).collect::<Vec<_>>()[..]
        })
        .map(|n| format!("  {}: crate::{n}", f.file.display()))
        .collect()
}

/// `src/run/settle.rs` → `run::settle`; `src/run/mod.rs` → `run`.
pub fn module_path(src: &Path, file: &Path) -> Vec<String> {
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
pub fn code(text: &str) -> String {
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
pub fn imports(code: &str, here: &[String]) -> BTreeSet<String> {
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
            continue; // `other_crate::`, not ours
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

/// Circles in `edges` (each printed once, as the modules on it).
pub fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
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
fn level_edges(files: &[Source], parent: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let depth = parent.len();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for Source {
        module: here,
        imports: names,
        ..
    } in files
    {
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

/// The scanner itself sees what it is for (a rule that cannot fail proves nothing); every
/// crate that includes this file runs it.
#[test]
fn the_scanner_sees_a_violation_and_a_circle() {
    // a `use` group, a path in an expression and `super::`; comments and test code are not read
    let code = code(
        "use crate::{load::Plan, report};\nlet x = crate::run::HARNESS_ERROR;\n\
         use super::sample::Sample;\n// crate::cli in a comment\n\
         #[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n",
    );
    let module = vec!["report".to_string(), "check".to_string()];
    let names = imports(&code, &module);
    let expected: BTreeSet<String> = ["load", "report", "run", "report::sample"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);
    let files = vec![Source {
        file: PathBuf::from("report/check.rs"),
        module,
        code,
        imports: names,
    }];
    let layers: &[(&str, &[&str])] = &[("report", &[]), ("load", &["report"])];
    let bad = layer_violations(&files, layers);
    assert!(
        bad.iter()
            .any(|b| b.contains("report/check.rs") && b.contains("crate::load")),
        "{bad:?}"
    );
    assert!(bad.iter().any(|b| b.contains("crate::run")), "{bad:?}");
    assert!(layer_violations(&files, &[("report", &["load", "run"])]).is_empty());
    // a → b → a is a circle; c → a is not
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("a".into());
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
    // two files of one folder that import each other are reported, with the imports
    let file = |m: &str, to: &str| Source {
        file: PathBuf::from(format!("data/{m}.rs")),
        module: vec!["data".into(), m.into()],
        code: String::new(),
        imports: [format!("data::{to}")].into_iter().collect(),
    };
    let report = circle_report(&[file("store", "cache"), file("cache", "store")]);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].contains("data/store.rs: crate::data::cache"),
        "{report:?}"
    );
}
