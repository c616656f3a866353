//! Output to a reader that goes away: `containerspec ... | head -1` closes the pipe after
//! one line. The command stops writing and keeps its exit status (0, 1 for a negative
//! verdict), never a panic.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::util::{cached_rootfs, scratch};

/// Runs `args` with stdout on a pipe that is closed after the first bytes; returns the
/// exit code and stderr.
fn closed_after_first_bytes(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_containerspec"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    let n = stdout.read(&mut first).unwrap();
    assert!(n > 0, "{args:?} printed nothing");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_the_output_not_the_program() {
    let Some(root) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let Some(old) = cached_rootfs("bullseye-mpich") else {
        return;
    };
    let r = root.to_str().unwrap();
    // Far more than a pipe holds (64 KiB), so that writes meet the closed pipe.
    let (code, stderr) = closed_after_first_bytes(&["inspect", r, "--all", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stderr) = closed_after_first_bytes(&["inspect", r, "--all"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stderr) = closed_after_first_bytes(&["host", "--root", r, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A negative verdict keeps its status 1.
    let bundle = scratch("closed-pipe").join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": old},
        "process": {"cwd": "/", "args": [crate::inject_pairs::PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    for json in [false, true] {
        let mut args = vec![
            "check-bundle",
            bundle.to_str().unwrap(),
            "--host-root",
            r,
            "--no-cache",
        ];
        if json {
            args.push("--json");
        }
        let (code, stderr) = closed_after_first_bytes(&args);
        assert_eq!(code, Some(1), "json {json}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Man pages and completions come from the command definition: one page per command,
/// each with the options `--help` shows.
#[test]
fn man_pages_and_completions_are_generated() {
    let dir = scratch("generate-man");
    let out = crate::util::containerspec(&["generate", "man", "--dir", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "containerspec",
        "containerspec-host",
        "containerspec-inspect",
        "containerspec-check-bundle",
        "containerspec-hook",
        "containerspec-apptainer",
        "containerspec-singularity",
        "containerspec-generate",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        assert!(
            text.starts_with(".ie") && text.contains(".SH NAME"),
            "{page}"
        );
    }
    let check = std::fs::read_to_string(dir.join("containerspec-check-bundle.1")).unwrap();
    for option in ["inject", "host\\-root", "emit\\-ld\\-cache", "json"] {
        assert!(
            check.contains(option),
            "{option} not in the check-bundle page"
        );
    }
    assert!(!dir.join("containerspec-help.1").exists());
    let out = crate::util::containerspec(&["generate", "completions", "bash"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("check-bundle") && text.contains("--host-root"));
    let out = crate::util::containerspec(&["generate", "completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
