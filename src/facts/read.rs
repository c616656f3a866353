//! Gathers the [`Facts`] for a verdict, reading files so that the engine does not.
//! The container side comes from its bundle (entrypoint closure, MPI library, where its
//! loader finds each MPI soname, its own copy of every library a host object needs);
//! the host side from the host root (its MPI installation with the dependency closure,
//! plugin and data directories, GPU driver libraries) and the CPU target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::engine::facts::*;
use crate::engine::request::Inject;
use crate::input::rootfs::{RootError, RootFs};
use crate::input::target::Target;
use crate::inventory::cpu::{HostCpu, target_as_host};
use crate::inventory::elf::{ElfClass, dynamic_symbols};
use crate::inventory::gather::{Gathered, Request, gather_with_closure};
use crate::inventory::libfacts::{lib_of, mpi_lib, parent};
use crate::inventory::loader::{Closure, FoundVia, Loader};
use crate::inventory::model::{FileCode, FileFinding, Inventory};
use crate::inventory::mpi::{self, is_mpi_family};
use crate::inventory::mpi_host::{self, DiscoverError, Sources};
use crate::inventory::object::Object;

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("host root: {0}")]
    HostRoot(#[source] RootError),
    #[error(
        "unknown host target {0:?} (an archspec name such as haswell or x86_64_v3, or a gcc -march= name such as icelake-server)"
    )]
    UnknownTarget(String),
    #[error("{path}: listed in the config's inject.{set}.libraries: {message}")]
    Listed {
        set: &'static str,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Mpi(#[from] DiscoverError),
}

/// What a verdict is asked about.
pub struct Inputs<'a> {
    pub target: &'a Target,
    /// The container's annotations (the bundle's, and for the hook the state's too).
    pub annotations: &'a BTreeMap<String, String>,
    pub host_root: &'a Path,
    pub config: &'a Config,
    pub inject: Inject,
    /// `--host-target`, which wins over the config's.
    pub host_target: Option<&'a str>,
    pub cpu: &'a HostCpu,
    /// Use the cache of host facts (`--no-cache` turns it off).
    pub use_cache: bool,
    /// The caller's `LD_LIBRARY_PATH`, where a loaded module puts its MPI: the commands a
    /// user runs pass theirs, the hook none (its environment is the runtime's).
    pub ld_library_path: Option<&'a str>,
    /// The entrance sets the plan's environment variables in the container itself
    /// (Apptainer's `--env`); a hook cannot, so the container must already carry them.
    pub sets_env: bool,
}

pub fn prepare(inputs: &Inputs) -> Result<Facts, PrepareError> {
    let hwcaps = inputs.cpu.hwcaps();
    let mut host =
        super::cache::host_facts(inputs, inputs.use_cache, || host_facts(inputs, &hwcaps))?;
    // The container's loader picks glibc-hwcaps copies for the CPU the verdict is for.
    let container_hwcaps = match &host.target {
        Some(t) if t.source != TargetSource::Detected && inputs.cpu.arch == "x86_64" => {
            crate::inventory::cpu::x86_hwcaps(crate::inventory::cpu::x86_level_of(&t.features))
        }
        _ => hwcaps,
    };
    let (mut container, loader) = container_facts(inputs.target, &container_hwcaps);
    let wanted = inputs
        .annotations
        .get("org.supercontainers.mpi")
        .map(String::as_str);
    if let Some(choice) =
        crate::engine::choose::choose_mpi(&host.mpi_candidates, &container, wanted)
    {
        host.mpi = host.mpi_candidates.get(choice.index).cloned();
        host.mpi_choice = Some(choice);
    }
    with_host(&inputs.target.rootfs, &loader, &host, &mut container);
    drop(loader);
    Ok(Facts {
        container,
        host,
        sets_env: inputs.sets_env,
    })
}

// ---------------------------------------------------------------------------------------
// The host

fn host_facts(inputs: &Inputs, hwcaps: &[String]) -> Result<HostFacts, PrepareError> {
    let root = RootFs::open(inputs.host_root).map_err(PrepareError::HostRoot)?;
    let request = Request {
        hwcaps: hwcaps.to_vec(),
        ..Default::default()
    };
    let Gathered {
        mut inventory,
        loader,
        ..
    } = gather_with_closure(&root, &request);
    inventory.cpu = Some(inputs.cpu.clone());
    let target = host_target(inputs)?;
    let mpi_candidates = if inputs.inject.mpi {
        let set = &inputs.config.inject.mpi;
        let sources = Sources {
            libraries: &set.libraries,
            prefixes: &set.prefixes,
            plugin_dirs: &set.plugin_dirs,
            data_dirs: &set.data_dirs,
            ld_library_path: inputs.ld_library_path,
            shallow: false,
        };
        // A module's libraries resolve through the caller's search path too.
        let module_loader;
        let loader = match inputs.ld_library_path {
            Some(path) => {
                module_loader = Loader::new(&root, Some(path), hwcaps.to_vec());
                &module_loader
            }
            None => &loader,
        };
        mpi_host::discover(&root, loader, &inventory.mpi, &sources)?
    } else {
        Vec::new()
    };
    let (gpu_libs, gpu_programs) = if inputs.inject.gpu {
        (
            gpu_libs(inputs, &root, &loader, &inventory)?,
            gpu_programs(&root),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let glibc_listed = listed_glibc(inputs.config);
    Ok(HostFacts {
        root: inputs.host_root.to_path_buf(),
        inventory: Some(inventory),
        target: Some(target),
        mpi_candidates,
        mpi: None,
        mpi_choice: None,
        gpu_libs,
        gpu_programs,
        glibc_listed,
    })
}

fn host_target(inputs: &Inputs) -> Result<HostTarget, PrepareError> {
    let named = inputs
        .host_target
        .map(|t| (t.to_string(), TargetSource::HostTargetOption, None))
        .or_else(|| {
            inputs
                .config
                .host
                .target
                .clone()
                .map(|t| (t, TargetSource::Config, Some(config_name(inputs.config))))
        });
    let Some((name, source, config_file)) = named else {
        let cpu = inputs.cpu;
        return Ok(HostTarget {
            name: cpu.microarchitecture.clone(),
            features: cpu.usable_features.iter().cloned().collect(),
            source: TargetSource::Detected,
            config_file: None,
        });
    };
    let (name, features) = target_as_host(&name).ok_or(PrepareError::UnknownTarget(name))?;
    Ok(HostTarget {
        name,
        features,
        source,
        config_file,
    })
}

fn config_name(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map_or("config".into(), |p| p.display().to_string())
}

/// NVIDIA driver libraries in the host's loader cache whose file carries the driver
/// version, or the config's list.
fn gpu_libs(
    inputs: &Inputs,
    root: &RootFs,
    loader: &Loader,
    inventory: &Inventory,
) -> Result<Vec<Lib>, PrepareError> {
    let set = &inputs.config.inject.gpu;
    if !set.libraries.is_empty() {
        let objects = load_listed(root, inputs.host_root, &set.libraries, "gpu")?;
        return Ok(objects.iter().map(|o| lib_of(root, o)).collect());
    }
    // The libraries' own version: where it differs from the kernel module's, they are
    // still the driver's (the rules report the mismatch).
    let Some(driver) = inventory
        .gpu
        .nvidia_libraries
        .as_ref()
        .or(inventory.gpu.nvidia_driver.as_ref())
        .map(|d| d.version.clone())
    else {
        return Ok(Vec::new());
    };
    // The driver's libraries the loader cache lists (every capability's: the plan takes
    // those the container asks for), and the usual ones wherever the loader finds them (a
    // host root without a cache).
    let mut sonames: Vec<String> = NVIDIA_DRIVER_LIBS.iter().map(|s| s.to_string()).collect();
    if let Some(cache) = &loader.cache {
        sonames.extend(
            cache
                .entries
                .iter()
                .filter(|e| crate::engine::nvidia::capability_of(&e.soname).is_some())
                .map(|e| e.soname.clone()),
        );
    }
    let mut out: Vec<Lib> = Vec::new();
    for soname in sonames {
        let Some(found) =
            loader.find_plain(&soname, goblin::elf::header::EM_X86_64, ElfClass::Elf64)
        else {
            continue;
        };
        let Ok(real) = root.canonicalize(&found.path) else {
            continue;
        };
        if !real.ends_with(&format!(".so.{driver}")) || out.iter().any(|l| l.path == real) {
            continue;
        }
        if let Ok(obj) = Object::load(root, &real) {
            out.push(lib_of(root, &obj));
        }
    }
    Ok(out)
}

/// The driver libraries CUDA programs load (the NVIDIA container toolkit's "compute"
/// and "utility" sets).
const NVIDIA_DRIVER_LIBS: &[&str] = &[
    "libcuda.so.1",
    "libnvidia-ml.so.1",
    "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-nvvm.so.4",
    "libcudadebugger.so.1",
    "libnvidia-allocator.so.1",
    "libnvidia-cfg.so.1",
    "libnvidia-opencl.so.1",
];

/// The driver's programs where a host's `PATH` has them (the hook's own environment is
/// the runtime's, so the usual directories are searched), each with what it loads.
fn gpu_programs(root: &RootFs) -> Vec<GpuProgram> {
    let mut out = Vec::new();
    for (_, name) in crate::engine::nvidia::PROGRAMS {
        for dir in ["/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"] {
            let at = format!("{dir}/{name}");
            let Ok(real) = root.canonicalize(&at) else {
                continue;
            };
            let Ok(obj) = Object::load(root, &real) else {
                continue;
            };
            use crate::inventory::elf::ElfKind;
            if !matches!(obj.info.kind, ElfKind::Executable | ElfKind::PieExecutable) {
                continue;
            }
            out.push(GpuProgram {
                name: name.to_string(),
                at,
                lib: lib_of(root, &obj),
            });
            break;
        }
    }
    out
}

/// Loads the config's listed host libraries (host paths, read inside the host root).
fn load_listed(
    root: &RootFs,
    host_root: &Path,
    paths: &[PathBuf],
    set: &'static str,
) -> Result<Vec<Object>, PrepareError> {
    paths
        .iter()
        .map(|p| {
            let shown = host_root
                .join(p.strip_prefix("/").unwrap_or(p))
                .display()
                .to_string();
            let path = p.display().to_string();
            let real = root.canonicalize(&path).map_err(|e| PrepareError::Listed {
                set,
                path: shown.clone(),
                message: e.to_string(),
            })?;
            Object::load(root, &real).map_err(|e| PrepareError::Listed {
                set,
                path: shown,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Listed libraries that are glibc components (the config may not inject glibc piecemeal).
fn listed_glibc(config: &Config) -> Vec<String> {
    let all = config
        .inject
        .mpi
        .libraries
        .iter()
        .chain(&config.inject.gpu.libraries);
    all.filter(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        is_glibc_part(&name)
            || name.starts_with("libc.so")
            || name.starts_with("libc-2.")
            || name.starts_with("ld-linux")
    })
    .map(|p| p.display().to_string())
    .collect()
}

// ---------------------------------------------------------------------------------------
// The container

/// The container's side of a verdict alone, as `prepare` reads it (for the needs an
/// image has of any host: `match`). `hwcaps`: the CPU's glibc-hwcaps directories.
pub fn container_side(target: &Target, hwcaps: &[String]) -> ContainerFacts {
    container_facts(target, hwcaps).0
}

fn container_facts<'a>(target: &'a Target, hwcaps: &[String]) -> (ContainerFacts, Loader<'a>) {
    let root = &target.rootfs;
    let request = Request {
        process: target.process.as_ref(),
        annotations: Some(&target.annotations),
        all: false,
        hwcaps: hwcaps.to_vec(),
    };
    // The loader that resolved the entrypoint: the same LD_LIBRARY_PATH, cache and
    // objects already parsed serve the checks that depend on the host.
    let Gathered {
        mut inventory,
        closure,
        loader,
    } = gather_with_closure(root, &request);
    let closure = closure.unwrap_or_default();
    let env = target
        .process
        .iter()
        .flat_map(|p| p.env.iter())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut facts = ContainerFacts {
        static_entrypoint: closure.objects.first().is_some_and(|o| o.info.is_static),
        closure: closure.objects.iter().map(|o| lib_of(root, o)).collect(),
        broken: closure
            .broken
            .iter()
            .map(|b| BrokenLib {
                soname: b.soname.clone(),
                path: b.path.clone(),
                needed_by: b.needed_by.clone(),
                message: b.message.clone(),
            })
            .collect(),
        ld_cache_refused: loader
            .cache_refused
            .then(|| loader.cache_problem.as_ref().map(|p| p.message.clone()))
            .flatten(),
        cache_entries: loader
            .cache
            .as_ref()
            .map(|c| c.entries.clone())
            .unwrap_or_default(),
        env,
        ..Default::default()
    };
    mpi_side(root, &closure, &mut inventory, &mut facts);
    facts.inventory = Some(inventory);
    (facts, loader)
}

/// The container facts that depend on what the host injects: its own copy of each
/// library a host object needs, and what the host objects' search paths find in it.
fn with_host(root: &RootFs, loader: &Loader, host: &HostFacts, facts: &mut ContainerFacts) {
    let machine = facts
        .inventory
        .as_ref()
        .map_or(goblin::elf::header::EM_X86_64, facts_machine);
    providers(loader, host, machine, facts);
    search_dir_hits(root, host, facts);
}

/// The container's MPI library, where each MPI soname resolves, and what the closure
/// imports from it.
fn mpi_side(
    root: &RootFs,
    closure: &Closure,
    inventory: &mut Inventory,
    facts: &mut ContainerFacts,
) {
    let mut resolved: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (obj, edges) in closure.objects.iter().zip(&closure.edges) {
        for edge in edges.iter().filter(|e| is_mpi_family(&e.soname)) {
            if matches!(
                edge.via,
                FoundVia::Rpath | FoundVia::LdLibraryPath | FoundVia::Runpath
            ) {
                facts.mpi_before_cache.insert(edge.soname.clone());
            }
            let real = root
                .canonicalize(&edge.path)
                .unwrap_or_else(|_| edge.path.clone());
            resolved
                .entry(edge.soname.clone())
                .or_default()
                .push((obj.path.clone(), real));
        }
    }
    for (soname, uses) in &resolved {
        let Some((_, first)) = uses.first() else {
            continue;
        };
        facts.mpi_targets.insert(soname.clone(), first.clone());
        for (requester, path) in uses.iter().filter(|(_, p)| p != first) {
            facts
                .mpi_shadowed
                .push((requester.clone(), soname.clone(), path.clone()));
        }
    }
    let main = closure
        .objects
        .iter()
        .find(|o| o.info.soname.as_deref().is_some_and(mpi::is_mpi_soname));
    let (obj, install) = match main {
        Some(obj) => {
            let real = root
                .canonicalize(&obj.path)
                .unwrap_or_else(|_| obj.path.clone());
            let soname = obj.info.soname.clone().unwrap_or_default();
            (
                Object::load(root, &obj.path).ok(),
                Some(mpi::identify(obj, &soname, &real)),
            )
        }
        None => match inventory.mpi.first() {
            Some(install) => (
                Object::load(root, &install.real_path).ok(),
                Some(install.clone()),
            ),
            None => (None, None),
        },
    };
    let Some(obj) = obj else { return };
    if facts.mpi_targets.is_empty() {
        // No entrypoint that loads MPI: replace the library the container's loader finds.
        if let Some(install) = &install {
            facts
                .mpi_targets
                .insert(install.soname.clone(), install.real_path.clone());
        }
    }
    let lib = mpi_lib(root, &obj, install);
    facts.mpi_imports = imports(closure, &lib, &mut inventory.findings);
    facts.mpi = Some(lib);
}

/// Undefined symbols of the closure's objects that the MPI library defines. An object
/// whose symbol table cannot be read is a file finding (its imports are unverified),
/// never an object that imports nothing.
fn imports(closure: &Closure, mpi: &MpiLib, unread: &mut Vec<FileFinding>) -> Vec<Import> {
    let mut out = Vec::new();
    for obj in &closure.objects {
        if obj.info.soname.as_deref().is_some_and(is_mpi_family)
            || !obj.info.needed.iter().any(|n| is_mpi_family(n))
        {
            continue;
        }
        let symbols = match dynamic_symbols(&obj.bytes()) {
            Ok(symbols) => symbols,
            Err(e) => {
                unread.push(FileFinding {
                    code: FileCode::MalformedElf,
                    path: obj.path.clone(),
                    message: format!(
                        "{}: {e}: the MPI symbols it imports are not checked",
                        obj.path
                    ),
                });
                continue;
            }
        };
        for sym in symbols {
            if !sym.defined && mpi.defined_symbols.contains(&sym.name) {
                out.push(Import {
                    object: obj.path.clone(),
                    symbol: sym.name,
                    weak: sym.weak,
                });
            }
        }
    }
    out
}

/// The container's own copy of every library a host object needs, and the ones its
/// `LD_LIBRARY_PATH` would find before the injected copies.
fn providers(loader: &Loader, host: &HostFacts, machine: u16, facts: &mut ContainerFacts) {
    // Libraries inside a mounted prefix come with it: the container's copies never serve.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    if let Some(m) = &host.mpi {
        let libs = std::iter::once(&m.main.lib)
            .chain(m.family.values())
            .chain(&m.deps)
            .chain(&m.plugin_deps)
            .chain(m.plugin_dirs.iter().flat_map(|d| &d.libs));
        for lib in libs {
            wanted.extend(lib.needed.iter().cloned());
            wanted.extend(lib.needs.iter().map(|n| n.file.clone()));
            wanted.extend(lib.soname.iter().cloned());
        }
    }
    for lib in &host.gpu_libs {
        wanted.extend(lib.needed.iter().cloned());
        wanted.extend(lib.soname.iter().cloned());
    }
    for soname in wanted {
        let Some(found) = loader.find_plain(&soname, machine, ElfClass::Elf64) else {
            continue;
        };
        if found.via == FoundVia::LdLibraryPath {
            facts
                .ld_library_path_hits
                .insert(soname.clone(), found.path.clone());
        }
        if let Ok(obj) = loader.load(&found.path) {
            facts.providers.insert(soname, lib_of(loader.root(), &obj));
        }
    }
}

/// The container's ELF machine, from its inventory's architecture.
fn facts_machine(inventory: &Inventory) -> u16 {
    match inventory.arch.as_deref() {
        Some("aarch64") => goblin::elf::header::EM_AARCH64,
        Some("ppc64le") | Some("ppc64") => goblin::elf::header::EM_PPC64,
        Some("i386") => goblin::elf::header::EM_386,
        _ => goblin::elf::header::EM_X86_64,
    }
}

/// Where a host object's own RUNPATH/RPATH directories, looked up inside the container,
/// already hold a file of a name it needs. `$ORIGIN` is where the object will appear in
/// the container: over the container's file for a replaced library, at its own path
/// for plugins, in containerspec's directory for the others.
fn search_dir_hits(root: &RootFs, host: &HostFacts, facts: &mut ContainerFacts) {
    let Some(m) = &host.mpi else { return };
    let placed = crate::engine::plan::mpi_placement(m, facts);
    for (lib, at) in placed {
        let origin = parent(&at);
        for dir in &lib.search_dirs {
            let dir = dir
                .replace("${ORIGIN}", &origin)
                .replace("$ORIGIN", &origin);
            for soname in lib.needed.iter().filter(|s| !is_glibc_part(s)) {
                let candidate = format!("{}/{soname}", dir.trim_end_matches('/'));
                if facts.search_dir_hits.contains_key(soname) || !root.is_file(&candidate) {
                    continue;
                }
                let real = root.canonicalize(&candidate).unwrap_or(candidate);
                facts.search_dir_hits.insert(soname.clone(), real);
            }
        }
    }
}
