//! The module layers of ARCHITECTURE.md, enforced: every top-level module of `src/` sits in
//! one layer and may import only modules of lower layers. An import upward, an import
//! between two modules of one layer (and so any cycle), and a module missing from the table
//! fail the test with the file and line of each offending reference.
//!
//! References are read from the source text the way the code names them: `crate::x` paths
//! anywhere (doc links included), `use crate::{a, b::c}` groups, and `super::x` in a file
//! directly under a top-level module (`src/a.rs`, `src/a/mod.rs`, where `super` is the
//! crate). A file's unit tests (from its first `#[cfg(test)]` on) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first: the same table as ARCHITECTURE.md's "Layers".
const LAYERS: &[&[&str]] = &[
    &["error", "time", "text", "links", "fs"],
    &["config", "audience"],
    &["articles"],
    &["feeds", "templates", "telemetry"],
    &["store"],
    &["publish"],
    &["newsletters"],
    &["mail"],
    &["subscribers", "websub"],
    &["delivery"],
    &["http"],
    &["daemon"],
    &["cli"],
];

/// One reference from a module to another: where it is written, and to what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The top-level module a file under `src/` belongs to (`http` for `http/site.rs`), and
/// whether `super::` in it names the crate root.
fn top_of(rel: &str) -> Option<(String, bool)> {
    let mut parts = rel.split('/');
    let first = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        let name = first.strip_suffix(".rs")?;
        if name == "lib" || name == "main" {
            return None;
        }
        return Some((name.to_string(), true));
    }
    Some((first.to_string(), rest == ["mod.rs"]))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_lowercase() || c == '_'
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every module name `text` references, with its line (1-based).
fn referenced(text: &str, super_is_crate: bool) -> Vec<(usize, String)> {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut prefixes = vec!["crate::"];
    if super_is_crate {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (at, _) in text.match_indices(prefix) {
            // `my_crate::x` is not `crate::x`.
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let after = &text[at + prefix.len()..];
            if after.starts_with('{') {
                // A group: the names at the group's top level (`a`, `b` in `{a, b::{c}}`).
                let mut depth = 0;
                let mut expect_name = true;
                for (i, c) in after.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => expect_name = true,
                        c if depth == 1 && expect_name && is_ident_start(c) => {
                            let name = ident_at(&after[i..]);
                            out.push((line_of(at + prefix.len() + i), name.to_string()));
                            expect_name = false;
                        }
                        c if depth == 1 && !c.is_whitespace() => expect_name = false,
                        _ => {}
                    }
                }
            } else if after.starts_with(is_ident_start) {
                out.push((line_of(at), ident_at(after).to_string()));
            }
        }
    }
    out
}

/// Every reference between two different top-level modules in `files` (path relative to
/// `src/`, contents), for the modules in `known`.
fn references(files: &[(String, String)], known: &BTreeSet<String>) -> Vec<Reference> {
    let mut out = Vec::new();
    for (rel, text) in files {
        let Some((from, super_is_crate)) = top_of(rel) else {
            continue;
        };
        for (line, to) in referenced(text, super_is_crate) {
            if to != from && known.contains(&to) {
                out.push(Reference {
                    file: format!("src/{rel}"),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    out
}

/// What is wrong with `files` against `layers`: one line per offending reference or
/// unplaced module.
fn violations(files: &[(String, String)], layers: &[&[&str]]) -> Vec<String> {
    let layer: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (*m, i)))
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| top_of(rel).map(|(m, _)| m))
        .collect();
    let mut out = Vec::new();
    for m in &modules {
        if !layer.contains_key(m.as_str()) {
            out.push(format!(
                "src/{m}: module `{m}` is in no layer; add it to the table in tests/it/layers.rs and ARCHITECTURE.md"
            ));
        }
    }
    let refs = references(files, &modules);
    let edges: BTreeSet<(&str, &str)> = refs
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    for r in &refs {
        let (Some(&from), Some(&to)) = (layer.get(r.from.as_str()), layer.get(r.to.as_str()))
        else {
            continue;
        };
        if to > from {
            out.push(format!(
                "{}:{}: `{}` (layer {from}) imports `{}` (layer {to}), a higher layer",
                r.file, r.line, r.from, r.to
            ));
        } else if to == from {
            let mutual = if edges.contains(&(r.to.as_str(), r.from.as_str())) {
                format!(": a cycle, `{}` imports `{}` too", r.to, r.from)
            } else {
                String::new()
            };
            out.push(format!(
                "{}:{}: `{}` imports `{}`, both in layer {from}{mutual}",
                r.file, r.line, r.from, r.to
            ));
        }
    }
    out
}

/// Every `.rs` file under `dir`, as (path relative to `root`, contents).
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src/");
            let text = std::fs::read_to_string(&path).expect("source files are UTF-8");
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 20, "src/ read: {} files", files.len());
    let known: BTreeSet<String> = files
        .iter()
        .filter_map(|(r, _)| top_of(r).map(|t| t.0))
        .collect();
    // The table names exactly the modules there are.
    let placed: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|l| l.iter().map(|m| m.to_string()))
        .collect();
    assert_eq!(
        placed.difference(&known).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "modules in the layer table but not in src/"
    );
    // The reader sees the crate's real arrows (these exist today and are allowed).
    let refs = references(&files, &known);
    for (from, to) in [("cli", "daemon"), ("store", "audience"), ("mail", "fs")] {
        assert!(
            refs.iter().any(|r| r.from == from && r.to == to),
            "expected a reference from {from} to {to}"
        );
    }
    let bad = violations(&files, LAYERS);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn upward_imports_and_cycles_in_a_layer_are_reported_with_their_line() {
    let layers: &[&[&str]] = &[&["time", "fs"], &["store"], &["cli"]];
    let file = |p: &str, t: &str| (p.to_string(), t.to_string());
    let files = vec![
        file("time.rs", "//! t\n\nuse crate::fs::write_atomic;\n"),
        file(
            "fs.rs",
            "//! f\nfn f() {\n    crate::time::rfc3339(now);\n}\n",
        ),
        file(
            "store/mod.rs",
            "//! s\nuse crate::{\n    time,\n    cli::BadInput,\n};\n",
        ),
        file("store/ledger.rs", "//! l\nuse super::Store;\n"),
        file(
            "cli/mod.rs",
            "//! c\nuse crate::store::Store;\nuse super::store;\n",
        ),
        file(
            "cli/send.rs",
            "use super::init;\n#[cfg(test)]\nuse crate::time::x;\n",
        ),
        file("daemon.rs", "//! d\nuse my_crate::cli;\n"),
        file("websub.rs", "//! w\nfn f() { super::cli::main() }\n"),
    ];
    let bad = violations(&files, layers);
    assert_eq!(
        bad,
        vec![
            "src/daemon: module `daemon` is in no layer; add it to the table in tests/it/layers.rs and ARCHITECTURE.md",
            "src/websub: module `websub` is in no layer; add it to the table in tests/it/layers.rs and ARCHITECTURE.md",
            "src/time.rs:3: `time` imports `fs`, both in layer 0: a cycle, `fs` imports `time` too",
            "src/fs.rs:3: `fs` imports `time`, both in layer 0: a cycle, `time` imports `fs` too",
            "src/store/mod.rs:4: `store` (layer 1) imports `cli` (layer 2), a higher layer",
        ],
        "{bad:#?}"
    );
}
