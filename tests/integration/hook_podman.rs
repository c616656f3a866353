//! The hook under real podman (with runc), registered through a hooks.d file gated by the
//! `org.supercontainers.inject` annotation, as an admin installs it: injection, with a
//! read-only rootfs too, rejection with the diagnosis in podman's error, and 20
//! containers started at once. Every run is in a private mount namespace holding
//! overlays of the cached rootfs; the host's mount table must not change.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{
    cached_rootfs, hook_prerequisites, host_mpich, mountinfo, reports_mpich, scratch,
};

const PROGRAM: &str = "/opt/containerspec-test/mpi-version";

/// A hooks.d directory with the project's gated hook file, pointing at this build.
fn hooks_dir(dir: &Path) -> PathBuf {
    let hooks = dir.join("hooks.d");
    std::fs::create_dir_all(&hooks).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/containerspec-inject.json");
    let mut hook: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped).unwrap()).unwrap();
    hook["hook"]["path"] = env!("CARGO_BIN_EXE_containerspec").into();
    let args = serde_json::json!([
        "containerspec",
        "hook",
        "createRuntime",
        "--log-file",
        dir.join("hook.log")
    ]);
    hook["hook"]["args"] = args;
    std::fs::write(hooks.join("containerspec.json"), hook.to_string()).unwrap();
    hooks
}

/// Starts `count` containers at once from overlays of `rootfs`; returns each one's output.
fn podman_runs(
    name: &str,
    rootfs: &Path,
    count: usize,
    extra: &str,
) -> (PathBuf, Vec<(i32, String)>) {
    let dir = scratch(name);
    let hooks = hooks_dir(&dir);
    let d = dir.display();
    let mut script = String::from("set -e\n");
    for i in 0..count {
        script += &format!(
            "mkdir -p {d}/{i}/upper {d}/{i}/work {d}/{i}/rootfs\n\
             mount -t overlay overlay -o lowerdir={},upperdir={d}/{i}/upper,workdir={d}/{i}/work {d}/{i}/rootfs\n",
            rootfs.display()
        );
    }
    script += "set +e\n";
    for i in 0..count {
        script += &format!(
            "(timeout 300 podman --runtime runc --cgroup-manager=cgroupfs --hooks-dir {} run --rm {extra} \
             --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --annotation org.supercontainers.inject=mpi \
             --rootfs {d}/{i}/rootfs {PROGRAM} > {d}/{i}/out 2>&1; echo $? > {d}/{i}/status) &\n",
            hooks.display()
        );
    }
    script += "wait\n";
    crate::util::in_private_mount_namespace(&script);
    let results = (0..count)
        .map(|i| {
            let status =
                std::fs::read_to_string(dir.join(format!("{i}/status"))).unwrap_or_default();
            let output = std::fs::read_to_string(dir.join(format!("{i}/out"))).unwrap_or_default();
            (status.trim().parse().unwrap_or(-1), output)
        })
        .collect();
    (dir, results)
}

fn reports_host_mpich(output: &str) -> bool {
    reports_mpich(output, &host_mpich())
}

#[test]
fn injection_with_and_without_a_read_only_rootfs() {
    if !hook_prerequisites(&["podman", "runc"]) {
        return;
    }
    let Some(trixie) = cached_rootfs("trixie-mpich") else {
        return;
    };
    for extra in ["", "--read-only"] {
        let before = mountinfo();
        let (_, results) = podman_runs("podman-inject", &trixie, 1, extra);
        let (status, output) = &results[0];
        assert!(
            *status == 0 && reports_host_mpich(output),
            "podman {extra}: status {status}\n{output}"
        );
        assert_eq!(
            mountinfo(),
            before,
            "podman {extra}: the host's mount table changed"
        );
    }
}

#[test]
fn rejection_is_in_podmans_error() {
    if !hook_prerequisites(&["podman", "runc"]) {
        return;
    }
    let Some(bullseye) = cached_rootfs("bullseye-mpich") else {
        return;
    };
    let before = mountinfo();
    let (_, results) = podman_runs("podman-reject", &bullseye, 1, "");
    let (status, output) = &results[0];
    assert_ne!(*status, 0, "{output}");
    assert!(output.contains("error running hook"), "{output}");
    assert!(
        output.contains("glibc-too-old: host libmpich.so.12 needs GLIBC_2.34"),
        "{output}"
    );
    assert_eq!(mountinfo(), before);
}

#[test]
fn twenty_containers_at_once() {
    if !hook_prerequisites(&["podman", "runc"]) {
        return;
    }
    let Some(trixie) = cached_rootfs("trixie-mpich") else {
        return;
    };
    let before = mountinfo();
    let (dir, results) = podman_runs("podman-twenty", &trixie, 20, "");
    let failed: Vec<String> = results
        .iter()
        .enumerate()
        .filter(|(_, (status, output))| *status != 0 || !reports_host_mpich(output))
        .map(|(i, (status, output))| format!("container {i}: status {status}\n{output}"))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(mountinfo(), before, "mounts were left behind");
    let log = std::fs::read_to_string(dir.join("hook.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("injected:")).count(),
        20,
        "{log}"
    );
}

/// Rootless podman (as an unprivileged user with subordinate ids, `tests/rigs/setup.sh`
/// makes one): the hook runs in podman's user namespace, with CAP_SYS_ADMIN there and the
/// user's powers only, and injects into the container it proved is the one made for it.
/// Its directory must be one the user owns: root's `/run/containerspec` is refused with a
/// hint saying so.
#[test]
fn rootless_podman_injects_with_the_users_powers() {
    if !hook_prerequisites(&["podman", "runc", "newuidmap"]) {
        return;
    }
    let user = "containerspec-rootless";
    let exists = Command::new("id")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let hint = format!("no user {user} (tests/rigs/setup.sh makes it)");
        assert!(
            std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
            "{hint}"
        );
        eprintln!("skipping: {hint}");
        return;
    }
    let Some(trixie) = cached_rootfs("trixie-mpich") else {
        return;
    };
    let before = mountinfo();
    // Everything the user's podman reads or runs lives here, owned by the user.
    let dir = scratch("podman-rootless");
    let d = dir.display();
    let binary = dir.join("containerspec");
    std::fs::copy(env!("CARGO_BIN_EXE_containerspec"), &binary).unwrap();
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(dir.join("c.toml"), format!("[report]\ndir = {reports:?}\n")).unwrap();
    let hooks = dir.join("hooks.d");
    std::fs::create_dir_all(&hooks).unwrap();
    let write_hook = |with_config: bool| {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/containerspec-inject.json");
        let mut hook: serde_json::Value =
            serde_json::from_slice(&std::fs::read(shipped).unwrap()).unwrap();
        hook["hook"]["path"] = binary.display().to_string().into();
        let mut args = vec![
            "containerspec".to_string(),
            "hook".into(),
            "createRuntime".into(),
        ];
        if with_config {
            args.extend(["--config".into(), format!("{d}/c.toml")]);
        }
        args.extend(["--log-file".into(), format!("{d}/hook.log")]);
        hook["hook"]["args"] = serde_json::json!(args);
        std::fs::write(hooks.join("containerspec.json"), hook.to_string()).unwrap();
    };
    write_hook(true);
    let setup = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cp -a {} {d}/root && touch {d}/hook.log && chown -R {user}: {d}",
            trixie.display()
        ))
        .status()
        .unwrap();
    assert!(setup.success());
    let run = || {
        let podman = format!(
            "cd {d} && timeout 300 podman --runtime runc --cgroup-manager=cgroupfs \
             --hooks-dir {} run --rm --network none --annotation org.supercontainers.inject=mpi \
             --rootfs {d}/root {PROGRAM} 2>&1",
            hooks.display()
        );
        let out = Command::new("su")
            .args(["-s", "/bin/sh", user, "-c", &podman])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, output) = run();
    let log = std::fs::read_to_string(dir.join("hook.log")).unwrap_or_default();
    assert!(
        ok && reports_host_mpich(&output),
        "rootless: the container should report the host's MPICH:\n{output}\nlog:\n{log}"
    );
    assert!(log.contains("injected:"), "{log}");
    // poststop ran: the passed container's report and the mount points made in the
    // user's rootfs directory are gone.
    assert!(!dir.join("root/run/containerspec").exists());
    let left: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // With root's directory (the default), injection is refused, saying what to do.
    write_hook(false);
    let (ok, output) = run();
    assert!(!ok, "{output}");
    assert!(
        output.contains("set [report] dir in the config file to a directory the user owns"),
        "{output}"
    );
    assert_eq!(mountinfo(), before, "the host's mount table changed");
    let _ = Command::new("rm").arg("-rf").arg(&dir).status();
}
