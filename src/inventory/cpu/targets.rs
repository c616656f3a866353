//! archspec access: target names, ancestry and feature sets.

#[allow(unused_imports)]
use super::*;

/// Runs an archspec call, turning a panic into None. archspec `expect`s its embedded JSON and
/// indexes maps directly; neither should fail, but a panic here would abort a container start.
pub(super) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            log::warn!("archspec panicked while {what}");
            None
        }
    }
}

/// A named target as a host: its name and the code-generation features it has, for
/// verdicts "as if on a haswell node" (`--host-target`). archspec names first (normalised),
/// then gcc's `-march=` names (`icelake-server`, `znver5`). None for names neither knows.
pub fn target_as_host(name: &str) -> Option<(String, BTreeSet<String>)> {
    if let Some(archspec) = normalize_target(name) {
        return Some((archspec.clone(), archspec_features(&archspec)?));
    }
    let name = name.trim();
    Some((name.to_string(), gcc_march_features(name)?))
}

/// Every archspec target of the architecture's family whose code-generation features
/// ([`target_features`]) `features` has all of, whatever its vendor (a `haswell` binary
/// runs on an AMD CPU with Haswell's features), sorted; the bare family name aside.
pub fn runnable_targets(arch: &str, features: &BTreeSet<String>) -> Vec<String> {
    let Some(targets) = known_targets() else {
        return Vec::new();
    };
    let Some(root) = targets.get(arch) else {
        return Vec::new();
    };
    let mut out: Vec<String> = targets
        .values()
        .filter(|t| t.decendent_of(root))
        .filter(|t| {
            target_features(t.name()).is_some_and(|f| missing_features(&f, features).is_empty())
        })
        .map(|t| t.name().to_string())
        .collect();
    out.sort();
    out
}

/// The archspec target a feature set makes a CPU of `vendor`, judged on code-generation
/// features only (the ones CPUID is read for): among the targets of the architecture's
/// family (vendor's or generic) whose features ([`target_features`]) it has all of, the
/// one with the most ancestors, then the most features, as archspec chooses.
pub(super) fn best_target(arch: &str, features: &BTreeSet<String>, vendor: &str) -> Option<String> {
    let targets = known_targets()?;
    let root = targets.get(arch)?;
    targets
        .values()
        .filter(|t| t.name() == root.name() || t.decendent_of(root))
        .filter(|t| t.vendor() == vendor || t.vendor() == "generic")
        .filter(|t| {
            target_features(t.name()).is_some_and(|f| missing_features(&f, features).is_empty())
        })
        .max_by_key(|t| {
            (
                t.ancestors().len(),
                t.all_features().len(),
                std::cmp::Reverse(t.name().to_string()),
            )
        })
        .map(|t| t.name().to_string())
}

pub(super) fn known_targets() -> Option<&'static HashMap<String, Arc<Microarchitecture>>> {
    guarded("loading its targets", Microarchitecture::known_targets)
}

/// Each generic level with its full feature list, built once. Stops at the first level archspec
/// lacks so that a missing list can never count as satisfied.
pub(super) fn level_requirements() -> &'static [(u8, Vec<String>)] {
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
pub(super) struct Detected {
    pub(super) name: String,
    pub(super) vendor: String,
    /// Read only by the cross-checks, which exist on x86_64 and aarch64.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64", test)),
        allow(dead_code)
    )]
    pub(super) features: BTreeSet<String>,
}

pub(super) fn detect(arch: &str, notes: &mut Vec<String>) -> Detected {
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
pub(super) fn cpu_vendor(cpuinfo: &BTreeMap<String, String>, arch: &str) -> String {
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
