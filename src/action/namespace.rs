//! Proving which mount namespace the hook is in, and entering the container's. Mounts are
//! made only where this module has proved they land in the container's own namespace,
//! never in the host's or the runtime's:
//!
//! 1. `config.json` must ask for a new mount namespace (`linux.namespaces` has a `mount`
//!    entry without a path). A container that shares the runtime's namespace, or joins an
//!    existing one, has no namespace of its own to inject into: refused.
//! 2. The OCI state must carry the container's pid. The runtime gives it as its hook sees
//!    pids: in the runtime's pid namespace for `prestart` / `createRuntime`, in the
//!    container's for `createContainer` (runc passes its init's own pid, usually 1). So the
//!    pid is looked up in this process's own pid namespace (`pidfd_open`), never in
//!    `/proc`, which at `createContainer` is still the host's (`/proc/1` is the host's
//!    init). The process's `/proc` entry is then found through the pidfd's `fdinfo` and
//!    its mount namespace opened; the pidfd proves afterwards that the pid was not reused
//!    meanwhile.
//! 3. Identities (device and inode of `ns/mnt`) decide. The namespace of the init that
//!    `/proc` shows (the host's) is refused whatever else holds. A namespace other than the hook's
//!    own is joined (`setns`), and the join is checked; the hook's own namespace is
//!    accepted only when the container process is the hook's parent, which is how a
//!    runtime runs `createContainer` hooks (inside the namespace it made). Anything else
//!    is refused: no pid, no proof, no mount.
//!
//! Joining changes only this process: the host's namespace never sees the mounts.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};

use crate::input::bundle::MountNamespace;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "config.json asks for no mount namespace of the container's own (linux.namespaces has \
         no \"mount\" entry): the container shares the runtime's, and mounts would land on the \
         host; refusing to inject"
    )]
    Shared,
    #[error(
        "config.json joins an existing mount namespace ({path}): it may be shared with other \
         processes; refusing to inject"
    )]
    Joins { path: String },
    #[error(
        "the OCI state has no container pid: the container's mount namespace cannot be \
         proved; refusing to inject"
    )]
    NoPid,
    #[error("container pid {pid} (from the OCI state): {errno}")]
    Pidfd { pid: i32, errno: Errno },
    #[error(
        "container pid {pid} (from the OCI state) is not visible in this /proc: its mount \
         namespace cannot be opened; refusing to inject"
    )]
    NotVisible { pid: i32 },
    #[error("{path}: {source}")]
    Proc {
        path: String,
        source: std::io::Error,
    },
    #[error("container pid {pid} (from the OCI state) exited during the hook")]
    Exited { pid: i32 },
    #[error(
        "container pid {pid} (from the OCI state) is in this hook's own mount namespace but is \
         not the hook's parent (that is {parent}): this is the runtime's namespace, not one \
         made for the container; refusing to inject"
    )]
    NotProved { pid: i32, parent: i32 },
    #[error(
        "container pid {pid} (from the OCI state) is in the mount namespace of the init of \
         this /proc (pid 1), the host's: never one made for a container; refusing to inject"
    )]
    ProcInit { pid: i32 },
    #[error("joining the mount namespace of container pid {pid}: {errno}")]
    Join { pid: i32, errno: Errno },
    #[error(
        "after joining the mount namespace of container pid {pid}, this process is not in it; \
         refusing to inject"
    )]
    NotJoined { pid: i32 },
}

/// How the hook came to be in the container's mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entered {
    /// The hook ran in another namespace (the runtime's) and joined the container's.
    Joined,
    /// The hook runs inside it already, as the container process's child
    /// (`createContainer`).
    Inside,
}

/// The identity of a namespace: the device and inode of its `ns` file.
type NsId = (u64, u64);

/// Proves (see the module documentation) that mounts made next land in the container's
/// own mount namespace, joining it when the hook is elsewhere.
pub fn enter_container_namespace(
    config: Option<&MountNamespace>,
    pid: Option<i32>,
) -> Result<Entered, NamespaceError> {
    match config {
        Some(MountNamespace::New) => {}
        Some(MountNamespace::Join(path)) => {
            return Err(NamespaceError::Joins {
                path: path.display().to_string(),
            });
        }
        Some(MountNamespace::Shared) | None => return Err(NamespaceError::Shared),
    }
    let pid = pid.ok_or(NamespaceError::NoPid)?;
    let target = ContainerProcess::open(pid)?;
    // Whatever else holds, the namespace of the init that this /proc shows (the host's,
    // or an enclosing container's) is never the container's own. Where /proc hides pid 1
    // the proof above stands alone.
    if namespace_of("/proc/1/ns/mnt").is_ok_and(|init| init == target.namespace) {
        return Err(NamespaceError::ProcInit { pid });
    }
    let ours = own_namespace()?;
    if target.namespace == ours {
        let parent = nix::unistd::getppid().as_raw();
        return if parent == pid {
            Ok(Entered::Inside)
        } else {
            Err(NamespaceError::NotProved { pid, parent })
        };
    }
    setns(&target.ns_file, CloneFlags::CLONE_NEWNS)
        .map_err(|errno| NamespaceError::Join { pid, errno })?;
    if own_namespace()? != target.namespace {
        return Err(NamespaceError::NotJoined { pid });
    }
    Ok(Entered::Joined)
}

/// The container process, found by its pid in this process's pid namespace, with its
/// mount namespace opened.
struct ContainerProcess {
    ns_file: File,
    namespace: NsId,
}

impl ContainerProcess {
    fn open(pid: i32) -> Result<ContainerProcess, NamespaceError> {
        let pidfd = pidfd_open(pid).map_err(|errno| NamespaceError::Pidfd { pid, errno })?;
        let proc_pid = proc_pid_of(&pidfd)?.ok_or(NamespaceError::NotVisible { pid })?;
        let path = format!("/proc/{proc_pid}/ns/mnt");
        let ns_file = File::open(&path).map_err(|source| NamespaceError::Proc {
            path: path.clone(),
            source,
        })?;
        // Alive now means alive since the pidfd was opened: `proc_pid` was its pid when
        // the namespace file was opened, not a reused one.
        if !alive(&pidfd) {
            return Err(NamespaceError::Exited { pid });
        }
        let meta = ns_file
            .metadata()
            .map_err(|source| NamespaceError::Proc { path, source })?;
        Ok(ContainerProcess {
            ns_file,
            namespace: (meta.dev(), meta.ino()),
        })
    }
}

fn own_namespace() -> Result<NsId, NamespaceError> {
    namespace_of("/proc/thread-self/ns/mnt")
}

fn namespace_of(path: &str) -> Result<NsId, NamespaceError> {
    let meta = std::fs::metadata(path).map_err(|source| NamespaceError::Proc {
        path: path.into(),
        source,
    })?;
    Ok((meta.dev(), meta.ino()))
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(fd)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: pidfd_open returned a descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The process's pid as this `/proc` numbers it (the `Pid:` line of the pidfd's fdinfo),
/// None when it is not visible there (the kernel writes -1 or 0).
fn proc_pid_of(pidfd: &OwnedFd) -> Result<Option<i32>, NamespaceError> {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text = std::fs::read_to_string(&path).map_err(|source| NamespaceError::Proc {
        path: path.clone(),
        source,
    })?;
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| NamespaceError::Proc {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no Pid: line"),
        })?;
    Ok((pid > 0).then_some(pid))
}

/// Signal 0 through the pidfd: the process it was opened for still exists.
fn alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: a pidfd, signal 0 (no signal is sent), no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// True when this process's mount table has the container's `/proc` mounted inside
/// `rootfs`: the runtime mounted it there, in the container's namespace.
pub fn inside_container_namespace(rootfs: &std::path::Path) -> bool {
    let Ok(root) = std::fs::canonicalize(rootfs) else {
        return false;
    };
    let proc_dir = root.join("proc");
    super::mountinfo::read().is_ok_and(|table| table.iter().any(|m| m.mount_point == proc_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_a_namespace_of_its_own_is_refused_first() {
        let me = Some(std::process::id() as i32);
        let err = enter_container_namespace(Some(&MountNamespace::Shared), me).unwrap_err();
        assert!(matches!(err, NamespaceError::Shared), "{err}");
        let err = enter_container_namespace(None, me).unwrap_err();
        assert!(matches!(err, NamespaceError::Shared), "{err}");
        let join = MountNamespace::Join("/proc/1/ns/mnt".into());
        let err = enter_container_namespace(Some(&join), me).unwrap_err();
        assert!(err.to_string().contains("/proc/1/ns/mnt"), "{err}");
        let err = enter_container_namespace(Some(&MountNamespace::New), None).unwrap_err();
        assert!(matches!(err, NamespaceError::NoPid), "{err}");
    }

    /// This test process is in its own namespace and is not its own parent: no proof.
    /// Where that namespace is also init's (a test run on the host itself), the check on
    /// init refuses it first.
    #[test]
    fn the_hooks_own_namespace_without_the_parent_link_is_refused() {
        let me = std::process::id() as i32;
        let err = enter_container_namespace(Some(&MountNamespace::New), Some(me)).unwrap_err();
        let inits = namespace_of("/proc/1/ns/mnt").ok() == own_namespace().ok();
        if inits {
            assert!(
                matches!(err, NamespaceError::ProcInit { pid } if pid == me),
                "{err}"
            );
        } else {
            assert!(
                matches!(err, NamespaceError::NotProved { pid, .. } if pid == me),
                "{err}"
            );
        }
    }

    #[test]
    fn a_pid_that_names_no_process_is_an_error() {
        // Above the kernel's largest pid_max (2^22).
        let err = enter_container_namespace(Some(&MountNamespace::New), Some(1 << 23)).unwrap_err();
        assert!(matches!(err, NamespaceError::Pidfd { .. }), "{err}");
    }
}
