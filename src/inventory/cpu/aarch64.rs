//! aarch64: the auxiliary vector's AT_HWCAP / AT_HWCAP2 words.

#[allow(unused_imports)]
use super::*;

/// AT_HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h) with their /proc/cpuinfo names.
#[cfg(any(target_arch = "aarch64", test))]
#[rustfmt::skip]
pub(super) const HWCAP_NAMES: [(u32, &str); 32] = [
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
pub(super) const HWCAP2_NAMES: [(u32, &str); 25] = [
    (0, "dcpodp"), (1, "sve2"), (2, "sveaes"), (3, "svepmull"), (4, "svebitperm"),
    (5, "svesha3"), (6, "svesm4"), (7, "flagm2"), (8, "frint"), (9, "svei8mm"),
    (10, "svef32mm"), (11, "svef64mm"), (12, "svebf16"), (13, "i8mm"), (14, "bf16"),
    (15, "dgh"), (16, "rng"), (17, "bti"), (18, "mte"), (19, "ecv"),
    (20, "afp"), (21, "rpres"), (22, "mte3"), (23, "sme"), (37, "sme2"),
];

#[cfg(any(target_arch = "aarch64", test))]
pub(super) fn hwcap_features(hwcap: u64, hwcap2: u64) -> BTreeSet<String> {
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
pub(super) fn hwcap_covers(name: &str) -> bool {
    HWCAP_NAMES
        .iter()
        .chain(HWCAP2_NAMES.iter())
        .any(|(_, n)| *n == name)
}

/// Compares cpuinfo's Features with the HWCAP words; the kernel derives one from the other, so
/// any difference is worth a note.
#[cfg(any(target_arch = "aarch64", test))]
pub(super) fn compare_hwcap(
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
