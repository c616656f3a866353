//! The host-directory backend of [`super::RootFs`]: a directory on this machine (an
//! unpacked rootfs, a sandbox, the host's `/`), resolved so that no lookup leaves it.
//!
//! The kernel does the confinement where it can (`openat2` with `RESOLVE_IN_ROOT`); where
//! it cannot (old kernels, seccomp filters), the shared walk ([`super::walk`]) opens each
//! component with `O_PATH | O_NOFOLLOW` relative to its parent's descriptor and expands
//! symlinks itself. The walk also yields the canonical path inside the root, which
//! reports need.
//!
//! A file is opened for reading only once it is known to be a regular file: the path is
//! resolved to an `O_PATH` descriptor, its type checked, and the same inode then reopened
//! through that descriptor. A device node or FIFO an image puts where a library or the
//! loader cache should be is never opened.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

use super::walk::{self, Listed, Tree};
use super::{EntryKind, PathProblem, RootError};

/// How a regular file is opened for reading: never a controlling terminal, never blocking.
const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// Set once `openat2` has been seen to be unavailable, so later lookups skip it.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

impl PathProblem {
    pub(crate) fn from_errno(errno: Errno) -> Self {
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

    fn tree(&self) -> FdTree<'_> {
        FdTree {
            root: self.dir.as_fd(),
        }
    }

    /// Opens a regular file for reading. FIFOs, devices and directories are refused
    /// before anything opens them.
    pub fn open_file(&self, path: &str) -> Result<(File, FileStat), RootError> {
        let located = self.locate(path)?;
        // Without /proc, the kernel's resolution opens the path again (the identity check
        // still holds).
        let again = || {
            if self.use_openat2 && !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
                open_kernel(self.dir.as_fd(), path, READ_FLAGS)
            } else {
                Err(Errno::ENOSYS)
            }
        };
        read_regular(located, again).map_err(|problem| self.error(path, problem))
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
        let fd = self.locate(path).ok()?;
        fstat(fd.as_fd()).ok().map(|st| kind_of(&st))
    }

    /// The canonical path (inside the root) that `path` resolves to: every symlink expanded,
    /// confined to the root.
    pub fn canonicalize(&self, path: &str) -> Result<String, RootError> {
        if let Some(canonical) = self.canonicalize_kernel(path) {
            return Ok(canonical);
        }
        walk::resolve(&self.tree(), path)
            .map(|r| r.canonical)
            .map_err(|problem| self.error(path, problem))
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
        let fd = open_kernel(self.dir.as_fd(), path, OFlag::O_PATH).ok()?;
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
        let fd = self.locate(path)?;
        list_fd(fd.as_fd()).map_err(|problem| self.error(path, problem))
    }

    /// Visits every regular file below `path` without following any symlink (see
    /// [`walk::walk_files`]). The callback gets the path inside the root and an open
    /// file. Unreadable entries are reported, not fatal.
    pub fn walk_files(
        &self,
        path: &str,
        skip_dirs: &[&str],
        visit: &mut dyn FnMut(&str, Result<File, RootError>),
    ) -> Result<(), RootError> {
        let fd = self.locate(path)?;
        let stat = fstat(fd.as_fd()).map_err(|e| self.error(path, PathProblem::from_errno(e)))?;
        if kind_of(&stat) != EntryKind::Dir {
            return Err(self.error(path, PathProblem::NotADirectory));
        }
        let start = FdNode {
            fd,
            kind: EntryKind::Dir,
            listable: false,
        };
        walk::walk_files(&self.tree(), start, path, skip_dirs, &mut |p, file| {
            visit(p, file.map_err(|problem| self.error(p, problem)))
        });
        Ok(())
    }

    /// An `O_PATH` descriptor of what `path` resolves to, confined to the root: by the
    /// kernel where it can, else by the shared walk.
    fn locate(&self, path: &str) -> Result<OwnedFd, RootError> {
        if self.use_openat2 {
            match open_in_root(self.dir.as_fd(), path, OFlag::O_PATH) {
                Ok(fd) => return Ok(fd),
                Err(problem) => return Err(self.error(path, problem)),
            }
        }
        locate_walking(self.dir.as_fd(), path).map_err(|problem| self.error(path, problem))
    }
}

/// Opens `path` below the directory `root` as if `root` were `/` (every symlink resolved
/// inside it), with `flags` plus `O_CLOEXEC`: by the kernel (`openat2` with
/// `RESOLVE_IN_ROOT`, retried when a rename races it), or, where the kernel cannot, by
/// the shared user-space walk (then only `O_PATH` lookups are possible, and `flags` must
/// ask for nothing more: a caller wanting to read uses [`read_regular`]).
pub(crate) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &str,
    flags: OFlag,
) -> Result<OwnedFd, PathProblem> {
    if !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
        match open_kernel(root, path, flags) {
            Ok(fd) => return Ok(fd),
            // ENOSYS: kernel before 5.6; EPERM from a seccomp filter that does not know it.
            Err(Errno::ENOSYS) | Err(Errno::EPERM) => {
                log::debug!("openat2 unavailable, resolving paths in user space");
                OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(PathProblem::from_errno(e)),
        }
    }
    let fd = locate_walking(root, path)?;
    if flags.contains(OFlag::O_DIRECTORY) {
        let st = fstat(fd.as_fd()).map_err(PathProblem::from_errno)?;
        if kind_of(&st) != EntryKind::Dir {
            return Err(PathProblem::NotADirectory);
        }
    }
    Ok(fd)
}

/// The user-space resolution: an `O_PATH` descriptor of what `path` names below `root`.
fn locate_walking(root: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, PathProblem> {
    let tree = FdTree { root };
    let mut resolved = walk::resolve(&tree, path)?;
    match resolved.chain.pop() {
        Some((_, node)) => Ok(node.fd),
        None => tree.root().map(|node| node.fd),
    }
}

fn open_kernel(root: BorrowedFd<'_>, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let relative = relative_path(path);
    // RESOLVE_IN_ROOT can fail with EAGAIN when a concurrent rename races the lookup.
    for _ in 0..8 {
        match openat2(root, relative, how) {
            Err(Errno::EAGAIN) => continue,
            other => return other,
        }
    }
    Err(Errno::EAGAIN)
}

/// The host-directory backend of the shared walk: nodes are `O_PATH` descriptors, each
/// looked up in its parent with `O_NOFOLLOW`.
struct FdTree<'a> {
    root: BorrowedFd<'a>,
}

struct FdNode {
    fd: OwnedFd,
    kind: EntryKind,
    /// The descriptor is a directory opened for reading (listable as it is), not `O_PATH`.
    listable: bool,
}

impl Tree for FdTree<'_> {
    type Node = FdNode;
    type File = File;
    type Handle = ();

    fn root(&self) -> Result<FdNode, PathProblem> {
        let fd = openat(
            self.root,
            ".",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(PathProblem::from_errno)?;
        Ok(FdNode {
            fd,
            kind: EntryKind::Dir,
            listable: false,
        })
    }

    fn lookup(&self, dir: &FdNode, name: &str) -> Result<FdNode, PathProblem> {
        let fd = open_path_nofollow(dir.fd.as_fd(), name).map_err(PathProblem::from_errno)?;
        let stat = fstat(fd.as_fd()).map_err(PathProblem::from_errno)?;
        Ok(FdNode {
            fd,
            kind: kind_of(&stat),
            listable: false,
        })
    }

    fn kind(&self, node: &FdNode) -> EntryKind {
        node.kind
    }

    fn read_link(&self, node: &FdNode) -> Result<String, PathProblem> {
        let target = readlinkat(node.fd.as_fd(), "").map_err(PathProblem::from_errno)?;
        Ok(target.to_string_lossy().into_owned())
    }

    fn list(&self, dir: &FdNode) -> Result<Vec<Listed<()>>, PathProblem> {
        let entries = if dir.listable {
            let readable = dir.fd.try_clone().map_err(PathProblem::Io)?;
            list_readable(readable, dir.fd.as_fd())?
        } else {
            list_fd(dir.fd.as_fd())?
        };
        Ok(entries.into_iter().map(|(n, k)| (n, k, ())).collect())
    }

    /// One `openat`: `O_DIRECTORY` makes the kernel refuse anything but a directory
    /// before any open, and `O_NOFOLLOW` a symlink.
    fn enter(&self, dir: &FdNode, name: &str, _: &()) -> Result<FdNode, PathProblem> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(dir.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => Ok(FdNode {
                fd,
                kind: EntryKind::Dir,
                listable: true,
            }),
            Err(Errno::ENOTDIR | Errno::ELOOP) => Err(PathProblem::NotADirectory),
            Err(e) => Err(PathProblem::from_errno(e)),
        }
    }

    /// The walk asks only for entries its listing reported as regular files (a FIFO or
    /// device node is never asked for), so one `openat` with `O_NOFOLLOW` serves, and the
    /// type is checked again on what was opened. Only a rename racing the walk could put
    /// a special file there between the listing and the open; the walk serves
    /// `inspect --all`, not the hook, which opens by path through [`read_regular`].
    fn open(&self, dir: &FdNode, name: &str, _: &()) -> Result<File, PathProblem> {
        let fd = openat(
            dir.fd.as_fd(),
            name,
            READ_FLAGS | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(PathProblem::from_errno)?;
        let stat = fstat(fd.as_fd()).map_err(PathProblem::from_errno)?;
        if kind_of(&stat) != EntryKind::File {
            return Err(PathProblem::NotARegularFile);
        }
        Ok(File::from(fd))
    }
}

/// Opens for reading the regular file that `located` (an `O_PATH` descriptor) names. A
/// device node, FIFO, socket or directory is refused before any open (opening a device
/// can have side effects; a FIFO can block). The inode is reopened through the
/// descriptor itself (`/proc/self/fd/N`), so nothing swapped in at the path since can
/// be opened instead, and its identity is checked afterwards. Where /proc is not mounted,
/// `again` opens it by name (and the identity check still holds).
fn read_regular(
    located: OwnedFd,
    again: impl FnOnce() -> Result<OwnedFd, Errno>,
) -> Result<(File, FileStat), PathProblem> {
    let before = fstat(located.as_fd()).map_err(PathProblem::from_errno)?;
    if kind_of(&before) != EntryKind::File {
        return Err(PathProblem::NotARegularFile);
    }
    let magic = format!("/proc/self/fd/{}", located.as_raw_fd());
    let fd = match nix::fcntl::open(magic.as_str(), READ_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if !Path::new("/proc/self/fd").is_dir() => match again() {
            Ok(fd) => fd,
            Err(Errno::ENOSYS) => {
                return Err(PathProblem::Io(std::io::Error::other(
                    "cannot reopen the file: neither /proc nor openat2 is available",
                )));
            }
            Err(e) => return Err(PathProblem::from_errno(e)),
        },
        Err(e) => return Err(PathProblem::from_errno(e)),
    };
    let after = fstat(fd.as_fd()).map_err(PathProblem::from_errno)?;
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino)
        || kind_of(&after) != EntryKind::File
    {
        return Err(PathProblem::Io(std::io::Error::other(
            "the file changed while it was opened",
        )));
    }
    Ok((File::from(fd), after))
}

/// The path the kernel gives an open descriptor (`/proc/self/fd/N`).
fn fd_path(fd: BorrowedFd<'_>) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
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

/// The entries of the directory `dir` (any descriptor of it, `O_PATH` included).
fn list_fd(dir: BorrowedFd<'_>) -> Result<Vec<(String, EntryKind)>, PathProblem> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let readable = openat(dir, ".", flags, Mode::empty()).map_err(PathProblem::from_errno)?;
    list_readable(readable, dir)
}

/// The entries of a directory opened for reading (`readable`, consumed); `dir` is any
/// descriptor of it, for the entries whose type the filesystem does not report.
fn list_readable(
    readable: OwnedFd,
    dir: BorrowedFd<'_>,
) -> Result<Vec<(String, EntryKind)>, PathProblem> {
    let mut stream = nix::dir::Dir::from_fd(readable).map_err(PathProblem::from_errno)?;
    let mut out = Vec::new();
    for entry in stream.iter() {
        let entry = entry.map_err(PathProblem::from_errno)?;
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
                dir,
                name.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_or(EntryKind::Other, |st| kind_of(&st)),
        };
        out.push((name, kind));
    }
    Ok(out)
}
