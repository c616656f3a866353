//! The host's MPI installations: where they are and everything that loads with each.
//!
//! An installation is found through the config's explicit library list, the config's
//! prefixes (a module's or Spack's `/sw/.../openmpi-5.0.x-<hash>`), the caller's
//! `LD_LIBRARY_PATH` (what `module load` sets; only for the commands a user runs, never
//! the hook), or the host's loader cache, in that order of preference. For each, it
//! reads the main library and its siblings of the same ABI (`libmpifort`, `libmpicxx`),
//! everything they load (`DT_NEEDED`, and what the implementation `dlopen`s: Intel MPI's
//! libfabric), the plugin directories those libraries load from (Open MPI's components,
//! libfabric providers, UCX transports, PMIx plugins), the programs they start, and the
//! environment a container needs to find those plugins. Problems are kept as data for the
//! report: nothing unreadable is dropped silently.
//!
//! An installation outside the distribution's directories is a prefix: it is mounted at
//! its own path in the container, so that `$ORIGIN` in its libraries still names its own
//! directory and its bundled libfabric, hwloc, PMIx and UCX load, not the container's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::libfacts::{Lib, MpiLib, lib_of, mpi_lib, parent};
use super::loader::Loader;
use super::model::{MpiAbi, MpiInstall};
use super::mpi::{self, abi_role, is_mpi_family};
use super::object::Object;
use crate::input::rootfs::{EntryKind, RootFs};

/// Where an installation was found.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MpiOrigin {
    /// The config's `inject.mpi.libraries`.
    ConfigLibraries,
    /// The config's `inject.mpi.prefixes`.
    ConfigPrefix,
    /// A directory of the caller's `LD_LIBRARY_PATH` (a loaded module).
    LdLibraryPath,
    /// The host's loader cache.
    #[default]
    LoaderCache,
}

impl MpiOrigin {
    pub fn describe(&self) -> &'static str {
        match self {
            MpiOrigin::ConfigLibraries => "the config's inject.mpi.libraries",
            MpiOrigin::ConfigPrefix => "the config's inject.mpi.prefixes",
            MpiOrigin::LdLibraryPath => "LD_LIBRARY_PATH",
            MpiOrigin::LoaderCache => "the loader cache",
        }
    }
}

/// A host MPI installation, with everything that loads with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostMpi {
    pub main: MpiLib,
    /// The installation's other libraries of the same ABI by soname (`libmpifort.so.12`,
    /// `libmpi_mpifh.so.40`, ...): they replace the container's copies too.
    pub family: BTreeMap<String, Lib>,
    /// Every other library the main library and the family load.
    pub deps: Vec<Lib>,
    /// Libraries only plugins load: optional like the plugins themselves.
    pub plugin_deps: Vec<Lib>,
    /// Plugin directories the host libraries load from at run time, with their objects.
    pub plugin_dirs: Vec<PluginDir>,
    /// Data directories (help texts, default parameters) they read.
    pub data_dirs: Vec<String>,
    /// Programs the host libraries start at run time (Open MPI 4's `orted`), mounted at
    /// their own path: the container's copy, if any, belongs to another release.
    pub helpers: Vec<Lib>,
    /// From the config's explicit list rather than discovered.
    pub explicit: bool,
    pub origin: MpiOrigin,
    /// What it was found through: the prefix or directory given, or the library's path.
    pub found_in: String,
    /// The installation's own tree, mounted at its own path in the container; None for a
    /// library in the distribution's directories (bound over the container's file).
    pub prefix: Option<String>,
    /// Variables the container's environment needs for the installation's plugins.
    pub env: Vec<EnvNeed>,
    /// Files of the installation that could not be read: never verified, always reported.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PluginDir {
    pub path: String,
    pub libs: Vec<Lib>,
    /// Files that could not be read as ELF.
    pub unreadable: Vec<String>,
    /// Why the directory itself could not be listed (its plugins are then unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_error: Option<String>,
}

/// An environment variable without which plugins are not found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvNeed {
    pub name: String,
    pub value: String,
    /// Without it nothing works (the library has no built-in alternative), rather than
    /// only the optional plugins being lost.
    pub required: bool,
    pub reason: String,
}

/// What the caller says about where the host's MPI is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub libraries: &'a [PathBuf],
    pub prefixes: &'a [PathBuf],
    pub plugin_dirs: &'a [PathBuf],
    pub data_dirs: &'a [PathBuf],
    /// The caller's `LD_LIBRARY_PATH` (None for the hook: its environment is the runtime's).
    pub ld_library_path: Option<&'a str>,
    /// Describe each installation (its libraries and where it was found) without reading
    /// what it loads: its dependencies, plugins and helpers are left empty.
    pub shallow: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{path}: listed in the config's inject.mpi.libraries: {message}")]
    Listed { path: String, message: String },
    #[error("{path}: named in the config's inject.mpi.prefixes: {message}")]
    Prefix { path: String, message: String },
}

/// Every installation the sources name, most preferred first, each main library once.
pub fn discover(
    root: &RootFs,
    loader: &Loader,
    cached: &[MpiInstall],
    src: &Sources,
) -> Result<Vec<HostMpi>, DiscoverError> {
    let mut out: Vec<HostMpi> = Vec::new();
    let push = |m: HostMpi, out: &mut Vec<HostMpi>| {
        if !out.iter().any(|o| o.main.lib.path == m.main.lib.path) {
            out.push(m);
        }
    };
    if !src.libraries.is_empty() {
        if let Some(m) = listed(root, loader, src)? {
            push(m, &mut out);
        }
    }
    for prefix in src.prefixes {
        let shown = shown_in(root, prefix);
        let text = prefix.display().to_string();
        let dirs: Vec<String> = ["lib64", "lib", "lib/release", ""]
            .iter()
            .map(|d| format!("{}/{d}", text.trim_end_matches('/')))
            .map(|d| d.trim_end_matches('/').to_string())
            .collect();
        let mains = dirs
            .iter()
            .flat_map(|d| main_libs(root, d))
            .collect::<Vec<_>>();
        if mains.is_empty() {
            return Err(DiscoverError::Prefix {
                path: shown,
                message: "no MPI library (libmpi.so.N, libmpich.so.N, libmpi_abi.so.N) in its lib, lib64 or the prefix itself".into(),
            });
        }
        for (obj, real) in mains {
            let m = read_install(
                root,
                loader,
                obj,
                &real,
                MpiOrigin::ConfigPrefix,
                &text,
                src,
                &[],
                None,
            );
            push(m, &mut out);
        }
    }
    for dir in src.ld_library_path.map(search_path).unwrap_or_default() {
        for (obj, real) in main_libs(root, &dir) {
            let m = read_install(
                root,
                loader,
                obj,
                &real,
                MpiOrigin::LdLibraryPath,
                &dir,
                src,
                &[],
                None,
            );
            push(m, &mut out);
        }
    }
    // In the loader cache, a site's own installation (registered in ld.so.conf) wins
    // over the distribution's package beside it.
    let mut cached: Vec<&MpiInstall> = cached.iter().collect();
    cached.sort_by_key(|i| prefix_of(&parent(&i.real_path)).is_none());
    for install in cached {
        match Object::load(root, &install.real_path) {
            Ok(obj) => {
                let real = install.real_path.clone();
                let m = read_install(
                    root,
                    loader,
                    obj,
                    &real,
                    MpiOrigin::LoaderCache,
                    &install.path,
                    src,
                    &[],
                    Some(install),
                );
                push(m, &mut out);
            }
            Err(e) => log::warn!("{}: host MPI library not readable: {e}", install.real_path),
        }
    }
    Ok(out)
}

fn search_path(value: &str) -> Vec<String> {
    value
        .split([':', ';'])
        .filter(|s| s.starts_with('/'))
        .map(|s| s.trim_end_matches('/').to_string())
        .collect()
}

/// The path as this machine sees it, for messages.
fn shown_in(root: &RootFs, path: &Path) -> String {
    let r = root.path();
    if r == Path::new("/") {
        path.display().to_string()
    } else {
        r.join(path.strip_prefix("/").unwrap_or(path))
            .display()
            .to_string()
    }
}

/// The MPI main libraries in `dir` (files named by an MPI soname), each real file once.
fn main_libs(root: &RootFs, dir: &str) -> Vec<(Object, String)> {
    let Ok(mut entries) = root.list_dir(dir) else {
        return Vec::new();
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Object, String)> = Vec::new();
    for (name, _) in entries {
        if !mpi::is_mpi_soname(&name) {
            continue;
        }
        let path = format!("{dir}/{name}");
        let Ok(real) = root.canonicalize(&path) else {
            continue;
        };
        if out.iter().any(|(_, r)| *r == real) {
            continue;
        }
        match Object::load(root, &real) {
            Ok(obj) if obj.info.soname.as_deref().is_some_and(mpi::is_mpi_soname) => {
                out.push((obj, real))
            }
            Ok(_) => {}
            Err(e) => log::warn!("{path}: not an MPI library: {e}"),
        }
    }
    out
}

/// The config's explicit list: its MPI library is the installation, the rest load with it.
fn listed(root: &RootFs, loader: &Loader, src: &Sources) -> Result<Option<HostMpi>, DiscoverError> {
    let mut objects = Vec::new();
    for p in src.libraries {
        let path = p.display().to_string();
        let fail = |message: String| DiscoverError::Listed {
            path: shown_in(root, p),
            message,
        };
        let real = root.canonicalize(&path).map_err(|e| fail(e.to_string()))?;
        objects.push(Object::load(root, &real).map_err(|e| fail(e.to_string()))?);
    }
    let Some(pos) = objects
        .iter()
        .position(|o| o.info.soname.as_deref().is_some_and(mpi::is_mpi_soname))
    else {
        // An explicit list stands for the installation: without its MPI library it
        // would be dropped, and another installation injected in its place.
        return match src.libraries.first() {
            Some(first) => Err(DiscoverError::Listed {
                path: shown_in(root, first),
                message: "none of the listed libraries is an MPI library (its DT_SONAME is not libmpi.so.N, libmpich.so.N, libmpi_abi.so.N...); list the installation's MPI library too".into(),
            }),
            None => Ok(None),
        };
    };
    let main = objects.remove(pos);
    let real = main.path.clone();
    let found_in = real.clone();
    let mut m = read_install(
        root,
        loader,
        main,
        &real,
        MpiOrigin::ConfigLibraries,
        &found_in,
        src,
        &objects,
        None,
    );
    m.explicit = true;
    Ok(Some(m))
}

#[allow(clippy::too_many_arguments)]
fn read_install(
    root: &RootFs,
    loader: &Loader,
    obj: Object,
    real: &str,
    origin: MpiOrigin,
    found_in: &str,
    src: &Sources,
    listed_others: &[Object],
    known: Option<&MpiInstall>,
) -> HostMpi {
    let soname = obj.info.soname.clone().unwrap_or_default();
    // The loader cache's installations were identified by the inventory already.
    let install = match known {
        Some(i) if i.real_path == real => i.clone(),
        _ => mpi::identify(&obj, &soname, real),
    };
    let main = mpi_lib(root, &obj, Some(install.clone()));
    let mut problems = Vec::new();
    let family = family_libs(root, &main.lib, install.abi, listed_others, &mut problems);
    let mut seeds: Vec<Object> = vec![obj];
    for lib in family.values() {
        match Object::load(root, &lib.path) {
            Ok(o) => seeds.push(o),
            Err(e) => problems.push(e.to_string()),
        }
    }
    for o in listed_others {
        if let Ok(o) = Object::load(root, &o.path) {
            seeds.push(o);
        }
    }
    let prefix = prefix_of(&parent(&main.lib.path));
    if src.shallow {
        return HostMpi {
            main,
            family,
            origin,
            found_in: found_in.to_string(),
            prefix,
            problems,
            ..Default::default()
        };
    }
    // What the implementation loads with dlopen rather than DT_NEEDED.
    let dlopened = dlopened(root, loader, &install, &main.lib, prefix.as_deref());
    let mut deps = closure_libs(root, loader, seeds, &mut problems);
    // A dlopen'ed library is a dependency itself, not only what it loads.
    for path in &dlopened {
        match Object::load(root, path) {
            Ok(obj) => {
                let lib = lib_of(root, &obj);
                let more = closure_libs(root, loader, vec![obj], &mut problems);
                for l in std::iter::once(lib).chain(more) {
                    if !deps.iter().any(|d| d.path == l.path) {
                        deps.push(l);
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut plugin_dirs: Vec<PluginDir> = Vec::new();
    let mut only_plugins: Vec<Lib> = Vec::new();
    // Plugins load libraries that load plugins (an Open MPI component needs libpmix,
    // which has its own): look again until no new directory turns up.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for _ in 0..4 {
        // Libraries that only plugins load have plugins of their own (libpmix).
        let all: Vec<Lib> = deps.iter().chain(&only_plugins).cloned().collect();
        let mut dirs = plugin_dir_candidates(&main.lib, &all);
        dirs.extend(src.plugin_dirs.iter().map(|p| p.display().to_string()));
        dirs.retain(|d| !seen.contains(d));
        if dirs.is_empty() {
            break;
        }
        for dir in dirs {
            seen.insert(dir.clone());
            let loaded: BTreeSet<String> = std::iter::once(&main.lib)
                .chain(family.values())
                .chain(&deps)
                .chain(&only_plugins)
                .filter_map(|l| l.soname.clone())
                .collect();
            let (plugin, plugin_deps) = plugin_dir(root, loader, &dir, &loaded);
            if plugin.libs.is_empty() && plugin.unreadable.is_empty() && plugin.list_error.is_none()
            {
                continue;
            }
            for d in plugin_deps {
                if !deps.iter().chain(&only_plugins).any(|x| x.path == d.path) {
                    only_plugins.push(d);
                }
            }
            if !plugin_dirs.iter().any(|p| p.path == plugin.path) {
                plugin_dirs.push(plugin);
            }
        }
    }
    let helpers = helper_programs(root, loader, &main.lib, &mut deps);
    let family_paths: BTreeSet<&str> = family.values().map(|l| l.path.as_str()).collect();
    let in_plugin_dir = |p: &str| plugin_dirs.iter().any(|d| parent(p) == d.path);
    let keep = |d: &Lib| {
        d.path != main.lib.path
            && !family_paths.contains(d.path.as_str())
            && !in_plugin_dir(&d.path)
    };
    deps.retain(keep);
    only_plugins.retain(keep);
    let mut data_dirs: Vec<String> = if prefix.is_none() {
        data_dir_candidates(&install)
            .into_iter()
            .filter(|d| root.kind(d) == Some(EntryKind::Dir))
            .collect()
    } else {
        Vec::new()
    };
    data_dirs.extend(src.data_dirs.iter().map(|p| p.display().to_string()));
    let env = provider_env(root, &deps, &plugin_dirs);
    HostMpi {
        main,
        family,
        deps,
        plugin_deps: only_plugins,
        plugin_dirs,
        data_dirs,
        helpers,
        explicit: false,
        origin,
        found_in: found_in.to_string(),
        prefix,
        env,
        problems,
    }
}

/// The installation's tree when its libraries live outside the distribution's
/// directories: the directory above `lib`/`lib64` (`lib/release` for Intel MPI's older
/// layout), else the library directory itself.
pub fn prefix_of(lib_dir: &str) -> Option<String> {
    let under = |p: &str| lib_dir == p || lib_dir.starts_with(&format!("{p}/"));
    let local_lib = ["/usr/local/lib", "/usr/local/lib64"]
        .iter()
        .any(|p| under(p));
    let distro = (under("/usr") && !under("/usr/local"))
        || local_lib
        || under("/lib")
        || under("/lib64")
        || under("/lib32")
        || under("/bin")
        || under("/sbin")
        || under("/etc")
        || lib_dir == "/";
    if distro || !lib_dir.starts_with('/') {
        return None;
    }
    let top = ["/lib/release", "/lib64", "/lib"]
        .iter()
        .find_map(|s| lib_dir.strip_suffix(s))
        .unwrap_or(lib_dir);
    // "/opt" or "/usr/local" alone is no installation's own tree.
    let deep_enough = top.matches('/').count() >= 2 && top != "/usr/local";
    Some(if deep_enough { top } else { lib_dir }.to_string())
}

/// The installation's other libraries of the same ABI: listed ones, and files beside the
/// main library named by an MPI-family soname.
fn family_libs(
    root: &RootFs,
    main: &Lib,
    abi: MpiAbi,
    listed: &[Object],
    problems: &mut Vec<String>,
) -> BTreeMap<String, Lib> {
    let same_abi = |soname: &str| match abi_role(soname) {
        Some((a, _)) => a == abi,
        None => abi == MpiAbi::OpenMpi,
    };
    let mut out = BTreeMap::new();
    for obj in listed {
        if let Some(s) = obj.info.soname.as_deref().filter(|s| is_mpi_family(s)) {
            out.insert(s.to_string(), lib_of(root, obj));
        }
    }
    let dir = parent(&main.path);
    let Ok(mut entries) = root.list_dir(&dir) else {
        return out;
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, _) in entries {
        let soname_shaped = name
            .split_once(".so.")
            .is_some_and(|(_, v)| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
        if !soname_shaped || !is_mpi_family(&name) || !same_abi(&name) {
            continue;
        }
        if out.contains_key(&name) || Some(name.as_str()) == main.soname.as_deref() {
            continue;
        }
        let path = format!("{dir}/{name}");
        let Ok(real) = root.canonicalize(&path) else {
            continue;
        };
        if real == main.path {
            continue;
        }
        match Object::load(root, &real) {
            Ok(obj) => {
                let soname = obj.info.soname.clone().unwrap_or(name);
                if Some(soname.as_str()) != main.soname.as_deref() {
                    out.insert(soname, lib_of(root, &obj));
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    out
}

/// Libraries the implementation opens with `dlopen`: Intel MPI loads libfabric, from the
/// caller's search path or its own tree (`lib/libfabric`, `libfabric/lib`).
fn dlopened(
    root: &RootFs,
    loader: &Loader,
    install: &MpiInstall,
    main: &Lib,
    prefix: Option<&str>,
) -> Vec<String> {
    if install.implementation != "Intel MPI" {
        return Vec::new();
    }
    // Its own copy first, as its module's LD_LIBRARY_PATH would have it; else whatever
    // the caller's search path or the loader cache give.
    let dir = parent(&main.path);
    let mut candidates = vec![format!("{dir}/libfabric/libfabric.so.1")];
    if let Some(p) = prefix {
        candidates.push(format!("{p}/libfabric/lib/libfabric.so.1"));
        candidates.push(format!("{p}/opt/mpi/libfabric/lib/libfabric.so.1"));
    }
    let machine = goblin::elf::header::EM_X86_64;
    if let Some(found) = loader.find_plain("libfabric.so.1", machine, super::elf::ElfClass::Elf64) {
        candidates.push(found.path);
    }
    candidates
        .into_iter()
        .filter_map(|c| root.canonicalize(&c).ok())
        .filter(|c| root.is_file(c))
        .take(1)
        .collect()
}

/// Everything `seeds` load, transitively, each file once (by canonical path).
fn closure_libs(
    root: &RootFs,
    loader: &Loader,
    seeds: Vec<Object>,
    problems: &mut Vec<String>,
) -> Vec<Lib> {
    let mut out: Vec<Lib> = Vec::new();
    for seed in seeds {
        let closure = loader.closure(seed);
        problems.extend(closure.unreadable.iter().map(|e| e.to_string()));
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
        let subs: &[&str] = match lib.name() {
            "libpmix.so.2" => &["pmix"],
            "libprrte.so.3" | "libprrte.so.2" => &["prte"],
            "libucp.so.0" | "libuct.so.0" | "libucs.so.0" => &["ucx"],
            // Upstream keeps providers in `libfabric/` beside the library; Intel MPI's
            // copy in `prov/` (its own directory is already called libfabric).
            "libfabric.so.1" => &["libfabric", "prov"],
            "libhwloc.so.15" => &["hwloc"],
            "libibverbs.so.1" => &["libibverbs"],
            _ => continue,
        };
        for sub in subs {
            out.insert(format!("{dir}/{sub}"));
        }
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
fn data_dir_candidates(install: &MpiInstall) -> Vec<String> {
    if install.abi == MpiAbi::OpenMpi {
        vec!["/usr/share/openmpi".into(), "/etc/openmpi".into()]
    } else {
        Vec::new()
    }
}

/// A plugin directory's ELF files and what they load. A plugin whose own dependencies
/// are missing on the host does not load there either: it is left out of the checks.
/// What the installation has loaded already (`loaded`, by soname) serves a plugin as it
/// does in the process: a libfabric provider's `libfabric.so.1` is the installation's.
fn plugin_dir(
    root: &RootFs,
    loader: &Loader,
    dir: &str,
    loaded: &BTreeSet<String>,
) -> (PluginDir, Vec<Lib>) {
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
    let mut entries = match root.list_dir(&real_dir) {
        Ok(e) => e,
        Err(e) => {
            plugin.list_error = Some(e.to_string());
            return (plugin, deps);
        }
    };
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
        let closure = loader.closure(obj);
        if closure
            .missing
            .iter()
            .any(|(soname, _)| !loaded.contains(soname))
        {
            continue;
        }
        let mut objects = closure.objects.into_iter();
        if let Some(first) = objects.next() {
            plugin.libs.push(lib_of(root, &first));
        }
        deps.extend(
            objects
                .filter(|o| !o.info.soname.as_ref().is_some_and(|s| loaded.contains(s)))
                .map(|o| lib_of(root, &o)),
        );
    }
    (plugin, deps)
}

/// libfabric finds its providers in the directory compiled into it, or where
/// `FI_PROVIDER_PATH` says. A providers directory of the installation that the library
/// does not name needs the variable; without it, a build whose basic transports are
/// providers of their own (Intel MPI's: tcp, shm, ...) finds none and MPI_Init fails,
/// while one with those built in loses only the optional ones (verbs, efa, psm2).
fn provider_env(root: &RootFs, deps: &[Lib], plugin_dirs: &[PluginDir]) -> Vec<EnvNeed> {
    let mut out = Vec::new();
    for fabric in deps.iter().filter(|d| d.name() == "libfabric.so.1") {
        let dir = parent(&fabric.path);
        // libfabric's providers are `lib<name>-fi.so`; a sibling directory of other
        // plugins (UCX's `uct_*.so`) is not one.
        let is_provider = |l: &Lib| l.path.ends_with("-fi.so");
        let Some(prov) = plugin_dirs
            .iter()
            .find(|p| parent(&p.path) == dir && p.libs.iter().any(is_provider))
        else {
            continue;
        };
        let named = Object::load(root, &fabric.path).is_ok_and(|o| {
            o.ensure_all();
            memchr::memmem::find(&o.bytes(), prov.path.as_bytes()).is_some()
        });
        if named {
            continue;
        }
        const CORE: &[&str] = &["tcp", "shm", "sockets", "udp", "rxm", "rxd"];
        let core: Vec<&str> = prov
            .libs
            .iter()
            .filter_map(|l| {
                let name = l.path.rsplit('/').next().unwrap_or_default();
                CORE.iter()
                    .copied()
                    .find(|c| name == format!("lib{c}-fi.so"))
            })
            .collect();
        let names: Vec<String> = prov
            .libs
            .iter()
            .map(|l| {
                l.path
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("lib")
                    .trim_end_matches("-fi.so")
                    .to_string()
            })
            .collect();
        let reason = if core.is_empty() {
            format!(
                "{} finds its optional providers ({}) in {} only through FI_PROVIDER_PATH; without it the job falls back to the transports built into libfabric",
                fabric.path,
                names.join(", "),
                prov.path
            )
        } else {
            format!(
                "{} finds its providers ({}) in {} only through FI_PROVIDER_PATH, and has no transport built in: without it MPI_Init fails",
                fabric.path,
                names.join(", "),
                prov.path
            )
        };
        out.push(EnvNeed {
            name: "FI_PROVIDER_PATH".into(),
            value: prov.path.clone(),
            required: !core.is_empty(),
            reason,
        });
    }
    out
}

#[cfg(test)]
mod tests;
