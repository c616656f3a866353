//! The inventory: what a root (a host's `/` or a container's rootfs) contains, as data.
//! One type serves both sides so that `compat` compares like with like. It is also the
//! stable JSON schema of `containerspec host --json` and `inspect --json` (documented in
//! docs/json.md): fields are only ever added, and absent facts are `null`
//! rather than guessed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cpu::HostCpu;
use super::loader::FoundVia;

/// Bumped only when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Inventory {
    pub schema_version: u32,
    /// The directory that was read, as given.
    pub root: String,
    /// ELF machine of the root's loader or libc: `x86_64`, `aarch64`, ...
    pub arch: Option<String>,
    pub os_release: Option<OsRelease>,
    pub libc: Option<Libc>,
    pub loader_cache: LoaderCacheSummary,
    pub mpi: Vec<MpiInstall>,
    pub gpu: Gpu,
    /// Host only: the running CPU (a container's requirement is in `microarch`).
    pub cpu: Option<HostCpu>,
    /// Host only: `uname` of the running kernel.
    pub kernel: Option<Kernel>,
    /// Container only: what runs first and what it loads.
    pub entrypoint: Option<Entrypoint>,
    /// The highest `GLIBC_2.N` version any examined object needs.
    pub glibc_required: Option<GlibcRequirement>,
    /// The CPU target the examined objects require, with every signal that says so.
    pub microarch: Microarch,
    /// `org.supercontainers.*` and `io.archspec.*` annotations or labels.
    pub labels: BTreeMap<String, String>,
    /// Every ELF object examined, with what it needs.
    pub objects: Vec<ObjectSummary>,
    /// How many files were looked at and how many were ELF (`--all` scans them all).
    pub scan: ScanSummary,
    /// Problems with individual files: reported, never fatal.
    pub findings: Vec<FileFinding>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct OsRelease {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub pretty_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LibcFamily {
    Glibc,
    Musl,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Libc {
    pub family: LibcFamily,
    /// `2.36`, `1.2.3`; null when no file says it.
    pub version: Option<String>,
    /// Where the version came from: `release-string` (exact), `symbol-versions` (a lower
    /// bound: the highest `GLIBC_2.N` node defined), `version-string` (musl).
    pub version_source: Option<String>,
    /// The libc file (`/lib/x86_64-linux-gnu/libc.so.6`) and the loader (`PT_INTERP`).
    pub path: String,
    pub loader: Option<String>,
    /// Highest `GLIBC_2.N` version node libc defines (glibc only).
    pub max_symbol_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct LoaderCacheSummary {
    pub path: String,
    pub present: bool,
    /// `new` (glibc-ld.so.cache1.1), `old` (ld.so-1.7.0) or `combined`.
    pub format: Option<String>,
    pub entries: usize,
    pub hwcaps_entries: usize,
    /// Directories named by `/etc/ld.so.conf` and its includes.
    pub conf_dirs: Vec<String>,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MpiAbi {
    /// The MPICH ABI initiative: MPICH >= 3.1, Intel MPI >= 5, Cray MPICH, MVAPICH2, ...
    #[default]
    Mpich,
    /// Open MPI's own ABI (`libmpi.so.40` for 3.0 to 5.0; `libmpi.so.12` for 1.10).
    OpenMpi,
    /// The MPI-5 standard ABI (`libmpi_abi.so`).
    Standard,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MpiInstall {
    pub abi: MpiAbi,
    /// `MPICH`, `Open MPI`, `Intel MPI`, `MVAPICH2`, `Cray MPICH`, ...
    pub implementation: String,
    pub version: Option<String>,
    /// `symbol` (a version data symbol), `rodata` (the library's version block),
    /// `file-name` (numbers of the file name: an ABI version, not a release).
    pub version_source: Option<String>,
    /// MPICH's device, e.g. `ch4:ucx`, `ch3:nemesis`.
    pub device: Option<String>,
    pub soname: String,
    /// Where the loader finds it, and the file that path resolves to.
    pub path: String,
    pub real_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Gpu {
    /// Host: the NVIDIA driver: the loaded kernel module's version
    /// (`/proc/driver/nvidia/version`), else its user-space libraries'.
    pub nvidia_driver: Option<VersionFact>,
    /// Host: the version of the driver's user-space libraries (`libcuda.so.<version>`),
    /// which must equal the kernel module's.
    #[serde(default)]
    pub nvidia_libraries: Option<VersionFact>,
    /// Container: the CUDA runtime with the highest stated version (see `cuda_runtimes`).
    pub cuda_runtime: Option<VersionFact>,
    /// Container: every CUDA runtime it ships (pip wheels, conda, toolkit trees, the
    /// loader's), or declares when it ships none.
    #[serde(default)]
    pub cuda_runtimes: Vec<CudaRuntime>,
    /// Container: NVIDIA's forward-compatibility libraries (`cuda-compat`).
    #[serde(default)]
    pub cuda_compat: Option<CudaCompat>,
    /// Host or container: ROCm.
    pub rocm: Option<VersionFact>,
    /// Host: the GPUs' model names, from `/proc/driver/nvidia/gpus/*/information`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_models: Vec<String>,
    /// Host: why the driver's libraries could not be read though the loader lists them
    /// (a dangling `libcuda.so.1`, a file without the version in its name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub driver_problems: Vec<String>,
}

/// One CUDA runtime in a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct CudaRuntime {
    /// The runtime's version (`12.9.79`), null when no file states it.
    pub version: Option<String>,
    /// The major version (from the version, else the library's soname: `libcudart.so.12`).
    pub major: Option<u32>,
    pub layout: CudaLayout,
    /// The `libcudart` file, null for a declaration or a toolkit tree without one.
    pub library: Option<String>,
    /// The file or variable the version comes from (the library itself when unversioned).
    pub source: String,
}

/// Where a CUDA runtime was found.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CudaLayout {
    /// A pip wheel (`site-packages/nvidia/*/lib`, versioned by its `.dist-info`).
    Pip,
    /// A copy another wheel vendors (`torch/lib/libcudart-<hash>.so.N`).
    Bundled,
    /// A conda package (`conda-meta/cuda-cudart-*.json`, `cudatoolkit-*.json`).
    Conda,
    /// A CUDA toolkit tree (`/usr/local/cuda-X.Y`, as NGC and the CUDA base images have).
    Toolkit,
    /// A library the loader finds, or the entrypoint loads or searches for.
    System,
    /// Only declared: `CUDA_VERSION` / `NVIDIA_REQUIRE_CUDA`, no runtime file.
    Declared,
}

impl std::fmt::Display for CudaLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CudaLayout::Pip => "pip",
            CudaLayout::Bundled => "bundled",
            CudaLayout::Conda => "conda",
            CudaLayout::Toolkit => "toolkit",
            CudaLayout::System => "system",
            CudaLayout::Declared => "declared",
        })
    }
}

/// A container's CUDA forward-compatibility libraries: a newer `libcuda` built to run on
/// older kernel drivers of the branches NVIDIA supports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct CudaCompat {
    /// The directory (canonical), `/usr/local/cuda-12.4/compat`.
    pub dir: String,
    /// The `libcuda` file `libcuda.so.1` resolves to.
    pub libcuda: String,
    /// Its driver version (`550.54.15`), from the file name.
    pub version: Option<String>,
    /// The sonames the directory serves (`libcuda.so.1`, `libnvidia-ptxjitcompiler.so.1`).
    pub sonames: Vec<String>,
    /// The container's `LD_LIBRARY_PATH` names the directory: it loads them itself.
    pub on_ld_library_path: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct VersionFact {
    pub version: String,
    /// The file or variable that says so.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Kernel {
    pub release: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entrypoint {
    /// `process.args[0]` as configured.
    pub command: String,
    /// The file it resolves to through the container's `PATH`, if any.
    pub path: Option<String>,
    /// A script's interpreter (`#!` line), which is what actually gets loaded.
    pub interpreter: Option<String>,
    /// How each library of its closure was found.
    pub libraries: Vec<LibraryEdge>,
    /// Sonames no search found, with the object that needs them.
    pub missing: Vec<MissingLibrary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LibraryEdge {
    pub soname: String,
    pub path: String,
    pub via: FoundVia,
    pub needed_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MissingLibrary {
    pub soname: String,
    pub needed_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GlibcRequirement {
    pub version: String,
    /// The objects that need exactly this version.
    pub needed_by: Vec<String>,
}

/// The CPU features the container's files require.
#[derive(Debug, Clone, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Microarch {
    /// How much the files tell: every examined object records its target, a label
    /// declares it, only some objects record it, or nothing does.
    pub status: TargetStatus,
    /// For people: the recorded targets that set the requirement (`haswell`,
    /// `x86-64-v3 + znver2`), or null when nothing above the architecture's baseline is
    /// recorded.
    pub required: Option<String>,
    /// x86 only: the highest generic x86-64 level (1..=4) whose features `features` holds.
    pub level: Option<u8>,
    /// The code-generation features every host must have (`/proc/cpuinfo` spelling):
    /// the union over the objects and labels; empty when only the baseline is required.
    pub features: Vec<String>,
    /// Objects with units built for more than `features`: needed only where that code
    /// runs without checking the CPU first, which the files cannot prove.
    pub mixed: Vec<MixedObject>,
    pub signals: Vec<MicroarchSignal>,
    /// Examined objects (glibc's own parts aside) that record no target: their
    /// requirement is unknown.
    pub unmarked: Vec<String>,
}

impl Microarch {
    /// `(recorded, host)` when a CPU with `host_features` runs a higher x86-64 level than
    /// the files record; None when it does not, or when nothing is recorded.
    pub fn headroom(&self, host_features: &std::collections::BTreeSet<String>) -> Option<(u8, u8)> {
        let host = super::cpu::x86_level_of(host_features);
        self.level
            .filter(|l| self.status != TargetStatus::Unknown && *l < host)
            .map(|l| (l, host))
    }
}

/// How much the files tell about the CPU the container needs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TargetStatus {
    /// Every examined object records its target.
    Recorded,
    /// A label declares the target (some objects may record nothing).
    Declared,
    /// Some objects record their target, others nothing.
    Partial,
    /// Nothing records a target.
    #[default]
    Unknown,
}

impl TargetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Recorded => "recorded",
            TargetStatus::Declared => "declared",
            TargetStatus::Partial => "partial",
            TargetStatus::Unknown => "unknown",
        }
    }
}

/// An object whose compilation units were built for different targets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MixedObject {
    pub object: String,
    /// The targets its units record.
    pub targets: Vec<String>,
    /// The features only some units need, beyond the container's requirement.
    pub features: Vec<String>,
    /// A sign that the object checks the CPU at run time (a symbol and its table), or null
    /// when the files show none (a stripped file shows none either way).
    pub dispatch: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MicroarchSignal {
    /// The target as recorded: a gcc `-march=` name with the options that changed it
    /// (`haswell+avx512f`), `x86-64-vN`, or an archspec name from a label.
    pub target: String,
    /// `x86-isa-note`, `go-goamd64`, `gcc-march`, `label`.
    pub kind: String,
    /// The file (or label key) it comes from.
    pub source: String,
    /// The code-generation features it requires (`/proc/cpuinfo` spelling).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectSummary {
    /// The path it was reached by, and the file that path resolves to.
    pub path: String,
    pub real_path: String,
    pub soname: Option<String>,
    pub machine: String,
    pub needed: Vec<String>,
    /// Highest `GLIBC_2.N` it needs (non-weak).
    pub glibc_needed: Option<String>,
    /// x86 ISA level from `.note.gnu.property` (1..4).
    pub x86_isa_level: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct ScanSummary {
    /// `default` (entrypoint closure, libc, loader, MPI and GPU libraries) or `all`.
    pub mode: String,
    pub files: usize,
    pub elf_files: usize,
}

/// What was wrong with a single file of a root (never an error of the command: the rest
/// is still read and reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileCode {
    /// An ELF file whose headers or tables do not parse.
    MalformedElf,
    /// A file the loader would open that is not ELF.
    NotElf,
    /// A file that could not be opened or read.
    UnreadableFile,
    /// A library that cannot be loaded as found (wrong machine, class...).
    UnloadableLibrary,
    /// `/etc/ld.so.cache` does not parse.
    LdCacheInvalid,
    /// An `ld.so.conf` file could not be read.
    LdConfUnreadable,
    /// `process.args[0]` is not found through the container's `PATH`.
    EntrypointNotFound,
    /// The entrypoint was found but could not be read.
    EntrypointUnreadable,
    /// A `#!` script's interpreter is not found.
    InterpreterNotFound,
    /// A CPU target named by a label or a build flag that archspec does not know.
    UnknownCpuTarget,
}

impl FileCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FileCode::MalformedElf => "malformed-elf",
            FileCode::NotElf => "not-elf",
            FileCode::UnreadableFile => "unreadable-file",
            FileCode::UnloadableLibrary => "unloadable-library",
            FileCode::LdCacheInvalid => "ld-cache-invalid",
            FileCode::LdConfUnreadable => "ld-conf-unreadable",
            FileCode::EntrypointNotFound => "entrypoint-not-found",
            FileCode::EntrypointUnreadable => "entrypoint-unreadable",
            FileCode::InterpreterNotFound => "interpreter-not-found",
            FileCode::UnknownCpuTarget => "unknown-cpu-target",
        }
    }
}

impl std::fmt::Display for FileCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileFinding {
    pub code: FileCode,
    pub path: String,
    pub message: String,
}
