//! The layout's promises, checked on the source: `engine/` decides over facts and reads
//! nothing (it names no module that touches files, processes or namespaces), the commands
//! reach a verdict only through `verdict.rs`, and nothing but `main.rs` uses the commands
//! in `cli/`. Run with `--nocapture` to see what each
//! floor imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that read or change the system: the engine may name none of them.
const IO: &[&str] = &[
    "crate::input",
    "crate::action",
    "crate::cli",
    "crate::registry",
    "crate::dockerfile",
    "crate::config",
    "crate::facts",
    "crate::inventory::gather",
    "crate::inventory::loader",
    "crate::inventory::object",
    "crate::inventory::entrypoint",
    "crate::inventory::hostcache",
    "crate::inventory::ldconf",
    "crate::inventory::gpu",
    "crate::inventory::libc",
    "crate::inventory::osrelease",
    "std::fs",
    "std::process",
    "std::env",
    "nix::",
    "libc::",
    "RootFs",
    "Object::load",
    "mpi_host::discover",
];

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The file's code lines, without comments (`//`, `//!`, `///`).
fn code(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or_default().to_string()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// `crate::floor[::module]` names used on a line.
fn crate_paths(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .map(|(at, _)| {
            line[at..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .take(3)
                .collect::<Vec<_>>()
                .join("::")
        })
        .collect()
}

#[test]
fn the_engine_reads_nothing_one_entrance_and_only_main_uses_the_commands() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for file in sources(&src) {
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        let floor = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        for (n, line) in code(&file) {
            for p in crate_paths(&line) {
                let target = p.split("::").nth(1).unwrap_or_default().to_string();
                if target != floor && !target.is_empty() {
                    graph.entry(floor.clone()).or_default().insert(target);
                }
            }
            if rel.starts_with("engine/") && !rel.ends_with("/tests.rs") {
                // The engine's own tests (`#[cfg(test)]` modules, `tests.rs` files) may
                // build fixtures however they like.
                if line.contains("#[cfg(test)]") {
                    break;
                }
                for io in IO {
                    if line.contains(io) {
                        violations.push(format!(
                            "src/{rel}:{n}: the engine names {io}: {}",
                            line.trim()
                        ));
                    }
                }
            }
            let uses_cli = line.contains("crate::cli") || line.contains("containerspec::cli");
            if uses_cli && !rel.starts_with("cli/") && rel != "main.rs" {
                violations.push(format!("src/{rel}:{n}: uses cli/: {}", line.trim()));
            }
        }
    }
    eprintln!("what each floor of src/ imports from the others:");
    for (floor, targets) in &graph {
        eprintln!(
            "  {floor:10} -> {}",
            targets.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // One way into a verdict: the commands (check-bundle, apptainer, the hook) reach the
    // facts only through `verdict`.
    assert!(graph["cli"].contains("verdict"), "{graph:?}");
    assert!(!graph["cli"].contains("facts"), "{graph:?}");
    assert!(graph["verdict"].contains("facts"), "{graph:?}");
}
