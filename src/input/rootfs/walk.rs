//! The confined walk, written once for every backend: a path is resolved one component
//! at a time, each looked up in its parent without following anything, and a symlink is
//! expanded here, on the root's terms. An absolute target restarts at the root, `..`
//! stops at the root, and more than [`MAX_SYMLINKS`] expansions in one lookup is a loop,
//! as the kernel's `RESOLVE_IN_ROOT` does it. A backend ([`Tree`]) only answers "what
//! is `name` in this directory", "what kind is it", "where does this link point" and
//! "what does this directory hold"; it never resolves a path itself.
//!
//! [`walk_files`] visits a tree's regular files below a directory with the same care:
//! nothing followed, an explicit stack (no recursion an image could make deep) and a
//! depth limit.

use std::collections::VecDeque;

use super::{EntryKind, MAX_SYMLINKS, PathProblem};

/// Directories deeper than this are not walked (a real tree is far shallower).
pub(super) const MAX_WALK_DEPTH: usize = 256;

/// What a backend must answer for the walks.
pub(super) trait Tree {
    /// A looked-up entry (a descriptor, an inode).
    type Node;
    /// An open regular file.
    type File;
    /// What a listing keeps of an entry for opening it afterwards (nothing, or the
    /// entry's inode reference, so that the name is not searched for again).
    type Handle;

    /// The root directory.
    fn root(&self) -> Result<Self::Node, PathProblem>;
    /// `name` in the directory `dir`, not followed if it is a symlink.
    fn lookup(&self, dir: &Self::Node, name: &str) -> Result<Self::Node, PathProblem>;
    fn kind(&self, node: &Self::Node) -> EntryKind;
    /// A symlink's target, as stored.
    fn read_link(&self, node: &Self::Node) -> Result<String, PathProblem>;
    /// The entries of a directory (names, kinds and handles, without `.` and `..`).
    fn list(&self, dir: &Self::Node) -> Result<Vec<Listed<Self::Handle>>, PathProblem>;
    /// Opens the regular file `name` of `dir`, as listed, for reading, not following a
    /// symlink.
    fn open(
        &self,
        dir: &Self::Node,
        name: &str,
        listed: &Self::Handle,
    ) -> Result<Self::File, PathProblem>;
    /// An identity of a directory node that a crafted tree could repeat (an image's
    /// inode reference), so that the walk enters each directory once: a directory that
    /// lists an ancestor, or many entries that share one directory, would otherwise make
    /// a cycle or an exponential walk. None where the filesystem rules that out (a host
    /// directory: no directory hard links).
    fn dir_id(&self, _node: &Self::Node) -> Option<u64> {
        None
    }
    /// The subdirectory `name` of `dir`, to walk into: an error when it is anything but
    /// a directory (a symlink is not followed). A backend may answer this in one step.
    fn enter(
        &self,
        dir: &Self::Node,
        name: &str,
        _listed: &Self::Handle,
    ) -> Result<Self::Node, PathProblem> {
        let node = self.lookup(dir, name)?;
        if self.kind(&node) == EntryKind::Dir {
            Ok(node)
        } else {
            Err(PathProblem::NotADirectory)
        }
    }
}

/// A directory entry as listed: its name, its kind and the backend's handle.
pub(super) type Listed<H> = (String, EntryKind, H);

/// A resolved path: the chain of entries from the root down to what the path names
/// (empty for the root itself), and the canonical path inside the root.
pub(super) struct Resolved<N> {
    pub chain: Vec<(String, N)>,
    pub canonical: String,
}

/// Resolves `path` inside `tree`, expanding every symlink on the root's terms.
pub(super) fn resolve<T: Tree>(tree: &T, path: &str) -> Result<Resolved<T::Node>, PathProblem> {
    let root = tree.root()?;
    let mut pending: VecDeque<String> = super::components(path).collect();
    let mut chain: Vec<(String, T::Node)> = Vec::new();
    let mut symlinks = 0usize;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            chain.pop();
            continue;
        }
        let parent = chain.last().map_or(&root, |(_, node)| node);
        let node = tree.lookup(parent, &name)?;
        match tree.kind(&node) {
            EntryKind::Symlink => {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(PathProblem::Loop);
                }
                let target = tree.read_link(&node)?;
                if target.starts_with('/') {
                    chain.clear();
                }
                for (i, part) in super::components(&target).enumerate() {
                    pending.insert(i, part);
                }
            }
            EntryKind::Dir => chain.push((name, node)),
            _ if pending.is_empty() => chain.push((name, node)),
            _ => return Err(PathProblem::NotADirectory),
        }
    }
    let canonical = format!(
        "/{}",
        chain
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("/")
    );
    Ok(Resolved { chain, canonical })
}

/// What [`walk_files`] calls for each regular file: its path inside the root and the
/// open file, or the problem met there.
pub(super) type Visit<'a, F> = dyn FnMut(&str, Result<F, PathProblem>) + 'a;

/// Visits every regular file below the directory `start` (named `base` inside the root),
/// entering each directory once, never following a symlink and skipping the directories named in `skip_dirs`. A
/// directory that cannot be listed, or a file that cannot be opened, is reported to
/// `visit` with its problem; the walk goes on.
pub(super) fn walk_files<T: Tree>(
    tree: &T,
    start: T::Node,
    base: &str,
    skip_dirs: &[&str],
    visit: &mut Visit<'_, T::File>,
) {
    let mut entered = std::collections::HashSet::new();
    if let Some(id) = tree.dir_id(&start) {
        entered.insert(id);
    }
    let mut todo: Vec<(String, T::Node, usize)> =
        vec![(base.trim_end_matches('/').to_string(), start, 0)];
    while let Some((prefix, dir, depth)) = todo.pop() {
        let entries = match tree.list(&dir) {
            Ok(entries) => entries,
            Err(problem) => {
                let shown = if prefix.is_empty() { "/" } else { &prefix };
                visit(shown, Err(problem));
                continue;
            }
        };
        for (name, kind, handle) in entries {
            let child = format!("{prefix}/{name}");
            match kind {
                EntryKind::Dir if skip_dirs.contains(&child.as_str()) => {}
                EntryKind::Dir if depth + 1 >= MAX_WALK_DEPTH => {
                    visit(
                        &child,
                        Err(PathProblem::TooDeep {
                            limit: MAX_WALK_DEPTH,
                        }),
                    );
                }
                // The entry may have been swapped since the listing: only a directory is
                // walked into.
                EntryKind::Dir => match tree.enter(&dir, &name, &handle) {
                    Ok(node) => match tree.dir_id(&node) {
                        // Entered already: a cycle, or a directory listed twice.
                        Some(id) if !entered.insert(id) => {
                            visit(&child, Err(PathProblem::Revisited))
                        }
                        _ => todo.push((child, node, depth + 1)),
                    },
                    Err(PathProblem::NotADirectory | PathProblem::Loop) => {}
                    Err(problem) => visit(&child, Err(problem)),
                },
                EntryKind::File => visit(&child, tree.open(&dir, &name, &handle)),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A tree in memory: paths to entries, enough to pin the walk's rules down.
    enum Entry {
        Dir,
        File,
        Link(&'static str),
        /// Another entry for the directory at this path (what a crafted image can hold).
        Same(&'static str),
    }

    struct Mem(BTreeMap<&'static str, Entry>);

    impl Tree for Mem {
        type Node = String;
        type File = String;
        type Handle = ();

        fn root(&self) -> Result<String, PathProblem> {
            Ok(String::new())
        }
        fn lookup(&self, dir: &String, name: &str) -> Result<String, PathProblem> {
            let path = format!("{dir}/{name}");
            match self.0.get(path.as_str()) {
                Some(Entry::Same(target)) => Ok((*target).to_string()),
                Some(_) => Ok(path),
                None => Err(PathProblem::NotFound),
            }
        }
        fn kind(&self, node: &String) -> EntryKind {
            match self.0.get(node.as_str()) {
                Some(Entry::Dir | Entry::Same(_)) | None => EntryKind::Dir,
                Some(Entry::File) => EntryKind::File,
                Some(Entry::Link(_)) => EntryKind::Symlink,
            }
        }
        fn read_link(&self, node: &String) -> Result<String, PathProblem> {
            match self.0.get(node.as_str()) {
                Some(Entry::Link(target)) => Ok((*target).to_string()),
                _ => Err(PathProblem::NotFound),
            }
        }
        fn list(&self, dir: &String) -> Result<Vec<Listed<()>>, PathProblem> {
            Ok(self
                .0
                .keys()
                .filter_map(|p| {
                    let rest = p.strip_prefix(dir.as_str())?.strip_prefix('/')?;
                    (!rest.contains('/')).then(|| (rest.to_string(), self.kind(&p.to_string()), ()))
                })
                .collect())
        }
        fn dir_id(&self, node: &String) -> Option<u64> {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            node.hash(&mut h);
            Some(h.finish())
        }

        fn open(&self, dir: &String, name: &str, _: &()) -> Result<String, PathProblem> {
            let path = self.lookup(dir, name)?;
            match self.0.get(path.as_str()) {
                Some(Entry::File) => Ok(path),
                _ => Err(PathProblem::NotARegularFile),
            }
        }
    }

    fn tree() -> Mem {
        Mem(BTreeMap::from([
            ("/etc", Entry::Dir),
            ("/etc/passwd", Entry::File),
            ("/usr", Entry::Dir),
            ("/usr/lib", Entry::Dir),
            ("/usr/lib/libc.so.6", Entry::File),
            ("/lib", Entry::Link("usr/lib")),
            ("/usr/lib/up", Entry::Link("../../../../etc")),
            ("/usr/lib/abs", Entry::Link("/etc/passwd")),
            ("/loop", Entry::Link("loop")),
            ("/usr/lib/file-dir", Entry::Link("libc.so.6/x")),
        ]))
    }

    fn canonical(path: &str) -> Result<String, PathProblem> {
        resolve(&tree(), path).map(|r| r.canonical)
    }

    #[test]
    fn symlinks_resolve_on_the_roots_terms() {
        assert_eq!(canonical("/lib/libc.so.6").unwrap(), "/usr/lib/libc.so.6");
        // `..` stops at the root: no lookup can climb out.
        assert_eq!(canonical("/usr/lib/up/passwd").unwrap(), "/etc/passwd");
        assert_eq!(canonical("/../../etc/passwd").unwrap(), "/etc/passwd");
        // An absolute target restarts at the root, not at the host's `/`.
        assert_eq!(canonical("/usr/lib/abs").unwrap(), "/etc/passwd");
        assert_eq!(canonical("/").unwrap(), "/");
        assert!(matches!(canonical("/loop"), Err(PathProblem::Loop)));
        assert!(matches!(
            canonical("/usr/lib/file-dir"),
            Err(PathProblem::NotADirectory)
        ));
        assert!(matches!(canonical("/nothing"), Err(PathProblem::NotFound)));
    }

    #[test]
    fn the_walk_visits_files_and_follows_no_link() {
        let tree = tree();
        let mut seen = Vec::new();
        walk_files(&tree, String::new(), "/", &["/etc"], &mut |p, f| {
            seen.push((p.to_string(), f.is_ok()));
        });
        seen.sort();
        // /lib -> usr/lib is not walked into; /etc is skipped.
        assert_eq!(seen, [("/usr/lib/libc.so.6".to_string(), true)]);
    }

    #[test]
    fn the_walk_enters_each_directory_once() {
        // /a lists itself twice, and /b is /a again: a cycle and a shared directory.
        let tree = Mem(BTreeMap::from([
            ("/a", Entry::Dir),
            ("/a/f", Entry::File),
            ("/a/self", Entry::Same("/a")),
            ("/a/twin", Entry::Same("/a")),
            ("/b", Entry::Same("/a")),
        ]));
        let (mut files, mut loops) = (Vec::new(), Vec::new());
        walk_files(&tree, String::new(), "/", &[], &mut |p, f| match f {
            Ok(_) => files.push(p.to_string()),
            Err(PathProblem::Revisited) => loops.push(p.to_string()),
            Err(e) => panic!("{p}: {e}"),
        });
        loops.sort();
        assert_eq!(files, ["/a/f"]);
        assert_eq!(loops, ["/a/self", "/a/twin", "/b"]);
    }

    #[test]
    fn the_walk_stops_at_its_depth_limit() {
        // 300 nested directories, a file at the bottom: the walk stops at the limit,
        // says so once, and never reaches the file.
        let mut paths = Vec::new();
        let mut path = String::new();
        for _ in 0..300 {
            path.push_str("/d");
            paths.push(path.clone());
        }
        let file = format!("{path}/f");
        let leaked: Vec<&'static str> = paths
            .into_iter()
            .chain([file])
            .map(|p| &*Box::leak(p.into_boxed_str()))
            .collect();
        let last = leaked.len() - 1;
        let tree = Mem(leaked
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, if i == last { Entry::File } else { Entry::Dir }))
            .collect());
        let mut seen = Vec::new();
        walk_files(&tree, String::new(), "/", &[], &mut |p, f| {
            seen.push((p.len(), f.map(|_| ()).map_err(|e| e.to_string())))
        });
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (len, result) = &seen[0];
        assert_eq!(*len, 2 * MAX_WALK_DEPTH);
        assert_eq!(
            result,
            &Err(format!("directories nested deeper than {MAX_WALK_DEPTH}"))
        );
    }
}
