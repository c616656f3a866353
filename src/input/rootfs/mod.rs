//! A root (a container's rootfs, an Apptainer image, or the host's `/`) opened as a
//! confined namespace of paths: every lookup resolves as the root's own loader would see
//! it. Absolute symlinks resolve relative to the root, `..` stops at the root, and loops
//! end in an error. Nothing here ever follows a symlink out of the root, so an image
//! cannot make containerspec read or open a host file.
//!
//! One walk ([`walk`]) resolves paths and visits files for both backends, which answer
//! only single-step questions:
//! - [`dir`]: a directory on this machine (an unpacked rootfs, a sandbox, the host),
//!   resolved by the kernel (`openat2` with `RESOLVE_IN_ROOT`) or by a user-space walk;
//! - [`image`]: a squashfs filesystem read in place inside an image file (the system
//!   partition of a SIF), resolved over the squashfs directory tree. Nothing is
//!   unpacked or mounted; only the blocks a question needs are read.

mod dir;
mod image;
mod walk;

pub(crate) use dir::open_in_root;

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::input::squashfs::{Inode, SquashFs};

/// The loader gives up after 40 symlinks in one lookup; so do we.
const MAX_SYMLINKS: usize = 40;
/// Text files (config, os-release, labels) larger than this are refused rather than read.
pub const MAX_TEXT_FILE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{root}: cannot open root: {source}")]
    OpenRoot {
        root: String,
        source: std::io::Error,
    },
    #[error("{root}: not a directory")]
    RootNotADirectory { root: String },
    /// The image's filesystem does not decode (the message names the image).
    #[error("{message} (the image is damaged)")]
    Damaged { message: String },
    #[error("{path} (in {root}): {reason}")]
    Path {
        root: String,
        path: String,
        reason: PathProblem,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PathProblem {
    #[error("no such file or directory")]
    NotFound,
    #[error("too many levels of symbolic links")]
    Loop,
    /// A walk met a directory it had entered already (a cycle in an image, or one
    /// directory listed under two names).
    #[error("a directory already walked (a cycle, or one directory listed twice)")]
    Revisited,
    #[error("directories nested deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("a path component is not a directory")]
    NotADirectory,
    #[error("not a regular file")]
    NotARegularFile,
    #[error("permission denied")]
    PermissionDenied,
    #[error("file too large ({size} bytes, limit {limit})")]
    TooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Io(std::io::Error),
    /// The image's filesystem is damaged where this lookup or read went.
    #[error("{0}")]
    Image(String),
}

impl PathProblem {
    /// The errno that says the same (for callers that speak errno).
    pub fn errno(&self) -> nix::errno::Errno {
        use nix::errno::Errno;
        match self {
            PathProblem::NotFound => Errno::ENOENT,
            PathProblem::Loop | PathProblem::Revisited => Errno::ELOOP,
            PathProblem::TooDeep { .. } => Errno::ELOOP,
            PathProblem::NotADirectory => Errno::ENOTDIR,
            PathProblem::NotARegularFile => Errno::EINVAL,
            PathProblem::PermissionDenied => Errno::EACCES,
            PathProblem::TooLarge { .. } => Errno::EFBIG,
            PathProblem::Io(e) => e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
            PathProblem::Image(_) => Errno::EIO,
        }
    }
}

impl RootError {
    /// True when the path simply does not exist (the common, expected miss in searches).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RootError::Path {
                reason: PathProblem::NotFound,
                ..
            }
        )
    }
}

/// What kind of directory entry a walk reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A root, whichever backend holds it.
pub struct RootFs {
    inner: Inner,
}

enum Inner {
    Dir(dir::DirRoot),
    Image(image::ImageRoot),
}

impl std::fmt::Debug for RootFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootFs")
            .field("path", &self.path())
            .finish()
    }
}

/// An open regular file of a root.
pub enum RootFile {
    /// A file of a host directory.
    Host(File),
    /// A file inside an image's filesystem.
    Image(ImageFile),
}

/// A regular file inside an image: the filesystem and its inode.
#[derive(Clone)]
pub struct ImageFile {
    pub(crate) fs: Rc<SquashFs>,
    pub(crate) inode: Inode,
    /// The image root's record of damage, which failed reads add to.
    damage: Damage,
}

/// The first damage seen in an image, shared by its root and its open files.
type Damage = Rc<RefCell<Option<String>>>;

impl ImageFile {
    /// Reads from `offset` like `pread`; damage is recorded with the image root.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, String> {
        self.fs.read_at(&self.inode, offset, buf).map_err(|e| {
            let message = e.to_string();
            self.damage
                .borrow_mut()
                .get_or_insert_with(|| message.clone());
            message
        })
    }
}

impl RootFile {
    /// Reads from `offset` (short only at the end of the file), like `pread`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        match self {
            RootFile::Host(file) => std::os::unix::fs::FileExt::read_at(file, buf, offset),
            RootFile::Image(f) => f
                .read_at(offset, buf)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }

    /// Fills `buf` from `offset`; an error when the file ends first.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let n = self.read_at(buf, offset)?;
        if n < buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file ends early",
            ));
        }
        Ok(())
    }
}

impl RootFs {
    /// Opens the directory `path` as a root. The path itself is the caller's (trusted)
    /// choice.
    pub fn open(path: impl AsRef<Path>) -> Result<RootFs, RootError> {
        Ok(RootFs {
            inner: Inner::Dir(dir::DirRoot::open(path)?),
        })
    }

    /// Like [`RootFs::open`], but always resolves in user space (tests exercise both).
    pub fn open_without_openat2(path: impl AsRef<Path>) -> Result<RootFs, RootError> {
        Ok(RootFs {
            inner: Inner::Dir(dir::DirRoot::open(path)?.without_openat2()),
        })
    }

    /// A squashfs filesystem (read in place inside `image`) as a root. `display` names it
    /// in reports and errors. Reads the root directory once, so that an image whose
    /// tables are damaged fails here rather than looking empty.
    pub fn from_squashfs(
        fs: SquashFs,
        image: PathBuf,
        display: String,
    ) -> Result<RootFs, RootError> {
        Ok(RootFs {
            inner: Inner::Image(image::ImageRoot::open(fs, image, display)?),
        })
    }

    /// The directory, or the image file for an image root.
    pub fn path(&self) -> &Path {
        match &self.inner {
            Inner::Dir(d) => d.path(),
            Inner::Image(i) => i.path(),
        }
    }

    pub fn display(&self) -> &str {
        match &self.inner {
            Inner::Dir(d) => d.display(),
            Inner::Image(i) => i.display(),
        }
    }

    /// True for an image read in place (no host directory behind it).
    pub fn is_image(&self) -> bool {
        matches!(self.inner, Inner::Image(_))
    }

    /// The first damage found in an image's filesystem by any lookup or read so far. A
    /// search that meets damage treats it as "not found" and goes on; callers that must
    /// not give a verdict over a damaged image ask here afterwards.
    pub fn damage(&self) -> Option<String> {
        match &self.inner {
            Inner::Dir(_) => None,
            Inner::Image(i) => i.damage(),
        }
    }

    /// Opens a regular file for reading. FIFOs, devices and directories are refused
    /// without blocking.
    pub fn open_file(&self, path: &str) -> Result<RootFile, RootError> {
        match &self.inner {
            Inner::Dir(d) => d.open_file(path).map(|(file, _)| RootFile::Host(file)),
            Inner::Image(i) => i.open_file(path).map(RootFile::Image),
        }
    }

    /// Reads a whole regular file of at most `limit` bytes.
    pub fn read_limited(&self, path: &str, limit: u64) -> Result<Vec<u8>, RootError> {
        match &self.inner {
            Inner::Dir(d) => d.read_limited(path, limit),
            Inner::Image(i) => i.read_limited(path, limit),
        }
    }

    /// Reads a text file (lossily decoded), refusing files above [`MAX_TEXT_FILE`].
    pub fn read_text(&self, path: &str) -> Result<String, RootError> {
        let bytes = self.read_limited(path, MAX_TEXT_FILE)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// True when `path` resolves (inside the root) to a regular file.
    pub fn is_file(&self, path: &str) -> bool {
        self.kind(path) == Some(EntryKind::File)
    }

    /// The kind of what `path` resolves to, following symlinks inside the root.
    pub fn kind(&self, path: &str) -> Option<EntryKind> {
        match &self.inner {
            Inner::Dir(d) => d.kind(path),
            Inner::Image(i) => i.kind(path),
        }
    }

    /// The canonical path (inside the root) that `path` resolves to: every symlink
    /// expanded, confined to the root.
    pub fn canonicalize(&self, path: &str) -> Result<String, RootError> {
        match &self.inner {
            Inner::Dir(d) => d.canonicalize(path),
            Inner::Image(i) => i.canonicalize(path),
        }
    }

    /// Lists a directory (resolved inside the root): names and entry kinds, unsorted.
    pub fn list_dir(&self, path: &str) -> Result<Vec<(String, EntryKind)>, RootError> {
        match &self.inner {
            Inner::Dir(d) => d.list_dir(path),
            Inner::Image(i) => i.list_dir(path),
        }
    }

    /// Visits every regular file below `path` without following any symlink. The
    /// callback gets the path inside the root and an open file. Unreadable entries are
    /// reported, not fatal.
    pub fn walk_files(
        &self,
        path: &str,
        skip_dirs: &[&str],
        visit: &mut dyn FnMut(&str, Result<RootFile, RootError>),
    ) -> Result<(), RootError> {
        match &self.inner {
            Inner::Dir(d) => {
                d.walk_files(path, skip_dirs, &mut |p, f| visit(p, f.map(RootFile::Host)))
            }
            Inner::Image(i) => i.walk_files(path, skip_dirs, visit),
        }
    }
}

/// The components of a path, without empty and `.` parts (`..` is kept for the walk).
fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
}
