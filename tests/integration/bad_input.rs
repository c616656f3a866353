//! Bad input never panics: a broken target is an error (exit 2) naming the file; a broken
//! file inside a rootfs is a finding naming that file while the rest is still reported.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::util::{assert_error, containerspec, is_root, json, scratch};

const LIBDIR: &str = "usr/lib/x86_64-linux-gnu";

/// A small real root: the host's glibc loader and libc, copied.
pub fn mini_root(name: &str) -> PathBuf {
    let root = scratch(name).join("rootfs");
    for d in ["lib64", LIBDIR, "etc", "bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    std::fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        root.join(LIBDIR).join("libc.so.6"),
    )
    .unwrap();
    root
}

/// A host root (`mini_root(name)`) whose NVIDIA driver library is a stand-in (a copy of
/// libz named `libcuda.so.550.54.14`, with its `libcuda.so.1` link): enough for a plan
/// that injects GPU libraries.
pub fn gpu_host_root(name: &str) -> PathBuf {
    let host = mini_root(name);
    let lib = host.join(LIBDIR);
    std::fs::copy(
        "/lib/x86_64-linux-gnu/libz.so.1",
        lib.join("libcuda.so.550.54.14"),
    )
    .unwrap();
    symlink("libcuda.so.550.54.14", lib.join("libcuda.so.1")).unwrap();
    host
}

/// A bundle around `rootfs` with `config` as config.json.
pub fn bundle_with_config(rootfs: &Path, config: &str) -> PathBuf {
    let bundle = rootfs.parent().unwrap().to_path_buf();
    std::fs::write(bundle.join("config.json"), config).unwrap();
    bundle
}

fn findings(inv: &serde_json::Value) -> Vec<(String, String)> {
    inv["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn inspect(root: &Path) -> serde_json::Value {
    json(&["inspect", root.to_str().unwrap()])
}

#[test]
fn target_that_does_not_exist() {
    let out = containerspec(&["inspect", "/nonexistent/rootfs"]);
    assert_error(&out, "/nonexistent/rootfs: no such file or directory");
}

#[test]
fn target_that_is_not_a_directory() {
    let dir = scratch("notdir");
    let file = dir.join("image.tar");
    std::fs::write(&file, "x").unwrap();
    let out = containerspec(&["inspect", file.to_str().unwrap()]);
    assert_error(&out, "image.tar: not a directory, SIF or squashfs image");
}

#[test]
fn host_root_that_does_not_exist() {
    let out = containerspec(&["host", "--root", "/nonexistent/host"]);
    assert_error(&out, "/nonexistent/host");
}

#[test]
fn bundle_with_broken_config_json() {
    let root = mini_root("broken-config");
    let bundle = bundle_with_config(&root, "{\"ociVersion\": \"1.0.2\", \"root\": ");
    let out = containerspec(&["inspect", bundle.to_str().unwrap()]);
    assert_error(&out, "config.json: invalid config.json");
}

#[test]
fn bundle_with_wrong_field_type() {
    let root = mini_root("config-type");
    let bundle = bundle_with_config(&root, r#"{"ociVersion": "1.0.2", "root": {"path": 42}}"#);
    let out = containerspec(&["inspect", bundle.to_str().unwrap()]);
    assert_error(&out, "config.json");
}

#[test]
fn bundle_whose_rootfs_is_missing() {
    let root = mini_root("missing-rootfs");
    let bundle = bundle_with_config(
        &root,
        r#"{"ociVersion": "1.0.2", "root": {"path": "no-such-rootfs"}}"#,
    );
    let out = containerspec(&["inspect", bundle.to_str().unwrap()]);
    assert_error(&out, "no-such-rootfs");
}

#[test]
fn a_minimal_root_is_reported() {
    let root = mini_root("minimal");
    let inv = inspect(&root);
    assert_eq!(inv["libc"]["family"], "glibc");
    assert_eq!(inv["libc"]["version"], "2.36");
    assert_eq!(inv["loader_cache"]["present"], false);
    assert!(findings(&inv).is_empty(), "{:?}", inv["findings"]);
}

#[test]
fn zero_length_and_corrupted_ld_so_cache() {
    for (name, bytes) in [
        ("empty", Vec::new()),
        (
            "garbage",
            b"glibc-ld.so.cache1.1\xff\xff\xff\xff garbage".to_vec(),
        ),
    ] {
        let root = mini_root(&format!("cache-{name}"));
        std::fs::write(root.join("etc/ld.so.cache"), bytes).unwrap();
        let inv = inspect(&root);
        assert_eq!(
            findings(&inv),
            vec![(
                "ld-cache-invalid".to_string(),
                "/etc/ld.so.cache".to_string()
            )],
            "{name}"
        );
        // The loader falls back to the system directories, as ld.so does.
        assert_eq!(inv["libc"]["version"], "2.36", "{name}");
    }
}

#[test]
fn truncated_and_non_elf_libraries() {
    let root = mini_root("bad-libs");
    let lib = root.join(LIBDIR);
    let real = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    std::fs::write(lib.join("libmpich.so.12"), &real[..600]).unwrap();
    std::fs::write(lib.join("libmpi.so.40"), "this is not an ELF file\n").unwrap();
    // An ELF identification and header start for x86-64, then garbage.
    let mut garbage = b"\x7fELF\x02\x01\x01".to_vec();
    garbage.resize(16, 0);
    garbage.extend_from_slice(&[3, 0, 0x3e, 0]);
    garbage.extend_from_slice(b"garbage after the header start");
    // Shorter than a 64-bit ELF header: glibc stops on it ("file too short").
    std::fs::write(lib.join("libmpi_abi.so.1"), &garbage).unwrap();
    // The same start, long enough to pass the loader's checks, then garbage.
    garbage.resize(200, b'x');
    std::fs::write(lib.join("libmpi.so.12"), &garbage).unwrap();
    let inv = inspect(&root);
    let mut got = findings(&inv);
    got.sort();
    let path = |n: &str| format!("/{LIBDIR}/{n}");
    assert_eq!(
        got,
        vec![
            ("malformed-elf".to_string(), path("libmpi.so.12")),
            ("malformed-elf".to_string(), path("libmpich.so.12")),
            ("unloadable-library".to_string(), path("libmpi.so.40")),
            ("unloadable-library".to_string(), path("libmpi_abi.so.1")),
        ],
        "{:?}",
        inv["findings"]
    );
    assert_eq!(inv["mpi"].as_array().unwrap().len(), 0);
    assert_eq!(inv["libc"]["version"], "2.36");
}

#[test]
fn symlink_loops_and_escapes_inside_the_rootfs() {
    let root = mini_root("links");
    let lib = root.join(LIBDIR);
    symlink("libmpich.so.12", lib.join("libmpich.so.12")).unwrap();
    // The host's own MPI (if any) at the very same path must not be what is read.
    symlink(
        "/usr/lib/x86_64-linux-gnu/libmpi.so.40",
        lib.join("libmpi.so.40"),
    )
    .unwrap();
    symlink(
        "../../../../../../../usr/lib/x86_64-linux-gnu/libmpi.so.12",
        lib.join("libmpi.so.12"),
    )
    .unwrap();
    symlink("/", root.join("usr/lib/x86_64-linux-gnu/hostroot")).unwrap();
    let inv = inspect(&root);
    assert_eq!(inv["mpi"].as_array().unwrap().len(), 0, "{:?}", inv["mpi"]);
    let got = findings(&inv);
    assert!(
        got.contains(&(
            "unloadable-library".to_string(),
            format!("/{LIBDIR}/libmpich.so.12")
        )),
        "the loop is reported: {got:?}"
    );
    let text =
        String::from_utf8(containerspec(&["inspect", root.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("too many levels of symbolic links"), "{text}");
}

#[test]
fn unreadable_files() {
    let root = mini_root("unreadable");
    let lib = root.join(LIBDIR);
    let real = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    std::fs::write(lib.join("libmpich.so.12"), &real).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        lib.join("libmpich.so.12"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let out = if is_root() {
        // Root reads anything: drop to nobody for this run.
        let mut dir = root.clone();
        while let Some(p) = dir.parent() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).ok();
            if p == std::env::temp_dir() {
                break;
            }
            dir = p.to_path_buf();
        }
        if std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
        {
            crate::skip!("setpriv not found to drop root privileges");
        }
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_containerspec"),
            ])
            .args(["inspect", "--json", root.to_str().unwrap()])
            .output()
            .unwrap()
    } else {
        containerspec(&["inspect", "--json", root.to_str().unwrap()])
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = findings(&inv);
    assert!(
        got.contains(&(
            "unloadable-library".to_string(),
            format!("/{LIBDIR}/libmpich.so.12")
        )),
        "{got:?}"
    );
    let messages = inv["findings"].to_string();
    assert!(messages.contains("permission denied"), "{messages}");
}

/// A loader cache made to cost time and memory (too large a file, too many entries) is
/// refused before it is read, and the verdict says it cannot judge: never compatible.
#[test]
fn oversized_loader_caches_are_refused_with_a_verdict() {
    use containerspec::ldcache::write::{NewEntry, write};
    let many: Vec<NewEntry> = (0..=containerspec::ldcache::MAX_ENTRIES)
        .map(|i| NewEntry {
            soname: format!("libx{i}.so.1"),
            path: format!("/usr/lib/libx{i}.so.1"),
            flags: 0x0303,
            hwcaps: None,
        })
        .collect();
    let too_many = write(&many).unwrap();
    type Make<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: [(&str, Make, &str); 2] = [
        (
            "file",
            Box::new(|p: &Path| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(17 << 20).unwrap();
            }),
            "file too large",
        ),
        (
            "entries",
            Box::new(|p: &Path| std::fs::write(p, &too_many).unwrap()),
            "100001 entries",
        ),
    ];
    let config = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/bin/none"],"user":{"uid":0,"gid":0}}}"#;
    for (name, make, said) in cases {
        let root = mini_root(&format!("big-ldcache-{name}"));
        make(&root.join("etc/ld.so.cache"));
        let bundle = bundle_with_config(&root, config);
        let start = std::time::Instant::now();
        let out = containerspec(&["check-bundle", bundle.to_str().unwrap(), "--json"]);
        eprintln!("{name}: judged in {:?}", start.elapsed());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let finding = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "ld-cache-too-large")
            .unwrap_or_else(|| panic!("{name}: {report}"));
        assert!(
            finding["message"].as_str().unwrap().contains(said),
            "{name}: {finding}"
        );
    }
}
