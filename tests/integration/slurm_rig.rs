//! A real Slurm cluster on this machine for the tests of Slurm node features: Debian's
//! Slurm 22.05 (`slurmctld`, `slurmd`, the client commands) and `munged`, each started by
//! the test with files of its own in a scratch directory, and stopped by pid when the
//! `Slurm` is dropped. Nothing of the machine's own Slurm or munge configuration is read.
//!
//! The cluster has one real node, named after `hostname -s`, on which `slurmd` runs, and
//! any number of declared nodes (`NodeSpec`) that never run anything: they are written
//! `State=DOWN` with a reason, so that their `Features=` count when a job is submitted
//! (a job asking for a feature only they have is accepted and stays pending with
//! `ReqNodeNotAvail`) but no job ever starts there. `State=FUTURE` and `State=DRAIN` are
//! accepted the same way (`Config::declared_state`); `FUTURE` nodes are invisible to
//! `sinfo` and `scontrol`, which is why `DOWN` is the default.
//!
//! What was found on Slurm 22.05.8 with this rig; the smoke tests below assert it, except
//! the points marked (source), read in the 22.05.8 source of the plugin, or (by hand):
//!
//! - Feature names: `Features=` takes any characters but the constraint operators
//!   `& | [ ] ( ) *`, the comma (the list separator, which `--constraint` also reads as
//!   `&`) and white space; names are case-sensitive. `.`, `_`, `-`, `=`, `:`, `+`, `/` all
//!   work in `Features=` and in `--constraint` (`glibc_2.36&x86_64_v3` is two features).
//!   Features handled by the `node_features/helpers` plugin are stricter: the first
//!   character a letter, `_` or `=`, the others letters, digits, `_`, `.` or `=` (source);
//!   a `helpers.conf` name with a `-` stops slurmctld at start (`could not parse
//!   configuration file: .../helpers.conf`, `failed to initialize node_features plugin`).
//! - Submission: `sbatch --constraint` is checked against the features of every node
//!   declared in `slurm.conf`, whatever its state. A name no node has is refused at
//!   submission: exit 1, stderr `sbatch: error: Batch job submission failed: Invalid
//!   feature specification`; this holds inside `|` too (`no_such|glibc_2.36` is refused).
//!   Features that exist but on no single node together (`a&b`) are refused with
//!   `Requested node configuration is not available`. A feature only DOWN nodes have is
//!   accepted; the job stays `PENDING`, reason `ReqNodeNotAvail, UnavailableNodes:...`.
//! - The `node_features/helpers` plugin (`NodeFeaturesPlugins=node_features/helpers` in
//!   `slurm.conf`, and `helpers.conf` in the same directory as `slurm.conf`, one line
//!   `Feature=NAME Helper=/absolute/path` per feature; optional lines `ExecTime=SECONDS`
//!   (default 10), `AllowUserBoot=USER,...`, `MutuallyExclusive=A,B`, `BootTime=`,
//!   `NodeRebootWeight=`). `slurmd` runs each `Feature=` line's helper once, when it
//!   starts and again on `scontrol reconfigure` (not periodically): as slurmd's user
//!   (root), with slurmd's environment (`SLURM_CONF` included) and working directory,
//!   stdin `/dev/null` (source), and *no arguments* (argc 0: a script sees only `$0`; a
//!   compiled program gets one empty `argv[0]` from Linux 5.18 on (by hand), so it cannot
//!   tell a mode from its name or arguments), killed after `ExecTime` seconds (source).
//!   Its stdout and stderr are read together; when it exits 0 each line is a
//!   feature name the node has now, and the lines that are not the `Feature=` name of
//!   some `helpers.conf` line are dropped; a non-zero exit drops all its output. Every
//!   `Feature=` name becomes an available feature of the node (`AvailableFeatures`), and
//!   those some helper printed become active (`ActiveFeatures`), next to the static
//!   `Features=` of `slurm.conf`, which stay both. (With `RebootProgram` set Slurm also
//!   runs a helper with one argument, the feature name, to make it active before a
//!   reboot (source); the rig sets no `RebootProgram`.)
//! - Scheduling with helper features: with the default `AllowUserBoot` (everyone), a
//!   job asking for a helper feature that is available but not active is accepted and
//!   *runs* on the node (Slurm would reboot the node into it if `RebootProgram` were
//!   set). With `AllowUserBoot=` naming other users, a submitter's constraint is checked
//!   against active features only: an inactive helper feature is refused at submission
//!   (`Invalid feature specification`). A constraint naming a helper feature may only use
//!   `&` (and `,`): `|`, `[]`, `()` or `*` anywhere in it refuse the job (`Invalid feature
//!   specification`); the plugin looks for helper feature names as substrings of the
//!   constraint.
//!
//! Needs root (`slurmd` and `munged` as root) and the packages of `tests/rigs/setup.sh`;
//! without them `Slurm::start` says "skipping: ..." and returns None (a failure under
//! CONTAINERSPEC_REQUIRE_ROOTFS=1).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{TempDir, free_port, is_root, tail};

/// How long the daemons may take until the real node is idle.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A node declared in `slurm.conf` next to the real one, with no `slurmd`: written
/// `State=DOWN` (or `Config::declared_state`), so jobs that only it could run are
/// accepted and stay pending.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub features: Vec<String>,
}

impl NodeSpec {
    pub fn new(name: &str, features: &[&str]) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            features: features.iter().map(|f| f.to_string()).collect(),
        }
    }
}

/// What `Slurm::start_config` writes into `slurm.conf` and `helpers.conf`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `Features=` of the real node.
    pub real_features: Vec<String>,
    /// The declared nodes without a slurmd.
    pub nodes: Vec<NodeSpec>,
    /// `helpers.conf` lines `Feature=NAME Helper=PATH`; when there are any,
    /// `NodeFeaturesPlugins=node_features/helpers` is set. The helper must be an absolute
    /// path to an executable.
    pub helpers: Vec<(String, PathBuf)>,
    /// More `helpers.conf` lines, as given (e.g. `AllowUserBoot=nobody`, `ExecTime=5`).
    pub helpers_extra: Vec<String>,
    /// The `State=` of the declared nodes: `DOWN` when None (`FUTURE` and `DRAIN` work
    /// the same for submission; `FUTURE` nodes are not shown by `sinfo` or `scontrol`).
    pub declared_state: Option<String>,
}

/// A running single-machine Slurm cluster, stopped when dropped.
pub struct Slurm {
    // Stopped in this order: slurmd, slurmctld, munged.
    daemons: Vec<Daemon>,
    node: String,
    conf: PathBuf,
    submitted: std::cell::Cell<usize>,
    // Removed after the daemons are stopped: keys, configs, state, spool, logs.
    dir: TempDir,
}

/// One job as `scontrol show job` tells it.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    /// `JobState`: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...
    pub state: String,
    /// `NodeList`: the node(s) it ran on, empty while pending.
    pub node_list: String,
    /// `Reason`: `None` once running or ended, e.g.
    /// `ReqNodeNotAvail,_UnavailableNodes:fake1` (`scontrol -o` writes its spaces as `_`)
    /// while waiting for a declared node.
    pub reason: String,
    /// Every `KEY=VALUE` of the record.
    pub fields: BTreeMap<String, String>,
}

/// The features of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFeatures {
    pub available: Vec<String>,
    pub active: Vec<String>,
}

const FINAL_STATES: [&str; 10] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "SPECIAL_EXIT",
];

/// A daemon started by the rig, in a process group of its own.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("create daemon log");
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { name, child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL after STOP_TIMEOUT; reaps the process and kills what is
    /// left in its process group (slurmctld's slurmscriptd).
    fn stop(&mut self) {
        let pid = self.pid() as libc::pid_t;
        if self.exited().is_none() {
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.exited().is_none() {
                eprintln!("slurm rig: {} ({pid}) ignored SIGTERM: SIGKILL", self.name);
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        for member in live_processes(|p| p.pgid == pid) {
            signal(member as libc::pid_t, libc::SIGKILL);
        }
    }
}

fn signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid this rig started or found by its own marker.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A process as /proc tells it.
struct ProcInfo {
    pgid: libc::pid_t,
    zombie: bool,
}

/// The pids of the live (not zombie) processes that `pick` selects.
fn live_processes(pick: impl Fn(&ProcInfo) -> bool) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| proc_info(*pid).is_some_and(|p| !p.zombie && pick(&p)))
        .collect()
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn proc_info(pid: u32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(ProcInfo {
        pgid,
        zombie: state == "Z" || state == "X",
    })
}

/// True while process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    proc_info(pid).is_some_and(|p| !p.zombie)
}

/// The live processes whose environment holds `entry` (`SLURM_CONF=...`): everything
/// the rig's daemons started, slurmstepd and job scripts included.
fn processes_with_env(entry: &str) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|pid| *pid != me && alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
        })
        .collect()
}

fn fail_or_skip(hint: &str) -> Option<Slurm> {
    crate::util::missing(hint);
    None
}

/// True when `tool` can be started (`-V` prints the version of every Slurm and munge
/// program used here).
fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// This machine's short host name (`hostname -s`), the real node's name.
pub fn short_hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("run hostname -s");
    assert!(out.status.success(), "hostname -s failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `KEY=VALUE KEY=VALUE ...` of `scontrol show -o`; a word without `=` belongs to the
/// value before it (`OS=Linux 6.1.0 #1 SMP ...`).
fn parse_record(line: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((key, value)) if !key.is_empty() && !key.contains(['(', ',']) => {
                fields.insert(key.to_string(), value.to_string());
                last = Some(key.to_string());
            }
            _ => {
                if let Some(value) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                    value.push(' ');
                    value.push_str(word);
                }
            }
        }
    }
    fields
}

fn list(value: Option<&String>) -> Vec<String> {
    match value.map(String::as_str) {
        None | Some("(null)") | Some("") => Vec::new(),
        Some(v) => v.split(',').map(str::to_string).collect(),
    }
}

impl Slurm {
    /// A cluster whose real node has no features, with the declared `nodes`.
    pub fn start(nodes: &[NodeSpec]) -> Option<Slurm> {
        Slurm::start_with(&[], nodes)
    }

    /// A cluster whose real node has `Features=real_features`, with the declared `nodes`.
    pub fn start_with(real_features: &[String], nodes: &[NodeSpec]) -> Option<Slurm> {
        Slurm::start_config(&Config {
            real_features: real_features.to_vec(),
            nodes: nodes.to_vec(),
            ..Config::default()
        })
    }

    /// As `start_with`, with the `node_features/helpers` plugin and one `helpers.conf`
    /// line `Feature=NAME Helper=PATH` for each of `helpers`.
    pub fn start_with_helpers(
        real_features: &[String],
        nodes: &[NodeSpec],
        helpers: &[(String, PathBuf)],
    ) -> Option<Slurm> {
        Slurm::start_config(&Config {
            real_features: real_features.to_vec(),
            nodes: nodes.to_vec(),
            helpers: helpers.to_vec(),
            ..Config::default()
        })
    }

    /// Writes the configuration, starts munged, slurmctld and slurmd, and waits (up to
    /// 30 s) until the real node is idle. None, after printing "skipping: ...", when not
    /// root or when Slurm or munge is not installed (a failure instead under
    /// CONTAINERSPEC_REQUIRE_ROOTFS=1).
    pub fn start_config(config: &Config) -> Option<Slurm> {
        if !is_root() {
            return fail_or_skip("needs root (slurmd and munged run as root)");
        }
        for tool in [
            "munged",
            "munge",
            "slurmctld",
            "slurmd",
            "sbatch",
            "srun",
            "scontrol",
            "squeue",
            "sinfo",
            "scancel",
        ] {
            if !installed(tool) {
                return fail_or_skip(&format!(
                    "{tool} is not installed (tests/rigs/setup.sh installs Slurm and munge)"
                ));
            }
        }
        let node = short_hostname();
        // The port is free when picked but may be taken before slurmctld or slurmd binds
        // it: then try others, in a fresh directory.
        for _attempt in 0..5 {
            match Slurm::try_start(config, &node) {
                Ok(slurm) => return Some(slurm),
                Err(why) => eprintln!("slurm rig: {why}; trying other ports"),
            }
        }
        panic!("no free loopback ports for slurmctld and slurmd after 5 tries");
    }

    /// One start; Err when a port was taken.
    fn try_start(config: &Config, node: &str) -> Result<Slurm, String> {
        let dir = TempDir::new("slurm");
        let d = dir.path().to_path_buf();
        // munged wants every directory above its socket searchable by all.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["state", "spool", "jobs"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }

        // munge: a key of our own (owned by root, readable by no one else) and a socket
        // of our own.
        let key = d.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("read /dev/urandom");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&key)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .expect("write munge key");
        let socket = d.join("munge.socket");
        let mut munged = Command::new("munged");
        munged
            .arg("--foreground")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()))
            .arg(format!("--log-file={}", d.join("munged.log").display()));

        let ctld_port = free_port();
        let slurmd_port = free_port();
        // Where the declared nodes would be: nobody listens there, so slurmctld's pings
        // of them fail at once.
        let fake_port = free_port();
        let conf = d.join("slurm.conf");
        std::fs::write(
            &conf,
            slurm_conf(config, node, &d, &socket, ctld_port, slurmd_port, fake_port),
        )
        .unwrap();
        if !config.helpers.is_empty() {
            let mut text = String::new();
            for (feature, helper) in &config.helpers {
                text += &format!("Feature={feature} Helper={}\n", helper.display());
            }
            for line in &config.helpers_extra {
                text += line;
                text += "\n";
            }
            // Next to slurm.conf: where the plugin looks for it.
            std::fs::write(d.join("helpers.conf"), text).unwrap();
        }

        let mut slurm = Slurm {
            daemons: Vec::new(),
            node: node.to_string(),
            conf: conf.clone(),
            submitted: std::cell::Cell::new(0),
            dir,
        };
        // From here on a panic drops `slurm`, which stops what was started.
        slurm
            .daemons
            .push(Daemon::spawn("munged", munged, d.join("munged.out")));
        let deadline = Instant::now() + START_TIMEOUT;
        while !socket.exists() {
            slurm.check_running(deadline, "munged to create its socket");
        }

        let mut ctld = slurm.daemon_command("slurmctld");
        ctld.arg("-D").arg("-f").arg(&conf);
        slurm
            .daemons
            .insert(0, Daemon::spawn("slurmctld", ctld, d.join("slurmctld.out")));
        loop {
            let ping = slurm.command("scontrol").arg("ping").output().unwrap();
            if String::from_utf8_lossy(&ping.stdout).contains("is UP") {
                break;
            }
            if slurm.port_taken() {
                return Err(format!("slurmctld port {ctld_port} was taken"));
            }
            slurm.check_running(deadline, "slurmctld to answer `scontrol ping`");
        }

        let mut slurmd = slurm.daemon_command("slurmd");
        slurmd.arg("-D").arg("-f").arg(&conf).arg("-N").arg(node);
        slurm
            .daemons
            .insert(0, Daemon::spawn("slurmd", slurmd, d.join("slurmd.out")));
        loop {
            let state = slurm.node_record(node).get("State").cloned();
            if state.as_deref() == Some("IDLE") {
                break;
            }
            if slurm.port_taken() {
                return Err(format!("slurmd port {slurmd_port} was taken"));
            }
            slurm.check_running(deadline, &format!("node {node} to be IDLE (now {state:?})"));
        }
        Ok(slurm)
    }

    /// Sleeps a little; panics with the logs' tails when a daemon has exited or
    /// `deadline` has passed.
    fn check_running(&mut self, deadline: Instant, waiting_for: &str) {
        for daemon in &mut self.daemons {
            if let Some(status) = daemon.exited() {
                let name = daemon.name;
                panic!(
                    "{name} exited ({status}) while waiting for {waiting_for}\n{}",
                    self.logs()
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {START_TIMEOUT:?} waiting for {waiting_for}\n{}",
            self.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    fn port_taken(&self) -> bool {
        ["slurmctld.log", "slurmd.log"].iter().any(|log| {
            std::fs::read_to_string(self.dir.path().join(log))
                .is_ok_and(|t| t.contains("Address already in use"))
        })
    }

    /// A daemon's command: the environment of `command` (SLURM_CONF is inherited by
    /// everything the daemons start, which is how `Drop` finds it all).
    fn daemon_command(&self, program: &str) -> Command {
        let mut command = self.command(program);
        command.current_dir(self.dir.path());
        command
    }

    /// `program` (a Slurm client command, usually) with `SLURM_CONF` set to this cluster's
    /// `slurm.conf` and no other `SLURM_*` variable of the test's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLURM_") {
                command.env_remove(name);
            }
        }
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// The `SLURM_CONF=...` environment entry of everything this cluster runs.
    fn marker(&self) -> String {
        format!("SLURM_CONF={}", self.conf.display())
    }

    /// The real node's name (`hostname -s`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This cluster's `slurm.conf`.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// The scratch directory (configs, logs, `jobs/` with the scripts `sbatch` writes);
    /// a place for job output and helper programs. Removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pids of munged, slurmctld and slurmd.
    pub fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(Daemon::pid).collect()
    }

    /// The last lines of every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in [
            "munged.out",
            "slurmctld.out",
            "slurmctld.log",
            "slurmd.out",
            "slurmd.log",
        ] {
            let path = self.dir.path().join(name);
            if path.exists() {
                text += &format!("--- {name}:\n{}\n", tail(&path, 15));
            }
        }
        text
    }

    /// `sbatch ARGS SCRIPT`, the script written to `jobs/` of the scratch directory
    /// (`#!/bin/sh` put first when it has no `#!` line); whatever sbatch answers.
    pub fn sbatch(&self, args: &[&str], script: &str) -> Output {
        let n = self.submitted.get() + 1;
        self.submitted.set(n);
        let path = self.dir.path().join(format!("jobs/job-{n}.sh"));
        let text = if script.starts_with("#!") {
            script.to_string()
        } else {
            format!("#!/bin/sh\n{script}")
        };
        std::fs::write(&path, text).unwrap();
        self.command("sbatch")
            .args(args)
            .arg(&path)
            .current_dir(self.dir.path())
            .output()
            .expect("run sbatch")
    }

    /// `sbatch --parsable ARGS SCRIPT`, asserting success: the job id.
    pub fn submit(&self, args: &[&str], script: &str) -> String {
        let mut all = vec!["--parsable"];
        all.extend_from_slice(args);
        let out = self.sbatch(&all, script);
        assert!(
            out.status.success(),
            "sbatch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // `--parsable` prints `ID` or `ID;CLUSTER`.
        id.split(';').next().unwrap_or_default().to_string()
    }

    /// The job's record now (`scontrol show job -o ID`).
    pub fn job(&self, job_id: &str) -> Job {
        let out = self
            .command("scontrol")
            .args(["show", "job", "-o", job_id])
            .output()
            .expect("run scontrol");
        assert!(
            out.status.success(),
            "scontrol show job {job_id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fields = parse_record(String::from_utf8_lossy(&out.stdout).trim());
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        Job {
            id: job_id.to_string(),
            state: get("JobState"),
            node_list: get("NodeList"),
            reason: get("Reason"),
            fields,
        }
    }

    /// Waits until the job has ended (COMPLETED, FAILED, CANCELLED, ...) and returns its
    /// record (`MinJobAge` keeps ended jobs visible for an hour). Panics after `timeout`
    /// with the record and the logs.
    pub fn wait_job(&self, job_id: &str, timeout: Duration) -> Job {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(job_id);
            if FINAL_STATES.contains(&job.state.as_str()) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} still {} after {timeout:?}: {:?}\n{}",
                job.state,
                job.fields,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `scontrol show node -o NAME` as keys and values; empty when there is no such node
    /// or slurmctld does not answer.
    pub fn node_record(&self, name: &str) -> BTreeMap<String, String> {
        let out = self
            .command("scontrol")
            .args(["show", "node", "-o", name])
            .output()
            .expect("run scontrol");
        if !out.status.success() {
            return BTreeMap::new();
        }
        parse_record(String::from_utf8_lossy(&out.stdout).trim())
    }

    /// A node's `AvailableFeatures` and `ActiveFeatures`.
    pub fn features(&self, name: &str) -> NodeFeatures {
        let record = self.node_record(name);
        assert!(!record.is_empty(), "no node {name}\n{}", self.logs());
        NodeFeatures {
            available: list(record.get("AvailableFeatures")),
            active: list(record.get("ActiveFeatures")),
        }
    }

    /// Cancels every job of the cluster (all are root's) and waits (up to 10 s) until
    /// none is running.
    fn cancel_all(&self) {
        let _ = self
            .command("scancel")
            .arg("--user=root")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            let out = self
                .command("squeue")
                .args(["--noheader", "--states=RUNNING,COMPLETING,CONFIGURING"])
                .output();
            match out {
                Ok(o) if o.status.success() && o.stdout.is_empty() => break,
                Ok(o) if !o.status.success() => break,
                Err(_) => break,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn slurm_conf(
    config: &Config,
    node: &str,
    dir: &Path,
    socket: &Path,
    ctld_port: u16,
    slurmd_port: u16,
    fake_port: u16,
) -> String {
    let d = dir.display();
    let features = |f: &[String]| {
        if f.is_empty() {
            String::new()
        } else {
            format!(" Features={}", f.join(","))
        }
    };
    let mut text = format!(
        "# A single-machine test cluster: everything in {d}.\n\
         ClusterName=containerspec\n\
         SlurmctldHost={node}(127.0.0.1)\n\
         SlurmctldPort={ctld_port}\n\
         SlurmdPort={slurmd_port}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         AuthType=auth/munge\n\
         CredType=cred/munge\n\
         AuthInfo=socket={socket}\n\
         StateSaveLocation={d}/state\n\
         SlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\n\
         SlurmdLogFile={d}/slurmd.log\n\
         SlurmctldDebug=info\n\
         SlurmdDebug=info\n\
         DebugFlags=NodeFeatures\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         JobCompType=jobcomp/none\n\
         MpiDefault=none\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_Core\n\
         SchedulerType=sched/backfill\n\
         SchedulerParameters=batch_sched_delay=0\n\
         ReturnToService=2\n\
         MinJobAge=3600\n\
         KillWait=2\n\
         InactiveLimit=0\n",
        socket = socket.display(),
    );
    if !config.helpers.is_empty() {
        text += "NodeFeaturesPlugins=node_features/helpers\n";
    }
    // One CPU: never more than the machine has, so slurmd's registration is accepted.
    text += &format!(
        "NodeName={node} NodeAddr=127.0.0.1 CPUs=1{} State=UNKNOWN\n",
        features(&config.real_features)
    );
    let state = config.declared_state.as_deref().unwrap_or("DOWN");
    for spec in &config.nodes {
        text += &format!(
            "NodeName={} NodeAddr=127.0.0.1 Port={fake_port} CPUs=1{} State={state}",
            spec.name,
            features(&spec.features)
        );
        if state != "FUTURE" {
            text += " Reason=\"declared by the test, no slurmd\"";
        }
        text += "\n";
    }
    text += "PartitionName=all Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n";
    text
}

impl Drop for Slurm {
    /// Cancels the jobs, stops slurmd, slurmctld and munged by their pids (SIGTERM, then
    /// SIGKILL after 10 s), then kills by pid whatever still carries this cluster's
    /// `SLURM_CONF` in its environment (slurmstepd, job scripts). Panics (unless already
    /// panicking) when something survives.
    fn drop(&mut self) {
        let controller_runs = self
            .daemons
            .iter_mut()
            .any(|d| d.name == "slurmctld" && d.exited().is_none());
        if controller_runs {
            self.cancel_all();
        }
        for daemon in &mut self.daemons {
            daemon.stop();
        }
        let marker = self.marker();
        let stray = processes_with_env(&marker);
        for pid in &stray {
            eprintln!("slurm rig: killing stray process {pid} of this cluster");
            signal(*pid as libc::pid_t, libc::SIGKILL);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut left: Vec<u32> = Vec::new();
        while Instant::now() < deadline {
            left = self
                .pids()
                .into_iter()
                .chain(stray.iter().copied())
                .filter(|p| alive(*p))
                .chain(processes_with_env(&marker))
                .collect();
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!("slurm rig: processes left running: {left:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Smoke tests: the rig against Slurm's documented behaviour.

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The output file of a job in the scratch directory, and sbatch's `-o` for it.
pub(crate) fn output_arg(slurm: &Slurm, tag: &str) -> (PathBuf, String) {
    let path = slurm.dir().join(format!("out-{tag}.txt"));
    let arg = format!("--output={}", path.display());
    (path, arg)
}

/// Submits `constraint` and asserts that the job completes on the real node, writing
/// `hostname -s` to its output file.
pub(crate) fn assert_runs_on_real_node(slurm: &Slurm, constraint: &str, tag: &str) {
    let (out, out_arg) = output_arg(slurm, tag);
    let c = format!("--constraint={constraint}");
    let id = slurm.submit(&[&c, &out_arg], "hostname -s\n");
    let job = slurm.wait_job(&id, JOB_TIMEOUT);
    assert_eq!(job.id, id);
    assert_eq!(job.state, "COMPLETED", "{constraint}: {:?}", job.fields);
    assert_eq!(job.node_list, slurm.node(), "{constraint}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(text.trim(), short_hostname(), "{constraint}: output");
}

/// Asserts that sbatch refuses `constraint` at submission with `message`, and that no job
/// was created.
pub(crate) fn assert_refused(slurm: &Slurm, constraint: &str, message: &str) {
    let c = format!("--constraint={constraint}");
    let out = slurm.sbatch(&[&c], "hostname -s\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{constraint} was accepted");
    assert!(
        stderr.contains("Batch job submission failed") && stderr.contains(message),
        "{constraint}: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{constraint}: a job id was printed");
}

#[test]
fn job_with_a_real_feature_runs_on_the_real_node() {
    let fake = [NodeSpec::new("fake-v4", &["glibc_2.41", "x86_64_v4"])];
    let real = strings(&["glibc_2.36", "x86_64_v3"]);
    let Some(slurm) = Slurm::start_with(&real, &fake) else {
        return;
    };
    assert_eq!(slurm.node(), short_hostname());
    assert_eq!(
        slurm.features(slurm.node()),
        NodeFeatures {
            available: real.clone(),
            active: real.clone()
        }
    );
    assert_runs_on_real_node(&slurm, "glibc_2.36", "a");
    // srun too (interactive I/O over loopback).
    let out = slurm
        .command("srun")
        .args(["--constraint=x86_64_v3", "hostname", "-s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "srun: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        short_hostname()
    );
}

#[test]
fn feature_only_a_declared_node_has_is_accepted_and_stays_pending() {
    let fake = [
        NodeSpec::new("fake-v4", &["glibc_2.41", "x86_64_v4"]),
        NodeSpec::new("fake-arm", &["aarch64"]),
    ];
    let Some(slurm) = Slurm::start_with(&strings(&["glibc_2.36", "x86_64_v3"]), &fake) else {
        return;
    };
    // The declared nodes are there, DOWN, with their features.
    let record = slurm.node_record("fake-v4");
    assert!(
        record.get("State").is_some_and(|s| s.starts_with("DOWN")),
        "{record:?}"
    );
    assert_eq!(
        slurm.features("fake-v4").active,
        strings(&["glibc_2.41", "x86_64_v4"])
    );
    let (out, out_arg) = output_arg(&slurm, "b");
    let id = slurm.submit(&["--constraint=x86_64_v4", &out_arg], "hostname -s\n");
    // Several scheduling passes (the main scheduler runs at submission and on events, the
    // backfill one every 30 s: also trigger one by submitting and finishing another job).
    assert_runs_on_real_node(&slurm, "x86_64_v3", "b-other");
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let job = slurm.job(&id);
        assert_eq!(job.state, "PENDING", "{:?}", job.fields);
        assert!(
            job.reason.starts_with("ReqNodeNotAvail") && job.reason.contains("fake-v4"),
            "{:?}",
            job.fields
        );
        assert_eq!(job.node_list, "", "{:?}", job.fields);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!out.exists(), "the pending job ran somewhere");
}

#[test]
fn declared_nodes_in_future_or_drain_state_take_submissions_too() {
    for state in ["FUTURE", "DRAIN"] {
        let Some(slurm) = Slurm::start_config(&Config {
            real_features: strings(&["x86_64_v3"]),
            nodes: vec![NodeSpec::new("fake-v4", &["x86_64_v4"])],
            declared_state: Some(state.to_string()),
            ..Config::default()
        }) else {
            return;
        };
        let record = slurm.node_record("fake-v4");
        if state == "FUTURE" {
            assert!(record.is_empty(), "{state}: {record:?}");
        } else {
            assert!(
                record.get("State").is_some_and(|s| s.contains("DRAIN")),
                "{state}: {record:?}"
            );
        }
        let id = slurm.submit(&["--constraint=x86_64_v4"], "hostname -s\n");
        assert_runs_on_real_node(&slurm, "x86_64_v3", state);
        let job = slurm.job(&id);
        assert_eq!(job.state, "PENDING", "{state}: {:?}", job.fields);
        assert!(
            job.reason.starts_with("ReqNodeNotAvail"),
            "{state}: {:?}",
            job.fields
        );
        assert_refused(&slurm, "x86_64_v5", "Invalid feature specification");
    }
}

#[test]
fn feature_no_node_has_is_refused_at_submission() {
    let fake = [NodeSpec::new("fake-v4", &["glibc_2.41", "x86_64_v4"])];
    let Some(slurm) = Slurm::start_with(&strings(&["glibc_2.36", "x86_64_v3"]), &fake) else {
        return;
    };
    assert_refused(&slurm, "glibc_2.99", "Invalid feature specification");
    // An unknown name is refused even as one side of an OR.
    assert_refused(
        &slurm,
        "glibc_2.99|glibc_2.36",
        "Invalid feature specification",
    );
    // Names are case-sensitive.
    assert_refused(&slurm, "GLIBC_2.36", "Invalid feature specification");
    // Known features that no single node has together.
    assert_refused(
        &slurm,
        "glibc_2.36&x86_64_v4",
        "Requested node configuration is not available",
    );
    let queue = slurm.command("squeue").arg("--noheader").output().unwrap();
    assert!(
        queue.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&queue.stdout)
    );
}

#[test]
fn constraint_expressions_and_feature_names() {
    // Names with the characters a feature vocabulary may want.
    let real = strings(&[
        "glibc_2.36",
        "x86_64_v3",
        "arch-x86_64",
        "mpi=mpich_4.0",
        "cuda:12.2",
        "os/debian+12",
    ]);
    let fake = [NodeSpec::new("fake-v4", &["glibc_2.41", "x86_64_v4"])];
    let Some(slurm) = Slurm::start_with(&real, &fake) else {
        return;
    };
    assert_eq!(slurm.features(slurm.node()).available, real);
    for (i, constraint) in [
        "glibc_2.36&x86_64_v3",
        "glibc_2.36,x86_64_v3",
        "x86_64_v4|x86_64_v3",
        "[x86_64_v3|x86_64_v4]",
        "(glibc_2.41|glibc_2.36)&x86_64_v3",
        "arch-x86_64&mpi=mpich_4.0&cuda:12.2&os/debian+12",
    ]
    .iter()
    .enumerate()
    {
        assert_runs_on_real_node(&slurm, constraint, &format!("d{i}"));
    }
    // Only the declared node has both: accepted, pending.
    let id = slurm.submit(&["--constraint=glibc_2.41&x86_64_v4"], "hostname -s\n");
    let job = slurm.job(&id);
    assert_eq!(job.state, "PENDING", "{:?}", job.fields);
    // One of each node's features, on no single node.
    assert_refused(
        &slurm,
        "glibc_2.41&x86_64_v3",
        "Requested node configuration is not available",
    );
}

/// A cluster with the helpers plugin: `helped_yes` printed by a helper that exits 0,
/// `helped_no` printed by one that exits 1. The helpers live outside the cluster's
/// scratch directory (they must exist before slurmd starts), in `dir`.
fn start_with_helper_scripts(dir: &TempDir, extra: &[&str]) -> Option<Slurm> {
    let calls = dir.path().join("calls");
    let write = |name: &str, body: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let yes = write(
        "helper-yes",
        format!(
            "echo \"argc=$# SLURM_CONF=$SLURM_CONF\" >> {}\n\
             echo helped_yes\necho not_in_helpers_conf\necho helped.dot\n\
             echo on_stderr >&2\nexit 0\n",
            calls.display()
        ),
    );
    let no = write("helper-no", "echo helped_no\nexit 1\n".to_string());
    let real = strings(&["static_a", "helped_yes_static"]);
    let nodes = [NodeSpec::new("fake", &["static_b"])];
    let helpers = [
        ("helped_yes".to_string(), yes.clone()),
        ("helped.dot".to_string(), yes),
        ("helped_no".to_string(), no),
    ];
    if extra.is_empty() {
        return Slurm::start_with_helpers(&real, &nodes, &helpers);
    }
    Slurm::start_config(&Config {
        real_features: real,
        nodes: nodes.to_vec(),
        helpers: helpers.to_vec(),
        helpers_extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Config::default()
    })
}

#[test]
fn helpers_plugin_sets_the_real_node_features() {
    let helpers = TempDir::new("slurm-helpers");
    let Some(slurm) = start_with_helper_scripts(&helpers, &[]) else {
        return;
    };
    let features = slurm.features(slurm.node());
    assert_eq!(
        features,
        NodeFeatures {
            available: strings(&[
                "helped_yes",
                "helped.dot",
                "helped_no",
                "static_a",
                "helped_yes_static"
            ]),
            active: strings(&["helped_yes", "helped.dot", "static_a", "helped_yes_static"]),
        },
        "{}",
        slurm.logs()
    );
    // Run once per Feature= line, without arguments, with slurmd's environment.
    let calls = std::fs::read_to_string(helpers.path().join("calls")).unwrap();
    let marker = format!("argc=0 SLURM_CONF={}", slurm.conf_path().display());
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [marker.as_str(), marker.as_str()],
        "{calls}"
    );
    // Declared nodes keep their static features.
    assert_eq!(slurm.features("fake").active, strings(&["static_b"]));

    assert_runs_on_real_node(&slurm, "helped_yes", "e1");
    assert_runs_on_real_node(&slurm, "helped_yes&static_a&helped.dot", "e2");
    // Everyone may "reboot" a node into a feature by default (AllowUserBoot): an
    // available but inactive helper feature is accepted and, with no RebootProgram,
    // simply runs there.
    assert_runs_on_real_node(&slurm, "helped_no", "e3");
    // Only `&` with helper features.
    assert_refused(
        &slurm,
        "helped_yes|static_a",
        "Invalid feature specification",
    );
    assert_refused(
        &slurm,
        "[helped_yes|static_b]",
        "Invalid feature specification",
    );
    // Static features keep every operator...
    assert_runs_on_real_node(&slurm, "static_a|static_b", "e4");
    // ...unless a helper feature's name is part of one of them: the plugin looks for the
    // names as substrings of the whole constraint.
    assert_runs_on_real_node(&slurm, "helped_yes_static", "e5");
    assert_refused(
        &slurm,
        "helped_yes_static|static_b",
        "Invalid feature specification",
    );
    // A name printed by a helper but not in helpers.conf is not a feature.
    assert_refused(
        &slurm,
        "not_in_helpers_conf",
        "Invalid feature specification",
    );

    // `scontrol reconfigure` runs the helpers again.
    let out = slurm
        .command("scontrol")
        .arg("reconfigure")
        .output()
        .unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::read_to_string(helpers.path().join("calls"))
        .unwrap()
        .lines()
        .count()
        < 4
    {
        assert!(
            Instant::now() < deadline,
            "helpers not run again\n{}",
            slurm.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn helpers_plugin_refuses_a_feature_name_with_a_dash() {
    let helpers = TempDir::new("slurm-helpers");
    let helper = helpers.path().join("helper");
    std::fs::write(&helper, "#!/bin/sh\necho x86-64-v3\n").unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let start = std::panic::catch_unwind(|| {
        Slurm::start_with_helpers(&[], &[], &[("x86-64-v3".to_string(), helper.clone())]).is_some()
    });
    let message = match start {
        Ok(false) => return, // skipped
        Ok(true) => panic!("slurmctld started with a helper feature named x86-64-v3"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    assert!(
        message.contains("slurmctld exited")
            && message.contains("could not parse configuration file")
            && message.contains("failed to initialize node_features plugin"),
        "{message}"
    );
}

#[test]
fn helpers_plugin_with_allow_user_boot_checks_active_features() {
    let helpers = TempDir::new("slurm-helpers");
    let Some(slurm) = start_with_helper_scripts(&helpers, &["AllowUserBoot=nobody"]) else {
        return;
    };
    assert_runs_on_real_node(&slurm, "helped_yes", "a1");
    assert_refused(&slurm, "helped_no", "Invalid feature specification");
}

#[test]
fn dropping_the_cluster_stops_every_process() {
    let Some(slurm) = Slurm::start(&[]) else {
        return;
    };
    let pids = slurm.pids();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");
    // A job still running at drop time: its slurmstepd lives in a session of its own.
    let id = slurm.submit(&[], "sleep 300\n");
    let deadline = Instant::now() + JOB_TIMEOUT;
    while slurm.job(&id).state != "RUNNING" {
        assert!(Instant::now() < deadline, "{:?}", slurm.job(&id).fields);
        std::thread::sleep(Duration::from_millis(100));
    }
    // RUNNING is told at allocation: wait for the script's `sleep` itself.
    let marker = slurm.marker();
    let comm = |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let family = loop {
        let family = processes_with_env(&marker);
        if family.iter().any(|p| comm(p).trim() == "sleep") {
            break family;
        }
        assert!(
            Instant::now() < deadline,
            "the job's sleep never started\n{}",
            slurm.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let names: Vec<String> = family.iter().map(|p| comm(p).trim().to_string()).collect();
    assert!(names.iter().any(|n| n == "slurmstepd"), "{names:?}");
    let dir = slurm.dir().to_path_buf();
    let port: u16 = std::fs::read_to_string(slurm.conf_path())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("SlurmdPort="))
        .unwrap()
        .parse()
        .unwrap();
    drop(slurm);
    for pid in family {
        assert!(!alive(pid), "pid {pid} still runs after drop");
    }
    assert!(processes_with_env(&marker).is_empty());
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "slurmd's port {port} still accepts connections"
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn scontrol_records_are_parsed() {
    let r = parse_record(
        "NodeName=vm Arch=x86_64 AvailableFeatures=a,b.c ActiveFeatures=a \
         OS=Linux 6.1.0 #1 SMP PREEMPT_DYNAMIC State=IDLE Reason=declared by the test [root@1]",
    );
    assert_eq!(r["AvailableFeatures"], "a,b.c");
    assert_eq!(r["OS"], "Linux 6.1.0 #1 SMP PREEMPT_DYNAMIC");
    assert_eq!(r["State"], "IDLE");
    assert_eq!(r["Reason"], "declared by the test [root@1]");
    let j = parse_record(
        "JobId=3 JobState=PENDING Reason=ReqNodeNotAvail,_UnavailableNodes:f NodeList= \
         Partition=all AllocNode:Sid=localhost:1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*",
    );
    assert_eq!(j["Reason"], "ReqNodeNotAvail,_UnavailableNodes:f");
    assert_eq!(list(j.get("NodeList")), Vec::<String>::new());
    assert_eq!(j["Partition"], "all");
    assert_eq!(j["AllocNode:Sid"], "localhost:1");
    assert_eq!(j["CPUs/Task"], "1");
}
