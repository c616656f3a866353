//! CDI end to end: `cdi generate` writes a spec for this host's MPI whose device carries
//! containerspec's hook, and the real podman (Debian 12's 4.3.1, with runc) injects
//! through it with `--device containerspec.io/mpi=host` and no hooks.d file: a
//! compatible container's MPI program reports the host's MPICH, an incompatible one is
//! refused with the diagnosis in podman's error, and the host's mount table is unchanged.
//! A GPU spec generated from a host root with Debian's real driver files names its
//! device nodes and programs and validates; `cdi validate` checks a vendor-style spec's
//! libraries against an image; a broken spec is an error naming the field.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{
    built, cached_rootfs, containerspec, hook_prerequisites, host_mpich, mountinfo, reports_mpich,
    scratch,
};

const PROGRAM: &str = "/opt/containerspec-test/mpi-version";
/// Where podman looks for CDI specs it is not told about (besides /etc/cdi).
const RUNTIME_SPECS: &str = "/var/run/cdi";

/// Runs the MPI program with the CDI device in a podman container on an overlay of `rootfs`.
fn podman_with_device(name: &str, rootfs: &Path) -> (i32, String) {
    let dir = scratch(name);
    let d = dir.display();
    let script = format!(
        "set -e\nmkdir -p {d}/upper {d}/work {d}/rootfs\n\
         mount -t overlay overlay -o lowerdir={},upperdir={d}/upper,workdir={d}/work {d}/rootfs\n\
         set +e\n\
         timeout 300 podman --runtime runc --cgroup-manager=cgroupfs run --rm \
         --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
         --device containerspec.io/mpi=host --rootfs {d}/rootfs {PROGRAM} > {d}/out 2>&1\n\
         echo $? > {d}/status\n",
        rootfs.display()
    );
    crate::util::in_private_mount_namespace(&script);
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let output = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    (status.trim().parse().unwrap_or(-1), output)
}

/// The spec `cdi generate --inject mpi` writes into the runtime's spec directory, removed
/// on drop.
struct GeneratedSpec(PathBuf);

impl GeneratedSpec {
    fn write() -> GeneratedSpec {
        std::fs::create_dir_all(RUNTIME_SPECS).unwrap();
        let out = containerspec(&[
            "cdi",
            "generate",
            "--inject",
            "mpi",
            "--output",
            RUNTIME_SPECS,
            "--hook-path",
            env!("CARGO_BIN_EXE_containerspec"),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("podman run --device containerspec.io/mpi=host"),
            "{stdout}"
        );
        GeneratedSpec(Path::new(RUNTIME_SPECS).join("containerspec-mpi.json"))
    }
}

impl Drop for GeneratedSpec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn podman_injects_through_the_mpi_device_and_refuses_with_the_diagnosis() {
    if !hook_prerequisites(&["podman", "runc"]) {
        return;
    }
    let (Some(trixie), Some(bullseye)) = (
        cached_rootfs("trixie-mpich"),
        cached_rootfs("bullseye-mpich"),
    ) else {
        return;
    };
    let spec = GeneratedSpec::write();
    let text = std::fs::read_to_string(&spec.0).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["cdiVersion"], "0.5.0");
    assert_eq!(
        json["devices"][0]["containerEdits"]["hooks"][1]["args"],
        serde_json::json!(["containerspec", "hook", "poststop"])
    );
    assert_eq!(json["kind"], "containerspec.io/mpi");
    let hook = &json["devices"][0]["containerEdits"]["hooks"][0];
    assert_eq!(hook["hookName"], "createContainer");
    assert_eq!(
        hook["args"],
        serde_json::json!([
            "containerspec",
            "hook",
            "createContainer",
            "--inject",
            "mpi"
        ])
    );
    let valid = containerspec(&["cdi", "validate", spec.0.to_str().unwrap()]);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stdout)
    );

    let before = mountinfo();
    let (status, output) = podman_with_device("cdi-inject", &trixie);
    assert!(
        status == 0 && reports_mpich(&output, &host_mpich()),
        "trixie-mpich with the device: status {status}\n{output}"
    );
    let (status, output) = podman_with_device("cdi-refuse", &bullseye);
    assert_ne!(status, 0, "{output}");
    assert!(
        output.contains("glibc-too-old: host libmpich.so.12 needs GLIBC_2.34"),
        "{output}"
    );
    assert_eq!(mountinfo(), before, "the host's mount table changed");
}

/// A copy of a rig driver root with the device nodes a GPU node has.
fn gpu_host(dir: &Path) -> Option<PathBuf> {
    let hint = "run tests/rigs/cuda.sh (setup.sh does) to build the CUDA images and driver roots";
    let cache = std::env::var("CONTAINERSPEC_TEST_CACHE")
        .unwrap_or_else(|_| "/var/cache/containerspec-test".into());
    let source = built(PathBuf::from(cache).join("cuda/hosts/drv-535"), hint)?;
    let host = dir.join("host");
    let status = Command::new("cp")
        .args(["-a", source.to_str().unwrap(), host.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    // The numbers the NVIDIA kernel module registers (nvidia-uvm's major is dynamic).
    for (name, major, minor) in [
        ("nvidiactl", 195, 255),
        ("nvidia0", 195, 0),
        ("nvidia1", 195, 1),
        ("nvidia-uvm", 508, 0),
    ] {
        let path = host.join("dev").join(name);
        let _ = std::fs::remove_file(&path);
        let status = Command::new("mknod")
            .args([
                path.to_str().unwrap(),
                "c",
                &major.to_string(),
                &minor.to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "mknod {name}");
    }
    Some(host)
}

#[test]
fn a_gpu_spec_from_real_driver_files_matches_them_and_validates() {
    if !crate::util::is_root() {
        crate::skip!("needs root (mknod)");
    }
    let dir = scratch("cdi-gpu");
    let Some(host) = gpu_host(&dir) else {
        return;
    };
    // containerspec installed on that host, where the spec's hook names it.
    std::fs::create_dir_all(host.join("usr/local/bin")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_containerspec"),
        host.join("usr/local/bin/containerspec"),
    )
    .unwrap();
    let out = containerspec(&[
        "cdi",
        "generate",
        "--inject",
        "gpu",
        "--hook-path",
        "/usr/local/bin/containerspec",
        "--host-root",
        host.to_str().unwrap(),
        "--output",
        dir.join("specs").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("gpu: driver 535.309.01"), "{stdout}");
    let file = dir.join("specs/containerspec-gpu.json");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(spec["kind"], "containerspec.io/gpu");
    let names: Vec<&str> = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0", "1", "all"]);
    assert_eq!(
        spec["devices"][2]["containerEdits"]["deviceNodes"],
        serde_json::json!([
            {"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0, "permissions": "rw"},
            {"path": "/dev/nvidia1", "type": "c", "major": 195, "minor": 1, "permissions": "rw"}
        ])
    );
    let edits = &spec["containerEdits"];
    let control: Vec<&str> = edits["deviceNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(control, ["/dev/nvidiactl", "/dev/nvidia-uvm"]);
    assert_eq!(edits["deviceNodes"][1]["major"], 508);
    // The driver's program, as nvidia-alternative links it.
    assert_eq!(
        edits["mounts"],
        serde_json::json!([{"hostPath": "/usr/bin/nvidia-smi", "containerPath": "/usr/bin/nvidia-smi",
                            "options": ["ro", "nosuid", "nodev", "bind"]}])
    );
    assert_eq!(
        edits["hooks"][0]["args"],
        serde_json::json!([
            "containerspec",
            "hook",
            "createContainer",
            "--inject",
            "gpu"
        ])
    );
    let valid = containerspec(&[
        "cdi",
        "validate",
        file.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&valid.stdout);
    assert!(valid.status.success(), "{text}");
    assert!(text.starts_with("valid: "), "{text}");
    // A spec as nvidia-ctk writes it by default (YAML), for the same host: valid.
    let yaml = dir.join("nvidia.yaml");
    std::fs::write(
        &yaml,
        "---\ncdiVersion: 0.5.0\ncontainerEdits:\n  deviceNodes:\n  - path: /dev/nvidiactl\n  \
         mounts:\n  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.535.309.01\n    \
         hostPath: /usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.535.309.01\n    options:\n    - ro\n    - bind\n\
         devices:\n- containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n  name: \"0\"\nkind: nvidia.com/gpu\n",
    )
    .unwrap();
    let out = containerspec(&[
        "cdi",
        "validate",
        yaml.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("valid: ") && text.contains("(nvidia.com/gpu: 0)"),
        "{text}"
    );
    // A GPU that went away: the spec no longer matches the host.
    std::fs::remove_file(host.join("dev/nvidia1")).unwrap();
    let stale = containerspec(&[
        "cdi",
        "validate",
        file.to_str().unwrap(),
        "--host-root",
        host.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(stale.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&stale.stdout).unwrap();
    let problems = &report[0]["problems"];
    assert_eq!(
        problems[0]["field"],
        "devices[1].containerEdits.deviceNodes[0]"
    );
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("/dev/nvidia1: "),
        "{problems}"
    );
}

#[test]
fn a_vendor_spec_whose_library_the_image_cannot_load_is_invalid_for_it() {
    // A spec in the shape NVIDIA's toolkit writes, mounting this Debian 12 host's MPICH
    // library (it needs GLIBC_2.34) into a bullseye image (glibc 2.31).
    let Some(bullseye) = cached_rootfs("bullseye-mpich") else {
        return;
    };
    let dir = scratch("cdi-vendor");
    let lib = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libmpich.so.12").unwrap();
    let spec = serde_json::json!({
        "cdiVersion": "0.5.0",
        "kind": "example.com/mpi",
        "devices": [{"name": "host", "containerEdits": {"env": ["EXAMPLE=1"]}}],
        "containerEdits": {
            "mounts": [
                {"hostPath": lib, "containerPath": "/usr/lib/x86_64-linux-gnu/libmpich.so.12",
                 "options": ["ro", "bind"]},
                {"hostPath": "/nonexistent/libfoo.so.1", "containerPath": "/usr/lib/libfoo.so.1"}
            ]
        }
    });
    let file = dir.join("vendor.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let out = containerspec(&[
        "cdi",
        "validate",
        file.to_str().unwrap(),
        "--image",
        bullseye.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("INVALID: "), "{text}");
    assert!(
        text.contains(&format!(
            "containerEdits.mounts[0].hostPath: {} needs GLIBC_2.34; the image {} has glibc 2.31",
            lib.display(),
            bullseye.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "containerEdits.mounts[1].hostPath: /nonexistent/libfoo.so.1 does not exist on the host"
        ),
        "{text}"
    );
}

#[test]
fn a_broken_spec_is_an_error_naming_the_file_and_field() {
    let dir = scratch("cdi-broken");
    let cases = [
        ("{\"cdiVersion\": \"0.3.0\", \"kind\": ", "line 1 column"),
        (
            r#"{"cdiVersion": "0.3.0", "kind": "containerspec.io", "devices": []}"#,
            ": kind: \"containerspec.io\" is not vendor/class",
        ),
        (
            r#"{"cdiVersion": "0.3.0", "kind": "a.io/b", "devices": [{"name": "x",
                "containerEdits": {"hooks": [{"hookName": "createContainer", "path": "bin/hook"}]}}]}"#,
            ": devices[0].containerEdits.hooks[0].path: \"bin/hook\" is not an absolute path",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("{i}.json"));
        std::fs::write(&file, text).unwrap();
        let out = containerspec(&["cdi", "validate", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{}", file.display())) && stderr.contains(expected),
            "{i}: {stderr}"
        );
    }
    let missing = containerspec(&["cdi", "validate", "/nonexistent/spec.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/spec.json"));
}
