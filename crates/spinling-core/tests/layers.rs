//! The core's layers, checked from its source: `web` → `domain` → `store` → the foundations
//! at the top of `src/` (`error`, `id`, `time`, `redacted`), imports pointing down only, and
//! no cycle between any two modules.
//!
//! An import is any `crate::…` or `super::…` path in a module's own code (its unit tests,
//! `*_tests.rs` and the `testing` helpers are left out: a test may build fixtures from any
//! layer). Comments are left out too, so a doc link is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Each layer's rank: a module may import only modules of its rank or below.
fn rank(module: &Module) -> u8 {
    match module.first().map(String::as_str) {
        Some("web") => 3,
        Some("domain") => 2,
        Some("store") => 1,
        _ => 0,
    }
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

/// Every module of `src/` with its own code, by path (`web/api/mod.rs` is `web::api`).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let file = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.extension().is_none_or(|e| e != "rs")
                || file.ends_with("_tests")
                || file == "testing"
                || file == "tests"
                || file == "lib"
            {
                continue;
            }
            let mut module: Module = path
                .parent()
                .unwrap()
                .strip_prefix(src)
                .unwrap()
                .iter()
                .map(|s| s.to_string_lossy().to_string())
                .collect();
            if file != "mod" {
                module.push(file);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            found.insert(module, own_code(&text));
        }
    }
    found
}

/// A module's code without its comments and without its inline unit tests (which, here,
/// always close a file).
fn own_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or("");
            if next.starts_with("mod ") && next.ends_with('{') {
                break;
            }
            // `#[cfg(test)] mod tests;` in another file, or a test-only item: skip its line.
            lines.next();
            continue;
        }
        let without_comment = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        code.push_str(without_comment);
        code.push('\n');
    }
    code
}

/// The paths a piece of code names from `crate::` or `super::`, as written from `module`,
/// made absolute (`use crate::{a, b::{c, d}}` names `a`, `b::c` and `b::d`).
fn named_paths(module: &Module, code: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start).map(|i| i + from) {
            from = at + start.len();
            let preceded_by_ident = at > 0
                && (bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':');
            if preceded_by_ident {
                continue;
            }
            let mut base: Module = if start == "crate::" {
                Vec::new()
            } else {
                // `super` of `web/api/aliases.rs` is `web::api`; of `web/api/mod.rs`, `web`.
                let mut parent = module.clone();
                parent.pop();
                parent
            };
            let mut rest = &code[from..];
            // Further `super::` segments climb on.
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            expand(&base, rest, &mut paths);
        }
    }
    paths
}

/// Expands one path (or `{…}` group) starting at `text`, relative to `base`.
fn expand(base: &Module, text: &str, out: &mut Vec<Module>) {
    let mut path = base.clone();
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        let item = group[item_start..i].trim();
                        if !item.is_empty() && item != "self" {
                            expand(&path, item, out);
                        } else if item == "self" {
                            out.push(path.clone());
                        }
                        item_start = i + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            out.push(path);
            return;
        }
        path.push(ident.clone());
        rest = &rest[ident.len()..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => {
                out.push(path);
                return;
            }
        }
    }
}

/// The module a path lands in: its longest prefix that is a module.
fn module_of(path: &Module, known: &BTreeMap<Module, String>) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains_key(prefix))
}

fn imports() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let mut graph = BTreeMap::new();
    for (module, code) in &known {
        let mut to = BTreeSet::new();
        for path in named_paths(module, code) {
            if let Some(target) = module_of(&path, &known) {
                if &target != module {
                    to.insert(target);
                }
            }
        }
        graph.insert(module.clone(), to);
    }
    graph
}

#[test]
fn imports_point_down_the_layers_only() {
    let mut upward = Vec::new();
    for (module, targets) in imports() {
        for target in targets {
            let foundation_reaching_up = rank(&module) == 0 && rank(&target) > 0;
            if rank(&target) > rank(&module) || foundation_reaching_up {
                upward.push(format!("{} imports {}", name(&module), name(&target)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up a layer:\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn no_two_modules_import_each_other_even_through_others() {
    let graph = imports();
    let mut cycles = BTreeSet::new();
    for start in graph.keys() {
        // A path from `start` back to itself, found depth first.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in &graph[&at] {
                if next == start {
                    let mut cycle: Vec<String> = trail.iter().map(name).collect();
                    // One name per cycle, whichever module it is found from.
                    let first = cycle.iter().min().unwrap().clone();
                    let turn = cycle.iter().position(|m| *m == first).unwrap();
                    cycle.rotate_left(turn);
                    cycle.push(first);
                    cycles.insert(cycle.join(" → "));
                } else if seen.insert(next.clone()) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "{} module cycles:\n  {}",
        cycles.len(),
        cycles.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn the_checker_reads_grouped_and_relative_imports() {
    let module: Module = vec!["web".into(), "api".into(), "aliases".into()];
    let code = "use crate::{domain::{aliases, versions::Version}, error::ApiError};\n\
                use super::{page_of, Env};\nfn f() { crate::store::db::run(); }";
    let paths: BTreeSet<String> = named_paths(&module, code).iter().map(name).collect();
    let want: BTreeSet<String> = [
        "domain::aliases",
        "domain::versions::Version",
        "error::ApiError",
        "web::api::page_of",
        "web::api::Env",
        "store::db::run",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(paths, want);
}
