//! containerspec's own directory on the host (`/run/containerspec` by default): verdict
//! reports, the loader caches the plans mount, and the cached host facts. The hook writes
//! there as root on every container start, so nothing in it may be written through a
//! path someone else can redirect:
//! - the directory itself is opened without following a symlink, must belong to this
//!   user and be writable by no one else (else it is refused, naming the problem);
//! - a file is written under a fresh name created exclusively (`O_CREAT | O_EXCL |
//!   O_NOFOLLOW`) and then renamed over its final name inside the directory, so that a
//!   symlink planted at that name is replaced, never written through;
//! - names are single path components chosen by containerspec (a container id is
//!   checked before it becomes one);
//! - files are read only when they are regular files, up to a limit.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: a symlink; containerspec's directory must be a real directory")]
    Symlink { path: String },
    #[error("{path}: owned by uid {owner}, not by uid {me}: refusing to write there")]
    Owner { path: String, owner: u32, me: u32 },
    #[error("{path}: writable by group or others (mode {mode:o}): refusing to write there")]
    Writable { path: String, mode: u32 },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{name:?}: not a file name containerspec writes (one path component, no leading dot)")]
    BadName { name: String },
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: String, limit: u64 },
}

/// The directory, held open.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: OwnedFd,
}

impl Store {
    /// Opens `path` (creating it, mode 0755, when missing; its parent must exist or is
    /// created as a plain directory too). The last component is never followed.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let io = |source: std::io::Error| StoreError::Io {
            path: shown.clone(),
            source,
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().ok_or_else(|| StoreError::NotADirectory {
            path: shown.clone(),
        })?;
        std::fs::create_dir_all(parent).map_err(io)?;
        let parent_fd = nix::fcntl::open(
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(e.into()))?;
        match mkdirat(parent_fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io(e.into())),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = match openat(parent_fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) => return Err(StoreError::Symlink { path: shown }),
            Err(Errno::ENOTDIR) => {
                // O_NOFOLLOW with O_DIRECTORY: a symlink (to a directory or not) or a file.
                let st = nix::sys::stat::fstatat(
                    parent_fd.as_fd(),
                    name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                );
                return Err(match st {
                    Ok(st)
                        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
                            == SFlag::S_IFLNK =>
                    {
                        StoreError::Symlink { path: shown }
                    }
                    _ => StoreError::NotADirectory { path: shown },
                });
            }
            Err(e) => return Err(io(e.into())),
        };
        let st = fstat(dir.as_fd()).map_err(|e| io(e.into()))?;
        let me = nix::unistd::Uid::effective().as_raw();
        if st.st_uid != me {
            return Err(StoreError::Owner {
                path: shown,
                owner: st.st_uid,
                me,
            });
        }
        if st.st_mode & 0o022 != 0 {
            return Err(StoreError::Writable {
                path: shown,
                mode: st.st_mode & 0o7777,
            });
        }
        Ok(Store {
            path: path.to_path_buf(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `name` is (for reports and for the mounts that need a path).
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn io(&self, name: &str, source: impl Into<std::io::Error>) -> StoreError {
        StoreError::Io {
            path: self.file_path(name).display().to_string(),
            source: source.into(),
        }
    }

    /// Writes `bytes` as `name`, replacing what is there (a symlink included) in one
    /// rename; readers see the old file or the new one, never a part.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        // A temporary name left by a killed process with this pid: it is ours to remove.
        let _ = unlinkat(self.dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let fd = openat(
            self.dir.as_fd(),
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| self.io(&tmp, e))?;
        let written = File::from(fd).write_all(bytes);
        if let Err(e) = written {
            let _ = unlinkat(self.dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(self.io(&tmp, e));
        }
        renameat(self.dir.as_fd(), tmp.as_str(), self.dir.as_fd(), name)
            .map_err(|e| self.io(name, e))?;
        Ok(self.file_path(name))
    }

    /// Reads `name` when it is a regular file of at most `limit` bytes; None when it does
    /// not exist.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(self.dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(StoreError::NotAFile {
                    path: self.file_path(name).display().to_string(),
                });
            }
            Err(e) => return Err(self.io(name, e)),
        };
        let st = fstat(fd.as_fd()).map_err(|e| self.io(name, e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(StoreError::NotAFile {
                path: self.file_path(name).display().to_string(),
            });
        }
        if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
            return Err(StoreError::TooLarge {
                path: self.file_path(name).display().to_string(),
                limit,
            });
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(name, e))?;
        Ok(Some(bytes))
    }

    /// Keeps the `keep` most recently written files whose names end with `suffix` (and
    /// pass `also`), removing the older ones: what accumulates (reports of refused
    /// containers, of starts whose runtime never called `poststop`) stays bounded.
    pub fn prune(&self, suffix: &str, keep: usize, also: impl Fn(&str) -> bool) {
        let Ok(readable) = openat(
            self.dir.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let Ok(mut listing) = nix::dir::Dir::from_fd(readable) else {
            return;
        };
        let mut found: Vec<(i64, i64, String)> = Vec::new();
        for entry in listing.iter().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(suffix) || check_name(&name).is_err() || !also(&name) {
                continue;
            }
            let Ok(st) = nix::sys::stat::fstatat(
                self.dir.as_fd(),
                name.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) else {
                continue;
            };
            found.push((st.st_mtime, st.st_mtime_nsec, name));
        }
        if found.len() <= keep {
            return;
        }
        found.sort();
        let excess = found.len() - keep;
        for (_, _, name) in found.into_iter().take(excess) {
            let _ = self.remove(&name);
        }
    }

    /// Removes `name` (whatever it is, a symlink included, never what it points to).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        match unlinkat(self.dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(self.io(name, e)),
        }
    }
}

/// A file name containerspec writes: one component, printable, no leading dot (those
/// are the temporary names), at most 255 bytes.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;

/// Writes `bytes` to `path` (anywhere, not only in the store: a CDI spec, a Dockerfile)
/// through a temporary file beside it, created exclusively and without following a
/// symlink, given `mode`, synced, and renamed over `path`; then the directory is synced.
/// A reader sees the old file or the new one, never half of one, and a failure at any
/// step leaves the old file as it was.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(
            ".{name}.containerspec-{}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
