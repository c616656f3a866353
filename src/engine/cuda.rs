//! NVIDIA's CUDA compatibility rules, as data: can a container's CUDA runtime run on the
//! host's driver?
//!
//! Three ways a runtime can work (NVIDIA, "CUDA Compatibility", docs.nvidia.com/deploy/
//! cuda-compatibility):
//! - natively: the driver's own CUDA version (what `nvidia-smi` prints) is at least the
//!   runtime's X.Y;
//! - minor-version compatibility (CUDA 11 and later): a runtime of the same major as the
//!   driver's CUDA runs on a driver at or above that major's minimum, with a limited feature
//!   set (no PTX JIT of newer PTX, for one), hence a warning, not a pass;
//! - forward compatibility: the container ships the `cuda-compat` libraries (a newer
//!   `libcuda.so` built for an older kernel driver). NVIDIA supports this only on data-centre
//!   GPUs, select RTX server SKUs and Jetson, which files cannot tell, hence a warning too.
//!
//! The driver table must grow with each CUDA release: a driver newer than the last row is
//! taken to support that row's CUDA version (a lower bound, never an overclaim).

use std::cmp::Ordering;

use super::facts::Facts;
use super::request::Inject;
use crate::inventory::model::{CudaCompat, CudaRuntime};

/// The minimum Linux `x86_64` driver for each CUDA toolkit X.Y: the lowest driver NVIDIA lists
/// for any release of that X.Y (its GA; 11.0's first listed build is 11.0.1 RC). Source:
/// NVIDIA CUDA Toolkit Release Notes, Table 3 "CUDA Toolkit and Corresponding Driver
/// Versions" (docs.nvidia.com/cuda/cuda-toolkit-release-notes, 13.2 Update 2 edition,
/// checked against the 12.x and 13.0 editions). Later updates of one X.Y list higher drivers
/// (12.2 Update 2: 535.104.05), but the runtime only asks the driver for its X.Y, so the
/// lowest driver of the X.Y is the one that counts. CUDA 12.7 was never released.
const DRIVERS: &[(&str, &str)] = &[
    ("7.0", "346.46"),
    ("7.5", "352.31"),
    ("8.0", "367.48"),
    ("9.0", "384.81"),
    ("9.1", "390.46"),
    ("9.2", "396.26"),
    ("10.0", "410.48"),
    ("10.1", "418.39"),
    ("10.2", "440.33"),
    ("11.0", "450.36.06"),
    ("11.1", "455.23"),
    ("11.2", "460.27.03"),
    ("11.3", "465.19.01"),
    ("11.4", "470.42.01"),
    ("11.5", "495.29.05"),
    ("11.6", "510.39.01"),
    ("11.7", "515.43.04"),
    ("11.8", "520.61.05"),
    ("12.0", "525.60.13"),
    ("12.1", "530.30.02"),
    ("12.2", "535.54.03"),
    ("12.3", "545.23.06"),
    ("12.4", "550.54.14"),
    ("12.5", "555.42.02"),
    ("12.6", "560.28.03"),
    ("12.8", "570.26"),
    ("12.9", "575.51.03"),
    ("13.0", "580.65.06"),
    ("13.1", "590.44.01"),
    ("13.2", "595.45.04"),
];

/// The minimum driver for minor-version compatibility within each CUDA major. Source: the
/// same release notes, Table 2 "CUDA Toolkit and Minimum Required Driver Version for CUDA
/// Minor Version Compatibility" (11.x: >= 450, 12.x: >= 525, 13.x: >= 580) and its notes:
/// 11.x needs the 450.80.02 "Tesla Recommended Driver" (11.0 shipped with an earlier one);
/// the 12.x editions of the table list 525.60.13. The 13.x row says ">= 580"; the first R580
/// driver, 580.65.06, is 13.0's own, so no earlier R580 build exists to allow.
const MINOR_COMPAT: &[(u32, &str)] = &[(11, "450.80.02"), (12, "525.60.13"), (13, "580.65.06")];

/// What the host's driver means for the container's CUDA runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaCheck {
    /// The driver supports the runtime's CUDA version natively.
    Supported,
    /// Same major, driver above that major's minimum: runs with a limited feature set.
    MinorVersionCompatible { driver_cuda: String },
    /// The container's forward-compatibility libraries stand in for a newer driver (only on
    /// data-centre GPUs). `driver_cuda` is None for a driver older than the table.
    ForwardCompatible { driver_cuda: Option<String> },
    /// The runtime cannot run. `driver_cuda` is None when the driver version is unreadable;
    /// `minimum_driver` (the runtime's native minimum) is None when the runtime's version is
    /// unreadable or newer than the table.
    TooOld {
        driver_cuda: Option<String>,
        minimum_driver: Option<String>,
    },
}

/// An NVIDIA driver version, `535.104.05` or `570.26`, compared numerically part by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Driver([u32; 3]);

impl Driver {
    fn parse(text: &str) -> Option<Driver> {
        let parts = numbers(text.trim())?;
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let mut version = [0; 3];
        version[..parts.len()].copy_from_slice(&parts);
        Some(Driver(version))
    }
}

/// A CUDA version reduced to what the driver checks: major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cuda {
    major: u32,
    minor: u32,
}

impl Cuda {
    /// `12.2`, `12.2.140` (a runtime's full version), at most four parts.
    fn parse(text: &str) -> Option<Cuda> {
        let parts = numbers(text.trim())?;
        match parts[..] {
            [major, minor, ..] if parts.len() <= 4 => Some(Cuda { major, minor }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Dot-separated decimal numbers, each made of digits only (no sign, no space, no empty part).
fn numbers(text: &str) -> Option<Vec<u32>> {
    text.split('.')
        .map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        })
        .collect()
}

/// The driver table, parsed. A row that does not parse is skipped (a test keeps every row
/// parsable), so a typo can never panic the hook.
fn table() -> impl DoubleEndedIterator<Item = (Cuda, Driver, &'static str)> {
    DRIVERS
        .iter()
        .filter_map(|(cuda, driver)| Some((Cuda::parse(cuda)?, Driver::parse(driver)?, *driver)))
}

fn native_cuda(driver: Driver) -> Option<Cuda> {
    table()
        .rev()
        .find(|(_, minimum, _)| driver >= *minimum)
        .map(|(cuda, _, _)| cuda)
}

/// Highest CUDA "X.Y" the driver supports natively; None when the driver version is
/// unparsable or older than every row (CUDA 7.0's 346.46).
pub fn driver_cuda_version(driver: &str) -> Option<String> {
    native_cuda(Driver::parse(driver)?).map(|cuda| cuda.to_string())
}

/// The lowest driver that runs `runtime` natively: the first row at or above its X.Y (so a
/// version the table skips, like 12.7, needs the next release's driver).
fn native_minimum(runtime: Cuda) -> Option<&'static str> {
    table()
        .find(|(cuda, _, _)| *cuda >= runtime)
        .map(|(_, _, text)| text)
}

fn minor_compatible(driver: Driver, driver_cuda: Cuda, runtime: Cuda) -> bool {
    if driver_cuda.major != runtime.major {
        return false;
    }
    MINOR_COMPAT
        .iter()
        .find(|(major, _)| *major == runtime.major)
        .and_then(|(_, minimum)| Driver::parse(minimum))
        .is_some_and(|minimum| driver >= minimum)
}

/// `runtime` is the container's CUDA runtime version ("12.2", "12.2.140"); `forward_compat`
/// whether the container ships the cuda-compat forward-compatibility libraries.
pub fn check(driver: &str, runtime: &str, forward_compat: bool) -> CudaCheck {
    let driver = Driver::parse(driver);
    let driver_cuda = driver.and_then(native_cuda);
    let runtime = Cuda::parse(runtime);
    if let (Some(driver), Some(driver_cuda), Some(runtime)) = (driver, driver_cuda, runtime) {
        if driver_cuda.cmp(&runtime) != Ordering::Less {
            return CudaCheck::Supported;
        }
        if minor_compatible(driver, driver_cuda, runtime) {
            return CudaCheck::MinorVersionCompatible {
                driver_cuda: driver_cuda.to_string(),
            };
        }
    }
    let driver_cuda = driver_cuda.map(|cuda| cuda.to_string());
    // A runtime whose version is unknown still benefits from forward compatibility only if
    // a driver is there at all.
    if forward_compat && driver.is_some() {
        return CudaCheck::ForwardCompatible { driver_cuda };
    }
    CudaCheck::TooOld {
        driver_cuda,
        minimum_driver: runtime.and_then(native_minimum).map(str::to_string),
    }
}

/// One condition of an `NVIDIA_REQUIRE_*` expression: `cuda>=12.4`, `brand=tesla`,
/// `driver<471`, `arch=8.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: String,
    pub op: &'static str,
    pub value: String,
}

/// `NVIDIA_REQUIRE_CUDA`, as NVIDIA's container runtime reads it: alternatives separated
/// by spaces, each a comma-separated list of conditions that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirement {
    pub alternatives: Vec<Vec<Condition>>,
}

/// Longest operators first, so that `>=` is not read as `>` and `=`.
const OPERATORS: [&str; 7] = [">=", "<=", "!=", "==", ">", "<", "="];
/// Bounds on what one variable can hold.
const MAX_REQUIREMENT: usize = 4096;

/// Parses `NVIDIA_REQUIRE_CUDA`; the error names the condition that does not parse.
pub fn parse_requirement(text: &str) -> Result<Requirement, String> {
    if text.len() > MAX_REQUIREMENT {
        return Err(format!("longer than {MAX_REQUIREMENT} bytes"));
    }
    let mut alternatives = Vec::new();
    for alternative in text.split_whitespace() {
        let mut conditions = Vec::new();
        for word in alternative.split(',').filter(|w| !w.is_empty()) {
            let (at, op) = OPERATORS
                .iter()
                .filter_map(|op| word.find(op).map(|i| (i, *op)))
                .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
                .ok_or_else(|| format!("{word:?} has no comparison"))?;
            let key = &word[..at];
            let value = &word[at + op.len()..];
            match key {
                "cuda" | "driver" | "arch" => {
                    if numbers(value).is_none() {
                        return Err(format!("{word:?}: {value:?} is not a version"));
                    }
                }
                "brand" => {
                    if !matches!(op, "=" | "==" | "!=") || value.is_empty() {
                        return Err(format!("{word:?}: a brand is compared with = or !="));
                    }
                }
                _ => return Err(format!("{word:?}: unknown key {key:?}")),
            }
            conditions.push(Condition {
                key: key.to_string(),
                op,
                value: value.to_string(),
            });
        }
        if !conditions.is_empty() {
            alternatives.push(conditions);
        }
    }
    Ok(Requirement { alternatives })
}

impl Requirement {
    /// The driver ranges the image names for forward compatibility: the alternatives
    /// that have a `brand=` condition. Empty when it names none.
    fn forward_compat_alternatives(&self) -> impl Iterator<Item = &Vec<Condition>> {
        self.alternatives
            .iter()
            .filter(|a| a.iter().any(|c| c.key == "brand"))
    }

    /// Whether some `brand=` alternative's driver conditions hold for `driver`. None when
    /// there is no such alternative (the image says nothing).
    pub fn allows_forward_compat(&self, driver: &str) -> Option<bool> {
        let driver = Driver::parse(driver)?;
        let mut any = false;
        for alt in self.forward_compat_alternatives() {
            any = true;
            let holds = alt
                .iter()
                .filter(|c| c.key == "driver")
                .all(|c| Driver::parse_prefix(&c.value).is_some_and(|v| compare(driver, c.op, v)));
            if holds {
                return Some(true);
            }
        }
        any.then_some(false)
    }

    /// The driver branches its `brand=` alternatives name, for a message: `470, 535`.
    pub fn forward_compat_branches(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .forward_compat_alternatives()
            .flat_map(|a| a.iter())
            .filter(|c| c.key == "driver" && matches!(c.op, ">=" | "=" | "=="))
            .map(|c| c.value.clone())
            .collect();
        out.sort_by_key(|v| Driver::parse_prefix(v));
        out.dedup();
        out
    }
}

fn compare(a: Driver, op: &str, b: Driver) -> bool {
    match op {
        ">=" => a >= b,
        "<=" => a <= b,
        ">" => a > b,
        "<" => a < b,
        "!=" => a != b,
        _ => a == b,
    }
}

impl Driver {
    /// A driver bound as requirements write it: `470` stands for `470.0.0`.
    fn parse_prefix(text: &str) -> Option<Driver> {
        let parts = numbers(text.trim())?;
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut version = [0; 3];
        version[..parts.len()].copy_from_slice(&parts);
        Some(Driver(version))
    }
}

/// Whether a container's forward-compatibility libraries load, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompatUse {
    /// The container ships none, or nothing calls for them.
    Unused,
    /// They load (through the container's `LD_LIBRARY_PATH`, or first in the plan's
    /// loader cache) and make the runtime work: `driver` is the compat `libcuda`'s.
    Used { by_plan: bool, driver: String },
    /// The runtime needs them, but they do not load here (no injection puts them first,
    /// and the container does not ask for them).
    NotLoaded { driver: String },
    /// They would load but cannot work, for the reason given.
    Refused { reason: String },
}

/// What the container ships and asks that the forward-compatibility decision depends on.
pub struct CompatInput<'a> {
    /// The compat `libcuda`'s driver version, if its file name states it.
    pub compat_driver: Option<&'a str>,
    /// The container's `LD_LIBRARY_PATH` names the compat directory.
    pub on_ld_library_path: bool,
    /// The host's kernel driver.
    pub host_driver: &'a str,
    /// The runtime version the libraries must serve.
    pub runtime: &'a str,
    pub requirement: Option<&'a Requirement>,
    /// The plan injects the host's driver libraries (and so writes the loader cache).
    pub injecting: bool,
    /// The host's GPU models, where the kernel module lists them.
    pub gpu_models: &'a [String],
}

/// GPU brands NVIDIA's forward compatibility does not support (consumer and workstation
/// boards: CUDA answers "forward compatibility was attempted on non supported HW").
/// Data-centre GPUs and select server RTX boards are supported; a name this list does not
/// match is not judged.
const NO_FORWARD_COMPAT: [&str; 3] = ["GeForce", "TITAN", "Quadro"];

fn unsupported_model(models: &[String]) -> Option<&String> {
    models
        .iter()
        .find(|m| NO_FORWARD_COMPAT.iter().any(|b| m.contains(b)))
}

/// Decides whether the compat libraries load and work. The plan and the verdict both
/// ask this, so they cannot disagree: the plan puts them first exactly when this says
/// `Used { by_plan: true }`.
pub fn compat_use(input: &CompatInput) -> CompatUse {
    let Some(compat) = input.compat_driver else {
        return if input.on_ld_library_path {
            CompatUse::Refused {
                reason: "the forward-compatibility libcuda's version is not in its file name, so whether it suits the host driver is unknown".into(),
            }
        } else {
            CompatUse::Unused
        };
    };
    let (Some(compat_v), Some(host_v)) = (Driver::parse(compat), Driver::parse(input.host_driver))
    else {
        return CompatUse::Unused;
    };
    let needed = matches!(
        check(input.host_driver, input.runtime, false),
        CudaCheck::TooOld { .. }
    );
    if compat_v <= host_v {
        // NVIDIA's libraries are meant for older kernel drivers only; loading an older
        // (or another build's) libcuda against this kernel module fails.
        return if input.on_ld_library_path && compat_v != host_v {
            CompatUse::Refused {
                reason: format!(
                    "the container's LD_LIBRARY_PATH loads its forward-compatibility libcuda {compat}, which is not the host's kernel driver {}: CUDA fails with a driver mismatch",
                    input.host_driver
                ),
            }
        } else {
            CompatUse::Unused
        };
    }
    if !needed && !input.on_ld_library_path {
        return CompatUse::Unused;
    }
    if let Some(false) = input
        .requirement
        .and_then(|r| r.allows_forward_compat(input.host_driver))
    {
        let branches = input
            .requirement
            .map(|r| r.forward_compat_branches().join(", "))
            .unwrap_or_default();
        return CompatUse::Refused {
            reason: format!(
                "the image's NVIDIA_REQUIRE_CUDA allows forward compatibility only on the driver branches {branches}, not on {}",
                input.host_driver
            ),
        };
    }
    if let Some(model) = unsupported_model(input.gpu_models) {
        return CompatUse::Refused {
            reason: format!(
                "NVIDIA supports forward compatibility on data-centre GPUs, not on this node's {model}"
            ),
        };
    }
    if matches!(
        check(compat, input.runtime, false),
        CudaCheck::TooOld { .. }
    ) {
        return CompatUse::Refused {
            reason: format!(
                "its forward-compatibility libcuda {compat} is itself too old for the runtime"
            ),
        };
    }
    if input.on_ld_library_path {
        CompatUse::Used {
            by_plan: false,
            driver: compat.to_string(),
        }
    } else if input.injecting {
        CompatUse::Used {
            by_plan: true,
            driver: compat.to_string(),
        }
    } else {
        CompatUse::NotLoaded {
            driver: compat.to_string(),
        }
    }
}

/// The runtime version a check is made for: the stated one, else the lowest of the
/// soname's major (`libcudart.so.12` -> `12.0`), the least it can need.
pub fn judged_version(runtime: &CudaRuntime) -> Option<String> {
    runtime
        .version
        .clone()
        .or_else(|| runtime.major.map(|m| format!("{m}.0")))
}

/// The runtime whose needs decide: the highest version the files state, else the
/// highest major.
pub fn deciding_runtime(runtimes: &[CudaRuntime]) -> Option<&CudaRuntime> {
    runtimes.iter().max_by_key(|r| {
        let v = judged_version(r).unwrap_or_default();
        let key: Vec<u32> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        (key, r.version.is_some())
    })
}

/// The forward-compatibility decision for a container on a host, with the libraries it
/// is about; None when the container ships none or the host has no readable driver.
pub fn container_compat<'f>(
    facts: &'f Facts,
    inject: &Inject,
) -> Option<(CompatUse, &'f CudaCompat)> {
    let gpu = &facts.container.inventory.as_ref()?.gpu;
    let compat = gpu.cuda_compat.as_ref()?;
    let host_gpu = &facts.host.inventory.as_ref()?.gpu;
    let driver = host_gpu.nvidia_driver.as_ref()?;
    let runtime = deciding_runtime(&gpu.cuda_runtimes).and_then(judged_version)?;
    let requirement = facts
        .container
        .env
        .get("NVIDIA_REQUIRE_CUDA")
        .and_then(|t| parse_requirement(t).ok());
    let input = CompatInput {
        compat_driver: compat.version.as_deref(),
        on_ld_library_path: compat.on_ld_library_path,
        host_driver: &driver.version,
        runtime: &runtime,
        requirement: requirement.as_ref(),
        injecting: inject.gpu && !facts.host.gpu_libs.is_empty(),
        gpu_models: &host_gpu.gpu_models,
    };
    Some((compat_use(&input), compat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_and_both_columns_rise() {
        assert_eq!(table().count(), DRIVERS.len());
        let rows: Vec<_> = table().collect();
        for pair in rows.windows(2) {
            let ((cuda_a, driver_a, _), (cuda_b, driver_b, _)) = (pair[0], pair[1]);
            assert!(cuda_a < cuda_b, "{cuda_a} then {cuda_b}");
            assert!(
                driver_a < driver_b,
                "{cuda_a} {driver_a:?} then {cuda_b} {driver_b:?}"
            );
        }
        for (major, minimum) in MINOR_COMPAT {
            assert!(Driver::parse(minimum).is_some(), "{major}.x: {minimum}");
        }
    }

    /// Spot checks against NVIDIA's table and what `nvidia-smi` prints for these drivers.
    #[test]
    fn driver_to_cuda_spot_checks() {
        let table = [
            ("535.104.05", Some("12.2")),
            ("535.54.03", Some("12.2")),
            ("535.54.02", Some("12.1")),
            ("550.54.14", Some("12.4")),
            ("550.127.08", Some("12.4")),
            ("470.57.02", Some("11.4")),
            ("470.42.01", Some("11.4")),
            ("450.80.02", Some("11.0")),
            ("418.39", Some("10.1")),
            ("410.48", Some("10.0")),
            ("525.60.13", Some("12.0")),
            ("570.26", Some("12.8")),
            ("570.124.06", Some("12.8")),
            ("575.57.08", Some("12.9")),
            ("580.65.06", Some("13.0")),
            ("580.95.05", Some("13.0")),
            ("590.48.01", Some("13.1")),
            ("999.1", Some("13.2")),
            ("340.108", None),
            (" 535.104.05\n", Some("12.2")),
        ];
        for (driver, expected) in table {
            assert_eq!(
                driver_cuda_version(driver).as_deref(),
                expected,
                "{driver:?}"
            );
        }
    }

    #[test]
    fn unparsable_drivers() {
        for driver in [
            "",
            "535",
            "535.",
            ".535.1",
            "535..1",
            "535.104.05.1",
            "+535.104",
            "535.-1",
            "535.104 05",
            "v535.104.05",
            "535.104.05a",
            "99999999999.1",
            "NVRM version",
        ] {
            assert_eq!(driver_cuda_version(driver), None, "{driver:?}");
        }
    }

    #[test]
    fn native_support() {
        assert_eq!(check("535.104.05", "12.2", false), CudaCheck::Supported);
        assert_eq!(check("535.104.05", "12.2.140", false), CudaCheck::Supported);
        assert_eq!(check("550.54.14", "11.8.89", false), CudaCheck::Supported);
        assert_eq!(check("550.54.14", "10.1", false), CudaCheck::Supported);
        assert_eq!(check("418.39", "10.1.243", false), CudaCheck::Supported);
        // Native support wins even where forward compatibility is shipped.
        assert_eq!(check("580.65.06", "13.0.48", true), CudaCheck::Supported);
    }

    #[test]
    fn minor_version_compatibility() {
        let minor = |cuda: &str| CudaCheck::MinorVersionCompatible {
            driver_cuda: cuda.to_string(),
        };
        assert_eq!(check("525.60.13", "12.4", false), minor("12.0"));
        assert_eq!(check("535.104.05", "12.9.86", false), minor("12.2"));
        assert_eq!(check("450.80.02", "11.8", false), minor("11.0"));
        assert_eq!(check("470.57.02", "11.8.89", true), minor("11.4"));
        assert_eq!(check("580.65.06", "13.2", false), minor("13.0"));
    }

    #[test]
    fn minor_compatibility_needs_the_major_minimum() {
        // 11.0 GA drivers predate 450.80.02, the 11.x minimum.
        assert_eq!(
            check("450.51.06", "11.2", false),
            CudaCheck::TooOld {
                driver_cuda: Some("11.0".into()),
                minimum_driver: Some("460.27.03".into()),
            }
        );
    }

    #[test]
    fn forward_compatibility() {
        assert_eq!(
            check("470.57.02", "12.2.140", true),
            CudaCheck::ForwardCompatible {
                driver_cuda: Some("11.4".into())
            }
        );
        assert_eq!(
            check("535.104.05", "13.0", true),
            CudaCheck::ForwardCompatible {
                driver_cuda: Some("12.2".into())
            }
        );
        // CUDA 10 had no minor-version compatibility: only the compat libraries help.
        assert_eq!(
            check("410.48", "10.2", true),
            CudaCheck::ForwardCompatible {
                driver_cuda: Some("10.0".into())
            }
        );
    }

    #[test]
    fn too_old() {
        let table = [
            ("470.57.02", "12.2.140", Some("11.4"), Some("535.54.03")),
            ("535.104.05", "13.0.48", Some("12.2"), Some("580.65.06")),
            ("410.48", "10.2", Some("10.0"), Some("440.33")),
            // A version the table skips needs the next release's driver.
            ("470.57.02", "12.7", Some("11.4"), Some("570.26")),
            // Newer than the table: the minimum is unknown.
            ("580.65.06", "14.0", Some("13.0"), None),
            // Unreadable driver or runtime.
            ("garbage", "12.2", None, Some("535.54.03")),
            ("535.104.05", "twelve", Some("12.2"), None),
            ("340.108", "12.2", None, Some("535.54.03")),
        ];
        for (driver, runtime, driver_cuda, minimum) in table {
            assert_eq!(
                check(driver, runtime, false),
                CudaCheck::TooOld {
                    driver_cuda: driver_cuda.map(str::to_string),
                    minimum_driver: minimum.map(str::to_string),
                },
                "{driver} / {runtime}"
            );
        }
    }

    #[test]
    fn forward_compat_needs_a_readable_driver() {
        assert_eq!(
            check("", "12.2", true),
            CudaCheck::TooOld {
                driver_cuda: None,
                minimum_driver: Some("535.54.03".into())
            }
        );
    }

    #[test]
    fn runtime_versions() {
        for (text, expected) in [
            ("12.2", Some((12, 2))),
            ("12.2.140", Some((12, 2))),
            ("11.8.0.1", Some((11, 8))),
            (" 12.4 ", Some((12, 4))),
            ("12", None),
            ("12.2.1.1.1", None),
            ("12.x", None),
            ("", None),
        ] {
            let got = Cuda::parse(text).map(|c| (c.major, c.minor));
            assert_eq!(got, expected, "{text:?}");
        }
    }

    #[test]
    fn requirements_parse_as_nvidia_reads_them() {
        let r = parse_requirement(
            "cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536",
        )
        .unwrap();
        assert_eq!(r.alternatives.len(), 3);
        assert_eq!(
            r.alternatives[1][1],
            Condition {
                key: "driver".into(),
                op: ">=",
                value: "470".into()
            }
        );
        assert_eq!(r.allows_forward_compat("470.256.02"), Some(true));
        assert_eq!(r.allows_forward_compat("535.309.01"), Some(true));
        assert_eq!(r.allows_forward_compat("550.163.01"), Some(false));
        assert_eq!(r.forward_compat_branches(), vec!["470", "535"]);
        let plain = parse_requirement("cuda>=12.4").unwrap();
        assert_eq!(plain.allows_forward_compat("470.256.02"), None);
        assert_eq!(parse_requirement("").unwrap(), Requirement::default());
        for bad in [
            "cuda12.4",
            "gpu>=1",
            "cuda>=twelve",
            "brand>=tesla",
            "driver<",
        ] {
            assert!(parse_requirement(bad).is_err(), "{bad}");
        }
        assert!(parse_requirement(&"cuda>=1.0 ".repeat(1000)).is_err());
    }

    #[test]
    fn compat_decisions() {
        let input = |compat, on_path, host, runtime, injecting| CompatInput {
            compat_driver: compat,
            on_ld_library_path: on_path,
            host_driver: host,
            runtime,
            requirement: None,
            injecting,
            gpu_models: &[],
        };
        let used = |by_plan| CompatUse::Used {
            by_plan,
            driver: "550.163.01".into(),
        };
        let c = Some("550.163.01");
        assert_eq!(
            compat_use(&input(c, false, "470.256.02", "12.4", true)),
            used(true)
        );
        assert_eq!(
            compat_use(&input(c, true, "470.256.02", "12.4", true)),
            used(false)
        );
        assert_eq!(
            compat_use(&input(c, false, "470.256.02", "12.4", false)),
            CompatUse::NotLoaded {
                driver: "550.163.01".into()
            }
        );
        // Not needed: the host driver runs 12.4 itself.
        assert_eq!(
            compat_use(&input(c, false, "550.163.01", "12.4", true)),
            CompatUse::Unused
        );
        // Too old to help a 13.0 runtime (it serves 12.9 through minor-version
        // compatibility).
        assert!(matches!(
            compat_use(&input(
                Some("535.309.01"),
                false,
                "470.256.02",
                "12.9",
                true
            )),
            CompatUse::Used { .. }
        ));
        assert!(matches!(
            compat_use(&input(
                Some("535.309.01"),
                false,
                "470.256.02",
                "13.0",
                true
            )),
            CompatUse::Refused { .. }
        ));
        // Forced on a newer driver.
        assert!(matches!(
            compat_use(&input(c, true, "560.35.03", "12.4", true)),
            CompatUse::Refused { .. }
        ));
        assert_eq!(
            compat_use(&input(None, false, "470.256.02", "12.4", true)),
            CompatUse::Unused
        );
    }

    #[test]
    fn forward_compat_is_refused_on_consumer_gpus() {
        let models = |m: &[&str]| -> Vec<String> { m.iter().map(|s| s.to_string()).collect() };
        let decide = |gpu_models: &[String]| {
            compat_use(&CompatInput {
                compat_driver: Some("550.163.01"),
                on_ld_library_path: false,
                host_driver: "470.256.02",
                runtime: "12.4",
                requirement: None,
                injecting: true,
                gpu_models,
            })
        };
        assert!(matches!(
            decide(&models(&["NVIDIA GeForce RTX 3090"])),
            CompatUse::Refused { reason } if reason.ends_with("not on this node's NVIDIA GeForce RTX 3090")
        ));
        assert!(matches!(
            decide(&models(&["Tesla V100-SXM2-16GB"])),
            CompatUse::Used { by_plan: true, .. }
        ));
        assert!(matches!(decide(&[]), CompatUse::Used { .. }));
    }
}
