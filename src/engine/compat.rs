//! The rules: container facts × host facts × the injection choice -> findings. Pure: no
//! I/O, so each rule is tested as a table of hand-made facts. Every finding names the
//! objects and versions involved and says what a person can do about it.

use std::collections::{BTreeMap, BTreeSet};

use super::cuda::{self, CudaCheck};
use super::facts::{Facts, Lib, is_glibc_part};
use super::finding::{Code, Finding};
use super::plan::Selection;
use super::request::Inject;
use crate::inventory::cpu::{TargetCheck, target_supported};
use crate::inventory::model::{LibcFamily, MpiAbi};
use crate::inventory::version::Version;

/// Runs every rule.
pub fn check(facts: &Facts, inject: &Inject, sel: &Selection) -> Vec<Finding> {
    let mut out = Vec::new();
    arch(facts, &mut out);
    microarch(facts, &mut out);
    cuda_rule(facts, inject, &mut out);
    labels(facts, &mut out);
    if inject.any() {
        injectable(facts, &mut out);
    }
    if inject.mpi {
        mpi(facts, sel, &mut out);
    }
    if inject.gpu && facts.host.gpu_libs.is_empty() {
        out.push(
            Finding::new(
                Code::GpuDriverMissing,
                "gpu injection was requested but the host has no NVIDIA driver libraries",
            )
            .hint("run the container on a GPU node, or do not request gpu injection"),
        );
    }
    if !sel.is_empty() {
        versions(facts, sel, &mut out);
        partial_glibc(facts, &mut out);
    }
    out
}

fn arch(facts: &Facts, out: &mut Vec<Finding>) {
    let container = facts
        .container
        .inventory
        .as_ref()
        .and_then(|i| i.arch.clone());
    let host = facts.host.inventory.as_ref().and_then(|i| i.arch.clone());
    if let (Some(c), Some(h)) = (container, host) {
        if c != h {
            out.push(
                Finding::new(
                    Code::ArchMismatch,
                    format!("the container is built for {c}, this host is {h}"),
                )
                .hint(format!(
                    "use the image's {h} variant (a multi-arch image), or run it on a {c} node"
                )),
            );
        }
    }
}

fn microarch(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(inv) = &facts.container.inventory else {
        return;
    };
    let (Some(required), Some(host)) = (&inv.microarch.required, &facts.host.target) else {
        return;
    };
    let signals: Vec<String> = inv
        .microarch
        .signals
        .iter()
        .filter(|s| &s.target == required)
        .map(|s| format!("{} ({})", s.source, s.kind))
        .collect();
    match target_supported(required, &host.features, &host.name) {
        Ok(()) => {}
        Err(TargetCheck::Missing(missing)) => {
            let lacks = if missing.is_empty() {
                format!("{} is not {required} or a descendant of it", host.name)
            } else {
                format!("the host CPU ({}) lacks {}", host.name, missing.join(", "))
            };
            out.push(
                Finding::new(Code::MicroarchUnsupported, format!("the container requires {required}; {lacks}"))
                    .hint(format!("use an image built for {} or an older target, or run on a node that is {required}", host.name))
                    .objects(signals)
                    .versions(missing),
            );
        }
        Err(TargetCheck::Unknown(name)) => out.push(Finding::new(
            Code::MicroarchUnsupported,
            format!("the container requires CPU target {name:?}, which archspec does not know"),
        )),
    }
}

fn cuda_rule(facts: &Facts, inject: &Inject, out: &mut Vec<Finding>) {
    let Some(runtime) = facts
        .container
        .inventory
        .as_ref()
        .and_then(|i| i.gpu.cuda_runtime.clone())
    else {
        return;
    };
    let driver = facts
        .host
        .inventory
        .as_ref()
        .and_then(|i| i.gpu.nvidia_driver.clone());
    let Some(driver) = driver else {
        if inject.gpu {
            out.push(
                Finding::new(
                    Code::GpuDriverMissing,
                    format!(
                        "the container uses CUDA {} but the host has no NVIDIA driver",
                        runtime.version
                    ),
                )
                .objects([runtime.source]),
            );
        }
        return;
    };
    let what = format!(
        "the container's CUDA runtime {} ({})",
        runtime.version, runtime.source
    );
    let objects = [runtime.source.clone(), driver.source.clone()];
    match cuda::check(&driver.version, &runtime.version, facts.container.cuda_forward_compat) {
        CudaCheck::Supported => {}
        CudaCheck::MinorVersionCompatible { driver_cuda } => out.push(
            Finding::new(Code::CudaDriverTooOld, format!("{what} is newer than the host driver {} (CUDA {driver_cuda}); it runs through minor-version compatibility, but PTX JIT and newer features may fail", driver.version))
                .severity_warning()
                .objects(objects)
                .versions([driver.version.clone(), runtime.version.clone()]),
        ),
        CudaCheck::ForwardCompatible { .. } => out.push(
            Finding::new(Code::CudaDriverTooOld, format!("{what} is newer than the host driver {}; the container's forward-compatibility libraries make it run on supported data-center GPUs only", driver.version))
                .severity_warning()
                .objects(objects)
                .versions([driver.version.clone(), runtime.version.clone()]),
        ),
        CudaCheck::TooOld { driver_cuda, minimum_driver } => {
            let supports = driver_cuda.map(|c| format!(" (supports CUDA {c})")).unwrap_or_default();
            let needs = minimum_driver.map(|m| format!(": it needs driver {m} or newer")).unwrap_or_default();
            out.push(
                Finding::new(Code::CudaDriverTooOld, format!("{what} is too new for the host driver {}{supports}{needs}", driver.version))
                    .hint("use an image built for an older CUDA, or run on a node with a newer driver")
                    .objects(objects)
                    .versions([driver.version, runtime.version]),
            );
        }
    }
}

fn labels(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(inv) = &facts.container.inventory else {
        return;
    };
    let mut mismatch = |key: &str, declared: &str, found: String| {
        out.push(
            Finding::new(
                Code::LabelMismatch,
                format!("label {key}={declared} but the files say {found}"),
            )
            .hint(format!("correct the image's {key} label"))
            .objects([key.to_string()]),
        );
    };
    if let Some(declared) = inv.labels.get("org.supercontainers.mpi") {
        let found: BTreeSet<&str> = inv.mpi.iter().map(|m| abi_label(m.abi)).collect();
        if !found.contains(declared.to_ascii_lowercase().as_str()) {
            let says = if found.is_empty() {
                "no MPI".to_string()
            } else {
                found.into_iter().collect::<Vec<_>>().join(", ")
            };
            mismatch("org.supercontainers.mpi", declared, says);
        }
    }
    if let Some(declared) = inv.labels.get("org.supercontainers.glibc") {
        let actual = inv
            .libc
            .as_ref()
            .filter(|l| l.family == LibcFamily::Glibc)
            .and_then(|l| l.version.clone());
        let same = actual
            .as_deref()
            .is_some_and(|a| declared == a || declared.starts_with(&format!("{a}.")));
        if !same {
            mismatch(
                "org.supercontainers.glibc",
                declared,
                actual.map_or("no glibc".into(), |a| format!("glibc {a}")),
            );
        }
    }
    if let Some(declared) = inv.labels.get("org.supercontainers.gpu") {
        let has = match declared.to_ascii_lowercase().as_str() {
            "cuda" => inv.gpu.cuda_runtime.is_some(),
            "rocm" => inv.gpu.rocm.is_some(),
            _ => true,
        };
        if !has {
            mismatch(
                "org.supercontainers.gpu",
                declared,
                format!("no {declared} runtime"),
            );
        }
    }
}

fn abi_label(abi: MpiAbi) -> &'static str {
    match abi {
        MpiAbi::Mpich => "mpich",
        MpiAbi::OpenMpi => "openmpi",
        MpiAbi::Standard => "mpi-abi",
    }
}

/// Injection needs a dynamically linked glibc program.
fn injectable(facts: &Facts, out: &mut Vec<Finding>) {
    let libc = facts
        .container
        .inventory
        .as_ref()
        .and_then(|i| i.libc.as_ref());
    if libc.is_some_and(|l| l.family == LibcFamily::Musl) {
        out.push(
            Finding::new(
                Code::LibcFamilyMismatch,
                "the container is built on musl; the host's libraries need glibc",
            )
            .hint("use a glibc-based image to take host libraries"),
        );
    }
    if facts.container.static_entrypoint {
        out.push(
            Finding::new(
                Code::StaticEntrypoint,
                "the entrypoint is statically linked: libraries cannot be injected into it",
            )
            .hint("link the application dynamically against MPI to use the host's"),
        );
    }
}

fn mpi(facts: &Facts, sel: &Selection, out: &mut Vec<Finding>) {
    let (Some(container), Some(host)) = (&facts.container.mpi, &facts.host.mpi) else {
        let side = if facts.container.mpi.is_none() {
            "the container has no MPI library to replace"
        } else {
            "the host has no MPI installation the loader can see"
        };
        out.push(
            Finding::new(
                Code::MpiNotFound,
                format!("mpi injection was requested but {side}"),
            )
            .hint("do not request mpi injection, or list the host MPI in the config file"),
        );
        return;
    };
    let (c_inst, h_inst) = (container.install.as_ref(), host.main.install.as_ref());
    let c_soname = container.lib.name();
    let h_soname = host.main.lib.name();
    if standard_abi(facts, container, host, out) {
        return;
    }
    // One ABI ships under several names (libmpich.so.12, Intel's libmpi.so.12, Cray's
    // libmpi_cray.so.12): the family decides, and a host library of the same interface.
    let family_differs = c_inst.map(|i| i.abi) != h_inst.map(|i| i.abi)
        || super::choose::serving(host, c_soname).is_none();
    if family_differs {
        let describe = |name: &str, i: Option<&crate::inventory::model::MpiInstall>| {
            i.map_or(name.to_string(), |i| {
                format!(
                    "{} {} ({name})",
                    i.implementation,
                    i.version.as_deref().unwrap_or("?")
                )
            })
        };
        out.push(
            Finding::new(
                Code::MpiAbiFamilyMismatch,
                format!(
                    "the container uses {}, the host has {}: different MPI ABIs",
                    describe(c_soname, c_inst),
                    describe(h_soname, h_inst)
                ),
            )
            .hint("use an image built against the host's MPI family (MPICH ABI or Open MPI)")
            .objects([container.lib.path.clone(), host.main.lib.path.clone()]),
        );
        return;
    }
    host_older(c_inst, h_inst, out);
    open_mpi_series(facts, c_inst, h_inst, out);
    symbols(facts, out);
    for soname in facts.container.mpi_targets.keys() {
        if !sel.asked.contains_key(soname) {
            out.push(
                Finding::new(Code::LibraryMissing, format!("the container needs {soname}, which the host's MPI installation does not have"))
                    .objects([soname.clone()]),
            );
        }
    }
    for (requester, soname, path) in &facts.container.mpi_shadowed {
        out.push(
            Finding::new(Code::LibraryShadowed, format!("{requester} loads {soname} from {path}, not from the file the host's copy is mounted over"))
                .hint("remove the image's extra copy (a glibc-hwcaps subdirectory or an RPATH directory), or do not inject")
                .objects([requester.clone(), path.clone()]),
        );
    }
    for (soname, path) in &facts.container.ld_library_path_hits {
        if sel.deps.iter().any(|d| d.name() == soname) {
            out.push(
                Finding::new(Code::LibraryShadowed, format!("the container's LD_LIBRARY_PATH finds its own {soname} ({path}) before the injected one"))
                    .hint("drop that directory from the image's LD_LIBRARY_PATH, or do not inject")
                    .objects([path.clone()]),
            );
        }
    }
    environment(facts, sel, out);
    for problem in facts.host.mpi.iter().flat_map(|m| &m.problems) {
        out.push(
            Finding::new(
                Code::HostMpiIncomplete,
                format!("{problem}; it is not verified"),
            )
            .objects([problem.split(':').next().unwrap_or_default().to_string()]),
        );
    }
    for dir in facts.host.mpi.iter().flat_map(|m| &m.plugin_dirs) {
        if let Some(error) = &dir.list_error {
            out.push(
                Finding::new(
                    Code::PluginUnverified,
                    format!(
                        "host plugin directory {} could not be listed ({error}); it is mounted, and its plugins are unverified",
                        dir.path
                    ),
                )
                .objects([dir.path.clone()]),
            );
        }
        for file in &dir.unreadable {
            out.push(
                Finding::new(
                    Code::PluginUnverified,
                    format!(
                        "host plugin {file} could not be read as ELF; it is mounted unverified"
                    ),
                )
                .objects([file.clone()]),
            );
        }
    }
}

/// Variables the injected libraries need: an entrance that sets them (Apptainer) does;
/// under a hook the container's own environment must carry them.
fn environment(facts: &Facts, sel: &Selection, out: &mut Vec<Finding>) {
    if facts.sets_env {
        return;
    }
    for need in &sel.env {
        if facts.container.env.get(&need.name) == Some(&need.value) {
            continue;
        }
        let mut f = Finding::new(
            Code::EnvironmentRequired,
            format!("{}={} is not in the container's environment: {}", need.name, need.value, need.reason),
        )
        .hint(format!("start the container with {}={} (podman run -e, process.env in config.json), or use containerspec apptainer exec, which sets it", need.name, need.value))
        .objects([need.value.clone()]);
        if !need.required {
            f = f.severity_warning();
        }
        out.push(f);
    }
}

/// The MPI standard ABI is served only by a library of the same soname (its ABI
/// version); MPICH 5.0.0/5.0.1's `libmpi_abi.so.0` is a draft that changed between
/// those releases. Returns whether the container links the standard ABI and no host
/// library serves it (nothing else to judge then).
fn standard_abi(
    facts: &Facts,
    container: &super::facts::MpiLib,
    host: &super::facts::HostMpi,
    out: &mut Vec<Finding>,
) -> bool {
    let Some((MpiAbi::Standard, soname)) = super::choose::container_abi(&facts.container) else {
        return false;
    };
    let describe = |l: &super::facts::MpiLib| match &l.install {
        Some(i) => format!(
            "{} {} ({})",
            i.implementation,
            i.version.as_deref().unwrap_or("?"),
            l.lib.name()
        ),
        None => l.lib.name().to_string(),
    };
    let draft = soname == "libmpi_abi.so.0";
    let Some(served_by) = super::choose::serving(host, &soname) else {
        let what = if draft {
            format!(
                "the container links {soname}, the draft of the MPI standard ABI that MPICH 5.0.0 and 5.0.1 built (the standard's ABI 1 is libmpi_abi.so.1)"
            )
        } else {
            format!("the container links the MPI standard ABI ({soname})")
        };
        let hint = if draft {
            "rebuild the image against libmpi_abi.so.1 (MPICH 5.0.2 or later), or name a host installation of the same MPICH release in the config's [inject.mpi] prefixes"
        } else {
            "name a host MPI built with the standard ABI (MPICH 5 built with --enable-mpi-abi, Open MPI 6) in the config's [inject.mpi] prefixes, or use an image built against the host's MPI family"
        };
        out.push(
            Finding::new(
                Code::MpiStandardAbiMissing,
                format!(
                    "{what}; no host installation provides {soname} (the host's MPI: {})",
                    describe(&host.main)
                ),
            )
            .hint(hint)
            .objects([container.lib.path.clone(), host.main.lib.path.clone()]),
        );
        return true;
    };
    // `libpmpi_abi` is an implementation's own profiling layer beside the standard ABI:
    // an application that links it is tied to the implementation that built it.
    let own: Vec<&str> = facts
        .container
        .closure
        .iter()
        .flat_map(|l| &l.needed)
        .map(String::as_str)
        .filter(|n| n.starts_with("libpmpi_abi."))
        .collect();
    let implementation =
        |l: &super::facts::MpiLib| l.install.as_ref().map(|i| i.implementation.clone());
    if let Some(first) = own.first() {
        let same = implementation(container).is_some()
            && implementation(container) == implementation(&host.main);
        if !same {
            out.push(
                Finding::new(
                    Code::MpiAbiFamilyMismatch,
                    format!(
                        "the container links the MPI standard ABI ({soname}) but also {first}, the profiling library of {}'s own build: it cannot take {}",
                        describe(container),
                        describe(&host.main)
                    ),
                )
                .hint("relink the application against libmpi_abi alone, or use a host MPI of the container's implementation")
                .objects([container.lib.path.clone(), host.main.lib.path.clone()]),
            );
            return true;
        }
    }
    let version =
        |i: Option<&crate::inventory::model::MpiInstall>| i.and_then(|i| i.version.clone());
    let (cv, hv) = (
        version(container.install.as_ref()),
        version(host.main.install.as_ref()),
    );
    if draft && (cv.is_none() || cv != hv) {
        out.push(
            Finding::new(
                Code::MpiAbiDraft,
                format!(
                    "the container links {soname}, the draft of the MPI standard ABI that MPICH 5.0.0 and 5.0.1 built, as {}; the host's {} is {}: whether the two drafts agree is not known from the files",
                    describe(container),
                    served_by.path,
                    describe(&host.main)
                ),
            )
            .hint("rebuild the image against libmpi_abi.so.1 (MPICH 5.0.2 or later)")
            .versions([cv.unwrap_or_else(|| "?".into()), hv.unwrap_or_else(|| "?".into())]),
        );
    }
    false
}

fn host_older(
    c: Option<&crate::inventory::model::MpiInstall>,
    h: Option<&crate::inventory::model::MpiInstall>,
    out: &mut Vec<Finding>,
) {
    let version = |i: Option<&crate::inventory::model::MpiInstall>| {
        i.and_then(|i| i.version.as_deref())
            .and_then(Version::parse)
    };
    if let (Some(cv), Some(hv)) = (version(c), version(h)) {
        if hv < cv {
            out.push(
                Finding::new(Code::MpiHostOlder, format!("the host's MPI {hv} is older than the container's {cv}; the symbols the container uses decide"))
                    .versions([hv.to_string(), cv.to_string()]),
            );
        }
    }
}

/// Open MPI 5 dropped the C++ bindings and merged ORTE away: a container that needs
/// them cannot take a 5.x host. Containers whose own tools link Open MPI's internals
/// break against any other series.
fn open_mpi_series(
    facts: &Facts,
    c: Option<&crate::inventory::model::MpiInstall>,
    h: Option<&crate::inventory::model::MpiInstall>,
    out: &mut Vec<Finding>,
) {
    let (Some(c), Some(h)) = (c, h) else { return };
    if c.abi != MpiAbi::OpenMpi {
        return;
    }
    let major = |v: &Option<String>| {
        v.as_deref()
            .and_then(Version::parse)
            .and_then(|v| v.0.first().copied())
    };
    let series = |v: &Option<String>| {
        v.as_deref()
            .and_then(Version::parse)
            .map(|v| v.0.iter().take(2).copied().collect::<Vec<_>>())
    };
    let removed = ["libmpi_cxx.so.40", "libopen-rte.so.40", "libopen-pal.so.40"];
    // Open MPI's own libraries need each other; they are replaced with the host's. What
    // counts is the container's other objects that link them.
    let is_ompi_own = |o: &Lib| {
        o.soname
            .as_deref()
            .is_some_and(|s| s.starts_with("libmpi") || s.starts_with("libopen-"))
    };
    let users: Vec<(String, String)> = facts
        .container
        .closure
        .iter()
        .filter(|o| !is_ompi_own(o))
        .flat_map(|o| {
            o.needed
                .iter()
                .filter(|n| removed.contains(&n.as_str()))
                .map(move |n| (o.path.clone(), n.clone()))
        })
        .collect();
    if major(&h.version).is_some_and(|m| m >= 5)
        && major(&c.version).is_some_and(|m| m < 5)
        && !users.is_empty()
    {
        let list: Vec<String> = users
            .iter()
            .map(|(o, n)| format!("{o} needs {n}"))
            .collect();
        out.push(
            Finding::new(Code::Openmpi5RemovedInterface, format!("the host has Open MPI {}, which no longer provides {}", h.version.as_deref().unwrap_or("5"), list.join("; ")))
                .hint("rebuild the application without the C++ bindings and Open MPI internals, or run on an Open MPI 4 host")
                .objects(users.into_iter().map(|(o, _)| o)),
        );
    } else if series(&h.version) != series(&c.version) {
        let internals: Vec<String> = users
            .iter()
            .filter(|(_, n)| n.starts_with("libopen-"))
            .map(|(o, _)| o.clone())
            .collect();
        if !internals.is_empty() {
            out.push(
                Finding::new(Code::OpenmpiInternalsLinked, format!("{} link Open MPI's internal libraries, which differ between the container's series and the host's", internals.join(", ")))
                    .objects(internals),
            );
        }
    }
}

/// Every symbol the container imports from MPI must be defined by the host's.
fn symbols(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(host) = &facts.host.mpi else { return };
    let defined = |s: &str| host.main.defined_symbols.contains(s);
    let mut strong: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut weak: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for import in facts
        .container
        .mpi_imports
        .iter()
        .filter(|i| !defined(&i.symbol))
    {
        let map = if import.weak { &mut weak } else { &mut strong };
        map.entry(import.object.as_str())
            .or_default()
            .push(import.symbol.as_str());
    }
    for (map, weak) in [(strong, false), (weak, true)] {
        for (object, syms) in map {
            let mut f = Finding::new(Code::MpiSymbolMissing, format!("{object} uses {} that the host's {} does not define", syms.join(", "), host.main.lib.name()))
                .hint("use a host MPI at least as new as the container's, or rebuild the application against the host's version")
                .objects([object.to_string()])
                .versions(syms.iter().map(|s| s.to_string()));
            if weak {
                f = f.severity_warning();
            }
            out.push(f);
        }
    }
}

/// Every non-weak version each loaded object needs must be defined by the library that
/// will provide it after injection, in both directions: host objects against the
/// container's glibc and run-times, container objects against the injected libraries.
fn versions(facts: &Facts, sel: &Selection, out: &mut Vec<Finding>) {
    let glibc = facts
        .container
        .inventory
        .as_ref()
        .and_then(|i| i.libc.as_ref())
        .and_then(|l| l.version.clone());
    let container_objects = still_loaded(facts, sel);
    let plugin_paths: BTreeSet<&str> = sel
        .plugins
        .iter()
        .map(|l| l.path.as_str())
        .chain(sel.optional.iter().map(String::as_str))
        .collect();
    let loaded: Vec<(&Lib, bool)> = sel
        .host_objects()
        .map(|l| (l, true))
        .chain(container_objects.into_iter().map(|l| (l, false)))
        .collect();
    let (plugins, core): (Vec<_>, Vec<_>) = loaded
        .into_iter()
        .partition(|(l, host)| *host && plugin_paths.contains(l.path.as_str()));
    check_loaded(facts, sel, &core, glibc.as_deref(), out);
    // A plugin is one of several a library may load: one that cannot load costs that
    // provider or component, not the job.
    // By cause (the code of the first problem), so that a glibc too old for a whole
    // directory of providers reads as one finding.
    let mut unusable: BTreeMap<Code, Vec<(String, String, Vec<String>)>> = BTreeMap::new();
    for plugin in plugins {
        let mut found = Vec::new();
        check_loaded(facts, sel, &[plugin], glibc.as_deref(), &mut found);
        if let Some(first) = found.first() {
            unusable.entry(first.code).or_default().push((
                plugin.0.path.clone(),
                first.message.clone(),
                found.iter().flat_map(|f| f.versions.clone()).collect(),
            ));
        }
    }
    for (_, group) in unusable {
        out.extend(plugins_unusable(&group));
    }
}

/// One finding per plugin, or one for the group when there are more than a few.
fn plugins_unusable(group: &[(String, String, Vec<String>)]) -> Vec<Finding> {
    const EACH: usize = 3;
    let one = |(path, why, versions): &(String, String, Vec<String>)| {
        Finding::new(Code::PluginUnusable, format!("host plugin (or library only plugins load) {path} cannot load in the container ({why}); the job runs without it, on another provider or component"))
            .objects([path.clone()])
            .versions(versions.iter().cloned())
    };
    if group.len() <= EACH {
        return group.iter().map(one).collect();
    }
    let (path, why, _) = &group[0];
    let name = |p: &String| p.rsplit('/').next().unwrap_or(p).to_string();
    let rest: Vec<String> = group[1..].iter().map(|(p, _, _)| name(p)).collect();
    let shown = if rest.len() > 4 {
        format!("{} and {} others", rest[..4].join(", "), rest.len() - 4)
    } else {
        rest.join(", ")
    };
    let mut versions: Vec<String> = group.iter().flat_map(|(_, _, v)| v.clone()).collect();
    versions.sort();
    versions.dedup();
    vec![
        Finding::new(
            Code::PluginUnusable,
            format!(
                "{} host plugins (or libraries only plugins load) cannot load in the container: {path} ({why}), and so do {} more ({shown}); the job runs without them, on other providers or components",
                group.len(),
                rest.len(),
            ),
        )
        .objects(group.iter().map(|(p, _, _)| p.clone()))
        .versions(versions),
    ]
}

/// The version and library checks of `loaded` objects (host or container's).
fn check_loaded(
    facts: &Facts,
    sel: &Selection,
    loaded: &[(&Lib, bool)],
    glibc: Option<&str>,
    out: &mut Vec<Finding>,
) {
    let mut missing_libs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut too_old: Vec<(&Lib, Vec<String>)> = Vec::new();
    for (obj, from_host) in loaded {
        if *from_host {
            for needed in &obj.needed {
                if provider(facts, sel, needed).is_none() {
                    missing_libs
                        .entry(needed.clone())
                        .or_default()
                        .push(obj.path.clone());
                }
            }
        }
        let mut glibc_absent: Vec<String> = Vec::new();
        for need in &obj.needs {
            let Some(p) = provider(facts, sel, &need.file) else {
                continue;
            };
            let absent: Vec<&str> = need
                .versions
                .iter()
                .filter(|v| !v.weak && !p.defines.contains(&v.name))
                .map(|v| v.name.as_str())
                .collect();
            let (glibc_nodes, others): (Vec<&str>, Vec<&str>) = absent
                .into_iter()
                .partition(|v| v.starts_with("GLIBC_") && is_glibc_part(&need.file));
            glibc_absent.extend(glibc_nodes.into_iter().map(String::from));
            if !others.is_empty() {
                out.push(version_missing(obj, *from_host, &need.file, &others));
            }
        }
        if !glibc_absent.is_empty() {
            sort_newest_first(&mut glibc_absent);
            too_old.push((obj, glibc_absent));
        }
    }
    if !too_old.is_empty() {
        out.push(glibc_too_old(&too_old, loaded, glibc));
    }
    for (soname, by) in missing_libs {
        out.push(
            Finding::new(
                Code::LibraryMissing,
                format!(
                    "{soname}, needed by host {}, is neither injected nor in the container",
                    by.join(", ")
                ),
            )
            .objects(by),
        );
    }
}

fn sort_newest_first(nodes: &mut Vec<String>) {
    nodes.sort_by_key(|n| std::cmp::Reverse(node_version(n)));
    nodes.dedup();
}

/// One finding for every object that needs a newer glibc: the first named in full, the
/// others counted, all listed in `objects`.
fn glibc_too_old(
    too_old: &[(&Lib, Vec<String>)],
    loaded: &[(&Lib, bool)],
    glibc: Option<&str>,
) -> Finding {
    let from_host = |lib: &Lib| loaded.iter().any(|(l, h)| *h && l.path == lib.path);
    let who = |lib: &Lib| {
        if from_host(lib) {
            format!("host {}", lib.name())
        } else {
            format!("the container's {}", lib.path)
        }
    };
    let (first, first_nodes) = (&too_old[0].0, &too_old[0].1);
    let rest: Vec<&str> = first_nodes[1..]
        .iter()
        .map(|v| v.trim_start_matches("GLIBC_"))
        .collect();
    let also = if rest.is_empty() {
        String::new()
    } else {
        format!(" (and {})", rest.join(", "))
    };
    let mut message = format!("{} needs {}{also}", who(first), first_nodes[0]);
    if too_old.len() > 1 {
        let names: Vec<&str> = too_old[1..].iter().map(|(l, _)| l.name()).collect();
        let shown = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 4 {
            format!(" and {} others", names.len() - 4)
        } else {
            String::new()
        };
        message += &format!("; so do {} more libraries ({shown}{more})", names.len());
    }
    let has = glibc.map_or("an older glibc".to_string(), |g| format!("glibc {g}"));
    message += &format!("; the container has {has}");
    let mut all: Vec<String> = too_old
        .iter()
        .flat_map(|(_, n)| n.iter().cloned())
        .collect();
    sort_newest_first(&mut all);
    let wanted = all[0].trim_start_matches("GLIBC_").to_string();
    Finding::new(Code::GlibcTooOld, message)
        .hint(format!(
            "use an image based on glibc >= {wanted}, or do not inject host libraries"
        ))
        .objects(too_old.iter().map(|(l, _)| l.path.clone()))
        .versions(all)
}

/// The container's objects that still load after injection: those the entrypoint
/// reaches without going through a library the host's copy replaces or serves (the
/// replaced MPI library's own dependencies drop out with it).
fn still_loaded<'a>(facts: &'a Facts, sel: &Selection) -> Vec<&'a Lib> {
    let closure = &facts.container.closure;
    let Some(start) = closure.first() else {
        return Vec::new();
    };
    let by_soname: BTreeMap<&str, &Lib> = closure
        .iter()
        .filter_map(|l| l.soname.as_deref().map(|s| (s, l)))
        .collect();
    let mut out: Vec<&Lib> = vec![start];
    let mut next = 0;
    while let Some(obj) = out.get(next).copied() {
        next += 1;
        for soname in &obj.needed {
            let served_by_host = !is_glibc_part(soname) && sel.injected(soname).is_some();
            let Some(lib) = by_soname.get(soname.as_str()).copied() else {
                continue;
            };
            if !served_by_host && !out.iter().any(|o| o.path == lib.path) {
                out.push(lib);
            }
        }
    }
    out
}

/// The library that serves `soname` after injection: an injected host copy, else the
/// container's own.
fn provider<'a>(facts: &'a Facts, sel: &'a Selection, soname: &str) -> Option<&'a Lib> {
    if !is_glibc_part(soname) {
        if let Some(lib) = sel.injected(soname) {
            return Some(lib);
        }
    }
    facts.container.providers.get(soname).or_else(|| {
        facts
            .container
            .closure
            .iter()
            .find(|o| o.soname.as_deref() == Some(soname))
    })
}

fn version_missing(obj: &Lib, from_host: bool, file: &str, absent: &[&str]) -> Finding {
    let who = if from_host {
        format!("host {}", obj.name())
    } else {
        format!("the container's {}", obj.path)
    };
    let mut sorted: Vec<String> = absent.iter().map(|s| s.to_string()).collect();
    sort_newest_first(&mut sorted);
    Finding::new(Code::SymbolVersionMissing, format!("{who} needs {} from {file}, which the library that provides {file} after injection does not define", sorted.join(", ")))
        .hint(format!("provide a {file} at least as new as the one {who} was built against"))
        .objects([obj.path.clone()])
        .versions(sorted)
}

/// `GLIBC_2.34` -> 2.34, for ordering newest first.
fn node_version(node: &str) -> Option<Version> {
    node.split_once('_').and_then(|(_, v)| Version::parse(v))
}

/// glibc is one unit: a config that lists a glibc part among the host libraries to
/// inject is refused.
fn partial_glibc(facts: &Facts, out: &mut Vec<Finding>) {
    if !facts.host.glibc_listed.is_empty() {
        out.push(
            Finding::new(Code::GlibcPartialInjection, format!("the config lists glibc components for injection ({}): glibc can only be replaced as a whole", facts.host.glibc_listed.join(", ")))
                .hint("remove them from the config's library list; the container's glibc is always used")
                .objects(facts.host.glibc_listed.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::facts::{HostMpi, HostTarget, Import, MpiLib};
    use crate::engine::plan::select;
    use crate::inventory::elf::{NeededVersion, VersionNeed};
    use crate::inventory::model::{Inventory, Libc, Microarch, MicroarchSignal, MpiInstall};

    fn need(file: &str, versions: &[&str]) -> VersionNeed {
        VersionNeed {
            file: file.into(),
            versions: versions
                .iter()
                .map(|v| NeededVersion {
                    name: v.to_string(),
                    weak: false,
                })
                .collect(),
        }
    }

    fn lib(
        path: &str,
        soname: &str,
        needed: &[&str],
        needs: Vec<VersionNeed>,
        defines: &[&str],
    ) -> Lib {
        Lib {
            path: path.into(),
            soname: Some(soname.into()),
            needed: needed.iter().map(|s| s.to_string()).collect(),
            needs,
            defines: defines.iter().map(|s| s.to_string()).collect(),
            cache_flags: 0x0303,
            search_dirs: vec![],
        }
    }

    fn install(abi: MpiAbi, implementation: &str, version: &str, soname: &str) -> MpiInstall {
        MpiInstall {
            abi,
            implementation: implementation.into(),
            version: Some(version.into()),
            version_source: Some("symbol".into()),
            device: None,
            soname: soname.into(),
            path: format!("/usr/lib/{soname}"),
            real_path: format!("/usr/lib/{soname}"),
        }
    }

    /// The version nodes of a glibc 2.`up_to_minor` (x86-64 starts at GLIBC_2.2.5).
    fn glibc_defs(up_to_minor: u32) -> Vec<String> {
        std::iter::once("GLIBC_2.2.5".to_string())
            .chain((3..=up_to_minor).map(|m| format!("GLIBC_2.{m}")))
            .collect()
    }

    /// A container with MPICH 4.0.2 and glibc 2.`container_glibc`, a host with MPICH
    /// `host_version` whose library needs GLIBC_2.`host_needs`.
    fn mpich_pair(container_glibc: u32, host_needs: u32, host_version: &str) -> Facts {
        let mut f = Facts::default();
        let c_mpi = lib(
            "/usr/lib/libmpich.so.12.2.2",
            "libmpich.so.12",
            &["libc.so.6"],
            vec![],
            &[],
        );
        let app = lib(
            "/app",
            "app",
            &["libmpich.so.12", "libc.so.6"],
            vec![need("libc.so.6", &["GLIBC_2.2.5"])],
            &[],
        );
        let mut c_libc = lib("/usr/lib/libc.so.6", "libc.so.6", &[], vec![], &[]);
        c_libc.defines = glibc_defs(container_glibc);
        f.container.inventory = Some(Inventory {
            arch: Some("x86_64".into()),
            libc: Some(Libc {
                family: LibcFamily::Glibc,
                version: Some(format!("2.{container_glibc}")),
                version_source: None,
                path: "/usr/lib/libc.so.6".into(),
                loader: None,
                max_symbol_version: None,
            }),
            ..Default::default()
        });
        f.container.closure = vec![app, c_mpi.clone(), c_libc.clone()];
        f.container.mpi = Some(MpiLib {
            lib: c_mpi,
            install: Some(install(MpiAbi::Mpich, "MPICH", "4.0.2", "libmpich.so.12")),
            defined_symbols: ["MPI_Init", "MPI_Finalize"].map(String::from).into(),
        });
        f.container.mpi_imports = vec![Import {
            object: "/app".into(),
            symbol: "MPI_Init".into(),
            weak: false,
        }];
        f.container.mpi_targets.insert(
            "libmpich.so.12".into(),
            "/usr/lib/libmpich.so.12.2.2".into(),
        );
        f.container.providers.insert("libc.so.6".into(), c_libc);
        let h_mpi = lib(
            "/usr/lib/libmpich.so.12.9",
            "libmpich.so.12",
            &["libc.so.6", "libhwloc.so.15"],
            vec![need(
                "libc.so.6",
                &[&format!("GLIBC_2.{host_needs}"), "GLIBC_2.2.5"],
            )],
            &[],
        );
        let hwloc = lib(
            "/usr/lib/libhwloc.so.15",
            "libhwloc.so.15",
            &["libc.so.6"],
            vec![need("libc.so.6", &["GLIBC_2.14"])],
            &[],
        );
        f.host.inventory = Some(Inventory {
            arch: Some("x86_64".into()),
            ..Default::default()
        });
        f.host.mpi = Some(HostMpi {
            main: MpiLib {
                lib: h_mpi,
                install: Some(install(
                    MpiAbi::Mpich,
                    "MPICH",
                    host_version,
                    "libmpich.so.12",
                )),
                defined_symbols: ["MPI_Init", "MPI_Finalize"].map(String::from).into(),
            },
            deps: vec![hwloc],
            ..Default::default()
        });
        f
    }

    fn run(f: &Facts, inject: Inject) -> Vec<Finding> {
        check(f, &inject, &select(f, &inject))
    }

    fn codes(findings: &[Finding]) -> Vec<(Code, super::super::finding::Severity)> {
        findings.iter().map(|f| (f.code, f.severity)).collect()
    }

    const MPI: Inject = Inject {
        mpi: true,
        gpu: false,
    };

    #[test]
    fn glibc_table() {
        use super::super::finding::Severity::*;
        // (container glibc minor, what the host library needs, expected)
        type Expected = Vec<(Code, super::super::finding::Severity)>;
        let cases: &[(u32, u32, Expected)] = &[
            (36, 34, vec![]),
            (34, 34, vec![]),
            (31, 34, vec![(Code::GlibcTooOld, Error)]),
            (31, 32, vec![(Code::GlibcTooOld, Error)]),
        ];
        for (container, host, expected) in cases {
            let f = mpich_pair(*container, *host, "4.0.2");
            assert_eq!(
                &codes(&run(&f, MPI)),
                expected,
                "container 2.{container}, host needs 2.{host}"
            );
        }
    }

    #[test]
    fn glibc_message_names_versions_and_library() {
        let mut f = mpich_pair(31, 34, "4.0.2");
        if let Some(m) = f.host.mpi.as_mut() {
            m.main.lib.needs = vec![need(
                "libc.so.6",
                &["GLIBC_2.32", "GLIBC_2.34", "GLIBC_2.33", "GLIBC_2.2.5"],
            )];
        }
        let findings = run(&f, MPI);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "host libmpich.so.12 needs GLIBC_2.34 (and 2.33, 2.32); the container has glibc 2.31"
        );
        assert_eq!(
            findings[0].hint.as_deref(),
            Some("use an image based on glibc >= 2.34, or do not inject host libraries")
        );
        assert_eq!(
            findings[0].versions,
            vec!["GLIBC_2.34", "GLIBC_2.33", "GLIBC_2.32"]
        );
    }

    #[test]
    fn nothing_injected_nothing_checked_but_the_rest() {
        let f = mpich_pair(31, 34, "4.0.2");
        assert!(run(&f, Inject::default()).is_empty());
    }

    /// `mpich_pair` with the container linking `c_soname` (MPICH `c_version`'s build of
    /// it) and the host's main library `h_soname` of MPICH `h_version`.
    fn abi_pair(c_soname: &str, c_version: &str, h_soname: &str, h_version: &str) -> Facts {
        let mut f = mpich_pair(36, 34, h_version);
        let abi = |s: &str| {
            if s.starts_with("libmpi_abi.") {
                MpiAbi::Standard
            } else {
                MpiAbi::Mpich
            }
        };
        let c = f.container.mpi.as_mut().unwrap();
        c.lib.path = format!("/opt/venv/lib/{c_soname}");
        c.lib.soname = Some(c_soname.into());
        c.install = Some(install(abi(c_soname), "MPICH", c_version, c_soname));
        f.container.closure[0].needed = vec![c_soname.into(), "libc.so.6".into()];
        f.container.mpi_targets.clear();
        f.container
            .mpi_targets
            .insert(c_soname.into(), format!("/opt/venv/lib/{c_soname}"));
        let h = f.host.mpi.as_mut().unwrap();
        h.main.lib.path = format!("/sw/mpich/lib/{h_soname}");
        h.main.lib.soname = Some(h_soname.into());
        h.main.install = Some(install(abi(h_soname), "MPICH", h_version, h_soname));
        f
    }

    #[test]
    fn the_standard_abi_is_served_by_its_own_soname_only() {
        use super::super::finding::Severity::*;
        // Any implementation's libmpi_abi.so.1 serves it, older or not.
        let f = abi_pair("libmpi_abi.so.1", "5.0.2", "libmpi_abi.so.1", "5.0.2");
        assert_eq!(codes(&run(&f, MPI)), vec![]);
        // The MPICH ABI does not, whatever its version.
        let f = abi_pair("libmpi_abi.so.1", "5.0.2", "libmpich.so.12", "5.0.2");
        let found = run(&f, MPI);
        assert_eq!(codes(&found), vec![(Code::MpiStandardAbiMissing, Error)]);
        assert!(
            found[0]
                .message
                .contains("no host installation provides libmpi_abi.so.1")
        );
        assert!(found[0].message.contains("MPICH 5.0.2 (libmpich.so.12)"));
        // Nor does another ABI version: MPICH 5.0.1's draft is not ABI 1.
        let f = abi_pair("libmpi_abi.so.0", "5.0.1", "libmpi_abi.so.1", "5.0.2");
        let found = run(&f, MPI);
        assert_eq!(codes(&found), vec![(Code::MpiStandardAbiMissing, Error)]);
        assert!(found[0].message.contains("draft"), "{}", found[0].message);
    }

    #[test]
    fn an_implementations_own_profiling_library_ties_the_standard_abi_to_it() {
        use super::super::finding::Severity::*;
        let mut f = abi_pair("libmpi_abi.so.1", "5.0.2", "libmpi_abi.so.1", "5.0.2");
        f.container.closure[0]
            .needed
            .push("libpmpi_abi.so.1".into());
        // The same implementation: fine.
        assert_eq!(codes(&run(&f, MPI)), vec![]);
        let h = f.host.mpi.as_mut().unwrap();
        h.main.install.as_mut().unwrap().implementation = "Open MPI".into();
        let found = run(&f, MPI);
        assert_eq!(codes(&found), vec![(Code::MpiAbiFamilyMismatch, Error)]);
        assert!(
            found[0].message.contains("libpmpi_abi.so.1"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn many_unusable_plugins_are_one_finding() {
        let group = |n: usize| -> Vec<(String, String, Vec<String>)> {
            (0..n)
                .map(|i| {
                    (
                        format!("/usr/lib/libibverbs/lib{i}-rdmav34.so"),
                        "needs GLIBC_2.34".to_string(),
                        vec!["GLIBC_2.34".to_string()],
                    )
                })
                .collect()
        };
        assert_eq!(plugins_unusable(&group(3)).len(), 3);
        let one = plugins_unusable(&group(7));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].objects.len(), 7);
        assert_eq!(one[0].versions, vec!["GLIBC_2.34"]);
        assert!(
            one[0].message.starts_with("7 host plugins")
                && one[0].message.contains("and so do 6 more (lib1-rdmav34.so, lib2-rdmav34.so, lib3-rdmav34.so, lib4-rdmav34.so and 2 others)"),
            "{}",
            one[0].message
        );
    }

    #[test]
    fn the_draft_abi_of_another_release_is_unverified() {
        use super::super::finding::Severity::*;
        let f = abi_pair("libmpi_abi.so.0", "5.0.1", "libmpi_abi.so.0", "5.0.1");
        assert_eq!(codes(&run(&f, MPI)), vec![]);
        let f = abi_pair("libmpi_abi.so.0", "5.0.0", "libmpi_abi.so.0", "5.0.1");
        let found = run(&f, MPI);
        assert_eq!(codes(&found), vec![(Code::MpiAbiDraft, Warning)]);
        assert_eq!(found[0].versions, vec!["5.0.0", "5.0.1"]);
    }

    #[test]
    fn host_older_is_a_warning_and_symbols_decide() {
        use super::super::finding::Severity::*;
        let mut f = mpich_pair(36, 34, "3.4.1");
        assert_eq!(codes(&run(&f, MPI)), vec![(Code::MpiHostOlder, Warning)]);
        f.container.mpi_imports.push(Import {
            object: "/app".into(),
            symbol: "MPI_Comm_idup_with_info".into(),
            weak: false,
        });
        f.container.mpi_imports.push(Import {
            object: "/app".into(),
            symbol: "MPIX_Something".into(),
            weak: true,
        });
        let got = run(&f, MPI);
        assert_eq!(
            codes(&got),
            vec![
                (Code::MpiHostOlder, Warning),
                (Code::MpiSymbolMissing, Error),
                (Code::MpiSymbolMissing, Warning)
            ]
        );
        assert_eq!(got[1].versions, vec!["MPI_Comm_idup_with_info"]);
    }

    #[test]
    fn abi_family_mismatch() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        if let Some(m) = f.host.mpi.as_mut() {
            m.main.install = Some(install(
                MpiAbi::OpenMpi,
                "Open MPI",
                "4.1.4",
                "libmpi.so.40",
            ));
            m.main.lib.soname = Some("libmpi.so.40".into());
        }
        let got = run(&f, MPI);
        assert_eq!(
            codes(&got),
            vec![(
                Code::MpiAbiFamilyMismatch,
                super::super::finding::Severity::Error
            )]
        );
        assert!(
            got[0].message.contains("MPICH 4.0.2 (libmpich.so.12)"),
            "{}",
            got[0].message
        );
        assert!(
            got[0].message.contains("Open MPI 4.1.4 (libmpi.so.40)"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn compiler_runtime_versions_are_checked_both_ways() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        let c_stdcxx = lib(
            "/usr/lib/libstdc++.so.6.0.28",
            "libstdc++.so.6",
            &[],
            vec![],
            &["GLIBCXX_3.4", "GLIBCXX_3.4.28"],
        );
        f.container
            .providers
            .insert("libstdc++.so.6".into(), c_stdcxx);
        if let Some(m) = f.host.mpi.as_mut() {
            m.deps[0].needed.push("libstdc++.so.6".into());
            m.deps[0]
                .needs
                .push(need("libstdc++.so.6", &["GLIBCXX_3.4.30"]));
        }
        let got = run(&f, MPI);
        assert_eq!(
            codes(&got),
            vec![(
                Code::SymbolVersionMissing,
                super::super::finding::Severity::Error
            )]
        );
        assert_eq!(got[0].versions, vec!["GLIBCXX_3.4.30"]);
        // The container's own objects against an injected library: the app needs a
        // version of libhwloc the host's copy does not define.
        let mut f = mpich_pair(36, 34, "4.0.2");
        f.container.closure[0].needed.push("libhwloc.so.15".into());
        f.container.closure[0]
            .needs
            .push(need("libhwloc.so.15", &["HWLOC_2.9"]));
        let got = run(&f, MPI);
        assert_eq!(
            codes(&got),
            vec![(
                Code::SymbolVersionMissing,
                super::super::finding::Severity::Error
            )]
        );
        assert!(
            got[0]
                .message
                .starts_with("the container's /app needs HWLOC_2.9"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn missing_dependency() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        if let Some(m) = f.host.mpi.as_mut() {
            m.deps[0].needed.push("libnotanywhere.so.1".into());
        }
        let got = run(&f, MPI);
        assert_eq!(
            codes(&got),
            vec![(Code::LibraryMissing, super::super::finding::Severity::Error)]
        );
    }

    #[test]
    fn open_mpi_5_removed_interfaces() {
        let mut f = mpich_pair(36, 34, "5.0.7");
        let c_ompi = lib(
            "/usr/lib/libmpi.so.40.30.4",
            "libmpi.so.40",
            &["libc.so.6"],
            vec![],
            &[],
        );
        f.container.mpi = Some(MpiLib {
            lib: c_ompi,
            install: Some(install(
                MpiAbi::OpenMpi,
                "Open MPI",
                "4.1.4",
                "libmpi.so.40",
            )),
            defined_symbols: ["MPI_Init"].map(String::from).into(),
        });
        f.container.mpi_targets = [(
            "libmpi.so.40".to_string(),
            "/usr/lib/libmpi.so.40.30.4".to_string(),
        )]
        .into();
        f.container.closure[0].needed = vec![
            "libmpi.so.40".into(),
            "libmpi_cxx.so.40".into(),
            "libc.so.6".into(),
        ];
        if let Some(m) = f.host.mpi.as_mut() {
            m.main.install = Some(install(
                MpiAbi::OpenMpi,
                "Open MPI",
                "5.0.7",
                "libmpi.so.40",
            ));
            m.main.lib.soname = Some("libmpi.so.40".into());
        }
        let got = run(&f, MPI);
        assert_eq!(
            codes(&got)[0],
            (
                Code::Openmpi5RemovedInterface,
                super::super::finding::Severity::Error
            )
        );
        assert!(
            got[0].message.contains("/app needs libmpi_cxx.so.40"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn shadowed_mpi_library() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        f.container.mpi_shadowed.push((
            "/app".into(),
            "libmpich.so.12".into(),
            "/usr/lib/glibc-hwcaps/x86-64-v3/libmpich.so.12".into(),
        ));
        assert_eq!(
            codes(&run(&f, MPI)),
            vec![(
                Code::LibraryShadowed,
                super::super::finding::Severity::Error
            )]
        );
    }

    #[test]
    fn musl_and_static_cannot_take_libraries() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        if let Some(inv) = f.container.inventory.as_mut() {
            inv.libc.as_mut().unwrap().family = LibcFamily::Musl;
        }
        f.container.static_entrypoint = true;
        let got: Vec<Code> = run(&f, MPI).iter().map(|f| f.code).collect();
        assert!(
            got.contains(&Code::LibcFamilyMismatch) && got.contains(&Code::StaticEntrypoint),
            "{got:?}"
        );
    }

    #[test]
    fn arch_and_microarch() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        if let Some(inv) = f.host.inventory.as_mut() {
            inv.arch = Some("aarch64".into());
        }
        assert_eq!(run(&f, Inject::default())[0].code, Code::ArchMismatch);

        let mut f = mpich_pair(36, 34, "4.0.2");
        let (name, features) = crate::inventory::cpu::target_as_host("haswell").unwrap();
        f.host.target = Some(HostTarget {
            name,
            features,
            source: "--host-target".into(),
        });
        if let Some(inv) = f.container.inventory.as_mut() {
            inv.microarch = Microarch {
                required: Some("x86_64_v4".into()),
                signals: vec![MicroarchSignal {
                    target: "x86_64_v4".into(),
                    kind: "x86-isa-note".into(),
                    source: "/app".into(),
                }],
                conflicts: vec![],
            };
        }
        let got = run(&f, Inject::default());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code, Code::MicroarchUnsupported);
        assert_eq!(
            got[0].versions,
            vec!["avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"]
        );
        assert_eq!(got[0].objects, vec!["/app (x86-isa-note)"]);
        // Built for the host's own level: fine.
        if let Some(inv) = f.container.inventory.as_mut() {
            inv.microarch.required = Some("x86_64_v3".into());
        }
        assert!(run(&f, Inject::default()).is_empty());
    }

    #[test]
    fn labels_that_contradict_the_files() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        if let Some(inv) = f.container.inventory.as_mut() {
            inv.mpi = vec![install(MpiAbi::Mpich, "MPICH", "4.0.2", "libmpich.so.12")];
            inv.labels
                .insert("org.supercontainers.mpi".into(), "openmpi".into());
            inv.labels
                .insert("org.supercontainers.glibc".into(), "2.36.0".into());
        }
        let got = run(&f, Inject::default());
        assert_eq!(
            codes(&got),
            vec![(
                Code::LabelMismatch,
                super::super::finding::Severity::Warning
            )]
        );
        assert_eq!(
            got[0].message,
            "label org.supercontainers.mpi=openmpi but the files say mpich"
        );
    }

    #[test]
    fn glibc_listed_for_injection_is_refused() {
        let mut f = mpich_pair(36, 34, "4.0.2");
        f.host.glibc_listed = vec!["/lib/x86_64-linux-gnu/libc.so.6".into()];
        assert!(
            run(&f, MPI)
                .iter()
                .any(|x| x.code == Code::GlibcPartialInjection)
        );
    }
}
