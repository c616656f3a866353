//! Entering the container's mount namespace. A `prestart` / `createRuntime` hook runs in
//! the runtime's (the host's) namespace and joins the container's through
//! `/proc/<pid>/ns/mnt`; a `createContainer` hook already runs inside it (and may not
//! see the host's processes at all). Neither is trusted from the stage name alone: a
//! joined namespace is compared with the container's, and "already inside" is checked
//! by the container's `/proc` being mounted in its rootfs, which the runtime does only
//! in the container's namespace. Joining changes only this process: the host's
//! namespace never sees the mounts.

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

/// True when this process's mount table has the container's `/proc` mounted inside
/// `rootfs`: the runtime mounted it there, in the container's namespace.
pub fn inside_container_namespace(rootfs: &std::path::Path) -> bool {
    let Ok(root) = std::fs::canonicalize(rootfs) else {
        return false;
    };
    let proc_dir = root.join("proc");
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount_point| std::path::Path::new(&unescape(mount_point)) == proc_dir)
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let code = rest
            .get(pos + 1..pos + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[pos + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes() {
        assert_eq!(super::unescape("/a\\040b/proc"), "/a b/proc");
        assert_eq!(super::unescape("/plain"), "/plain");
        assert_eq!(super::unescape("/odd\\x"), "/odd\\x");
    }
}
