use super::*;
use crate::inventory::cpu::{gcc_march_features, x86_level_features};
use crate::inventory::model::{
    CudaLayout, CudaRuntime, GlibcRequirement, Libc, Microarch, MicroarchSignal, ScanSummary,
    VersionFact,
};

fn mpi(abi: MpiAbi, implementation: &str, version: &str, source: &str, path: &str) -> MpiInstall {
    MpiInstall {
        abi,
        implementation: implementation.into(),
        version: Some(version.into()),
        version_source: Some(source.into()),
        device: None,
        soname: path.rsplit('/').next().unwrap_or_default().into(),
        path: path.into(),
        real_path: path.into(),
    }
}

fn glibc(version: &str, source: &str) -> Libc {
    Libc {
        family: LibcFamily::Glibc,
        version: Some(version.into()),
        version_source: Some(source.into()),
        path: "/lib/x86_64-linux-gnu/libc.so.6".into(),
        loader: Some("/lib64/ld-linux-x86-64.so.2".into()),
        max_symbol_version: Some(format!("GLIBC_{version}")),
    }
}

/// Like the bookworm-mpich root: MPICH 4.0.2, glibc 2.36, libmpich needs GLIBC_2.34, no
/// file records a CPU target.
fn bookworm_mpich() -> Inventory {
    Inventory {
        arch: Some("x86_64".into()),
        libc: Some(glibc("2.36", "release-string")),
        mpi: vec![mpi(
            MpiAbi::Mpich,
            "MPICH",
            "4.0.2",
            "symbol",
            "/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2",
        )],
        glibc_required: Some(GlibcRequirement {
            version: "2.34".into(),
            needed_by: vec!["/usr/lib/x86_64-linux-gnu/libmpich.so.12".into()],
        }),
        microarch: Microarch {
            status: TargetStatus::Unknown,
            level: Some(1),
            unmarked: vec!["/usr/lib/x86_64-linux-gnu/libmpich.so.12".into()],
            ..Microarch::default()
        },
        scan: ScanSummary {
            mode: "default".into(),
            files: 3,
            elf_files: 3,
        },
        ..Inventory::default()
    }
}

/// Like trixie-openmpi: Open MPI 5.0.7, glibc 2.41, ROCm.
fn trixie_openmpi() -> Inventory {
    let mut inv = bookworm_mpich();
    inv.libc = Some(glibc("2.41", "release-string"));
    inv.mpi = vec![mpi(
        MpiAbi::OpenMpi,
        "Open MPI",
        "5.0.7",
        "rodata",
        "/usr/lib/x86_64-linux-gnu/libmpi.so.40.40.7",
    )];
    inv.glibc_required = Some(GlibcRequirement {
        version: "2.38".into(),
        needed_by: vec!["/lib/x86_64-linux-gnu/libmpi.so.40".into()],
    });
    inv.gpu.rocm = Some(VersionFact {
        version: "5.7.31921".into(),
        source: "/usr/lib/x86_64-linux-gnu/libamdhip64.so.5.7.31921".into(),
    });
    inv
}

fn cuda_image() -> Inventory {
    let mut inv = bookworm_mpich();
    inv.mpi.clear();
    inv.gpu.cuda_runtime = Some(VersionFact {
        version: "12.4.127".into(),
        source: "/usr/local/cuda-12.4/version.json".into(),
    });
    inv.gpu.cuda_runtimes = vec![CudaRuntime {
        version: Some("12.4.127".into()),
        major: Some(12),
        layout: CudaLayout::Toolkit,
        library: Some("/usr/local/cuda-12.4/lib64/libcudart.so.12.4.127".into()),
        source: "/usr/local/cuda-12.4/version.json".into(),
    }];
    inv
}

fn signal(target: &str, kind: &str, source: &str, features: &BTreeSet<String>) -> MicroarchSignal {
    MicroarchSignal {
        target: target.into(),
        kind: kind.into(),
        source: source.into(),
        features: features.iter().cloned().collect(),
    }
}

/// Every examined object records x86-64-v3 (an ISA-level note).
fn recorded_v3() -> Inventory {
    let mut inv = bookworm_mpich();
    let f = x86_level_features(3);
    inv.microarch = Microarch {
        status: TargetStatus::Recorded,
        required: Some("x86-64-v3".into()),
        level: Some(3),
        features: f.iter().cloned().collect(),
        signals: vec![signal("x86-64-v3", "x86-isa-note", "/usr/bin/app", &f)],
        ..Microarch::default()
    };
    inv
}

fn carried(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn outcome(checks: &[LabelCheck], key: &str) -> (Outcome, String) {
    let c = checks
        .iter()
        .find(|c| c.key == key)
        .unwrap_or_else(|| panic!("{key} not checked: {checks:?}"));
    (c.outcome, c.files_say.clone())
}

#[test]
fn an_mpich_image_gets_its_family_release_and_glibc() {
    let d = derive(&bookworm_mpich());
    let v = d.values();
    assert_eq!(v[MPI], "mpich");
    assert_eq!(v[MPI_IMPLEMENTATION], "MPICH");
    assert_eq!(v[MPI_VERSION], "4.0.2");
    assert_eq!(v[LIBC], "glibc");
    assert_eq!(v[GLIBC], "2.36");
    assert_eq!(v[GLIBC_REQUIRED], "2.34");
    assert_eq!(
        d.get(GLIBC_REQUIRED).unwrap().from,
        vec!["/usr/lib/x86_64-linux-gnu/libmpich.so.12"]
    );
    assert!(
        d.get(GLIBC_REQUIRED)
            .unwrap()
            .note
            .as_deref()
            .unwrap()
            .contains("--all")
    );
    // Nothing the files cannot tell is given a value, and each says why.
    let unknown: Vec<&str> = d.unknown.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(unknown, vec![GPU, CUDA_VERSION, ROCM_VERSION, CPU_TARGET]);
    let cpu = &d.unknown[3].reason;
    assert!(cpu.contains("no examined file records its target"), "{cpu}");
    assert!(cpu.contains("libmpich.so.12"), "{cpu}");
    assert_eq!(d.derived.len() + d.unknown.len(), VOCABULARY.len());
}

#[test]
fn open_mpi_and_rocm() {
    let v = derive(&trixie_openmpi()).values();
    assert_eq!(v[MPI], "openmpi");
    assert_eq!(v[MPI_IMPLEMENTATION], "Open MPI");
    assert_eq!(v[MPI_VERSION], "5.0.7");
    assert_eq!(v[GPU], "rocm");
    assert_eq!(v[ROCM_VERSION], "5.7.31921");
    assert!(!v.contains_key(CUDA_VERSION));
}

#[test]
fn cuda_runtimes_versioned_or_not() {
    let inv = cuda_image();
    let d = derive(&inv);
    let v = d.values();
    assert_eq!(v[GPU], "cuda");
    assert_eq!(v[CUDA_VERSION], "12.4.127");
    assert_eq!(
        d.get(CUDA_VERSION).unwrap().from,
        vec!["/usr/local/cuda-12.4/version.json"]
    );
    assert!(!v.contains_key(MPI));
    // A libcudart.so.12 that no file versions: the image has CUDA, of no stated version.
    let mut unversioned = inv.clone();
    unversioned.gpu.cuda_runtime = None;
    unversioned.gpu.cuda_runtimes[0].version = None;
    unversioned.gpu.cuda_runtimes[0].layout = CudaLayout::System;
    let d = derive(&unversioned);
    assert_eq!(d.values()[GPU], "cuda");
    let why = &d
        .unknown
        .iter()
        .find(|u| u.key == CUDA_VERSION)
        .unwrap()
        .reason;
    assert!(
        why.contains("only its major version 12 (/usr/local/cuda-12.4/lib64"),
        "{why}"
    );
    // The rule used to call gpu=cuda a contradiction here (no highest stated version).
    let checks = check(
        &carried(&[(GPU, "cuda"), (CUDA_VERSION, "12")]),
        &unversioned,
    );
    assert_eq!(outcome(&checks, GPU).0, Outcome::Agrees);
    assert_eq!(outcome(&checks, CUDA_VERSION).0, Outcome::Unverified);
    let checks = check(&carried(&[(CUDA_VERSION, "11.8")]), &unversioned);
    assert_eq!(
        outcome(&checks, CUDA_VERSION),
        (Outcome::Contradicts, "CUDA 12".into())
    );
}

#[test]
fn derived_labels_agree_with_the_files_they_come_from() {
    for (name, inv) in [
        ("mpich", bookworm_mpich()),
        ("openmpi", trixie_openmpi()),
        ("cuda", cuda_image()),
        ("v3", recorded_v3()),
    ] {
        let d = derive(&inv);
        let checks = check(&d.values(), &inv);
        assert_eq!(checks.len(), d.derived.len(), "{name}");
        for c in &checks {
            assert_eq!(c.outcome, Outcome::Agrees, "{name}: {c:?}");
        }
        assert!(missing(&d.values(), &d).is_empty(), "{name}");
    }
}

#[test]
fn contradictions_name_what_the_files_say() {
    let inv = bookworm_mpich();
    let checks = check(
        &carried(&[
            (MPI, "openmpi"),
            (MPI_IMPLEMENTATION, "Intel MPI"),
            (MPI_VERSION, "4.1"),
            (LIBC, "musl"),
            (GLIBC, "2.31"),
            (GLIBC_REQUIRED, "2.17"),
            (GPU, "cuda"),
            (CUDA_VERSION, "12.4"),
            (ROCM_VERSION, "6.0"),
        ]),
        &inv,
    );
    let said: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| {
            assert_eq!(c.outcome, Outcome::Contradicts, "{c:?}");
            (c.key.as_str(), c.files_say.as_str())
        })
        .collect();
    assert_eq!(
        said,
        vec![
            (GLIBC, "glibc 2.36"),
            (GLIBC_REQUIRED, "GLIBC_2.34"),
            (GPU, "no cuda runtime"),
            (CUDA_VERSION, "no cuda runtime"),
            (ROCM_VERSION, "no rocm runtime"),
            (LIBC, "glibc"),
            (MPI, "mpich"),
            (MPI_IMPLEMENTATION, "MPICH"),
            (MPI_VERSION, "MPICH 4.0.2"),
        ]
    );
    let glibc = checks.iter().find(|c| c.key == GLIBC).unwrap();
    assert_eq!(glibc.from, vec!["/lib/x86_64-linux-gnu/libc.so.6"]);
    // Without MPI, every MPI label is contradicted.
    let checks = check(
        &carried(&[(MPI, "mpich"), (MPI_VERSION, "4")]),
        &cuda_image(),
    );
    assert_eq!(
        outcome(&checks, MPI),
        (Outcome::Contradicts, "no MPI".into())
    );
    assert_eq!(outcome(&checks, MPI_VERSION).0, Outcome::Contradicts);
}

#[test]
fn spellings_that_mean_the_same_agree() {
    let checks = check(
        &carried(&[
            (MPI, "MPICH"),
            (MPI_IMPLEMENTATION, "mpich"),
            (MPI_VERSION, "4.0"),
            (GLIBC, "2.36.0"),
            (GLIBC_REQUIRED, "GLIBC_2.34"),
            ("org.supercontainers.glibc.version", "2.36"),
            ("org.supercontainers.libc.provider", "glibc"),
            ("org.supercontainers.mpi.provider", "mpich"),
        ]),
        &bookworm_mpich(),
    );
    for c in &checks {
        assert_eq!(c.outcome, Outcome::Agrees, "{c:?}");
    }
    assert_eq!(checks.len(), 8);
    let alias = checks
        .iter()
        .find(|c| c.key == "org.supercontainers.mpi.provider")
        .unwrap();
    assert_eq!(alias.label, MPI);
    let checks = check(
        &carried(&[(MPI_IMPLEMENTATION, "openmpi"), (MPI, "open-mpi")]),
        &trixie_openmpi(),
    );
    for c in &checks {
        assert_eq!(c.outcome, Outcome::Agrees, "{c:?}");
    }
    // Cuda's toolkit (12.4.1) and runtime (12.4.127) numbers differ past major.minor.
    let checks = check(&carried(&[(CUDA_VERSION, "12.4.1")]), &cuda_image());
    assert_eq!(outcome(&checks, CUDA_VERSION).0, Outcome::Agrees);
}

#[test]
fn other_keys_are_left_alone() {
    let checks = check(
        &carried(&[
            ("org.supercontainers.inject", "mpi"),
            ("org.supercontainers.policy.label-mismatch", "off"),
            ("org.opencontainers.image.version", "1"),
        ]),
        &bookworm_mpich(),
    );
    assert!(checks.is_empty(), "{checks:?}");
}

#[test]
fn what_the_files_cannot_confirm_is_unverified() {
    let inv = bookworm_mpich();
    let checks = check(
        &carried(&[
            (GPU, "opencl"),
            (GLIBC_REQUIRED, "2.36"),
            (CPU_TARGET, "x86_64_v3"),
        ]),
        &inv,
    );
    for c in &checks {
        assert_eq!(c.outcome, Outcome::Unverified, "{c:?}");
    }
    // With every ELF file examined, needing more than any of them is a contradiction.
    let mut all = inv.clone();
    all.scan.mode = "all".into();
    let checks = check(&carried(&[(GLIBC_REQUIRED, "2.36")]), &all);
    assert_eq!(outcome(&checks, GLIBC_REQUIRED).0, Outcome::Contradicts);
    assert!(derive(&all).get(GLIBC_REQUIRED).unwrap().note.is_none());
}

#[test]
fn a_file_name_version_is_not_a_release() {
    let mut inv = bookworm_mpich();
    inv.mpi[0].version = Some("12.2.2".into());
    inv.mpi[0].version_source = Some("file-name".into());
    let d = derive(&inv);
    assert!(!d.values().contains_key(MPI_VERSION));
    let why = &d
        .unknown
        .iter()
        .find(|u| u.key == MPI_VERSION)
        .unwrap()
        .reason;
    assert!(why.contains("12.2.2 is its file name's numbers"), "{why}");
    let checks = check(&carried(&[(MPI_VERSION, "4.0.2")]), &inv);
    assert_eq!(outcome(&checks, MPI_VERSION).0, Outcome::Unverified);
}

#[test]
fn several_mpi_installations() {
    let mut inv = bookworm_mpich();
    inv.mpi.push(mpi(
        MpiAbi::OpenMpi,
        "Open MPI",
        "4.1.4",
        "rodata",
        "/usr/lib/x86_64-linux-gnu/libmpi.so.40.30.4",
    ));
    let d = derive(&inv);
    let v = d.values();
    assert_eq!(v[MPI], "mpich,openmpi");
    assert_eq!(v[MPI_IMPLEMENTATION], "MPICH,Open MPI");
    let why = &d
        .unknown
        .iter()
        .find(|u| u.key == MPI_VERSION)
        .unwrap()
        .reason;
    assert!(
        why.contains("MPICH 4.0.2") && why.contains("Open MPI 4.1.4"),
        "{why}"
    );
    // Either family alone is true of the image, as both together are.
    for value in ["mpich", "openmpi", "mpich,openmpi"] {
        let checks = check(&carried(&[(MPI, value)]), &inv);
        assert_eq!(outcome(&checks, MPI).0, Outcome::Agrees, "{value}");
    }
    let checks = check(&carried(&[(MPI, "mpich,mpi-abi")]), &inv);
    assert_eq!(outcome(&checks, MPI).0, Outcome::Contradicts);
}

#[test]
fn a_glibc_known_only_by_its_version_nodes() {
    let mut inv = bookworm_mpich();
    inv.libc = Some(glibc("2.34", "symbol-versions"));
    let d = derive(&inv);
    assert!(!d.values().contains_key(GLIBC));
    let checks = check(&carried(&[(GLIBC, "2.31")]), &inv);
    assert_eq!(
        outcome(&checks, GLIBC),
        (Outcome::Contradicts, "glibc 2.34 or later".into())
    );
    let checks = check(&carried(&[(GLIBC, "2.36")]), &inv);
    assert_eq!(outcome(&checks, GLIBC).0, Outcome::Unverified);
}

#[test]
fn a_musl_image() {
    let mut inv = bookworm_mpich();
    inv.mpi.clear();
    inv.glibc_required = None;
    inv.libc = Some(Libc {
        family: LibcFamily::Musl,
        version: Some("1.2.5".into()),
        version_source: Some("version-string".into()),
        path: "/lib/ld-musl-x86_64.so.1".into(),
        loader: Some("/lib/ld-musl-x86_64.so.1".into()),
        max_symbol_version: None,
    });
    let d = derive(&inv);
    assert_eq!(d.values()[LIBC], "musl");
    let why = &d.unknown.iter().find(|u| u.key == GLIBC).unwrap().reason;
    assert!(why.contains("musl 1.2.5"), "{why}");
    let checks = check(&carried(&[(GLIBC, "2.36")]), &inv);
    assert_eq!(
        outcome(&checks, GLIBC),
        (Outcome::Contradicts, "no glibc".into())
    );
}

#[test]
fn cpu_targets_from_the_files() {
    let inv = recorded_v3();
    let d = derive(&inv);
    let cpu = d.get(CPU_TARGET).unwrap();
    assert_eq!(cpu.value, "x86_64_v3");
    assert_eq!(cpu.from, vec!["/usr/bin/app (x86-isa-note x86-64-v3)"]);
    assert!(cpu.note.is_none());
    // A label below what the files need contradicts them, and names the files.
    let checks = check(&carried(&[(CPU_TARGET, "x86_64_v2")]), &inv);
    let c = checks.iter().find(|c| c.key == CPU_TARGET).unwrap();
    assert_eq!(c.outcome, Outcome::Contradicts, "{c:?}");
    assert!(c.files_say.contains("avx2"), "{}", c.files_say);
    assert_eq!(c.from, vec!["/usr/bin/app (x86-isa-note x86-64-v3)"]);
    // Above: the label may know of dispatched code the files cannot show.
    let checks = check(&carried(&[(CPU_TARGET, "x86_64_v4")]), &inv);
    assert_eq!(outcome(&checks, CPU_TARGET).0, Outcome::Unverified);
    let checks = check(
        &carried(&[("org.supercontainers.cpu.target", "x86-64-v3")]),
        &inv,
    );
    assert_eq!(
        outcome(&checks, "org.supercontainers.cpu.target").0,
        Outcome::Agrees
    );
    // Not a name archspec knows: unverified (the inventory reports it as unknown).
    let checks = check(&carried(&[(CPU_TARGET, "znver3")]), &inv);
    assert_eq!(outcome(&checks, CPU_TARGET).0, Outcome::Unverified);

    // Every object records the baseline: the architecture's own name.
    let mut base = bookworm_mpich();
    base.microarch.status = TargetStatus::Recorded;
    base.microarch.unmarked.clear();
    assert_eq!(derive(&base).values()[CPU_TARGET], "x86_64");

    // Some objects record a target, others nothing: a lower bound, said so.
    let mut partial = recorded_v3();
    partial.microarch.status = TargetStatus::Partial;
    partial.microarch.unmarked = vec!["/usr/lib/libx.so".into()];
    let d = derive(&partial);
    let cpu = d.get(CPU_TARGET).unwrap();
    assert_eq!(cpu.value, "x86_64_v3");
    assert!(
        cpu.note
            .as_deref()
            .unwrap()
            .contains("a lower bound: /usr/lib/libx.so"),
        "{cpu:?}"
    );

    // A requirement that includes the image's own label cannot confirm the label.
    let mut labelled = recorded_v3();
    labelled.microarch.signals.push(signal(
        "x86_64_v3",
        "label",
        CPU_TARGET,
        &x86_level_features(3),
    ));
    assert!(derive(&labelled).get(CPU_TARGET).is_none());
    let checks = check(&carried(&[(CPU_TARGET, "x86_64")]), &labelled);
    assert_eq!(outcome(&checks, CPU_TARGET).0, Outcome::Unverified);
}

#[test]
fn a_recorded_gcc_target_gets_its_archspec_name_when_it_asks_for_no_more() {
    let mut inv = bookworm_mpich();
    let haswell = gcc_march_features("haswell").unwrap();
    inv.microarch = Microarch {
        status: TargetStatus::Recorded,
        required: Some("haswell".into()),
        level: Some(3),
        features: haswell.iter().cloned().collect(),
        signals: vec![signal("haswell", "gcc-march", "/usr/bin/app", &haswell)],
        ..Microarch::default()
    };
    // archspec's haswell also names AES, which compilers emit only for its intrinsics:
    // the name adds nothing a verdict would refuse on, and the note says so.
    let d = derive(&inv);
    let cpu = d.get(CPU_TARGET).unwrap();
    assert_eq!(cpu.value, "haswell");
    assert!(
        cpu.note.as_deref().unwrap().contains("also names aes"),
        "{cpu:?}"
    );
    let checks = check(&d.values(), &inv);
    assert_eq!(outcome(&checks, CPU_TARGET).0, Outcome::Agrees);
    // haswell with AVX-512F on top: no archspec target is exactly that.
    let mut plus = haswell.clone();
    plus.insert("avx512f".into());
    inv.microarch.features = plus.iter().cloned().collect();
    inv.microarch.required = Some("haswell+avx512f".into());
    inv.microarch.signals = vec![signal(
        "haswell+avx512f",
        "gcc-march",
        "/usr/bin/app",
        &plus,
    )];
    let d = derive(&inv);
    assert!(d.get(CPU_TARGET).is_none(), "{d:?}");
    // A label of plain haswell leaves out AVX-512F: a contradiction.
    let checks = check(&carried(&[(CPU_TARGET, "haswell")]), &inv);
    let (o, says) = outcome(&checks, CPU_TARGET);
    assert_eq!(o, Outcome::Contradicts);
    assert!(says.contains("avx512f"), "{says}");
}

#[test]
fn missing_labels_are_the_derived_ones_not_carried() {
    let inv = bookworm_mpich();
    let d = derive(&inv);
    let m = missing(
        &carried(&[
            (MPI, "mpich"),
            ("org.supercontainers.glibc.version", "2.36"),
        ]),
        &d,
    );
    let keys: Vec<&str> = m.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![MPI_IMPLEMENTATION, MPI_VERSION, LIBC, GLIBC_REQUIRED]
    );
    assert!(
        m.iter()
            .all(|c| c.outcome == Outcome::Missing && c.declared.is_none())
    );
}

#[test]
fn every_alias_names_a_label_of_the_vocabulary() {
    for (alias, label) in ALIASES {
        assert!(VOCABULARY.contains(label), "{alias}");
        assert!(!VOCABULARY.contains(alias), "{alias}");
        assert_eq!(canonical(alias), Some(*label));
    }
    assert_eq!(canonical("org.supercontainers.inject"), None);
}
