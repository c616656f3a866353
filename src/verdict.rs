//! One way into a verdict. Every entrance (`check-bundle`, `apptainer check|exec`, the
//! hook) says what it was asked and how it runs, and gets the same report: the facts
//! floor reads, the engine decides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::engine::report::{Report, evaluate};
use crate::engine::request::{Inject, InjectError};
use crate::facts::{Inputs, PrepareError, prepare};
use crate::input::rootfs::RootError;
use crate::input::target::Target;
use crate::inventory::hostcache::host_cpu_cached;

/// What an entrance asks, beyond the bundle and the config.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// `--inject`, which wins over the annotations' `org.supercontainers.inject`.
    pub inject: Option<&'a str>,
    /// The container's annotations (the bundle's, and for the hook the state's too).
    pub annotations: &'a BTreeMap<String, String>,
    /// `--host-root`, which wins over the config's `host.root`; else `/`.
    pub host_root: Option<&'a Path>,
    /// `--host-target`, which wins over the config's.
    pub host_target: Option<&'a str>,
    /// Use the cache of host facts (`--no-cache` turns it off).
    pub use_cache: bool,
    /// The caller's `LD_LIBRARY_PATH` (a loaded module's MPI); None for the hook, whose
    /// environment is the runtime's.
    pub ld_library_path: Option<&'a str>,
    /// The entrance sets the plan's environment in the container itself (Apptainer).
    pub sets_env: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error(transparent)]
    Inject(#[from] InjectError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// An image whose filesystem is damaged where the verdict read.
    #[error(transparent)]
    Damaged(#[from] RootError),
}

/// Judges `target` on this host.
pub fn judge(target: &Target, config: &Config, ask: &Ask) -> Result<Report, VerdictError> {
    let inject = Inject::resolve(ask.inject, ask.annotations)?;
    let (policy, notes) = config.policy.narrowed(ask.annotations);
    let host_root = ask
        .host_root
        .map(Path::to_path_buf)
        .or_else(|| config.host.root.clone())
        .unwrap_or_else(|| PathBuf::from("/"));
    let cpu = host_cpu_cached(true);
    let inputs = Inputs {
        target,
        annotations: ask.annotations,
        host_root: &host_root,
        config,
        inject,
        host_target: ask.host_target,
        cpu: &cpu,
        use_cache: ask.use_cache,
        ld_library_path: ask.ld_library_path.filter(|p| !p.is_empty()),
        sets_env: ask.sets_env,
    };
    let facts = prepare(&inputs)?;
    // A search that met damage in an image went on as if the file were missing: no
    // verdict stands on that.
    target.damage()?;
    let shown = target.path.display().to_string();
    Ok(evaluate(&facts, &inject, &policy, notes, &shown))
}

/// What `target` needs of any node (`match`): its side of a verdict, read as `judge`
/// reads it, turned by the engine into the names a node must offer. `inject` as
/// `--inject` (else the annotations'), returned resolved.
pub fn needs(
    target: &Target,
    inject: Option<&str>,
) -> Result<(crate::engine::features::Need, Inject), VerdictError> {
    let inject = Inject::resolve(inject, &target.annotations)?;
    // The container's loader picks glibc-hwcaps copies for the CPU it runs on.
    let cpu = host_cpu_cached(true);
    let container = crate::facts::read::container_side(target, &cpu.hwcaps());
    target.damage()?;
    Ok((crate::engine::features::need(&container, &inject), inject))
}
