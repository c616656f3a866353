//! The host CPU as containerspec sees it: architecture, archspec microarchitecture, generic
//! x86-64 level and feature flags, plus a cross-check of archspec's answer against a second,
//! independent source (CPUID with the OS-enabled XCR0 state on x86_64, the auxiliary vector's
//! HWCAP words on aarch64). An image built for a newer microarchitecture than the node dies with
//! SIGILL, so [`target_supported`] answers whether an image's target may run here, by the
//! code-generation features the target lets a compiler use ([`names`]). Nothing in this module panics: detection problems
//! become notes and generic fallbacks, because this runs as root on every container start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::sync::{Arc, OnceLock};

use archspec::cpu::Microarchitecture;

mod aarch64;
mod cpuinfo;
mod crosscheck;
mod names;
mod targets;
#[cfg(test)]
mod tests;
mod x86;

#[allow(unused_imports)]
use aarch64::*;
use cpuinfo::*;
use crosscheck::*;
pub use names::*;
pub use targets::*;
#[allow(unused_imports)]
use x86::*;

/// What containerspec knows about the host CPU.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct HostCpu {
    /// `uname -m`: "x86_64", "aarch64", ...
    pub arch: String,
    /// archspec's name for the host, e.g. "zen4", "haswell", "x86_64_v3"; the bare architecture
    /// name when archspec cannot tell.
    pub microarchitecture: String,
    /// archspec's vendor of that microarchitecture; when archspec only found a generic target
    /// (vendor "generic"), the CPU's own vendor in archspec spelling ("AuthenticAMD", "ARM").
    pub vendor: String,
    /// x86 only: "x86_64_v1".."x86_64_v4", the highest level whose archspec feature set is
    /// entirely present in `features`.
    pub generic_level: Option<String>,
    /// Feature flags of the first processor in /proc/cpuinfo, sorted (the spelling archspec
    /// uses: "pni" for SSE3, "abm" for LZCNT, "avx512f").
    pub features: Vec<String>,
    /// The features verdicts use, sorted: on x86_64 each code-generation feature as CPUID
    /// reports it with the register state the OS enables (an emulator or a virtual machine
    /// that masks features makes /proc/cpuinfo say otherwise), the rest as /proc/cpuinfo
    /// lists them; elsewhere /proc/cpuinfo's.
    pub usable_features: Vec<String>,
    /// The independent source's opinion of the above.
    pub cross_check: CrossCheck,
}

/// How a second feature source compares with /proc/cpuinfo and archspec.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CrossCheck {
    /// "cpuid" (x86_64), "hwcap" (aarch64) or "none" (no second source on this architecture).
    pub source: String,
    /// x86_64: cpuid's level equals cpuinfo's and cpuid has every level-relevant feature of
    /// archspec's microarchitecture. aarch64: hwcap and cpuinfo agree on every flag hwcap
    /// describes and hwcap has archspec's microarchitecture's features. "none": false.
    pub agrees: bool,
    /// One line per disagreement or detection problem, lowercase.
    pub notes: Vec<String>,
}

/// Why a target may not run on the host.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetCheck {
    /// The name is neither an archspec target nor a common spelling of one.
    #[error("unknown cpu target {0:?}")]
    Unknown(String),
    /// The target's code-generation features the host lacks, sorted.
    #[error("{}", missing_message(.0))]
    Missing(Vec<String>),
}

fn missing_message(missing: &[String]) -> String {
    format!("host cpu lacks {}", missing.join(", "))
}

/// The generic levels above the baseline, in ascending order.
const LEVEL_TARGETS: [(u8, &str); 3] = [(2, "x86_64_v2"), (3, "x86_64_v3"), (4, "x86_64_v4")];

/// Describes the host CPU. Never fails: problems end up in `cross_check.notes`.
#[must_use]
pub fn host_cpu() -> HostCpu {
    let arch = machine();
    let mut notes = Vec::new();
    let cpuinfo = first_processor_cpuinfo();
    if cpuinfo.is_none() {
        notes.push("cannot read /proc/cpuinfo; feature list is empty".to_string());
    }
    let cpuinfo = cpuinfo.unwrap_or_default();
    let features = cpuinfo_features(&cpuinfo, &arch);
    let mut detected = detect(&arch, &mut notes);
    let mut vendor = if detected.vendor == "generic" {
        cpu_vendor(&cpuinfo, &arch)
    } else {
        detected.vendor.clone()
    };
    let mut cross_check = native_cross_check(&arch, &features, &detected);
    let usable = usable(&arch, &features);
    if let Some((usable, cpuid_vendor)) = &usable {
        // archspec named the CPU from /proc/cpuinfo; where CPUID disagrees (an emulator, a
        // VM that masks features), the name follows the features code can really use.
        if usable != &features && !cross_check.agrees {
            let vendor_now = cpuid_vendor.clone().unwrap_or_else(|| vendor.clone());
            if let Some(name) = best_target(&arch, usable, &vendor_now) {
                notes.push(format!(
                    "verdicts use cpuid's features (with the os-enabled state): {name}, not \
                     {} as /proc/cpuinfo suggests",
                    detected.name
                ));
                detected.name = name;
                vendor = vendor_now;
            }
        }
    }
    let usable = usable.map_or_else(|| features.clone(), |(u, _)| u);
    let generic_level = is_x86(&arch).then(|| level_name(x86_level(&usable)));
    notes.append(&mut cross_check.notes);
    cross_check.notes = notes;
    HostCpu {
        arch,
        microarchitecture: detected.name,
        vendor,
        generic_level,
        features: features.into_iter().collect(),
        usable_features: usable.into_iter().collect(),
        cross_check,
    }
}

/// The usable features and CPUID's vendor (x86_64 only).
#[allow(unused_variables)]
fn usable(arch: &str, cpuinfo: &BTreeSet<String>) -> Option<(BTreeSet<String>, Option<String>)> {
    #[cfg(target_arch = "x86_64")]
    if arch == "x86_64" {
        return Some(native_usable(cpuinfo));
    }
    None
}

impl HostCpu {
    /// The glibc-hwcaps subdirectories the loader searches on this CPU, best first
    /// (`x86-64-v4`, `x86-64-v3`, `x86-64-v2` on a v4 machine). Other architectures'
    /// hwcaps names are not emulated yet: none are returned, so only the base
    /// directories count there.
    pub fn hwcaps(&self) -> Vec<String> {
        let level = self
            .generic_level
            .as_deref()
            .and_then(|l| l.strip_prefix("x86_64_v"))
            .and_then(|n| n.parse::<u8>().ok())
            .unwrap_or(1);
        x86_hwcaps(level)
    }
}

/// The generic x86-64 level a feature set satisfies (1..=4), using archspec's x86_64_v2/v3/v4
/// feature lists.
#[must_use]
pub fn x86_level(features: &BTreeSet<String>) -> u8 {
    let mut level = 1;
    for (n, required) in level_requirements() {
        if !required.iter().all(|f| features.contains(f)) {
            break;
        }
        level = *n;
    }
    level
}

/// A target runs on a host iff the host has every code-generation feature the target lets
/// a compiler use. Features, not names: a `haswell` binary runs on an AMD CPU with every
/// Haswell feature, whatever archspec's ancestry says.
///
/// `target` is an archspec name (or a spelling [`normalize_target`] accepts) or a gcc
/// `-march=` name; `host_features` are in `/proc/cpuinfo` spelling (archspec's "sse3" is
/// read as the kernel's "pni").
///
/// # Errors
///
/// [`TargetCheck::Unknown`] when no table knows `target`. [`TargetCheck::Missing`]
/// otherwise, listing the target's features absent from `host_features`, sorted.
pub fn target_supported(target: &str, host_features: &BTreeSet<String>) -> Result<(), TargetCheck> {
    let wanted = target_features(target).ok_or_else(|| TargetCheck::Unknown(target.to_string()))?;
    let missing = missing_features(&wanted, host_features);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TargetCheck::Missing(missing))
    }
}

/// The code-generation features of a target name: archspec's names first, then gcc's.
#[must_use]
pub fn target_features(name: &str) -> Option<BTreeSet<String>> {
    archspec_features(name).or_else(|| gcc_march_features(name.trim()))
}

/// `wanted`'s features that `host` lacks, sorted (archspec's "sse3" counts as "pni").
#[must_use]
pub fn missing_features(wanted: &BTreeSet<String>, host: &BTreeSet<String>) -> Vec<String> {
    wanted
        .iter()
        .filter(|f| !(host.contains(*f) || (f.as_str() == "pni" && host.contains("sse3"))))
        .cloned()
        .collect()
}

/// Normalises a target name: archspec names and the spellings "x86-64-v3", "x86_64_v3",
/// "x86-64" (= x86_64), "x86-64-v1" (= x86_64), "amd64" (= x86_64) and "arm64" (= aarch64),
/// in any case. Returns the archspec name, or None when archspec does not know it.
#[must_use]
pub fn normalize_target(name: &str) -> Option<String> {
    // archspec names are lowercase and use underscores, never hyphens.
    let key = name.trim().to_ascii_lowercase().replace('-', "_");
    let key = match key.as_str() {
        "amd64" | "x86_64_v1" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    };
    known_targets()?.contains_key(key).then(|| key.to_string())
}

fn level_name(level: u8) -> String {
    format!("x86_64_v{level}")
}

fn is_x86(arch: &str) -> bool {
    matches!(arch, "x86_64" | "x86" | "i386" | "i486" | "i586" | "i686")
}
