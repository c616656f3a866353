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

/// A named target as a host's features (code generation only).
fn host(name: &str) -> BTreeSet<String> {
    super::target_features(name).unwrap()
}

#[test]
fn target_supported_table() {
    let v4_missing = || {
        Err(TargetCheck::Missing(
            ["avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ))
    };
    let cases = vec![
        ("x86_64_v4", host("haswell"), v4_missing()),
        ("x86-64-v4", host("haswell"), v4_missing()),
        ("x86_64_v4", host("skylake_avx512"), Ok(())),
        ("x86_64_v3", host("haswell"), Ok(())),
        ("haswell", host("haswell"), Ok(())),
        (
            "x86_64",
            set(&[]),
            Err(TargetCheck::Missing(vec![
                "mmx".into(),
                "sse".into(),
                "sse2".into(),
            ])),
        ),
        ("x86_64", set(&["mmx", "sse", "sse2"]), Ok(())),
        ("zen4", host("zen4"), Ok(())),
        ("aarch64", host("neoverse_n1"), Ok(())),
        // Features, not lineage: an AMD CPU with every Haswell feature runs a haswell
        // build, and a zen4 runs a zen2 build even where archspec only calls it x86_64_v4.
        ("haswell", host("zen4"), Ok(())),
        ("zen2", host("zen4"), Ok(())),
        // gcc's names: core-avx2 is haswell; znver4 needs AVX-512 that zen3 lacks.
        ("core-avx2", host("haswell"), Ok(())),
        (
            "znver4",
            host("zen3"),
            Err(TargetCheck::Missing(
                [
                    "avx512_bf16",
                    "avx512_bitalg",
                    "avx512_vbmi2",
                    "avx512_vnni",
                    "avx512_vpopcntdq",
                    "avx512bw",
                    "avx512cd",
                    "avx512dq",
                    "avx512f",
                    "avx512ifma",
                    "avx512vbmi",
                    "avx512vl",
                    "gfni",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            )),
        ),
        // SSE3 is the kernel's "pni"; archspec's "sse3" counts for it.
        (
            "nocona",
            set(&["mmx", "sse", "sse2", "pni", "cx16"]),
            Ok(()),
        ),
        (
            "nocona",
            set(&["mmx", "sse", "sse2", "sse3", "cx16"]),
            Ok(()),
        ),
        (
            "nocona",
            set(&["mmx", "sse", "sse2", "cx16"]),
            Err(TargetCheck::Missing(vec!["pni".into()])),
        ),
        // System features a name implies (SGX, RDRAND) are not required.
        ("skylake", host("skylake"), Ok(())),
        (
            "pentium9000",
            set(&[]),
            Err(TargetCheck::Unknown("pentium9000".into())),
        ),
        ("", set(&[]), Err(TargetCheck::Unknown(String::new()))),
    ];
    for (target, features, want) in cases {
        assert_eq!(
            target_supported(target, &features),
            want,
            "{target} on {features:?}"
        );
    }
}

/// The generic levels from archspec and gcc's `x86-64-vN` agree feature for feature.
#[test]
fn levels_agree_with_gcc() {
    for n in 2..=4u8 {
        assert_eq!(
            x86_level_features(n),
            archspec_features(&format!("x86_64_v{n}")).unwrap(),
            "v{n}: gcc's and archspec's"
        );
    }
    assert_eq!(x86_level_features(1), gcc_march_features("x86-64").unwrap());
    assert_eq!(x86_level_of(&gcc_march_features("haswell").unwrap()), 3);
    assert_eq!(x86_level_of(&gcc_march_features("znver4").unwrap()), 4);
    assert_eq!(x86_level_of(&gcc_march_features("sandybridge").unwrap()), 2);
}

/// Every code-generation feature is read from CPUID, so an emulator's or a VM's masking
/// reaches the verdict.
#[test]
fn every_codegen_feature_is_read_from_cpuid() {
    let cpu = FakeCpu::v4();
    let covered: BTreeSet<&str> = cpuid_bits(&cpu.cpuid())
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    for (_, f) in X86_CODEGEN {
        assert!(covered.contains(f), "{f}");
    }
}

#[test]
fn archspec_names_for_gcc_names() {
    assert_eq!(archspec_name_for_gcc("znver3").as_deref(), Some("zen3"));
    assert_eq!(
        archspec_name_for_gcc("skylake-avx512").as_deref(),
        Some("skylake_avx512")
    );
    assert_eq!(archspec_name_for_gcc("pentium9000"), None);
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
            l1_ecx: bits(&[0, 1, 9, 12, 13, 19, 20, 22, 23, 25, 26, 27, 28, 29]),
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
    let all = levels(&[V2, V3_EXTRA, V4_EXTRA, &["pni", "aes", "pclmulqdq"]]);
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
    let v4_flags = levels(&[V2, V3_EXTRA, V4_EXTRA, &["pni", "fpu", "aes", "pclmulqdq"]]);
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
