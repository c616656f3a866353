//! The files that decide whether a base image runs on a host (its dynamic loader and
//! libc, and `os-release`), read from an image's layers as they stream from the registry:
//! nothing is pulled whole or unpacked. Layers are applied in order as an in-memory tree
//! (whiteouts delete, symlinks resolve inside the image's root, never outside), and the
//! result is written into a private temporary directory that the inventory then reads
//! like any root.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// A kept file larger than this is refused (glibc's libc is about 2 MiB).
const MAX_FILE: u64 = 32 << 20;
/// Nodes (files, symlinks, directories) kept at most.
const MAX_NODES: usize = 1_000_000;
/// Symlink hops while resolving one path.
const MAX_HOPS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    /// A file of an unpacked image, written to the staging directory (with its mode).
    Staged(PathBuf, u32),
    Link(String),
}

/// The image's root as far as it is kept: every directory and symlink, and the files
/// [`wanted`] names.
#[derive(Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    /// Unpacking a whole image: every regular file goes to this directory as it streams.
    staging: Option<PathBuf>,
    staged: u64,
    staged_bytes: u64,
}

/// A whole image unpacked holds at most this many bytes of files.
const MAX_UNPACKED: u64 = 64 << 30;

/// Files kept by name: loaders and libcs of glibc and musl, and the release files.
pub fn wanted(name: &str) -> bool {
    name == "libc.so.6"
        || (name.starts_with("libc-") && name.ends_with(".so"))
        || name.starts_with("ld-linux")
        || (name.starts_with("ld-") && name.contains(".so"))
        || name.starts_with("ld64.so")
        || name.starts_with("ld-musl-")
        || name.starts_with("libc.musl-")
        || name == "os-release"
        || name == "debian_version"
}

/// Splits a tar path into clean components (`./`, `/` and `.` dropped; `..` kept for
/// resolution, which clamps it at the root).
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

impl Tree {
    /// A tree that keeps every file, written under `staging` (a directory of the
    /// caller's, on the file system the tree is then written to) as the layers stream.
    pub fn unpacking(staging: PathBuf) -> Tree {
        Tree {
            staging: Some(staging),
            ..Default::default()
        }
    }

    /// The canonical path of `path`'s parent directory, following symlinks inside the
    /// tree (absolute targets from the image's root, `..` stopping at the root), and the
    /// last component.
    fn resolve_parent(&self, path: &str) -> Option<(String, String)> {
        let comps = components(path);
        let (last, dirs) = comps.split_last()?;
        if *last == ".." {
            return None;
        }
        let mut hops = 0;
        let dir = self.resolve_dirs(String::new(), dirs, &mut hops)?;
        Some((dir, (*last).to_string()))
    }

    fn resolve_dirs(&self, start: String, comps: &[&str], hops: &mut usize) -> Option<String> {
        let mut cur = start;
        for c in comps {
            if *c == ".." {
                cur = match cur.rfind('/') {
                    Some(i) => cur[..i].to_string(),
                    None => String::new(),
                };
                continue;
            }
            let next = join(&cur, c);
            match self.nodes.get(&next) {
                Some(Node::Link(target)) => {
                    *hops += 1;
                    if *hops > MAX_HOPS {
                        return None;
                    }
                    let base = if target.starts_with('/') {
                        String::new()
                    } else {
                        cur.clone()
                    };
                    let tcomps = components(target);
                    cur = self.resolve_dirs(base, &tcomps, hops)?;
                }
                Some(Node::File(_)) => return None,
                _ => cur = next,
            }
        }
        Some(cur)
    }

    fn remove_tree(&mut self, path: &str) {
        self.nodes.remove(path);
        let prefix = format!("{path}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    fn insert(&mut self, path: String, node: Node) -> Result<(), String> {
        if !matches!(node, Node::Dir) || !matches!(self.nodes.get(&path), Some(Node::Dir)) {
            self.remove_tree(&path);
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(format!(
                "more than {MAX_NODES} directories and links in the image"
            ));
        }
        self.nodes.insert(path, node);
        Ok(())
    }

    /// Applies one layer (an uncompressed tar stream).
    pub fn apply_layer(&mut self, reader: impl Read) -> Result<(), String> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| format!("not a tar: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("tar entry: {e}"))?;
            let raw = entry.path_bytes().into_owned();
            let Ok(path) = String::from_utf8(raw) else {
                continue;
            };
            let Some((dir, name)) = self.resolve_parent(&path) else {
                continue;
            };
            if name == ".wh..wh..opq" {
                let prefix = format!("{dir}/");
                let doomed: Vec<String> = self
                    .nodes
                    .keys()
                    .filter(|k| dir.is_empty() || k.starts_with(&prefix))
                    .cloned()
                    .collect();
                for k in doomed {
                    self.nodes.remove(&k);
                }
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                self.remove_tree(&join(&dir, gone));
                continue;
            }
            let at = join(&dir, &name);
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                self.insert(at, Node::Dir)?;
            } else if kind.is_symlink() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                self.insert(at, Node::Link(target))?;
            } else if kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let source = self
                    .resolve_parent(&target)
                    .map(|(d, n)| join(&d, &n))
                    .and_then(|p| self.nodes.get(&p).cloned());
                match source {
                    Some(Node::Staged(from, mode)) => {
                        let copy = self.next_staged()?;
                        std::fs::hard_link(&from, &copy).map_err(|e| format!("{path}: {e}"))?;
                        self.insert(at, Node::Staged(copy, mode))?;
                    }
                    Some(node) if wanted(&name) => self.insert(at, node)?,
                    _ => self.remove_tree(&at),
                }
            } else if kind.is_file() && self.staging.is_some() {
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                let file = self.next_staged()?;
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let room = MAX_UNPACKED.saturating_sub(self.staged_bytes);
                let copied = std::io::copy(&mut entry.by_ref().take(room + 1), &mut out)
                    .map_err(|e| format!("{path}: {e}"))?;
                self.staged_bytes += copied;
                if copied > room {
                    return Err(format!(
                        "the image holds more than {MAX_UNPACKED} bytes of files"
                    ));
                }
                self.insert(at, Node::Staged(file, mode))?;
            } else if kind.is_file() && wanted(&name) {
                let size = entry.header().size().unwrap_or(u64::MAX);
                if size > MAX_FILE {
                    return Err(format!("{path}: {size} bytes, more than {MAX_FILE} read"));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                entry
                    .by_ref()
                    .take(MAX_FILE)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("{path}: {e}"))?;
                self.insert(at, Node::File(bytes))?;
            } else {
                self.remove_tree(&at);
            }
        }
        Ok(())
    }

    fn next_staged(&mut self) -> Result<PathBuf, String> {
        let Some(dir) = &self.staging else {
            return Err("not unpacking".into());
        };
        self.staged += 1;
        Ok(dir.join(self.staged.to_string()))
    }

    /// Whether any loader or libc was found.
    pub fn has_libc(&self) -> bool {
        self.nodes.iter().any(|(k, n)| {
            matches!(n, Node::File(_) | Node::Staged(..))
                && k.rsplit('/').next().is_some_and(|name| {
                    name == "libc.so.6" || name.starts_with("libc-") || name.starts_with("ld-musl-")
                })
        })
    }

    /// Writes the tree under `dir` (an empty directory of the caller's): directories
    /// first, then files (created exclusively), then symlinks, so that no write goes
    /// through a link.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for (path, node) in &self.nodes {
            if matches!(node, Node::Dir) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir.join(path))?;
            }
        }
        for (path, node) in &self.nodes {
            if let Node::File(bytes) = node {
                let target = dir.join(path);
                if let Some(parent) = target.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(parent)?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o644)
                    .open(&target)?;
                std::io::Write::write_all(&mut f, bytes)?;
            }
            if let Node::Staged(from, mode) = node {
                let target = dir.join(path);
                if let Some(parent) = target.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(parent)?;
                }
                if std::fs::symlink_metadata(&target).is_ok() {
                    continue;
                }
                std::fs::rename(from, &target)?;
                std::fs::set_permissions(
                    &target,
                    std::os::unix::fs::PermissionsExt::from_mode(*mode),
                )?;
            }
        }
        for (path, node) in &self.nodes {
            if let Node::Link(target) = node {
                let at = dir.join(path);
                if let Some(parent) = at.parent() {
                    if std::fs::symlink_metadata(parent).is_err() {
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o755)
                            .create(parent)?;
                    }
                }
                if std::fs::symlink_metadata(&at).is_err() {
                    std::os::unix::fs::symlink(target, &at)?;
                }
            }
        }
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A private temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempRoot {
    pub path: PathBuf,
}

impl TempRoot {
    pub fn new(tag: &str) -> std::io::Result<TempRoot> {
        let base = std::env::temp_dir();
        for attempt in 0..64u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!(
                "containerspec-{tag}-{}-{nanos:x}-{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempRoot { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("cannot create a temporary directory"))
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `Read` over chunks arriving on a channel from the thread that streams a blob.
/// It ends the stream with an error past `limit` bytes (the descriptor's size: a registry
/// that sends more is not sending that blob) or past `deadline`.
pub struct ChannelReader {
    rx: Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
    received: u64,
    limit: u64,
    deadline: std::time::Instant,
}

impl ChannelReader {
    pub fn new(
        limit: u64,
        deadline: std::time::Instant,
    ) -> (SyncSender<Result<bytes::Bytes, String>>, ChannelReader) {
        let (tx, rx) = sync_channel(16);
        (
            tx,
            ChannelReader {
                rx,
                current: bytes::Bytes::new(),
                received: 0,
                limit,
                deadline,
            },
        )
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let wait = self
                .deadline
                .saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.limit {
                        return Err(std::io::Error::other(format!(
                            "the registry sent more than the {} bytes the manifest gives",
                            self.limit
                        )));
                    }
                    self.current = chunk;
                }
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(std::io::Error::other("the layer did not arrive in time"));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// The decompressed stream of a layer of `media_type`.
pub fn decompress<'a>(
    media_type: &str,
    reader: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>, String> {
    if media_type.ends_with("+gzip")
        || media_type.ends_with(".gzip")
        || media_type.ends_with("tar.gzip")
    {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)));
    }
    if media_type.ends_with("+zstd") {
        let d = ruzstd::decoding::StreamingDecoder::new(reader)
            .map_err(|e| format!("zstd layer: {e}"))?;
        return Ok(Box::new(d));
    }
    if media_type.ends_with(".tar") || media_type.ends_with("diff.tar") {
        return Ok(Box::new(reader));
    }
    Err(format!("layer media type {media_type} is not a tar layer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_old();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Written by hand: the builder refuses `..`, which a hostile layer may carry.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn layers_apply_in_order_with_links_and_whiteouts() {
        let mut t = Tree::default();
        let one = layer(|b| {
            link(b, "lib", "usr/lib");
            link(b, "./lib64", "/usr/lib64");
            file(b, "usr/lib/x86_64-linux-gnu/libc.so.6", b"old");
            file(b, "usr/lib/x86_64-linux-gnu/libm.so.6", b"not kept");
            file(b, "usr/lib64/ld-linux-x86-64.so.2", b"ld");
        });
        t.apply_layer(&one[..]).unwrap();
        // A later layer writes through the `lib` symlink, as an upgrade does.
        let two = layer(|b| {
            file(b, "lib/x86_64-linux-gnu/libc.so.6", b"new");
            file(b, "usr/lib64/.wh.ld-linux-x86-64.so.2", b"");
            // Escapes are clamped to the image's root.
            file(b, "../../etc/os-release", b"ID=debian");
        });
        t.apply_layer(&two[..]).unwrap();
        assert_eq!(
            t.nodes.get("usr/lib/x86_64-linux-gnu/libc.so.6"),
            Some(&Node::File(b"new".to_vec()))
        );
        assert!(!t.nodes.contains_key("usr/lib/x86_64-linux-gnu/libm.so.6"));
        assert!(!t.nodes.contains_key("usr/lib64/ld-linux-x86-64.so.2"));
        assert!(t.nodes.contains_key("etc/os-release"));
        assert!(t.has_libc());
        let root = TempRoot::new("layers-test").unwrap();
        t.write_to(&root.path).unwrap();
        assert_eq!(
            std::fs::read(root.path.join("lib/x86_64-linux-gnu/libc.so.6")).unwrap(),
            b"new"
        );
        // The absolute link is written as it is, pointing into nothing outside.
        assert_eq!(
            std::fs::read_link(root.path.join("lib64")).unwrap(),
            Path::new("/usr/lib64")
        );
        let kept = root.path.clone();
        drop(root);
        assert!(!kept.exists());
    }

    #[test]
    fn opaque_directories_and_replaced_links() {
        let mut t = Tree::default();
        let one = layer(|b| {
            file(b, "opt/x/libc.so.6", b"a");
            link(b, "opt/y", "x");
        });
        t.apply_layer(&one[..]).unwrap();
        let two = layer(|b| {
            file(b, "opt/x/.wh..wh..opq", b"");
            file(b, "opt/y", b"plain file now");
        });
        t.apply_layer(&two[..]).unwrap();
        assert!(!t.has_libc());
        assert!(!t.nodes.contains_key("opt/y"));
    }

    #[test]
    fn unpacking_keeps_every_file_with_its_mode_and_hard_links() {
        let staging = TempRoot::new("staging-test").unwrap();
        let mut t = Tree::unpacking(staging.path.clone());
        let one = layer(|b| {
            file(b, "usr/bin/tool", b"#!/bin/sh\n");
            file(b, "etc/gone", b"x");
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Link);
            b.append_link(&mut h, "usr/bin/tool2", "usr/bin/tool")
                .unwrap();
        });
        t.apply_layer(&one[..]).unwrap();
        let two = layer(|b| file(b, "etc/.wh.gone", b""));
        t.apply_layer(&two[..]).unwrap();
        let root = TempRoot::new("unpack-test").unwrap();
        t.write_to(&root.path).unwrap();
        assert_eq!(
            std::fs::read(root.path.join("usr/bin/tool")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert_eq!(
            std::fs::read(root.path.join("usr/bin/tool2")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert!(!root.path.join("etc/gone").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.path.join("usr/bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut t = Tree::default();
        let err = t.apply_layer(&b"this is not a tar archive at all, but long enough to be read as a header................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"[..]);
        assert!(err.is_err());
        assert!(decompress("application/vnd.oci.image.config.v1+json", &b""[..]).is_err());
    }
}
