//! The host-directory backend of [`super::RootFs`]: a directory on this machine (an
//! unpacked rootfs, a sandbox, the host's `/`), resolved so that no lookup leaves it.
//!
//! The kernel does the confinement where it can (`openat2` with `RESOLVE_IN_ROOT`); where
//! it cannot (old kernels, seccomp filters), a user-space walk opens each component with
//! `O_PATH | O_NOFOLLOW` relative to its parent's descriptor and expands symlinks itself.
//! The walk also yields the canonical path inside the root, which reports need.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

use super::{EntryKind, MAX_SYMLINKS, PathProblem, RootError, components};

/// Set once `openat2` has been seen to be unavailable, so later lookups skip it.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

impl PathProblem {
    fn from_errno(errno: Errno) -> Self {
        match errno {
            Errno::ENOENT => PathProblem::NotFound,
            Errno::ELOOP => PathProblem::Loop,
            Errno::ENOTDIR => PathProblem::NotADirectory,
            Errno::EACCES | Errno::EPERM => PathProblem::PermissionDenied,
            other => PathProblem::Io(std::io::Error::from(other)),
        }
    }
}

pub(super) struct DirRoot {
    path: PathBuf,
    display: String,
    dir: OwnedFd,
    use_openat2: bool,
    /// Where the kernel says the root is (for turning descriptor paths into paths
    /// inside the root); None when /proc cannot tell.
    root_prefix: Option<String>,
}

impl std::fmt::Debug for DirRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirRoot").field("path", &self.path).finish()
    }
}

impl DirRoot {
    /// Opens `path` as a root. The path itself is the caller's (trusted) choice.
    pub fn open(path: impl AsRef<Path>) -> Result<DirRoot, RootError> {
        let path = path.as_ref().to_path_buf();
        let display = path.display().to_string();
        let dir = open_host_dir(&path).map_err(|errno| match errno {
            Errno::ENOTDIR => RootError::RootNotADirectory {
                root: display.clone(),
            },
            other => RootError::OpenRoot {
                root: display.clone(),
                source: other.into(),
            },
        })?;
        let use_openat2 = !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed);
        let root_prefix = fd_path(dir.as_fd());
        Ok(DirRoot {
            path,
            display,
            dir,
            use_openat2,
            root_prefix,
        })
    }

    /// Turns the kernel's resolution off: every lookup walks in user space.
    pub fn without_openat2(mut self) -> DirRoot {
        self.use_openat2 = false;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    fn error(&self, path: &str, reason: PathProblem) -> RootError {
        RootError::Path {
            root: self.display.clone(),
            path: path.to_string(),
            reason,
        }
    }

    /// Opens a regular file for reading. FIFOs, devices and directories are refused
    /// without blocking.
    pub fn open_file(&self, path: &str) -> Result<(File, FileStat), RootError> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        let fd = self.open_confined(path, flags)?;
        let stat = fstat(fd.as_fd()).map_err(|e| self.error(path, PathProblem::from_errno(e)))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(self.error(path, PathProblem::NotARegularFile));
        }
        Ok((File::from(fd), stat))
    }

    /// Reads a whole regular file of at most `limit` bytes.
    pub fn read_limited(&self, path: &str, limit: u64) -> Result<Vec<u8>, RootError> {
        let (mut file, stat) = self.open_file(path)?;
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        if size > limit {
            return Err(self.error(path, PathProblem::TooLarge { size, limit }));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.by_ref()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(path, PathProblem::Io(e)))?;
        Ok(bytes)
    }

    /// The kind of what `path` resolves to, following symlinks inside the root.
    pub fn kind(&self, path: &str) -> Option<EntryKind> {
        let fd = self.open_confined(path, OFlag::O_PATH).ok()?;
        fstat(fd.as_fd()).ok().map(|st| kind_of(&st))
    }

    /// The canonical path (inside the root) that `path` resolves to: every symlink expanded,
    /// confined to the root.
    pub fn canonicalize(&self, path: &str) -> Result<String, RootError> {
        if let Some(canonical) = self.canonicalize_kernel(path) {
            return Ok(canonical);
        }
        self.walk(path).map(|(_, canonical)| canonical)
    }

    /// The kernel's answer: resolve with `openat2(RESOLVE_IN_ROOT)`, then read back the
    /// descriptor's path and strip the root's. None whenever anything is unusual (no
    /// openat2, no /proc, a path the kernel reports outside the root or deleted): the
    /// user-space walk answers then.
    fn canonicalize_kernel(&self, path: &str) -> Option<String> {
        if !self.use_openat2 || OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
            return None;
        }
        let root = self.root_prefix.as_deref()?;
        let fd = self.open_kernel(path, OFlag::O_PATH).ok()?;
        let link = fd_path(fd.as_fd())?;
        let inside = if root == "/" {
            Some(link.as_str())
        } else {
            link.strip_prefix(root)
        }?;
        match inside {
            "" => Some("/".to_string()),
            p if p.starts_with('/') && !p.ends_with(" (deleted)") => Some(p.to_string()),
            _ => None,
        }
    }

    /// Lists a directory (resolved inside the root): names and entry kinds, unsorted.
    pub fn list_dir(&self, path: &str) -> Result<Vec<(String, EntryKind)>, RootError> {
        let fd = self.open_confined(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        list_fd(fd).map_err(|e| self.error(path, PathProblem::from_errno(e)))
    }

    /// Visits every regular file below `path` without following any symlink: each
    /// directory is opened relative to its parent with `O_NOFOLLOW`. The callback gets the
    /// path inside the root and an open file. Unreadable entries are reported, not fatal.
    pub fn walk_files(
        &self,
        path: &str,
        skip_dirs: &[&str],
        visit: &mut dyn FnMut(&str, Result<File, RootError>),
    ) -> Result<(), RootError> {
        let fd = self.open_confined(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let base = path.trim_end_matches('/').to_string();
        self.walk_dir(fd, &base, skip_dirs, visit);
        Ok(())
    }

    fn walk_dir(
        &self,
        dir: OwnedFd,
        prefix: &str,
        skip_dirs: &[&str],
        visit: &mut dyn FnMut(&str, Result<File, RootError>),
    ) {
        let dup = match dir.try_clone() {
            Ok(fd) => fd,
            Err(e) => return visit(prefix, Err(self.error(prefix, PathProblem::Io(e)))),
        };
        let entries = match list_fd(dup) {
            Ok(entries) => entries,
            Err(e) => return visit(prefix, Err(self.error(prefix, PathProblem::from_errno(e)))),
        };
        for (name, kind) in entries {
            let child = format!("{prefix}/{name}");
            match kind {
                EntryKind::Dir if !skip_dirs.contains(&child.as_str()) => {
                    let flags =
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                    match openat(dir.as_fd(), name.as_str(), flags, Mode::empty()) {
                        Ok(fd) => self.walk_dir(fd, &child, skip_dirs, visit),
                        Err(e) => {
                            visit(&child, Err(self.error(&child, PathProblem::from_errno(e))))
                        }
                    }
                }
                EntryKind::File => {
                    let flags = OFlag::O_RDONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_NONBLOCK
                        | OFlag::O_NOCTTY
                        | OFlag::O_CLOEXEC;
                    let file = openat(dir.as_fd(), name.as_str(), flags, Mode::empty())
                        .map(File::from)
                        .map_err(|e| self.error(&child, PathProblem::from_errno(e)));
                    visit(&child, file);
                }
                _ => {}
            }
        }
    }

    /// Opens `path` confined to the root with `flags` (plus `O_CLOEXEC`).
    fn open_confined(&self, path: &str, flags: OFlag) -> Result<OwnedFd, RootError> {
        if self.use_openat2 && !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
            match self.open_kernel(path, flags) {
                Ok(fd) => return Ok(fd),
                // ENOSYS: kernel before 5.6; EPERM from a seccomp filter that does not know it.
                Err(Errno::ENOSYS) | Err(Errno::EPERM) => {
                    log::debug!("openat2 unavailable, resolving paths in user space");
                    OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(self.error(path, PathProblem::from_errno(e))),
            }
        }
        let (mut stack, _) = self.walk_stack(path)?;
        let Some((last_fd, last_name)) = stack.pop() else {
            // The path is the root itself.
            return nix::fcntl::openat(
                self.dir.as_fd(),
                ".",
                flags | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.error(path, PathProblem::from_errno(e)));
        };
        if flags == OFlag::O_PATH {
            return Ok(last_fd);
        }
        // Re-open the final entry from its (already confined) parent with O_NOFOLLOW: if it
        // was swapped for a symlink since the walk looked at it, this fails instead of
        // following it.
        let parent = stack.last().map_or(self.dir.as_fd(), |(fd, _)| fd.as_fd());
        openat(
            parent,
            last_name.as_str(),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.error(path, PathProblem::from_errno(e)))
    }

    fn open_kernel(&self, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let relative = relative_path(path);
        // RESOLVE_IN_ROOT can fail with EAGAIN when a concurrent rename races the lookup.
        for _ in 0..8 {
            match openat2(self.dir.as_fd(), relative, how) {
                Err(Errno::EAGAIN) => continue,
                other => return other,
            }
        }
        Err(Errno::EAGAIN)
    }

    /// The user-space resolver: one component at a time, never following a symlink on
    /// the host's terms. Returns an `O_PATH` descriptor and the canonical path.
    fn walk(&self, path: &str) -> Result<(OwnedFd, String), RootError> {
        let (mut stack, canonical) = self.walk_stack(path)?;
        let fd = match stack.pop() {
            Some((fd, _)) => fd,
            None => self
                .dir
                .try_clone()
                .map_err(|e| self.error(path, PathProblem::Io(e)))?,
        };
        Ok((fd, canonical))
    }

    /// The walk itself: the chain of `O_PATH` descriptors from the root down to what
    /// `path` resolves to (empty for the root), with the canonical path.
    fn walk_stack(&self, path: &str) -> Result<(Vec<(OwnedFd, String)>, String), RootError> {
        let mut pending: VecDeque<String> = components(path).collect();
        let mut stack: Vec<(OwnedFd, String)> = Vec::new();
        let mut symlinks = 0usize;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let parent = stack.last().map_or(self.dir.as_fd(), |(fd, _)| fd.as_fd());
            let fd = open_path_nofollow(parent, &name)
                .map_err(|e| self.error(path, PathProblem::from_errno(e)))?;
            let stat =
                fstat(fd.as_fd()).map_err(|e| self.error(path, PathProblem::from_errno(e)))?;
            match kind_of(&stat) {
                EntryKind::Symlink => {
                    symlinks += 1;
                    if symlinks > MAX_SYMLINKS {
                        return Err(self.error(path, PathProblem::Loop));
                    }
                    let target = readlinkat(fd.as_fd(), "")
                        .map_err(|e| self.error(path, PathProblem::from_errno(e)))?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        stack.clear();
                    }
                    for (i, part) in components(&target).enumerate() {
                        pending.insert(i, part);
                    }
                }
                EntryKind::Dir => stack.push((fd, name)),
                _ if pending.is_empty() => stack.push((fd, name)),
                _ => return Err(self.error(path, PathProblem::NotADirectory)),
            }
        }
        let canonical = format!(
            "/{}",
            stack
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join("/")
        );
        Ok((stack, canonical))
    }
}

/// The path the kernel gives an open descriptor (`/proc/self/fd/N`).
fn fd_path(fd: BorrowedFd<'_>) -> Option<String> {
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .ok()?;
    link.to_str().map(str::to_string)
}

fn open_host_dir(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(fd)
}

fn open_path_nofollow(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `openat2` wants a path relative to the root descriptor; "/" becomes ".".
fn relative_path(path: &str) -> &str {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() { "." } else { trimmed }
}

fn kind_of(stat: &FileStat) -> EntryKind {
    match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => EntryKind::File,
        SFlag::S_IFDIR => EntryKind::Dir,
        SFlag::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn list_fd(fd: OwnedFd) -> Result<Vec<(String, EntryKind)>, Errno> {
    let dirfd = fd
        .try_clone()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let mut dir = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            Some(nix::dir::Type::File) => EntryKind::File,
            Some(nix::dir::Type::Directory) => EntryKind::Dir,
            Some(nix::dir::Type::Symlink) => EntryKind::Symlink,
            Some(_) => EntryKind::Other,
            // Some filesystems do not fill d_type: ask, without following a symlink.
            None => nix::sys::stat::fstatat(
                dirfd.as_fd(),
                name.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_or(EntryKind::Other, |st| kind_of(&st)),
        };
        out.push((name, kind));
    }
    Ok(out)
}
