//! Where the hook mounts: only in a mount namespace it has proved is the container's own.
//! Each case runs the real hook, as root, on a container that asks for injection, inside
//! private mount namespaces made by `unshare` (so a failure cannot reach the machine's
//! own namespace), and checks the mount table of every namespace involved: the one the
//! mounts belong in shows them, every other one is unchanged.
//!
//! The cases stand for what runtimes and attackers produce:
//! - `createContainer`: the hook runs inside the container's new pid and mount
//!   namespaces as the child of the container's init, and the state's pid (1) is a pid of
//!   that pid namespace while `/proc` is still the host's, where `/proc/1` is the host's
//!   init;
//! - `createRuntime`: the hook runs in the runtime's namespace and joins the container's;
//! - a rootfs whose `/proc` is mounted in the hook's own namespace (a chroot or build root
//!   run as a container), with a pid that is not the hook's parent: refused, where the
//!   old "is `/proc` mounted in the rootfs" test mounted into the hook's namespace;
//! - a pid naming the init of the `/proc` the hook sees: refused;
//! - no pid, or a `config.json` without a mount namespace of the container's own, or one
//!   that joins an existing namespace: refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bad_input::{bundle_with_config, gpu_host_root, mini_root};
use crate::util::{mountinfo, root_or_skip};

/// A compatible container that asks for the host's (stand-in) CUDA driver library, and a
/// host root that has one: the plan mounts a library and a loader cache.
struct Case {
    dir: PathBuf,
    rootfs: PathBuf,
    bundle: PathBuf,
    toml: PathBuf,
}

impl Case {
    fn new(name: &str, linux: serde_json::Value) -> Case {
        let rootfs = mini_root(name);
        std::fs::create_dir_all(rootfs.join("proc")).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["/bin/none"], "user": {"uid": 0, "gid": 0}},
            "annotations": {"org.supercontainers.inject": "gpu"},
            "linux": linux,
        });
        let bundle = bundle_with_config(&rootfs, &config.to_string());
        let dir = bundle.clone();
        let host = gpu_host_root(&format!("{name}-host"));
        let toml = dir.join("c.toml");
        std::fs::write(
            &toml,
            format!(
                "[host]\nroot = {host:?}\n[report]\ndir = {:?}\n",
                dir.join("reports")
            ),
        )
        .unwrap();
        let rootfs = std::fs::canonicalize(rootfs).unwrap();
        Case {
            dir,
            rootfs,
            bundle,
            toml,
        }
    }

    fn new_mount_namespace(name: &str) -> Case {
        Case::new(name, serde_json::json!({"namespaces": [{"type": "mount"}]}))
    }

    /// Shell words that run the hook with a state whose pid is `pid` (a shell
    /// expression; empty for none), as a child of the shell, leaving its exit status in
    /// `rc` and its output in `out`.
    fn hook_command(&self, pid: &str) -> String {
        let pid_field = if pid.is_empty() {
            String::new()
        } else {
            format!(",\\\"pid\\\":{pid}")
        };
        let d = self.dir.display();
        format!(
            "printf '{{\"id\":\"ns\",\"status\":\"creating\",\"bundle\":\"{}\"%s}}' \"{pid_field}\" > {d}/state\n\
             {} hook createRuntime --config {} --log-file {d}/hook.log < {d}/state > {d}/out 2>&1 && echo 0 > {d}/rc || echo $? > {d}/rc\n",
            self.bundle.display(),
            env!("CARGO_BIN_EXE_containerspec"),
            self.toml.display(),
        )
    }

    /// A script: `setup`, the namespace's mount table saved as `before`, the hook (told
    /// `pid`), the table saved as `after`, `teardown`.
    fn around_hook(&self, setup: &str, pid: &str, teardown: &str) -> String {
        let d = self.dir.display();
        format!(
            "{setup}\ncat /proc/thread-self/mountinfo > {d}/before\n{}\
             cat /proc/thread-self/mountinfo > {d}/after\n{teardown}\n",
            self.hook_command(pid)
        )
    }

    /// Runs `script` under `unshare ARGS`; panics with its output when it fails itself.
    fn run(&self, unshare: &[&str], script: &str) {
        let out = Command::new("unshare")
            .args(unshare)
            .args(["sh", "-ec", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the test's script failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.read("out")
        );
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn rc(&self) -> String {
        self.read("rc").trim().to_string()
    }

    fn show(&self) -> String {
        format!(
            "exit {}\noutput:\n{}\nlog:\n{}",
            self.rc(),
            self.read("out"),
            self.read("hook.log")
        )
    }

    /// The mount points below the rootfs (other than its /proc) in a saved table.
    fn mounts_in_rootfs(&self, table: &str) -> Vec<String> {
        let root = format!("{}/", self.rootfs.display());
        let proc_dir = format!("{}proc", root);
        table
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root) && *m != proc_dir)
            .map(str::to_string)
            .collect()
    }
}

/// The mount-table lines of `table` that name `path`, for messages.
fn lines_naming(table: &str, path: &Path) -> Vec<String> {
    let p = path.display().to_string();
    table
        .lines()
        .filter(|l| l.contains(&p))
        .map(str::to_string)
        .collect()
}

#[test]
fn create_container_pid_is_read_in_the_hooks_own_pid_namespace() {
    if !root_or_skip("to make mount and pid namespaces") {
        return;
    }
    let host_before = mountinfo();
    let case = Case::new_mount_namespace("ns-create-container");
    let r = case.rootfs.display();
    // The shell is pid 1 of a new pid namespace (the container's init), in a mount
    // namespace of its own, with the host's /proc: as runc's init is when it runs the
    // createContainer hooks, which it starts as its children.
    let script = case.around_hook(&format!("mount -t proc proc {r}/proc"), "1", "");
    case.run(
        &["--mount", "--propagation", "private", "--pid", "--fork"],
        &script,
    );
    assert_eq!(case.rc(), "0", "{}", case.show());
    assert!(
        case.read("hook.log")
            .contains("already in the container's mount namespace"),
        "{}",
        case.show()
    );
    let made = case.mounts_in_rootfs(&case.read("after"));
    assert!(
        made.iter().any(|m| m.ends_with("/etc/ld.so.cache")),
        "the container's namespace should show the plan's mounts: {made:?}\n{}",
        case.show()
    );
    assert!(case.mounts_in_rootfs(&case.read("before")).is_empty());
    assert_eq!(mountinfo(), host_before, "the host's mount table changed");
}

#[test]
fn create_runtime_joins_the_containers_namespace_and_leaves_its_own_alone() {
    if !root_or_skip("to make mount namespaces") {
        return;
    }
    let host_before = mountinfo();
    let case = Case::new_mount_namespace("ns-create-runtime");
    let r = case.rootfs.display();
    let d = case.dir.display();
    // The outer shell stands for the runtime; the sleeper, in a mount namespace of its
    // own with the container's /proc mounted in the rootfs, for the container's init.
    let script = case.around_hook(
        &format!(
            "unshare --mount --propagation private sh -c 'mount -t proc proc {r}/proc && exec sleep 60' &\n\
             pid=$!\n\
             n=0; until grep -q ' {r}/proc ' /proc/$pid/mountinfo 2>/dev/null; do n=$((n+1)); [ $n -lt 200 ]; sleep 0.05; done"
        ),
        "$pid",
        &format!("cat /proc/$pid/mountinfo > {d}/container\nkill $pid"),
    );
    case.run(&["--mount", "--propagation", "private"], &script);
    assert_eq!(case.rc(), "0", "{}", case.show());
    assert!(
        case.read("hook.log")
            .contains("joined the container's mount namespace"),
        "{}",
        case.show()
    );
    let inside = case.mounts_in_rootfs(&case.read("container"));
    assert!(
        inside.iter().any(|m| m.ends_with("/etc/ld.so.cache")),
        "the container's namespace should show the plan's mounts: {inside:?}\n{}",
        case.show()
    );
    assert_eq!(
        case.read("after"),
        case.read("before"),
        "the runtime's namespace changed"
    );
    assert_eq!(mountinfo(), host_before, "the host's mount table changed");
}

#[test]
fn a_rootfs_with_proc_mounted_in_the_hooks_own_namespace_gets_no_mount() {
    if !root_or_skip("to make mount namespaces") {
        return;
    }
    let host_before = mountinfo();
    let case = Case::new_mount_namespace("ns-own-proc");
    let r = case.rootfs.display();
    // A build root with /proc mounted where the hook runs, and a pid of a process in the
    // same namespace that is not the hook's parent.
    let script = case.around_hook(
        &format!("mount -t proc proc {r}/proc\nsleep 60 &\npid=$!"),
        "$pid",
        "kill $pid",
    );
    case.run(&["--mount", "--propagation", "private"], &script);
    assert_eq!(case.rc(), "2", "{}", case.show());
    assert!(
        case.read("out").contains("is not the hook's parent"),
        "{}",
        case.show()
    );
    assert_eq!(
        case.read("after"),
        case.read("before"),
        "the hook's own namespace changed: {:?}",
        lines_naming(&case.read("after"), &case.rootfs)
    );
    assert_eq!(mountinfo(), host_before, "the host's mount table changed");
}

#[test]
fn the_init_of_the_hooks_proc_is_never_joined() {
    if !root_or_skip("to make mount and pid namespaces") {
        return;
    }
    let host_before = mountinfo();
    let case = Case::new_mount_namespace("ns-init");
    let r = case.rootfs.display();
    let d = case.dir.display();
    // The outer shell is pid 1 of a new pid namespace with its own /proc: it stands for
    // the host's init. The container's /proc is mounted in its namespace too, so that
    // only the check on init stands between the hook and a mount there. The hook runs
    // in a namespace of its own below it and is told pid 1.
    let script = format!(
        "mount -t proc proc {r}/proc\n\
         cat /proc/thread-self/mountinfo > {d}/before\n\
         unshare --mount --propagation private sh -c '{}'\n\
         cat /proc/thread-self/mountinfo > {d}/after\n",
        case.hook_command("1").replace('\'', "'\\''")
    );
    case.run(
        &[
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
        ],
        &script,
    );
    assert_eq!(case.rc(), "2", "{}", case.show());
    assert!(
        case.read("out").contains("the init of this /proc"),
        "{}",
        case.show()
    );
    assert_eq!(
        case.mounts_in_rootfs(&case.read("after")),
        case.mounts_in_rootfs(&case.read("before")),
        "init's namespace changed"
    );
    assert_eq!(mountinfo(), host_before, "the host's mount table changed");
}

#[test]
fn no_namespace_of_the_containers_own_means_no_mount() {
    if !root_or_skip("to make mount namespaces") {
        return;
    }
    let host_before = mountinfo();
    let cases = [
        (
            Case::new(
                "ns-shared",
                serde_json::json!({"namespaces": [{"type": "pid"}]}),
            ),
            "$$",
            "asks for no mount namespace",
        ),
        (
            Case::new(
                "ns-joins",
                serde_json::json!({"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}),
            ),
            "$$",
            "joins an existing mount namespace (/proc/1/ns/mnt)",
        ),
        (
            Case::new_mount_namespace("ns-no-pid"),
            "",
            "the OCI state has no container pid",
        ),
    ];
    for (case, pid, needle) in &cases {
        let r = case.rootfs.display();
        let script = case.around_hook(&format!("mount -t proc proc {r}/proc"), pid, "");
        case.run(&["--mount", "--propagation", "private"], &script);
        assert_eq!(case.rc(), "2", "{needle}: {}", case.show());
        assert!(case.read("out").contains(needle), "{}", case.show());
        assert_eq!(case.read("after"), case.read("before"), "{needle}");
        // The refusal left the report and nothing else (the plan's loader cache is gone).
        let left: Vec<String> = std::fs::read_dir(case.dir.join("reports"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["ns.json"], "{needle}");
    }
    assert_eq!(mountinfo(), host_before, "the host's mount table changed");
}
