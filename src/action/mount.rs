//! Carries out an injection plan's mounts inside the container's mount namespace, before
//! the runtime pivots into the rootfs. Every target is resolved confined to the rootfs
//! (`openat2` with `RESOLVE_IN_ROOT`), created there when missing (directories one level
//! at a time with `mkdirat`, files with `O_CREAT|O_EXCL|O_NOFOLLOW`), and mounted through
//! file descriptors, so a symlink in the image can never redirect a mount onto the host.
//! A final component that is a symlink is refused.
//!
//! A classic bind mount cannot take its source from another mount namespace, so each
//! source is cloned as a detached mount (`open_tree(OPEN_TREE_CLONE)`) while still in the
//! host's namespace, made read-only, nosuid, nodev and private there (`mount_setattr`),
//! and attached in the container's namespace with `move_mount`: it appears already
//! read-only. On any failure the mounts already made are undone, in reverse order.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::mount::{MntFlags, umount2};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};

use super::stubs::Stubs;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{path}: cannot open the mount source: {errno}")]
    Source { path: String, errno: Errno },
    #[error("{rootfs}: cannot open the rootfs: {errno}")]
    Rootfs { rootfs: String, errno: Errno },
    #[error("{path} (in the rootfs): {what}: {errno}")]
    Target {
        path: String,
        what: &'static str,
        errno: Errno,
    },
    #[error("{path} (in the rootfs): is a symlink; refusing to mount over it")]
    Symlink { path: String },
    #[error("{path} (in the rootfs): is a {found}, the mount needs a {wanted}")]
    Kind {
        path: String,
        found: &'static str,
        wanted: &'static str,
    },
    #[error("{path} (in the rootfs): mount failed: {errno}")]
    Mount { path: String, errno: Errno },
    /// After all mounts were made, this destination no longer shows the mount made for
    /// it (a directory renamed during the hook): everything was undone.
    #[error(
        "{path} (in the rootfs): after mounting, the path no longer shows the mount made \
         there (was a directory renamed meanwhile?); every mount was undone"
    )]
    Moved { path: String },
    /// The mount under the destination is shared: a mount made there would propagate to
    /// its peers, possibly in the host's namespace.
    #[error(
        "{path} (in the rootfs): lies on {mount_point}, a shared mount: a mount made there \
         would propagate to other mount namespaces (the host's among them); refusing to \
         mount (make the container's rootfs propagation slave or private, runc's default)"
    )]
    Shared { path: String, mount_point: String },
    /// The mount point would have to be created on a filesystem that is not the
    /// rootfs's own nor one of the container's own.
    #[error(
        "{path} (in the rootfs): its mount point would be created on {mount_point}, {why}; \
         refusing to create anything there"
    )]
    OutsideRootfs {
        path: String,
        mount_point: String,
        why: &'static str,
    },
    #[error("{path} (in the rootfs): cannot tell which mount it lies on: {errno}")]
    MountTable { path: String, errno: Errno },
}

/// One mount to make: an opened host source and where it goes inside the rootfs.
pub struct Bind {
    pub source: OwnedFd,
    pub source_path: String,
    pub destination: String,
    pub directory: bool,
}

impl Bind {
    /// Clones the host source as a detached, read-only, nosuid, nodev, private mount,
    /// now, in the host's mount namespace.
    pub fn open(source: &str, destination: &str, directory: bool) -> Result<Bind, MountError> {
        let err = |errno| MountError::Source {
            path: source.to_string(),
            errno,
        };
        let tree = open_tree_clone(source).map_err(err)?;
        set_read_only(tree.as_fd()).map_err(err)?;
        Ok(Bind {
            source: tree,
            source_path: source.to_string(),
            destination: destination.to_string(),
            directory,
        })
    }
}

fn open_tree_clone(path: &str) -> Result<OwnedFd, Errno> {
    let c_path = std::ffi::CString::new(path).map_err(|_| Errno::EINVAL)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: a valid NUL-terminated path and flags; the result is a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    let fd = Errno::result(fd)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: open_tree returned a descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn set_read_only(tree: BorrowedFd<'_>) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: a detached mount's descriptor, an empty path with AT_EMPTY_PATH, and a
    // mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(rc).map(drop)
}

fn move_mount_to(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let empty = c"";
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: two valid descriptors with empty paths and the matching flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            flags,
        )
    };
    Errno::result(rc).map(drop)
}

/// Makes every mount under `rootfs` or none: on error, the ones made are undone and the
/// mount points created for them removed. Mount points are created only where `stubs`
/// allows, and those created on the rootfs's own filesystem are left recorded there.
pub fn apply(rootfs: &Path, binds: &[Bind], stubs: &mut Stubs) -> Result<usize, MountError> {
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| MountError::Rootfs {
        rootfs: rootfs.display().to_string(),
        errno,
    })?;
    stubs.set_root(root.as_fd())?;
    let mut made: Vec<OwnedFd> = Vec::new();
    let mut result = Ok(());
    for bind in binds {
        match mount_one(root.as_fd(), bind, stubs) {
            Ok(top) => made.push(top),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        result = verify(root.as_fd(), binds, &made);
    }
    if let Err(e) = result {
        undo(&made);
        super::stubs::remove(root.as_fd(), &stubs.created);
        stubs.created.clear();
        return Err(e);
    }
    Ok(made.len())
}

/// Checks, once every mount is made, that each destination resolved afresh inside the
/// rootfs is the mount made for it (the same file on the same device as the mount's
/// top). A directory renamed out of the way during the hook would leave a mount where
/// the container does not look, and the job would run on the container's own library.
fn verify(root: BorrowedFd<'_>, binds: &[Bind], made: &[OwnedFd]) -> Result<(), MountError> {
    for (bind, top) in binds.iter().zip(made) {
        let moved = || MountError::Moved {
            path: bind.destination.clone(),
        };
        let at = crate::input::rootfs::open_in_root(root, &bind.destination, OFlag::O_PATH)
            .map_err(|_| moved())?;
        let (seen, ours) = (fstat(at.as_fd()), fstat(top.as_fd()));
        match (seen, ours) {
            (Ok(a), Ok(b)) if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) => {}
            _ => return Err(moved()),
        }
    }
    Ok(())
}

/// Detaches the mounts made so far, newest first.
fn undo(made: &[OwnedFd]) {
    for top in made.iter().rev() {
        if let Err(errno) = umount2(fd_path(top.as_fd()).as_str(), MntFlags::MNT_DETACH) {
            log::warn!("cannot undo a mount: {errno}");
        }
    }
}

fn mount_one(root: BorrowedFd<'_>, bind: &Bind, stubs: &mut Stubs) -> Result<OwnedFd, MountError> {
    let (parent, name, dirs) = ensure_parent(root, &bind.destination, stubs)?;
    ensure_target(parent.as_fd(), &name, bind, stubs, &dirs)?;
    let target = open_nofollow(parent.as_fd(), &name, &bind.destination)?;
    refuse_shared(target.as_fd(), &bind.destination)?;
    move_mount_to(bind.source.as_fd(), target.as_fd()).map_err(|errno| MountError::Mount {
        path: bind.destination.clone(),
        errno,
    })?;
    // The descriptor opened before the move names the covered file; open again to hold
    // the new mount's top (for undoing it).
    open_nofollow(parent.as_fd(), &name, &bind.destination)
}

/// A mount attached at `target` joins the propagation of the mount `target` lies on: on
/// a shared mount it would be copied to every peer, and a peer can be in the host's
/// namespace (a rootfs with `shared` propagation). Such a destination is refused.
fn refuse_shared(target: BorrowedFd<'_>, destination: &str) -> Result<(), MountError> {
    let table_error = |errno| MountError::MountTable {
        path: destination.into(),
        errno,
    };
    let id = super::mountinfo::mount_id(target).map_err(table_error)?;
    let table = super::mountinfo::read()
        .map_err(|e| table_error(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    let entry = table
        .iter()
        .find(|m| m.id == id)
        .ok_or(table_error(Errno::ENOENT))?;
    if entry.is_shared() {
        return Err(MountError::Shared {
            path: destination.into(),
            mount_point: entry.mount_point.display().to_string(),
        });
    }
    Ok(())
}

/// Resolves (creating what is missing) the destination's parent directory inside the
/// rootfs, and returns it with the final name and the parent's path. Every lookup starts
/// at the rootfs with `RESOLVE_IN_ROOT`, so an absolute symlink in the image resolves
/// inside it.
fn ensure_parent(
    root: BorrowedFd<'_>,
    destination: &str,
    stubs: &mut Stubs,
) -> Result<(OwnedFd, String, String), MountError> {
    let parts: Vec<&str> = destination
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let bad = |what| MountError::Target {
        path: destination.into(),
        what,
        errno: Errno::EINVAL,
    };
    if parts.contains(&"..") {
        return Err(bad("contains .."));
    }
    let Some((name, dirs)) = parts.split_last() else {
        return Err(bad("not a path below the root"));
    };
    // Find the deepest existing directory, create the next one, and look again from the
    // root; a loop bound stops a dangling symlink from making this go round for ever.
    let mut depth = dirs.len();
    for _ in 0..(2 * dirs.len() + 2) {
        let prefix = if depth == 0 {
            ".".to_string()
        } else {
            dirs[..depth].join("/")
        };
        match open_in_root(root, &prefix, destination) {
            Ok(fd) if depth == dirs.len() => return Ok((fd, (*name).to_string(), prefix)),
            Ok(fd) => {
                let own = stubs.may_create_in(fd.as_fd(), destination)?;
                match mkdirat(fd.as_fd(), dirs[depth], Mode::from_bits_truncate(0o755)) {
                    Ok(()) => {
                        if own {
                            let path = dirs[..=depth].join("/");
                            stubs.record(fd.as_fd(), dirs[depth], path, true);
                        }
                        depth += 1;
                    }
                    Err(Errno::EEXIST) => depth += 1,
                    Err(errno) => {
                        return Err(MountError::Target {
                            path: destination.into(),
                            what: "cannot create a directory",
                            errno,
                        });
                    }
                }
            }
            Err(MountError::Target {
                errno: Errno::ENOENT,
                ..
            }) if depth > 0 => depth -= 1,
            Err(e) => return Err(e),
        }
    }
    Err(MountError::Target {
        path: destination.into(),
        what: "cannot create its directory (a dangling symlink?)",
        errno: Errno::ELOOP,
    })
}

/// Opens a directory below the rootfs, resolving symlinks as if the rootfs were `/`: the
/// same confined resolution the readers use (the kernel's `RESOLVE_IN_ROOT` with its
/// retry, else the user-space walk).
fn open_in_root(
    root: BorrowedFd<'_>,
    path: &str,
    destination: &str,
) -> Result<OwnedFd, MountError> {
    crate::input::rootfs::open_in_root(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(
        |problem| MountError::Target {
            path: destination.into(),
            what: "cannot open a directory",
            errno: problem.errno(),
        },
    )
}

/// Creates the target when it is missing (where `stubs` allows) and checks its kind.
fn ensure_target(
    parent: BorrowedFd<'_>,
    name: &str,
    bind: &Bind,
    stubs: &mut Stubs,
    parent_path: &str,
) -> Result<(), MountError> {
    let path = &bind.destination;
    match open_nofollow(parent, name, path) {
        Ok(fd) => return check_kind(fd.as_fd(), bind),
        Err(MountError::Target {
            errno: Errno::ENOENT,
            ..
        }) => {}
        Err(e) => return Err(e),
    }
    let own = stubs.may_create_in(parent, path)?;
    let created = if bind.directory {
        mkdirat(parent, name, Mode::from_bits_truncate(0o755))
    } else {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        openat(parent, name, flags, Mode::from_bits_truncate(0o644)).map(drop)
    };
    match created {
        Ok(()) => {
            if own {
                let at = if parent_path == "." {
                    name.to_string()
                } else {
                    format!("{parent_path}/{name}")
                };
                stubs.record(parent, name, at, bind.directory);
            }
            Ok(())
        }
        Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(MountError::Target {
            path: path.clone(),
            what: "cannot create the mount point",
            errno,
        }),
    }
}

fn check_kind(fd: BorrowedFd<'_>, bind: &Bind) -> Result<(), MountError> {
    let st = fstat(fd).map_err(|errno| MountError::Target {
        path: bind.destination.clone(),
        what: "cannot stat",
        errno,
    })?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    let (found, wanted) = (
        if is_dir { "directory" } else { "file" },
        if bind.directory { "directory" } else { "file" },
    );
    if is_dir == bind.directory {
        Ok(())
    } else {
        Err(MountError::Kind {
            path: bind.destination.clone(),
            found,
            wanted,
        })
    }
}

/// Opens `name` in `parent` without following a final symlink; a symlink is refused.
fn open_nofollow(parent: BorrowedFd<'_>, name: &str, path: &str) -> Result<OwnedFd, MountError> {
    let fd = openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| MountError::Target {
        path: path.to_string(),
        what: "cannot open",
        errno,
    })?;
    let st = fstat(fd.as_fd()).map_err(|errno| MountError::Target {
        path: path.to_string(),
        what: "cannot stat",
        errno,
    })?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        return Err(MountError::Symlink {
            path: path.to_string(),
        });
    }
    Ok(fd)
}

fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves this test's thread into a mount namespace of its own, private throughout,
    /// so that the mounts it makes never reach the process's namespace; false (after
    /// saying why) where that needs root and the test is not root.
    fn own_mount_namespace() -> bool {
        if !nix::unistd::Uid::effective().is_root() {
            assert!(
                std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
                "needs root (a mount namespace)"
            );
            eprintln!("skipping: needs root (a mount namespace)");
            return false;
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        let flags = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE;
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).unwrap();
        true
    }

    /// A mount made and then moved out of the way (its directory renamed, a decoy put
    /// where it was) is found by the check and undone. Runs in a mount namespace of this
    /// test's thread alone; needs root.
    #[test]
    fn a_mount_moved_out_of_the_way_is_found_and_undone() {
        if !own_mount_namespace() {
            return;
        }
        let base =
            std::env::temp_dir().join(format!("containerspec-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let rootfs = base.join("rootfs");
        std::fs::create_dir_all(rootfs.join("usr/lib/mpi")).unwrap();
        std::fs::write(rootfs.join("usr/lib/mpi/libmpi.so.12"), "container's").unwrap();
        std::fs::write(base.join("host-lib"), "host's").unwrap();
        let source = base.join("host-lib").display().to_string();
        let bind = |dest: &str| Bind::open(&source, dest, false).unwrap();

        // In place: the check passes and the host's file shows at the destination.
        let binds = [bind("/usr/lib/mpi/libmpi.so.12")];
        assert_eq!(apply(&rootfs, &binds, &mut Stubs::default()).unwrap(), 1);
        let shown = rootfs.join("usr/lib/mpi/libmpi.so.12");
        assert_eq!(std::fs::read_to_string(&shown).unwrap(), "host's");
        umount2(&shown, MntFlags::MNT_DETACH).unwrap();

        // Moved: mount, rename the directory away, put a decoy where it was: the check
        // finds the destination is not the mount and undoes it.
        let root = nix::fcntl::open(
            &rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let binds = [bind("/usr/lib/mpi/libmpi.so.12")];
        let top = mount_one(root.as_fd(), &binds[0], &mut Stubs::default()).unwrap();
        std::fs::rename(rootfs.join("usr/lib/mpi"), rootfs.join("usr/lib/away")).unwrap();
        std::fs::create_dir_all(rootfs.join("usr/lib/mpi")).unwrap();
        std::fs::write(&shown, "decoy").unwrap();
        let made = [top];
        let err = verify(root.as_fd(), &binds, &made).unwrap_err();
        assert!(matches!(err, MountError::Moved { .. }), "{err}");
        undo(&made);
        let away = rootfs.join("usr/lib/away/libmpi.so.12");
        assert_eq!(std::fs::read_to_string(away).unwrap(), "container's");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A rootfs on a shared mount: a mount made in it would propagate to the mount's
    /// peers (here a second view of the same tmpfs, standing for the host's). Refused,
    /// and the peer never shows a mount. Runs in a mount namespace of this test's thread
    /// alone; needs root.
    #[test]
    fn a_destination_on_a_shared_mount_is_refused() {
        use nix::mount::{MsFlags, mount};
        if !own_mount_namespace() {
            return;
        }
        let base =
            std::env::temp_dir().join(format!("containerspec-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (rootfs, peer) = (base.join("rootfs"), base.join("peer"));
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::create_dir_all(&peer).unwrap();
        mount(
            Some("tmpfs"),
            &rootfs,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        mount(
            None::<&str>,
            &rootfs,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        mount(
            Some(&rootfs),
            &peer,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        std::fs::create_dir_all(rootfs.join("usr/lib")).unwrap();
        std::fs::write(rootfs.join("usr/lib/libmpi.so.12"), "container's").unwrap();
        std::fs::write(base.join("host-lib"), "host's").unwrap();
        let source = base.join("host-lib").display().to_string();
        let binds = [Bind::open(&source, "/usr/lib/libmpi.so.12", false).unwrap()];
        let err = apply(&rootfs, &binds, &mut Stubs::default()).unwrap_err();
        assert!(matches!(err, MountError::Shared { .. }), "{err}");
        let seen = std::fs::read_to_string(peer.join("usr/lib/libmpi.so.12")).unwrap();
        assert_eq!(seen, "container's");
        // The same rootfs made private takes the mount, and the peer does not see it.
        mount(
            None::<&str>,
            &rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        assert_eq!(apply(&rootfs, &binds, &mut Stubs::default()).unwrap(), 1);
        let shown = std::fs::read_to_string(rootfs.join("usr/lib/libmpi.so.12")).unwrap();
        assert_eq!(shown, "host's");
        let seen = std::fs::read_to_string(peer.join("usr/lib/libmpi.so.12")).unwrap();
        assert_eq!(seen, "container's");
        let _ = umount2(&rootfs.join("usr/lib/libmpi.so.12"), MntFlags::MNT_DETACH);
        let _ = umount2(&peer, MntFlags::MNT_DETACH);
        let _ = umount2(&rootfs, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&base);
    }
}
