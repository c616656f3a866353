//! Gathers the [`Facts`] for a verdict: the only part of the engine that reads files.
//! The container side comes from its bundle (entrypoint closure, MPI library, where its
//! loader finds each MPI soname, its own copy of every library a host object needs);
//! the host side from the host root (its MPI installation with the dependency closure,
//! plugin and data directories, GPU driver libraries) and the CPU target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::facts::*;
use super::request::Inject;
use crate::config::Config;
use crate::input::bundle::Bundle;
use crate::input::rootfs::{EntryKind, RootError, RootFs};
use crate::inventory::cpu::{HostCpu, target_as_host};
use crate::inventory::elf::{ElfClass, dynamic_symbols};
use crate::inventory::gather::{Gathered, Request, gather_with_closure};
use crate::inventory::loader::{Closure, FoundVia, Loader};
use crate::inventory::model::{Inventory, MpiInstall};
use crate::inventory::mpi;
use crate::inventory::object::Object;

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("host root: {0}")]
    HostRoot(#[source] RootError),
    #[error("unknown host target {0:?} (an archspec name such as haswell or x86_64_v3)")]
    UnknownTarget(String),
    #[error("{path}: listed in the config's inject.{set}.libraries: {message}")]
    Listed {
        set: &'static str,
        path: String,
        message: String,
    },
}

/// What a verdict is asked about.
pub struct Inputs<'a> {
    pub bundle: &'a Bundle,
    pub host_root: &'a Path,
    pub config: &'a Config,
    pub inject: Inject,
    /// `--host-target`, which wins over the config's.
    pub host_target: Option<&'a str>,
    pub cpu: &'a HostCpu,
    /// Use the cache of host facts (`--no-cache` turns it off).
    pub use_cache: bool,
}

pub fn prepare(inputs: &Inputs) -> Result<Facts, PrepareError> {
    let hwcaps = inputs.cpu.hwcaps();
    let host =
        super::factcache::host_facts(inputs, inputs.use_cache, || host_facts(inputs, &hwcaps))?;
    let container = container_facts(inputs, &host, &hwcaps);
    Ok(Facts { container, host })
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
    let mpi = if inputs.inject.mpi {
        host_mpi(inputs, &root, &loader, &inventory)?
    } else {
        None
    };
    let gpu_libs = if inputs.inject.gpu {
        gpu_libs(inputs, &root, &loader, &inventory)?
    } else {
        Vec::new()
    };
    let glibc_listed = listed_glibc(inputs.config);
    Ok(HostFacts {
        root: inputs.host_root.to_path_buf(),
        inventory: Some(inventory),
        target: Some(target),
        mpi,
        gpu_libs,
        glibc_listed,
    })
}

fn host_target(inputs: &Inputs) -> Result<HostTarget, PrepareError> {
    let named = inputs
        .host_target
        .map(|t| (t.to_string(), "--host-target".to_string()))
        .or_else(|| {
            inputs
                .config
                .host
                .target
                .clone()
                .map(|t| (t, config_name(inputs.config)))
        });
    let Some((name, source)) = named else {
        let cpu = inputs.cpu;
        return Ok(HostTarget {
            name: cpu.microarchitecture.clone(),
            features: cpu.features.iter().cloned().collect(),
            source: "detected".into(),
        });
    };
    let (name, features) = target_as_host(&name).ok_or(PrepareError::UnknownTarget(name))?;
    Ok(HostTarget {
        name,
        features,
        source,
    })
}

fn config_name(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map_or("config".into(), |p| p.display().to_string())
}

/// The host MPI: the config's explicit list, else the installation the host's loader
/// sees, preferring the container's family.
fn host_mpi(
    inputs: &Inputs,
    root: &RootFs,
    loader: &Loader,
    inventory: &Inventory,
) -> Result<Option<HostMpi>, PrepareError> {
    let set = &inputs.config.inject.mpi;
    let (main, explicit_others, explicit) = if set.libraries.is_empty() {
        let Some(install) = pick_install(&inventory.mpi, inputs) else {
            return Ok(None);
        };
        let Ok(obj) = Object::load(root, &install.real_path) else {
            return Ok(None);
        };
        (
            mpi_lib(root, &obj, Some(install.clone())),
            Vec::new(),
            false,
        )
    } else {
        let objects = load_listed(root, inputs.host_root, &set.libraries, "mpi")?;
        let Some(pos) = objects
            .iter()
            .position(|o| o.info.soname.as_deref().is_some_and(mpi::is_mpi_soname))
        else {
            return Ok(None);
        };
        let mut objects = objects;
        let main_obj = objects.remove(pos);
        let real = main_obj.path.clone();
        let install = mpi::identify(
            &main_obj,
            main_obj.info.soname.as_deref().unwrap_or_default(),
            &real,
        );
        (mpi_lib(root, &main_obj, Some(install)), objects, true)
    };
    let family = family_libs(root, loader, &main.lib, &explicit_others);
    let mut plugin_dirs = Vec::new();
    let mut seeds: Vec<Object> = Vec::new();
    seeds.extend(Object::load(root, &main.lib.path).ok());
    seeds.extend(
        family
            .values()
            .filter_map(|l| Object::load(root, &l.path).ok()),
    );
    seeds.extend(
        explicit_others
            .iter()
            .filter_map(|o| Object::load(root, &o.path).ok()),
    );
    let mut deps = closure_libs(root, loader, seeds);
    // Plugins load libraries that load plugins (an Open MPI component needs libpmix,
    // which has its own): look again until no new directory turns up.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for _ in 0..4 {
        let mut dirs = plugin_dir_candidates(&main.lib, &deps);
        dirs.extend(set.plugin_dirs.iter().map(|p| p.display().to_string()));
        dirs.retain(|d| !seen.contains(d));
        if dirs.is_empty() {
            break;
        }
        for dir in dirs {
            seen.insert(dir.clone());
            let (plugin, plugin_deps) = plugin_dir(root, loader, &dir);
            if plugin.libs.is_empty() && plugin.unreadable.is_empty() {
                continue;
            }
            for d in plugin_deps {
                if !deps.iter().any(|x| x.path == d.path) {
                    deps.push(d);
                }
            }
            if !plugin_dirs
                .iter()
                .any(|p: &PluginDir| p.path == plugin.path)
            {
                plugin_dirs.push(plugin);
            }
        }
    }
    let helpers = helper_programs(root, loader, &main.lib, &mut deps);
    let family_paths: BTreeSet<&str> = family.values().map(|l| l.path.as_str()).collect();
    // Objects inside a plugin directory come with the directory's mount.
    let in_plugin_dir = |p: &str| plugin_dirs.iter().any(|d| parent(p) == d.path);
    deps.retain(|d| {
        d.path != main.lib.path
            && !family_paths.contains(d.path.as_str())
            && !in_plugin_dir(&d.path)
    });
    let mut data_dirs: Vec<String> = data_dir_candidates(&main)
        .into_iter()
        .filter(|d| root.kind(d) == Some(EntryKind::Dir))
        .collect();
    data_dirs.extend(set.data_dirs.iter().map(|p| p.display().to_string()));
    Ok(Some(HostMpi {
        main,
        family,
        deps,
        plugin_dirs,
        data_dirs,
        helpers,
        explicit,
    }))
}

fn pick_install<'a>(installs: &'a [MpiInstall], inputs: &Inputs) -> Option<&'a MpiInstall> {
    let wanted = inputs
        .bundle
        .annotations
        .get("org.supercontainers.mpi")
        .map(|s| s.to_ascii_lowercase());
    let family = |i: &MpiInstall| match i.abi {
        crate::inventory::model::MpiAbi::OpenMpi => "openmpi",
        crate::inventory::model::MpiAbi::Mpich => "mpich",
        crate::inventory::model::MpiAbi::Standard => "mpi-abi",
    };
    installs
        .iter()
        .find(|i| wanted.as_deref() == Some(family(i)))
        .or_else(|| installs.first())
}

/// The installation's other MPI libraries: the loader cache's MPI-family sonames whose
/// files live beside the main library.
fn family_libs(
    root: &RootFs,
    loader: &Loader,
    main: &Lib,
    listed: &[Object],
) -> BTreeMap<String, Lib> {
    let mut out = BTreeMap::new();
    for obj in listed
        .iter()
        .filter(|o| o.info.soname.as_deref().is_some_and(is_mpi_family))
    {
        out.insert(
            obj.info.soname.clone().unwrap_or_default(),
            lib_of(root, obj),
        );
    }
    let dir = parent(&main.path);
    let Some(cache) = &loader.cache else {
        return out;
    };
    for entry in cache.entries.iter().filter(|e| is_mpi_family(&e.soname)) {
        if out.contains_key(&entry.soname) || Some(entry.soname.as_str()) == main.soname.as_deref()
        {
            continue;
        }
        let Ok(real) = root.canonicalize(&entry.path) else {
            continue;
        };
        if parent(&real) != dir {
            continue;
        }
        if let Ok(obj) = Object::load(root, &real) {
            out.insert(entry.soname.clone(), lib_of(root, &obj));
        }
    }
    out
}

/// MPI-family sonames: the libraries an MPI installation ships for applications.
pub fn is_mpi_family(soname: &str) -> bool {
    let stem = soname.split(".so").next().unwrap_or_default();
    soname.contains(".so.") && (stem.starts_with("libmpi") || stem.starts_with("libpmpi"))
}

/// Everything `seeds` load, transitively, each file once (by canonical path).
fn closure_libs(root: &RootFs, loader: &Loader, seeds: Vec<Object>) -> Vec<Lib> {
    let mut out: Vec<Lib> = Vec::new();
    for seed in seeds {
        let closure = loader.closure(seed);
        for obj in closure.objects.iter().skip(1) {
            let lib = lib_of(root, obj);
            if !out.iter().any(|l| l.path == lib.path) {
                out.push(lib);
            }
        }
    }
    out
}

/// Where the loaded libraries keep the plugins they `dlopen`: Open MPI's components,
/// PMIx's, UCX transports, libfabric providers, hwloc plugins, verbs providers, each
/// beside the library that loads them.
fn plugin_dir_candidates(main: &Lib, deps: &[Lib]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if main.name() == "libmpi.so.40" {
        // Open MPI's components: pkglibdir, `openmpi3` (4.x on Debian), `openmpi40`
        // (5.x), under the library's directory, its `openmpi/lib`, or its RUNPATH.
        let main_dir = parent(&main.path);
        let mut bases = vec![main_dir.clone(), format!("{main_dir}/openmpi/lib")];
        bases.extend(
            main.search_dirs
                .iter()
                .filter(|d| d.starts_with('/'))
                .cloned(),
        );
        for base in bases {
            for series in ["openmpi", "openmpi3", "openmpi40", "openmpi5"] {
                out.insert(format!("{}/{series}", base.trim_end_matches('/')));
            }
        }
    }
    for lib in std::iter::once(main).chain(deps) {
        let dir = parent(&lib.path);
        let sub = match lib.name() {
            "libpmix.so.2" => "pmix",
            "libprrte.so.3" | "libprrte.so.2" => "prte",
            "libucp.so.0" | "libuct.so.0" | "libucs.so.0" => "ucx",
            "libfabric.so.1" => "libfabric",
            "libhwloc.so.15" => "hwloc",
            "libibverbs.so.1" => "libibverbs",
            _ => continue,
        };
        out.insert(format!("{dir}/{sub}"));
    }
    out
}

/// Open MPI before 5 starts its `orted` daemon even for a process started without
/// `mpirun` (a singleton): the host's must be there, with what it loads.
fn helper_programs(root: &RootFs, loader: &Loader, main: &Lib, deps: &mut Vec<Lib>) -> Vec<Lib> {
    let uses_orte = main.needed.iter().any(|n| n == "libopen-rte.so.40");
    if !uses_orte {
        return Vec::new();
    }
    let prefix_bin = format!("{}/../bin/orted", parent(&main.path));
    let mut out: Vec<Lib> = Vec::new();
    for candidate in [prefix_bin.as_str(), "/usr/bin/orted"] {
        let Ok(real) = root.canonicalize(candidate) else {
            continue;
        };
        if out.iter().any(|l| l.path == real) {
            continue;
        }
        let Ok(obj) = Object::load(root, &real) else {
            continue;
        };
        let closure = loader.closure(obj);
        let mut objects = closure.objects.into_iter();
        if let Some(first) = objects.next() {
            out.push(lib_of(root, &first));
        }
        for o in objects {
            let lib = lib_of(root, &o);
            if !deps.iter().any(|d| d.path == lib.path) {
                deps.push(lib);
            }
        }
    }
    out
}

/// Open MPI reads its help texts and default parameters from its prefix.
fn data_dir_candidates(main: &MpiLib) -> Vec<String> {
    let is_ompi = main
        .install
        .as_ref()
        .is_some_and(|i| i.abi == crate::inventory::model::MpiAbi::OpenMpi);
    if is_ompi {
        vec!["/usr/share/openmpi".into(), "/etc/openmpi".into()]
    } else {
        Vec::new()
    }
}

/// A plugin directory's ELF files and what they load. A plugin whose own dependencies
/// are missing on the host does not load there either: it is left out of the checks.
fn plugin_dir(root: &RootFs, loader: &Loader, dir: &str) -> (PluginDir, Vec<Lib>) {
    let mut plugin = PluginDir {
        path: dir.to_string(),
        ..Default::default()
    };
    let mut deps = Vec::new();
    let Ok(real_dir) = root.canonicalize(dir) else {
        return (plugin, deps);
    };
    if root.kind(&real_dir) != Some(EntryKind::Dir) {
        return (plugin, deps);
    }
    plugin.path = real_dir.clone();
    let mut entries = root.list_dir(&real_dir).unwrap_or_default();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in entries {
        if kind != EntryKind::File || !name.contains(".so") {
            continue;
        }
        let path = format!("{real_dir}/{name}");
        let Ok(obj) = Object::load(root, &path) else {
            plugin.unreadable.push(path);
            continue;
        };
        let closure: Closure = loader.closure(obj);
        if !closure.missing.is_empty() {
            continue;
        }
        let mut objects = closure.objects.into_iter();
        if let Some(first) = objects.next() {
            plugin.libs.push(lib_of(root, &first));
        }
        deps.extend(objects.map(|o| lib_of(root, &o)));
    }
    (plugin, deps)
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
    let Some(driver) = inventory
        .gpu
        .nvidia_driver
        .as_ref()
        .map(|d| d.version.clone())
    else {
        return Ok(Vec::new());
    };
    // The driver's libraries the loader cache lists, and the usual ones wherever the
    // loader finds them (a host root without a cache).
    let mut sonames: Vec<String> = NVIDIA_DRIVER_LIBS.iter().map(|s| s.to_string()).collect();
    if let Some(cache) = &loader.cache {
        sonames.extend(
            cache
                .entries
                .iter()
                .filter(|e| is_nvidia_driver_lib(&e.soname))
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

fn is_nvidia_driver_lib(soname: &str) -> bool {
    [
        "libcuda.so",
        "libnvidia-",
        "libcudadebugger.so",
        "libnvcuvid.so",
        "libnvoptix.so",
    ]
    .iter()
    .any(|p| soname.starts_with(p))
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

fn container_facts(inputs: &Inputs, host: &HostFacts, hwcaps: &[String]) -> ContainerFacts {
    let bundle = inputs.bundle;
    let root = &bundle.rootfs;
    let request = Request {
        process: Some(&bundle.process),
        annotations: Some(&bundle.annotations),
        all: false,
        hwcaps: hwcaps.to_vec(),
    };
    // The loader that resolved the entrypoint: the same LD_LIBRARY_PATH, cache and
    // objects already parsed.
    let Gathered {
        inventory,
        closure,
        loader,
    } = gather_with_closure(root, &request);
    let closure = closure.unwrap_or_default();
    let mut facts = ContainerFacts {
        static_entrypoint: closure.objects.first().is_some_and(|o| o.info.is_static),
        closure: closure.objects.iter().map(|o| lib_of(root, o)).collect(),
        cache_entries: loader
            .cache
            .as_ref()
            .map(|c| c.entries.clone())
            .unwrap_or_default(),
        cuda_forward_compat: has_forward_compat(root),
        ..Default::default()
    };
    mpi_side(root, &closure, &inventory, &mut facts);
    let machine = facts_machine(&inventory);
    providers(&loader, host, machine, &mut facts);
    search_dir_hits(root, host, &mut facts);
    facts.inventory = Some(inventory);
    facts
}

/// The container's MPI library, where each MPI soname resolves, and what the closure
/// imports from it.
fn mpi_side(root: &RootFs, closure: &Closure, inventory: &Inventory, facts: &mut ContainerFacts) {
    let mut resolved: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (obj, edges) in closure.objects.iter().zip(&closure.edges) {
        for edge in edges.iter().filter(|e| is_mpi_family(&e.soname)) {
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
    facts.mpi_imports = imports(closure, &lib);
    facts.mpi = Some(lib);
}

/// Undefined symbols of the closure's objects that the MPI library defines.
fn imports(closure: &Closure, mpi: &MpiLib) -> Vec<Import> {
    let mut out = Vec::new();
    for obj in &closure.objects {
        if obj.info.soname.as_deref().is_some_and(is_mpi_family)
            || !obj.info.needed.iter().any(|n| is_mpi_family(n))
        {
            continue;
        }
        for sym in dynamic_symbols(&obj.bytes()).unwrap_or_default() {
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
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    if let Some(m) = &host.mpi {
        let libs = std::iter::once(&m.main.lib)
            .chain(m.family.values())
            .chain(&m.deps)
            .chain(m.plugin_dirs.iter().flat_map(|d| &d.libs));
        for lib in libs {
            wanted.extend(lib.needed.iter().cloned());
            wanted.extend(lib.needs.iter().map(|n| n.file.clone()));
            wanted.extend(lib.soname.iter().cloned());
        }
    }
    for lib in &host.gpu_libs {
        wanted.extend(lib.needed.iter().cloned());
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
    let main_at = facts
        .mpi_targets
        .get(m.main.lib.name())
        .cloned()
        .unwrap_or_else(|| m.main.lib.path.clone());
    let mut placed: Vec<(&Lib, String)> = vec![(&m.main.lib, main_at)];
    for (soname, lib) in &m.family {
        placed.push((
            lib,
            facts
                .mpi_targets
                .get(soname)
                .cloned()
                .unwrap_or_else(|| lib.path.clone()),
        ));
    }
    placed.extend(
        m.plugin_dirs
            .iter()
            .flat_map(|d| d.libs.iter().map(|l| (l, l.path.clone()))),
    );
    placed.extend(
        m.deps
            .iter()
            .map(|l| (l, format!("{}/{}", super::plan::OWNED_DIR, l.name()))),
    );
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

fn has_forward_compat(root: &RootFs) -> bool {
    root.list_dir("/usr/local/cuda/compat")
        .unwrap_or_default()
        .iter()
        .any(|(n, _)| n.starts_with("libcuda.so"))
}

// ---------------------------------------------------------------------------------------

fn mpi_lib(root: &RootFs, obj: &Object, install: Option<MpiInstall>) -> MpiLib {
    let defined_symbols = dynamic_symbols(&obj.bytes())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.defined)
        .map(|s| s.name)
        .collect();
    MpiLib {
        lib: lib_of(root, obj),
        install,
        defined_symbols,
    }
}

/// The facts of one object, at its canonical path.
fn lib_of(root: &RootFs, obj: &Object) -> Lib {
    Lib {
        path: root
            .canonicalize(&obj.path)
            .unwrap_or_else(|_| obj.path.clone()),
        soname: obj.info.soname.clone(),
        needed: obj.info.needed.clone(),
        needs: obj.info.version_needs.clone(),
        defines: obj.info.version_definitions.clone(),
        cache_flags: cache_flags(obj.info.machine),
        search_dirs: if obj.info.runpath.is_empty() {
            obj.info.rpath.clone()
        } else {
            obj.info.runpath.clone()
        },
    }
}

/// The flags ldconfig gives a library of this machine (`libc6` plus the ABI).
fn cache_flags(machine: u16) -> i32 {
    use crate::inventory::ldcache::*;
    match machine {
        goblin::elf::header::EM_X86_64 => FLAG_ELF_LIBC6 | FLAG_X8664_LIB64,
        goblin::elf::header::EM_AARCH64 => FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64,
        _ => FLAG_ELF_LIBC6,
    }
}

fn parent(path: &str) -> String {
    path.rsplit_once('/').map_or("/".into(), |(d, _)| {
        if d.is_empty() {
            "/".into()
        } else {
            d.to_string()
        }
    })
}
