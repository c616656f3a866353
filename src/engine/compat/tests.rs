//! The rules, each as a table of hand-made facts.

use super::loaded::plugins_unusable;
use super::*;
use crate::engine::facts::{HostMpi, HostTarget, Import, MpiLib, TargetSource};
use crate::engine::finding::Severity;
use crate::engine::plan::select;
use crate::inventory::elf::{NeededVersion, VersionNeed};
use crate::inventory::model::{
    FileFinding, Inventory, Libc, Microarch, MicroarchSignal, MixedObject, MpiInstall,
};

fn need(file: &str, versions: &[&str]) -> VersionNeed {
    VersionNeed {
        file: file.into(),
        versions: versions
            .iter()
            .map(|v| NeededVersion {
                name: v.to_string(),
                weak: false,
            })
            .collect(),
    }
}

fn lib(
    path: &str,
    soname: &str,
    needed: &[&str],
    needs: Vec<VersionNeed>,
    defines: &[&str],
) -> Lib {
    Lib {
        path: path.into(),
        soname: Some(soname.into()),
        needed: needed.iter().map(|s| s.to_string()).collect(),
        needs,
        defines: defines.iter().map(|s| s.to_string()).collect(),
        cache_flags: 0x0303,
        search_dirs: vec![],
    }
}

fn install(abi: MpiAbi, implementation: &str, version: &str, soname: &str) -> MpiInstall {
    MpiInstall {
        abi,
        implementation: implementation.into(),
        version: Some(version.into()),
        version_source: Some("symbol".into()),
        device: None,
        soname: soname.into(),
        path: format!("/usr/lib/{soname}"),
        real_path: format!("/usr/lib/{soname}"),
    }
}

/// The version nodes of a glibc 2.`up_to_minor` (x86-64 starts at GLIBC_2.2.5).
fn glibc_defs(up_to_minor: u32) -> Vec<String> {
    std::iter::once("GLIBC_2.2.5".to_string())
        .chain((3..=up_to_minor).map(|m| format!("GLIBC_2.{m}")))
        .collect()
}

/// A container with MPICH 4.0.2 and glibc 2.`container_glibc`, a host with MPICH
/// `host_version` whose library needs GLIBC_2.`host_needs`.
fn mpich_pair(container_glibc: u32, host_needs: u32, host_version: &str) -> Facts {
    let mut f = Facts::default();
    let c_mpi = lib(
        "/usr/lib/libmpich.so.12.2.2",
        "libmpich.so.12",
        &["libc.so.6"],
        vec![],
        &[],
    );
    let app = lib(
        "/app",
        "app",
        &["libmpich.so.12", "libc.so.6"],
        vec![need("libc.so.6", &["GLIBC_2.2.5"])],
        &[],
    );
    let mut c_libc = lib("/usr/lib/libc.so.6", "libc.so.6", &[], vec![], &[]);
    c_libc.defines = glibc_defs(container_glibc);
    f.container.inventory = Some(Inventory {
        arch: Some("x86_64".into()),
        libc: Some(Libc {
            family: LibcFamily::Glibc,
            version: Some(format!("2.{container_glibc}")),
            version_source: None,
            path: "/usr/lib/libc.so.6".into(),
            loader: None,
            max_symbol_version: None,
        }),
        ..Default::default()
    });
    f.container.closure = vec![app, c_mpi.clone(), c_libc.clone()];
    f.container.mpi = Some(MpiLib {
        lib: c_mpi,
        install: Some(install(MpiAbi::Mpich, "MPICH", "4.0.2", "libmpich.so.12")),
        defined_symbols: ["MPI_Init", "MPI_Finalize"].map(String::from).into(),
    });
    f.container.mpi_imports = vec![Import {
        object: "/app".into(),
        symbol: "MPI_Init".into(),
        weak: false,
    }];
    f.container.mpi_targets.insert(
        "libmpich.so.12".into(),
        "/usr/lib/libmpich.so.12.2.2".into(),
    );
    f.container.providers.insert("libc.so.6".into(), c_libc);
    let h_mpi = lib(
        "/usr/lib/libmpich.so.12.9",
        "libmpich.so.12",
        &["libc.so.6", "libhwloc.so.15"],
        vec![need(
            "libc.so.6",
            &[&format!("GLIBC_2.{host_needs}"), "GLIBC_2.2.5"],
        )],
        &[],
    );
    let hwloc = lib(
        "/usr/lib/libhwloc.so.15",
        "libhwloc.so.15",
        &["libc.so.6"],
        vec![need("libc.so.6", &["GLIBC_2.14"])],
        &[],
    );
    f.host.inventory = Some(Inventory {
        arch: Some("x86_64".into()),
        ..Default::default()
    });
    f.host.mpi = Some(HostMpi {
        main: MpiLib {
            lib: h_mpi,
            install: Some(install(
                MpiAbi::Mpich,
                "MPICH",
                host_version,
                "libmpich.so.12",
            )),
            defined_symbols: ["MPI_Init", "MPI_Finalize"].map(String::from).into(),
        },
        deps: vec![hwloc],
        ..Default::default()
    });
    f
}

fn run(f: &Facts, inject: Inject) -> Vec<Finding> {
    check(f, &inject, &select(f, &inject))
}

fn codes(findings: &[Finding]) -> Vec<(Code, super::super::finding::Severity)> {
    findings.iter().map(|f| (f.code, f.severity)).collect()
}

const MPI: Inject = Inject {
    mpi: true,
    gpu: false,
};

#[test]
fn glibc_table() {
    use super::super::finding::Severity::*;
    // (container glibc minor, what the host library needs, expected)
    type Expected = Vec<(Code, super::super::finding::Severity)>;
    let cases: &[(u32, u32, Expected)] = &[
        (36, 34, vec![]),
        (34, 34, vec![]),
        (31, 34, vec![(Code::GlibcTooOld, Error)]),
        (31, 32, vec![(Code::GlibcTooOld, Error)]),
    ];
    for (container, host, expected) in cases {
        let f = mpich_pair(*container, *host, "4.0.2");
        assert_eq!(
            &codes(&run(&f, MPI)),
            expected,
            "container 2.{container}, host needs 2.{host}"
        );
    }
}

#[test]
fn glibc_message_names_versions_and_library() {
    let mut f = mpich_pair(31, 34, "4.0.2");
    if let Some(m) = f.host.mpi.as_mut() {
        m.main.lib.needs = vec![need(
            "libc.so.6",
            &["GLIBC_2.32", "GLIBC_2.34", "GLIBC_2.33", "GLIBC_2.2.5"],
        )];
    }
    let findings = run(&f, MPI);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0].message,
        "host libmpich.so.12 needs GLIBC_2.34 (and 2.33, 2.32); the container has glibc 2.31"
    );
    assert_eq!(
        findings[0].hint.as_deref(),
        Some("use an image based on glibc >= 2.34, or do not inject host libraries")
    );
    assert_eq!(
        findings[0].versions,
        vec!["GLIBC_2.34", "GLIBC_2.33", "GLIBC_2.32"]
    );
}

#[test]
fn nothing_injected_nothing_checked_but_the_rest() {
    let f = mpich_pair(31, 34, "4.0.2");
    assert!(run(&f, Inject::default()).is_empty());
}

/// `mpich_pair` with the container linking `c_soname` (MPICH `c_version`'s build of
/// it) and the host's main library `h_soname` of MPICH `h_version`.
fn abi_pair(c_soname: &str, c_version: &str, h_soname: &str, h_version: &str) -> Facts {
    let mut f = mpich_pair(36, 34, h_version);
    let abi = |s: &str| {
        if s.starts_with("libmpi_abi.") {
            MpiAbi::Standard
        } else {
            MpiAbi::Mpich
        }
    };
    let c = f.container.mpi.as_mut().unwrap();
    c.lib.path = format!("/opt/venv/lib/{c_soname}");
    c.lib.soname = Some(c_soname.into());
    c.install = Some(install(abi(c_soname), "MPICH", c_version, c_soname));
    f.container.closure[0].needed = vec![c_soname.into(), "libc.so.6".into()];
    f.container.mpi_targets.clear();
    f.container
        .mpi_targets
        .insert(c_soname.into(), format!("/opt/venv/lib/{c_soname}"));
    let h = f.host.mpi.as_mut().unwrap();
    h.main.lib.path = format!("/sw/mpich/lib/{h_soname}");
    h.main.lib.soname = Some(h_soname.into());
    h.main.install = Some(install(abi(h_soname), "MPICH", h_version, h_soname));
    f
}

#[test]
fn the_standard_abi_is_served_by_its_own_soname_only() {
    use super::super::finding::Severity::*;
    // Any implementation's libmpi_abi.so.1 serves it, older or not.
    let f = abi_pair("libmpi_abi.so.1", "5.0.2", "libmpi_abi.so.1", "5.0.2");
    assert_eq!(codes(&run(&f, MPI)), vec![]);
    // The MPICH ABI does not, whatever its version.
    let f = abi_pair("libmpi_abi.so.1", "5.0.2", "libmpich.so.12", "5.0.2");
    let found = run(&f, MPI);
    assert_eq!(codes(&found), vec![(Code::MpiStandardAbiMissing, Error)]);
    assert!(
        found[0]
            .message
            .contains("no host installation provides libmpi_abi.so.1")
    );
    assert!(found[0].message.contains("MPICH 5.0.2 (libmpich.so.12)"));
    // Nor does another ABI version: MPICH 5.0.1's draft is not ABI 1.
    let f = abi_pair("libmpi_abi.so.0", "5.0.1", "libmpi_abi.so.1", "5.0.2");
    let found = run(&f, MPI);
    assert_eq!(codes(&found), vec![(Code::MpiStandardAbiMissing, Error)]);
    assert!(found[0].message.contains("draft"), "{}", found[0].message);
}

#[test]
fn an_implementations_own_profiling_library_ties_the_standard_abi_to_it() {
    use super::super::finding::Severity::*;
    let mut f = abi_pair("libmpi_abi.so.1", "5.0.2", "libmpi_abi.so.1", "5.0.2");
    f.container.closure[0]
        .needed
        .push("libpmpi_abi.so.1".into());
    // The same implementation: fine.
    assert_eq!(codes(&run(&f, MPI)), vec![]);
    let h = f.host.mpi.as_mut().unwrap();
    h.main.install.as_mut().unwrap().implementation = "Open MPI".into();
    let found = run(&f, MPI);
    assert_eq!(codes(&found), vec![(Code::MpiAbiFamilyMismatch, Error)]);
    assert!(
        found[0].message.contains("libpmpi_abi.so.1"),
        "{}",
        found[0].message
    );
}

#[test]
fn many_unusable_plugins_are_one_finding() {
    let group = |n: usize| -> Vec<(String, String, Vec<String>)> {
        (0..n)
            .map(|i| {
                (
                    format!("/usr/lib/libibverbs/lib{i}-rdmav34.so"),
                    "needs GLIBC_2.34".to_string(),
                    vec!["GLIBC_2.34".to_string()],
                )
            })
            .collect()
    };
    assert_eq!(plugins_unusable(&group(3)).len(), 3);
    let one = plugins_unusable(&group(7));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].objects.len(), 7);
    assert_eq!(one[0].versions, vec!["GLIBC_2.34"]);
    assert!(
        one[0].message.starts_with("7 host plugins")
            && one[0].message.contains("and so do 6 more (lib1-rdmav34.so, lib2-rdmav34.so, lib3-rdmav34.so, lib4-rdmav34.so and 2 others)"),
        "{}",
        one[0].message
    );
}

#[test]
fn the_draft_abi_of_another_release_is_unverified() {
    use super::super::finding::Severity::*;
    let f = abi_pair("libmpi_abi.so.0", "5.0.1", "libmpi_abi.so.0", "5.0.1");
    assert_eq!(codes(&run(&f, MPI)), vec![]);
    let f = abi_pair("libmpi_abi.so.0", "5.0.0", "libmpi_abi.so.0", "5.0.1");
    let found = run(&f, MPI);
    assert_eq!(codes(&found), vec![(Code::MpiAbiDraft, Warning)]);
    assert_eq!(found[0].versions, vec!["5.0.0", "5.0.1"]);
}

#[test]
fn host_older_is_a_warning_and_symbols_decide() {
    use super::super::finding::Severity::*;
    let mut f = mpich_pair(36, 34, "3.4.1");
    assert_eq!(codes(&run(&f, MPI)), vec![(Code::MpiHostOlder, Warning)]);
    f.container.mpi_imports.push(Import {
        object: "/app".into(),
        symbol: "MPI_Comm_idup_with_info".into(),
        weak: false,
    });
    f.container.mpi_imports.push(Import {
        object: "/app".into(),
        symbol: "MPIX_Something".into(),
        weak: true,
    });
    let got = run(&f, MPI);
    assert_eq!(
        codes(&got),
        vec![
            (Code::MpiHostOlder, Warning),
            (Code::MpiSymbolMissing, Error),
            (Code::MpiSymbolMissing, Warning)
        ]
    );
    assert_eq!(got[1].versions, vec!["MPI_Comm_idup_with_info"]);
}

#[test]
fn abi_family_mismatch() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    if let Some(m) = f.host.mpi.as_mut() {
        m.main.install = Some(install(
            MpiAbi::OpenMpi,
            "Open MPI",
            "4.1.4",
            "libmpi.so.40",
        ));
        m.main.lib.soname = Some("libmpi.so.40".into());
    }
    let got = run(&f, MPI);
    assert_eq!(
        codes(&got),
        vec![(
            Code::MpiAbiFamilyMismatch,
            super::super::finding::Severity::Error
        )]
    );
    assert!(
        got[0].message.contains("MPICH 4.0.2 (libmpich.so.12)"),
        "{}",
        got[0].message
    );
    assert!(
        got[0].message.contains("Open MPI 4.1.4 (libmpi.so.40)"),
        "{}",
        got[0].message
    );
}

#[test]
fn compiler_runtime_versions_are_checked_both_ways() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    let c_stdcxx = lib(
        "/usr/lib/libstdc++.so.6.0.28",
        "libstdc++.so.6",
        &[],
        vec![],
        &["GLIBCXX_3.4", "GLIBCXX_3.4.28"],
    );
    f.container
        .providers
        .insert("libstdc++.so.6".into(), c_stdcxx);
    if let Some(m) = f.host.mpi.as_mut() {
        m.deps[0].needed.push("libstdc++.so.6".into());
        m.deps[0]
            .needs
            .push(need("libstdc++.so.6", &["GLIBCXX_3.4.30"]));
    }
    let got = run(&f, MPI);
    assert_eq!(
        codes(&got),
        vec![(
            Code::SymbolVersionMissing,
            super::super::finding::Severity::Error
        )]
    );
    assert_eq!(got[0].versions, vec!["GLIBCXX_3.4.30"]);
    // The container's own objects against an injected library: the app needs a
    // version of libhwloc the host's copy does not define.
    let mut f = mpich_pair(36, 34, "4.0.2");
    f.container.closure[0].needed.push("libhwloc.so.15".into());
    f.container.closure[0]
        .needs
        .push(need("libhwloc.so.15", &["HWLOC_2.9"]));
    let got = run(&f, MPI);
    assert_eq!(
        codes(&got),
        vec![(
            Code::SymbolVersionMissing,
            super::super::finding::Severity::Error
        )]
    );
    assert!(
        got[0]
            .message
            .starts_with("the container's /app needs HWLOC_2.9"),
        "{}",
        got[0].message
    );
}

#[test]
fn missing_dependency() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    if let Some(m) = f.host.mpi.as_mut() {
        m.deps[0].needed.push("libnotanywhere.so.1".into());
    }
    let got = run(&f, MPI);
    assert_eq!(
        codes(&got),
        vec![(Code::LibraryMissing, super::super::finding::Severity::Error)]
    );
}

#[test]
fn open_mpi_5_removed_interfaces() {
    let mut f = mpich_pair(36, 34, "5.0.7");
    let c_ompi = lib(
        "/usr/lib/libmpi.so.40.30.4",
        "libmpi.so.40",
        &["libc.so.6"],
        vec![],
        &[],
    );
    f.container.mpi = Some(MpiLib {
        lib: c_ompi,
        install: Some(install(
            MpiAbi::OpenMpi,
            "Open MPI",
            "4.1.4",
            "libmpi.so.40",
        )),
        defined_symbols: ["MPI_Init"].map(String::from).into(),
    });
    f.container.mpi_targets = [(
        "libmpi.so.40".to_string(),
        "/usr/lib/libmpi.so.40.30.4".to_string(),
    )]
    .into();
    f.container.closure[0].needed = vec![
        "libmpi.so.40".into(),
        "libmpi_cxx.so.40".into(),
        "libc.so.6".into(),
    ];
    if let Some(m) = f.host.mpi.as_mut() {
        m.main.install = Some(install(
            MpiAbi::OpenMpi,
            "Open MPI",
            "5.0.7",
            "libmpi.so.40",
        ));
        m.main.lib.soname = Some("libmpi.so.40".into());
    }
    let got = run(&f, MPI);
    assert_eq!(
        codes(&got)[0],
        (
            Code::Openmpi5RemovedInterface,
            super::super::finding::Severity::Error
        )
    );
    assert!(
        got[0].message.contains("/app needs libmpi_cxx.so.40"),
        "{}",
        got[0].message
    );
}

#[test]
fn shadowed_mpi_library() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    f.container.mpi_shadowed.push((
        "/app".into(),
        "libmpich.so.12".into(),
        "/usr/lib/glibc-hwcaps/x86-64-v3/libmpich.so.12".into(),
    ));
    assert_eq!(
        codes(&run(&f, MPI)),
        vec![(
            Code::LibraryShadowed,
            super::super::finding::Severity::Error
        )]
    );
}

#[test]
fn musl_and_static_cannot_take_libraries() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    if let Some(inv) = f.container.inventory.as_mut() {
        inv.libc.as_mut().unwrap().family = LibcFamily::Musl;
    }
    f.container.static_entrypoint = true;
    let got: Vec<Code> = run(&f, MPI).iter().map(|f| f.code).collect();
    assert!(
        got.contains(&Code::LibcFamilyMismatch) && got.contains(&Code::StaticEntrypoint),
        "{got:?}"
    );
}

fn on_host(f: &mut Facts, target: &str) {
    let (name, features) = crate::inventory::cpu::target_as_host(target).unwrap();
    f.host.target = Some(HostTarget {
        name,
        features,
        source: TargetSource::HostTargetOption,
        config_file: None,
    });
}

fn needs(target: &str, kind: &str, status: TargetStatus) -> Microarch {
    let features: Vec<String> = crate::inventory::cpu::target_features(target)
        .unwrap()
        .into_iter()
        .collect();
    Microarch {
        status,
        required: Some(target.into()),
        level: Some(crate::inventory::cpu::x86_level_of(
            &features.iter().cloned().collect(),
        )),
        features: features.clone(),
        mixed: vec![],
        signals: vec![MicroarchSignal {
            target: target.into(),
            kind: kind.into(),
            source: "/app".into(),
            features,
        }],
        unmarked: vec![],
    }
}

fn set_microarch(f: &mut Facts, m: Microarch) {
    if let Some(inv) = f.container.inventory.as_mut() {
        inv.microarch = m;
    }
}

#[test]
fn arch_and_microarch() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    if let Some(inv) = f.host.inventory.as_mut() {
        inv.arch = Some("aarch64".into());
    }
    assert_eq!(run(&f, Inject::default())[0].code, Code::ArchMismatch);

    let mut f = mpich_pair(36, 34, "4.0.2");
    on_host(&mut f, "haswell");
    set_microarch(
        &mut f,
        needs("x86_64_v4", "x86-isa-note", TargetStatus::Recorded),
    );
    let got = run(&f, Inject::default());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].code, Code::MicroarchUnsupported);
    assert_eq!(
        got[0].versions,
        vec!["avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"]
    );
    assert_eq!(got[0].objects, vec!["/app (x86-isa-note x86_64_v4)"]);
    // Built for the host's own level: fine.
    set_microarch(
        &mut f,
        needs("x86_64_v3", "x86-isa-note", TargetStatus::Recorded),
    );
    assert!(run(&f, Inject::default()).is_empty());
    // Features, not lineage: a haswell build on an AMD zen2 (every Haswell feature).
    on_host(&mut f, "zen2");
    set_microarch(
        &mut f,
        needs("haswell", "gcc-march", TargetStatus::Recorded),
    );
    assert!(run(&f, Inject::default()).is_empty());
}

#[test]
fn intrinsic_only_extensions_are_unverified_not_refused() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    // A znver3 build on a Haswell: it has every feature compilers emit on their own; it
    // lacks SHA, SSE4a, VAES and VPCLMULQDQ, which only intrinsics reach.
    on_host(&mut f, "haswell");
    set_microarch(&mut f, needs("znver3", "gcc-march", TargetStatus::Recorded));
    let got = run(&f, Inject::default());
    let codes: Vec<(Code, Severity)> = got.iter().map(|x| (x.code, x.severity)).collect();
    assert_eq!(
        codes,
        vec![(Code::MicroarchUnverified, Severity::Warning)],
        "{got:?}"
    );
    assert_eq!(
        got[0].versions,
        vec!["sha_ni", "sse4a", "vaes", "vpclmulqdq"]
    );
    // One feature a compiler emits on its own is enough to refuse, and all are named.
    on_host(&mut f, "sandybridge");
    let got = run(&f, Inject::default());
    assert_eq!(got[0].code, Code::MicroarchUnsupported, "{got:?}");
    assert!(
        got[0].versions.contains(&"avx2".to_string())
            && got[0].versions.contains(&"sha_ni".to_string())
    );
}

#[test]
fn microarch_uncertain_and_headroom() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    on_host(&mut f, "haswell");
    // A baseline main with an AVX-512 kernel: unverified (a warning), not refused.
    let mut m = needs("x86_64", "gcc-march", TargetStatus::Recorded);
    m.level = Some(1);
    m.mixed = vec![MixedObject {
        object: "/app".into(),
        targets: vec!["x86-64".into(), "skylake-avx512".into()],
        features: vec!["avx512f".into(), "avx512vl".into(), "avx2".into()],
        dispatch: None,
    }];
    set_microarch(&mut f, m.clone());
    let got = run(&f, Inject::default());
    let codes: Vec<Code> = got.iter().map(|x| x.code).collect();
    assert_eq!(
        codes,
        vec![Code::MicroarchUnverified, Code::MicroarchHeadroom],
        "{got:?}"
    );
    assert_eq!(got[0].versions, vec!["avx512f", "avx512vl"]);
    assert!(
        got[0].message.contains("no run-time CPU check"),
        "{}",
        got[0].message
    );
    assert!(got[1].message.contains("level 1") && got[1].message.contains("level 3"));
    m.mixed[0].dispatch = Some("__cpu_model in .strtab".into());
    set_microarch(&mut f, m.clone());
    let got = run(&f, Inject::default());
    assert!(got[0].message.contains("__cpu_model"), "{}", got[0].message);
    // A host with the kernel's features: nothing to say about it.
    on_host(&mut f, "skylake_avx512");
    set_microarch(&mut f, needs("x86_64_v4", "label", TargetStatus::Declared));
    assert!(run(&f, Inject::default()).is_empty());
    // Nothing recorded: unknown, said as information, and the verdict stands.
    let mut m = Microarch {
        level: Some(1),
        unmarked: vec!["/app".into(), "/lib/libx.so".into()],
        ..Microarch::default()
    };
    set_microarch(&mut f, m.clone());
    let got = run(&f, Inject::default());
    let codes: Vec<(Code, Severity)> = got.iter().map(|x| (x.code, x.severity)).collect();
    // (No headroom: nothing says what it is built for.)
    assert_eq!(codes, vec![(Code::MicroarchUnknown, Severity::Info)]);
    assert!(
        got[0].message.contains("/app, /lib/libx.so"),
        "{}",
        got[0].message
    );
    // A label with an unknown name: a warning in the verdict.
    m.unmarked.clear();
    m.level = Some(4);
    set_microarch(&mut f, m);
    if let Some(inv) = f.container.inventory.as_mut() {
        inv.findings.push(FileFinding {
            code: FileCode::UnknownCpuTarget,
            path: "io.archspec.cpu.target".into(),
            message: "label io.archspec.cpu.target=znver3: not a target archspec knows".into(),
        });
    }
    let got = run(&f, Inject::default());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].code, got[0].severity),
        (Code::CpuTargetUnknown, Severity::Warning)
    );
}

#[test]
fn labels_that_contradict_the_files() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    if let Some(inv) = f.container.inventory.as_mut() {
        inv.mpi = vec![install(MpiAbi::Mpich, "MPICH", "4.0.2", "libmpich.so.12")];
        inv.labels
            .insert("org.supercontainers.mpi".into(), "openmpi".into());
        inv.labels
            .insert("org.supercontainers.glibc".into(), "2.36.0".into());
    }
    let got = run(&f, Inject::default());
    assert_eq!(
        codes(&got),
        vec![(
            Code::LabelMismatch,
            super::super::finding::Severity::Warning
        )]
    );
    assert_eq!(
        got[0].message,
        "label org.supercontainers.mpi=openmpi but the files say mpich"
    );
}

#[test]
fn glibc_listed_for_injection_is_refused() {
    let mut f = mpich_pair(36, 34, "4.0.2");
    f.host.glibc_listed = vec!["/lib/x86_64-linux-gnu/libc.so.6".into()];
    assert!(
        run(&f, MPI)
            .iter()
            .any(|x| x.code == Code::GlibcPartialInjection)
    );
}
