//! CPU target names as feature sets. A binary records the target it was built for by a
//! name (gcc's or clang's `-march=`, an archspec label, an ISA-level note, Go's
//! `GOAMD64`); the question a verdict answers is whether the host has the instructions
//! that name lets the compiler use. So every name becomes the set of *code-generation*
//! features it enables, in `/proc/cpuinfo` spelling, and the host is judged on those
//! features, never on a lineage of names.
//!
//! Code-generation features are the instruction-set extensions a compiler emits on its
//! own or through the data-processing intrinsics (SSE to AVX-512, BMI, FMA, AES, SHA...).
//! System features that a target name also implies (SGX, RDRAND, XSAVEC, TSX, MOVDIRI,
//! PCONFIG, AMX...) are left out: code uses them only through explicit intrinsics, guarded
//! by a CPUID check, and requiring them would refuse a virtual machine that masks SGX for a
//! `-march=skylake` binary that never touches it.

use archspec::schema::CompilerSet;

#[allow(unused_imports)]
use super::*;

/// gcc's (and clang's) ISA option names (`-m<name>`) for the x86 code-generation features,
/// with the `/proc/cpuinfo` flag of each. Every feature here is read from CPUID too.
#[rustfmt::skip]
pub const X86_CODEGEN: &[(&str, &str)] = &[
    ("mmx", "mmx"), ("sse", "sse"), ("sse2", "sse2"), ("sse3", "pni"), ("ssse3", "ssse3"),
    ("sse4.1", "sse4_1"), ("sse4.2", "sse4_2"), ("sse4a", "sse4a"), ("popcnt", "popcnt"),
    ("lzcnt", "abm"), ("cx16", "cx16"), ("sahf", "lahf_lm"), ("movbe", "movbe"),
    ("bmi", "bmi1"), ("bmi2", "bmi2"), ("aes", "aes"), ("pclmul", "pclmulqdq"),
    ("sha", "sha_ni"), ("avx", "avx"), ("avx2", "avx2"), ("f16c", "f16c"), ("fma", "fma"),
    ("fma4", "fma4"), ("xop", "xop"), ("tbm", "tbm"),
    ("avx512f", "avx512f"), ("avx512cd", "avx512cd"), ("avx512dq", "avx512dq"),
    ("avx512bw", "avx512bw"), ("avx512vl", "avx512vl"), ("avx512ifma", "avx512ifma"),
    ("avx512vbmi", "avx512vbmi"), ("avx512vbmi2", "avx512_vbmi2"),
    ("avx512vnni", "avx512_vnni"), ("avx512bitalg", "avx512_bitalg"),
    ("avx512vpopcntdq", "avx512_vpopcntdq"), ("avx512bf16", "avx512_bf16"),
    ("avx512fp16", "avx512_fp16"), ("avx512vp2intersect", "avx512_vp2intersect"),
    ("avx512er", "avx512er"), ("avx512pf", "avx512pf"), ("avx5124fmaps", "avx512_4fmaps"),
    ("avx5124vnniw", "avx512_4vnniw"), ("gfni", "gfni"), ("vaes", "vaes"),
    ("vpclmulqdq", "vpclmulqdq"), ("avxvnni", "avx_vnni"), ("avxifma", "avx_ifma"),
    ("avxvnniint8", "avx_vnni_int8"), ("avxneconvert", "avx_ne_convert"),
];

/// Code-generation features that compilers emit only for their intrinsics, never from
/// plain code (no vectoriser pattern produces AES, SHA, carry-less multiplication, SSE4a's
/// EXTRQ/INSERTQ or VP2INTERSECT): a host that lacks only these runs the program unless it
/// calls them without checking the CPU, so the verdict calls it unverified, not refused.
pub const X86_INTRINSIC_ONLY: &[&str] = &[
    "aes",
    "pclmulqdq",
    "sha_ni",
    "vaes",
    "vpclmulqdq",
    "sse4a",
    "avx512_vp2intersect",
];

/// Whether compilers emit `feature` only for its intrinsics ([`X86_INTRINSIC_ONLY`]).
#[must_use]
pub fn is_intrinsic_only(feature: &str) -> bool {
    X86_INTRINSIC_ONLY.contains(&feature)
}

/// What every x86-64 CPU has: the features `-march=x86-64` enables.
pub const X86_BASELINE: &[&str] = &["mmx", "sse", "sse2"];

/// gcc's `-march=` names with the code-generation features each enables, as gcc itself
/// answers `gcc -march=NAME -Q --help=target` (the union over the gcc releases listed in
/// the file's header). Regenerated and checked against the real compilers by the
/// `gcc_march_table` test.
const GCC_MARCH_TABLE: &str = include_str!("gcc-march.txt");

/// The `/proc/cpuinfo` spelling of a gcc ISA option name (`avx512vnni` -> `avx512_vnni`),
/// for code-generation features only.
#[must_use]
pub fn gcc_flag_feature(flag: &str) -> Option<&'static str> {
    X86_CODEGEN
        .iter()
        .find(|(gcc, _)| *gcc == flag)
        .map(|(_, cpuinfo)| *cpuinfo)
}

/// Whether a `/proc/cpuinfo` flag is an x86 code-generation feature.
#[must_use]
pub fn is_x86_codegen(feature: &str) -> bool {
    X86_CODEGEN.iter().any(|(_, f)| *f == feature)
}

fn gcc_table() -> &'static HashMap<String, BTreeSet<String>> {
    static TABLE: OnceLock<HashMap<String, BTreeSet<String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        GCC_MARCH_TABLE
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(name, features)| {
                let set = features
                    .split_ascii_whitespace()
                    .map(String::from)
                    .collect();
                (name.trim().to_string(), set)
            })
            .collect()
    })
}

/// The code-generation features of a gcc/clang `-march=` name (x86: `haswell`,
/// `znver3`, `x86-64-v3`, `icelake-server`...). None when the name is not in the table.
#[must_use]
pub fn gcc_march_features(name: &str) -> Option<BTreeSet<String>> {
    gcc_table().get(name.trim()).cloned()
}

/// gcc's `-march=` names, sorted.
#[must_use]
pub fn gcc_march_names() -> Vec<String> {
    let mut names: Vec<String> = gcc_table().keys().cloned().collect();
    names.sort();
    names
}

/// The code-generation features of an archspec target (x86: intersected with
/// [`X86_CODEGEN`], archspec's "sse3" spelled "pni"; other architectures: all of its
/// features, which archspec lists in `/proc/cpuinfo` spelling). None for unknown names.
#[must_use]
pub fn archspec_features(name: &str) -> Option<BTreeSet<String>> {
    let name = normalize_target(name)?;
    let target = known_targets()?.get(&name)?;
    let x86 = target.family().name() == "x86_64";
    let mut features: BTreeSet<String> = target
        .all_features()
        .into_iter()
        .map(|f| if f == "sse3" { "pni".to_string() } else { f })
        .filter(|f| !x86 || is_x86_codegen(f))
        .collect();
    if x86 {
        // archspec lists what tells CPUs apart, not all they have (its zen3 has no SHA):
        // gcc's features for the same CPU complete it.
        for gcc_name in gcc_names_for_archspec(&name) {
            features.extend(gcc_march_features(&gcc_name).unwrap_or_default());
        }
        features.extend(X86_BASELINE.iter().map(|f| f.to_string()));
        // archspec's generic levels list SSSE3 and leave out the SSE3 it implies.
        if features.contains("ssse3") {
            features.insert("pni".to_string());
        }
    }
    Some(features)
}

/// The code-generation features of the generic x86-64 level `level` (1..=4), from gcc's
/// `x86-64-vN` (equal to archspec's `x86_64_vN`, which a unit test checks; this way a
/// verdict need not load archspec's whole target database, a millisecond per start).
#[must_use]
pub fn x86_level_features(level: u8) -> BTreeSet<String> {
    match level {
        0 | 1 => X86_BASELINE.iter().map(|f| f.to_string()).collect(),
        n => gcc_march_features(&format!("x86-64-v{}", n.min(4))).unwrap_or_default(),
    }
}

/// The highest generic x86-64 level whose code-generation features are all in `features`
/// (for requirements and headroom). The host's reported `generic_level` is
/// [`super::x86_level`]'s: the psABI's definition, which also asks for OS support (XSAVE).
#[must_use]
pub fn x86_level_of(features: &BTreeSet<String>) -> u8 {
    (2..=4)
        .take_while(|n| x86_level_features(*n).is_subset(features))
        .last()
        .unwrap_or(1)
}

/// The gcc `-march=` names archspec's compiler table gives for an archspec target.
fn gcc_names_for_archspec(name: &str) -> Vec<String> {
    let Some(schema) = guarded(
        "loading its schema",
        archspec::schema::MicroarchitecturesSchema::schema,
    ) else {
        return Vec::new();
    };
    let Some(gcc) = schema
        .microarchitectures
        .get(name)
        .and_then(|e| e.compilers.as_ref()?.get("gcc"))
    else {
        return Vec::new();
    };
    let entries: Vec<&archspec::schema::Compiler> = match gcc {
        CompilerSet::Several(list) => list.iter().collect(),
        CompilerSet::Single(one) => vec![one],
    };
    let mut names: Vec<String> = entries
        .iter()
        .flat_map(|c| {
            let spelled = c.name.as_deref().unwrap_or(name);
            c.flags
                .replace("{name}", spelled)
                .split_ascii_whitespace()
                .filter_map(|f| f.strip_prefix("-march=").map(String::from))
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The archspec name a gcc `-march=` name corresponds to, from archspec's own compiler
/// table (`znver3` -> `zen3`, `core-avx2` is not there but `haswell` is), for hints.
#[must_use]
pub fn archspec_name_for_gcc(gcc_name: &str) -> Option<String> {
    let schema = guarded(
        "loading its schema",
        archspec::schema::MicroarchitecturesSchema::schema,
    )?;
    let mut names: Vec<&String> = schema.microarchitectures.keys().collect();
    names.sort();
    names
        .into_iter()
        .find(|name| gcc_names_for_archspec(name).iter().any(|g| g == gcc_name))
        .cloned()
}

/// The glibc-hwcaps subdirectories a CPU of x86-64 level `level` searches, best first.
#[must_use]
pub fn x86_hwcaps(level: u8) -> Vec<String> {
    (2..=level.min(4))
        .rev()
        .map(|l| format!("x86-64-v{l}"))
        .collect()
}
