//! Jobs go where their image runs, on a real Slurm (the rig in `slurm_rig`): this node is
//! declared with the features `host --format slurm` publishes for it, and more nodes
//! with the features published for the test roots as hosts. For each image,
//! `sbatch --constraint "$(containerspec match IMAGE)"` must do what `match
//! --slurm-conf` predicts from the same slurm.conf, and that must agree with
//! `check-bundle` on this node: the job runs here when the image runs here, waits for a
//! declared node that fits when only such a node fits, and is refused by slurmctld at
//! submission when no node fits. Then the `node_features/helpers` plugin takes the
//! features from the helper in `contrib/slurm`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::clusters::{MPI_PROGRAM, bundle, fits_by_node, root_descriptions, stdout_of};
use crate::slurm_rig::{NodeSpec, Slurm, assert_refused, assert_runs_on_real_node, output_arg};
use crate::util::{TempDir, cached_rootfs, containerspec, rootfs_cache};

/// The hosts declared beside this node, by their test root.
const DECLARED: &[&str] = &[
    "trixie-mpich",
    "bookworm-openmpi",
    "trixie-openmpi",
    "bookworm-arm64",
];

/// `match IMAGE --slurm-conf CONF`: which nodes fit.
fn predicted(image: &str, inject: &str, conf: &Path) -> BTreeMap<String, bool> {
    fits_by_node(&[
        image,
        "--inject",
        inject,
        "--slurm-conf",
        conf.to_str().unwrap(),
    ])
}

/// The declared nodes: a `NodeName=` line per test root, from `host --format slurm`.
fn declared(hosts: &BTreeMap<String, PathBuf>) -> Vec<NodeSpec> {
    DECLARED
        .iter()
        .map(|name| {
            let line = stdout_of(&[
                "host",
                "--format",
                "slurm",
                "--hosts",
                hosts[*name].to_str().unwrap(),
            ]);
            let features = line
                .trim()
                .strip_prefix(&format!("NodeName={name} Features="))
                .unwrap_or_else(|| panic!("{line}"))
                .split(',')
                .map(str::to_string)
                .collect();
            NodeSpec {
                name: name.to_string(),
                features,
            }
        })
        .collect()
}

#[test]
fn sbatch_with_the_match_constraint_runs_where_the_image_runs_and_is_refused_where_none_fits() {
    let dir = TempDir::new("slurm-placement");
    let Some(hosts) = root_descriptions(&dir.path().join("hosts")) else {
        return;
    };
    let real = stdout_of(&["host", "--format", "slurm"]);
    let real: Vec<String> = real
        .trim()
        .strip_prefix("Features=")
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let Some(slurm) = Slurm::start_with(&real, &declared(&hosts)) else {
        return;
    };
    let base = rootfs_cache().join("../registry/layouts/base");
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for (root, inject) in [
        ("bookworm-mpich", "mpi"),
        ("trixie-openmpi", "mpi"),
        ("bullseye-mpich", "mpi"),
        ("bookworm-arm64", "none"),
        ("trixie-mpich", "none"),
    ] {
        let b = bundle(
            &dir.path().join(format!("bundle-{root}")),
            &cached_rootfs(root).unwrap(),
            MPI_PROGRAM,
        );
        cases.push((root.to_string(), b.display().to_string(), inject));
    }
    // An image without MPI, asked to take the host's: no node can run it.
    if base.join("index.json").exists() {
        cases.push((
            "base:bookworm".into(),
            format!("{}:bookworm", base.display()),
            "mpi",
        ));
    } else {
        assert!(!crate::util::missing(
            "the registry rig's layouts are not built: run tests/rigs/registry.sh"
        ));
    }
    let mut outcomes = BTreeMap::new();
    for (n, (name, image, inject)) in cases.iter().enumerate() {
        // Exit 1 for an image that runs nowhere; the constraint is printed all the same.
        let out = containerspec(&["match", image, "--inject", inject]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let constraint = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let fits = predicted(image, inject, slurm.conf_path());
        assert_eq!(fits.len(), DECLARED.len() + 1, "{fits:?}");
        // This node: match's prediction is check-bundle's verdict here.
        let here = containerspec(&["check-bundle", image, "--inject", inject]);
        let is_bundle = Path::new(image).join("config.json").exists();
        if is_bundle {
            assert_eq!(
                fits[slurm.node()],
                here.status.code() == Some(0),
                "{name}: match says {:?} for this node; check-bundle: {}",
                fits[slurm.node()],
                String::from_utf8_lossy(&here.stdout)
            );
        }
        let outcome = if fits[slurm.node()] {
            assert_runs_on_real_node(&slurm, &constraint, &format!("case{n}"));
            "ran on this node"
        } else if fits.values().any(|f| *f) {
            let (_, out_arg) = output_arg(&slurm, &format!("case{n}"));
            let id = slurm.submit(
                &[&format!("--constraint={constraint}"), &out_arg],
                "hostname -s\n",
            );
            std::thread::sleep(std::time::Duration::from_secs(2));
            let job = slurm.job(&id);
            assert_eq!(job.state, "PENDING", "{name}: {:?}", job.fields);
            assert!(
                job.node_list.is_empty() || job.node_list == "(null)",
                "{name}: {:?}",
                job.fields
            );
            // Waiting for exactly the declared nodes that fit.
            for (node, fit) in &fits {
                if *fit {
                    assert!(
                        job.reason.contains(node.as_str()),
                        "{name}: {node} in {}",
                        job.reason
                    );
                }
            }
            "pending for a declared node that fits"
        } else {
            let out = slurm.sbatch(&[&format!("--constraint={constraint}")], "hostname -s\n");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}: {constraint} accepted");
            assert!(
                err.contains("Invalid feature specification")
                    || err.contains("Requested node configuration is not available"),
                "{name}: {err}"
            );
            "refused at submission"
        };
        eprintln!("{name} (--inject {inject}): {constraint} -> {outcome}");
        outcomes.insert(name.clone(), outcome);
    }
    // The cases cover the three outcomes (this machine has Debian's MPICH; setup.sh).
    assert_eq!(
        outcomes["bookworm-mpich"], "ran on this node",
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes["trixie-openmpi"],
        "pending for a declared node that fits"
    );
    assert_eq!(outcomes["bullseye-mpich"], "refused at submission");
    assert_eq!(
        outcomes["bookworm-arm64"],
        "pending for a declared node that fits"
    );
    if outcomes.contains_key("base:bookworm") {
        assert_eq!(outcomes["base:bookworm"], "refused at submission");
        assert_refused(&slurm, "cs_runs_nowhere", "Invalid feature specification");
    }
}

#[test]
fn the_helper_in_contrib_answers_node_features_helpers_for_this_node() {
    let dir = TempDir::new("slurm-helper");
    let exe = env!("CARGO_BIN_EXE_containerspec");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/slurm/containerspec-node-features");
    // slurmd runs helpers with its own environment: a wrapper names the binary.
    let helper = dir.path().join("node-features");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nCONTAINERSPEC={exe} exec {}\n", script.display()),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // helpers.conf as containerspec writes it, for this node.
    let conf = stdout_of(&[
        "host",
        "--format",
        "slurm-helpers-conf",
        "--helper",
        helper.to_str().unwrap(),
    ]);
    let helpers: Vec<(String, PathBuf)> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("Feature="))
        .map(|l| {
            let (name, path) = l.split_once(" Helper=").unwrap();
            (name.to_string(), PathBuf::from(path))
        })
        .collect();
    let answer = stdout_of(&["host", "--format", "slurm-helper"]);
    let mut want: Vec<String> = answer.lines().map(str::to_string).collect();
    assert_eq!(
        helpers.len(),
        want.len(),
        "every feature of this node is declared"
    );
    let Some(slurm) = Slurm::start_with_helpers(&[], &[], &helpers) else {
        return;
    };
    let got = slurm.features(slurm.node());
    let mut active = got.active.clone();
    active.sort();
    want.sort();
    assert_eq!(active, want, "{}", slurm.logs());
    // A job constrained to an image that runs here lands here.
    if let Some(root) = cached_rootfs("bookworm-mpich") {
        let b = bundle(&dir.path().join("bundle"), &root, MPI_PROGRAM);
        let constraint = stdout_of(&["match", b.to_str().unwrap(), "--inject", "mpi"])
            .trim()
            .to_string();
        assert!(
            constraint.split('&').all(|f| want.iter().any(|w| w == f)),
            "{constraint}"
        );
        assert_runs_on_real_node(&slurm, &constraint, "helper");
    }
}
