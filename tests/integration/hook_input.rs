//! The hook's own input: the state on stdin and the bundle it names. Bad input is an
//! error (exit 2) that names what is wrong; stages that do nothing return at once.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::bad_input::{bundle_with_config, gpu_host_root, mini_root};
use crate::util::assert_error;

fn hook(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_containerspec"))
        .arg("hook")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn bad_states_and_bundles() {
    assert_error(
        &hook(&["createRuntime"], "{not json"),
        "invalid OCI state on stdin",
    );
    assert_error(
        &hook(&["createRuntime"], r#"{"id":"c","status":"creating"}"#),
        "invalid OCI state on stdin",
    );
    assert_error(
        &hook(&["createRuntime"], r#"{"id":"../x","bundle":"/b"}"#),
        "is not usable as a file name",
    );
    assert_error(
        &hook(
            &["createRuntime"],
            r#"{"id":"c","bundle":"/nonexistent/bundle"}"#,
        ),
        "/nonexistent/bundle",
    );
    let root = mini_root("hook-broken-config");
    let bundle = bundle_with_config(&root, "{\"ociVersion\": ");
    let state = format!(
        r#"{{"id":"c","status":"creating","pid":0,"bundle":{:?}}}"#,
        bundle
    );
    assert_error(
        &hook(&["createRuntime"], &state),
        "config.json: invalid config.json",
    );
}

#[test]
fn other_stages_do_nothing() {
    for stage in ["poststart", "startContainer"] {
        let out = hook(&[stage], "this is not even read");
        assert_eq!(out.status.code(), Some(0), "{stage}");
    }
}

#[test]
fn no_pid_and_not_inside_the_container_means_no_mount() {
    // A compatible container asking for injection, but a state without a pid, from the
    // host's namespace: the hook must refuse rather than mount in the host's namespace.
    let root = mini_root("hook-nopid");
    let config = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/bin/none"],"user":{"uid":0,"gid":0}},"linux":{"namespaces":[{"type":"mount"}]},"annotations":{"org.supercontainers.inject":"gpu"}}"#;
    let bundle = bundle_with_config(&root, config);
    let host = gpu_host_root("hook-nopid-host");
    let toml = host.parent().unwrap().join("c.toml");
    std::fs::write(
        &toml,
        format!(
            "[host]\nroot = {:?}\n[report]\ndir = {:?}\n",
            host,
            host.parent().unwrap().join("reports")
        ),
    )
    .unwrap();
    let state = format!(
        r#"{{"id":"nopid","status":"creating","bundle":{:?}}}"#,
        bundle
    );
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let out = hook(
        &["createRuntime", "--config", toml.to_str().unwrap()],
        &state,
    );
    assert_error(&out, "no container pid");
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        before
    );
    // The plan's loader cache was written, and the refusal left nothing behind.
    let reports = host.parent().unwrap().join("reports");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("nopid.json")).unwrap()).unwrap();
    assert!(!report["plan"]["ld_cache"].is_null(), "{report}");
    let left: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".ld.so.cache"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn poststop_removes_reports_of_passed_containers_only() {
    let dir = crate::util::scratch("poststop");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("ok.json"), r#"{"verdict":"compatible"}"#).unwrap();
    std::fs::write(
        reports.join("refused.json"),
        r#"{"verdict":"incompatible"}"#,
    )
    .unwrap();
    let toml = dir.join("c.toml");
    std::fs::write(&toml, format!("[report]\ndir = {:?}\n", reports)).unwrap();
    let c = toml.to_str().unwrap();
    for id in ["ok", "refused"] {
        // As hooks.d calls it: the createRuntime arguments, a stopped container's state.
        let state = format!(r#"{{"id":"{id}","status":"stopped","bundle":"/nonexistent"}}"#);
        assert_eq!(
            hook(&["createRuntime", "--config", c], &state)
                .status
                .code(),
            Some(0)
        );
    }
    assert!(!reports.join("ok.json").exists());
    assert!(reports.join("refused.json").exists());
}

#[test]
fn reports_are_never_written_through_a_symlink() {
    let root = mini_root("hook-report-links");
    let config = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/bin/none"],"user":{"uid":0,"gid":0}}}"#;
    let bundle = bundle_with_config(&root, config);
    let dir = crate::util::scratch("hook-report-dirs");
    let victim = dir.join("victim");
    std::fs::write(&victim, r#"{"verdict":"compatible"}"#).unwrap();
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    // A planted `<id>.json` symlink: replaced by the report, the file it names untouched.
    std::os::unix::fs::symlink(&victim, reports.join("planted.json")).unwrap();
    // A report directory that is a symlink: nothing written through it.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("linked")).unwrap();
    for (id, report_dir) in [("planted", &reports), ("linked", &dir.join("linked"))] {
        let toml = dir.join(format!("{id}.toml"));
        std::fs::write(&toml, format!("[report]\ndir = {report_dir:?}\n")).unwrap();
        let state = format!(r#"{{"id":"{id}","status":"creating","bundle":{bundle:?}}}"#);
        let out = hook(
            &["createRuntime", "--config", toml.to_str().unwrap()],
            &state,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        r#"{"verdict":"compatible"}"#
    );
    let written = reports.join("planted.json");
    assert!(
        !std::fs::symlink_metadata(&written)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains("\"verdict\"")
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // poststop removes a link at the report's name, never the file it names.
    std::fs::remove_file(&written).unwrap();
    std::os::unix::fs::symlink(&victim, &written).unwrap();
    let toml = dir.join("planted.toml");
    let state = r#"{"id":"planted","status":"stopped","bundle":"/nonexistent"}"#;
    assert_eq!(
        hook(&["poststop", "--config", toml.to_str().unwrap()], state)
            .status
            .code(),
        Some(0)
    );
    assert!(victim.is_file());
}

#[test]
fn injection_without_cap_sys_admin_is_refused_saying_why() {
    if !crate::util::root_or_skip("to drop a capability from the bounding set") {
        return;
    }
    // A compatible container asking for injection, the hook run by root without
    // CAP_SYS_ADMIN (as a rootless runtime or a narrowed bounding set leaves it).
    let root = mini_root("hook-nocap");
    let config = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/bin/none"],"user":{"uid":0,"gid":0}},"annotations":{"org.supercontainers.inject":"gpu"}}"#;
    let bundle = bundle_with_config(&root, config);
    let host = gpu_host_root("hook-nocap-host");
    let toml = host.parent().unwrap().join("c.toml");
    let reports = host.parent().unwrap().join("reports");
    std::fs::write(
        &toml,
        format!("[host]\nroot = {host:?}\n[report]\ndir = {reports:?}\n"),
    )
    .unwrap();
    let state = format!(r#"{{"id":"nocap","status":"creating","pid":1,"bundle":{bundle:?}}}"#);
    let mut child = Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin"])
        .arg(env!("CARGO_BIN_EXE_containerspec"))
        .args(["hook", "createRuntime", "--config", toml.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(state.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert_error(&out, "injection needs CAP_SYS_ADMIN");
    // The verdict was written; nothing else was left behind.
    let names: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["nocap.json"]);
}

#[test]
fn a_full_directory_does_not_refuse_a_start_that_injects_nothing() {
    if !crate::util::root_or_skip("to mount a small tmpfs as the hook's directory") {
        return;
    }
    // The hook's directory is a tmpfs filled to the last byte: the report cannot be
    // written. A container that asks for no injection still starts (exit 0, the failure
    // in the log); one that asks for injection is refused (its loader cache has nowhere
    // to go), saying why, with nothing mounted.
    let root = mini_root("hook-full");
    let plain = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/bin/none"],"user":{"uid":0,"gid":0}},"linux":{"namespaces":[{"type":"mount"}]}}"#;
    let bundle = bundle_with_config(&root, plain);
    let dir = bundle.clone();
    let host = gpu_host_root("hook-full-host");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let toml = dir.join("c.toml");
    std::fs::write(
        &toml,
        format!("[host]\nroot = {host:?}\n[report]\ndir = {reports:?}\n"),
    )
    .unwrap();
    let inject = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/bin/none"],"user":{"uid":0,"gid":0}},"linux":{"namespaces":[{"type":"mount"}]},"annotations":{"org.supercontainers.inject":"gpu"}}"#;
    let inject_bundle = dir.join("inject");
    std::fs::create_dir_all(&inject_bundle).unwrap();
    std::fs::write(inject_bundle.join("config.json"), inject).unwrap();
    std::os::unix::fs::symlink(&root, inject_bundle.join("rootfs")).unwrap();
    let exe = env!("CARGO_BIN_EXE_containerspec");
    let (r, d) = (reports.display(), dir.display());
    let script = format!(
        "set -e\nmount -t tmpfs -o size=64k,mode=0755 tmpfs {r}\n\
         dd if=/dev/zero of={r}/filler bs=4k 2>/dev/null || true\n\
         printf '{{\"id\":\"plain\",\"status\":\"creating\",\"pid\":1,\"bundle\":\"{d}\"}}' | \
           {exe} hook createRuntime --config {t} --log-file {d}/hook.log > {d}/plain.out 2>&1 \
           && echo 0 > {d}/plain.rc || echo $? > {d}/plain.rc\n\
         printf '{{\"id\":\"inject\",\"status\":\"creating\",\"pid\":1,\"bundle\":\"{d}/inject\"}}' | \
           {exe} hook createRuntime --config {t} --log-file {d}/hook.log > {d}/inject.out 2>&1 \
           && echo 0 > {d}/inject.rc || echo $? > {d}/inject.rc\n\
         cat /proc/self/mountinfo > {d}/after\n",
        t = toml.display()
    );
    let before = crate::util::mountinfo();
    crate::util::in_private_mount_namespace(&script);
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    let log = read("hook.log");
    assert_eq!(read("plain.rc").trim(), "0", "{}\n{log}", read("plain.out"));
    assert!(log.contains("cannot write the report"), "{log}");
    assert_eq!(
        read("inject.rc").trim(),
        "2",
        "{}\n{log}",
        read("inject.out")
    );
    assert!(
        read("inject.out").contains("No space left on device"),
        "{}",
        read("inject.out")
    );
    assert!(
        !read("after").contains(&root.display().to_string()),
        "something was mounted in the rootfs"
    );
    assert_eq!(crate::util::mountinfo(), before);
}
