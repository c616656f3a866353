//! A library the loader refuses: glibc's `open_verify` stops the program at a file that is
//! shorter than an ELF header ("file too short") or has no ELF magic ("invalid ELF
//! header"), where it passes over a file of another class or machine. On a real MPICH
//! rootfs whose `libmpich.so.12` link is pointed at such a file (in an overlay, in a private
//! mount namespace), the verdict must be `incompatible` with `library-unloadable`, and the
//! container's program, run for real, must fail with the error the finding names.

use std::path::Path;
use std::process::Command;

use crate::inject_pairs::PROGRAM;
use crate::util::{cached_rootfs, scratch};

/// Runs, in a private mount namespace over an overlay of `rootfs` whose libmpich.so.12
/// points at a file of `content`: check-bundle (JSON) and then the program in a chroot.
/// Returns (check-bundle stdout, its exit status, the program's stderr).
fn judge_and_run(work: &Path, rootfs: &Path, content: &str) -> (String, i32, String) {
    let merged = work.join("merged");
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": merged},
        "process": {"cwd": "/", "args": [PROGRAM], "env": ["PATH=/usr/bin:/bin"],
                    "user": {"uid": 0, "gid": 0}},
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    std::fs::write(work.join("bad"), content).unwrap();
    let lib = merged.join("usr/lib/x86_64-linux-gnu");
    let script = format!(
        "set -e\nmkdir -p {w}/upper {w}/work {m}\n\
         mount -t overlay overlay -o lowerdir={r},upperdir={w}/upper,workdir={w}/work {m}\n\
         cp {w}/bad {lib}/libbad.txt\nrm -f {lib}/libmpich.so.12\nln -s libbad.txt {lib}/libmpich.so.12\n\
         set +e\n{cs} check-bundle {b} --host-root {m} --inject none --no-cache --json > {w}/verdict.json\n\
         echo $? > {w}/status\n\
         chroot {m} {PROGRAM} 2> {w}/run.err\n",
        w = work.display(),
        m = merged.display(),
        r = rootfs.display(),
        lib = lib.display(),
        b = bundle.display(),
        cs = env!("CARGO_BIN_EXE_containerspec"),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap_or_default();
    assert!(
        work.join("status").is_file(),
        "the rig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = read("status").trim().parse().unwrap();
    (read("verdict.json"), status, read("run.err"))
}

#[test]
fn a_library_the_loader_refuses_is_named_and_the_real_run_agrees() {
    if !crate::util::root_or_skip("mount namespaces, overlay") {
        return;
    }
    let Some(rootfs) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let cases = [
        ("not ELF\n", "file too short"),
        (
            &"not an ELF file, but longer than an ELF header. ".repeat(3)[..],
            "invalid ELF header",
        ),
    ];
    for (content, error) in cases {
        let work = scratch(&format!("unloadable-{}", error.replace(' ', "-")));
        let (verdict, status, run_err) = judge_and_run(&work, &rootfs, content);
        // The real loader stops with this error, naming the file.
        assert!(
            run_err.contains(error) && run_err.contains("libmpich.so.12"),
            "{error}: the program's stderr: {run_err}"
        );
        let report: serde_json::Value =
            serde_json::from_str(&verdict).unwrap_or_else(|e| panic!("{error}: {e}: {verdict}"));
        assert_eq!(status, 1, "{error}: {verdict}");
        assert_eq!(report["verdict"], "incompatible", "{error}");
        let finding = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "library-unloadable")
            .unwrap_or_else(|| panic!("{error}: no library-unloadable: {verdict}"));
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains(error) && message.contains("libmpich.so.12"),
            "{error}: {message}"
        );
        let _ = std::fs::remove_dir_all(&work);
    }
}
