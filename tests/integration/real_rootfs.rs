//! `inspect` on real Debian root filesystems (built by tests/rigs/rootfs.sh), checked
//! against each rootfs's own package database: the independent truth of which glibc and
//! which MPI it contains.

use crate::util::{cached_rootfs, dpkg_version, json, upstream_version};

/// (rootfs, expected glibc, MPI package, implementation, ABI family)
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    ("bullseye-mpich", "2.31", "libmpich12", "MPICH", "mpich"),
    ("bookworm-mpich", "2.36", "libmpich12", "MPICH", "mpich"),
    ("trixie-mpich", "2.41", "libmpich12", "MPICH", "mpich"),
    (
        "bullseye-openmpi",
        "2.31",
        "libopenmpi3",
        "Open MPI",
        "open-mpi",
    ),
    (
        "bookworm-openmpi",
        "2.36",
        "libopenmpi3",
        "Open MPI",
        "open-mpi",
    ),
    (
        "trixie-openmpi",
        "2.41",
        "libopenmpi40",
        "Open MPI",
        "open-mpi",
    ),
];

#[test]
fn glibc_and_mpi_match_the_package_database() {
    for (name, glibc, mpi_pkg, implementation, abi) in CASES {
        let Some(root) = cached_rootfs(name) else {
            continue;
        };
        let inv = json(&["inspect", root.to_str().unwrap()]);
        let libc6 = dpkg_version(&root, "libc6").expect("libc6 installed");
        assert_eq!(
            upstream_version(&libc6),
            *glibc,
            "{name}: dpkg says libc6 {libc6}"
        );
        assert_eq!(inv["libc"]["family"], "glibc", "{name}");
        assert_eq!(inv["libc"]["version"], *glibc, "{name}");
        assert_eq!(inv["libc"]["version_source"], "release-string", "{name}");
        assert_eq!(inv["arch"], "x86_64", "{name}");

        let expected =
            upstream_version(&dpkg_version(&root, mpi_pkg).expect("mpi package installed"));
        let mpi = inv["mpi"].as_array().expect("mpi array");
        assert_eq!(
            mpi.len(),
            1,
            "{name}: one MPI installation expected, got {mpi:?}"
        );
        assert_eq!(mpi[0]["implementation"], *implementation, "{name}");
        assert_eq!(mpi[0]["abi"], *abi, "{name}");
        assert_eq!(
            mpi[0]["version"],
            expected.as_str(),
            "{name}: dpkg {mpi_pkg} is {expected}"
        );
        assert_ne!(
            mpi[0]["version_source"], "file-name",
            "{name}: version should come from the library's data"
        );
    }
}

#[test]
fn mpich_device_is_reported() {
    // Debian builds MPICH 3.4 with ch3:nemesis and 4.x with ch4:ucx (configure's --with-device).
    for (name, device) in [
        ("bullseye-mpich", "ch3:nemesis"),
        ("bookworm-mpich", "ch4:ucx"),
        ("trixie-mpich", "ch4:ucx"),
    ] {
        let Some(root) = cached_rootfs(name) else {
            continue;
        };
        let inv = json(&["inspect", root.to_str().unwrap()]);
        assert_eq!(inv["mpi"][0]["device"], device, "{name}");
    }
}

#[test]
fn os_release_and_loader_cache() {
    let Some(root) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let inv = json(&["inspect", root.to_str().unwrap()]);
    assert_eq!(inv["os_release"]["version_codename"], "bookworm");
    assert_eq!(inv["loader_cache"]["format"], "new");
    assert!(inv["loader_cache"]["entries"].as_u64().unwrap() > 50);
    assert_eq!(
        inv["mpi"][0]["real_path"],
        "/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2"
    );
}

#[test]
fn foreign_arm64_rootfs_is_aarch64() {
    let Some(root) = cached_rootfs("bookworm-arm64") else {
        return;
    };
    let inv = json(&["inspect", root.to_str().unwrap()]);
    assert_eq!(inv["arch"], "aarch64");
    assert_eq!(inv["libc"]["family"], "glibc");
    assert_eq!(inv["libc"]["version"], "2.36");
    assert_eq!(inv["libc"]["loader"], "/lib/ld-linux-aarch64.so.1");
    let mpi = inv["mpi"].as_array().unwrap();
    assert_eq!(mpi.len(), 1, "{mpi:?}");
    assert_eq!(mpi[0]["implementation"], "MPICH");
    assert_eq!(mpi[0]["version"], "4.0.2");
}

#[test]
fn all_scan_covers_every_elf_file() {
    let Some(root) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let inv = json(&["inspect", root.to_str().unwrap(), "--all"]);
    // The independent count: every regular file under the root starting with the ELF
    // magic, found by walking the tree here without following symlinks.
    let expected = count_elf_files(&root);
    assert_eq!(inv["scan"]["mode"], "all");
    assert_eq!(
        inv["scan"]["elf_files"].as_u64().unwrap() as usize,
        expected
    );
    assert_eq!(
        inv["objects"].as_array().unwrap().len(),
        expected,
        "every ELF file parsed: {:?}",
        inv["findings"]
    );
    // Debian builds for the baseline: some object needs glibc 2.34 or later (bookworm's
    // own binaries link against 2.36), and nothing requires more than x86-64 baseline.
    let glibc = inv["glibc_required"]["version"].as_str().unwrap();
    assert!(matches!(glibc, "2.34" | "2.35" | "2.36"), "{glibc}");
    assert_eq!(
        inv["microarch"]["required"],
        serde_json::Value::Null,
        "{:?}",
        inv["microarch"]
    );
}

fn count_elf_files(root: &std::path::Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let ft = entry.file_type().unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
            if ft.is_dir() && !matches!(rel.to_str(), Some("proc" | "sys" | "dev")) {
                stack.push(entry.path());
            } else if ft.is_file() {
                let mut magic = [0u8; 4];
                use std::io::Read;
                if std::fs::File::open(entry.path())
                    .and_then(|mut f| f.read_exact(&mut magic))
                    .is_ok()
                    && &magic == b"\x7fELF"
                {
                    count += 1;
                }
            }
        }
    }
    count
}
