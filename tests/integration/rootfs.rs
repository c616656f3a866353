//! The root-confined resolver: symlinks (absolute or relative, to files or directories)
//! and `..` never lead out of the root, loops end in an error, and both the kernel
//! (`openat2`) and the user-space resolver behave the same.

use std::os::unix::fs::{OpenOptionsExt, symlink};
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

/// The IN_OPEN events inotify saw on `path` while `during` ran: a special file is never
/// to be opened (opening a device can have side effects), only looked at.
fn opens_of(path: &Path, during: impl FnOnce()) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain syscalls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        assert!(fd >= 0, "inotify_init1");
        assert!(libc::inotify_add_watch(fd, name.as_ptr(), libc::IN_OPEN) >= 0);
        during();
        let mut buf = [0u8; 4096];
        let mut opens = 0;
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            while at + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                let event = buf
                    .as_ptr()
                    .add(at)
                    .cast::<libc::inotify_event>()
                    .read_unaligned();
                if event.mask & libc::IN_OPEN != 0 {
                    opens += 1;
                }
                at += std::mem::size_of::<libc::inotify_event>() + event.len as usize;
            }
        }
        libc::close(fd);
        opens
    }
}

#[test]
fn special_files_are_looked_at_never_opened() {
    let (root, _) = trap_root("special");
    let fifo = root.join("etc/ld.so.cache");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    symlink("/etc/ld.so.cache", root.join("lib/libcache.so.1")).unwrap();
    // The probe works: reading the FIFO's path by hand is seen.
    let seen = opens_of(&fifo, || {
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    });
    assert_eq!(seen, 1, "inotify must see a plain open");
    for r in both(&root) {
        let opens = opens_of(&fifo, || {
            for path in ["/etc/ld.so.cache", "/lib/libcache.so.1"] {
                assert!(r.open_file(path).is_err());
                assert!(r.read_text(path).is_err());
                assert_eq!(
                    r.kind(path),
                    Some(containerspec::input::rootfs::EntryKind::Other)
                );
            }
            r.walk_files("/", &[], &mut |_, _| {}).unwrap();
        });
        assert_eq!(opens, 0, "{r:?} opened the FIFO");
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
