//! The output contract, pinned: the human and JSON output of the key verdicts on real
//! root filesystems (six container × host MPI pairs, among them two refusals; the
//! Apptainer report of a SIF, compatible and refused; the inventory of a rootfs) is
//! compared with the snapshots in `tests/integration/snapshots/`. A change of wording,
//! field or order is a visible diff in review, never a silent one.
//!
//! Only what differs between machines is replaced before comparing: the directory of
//! the cached root filesystems (`[ROOTS]`), the scratch bundle (`[BUNDLE]`) and the
//! Apptainer cache (`[APPTAINER]`). The host CPU is fixed with `--host-target`.
//!
//! After an intended change: `INSTA_UPDATE=always cargo test --release snapshot`, then
//! review the diff of the `.snap` files (or use `cargo insta review`).

use std::path::Path;
use std::process::Output;

use crate::util::{cached_rootfs, containerspec, rootfs_cache, scratch};

/// The six pairs: same release, an older host (MPICH and Open MPI), a newer host whose
/// libraries need a newer glibc (refused), the other ABI family (refused), and a newer
/// Open MPI host.
const PAIRS: &[(&str, &str)] = &[
    ("bookworm-mpich", "bookworm-mpich"),
    ("bookworm-mpich", "bullseye-mpich"),
    ("bullseye-mpich", "bookworm-mpich"),
    ("bookworm-mpich", "bookworm-openmpi"),
    ("bookworm-openmpi", "bullseye-openmpi"),
    ("bullseye-openmpi", "bullseye-openmpi"),
];

/// Replaces the machine-specific paths in `text`.
fn normalized(text: &str, replace: &[(&Path, &str)]) -> String {
    let mut text = text.to_string();
    for (path, token) in replace {
        text = text.replace(&path.display().to_string(), token);
    }
    text
}

/// The exit status and stdout of a run, as one snapshot body. Stderr must hold no panic.
fn body(out: &Output, replace: &[(&Path, &str)]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    format!(
        "exit {}\n{}",
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        normalized(&String::from_utf8_lossy(&out.stdout), replace)
    )
}

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings
}

#[test]
fn check_bundle_output_of_the_mpi_pairs() {
    let roots = rootfs_cache();
    for (container, host) in PAIRS {
        let (Some(rootfs), Some(host_root)) = (cached_rootfs(container), cached_rootfs(host))
        else {
            return;
        };
        let dir = scratch(&format!("snapshot-{container}-on-{host}"));
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": rootfs},
            "process": {"cwd": "/", "args": [crate::inject_pairs::PROGRAM],
                        "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
            "annotations": {"org.supercontainers.inject": "mpi"}
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let replace: [(&Path, &str); 2] = [(&dir, "[BUNDLE]"), (&roots, "[ROOTS]")];
        let bundle = dir.to_str().unwrap();
        let host_root = host_root.to_str().unwrap();
        let args = [
            "check-bundle",
            bundle,
            "--host-root",
            host_root,
            "--host-target",
            "x86_64_v2",
            "--no-cache",
        ];
        let text = containerspec(&args);
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let json = containerspec(&with_json);
        assert_eq!(
            text.status.code(),
            json.status.code(),
            "{container} on {host}"
        );
        settings().bind(|| {
            insta::assert_snapshot!(
                format!("check_bundle__{container}_on_{host}"),
                body(&text, &replace)
            );
            insta::assert_snapshot!(
                format!("check_bundle_json__{container}_on_{host}"),
                body(&json, &replace)
            );
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn inspect_output_of_a_rootfs() {
    let Some(rootfs) = cached_rootfs("bookworm-openmpi") else {
        return;
    };
    let roots = rootfs_cache();
    let replace: [(&Path, &str); 1] = [(&roots, "[ROOTS]")];
    let target = rootfs.to_str().unwrap();
    let text = containerspec(&["inspect", target]);
    let json = containerspec(&["inspect", target, "--json"]);
    // The last line judges this machine's CPU, which differs between machines: it is
    // checked here and left out of the snapshot.
    let full = body(&text, &replace);
    let (rest, cpu_line) = full
        .rsplit_once("\n  on this cpu   ")
        .unwrap_or((&full, ""));
    let name = containerspec::inventory::cpu::host_cpu().microarchitecture;
    assert!(cpu_line.starts_with(&name), "{full}");
    settings().bind(|| {
        insta::assert_snapshot!("inspect__bookworm-openmpi", rest);
        insta::assert_snapshot!("inspect_json__bookworm-openmpi", body(&json, &replace));
    });
}

#[test]
fn apptainer_check_report_of_a_sif() {
    let Some((_, sif, _)) = crate::apptainer::rig("bullseye-mpich") else {
        return;
    };
    let roots = rootfs_cache();
    let apptainer = sif.parent().and_then(Path::parent).unwrap().to_path_buf();
    let replace: [(&Path, &str); 2] = [(&apptainer, "[APPTAINER]"), (&roots, "[ROOTS]")];
    for host in ["bullseye-mpich", "bookworm-mpich"] {
        let Some(host_root) = cached_rootfs(host) else {
            return;
        };
        let args = [
            "apptainer",
            "check",
            "--inject",
            "mpi",
            "--host-root",
            host_root.to_str().unwrap(),
            "--host-target",
            "x86_64_v2",
            "--no-cache",
            sif.to_str().unwrap(),
        ];
        let text = containerspec(&args);
        let mut with_json = args.to_vec();
        with_json.insert(2, "--json");
        let json = containerspec(&with_json);
        assert_eq!(text.status.code(), json.status.code(), "SIF on {host}");
        settings().bind(|| {
            insta::assert_snapshot!(
                format!("apptainer_check__bullseye-mpich_sif_on_{host}"),
                body(&text, &replace)
            );
            insta::assert_snapshot!(
                format!("apptainer_check_json__bullseye-mpich_sif_on_{host}"),
                body(&json, &replace)
            );
        });
    }
}
