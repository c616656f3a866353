//! Ground truth for the verdicts: every pair of real MPI root filesystems (container ×
//! host) gets a verdict from `check-bundle --inject mpi`, and then the plan is carried
//! out for real: in a private mount namespace, an overlay of the container's rootfs gets
//! the planned bind mounts and loader cache, and the container's own MPI program
//! (linked against the container's MPI) runs in a chroot of it.
//!
//! - `compatible` must mean the program starts and reports the host's MPI version;
//! - `incompatible` must name the cause the program's failure shows (for a glibc problem,
//!   the version the loader reports missing; for an ABI family mismatch, the crash of a
//!   naive injection of the host's library over the container's).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{
    Judged, cached_rootfs, containerspec, dpkg_version, is_root, scratch, upstream_version,
};

pub(crate) const ROOTS: &[&str] = &[
    "bullseye-mpich",
    "bookworm-mpich",
    "trixie-mpich",
    "bullseye-openmpi",
    "bookworm-openmpi",
    "trixie-openmpi",
];
pub(crate) const PROGRAM: &str = "/opt/containerspec-test/mpi-version";

struct Outcome {
    pair: String,
    verdict: String,
    codes: Vec<String>,
    ran: String,
}

/// A bundle for `rootfs` whose process is the MPI program, asking for MPI injection.
fn bundle(dir: &Path, rootfs: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs},
        "process": {"cwd": "/", "args": [PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// Carries out `mounts` (source, destination, kind) and the loader cache over an
/// overlay of `rootfs` in a private mount namespace, then runs the program in a chroot.
fn run_with_mounts(
    work: &Path,
    rootfs: &Path,
    mounts: &[(String, String, String)],
    cache: Option<&Path>,
) -> std::process::Output {
    run_with_plan(work, rootfs, mounts, cache, &[])
}

/// [`run_with_mounts`], with `env` (NAME=VALUE) added to the program's environment.
pub(crate) fn run_with_plan(
    work: &Path,
    rootfs: &Path,
    mounts: &[(String, String, String)],
    cache: Option<&Path>,
    env: &[String],
) -> std::process::Output {
    run_program_with_plan(work, rootfs, mounts, cache, env, &[PROGRAM])
}

/// [`run_with_plan`] for any program of the rootfs: `argv` (no quote in them).
pub(crate) fn run_program_with_plan(
    work: &Path,
    rootfs: &Path,
    mounts: &[(String, String, String)],
    cache: Option<&Path>,
    env: &[String],
    argv: &[&str],
) -> std::process::Output {
    let extra: String = env.iter().map(|e| format!(" '{e}'")).collect();
    let argv: String = argv.iter().map(|a| format!(" '{a}'")).collect();
    let mut script = String::from("set -e\n");
    let merged = work.join("merged");
    script += &format!(
        "mkdir -p {w}/upper {w}/work {m}\nmount -t overlay overlay -o lowerdir={r},upperdir={w}/upper,workdir={w}/work {m}\n",
        w = work.display(),
        m = merged.display(),
        r = rootfs.display()
    );
    for (source, dest, kind) in mounts {
        let target = format!("{}{dest}", merged.display());
        if kind == "directory" {
            script += &format!("mkdir -p '{target}'\n");
        } else {
            script += &format!(
                "mkdir -p \"$(dirname '{target}')\"\n[ -e '{target}' ] || touch '{target}'\n"
            );
        }
        script += &format!(
            "mount --bind '{source}' '{target}'\nmount -o remount,bind,ro,nosuid,nodev '{target}'\n"
        );
    }
    if let Some(cache) = cache {
        script += &format!(
            "mount --bind '{}' '{}/etc/ld.so.cache'\n",
            cache.display(),
            merged.display()
        );
    }
    script += &format!(
        "mount -t proc proc {m}/proc\nmount --rbind /sys {m}/sys\nmount --rbind /dev {m}/dev\nmount -t tmpfs tmpfs {m}/tmp\n\
         exec timeout 60 env -i PATH=/usr/bin:/bin HOME=/root OMPI_ALLOW_RUN_AS_ROOT=1 \
         OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated OMPI_MCA_btl=self{extra} /usr/sbin/chroot {m}{argv}\n",
        m = merged.display()
    );
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap()
}

/// The version node the loader says is missing: ld.so prints "version `GLIBC_2.34' not
/// found (required by /usr/lib/.../libmpich.so.12)".
pub(crate) fn loader_missing_version(stderr: &str) -> String {
    stderr
        .split("version `")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap_or_default()
        .to_string()
}

/// The host's MPI version (from its package database) and whether the program's output
/// (MPI_Get_library_version) reports exactly that library.
fn reports_host_version(host: &Path, name: &str, stdout: &str) -> (bool, String) {
    if name.ends_with("mpich") {
        let v = upstream_version(&dpkg_version(host, "libmpich12").unwrap());
        // "MPICH Version:\t4.0.2" or, from 4.2 on, "MPICH Version:      4.2.1"
        let ok = stdout.lines().any(|l| {
            l.strip_prefix("MPICH Version:")
                .is_some_and(|r| r.trim() == v)
        });
        (ok, format!("MPICH {v}"))
    } else {
        let pkg = if name.starts_with("trixie") {
            "libopenmpi40"
        } else {
            "libopenmpi3"
        };
        let v = upstream_version(&dpkg_version(host, pkg).unwrap());
        // "Open MPI v4.1.4, package: ..."
        let ok = stdout
            .lines()
            .any(|l| l.starts_with(&format!("Open MPI v{v},")));
        (ok, format!("Open MPI {v}"))
    }
}

#[test]
fn every_pair_verdict_matches_what_really_happens() {
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let roots: Vec<(&str, PathBuf)> = ROOTS
        .iter()
        .filter_map(|n| cached_rootfs(n).map(|p| (*n, p)))
        .collect();
    if roots.len() < ROOTS.len() {
        return;
    }
    let base = scratch("pairs");
    let mut outcomes = Vec::new();
    for (cname, croot) in &roots {
        for (hname, hroot) in &roots {
            let pair = format!("{cname} on {hname}");
            let dir = base.join(format!("{cname}--{hname}"));
            let b = bundle(&dir.join("bundle"), croot);
            let cache = dir.join("ld.so.cache");
            let out = containerspec(&[
                "check-bundle",
                b.to_str().unwrap(),
                "--host-root",
                hroot.to_str().unwrap(),
                "--json",
                "--emit-ld-cache",
                cache.to_str().unwrap(),
            ]);
            let Judged {
                report,
                verdict,
                errors,
                codes,
                mounts,
                has_cache,
                ..
            } = Judged::read(&pair, &out);
            let work = dir.join("run");
            let ran = if verdict == "compatible" {
                let run =
                    run_with_mounts(&work, croot, &mounts, has_cache.then_some(cache.as_path()));
                let stdout = String::from_utf8_lossy(&run.stdout);
                let (reports, expected) = reports_host_version(hroot, hname, &stdout);
                assert!(
                    run.status.success() && reports,
                    "{pair}: called compatible, but the program {} (wanted {expected:?}):\n{stdout}\n{}",
                    run.status,
                    String::from_utf8_lossy(&run.stderr)
                );
                format!("ran, reported {expected}")
            } else {
                let run = Run {
                    pair: &pair,
                    work: &work,
                    croot,
                    hroot,
                    mounts: &mounts,
                    cache: has_cache.then_some(cache.as_path()),
                };
                explain_failure(&run, &errors, &report)
            };
            outcomes.push(Outcome {
                pair,
                verdict,
                codes,
                ran,
            });
        }
    }
    eprintln!("\nverdicts on real root filesystems (container on host):");
    for o in &outcomes {
        eprintln!(
            "  {:38} {:13} {:40} {}",
            o.pair,
            o.verdict,
            o.codes.join(","),
            o.ran
        );
    }
    // The pairs the design notes describe: same family, same release: compatible.
    for name in ROOTS {
        let o = outcomes
            .iter()
            .find(|o| o.pair == format!("{name} on {name}"))
            .unwrap();
        assert_eq!(o.verdict, "compatible", "{}: {:?}", o.pair, o.codes);
    }
}

/// Where a pair's plan was carried out.
struct Run<'a> {
    pair: &'a str,
    work: &'a Path,
    croot: &'a Path,
    hroot: &'a Path,
    mounts: &'a [(String, String, String)],
    cache: Option<&'a Path>,
}

/// For an incompatible pair, shows that reality fails for the reason the report gives.
fn explain_failure(r: &Run, errors: &[serde_json::Value], report: &serde_json::Value) -> String {
    let pair = r.pair;
    let code = errors
        .first()
        .map(|f| f["code"].as_str().unwrap())
        .unwrap_or_default();
    match code {
        "glibc-too-old" => {
            let run = run_with_mounts(r.work, r.croot, r.mounts, r.cache);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(
                !run.status.success(),
                "{pair}: called incompatible (glibc) but the program ran"
            );
            let missing = loader_missing_version(&stderr);
            let named: Vec<String> = errors
                .iter()
                .filter(|f| f["code"] == "glibc-too-old")
                .flat_map(|f| {
                    f["versions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                })
                .collect();
            assert!(
                named.contains(&missing),
                "{pair}: the loader says {missing:?} is missing; the report names {named:?}\n{stderr}"
            );
            format!("fails: {missing} not found")
        }
        "mpi-abi-family-mismatch" => {
            // Naively put the host's MPI library over the container's.
            let host_lib = report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["code"] == "mpi-abi-family-mismatch")
                .and_then(|f| {
                    f["objects"]
                        .as_array()
                        .and_then(|o| o.get(1))
                        .and_then(|o| o.as_str())
                })
                .map(|p| format!("{}{p}", r.hroot.display()))
                .unwrap();
            let target = errors[0]["objects"][0].as_str().unwrap().to_string();
            let run = run_with_mounts(r.work, r.croot, &[(host_lib, target, "file".into())], None);
            assert!(
                !run.status.success(),
                "{pair}: called an ABI mismatch, but a naive injection ran"
            );
            let stderr = String::from_utf8_lossy(&run.stderr);
            let first = stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('-'))
                .unwrap_or_default();
            format!(
                "naive injection fails ({}): {}",
                run.status,
                first.chars().take(100).collect::<String>()
            )
        }
        other => format!("rejected for {other}, not run"),
    }
}
