//! The image backend of [`super::RootFs`]: a squashfs filesystem read in place (the
//! system partition of a SIF), resolved over its own directory tree with the same rules
//! as the kernel's `RESOLVE_IN_ROOT`: absolute symlinks restart at the image's root, `..`
//! stops there, 40 symlinks per lookup at most. Nothing of the host is ever reached:
//! every name is looked up in the image's tables.
//!
//! Damage (a table or block that does not decode) makes the lookup fail with
//! [`PathProblem::Image`] and is remembered, so that a caller that searched on past it
//! can still refuse to give a verdict over a damaged image (see [`ImageRoot::damage`]).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::walk::{self, Listed, Tree};
use super::{Damage, EntryKind, ImageFile, PathProblem, RootError, RootFile};
use crate::input::squashfs::{DirEntry, Inode, Kind, SquashError, SquashFs};

pub(super) struct ImageRoot {
    fs: Rc<SquashFs>,
    root: Inode,
    image: PathBuf,
    display: String,
    damage: Damage,
}

impl ImageRoot {
    pub fn open(fs: SquashFs, image: PathBuf, display: String) -> Result<ImageRoot, RootError> {
        let damaged = |e: SquashError| RootError::Damaged {
            message: e.to_string(),
        };
        let root = fs.root().map_err(damaged)?;
        if root.kind != Kind::Dir {
            return Err(RootError::RootNotADirectory { root: display });
        }
        // Reading the root directory proves the directory table decodes.
        fs.read_dir(&root).map_err(damaged)?;
        Ok(ImageRoot {
            fs: Rc::new(fs),
            root,
            image,
            display,
            damage: Rc::new(RefCell::new(None)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.image
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn damage(&self) -> Option<String> {
        self.damage.borrow().clone()
    }

    fn file(&self, inode: Inode) -> ImageFile {
        ImageFile {
            fs: Rc::clone(&self.fs),
            inode,
            damage: Rc::clone(&self.damage),
        }
    }

    fn error(&self, path: &str, reason: PathProblem) -> RootError {
        RootError::Path {
            root: self.display.clone(),
            path: path.to_string(),
            reason,
        }
    }

    /// Records damage (the first one wins) and turns it into the lookup's error.
    fn damaged(&self, path: &str, e: SquashError) -> RootError {
        let problem = self.record(e);
        self.error(path, problem)
    }

    /// Records damage (the first one wins) and returns it as a path problem.
    fn record(&self, e: SquashError) -> PathProblem {
        let message = e.to_string();
        self.damage
            .borrow_mut()
            .get_or_insert_with(|| message.clone());
        PathProblem::Image(message)
    }

    /// Resolves `path` to its inode and canonical path, following every symlink (the
    /// shared walk; damage met on the way is recorded).
    fn resolve(&self, path: &str) -> Result<(Inode, String), RootError> {
        let resolved = walk::resolve(self, path).map_err(|p| self.error(path, p))?;
        let inode = resolved
            .chain
            .last()
            .map_or_else(|| self.root.clone(), |(_, inode)| inode.clone());
        Ok((inode, resolved.canonical))
    }

    pub fn open_file(&self, path: &str) -> Result<ImageFile, RootError> {
        let (inode, _) = self.resolve(path)?;
        if inode.kind != Kind::File {
            return Err(self.error(path, PathProblem::NotARegularFile));
        }
        Ok(self.file(inode))
    }

    pub fn read_limited(&self, path: &str, limit: u64) -> Result<Vec<u8>, RootError> {
        let file = self.open_file(path)?;
        if file.inode.size > limit {
            return Err(self.error(
                path,
                PathProblem::TooLarge {
                    size: file.inode.size,
                    limit,
                },
            ));
        }
        self.fs
            .read_all(&file.inode, limit)
            .map_err(|e| self.damaged(path, e))
    }

    pub fn kind(&self, path: &str) -> Option<EntryKind> {
        self.resolve(path)
            .ok()
            .map(|(inode, _)| entry_kind(inode.kind))
    }

    pub fn canonicalize(&self, path: &str) -> Result<String, RootError> {
        self.resolve(path).map(|(_, canonical)| canonical)
    }

    pub fn list_dir(&self, path: &str) -> Result<Vec<(String, EntryKind)>, RootError> {
        let (inode, _) = self.resolve(path)?;
        if inode.kind != Kind::Dir {
            return Err(self.error(path, PathProblem::NotADirectory));
        }
        let listed = self.list(&inode).map_err(|p| self.error(path, p))?;
        Ok(listed.into_iter().map(|(n, k, _)| (n, k)).collect())
    }

    /// Visits every regular file below `path`, never following a symlink (the shared
    /// walk).
    pub fn walk_files(
        &self,
        path: &str,
        skip_dirs: &[&str],
        visit: &mut dyn FnMut(&str, Result<RootFile, RootError>),
    ) -> Result<(), RootError> {
        let (start, _) = self.resolve(path)?;
        if start.kind != Kind::Dir {
            return Err(self.error(path, PathProblem::NotADirectory));
        }
        walk::walk_files(self, start, path, skip_dirs, &mut |p, file| {
            visit(
                p,
                file.map(RootFile::Image)
                    .map_err(|problem| self.error(p, problem)),
            )
        });
        Ok(())
    }
}

/// The image backend of the shared walk: nodes are inodes, looked up in the image's
/// directory tables. Damage is recorded with the root as it is met.
impl Tree for ImageRoot {
    type Node = Inode;
    type File = ImageFile;
    type Handle = DirEntry;

    fn root(&self) -> Result<Inode, PathProblem> {
        Ok(self.root.clone())
    }

    fn lookup(&self, dir: &Inode, name: &str) -> Result<Inode, PathProblem> {
        if dir.kind != Kind::Dir {
            return Err(PathProblem::NotADirectory);
        }
        match self.fs.lookup(dir, name.as_bytes()) {
            Ok(Some(inode)) => Ok(inode),
            Ok(None) => Err(PathProblem::NotFound),
            Err(e) => Err(self.record(e)),
        }
    }

    fn kind(&self, node: &Inode) -> EntryKind {
        entry_kind(node.kind)
    }

    fn read_link(&self, node: &Inode) -> Result<String, PathProblem> {
        let target = self.fs.read_link(node).map_err(|e| self.record(e))?;
        Ok(String::from_utf8_lossy(&target).into_owned())
    }

    fn list(&self, dir: &Inode) -> Result<Vec<Listed<DirEntry>>, PathProblem> {
        let entries = self.fs.read_dir(dir).map_err(|e| self.record(e))?;
        Ok(entries
            .into_iter()
            .map(|e| {
                let name = String::from_utf8_lossy(&e.name).into_owned();
                (name, entry_kind(e.kind), e)
            })
            .collect())
    }

    /// The listed entry's inode, read by its reference (no search by name).
    fn open(&self, _: &Inode, _: &str, listed: &DirEntry) -> Result<ImageFile, PathProblem> {
        let inode = self.fs.inode_of(listed).map_err(|e| self.record(e))?;
        if inode.kind != Kind::File {
            return Err(PathProblem::NotARegularFile);
        }
        Ok(self.file(inode))
    }

    fn dir_id(&self, node: &Inode) -> Option<u64> {
        Some(node.reference())
    }

    fn enter(&self, _: &Inode, _: &str, listed: &DirEntry) -> Result<Inode, PathProblem> {
        let inode = self.fs.inode_of(listed).map_err(|e| self.record(e))?;
        if inode.kind != Kind::Dir {
            return Err(PathProblem::NotADirectory);
        }
        Ok(inode)
    }
}

fn entry_kind(kind: Kind) -> EntryKind {
    match kind {
        Kind::File => EntryKind::File,
        Kind::Dir => EntryKind::Dir,
        Kind::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}
