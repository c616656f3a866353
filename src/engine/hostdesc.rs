//! A host as `containerspec host --json` describes it (the file admins collect from their
//! nodes), and what decides whether a base image runs there: the judgement a Dockerfile
//! update asks for before it moves a pin. Pure: the base image's files were read into an
//! inventory before, the host's description is data.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::facts::HostMpi;
use super::finding::{Code, Finding};
use crate::inventory::model::{Inventory, LibcFamily, MpiAbi};
use crate::inventory::mpi_host::MpiOrigin;
use crate::inventory::version::{Version, highest_node};

/// `host --json`: the inventory's fields, and the MPI installations beside them.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostDescription {
    #[serde(flatten)]
    pub inventory: Inventory,
    #[serde(default)]
    pub mpi_installations: Vec<Installation>,
}

/// One host MPI installation as `host` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Installation {
    pub implementation: Option<String>,
    pub version: Option<String>,
    /// `mpich`, `open-mpi` or `standard`.
    pub abi: Option<MpiAbi>,
    pub soname: String,
    pub path: String,
    pub origin: MpiOrigin,
    /// The prefix, directory or file it was found through.
    pub found_in: String,
    /// The installation's own tree (mounted at its own path when injected).
    pub prefix: Option<String>,
    /// The installation's other libraries of the same ABI.
    pub family: Vec<String>,
    /// The highest `GLIBC_2.x` its libraries, their dependencies and plugins need: a
    /// container it is injected into must ship at least this glibc.
    #[serde(default)]
    pub glibc_needed: Option<String>,
    /// Files of the installation that could not be read.
    pub problems: Vec<String>,
}

impl Installation {
    /// `MPICH 4.0.2 (/usr/lib/x86_64-linux-gnu/libmpich.so.12)`
    pub fn describe(&self) -> String {
        let what = [self.implementation.as_deref(), self.version.as_deref()]
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{} ({})",
            if what.is_empty() { "MPI" } else { &what },
            self.path
        )
    }

    pub fn of(m: &HostMpi) -> Installation {
        let i = m.main.install.as_ref();
        let libs = std::iter::once(&m.main.lib)
            .chain(m.family.values())
            .chain(&m.deps)
            .chain(&m.plugin_deps)
            .chain(&m.helpers)
            .chain(m.plugin_dirs.iter().flat_map(|d| &d.libs));
        let glibc_needed = libs
            .flat_map(|l| &l.needs)
            .filter_map(|n| {
                highest_node(
                    n.versions
                        .iter()
                        .filter(|v| !v.weak)
                        .map(|v| v.name.as_str()),
                    "GLIBC_",
                )
            })
            .max()
            .map(|v| v.to_string());
        Installation {
            implementation: i.map(|i| i.implementation.clone()),
            version: i.and_then(|i| i.version.clone()),
            abi: i.map(|i| i.abi),
            soname: m.main.lib.name().to_string(),
            path: m.main.lib.path.clone(),
            origin: m.origin,
            found_in: m.found_in.clone(),
            prefix: m.prefix.clone(),
            family: m.family.keys().cloned().collect(),
            glibc_needed,
            problems: m.problems.clone(),
        }
    }
}

impl HostDescription {
    /// A name for reports: the file's stem is the caller's; this is the fallback.
    pub fn arch(&self) -> Option<&str> {
        self.inventory
            .arch
            .as_deref()
            .or(self.inventory.cpu.as_ref().map(|c| c.arch.as_str()))
    }

    /// The OCI platform an image must offer for this host: `linux/amd64`.
    pub fn platform(&self) -> Option<String> {
        let arch = match self.arch()? {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "ppc64le" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Some(format!("linux/{arch}"))
    }
}

/// Whether a base image (its loader and libc, read into `base`) runs on `host`, and with
/// `inject_mpi` whether the host's MPI can be injected into it. Errors say why it cannot;
/// a warning says what the files could not tell (an unverified base is not a passing one).
pub fn judge_base(base: &Inventory, host: &HostDescription, inject_mpi: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(libc) = &base.libc else {
        out.push(
            Finding::new(
                Code::LibcFamilyMismatch,
                "no C library (libc.so.6, musl's loader) was found in the image's layers: \
                 whether its programs run cannot be decided",
            )
            .severity_warning()
            .hint("a base image without a libc runs only static programs"),
        );
        return out;
    };
    if let (Some(b), Some(h)) = (base.arch.as_deref(), host.arch()) {
        if b != h {
            out.push(
                Finding::new(
                    Code::ArchMismatch,
                    format!("the base image's {} is {b}; the host is {h}", libc.path),
                )
                .objects([libc.path.clone()]),
            );
            return out;
        }
    }
    if let Some(cpu) = &host.inventory.cpu {
        let usable: BTreeSet<String> = cpu.usable_features.iter().cloned().collect();
        let wanted: BTreeSet<String> = base.microarch.features.iter().cloned().collect();
        let missing = crate::inventory::cpu::missing_features(&wanted, &usable);
        if missing
            .iter()
            .any(|f| !crate::inventory::cpu::is_intrinsic_only(f))
        {
            let by: Vec<String> = base
                .microarch
                .signals
                .iter()
                .map(|s| format!("{} ({} {})", s.source, s.kind, s.target))
                .collect();
            out.push(
                Finding::new(
                    Code::MicroarchUnsupported,
                    format!(
                        "the base image requires {}; the host CPU {} lacks {}",
                        base.microarch.required.as_deref().unwrap_or("its targets"),
                        cpu.microarchitecture,
                        missing.join(", ")
                    ),
                )
                .objects(by)
                .versions(missing),
            );
        }
    }
    if !inject_mpi {
        return out;
    }
    if libc.family == LibcFamily::Musl {
        out.push(Finding::new(
            Code::LibcFamilyMismatch,
            "the base image's C library is musl: the host's glibc-linked MPI cannot load into it",
        ));
        return out;
    }
    let shipped = libc.version.as_deref().and_then(Version::parse);
    for m in &host.mpi_installations {
        let Some(needed) = m.glibc_needed.as_deref().and_then(Version::parse) else {
            out.push(
                Finding::new(
                    Code::GlibcTooOld,
                    format!(
                        "{}: the glibc its libraries need is not in the host description \
                         (describe the host with a newer containerspec)",
                        m.describe()
                    ),
                )
                .severity_warning(),
            );
            continue;
        };
        match &shipped {
            Some(s) if *s >= needed => {}
            Some(s) => out.push(
                Finding::new(
                    Code::GlibcTooOld,
                    format!(
                        "the host's {} needs GLIBC_{needed}; the base image ships glibc {s} ({})",
                        m.describe(),
                        libc.path
                    ),
                )
                .objects([m.path.clone(), libc.path.clone()])
                .versions([format!("GLIBC_{needed}")])
                .hint("keep a base whose glibc is at least the host's MPI's"),
            ),
            None => out.push(
                Finding::new(
                    Code::GlibcTooOld,
                    format!(
                        "the base image's glibc version is unknown ({}): whether the host's {} \
                         (GLIBC_{needed}) loads cannot be decided",
                        libc.path,
                        m.describe()
                    ),
                )
                .severity_warning(),
            ),
        }
    }
    out
}
