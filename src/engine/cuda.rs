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
}
