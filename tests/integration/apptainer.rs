//! `containerspec apptainer` end to end with real Apptainer 1.4, run by
//! tests/rigs/apptainer.sh from a Debian sid root that acts as the host: its MPICH is the
//! host MPI. The images are real: SIFs that `apptainer build` made from the cached Debian
//! root filesystems, and those root filesystems themselves as sandbox directories.
//!
//! - trixie-mpich (glibc 2.41, MPICH 4.2) is compatible with the sid host: its MPI program,
//!   linked against the container's libmpich, runs under `containerspec apptainer exec`
//!   and reports the host's MPICH version. The same through the `--print env` and
//!   `--print args` forms, under `containerspec singularity`, and from the sandbox.
//! - bullseye-mpich (glibc 2.31) cannot load the host's libmpich: it is refused before
//!   Apptainer starts, with the diagnosis.
//! - `inspect` of each SIF (read in place) equals `inspect` of the directory it was built
//!   from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{cached_rootfs, containerspec, dpkg_version, is_root, upstream_version};

const PROGRAM: &str = "/opt/containerspec-test/mpi-version";

fn rig_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rigs/apptainer.sh")
}

fn required() -> bool {
    std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() == Ok("1")
}

/// The sid root and the SIF of rootfs `name`, built by the rig (cached), or None after
/// saying why. CI (CONTAINERSPEC_REQUIRE_ROOTFS=1) fails instead of skipping.
pub(crate) fn rig(name: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    if !is_root() {
        assert!(!required(), "the Apptainer tests need root");
        eprintln!("skipping: needs root (tests/rigs/apptainer.sh: mount namespaces)");
        return None;
    }
    let rootfs = cached_rootfs(name)?;
    let run = |args: &[&str]| {
        let out = Command::new(rig_script())
            .args(args)
            .output()
            .expect("run apptainer.sh");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success(), stdout, stderr)
    };
    let (ok, root, err) = run(&["build"]);
    if !ok {
        assert!(!required(), "tests/rigs/apptainer.sh build failed: {err}");
        eprintln!("skipping: tests/rigs/apptainer.sh build failed: {err}");
        return None;
    }
    let (ok, sif, err) = run(&["sif", name]);
    assert!(ok, "tests/rigs/apptainer.sh sif {name} failed: {err}");
    Some((PathBuf::from(root), PathBuf::from(sif), rootfs))
}

/// Runs `cmd` inside the sid root as the unprivileged user, with containerspec at
/// /opt/cs/containerspec and `binds` (HOST:INSIDE[:ro]).
fn in_host(binds: &[String], cmd: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_containerspec");
    let mut c = Command::new(rig_script());
    c.arg("run")
        .arg("--bind")
        .arg(format!("{exe}:/opt/cs/containerspec:ro"));
    for b in binds {
        c.arg("--bind").arg(b);
    }
    c.arg("--").args(cmd);
    c.output().expect("run apptainer.sh")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sid host's MPICH, from its package database.
fn sid_mpich(sid: &Path) -> String {
    upstream_version(&dpkg_version(sid, "libmpich12").expect("libmpich12 in the sid root"))
}

/// The `MPICH Version:` line of an MPI program's output.
fn reported_mpich(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("MPICH Version:"))
        .map(|v| v.trim().to_string())
}

const CS: &str = "/opt/cs/containerspec";

/// Runs `cmd` in the host, which must succeed, and returns the MPICH version the MPI
/// program reported with everything it printed (for messages).
fn mpich_run(binds: &[String], cmd: &[&str]) -> (Option<String>, String) {
    let out = in_host(binds, cmd);
    let (stdout, stderr) = text(&out);
    let all = format!("{stdout}\n{stderr}");
    assert!(out.status.success(), "{cmd:?} failed: {all}");
    (reported_mpich(&stdout), all)
}

#[test]
fn exec_sif_runs_the_containers_program_on_the_hosts_mpi() {
    let Some((sid, sif, rootfs)) = rig("trixie-mpich") else {
        return;
    };
    let host = sid_mpich(&sid);
    let own = upstream_version(&dpkg_version(&rootfs, "libmpich12").unwrap());
    assert_ne!(
        host, own,
        "the test needs different MPICH versions on each side"
    );
    let binds = [format!("{}:/img.sif:ro", sif.display())];
    let cmd = [
        CS,
        "apptainer",
        "exec",
        "--inject",
        "mpi",
        "/img.sif",
        PROGRAM,
    ];
    let (reported, all) = mpich_run(&binds, &cmd);
    assert_eq!(
        reported.as_deref(),
        Some(host.as_str()),
        "expected the host's MPICH {host} (the container has {own}): {all}"
    );
    // Without injection the same program reports the container's own MPICH.
    let (reported, all) = mpich_run(&binds, &[CS, "apptainer", "exec", "/img.sif", PROGRAM]);
    assert_eq!(reported.as_deref(), Some(own.as_str()), "{all}");
}

#[test]
fn exec_sandbox_runs_the_containers_program_on_the_hosts_mpi() {
    let Some((sid, _, rootfs)) = rig("trixie-mpich") else {
        return;
    };
    let host = sid_mpich(&sid);
    let (reported, all) = mpich_run(
        &[format!("{}:/sandbox:ro", rootfs.display())],
        &[
            CS,
            "apptainer",
            "exec",
            "--inject",
            "mpi",
            "/sandbox",
            PROGRAM,
        ],
    );
    assert_eq!(reported.as_deref(), Some(host.as_str()), "{all}");
}

#[test]
fn printed_env_and_args_forms_work_with_plain_apptainer_exec() {
    let Some((sid, sif, _)) = rig("trixie-mpich") else {
        return;
    };
    let host = sid_mpich(&sid);
    // What a job script does: keep the binds, fail on a refusal, eval, start Apptainer.
    let env_form = format!(
        "set -e; b=$(/opt/cs/containerspec apptainer check --inject mpi --print env /img.sif); \
         echo \"$b\" >&2; eval \"$b\"; apptainer exec /img.sif {PROGRAM}"
    );
    let args_form = format!(
        "set -e; a=$(/opt/cs/containerspec apptainer check --inject mpi --print args /img.sif); \
         echo \"$a\" >&2; eval \"apptainer exec $a /img.sif {PROGRAM}\""
    );
    let singularity_form = format!(
        "set -e; b=$(/opt/cs/containerspec singularity check --inject mpi --print env /img.sif); \
         echo \"$b\" >&2; case \"$b\" in *SINGULARITY_BIND=*) ;; *) exit 7;; esac; \
         eval \"$b\"; singularity exec /img.sif {PROGRAM}"
    );
    for (name, script) in [
        ("env", env_form),
        ("args", args_form),
        ("singularity", singularity_form),
    ] {
        let out = in_host(
            &[format!("{}:/img.sif:ro", sif.display())],
            &["sh", "-c", &script],
        );
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{name} form failed: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("libmpich.so.12"),
            "{name}: binds not printed: {stderr}"
        );
        assert_eq!(
            reported_mpich(&stdout).as_deref(),
            Some(host.as_str()),
            "{name} form: {stdout}\n{stderr}"
        );
    }
    // `containerspec singularity exec` starts `singularity`.
    let (reported, all) = mpich_run(
        &[format!("{}:/img.sif:ro", sif.display())],
        &[
            CS,
            "singularity",
            "exec",
            "--inject",
            "mpi",
            "/img.sif",
            PROGRAM,
        ],
    );
    assert_eq!(reported.as_deref(), Some(host.as_str()), "{all}");
}

/// The site wrapper (contrib/apptainer/apptainer) installed ahead of the real apptainer.
fn wrapped(binds: &[String], env: &[&str], cmd: &[&str]) -> Output {
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/apptainer/apptainer");
    let mut all = binds.to_vec();
    all.push(format!("{}:/opt/cs/bin/apptainer:ro", wrapper.display()));
    let mut line = vec![
        "env",
        "PATH=/opt/cs/bin:/usr/local/bin:/usr/bin:/bin",
        "CONTAINERSPEC=/opt/cs/containerspec",
    ];
    line.extend_from_slice(env);
    line.extend_from_slice(cmd);
    in_host(&all, &line)
}

#[test]
fn site_wrapper_injects_or_refuses_around_plain_apptainer_commands() {
    let Some((sid, good, _)) = rig("trixie-mpich") else {
        return;
    };
    let Some((_, bad, _)) = rig("bullseye-mpich") else {
        return;
    };
    let host = sid_mpich(&sid);
    let binds = [
        format!("{}:/good.sif:ro", good.display()),
        format!("{}:/bad.sif:ro", bad.display()),
    ];
    // Apptainer's own options before the image, as users write them.
    let out = wrapped(
        &binds,
        &["CONTAINERSPEC_INJECT=mpi"],
        &[
            "apptainer",
            "exec",
            "--cleanenv",
            "--pwd",
            "/",
            "/good.sif",
            PROGRAM,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "wrapped exec failed: {stdout}
{stderr}"
    );
    assert_eq!(
        reported_mpich(&stdout).as_deref(),
        Some(host.as_str()),
        "{stdout}
{stderr}"
    );
    let out = wrapped(
        &binds,
        &["CONTAINERSPEC_INJECT=mpi"],
        &["apptainer", "exec", "/bad.sif", "/bin/true"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}
{stderr}"
    );
    assert!(
        stderr.contains("glibc-too-old") && stderr.contains("refusing to start /bad.sif"),
        "{stderr}"
    );
    // Other commands pass through untouched.
    let out = wrapped(&binds, &[], &["apptainer", "--version"]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stdout.contains("apptainer version"),
        "{stdout}
{stderr}"
    );
}

#[test]
fn incompatible_images_are_refused_before_apptainer_starts() {
    let Some((_, sif, rootfs)) = rig("bullseye-mpich") else {
        return;
    };
    let scratch = crate::util::TempDir::new("appt-refuse");
    std::os::unix::fs::chown(scratch.path(), Some(1000), Some(1000)).unwrap();
    for (image, bind) in [
        ("/img.sif", format!("{}:/img.sif:ro", sif.display())),
        ("/sandbox", format!("{}:/sandbox:ro", rootfs.display())),
    ] {
        // The command would leave a mark if Apptainer ever ran it.
        let out = in_host(
            &[bind, format!("{}:/scratch", scratch.path().display())],
            &[
                CS,
                "apptainer",
                "exec",
                "--inject",
                "mpi",
                image,
                "/bin/sh",
                "-c",
                "touch /scratch/ran",
            ],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{image}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("glibc-too-old") && stderr.contains("libmpich.so.12"),
            "{image}: the diagnosis is missing: {stderr}"
        );
        assert!(stderr.contains("refusing to start"), "{stderr}");
        assert!(!stderr.contains("INFO:"), "Apptainer started: {stderr}");
        assert!(
            !scratch.path().join("ran").exists(),
            "{image}: the command ran"
        );
        // check says the same, with exit 1 and nothing on stdout in the --print forms.
        let out = in_host(
            &[format!("{}:/img.sif:ro", sif.display())],
            &[
                CS,
                "apptainer",
                "check",
                "--inject",
                "mpi",
                "--print",
                "env",
                "/img.sif",
            ],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stdout.is_empty(),
            "binds printed for a refused image: {stdout}"
        );
        assert!(stderr.contains("glibc-too-old"), "{stderr}");
    }
}

/// The inventory as JSON, without the field naming what was read.
fn inventory(target: &Path) -> serde_json::Value {
    let out = containerspec(&["inspect", &target.display().to_string(), "--json"]);
    assert!(
        out.status.success(),
        "inspect {} failed: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object_mut().unwrap().remove("root");
    v
}

#[test]
fn sif_inventory_equals_the_directory_it_was_built_from() {
    for name in ["trixie-mpich", "bullseye-mpich"] {
        let Some((_, sif, rootfs)) = rig(name) else {
            return;
        };
        let from_sif = inventory(&sif);
        let from_dir = inventory(&rootfs);
        assert_eq!(
            from_sif,
            from_dir,
            "{name}: the SIF and the directory differ:\nSIF: {}\ndir: {}",
            serde_json::to_string_pretty(&from_sif).unwrap(),
            serde_json::to_string_pretty(&from_dir).unwrap()
        );
        assert!(
            from_sif["mpi"].as_array().is_some_and(|m| !m.is_empty()),
            "{name}: no MPI"
        );
    }
}
