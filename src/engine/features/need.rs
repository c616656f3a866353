//! An image's needs, from its container facts: the names a node must offer for
//! `check-bundle` to say compatible there.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::catalog::{family_token, glibc_minor_of, glibc_rung};
use crate::engine::choose::container_abi;
use crate::engine::cuda::judged_version;
use crate::engine::facts::ContainerFacts;
use crate::engine::request::Inject;
use crate::inventory::cpu::{X86_BASELINE, is_intrinsic_only, x86_level_features, x86_level_of};
use crate::inventory::model::{LibcFamily, MpiAbi, TargetStatus};
use crate::inventory::version::Version;

/// One name the image needs, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct NeedItem {
    pub feature: String,
    /// For a person: the file or fact that makes the image need it.
    pub why: String,
}

/// What an image needs of a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Need {
    /// Every name a node must offer.
    pub all: Vec<NeedItem>,
    /// Why the image runs on no node at all (whatever the node offers); empty when it
    /// can run somewhere.
    pub nowhere: Vec<String>,
    /// What the names cannot say: checked only when the container starts (the hook,
    /// `check-bundle`), or not knowable from the files.
    pub unverified: Vec<String>,
}

impl Need {
    fn add(&mut self, feature: String, why: String) {
        if !self.all.iter().any(|n| n.feature == feature) {
            self.all.push(NeedItem { feature, why });
        }
    }

    /// The names alone, in order.
    pub fn names(&self) -> Vec<&str> {
        self.all.iter().map(|n| n.feature.as_str()).collect()
    }
}

/// What `container` needs of a node, with `inject` asked.
pub fn need(container: &ContainerFacts, inject: &Inject) -> Need {
    let mut out = Need::default();
    let Some(inv) = &container.inventory else {
        out.nowhere
            .push("the image's files could not be read".into());
        out.all.push(NeedItem {
            feature: super::catalog::NOWHERE.into(),
            why: out.nowhere.join("; "),
        });
        return out;
    };
    intrinsic(container, inject, &mut out);
    let libc_path = inv.libc.as_ref().map(|l| l.path.as_str());
    match &inv.arch {
        Some(arch) => out.add(
            format!("arch_{arch}"),
            format!(
                "the image's programs are {arch}{}",
                libc_path.map(|p| format!(" ({p})")).unwrap_or_default()
            ),
        ),
        None => out.unverified.push(
            "architecture: no examined file states one; the image is not placed by it".into(),
        ),
    }
    cpu(inv, &mut out);
    if inject.mpi {
        mpi(container, &mut out);
    }
    gpu(inv, inject, &mut out);
    if !out.nowhere.is_empty() {
        // A scheduler must refuse the job, not place it by the other names.
        out.all.insert(
            0,
            NeedItem {
                feature: super::catalog::NOWHERE.into(),
                why: out.nowhere.join("; "),
            },
        );
    }
    out
}

/// What stops the image on every node: the files themselves.
fn intrinsic(container: &ContainerFacts, inject: &Inject, out: &mut Need) {
    if let Some(message) = &container.ld_cache_refused {
        out.nowhere.push(format!(
            "ld-cache-too-large: {message}: what the container loads cannot be judged"
        ));
    }
    for b in &container.broken {
        out.nowhere.push(format!(
            "library-unloadable: {}, needed by {}, resolves to {}, which the loader refuses: {}",
            b.soname, b.needed_by, b.path, b.message
        ));
    }
    if !inject.any() {
        return;
    }
    let libc = container.inventory.as_ref().and_then(|i| i.libc.as_ref());
    if libc.is_some_and(|l| l.family == LibcFamily::Musl) {
        out.nowhere.push(
            "libc-family-mismatch: the image is built on musl; host libraries need glibc".into(),
        );
    }
    if container.static_entrypoint {
        out.nowhere.push(
            "static-entrypoint: the entrypoint is statically linked: nothing can be injected into it"
                .into(),
        );
    }
}

fn cpu(inv: &crate::inventory::model::Inventory, out: &mut Need) {
    let m = &inv.microarch;
    let required: BTreeSet<String> = m
        .features
        .iter()
        .filter(|f| !is_intrinsic_only(f))
        .cloned()
        .collect();
    let by = || {
        let sources: Vec<String> = m
            .signals
            .iter()
            .map(|s| format!("{} ({} {})", s.source, s.kind, s.target))
            .collect();
        if sources.is_empty() {
            String::new()
        } else {
            format!(": {}", sources.join(", "))
        }
    };
    let target = m.required.as_deref().unwrap_or("its targets");
    // On x86-64 the level names most features; the flags beyond it are named one by one.
    let mut beyond: Vec<&String> = required.iter().collect();
    if inv.arch.as_deref() == Some("x86_64") {
        let level = x86_level_of(&required);
        if level >= 2 {
            out.add(
                format!("x86_64_v{level}"),
                format!("the image requires {target} (x86-64-v{level}){}", by()),
            );
        }
        let covered = x86_level_features(level);
        beyond.retain(|f| !covered.contains(*f) && !X86_BASELINE.contains(&f.as_str()));
    }
    for f in beyond {
        out.add(
            format!("isa_{f}"),
            format!("the image requires {target}, which uses {f}{}", by()),
        );
    }
    match m.status {
        TargetStatus::Recorded | TargetStatus::Declared => {}
        TargetStatus::Partial => out.unverified.push(format!(
            "CPU: some examined objects record no target ({} of them, e.g. {}): what they need is not known",
            m.unmarked.len(),
            m.unmarked.first().map(String::as_str).unwrap_or("?")
        )),
        TargetStatus::Unknown => out.unverified.push(
            "CPU: no examined object records the target it was built for: the image is placed \
             as if it needed only the architecture's baseline"
                .into(),
        ),
    }
    if m.features.iter().any(|f| is_intrinsic_only(f)) {
        let only: Vec<&str> = m
            .features
            .iter()
            .filter(|f| is_intrinsic_only(f))
            .map(String::as_str)
            .collect();
        out.unverified.push(format!(
            "CPU: {} are reached only through intrinsics, normally behind a CPU check: not needed of a node",
            only.join(", ")
        ));
    }
}

fn mpi(container: &ContainerFacts, out: &mut Need) {
    let Some((abi, soname)) = container_abi(container) else {
        out.nowhere.push(
            "mpi-not-found: MPI injection is asked, but the image has no MPI library to replace"
                .into(),
        );
        return;
    };
    let Some(family) = family_token(abi, &soname) else {
        out.nowhere.push(format!(
            "mpi-not-found: the image's MPI library {soname} belongs to no ABI family containerspec knows"
        ));
        return;
    };
    let lib = container
        .mpi
        .as_ref()
        .map(|m| m.lib.path.as_str())
        .unwrap_or(soname.as_str());
    let libc = container.inventory.as_ref().and_then(|i| i.libc.as_ref());
    // What the loader checks: the version nodes the image's glibc defines.
    let defined = libc.and_then(|l| {
        l.max_symbol_version
            .as_deref()
            .and_then(|n| Version::parse(n.strip_prefix("GLIBC_").unwrap_or(n)))
            .or_else(|| l.version.as_deref().and_then(Version::parse))
            .map(|v| (v, l.path.clone()))
    });
    let Some((glibc, libc_path)) = defined else {
        out.nowhere.push(format!(
            "glibc-too-old: the image's glibc version is not known{}: no host MPI can be \
             vouched to load into it",
            libc.map(|l| format!(" ({})", l.path)).unwrap_or_default()
        ));
        return;
    };
    // A glibc newer than the ladder's top needs the top rung: every node below it fits.
    let Some(minor) = glibc_minor_of(&glibc).map(|m| m.min(super::catalog::GLIBC_TOP)) else {
        out.nowhere.push(format!(
            "glibc-too-old: the image's glibc {glibc} is not a glibc 2 release"
        ));
        return;
    };
    let what = match abi {
        MpiAbi::Mpich => "the MPICH ABI",
        MpiAbi::OpenMpi => "Open MPI",
        MpiAbi::Standard => "the MPI standard ABI",
    };
    out.add(
        format!("mpi_{family}_glibc_{}", glibc_rung(minor)),
        format!(
            "the image uses {what} ({lib}) and ships glibc {glibc} ({libc_path}): the host's \
             installation of that family must need no newer GLIBC_ version"
        ),
    );
    if abi == MpiAbi::OpenMpi {
        legacy(container, out);
    }
    out.unverified.push(
        "MPI: the symbols the image imports are checked against the host's library when it \
         starts (an older installation of the family may lack some)"
            .into(),
    );
}

/// An Open MPI 4 image whose own programs link the libraries Open MPI 5 removed.
fn legacy(container: &ContainerFacts, out: &mut Need) {
    let major = container
        .mpi
        .as_ref()
        .and_then(|m| m.install.as_ref())
        .and_then(|i| i.version.as_deref())
        .and_then(Version::parse)
        .and_then(|v| v.0.first().copied());
    if major.is_none_or(|m| m >= 5) {
        return;
    }
    let removed = ["libmpi_cxx.so.40", "libopen-rte.so.40", "libopen-pal.so.40"];
    let user = container
        .closure
        .iter()
        .filter(|o| {
            !o.soname
                .as_deref()
                .is_some_and(|s| s.starts_with("libmpi") || s.starts_with("libopen-"))
        })
        .find_map(|o| {
            o.needed
                .iter()
                .find(|n| removed.contains(&n.as_str()))
                .map(|n| format!("{} needs {n}", o.path))
        });
    if let Some(user) = user {
        out.add(
            "mpi_openmpi_legacy".into(),
            format!("{user}, which Open MPI 5 no longer provides"),
        );
    }
}

fn gpu(inv: &crate::inventory::model::Inventory, inject: &Inject, out: &mut Need) {
    if inject.gpu {
        out.add(
            "gpu_nvidia".into(),
            "GPU injection is asked: the node needs an NVIDIA driver".into(),
        );
    }
    for r in &inv.gpu.cuda_runtimes {
        let place = r.library.as_deref().unwrap_or(&r.source);
        let Some(version) = judged_version(r) else {
            out.unverified.push(format!(
                "CUDA: the runtime {place} states no version: it is not checked against drivers"
            ));
            continue;
        };
        let mut parts = version.split('.');
        let (Some(major), Some(minor)) = (parts.next(), parts.next().or(Some("0"))) else {
            continue;
        };
        let rung = format!("{major}.{minor}");
        if super::catalog::parse(&format!("cuda_{rung}")).is_none() {
            out.nowhere.push(format!(
                "cuda-driver-too-old: the CUDA runtime {place} is {version}, beyond every release a driver's features name"
            ));
            continue;
        }
        if r.version.is_none() {
            out.unverified.push(format!(
                "CUDA: the runtime {place} states only its major; CUDA {rung} is assumed, the least it can be"
            ));
        }
        out.add(
            format!("cuda_{rung}"),
            format!("the image's CUDA runtime {version} ({place}, {})", r.source),
        );
    }
    if !inv.gpu.cuda_runtimes.is_empty() {
        out.unverified.push(
            "CUDA: nodes whose driver would run the image only through forward-compatibility \
             libraries, or that have no driver at all (where check-bundle lets CUDA code fall \
             back to the CPU), are not selected"
                .into(),
        );
    }
}
