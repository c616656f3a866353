//! `containerspec hook [STAGE]`: the OCI runtime hook. It reads the container's state
//! from stdin, judges the bundle like `check-bundle`, and then either rejects the start
//! (exit 1, the diagnosis on stderr, stdout, the log and a JSON report file) or carries
//! the injection plan out in the container's mount namespace. Runtimes clear a hook's
//! environment, so everything it needs comes from its arguments and the config file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::action::mount::{Bind, apply};
use crate::action::namespace::{Entered, enter_container_namespace, inside_container_namespace};
use crate::action::stubs::{self, Stub, Stubs, outside_devices};
use crate::config::Config;
use crate::engine::plan::{LD_CACHE, Plan};
use crate::engine::report::{Report, Verdict};
use crate::input::state::HookState;
use crate::input::target::Target;
use crate::store::Store;
use crate::verdict::{Ask, judge};

/// Stages at which the container's rootfs is mounted but not yet pivoted into.
const ACTING_STAGES: &[&str] = &["prestart", "createRuntime", "createContainer"];

#[derive(Debug, Args)]
#[command(
    after_help = "Register it with the runtime (hooks/ has podman / CRI-O hooks.d files, contrib/ \
a runc config.json snippet). The state arrives on stdin. Stages prestart, createRuntime and \
createContainer judge and inject; poststop (or any call whose state says \"stopped\") removes \
the container's report unless it explains a refusal; other stages return at once.\n\n\
Where to look when a start is refused: runc prints the hook's stderr in its error; podman shows \
it in its error message; crun drops it (set the run.oci.hooks.stderr annotation). The same \
diagnosis is in the log file ([log] file in the config) and in REPORT_DIR/<container id>.json."
)]
pub struct HookArgs {
    /// The hook stage this entry is registered for (default: createRuntime)
    #[arg(value_name = "STAGE")]
    pub stage: Option<String>,
    /// The config file (default /etc/containerspec/config.toml, if it exists)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append the diagnosis and actions to this file (overrides the config's [log] file)
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// What goes to the log file: error (refusals and failures), info (also every
    /// injection and pass), off (overrides the config's [log] level; default info)
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<log::LevelFilter>,
    /// What to inject (mpi, gpu, mpi,gpu), over the container's
    /// org.supercontainers.inject annotation: what a CDI device's hook passes, since
    /// asking for the device is the request
    #[arg(long, value_name = "LIST")]
    pub inject: Option<String>,
}

pub fn run(args: &HookArgs) -> Result<u8, CliError> {
    let stage = args.stage.as_deref().unwrap_or("createRuntime");
    if !ACTING_STAGES.contains(&stage) && stage != "poststop" {
        return Ok(0);
    }
    let state = HookState::read(std::io::stdin().lock())?;
    let config = Config::load(args.config.as_deref())?;
    // hooks.d files pass the same arguments to every stage they list: a stopped
    // container's state says it is the poststop call.
    if stage == "poststop" || state.status == "stopped" {
        remove_passed_report(&config.report.dir, &state.id);
        remove_stubs(&config.report.dir, &state);
        return Ok(0);
    }
    let log = Log {
        file: args.log_file.clone().or_else(|| config.log.file.clone()),
        level: args
            .log_level
            .or(config.log.level)
            .unwrap_or(log::LevelFilter::Info),
        id: state.id.clone(),
    };
    match judge_and_act(&state, &config, &log, args.inject.as_deref()) {
        Ok(code) => Ok(code),
        Err(e) => {
            log.write(log::Level::Error, &format!("error: {e}"));
            Err(e)
        }
    }
}

fn judge_and_act(
    state: &HookState,
    config: &Config,
    log: &Log,
    inject: Option<&str>,
) -> Result<u8, CliError> {
    let bundle = Target::bundle(&state.bundle)?;
    let annotations = merged_annotations(&bundle, state);
    let ask = Ask {
        inject,
        annotations: &annotations,
        host_root: None,
        host_target: None,
        use_cache: true,
        // The runtime's environment, not a user's: only the config says where MPI is.
        ld_library_path: None,
        // A hook cannot set the container's environment: it must carry what the plan needs.
        sets_env: false,
    };
    let report = judge(&bundle, config, &ask)?;
    write_report(&config.report.dir, &state.id, &report, log);
    if report.verdict == Verdict::Incompatible {
        let text = format!(
            "containerspec: container {} refused\n{}",
            state.id,
            report.render()
        );
        // runc shows one of the two; either may be closed.
        let _ = super::write_or_closed(&mut std::io::stderr().lock(), &text);
        let _ = super::write_or_closed(&mut std::io::stdout().lock(), &text);
        log.write(log::Level::Error, &text);
        return Ok(1);
    }
    if report.plan.mounts.is_empty() {
        log.write(log::Level::Info, "compatible, nothing to inject");
        return Ok(0);
    }
    inject_plan(state, &bundle, &report.plan, &config.report.dir, log)?;
    Ok(0)
}

/// The bundle's annotations, with the state's (podman passes them there) on top.
fn merged_annotations(bundle: &Target, state: &HookState) -> BTreeMap<String, String> {
    let mut all = bundle.annotations.clone();
    all.extend(
        state
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    all
}

/// Opens every source on the host, joins the container's mount namespace, mounts.
fn inject_plan(
    state: &HookState,
    bundle: &Target,
    plan: &Plan,
    report_dir: &Path,
    log: &Log,
) -> Result<(), CliError> {
    require_sys_admin()?;
    let mut binds = Vec::new();
    for m in &plan.mounts {
        binds.push(
            Bind::open(
                &m.source,
                &m.destination,
                m.kind == crate::engine::plan::MountKind::Directory,
            )
            .map_err(action_error)?,
        );
    }
    // containerspec's directory, opened in the runtime's namespace before any join: it
    // takes the plan's loader cache and the record of the mount points made in the rootfs.
    let store = Store::open(report_dir);
    // The loader cache file is needed until its mount is attached (the kernel does not
    // attach a mount of an unlinked file); `_cache` removes it on every way out of this
    // function, through the directory's own descriptor, never by a path resolved in the
    // container's mount namespace.
    let mut _cache: Option<Written> = None;
    if let Some(cache) = &plan.ld_cache {
        let store = store.as_ref().map_err(|e| {
            action_error(format!(
                "{e} (the plan's loader cache is written there; under a rootless runtime, \
                 set [report] dir in the config file to a directory the user owns)"
            ))
        })?;
        let (file, name) = write_cache(store, &state.id, cache)?;
        _cache = Some(Written { store, name });
        binds.push(Bind::open(&file.display().to_string(), LD_CACHE, false).map_err(action_error)?);
    }
    // What the outside has mounted, read before any join.
    let outside = outside_devices();
    let entered = enter_container_namespace(bundle.mount_namespace.as_ref(), state.container_pid())
        .map_err(action_error)?;
    // The runtime mounts the container's /proc into the rootfs in the namespace it made
    // for it: its absence here means the rootfs is not set up where the hook stands.
    if !inside_container_namespace(bundle.rootfs.path()) {
        return Err(action_error(format!(
            "{}: the container's /proc is not mounted in its mount namespace: refusing to mount",
            bundle.rootfs.display()
        )));
    }
    let mut stubs = Stubs::new(match entered {
        Entered::Joined => outside,
        Entered::Inside => None,
    });
    let count = apply(bundle.rootfs.path(), &binds, &mut stubs).map_err(action_error)?;
    record_stubs(store.as_ref().ok(), &state.id, &stubs.created, log);
    log.write(
        log::Level::Info,
        &format!(
            "injected: {count} mounts into {} ({})",
            bundle.rootfs.display(),
            match entered {
                Entered::Joined => "joined the container's mount namespace",
                Entered::Inside => "already in the container's mount namespace",
            }
        ),
    );
    Ok(())
}

/// Keeps the list of the mount points created on the rootfs's own filesystem, for
/// `poststop` to remove them once the container is gone.
fn record_stubs(store: Option<&Store>, id: &str, created: &[Stub], log: &Log) {
    if created.is_empty() {
        return;
    }
    let written = match store {
        Some(store) => stubs::save(store, id, created),
        None => Err("containerspec's directory cannot be opened".into()),
    };
    if let Err(e) = written {
        log.write(
            log::Level::Warn,
            &format!(
                "the {} mount points created in the rootfs cannot be recorded ({e}): they \
                 stay after the container",
                created.len()
            ),
        );
    }
}

/// `poststop`: removes the mount points recorded for this container from its rootfs.
fn remove_stubs(dir: &Path, state: &HookState) {
    let Ok(store) = Store::open(dir) else {
        return;
    };
    let rootfs = Target::bundle(&state.bundle).map(|b| b.rootfs.path().to_path_buf());
    stubs::remove_recorded(&store, &state.id, rootfs.ok().as_deref());
}

/// Injection clones host mounts (`open_tree`), sets their flags (`mount_setattr`), joins
/// the container's mount namespace (`setns`) and attaches them (`move_mount`): each needs
/// CAP_SYS_ADMIN. Without it (a runtime that drops it, a narrowed bounding set)
/// the start is refused, saying so, rather than letting the container run without the
/// libraries it asked for.
fn require_sys_admin() -> Result<(), CliError> {
    use caps::{CapSet, Capability};
    match caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN) {
        Ok(true) => Ok(()),
        Ok(false) => Err(action_error(format!(
            "injection needs CAP_SYS_ADMIN, which this hook does not have (uid {}; a \
             runtime that drops it cannot inject host libraries): refusing the start rather \
             than running the container without what it asked for",
            nix::unistd::Uid::effective()
        ))),
        Err(e) => Err(action_error(format!(
            "cannot read this process's capabilities: {e}"
        ))),
    }
}

/// A file of containerspec's directory that goes when this does.
struct Written<'a> {
    store: &'a Store,
    name: String,
}

impl Drop for Written<'_> {
    fn drop(&mut self) {
        let _ = self.store.remove(&self.name);
    }
}

/// Writes the plan's loader cache as `ID.ld.so.cache` in containerspec's directory (see
/// [`Store`]: never through a symlink, only into a directory that is root's alone).
fn write_cache(
    store: &Store,
    id: &str,
    cache: &crate::engine::plan::LdCachePlan,
) -> Result<(PathBuf, String), CliError> {
    let name = format!("{id}.ld.so.cache");
    let bytes = cache
        .bytes()
        .map_err(|e| action_error(format!("{}: {e}", store.file_path(&name).display())))?;
    Ok((store.write(&name, &bytes)?, name))
}

/// After a container stops, its report goes unless it explains a refusal: a busy node
/// would otherwise collect one file per container start.
fn remove_passed_report(dir: &Path, id: &str) {
    let name = format!("{id}.json");
    let Ok(store) = Store::open(dir) else {
        return;
    };
    let Ok(Some(bytes)) = store.read(&name, MAX_REPORT) else {
        return;
    };
    let passed = serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|r| r["verdict"] == "compatible");
    if passed {
        let _ = store.remove(&name);
    }
}

/// A report larger than this is not one this program wrote.
const MAX_REPORT: u64 = 64 << 20;
/// Reports kept at most: those of refused containers stay until read (by design), those
/// of starts whose runtime never calls `poststop` (podman after a failed create) would
/// otherwise accumulate. The oldest go first.
const MAX_REPORTS: usize = 1000;

fn write_report(dir: &Path, id: &str, report: &Report, log: &Log) {
    let name = format!("{id}.json");
    let result = serde_json::to_vec_pretty(report)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            let store = Store::open(dir).map_err(|e| e.to_string())?;
            let written = store.write(&name, &bytes).map_err(|e| e.to_string());
            store.prune(".json", MAX_REPORTS, |n| !n.starts_with("host-"));
            written
        });
    if let Err(e) = result {
        log.write(
            log::Level::Warn,
            &format!("cannot write the report {}: {e}", dir.join(&name).display()),
        );
    }
}

fn action_error(e: impl std::fmt::Display) -> CliError {
    CliError::Action(e.to_string())
}

/// The hook's log: a file the admin chose, one prefixed line per event line.
struct Log {
    file: Option<PathBuf>,
    level: log::LevelFilter,
    id: String,
}

impl Log {
    fn write(&self, level: log::Level, text: &str) {
        if level > self.level {
            return;
        }
        let Some(path) = &self.file else { return };
        let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        else {
            return;
        };
        for line in text.lines() {
            let _ = writeln!(f, "containerspec hook {}: {line}", self.id);
        }
    }
}
