//! A cache of the host's side of a verdict. The host's MPI installation, its dependency
//! closure and its plugins are the same for every container start on a node, and
//! reading them is most of a verdict's cost; the container's side is read every time.
//!
//! An entry is used only while everything it was read from is unchanged: this program's
//! version, the boot (and so the kernel and CPU), the host's loader cache, the
//! directories libraries live in (a package upgrade renames files into them), the
//! NVIDIA driver version, the config's library lists and target, and the request. Any
//! problem with the cache means reading the host afresh.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::read::{Inputs, PrepareError};
use crate::engine::facts::HostFacts;
use crate::inventory::hostcache::{cache_key, cache_store};
use crate::store::Store;

/// An entry larger than this is not one this program wrote.
const MAX_ENTRY: u64 = 64 << 20;

/// Files and directories whose change invalidates an entry, inside the host root.
const WATCHED: &[&str] = &[
    "etc/ld.so.cache",
    "etc/ld.so.conf.d",
    "lib",
    "lib64",
    "usr/lib",
    "usr/lib64",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "usr/local/lib",
    "opt",
    // The GPU driver's programs (nvidia-smi) are looked for here.
    "usr/bin",
];

/// The shape of a cached entry: bumped whenever `HostFacts` gains or changes a field, so
/// that a build of the same version never reads an entry an older build wrote without it.
const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    /// Every host file the facts were read from, with its identity when read: a library
    /// replaced in place (same directory, so no watched directory changes) is seen here.
    files: Vec<(String, String)>,
    host: HostFacts,
}

/// The host files behind `host`: each installation's libraries and plugins, and the GPU
/// driver libraries.
fn files_of(host: &HostFacts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in &host.mpi_candidates {
        out.push(m.main.lib.path.clone());
        out.extend(m.family.values().map(|l| l.path.clone()));
        out.extend(
            m.deps
                .iter()
                .chain(&m.plugin_deps)
                .chain(&m.helpers)
                .map(|l| l.path.clone()),
        );
        for d in &m.plugin_dirs {
            out.push(d.path.clone());
            out.extend(d.libs.iter().map(|l| l.path.clone()));
        }
    }
    out.extend(host.gpu_libs.iter().map(|l| l.path.clone()));
    out.extend(host.gpu_programs.iter().map(|p| p.lib.path.clone()));
    out.sort();
    out.dedup();
    out
}

/// Inode, size, modification and change times of `path` inside `root` ("-" if gone).
fn identity(root: &Path, path: &str) -> String {
    std::fs::symlink_metadata(root.join(path.trim_start_matches('/'))).map_or("-".into(), |m| {
        format!(
            "{}:{}:{}.{}:{}.{}",
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        )
    })
}

/// The host facts from the cache, or from `read` (and then cached).
pub fn host_facts(
    inputs: &Inputs,
    use_cache: bool,
    read: impl FnOnce() -> Result<HostFacts, PrepareError>,
) -> Result<HostFacts, PrepareError> {
    let Some((store, name, key)) = use_cache.then(|| location(inputs)).flatten() else {
        return read();
    };
    let root = inputs.host_root;
    if let Some(host) = load(&store, &name, &key, root) {
        log::debug!(
            "{}: host facts from the cache",
            store.file_path(&name).display()
        );
        return Ok(host);
    }
    let host = read()?;
    let files = files_of(&host)
        .into_iter()
        .map(|f| {
            let id = identity(root, &f);
            (f, id)
        })
        .collect();
    let entry = Entry { key, files, host };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        if let Err(e) = store.write(&name, &bytes) {
            log::debug!("cannot write the host-facts cache: {e}");
        }
        store.prune(".json", MAX_ENTRIES, |n| n.starts_with("host-facts-"));
    }
    Ok(entry.host)
}

/// Entries kept at most: one per host root and request, and a node has few of those.
const MAX_ENTRIES: usize = 32;

fn load(store: &Store, name: &str, key: &str, root: &Path) -> Option<HostFacts> {
    let bytes = store.read(name, MAX_ENTRY).ok()??;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    let unchanged = entry.files.iter().all(|(f, id)| identity(root, f) == *id);
    (entry.key == key && unchanged).then_some(entry.host)
}

/// The entry's file (one per host root and request, so the directory stays small) and
/// the key it must carry.
fn location(inputs: &Inputs) -> Option<(Store, String, String)> {
    let store = cache_store()?;
    let root = std::fs::canonicalize(inputs.host_root).ok()?;
    let request = format!(
        "{}|{:?}|{:?}|{:?}",
        root.display(),
        inputs.inject,
        inputs.host_target,
        inputs.ld_library_path
    );
    let name = format!("host-facts-{:016x}.json", hash(&request));
    let config = format!(
        "{:?}|{:?}|{:?}",
        inputs.config.inject.mpi, inputs.config.inject.gpu, inputs.config.host.target
    );
    let key = format!(
        "{}|format {FORMAT}|{request}|{:016x}|{}",
        cache_key()?,
        hash(&config),
        fingerprint(&root)
    );
    Some((store, name, key))
}

/// Size, inode and modification time of each watched path, and the driver version.
fn fingerprint(root: &Path) -> String {
    let mut parts: Vec<String> = WATCHED
        .iter()
        .filter_map(|p| {
            std::fs::symlink_metadata(root.join(p)).ok().map(|m| {
                format!(
                    "{p}:{}:{}:{}.{}",
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec()
                )
            })
        })
        .collect();
    let driver =
        std::fs::read_to_string(root.join("proc/driver/nvidia/version")).unwrap_or_default();
    parts.push(format!("driver:{:016x}", hash(&driver)));
    parts.join(",")
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}
