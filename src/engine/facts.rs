//! The facts a verdict is computed from: plain data, gathered by [`crate::facts::prepare`] from
//! a container's rootfs and a host root, so that the rules ([`super::compat`]) and the
//! injection plan ([`super::plan`]) are pure functions that tests can feed by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::inventory::libfacts::{Lib, MpiLib};
use crate::inventory::model::Inventory;
pub use crate::inventory::mpi_host::{EnvNeed, HostMpi, MpiOrigin, PluginDir};
use crate::ldcache::CacheEntry;

/// A symbol a container object imports from its MPI library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub object: String,
    pub symbol: String,
    pub weak: bool,
}

/// A needed library that resolves to a file the loader stops on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLib {
    pub soname: String,
    pub path: String,
    pub needed_by: String,
    /// The loader's error, naming the file.
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerFacts {
    pub inventory: Option<Inventory>,
    /// The entrypoint is a static executable: nothing can be injected into it.
    pub static_entrypoint: bool,
    /// The entrypoint and its library closure.
    pub closure: Vec<Lib>,
    /// Libraries of the closure whose search ends at a file the loader refuses with an
    /// error ("file too short", "invalid ELF header"): the program stops there.
    pub broken: Vec<BrokenLib>,
    /// The container's loader cache exists but is beyond what containerspec reads (the
    /// message says which limit): the loader would use it, so the verdict cannot stand.
    pub ld_cache_refused: Option<String>,
    /// The MPI library the container uses (its entrypoint's, else the one its loader sees).
    pub mpi: Option<MpiLib>,
    /// What closure objects import from the MPI library.
    pub mpi_imports: Vec<Import>,
    /// For each MPI soname the container needs: the file it resolves to (the bind target).
    pub mpi_targets: BTreeMap<String, String>,
    /// `(requester, soname, path)`: requesters that resolve an MPI soname elsewhere than
    /// `mpi_targets` says (an RPATH, a glibc-hwcaps copy): a bind mount would miss them.
    pub mpi_shadowed: Vec<(String, String, String)>,
    /// The container's own library for each soname a host object needs, if it has one.
    pub providers: BTreeMap<String, Lib>,
    /// Files in the container's `LD_LIBRARY_PATH` that have the name of a library the plan
    /// puts in its own directory: they would be found first.
    pub ld_library_path_hits: BTreeMap<String, String>,
    /// Container files that a host object's own RUNPATH/RPATH directories would find
    /// before the loader cache: soname -> the container's file. The plan mounts the host's
    /// copy over each, or the host library would load the container's.
    pub search_dir_hits: BTreeMap<String, String>,
    /// The container's loader cache entries (rewritten with the injected ones).
    pub cache_entries: Vec<CacheEntry>,
    /// MPI sonames some object resolves before the loader cache (RPATH, RUNPATH,
    /// `LD_LIBRARY_PATH`): a loader cache entry cannot redirect them.
    pub mpi_before_cache: BTreeSet<String>,
    /// The process environment the bundle starts with.
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostFacts {
    /// Where the host's files are on this machine (`/`, or `--host-root`).
    pub root: PathBuf,
    pub inventory: Option<Inventory>,
    pub target: Option<HostTarget>,
    /// Every MPI installation found, most preferred first.
    pub mpi_candidates: Vec<HostMpi>,
    /// The one chosen for this container (not cached: the container decides).
    #[serde(skip)]
    pub mpi: Option<HostMpi>,
    #[serde(skip)]
    pub mpi_choice: Option<super::choose::MpiChoice>,
    /// GPU driver libraries to inject for `gpu`.
    pub gpu_libs: Vec<Lib>,
    /// The GPU driver's programs (`nvidia-smi`, the MPS daemons) and where they appear.
    #[serde(default)]
    pub gpu_programs: Vec<GpuProgram>,
    /// Host libraries the config lists that are part of glibc (never injected alone).
    pub glibc_listed: Vec<String>,
}

/// A program of the GPU driver: the host file (`lib.path`, symlinks resolved) and the
/// path it is mounted at (`/usr/bin/nvidia-smi`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuProgram {
    pub name: String,
    pub at: String,
    pub lib: Lib,
}

/// The CPU the verdict is for: detected, or named by `--host-target` / the config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostTarget {
    pub name: String,
    pub features: BTreeSet<String>,
    /// Where the name came from.
    pub source: TargetSource,
    /// The config file that named it (with `source: config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
}

/// Where the host's CPU target came from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSource {
    /// Detected on this machine (archspec's detection, cross-checked with CPUID).
    #[default]
    Detected,
    /// Named by the `--host-target` option.
    HostTargetOption,
    /// Named by the config file's `host.target`.
    Config,
}

impl HostTarget {
    /// Where the name came from, as people read it: `detected`, `--host-target` or the
    /// config file's path.
    pub fn source_text(&self) -> String {
        match self.source {
            TargetSource::Detected => "detected".into(),
            TargetSource::HostTargetOption => "--host-target".into(),
            TargetSource::Config => self.config_file.clone().unwrap_or_else(|| "config".into()),
        }
    }
}

/// Everything a verdict needs.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub container: ContainerFacts,
    pub host: HostFacts,
    /// The entrance sets the plan's environment in the container (Apptainer's `--env`).
    pub sets_env: bool,
}

/// sonames that belong to glibc: provided by the container's own glibc, never injected.
pub fn is_glibc_part(soname: &str) -> bool {
    const PARTS: &[&str] = &[
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libresolv.so.2",
        "libutil.so.1",
        "libanl.so.1",
        "libnsl.so.1",
        "libBrokenLocale.so.1",
        "libmvec.so.1",
        "libthread_db.so.1",
        "libc_malloc_debug.so.0",
        "libnss_files.so.2",
        "libnss_dns.so.2",
    ];
    PARTS.contains(&soname) || soname.starts_with("ld-linux") || soname.starts_with("ld64.so")
}

/// Compiler run-time libraries: the container's copy serves when it has one (and is
/// checked against what host libraries need); otherwise the host's is injected.
pub fn is_compiler_runtime(soname: &str) -> bool {
    [
        "libstdc++.so.",
        "libgcc_s.so.",
        "libgfortran.so.",
        "libquadmath.so.",
        "libgomp.so.",
        "libatomic.so.",
    ]
    .iter()
    .any(|p| soname.starts_with(p))
}
