//! The host CPU as containerspec sees it: architecture, archspec microarchitecture, generic
//! x86-64 level and feature flags, plus a cross-check of archspec's answer against a second,
//! independent source (CPUID with the OS-enabled XCR0 state on x86_64, the auxiliary vector's
//! HWCAP words on aarch64). An image built for a newer microarchitecture than the node dies with
//! SIGILL, so [`target_supported`] answers whether an image's target may run here, using
//! archspec's ancestry and feature lists. Nothing in this module panics: detection problems
//! become notes and generic fallbacks, because this runs as root on every container start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::sync::{Arc, OnceLock};

use archspec::cpu::Microarchitecture;

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
    /// The target's features the host lacks, sorted. Empty when the host has every feature
    /// but is not the target or one of its descendants (e.g. an Intel target on an AMD host).
    #[error("{}", missing_message(.0))]
    Missing(Vec<String>),
}

fn missing_message(missing: &[String]) -> String {
    if missing.is_empty() {
        "host is not this target or a descendant of it in archspec".to_string()
    } else {
        format!("host cpu lacks {}", missing.join(", "))
    }
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
    let detected = detect(&arch, &mut notes);
    let vendor = if detected.vendor == "generic" {
        cpu_vendor(&cpuinfo, &arch)
    } else {
        detected.vendor.clone()
    };
    let generic_level = is_x86(&arch).then(|| level_name(x86_level(&features)));
    let mut cross_check = native_cross_check(&arch, &features, &detected);
    notes.append(&mut cross_check.notes);
    cross_check.notes = notes;
    HostCpu {
        arch,
        microarchitecture: detected.name,
        vendor,
        generic_level,
        features: features.into_iter().collect(),
        cross_check,
    }
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
        (2..=level).rev().map(|l| format!("x86-64-v{l}")).collect()
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

/// A target runs on a host iff the host is that target or one of its descendants in archspec.
///
/// # Errors
///
/// [`TargetCheck::Unknown`] when `target` is not an archspec name or a spelling accepted by
/// [`normalize_target`]. [`TargetCheck::Missing`] otherwise, listing the target's features
/// (`all_features`, with archspec's aliases applied) absent from `host_features`, sorted. As a
/// guard against inconsistent inputs, a host in the right lineage whose features lack some of
/// the target's is refused too.
pub fn target_supported(
    target: &str,
    host_features: &BTreeSet<String>,
    host_microarch: &str,
) -> Result<(), TargetCheck> {
    let unknown = || TargetCheck::Unknown(target.to_string());
    let name = normalize_target(target).ok_or_else(unknown)?;
    let wanted = known_targets()
        .and_then(|t| t.get(&name))
        .ok_or_else(unknown)?;
    let family = wanted.family().name().to_string();
    let mut missing: Vec<String> = wanted
        .all_features()
        .into_iter()
        .filter(|f| !feature_present(f, host_features, &family))
        .collect();
    missing.sort();
    if missing.is_empty() && in_lineage(host_microarch, wanted) {
        Ok(())
    } else {
        Err(TargetCheck::Missing(missing))
    }
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

/// Whether the host has `feature`, honouring archspec's feature aliases. archspec's lists are
/// not all in cpuinfo spelling: core2 and its Intel descendants inherit "sse3" from nocona,
/// which the kernel calls "pni" and archspec aliases to "ssse3"; "neon" stands for all of
/// aarch64.
fn feature_present(feature: &str, host_features: &BTreeSet<String>, family: &str) -> bool {
    if host_features.contains(feature) || (feature == "sse3" && host_features.contains("pni")) {
        return true;
    }
    let schema = guarded(
        "loading its schema",
        archspec::schema::MicroarchitecturesSchema::schema,
    );
    let Some(alias) = schema.and_then(|s| s.feature_aliases.get(feature)) else {
        return false;
    };
    let any_of = alias
        .any_of
        .as_ref()
        .is_some_and(|names| names.iter().any(|n| host_features.contains(n)));
    let by_family = alias
        .families
        .as_ref()
        .is_some_and(|names| names.iter().any(|n| n == family));
    any_of || by_family
}

fn in_lineage(host_microarch: &str, target: &Microarchitecture) -> bool {
    let host = normalize_target(host_microarch)
        .and_then(|name| known_targets().and_then(|t| t.get(&name)));
    host.is_some_and(|h| h.name() == target.name() || h.decendent_of(target))
}

fn level_name(level: u8) -> String {
    format!("x86_64_v{level}")
}

fn is_x86(arch: &str) -> bool {
    matches!(arch, "x86_64" | "x86" | "i386" | "i486" | "i586" | "i686")
}

// ---------------------------------------------------------------------------------------------
// archspec access

/// Runs an archspec call, turning a panic into None. archspec `expect`s its embedded JSON and
/// indexes maps directly; neither should fail, but a panic here would abort a container start.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            log::warn!("archspec panicked while {what}");
            None
        }
    }
}

/// A named target as a host: its archspec name and every feature it has, for verdicts
/// "as if on a haswell node" (`--host-target`). None for names archspec does not know.
pub fn target_as_host(name: &str) -> Option<(String, BTreeSet<String>)> {
    let name = normalize_target(name)?;
    let target = known_targets()?.get(&name)?;
    Some((name, target.all_features().into_iter().collect()))
}

fn known_targets() -> Option<&'static HashMap<String, Arc<Microarchitecture>>> {
    guarded("loading its targets", Microarchitecture::known_targets)
}

/// Each generic level with its full feature list, built once. Stops at the first level archspec
/// lacks so that a missing list can never count as satisfied.
fn level_requirements() -> &'static [(u8, Vec<String>)] {
    static LEVELS: OnceLock<Vec<(u8, Vec<String>)>> = OnceLock::new();
    LEVELS.get_or_init(|| {
        let Some(targets) = known_targets() else {
            return Vec::new();
        };
        LEVEL_TARGETS
            .iter()
            .map_while(|(n, name)| {
                Some((*n, targets.get(*name)?.all_features().into_iter().collect()))
            })
            .collect()
    })
}

/// archspec's view of the host, reduced to what we report.
struct Detected {
    name: String,
    vendor: String,
    /// Read only by the cross-checks, which exist on x86_64 and aarch64.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64", test)),
        allow(dead_code)
    )]
    features: BTreeSet<String>,
}

fn detect(arch: &str, notes: &mut Vec<String>) -> Detected {
    match guarded("detecting the host", archspec::cpu::host) {
        Some(Ok(m)) => Detected {
            name: m.name().to_string(),
            vendor: m.vendor().to_string(),
            features: m.all_features().into_iter().collect(),
        },
        outcome => {
            let why = if outcome.is_some() {
                "could not detect"
            } else {
                "panicked detecting"
            };
            notes.push(format!(
                "archspec {why} the host microarchitecture; using generic {arch}"
            ));
            Detected {
                name: arch.to_string(),
                vendor: "generic".to_string(),
                features: BTreeSet::new(),
            }
        }
    }
}

/// The CPU's vendor in archspec's spelling, for when archspec only matched a generic target.
fn cpu_vendor(cpuinfo: &BTreeMap<String, String>, arch: &str) -> String {
    let vendor = if arch == "aarch64" {
        cpuinfo.get("CPU implementer").and_then(|code| {
            let schema = guarded(
                "loading its schema",
                archspec::schema::MicroarchitecturesSchema::schema,
            )?;
            schema.conversions.arm_vendors.get(code).cloned()
        })
    } else {
        cpuinfo.get("vendor_id").cloned()
    };
    vendor.unwrap_or_else(|| "generic".to_string())
}

// ---------------------------------------------------------------------------------------------
// uname and /proc/cpuinfo

/// `uname -m`, falling back to the compile-time architecture if uname fails.
fn machine() -> String {
    // SAFETY: utsname is plain data, so all-zero bytes are a valid value for uname to fill.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return std::env::consts::ARCH.to_string();
    }
    // take_while instead of CStr: no reliance on the kernel's NUL terminator.
    let bytes: Vec<u8> = uts
        .machine
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    match String::from_utf8_lossy(&bytes).into_owned() {
        m if m.is_empty() => std::env::consts::ARCH.to_string(),
        m => m,
    }
}

/// The "key: value" lines of the first processor block, as archspec reads them.
fn first_processor_cpuinfo() -> Option<BTreeMap<String, String>> {
    let file = std::fs::File::open("/proc/cpuinfo").ok()?;
    Some(parse_first_processor(BufReader::new(file)))
}

/// Parses up to the blank line that ends the first block: the flags of the other processors
/// are the same and reading them all costs time on many-core hosts.
fn parse_first_processor(reader: impl BufRead) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    // Bytes, not lines(): a read error ends the loop instead of repeating forever.
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        match line.split_once(':') {
            Some((key, value)) => {
                fields.insert(key.trim().to_string(), value.trim().to_string());
            }
            None if !fields.is_empty() => break,
            None => {}
        }
    }
    fields
}

fn cpuinfo_features(cpuinfo: &BTreeMap<String, String>, arch: &str) -> BTreeSet<String> {
    let key = if arch == "aarch64" {
        "Features"
    } else {
        "flags"
    };
    let line = cpuinfo.get(key).map(String::as_str).unwrap_or_default();
    line.split_ascii_whitespace().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// cross-check dispatch

#[cfg(target_arch = "x86_64")]
fn native_cross_check(_arch: &str, features: &BTreeSet<String>, detected: &Detected) -> CrossCheck {
    let cpuid = raw_cpuid::CpuId::new();
    let view = cpuid_view(&cpuid, native_xcr0(&cpuid));
    compare_cpuid(features, &view, detected)
}

#[cfg(target_arch = "aarch64")]
fn native_cross_check(_arch: &str, features: &BTreeSet<String>, detected: &Detected) -> CrossCheck {
    // SAFETY: getauxval only reads the process's auxiliary vector; 0 means "absent".
    let (hwcap, hwcap2) = unsafe {
        (
            libc::getauxval(libc::AT_HWCAP),
            libc::getauxval(libc::AT_HWCAP2),
        )
    };
    compare_hwcap(features, &hwcap_features(hwcap, hwcap2), detected)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn native_cross_check(
    arch: &str,
    _features: &BTreeSet<String>,
    _detected: &Detected,
) -> CrossCheck {
    // Without a second source nothing confirms archspec, so do not claim agreement.
    CrossCheck {
        source: "none".to_string(),
        agrees: false,
        notes: vec![format!(
            "no independent feature source on {arch}; archspec's answer is unchecked"
        )],
    }
}

// ---------------------------------------------------------------------------------------------
// x86_64: CPUID and XCR0

/// The features cross-checked through CPUID: every feature of archspec's generic levels, plus
/// SSE3 ("pni").
#[cfg(any(target_arch = "x86_64", test))]
#[rustfmt::skip]
const CPUID_FEATURES: [&str; 24] = [
    "abm", "avx", "avx2", "avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl", "bmi1", "bmi2",
    "cx16", "f16c", "fma", "lahf_lm", "mmx", "movbe", "pni", "popcnt", "sse", "sse2",
    "sse4_1", "sse4_2", "ssse3", "xsave",
];

/// The register state the OS must enable (in XCR0) before a feature's instructions work.
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Debug, Clone, Copy, PartialEq)]
enum OsState {
    /// SSE-era features need nothing beyond what every x86_64 OS enables.
    Sse,
    /// VEX-encoded instructions need SSE and AVX state (XCR0 bits 1 and 2).
    Ymm,
    /// EVEX-encoded instructions also need opmask, ZMM_Hi256 and Hi16_ZMM state (bits 5-7).
    Zmm,
}

#[cfg(any(target_arch = "x86_64", test))]
impl OsState {
    fn enabled(self, xcr0: Option<u64>) -> bool {
        const YMM: u64 = 0b110;
        const ZMM: u64 = 0b1110_0000;
        let has = |mask: u64| xcr0.is_some_and(|x| x & mask == mask);
        match self {
            OsState::Sse => true,
            OsState::Ymm => has(YMM),
            OsState::Zmm => has(YMM | ZMM),
        }
    }

    fn label(self) -> &'static str {
        match self {
            OsState::Sse => "SSE",
            OsState::Ymm => "YMM",
            OsState::Zmm => "ZMM",
        }
    }
}

/// CPUID's answer in cpuinfo spelling: usable features, and those the CPU has but the OS has
/// not enabled (with the missing state).
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Debug, Default)]
struct CpuidView {
    present: BTreeSet<String>,
    disabled: BTreeMap<String, OsState>,
}

#[cfg(any(target_arch = "x86_64", test))]
fn cpuid_view<R: raw_cpuid::CpuIdReader>(
    cpuid: &raw_cpuid::CpuId<R>,
    xcr0: Option<u64>,
) -> CpuidView {
    let mut view = CpuidView::default();
    for (name, has, state) in cpuid_bits(cpuid) {
        match (has, state.enabled(xcr0)) {
            (true, true) => {
                view.present.insert(name.to_string());
            }
            (true, false) => {
                view.disabled.insert(name.to_string(), state);
            }
            (false, _) => {}
        }
    }
    view
}

/// Each cross-checked feature: whether the CPU reports it and the OS state it needs.
#[cfg(any(target_arch = "x86_64", test))]
fn cpuid_bits<R: raw_cpuid::CpuIdReader>(
    cpuid: &raw_cpuid::CpuId<R>,
) -> Vec<(&'static str, bool, OsState)> {
    use OsState::{Sse, Ymm, Zmm};
    let (l1, l7, ext) = (
        cpuid.get_feature_info(),
        cpuid.get_extended_feature_info(),
        cpuid.get_extended_processor_and_feature_identifiers(),
    );
    let (l1, l7, ext) = (l1.as_ref(), l7.as_ref(), ext.as_ref());
    vec![
        ("mmx", l1.is_some_and(|f| f.has_mmx()), Sse),
        ("sse", l1.is_some_and(|f| f.has_sse()), Sse),
        ("sse2", l1.is_some_and(|f| f.has_sse2()), Sse),
        ("pni", l1.is_some_and(|f| f.has_sse3()), Sse),
        ("ssse3", l1.is_some_and(|f| f.has_ssse3()), Sse),
        ("cx16", l1.is_some_and(|f| f.has_cmpxchg16b()), Sse),
        ("sse4_1", l1.is_some_and(|f| f.has_sse41()), Sse),
        ("sse4_2", l1.is_some_and(|f| f.has_sse42()), Sse),
        ("movbe", l1.is_some_and(|f| f.has_movbe()), Sse),
        ("popcnt", l1.is_some_and(|f| f.has_popcnt()), Sse),
        ("xsave", l1.is_some_and(|f| f.has_xsave()), Sse),
        ("lahf_lm", ext.is_some_and(|f| f.has_lahf_sahf()), Sse),
        ("abm", ext.is_some_and(|f| f.has_lzcnt()), Sse),
        ("bmi1", l7.is_some_and(|f| f.has_bmi1()), Sse),
        ("bmi2", l7.is_some_and(|f| f.has_bmi2()), Sse),
        // F16C and FMA are VEX-encoded, so they need AVX state like AVX itself.
        ("avx", l1.is_some_and(|f| f.has_avx()), Ymm),
        ("f16c", l1.is_some_and(|f| f.has_f16c()), Ymm),
        ("fma", l1.is_some_and(|f| f.has_fma()), Ymm),
        ("avx2", l7.is_some_and(|f| f.has_avx2()), Ymm),
        ("avx512f", l7.is_some_and(|f| f.has_avx512f()), Zmm),
        ("avx512dq", l7.is_some_and(|f| f.has_avx512dq()), Zmm),
        ("avx512cd", l7.is_some_and(|f| f.has_avx512cd()), Zmm),
        ("avx512bw", l7.is_some_and(|f| f.has_avx512bw()), Zmm),
        ("avx512vl", l7.is_some_and(|f| f.has_avx512vl()), Zmm),
    ]
}

/// XCR0, or None when the OS has not set CR4.OSXSAVE (xgetbv would fault).
#[cfg(target_arch = "x86_64")]
fn native_xcr0(cpuid: &raw_cpuid::CpuId<raw_cpuid::CpuIdReaderNative>) -> Option<u64> {
    let osxsave = cpuid.get_feature_info().is_some_and(|f| f.has_oxsave());
    // SAFETY: CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE, which makes xgetbv legal; the xsave
    // target feature it needs is implied by that bit.
    osxsave.then(|| unsafe { read_xcr0() })
}

/// Must only be called when CPUID reports OSXSAVE.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn read_xcr0() -> u64 {
    // SAFETY: the caller checked OSXSAVE; XCR0 is register 0.
    unsafe { core::arch::x86_64::_xgetbv(0) }
}

/// Compares cpuinfo's flags with CPUID's, feature by feature, then by level.
#[cfg(any(target_arch = "x86_64", test))]
fn compare_cpuid(cpuinfo: &BTreeSet<String>, view: &CpuidView, detected: &Detected) -> CrossCheck {
    let mut notes: Vec<String> = CPUID_FEATURES
        .iter()
        .filter_map(|name| feature_mismatch(name, cpuinfo, view))
        .collect();
    let (from_cpuinfo, from_cpuid) = (x86_level(cpuinfo), x86_level(&view.present));
    if from_cpuinfo != from_cpuid {
        notes.push(format!(
            "cpuinfo gives {} but cpuid gives {}",
            level_name(from_cpuinfo),
            level_name(from_cpuid)
        ));
    }
    let lacking = lacking(detected, |f| CPUID_FEATURES.contains(&f), &view.present);
    if let Some(note) = lacking_note(detected, &lacking, "cpuid") {
        notes.push(note);
    }
    CrossCheck {
        source: "cpuid".to_string(),
        agrees: from_cpuinfo == from_cpuid && lacking.is_empty(),
        notes,
    }
}

#[cfg(any(target_arch = "x86_64", test))]
fn feature_mismatch(name: &str, cpuinfo: &BTreeSet<String>, view: &CpuidView) -> Option<String> {
    match (cpuinfo.contains(name), view.present.contains(name)) {
        (true, false) => Some(match view.disabled.get(name) {
            Some(state) => format!(
                "cpuinfo lists {name} but XCR0 does not enable {} state",
                state.label()
            ),
            None => format!("cpuinfo lists {name} but cpuid does not report it"),
        }),
        (false, true) => Some(format!("cpuid reports {name} but cpuinfo does not list it")),
        _ => None,
    }
}

/// The detected microarchitecture's features that the second source covers but lacks.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", test))]
fn lacking(
    detected: &Detected,
    covered: impl Fn(&str) -> bool,
    present: &BTreeSet<String>,
) -> Vec<String> {
    detected
        .features
        .iter()
        .filter(|f| covered(f) && !present.contains(*f))
        .cloned()
        .collect()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", test))]
fn lacking_note(detected: &Detected, lacking: &[String], source: &str) -> Option<String> {
    (!lacking.is_empty()).then(|| {
        format!(
            "archspec detected {} but {source} lacks {}",
            detected.name,
            lacking.join(", ")
        )
    })
}

// ---------------------------------------------------------------------------------------------
// aarch64: AT_HWCAP / AT_HWCAP2

/// AT_HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h) with their /proc/cpuinfo names.
#[cfg(any(target_arch = "aarch64", test))]
#[rustfmt::skip]
const HWCAP_NAMES: [(u32, &str); 32] = [
    (0, "fp"), (1, "asimd"), (2, "evtstrm"), (3, "aes"), (4, "pmull"), (5, "sha1"),
    (6, "sha2"), (7, "crc32"), (8, "atomics"), (9, "fphp"), (10, "asimdhp"), (11, "cpuid"),
    (12, "asimdrdm"), (13, "jscvt"), (14, "fcma"), (15, "lrcpc"), (16, "dcpop"), (17, "sha3"),
    (18, "sm3"), (19, "sm4"), (20, "asimddp"), (21, "sha512"), (22, "sve"), (23, "asimdfhm"),
    (24, "dit"), (25, "uscat"), (26, "ilrcpc"), (27, "flagm"), (28, "ssbs"), (29, "sb"),
    (30, "paca"), (31, "pacg"),
];

/// AT_HWCAP2 bits with their /proc/cpuinfo names: the ones up to SME, plus SME2 (archspec
/// uses it). Unlisted bits are ignored rather than guessed.
#[cfg(any(target_arch = "aarch64", test))]
#[rustfmt::skip]
const HWCAP2_NAMES: [(u32, &str); 25] = [
    (0, "dcpodp"), (1, "sve2"), (2, "sveaes"), (3, "svepmull"), (4, "svebitperm"),
    (5, "svesha3"), (6, "svesm4"), (7, "flagm2"), (8, "frint"), (9, "svei8mm"),
    (10, "svef32mm"), (11, "svef64mm"), (12, "svebf16"), (13, "i8mm"), (14, "bf16"),
    (15, "dgh"), (16, "rng"), (17, "bti"), (18, "mte"), (19, "ecv"),
    (20, "afp"), (21, "rpres"), (22, "mte3"), (23, "sme"), (37, "sme2"),
];

#[cfg(any(target_arch = "aarch64", test))]
fn hwcap_features(hwcap: u64, hwcap2: u64) -> BTreeSet<String> {
    let set = |word: u64, table: &[(u32, &str)]| -> Vec<String> {
        table
            .iter()
            .filter(|(bit, _)| word >> bit & 1 == 1)
            .map(|(_, n)| n.to_string())
            .collect()
    };
    set(hwcap, &HWCAP_NAMES)
        .into_iter()
        .chain(set(hwcap2, &HWCAP2_NAMES))
        .collect()
}

#[cfg(any(target_arch = "aarch64", test))]
fn hwcap_covers(name: &str) -> bool {
    HWCAP_NAMES
        .iter()
        .chain(HWCAP2_NAMES.iter())
        .any(|(_, n)| *n == name)
}

/// Compares cpuinfo's Features with the HWCAP words; the kernel derives one from the other, so
/// any difference is worth a note.
#[cfg(any(target_arch = "aarch64", test))]
fn compare_hwcap(
    cpuinfo: &BTreeSet<String>,
    hwcaps: &BTreeSet<String>,
    detected: &Detected,
) -> CrossCheck {
    let mut notes = Vec::new();
    for name in cpuinfo
        .iter()
        .filter(|f| hwcap_covers(f) && !hwcaps.contains(*f))
    {
        notes.push(format!("cpuinfo lists {name} but hwcap does not"));
    }
    for name in hwcaps.iter().filter(|f| !cpuinfo.contains(*f)) {
        notes.push(format!("hwcap reports {name} but cpuinfo does not list it"));
    }
    let flags_agree = notes.is_empty();
    let lacking = lacking(detected, hwcap_covers, hwcaps);
    if let Some(note) = lacking_note(detected, &lacking, "hwcap") {
        notes.push(note);
    }
    CrossCheck {
        source: "hwcap".to_string(),
        agrees: flags_agree && lacking.is_empty(),
        notes,
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn target_features(name: &str) -> BTreeSet<String> {
        known_targets().unwrap()[name]
            .all_features()
            .into_iter()
            .collect()
    }

    const V2: &[&str] = &[
        "cx16", "lahf_lm", "mmx", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "popcnt",
    ];
    const V3_EXTRA: &[&str] = &[
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
    ];
    const V4_EXTRA: &[&str] = &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"];

    fn levels(parts: &[&[&str]]) -> BTreeSet<String> {
        parts
            .iter()
            .flat_map(|p| p.iter())
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn x86_level_table() {
        let v2_without_popcnt: Vec<&str> = V2.iter().copied().filter(|f| *f != "popcnt").collect();
        let v4_without_vl: Vec<&str> = V4_EXTRA
            .iter()
            .copied()
            .filter(|f| *f != "avx512vl")
            .collect();
        let cases: Vec<(&str, BTreeSet<String>, u8)> = vec![
            ("empty", set(&[]), 1),
            (
                "baseline only",
                set(&["fpu", "cmov", "cx8", "mmx", "sse", "sse2"]),
                1,
            ),
            ("v2 missing popcnt", set(&v2_without_popcnt), 1),
            ("exact v2", levels(&[V2]), 2),
            ("v2 plus avx only", levels(&[V2, &["avx", "avx2"]]), 2),
            ("exact v3", levels(&[V2, V3_EXTRA]), 3),
            (
                "v4 missing avx512vl",
                levels(&[V2, V3_EXTRA, &v4_without_vl]),
                3,
            ),
            ("exact v4", levels(&[V2, V3_EXTRA, V4_EXTRA]), 4),
            // AVX-512 without the v3 set cannot reach v4: levels are cumulative.
            ("avx512 without v3", levels(&[V2, V4_EXTRA]), 2),
            ("haswell", target_features("haswell"), 3),
            ("zen4", target_features("zen4"), 4),
        ];
        for (label, features, want) in cases {
            assert_eq!(x86_level(&features), want, "{label}");
        }
    }

    #[test]
    fn level_lists_come_from_archspec() {
        let lists = level_requirements();
        assert_eq!(
            lists.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(
            lists[0].1.iter().cloned().collect::<BTreeSet<_>>(),
            levels(&[V2])
        );
        assert_eq!(
            lists[2].1.iter().cloned().collect::<BTreeSet<_>>(),
            levels(&[V2, V3_EXTRA, V4_EXTRA])
        );
    }

    #[test]
    fn normalize_target_table() {
        let cases: [(&str, Option<&str>); 16] = [
            ("x86-64-v3", Some("x86_64_v3")),
            ("x86_64_v3", Some("x86_64_v3")),
            ("X86-64-V4", Some("x86_64_v4")),
            ("x86-64-v2", Some("x86_64_v2")),
            ("x86-64", Some("x86_64")),
            ("x86-64-v1", Some("x86_64")),
            ("x86_64", Some("x86_64")),
            ("amd64", Some("x86_64")),
            ("arm64", Some("aarch64")),
            ("aarch64", Some("aarch64")),
            ("zen4", Some("zen4")),
            (" skylake_avx512 ", Some("skylake_avx512")),
            ("neoverse-n1", Some("neoverse_n1")),
            ("x86-64-v5", None),
            ("pentium9000", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_target(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn target_supported_table() {
        // Sorted, as target_supported returns them.
        let mut v4 = V4_EXTRA.to_vec();
        v4.sort_unstable();
        let v4_missing = || {
            Err(TargetCheck::Missing(
                v4.iter().map(|s| s.to_string()).collect(),
            ))
        };
        let cases = vec![
            (
                "x86_64_v4",
                target_features("haswell"),
                "haswell",
                v4_missing(),
            ),
            (
                "x86-64-v4",
                target_features("haswell"),
                "haswell",
                v4_missing(),
            ),
            (
                "x86_64_v4",
                target_features("skylake_avx512"),
                "skylake_avx512",
                Ok(()),
            ),
            ("x86_64_v3", target_features("haswell"), "haswell", Ok(())),
            ("haswell", target_features("haswell"), "haswell", Ok(())),
            ("x86_64", set(&[]), "x86_64", Ok(())),
            ("zen4", target_features("zen4"), "zen4", Ok(())),
            (
                "aarch64",
                target_features("neoverse_n1"),
                "neoverse_n1",
                Ok(()),
            ),
            // A sibling lineage: refused, listing what the other vendor's target needs.
            (
                "haswell",
                target_features("zen4"),
                "zen4",
                Err(TargetCheck::Missing(vec!["rdrand".into()])),
            ),
            // Every feature present but not in the lineage (an AMD VM that archspec can only
            // call x86_64_v4): refused with nothing missing.
            (
                "zen2",
                target_features("zen4"),
                "x86_64_v4",
                Err(TargetCheck::Missing(vec![])),
            ),
            // "sse3" (inherited from nocona) is satisfied by the kernel's "pni" or by "ssse3".
            (
                "nocona",
                set(&["mmx", "sse", "sse2", "pni"]),
                "nocona",
                Ok(()),
            ),
            (
                "nocona",
                set(&["mmx", "sse", "sse2", "ssse3"]),
                "nocona",
                Ok(()),
            ),
            (
                "nocona",
                set(&["mmx", "sse", "sse2"]),
                "nocona",
                Err(TargetCheck::Missing(vec!["sse3".into()])),
            ),
            // Right lineage but inconsistent features: the feature check still refuses.
            (
                "x86_64_v4",
                target_features("haswell"),
                "skylake_avx512",
                v4_missing(),
            ),
            // An unknown host name is in no lineage.
            (
                "x86_64",
                set(&[]),
                "nonsense",
                Err(TargetCheck::Missing(vec![])),
            ),
            (
                "pentium9000",
                set(&[]),
                "zen4",
                Err(TargetCheck::Unknown("pentium9000".into())),
            ),
            (
                "",
                set(&[]),
                "zen4",
                Err(TargetCheck::Unknown(String::new())),
            ),
        ];
        for (target, features, host, want) in cases {
            assert_eq!(
                target_supported(target, &features, host),
                want,
                "{target} on {host}"
            );
        }
    }

    #[test]
    fn target_check_messages() {
        assert_eq!(
            TargetCheck::Unknown("p9".into()).to_string(),
            "unknown cpu target \"p9\""
        );
        assert_eq!(
            TargetCheck::Missing(vec!["avx2".into(), "fma".into()]).to_string(),
            "host cpu lacks avx2, fma"
        );
        assert_eq!(
            TargetCheck::Missing(vec![]).to_string(),
            "host is not this target or a descendant of it in archspec"
        );
    }

    #[test]
    fn parse_first_processor_stops_at_blank_line() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx\n\nprocessor\t: 1\nflags\t\t: other\n";
        let fields = parse_first_processor(text.as_bytes());
        assert_eq!(
            fields.get("flags").map(String::as_str),
            Some("fpu sse2 avx")
        );
        assert_eq!(fields.get("processor").map(String::as_str), Some("0"));
        assert_eq!(
            cpuinfo_features(&fields, "x86_64"),
            set(&["avx", "fpu", "sse2"])
        );
        // Leading blank lines and invalid UTF-8 must not end or break parsing.
        let fields =
            parse_first_processor(&b"\n\nFeatures\t: fp asimd\xff\nCPU implementer\t: 0x41\n"[..]);
        assert_eq!(
            cpuinfo_features(&fields, "aarch64"),
            set(&["asimd\u{fffd}", "fp"])
        );
        assert_eq!(cpu_vendor(&fields, "aarch64"), "ARM");
    }

    // ---- fake CPUID -------------------------------------------------------------------------

    use raw_cpuid::{CpuId, CpuIdResult};

    /// Registers for leaves 0, 1, 7 and 0x8000_000{0,1}; everything else reads as zero.
    #[derive(Clone, Copy, Default)]
    struct FakeCpu {
        l1_ecx: u32,
        l1_edx: u32,
        l7_ebx: u32,
        ext_ecx: u32,
    }

    fn bits(list: &[u32]) -> u32 {
        list.iter().fold(0, |acc, b| acc | 1 << b)
    }

    impl FakeCpu {
        /// A CPU with every v4 feature; OSXSAVE set.
        fn v4() -> Self {
            FakeCpu {
                // sse3 ssse3 fma cx16 sse4.1 sse4.2 movbe popcnt xsave osxsave avx f16c
                l1_ecx: bits(&[0, 9, 12, 13, 19, 20, 22, 23, 26, 27, 28, 29]),
                // mmx sse sse2
                l1_edx: bits(&[23, 25, 26]),
                // bmi1 avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl
                l7_ebx: bits(&[3, 5, 8, 16, 17, 28, 30, 31]),
                // lahf_lm lzcnt
                ext_ecx: bits(&[0, 5]),
            }
        }

        fn cpuid(self) -> CpuId<impl raw_cpuid::CpuIdReader> {
            CpuId::with_cpuid_reader(move |leaf: u32, _sub: u32| {
                let r = |eax, ebx, ecx, edx| CpuIdResult { eax, ebx, ecx, edx };
                match leaf {
                    // max leaf 7, "GenuineIntel" in ebx/edx/ecx
                    0 => r(7, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
                    1 => r(0, 0, self.l1_ecx, self.l1_edx),
                    7 => r(0, self.l7_ebx, 0, 0),
                    0x8000_0000 => r(0x8000_0001, 0, 0, 0),
                    0x8000_0001 => r(0, 0, self.ext_ecx, 0),
                    _ => r(0, 0, 0, 0),
                }
            })
        }
    }

    const XCR0_AVX512: u64 = 0b1110_0111;
    const XCR0_AVX: u64 = 0b111;

    fn detected(name: &str) -> Detected {
        Detected {
            name: name.into(),
            vendor: "generic".into(),
            features: target_features(name),
        }
    }

    #[test]
    fn cpuid_view_honours_os_state() {
        let all = levels(&[V2, V3_EXTRA, V4_EXTRA, &["pni"]]);
        let cases: [(&str, Option<u64>, u8, usize); 6] = [
            ("zmm enabled", Some(XCR0_AVX512), 4, 0),
            // Each of opmask, ZMM_Hi256 and Hi16_ZMM is needed for AVX-512.
            ("no hi16_zmm", Some(XCR0_AVX512 & !(1 << 7)), 3, 5),
            ("no opmask", Some(XCR0_AVX512 & !(1 << 5)), 3, 5),
            ("ymm only", Some(XCR0_AVX), 3, 5),
            ("sse only", Some(0b11), 2, 9),
            ("osxsave clear", None, 2, 9),
        ];
        for (label, xcr0, level, disabled) in cases {
            let view = cpuid_view(&FakeCpu::v4().cpuid(), xcr0);
            assert_eq!(x86_level(&view.present), level, "{label}");
            assert_eq!(view.disabled.len(), disabled, "{label}");
            let seen: BTreeSet<String> = view
                .present
                .iter()
                .chain(view.disabled.keys())
                .cloned()
                .collect();
            assert_eq!(seen, all, "{label}");
        }
    }

    #[test]
    fn cpuid_reads_each_bit_as_its_feature() {
        // Drop one CPUID bit at a time: exactly that cpuinfo name must disappear.
        let full = FakeCpu::v4();
        let drops: [(&str, FakeCpu); 5] = [
            (
                "pni",
                FakeCpu {
                    l1_ecx: full.l1_ecx & !1,
                    ..full
                },
            ),
            (
                "cx16",
                FakeCpu {
                    l1_ecx: full.l1_ecx & !(1 << 13),
                    ..full
                },
            ),
            (
                "abm",
                FakeCpu {
                    ext_ecx: full.ext_ecx & !(1 << 5),
                    ..full
                },
            ),
            (
                "lahf_lm",
                FakeCpu {
                    ext_ecx: full.ext_ecx & !1,
                    ..full
                },
            ),
            (
                "avx512vl",
                FakeCpu {
                    l7_ebx: full.l7_ebx & !(1 << 31),
                    ..full
                },
            ),
        ];
        let all = cpuid_view(&full.cpuid(), Some(XCR0_AVX512)).present;
        for (name, cpu) in drops {
            let present = cpuid_view(&cpu.cpuid(), Some(XCR0_AVX512)).present;
            let gone: Vec<&String> = all.difference(&present).collect();
            assert_eq!(gone, vec![name], "{name}");
        }
    }

    #[test]
    fn compare_cpuid_table() {
        let v4_flags = levels(&[V2, V3_EXTRA, V4_EXTRA, &["pni", "fpu"]]);
        let mut no_pni = v4_flags.clone();
        no_pni.remove("pni");
        let cases = vec![
            (
                "agreeing v4",
                v4_flags.clone(),
                XCR0_AVX512,
                "skylake_avx512",
                true,
                vec![],
            ),
            (
                "zmm state off",
                v4_flags.clone(),
                XCR0_AVX,
                "skylake_avx512",
                false,
                vec![
                    "cpuinfo lists avx512bw but XCR0 does not enable ZMM state",
                    "cpuinfo lists avx512cd but XCR0 does not enable ZMM state",
                    "cpuinfo lists avx512dq but XCR0 does not enable ZMM state",
                    "cpuinfo lists avx512f but XCR0 does not enable ZMM state",
                    "cpuinfo lists avx512vl but XCR0 does not enable ZMM state",
                    "cpuinfo gives x86_64_v4 but cpuid gives x86_64_v3",
                    "archspec detected skylake_avx512 but cpuid lacks avx512bw, avx512cd, avx512dq, avx512f, avx512vl",
                ],
            ),
            (
                // Same level both ways, so a stray flag is noted but does not break agreement.
                "cpuinfo hides one flag",
                no_pni,
                XCR0_AVX512,
                "haswell",
                true,
                vec!["cpuid reports pni but cpuinfo does not list it"],
            ),
        ];
        for (label, flags, xcr0, name, agrees, notes) in cases {
            let view = cpuid_view(&FakeCpu::v4().cpuid(), Some(xcr0));
            let check = compare_cpuid(&flags, &view, &detected(name));
            assert_eq!(check.source, "cpuid", "{label}");
            assert_eq!(check.notes, notes, "{label}");
            assert_eq!(check.agrees, agrees, "{label}");
        }
    }

    #[test]
    fn hwcap_features_table() {
        let cases: [(u64, u64, &[&str]); 4] = [
            (0, 0, &[]),
            (0b11, 0, &["asimd", "fp"]),
            (1 << 31, (1 << 1) | (1 << 37), &["pacg", "sme2", "sve2"]),
            // Bits outside the tables are ignored.
            (1 << 40, 1 << 30, &[]),
        ];
        for (hwcap, hwcap2, want) in cases {
            assert_eq!(
                hwcap_features(hwcap, hwcap2),
                set(want),
                "{hwcap:#x} {hwcap2:#x}"
            );
        }
    }

    #[test]
    fn compare_hwcap_table() {
        let n1 = detected("neoverse_n1");
        let n1_flags = target_features("neoverse_n1");
        let mut without_dcpop = n1_flags.clone();
        without_dcpop.remove("dcpop");
        let mut with_unknown = n1_flags.clone();
        with_unknown.insert("notahwcap".into());
        let cases = vec![
            ("same", n1_flags.clone(), n1_flags.clone(), true, vec![]),
            (
                "cpuinfo-only flag ignored when hwcap has no bit for it",
                with_unknown,
                n1_flags.clone(),
                true,
                vec![],
            ),
            (
                "hwcap lacks dcpop",
                n1_flags.clone(),
                without_dcpop.clone(),
                false,
                vec![
                    "cpuinfo lists dcpop but hwcap does not",
                    "archspec detected neoverse_n1 but hwcap lacks dcpop",
                ],
            ),
            (
                "cpuinfo lacks dcpop",
                without_dcpop,
                n1_flags,
                false,
                vec!["hwcap reports dcpop but cpuinfo does not list it"],
            ),
        ];
        for (label, cpuinfo, hw, agrees, notes) in cases {
            let check = compare_hwcap(&cpuinfo, &hw, &n1);
            assert_eq!(check.source, "hwcap", "{label}");
            assert_eq!(check.notes, notes, "{label}");
            assert_eq!(check.agrees, agrees, "{label}");
        }
    }

    #[test]
    fn hwcap_tables_cover_archspec_aarch64_features() {
        // Every aarch64 feature archspec uses must be checkable, else a missing bit goes unseen.
        let targets = known_targets().unwrap();
        let root = &targets["aarch64"];
        let uncovered: BTreeSet<String> = targets
            .values()
            .filter(|t| t.decendent_of(root))
            .flat_map(|t| t.all_features())
            .filter(|f| !hwcap_covers(f))
            .collect();
        assert_eq!(uncovered, BTreeSet::new());
        // A name or bit listed twice means a typo hid another feature.
        for table in [&HWCAP_NAMES[..], &HWCAP2_NAMES[..]] {
            let names: BTreeSet<&str> = table.iter().map(|(_, n)| *n).collect();
            let bits: BTreeSet<u32> = table.iter().map(|(b, _)| *b).collect();
            assert_eq!((names.len(), bits.len()), (table.len(), table.len()));
        }
    }
}
