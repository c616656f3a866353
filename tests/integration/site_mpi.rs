//! Ground truth beyond Debian's packages: real third-party MPI builds (Intel MPI 2021.13.1
//! with its libfabric and providers, MPICH 5.0.2 and Open MPI 5.0.11 as upstream builds
//! that bundle libfabric, UCX, hwloc and PMIx beside themselves with `RUNPATH $ORIGIN`),
//! laid out on a host root the way a site lays them out (`tests/rigs/site-mpi.sh`): under
//! `/sw/<impl>/<version>`, named by the config's `prefixes`, by `LD_LIBRARY_PATH` (a
//! loaded module), or registered in the host's loader cache. Each is injected into the
//! six Debian MPI containers, and every verdict is checked by carrying the plan out for
//! real and running the container's own MPI program:
//!
//! - `compatible` must mean it ran and reported the host installation's version;
//! - `incompatible` must name the cause that a run shows: for `environment-required`, the
//!   same plan run without the variable fails; for an ABI family mismatch, a naive
//!   injection of the host's library fails; for `glibc-too-old`, the loader names a
//!   version the report names.

use std::path::{Path, PathBuf};

use crate::inject_pairs::{PROGRAM, run_with_plan};
use crate::util::{cached_rootfs, dpkg_version, is_root, scratch, upstream_version};

const CONTAINERS: &[&str] = &[
    "bullseye-mpich",
    "bookworm-mpich",
    "trixie-mpich",
    "bullseye-openmpi",
    "bookworm-openmpi",
    "trixie-openmpi",
];

/// How the host's installation is made known to containerspec.
#[derive(Clone, Copy, PartialEq)]
enum Told {
    /// `[inject.mpi] prefixes` in the host's config file.
    ConfigPrefix,
    /// The caller's `LD_LIBRARY_PATH`, as `module load` sets it.
    LdLibraryPath,
    /// Registered in the host root's loader cache.
    LoaderCache,
}

struct Host {
    root: &'static str,
    prefix: &'static str,
    told: Told,
    /// What the program prints when it runs with this MPI.
    reports: &'static str,
    /// The bundle passes the variable the plan asks for (as `podman run -e` would).
    with_env: bool,
}

const INTEL: &str = "/sw/intel-mpi/2021.13.1";
const HOSTS: &[Host] = &[
    Host {
        root: "intel-mpi-module",
        prefix: INTEL,
        told: Told::ConfigPrefix,
        reports: "Intel(R) MPI Library 2021.13 ",
        with_env: true,
    },
    Host {
        root: "intel-mpi-module",
        prefix: INTEL,
        told: Told::ConfigPrefix,
        reports: "Intel(R) MPI Library 2021.13 ",
        with_env: false,
    },
    Host {
        root: "intel-mpi-module",
        prefix: INTEL,
        told: Told::LdLibraryPath,
        reports: "Intel(R) MPI Library 2021.13 ",
        with_env: true,
    },
    Host {
        root: "intel-mpi-cached",
        prefix: INTEL,
        told: Told::LoaderCache,
        reports: "Intel(R) MPI Library 2021.13 ",
        with_env: true,
    },
    Host {
        root: "mpich-module",
        prefix: "/sw/mpich/5.0.2",
        told: Told::ConfigPrefix,
        reports: "MPICH Version: 5.0.2",
        with_env: false,
    },
    Host {
        root: "mpich-module",
        prefix: "/sw/mpich/5.0.2",
        told: Told::LdLibraryPath,
        reports: "MPICH Version: 5.0.2",
        with_env: false,
    },
    Host {
        root: "mpich-cached",
        prefix: "/sw/mpich/5.0.2",
        told: Told::LoaderCache,
        reports: "MPICH Version: 5.0.2",
        with_env: false,
    },
    Host {
        root: "openmpi-module",
        prefix: "/sw/openmpi/5.0.11",
        told: Told::ConfigPrefix,
        reports: "Open MPI v5.0.11,",
        with_env: false,
    },
    Host {
        root: "openmpi-cached",
        prefix: "/sw/openmpi/5.0.11",
        told: Told::LoaderCache,
        reports: "Open MPI v5.0.11,",
        with_env: false,
    },
];

fn site_hosts() -> Option<PathBuf> {
    let base = crate::util::rootfs_cache()
        .parent()
        .map(|p| p.join("site-mpi/hosts"))?;
    if base.join("openmpi-cached").is_dir() {
        return Some(base);
    }
    let hint = "site MPI host roots not built: run tests/rigs/site-mpi.sh";
    assert!(
        std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
        "{hint}"
    );
    eprintln!("skipping: {hint}");
    None
}

/// Whether the program's output reports `wanted` (white space folded).
fn reports(stdout: &str, wanted: &str) -> bool {
    // A trailing space in `wanted` ends the version: "2021.13 " never matches "2021.131".
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    stdout.lines().any(|l| {
        let line = fold(l);
        if wanted.ends_with(' ') {
            format!("{line} ").starts_with(wanted)
        } else {
            line.starts_with(wanted)
        }
    })
}

struct Outcome {
    pair: String,
    verdict: String,
    codes: Vec<String>,
    ran: String,
}

#[test]
fn site_mpi_verdicts_match_what_really_happens() {
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let Some(hosts_dir) = site_hosts() else {
        return;
    };
    let containers: Vec<(&str, PathBuf)> = CONTAINERS
        .iter()
        .filter_map(|n| cached_rootfs(n).map(|p| (*n, p)))
        .collect();
    if containers.len() < CONTAINERS.len() {
        return;
    }
    let base = scratch("site-mpi");
    let mut outcomes = Vec::new();
    for (hi, host) in HOSTS.iter().enumerate() {
        let hroot = hosts_dir.join(host.root);
        for (cname, croot) in &containers {
            let told = match host.told {
                Told::ConfigPrefix => "config prefix",
                Told::LdLibraryPath => "LD_LIBRARY_PATH",
                Told::LoaderCache => "loader cache",
            };
            let env_note = if host.with_env {
                ""
            } else if host.root.starts_with("intel") {
                ", no FI_PROVIDER_PATH"
            } else {
                ""
            };
            let pair = format!("{cname} on {} ({told}{env_note})", host.root);
            let dir = base.join(format!("{hi}-{cname}"));
            let outcome = judge_and_run(&pair, &dir, croot, &hroot, host);
            outcomes.push(outcome);
        }
    }
    eprintln!("\nverdicts with site MPI installations (container on host):");
    for o in &outcomes {
        eprintln!(
            "  {:66} {:13} {:28} {}",
            o.pair,
            o.verdict,
            o.codes.join(","),
            o.ran
        );
    }
    let compatible = outcomes
        .iter()
        .filter(|o| o.verdict == "compatible")
        .count();
    eprintln!(
        "{} pairs: {compatible} compatible and ran with the host's MPI, {} incompatible for the reason a run shows, 0 false compatible",
        outcomes.len(),
        outcomes.len() - compatible
    );
    // The canonical case of the ABI initiative: Intel MPI into MPICH applications, and
    // the MPICH and Open MPI builds into their own families, whatever told us where.
    for o in &outcomes {
        let same_family = (o.pair.contains("-mpich on intel")
            && !o.pair.contains("FI_PROVIDER_PATH"))
            || o.pair.contains("-mpich on mpich")
            || o.pair.contains("-openmpi on openmpi");
        if same_family {
            assert_eq!(o.verdict, "compatible", "{}: {:?}", o.pair, o.codes);
        }
    }
}

fn judge_and_run(pair: &str, dir: &Path, croot: &Path, hroot: &Path, host: &Host) -> Outcome {
    std::fs::create_dir_all(dir).unwrap();
    let mut env = vec!["PATH=/usr/bin:/bin".to_string()];
    let provider_path = format!("FI_PROVIDER_PATH={INTEL}/lib/libfabric/prov");
    if host.with_env && host.root.starts_with("intel") {
        env.push(provider_path.clone());
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": croot},
        "process": {"cwd": "/", "args": [PROGRAM], "env": env, "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let cache = dir.join("ld.so.cache");
    let (hroot_s, bundle_s, cache_s) = (
        hroot.to_str().unwrap(),
        bundle.to_str().unwrap(),
        cache.to_str().unwrap(),
    );
    let conf = hroot.join("etc/containerspec/config.toml");
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let conf_arg = if host.told == Told::ConfigPrefix {
        conf
    } else {
        empty
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_containerspec"));
    cmd.args([
        "check-bundle",
        bundle_s,
        "--host-root",
        hroot_s,
        "--config",
        conf_arg.to_str().unwrap(),
        "--no-cache",
        "--json",
        "--emit-ld-cache",
        cache_s,
    ]);
    cmd.env_remove("LD_LIBRARY_PATH");
    if host.told == Told::LdLibraryPath {
        // What `module load` puts there (paths on the host, read inside the host root).
        let lib = format!("{}/lib", host.prefix);
        let value = if host.root.starts_with("intel") {
            format!("{lib}:{lib}/libfabric")
        } else {
            lib
        };
        cmd.env("LD_LIBRARY_PATH", value);
    }
    let out = cmd.output().unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "{pair}: exit {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verdict = report["verdict"].as_str().unwrap().to_string();
    let errors: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    let codes: Vec<String> = errors
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    let chosen = report["host_mpi"]["chosen"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mounts: Vec<(String, String, String)> = report["plan"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["source"].as_str().unwrap().into(),
                m["destination"].as_str().unwrap().into(),
                m["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let plan_env: Vec<String> = report["plan"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            )
        })
        .collect();
    let has_cache = !report["plan"]["ld_cache"].is_null();
    let work = dir.join("run");
    let bundle_env: Vec<String> = env
        .iter()
        .filter(|e| !e.starts_with("PATH="))
        .cloned()
        .collect();
    let ran = if verdict == "compatible" {
        // The site's installation, or (for another family) the distribution's MPICH
        // that the host root also has, whose version its package database gives.
        let wanted = if chosen.contains(host.prefix) {
            host.reports.to_string()
        } else {
            assert!(
                chosen.starts_with("MPICH ") && chosen.contains("/usr/lib/"),
                "{pair}: judged {chosen:?}"
            );
            let v = upstream_version(&dpkg_version(hroot, "libmpich12").unwrap());
            format!("MPICH Version: {v}")
        };
        let run = run_with_plan(
            &work,
            croot,
            &mounts,
            has_cache.then_some(cache.as_path()),
            &bundle_env,
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && reports(&stdout, &wanted),
            "{pair}: called compatible, but the program {} (wanted {wanted:?}):\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        format!("ran, reported {}", wanted.trim_end())
    } else {
        match codes.first().map(String::as_str).unwrap_or_default() {
            "environment-required" => {
                // The same plan without the variable fails; with it, it runs.
                let run = run_with_plan(
                    &work,
                    croot,
                    &mounts,
                    has_cache.then_some(cache.as_path()),
                    &bundle_env,
                );
                assert!(
                    !run.status.success(),
                    "{pair}: called incompatible (environment), but the program ran"
                );
                let with = run_with_plan(
                    &dir.join("run-env"),
                    croot,
                    &mounts,
                    has_cache.then_some(cache.as_path()),
                    &plan_env,
                );
                assert!(
                    with.status.success()
                        && reports(&String::from_utf8_lossy(&with.stdout), host.reports),
                    "{pair}: with {plan_env:?} the program still fails: {}",
                    String::from_utf8_lossy(&with.stderr)
                );
                format!(
                    "fails ({}); with {} it runs",
                    run.status,
                    plan_env.join(" ")
                )
            }
            "mpi-abi-family-mismatch" => {
                let f = errors[0];
                let host_lib = format!("{}{}", hroot.display(), f["objects"][1].as_str().unwrap());
                let target = f["objects"][0].as_str().unwrap().to_string();
                let run = run_with_plan(
                    &work,
                    croot,
                    &[(host_lib, target, "file".into())],
                    None,
                    &bundle_env,
                );
                assert!(
                    !run.status.success(),
                    "{pair}: called an ABI mismatch, but a naive injection ran"
                );
                format!("naive injection fails ({})", run.status)
            }
            "glibc-too-old" => {
                let run = run_with_plan(
                    &work,
                    croot,
                    &mounts,
                    has_cache.then_some(cache.as_path()),
                    &bundle_env,
                );
                let stderr = String::from_utf8_lossy(&run.stderr);
                assert!(
                    !run.status.success(),
                    "{pair}: called incompatible (glibc) but the program ran"
                );
                let missing = stderr
                    .split("version `")
                    .nth(1)
                    .and_then(|s| s.split('\'').next())
                    .unwrap_or_default()
                    .to_string();
                let named: Vec<&str> = errors
                    .iter()
                    .flat_map(|f| {
                        f["versions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(|v| v.as_str())
                    })
                    .collect();
                assert!(
                    named.contains(&missing.as_str()),
                    "{pair}: the loader says {missing:?}; the report names {named:?}"
                );
                format!("fails: {missing} not found")
            }
            other => panic!(
                "{pair}: refused for {other} ({:?}), which no run here explains",
                errors
            ),
        }
    };
    Outcome {
        pair: pair.to_string(),
        verdict,
        codes,
        ran,
    }
}

/// The host-facts cache never serves a verdict about a library replaced in place (same
/// directory, same inode: `cp` over it), which no watched directory's time shows.
#[test]
fn a_library_replaced_in_place_is_read_again() {
    if !is_root() {
        crate::skip!("needs root (the host-facts cache lives in /run/containerspec)");
    }
    let Some(hosts_dir) = site_hosts() else {
        return;
    };
    let Some(croot) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let dir = scratch("site-mpi-replaced");
    let host = dir.join("host");
    let lib = host.join("sw/mpi/lib");
    std::fs::create_dir_all(&lib).unwrap();
    let mpich = hosts_dir.join("mpich-module/sw/mpich/5.0.2/lib");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", mpich.display()))
        .arg(&lib)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.join("config.toml"),
        "[inject.mpi]\nprefixes = [\"/sw/mpi\"]\n",
    )
    .unwrap();
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": croot},
        "process": {"cwd": "/", "args": [PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let chosen = || {
        let out = crate::util::json(&[
            "check-bundle",
            bundle.to_str().unwrap(),
            "--host-root",
            host.to_str().unwrap(),
            "--config",
            dir.join("config.toml").to_str().unwrap(),
        ]);
        out["host_mpi"]["chosen"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let before = chosen();
    assert!(before.starts_with("MPICH 5.0.2"), "{before}");
    assert_eq!(chosen(), before, "the cached facts give the same verdict");
    // Replace the library's contents in place with Intel MPI's (same path and inode).
    let intel = hosts_dir.join("intel-mpi-module/sw/intel-mpi/2021.13.1/lib/libmpi.so.12");
    let target = lib.join("libmpi.so.12");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&target).unwrap());
    std::fs::write(&target, std::fs::read(&intel).unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&target).unwrap()),
        inode
    );
    let after = chosen();
    assert!(
        after.starts_with("Intel MPI 2021.13"),
        "stale host facts served: {after}"
    );
}
