//! Entering the container's mount namespace. A `prestart` / `createRuntime` hook runs in
//! the runtime's (the host's) namespace and joins the container's through
//! `/proc/<pid>/ns/mnt`; a `createContainer` hook already runs inside it. Which one
//! applies is detected by comparing the namespaces, not trusted from the stage name.
//! Joining changes only this process: the host's namespace never sees the mounts.

use std::os::unix::fs::MetadataExt;

use nix::sched::{CloneFlags, setns};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("the OCI state has no container pid: cannot find the container's mount namespace")]
    NoPid,
    #[error("/proc/{pid}/ns/mnt: {source}")]
    Open { pid: i32, source: std::io::Error },
    #[error("joining the mount namespace of pid {pid}: {errno}")]
    Join { pid: i32, errno: nix::errno::Errno },
}

/// Joins the mount namespace of `pid` unless this process is already in it. Returns
/// whether it had to join.
pub fn enter_mount_namespace(pid: Option<i32>) -> Result<bool, NamespaceError> {
    let Some(pid) = pid else {
        return Err(NamespaceError::NoPid);
    };
    let path = format!("/proc/{pid}/ns/mnt");
    let theirs = std::fs::metadata(&path).map_err(|source| NamespaceError::Open { pid, source })?;
    let ours = std::fs::metadata("/proc/self/ns/mnt")
        .map_err(|source| NamespaceError::Open { pid, source })?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(false);
    }
    let fd = std::fs::File::open(&path).map_err(|source| NamespaceError::Open { pid, source })?;
    setns(&fd, CloneFlags::CLONE_NEWNS).map_err(|errno| NamespaceError::Join { pid, errno })?;
    Ok(true)
}
