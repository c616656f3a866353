//! `containerspec apptainer check|exec` (and the same under `singularity`): the verdict
//! for an Apptainer image (a SIF file, a squashfs image or a sandbox directory) on this
//! host, before Apptainer starts, and the verified host libraries as binds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::check_bundle::{VerdictOptions, verdict};
use super::{CliError, print_json};
use crate::action::apptainer::{
    Bind, Flavor, binds, exec, exec_command, ld_cache_dir, shell_args, shell_env, shell_env_args,
    shell_env_exports,
};
use crate::config::Config;
use crate::engine::finding::Severity;
use crate::engine::report::{Report, Verdict};
use crate::input::target::{Form, Target};

const AFTER_HELP: &str = "IMAGE is a SIF file (read in place: only the blocks the checks need \
are read from its squashfs, nothing is unpacked or mounted), a squashfs image, or a sandbox \
directory. The image's labels (/.singularity.d/labels.json) count like an OCI bundle's \
annotations: org.supercontainers.inject asks for injection unless --inject says otherwise.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ApptainerArgs {
    #[command(subcommand)]
    pub command: ApptainerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApptainerCommand {
    /// Decide whether IMAGE can run here, and print the binds that inject the verified
    /// host libraries
    Check(CheckArgs),
    /// Check IMAGE, then run `apptainer exec` with the binds (or refuse with the
    /// diagnosis, before Apptainer starts)
    Exec(ExecArgs),
}

/// What both subcommands take to reach a verdict.
#[derive(Debug, Args)]
pub struct JudgeOptions {
    #[command(flatten)]
    pub verdict: VerdictOptions,
    /// Where to write the loader cache bound over the container's /etc/ld.so.cache
    /// (default: /run/containerspec/ld-cache for root, $XDG_RUNTIME_DIR/containerspec/ld-cache,
    /// else a private $TMPDIR/containerspec-UID). Files there are named by their content and
    /// shared by every rank of a job
    #[arg(long, value_name = "DIR")]
    pub ld_cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrintForm {
    /// The verdict, findings and binds, for a person
    Report,
    /// Only `--bind SRC:DST:ro ...` on one line, for an `apptainer exec` command line
    Args,
    /// Only an `export APPTAINER_BIND=...` line (SINGULARITY_BIND under `singularity`)
    /// that appends the binds, for `eval`
    Env,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 compatible (warnings allowed), 1 incompatible, 2 an \
error in the input (a damaged or unreadable image included). With --print args|env, stdout \
holds only the binds (nothing when refused) and the diagnosis goes to stderr.\n\n\
Examples:\n  containerspec apptainer check app.sif\n  \
containerspec apptainer check --inject mpi app.sif /opt/app/bin/solver\n  \
apptainer exec $(containerspec apptainer check --inject mpi --print args app.sif) app.sif ./solver\n  \
binds=$(containerspec apptainer check --inject mpi --print env app.sif) || exit 1\n  \
eval \"$binds\"; srun apptainer exec app.sif ./solver"
)]
pub struct CheckArgs {
    /// A SIF file, a squashfs image or a sandbox directory
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The command that will run in it (resolved through the image's PATH): its library
    /// closure is checked too
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub judge: JudgeOptions,
    /// What to print on stdout
    #[arg(long, value_enum, default_value_t = PrintForm::Report, value_name = "FORM")]
    pub print: PrintForm,
    /// Print the report as JSON (check-bundle's schema plus an `apptainer` object)
    #[arg(long, conflicts_with = "print")]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 1 when the image is refused, 2 on an error in the input \
or when Apptainer cannot be started; otherwise Apptainer replaces containerspec (same process) \
and the status is the command's.\n\n\
Options for Apptainer itself go through --runtime-arg (repeat it), or through Apptainer's own \
environment variables, which pass through unchanged.\n\n\
Examples:\n  containerspec apptainer exec --inject mpi app.sif ./solver input.dat\n  \
srun containerspec apptainer exec --inject mpi app.sif ./solver\n  \
containerspec apptainer exec --runtime-arg=--cleanenv --runtime-arg=--nv app.sif nvidia-smi\n  \
containerspec singularity exec --inject mpi app.sif ./solver   # SingularityCE"
)]
pub struct ExecArgs {
    #[command(flatten)]
    pub judge: JudgeOptions,
    /// The Apptainer (or SingularityCE) command to run (default: apptainer, or singularity
    /// under `containerspec singularity`), found on PATH
    #[arg(long, value_name = "PROGRAM")]
    pub runtime: Option<OsString>,
    /// One more argument for `apptainer exec`, placed before the image (repeatable)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub runtime_arg: Vec<OsString>,
    /// Say nothing when the image is compatible, even with warnings
    #[arg(short, long)]
    pub quiet: bool,
    /// A SIF file, a squashfs image or a sandbox directory
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// The `apptainer` object of `check --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ApptainerPart {
    image: String,
    form: String,
    flavor: Flavor,
    /// Empty unless the verdict is compatible.
    binds: Vec<Bind>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct CheckJson<'a> {
    #[serde(flatten)]
    report: &'a Report,
    apptainer: ApptainerPart,
}

pub fn run(args: &ApptainerArgs, flavor: Flavor) -> Result<u8, CliError> {
    match &args.command {
        ApptainerCommand::Check(a) => check(a, flavor),
        ApptainerCommand::Exec(a) => run_exec(a, flavor),
    }
}

/// The verdict on `image` running `command`.
fn judge(
    image: &Path,
    command: Vec<String>,
    opts: &JudgeOptions,
) -> Result<(Report, Form), CliError> {
    let config = Config::load_for(
        opts.verdict.config.as_deref(),
        opts.verdict.host_root.as_deref(),
    )?;
    let target = Target::image(image)?.with_command(command);
    let report = verdict(&target, &config, &opts.verdict, true)?;
    Ok((report, target.form))
}

fn check(args: &CheckArgs, flavor: Flavor) -> Result<u8, CliError> {
    let (report, form) = judge(&args.image, args.command.clone(), &args.judge)?;
    let compatible = report.verdict == Verdict::Compatible;
    let binds = if compatible {
        plan_binds(&report, &args.judge)?
    } else {
        Vec::new()
    };
    if args.json {
        print_json(&CheckJson {
            report: &report,
            apptainer: ApptainerPart {
                image: args.image.display().to_string(),
                form: form.describe(),
                flavor,
                binds,
            },
        })?;
    } else {
        match args.print {
            PrintForm::Report => {
                out(&report.render())?;
                out(&render_binds(&form, &binds, compatible, flavor))?;
            }
            PrintForm::Args | PrintForm::Env => {
                if !compatible || has_warnings(&report) {
                    say(&diagnosis(&report));
                }
                if compatible && !binds.is_empty() {
                    if args.print == PrintForm::Args {
                        let env = shell_env_args(&report.plan.env);
                        let args = [shell_args(&binds), env].join(" ");
                        out(&format!("{}\n", args.trim()))?;
                    } else {
                        out(&shell_env(&binds, flavor))?;
                        out(&shell_env_exports(&report.plan.env, flavor))?;
                    }
                }
            }
        }
    }
    Ok(if compatible { 0 } else { 1 })
}

fn run_exec(args: &ExecArgs, flavor: Flavor) -> Result<u8, CliError> {
    // The checks see the command as the container will: resolved through its PATH.
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (report, _) = judge(&args.image, command, &args.judge)?;
    if report.verdict != Verdict::Compatible {
        say(&diagnosis(&report));
        say(&format!(
            "containerspec: refusing to start {}: it cannot run on this host (see above)\n",
            args.image.display()
        ));
        return Ok(1);
    }
    if has_warnings(&report) && !args.quiet {
        say(&diagnosis(&report));
    }
    let binds = plan_binds(&report, &args.judge)?;
    let runtime = args
        .runtime
        .clone()
        .unwrap_or_else(|| OsString::from(flavor.command()));
    log::info!(
        "{}: compatible; starting {} exec with {} binds",
        args.image.display(),
        runtime.to_string_lossy(),
        binds.len()
    );
    let cmd = exec_command(
        &runtime,
        &binds,
        &report.plan.env,
        &args.runtime_arg,
        &args.image,
        &args.command,
    );
    let error = exec(cmd);
    let hint = if error.kind() == std::io::ErrorKind::NotFound {
        format!(
            "not found on PATH (install {}, or name the program with --runtime)",
            flavor.command()
        )
    } else {
        error.to_string()
    };
    Err(CliError::Target {
        path: runtime.to_string_lossy().into_owned(),
        message: format!("cannot start: {hint}"),
    })
}

fn plan_binds(report: &Report, opts: &JudgeOptions) -> Result<Vec<Bind>, CliError> {
    let needs_cache = report.plan.ld_cache.is_some();
    let dir = if needs_cache {
        ld_cache_dir(opts.ld_cache_dir.as_deref()).map_err(bind_error)?
    } else {
        PathBuf::new()
    };
    binds(&report.plan, &dir).map_err(bind_error)
}

fn bind_error(e: crate::action::apptainer::BindError) -> CliError {
    CliError::Action(e.to_string())
}

/// Writes to stdout; a closed stdout is an error (exit 2), not a panic.
fn out(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes a diagnosis to stderr; nowhere to write it is no reason to fail differently.
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The verdict and the findings, without the plan (which the binds carry out).
fn diagnosis(report: &Report) -> String {
    let text = report.render();
    match text.find("\nplan:") {
        Some(end) => text[..=end].to_string(),
        None => text,
    }
}

fn has_warnings(report: &Report) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.severity >= Severity::Warning)
}

fn render_binds(form: &Form, binds: &[Bind], compatible: bool, flavor: Flavor) -> String {
    let mut out = format!("\nimage: {}\n", form.describe());
    if !compatible {
        return out;
    }
    if binds.is_empty() {
        out.push_str("binds: none (nothing to inject)\n");
        return out;
    }
    out.push_str(&format!(
        "binds for {} exec ({}):\n",
        flavor.command(),
        binds.len()
    ));
    for b in binds {
        out.push_str(&format!("  --bind {}\n", b.spec()));
    }
    out
}
