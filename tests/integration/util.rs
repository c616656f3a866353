//! Shared test support: running the built binary, the cached real root filesystems, and
//! skipping with a visible reason where a prerequisite is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Prints why a test does not run and returns from it.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        eprintln!("skipping: {}", format!($($arg)*));
        return;
    }};
}

/// Runs the `containerspec` binary with `args`.
pub fn containerspec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_containerspec"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run containerspec")
}

/// Runs `containerspec ARGS --json` and parses stdout, asserting success.
pub fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = containerspec(&all);
    assert!(
        out.status.success(),
        "containerspec {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

/// Asserts that a run failed with status 2, a message on stderr naming `needle`, and
/// no panic.
pub fn assert_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "stderr should name {needle:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

/// The directory of cached real root filesystems built by tests/rigs/rootfs.sh.
pub fn rootfs_cache() -> PathBuf {
    let base = std::env::var_os("CONTAINERSPEC_TEST_CACHE").map_or_else(
        || PathBuf::from("/var/cache/containerspec-test"),
        PathBuf::from,
    );
    base.join("rootfs")
}

/// The cached rootfs `name`, or None (after saying so) when it has not been built.
/// With CONTAINERSPEC_REQUIRE_ROOTFS=1 (CI) a missing rootfs fails the test instead.
pub fn cached_rootfs(name: &str) -> Option<PathBuf> {
    built(
        rootfs_cache().join(name),
        &format!("rootfs {name} not built: run tests/rigs/rootfs.sh {name}"),
    )
}

/// A fresh, empty scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("containerspec-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A scratch directory removed on drop, unique per test process and call.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("containerspec-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `Version:` of an installed package in a root's dpkg database.
pub fn dpkg_version(root: &Path, package: &str) -> Option<String> {
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).ok()?;
    status.split("\n\n").find_map(|stanza| {
        let mut lines = stanza.lines();
        let is_pkg = lines.any(|l| l == format!("Package: {package}"));
        let installed = stanza
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with(" installed"));
        if !(is_pkg && installed) {
            return None;
        }
        stanza
            .lines()
            .find_map(|l| l.strip_prefix("Version: ").map(str::to_string))
    })
}

/// The upstream part of a Debian version: `4.3.0+really4.2.1-1` -> `4.2.1`,
/// `2.36-9+deb12u4` -> `2.36`, `1:2.3-1` -> `2.3`.
pub fn upstream_version(debian: &str) -> String {
    let no_epoch = debian.split_once(':').map_or(debian, |(_, v)| v);
    let no_revision = no_epoch.rsplit_once('-').map_or(no_epoch, |(v, _)| v);
    let real = no_revision
        .rsplit_once("really")
        .map_or(no_revision, |(_, v)| v);
    real.split(['+', '~']).next().unwrap_or(real).to_string()
}

/// The prerequisites of the hook tests: root, the named tools, and this machine being an
/// MPICH host. Says what is missing and returns false when one is.
pub fn hook_prerequisites(tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!(
            "skipping: needs root ({}, mount namespaces)",
            tools.join(", ")
        );
        return false;
    }
    for tool in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("skipping: {tool} is not installed (tests/rigs/setup.sh installs it)");
            return false;
        }
    }
    if dpkg_version(Path::new("/"), "libmpich12").is_none() {
        eprintln!(
            "skipping: this machine is not an MPICH host (tests/rigs/setup.sh installs mpich)"
        );
        return false;
    }
    true
}

/// This process's mount table, sorted: compared before and after to show that nothing
/// was left in the host's mount namespace.
pub fn mountinfo() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// This machine's MPICH version, from its package database.
pub fn host_mpich() -> String {
    upstream_version(&dpkg_version(Path::new("/"), "libmpich12").expect("libmpich12 installed"))
}

/// True when an MPI program's output (MPI_Get_library_version) names MPICH `version`.
pub fn reports_mpich(output: &str, version: &str) -> bool {
    output.lines().any(|l| {
        l.strip_prefix("MPICH Version:")
            .is_some_and(|v| v.trim() == version)
    })
}

/// Runs the shell `script` in a private mount namespace of its own (`unshare --mount
/// --propagation private`), so that nothing it mounts outlives it; panics with its
/// stderr when the script itself fails.
pub fn in_private_mount_namespace(script: &str) -> Output {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Is the test process root (for tests that need it)?
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// True as root; otherwise says why the test does not run and returns false. With
/// CONTAINERSPEC_REQUIRE_ROOTFS=1 (CI, which runs as root) not being root fails instead.
pub fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
        "needs root ({why})"
    );
    eprintln!("skipping: needs root ({why})");
    false
}

#[test]
fn upstream_versions() {
    assert_eq!(upstream_version("4.3.0+really4.2.1-1"), "4.2.1");
    assert_eq!(upstream_version("2.36-9+deb12u4"), "2.36");
    assert_eq!(upstream_version("4.1.4-3+b1"), "4.1.4");
    assert_eq!(upstream_version("1:2.3-1"), "2.3");
}

/// `dir` when its rig recipe stamp (`.containerspec-recipe`) says it was built, or None
/// (after saying `hint`). With CONTAINERSPEC_REQUIRE_ROOTFS=1 (CI) a missing one fails.
pub fn built(dir: PathBuf, hint: &str) -> Option<PathBuf> {
    if dir.join(".containerspec-recipe").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
        "{hint}"
    );
    eprintln!("skipping: {hint}");
    None
}

/// A `check-bundle --json` verdict, read from its output (exit 0 or 1 asserted).
pub struct Judged {
    pub report: serde_json::Value,
    pub verdict: String,
    /// The error findings, most severe first, and their codes.
    pub errors: Vec<serde_json::Value>,
    pub codes: Vec<String>,
    /// The plan's mounts: (source, destination, kind).
    pub mounts: Vec<(String, String, String)>,
    /// The plan's environment, `NAME=value`.
    pub env: Vec<String>,
    pub has_cache: bool,
}

impl Judged {
    pub fn read(what: &str, out: &Output) -> Judged {
        let code = out.status.code();
        assert!(
            matches!(code, Some(0) | Some(1)),
            "{what}: exit {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let verdict = report["verdict"].as_str().unwrap().to_string();
        assert_eq!(code == Some(0), verdict == "compatible", "{what}");
        let errors: Vec<serde_json::Value> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .cloned()
            .collect();
        let codes = errors
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect();
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
        let mounts = report["plan"]["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    text(&m["source"]),
                    text(&m["destination"]),
                    text(&m["kind"]),
                )
            })
            .collect();
        let env = report["plan"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}={}", text(&e["name"]), text(&e["value"])))
            .collect();
        let has_cache = !report["plan"]["ld_cache"].is_null();
        Judged {
            verdict,
            errors,
            codes,
            mounts,
            env,
            has_cache,
            report,
        }
    }
}

/// A loopback port nobody listens on now (a rig's daemon binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The last `lines` lines of a log file (for a rig's panic messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Says why a prerequisite is missing and returns false; with
/// CONTAINERSPEC_REQUIRE_ROOTFS=1 (CI) a missing one fails the test instead.
pub fn missing(hint: &str) -> bool {
    assert!(
        std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
        "{hint}"
    );
    eprintln!("skipping: {hint}");
    false
}
