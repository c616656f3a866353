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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::model::Libc;

    fn base(arch: &str, family: LibcFamily, version: Option<&str>, features: &[&str]) -> Inventory {
        let mut inv = Inventory {
            arch: Some(arch.into()),
            libc: Some(Libc {
                family,
                version: version.map(str::to_string),
                version_source: None,
                path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
                loader: None,
                max_symbol_version: None,
            }),
            ..Default::default()
        };
        inv.microarch.features = features.iter().map(|f| f.to_string()).collect();
        inv.microarch.required = (!features.is_empty()).then(|| "x86_64_v3".to_string());
        inv
    }

    fn host(arch: &str, usable: &[&str], mpi_glibc: Option<&str>) -> HostDescription {
        let cpu = serde_json::from_value(serde_json::json!({
            "arch": arch, "microarchitecture": "nehalem", "vendor": "GenuineIntel",
            "generic_level": "x86_64_v2", "features": usable, "usable_features": usable,
            "cross_check": {"source": "cpuid", "agrees": true, "notes": []}
        }))
        .expect("a CPU description");
        HostDescription {
            inventory: Inventory {
                arch: Some(arch.into()),
                cpu: Some(cpu),
                ..Default::default()
            },
            mpi_installations: vec![Installation {
                implementation: Some("MPICH".into()),
                version: Some("4.0.2".into()),
                abi: None,
                soname: "libmpich.so.12".into(),
                path: "/usr/lib/libmpich.so.12".into(),
                origin: MpiOrigin::LoaderCache,
                found_in: "/etc/ld.so.cache".into(),
                prefix: None,
                family: Vec::new(),
                glibc_needed: mpi_glibc.map(str::to_string),
                problems: Vec::new(),
            }],
        }
    }

    fn codes(f: &[Finding]) -> Vec<(&'static str, bool)> {
        f.iter()
            .map(|f| {
                (
                    f.code.as_str(),
                    f.severity == crate::engine::finding::Severity::Error,
                )
            })
            .collect()
    }

    #[test]
    fn arch_cpu_and_the_hosts_mpi_decide() {
        let h = host("x86_64", &["sse4_2", "popcnt"], Some("2.34"));
        let ok = base("x86_64", LibcFamily::Glibc, Some("2.36"), &[]);
        assert!(judge_base(&ok, &h, true).is_empty());
        let old = base("x86_64", LibcFamily::Glibc, Some("2.31"), &[]);
        let f = judge_base(&old, &h, true);
        assert_eq!(codes(&f), [("glibc-too-old", true)]);
        assert!(
            f[0].message.contains("needs GLIBC_2.34") && f[0].message.contains("ships glibc 2.31")
        );
        // Without injection the host's MPI does not matter.
        assert!(judge_base(&old, &h, false).is_empty());
        let v3 = base(
            "x86_64",
            LibcFamily::Glibc,
            Some("2.39"),
            &["avx2", "fma", "popcnt"],
        );
        let f = judge_base(&v3, &h, false);
        assert_eq!(codes(&f), [("microarch-unsupported", true)]);
        assert!(f[0].message.contains("avx2"), "{}", f[0].message);
        let arm = base("aarch64", LibcFamily::Glibc, Some("2.36"), &[]);
        assert_eq!(
            codes(&judge_base(&arm, &h, true)),
            [("arch-mismatch", true)]
        );
    }

    #[test]
    fn what_the_files_cannot_tell_is_a_warning_never_a_pass() {
        let h = host("x86_64", &[], Some("2.34"));
        let unknown = base("x86_64", LibcFamily::Glibc, None, &[]);
        assert_eq!(
            codes(&judge_base(&unknown, &h, true)),
            [("glibc-too-old", false)]
        );
        let none = Inventory::default();
        assert_eq!(
            codes(&judge_base(&none, &h, false)),
            [("libc-family-mismatch", false)]
        );
        let musl = base("x86_64", LibcFamily::Musl, Some("1.2.3"), &[]);
        assert_eq!(
            codes(&judge_base(&musl, &h, true)),
            [("libc-family-mismatch", true)]
        );
        // An older description without glibc_needed cannot vouch for the MPI.
        let old_desc = host("x86_64", &[], None);
        let ok = base("x86_64", LibcFamily::Glibc, Some("2.41"), &[]);
        assert_eq!(
            codes(&judge_base(&ok, &old_desc, true)),
            [("glibc-too-old", false)]
        );
        assert_eq!(h.platform().as_deref(), Some("linux/amd64"));
    }
}
