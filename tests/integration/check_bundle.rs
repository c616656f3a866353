//! `check-bundle` on small real roots: the CPU target rule with `--host-target`, the
//! CUDA rules on driver and runtime files, the config file and policy, and every kind
//! of bad input (exit 2 with a message naming the file or field).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bad_input::{bundle_with_config, mini_root};
use crate::util::{assert_error, containerspec, scratch};

fn config_json(args: &[&str], annotations: &str) -> String {
    let q: Vec<String> = args.iter().map(|s| format!("{s:?}")).collect();
    format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","args":[{}],"env":["PATH=/bin"],"user":{{"uid":0,"gid":0}}}},"annotations":{{{annotations}}}}}"#,
        q.join(",")
    )
}

/// A bundle whose entrypoint is compiled with `gcc_args`.
fn bundle_with_program(name: &str, gcc_args: &[&str], annotations: &str) -> Option<PathBuf> {
    let root = mini_root(name);
    let src = root.parent().unwrap().join("main.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let status = Command::new("gcc")
        .arg(&src)
        .arg("-o")
        .arg(root.join("bin/app"))
        .args(gcc_args)
        .status()
        .ok()?;
    assert!(status.success(), "gcc {gcc_args:?}");
    Some(bundle_with_config(
        &root,
        &config_json(&["/bin/app"], annotations),
    ))
}

fn check(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["check-bundle"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = containerspec(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("no JSON report: {stderr}"));
    (out.status.code(), report)
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["code"].as_str().unwrap(),
                f["severity"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_v4_container_on_a_haswell_host() {
    let Some(bundle) = bundle_with_program("v4", &["-Wl,-z,x86-64-v4"], "") else {
        crate::skip!("gcc not found");
    };
    let b = bundle.to_str().unwrap();
    let (code, report) = check(&[b, "--host-target", "haswell"]);
    assert_eq!(code, Some(1));
    assert_eq!(report["verdict"], "incompatible");
    assert_eq!(codes(&report), vec!["microarch-unsupported:error"]);
    let f = &report["findings"][0];
    assert_eq!(
        f["versions"],
        serde_json::json!(["avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"])
    );
    assert!(
        f["message"].as_str().unwrap().contains(
            "the host CPU haswell (--host-target) lacks avx512bw, avx512cd, avx512dq, avx512f, avx512vl"
        ),
        "{f}"
    );
    assert_eq!(report["host_target"], "haswell (--host-target)");
    // The human report starts with the verdict.
    let out = containerspec(&["check-bundle", b, "--host-target", "haswell"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("INCOMPATIBLE: "), "{text}");
}

#[test]
fn a_container_built_for_the_hosts_level_passes() {
    let Some(bundle) = bundle_with_program("v3", &["-Wl,-z,x86-64-v3"], "") else {
        crate::skip!("gcc not found");
    };
    let (code, report) = check(&[bundle.to_str().unwrap(), "--host-target", "haswell"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["verdict"], "compatible");
    assert!(codes(&report).is_empty(), "{report}");
    // And on this machine's own CPU, whatever it is, a baseline program passes.
    let Some(bundle) = bundle_with_program("baseline", &[], "") else {
        return;
    };
    let (code, _) = check(&[bundle.to_str().unwrap()]);
    assert_eq!(code, Some(0));
}

#[test]
fn policy_from_the_config_file_and_annotations() {
    let Some(bundle) = bundle_with_program("policy", &["-Wl,-z,x86-64-v4"], "") else {
        crate::skip!("gcc not found");
    };
    let dir = scratch("policy-config");
    let config = dir.join("config.toml");
    std::fs::write(&config, "[policy]\nmicroarch-unsupported = \"warn\"\n").unwrap();
    let b = bundle.to_str().unwrap();
    let c = config.to_str().unwrap();
    let (code, report) = check(&[b, "--host-target", "haswell", "--config", c]);
    assert_eq!(code, Some(0), "a warning never blocks a start");
    assert_eq!(codes(&report), vec!["microarch-unsupported:warning"]);
    // An annotation may make the rule stricter for this container ...
    let root = bundle.join("rootfs");
    let strict = r#""org.supercontainers.policy.microarch-unsupported":"enforce""#;
    bundle_with_config(&root, &config_json(&["/bin/app"], strict));
    let (code, _) = check(&[b, "--host-target", "haswell", "--config", c]);
    assert_eq!(code, Some(1));
    // ... but never looser than the admin's.
    std::fs::write(&config, "[policy]\nmicroarch-unsupported = \"enforce\"\n").unwrap();
    let loose = r#""org.supercontainers.policy.microarch-unsupported":"off""#;
    bundle_with_config(&root, &config_json(&["/bin/app"], loose));
    let (code, report) = check(&[b, "--host-target", "haswell", "--config", c]);
    assert_eq!(code, Some(1));
    assert!(
        report["policy_notes"][0]
            .as_str()
            .unwrap()
            .contains("may only make a rule stricter"),
        "{report}"
    );
}

/// A host root with an NVIDIA driver's library, and a container with a CUDA runtime,
/// both as files only (copies of a real library under the versioned names).
fn cuda_case(name: &str, driver: &str, runtime: &str, forward_compat: bool) -> (PathBuf, PathBuf) {
    let host = mini_root(&format!("{name}-host"));
    let lib = host.join("usr/lib/x86_64-linux-gnu");
    std::fs::copy(
        lib.join("libc.so.6"),
        lib.join(format!("libcuda.so.{driver}")),
    )
    .unwrap();
    std::os::unix::fs::symlink(format!("libcuda.so.{driver}"), lib.join("libcuda.so.1")).unwrap();
    let container = mini_root(&format!("{name}-container"));
    let clib = container.join("usr/lib/x86_64-linux-gnu");
    std::fs::copy(
        clib.join("libc.so.6"),
        clib.join(format!("libcudart.so.{runtime}")),
    )
    .unwrap();
    // The runtime's soname: libcudart.so.12 for CUDA 12, libcudart.so.11.0 for CUDA 11.
    let major = runtime.split('.').next().unwrap();
    let soname = if major == "11" {
        "libcudart.so.11.0".to_string()
    } else {
        format!("libcudart.so.{major}")
    };
    std::os::unix::fs::symlink(format!("libcudart.so.{runtime}"), clib.join(soname)).unwrap();
    if forward_compat {
        let compat = container.join("usr/local/cuda/compat");
        std::fs::create_dir_all(&compat).unwrap();
        std::fs::copy(clib.join("libc.so.6"), compat.join("libcuda.so.560.35.03")).unwrap();
    }
    let bundle = bundle_with_config(&container, &config_json(&["/bin/none"], ""));
    (host, bundle)
}

#[test]
fn cuda_rules_on_driver_and_runtime_files() {
    // (driver, runtime, forward-compat libs, exit, findings)
    let cases: &[(&str, &str, bool, i32, &[&str])] = &[
        ("550.54.14", "12.2.140", false, 0, &[]),
        ("535.104.05", "12.2.140", false, 0, &[]),
        (
            "525.60.13",
            "12.4.131",
            false,
            0,
            &["cuda-driver-too-old:warning"],
        ),
        (
            "470.57.02",
            "12.2.140",
            true,
            0,
            &["cuda-driver-too-old:warning"],
        ),
        (
            "470.57.02",
            "12.2.140",
            false,
            1,
            &["cuda-driver-too-old:error"],
        ),
        (
            "450.80.02",
            "11.8.89",
            false,
            0,
            &["cuda-driver-too-old:warning"],
        ),
        (
            "418.39",
            "11.0.221",
            false,
            1,
            &["cuda-driver-too-old:error"],
        ),
    ];
    for (i, (driver, runtime, fwd, exit, expected)) in cases.iter().enumerate() {
        let (host, bundle) = cuda_case(&format!("cuda{i}"), driver, runtime, *fwd);
        let (code, report) = check(&[
            bundle.to_str().unwrap(),
            "--host-root",
            host.to_str().unwrap(),
        ]);
        let got: Vec<String> = codes(&report)
            .into_iter()
            .filter(|c| c.starts_with("cuda") || c.starts_with("gpu"))
            .collect();
        assert_eq!(
            got, *expected,
            "driver {driver}, runtime {runtime}, forward compat {fwd}: {report}"
        );
        assert_eq!(code, Some(*exit), "driver {driver}, runtime {runtime}");
    }
}

#[test]
fn gpu_injection_without_a_driver() {
    let (host, bundle) = cuda_case("nodriver", "550.54.14", "12.2.140", false);
    std::fs::remove_file(host.join("usr/lib/x86_64-linux-gnu/libcuda.so.1")).unwrap();
    let (code, report) = check(&[
        bundle.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
        "--inject",
        "gpu",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        codes(&report).contains(&"gpu-driver-missing:error".to_string()),
        "{report}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let root = mini_root("cb-bad");
    let dir = root.parent().unwrap().to_path_buf();
    let b = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["check-bundle"];
        all.extend_from_slice(args);
        containerspec(&all)
    };
    // Missing and broken config.json.
    assert_error(&run(&[b]), "config.json");
    std::fs::write(dir.join("config.json"), "{\"ociVersion\": ").unwrap();
    assert_error(&run(&[b]), "config.json: invalid config.json");
    // A relative root.path that names nothing.
    std::fs::write(
        dir.join("config.json"),
        config_json(&["/bin/app"], "").replace("\"rootfs\"", "\"no-such-dir\""),
    )
    .unwrap();
    assert_error(&run(&[b]), "no-such-dir");
    // A relative root.path that exists is resolved against the bundle: fine.
    std::fs::write(dir.join("config.json"), config_json(&["/bin/app"], "")).unwrap();
    assert_eq!(run(&[b]).status.code(), Some(0));
    // A missing bundle.
    assert_error(&run(&["/nonexistent/bundle"]), "/nonexistent/bundle");
    // An unknown --inject item, and an unknown item in the annotation.
    assert_error(
        &run(&[b, "--inject", "mpi,infiniband"]),
        "--inject: unknown inject item \"infiniband\"",
    );
    std::fs::write(
        dir.join("config.json"),
        config_json(&["/bin/app"], r#""org.supercontainers.inject":"fpga""#),
    )
    .unwrap();
    assert_error(
        &run(&[b]),
        "annotation org.supercontainers.inject: unknown inject item \"fpga\"",
    );
    std::fs::write(dir.join("config.json"), config_json(&["/bin/app"], "")).unwrap();
    // An unknown policy value and an unknown rule in the config file.
    let config = dir.join("bad.toml");
    let c = config.to_str().unwrap();
    std::fs::write(&config, "[policy]\nglibc-too-old = \"strict\"\n").unwrap();
    assert_error(
        &run(&[b, "--config", c]),
        "policy.glibc-too-old: unknown level \"strict\"",
    );
    std::fs::write(&config, "[policy]\nglibc-too-new = \"warn\"\n").unwrap();
    assert_error(&run(&[b, "--config", c]), "glibc-too-new");
    // A host library list naming a file that does not exist.
    std::fs::write(
        &config,
        "[inject.mpi]\nlibraries = [\"/opt/nowhere/lib/libmpi.so.12\"]\n",
    )
    .unwrap();
    assert_error(
        &run(&[b, "--config", c, "--inject", "mpi"]),
        "/opt/nowhere/lib/libmpi.so.12",
    );
    // A config file that does not exist, and an unknown host target.
    assert_error(
        &run(&[b, "--config", "/nonexistent/config.toml"]),
        "/nonexistent/config.toml",
    );
    assert_error(
        &run(&[b, "--host-target", "pentium-pro-max"]),
        "pentium-pro-max",
    );
    // A host root that does not exist.
    assert_error(
        &run(&[b, "--host-root", "/nonexistent/host"]),
        "/nonexistent/host",
    );
}

#[test]
fn the_loader_cache_a_plan_would_mount() {
    // The machine itself as the host (it has MPICH when the test set-up ran), a real
    // bookworm MPICH container: the emitted cache lists the injected libraries first
    // and is readable by glibc's own ldconfig.
    let Some(container) = crate::util::cached_rootfs("bookworm-mpich") else {
        return;
    };
    if !Path::new("/usr/lib/x86_64-linux-gnu/libmpich.so.12").exists() {
        crate::skip!("mpich is not installed on this machine");
    }
    let dir = scratch("emit-cache");
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let cfg = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": container}, "process": {"cwd": "/", "args": ["/opt/containerspec-test/mpi-version"], "user": {"uid": 0, "gid": 0}}});
    std::fs::write(bundle.join("config.json"), cfg.to_string()).unwrap();
    let cache = dir.join("ld.so.cache");
    let (code, report) = check(&[
        bundle.to_str().unwrap(),
        "--inject",
        "mpi",
        "--emit-ld-cache",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{report}");
    let first = &report["plan"]["ld_cache"]["entries"][0];
    assert!(
        first["path"]
            .as_str()
            .unwrap()
            .starts_with("/run/containerspec/lib/"),
        "{first}"
    );
    let Ok(out) = Command::new("ldconfig")
        .args(["-p", "-C", cache.to_str().unwrap()])
        .output()
    else {
        crate::skip!("ldconfig not found");
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    let soname = first["soname"].as_str().unwrap();
    assert!(
        listing.contains(&format!(
            "{soname} (libc6,x86-64) => {}",
            first["path"].as_str().unwrap()
        )),
        "{listing}"
    );
    let count = report["plan"]["ld_cache"]["entries"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        listing.starts_with(&format!("{count} libs found in cache")),
        "{listing}"
    );
}

#[test]
fn the_host_facts_cache_never_shows() {
    // The same report with the cache (cold, then warm) and without it; and a change on
    // the host (a driver upgrade) is seen at once.
    let (host, bundle) = cuda_case("factcache", "470.57.02", "12.2.140", false);
    let b = bundle.to_str().unwrap();
    let h = host.to_str().unwrap();
    let (_, cold) = check(&[b, "--host-root", h, "--inject", "gpu"]);
    let (_, warm) = check(&[b, "--host-root", h, "--inject", "gpu"]);
    let (_, fresh) = check(&[b, "--host-root", h, "--inject", "gpu", "--no-cache"]);
    assert_eq!(cold, warm);
    assert_eq!(warm, fresh);
    assert!(
        codes(&warm).contains(&"cuda-driver-too-old:error".to_string()),
        "{warm}"
    );
    let lib = host.join("usr/lib/x86_64-linux-gnu");
    std::fs::copy(lib.join("libc.so.6"), lib.join("libcuda.so.550.54.14")).unwrap();
    std::fs::remove_file(lib.join("libcuda.so.1")).unwrap();
    std::os::unix::fs::symlink("libcuda.so.550.54.14", lib.join("libcuda.so.1")).unwrap();
    let (code, upgraded) = check(&[b, "--host-root", h, "--inject", "gpu"]);
    assert!(
        !codes(&upgraded).iter().any(|c| c.starts_with("cuda")),
        "{upgraded}"
    );
    assert_eq!(code, Some(0), "{upgraded}");
}

/// A file of the container that cannot be read reaches the verdict's report (JSON
/// `container_files`, and a `file` line), instead of staying in `inspect`'s output only.
#[test]
fn unreadable_container_files_are_in_the_report() {
    let Some(root) = crate::util::cached_rootfs("bookworm-mpich") else {
        return;
    };
    let dir = scratch("check-bundle-container-files");
    let copy = dir.join("rootfs");
    let status = Command::new("cp")
        .arg("-al")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    // The library's first 100 bytes, as a new file (the copy's files are hard links).
    let lib = std::fs::canonicalize(copy.join("usr/lib/x86_64-linux-gnu/libhwloc.so.15")).unwrap();
    let head = std::fs::read(&lib).unwrap()[..100].to_vec();
    std::fs::remove_file(&lib).unwrap();
    std::fs::write(&lib, head).unwrap();
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": copy},
        "process": {"cwd": "/", "args": [crate::inject_pairs::PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let b = bundle.to_str().unwrap();
    let host = root.to_str().unwrap();
    let report = crate::util::json(&["check-bundle", b, "--host-root", host, "--no-cache"]);
    let files = report["container_files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["code"] == "malformed-elf"
                && f["path"] == "/lib/x86_64-linux-gnu/libhwloc.so.15"),
        "{report}"
    );
    let out = containerspec(&["check-bundle", b, "--host-root", host, "--no-cache"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("  file    malformed-elf: /lib/x86_64-linux-gnu/libhwloc.so.15")),
        "{text}"
    );
}
