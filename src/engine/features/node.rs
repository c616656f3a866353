//! A node's features, from its description (`host --json`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::catalog::{
    CUDA_MAJORS, CUDA_MINORS, GLIBC_FLOOR, GLIBC_TOP, family_token, glibc_minor_of, glibc_rung,
};
use crate::engine::cuda::{self, CudaCheck};
use crate::engine::hostdesc::HostDescription;
use crate::inventory::cpu::{X86_BASELINE, is_x86_codegen, runnable_targets, x86_level_of};
use crate::inventory::model::MpiAbi;
use crate::inventory::version::Version;

/// What a node offers, and what it could not publish.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Offer {
    /// Feature names, sorted, without a scheduler's prefix.
    pub features: BTreeSet<String>,
    /// Facts left out, and why (a person reads these; schedulers never see them).
    pub notes: Vec<String>,
}

/// The CPU features a description's verdicts use: the usable ones, with SSE3 under both
/// of its spellings.
fn cpu_features(host: &HostDescription) -> Option<BTreeSet<String>> {
    let cpu = host.inventory.cpu.as_ref()?;
    let mut set: BTreeSet<String> = cpu.usable_features.iter().cloned().collect();
    if set.contains("sse3") {
        set.insert("pni".into());
    }
    Some(set)
}

/// The features of the node `host` describes.
pub fn offer(host: &HostDescription) -> Offer {
    let mut out = Offer::default();
    let f = &mut out.features;
    let arch = host.arch().map(str::to_string);
    match &arch {
        Some(a) if super::catalog::parse(&format!("arch_{a}")).is_some() => {
            f.insert(format!("arch_{a}"));
        }
        Some(a) => out.notes.push(format!(
            "the architecture {a:?} cannot be spelt as a feature"
        )),
        None => out
            .notes
            .push("no architecture: the description has neither arch nor cpu".into()),
    }
    match (cpu_features(host), arch.as_deref()) {
        (Some(usable), Some(arch)) => f.extend(cpu_offer(arch, usable)),
        _ => out
            .notes
            .push("no CPU: the description has no usable CPU features".into()),
    }
    glibc(host, &mut out);
    mpi(host, &mut out);
    gpu(host, &mut out);
    out
}

/// The CPU's features: its level ladder, its code-generation flags, the archspec targets
/// it runs. Remembered per feature set: a cluster has few kinds of CPU, and the targets
/// take most of a node's time.
fn cpu_offer(arch: &str, usable: BTreeSet<String>) -> BTreeSet<String> {
    type Memo = HashMap<(String, BTreeSet<String>), BTreeSet<String>>;
    thread_local! {
        static MEMO: RefCell<Memo> = RefCell::new(HashMap::new());
    }
    let key = (arch.to_string(), usable);
    if let Some(hit) = MEMO.with(|m| m.borrow().get(&key).cloned()) {
        return hit;
    }
    let (arch, usable) = (&key.0, &key.1);
    let mut f = BTreeSet::new();
    let x86 = arch == "x86_64";
    if x86 {
        for level in 1..=x86_level_of(usable) {
            f.insert(format!("x86_64_v{level}"));
        }
    }
    for flag in usable {
        let published = if x86 {
            is_x86_codegen(flag) && !X86_BASELINE.contains(&flag.as_str())
        } else {
            true
        };
        if published && super::catalog::parse(&format!("isa_{flag}")).is_some() {
            f.insert(format!("isa_{flag}"));
        }
    }
    for target in runnable_targets(arch, usable) {
        if super::catalog::parse(&format!("cpu_{target}")).is_some() {
            f.insert(format!("cpu_{target}"));
        }
    }
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        // Bounded: a description set with endless kinds of CPU recomputes.
        if m.len() < 4096 {
            m.insert(key.clone(), f.clone());
        }
    });
    f
}

fn glibc(host: &HostDescription, out: &mut Offer) {
    let Some(libc) = &host.inventory.libc else {
        return;
    };
    if libc.family != crate::inventory::model::LibcFamily::Glibc {
        return;
    }
    let Some(minor) = libc
        .version
        .as_deref()
        .and_then(Version::parse)
        .and_then(|v| glibc_minor_of(&v))
    else {
        out.notes
            .push(format!("glibc: {} states no version", libc.path));
        return;
    };
    // The ladder stops at its top; a newer glibc adds its own rung (a description's
    // version is not trusted to bound a loop).
    for m in GLIBC_FLOOR.min(minor)..=minor.min(GLIBC_TOP) {
        out.features.insert(format!("glibc_{}", glibc_rung(m)));
    }
    out.features.insert(format!("glibc_{}", glibc_rung(minor)));
}

/// Per family, the installation `check-bundle --inject mpi` would choose: the first of
/// the family in the description's order (most explicitly named first).
fn mpi(host: &HostDescription, out: &mut Offer) {
    let mut chosen: BTreeMap<String, &crate::engine::hostdesc::Installation> = BTreeMap::new();
    for m in &host.mpi_installations {
        let Some(abi) = m.abi else {
            out.notes.push(format!(
                "MPI: {}: its ABI family is not known, so it is not published",
                m.describe()
            ));
            continue;
        };
        if let Some(token) = family_token(abi, &m.soname) {
            chosen.entry(token).or_insert(m);
        }
    }
    for (family, m) in chosen {
        out.features.insert(format!("mpi_{family}"));
        if m.abi == Some(MpiAbi::OpenMpi) {
            let major = m
                .version
                .as_deref()
                .and_then(Version::parse)
                .and_then(|v| v.0.first().copied());
            if major.is_none_or(|m| m < 5) {
                out.features.insert("mpi_openmpi_legacy".into());
            }
        }
        let needed = m
            .glibc_needed
            .as_deref()
            .and_then(Version::parse)
            .and_then(|v| glibc_minor_of(&v));
        match needed {
            Some(n) => {
                for rung in n..=GLIBC_TOP.max(n) {
                    out.features
                        .insert(format!("mpi_{family}_glibc_{}", glibc_rung(rung)));
                }
            }
            None => out.notes.push(format!(
                "MPI: {}: the glibc it needs is not in the description (describe the host \
                 with this containerspec), so no container glibc is vouched for",
                m.describe()
            )),
        }
    }
}

fn gpu(host: &HostDescription, out: &mut Offer) {
    let Some(driver) = &host.inventory.gpu.nvidia_driver else {
        return;
    };
    if let Some(libs) = &host.inventory.gpu.nvidia_libraries {
        if libs.version != driver.version && libs.source != driver.source {
            out.notes.push(format!(
                "GPU: the kernel module {} ({}) and the libraries {} ({}) are different builds: \
                 no CUDA runs until they match",
                driver.version, driver.source, libs.version, libs.source
            ));
            return;
        }
    }
    out.features.insert("gpu_nvidia".into());
    for major in CUDA_MAJORS {
        for minor in CUDA_MINORS {
            let runtime = format!("{major}.{minor}");
            if matches!(
                cuda::check(&driver.version, &runtime, false),
                CudaCheck::Supported | CudaCheck::MinorVersionCompatible { .. }
            ) {
                out.features.insert(format!("cuda_{runtime}"));
            }
        }
    }
}
