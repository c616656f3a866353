//! The rules: container facts × host facts × the injection choice -> findings. Pure: no
//! I/O, so each rule is tested as a table of hand-made facts. Every finding names the
//! objects and versions involved and says what a person can do about it.
//!
//! Here: the machine, the CPU target, CUDA, labels and whether libraries can be injected
//! at all; `mpi.rs`: the MPI rules; `loaded.rs`: what loads after injection (version
//! nodes, missing libraries, plugins, glibc kept whole); `tests.rs`: the tables.

use std::collections::BTreeSet;

mod gpu;
mod loaded;
mod mpi;
#[cfg(test)]
mod tests;

use super::facts::{Facts, Lib, is_glibc_part};
use super::finding::{Code, Finding};
use super::plan::Selection;
use super::request::Inject;
use crate::inventory::cpu::{is_intrinsic_only, missing_features};
use crate::inventory::model::{FileCode, LibcFamily, MpiAbi, TargetStatus};
use crate::inventory::version::Version;

/// Runs every rule.
pub fn check(facts: &Facts, inject: &Inject, sel: &Selection) -> Vec<Finding> {
    let mut out = Vec::new();
    arch(facts, &mut out);
    microarch(facts, &mut out);
    gpu::gpu(facts, inject, sel, &mut out);
    labels(facts, &mut out);
    unloadable(facts, &mut out);
    if inject.any() {
        injectable(facts, &mut out);
    }
    if inject.mpi {
        mpi::mpi(facts, sel, &mut out);
    }
    if inject.gpu && facts.host.gpu_libs.is_empty() {
        let problems: Vec<String> = facts
            .host
            .inventory
            .iter()
            .flat_map(|i| i.gpu.driver_problems.iter().cloned())
            .collect();
        let (message, hint) = if problems.is_empty() {
            (
                "gpu injection was requested but the host has no NVIDIA driver libraries"
                    .to_string(),
                "run the container on a GPU node, or do not request gpu injection",
            )
        } else {
            (
                format!(
                    "gpu injection was requested but the host's NVIDIA driver libraries cannot be read: {}",
                    problems.join("; ")
                ),
                "repair the driver installation (its alternatives links, or reinstall the driver's libraries) and run ldconfig",
            )
        };
        out.push(
            Finding::new(Code::GpuDriverMissing, message)
                .hint(hint)
                .objects(
                    problems
                        .iter()
                        .map(|p| p.split(' ').next().unwrap_or_default().to_string()),
                ),
        );
    }
    if !sel.is_empty() {
        loaded::versions(facts, sel, &mut out);
        loaded::partial_glibc(facts, &mut out);
    }
    out
}

/// A library the entrypoint needs whose search ends at a file the loader refuses: glibc
/// stops there ("file too short", "invalid ELF header") rather than searching on, so the
/// program cannot start, whatever the host.
fn unloadable(facts: &Facts, out: &mut Vec<Finding>) {
    if let Some(message) = &facts.container.ld_cache_refused {
        out.push(
            Finding::new(
                Code::LdCacheTooLarge,
                format!(
                    "{message}: the loader would use this cache, and without reading it \
                     what the container loads cannot be judged"
                ),
            )
            .objects(["/etc/ld.so.cache"])
            .hint("regenerate the image's cache with ldconfig (a real one is a few MB at most)"),
        );
    }
    for b in &facts.container.broken {
        out.push(
            Finding::new(
                Code::LibraryUnloadable,
                format!(
                    "{}, needed by {}, resolves to {}, which the loader refuses: {}",
                    b.soname, b.needed_by, b.path, b.message
                ),
            )
            .objects([b.path.clone(), b.needed_by.clone()])
            .hint("the image is broken: rebuild it, or put the real library at that path"),
        );
    }
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

/// The CPU rule: the host must have every code-generation feature the container's files
/// (and labels) require; features that only part of an object was built for are
/// unverified; objects that record nothing are said to be unknown; an image built below
/// what the host runs is told so.
fn microarch(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(inv) = &facts.container.inventory else {
        return;
    };
    for f in inv
        .findings
        .iter()
        .filter(|f| f.code == FileCode::UnknownCpuTarget)
    {
        out.push(
            Finding::new(Code::CpuTargetUnknown, f.message.clone())
                .objects([f.path.clone()])
                .hint("use an archspec name (zen3, icelake, x86_64_v3) in labels; what the name requires is not verified"),
        );
    }
    let Some(host) = &facts.host.target else {
        return;
    };
    let host_arch = facts
        .host
        .inventory
        .as_ref()
        .and_then(|i| i.arch.as_deref());
    if inv.arch.is_some() && host_arch.is_some() && inv.arch.as_deref() != host_arch {
        // The arch rule already refuses, and one architecture's features mean nothing
        // on another.
        return;
    }
    let m = &inv.microarch;
    let required: BTreeSet<String> = m.features.iter().cloned().collect();
    let missing = missing_features(&required, &host.features);
    let host_name = format!("{} ({})", host.name, host.source_text());
    let by: Vec<String> = m
        .signals
        .iter()
        .filter(|s| s.features.iter().any(|f| missing.contains(f)))
        .filter(|s| !m.mixed.iter().any(|x| x.object == s.source))
        .map(|s| format!("{} ({} {})", s.source, s.kind, s.target))
        .collect();
    let required_name = m.required.clone().unwrap_or_else(|| "its targets".into());
    if missing.iter().any(|f| !is_intrinsic_only(f)) {
        out.push(
            Finding::new(
                Code::MicroarchUnsupported,
                format!(
                    "the container requires {required_name}; the host CPU {host_name} lacks {}",
                    missing.join(", ")
                ),
            )
            .hint(format!(
                "run it on a node whose CPU has {}, or use an image built for this one \
                 (gcc -march={} or lower)",
                missing.join(", "),
                host.name
            ))
            .objects(by)
            .versions(missing.clone()),
        );
    } else if !missing.is_empty() {
        // Only extensions compilers never emit on their own: code reaches them through
        // intrinsics, which programs normally put behind a CPU check.
        out.push(
            Finding::new(
                Code::MicroarchUnverified,
                format!(
                    "the container requires {required_name}; the host CPU {host_name} lacks {}, \
                     which compilers emit only where the code calls their intrinsics: it runs \
                     unless it does so without checking the CPU first",
                    missing.join(", ")
                ),
            )
            .hint("run it once on such a node, or build it for this CPU's target")
            .objects(by)
            .versions(missing.clone()),
        );
    }
    for x in &m.mixed {
        let lacking = missing_features(&x.features.iter().cloned().collect(), &host.features);
        if lacking.is_empty() {
            continue;
        }
        let dispatch = match &x.dispatch {
            Some(d) => format!("it checks the CPU at run time ({d}), so that code probably runs only where it can"),
            None => "the file shows no run-time CPU check (a stripped file would not), so if that code runs unguarded the program dies with SIGILL".to_string(),
        };
        out.push(
            Finding::new(
                Code::MicroarchUnverified,
                format!(
                    "{} links code built for {}; the host CPU {host_name} lacks {}, which only part of it was built to use: {dispatch}",
                    x.object,
                    x.targets.join(", "),
                    lacking.join(", ")
                ),
            )
            .hint("run it once on such a node, or declare the requirement with the io.archspec.cpu.target label")
            .objects([x.object.clone()])
            .versions(lacking),
        );
    }
    if matches!(m.status, TargetStatus::Unknown | TargetStatus::Partial) && !m.unmarked.is_empty() {
        let first: Vec<&String> = m.unmarked.iter().take(3).collect();
        let more = m.unmarked.len().saturating_sub(first.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let list: Vec<&str> = first.iter().map(|s| s.as_str()).collect();
        let verb = if m.unmarked.len() == 1 {
            "records"
        } else {
            "record"
        };
        out.push(
            Finding::new(
                Code::MicroarchUnknown,
                format!(
                    "what the container needs of the CPU is unknown: {}{more} {verb} no target \
                     (no ISA-level note, no recorded -march, no GOAMD64)",
                    list.join(", ")
                ),
            )
            .hint(
                "declare it with the io.archspec.cpu.target label, or build with -mneeded \
                   (gcc 11+) or link with -Wl,-z,x86-64-vN so the files say it",
            )
            .objects(m.unmarked.clone()),
        );
    }
    if let Some((level, host_level)) = m.headroom(&host.features) {
        let recorded = if m.status == TargetStatus::Recorded {
            ""
        } else {
            ", as far as its files record"
        };
        out.push(
            Finding::new(
                Code::MicroarchHeadroom,
                format!(
                    "the image is built for x86-64 level {level}{recorded}; the host CPU \
                     {host_name} runs level {host_level}: a build for it may run faster"
                ),
            )
            .hint(format!(
                "publish a variant built with -march=x86-64-v{host_level} (or for this CPU) \
                 and choose it on such nodes"
            ))
            .versions([format!("x86-64-v{level}"), format!("x86-64-v{host_level}")]),
        );
    }
}

/// The labels an image carries against its files, through the one mapping
/// `containerspec labels` uses ([`super::labels`]): each contradiction is a finding.
fn labels(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(inv) = &facts.container.inventory else {
        return;
    };
    for c in super::labels::check(&inv.labels, inv) {
        if c.outcome != super::labels::Outcome::Contradicts {
            continue;
        }
        out.push(
            Finding::new(
                Code::LabelMismatch,
                format!(
                    "label {}={} but the files say {}",
                    c.key,
                    c.declared.as_deref().unwrap_or_default(),
                    c.files_say
                ),
            )
            .hint(format!(
                "correct the image's {} label (containerspec labels prints what the files say)",
                c.key
            ))
            .objects(std::iter::once(c.key.clone()).chain(c.from.iter().cloned())),
        );
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
