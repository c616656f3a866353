//! The cross-check of archspec's answer, dispatched by architecture.

#[allow(unused_imports)]
use super::*;

#[cfg(target_arch = "x86_64")]
pub(super) fn native_cross_check(
    _arch: &str,
    features: &BTreeSet<String>,
    detected: &Detected,
) -> CrossCheck {
    let cpuid = raw_cpuid::CpuId::new();
    let view = cpuid_view(&cpuid, native_xcr0(&cpuid));
    compare_cpuid(features, &view, detected)
}

#[cfg(target_arch = "aarch64")]
pub(super) fn native_cross_check(
    _arch: &str,
    features: &BTreeSet<String>,
    detected: &Detected,
) -> CrossCheck {
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
pub(super) fn native_cross_check(
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
