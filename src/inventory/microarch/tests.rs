use super::*;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn gcc(name: &str) -> BTreeSet<String> {
    gcc_march_features(name).unwrap()
}

fn one(tokens: &str) -> (Option<Record>, Vec<String>) {
    let mut unknown = Vec::new();
    let toks: Vec<&str> = tokens.split_whitespace().collect();
    (record(&toks, false, "t", &mut unknown), unknown)
}

#[test]
fn a_command_line_is_its_target_then_its_options() {
    let (r, _) = one("GNU C17 12.2.0 -mtune=generic -march=haswell -g -O2");
    assert_eq!(
        r.unwrap(),
        Record {
            name: "haswell".into(),
            features: gcc("haswell")
        }
    );
    // gcc's producer puts explicit ISA options before -march=; they still count.
    let (r, _) = one("GNU C17 12.2.0 -mavx2 -mtune=generic -march=x86-64 -g");
    let r = r.unwrap();
    assert_eq!(r.name, "x86-64+avx2");
    assert!(r.features.contains("avx2"));
    // -march=native expanded: the name, with what the machine lacked switched off.
    let (r, _) = one(
        "-march=skylake-avx512 -mno-avx512f -mno-avx512cd -mno-avx512vl -mno-avx512bw -mno-avx512dq -mtune=skylake",
    );
    let r = r.unwrap();
    assert!(
        !r.features.contains("avx512f") && r.features.contains("avx2"),
        "{r:?}"
    );
    assert!(r.name.starts_with("skylake-avx512-avx512bw"), "{}", r.name);
    // Not a target: non-ISA -m options, clang's bare producer.
    assert_eq!(one("GNU C17 12.2.0 -m64 -mtune=generic -g").0, None);
    assert_eq!(one("Debian clang version 14.0.6").0, None);
}

#[test]
fn unknown_names_are_said_never_dropped() {
    let (r, unknown) = one("-march=pentium9000 -O2");
    assert_eq!(r, None);
    assert_eq!(unknown.len(), 1);
    assert!(unknown[0].contains("-march=pentium9000"), "{unknown:?}");
    let (_, unknown) = one("clang -march=native -O2 x.c");
    assert!(unknown[0].contains("build machine"), "{unknown:?}");
    // gcc's names that archspec lacks are known through gcc's table.
    for name in [
        "znver1",
        "corei7",
        "core-avx2",
        "icelake-client",
        "icelake-server",
        "tigerlake",
        "alderlake",
        "sapphirerapids",
        "cooperlake",
        "x86-64-v3",
        "znver5",
    ] {
        let (r, unknown) = one(&format!("-march={name}"));
        assert!(r.is_some() && unknown.is_empty(), "{name}: {unknown:?}");
    }
}

#[test]
fn gcc_switches_merged_over_units() {
    let section = |opts: &[&str]| {
        let mut data = Vec::new();
        for o in opts {
            data.extend_from_slice(o.as_bytes());
            data.push(0);
        }
        data
    };
    // One unit (or several with one target): its options apply to it.
    let mut records = Vec::new();
    let mut unknown = Vec::new();
    command_line_records(
        &section(&["-march=haswell", "-mno-avx2", "-O2"]),
        false,
        &mut records,
        &mut unknown,
    );
    assert_eq!(records.len(), 1);
    assert!(!records[0].features.contains("avx2"));
    // Two targets: each one, with every positive option and no -mno-.
    let mut records = Vec::new();
    command_line_records(
        &section(&[
            "-march=x86-64",
            "-O2",
            "-march=skylake-avx512",
            "-mno-avx512f",
            "-mfma",
        ]),
        false,
        &mut records,
        &mut unknown,
    );
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|r| r.features.contains("fma")));
    assert!(records.iter().any(|r| r.features.contains("avx512f")));
    // clang: one whole command line per string.
    let mut records = Vec::new();
    command_line_records(
        &section(&["/usr/bin/clang -march=znver2 -O2 -c a.c"]),
        false,
        &mut records,
        &mut unknown,
    );
    assert_eq!(records[0].features, gcc("znver2"));
    assert!(unknown.is_empty());
}

#[test]
fn units_with_different_targets() {
    let mut out = ObjectTargets::default();
    let records = vec![
        Record {
            name: "x86-64".into(),
            features: gcc("x86-64"),
        },
        Record {
            name: "skylake-avx512".into(),
            features: gcc("skylake-avx512"),
        },
    ];
    add_records(&mut out, records.clone(), "/app");
    assert_eq!(out.certain, gcc("x86-64"));
    assert!(out.partial.contains("avx512f") && out.partial.contains("avx2"));
    assert_eq!(out.mixed_targets, vec!["skylake-avx512", "x86-64"]);
    // Link order does not matter.
    let mut reversed = ObjectTargets::default();
    add_records(&mut reversed, records.into_iter().rev().collect(), "/app");
    assert_eq!(reversed, out);
    // One target: all certain, nothing partial.
    let mut single = ObjectTargets::default();
    add_records(
        &mut single,
        vec![Record {
            name: "haswell".into(),
            features: gcc("haswell"),
        }],
        "/app",
    );
    assert_eq!(single.certain, gcc("haswell"));
    assert!(single.partial.is_empty() && single.mixed_targets.is_empty());
}

#[test]
fn glibc_hwcaps_directories() {
    assert_eq!(
        hwcaps_level("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v4/libfoo.so.1"),
        Some(4)
    );
    assert_eq!(
        hwcaps_level("/opt/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1"),
        Some(3)
    );
    assert_eq!(hwcaps_level("/usr/lib/x86_64-linux-gnu/libfoo.so.1"), None);
    assert_eq!(
        hwcaps_level("/usr/lib/glibc-hwcaps/x86-64-v9/libfoo.so.1"),
        None
    );
    assert_eq!(hwcaps_level("/usr/lib/glibc-hwcaps/x86-64-v4"), None);
}

#[test]
fn aarch64_names() {
    let v82 = aarch64_features("armv8.2-a").unwrap();
    assert!(v82.contains("asimd") && v82.contains("atomics"), "{v82:?}");
    assert!(!aarch64_features("armv8-a").unwrap().contains("atomics"));
    let sve = aarch64_features("armv8.2-a+sve+crypto").unwrap();
    assert!(sve.contains("sve") && sve.contains("aes"));
    assert!(aarch64_features("neoverse-n1").unwrap().contains("asimddp"));
    assert_eq!(aarch64_features("armv8.2-a+warpdrive"), None);
}

#[test]
fn strings_are_matched_whole() {
    assert!(has_string(b"\0__cpu_model\0x\0", "__cpu_model"));
    assert!(has_string(b"__cpu_model\0", "__cpu_model"));
    assert!(!has_string(b"\0__cpu_model_x\0", "__cpu_model"));
    assert!(!has_string(b"\0x__cpu_model\0", "__cpu_model"));
}

fn targets(certain: &[&str], marked: bool) -> ObjectTargets {
    ObjectTargets {
        certain: set(certain),
        marked,
        ..ObjectTargets::default()
    }
}

#[test]
fn combining_objects_and_labels() {
    let app = targets(&["avx", "avx2"], true);
    let lib = targets(&[], false);
    let libc = targets(&[], true);
    let objects = [
        Examined {
            path: "/app",
            targets: &app,
            counts: true,
        },
        Examined {
            path: "/lib/libx.so",
            targets: &lib,
            counts: true,
        },
        Examined {
            path: "/lib/libc.so.6",
            targets: &libc,
            counts: false,
        },
    ];
    let m = combine(&objects, vec![], true);
    assert_eq!(m.status, TargetStatus::Partial);
    assert_eq!(m.unmarked, vec!["/lib/libx.so"]);
    assert_eq!(m.features, vec!["avx", "avx2"]);
    assert_eq!(m.level, Some(1));
    // A label declares the target: the union grows, the status is declared.
    let mut labels = BTreeMap::new();
    labels.insert(
        "io.archspec.cpu.target".to_string(),
        "x86_64_v3".to_string(),
    );
    let (signals, unknown) = label_signals(&labels);
    assert!(unknown.is_empty());
    let m = combine(&objects, signals, true);
    assert_eq!(m.status, TargetStatus::Declared);
    assert_eq!(m.level, Some(3));
    assert_eq!(m.required.as_deref(), Some("x86_64_v3"));
    // Nothing at all: unknown.
    let m = combine(
        &[Examined {
            path: "/app",
            targets: &lib,
            counts: true,
        }],
        vec![],
        true,
    );
    assert_eq!(m.status, TargetStatus::Unknown);
    assert!(m.features.is_empty());
}

#[test]
fn label_names() {
    let mut labels = BTreeMap::new();
    labels.insert(
        "io.archspec.cpu.target".to_string(),
        "x86-64-v3".to_string(),
    );
    let (sig, unknown) = label_signals(&labels);
    assert_eq!(sig.len(), 1);
    assert_eq!(sig[0].target, "x86_64_v3");
    assert!(unknown.is_empty());
    labels.insert("io.archspec.cpu.target".to_string(), "znver3".to_string());
    let (sig, unknown) = label_signals(&labels);
    assert!(sig.is_empty());
    assert!(
        unknown[0].1.contains("gcc's name for archspec's zen3"),
        "{unknown:?}"
    );
}
