//! The MPI rules: the ABI family and the standard ABI, versions, Open MPI's series, the
//! symbols the container imports, shadowing, and the environment the plan needs.

use std::collections::BTreeMap;

use super::*;

pub(super) fn mpi(facts: &Facts, sel: &Selection, out: &mut Vec<Finding>) {
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
        || crate::engine::choose::serving(host, c_soname).is_none();
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
pub(super) fn environment(facts: &Facts, sel: &Selection, out: &mut Vec<Finding>) {
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
pub(super) fn standard_abi(
    facts: &Facts,
    container: &crate::engine::facts::MpiLib,
    host: &crate::engine::facts::HostMpi,
    out: &mut Vec<Finding>,
) -> bool {
    let Some((MpiAbi::Standard, soname)) = crate::engine::choose::container_abi(&facts.container)
    else {
        return false;
    };
    let describe = |l: &crate::engine::facts::MpiLib| match &l.install {
        Some(i) => format!(
            "{} {} ({})",
            i.implementation,
            i.version.as_deref().unwrap_or("?"),
            l.lib.name()
        ),
        None => l.lib.name().to_string(),
    };
    let draft = soname == "libmpi_abi.so.0";
    let Some(served_by) = crate::engine::choose::serving(host, &soname) else {
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
        |l: &crate::engine::facts::MpiLib| l.install.as_ref().map(|i| i.implementation.clone());
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

pub(super) fn host_older(
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
pub(super) fn open_mpi_series(
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
pub(super) fn symbols(facts: &Facts, out: &mut Vec<Finding>) {
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
