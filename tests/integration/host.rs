//! `containerspec host` on this machine and on real roots given with `--root`, checked
//! against the package database and the kernel.

use std::path::Path;
use std::process::Command;

use crate::util::{cached_rootfs, dpkg_version, json, upstream_version};

#[test]
fn this_host() {
    let inv = json(&["host"]);
    let libc6 = dpkg_version(Path::new("/"), "libc6").expect("libc6 installed");
    assert_eq!(inv["libc"]["family"], "glibc");
    assert_eq!(inv["libc"]["version"], upstream_version(&libc6).as_str());
    assert_eq!(inv["arch"], std::env::consts::ARCH);
    let uname = Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(
        inv["kernel"]["release"],
        String::from_utf8_lossy(&uname.stdout).trim()
    );
    let cpu = &inv["cpu"];
    assert_eq!(cpu["arch"], std::env::consts::ARCH);
    assert!(!cpu["microarchitecture"].as_str().unwrap().is_empty());
    assert_eq!(
        inv["cpu"]["cross_check"]["agrees"], true,
        "{}",
        inv["cpu"]["cross_check"]
    );
    assert_eq!(inv["loader_cache"]["format"], "new");
}

#[test]
fn host_mpich_matches_the_package_database() {
    let Some(version) = dpkg_version(Path::new("/"), "libmpich12") else {
        crate::skip!("mpich is not installed on this machine (apt-get install mpich)");
    };
    let inv = json(&["host"]);
    let mpi = inv["mpi"].as_array().unwrap();
    let mpich = mpi
        .iter()
        .find(|m| m["implementation"] == "MPICH")
        .expect("MPICH reported");
    assert_eq!(mpich["version"], upstream_version(&version).as_str());
    assert_eq!(mpich["abi"], "mpich");
    assert_eq!(mpich["soname"], "libmpich.so.12");
}

#[test]
fn loader_cache_size_matches_ldconfig() {
    let Ok(out) = Command::new("ldconfig").arg("-p").output() else {
        crate::skip!("ldconfig not found");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    let count: usize = first.split_whitespace().next().unwrap().parse().unwrap();
    let inv = json(&["host"]);
    assert_eq!(
        inv["loader_cache"]["entries"].as_u64().unwrap() as usize,
        count,
        "{first}"
    );
}

#[test]
fn another_root_as_the_host() {
    let Some(root) = cached_rootfs("bookworm-openmpi") else {
        return;
    };
    let inv = json(&["host", "--root", root.to_str().unwrap()]);
    assert_eq!(inv["libc"]["version"], "2.36");
    let expected = upstream_version(&dpkg_version(&root, "libopenmpi3").unwrap());
    assert_eq!(inv["mpi"][0]["implementation"], "Open MPI");
    assert_eq!(inv["mpi"][0]["version"], expected.as_str());
    assert_eq!(inv["os_release"]["version_codename"], "bookworm");
}

#[test]
fn nvidia_driver_and_rocm_from_files() {
    // A host root holding only the files a driver installation leaves: no GPU needed.
    let root = crate::bad_input::mini_root("gpu-host");
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    std::fs::copy(
        root.join("usr/lib/x86_64-linux-gnu/libc.so.6"),
        lib.join("libcuda.so.535.104.05"),
    )
    .unwrap();
    std::os::unix::fs::symlink("libcuda.so.535.104.05", lib.join("libcuda.so.1")).unwrap();
    std::fs::create_dir_all(root.join("opt/rocm/.info")).unwrap();
    std::fs::write(root.join("opt/rocm/.info/version"), "6.0.2-115\n").unwrap();
    let inv = json(&["host", "--root", root.to_str().unwrap()]);
    assert_eq!(inv["gpu"]["nvidia_driver"]["version"], "535.104.05");
    assert_eq!(
        inv["gpu"]["nvidia_driver"]["source"],
        "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05"
    );
    assert_eq!(inv["gpu"]["rocm"]["version"], "6.0.2");
    // /proc/driver/nvidia/version takes precedence when the root has it.
    std::fs::create_dir_all(root.join("proc/driver/nvidia")).unwrap();
    std::fs::write(
        root.join("proc/driver/nvidia/version"),
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n",
    )
    .unwrap();
    let inv = json(&["host", "--root", root.to_str().unwrap()]);
    assert_eq!(inv["gpu"]["nvidia_driver"]["version"], "550.54.14");
    assert_eq!(
        inv["gpu"]["nvidia_driver"]["source"],
        "/proc/driver/nvidia/version"
    );
}

#[test]
fn cuda_runtime_of_a_container() {
    let root = crate::bad_input::mini_root("cuda-container");
    let cuda = root.join("usr/local/cuda/lib64");
    std::fs::create_dir_all(&cuda).unwrap();
    std::fs::copy(
        root.join("usr/lib/x86_64-linux-gnu/libc.so.6"),
        root.join("usr/lib/x86_64-linux-gnu/libcudart.so.12.2.140"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "libcudart.so.12.2.140",
        root.join("usr/lib/x86_64-linux-gnu/libcudart.so.12"),
    )
    .unwrap();
    let inv = json(&["inspect", root.to_str().unwrap()]);
    assert_eq!(inv["gpu"]["cuda_runtime"]["version"], "12.2.140");
    std::fs::write(
        root.join("usr/local/cuda/version.json"),
        r#"{"cuda": {"name": "CUDA SDK", "version": "12.2.2"}}"#,
    )
    .unwrap();
    // The toolkit tree's version.json is a second runtime (its tree has no library): both
    // are listed, and the headline is the highest version, the library's own.
    let inv = json(&["inspect", root.to_str().unwrap()]);
    assert_eq!(inv["gpu"]["cuda_runtime"]["version"], "12.2.140");
    let runtimes = inv["gpu"]["cuda_runtimes"].as_array().unwrap();
    assert_eq!(runtimes.len(), 2, "{runtimes:?}");
    assert_eq!(runtimes[0]["layout"], "toolkit");
    assert_eq!(runtimes[0]["version"], "12.2.2");
    assert_eq!(runtimes[0]["source"], "/usr/local/cuda/version.json");
    assert_eq!(runtimes[1]["layout"], "system");
    assert_eq!(
        runtimes[1]["library"],
        "/usr/lib/x86_64-linux-gnu/libcudart.so.12"
    );
}
