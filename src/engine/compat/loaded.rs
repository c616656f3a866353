//! What loads after injection: every version node each loaded object needs, the
//! libraries each needs, plugins that cannot load, and glibc kept whole.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// Every non-weak version each loaded object needs must be defined by the library that
/// will provide it after injection, in both directions: host objects against the
/// container's glibc and run-times, container objects against the injected libraries.
pub(super) fn versions(facts: &Facts, sel: &Selection, out: &mut Vec<Finding>) {
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
pub(super) fn plugins_unusable(group: &[(String, String, Vec<String>)]) -> Vec<Finding> {
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
pub(super) fn check_loaded(
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

pub(super) fn sort_newest_first(nodes: &mut Vec<String>) {
    nodes.sort_by_key(|n| std::cmp::Reverse(node_version(n)));
    nodes.dedup();
}

/// One finding for every object that needs a newer glibc: the first named in full, the
/// others counted, all listed in `objects`.
pub(super) fn glibc_too_old(
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
pub(super) fn still_loaded<'a>(facts: &'a Facts, sel: &Selection) -> Vec<&'a Lib> {
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
pub(super) fn provider<'a>(facts: &'a Facts, sel: &'a Selection, soname: &str) -> Option<&'a Lib> {
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

pub(super) fn version_missing(obj: &Lib, from_host: bool, file: &str, absent: &[&str]) -> Finding {
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
pub(super) fn node_version(node: &str) -> Option<Version> {
    node.split_once('_').and_then(|(_, v)| Version::parse(v))
}

/// glibc is one unit: a config that lists a glibc part among the host libraries to
/// inject is refused.
pub(super) fn partial_glibc(facts: &Facts, out: &mut Vec<Finding>) {
    if !facts.host.glibc_listed.is_empty() {
        out.push(
            Finding::new(Code::GlibcPartialInjection, format!("the config lists glibc components for injection ({}): glibc can only be replaced as a whole", facts.host.glibc_listed.join(", ")))
                .hint("remove them from the config's library list; the container's glibc is always used")
                .objects(facts.host.glibc_listed.clone()),
        );
    }
}
