//! Mount points the hook has to create, and where it may. A mount needs an existing file
//! or directory to cover; where the container has none (containerspec's own directory,
//! an MPI installation's prefix), the hook creates an empty one. Only on the rootfs's own
//! filesystem, or on a filesystem of the container's own that nothing outside it mounts
//! (the tmpfs a runtime puts on `/run` for a read-only rootfs): never on a volume, where
//! an empty file created by real root would land on the host's directory.
//!
//! Telling the two apart takes the runtime's mount table, read before the hook joins the
//! container's namespace: a filesystem mounted there (by device) is shared with the
//! outside. A hook already inside the container's namespace (`createContainer`) cannot
//! read it, and creates mount points on the rootfs's own filesystem only.
//!
//! What is created on the rootfs's own filesystem is recorded, and removed once the
//! container is gone (`poststop`) or the injection fails: a rootfs directory a user
//! passed (`runc` with a plain directory) is left as it was. Removal re-checks each
//! entry's identity (device and inode) and that it is still empty.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde::{Deserialize, Serialize};

use super::mount::MountError;
use super::mountinfo;
use crate::store::Store;

/// One mount point created on the rootfs's own filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stub {
    /// Inside the rootfs, without a leading `/`.
    pub path: String,
    pub directory: bool,
    pub dev: u64,
    pub ino: u64,
}

/// Where mount points may be created, and the ones created on the rootfs's own
/// filesystem.
#[derive(Debug, Default)]
pub struct Stubs {
    /// The devices of the filesystems mounted in the runtime's namespace, when the hook
    /// read them there before joining the container's.
    outside: Option<BTreeSet<String>>,
    rootfs_mount: Option<u64>,
    pub created: Vec<Stub>,
}

impl Stubs {
    /// `outside`: the runtime's mount table's devices (see [`outside_devices`]), or None
    /// where the hook started inside the container's namespace.
    pub fn new(outside: Option<BTreeSet<String>>) -> Stubs {
        Stubs {
            outside,
            rootfs_mount: None,
            created: Vec::new(),
        }
    }

    /// Notes which mount the rootfs itself is (as `apply` opened it).
    pub(super) fn set_root(&mut self, root: BorrowedFd<'_>) -> Result<(), MountError> {
        let id = mountinfo::mount_id(root).map_err(|errno| MountError::MountTable {
            path: "/".into(),
            errno,
        })?;
        self.rootfs_mount = Some(id);
        Ok(())
    }

    /// Checks that a mount point for `destination` may be created in `dir`; true when
    /// `dir` is on the rootfs's own filesystem (what is created there is recorded).
    pub(super) fn may_create_in(
        &self,
        dir: BorrowedFd<'_>,
        destination: &str,
    ) -> Result<bool, MountError> {
        let table_error = |errno| MountError::MountTable {
            path: destination.into(),
            errno,
        };
        let id = mountinfo::mount_id(dir).map_err(table_error)?;
        if Some(id) == self.rootfs_mount {
            return Ok(true);
        }
        let table = mountinfo::read()
            .map_err(|e| table_error(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
        let entry = table
            .iter()
            .find(|m| m.id == id)
            .ok_or(table_error(Errno::ENOENT))?;
        let refuse = |why: &'static str| MountError::OutsideRootfs {
            path: destination.into(),
            mount_point: entry.mount_point.display().to_string(),
            why,
        };
        match &self.outside {
            Some(devices) if !devices.contains(&entry.device) => Ok(false),
            Some(_) => Err(refuse(
                "a filesystem also mounted outside the container (a volume)",
            )),
            None => Err(refuse(
                "not the rootfs's own filesystem, and a hook that starts inside the \
                 container's namespace (createContainer) cannot tell a volume from a \
                 filesystem of the container's own (register it at createRuntime)",
            )),
        }
    }

    /// Records `name`, just created in `dir` (on the rootfs's own filesystem) for
    /// `path`.
    pub(super) fn record(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &str,
        path: String,
        directory: bool,
    ) {
        if let Ok(st) = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            self.created.push(Stub {
                path,
                directory,
                dev: st.st_dev,
                ino: st.st_ino,
            });
        }
    }
}

/// The devices of every filesystem this namespace has mounted.
pub fn outside_devices() -> Option<BTreeSet<String>> {
    let table = mountinfo::read().ok()?;
    Some(table.into_iter().map(|m| m.device).collect())
}

/// Removes the recorded mount points below `root`, newest first: each only when it is
/// still the same entry (device and inode), not a symlink, and empty (a directory with
/// nothing in it, a file of size 0). Returns how many went.
pub fn remove(root: BorrowedFd<'_>, stubs: &[Stub]) -> usize {
    let mut removed = 0;
    for stub in stubs.iter().rev() {
        let (parent, name) = match stub.path.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => (".", stub.path.as_str()),
        };
        let Ok(dir) =
            crate::input::rootfs::open_in_root(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
        else {
            continue;
        };
        let Ok(st) = fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let same = (st.st_dev, st.st_ino) == (stub.dev, stub.ino);
        let empty_file = kind == SFlag::S_IFREG && st.st_size == 0;
        let dir_kind = kind == SFlag::S_IFDIR;
        if !same || (stub.directory != dir_kind) || (!stub.directory && !empty_file) {
            continue;
        }
        let how = if stub.directory {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        // A directory that is not empty (the container wrote into it) stays: rmdir
        // refuses it.
        if unlinkat(dir.as_fd(), name, how).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The record of a container's mount points: `ID.stubs.json` in containerspec's directory.
const RECORD: &str = ".stubs.json";
/// A record larger than this is not one this program wrote.
const MAX_RECORD: u64 = 1 << 20;

/// Records the mount points created for container `id`.
pub fn save(store: &Store, id: &str, created: &[Stub]) -> Result<(), String> {
    let bytes = serde_json::to_vec(created).map_err(|e| e.to_string())?;
    store
        .write(&format!("{id}{RECORD}"), &bytes)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Removes the mount points recorded for container `id` from `rootfs` (see [`remove`]),
/// then the record; without a rootfs (gone already) only the record.
pub fn remove_recorded(store: &Store, id: &str, rootfs: Option<&Path>) {
    let name = format!("{id}{RECORD}");
    let Ok(Some(bytes)) = store.read(&name, MAX_RECORD) else {
        return;
    };
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if let (Ok(stubs), Some(rootfs)) = (serde_json::from_slice::<Vec<Stub>>(&bytes), rootfs) {
        if let Ok(root) = nix::fcntl::open(rootfs, flags, Mode::empty()) {
            remove(root.as_fd(), &stubs);
        }
    }
    let _ = store.remove(&name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn stub(root: &std::path::Path, path: &str, directory: bool) -> Stub {
        let meta = std::fs::symlink_metadata(root.join(path)).unwrap();
        Stub {
            path: path.into(),
            directory,
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Only what is still the same, empty entry goes; a directory the container wrote
    /// into, a file with content, an entry replaced since, and a symlink all stay.
    #[test]
    fn removal_takes_only_the_same_empty_entries() {
        let base = std::env::temp_dir().join(format!("containerspec-stubs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("run/containerspec/lib")).unwrap();
        std::fs::write(base.join("run/containerspec/lib/libhwloc.so.15"), "").unwrap();
        std::fs::create_dir_all(base.join("sw/mpich")).unwrap();
        std::fs::write(base.join("sw/mpich/note"), "written by the container").unwrap();
        std::fs::write(base.join("written"), "").unwrap();
        std::fs::write(base.join("replaced"), "").unwrap();
        let stubs = vec![
            stub(&base, "run/containerspec", true),
            stub(&base, "run/containerspec/lib", true),
            stub(&base, "run/containerspec/lib/libhwloc.so.15", false),
            stub(&base, "sw", true),
            stub(&base, "sw/mpich", true),
            stub(&base, "written", false),
            stub(&base, "replaced", false),
        ];
        std::fs::write(base.join("written"), "content").unwrap();
        std::fs::remove_file(base.join("replaced")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", base.join("replaced")).unwrap();
        let root = std::fs::File::open(&base).unwrap();
        assert_eq!(remove(root.as_fd(), &stubs), 3);
        assert!(!base.join("run/containerspec").exists());
        assert!(base.join("run").is_dir());
        assert!(base.join("sw/mpich/note").is_file());
        assert!(base.join("written").is_file());
        assert!(base.join("replaced").is_symlink());
        let _ = std::fs::remove_dir_all(&base);
    }
}
