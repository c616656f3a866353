//! The CUDA runtimes a container ships, found where real images put them, and the
//! forward-compatibility libraries it carries. Files only; nothing is run.
//!
//! Layouts, each with the file that states the version:
//! - **pip** wheels (`nvidia-cuda-runtime-cu11/-cu12`, CUDA 13's `nvidia-cuda-runtime`):
//!   `site-packages/nvidia/cuda_runtime/lib/libcudart.so.12`, `nvidia/cu13/lib/...`; the
//!   version is the wheel's (`*.dist-info/METADATA`), whose `RECORD` lists the library.
//!   Site directories are looked for under the usual prefixes, the prefixes of the
//!   process's `PATH` (virtual environments, conda environments), `VIRTUAL_ENV` and
//!   `CONDA_PREFIX`;
//! - **bundled**: a wheel that vendors its own copy (`torch/lib/libcudart-<hash>.so.11.0`,
//!   `<pkg>.libs/`): the file name gives the major only;
//! - **conda**: `conda-meta/cuda-cudart-<version>-<build>.json` (CUDA 12 and later) or
//!   `cudatoolkit-<version>-<build>.json`, with `lib/libcudart.so.*` in the prefix;
//! - **toolkit** (NGC and the CUDA base images): `/usr/local/cuda[-X.Y]/version.json`
//!   (`version.txt` before 11.1), the library under `targets/<arch>/lib` or `lib64`,
//!   `CUDA_VERSION` in the environment;
//! - **system**: a `libcudart` the loader finds (Debian's `libcudart11.0`), versioned by
//!   the file name it resolves to (`libcudart.so.11.8.89`);
//! - **declared**: `CUDA_VERSION` / `NVIDIA_REQUIRE_CUDA` with no runtime file at all.
//!
//! A runtime whose version no file states is still listed, with the major its soname
//! gives (`libcudart.so.12`): the verdict says so instead of calling the image CUDA-free.

use std::collections::BTreeSet;

use super::elf::ElfClass;
use super::loader::{Closure, Loader};
use super::model::{CudaCompat, CudaLayout, CudaRuntime};
use crate::input::rootfs::{EntryKind, RootFs};
use crate::input::target::ProcessSpec;

/// Metadata files are small; anything larger is not what it claims to be.
const MAX_METADATA: u64 = 1 << 20;
/// conda's `cudatoolkit` record lists every file of the toolkit.
const MAX_CONDA_RECORD: u64 = 16 << 20;
/// Bounds on what one image can make this module look at.
const MAX_PREFIXES: usize = 64;
/// Candidate prefixes tried, existing or not (PATH entries, conda environments).
const MAX_CANDIDATES: usize = 256;
const MAX_SITE_ENTRIES: usize = 8192;
/// `python3*` directories per prefix, conda records read per prefix, toolkit trees,
/// `LD_LIBRARY_PATH` directories looked in.
const MAX_PYTHONS: usize = 8;
const MAX_CONDA_RECORDS: usize = 8;
const MAX_TOOLKITS: usize = 32;
const MAX_PATH_DIRS: usize = 64;
/// Directory listings one scan may make in all: past it, what is left is not looked at.
const MAX_LISTINGS: usize = 2048;

/// Every CUDA runtime the root holds, one per library file (or one declaration).
pub fn runtimes(
    loader: &Loader,
    machine: u16,
    process: Option<&ProcessSpec>,
    closure: Option<&Closure>,
) -> Vec<CudaRuntime> {
    let root = loader.root();
    let mut found = Found::default();
    for prefix in prefixes(root, process) {
        if prefix.has_lib {
            for site in site_dirs(root, &prefix.path) {
                pip_site(root, &site, &mut found);
            }
        }
        if prefix.conda {
            conda_prefix(root, &prefix.path, &mut found);
        }
    }
    let cuda_version = process
        .and_then(|p| p.env_var("CUDA_VERSION"))
        .filter(|v| is_version(v))
        .map(str::to_string);
    toolkits(root, cuda_version.as_deref(), &mut found);
    system(loader, machine, &mut found);
    if let Some(closure) = closure {
        closure_libs(root, closure, &mut found);
    }
    if found.list.is_empty() {
        if let Some(declared) = declared(process) {
            found.list.push(declared);
        }
    }
    found.list
}

/// The runtime the verdict is mostly about: the highest stated version.
pub fn main_runtime(runtimes: &[CudaRuntime]) -> Option<&CudaRuntime> {
    runtimes
        .iter()
        .filter(|r| r.version.is_some())
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
}

fn version_key(r: &CudaRuntime) -> Vec<u32> {
    r.version
        .as_deref()
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

#[derive(Default)]
struct Found {
    list: Vec<CudaRuntime>,
    /// Canonical library paths already listed.
    seen: BTreeSet<String>,
    /// Directory listings made so far (bounded by [`MAX_LISTINGS`]).
    listings: usize,
}

impl Found {
    /// Lists `dir`, sorted by name, within the scan's budget of listings (empty past it).
    fn list(&mut self, root: &RootFs, dir: &str) -> Vec<(String, EntryKind)> {
        if self.listings >= MAX_LISTINGS {
            return Vec::new();
        }
        self.listings += 1;
        let mut entries = root.list_dir(dir).unwrap_or_default();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    fn add(&mut self, root: &RootFs, mut runtime: CudaRuntime) {
        if let Some(lib) = &runtime.library {
            let real = root.canonicalize(lib).unwrap_or_else(|_| lib.clone());
            if !self.seen.insert(real) {
                return;
            }
            if runtime.major.is_none() {
                runtime.major = soname_major(lib.rsplit('/').next().unwrap_or(lib));
            }
        }
        if runtime.major.is_none() {
            runtime.major = runtime
                .version
                .as_deref()
                .and_then(|v| v.split('.').next()?.parse().ok());
        }
        self.list.push(runtime);
    }

    fn has(&self, root: &RootFs, path: &str) -> bool {
        let real = root.canonicalize(path).unwrap_or_else(|_| path.to_string());
        self.seen.contains(&real)
    }
}

/// An install prefix that exists, and what of it matters here.
struct Prefix {
    path: String,
    has_lib: bool,
    conda: bool,
}

/// Install prefixes to look in: the usual ones, each `PATH` entry's parent (`/opt/venv/bin`
/// -> `/opt/venv`), `VIRTUAL_ENV`, `CONDA_PREFIX`, and the environments of a conda base.
/// Each candidate costs one directory listing (most do not exist), and one canonical
/// path when it does, so that a prefix reached twice is read once.
fn prefixes(root: &RootFs, process: Option<&ProcessSpec>) -> Vec<Prefix> {
    let mut candidates: Vec<String> = [
        "/usr",
        "/usr/local",
        "/opt/conda",
        "/opt/venv",
        "/venv",
        "/.venv",
        "/app/.venv",
        "/root/.local",
        "/opt/miniconda3",
        "/opt/miniforge3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(p) = process {
        for dir in p.env_var("PATH").unwrap_or_default().split(':') {
            if let Some(parent) = dir.trim_end_matches('/').strip_suffix("/bin") {
                if parent.starts_with('/') && !parent.is_empty() {
                    candidates.push(parent.to_string());
                }
            }
        }
        for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let Some(v) = p.env_var(var).filter(|v| v.starts_with('/')) {
                candidates.push(v.trim_end_matches('/').to_string());
            }
        }
    }
    let mut out: Vec<Prefix> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut i = 0;
    while i < candidates.len().min(MAX_CANDIDATES) && out.len() < MAX_PREFIXES {
        let path = candidates[i].clone();
        i += 1;
        // Canonical first: a prefix reached twice (links into one directory) is listed once.
        if !root.canonicalize(&path).is_ok_and(|real| seen.insert(real)) {
            continue;
        }
        let Ok(entries) = root.list_dir(&path) else {
            continue;
        };
        let has = |name: &str| entries.iter().any(|(n, _)| n == name);
        let conda = has("conda-meta");
        if conda && has("envs") {
            let envs = format!("{path}/envs");
            let mut names: Vec<String> = root
                .list_dir(&envs)
                .unwrap_or_default()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            names.sort();
            names.truncate(MAX_PREFIXES);
            candidates.extend(names.iter().map(|n| format!("{envs}/{n}")));
        }
        out.push(Prefix {
            has_lib: has("lib"),
            conda,
            path,
        });
    }
    out
}

/// `PREFIX/lib/python3*/site-packages` and `dist-packages` (Debian's, `python3` unversioned).
fn site_dirs(root: &RootFs, prefix: &str) -> Vec<String> {
    let lib = format!("{prefix}/lib");
    let mut pythons: Vec<String> = root
        .list_dir(&lib)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("python3"))
        .collect();
    pythons.sort();
    pythons.truncate(MAX_PYTHONS);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for name in pythons {
        for sub in ["site-packages", "dist-packages"] {
            let dir = format!("{lib}/{name}/{sub}");
            if root.kind(&dir) == Some(EntryKind::Dir)
                && root.canonicalize(&dir).is_ok_and(|c| seen.insert(c))
            {
                out.push(dir);
            }
        }
    }
    out
}

/// The CUDA runtime wheels in one site directory, and runtimes other wheels bundle.
fn pip_site(root: &RootFs, site: &str, found: &mut Found) {
    let mut entries = found.list(root, site);
    entries.truncate(MAX_SITE_ENTRIES);
    for (name, _) in &entries {
        let Some((dist, version)) = dist_info_name(name) else {
            continue;
        };
        if !is_runtime_dist(&dist) {
            continue;
        }
        let info = format!("{site}/{name}");
        let metadata = format!("{info}/METADATA");
        let version = root
            .read_limited(&metadata, MAX_METADATA)
            .ok()
            .and_then(|b| metadata_version(&String::from_utf8_lossy(&b)))
            .or(Some(version))
            .filter(|v| is_version(v));
        let record = root
            .read_limited(&format!("{info}/RECORD"), MAX_METADATA)
            .map(|b| record_paths(&String::from_utf8_lossy(&b)))
            .unwrap_or_default();
        for rel in record.iter().filter(|p| is_cudart_file(p)) {
            let library = format!("{site}/{rel}");
            if root.is_file(&library) {
                found.add(
                    root,
                    CudaRuntime {
                        version: version.clone(),
                        major: None,
                        layout: CudaLayout::Pip,
                        library: Some(library),
                        source: metadata.clone(),
                    },
                );
            }
        }
    }
    // A wheel's library without its metadata (copied in by hand, or RECORD removed).
    let nvidia = format!("{site}/nvidia");
    for (pkg, _) in found.list(root, &nvidia) {
        cudart_files_in(root, &format!("{nvidia}/{pkg}/lib"), CudaLayout::Pip, found);
    }
    // Wheels that vendor a runtime (auditwheel's `libcudart-<hash>.so.N`).
    for (name, kind) in &entries {
        if *kind != EntryKind::Dir || name == "nvidia" || name.ends_with("-info") {
            continue;
        }
        let dirs = if name.ends_with(".libs") {
            vec![format!("{site}/{name}")]
        } else {
            vec![format!("{site}/{name}/lib")]
        };
        for dir in dirs {
            cudart_files_in(root, &dir, CudaLayout::Bundled, found);
        }
    }
}

/// Lists each `libcudart*.so*` file in `dir` not listed yet (version from the file name).
fn cudart_files_in(root: &RootFs, dir: &str, layout: CudaLayout, found: &mut Found) {
    let names: Vec<String> = found
        .list(root, dir)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| is_cudart_file(n))
        .collect();
    for name in names {
        let path = format!("{dir}/{name}");
        if found.has(root, &path) || !root.is_file(&path) {
            continue;
        }
        let real = root.canonicalize(&path).unwrap_or_else(|_| path.clone());
        let version = file_version(real.rsplit('/').next().unwrap_or_default());
        found.add(
            root,
            CudaRuntime {
                version: version.clone(),
                major: None,
                layout,
                source: if version.is_some() {
                    real
                } else {
                    path.clone()
                },
                library: Some(path),
            },
        );
    }
}

/// conda's package records: `cuda-cudart` (CUDA 12 and later), `cudatoolkit` (before).
fn conda_prefix(root: &RootFs, prefix: &str, found: &mut Found) {
    let meta = format!("{prefix}/conda-meta");
    let records: Vec<(String, String)> = found
        .list(root, &meta)
        .into_iter()
        .filter_map(|(name, _)| {
            let (package, version, _build) = conda_record_name(&name)?;
            (package == "cuda-cudart" || package == "cudatoolkit").then_some((name, version))
        })
        .take(MAX_CONDA_RECORDS)
        .collect();
    for (name, version) in records {
        let path = format!("{meta}/{name}");
        let record = root
            .read_limited(&path, MAX_CONDA_RECORD)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let version = record
            .as_ref()
            .and_then(|r| r.get("version")?.as_str().map(str::to_string))
            .filter(|v| is_version(v))
            .or(Some(version).filter(|v| is_version(v)));
        let files: Vec<String> = record
            .as_ref()
            .and_then(|r| r.get("files")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .filter(|f| f.starts_with("lib/") && is_cudart_file(f))
            .collect();
        let library = files
            .iter()
            .map(|f| format!("{prefix}/{f}"))
            .find(|p| root.is_file(p))
            .or_else(|| first_cudart(root, &format!("{prefix}/lib"), found));
        found.add(
            root,
            CudaRuntime {
                version,
                major: None,
                layout: CudaLayout::Conda,
                library,
                source: path,
            },
        );
    }
    cudart_files_in(root, &format!("{prefix}/lib"), CudaLayout::Conda, found);
}

fn first_cudart(root: &RootFs, dir: &str, found: &mut Found) -> Option<String> {
    found
        .list(root, dir)
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| is_cudart_file(n))
        .map(|n| format!("{dir}/{n}"))
}

/// `/usr/local/cuda` then every `/usr/local/cuda-X.Y`, in name order, each with `tail`.
fn toolkit_dirs(root: &RootFs, tail: &str) -> Vec<String> {
    let mut names: Vec<String> = root
        .list_dir("/usr/local")
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("cuda-"))
        .collect();
    names.sort();
    names.truncate(MAX_TOOLKITS);
    std::iter::once("cuda".to_string())
        .chain(names)
        .map(|n| format!("/usr/local/{n}{tail}"))
        .collect()
}

/// `/usr/local/cuda` and every `/usr/local/cuda-X.Y`.
fn toolkits(root: &RootFs, cuda_version: Option<&str>, found: &mut Found) {
    let mut seen = BTreeSet::new();
    for dir in toolkit_dirs(root, "") {
        let Ok(real) = root.canonicalize(&dir) else {
            continue;
        };
        if root.kind(&real) != Some(EntryKind::Dir) || !seen.insert(real.clone()) {
            continue;
        }
        let json = format!("{real}/version.json");
        let txt = format!("{real}/version.txt");
        let stated = root
            .read_limited(&json, MAX_METADATA)
            .ok()
            .and_then(|b| toolkit_version_json(&String::from_utf8_lossy(&b)))
            .map(|v| (v, json.clone()))
            .or_else(|| {
                root.read_limited(&txt, MAX_METADATA)
                    .ok()
                    .and_then(|b| toolkit_version_txt(&String::from_utf8_lossy(&b)))
                    .map(|v| (v, txt.clone()))
            });
        let mut libs = Vec::new();
        let targets = format!("{real}/targets");
        for (arch, _) in found.list(root, &targets) {
            libs.extend(first_cudart_real(
                root,
                &format!("{targets}/{arch}/lib"),
                found,
            ));
        }
        libs.extend(first_cudart_real(root, &format!("{real}/lib64"), found));
        libs.sort();
        libs.dedup();
        // The version: version.json, else the library's file name, else CUDA_VERSION
        // (the base images set it to the toolkit they install).
        for lib in &libs {
            let from_name = file_version(lib.rsplit('/').next().unwrap_or_default());
            let (version, source) = match (&stated, from_name) {
                (Some((v, s)), _) => (Some(v.clone()), s.clone()),
                (None, Some(v)) => (Some(v), lib.clone()),
                (None, None) => match cuda_version {
                    Some(v) => (Some(v.to_string()), "env CUDA_VERSION".to_string()),
                    None => (None, lib.clone()),
                },
            };
            found.add(
                root,
                CudaRuntime {
                    version,
                    major: None,
                    layout: CudaLayout::Toolkit,
                    library: Some(lib.clone()),
                    source,
                },
            );
        }
        if libs.is_empty() {
            if let Some((version, source)) = stated {
                // A toolkit tree without its runtime library (headers only, or the
                // library elsewhere): its version still says what the image targets.
                if !found.list.iter().any(|r| r.source == source) {
                    found.add(
                        root,
                        CudaRuntime {
                            version: Some(version),
                            major: None,
                            layout: CudaLayout::Toolkit,
                            library: None,
                            source,
                        },
                    );
                }
            }
        }
    }
}

/// The canonical path of the one `libcudart` a directory's soname link points at.
fn first_cudart_real(root: &RootFs, dir: &str, found: &mut Found) -> Vec<String> {
    let mut out: Vec<String> = found
        .list(root, dir)
        .into_iter()
        .filter(|(n, _)| is_cudart_file(n))
        .filter_map(|(n, _)| root.canonicalize(&format!("{dir}/{n}")).ok())
        .filter(|p| root.is_file(p))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The `libcudart` the loader finds by its sonames.
fn system(loader: &Loader, machine: u16, found: &mut Found) {
    let root = loader.root();
    for soname in [
        "libcudart.so.13",
        "libcudart.so.12",
        "libcudart.so.11.0",
        "libcudart.so.10.2",
        "libcudart.so.10.1",
        "libcudart.so.10.0",
    ] {
        let Some(hit) = loader.find_plain(soname, machine, ElfClass::Elf64) else {
            continue;
        };
        if found.has(root, &hit.path) {
            continue;
        }
        let real = root
            .canonicalize(&hit.path)
            .unwrap_or_else(|_| hit.path.clone());
        let version = file_version(real.rsplit('/').next().unwrap_or_default());
        found.add(
            root,
            CudaRuntime {
                source: if version.is_some() {
                    real
                } else {
                    hit.path.clone()
                },
                version,
                major: None,
                layout: CudaLayout::System,
                library: Some(hit.path),
            },
        );
    }
}

/// A `libcudart` the entrypoint loads, or one in the directories its objects search
/// first (`DT_RUNPATH`, `DT_RPATH`), where a program `dlopen`s it from.
fn closure_libs(root: &RootFs, closure: &Closure, found: &mut Found) {
    for obj in &closure.objects {
        let name = obj.path.rsplit('/').next().unwrap_or_default();
        if is_cudart_file(name) && !found.has(root, &obj.path) {
            let dir = obj
                .path
                .rsplit_once('/')
                .map_or("/", |(d, _)| d)
                .to_string();
            cudart_files_in(root, &dir, CudaLayout::System, found);
        }
        let origin = obj.path.rsplit_once('/').map_or("/", |(d, _)| d);
        for dir in obj.info.runpath.iter().chain(&obj.info.rpath) {
            let dir = dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin);
            if dir.starts_with('/') {
                cudart_files_in(root, &dir, CudaLayout::System, found);
            }
        }
    }
}

/// `CUDA_VERSION`, else `NVIDIA_REQUIRE_CUDA`'s `cuda>=X.Y`, when no runtime file exists.
fn declared(process: Option<&ProcessSpec>) -> Option<CudaRuntime> {
    let process = process?;
    if let Some(v) = process.env_var("CUDA_VERSION").filter(|v| is_version(v)) {
        return Some(CudaRuntime {
            version: Some(v.to_string()),
            major: v.split('.').next()?.parse().ok(),
            layout: CudaLayout::Declared,
            library: None,
            source: "env CUDA_VERSION".into(),
        });
    }
    let v = process
        .env_var("NVIDIA_REQUIRE_CUDA")
        .and_then(require_cuda_minimum)?;
    Some(CudaRuntime {
        major: v.split('.').next()?.parse().ok(),
        version: Some(v),
        layout: CudaLayout::Declared,
        library: None,
        source: "env NVIDIA_REQUIRE_CUDA".into(),
    })
}

/// The forward-compatibility libraries (NVIDIA's `cuda-compat` package):
/// `/usr/local/cuda/compat`, else `/usr/local/cuda-X.Y/compat`.
pub fn compat(root: &RootFs, process: Option<&ProcessSpec>) -> Option<CudaCompat> {
    let mut seen = BTreeSet::new();
    for dir in toolkit_dirs(root, "/compat") {
        let Ok(real) = root.canonicalize(&dir) else {
            continue;
        };
        if !seen.insert(real.clone()) {
            continue;
        }
        let Ok(entries) = root.list_dir(&real) else {
            continue;
        };
        let mut names: Vec<String> = entries.into_iter().map(|(n, _)| n).collect();
        names.sort();
        // `libcuda.so.1` as the package links it, else the versioned file itself.
        let Some(libcuda_real) = std::iter::once("libcuda.so.1".to_string())
            .chain(
                names
                    .iter()
                    .filter(|n| {
                        n.strip_prefix("libcuda.so.")
                            .is_some_and(|v| v.contains('.') && is_version(v))
                    })
                    .cloned(),
            )
            .filter_map(|n| root.canonicalize(&format!("{real}/{n}")).ok())
            .find(|p| root.is_file(p))
        else {
            continue;
        };
        let version = libcuda_real
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_prefix("libcuda.so."))
            .filter(|v| v.contains('.') && is_version(v))
            .map(str::to_string);
        // The sonames the directory serves: `libcuda.so.1` (through `libcuda`), and each
        // `libX.so.N` whose target is a file.
        let mut sonames: Vec<String> = names
            .iter()
            .filter(|n| is_soname(n))
            .filter(|n| root.is_file(&format!("{real}/{n}")))
            .cloned()
            .collect();
        if !sonames.iter().any(|s| s == "libcuda.so.1") {
            sonames.insert(0, "libcuda.so.1".into());
        }
        let ld_library_path = process
            .and_then(|p| p.env_var("LD_LIBRARY_PATH"))
            .unwrap_or_default();
        // The loader takes libcuda.so.1 from the first directory of the path that has
        // one: the compat libraries load only if that is theirs.
        let on_ld_library_path = ld_library_path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .take(MAX_PATH_DIRS)
            .find(|d| root.kind(&format!("{d}/libcuda.so.1")).is_some())
            .is_some_and(|d| root.canonicalize(d).is_ok_and(|c| c == real));
        return Some(CudaCompat {
            dir: real,
            libcuda: libcuda_real,
            version,
            sonames,
            on_ld_library_path,
        });
    }
    None
}

/// `libcuda.so.1`, `libnvidia-nvvm.so.4`: a name ending in `.so.` and one number.
fn is_soname(name: &str) -> bool {
    name.rsplit_once(".so.")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `libcudart.so.12`, `libcudart.so.11.8.89`, `libcudart-e409450e.so.11.0`; not the
/// static archive or the unversioned development link.
pub fn is_cudart_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("libcudart") && name.contains(".so.") && !name.starts_with("libcudart_")
}

/// The major a `libcudart` file name gives: `libcudart.so.12` -> 12, `.so.11.0` -> 11.
pub fn soname_major(name: &str) -> Option<u32> {
    let (_, rest) = name.split_once(".so.")?;
    rest.split('.').next()?.parse().ok()
}

/// The full runtime version in a file name: `libcudart.so.11.8.89` -> 11.8.89. Two
/// parts are a soname (`libcudart.so.11.0`), not a version.
pub fn file_version(name: &str) -> Option<String> {
    let (_, rest) = name.split_once(".so.")?;
    (rest.split('.').count() >= 3 && is_version(rest)).then(|| rest.to_string())
}

/// `nvidia_cuda_runtime_cu12-12.9.79.dist-info` -> (`nvidia_cuda_runtime_cu12`, `12.9.79`).
pub fn dist_info_name(dir: &str) -> Option<(String, String)> {
    let stem = dir.strip_suffix(".dist-info")?;
    let (name, version) = stem.split_once('-')?;
    Some((
        name.to_ascii_lowercase().replace(['-', '.'], "_"),
        version.to_string(),
    ))
}

/// The CUDA runtime's wheels: `nvidia-cuda-runtime-cu11`, `-cu12`, and CUDA 13's
/// `nvidia-cuda-runtime` (normalized names).
fn is_runtime_dist(name: &str) -> bool {
    name == "nvidia_cuda_runtime" || name.starts_with("nvidia_cuda_runtime_cu")
}

/// The `Version:` header of a wheel's METADATA (headers end at the first blank line).
pub fn metadata_version(text: &str) -> Option<String> {
    text.lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The paths a wheel's RECORD lists (first CSV field; quoted when it holds a comma).
pub fn record_paths(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix('"') {
                let end = rest.find('"')?;
                Some(rest[..end].to_string())
            } else {
                line.split(',').next().map(str::to_string)
            }
        })
        .filter(|p| !p.is_empty() && !p.contains(".."))
        .collect()
}

/// `cuda-cudart-12.4.127-0.json` -> (`cuda-cudart`, `12.4.127`, `0`): conda names its
/// records `<name>-<version>-<build>.json`; versions and builds hold no dash.
pub fn conda_record_name(file: &str) -> Option<(String, String, String)> {
    let stem = file.strip_suffix(".json")?;
    let mut parts = stem.rsplitn(3, '-');
    let build = parts.next()?;
    let version = parts.next()?;
    let name = parts.next()?;
    (!name.is_empty() && !version.is_empty())
        .then(|| (name.to_string(), version.to_string(), build.to_string()))
}

/// `{"cuda": {"version": "12.4.1"}, "cuda_cudart": {"version": "12.4.127"}}`: the
/// runtime's own version where listed, else the toolkit's.
pub fn toolkit_version_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    ["cuda_cudart", "cuda"]
        .iter()
        .find_map(|k| value.get(k)?.get("version")?.as_str().map(str::to_string))
        .filter(|v| is_version(v))
}

/// `CUDA Version 10.2.89` (toolkits before 11.1).
pub fn toolkit_version_txt(text: &str) -> Option<String> {
    let v = text.trim().strip_prefix("CUDA Version")?.trim();
    is_version(v).then(|| v.to_string())
}

/// `cuda>=12.2 brand=tesla,driver>=470,driver<471` -> 12.2: the lowest `cuda>=`.
pub fn require_cuda_minimum(text: &str) -> Option<String> {
    text.split([' ', ','])
        .find_map(|w| w.strip_prefix("cuda>="))
        .filter(|v| is_version(v))
        .map(str::to_string)
}

/// Dot-separated numbers, two to four of them.
pub fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(is_cudart_file("nvidia/cuda_runtime/lib/libcudart.so.12"));
        assert!(is_cudart_file("torch/lib/libcudart-e409450e.so.11.0"));
        assert!(!is_cudart_file("lib/libcudart_static.a"));
        assert!(!is_cudart_file("lib/libcudart.so"));
        assert!(!is_cudart_file("libcudadevrt.a"));
        assert_eq!(soname_major("libcudart.so.12"), Some(12));
        assert_eq!(soname_major("libcudart.so.11.0"), Some(11));
        assert_eq!(soname_major("libcudart-e409450e.so.11.0"), Some(11));
        assert_eq!(
            file_version("libcudart.so.11.8.89").as_deref(),
            Some("11.8.89")
        );
        assert_eq!(file_version("libcudart.so.11.0"), None);
        assert_eq!(file_version("libcudart.so.12"), None);
    }

    #[test]
    fn wheel_metadata() {
        assert_eq!(
            dist_info_name("nvidia_cuda_runtime_cu12-12.9.79.dist-info"),
            Some(("nvidia_cuda_runtime_cu12".into(), "12.9.79".into()))
        );
        assert!(is_runtime_dist("nvidia_cuda_runtime"));
        assert!(is_runtime_dist("nvidia_cuda_runtime_cu11"));
        assert!(!is_runtime_dist("nvidia_cuda_nvrtc_cu12"));
        let meta = "Metadata-Version: 2.4\nName: nvidia-cuda-runtime-cu12\nVersion: 12.9.79\n\nVersion: 1.0\n";
        assert_eq!(metadata_version(meta).as_deref(), Some("12.9.79"));
        assert_eq!(metadata_version("\nVersion: 1\n"), None);
        let record = "nvidia/cuda_runtime/lib/libcudart.so.12,sha256=abc,741088\n\"odd,name.py\",,\n../escape,,\n";
        assert_eq!(
            record_paths(record),
            vec!["nvidia/cuda_runtime/lib/libcudart.so.12", "odd,name.py"]
        );
    }

    #[test]
    fn conda_and_toolkit_metadata() {
        assert_eq!(
            conda_record_name("cuda-cudart-12.4.127-0.json"),
            Some(("cuda-cudart".into(), "12.4.127".into(), "0".into()))
        );
        assert_eq!(
            conda_record_name("cudatoolkit-11.8.0-h6a678d5_0.json"),
            Some(("cudatoolkit".into(), "11.8.0".into(), "h6a678d5_0".into()))
        );
        assert_eq!(conda_record_name("history"), None);
        assert_eq!(conda_record_name("x-1.json"), None);
        assert_eq!(
            toolkit_version_json(
                r#"{"cuda":{"version":"12.4.1"},"cuda_cudart":{"version":"12.4.127"}}"#
            )
            .as_deref(),
            Some("12.4.127")
        );
        assert_eq!(
            toolkit_version_json(r#"{"cuda":{"name":"CUDA SDK","version":"12.2.2"}}"#).as_deref(),
            Some("12.2.2")
        );
        assert_eq!(toolkit_version_json("{"), None);
        assert_eq!(
            toolkit_version_txt("CUDA Version 10.2.89\n").as_deref(),
            Some("10.2.89")
        );
        assert_eq!(
            require_cuda_minimum("cuda>=12.2 brand=tesla,driver>=470,driver<471").as_deref(),
            Some("12.2")
        );
        assert_eq!(require_cuda_minimum("brand=tesla"), None);
        assert!(!is_version("12"));
        assert!(!is_version("12.x"));
        assert!(is_version("12.9.79"));
    }
}
