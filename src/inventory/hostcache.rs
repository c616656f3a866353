//! A cache of the host CPU description. Detecting the microarchitecture means parsing
//! archspec's whole target database and `/proc/cpuinfo`, about a millisecond that every
//! container start would otherwise pay again. The CPU cannot change without a reboot
//! (or, for a migrated VM, without CPUID changing), so the description is stored under
//! a key of the kernel's boot id, the raw CPUID feature words and this program's
//! version, and recomputed whenever any of them differs.
//!
//! The cache lives in `/run/containerspec/` when that is writable (root), else in
//! `$XDG_RUNTIME_DIR/containerspec/`, else nowhere. It is only a speed-up: any problem
//! reading or writing it means detecting afresh.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cpu::{HostCpu, host_cpu};
use crate::store::Store;

const FILE: &str = "host-cpu.json";

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    cpu: HostCpu,
}

/// A cache entry larger than this is not one this program wrote.
const MAX_ENTRY: u64 = 1 << 20;

/// The host CPU, from the cache when its key still matches.
pub fn host_cpu_cached(use_cache: bool) -> HostCpu {
    let Some((store, key)) = use_cache.then(|| cache_store().zip(cache_key())).flatten() else {
        return host_cpu();
    };
    if let Some(cpu) = read(&store, &key) {
        return cpu;
    }
    let cpu = host_cpu();
    let entry = Entry {
        key,
        cpu: cpu.clone(),
    };
    // Written under a fresh name and renamed over the old entry: a concurrent reader
    // sees the old entry or the new one, never half of one.
    let written = serde_json::to_vec(&entry)
        .map_err(|e| e.to_string())
        .and_then(|bytes| store.write(FILE, &bytes).map_err(|e| e.to_string()));
    if let Err(e) = written {
        log::debug!("cannot write the CPU cache: {e}");
    }
    cpu
}

fn read(store: &Store, key: &str) -> Option<HostCpu> {
    let bytes = store.read(FILE, MAX_ENTRY).ok()??;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    (entry.key == key).then_some(entry.cpu)
}

/// containerspec's cache directory opened as a [`Store`], or None (said in the log) when
/// there is none or it is not safe to write (a symlink, someone else's, writable by
/// others).
pub(crate) fn cache_store() -> Option<Store> {
    let dir = cache_dir()?;
    match Store::open(&dir) {
        Ok(store) => Some(store),
        Err(e) => {
            log::warn!("{e}; the caches are not used");
            None
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in `dir`, created exclusively (so a
/// symlink planted at its name is not followed) and renamed over `path` (so one planted
/// there is replaced, not written through).
pub(crate) fn write_atomic(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    // One left by a killed process with this pid is ours to remove (a symlink included).
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    file.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

/// Where containerspec keeps its caches: `/run/containerspec` for root, else
/// `$XDG_RUNTIME_DIR/containerspec`, else nowhere.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    if nix::unistd::Uid::effective().is_root() {
        return Some(PathBuf::from("/run/containerspec"));
    }
    std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containerspec"))
}

/// boot id + CPU signature + version: any change means detecting again.
pub(crate) fn cache_key() -> Option<String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!(
        "{}|schema {}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        super::model::SCHEMA_VERSION,
        boot_id.trim(),
        cpu_signature()
    ))
}

/// The CPUID words that identify the processor model and its feature set (leaf 1
/// without EBX, whose APIC id differs per core; leaf 7; the extended leaf 0x80000001).
#[cfg(target_arch = "x86_64")]
fn cpu_signature() -> String {
    let words = [(1, 0), (7, 0), (7, 1), (0x8000_0001, 0)].map(|(leaf, sub)| {
        let r = raw_cpuid::native_cpuid::cpuid_count(leaf, sub);
        if leaf == 1 {
            [r.eax, 0, r.ecx, r.edx]
        } else {
            [r.eax, r.ebx, r.ecx, r.edx]
        }
    });
    words.iter().flatten().map(|w| format!("{w:08x}")).collect()
}

/// Elsewhere the auxiliary vector's capability words identify the feature set.
#[cfg(not(target_arch = "x86_64"))]
fn cpu_signature() -> String {
    // SAFETY: getauxval has no preconditions.
    let (a, b) = unsafe {
        (
            libc::getauxval(libc::AT_HWCAP),
            libc::getauxval(libc::AT_HWCAP2),
        )
    };
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_key_is_not_used() {
        let dir =
            std::env::temp_dir().join(format!("containerspec-hostcache-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        let cpu = host_cpu();
        let entry = Entry {
            key: "old".into(),
            cpu: cpu.clone(),
        };
        store
            .write(FILE, &serde_json::to_vec(&entry).unwrap())
            .unwrap();
        assert_eq!(read(&store, "old"), Some(cpu));
        assert_eq!(read(&store, "new"), None);
        store.write(FILE, b"{ not json").unwrap();
        assert_eq!(read(&store, "old"), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_key_is_stable_within_a_boot() {
        assert_eq!(cache_key(), cache_key());
        assert!(cache_key().is_some_and(|k| k.starts_with(env!("CARGO_PKG_VERSION"))));
    }
}
