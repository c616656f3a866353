//! The feature names: how each is spelled, parsed back (a name in containerspec's
//! namespace that is none of these is refused, never ignored), and what a node offers
//! in place of one it lacks.
//!
//! Names use only `[A-Za-z0-9_.]` and start with a letter: Slurm takes them in
//! `Features=`, `helpers.conf` (`[A-Za-z_=][A-Za-z0-9_.=]*`) and `--constraint`, and
//! Kubernetes as the name part of a label (63 characters at most).

use std::collections::BTreeSet;

use crate::inventory::version::Version;

/// The newest glibc a ladder names: a node whose MPI loads into glibc 2.34 offers
/// `..._glibc_2.34` up to this; an image shipping a newer glibc needs this rung. (glibc
/// 2.43 is of 2026; two releases a year leave years of room.)
pub const GLIBC_TOP: u32 = 50;
/// The oldest glibc of the host's own ladder (`glibc_2.17`, RHEL 7's).
pub const GLIBC_FLOOR: u32 = 17;
/// CUDA majors a driver's ladder covers, and minors per major (no CUDA major has had
/// more than ten releases).
pub const CUDA_MAJORS: std::ops::RangeInclusive<u32> = 7..=15;
pub const CUDA_MINORS: std::ops::RangeInclusive<u32> = 0..=9;

/// What a feature name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `arch_x86_64`
    Arch(String),
    /// `x86_64_v3`: the CPU has every feature of the generic level.
    Level(u8),
    /// `isa_avx2`: the CPU has this code-generation feature (`/proc/cpuinfo` spelling).
    Isa(String),
    /// `cpu_haswell`: the CPU has every feature of this archspec target.
    Target(String),
    /// `glibc_2.36`: the host's own glibc is at least this.
    Glibc(u32),
    /// `mpi_mpich`: an MPI installation of this family (`mpich`, `openmpi`, `abi1`).
    Mpi(String),
    /// `mpi_mpich_glibc_2.36`: the family's installation loads into a container whose
    /// glibc defines `GLIBC_2.36`.
    MpiGlibc(String, u32),
    /// `mpi_openmpi_legacy`: the Open MPI installation still provides libmpi_cxx,
    /// libopen-rte and libopen-pal (before 5).
    OpenMpiLegacy,
    /// `gpu_nvidia`: an NVIDIA driver.
    GpuNvidia,
    /// `cuda_12.4`: the driver runs a CUDA 12.4 runtime.
    Cuda(u32, u32),
    /// `runs_nowhere`: needed by an image no node can run; never offered, so that a
    /// scheduler refuses the job rather than placing it anywhere.
    Nowhere,
}

/// The name an image that runs nowhere needs.
pub const NOWHERE: &str = "runs_nowhere";

/// A family's token from an installation's ABI: `mpich`, `openmpi`, `abi1` (the MPI
/// standard ABI of `libmpi_abi.so.1`).
pub fn family_token(abi: crate::inventory::model::MpiAbi, soname: &str) -> Option<String> {
    use crate::inventory::model::MpiAbi;
    match abi {
        MpiAbi::Mpich => Some("mpich".into()),
        MpiAbi::OpenMpi => Some("openmpi".into()),
        MpiAbi::Standard => {
            let n = soname.strip_prefix("libmpi_abi.so.")?;
            let n = n.split('.').next()?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| format!("abi{n}"))
        }
    }
}

fn family_name(token: &str) -> String {
    match token {
        "mpich" => "an MPICH-ABI".into(),
        "openmpi" => "an Open MPI".into(),
        t => format!(
            "an MPI standard ABI (libmpi_abi.so.{})",
            t.trim_start_matches("abi")
        ),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn glibc_minor(s: &str) -> Option<u32> {
    let minor = s.strip_prefix("2.")?;
    (!minor.is_empty() && minor.len() <= 3 && minor.bytes().all(|b| b.is_ascii_digit()))
        .then(|| minor.parse().ok())
        .flatten()
}

fn is_family(s: &str) -> bool {
    s == "mpich"
        || s == "openmpi"
        || s.strip_prefix("abi")
            .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a feature name (without a scheduler's prefix). None when containerspec does
/// not write such a name.
pub fn parse(name: &str) -> Option<Kind> {
    // A Kubernetes label's name part, and a name starting with a letter.
    if name.len() > 63 || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    if let Some(arch) = name.strip_prefix("arch_") {
        return is_token(arch).then(|| Kind::Arch(arch.into()));
    }
    if let Some(level) = name.strip_prefix("x86_64_v") {
        return match level {
            "1" | "2" | "3" | "4" => level.parse().ok().map(Kind::Level),
            _ => None,
        };
    }
    if let Some(flag) = name.strip_prefix("isa_") {
        return is_token(flag).then(|| Kind::Isa(flag.into()));
    }
    if let Some(target) = name.strip_prefix("cpu_") {
        return is_token(target).then(|| Kind::Target(target.into()));
    }
    if let Some(v) = name.strip_prefix("glibc_") {
        return glibc_minor(v).map(Kind::Glibc);
    }
    if name == "mpi_openmpi_legacy" {
        return Some(Kind::OpenMpiLegacy);
    }
    if name == "gpu_nvidia" {
        return Some(Kind::GpuNvidia);
    }
    if name == NOWHERE {
        return Some(Kind::Nowhere);
    }
    if let Some(rest) = name.strip_prefix("mpi_") {
        if let Some((family, v)) = rest.split_once("_glibc_") {
            return (is_family(family))
                .then(|| glibc_minor(v).map(|m| Kind::MpiGlibc(family.into(), m)))
                .flatten();
        }
        return is_family(rest).then(|| Kind::Mpi(rest.into()));
    }
    if let Some(v) = name.strip_prefix("cuda_") {
        let (major, minor) = v.split_once('.')?;
        let num = |s: &str| {
            (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        return Some(Kind::Cuda(num(major)?, num(minor)?));
    }
    None
}

/// The name of a glibc rung: `2.36`.
pub fn glibc_rung(minor: u32) -> String {
    format!("2.{minor}")
}

/// The rung of a glibc version (`2.36`, `2.2.5`): its minor; None for anything a
/// feature name cannot spell (three digits at most).
pub fn glibc_minor_of(v: &Version) -> Option<u32> {
    match v.0.as_slice() {
        [2, minor, ..] if *minor <= 999 => Some(*minor),
        _ => None,
    }
}

/// What `features` offers in place of `wanted`, for a person: "the node is
/// arch_aarch64", "its MPICH-ABI installation loads into glibc 2.36 and newer".
pub fn instead(wanted: &str, features: &BTreeSet<String>) -> String {
    let parsed: Vec<Kind> = features.iter().filter_map(|f| parse(f)).collect();
    match parse(wanted) {
        Some(Kind::Arch(_)) => {
            let archs: Vec<&str> = parsed
                .iter()
                .filter_map(|k| match k {
                    Kind::Arch(a) => Some(a.as_str()),
                    _ => None,
                })
                .collect();
            if archs.is_empty() {
                "the node states no architecture".into()
            } else {
                format!("the node is {}", archs.join(", "))
            }
        }
        Some(Kind::Level(_)) => {
            let level = parsed
                .iter()
                .filter_map(|k| match k {
                    Kind::Level(l) => Some(*l),
                    _ => None,
                })
                .max();
            match level {
                Some(l) => format!("the node's CPU is x86_64_v{l}"),
                None => "the node states no x86-64 level".into(),
            }
        }
        Some(Kind::Isa(flag)) => format!("the node's CPU lacks {flag}"),
        Some(Kind::Target(t)) => format!("the node's CPU cannot run {t}"),
        Some(Kind::Glibc(_)) => {
            match parsed
                .iter()
                .filter_map(|k| match k {
                    Kind::Glibc(m) => Some(*m),
                    _ => None,
                })
                .max()
            {
                Some(m) => format!("the node's glibc is {}", glibc_rung(m)),
                None => "the node states no glibc".into(),
            }
        }
        Some(Kind::Mpi(family)) | Some(Kind::MpiGlibc(family, _)) => {
            let has_family = parsed
                .iter()
                .any(|k| matches!(k, Kind::Mpi(f) if *f == family));
            let lowest = parsed
                .iter()
                .filter_map(|k| match k {
                    Kind::MpiGlibc(f, m) if *f == family => Some(*m),
                    _ => None,
                })
                .min();
            match (has_family, lowest) {
                (_, Some(m)) => format!(
                    "the node's {} installation needs GLIBC_{}",
                    family_name(&family)
                        .trim_start_matches("an ")
                        .trim_start_matches("a "),
                    glibc_rung(m)
                ),
                (true, None) => format!(
                    "the node has {} installation, but the glibc it needs is not known",
                    family_name(&family)
                ),
                (false, None) => {
                    let others: Vec<&str> = parsed
                        .iter()
                        .filter_map(|k| match k {
                            Kind::Mpi(f) => Some(f.as_str()),
                            _ => None,
                        })
                        .collect();
                    if others.is_empty() {
                        format!("the node has no MPI installation ({} wanted)", family)
                    } else {
                        format!(
                            "the node's MPI is {} ({} wanted)",
                            others.join(", "),
                            family
                        )
                    }
                }
            }
        }
        Some(Kind::OpenMpiLegacy) => {
            "the node's Open MPI is 5 or newer, without libmpi_cxx, libopen-rte, libopen-pal".into()
        }
        Some(Kind::GpuNvidia) => "the node has no NVIDIA driver".into(),
        Some(Kind::Cuda(..)) => {
            let top = parsed
                .iter()
                .filter_map(|k| match k {
                    Kind::Cuda(a, b) => Some((*a, *b)),
                    _ => None,
                })
                .max();
            match top {
                Some((a, b)) => format!("the node's driver runs CUDA up to {a}.{b}"),
                None if features.contains("gpu_nvidia") => {
                    "the node's driver runs no CUDA release".into()
                }
                None => "the node has no NVIDIA driver".into(),
            }
        }
        Some(Kind::Nowhere) => "no node can offer it".into(),
        None => "not a containerspec feature".into(),
    }
}
