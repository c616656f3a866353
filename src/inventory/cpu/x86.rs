//! x86_64: CPUID and the XCR0 state the OS enabled.

#[allow(unused_imports)]
use super::*;

/// The features cross-checked through CPUID against /proc/cpuinfo: every feature of
/// archspec's generic levels, SSE3 ("pni") and the code-generation extensions whose
/// cpuinfo names the kernel has long used. (Every code-generation feature is read from
/// CPUID for the usable set; the newest have no cpuinfo name to compare with.)
#[cfg(any(target_arch = "x86_64", test))]
#[rustfmt::skip]
pub(super) const CPUID_FEATURES: [&str; 47] = [
    "abm", "aes", "avx", "avx2", "avx512_4fmaps", "avx512_4vnniw", "avx512_bf16",
    "avx512_bitalg", "avx512_fp16", "avx512_vbmi2", "avx512_vnni", "avx512_vp2intersect",
    "avx512_vpopcntdq", "avx512bw", "avx512cd", "avx512dq", "avx512er", "avx512f",
    "avx512ifma", "avx512pf", "avx512vbmi", "avx512vl", "avx_vnni", "bmi1", "bmi2", "cx16",
    "f16c", "fma", "fma4", "gfni", "lahf_lm", "mmx", "movbe", "pclmulqdq", "pni", "popcnt",
    "sha_ni", "sse", "sse2", "sse4_1", "sse4_2", "sse4a", "ssse3", "tbm", "vaes",
    "vpclmulqdq", "xop",
];

/// The register state the OS must enable (in XCR0) before a feature's instructions work.
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum OsState {
    /// SSE-era features need nothing beyond what every x86_64 OS enables.
    Sse,
    /// VEX-encoded instructions need SSE and AVX state (XCR0 bits 1 and 2).
    Ymm,
    /// EVEX-encoded instructions also need opmask, ZMM_Hi256 and Hi16_ZMM state (bits 5-7).
    Zmm,
}

#[cfg(any(target_arch = "x86_64", test))]
impl OsState {
    pub(super) fn enabled(self, xcr0: Option<u64>) -> bool {
        const YMM: u64 = 0b110;
        const ZMM: u64 = 0b1110_0000;
        let has = |mask: u64| xcr0.is_some_and(|x| x & mask == mask);
        match self {
            OsState::Sse => true,
            OsState::Ymm => has(YMM),
            OsState::Zmm => has(YMM | ZMM),
        }
    }

    pub(super) fn label(self) -> &'static str {
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
pub(super) struct CpuidView {
    pub(super) present: BTreeSet<String>,
    pub(super) disabled: BTreeMap<String, OsState>,
}

#[cfg(any(target_arch = "x86_64", test))]
pub(super) fn cpuid_view<R: raw_cpuid::CpuIdReader>(
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
pub(super) fn cpuid_bits<R: raw_cpuid::CpuIdReader>(
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
        ("aes", l1.is_some_and(|f| f.has_aesni()), Sse),
        ("pclmulqdq", l1.is_some_and(|f| f.has_pclmulqdq()), Sse),
        ("lahf_lm", ext.is_some_and(|f| f.has_lahf_sahf()), Sse),
        ("abm", ext.is_some_and(|f| f.has_lzcnt()), Sse),
        ("sse4a", ext.is_some_and(|f| f.has_sse4a()), Sse),
        ("tbm", ext.is_some_and(|f| f.has_tbm()), Sse),
        ("bmi1", l7.is_some_and(|f| f.has_bmi1()), Sse),
        ("bmi2", l7.is_some_and(|f| f.has_bmi2()), Sse),
        ("sha_ni", l7.is_some_and(|f| f.has_sha()), Sse),
        ("gfni", l7.is_some_and(|f| f.has_gfni()), Sse),
        // VEX-encoded: they need AVX state like AVX itself.
        ("avx", l1.is_some_and(|f| f.has_avx()), Ymm),
        ("f16c", l1.is_some_and(|f| f.has_f16c()), Ymm),
        ("fma", l1.is_some_and(|f| f.has_fma()), Ymm),
        ("fma4", ext.is_some_and(|f| f.has_fma4()), Ymm),
        ("xop", ext.is_some_and(|f| f.has_xop()), Ymm),
        ("avx2", l7.is_some_and(|f| f.has_avx2()), Ymm),
        ("vaes", l7.is_some_and(|f| f.has_vaes()), Ymm),
        ("vpclmulqdq", l7.is_some_and(|f| f.has_vpclmulqdq()), Ymm),
        ("avx_vnni", l7.is_some_and(|f| f.has_avx_vnni()), Ymm),
        ("avx_ifma", l7.is_some_and(|f| f.has_avx_ifma()), Ymm),
        (
            "avx_vnni_int8",
            l7.is_some_and(|f| f.has_avx_vnni_int8()),
            Ymm,
        ),
        (
            "avx_ne_convert",
            l7.is_some_and(|f| f.has_avx_ne_convert()),
            Ymm,
        ),
        // EVEX-encoded: opmask and ZMM state too.
        ("avx512f", l7.is_some_and(|f| f.has_avx512f()), Zmm),
        ("avx512dq", l7.is_some_and(|f| f.has_avx512dq()), Zmm),
        ("avx512cd", l7.is_some_and(|f| f.has_avx512cd()), Zmm),
        ("avx512bw", l7.is_some_and(|f| f.has_avx512bw()), Zmm),
        ("avx512vl", l7.is_some_and(|f| f.has_avx512vl()), Zmm),
        ("avx512ifma", l7.is_some_and(|f| f.has_avx512_ifma()), Zmm),
        ("avx512vbmi", l7.is_some_and(|f| f.has_avx512vbmi()), Zmm),
        ("avx512_vbmi2", l7.is_some_and(|f| f.has_avx512vbmi2()), Zmm),
        ("avx512_vnni", l7.is_some_and(|f| f.has_avx512vnni()), Zmm),
        (
            "avx512_bitalg",
            l7.is_some_and(|f| f.has_avx512bitalg()),
            Zmm,
        ),
        (
            "avx512_vpopcntdq",
            l7.is_some_and(|f| f.has_avx512vpopcntdq()),
            Zmm,
        ),
        ("avx512_bf16", l7.is_some_and(|f| f.has_avx512_bf16()), Zmm),
        ("avx512_fp16", l7.is_some_and(|f| f.has_avx512_fp16()), Zmm),
        (
            "avx512_vp2intersect",
            l7.is_some_and(|f| f.has_avx512_vp2intersect()),
            Zmm,
        ),
        ("avx512er", l7.is_some_and(|f| f.has_avx512er()), Zmm),
        ("avx512pf", l7.is_some_and(|f| f.has_avx512pf()), Zmm),
        (
            "avx512_4fmaps",
            l7.is_some_and(|f| f.has_avx512_4fmaps()),
            Zmm,
        ),
        (
            "avx512_4vnniw",
            l7.is_some_and(|f| f.has_avx512_4vnniw()),
            Zmm,
        ),
    ]
}

/// The features code can use on this CPU: each feature CPUID covers as CPUID reports it
/// with the OS state XCR0 enables, the others as /proc/cpuinfo lists them; and CPUID's
/// vendor string.
#[cfg(target_arch = "x86_64")]
pub(super) fn native_usable(cpuinfo: &BTreeSet<String>) -> (BTreeSet<String>, Option<String>) {
    let cpuid = raw_cpuid::CpuId::new();
    let view = cpuid_view(&cpuid, native_xcr0(&cpuid));
    let vendor = cpuid.get_vendor_info().map(|v| v.as_str().to_string());
    (usable_features(cpuinfo, &view, &cpuid), vendor)
}

#[cfg(any(target_arch = "x86_64", test))]
pub(super) fn usable_features<R: raw_cpuid::CpuIdReader>(
    cpuinfo: &BTreeSet<String>,
    view: &CpuidView,
    cpuid: &raw_cpuid::CpuId<R>,
) -> BTreeSet<String> {
    let covered: BTreeSet<&str> = cpuid_bits(cpuid).into_iter().map(|(n, _, _)| n).collect();
    cpuinfo
        .iter()
        .filter(|f| !covered.contains(f.as_str()))
        .cloned()
        .chain(view.present.iter().cloned())
        .collect()
}

/// XCR0, or None when the OS has not set CR4.OSXSAVE (xgetbv would fault).
#[cfg(target_arch = "x86_64")]
pub(super) fn native_xcr0(cpuid: &raw_cpuid::CpuId<raw_cpuid::CpuIdReaderNative>) -> Option<u64> {
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
pub(super) fn compare_cpuid(
    cpuinfo: &BTreeSet<String>,
    view: &CpuidView,
    detected: &Detected,
) -> CrossCheck {
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
pub(super) fn feature_mismatch(
    name: &str,
    cpuinfo: &BTreeSet<String>,
    view: &CpuidView,
) -> Option<String> {
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
pub(super) fn lacking(
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
pub(super) fn lacking_note(
    detected: &Detected,
    lacking: &[String],
    source: &str,
) -> Option<String> {
    (!lacking.is_empty()).then(|| {
        format!(
            "archspec detected {} but {source} lacks {}",
            detected.name,
            lacking.join(", ")
        )
    })
}
