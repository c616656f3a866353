//! Ground truth for the CUDA verdicts, without a GPU. The images hold real CUDA runtimes
//! from NVIDIA's pip wheels (11.8, 12.4, 12.9, 13.0), laid out as pip, a virtualenv,
//! conda, NGC's toolkit tree (with and without forward-compatibility libraries, which are
//! the real libcuda of another driver), and a bare `libcudart.so.12` whose version no
//! file states; the host roots hold the real driver libraries of Debian's non-free
//! packages (470, 535, 550). All are built by `tests/rigs/cuda.sh`.
//!
//! Each (image, host) pair gets `check-bundle --inject gpu`, and then its plan is carried
//! out in a private mount namespace and the image's program asks the real `libcudart`
//! for the device count. With no GPU the driver answers `cudaErrorNoDevice` (100) when
//! it accepted the runtime's version and `cudaErrorInsufficientDriver` (35) when it is
//! too old: that decides whether the verdict was right.
//!
//! - `compatible` must mean the program got past the version check (100), through the
//!   libcuda the verdict says: the forward-compatibility one where it says so;
//! - `incompatible` must name `cuda-driver-too-old`, and the program, run with the plan
//!   anyway, must answer 35.

use std::path::{Path, PathBuf};

use crate::inject_pairs::run_program_with_plan;
use crate::util::{Judged, built, containerspec, is_root, scratch};

const HOSTS: &[&str] = &["drv-470", "drv-535", "drv-550"];
const IMAGES: &[&str] = &[
    "pip-11.8",
    "pip-12.4",
    "pip-12.9",
    "pip-13.0",
    "venv-12.9",
    "conda-11.8",
    "conda-12.9",
    "ngc-12.4",
    "ngc-12.9",
    "ngc-12.4-compat",
    "ngc-12.4-compat-ldpath",
    "unversioned-12",
];

fn rig() -> PathBuf {
    let cache = std::env::var("CONTAINERSPEC_TEST_CACHE")
        .unwrap_or_else(|_| "/var/cache/containerspec-test".into());
    PathBuf::from(cache).join("cuda")
}

/// What the program printed: `runtime=.. driver=.. count_error=N NAME count=.. libcuda=PATH`.
struct Ran {
    count_error: Option<i64>,
    libcuda: String,
    line: String,
}

fn ran(out: &std::process::Output) -> Ran {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_string();
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    Ran {
        count_error: field("count_error=").and_then(|v| v.parse().ok()),
        libcuda: field("libcuda=").unwrap_or_default(),
        line: if line.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            line
        },
    }
}

fn config_of(image: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(image.join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (
        list(&config["process"]["args"]),
        list(&config["process"]["env"]),
    )
}

#[test]
fn cuda_verdicts_match_real_runs() {
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let top = rig();
    let hint = "run tests/rigs/cuda.sh (setup.sh does) to build the CUDA images and driver roots";
    let Some(_) = built(top.join("hosts/drv-535"), hint) else {
        return;
    };
    let base = scratch("cuda-truth");
    let mut rows = Vec::new();
    let (mut right, mut false_compatible, mut false_incompatible) = (0, 0, 0);
    let mut failures = Vec::new();
    for image in IMAGES {
        let bundle = top.join("images").join(image);
        assert!(
            bundle.join(".containerspec-recipe").is_file(),
            "{image}: {hint}"
        );
        let rootfs = bundle.join("rootfs");
        let (argv, env) = config_of(&bundle);
        for host in HOSTS {
            let pair = format!("{image} on {host}");
            let host_root = top.join("hosts").join(host);
            let host_driver = std::fs::read_to_string(host_root.join(".driver-version"))
                .unwrap()
                .trim()
                .to_string();
            let dir = base.join(format!("{image}--{host}"));
            std::fs::create_dir_all(&dir).unwrap();
            let cache = dir.join("ld.so.cache");
            let out = containerspec(&[
                "check-bundle",
                bundle.to_str().unwrap(),
                "--host-root",
                host_root.to_str().unwrap(),
                "--inject",
                "gpu",
                "--json",
                "--emit-ld-cache",
                cache.to_str().unwrap(),
            ]);
            let judged = Judged::read(&pair, &out);
            let findings = judged.report["findings"].as_array().unwrap().clone();
            let via_compat = findings.iter().any(|f| {
                f["code"] == "cuda-driver-too-old"
                    && f["message"].as_str().is_some_and(|m| {
                        m.contains("forward-compatibility libcuda") && m.contains("runs on")
                    })
            });
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let run = run_program_with_plan(
                &dir.join("run"),
                &rootfs,
                &judged.mounts,
                judged.has_cache.then_some(cache.as_path()),
                &env,
                &argv,
            );
            let r = ran(&run);
            let accepted = r.count_error == Some(100);
            let refused = r.count_error == Some(35);
            let warnings: Vec<String> = findings
                .iter()
                .filter(|f| f["severity"] == "warning" && f["code"] != "plugin-unusable")
                .map(|f| f["code"].as_str().unwrap().to_string())
                .collect();
            let outcome = if judged.verdict == "compatible" {
                // A compat libcuda of the host driver's own build is the same library:
                // the verdict need not say which of the two loads.
                let same_build = r.libcuda.ends_with(&format!(".so.{host_driver}"));
                let through_compat = r.libcuda.contains("/compat/") && !same_build;
                if accepted && through_compat == via_compat {
                    right += 1;
                    "right"
                } else {
                    false_compatible += 1;
                    failures.push(format!(
                        "{pair}: compatible (through compat: {via_compat}) but the program printed: {}",
                        r.line
                    ));
                    "FALSE COMPATIBLE"
                }
            } else if judged.codes.iter().any(|c| c == "cuda-driver-too-old") && refused {
                right += 1;
                "right"
            } else {
                false_incompatible += 1;
                failures.push(format!(
                    "{pair}: incompatible ({:?}) but the program printed: {}",
                    judged.codes, r.line
                ));
                "FALSE INCOMPATIBLE"
            };
            rows.push(format!(
                "| {image} | {host} | {} {} | {} | {} |",
                judged.verdict,
                if warnings.is_empty() {
                    judged.codes.join(",")
                } else {
                    format!("(warn: {})", warnings.join(","))
                },
                r.line,
                outcome
            ));
        }
    }
    eprintln!("| image | host | verdict | program | outcome |\n| --- | --- | --- | --- | --- |");
    for row in &rows {
        eprintln!("{row}");
    }
    eprintln!(
        "cuda truth: {} pairs, {right} right, {false_compatible} false compatible, {false_incompatible} false incompatible",
        rows.len()
    );
    assert_eq!(rows.len(), IMAGES.len() * HOSTS.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A copy of a rig host root to break, or None (skipped) when the rig is not built.
fn host_copy(host: &str, dir: &Path) -> Option<PathBuf> {
    let hint = "run tests/rigs/cuda.sh (setup.sh does) to build the CUDA images and driver roots";
    let source = built(rig().join("hosts").join(host), hint)?;
    let copy = dir.join(host);
    let status = std::process::Command::new("cp")
        .args(["-a", source.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    Some(copy)
}

/// A bundle of a rig image whose environment gets `extra` (NAME=VALUE) appended.
fn bundle_with_env(image: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let source = rig().join("images").join(image);
    let text = std::fs::read_to_string(source.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["root"]["path"] = serde_json::json!(source.join("rootfs"));
    let env = config["process"]["env"].as_array_mut().unwrap();
    env.extend(extra.iter().map(|e| serde_json::json!(e)));
    let bundle = dir.join(format!("{image}-bundle"));
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    bundle
}

fn check(bundle: &Path, host: &Path) -> (Judged, std::process::Output) {
    let out = containerspec(&[
        "check-bundle",
        bundle.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
        "--inject",
        "gpu",
        "--json",
        "--no-cache",
    ]);
    (Judged::read(&bundle.display().to_string(), &out), out)
}

fn message<'a>(j: &'a Judged, code: &str) -> &'a str {
    finding(j, code)["message"].as_str().unwrap()
}

fn finding<'a>(j: &'a Judged, code: &str) -> &'a serde_json::Value {
    j.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {:#}", j.report["findings"]))
}

#[test]
fn a_dangling_libcuda_is_named() {
    let dir = scratch("cuda-dangling");
    let Some(host) = host_copy("drv-535", &dir) else {
        return;
    };
    for name in ["libcuda.so.1", "libnvidia-ml.so.1"] {
        std::fs::remove_file(
            host.join(format!("etc/alternatives/nvidia--{name}-x86_64-linux-gnu")),
        )
        .unwrap();
    }
    let bundle = rig().join("images/pip-12.9");
    let (j, _) = check(&bundle, &host);
    assert_eq!(j.verdict, "incompatible");
    let f = finding(&j, "gpu-driver-missing");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("/usr/lib/x86_64-linux-gnu/libcuda.so.1 (listed in /etc/ld.so.cache as libcuda.so.1) does not resolve"),
        "{message}"
    );
}

#[test]
fn a_kernel_module_of_another_version_is_a_mismatch() {
    let dir = scratch("cuda-mismatch");
    let Some(host) = host_copy("drv-535", &dir) else {
        return;
    };
    // What the kernel writes for a loaded module of an earlier 535 build.
    std::fs::create_dir_all(host.join("proc/driver/nvidia")).unwrap();
    std::fs::write(
        host.join("proc/driver/nvidia/version"),
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n",
    )
    .unwrap();
    let bundle = rig().join("images/pip-12.4");
    let (j, _) = check(&bundle, &host);
    assert_eq!(j.verdict, "incompatible");
    let message = message(&j, "gpu-driver-mismatch");
    assert!(
        message.starts_with("driver/library version mismatch: the NVIDIA kernel module is 535.104.05 (/proc/driver/nvidia/version) but the driver's libraries are 535.309.01"),
        "{message}"
    );
    // Not "no driver": the libraries are still the ones the plan injects.
    assert!(
        !j.codes.iter().any(|c| c == "gpu-driver-missing"),
        "{:?}",
        j.codes
    );
}

#[test]
fn an_unparsable_requirement_is_named() {
    let dir = scratch("cuda-require");
    let Some(host) = built(rig().join("hosts/drv-550"), "run tests/rigs/cuda.sh") else {
        return;
    };
    let bundle = bundle_with_env(
        "ngc-12.4",
        &dir,
        &["NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand~tesla"],
    );
    let (j, _) = check(&bundle, &host);
    let f = finding(&j, "cuda-requirement-invalid");
    assert_eq!(f["severity"], "warning");
    assert_eq!(
        f["message"],
        "the container's NVIDIA_REQUIRE_CUDA does not parse: \"brand~tesla\" has no comparison"
    );
}

#[test]
fn a_libcuda_baked_into_the_image_shadows_the_injected_one() {
    // An image that carries a driver's libcuda.so.1 of its own (copied from a 470 node)
    // on its LD_LIBRARY_PATH: that one loads, not the host's 550 the plan injects.
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let dir = scratch("cuda-shadow");
    let Some(host) = built(rig().join("hosts/drv-550"), "run tests/rigs/cuda.sh") else {
        return;
    };
    let old = rig().join("hosts/drv-470");
    let version = std::fs::read_to_string(old.join(".driver-version")).unwrap();
    let image = dir.join("image");
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            rig().join("images/pip-12.9").to_str().unwrap(),
            image.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let rootfs = image.join("rootfs");
    std::fs::create_dir_all(rootfs.join("opt/drv")).unwrap();
    std::fs::copy(
        old.join(format!(
            "usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.{}",
            version.trim()
        )),
        rootfs.join("opt/drv/libcuda.so.1"),
    )
    .unwrap();
    let text = std::fs::read_to_string(image.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!("LD_LIBRARY_PATH=/opt/drv"));
    std::fs::write(image.join("config.json"), config.to_string()).unwrap();
    let cache = dir.join("ld.so.cache");
    let out = containerspec(&[
        "check-bundle",
        image.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
        "--inject",
        "gpu",
        "--json",
        "--emit-ld-cache",
        cache.to_str().unwrap(),
    ]);
    let j = Judged::read("baked-in libcuda", &out);
    assert_eq!(j.verdict, "incompatible");
    assert_eq!(
        finding(&j, "library-shadowed")["message"],
        "the container's LD_LIBRARY_PATH finds its own libcuda.so.1 (/opt/drv/libcuda.so.1) before the injected one"
    );
    // And for real: the image's own 470 libcuda answers, too old for CUDA 12.9.
    let (argv, env) = config_of(&image);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let run = run_program_with_plan(
        &dir.join("run"),
        &rootfs,
        &j.mounts,
        Some(&cache),
        &env,
        &argv,
    );
    let r = ran(&run);
    assert_eq!(r.count_error, Some(35), "{}", r.line);
    assert_eq!(r.libcuda, "/opt/drv/libcuda.so.1", "{}", r.line);
}

/// Judges `bundle` on `host` with gpu injection, then carries out the plan and runs `argv`.
fn judge_and_run(
    dir: &Path,
    bundle: &Path,
    rootfs: &Path,
    host: &Path,
    argv: &[&str],
) -> (Judged, std::process::Output) {
    let cache = dir.join("ld.so.cache");
    let out = containerspec(&[
        "check-bundle",
        bundle.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
        "--inject",
        "gpu",
        "--json",
        "--emit-ld-cache",
        cache.to_str().unwrap(),
    ]);
    let j = Judged::read(&bundle.display().to_string(), &out);
    let (_, env) = config_of(bundle);
    let run = run_program_with_plan(
        &dir.join("run"),
        rootfs,
        &j.mounts,
        Some(&cache),
        &env,
        argv,
    );
    (j, run)
}

#[test]
fn the_drivers_program_runs_in_the_container() {
    // nvidia-smi comes with the utility capability, mounted where NVIDIA's runtime puts
    // it; with no GPU it gets as far as asking the kernel driver, which proves that it and
    // its libnvidia-ml loaded.
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let dir = scratch("cuda-smi");
    let Some(host) = built(rig().join("hosts/drv-535"), "run tests/rigs/cuda.sh") else {
        return;
    };
    let bundle = rig().join("images/pip-12.9");
    let (j, run) = judge_and_run(
        &dir,
        &bundle,
        &bundle.join("rootfs"),
        &host,
        &["/usr/bin/nvidia-smi"],
    );
    assert_eq!(j.verdict, "compatible", "{:#}", j.report["findings"]);
    assert!(
        j.mounts
            .iter()
            .any(|(_, dest, _)| dest == "/usr/bin/nvidia-smi"),
        "{:?}",
        j.mounts
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(9),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("couldn't communicate with the NVIDIA driver"),
        "{stdout}"
    );
}

#[test]
fn an_image_that_leaves_out_compute_gets_no_libcuda() {
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let dir = scratch("cuda-caps");
    let Some(host) = built(rig().join("hosts/drv-550"), "run tests/rigs/cuda.sh") else {
        return;
    };
    let bundle = bundle_with_env("pip-12.9", &dir, &["NVIDIA_DRIVER_CAPABILITIES=utility"]);
    let rootfs = rig().join("images/pip-12.9/rootfs");
    let (argv, _) = config_of(&bundle);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (j, run) = judge_and_run(&dir, &bundle, &rootfs, &host, &argv);
    assert_eq!(j.verdict, "incompatible");
    assert!(
        message(&j, "gpu-driver-missing").contains("leaves out compute"),
        "{:#}",
        j.report["findings"]
    );
    // For real: no libcuda for the runtime to load.
    let r = ran(&run);
    assert_eq!(r.count_error, Some(35), "{}", r.line);
    assert_eq!(r.libcuda, "none", "{}", r.line);
}

#[test]
fn forward_compat_on_a_consumer_gpu_is_refused() {
    // What the kernel module lists for a GeForce board: NVIDIA's forward compatibility does
    // not run there (CUDA answers "forward compatibility was attempted on non supported HW").
    let dir = scratch("cuda-geforce");
    let Some(host) = host_copy("drv-470", &dir) else {
        return;
    };
    let gpu = host.join("proc/driver/nvidia/gpus/0000:3b:00.0");
    std::fs::create_dir_all(&gpu).unwrap();
    std::fs::write(
        gpu.join("information"),
        "Model: \t\t NVIDIA GeForce RTX 3090\nIRQ:   \t\t 136\nGPU UUID: \t GPU-00000000-0000-0000-0000-000000000000\nBus Type: \t PCIe\n",
    )
    .unwrap();
    let bundle = rig().join("images/ngc-12.4-compat");
    let (j, _) = check(&bundle, &host);
    assert_eq!(j.verdict, "incompatible");
    let message = message(&j, "cuda-driver-too-old");
    assert!(
        message.ends_with("not on this node's NVIDIA GeForce RTX 3090"),
        "{message}"
    );
    // The plan does not put the compat libraries first where they cannot work.
    assert!(
        j.mounts
            .iter()
            .any(|(_, dest, _)| dest == "/run/containerspec/lib/libcuda.so.1"),
        "{:?}",
        j.mounts
    );
}
