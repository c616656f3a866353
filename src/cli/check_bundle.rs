//! `containerspec check-bundle BUNDLE`: can this OCI bundle start on this host, and what
//! would be injected? Exit 0 when it can (warnings allowed), 1 when it must be rejected,
//! 2 on an error in the input or the invocation.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, print_json};
use crate::config::Config;
use crate::engine::report::{Report, Verdict};
use crate::input::target::Target;
use crate::verdict::{Ask, judge};

#[derive(Debug, Args)]
#[command(
    after_help = "Injection is requested by the bundle's org.supercontainers.inject annotation \
(mpi, gpu, or both, comma-separated) or by --inject, which wins. The glibc, MPI ABI, CPU and CUDA \
checks run whether or not anything is injected.\n\n\
Exit status: 0 compatible (warnings allowed), 1 incompatible, 2 an error in the input.\n\n\
Examples:\n  containerspec check-bundle /run/bundles/job42\n  \
containerspec check-bundle ./bundle --inject mpi --json | jq .plan.mounts\n  \
containerspec check-bundle ./bundle --host-target haswell\n  \
containerspec check-bundle ./bundle --host-target znver3 --json | jq .findings"
)]
pub struct CheckBundleArgs {
    /// The OCI bundle: a directory with config.json and the rootfs it names
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub verdict: VerdictOptions,
    /// Print the report as JSON (schema: docs/verdicts.md, "check-bundle --json")
    #[arg(long)]
    pub json: bool,
    /// Also write the loader cache the plan would mount into the container to FILE
    /// (inspect it with `ldconfig -p -C FILE`)
    #[arg(long, value_name = "FILE")]
    pub emit_ld_cache: Option<PathBuf>,
}

/// What a verdict is asked with: check-bundle's and apptainer's shared options.
#[derive(Debug, Args)]
pub struct VerdictOptions {
    /// Read this directory as the host's `/` (default: the config's host.root, else /)
    #[arg(long, value_name = "DIR")]
    pub host_root: Option<PathBuf>,
    /// Judge as if the host CPU were this target: an archspec name (haswell, zen3, x86_64_v3)
    /// or a gcc -march= name (icelake-server, znver4, x86-64-v4)
    #[arg(long, value_name = "NAME")]
    pub host_target: Option<String>,
    /// The config file (default /etc/containerspec/config.toml, if it exists)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to inject: mpi, gpu, mpi,gpu or none (overrides the
    /// org.supercontainers.inject annotation, or an image's label)
    #[arg(long, value_name = "LIST")]
    pub inject: Option<String>,
    /// Read the host afresh instead of using the cached host facts (kept in
    /// /run/containerspec and renewed when the host's libraries or driver change)
    #[arg(long)]
    pub no_cache: bool,
}

/// Judges `target` on this host: the injection asked for (else its annotation), the
/// config's policy narrowed by its annotations, the host root chosen by `--host-root`,
/// the config, or `/`.
pub(super) fn verdict(
    target: &Target,
    config: &Config,
    ask: &VerdictOptions,
    sets_env: bool,
) -> Result<Report, CliError> {
    // A module loaded in the caller's shell puts its MPI on LD_LIBRARY_PATH.
    let ld_library_path = std::env::var("LD_LIBRARY_PATH").ok();
    let asked = Ask {
        inject: ask.inject.as_deref(),
        annotations: &target.annotations,
        host_root: ask.host_root.as_deref(),
        host_target: ask.host_target.as_deref(),
        use_cache: !ask.no_cache,
        ld_library_path: ld_library_path.as_deref(),
        sets_env,
    };
    Ok(judge(target, config, &asked)?)
}

pub fn run(args: &CheckBundleArgs) -> Result<u8, CliError> {
    let config = Config::load_for(
        args.verdict.config.as_deref(),
        args.verdict.host_root.as_deref(),
    )?;
    let bundle = Target::bundle(&args.bundle)?;
    let report = verdict(&bundle, &config, &args.verdict, false)?;
    if let Some(path) = &args.emit_ld_cache {
        emit_cache(&report.plan, path)?;
    }
    if args.json {
        print_json(&report)?;
    } else {
        super::print_text(&report.render())?;
    }
    Ok(if report.verdict == Verdict::Compatible {
        0
    } else {
        1
    })
}

fn emit_cache(plan: &crate::engine::plan::Plan, path: &std::path::Path) -> Result<(), CliError> {
    let Some(cache) = &plan.ld_cache else {
        log::warn!(
            "{}: not written: the plan has no loader cache (nothing goes into containerspec's directory)",
            path.display()
        );
        return Ok(());
    };
    let bytes = cache.bytes().map_err(|e| CliError::Target {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(|e| CliError::Target {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
