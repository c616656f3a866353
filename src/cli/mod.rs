//! The command line: one file per subcommand, and the shared rendering of inventories.

mod apptainer;
mod cdi;
mod check_bundle;
mod dockerfile;
mod generate;
mod hook;
mod host;
mod hosts;
mod inspect;
mod labels;
mod match_cmd;
mod render;
pub mod schema;
mod select;

use clap::{Parser, Subcommand};

pub use apptainer::ApptainerArgs;
pub use check_bundle::CheckBundleArgs;
pub use hook::HookArgs;
pub use host::HostArgs;
pub use inspect::InspectArgs;
pub use labels::LabelsArgs;

/// Errors a command reports before exiting with status 2.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Root(#[from] crate::input::rootfs::RootError),
    #[error(transparent)]
    Bundle(#[from] crate::input::bundle::BundleError),
    #[error(transparent)]
    Image(#[from] crate::input::image::ImageError),
    #[error(transparent)]
    Open(#[from] crate::input::target::TargetError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {message}")]
    Target { path: String, message: String },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Verdict(#[from] crate::verdict::VerdictError),
    #[error(transparent)]
    State(#[from] crate::input::state::StateError),
    #[error("{0}")]
    Action(String),
}

#[derive(Debug, Parser)]
#[command(
    name = "containerspec",
    version,
    about = "Decide from files alone whether a container can run on this host",
    long_about = "containerspec compares a container's glibc, MPI ABI, CPU microarchitecture and CUDA \
runtime with the host's, reading files only: nothing from the image is ever executed.\n\n\
Exit status: 0 success, 1 a negative verdict, 2 an error in the input or the invocation.",
    after_help = "Examples:\n  containerspec host\n  containerspec host --json | jq .mpi\n  \
containerspec inspect /var/lib/images/bookworm-mpich\n  containerspec inspect ./bundle --all --json\n  \
containerspec labels ./rootfs --check\n  containerspec check-bundle ./bundle --inject mpi\n  containerspec apptainer exec --inject mpi app.sif ./solver\n  \
sbatch --constraint \"$(containerspec match app.sif --inject mpi)\" job.sh"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe this host: CPU, kernel, libc, MPI installations, GPU driver, loader cache
    Host(HostArgs),
    /// Describe a container's rootfs or OCI bundle: libc, required glibc, MPI, CUDA,
    /// required CPU target, entrypoint and its libraries
    Inspect(InspectArgs),
    /// The labels an image should carry, from what its files say (MPI family and
    /// release, glibc shipped and required, GPU runtime, archspec CPU target), as
    /// Dockerfile LABEL lines, an Apptainer %labels section or JSON; --check compares the
    /// labels it carries with its files and exits 1 on a contradiction
    Labels(LabelsArgs),
    /// Decide whether an OCI bundle can start on this host, and plan the injection of
    /// verified host MPI and GPU libraries
    CheckBundle(CheckBundleArgs),
    /// The OCI runtime hook: judge the container being created (state on stdin), refuse
    /// it with a diagnosis or mount the verified host libraries into it
    Hook(HookArgs),
    /// Apptainer images (SIF, squashfs, sandbox): check one before `apptainer exec`, print
    /// the binds that inject verified host libraries, or run `apptainer exec` with them
    Apptainer(ApptainerArgs),
    /// The same for SingularityCE: binds go to SINGULARITY_BIND, `exec` runs `singularity`
    Singularity(ApptainerArgs),
    /// Container Device Interface specs: write them from this host's verified MPI and GPU
    /// driver (each device runs containerspec's check), or check any vendor's
    Cdi(cdi::CdiArgs),
    /// Dockerfiles and Containerfiles: check, pin and update their base images against
    /// the registry (digests, newer tags of the same track, the OCI base-image labels),
    /// refusing moves to an image that would no longer run on the hosts given
    Dockerfile(dockerfile::DockerfileArgs),
    /// The constraint that places a job where its image runs: a Slurm --constraint, a
    /// Kubernetes nodeAffinity or Node Feature Discovery's image-compatibility artifact,
    /// from the image's files; with --hosts or --slurm-conf, which nodes fit and why not
    Match(match_cmd::MatchArgs),
    /// The manifest of a multi-platform image (an OCI layout or a registry reference) that
    /// runs best on this host or the hosts described: platform, amd64 level, archspec
    /// target, each variant's claim checked against its files; prints the digest to pull
    Select(select::SelectArgs),
    /// Man pages and shell completions, generated from this command's own definition
    Generate(generate::GenerateArgs),
}

impl Cli {
    /// Logging goes to stderr; `RUST_LOG` refines it for the standalone commands.
    pub fn init_logging(&self) {
        let level = match self.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        let env = env_logger::Env::default().default_filter_or(level);
        let _ = env_logger::Builder::from_env(env)
            .format_timestamp(None)
            .try_init();
    }
}

/// Runs the command; Ok(status) for outcomes, Err for status-2 errors.
pub fn run(cli: &Cli) -> Result<u8, CliError> {
    match &cli.command {
        Command::Host(args) => host::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Labels(args) => labels::run(args),
        Command::CheckBundle(args) => check_bundle::run(args),
        Command::Hook(args) => hook::run(args),
        Command::Apptainer(args) => {
            apptainer::run(args, crate::action::apptainer::Flavor::Apptainer)
        }
        Command::Singularity(args) => {
            apptainer::run(args, crate::action::apptainer::Flavor::Singularity)
        }
        Command::Cdi(args) => cdi::run(args),
        Command::Dockerfile(args) => dockerfile::run(args),
        Command::Match(args) => match_cmd::run(args),
        Command::Select(args) => select::run(args),
        Command::Generate(args) => generate::run(args),
    }
}

/// Prints `value` as pretty JSON followed by a newline (see [`print_text`]).
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::from)?;
    text.push('\n');
    print_text(&text)
}

/// Writes `text` to stdout. A reader that went away (`| head -1` closed the pipe) is not
/// an error: the rest is dropped and the command's exit status stands. Any other write
/// error is one.
fn print_text(text: &str) -> Result<(), CliError> {
    write_or_closed(&mut std::io::stdout().lock(), text).map_err(CliError::Output)
}

/// Writes `text` to `out`, treating a closed pipe as the end of the output.
pub fn write_or_closed(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
