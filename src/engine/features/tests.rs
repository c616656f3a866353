//! Features and needs: each ladder is checked against the relation it stands for, over
//! every combination of a range, so that "fits" means what `check-bundle` decides.

use std::collections::BTreeSet;

use super::render::{
    k8s_affinity_yaml, nfd_compatibility_yaml, nfd_feature_file, rfc3339, slurm_constraint,
    slurm_features,
};
use super::*;
use crate::engine::cuda::{self, CudaCheck};
use crate::engine::facts::{ContainerFacts, Lib, MpiLib};
use crate::engine::hostdesc::{HostDescription, Installation};
use crate::engine::request::Inject;
use crate::inventory::cpu::{is_intrinsic_only, missing_features, x86_level_features};
use crate::inventory::model::{
    CudaLayout, CudaRuntime, Inventory, Libc, LibcFamily, MpiAbi, MpiInstall, TargetStatus,
    VersionFact,
};
use crate::inventory::mpi_host::MpiOrigin;

const MPI: Inject = Inject {
    mpi: true,
    gpu: false,
};
const NONE: Inject = Inject {
    mpi: false,
    gpu: false,
};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn host(usable: &BTreeSet<String>, glibc: &str) -> HostDescription {
    let cpu = serde_json::from_value(serde_json::json!({
        "arch": "x86_64", "microarchitecture": "x86_64", "vendor": "GenuineIntel",
        "generic_level": "x86_64_v1", "features": usable, "usable_features": usable,
        "cross_check": {"source": "cpuid", "agrees": true, "notes": []}
    }))
    .expect("a CPU description");
    HostDescription {
        inventory: Inventory {
            arch: Some("x86_64".into()),
            cpu: Some(cpu),
            libc: Some(Libc {
                family: LibcFamily::Glibc,
                version: Some(glibc.into()),
                version_source: None,
                path: "/lib/x86_64-linux-gnu/libc.so.6".into(),
                loader: None,
                max_symbol_version: None,
            }),
            ..Default::default()
        },
        mpi_installations: Vec::new(),
    }
}

fn installation(abi: MpiAbi, soname: &str, version: &str, glibc: Option<&str>) -> Installation {
    Installation {
        implementation: Some(
            match abi {
                MpiAbi::OpenMpi => "Open MPI",
                _ => "MPICH",
            }
            .into(),
        ),
        version: Some(version.into()),
        abi: Some(abi),
        soname: soname.into(),
        path: format!("/usr/lib/{soname}"),
        origin: MpiOrigin::LoaderCache,
        found_in: "/etc/ld.so.cache".into(),
        prefix: None,
        family: Vec::new(),
        glibc_needed: glibc.map(str::to_string),
        problems: Vec::new(),
    }
}

fn lib(path: &str, soname: &str, needed: &[&str]) -> Lib {
    Lib {
        path: path.into(),
        soname: Some(soname.into()),
        needed: needed.iter().map(|s| s.to_string()).collect(),
        needs: vec![],
        defines: vec![],
        cache_flags: 0x0303,
        search_dirs: vec![],
    }
}

fn image(
    features: &BTreeSet<String>,
    glibc: Option<&str>,
    mpi: Option<(MpiAbi, &str, &str)>,
) -> ContainerFacts {
    let mut inv = Inventory {
        arch: Some("x86_64".into()),
        libc: Some(Libc {
            family: LibcFamily::Glibc,
            version: glibc.map(str::to_string),
            version_source: None,
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            loader: None,
            max_symbol_version: glibc.map(|g| format!("GLIBC_{g}")),
        }),
        ..Default::default()
    };
    inv.microarch.features = features.iter().cloned().collect();
    inv.microarch.status = TargetStatus::Recorded;
    ContainerFacts {
        inventory: Some(inv),
        mpi: mpi.map(|(abi, soname, version)| MpiLib {
            lib: lib(&format!("/usr/lib/{soname}"), soname, &["libc.so.6"]),
            install: Some(MpiInstall {
                abi,
                implementation: "MPI".into(),
                version: Some(version.into()),
                version_source: None,
                device: None,
                soname: soname.into(),
                path: format!("/usr/lib/{soname}"),
                real_path: format!("/usr/lib/{soname}"),
            }),
            defined_symbols: Default::default(),
        }),
        ..Default::default()
    }
}

/// Code-generation features that decide something (the only kind an image's files
/// record), in a fixed order.
fn universe() -> Vec<String> {
    let mut all: BTreeSet<String> = x86_level_features(4);
    all.extend(set(&[
        "aes",
        "pclmulqdq",
        "sha_ni",
        "avx512_vnni",
        "avx512vbmi",
        "gfni",
        "vaes",
        "rdrnd",
    ]));
    all.retain(|f| crate::inventory::cpu::is_x86_codegen(f));
    assert!(all.len() > 25, "{all:?}");
    all.into_iter().collect()
}

/// A deterministic sequence of subsets of `items`.
fn subsets(items: &[String], count: usize, seed: u64) -> Vec<BTreeSet<String>> {
    let mut x = seed;
    (0..count)
        .map(|i| {
            let mut s = BTreeSet::new();
            for item in items {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Dense sets at first, sparse later: levels are reached and missed.
                if x % 16 < 16 - (i as u64 % 12) {
                    s.insert(item.clone());
                }
            }
            s
        })
        .collect()
}

#[test]
fn a_cpu_need_fits_exactly_when_the_host_has_every_feature() {
    let items = universe();
    let images = subsets(&items, 60, 0x9e37_79b9_7f4a_7c15);
    // Every x86-64 CPU has the baseline (the architecture's name stands for it).
    let hosts: Vec<BTreeSet<String>> = subsets(&items, 60, 0xd1b5_4a32_d192_ed03)
        .into_iter()
        .map(|mut h| {
            h.extend(
                crate::inventory::cpu::X86_BASELINE
                    .iter()
                    .map(|f| f.to_string()),
            );
            h
        })
        .collect();
    let (mut fit, mut unfit) = (0, 0);
    for r in &images {
        let n = need(&image(r, Some("2.36"), None), &NONE);
        for h in &hosts {
            let offer = offer(&host(h, "2.36"));
            let wanted: BTreeSet<String> = r
                .iter()
                .filter(|f| !is_intrinsic_only(f))
                .cloned()
                .collect();
            let truth = missing_features(&wanted, h).is_empty();
            let got = fits(&n, &offer.features).is_empty();
            assert_eq!(
                got,
                truth,
                "image {r:?} on host {h:?}: needs {:?}",
                n.names()
            );
            if truth { fit += 1 } else { unfit += 1 }
        }
    }
    // Both outcomes are exercised, many times.
    assert!(fit > 200 && unfit > 200, "fit {fit}, unfit {unfit}");
}

#[test]
fn levels_are_a_ladder_and_flags_beyond_them_are_named() {
    let v3 = x86_level_features(3);
    let o = offer(&host(&v3, "2.36"));
    for f in [
        "arch_x86_64",
        "x86_64_v1",
        "x86_64_v2",
        "x86_64_v3",
        "isa_avx2",
        "cpu_nehalem",
    ] {
        assert!(o.features.contains(f), "{f} in {:?}", o.features);
    }
    // Haswell also has AES and PCLMUL, which the level does not.
    assert!(!o.features.contains("cpu_haswell"));
    assert!(!o.features.contains("x86_64_v4") && !o.features.contains("isa_sse2"));
    let mut wanted = x86_level_features(3);
    wanted.insert("avx512f".into());
    let n = need(&image(&wanted, Some("2.36"), None), &NONE);
    assert_eq!(n.names(), ["arch_x86_64", "x86_64_v3", "isa_avx512f"]);
    let miss = fits(&n, &o.features);
    assert_eq!(miss.len(), 1);
    assert_eq!(miss[0].feature, "isa_avx512f");
    assert_eq!(miss[0].node, "the node's CPU lacks avx512f");
    // avx2 alone is below any level: the flag is needed, and a v3 node has it.
    let n = need(&image(&set(&["avx2"]), Some("2.36"), None), &NONE);
    assert_eq!(n.names(), ["arch_x86_64", "isa_avx2"]);
    assert!(fits(&n, &o.features).is_empty());
}

#[test]
fn an_mpi_fits_exactly_when_it_needs_no_newer_glibc_than_the_image_ships() {
    for needed in 17..=55u32 {
        let mut h = host(&set(&[]), "2.36");
        h.mpi_installations.push(installation(
            MpiAbi::Mpich,
            "libmpich.so.12",
            "4.0.2",
            Some(&format!("2.{needed}")),
        ));
        let o = offer(&h);
        for shipped in 17..=55u32 {
            let n = need(
                &image(
                    &set(&[]),
                    Some(&format!("2.{shipped}")),
                    Some((MpiAbi::Mpich, "libmpich.so.12", "4.0.2")),
                ),
                &MPI,
            );
            let got = fits(&n, &o.features).is_empty();
            let truth = needed <= shipped;
            if needed <= catalog::GLIBC_TOP {
                assert_eq!(got, truth, "MPI needs 2.{needed}, image ships 2.{shipped}");
            } else {
                // Beyond the ladder's top a node is never chosen: never a false fit.
                assert!(
                    !got || truth,
                    "MPI needs 2.{needed}, image ships 2.{shipped}"
                );
            }
        }
    }
}

#[test]
fn the_family_is_the_first_installation_of_it_as_check_bundle_chooses() {
    let mut h = host(&set(&[]), "2.36");
    h.mpi_installations = vec![
        installation(MpiAbi::Mpich, "libmpi.so.12", "2021.13", Some("2.34")),
        installation(MpiAbi::Mpich, "libmpich.so.12", "3.4.1", Some("2.28")),
        installation(MpiAbi::OpenMpi, "libmpi.so.40", "5.0.7", Some("2.38")),
    ];
    let o = offer(&h);
    assert!(o.features.contains("mpi_mpich_glibc_2.34"));
    assert!(
        !o.features.contains("mpi_mpich_glibc_2.33"),
        "the first MPICH-ABI one counts"
    );
    assert!(o.features.contains("mpi_openmpi") && !o.features.contains("mpi_openmpi_legacy"));
    let n = need(
        &image(
            &set(&[]),
            Some("2.31"),
            Some((MpiAbi::Mpich, "libmpich.so.12", "4.0.2")),
        ),
        &MPI,
    );
    let miss = fits(&n, &o.features);
    assert_eq!(miss.len(), 1, "{miss:?}");
    assert_eq!(
        miss[0].node,
        "the node's MPICH-ABI installation needs GLIBC_2.34"
    );
    let n = need(
        &image(
            &set(&[]),
            Some("2.41"),
            Some((MpiAbi::OpenMpi, "libmpi.so.40", "4.1.0")),
        ),
        &MPI,
    );
    assert_eq!(n.names(), ["arch_x86_64", "mpi_openmpi_glibc_2.41"]);
    assert!(fits(&n, &o.features).is_empty());
    // Without an MPI of the family the node says what it has.
    let mut only_ompi = host(&set(&[]), "2.36");
    only_ompi.mpi_installations = vec![installation(
        MpiAbi::OpenMpi,
        "libmpi.so.40",
        "4.1.0",
        Some("2.30"),
    )];
    let n = need(
        &image(
            &set(&[]),
            Some("2.36"),
            Some((MpiAbi::Mpich, "libmpich.so.12", "4.0.2")),
        ),
        &MPI,
    );
    let miss = fits(&n, &offer(&only_ompi).features);
    assert_eq!(miss[0].node, "the node's MPI is openmpi (mpich wanted)");
    // A description without glibc_needed vouches for nothing.
    let mut old = host(&set(&[]), "2.36");
    old.mpi_installations = vec![installation(MpiAbi::Mpich, "libmpich.so.12", "4.0.2", None)];
    let o = offer(&old);
    assert!(
        o.features.contains("mpi_mpich")
            && !o.features.iter().any(|f| f.starts_with("mpi_mpich_glibc"))
    );
    assert!(o.notes.iter().any(|n| n.contains("not in the description")));
}

#[test]
fn what_no_node_can_fix_is_said_never_placed() {
    let no_mpi = need(&image(&set(&[]), Some("2.36"), None), &MPI);
    assert!(
        no_mpi.nowhere[0].starts_with("mpi-not-found"),
        "{:?}",
        no_mpi.nowhere
    );
    let unknown_glibc = need(
        &image(
            &set(&[]),
            None,
            Some((MpiAbi::Mpich, "libmpich.so.12", "4.0.2")),
        ),
        &MPI,
    );
    assert!(unknown_glibc.nowhere[0].starts_with("glibc-too-old"));
    // The name no node offers comes first: a scheduler refuses the job.
    assert_eq!(no_mpi.all[0].feature, "runs_nowhere");
    let best = offer(&host(&x86_level_features(4), "2.41"));
    let miss = fits(&no_mpi, &best.features);
    assert_eq!(miss[0].node, "no node can offer it");
    assert!(miss[0].why.contains("mpi-not-found"));
    let mut musl = image(
        &set(&[]),
        Some("2.36"),
        Some((MpiAbi::Mpich, "libmpich.so.12", "4.0.2")),
    );
    musl.inventory
        .as_mut()
        .unwrap()
        .libc
        .as_mut()
        .unwrap()
        .family = LibcFamily::Musl;
    assert!(
        need(&musl, &MPI)
            .nowhere
            .iter()
            .any(|w| w.starts_with("libc-family-mismatch"))
    );
    // Without injection, none of it matters.
    assert!(need(&musl, &NONE).nowhere.is_empty());
}

#[test]
fn open_mpi_4_programs_that_link_its_removed_libraries_need_a_legacy_node() {
    let mut c = image(
        &set(&[]),
        Some("2.36"),
        Some((MpiAbi::OpenMpi, "libmpi.so.40", "4.1.4")),
    );
    c.closure = vec![lib(
        "/usr/bin/app",
        "app",
        &["libmpi_cxx.so.40", "libmpi.so.40"],
    )];
    let n = need(&c, &MPI);
    assert!(n.names().contains(&"mpi_openmpi_legacy"), "{:?}", n.names());
    let mut h = host(&set(&[]), "2.36");
    h.mpi_installations = vec![installation(
        MpiAbi::OpenMpi,
        "libmpi.so.40",
        "5.0.7",
        Some("2.34"),
    )];
    let miss = fits(&n, &offer(&h).features);
    assert_eq!(miss.len(), 1);
    assert!(miss[0].why.contains("/usr/bin/app needs libmpi_cxx.so.40"));
    h.mpi_installations[0].version = Some("4.1.6".into());
    assert!(fits(&n, &offer(&h).features).is_empty());
}

#[test]
fn a_cuda_runtime_fits_exactly_the_drivers_check_bundle_lets_run_it() {
    let drivers = [
        "418.39",
        "450.51.05",
        "470.57.02",
        "525.60.13",
        "535.104.05",
        "550.54.14",
        "570.86.10",
        "580.65.06",
    ];
    let runtimes = [
        "10.1", "11.0.3", "11.8.89", "12.0.1", "12.2.140", "12.4", "12.8.93", "12.9.79", "13.0.48",
    ];
    let mut seen = BTreeSet::new();
    for d in drivers {
        let mut h = host(&set(&[]), "2.36");
        h.inventory.gpu.nvidia_driver = Some(VersionFact {
            version: d.into(),
            source: "/proc/driver/nvidia/version".into(),
        });
        let o = offer(&h);
        for r in runtimes {
            let mut c = image(&set(&[]), Some("2.36"), None);
            c.inventory.as_mut().unwrap().gpu.cuda_runtimes = vec![CudaRuntime {
                version: Some(r.into()),
                major: r.split('.').next().and_then(|m| m.parse().ok()),
                layout: CudaLayout::Pip,
                library: Some("/usr/lib/libcudart.so.12".into()),
                source: "nvidia_cuda_runtime_cu12-x.dist-info/METADATA".into(),
            }];
            let n = need(&c, &NONE);
            let truth = matches!(
                cuda::check(d, r, false),
                CudaCheck::Supported | CudaCheck::MinorVersionCompatible { .. }
            );
            assert_eq!(
                fits(&n, &o.features).is_empty(),
                truth,
                "runtime {r} on driver {d}"
            );
            seen.insert(truth);
        }
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn every_published_name_parses_and_others_are_refused() {
    let mut h = host(&x86_level_features(4), "2.36");
    h.mpi_installations = vec![
        installation(MpiAbi::Mpich, "libmpich.so.12", "4.0.2", Some("2.34")),
        installation(MpiAbi::Standard, "libmpi_abi.so.1", "5.0.0", Some("2.34")),
    ];
    h.inventory.gpu.nvidia_driver = Some(VersionFact {
        version: "550.54.14".into(),
        source: "x".into(),
    });
    let o = offer(&h);
    assert!(o.features.contains("mpi_abi1_glibc_2.40") && o.features.contains("cuda_12.4"));
    assert!(
        o.features.contains("glibc_2.17")
            && o.features.contains("glibc_2.36")
            && !o.features.contains("glibc_2.37")
    );
    for f in &o.features {
        assert!(parse(f).is_some(), "{f}");
        assert!(
            f.len() <= 63
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
            "{f}"
        );
        assert!(f.as_bytes()[0].is_ascii_alphabetic(), "{f}");
    }
    for bad in [
        "x86_64_v5",
        "mpi_lam",
        "mpi_mpich_glibc_3.1",
        "glibc_2.",
        "cuda_12",
        "cuda_x.y",
        "isa_",
        "arch_a-b",
        "gpu_amd",
    ] {
        assert_eq!(parse(bad), None, "{bad}");
    }
}

#[test]
fn formats() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_796_083_199), "2026-11-30T23:59:59Z");
    let n = need(
        &image(
            &x86_level_features(3),
            Some("2.36"),
            Some((MpiAbi::Mpich, "libmpich.so.12", "4.0.2")),
        ),
        &MPI,
    );
    assert_eq!(
        slurm_constraint(&n),
        "cs_arch_x86_64&cs_x86_64_v3&cs_mpi_mpich_glibc_2.36"
    );
    assert_eq!(
        slurm_features(&set(&["arch_x86_64", "x86_64_v1"])),
        "Features=cs_arch_x86_64,cs_x86_64_v1"
    );
    let file = nfd_feature_file(&set(&["arch_x86_64"]), 0);
    assert!(
        file.ends_with("# +expiry-time=1970-01-01T00:00:00Z\ncontainerspec.io/arch_x86_64\n"),
        "{file}"
    );
    let yaml = k8s_affinity_yaml(&n);
    assert!(
        yaml.contains(
            "        - key: \"containerspec.io/x86_64_v3\"\n          operator: Exists\n"
        ),
        "{yaml}"
    );
    let spec = nfd_compatibility_yaml(&n, "img");
    assert!(spec.starts_with("version: v1alpha1\ncompatibilities:\n"));
    assert!(spec.contains("    - feature: local.label\n"));
}

#[test]
fn hostile_versions_bound_no_loop_and_publish_only_names_that_parse() {
    let mut h = host(&set(&["avx2"]), "2.4294967295");
    h.inventory.arch = Some("x86 64; rm -rf".into());
    h.mpi_installations = vec![installation(
        MpiAbi::Mpich,
        "libmpich.so.12",
        "4.0.2",
        Some("2.4000000000"),
    )];
    let o = offer(&h);
    assert!(
        o.features.iter().all(|f| parse(f).is_some()),
        "{:?}",
        o.features
    );
    assert!(
        !o.features
            .iter()
            .any(|f| f.starts_with("glibc_") || f.starts_with("arch_"))
    );
    assert!(
        o.notes.iter().any(|n| n.contains("cannot be spelt")),
        "{:?}",
        o.notes
    );
    // A glibc beyond the ladder's top adds its own rung.
    let newer = offer(&host(&set(&[]), "2.61"));
    assert!(newer.features.contains("glibc_2.50") && newer.features.contains("glibc_2.61"));
    assert!(!newer.features.contains("glibc_2.51"));
}
