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
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{
    Damage, EntryKind, ImageFile, MAX_SYMLINKS, PathProblem, RootError, RootFile, components,
};
use crate::input::squashfs::{Inode, Kind, SquashError, SquashFs};

/// Directories deeper than this are not walked (a real tree is far shallower).
const MAX_WALK_DEPTH: usize = 256;

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
        let message = e.to_string();
        self.damage
            .borrow_mut()
            .get_or_insert_with(|| message.clone());
        self.error(path, PathProblem::Image(message))
    }

    /// Resolves `path` to its inode and canonical path, following every symlink.
    fn resolve(&self, path: &str) -> Result<(Inode, String), RootError> {
        let mut pending: VecDeque<String> = components(path).collect();
        let mut stack: Vec<(String, Inode)> = Vec::new();
        let mut symlinks = 0usize;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let dir = stack.last().map_or(&self.root, |(_, inode)| inode);
            if dir.kind != Kind::Dir {
                return Err(self.error(path, PathProblem::NotADirectory));
            }
            let inode = match self.fs.lookup(dir, name.as_bytes()) {
                Ok(Some(inode)) => inode,
                Ok(None) => return Err(self.error(path, PathProblem::NotFound)),
                Err(e) => return Err(self.damaged(path, e)),
            };
            match inode.kind {
                Kind::Symlink => {
                    symlinks += 1;
                    if symlinks > MAX_SYMLINKS {
                        return Err(self.error(path, PathProblem::Loop));
                    }
                    let target = self
                        .fs
                        .read_link(&inode)
                        .map_err(|e| self.damaged(path, e))?;
                    let target = String::from_utf8_lossy(&target).into_owned();
                    if target.starts_with('/') {
                        stack.clear();
                    }
                    for (i, part) in components(&target).enumerate() {
                        pending.insert(i, part);
                    }
                }
                Kind::Dir => stack.push((name, inode)),
                _ if pending.is_empty() => stack.push((name, inode)),
                _ => return Err(self.error(path, PathProblem::NotADirectory)),
            }
        }
        let canonical = format!(
            "/{}",
            stack
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join("/")
        );
        let inode = stack
            .pop()
            .map_or_else(|| self.root.clone(), |(_, inode)| inode);
        Ok((inode, canonical))
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
        let entries = self
            .fs
            .read_dir(&inode)
            .map_err(|e| self.damaged(path, e))?;
        Ok(entries
            .into_iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.name).into_owned(),
                    entry_kind(e.kind),
                )
            })
            .collect())
    }

    /// Depth-first over the tree below `path`, never following a symlink.
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
        let base = path.trim_end_matches('/').to_string();
        let mut todo: Vec<(String, Inode, usize)> = vec![(base, start, 0)];
        while let Some((prefix, dir, depth)) = todo.pop() {
            let entries = match self.fs.read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    let shown = if prefix.is_empty() { "/" } else { &prefix };
                    visit(shown, Err(self.damaged(shown, e)));
                    continue;
                }
            };
            for entry in entries {
                let name = String::from_utf8_lossy(&entry.name).into_owned();
                let child = format!("{prefix}/{name}");
                let wanted = match entry.kind {
                    Kind::Dir => !skip_dirs.contains(&child.as_str()),
                    Kind::File => true,
                    _ => false,
                };
                if !wanted {
                    continue;
                }
                let inode = match self.fs.inode_of(&entry) {
                    Ok(inode) => inode,
                    Err(e) => {
                        visit(&child, Err(self.damaged(&child, e)));
                        continue;
                    }
                };
                match inode.kind {
                    Kind::Dir if depth + 1 < MAX_WALK_DEPTH => todo.push((child, inode, depth + 1)),
                    Kind::Dir => visit(&child, Err(self.error(&child, PathProblem::Loop))),
                    Kind::File => visit(&child, Ok(RootFile::Image(self.file(inode)))),
                    _ => {}
                }
            }
        }
        Ok(())
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
