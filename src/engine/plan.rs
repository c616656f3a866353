//! The injection plan, as data and without I/O: which host libraries replace which
//! container files, which go into containerspec's own directory, which plugin and data
//! directories come along, and the loader cache the container gets. [`select`] decides
//! who provides each library after injection (the rules check that choice);
//! [`build`] turns it into mounts.

use std::collections::BTreeMap;

use serde::Serialize;

use super::choose::{container_abi, serving};
use super::facts::{
    ContainerFacts, EnvNeed, Facts, HostMpi, Lib, is_compiler_runtime, is_glibc_part,
};
use super::nvidia;
use super::request::Inject;

/// Where the injected dependency libraries appear inside the container. Under `/run`,
/// which runtimes usually mount as a tmpfs, so it works with a read-only rootfs too.
pub const OWNED_DIR: &str = "/run/containerspec/lib";
/// The container's loader cache, replaced read-only by the plan's.
pub const LD_CACHE: &str = "/etc/ld.so.cache";
/// Every mount is a read-only bind that cannot carry set-uid files or devices.
pub const MOUNT_OPTIONS: [&str; 4] = ["bind", "ro", "nosuid", "nodev"];

/// Who serves each library once the host's are injected.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Host libraries bind-mounted over the container's files: (host lib, container path).
    pub replace: Vec<(Lib, String)>,
    /// Host libraries placed in [`OWNED_DIR`].
    pub deps: Vec<Lib>,
    /// Host plugin and data directories mounted at the same path.
    pub dirs: Vec<String>,
    /// Host plugin objects (verified like the rest).
    pub plugins: Vec<Lib>,
    /// Host programs the injected libraries start, mounted at their own path.
    pub helpers: Vec<Lib>,
    /// The GPU driver's programs (`nvidia-smi`): the host file and where it appears.
    pub programs: Vec<(Lib, String)>,
    /// A host installation's tree, mounted at its own path.
    pub prefix: Option<String>,
    /// Libraries inside that tree the loader cache points at, by the soname asked.
    pub in_place: Vec<(String, Lib)>,
    /// Each MPI soname the container asks for, and the host library that serves it.
    pub asked: BTreeMap<String, Lib>,
    /// Variables the container's environment needs.
    pub env: Vec<EnvNeed>,
    /// Paths of injected objects that only plugins load: optional, like the plugins.
    pub optional: std::collections::BTreeSet<String>,
    /// The container's own libraries the loader cache lists before everything else:
    /// (soname, container path). Its CUDA forward-compatibility libraries, where the
    /// runtime needs them (see [`super::cuda::container_compat`]).
    pub container_first: Vec<(String, String)>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty()
            && self.deps.is_empty()
            && self.dirs.is_empty()
            && self.helpers.is_empty()
            && self.programs.is_empty()
            && self.container_first.is_empty()
            && self.prefix.is_none()
    }

    /// Every host object that will load in the container.
    pub fn host_objects(&self) -> impl Iterator<Item = &Lib> {
        self.replace
            .iter()
            .map(|(l, _)| l)
            .chain(&self.deps)
            .chain(&self.plugins)
            .chain(self.in_place.iter().map(|(_, l)| l))
            .chain(self.programs.iter().map(|(l, _)| l))
    }

    /// The host library that serves `soname`, if an injected one does (by the name the
    /// container asks for: Intel MPI's `libmpi.so.12` serves `libmpich.so.12`).
    pub fn injected(&self, soname: &str) -> Option<&Lib> {
        self.asked.get(soname).or_else(|| {
            self.host_objects()
                .find(|l| l.soname.as_deref() == Some(soname))
        })
    }
}

/// Decides what to inject for the request. The MPI libraries the container needs are
/// replaced by the host's of the same soname; their dependencies come from the host,
/// except glibc (always the container's) and compiler run-times the container has.
pub fn select(facts: &Facts, inject: &Inject) -> Selection {
    let mut sel = Selection::default();
    if inject.mpi {
        select_mpi(facts, &mut sel);
    }
    if inject.gpu {
        select_gpu(facts, inject, &mut sel);
    }
    sel
}

/// The sonames a compat directory serves that are the driver's compute libraries
/// (`libcuda.so.1`, the JIT compilers): nothing else of the image's is put first.
pub fn compat_sonames(c: &crate::inventory::model::CudaCompat) -> impl Iterator<Item = &str> {
    c.sonames
        .iter()
        .map(String::as_str)
        .filter(|s| nvidia::capability_of(s) == Some(nvidia::Capability::Compute))
}

/// The driver libraries every CUDA program loads: the driver API, NVML, and the JIT
/// compilers libcuda loads for PTX and NVVM IR.
const GPU_CORE: [&str; 4] = [
    "libcuda.so.1",
    "libnvidia-ml.so.1",
    "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-nvvm.so.4",
];

/// The host's driver libraries, except those the container's forward-compatibility
/// libraries serve when the runtime needs them: those come first in the loader cache,
/// from the container, as NVIDIA's `cuda-compat` intends.
fn select_gpu(facts: &Facts, inject: &Inject, sel: &mut Selection) {
    let compat = match super::cuda::container_compat(facts, inject) {
        Some((super::cuda::CompatUse::Used { by_plan: true, .. }, compat)) => Some(compat),
        _ => None,
    };
    // What the image asks of the driver (an unknown value is the rules' to report; the
    // default then applies).
    let caps = nvidia::parse_capabilities(
        facts
            .container
            .env
            .get("NVIDIA_DRIVER_CAPABILITIES")
            .map(String::as_str),
    )
    .unwrap_or_else(|_| nvidia::parse_capabilities(None).unwrap_or_default());
    for lib in &facts.host.gpu_libs {
        if compat.is_some_and(|c| compat_sonames(c).any(|s| s == lib.name())) {
            continue;
        }
        // A library NVIDIA's lists do not name (one the config lists) is injected as asked.
        if nvidia::capability_of(lib.name()).is_some_and(|c| !caps.contains(&c)) {
            continue;
        }
        // The rest of the driver's libraries are loaded only by some programs, or by
        // libcuda in some modes (confidential computing's PKCS#11 provider): one that
        // cannot load costs that feature, like a plugin.
        if !GPU_CORE.contains(&lib.name()) {
            sel.optional.insert(lib.path.clone());
        }
        push_dep(sel, lib);
    }
    for program in &facts.host.gpu_programs {
        let wanted = nvidia::PROGRAMS
            .iter()
            .any(|(c, name)| *name == program.name && caps.contains(c));
        if wanted {
            sel.programs.push((program.lib.clone(), program.at.clone()));
        }
    }
    if let Some(c) = compat {
        sel.container_first.extend(compat_sonames(c).map(|s| {
            let path = if s == "libcuda.so.1" {
                c.libcuda.clone()
            } else {
                format!("{}/{s}", c.dir)
            };
            (s.to_string(), path)
        }));
    }
}

fn select_mpi(facts: &Facts, sel: &mut Selection) {
    let Some(host) = &facts.host.mpi else { return };
    let c = &facts.container;
    let host_abi = host.main.install.as_ref().map(|i| i.abi);
    // Another MPI ABI: nothing to replace (the rules name the mismatch).
    if container_abi(c).map(|(abi, _)| abi) != host_abi {
        return;
    }
    let prefix = host.prefix.clone();
    let inside = |p: &str| {
        prefix
            .as_deref()
            .is_some_and(|x| p.starts_with(&format!("{x}/")))
    };
    for (soname, target) in &c.mpi_targets {
        let Some(lib) = serving(host, soname) else {
            continue;
        };
        sel.asked.insert(soname.clone(), lib.clone());
        // A prefix is served where it is mounted, through the loader cache; a soname the
        // container resolves before the cache (RUNPATH, LD_LIBRARY_PATH) only through a
        // bind over the file it resolves to.
        if prefix.is_some() && !c.mpi_before_cache.contains(soname) {
            sel.in_place.push((soname.clone(), lib.clone()));
        } else {
            sel.replace.push((lib.clone(), target.clone()));
        }
    }
    if sel.asked.is_empty() {
        return;
    }
    // The tree's own copies first: a library the installation bundles wins over
    // another of the same soname elsewhere on the host.
    sel.optional
        .extend(host.plugin_deps.iter().map(|d| d.path.clone()));
    let all_deps = || host.deps.iter().chain(&host.plugin_deps);
    for dep in all_deps().filter(|d| inside(&d.path)) {
        if let Some(soname) = dep.soname.as_deref() {
            if !sel.asked.contains_key(soname)
                && !is_glibc_part(soname)
                && !sel.in_place.iter().any(|(s, _)| s == soname)
            {
                sel.in_place.push((soname.to_string(), dep.clone()));
            }
        }
    }
    for dep in all_deps() {
        let Some(soname) = dep.soname.as_deref() else {
            continue;
        };
        if sel.asked.contains_key(soname)
            || is_glibc_part(soname)
            || sel.in_place.iter().any(|(s, _)| s == soname)
        {
            continue;
        }
        if is_compiler_runtime(soname) && c.providers.contains_key(soname) {
            continue;
        }
        push_dep(sel, dep);
    }
    // A host library bound over a container file finds, through its own `$ORIGIN`
    // RUNPATH, the container's files beside it: the host's copies go over those too.
    for (soname, path) in &c.search_dir_hits {
        if let Some(dep) = host
            .deps
            .iter()
            .find(|d| d.soname.as_deref() == Some(soname))
        {
            sel.replace.push((dep.clone(), path.clone()));
        }
    }
    for dir in &host.plugin_dirs {
        if !inside(&dir.path) {
            sel.dirs.push(dir.path.clone());
        }
        sel.plugins.extend(dir.libs.iter().cloned());
    }
    sel.dirs
        .extend(host.data_dirs.iter().filter(|d| !inside(d)).cloned());
    sel.helpers
        .extend(host.helpers.iter().filter(|h| !inside(&h.path)).cloned());
    sel.env = host.env.clone();
    sel.prefix = prefix;
}

/// Where each of the host installation's objects appears in the container under the
/// plan, which is what its `$ORIGIN` means there: a library bound over the container's
/// file at that file's path, a mounted prefix's at its own, plugins at their own, other
/// dependencies in containerspec's directory.
pub fn mpi_placement<'a>(host: &'a HostMpi, c: &ContainerFacts) -> Vec<(&'a Lib, String)> {
    let inside = |p: &str| {
        host.prefix
            .as_deref()
            .is_some_and(|x| p.starts_with(&format!("{x}/")))
    };
    let mut placed: Vec<(&Lib, String)> = Vec::new();
    for (soname, target) in &c.mpi_targets {
        if let Some(lib) = serving(host, soname) {
            let at = if host.prefix.is_some() && !c.mpi_before_cache.contains(soname) {
                lib.path.clone()
            } else {
                target.clone()
            };
            placed.push((lib, at));
        }
    }
    for lib in std::iter::once(&host.main.lib).chain(host.family.values()) {
        if !placed.iter().any(|(l, _)| l.path == lib.path) {
            placed.push((lib, lib.path.clone()));
        }
    }
    for dir in &host.plugin_dirs {
        placed.extend(dir.libs.iter().map(|l| (l, l.path.clone())));
    }
    for lib in &host.deps {
        let at = if inside(&lib.path) {
            lib.path.clone()
        } else {
            format!("{OWNED_DIR}/{}", lib.name())
        };
        placed.push((lib, at));
    }
    placed
}

/// Adds a host library for containerspec's directory; never a glibc part, whatever
/// file claims to be one: glibc is always the container's.
fn push_dep(sel: &mut Selection, lib: &Lib) {
    if !is_glibc_part(lib.name()) && !sel.deps.iter().any(|d| d.path == lib.path) {
        sel.deps.push(lib.clone());
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Mount {
    /// The file or directory on the host (as this machine sees it).
    pub source: String,
    /// Where it appears inside the container (resolved inside the rootfs).
    pub destination: String,
    pub kind: MountKind,
    pub options: Vec<String>,
    /// Why it is there, for a person reading the plan.
    pub reason: String,
}

/// What a mount binds: one file over a file, or a directory over a directory.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    File,
    Directory,
}

impl std::fmt::Display for MountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountKind::File => "file",
            MountKind::Directory => "directory",
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct CacheLine {
    pub soname: String,
    pub path: String,
    pub flags: i32,
    pub hwcaps: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct LdCachePlan {
    pub destination: String,
    /// Injected libraries first (they win over the container's of the same name).
    pub entries: Vec<CacheLine>,
}

impl LdCachePlan {
    /// The cache file's bytes, in the format glibc's loader reads.
    pub fn bytes(&self) -> Result<Vec<u8>, crate::ldcache::write::WriteError> {
        let entries: Vec<crate::ldcache::write::NewEntry> = self
            .entries
            .iter()
            .map(|e| crate::ldcache::write::NewEntry {
                soname: e.soname.clone(),
                path: e.path.clone(),
                flags: e.flags,
                hwcaps: e.hwcaps.clone(),
            })
            .collect();
        crate::ldcache::write::write(&entries)
    }
}

/// A variable the container's environment must carry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct Plan {
    /// containerspec's directory inside the container, null when nothing goes there.
    pub owned_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub ld_cache: Option<LdCachePlan>,
    /// Environment the injected libraries need: set by `apptainer exec`/`--print`, and
    /// required of the container's own environment under a hook, which cannot set it.
    pub env: Vec<EnvVar>,
}

/// Turns a selection into mounts and a loader cache.
pub fn build(facts: &Facts, sel: &Selection) -> Plan {
    if sel.is_empty() {
        return Plan::default();
    }
    let host_path = |p: &str| host_file(&facts.host.root, p);
    let mut mounts = Vec::new();
    if let Some(prefix) = &sel.prefix {
        let what = facts
            .host
            .mpi
            .as_ref()
            .and_then(|m| m.main.install.as_ref())
            .map_or("MPI".to_string(), |i| {
                format!(
                    "{} {}",
                    i.implementation,
                    i.version.as_deref().unwrap_or("")
                )
            });
        let reason = format!(
            "host {} installation, at its own path so that its libraries find their own dependencies and plugins",
            what.trim_end()
        );
        mounts.push(mount(
            host_path(prefix),
            prefix.clone(),
            MountKind::Directory,
            reason,
        ));
    }
    for (lib, target) in &sel.replace {
        let reason = format!("host {} replaces the container's", lib.name());
        mounts.push(mount(
            host_path(&lib.path),
            target.clone(),
            MountKind::File,
            reason,
        ));
    }
    for lib in &sel.deps {
        let reason = format!("host {} needed by the injected libraries", lib.name());
        mounts.push(mount(
            host_path(&lib.path),
            format!("{OWNED_DIR}/{}", lib.name()),
            MountKind::File,
            reason,
        ));
    }
    for lib in &sel.helpers {
        let reason = format!(
            "host {}, which the injected libraries start at run time",
            lib.name()
        );
        mounts.push(mount(
            host_path(&lib.path),
            lib.path.clone(),
            MountKind::File,
            reason,
        ));
    }
    for (lib, at) in &sel.programs {
        mounts.push(mount(
            host_path(&lib.path),
            at.clone(),
            MountKind::File,
            format!("host {} of the GPU driver", lib.name()),
        ));
    }
    for dir in &sel.dirs {
        mounts.push(mount(
            host_path(dir),
            dir.clone(),
            MountKind::Directory,
            "host plugins or data the injected libraries load".into(),
        ));
    }
    let ld_cache =
        (!sel.deps.is_empty() || !sel.in_place.is_empty() || !sel.container_first.is_empty())
            .then(|| cache_plan(facts, sel));
    let owned_dir = (!sel.deps.is_empty()).then(|| OWNED_DIR.to_string());
    let env = sel
        .env
        .iter()
        .map(|e| EnvVar {
            name: e.name.clone(),
            value: e.value.clone(),
            reason: e.reason.clone(),
        })
        .collect();
    Plan {
        owned_dir,
        mounts,
        ld_cache,
        env,
    }
}

fn mount(source: String, destination: String, kind: MountKind, reason: String) -> Mount {
    Mount {
        source,
        destination,
        kind,
        options: MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect(),
        reason,
    }
}

/// The host path of a file given inside the host root.
fn host_file(root: &std::path::Path, path: &str) -> String {
    let root = root.display().to_string();
    if root == "/" {
        path.to_string()
    } else {
        format!("{}{path}", root.trim_end_matches('/'))
    }
}

/// The injected libraries first, then the container's own entries except those the
/// injected ones replace.
fn cache_plan(facts: &Facts, sel: &Selection) -> LdCachePlan {
    // The compat libraries stand in for the host's of the same soname: its flags (type
    // and machine), else the container's libc's, else x86-64's.
    let container_flags = facts
        .container
        .cache_entries
        .iter()
        .find(|e| e.soname == "libc.so.6")
        .map_or(0x0303, |e| e.flags);
    let mut entries: Vec<CacheLine> = sel
        .container_first
        .iter()
        .map(|(soname, path)| CacheLine {
            soname: soname.clone(),
            path: path.clone(),
            flags: facts
                .host
                .gpu_libs
                .iter()
                .find(|l| l.name() == soname)
                .map_or(container_flags, |l| l.cache_flags),
            hwcaps: None,
        })
        .collect();
    entries.extend(sel.deps.iter().map(|l| CacheLine {
        soname: l.name().to_string(),
        path: format!("{OWNED_DIR}/{}", l.name()),
        flags: l.cache_flags,
        hwcaps: None,
    }));
    // A mounted prefix's libraries at their own path, under the name the container asks
    // by: `libmpich.so.12` -> Intel MPI's `.../lib/libmpi.so.12`.
    for (soname, lib) in &sel.in_place {
        if !entries.iter().any(|e| e.soname == *soname) {
            entries.push(CacheLine {
                soname: soname.clone(),
                path: lib.path.clone(),
                flags: lib.cache_flags,
                hwcaps: None,
            });
        }
    }
    // Programs that `dlopen("libcuda.so")` (the development name, which NVIDIA's toolkit
    // links in the container) find the libcuda.so.1 that serves the container.
    if let Some(libcuda) = entries.iter().find(|e| e.soname == "libcuda.so.1").cloned() {
        if !entries.iter().any(|e| e.soname == "libcuda.so") {
            entries.push(CacheLine {
                soname: "libcuda.so".into(),
                ..libcuda
            });
        }
    }
    let injected: BTreeMap<String, ()> = entries.iter().map(|e| (e.soname.clone(), ())).collect();
    entries.extend(
        facts
            .container
            .cache_entries
            .iter()
            .filter(|e| !injected.contains_key(e.soname.as_str()))
            .map(|e| CacheLine {
                soname: e.soname.clone(),
                path: e.path.clone(),
                flags: e.flags,
                hwcaps: e.hwcaps.clone(),
            }),
    );
    LdCachePlan {
        destination: LD_CACHE.into(),
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::facts::{HostMpi, MpiLib};

    fn lib(path: &str, soname: &str, needed: &[&str]) -> Lib {
        Lib {
            path: path.into(),
            soname: Some(soname.into()),
            needed: needed.iter().map(|s| s.to_string()).collect(),
            cache_flags: 0x0303,
            ..Default::default()
        }
    }

    fn facts() -> Facts {
        let mut f = Facts::default();
        f.host.root = "/host".into();
        f.host.mpi = Some(HostMpi {
            main: MpiLib {
                lib: lib(
                    "/usr/lib/libmpich.so.12.2.2",
                    "libmpich.so.12",
                    &[
                        "libhwloc.so.15",
                        "libc.so.6",
                        "libstdc++.so.6",
                        "libgfortran.so.5",
                    ],
                ),
                ..Default::default()
            },
            deps: vec![
                lib(
                    "/usr/lib/libhwloc.so.15.6.1",
                    "libhwloc.so.15",
                    &["libc.so.6"],
                ),
                lib("/usr/lib/libc.so.6", "libc.so.6", &[]),
                lib(
                    "/usr/lib/libstdc++.so.6.0.30",
                    "libstdc++.so.6",
                    &["libc.so.6"],
                ),
                lib(
                    "/usr/lib/libgfortran.so.5.0.0",
                    "libgfortran.so.5",
                    &["libc.so.6"],
                ),
            ],
            ..Default::default()
        });
        f.container.mpi_targets.insert(
            "libmpich.so.12".into(),
            "/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10".into(),
        );
        // The container has its own libstdc++ but no libgfortran.
        f.container.providers.insert(
            "libstdc++.so.6".into(),
            lib("/usr/lib/libstdc++.so.6.0.28", "libstdc++.so.6", &[]),
        );
        f.container.cache_entries = vec![
            crate::ldcache::CacheEntry {
                soname: "libhwloc.so.15".into(),
                path: "/usr/lib/x86_64-linux-gnu/libhwloc.so.15".into(),
                flags: 0x0303,
                hwcaps: None,
                hwcap: 0,
            },
            crate::ldcache::CacheEntry {
                soname: "libz.so.1".into(),
                path: "/usr/lib/x86_64-linux-gnu/libz.so.1".into(),
                flags: 0x0303,
                hwcaps: None,
                hwcap: 0,
            },
        ];
        f
    }

    #[test]
    fn glibc_stays_and_compiler_runtimes_stay_when_present() {
        let f = facts();
        let sel = select(
            &f,
            &Inject {
                mpi: true,
                gpu: false,
            },
        );
        let deps: Vec<&str> = sel.deps.iter().map(|l| l.name()).collect();
        assert_eq!(deps, vec!["libhwloc.so.15", "libgfortran.so.5"]);
        assert_eq!(sel.replace.len(), 1);
        assert_eq!(
            sel.replace[0].1,
            "/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10"
        );
    }

    #[test]
    fn mounts_and_cache() {
        let f = facts();
        let plan = build(
            &f,
            &select(
                &f,
                &Inject {
                    mpi: true,
                    gpu: false,
                },
            ),
        );
        let pairs: Vec<(&str, &str)> = plan
            .mounts
            .iter()
            .map(|m| (m.source.as_str(), m.destination.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (
                    "/host/usr/lib/libmpich.so.12.2.2",
                    "/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10"
                ),
                (
                    "/host/usr/lib/libhwloc.so.15.6.1",
                    "/run/containerspec/lib/libhwloc.so.15"
                ),
                (
                    "/host/usr/lib/libgfortran.so.5.0.0",
                    "/run/containerspec/lib/libgfortran.so.5"
                ),
            ]
        );
        assert!(
            plan.mounts
                .iter()
                .all(|m| m.options == ["bind", "ro", "nosuid", "nodev"])
        );
        let cache = plan.ld_cache.unwrap();
        let names: Vec<(&str, &str)> = cache
            .entries
            .iter()
            .map(|e| (e.soname.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("libhwloc.so.15", "/run/containerspec/lib/libhwloc.so.15"),
                (
                    "libgfortran.so.5",
                    "/run/containerspec/lib/libgfortran.so.5"
                ),
                ("libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"),
            ]
        );
    }

    #[test]
    fn placement_is_where_origin_will_point() {
        let mut f = facts();
        let host = f.host.mpi.as_mut().unwrap();
        // A distribution's library replaces the container's file: there is its $ORIGIN.
        let placed = mpi_placement(host, &f.container);
        let at = |placed: &[(&Lib, String)], soname: &str| {
            placed
                .iter()
                .find(|(l, _)| l.name() == soname)
                .map(|(_, at)| at.clone())
                .unwrap()
        };
        assert_eq!(
            at(&placed, "libmpich.so.12"),
            "/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10"
        );
        assert_eq!(
            at(&placed, "libhwloc.so.15"),
            "/run/containerspec/lib/libhwloc.so.15"
        );
        // Under a mounted prefix: at its own path, unless the container finds the soname
        // before the cache (a virtualenv's RUNPATH), where the host's copy is bound over.
        let host = f.host.mpi.as_mut().unwrap();
        host.prefix = Some("/usr/lib".into());
        let placed = mpi_placement(host, &f.container);
        assert_eq!(at(&placed, "libmpich.so.12"), "/usr/lib/libmpich.so.12.2.2");
        assert_eq!(at(&placed, "libhwloc.so.15"), "/usr/lib/libhwloc.so.15.6.1");
        f.container.mpi_before_cache.insert("libmpich.so.12".into());
        let host = f.host.mpi.as_ref().unwrap();
        let placed = mpi_placement(host, &f.container);
        assert_eq!(
            at(&placed, "libmpich.so.12"),
            "/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10"
        );
    }

    #[test]
    fn nothing_requested_nothing_planned() {
        let f = facts();
        assert_eq!(build(&f, &select(&f, &Inject::default())), Plan::default());
    }
}
