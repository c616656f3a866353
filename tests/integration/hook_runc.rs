//! The hook under real runc, on real Debian root filesystems: injection (createRuntime and
//! createContainer), rejection with the diagnosis in runc's error, the report file, a
//! host root from the config file, images whose library paths are symlinks to host
//! paths, and the host's mount table unchanged by any of it.
//!
//! Each run happens in a private mount namespace (`unshare --mount`) holding an overlay of
//! the cached rootfs, so the cache is never written and runc's own mounts go away with
//! the namespace; the hook's mounts must not reach the host's namespace either, which
//! the tests check on the host's /proc/self/mountinfo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{
    cached_rootfs, dpkg_version, hook_prerequisites, host_mpich, mountinfo, reports_mpich, scratch,
    upstream_version,
};

const PROGRAM: &str = "/opt/containerspec-test/mpi-version";

struct Case {
    dir: PathBuf,
    stage: &'static str,
    annotations: serde_json::Value,
    env: Vec<String>,
    config_toml: Option<String>,
    /// Shell commands run in the runtime's namespace once the rootfs is mounted.
    after_mount: String,
    /// More overlay mount options (each with a leading comma).
    overlay_options: &'static str,
    /// Also register the hook for poststop.
    poststop: bool,
    /// Changes to config.json beyond the test's defaults (given the test's directory).
    edit: fn(&mut serde_json::Value, &Path),
}

impl Case {
    fn new(name: &str) -> Case {
        Case {
            dir: scratch(name),
            stage: "createRuntime",
            annotations: serde_json::json!({"org.supercontainers.inject": "mpi"}),
            env: vec!["PATH=/usr/bin:/bin".into()],
            config_toml: None,
            after_mount: String::new(),
            overlay_options: "",
            poststop: false,
            edit: |_, _| {},
        }
    }

    /// The runtime's namespace's mount table when runc had finished (see [`Case::run`]).
    fn runtime_mounts(&self) -> String {
        std::fs::read_to_string(self.dir.join("runtime-mountinfo")).unwrap_or_default()
    }

    fn report_dir(&self) -> PathBuf {
        self.dir.join("reports")
    }

    /// The hook's JSON report for this test's container.
    fn report(&self) -> serde_json::Value {
        let path = self
            .report_dir()
            .join(format!("hooktest-{}.json", std::process::id()));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    /// Writes the bundle and runs the container; `prepare` may change the overlay's
    /// upper directory (the image) before runc starts.
    fn run(&self, rootfs: &Path, upper_setup: &str) -> Output {
        let bundle = self.dir.join("bundle");
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        let spec = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            spec.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&spec.stderr)
        );
        let config = self.dir.join("containerspec.toml");
        let toml = self.config_toml.clone().unwrap_or_default()
            + &format!("\n[report]\ndir = {:?}\n", self.report_dir());
        std::fs::write(&config, toml).unwrap();
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!([PROGRAM]);
        c["process"]["env"] = serde_json::json!(self.env);
        c["root"] = serde_json::json!({"path": "rootfs", "readonly": false});
        c["annotations"] = self.annotations.clone();
        let hook = serde_json::json!([{
            "path": env!("CARGO_BIN_EXE_containerspec"),
            "args": ["containerspec", "hook", self.stage, "--config", config, "--log-file", self.dir.join("hook.log")],
        }]);
        c["hooks"] = serde_json::json!({ self.stage: hook });
        if self.poststop {
            let mut stop = hook.clone();
            stop[0]["args"][2] = "poststop".into();
            c["hooks"]["poststop"] = stop;
        }
        (self.edit)(&mut c, &self.dir);
        std::fs::write(bundle.join("config.json"), c.to_string()).unwrap();
        let d = self.dir.display();
        let script = format!(
            "set -e\nmkdir -p {d}/upper {d}/work\n{upper_setup}\n\
             mount -t overlay overlay -o lowerdir={},upperdir={d}/upper,workdir={d}/work{} {d}/bundle/rootfs\n\
             {}\n\
             cd {d}/bundle\nrc=0; timeout 120 runc --root {d}/runc run hooktest-{} || rc=$?\n\
             cat /proc/self/mountinfo > {d}/runtime-mountinfo\n\
             [ -f {d}/background.pid ] && kill $(cat {d}/background.pid) 2>/dev/null || true\nexit $rc\n",
            rootfs.display(),
            self.overlay_options,
            self.after_mount,
            std::process::id()
        );
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap()
    }
}

/// The trixie MPICH root, when runc and that root are there; else None, after saying why.
fn runc_and_trixie() -> Option<PathBuf> {
    if !hook_prerequisites(&["runc"]) {
        return None;
    }
    cached_rootfs("trixie-mpich")
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn injection_at_create_runtime_and_create_container() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    for stage in ["createRuntime", "createContainer"] {
        let before = mountinfo();
        let mut case = Case::new(&format!("runc-{stage}"));
        case.stage = stage;
        let out = case.run(&trixie, "");
        assert!(
            out.status.success()
                && reports_mpich(&String::from_utf8_lossy(&out.stdout), &host_mpich()),
            "{stage}: the container should report the host's MPICH {}:\n{}",
            host_mpich(),
            show(&out)
        );
        assert_eq!(
            mountinfo(),
            before,
            "{stage}: the host's mount table changed"
        );
        let log = std::fs::read_to_string(case.dir.join("hook.log")).unwrap();
        assert!(log.contains("injected:"), "{log}");
        let report: serde_json::Value = case.report();
        assert_eq!(report["verdict"], "compatible");
        // The plan's loader cache was mounted, and its file is gone from the hook's
        // directory (the mount holds it): nothing accumulates there.
        assert!(!report["plan"]["ld_cache"].is_null(), "{report}");
        // The record of the mount points created in the rootfs stays for poststop (not
        // registered here; see mount_points_created_in_the_rootfs_go_at_poststop).
        let id = format!("hooktest-{}", std::process::id());
        let left: Vec<String> = std::fs::read_dir(case.report_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| *n != format!("{id}.json") && *n != format!("{id}.stubs.json"))
            .collect();
        assert!(
            left.is_empty(),
            "{stage}: left in the hook's directory: {left:?}"
        );
    }
}

#[test]
fn a_host_root_from_the_config_file() {
    if !hook_prerequisites(&["runc"]) {
        return;
    }
    let (Some(trixie), Some(bullseye)) = (
        cached_rootfs("trixie-mpich"),
        cached_rootfs("bullseye-mpich"),
    ) else {
        return;
    };
    let mut case = Case::new("runc-hostroot");
    case.config_toml = Some(format!("[host]\nroot = {:?}\n", bullseye));
    let out = case.run(&trixie, "");
    let version = upstream_version(&dpkg_version(&bullseye, "libmpich12").unwrap());
    assert!(
        out.status.success() && reports_mpich(&String::from_utf8_lossy(&out.stdout), &version),
        "{}",
        show(&out)
    );
}

#[test]
fn rejection_shows_the_diagnosis_and_writes_the_report() {
    if !hook_prerequisites(&["runc"]) {
        return;
    }
    let Some(bullseye) = cached_rootfs("bullseye-mpich") else {
        return;
    };
    let before = mountinfo();
    let case = Case::new("runc-reject");
    let out = case.run(&bullseye, "");
    assert!(
        !out.status.success(),
        "a bullseye container cannot take the host's MPICH:\n{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("glibc-too-old"), "{stderr}");
    assert!(
        stderr.contains("host libmpich.so.12 needs GLIBC_2.34"),
        "{stderr}"
    );
    assert_eq!(mountinfo(), before);
    let report: serde_json::Value = case.report();
    assert_eq!(report["verdict"], "incompatible");
    assert_eq!(report["findings"][0]["code"], "glibc-too-old");
    let log = std::fs::read_to_string(case.dir.join("hook.log")).unwrap();
    assert!(log.contains("GLIBC_2.34"), "{log}");
}

#[test]
fn library_symlinks_to_host_paths_stay_inside_the_rootfs() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    let shadow = std::fs::read("/etc/shadow").ok();
    let before = mountinfo();
    // The image's MPI library is a symlink to /etc/shadow: inside the rootfs that is the
    // image's own shadow file, not an ELF library: the container has no usable MPI, the
    // start is refused, and nothing is mounted anywhere.
    let case = Case::new("runc-shadow");
    let lib = "usr/lib/x86_64-linux-gnu";
    let setup = format!(
        "mkdir -p {d}/upper/{lib} && ln -sf /etc/shadow {d}/upper/{lib}/libmpich.so.12.4.1",
        d = case.dir.display()
    );
    let out = case.run(&trixie, &setup);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mpi-not-found"),
        "{}",
        show(&out)
    );
    assert_eq!(mountinfo(), before);
    assert_eq!(std::fs::read("/etc/shadow").ok(), shadow);
    // /run is a symlink to / in the image: containerspec's directory lands in the
    // rootfs's own root, never the host's, and the container still runs.
    let case = Case::new("runc-runlink");
    let setup = format!(
        "rm -rf {d}/upper/run && ln -s / {d}/upper/run",
        d = case.dir.display()
    );
    let out = case.run(&trixie, &setup);
    assert!(
        out.status.success() && reports_mpich(&String::from_utf8_lossy(&out.stdout), &host_mpich()),
        "{}",
        show(&out)
    );
    assert!(
        !Path::new("/containerspec").exists(),
        "a directory was created on the host"
    );
    assert!(
        case.dir.join("upper/containerspec/lib").is_dir(),
        "the mount point should be inside the rootfs"
    );
    assert_eq!(mountinfo(), before);
}

#[test]
fn the_containers_ld_preload_does_not_touch_the_hook() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    let mut case = Case::new("runc-preload");
    case.env.push("LD_PRELOAD=/nonexistent/evil.so".into());
    case.env.push("LD_LIBRARY_PATH=/nonexistent".into());
    let out = case.run(&trixie, "");
    assert!(
        out.status.success() && reports_mpich(&String::from_utf8_lossy(&out.stdout), &host_mpich()),
        "{}",
        show(&out)
    );
}

/// Site installations under a prefix, through the hook under runc: Intel MPI into a
/// Debian MPICH container (the prefix mounted at its own path, the container's
/// libmpich.so.12 pointed at Intel's libmpi.so.12 by the loader cache), and the site's
/// MPICH into a container whose MPICH wheel lives in a virtualenv (found through the
/// program's RUNPATH, so bound over). The program reports the site's library.
#[test]
fn site_installations_under_a_prefix() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    let site = crate::util::rootfs_cache()
        .parent()
        .unwrap()
        .join("site-mpi");
    let hint = "site MPI roots not built: run tests/rigs/site-mpi.sh";
    let (Some(intel), Some(mpich), Some(venv)) = (
        crate::util::built(site.join("hosts/intel-mpi-module"), hint),
        crate::util::built(site.join("hosts/mpich-module"), hint),
        crate::util::built(site.join("containers/venv-mpich"), hint),
    ) else {
        return;
    };
    let intel_prefix = "/sw/intel-mpi/2021.13.1";
    let cases = [
        (
            "runc-site-intel",
            &trixie,
            &intel,
            intel_prefix,
            vec![format!(
                "FI_PROVIDER_PATH={intel_prefix}/lib/libfabric/prov"
            )],
            "Intel(R) MPI Library 2021.13 for Linux",
        ),
        (
            "runc-site-venv",
            &venv,
            &mpich,
            "/sw/mpich/5.0.2",
            vec![],
            "MPICH Version:      5.0.2",
        ),
    ];
    for (name, container, host, prefix, env, wanted) in cases {
        let mut case = Case::new(name);
        case.config_toml = Some(format!(
            "[host]\nroot = {host:?}\n[inject.mpi]\nprefixes = [{prefix:?}]\n"
        ));
        case.env.extend(env);
        let before = mountinfo();
        let out = case.run(container, "");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(wanted),
            "{name}: {}",
            show(&out)
        );
        let report = case.report();
        assert_eq!(report["verdict"], "compatible", "{name}: {report}");
        assert!(
            report["plan"]["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == prefix && m["kind"] == "directory"),
            "{name}: the prefix is mounted at its own path: {}",
            report["plan"]
        );
        assert_eq!(
            mountinfo(),
            before,
            "{name}: the host's mount table changed"
        );
    }
}

/// The mount points below the test's rootfs in the runtime's namespace, once runc is done.
fn runtime_mounts_below_rootfs(case: &Case) -> Vec<String> {
    let rootfs = format!("{}/bundle/rootfs/", case.dir.display());
    case.runtime_mounts()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&rootfs))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_rootfs_with_proc_mounted_in_the_runtimes_namespace_is_injected_in_the_containers_only() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    // A build root with /proc mounted on the host, run as a container: the rootfs's /proc
    // being a mount point proves nothing about where the hook stands.
    for stage in ["createRuntime", "createContainer"] {
        let before = mountinfo();
        let mut case = Case::new(&format!("runc-outer-proc-{stage}"));
        case.stage = stage;
        case.after_mount = format!(
            "mount -t proc proc {}/bundle/rootfs/proc",
            case.dir.display()
        );
        let out = case.run(&trixie, "");
        assert!(
            out.status.success()
                && reports_mpich(&String::from_utf8_lossy(&out.stdout), &host_mpich()),
            "{stage}: the container should report the host's MPICH {}:\n{}",
            host_mpich(),
            show(&out)
        );
        let outside = runtime_mounts_below_rootfs(&case);
        let proc_dir = format!("{}/bundle/rootfs/proc", case.dir.display());
        assert_eq!(
            outside,
            [proc_dir],
            "{stage}: the runtime's namespace got mounts in the rootfs"
        );
        assert_eq!(
            mountinfo(),
            before,
            "{stage}: the host's mount table changed"
        );
    }
}

#[test]
fn a_mount_point_on_a_shared_volume_is_refused_before_any_mount() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    // The container's /etc is a volume with shared propagation both ways (Kubernetes'
    // "Bidirectional" volumes are made so): the loader cache mounted there would appear
    // in the runtime's namespace, on the volume's source, for every process that reads it.
    let before = mountinfo();
    let mut case = Case::new("runc-shared");
    let d = case.dir.display();
    case.after_mount = format!(
        "mkdir -p {d}/etc-vol && cp -a {d}/bundle/rootfs/etc/. {d}/etc-vol/\n\
         mount --bind {d}/etc-vol {d}/etc-vol && mount --make-shared {d}/etc-vol"
    );
    case.edit = |c, dir| {
        let volume = serde_json::json!({
            "destination": "/etc",
            "type": "bind",
            "source": dir.join("etc-vol"),
            "options": ["rbind", "rshared"],
        });
        c["mounts"].as_array_mut().unwrap().push(volume);
        // runc's default (rslave) would make the container's copy a receiver only.
        c["linux"]["rootfsPropagation"] = "shared".into();
    };
    let out = case.run(&trixie, "");
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a shared mount"),
        "{}",
        show(&out)
    );
    let leaked: Vec<String> = case
        .runtime_mounts()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.ends_with("/ld.so.cache") || m.contains("x86_64-linux-gnu"))
        .map(str::to_string)
        .collect();
    assert!(
        leaked.is_empty(),
        "the hook's mounts reached the runtime's namespace: {leaked:?}"
    );
    assert_eq!(mountinfo(), before);
}

#[test]
fn mount_points_created_in_the_rootfs_go_at_poststop() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    // The overlay's upper directory stands for a rootfs directory a user passed: what the
    // hook creates there must not outlive the container.
    let mut case = Case::new("runc-poststop");
    case.poststop = true;
    let out = case.run(&trixie, "");
    assert!(
        out.status.success() && reports_mpich(&String::from_utf8_lossy(&out.stdout), &host_mpich()),
        "{}",
        show(&out)
    );
    let log = std::fs::read_to_string(case.dir.join("hook.log")).unwrap();
    assert!(log.contains("injected:"), "{log}");
    let made = case.dir.join("upper/run/containerspec");
    assert!(
        !made.exists(),
        "the mount points created in the rootfs are still there: {}",
        made.display()
    );
    let left: Vec<String> = std::fs::read_dir(case.report_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in the hook's directory: {left:?}");
}

#[test]
fn no_mount_point_is_created_on_a_volume() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    // The container's /run is a directory of the host's: containerspec's directory must
    // not be created there, by real root, at either stage.
    for (stage, why) in [
        (
            "createRuntime",
            "a filesystem also mounted outside the container (a volume)",
        ),
        (
            "createContainer",
            "cannot tell a volume from a filesystem of the container's own",
        ),
    ] {
        let before = mountinfo();
        let mut case = Case::new(&format!("runc-volume-{stage}"));
        case.stage = stage;
        std::fs::create_dir_all(case.dir.join("run-vol")).unwrap();
        case.edit = |c, dir| {
            let volume = serde_json::json!({
                "destination": "/run",
                "type": "bind",
                "source": dir.join("run-vol"),
                "options": ["rbind"],
            });
            c["mounts"].as_array_mut().unwrap().push(volume);
        };
        let out = case.run(&trixie, "");
        assert!(!out.status.success(), "{stage}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refusing to create anything there") && stderr.contains(why),
            "{stage}: {}",
            show(&out)
        );
        let on_volume: Vec<_> = std::fs::read_dir(case.dir.join("run-vol"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            on_volume.is_empty(),
            "{stage}: created on the volume: {on_volume:?}"
        );
        assert_eq!(
            mountinfo(),
            before,
            "{stage}: the host's mount table changed"
        );
    }
}

#[test]
fn a_directory_renamed_during_the_hook_never_leaves_the_container_on_its_own_library() {
    let Some(trixie) = runc_and_trixie() else {
        return;
    };
    let own = upstream_version(&dpkg_version(&trixie, "libmpich12").unwrap());
    // While the hook runs, a process in the runtime's namespace renames the directory of
    // the container's MPI library away and back, as fast as it can. A start may fail
    // (the hook found its mount moved and undid everything, or the program found no
    // library), or run with the host's MPICH; it must never run on the container's own.
    let (mut host, mut failed, mut moved) = (0, 0, 0);
    let mut other = Vec::new();
    for round in 0..30 {
        // Bursts of different lengths, so that the renames end before, during and after
        // the hook's mounts.
        let burst = 10 * (round % 10);
        let mut case = Case::new(&format!("runc-rename-{round}"));
        // Without redirect_dir, overlayfs refuses to rename a directory of the lower
        // layer (EXDEV) and mv would copy it instead.
        case.overlay_options = ",redirect_dir=on";
        let d = case.dir.display();
        case.after_mount = format!(
            "lib={d}/bundle/rootfs/usr/lib\n\
             ( i=0; while [ $i -lt {burst} ]; do i=$((i+1)); \
               mv -T $lib/x86_64-linux-gnu $lib/moved 2>/dev/null; \
               mv -T $lib/moved $lib/x86_64-linux-gnu 2>/dev/null; done ) &\n\
             echo $! > {d}/background.pid"
        );
        let out = case.run(&trixie, "");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !reports_mpich(&stdout, &own),
            "round {round}: the container ran on its own MPICH {own} after the hook:\n{}",
            show(&out)
        );
        if out.status.success() && reports_mpich(&stdout, &host_mpich()) {
            host += 1;
        } else {
            failed += 1;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("no longer shows the mount") {
                moved += 1;
            } else {
                let why = ["mpi-not-found", "error while loading shared libraries"]
                    .into_iter()
                    .find(|w| stderr.contains(w))
                    .unwrap_or("other");
                other.push(why);
            }
        }
    }
    eprintln!(
        "30 starts under renames: {host} ran with the host's MPICH, {failed} failed \
         ({moved} of them refused by the check after mounting; the others: {other:?})"
    );
}
