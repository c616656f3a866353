//! What the commands print is what `docs/schema/` declares: every field of the real JSON
//! of `inspect`, `host`, `check-bundle` (compatible with a plan and its environment, and
//! refused), `apptainer check` and `labels --check` is a property of the schema generated
//! from the types (`src/cli/schema.rs` keeps those files equal to the types).

use std::collections::BTreeSet;
use std::path::Path;

use containerspec::cli::schema::{property_paths, schemas};

use crate::util::{cached_rootfs, scratch};

/// The property paths of a printed JSON value (`plan.mounts[].kind`).
fn printed_paths(v: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                printed_paths(x, &p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for x in items {
                printed_paths(x, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn check(name: &str, printed: &serde_json::Value) {
    let schemas = schemas();
    let schema = &schemas.iter().find(|(n, _)| *n == name).unwrap().1;
    let declared = property_paths(schema);
    // A map keyed by data (`labels`) is declared as `labels.*`.
    let maps: Vec<String> = declared
        .iter()
        .filter_map(|p| p.strip_suffix(".*").map(|m| format!("{m}.")))
        .collect();
    let mut seen = BTreeSet::new();
    printed_paths(printed, "", &mut seen);
    let undeclared: Vec<&String> = seen
        .iter()
        .filter(|p| !declared.contains(*p) && !maps.iter().any(|m| p.starts_with(m.as_str())))
        .collect();
    assert!(
        undeclared.is_empty(),
        "{name}: printed but not in docs/schema/{name}: {undeclared:?}"
    );
    assert!(
        seen.len() > 10,
        "{name}: too little printed to check: {seen:?}"
    );
}

fn bundle(dir: &Path, rootfs: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": rootfs},
        "process": {"cwd": "/", "args": [crate::inject_pairs::PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.display().to_string()
}

#[test]
fn printed_json_is_declared() {
    let (Some(bookworm), Some(bullseye)) = (
        cached_rootfs("bookworm-mpich"),
        cached_rootfs("bullseye-mpich"),
    ) else {
        return;
    };
    let dir = scratch("schema");
    let (b_new, b_old) = (
        bundle(&dir.join("new"), &bookworm),
        bundle(&dir.join("old"), &bullseye),
    );
    let host = bookworm.to_str().unwrap();
    let run = |args: &[&str], ok: &[i32]| -> serde_json::Value {
        let out = crate::util::containerspec(args);
        assert!(
            ok.contains(&out.status.code().unwrap_or(-1)),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    check(
        "inspect.json",
        &run(&["inspect", &b_new, "--all", "--json"], &[0]),
    );
    check("host.json", &run(&["host", "--root", host, "--json"], &[0]));
    let compatible = run(
        &["check-bundle", &b_new, "--host-root", host, "--json"],
        &[0],
    );
    assert!(!compatible["plan"]["mounts"].as_array().unwrap().is_empty());
    check("check-bundle.json", &compatible);
    let refused = run(
        &["check-bundle", &b_old, "--host-root", host, "--json"],
        &[1],
    );
    assert!(!refused["findings"].as_array().unwrap().is_empty());
    check("check-bundle.json", &refused);
    // A sandbox directory needs no Apptainer to be checked.
    let sandbox = run(
        &[
            "apptainer",
            "check",
            bookworm.to_str().unwrap(),
            "--host-root",
            host,
            "--inject",
            "mpi",
            "--json",
        ],
        &[0],
    );
    check("apptainer-check.json", &sandbox);
    // The labels and their comparison (the bundle carries the inject annotation only).
    check(
        "labels.json",
        &run(&["labels", &b_new, "--check", "--json"], &[0]),
    );
    // Which nodes fit, one refused with what it lacks.
    let hosts = dir.join("hosts");
    std::fs::create_dir_all(&hosts).unwrap();
    for (name, root) in [("new", &bookworm), ("old", &bullseye)] {
        let desc = run(&["host", "--root", root.to_str().unwrap(), "--json"], &[0]);
        std::fs::write(hosts.join(format!("{name}.json")), desc.to_string()).unwrap();
    }
    let matched = run(
        &[
            "match",
            &b_new,
            &b_old,
            "--inject",
            "mpi",
            "--hosts",
            hosts.to_str().unwrap(),
            "--json",
        ],
        &[0],
    );
    // The bullseye image does not fit the bookworm host (its MPICH needs a newer glibc).
    let nodes = matched["images"][1]["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| !n["missing"].as_array().unwrap().is_empty()),
        "{matched}"
    );
    check("match.json", &matched);
}
