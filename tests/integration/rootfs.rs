//! The root-confined resolver: symlinks (absolute or relative, to files or directories)
//! and `..` never lead out of the root, loops end in an error, and both the kernel
//! (`openat2`) and the user-space resolver behave the same.

use std::os::unix::fs::symlink;
use std::path::Path;

use containerspec::input::rootfs::{PathProblem, RootError, RootFs};

use crate::util::scratch;

/// A root with traps, next to a "host" directory holding a secret the root must never reach.
fn trap_root(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = scratch(name);
    let host = base.join("host");
    let root = base.join("root");
    std::fs::create_dir_all(host.join("etc")).unwrap();
    std::fs::write(host.join("etc/shadow"), "HOST SECRET").unwrap();
    for d in ["etc", "opt/real", "usr/lib", "lib", "loops"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/shadow"), "container decoy").unwrap();
    std::fs::write(root.join("opt/real/libx.so.1"), "lib x").unwrap();
    symlink("/opt/real/libx.so.1", root.join("usr/lib/libx.so.1")).unwrap();
    // Absolute and relative escapes, pointing at the host's secret.
    symlink(host.join("etc/shadow"), root.join("lib/abs-escape")).unwrap();
    symlink(
        "../../../../../../../../etc/shadow",
        root.join("lib/rel-escape"),
    )
    .unwrap();
    symlink("/", root.join("hostroot")).unwrap();
    symlink("..", root.join("up")).unwrap();
    symlink("b", root.join("loops/a")).unwrap();
    symlink("a", root.join("loops/b")).unwrap();
    symlink("self", root.join("loops/self")).unwrap();
    (root, host)
}

fn both(root: &Path) -> [RootFs; 2] {
    [
        RootFs::open(root).unwrap(),
        RootFs::open_without_openat2(root).unwrap(),
    ]
}

fn read(r: &RootFs, p: &str) -> Result<String, RootError> {
    r.read_text(p)
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let (root, _) = trap_root("abs");
    for r in both(&root) {
        assert_eq!(read(&r, "/usr/lib/libx.so.1").unwrap(), "lib x");
        assert_eq!(
            r.canonicalize("/usr/lib/libx.so.1").unwrap(),
            "/opt/real/libx.so.1"
        );
    }
}

#[test]
fn escapes_land_inside_the_root() {
    let (root, host) = trap_root("escape");
    // The host path as an absolute symlink target is looked up *inside* the root, where
    // it does not exist.
    let inside = format!("{}/etc/shadow", host.display());
    for r in both(&root) {
        let err = read(&r, "/lib/abs-escape").unwrap_err();
        assert!(
            err.is_not_found(),
            "{err} (looked up {inside} inside the root)"
        );
        assert_eq!(read(&r, "/lib/rel-escape").unwrap(), "container decoy");
        assert_eq!(read(&r, "/hostroot/etc/shadow").unwrap(), "container decoy");
        assert_eq!(
            read(&r, "/up/up/../../etc/shadow").unwrap(),
            "container decoy"
        );
        assert_eq!(
            read(&r, "../../../../etc/shadow").unwrap(),
            "container decoy"
        );
        assert_eq!(r.canonicalize("/hostroot/hostroot/etc").unwrap(), "/etc");
    }
}

#[test]
fn loops_end_in_an_error() {
    let (root, _) = trap_root("loops");
    for r in both(&root) {
        for p in ["/loops/a", "/loops/self", "/loops/a/x"] {
            let err = read(&r, p).unwrap_err();
            assert!(
                matches!(
                    err,
                    RootError::Path {
                        reason: PathProblem::Loop,
                        ..
                    }
                ),
                "{p}: {err}"
            );
            assert!(
                err.to_string()
                    .contains("too many levels of symbolic links"),
                "{err}"
            );
        }
    }
}

#[test]
fn files_are_not_directories() {
    let (root, _) = trap_root("notdir");
    for r in both(&root) {
        let err = read(&r, "/etc/shadow/x").unwrap_err();
        assert!(
            matches!(
                err,
                RootError::Path {
                    reason: PathProblem::NotADirectory,
                    ..
                }
            ),
            "{err}"
        );
        let err = read(&r, "/etc").unwrap_err();
        assert!(
            matches!(
                err,
                RootError::Path {
                    reason: PathProblem::NotARegularFile,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn fifos_are_refused_without_blocking() {
    let (root, _) = trap_root("fifo");
    nix::unistd::mkfifo(
        &root.join("lib/libfifo.so.1"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    for r in both(&root) {
        let err = read(&r, "/lib/libfifo.so.1").unwrap_err();
        assert!(
            matches!(
                err,
                RootError::Path {
                    reason: PathProblem::NotARegularFile,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn the_walk_never_follows_symlinks() {
    let (root, _) = trap_root("walk");
    let r = RootFs::open(&root).unwrap();
    let mut seen = Vec::new();
    r.walk_files("/", &[], &mut |p, f| {
        assert!(f.is_ok(), "{p}");
        seen.push(p.to_string());
    })
    .unwrap();
    seen.sort();
    assert_eq!(seen, vec!["/etc/shadow", "/opt/real/libx.so.1"]);
}

#[test]
fn roots_that_are_not_directories() {
    let base = scratch("notroot");
    std::fs::write(base.join("file"), "x").unwrap();
    let err = RootFs::open(base.join("file")).unwrap_err();
    assert!(matches!(err, RootError::RootNotADirectory { .. }), "{err}");
    let err = RootFs::open(base.join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
