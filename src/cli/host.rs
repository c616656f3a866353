//! `containerspec host`: the host's inventory, the side a container is compared against.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, print_json, render};
use crate::config::Config;
use crate::engine::hostdesc::{HostDescription, Installation};
use crate::input::rootfs::RootFs;
use crate::inventory::gather::{Request, gather};
use crate::inventory::hostcache::host_cpu_cached;
use crate::inventory::loader::Loader;
use crate::inventory::model::Kernel;
use crate::inventory::mpi_host::{self, Sources};

#[derive(Debug, Args)]
#[command(
    after_help = "The CPU and kernel are always the running machine's; everything else is read \
from files under --root, so an admin or a test can describe a host image or a mounted node root.\n\n\
MPI installations are listed from every place check-bundle --inject mpi looks, most preferred \
first, each with where it was found: the config's inject.mpi.libraries and inject.mpi.prefixes, \
the caller's LD_LIBRARY_PATH (a loaded module), then the loader cache. Which one serves a \
container depends on the ABI the container links; check-bundle --inject mpi says which and why, \
and what else it loads (dependencies, plugins, the environment its plugins need).\n\n\
--format slurm|slurm-helper|slurm-helpers-conf|nfd publishes the host as features a scheduler \
matches (docs/clusters.md): a ladder for every at-least relation (glibc_2.17..glibc_2.36; \
x86_64_v1..v4 and isa_<flag>; mpi_<family>_glibc_<X> for each MPI family, the glibc it loads \
into; cuda_<X.Y> for each CUDA release the driver runs). `containerspec match IMAGE` gives the \
constraint that selects the nodes where the image runs.\n\n\
Examples:\n  containerspec host --format slurm\n  \
containerspec host --format slurm --hosts nodes/        (a NodeName= line per description)\n  \
containerspec host --format slurm-helpers-conf --hosts nodes/ --helper /usr/local/libexec/containerspec-node-features\n  \
containerspec host --format nfd --output /etc/kubernetes/node-feature-discovery/features.d/containerspec"
)]
pub struct HostArgs {
    /// Read this directory as if it were the host's `/`
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the inventory as JSON (schema: docs/json.md); the same as --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// What to print: the inventory (text, json), or the host's features for Slurm
    /// (slurm: a Features= line; slurm-helper: one feature per line, the answer of a
    /// node_features/helpers helper; slurm-helpers-conf: helpers.conf lines) or for Node
    /// Feature Discovery (nfd: a features.d file)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// With a features format: describe these hosts instead (files or directories of
    /// host --json output); slurm prints a NodeName= line for each, slurm-helpers-conf
    /// declares the features of all of them
    #[arg(long, value_name = "PATH")]
    pub hosts: Vec<PathBuf>,
    /// slurm-helpers-conf: the helper each Feature= line names (an absolute path; it
    /// must run `containerspec host --format slurm-helper`, see contrib/slurm/)
    #[arg(long, value_name = "PATH")]
    pub helper: Option<String>,
    /// nfd: write the file here atomically (a reader sees the old file or the new one)
    /// instead of printing it
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// nfd: the features expire this long after now unless the file is written again
    /// (`# +expiry-time=`): 90m, 12h, 7d, or seconds
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub expires_in: String,
    /// Detect the CPU afresh instead of using the cached description (the cache, in
    /// /run/containerspec, is keyed by boot id and CPUID and renewed on its own)
    #[arg(long)]
    pub no_cache: bool,
    /// The config file whose [inject.mpi] names MPI installations (default
    /// /etc/containerspec/config.toml, if it exists); its paths are read under --root
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// What `host` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Slurm,
    SlurmHelper,
    SlurmHelpersConf,
    Nfd,
}

/// `host --json`: the inventory's fields, and the installations beside them.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct HostJson<'a> {
    #[serde(flatten)]
    pub inventory: &'a crate::inventory::model::Inventory,
    pub mpi_installations: &'a [Installation],
}

/// Every MPI installation the config, the caller's LD_LIBRARY_PATH and the loader cache
/// name, as check-bundle finds them.
pub(crate) fn installations(
    root: &RootFs,
    config: &Config,
    cached: &[crate::inventory::model::MpiInstall],
    hwcaps: Vec<String>,
) -> Result<Vec<Installation>, CliError> {
    let ld_library_path = std::env::var("LD_LIBRARY_PATH").ok();
    let ld_library_path = ld_library_path.as_deref().filter(|p| !p.is_empty());
    let set = &config.inject.mpi;
    let sources = Sources {
        libraries: &set.libraries,
        prefixes: &set.prefixes,
        plugin_dirs: &set.plugin_dirs,
        data_dirs: &set.data_dirs,
        ld_library_path,
        // What each loads is read too: the glibc a container must ship for it
        // (`glibc_needed`) counts its dependencies and plugins.
        shallow: false,
    };
    let loader = Loader::new(root, ld_library_path, hwcaps);
    let found = mpi_host::discover(root, &loader, cached, &sources)
        .map_err(|e| CliError::Action(e.to_string()))?;
    Ok(found.iter().map(Installation::of).collect())
}

/// The host rooted at `root` as `host --json` describes it (this machine's CPU and kernel
/// with that root's files).
pub(crate) fn describe(
    root_path: &std::path::Path,
    config: Option<&std::path::Path>,
    use_cache: bool,
) -> Result<HostDescription, CliError> {
    let root = RootFs::open(root_path)?;
    let cpu = host_cpu_cached(use_cache);
    let request = Request {
        hwcaps: cpu.hwcaps(),
        ..Default::default()
    };
    let root_given = (root_path != std::path::Path::new("/")).then_some(root_path);
    let config = Config::load_for(config, root_given)?;
    let hwcaps = cpu.hwcaps();
    let mut inventory = gather(&root, &request);
    inventory.kernel = kernel();
    inventory.cpu = Some(cpu);
    let mpi_installations = installations(&root, &config, &inventory.mpi, hwcaps)?;
    Ok(HostDescription {
        inventory,
        mpi_installations,
    })
}

pub fn run(args: &HostArgs) -> Result<u8, CliError> {
    let format = if args.json { Format::Json } else { args.format };
    if !matches!(format, Format::Text | Format::Json) {
        return features(args, format);
    }
    if !args.hosts.is_empty() {
        return Err(CliError::Action(
            "--hosts describes other hosts for the features formats (slurm, slurm-helpers-conf, nfd)".into(),
        ));
    }
    let host = describe(&args.root, args.config.as_deref(), !args.no_cache)?;
    if format == Format::Json {
        print_json(&HostJson {
            inventory: &host.inventory,
            mpi_installations: &host.mpi_installations,
        })?;
    } else {
        let mut text = render::host(&host.inventory);
        text.push_str(&render_installations(&host.mpi_installations));
        super::print_text(&text)?;
    }
    Ok(0)
}

fn render_installations(found: &[Installation]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if found.is_empty() {
        let _ = writeln!(
            out,
            "  mpi installs  none (config, LD_LIBRARY_PATH, loader cache)"
        );
        return out;
    }
    for (n, m) in found.iter().enumerate() {
        let label = if n == 0 { "mpi installs" } else { "" };
        let _ = writeln!(
            out,
            "  {label:13} {} {} ({}) at {}, through {}{}",
            m.implementation.as_deref().unwrap_or("MPI"),
            m.version.as_deref().unwrap_or("?"),
            m.soname,
            m.path,
            m.origin.describe(),
            m.prefix
                .as_deref()
                .map(|p| format!(" (prefix {p})"))
                .unwrap_or_default()
        );
        for p in &m.problems {
            let _ = writeln!(out, "  {:13}   unreadable: {p}", "");
        }
    }
    out
}

fn kernel() -> Option<Kernel> {
    let uts = nix::sys::utsname::uname().ok()?;
    Some(Kernel {
        release: uts.release().to_string_lossy().into_owned(),
        version: uts.version().to_string_lossy().into_owned(),
    })
}

/// The features formats.
fn features(args: &HostArgs, format: Format) -> Result<u8, CliError> {
    use crate::engine::features::{offer, render};
    let hosts = if args.hosts.is_empty() {
        vec![(
            String::new(),
            describe(&args.root, args.config.as_deref(), !args.no_cache)?,
        )]
    } else {
        super::hosts::load(&args.hosts, &[])?
    };
    let offers: Vec<(String, crate::engine::features::Offer)> =
        hosts.iter().map(|(n, h)| (n.clone(), offer(h))).collect();
    for (name, o) in &offers {
        for note in &o.notes {
            let who = if name.is_empty() { "this host" } else { name };
            log::warn!("{who}: not published: {note}");
        }
    }
    let text = match format {
        Format::Slurm if args.hosts.is_empty() => {
            render::slurm_features(&offers[0].1.features) + "\n"
        }
        Format::Slurm => offers
            .iter()
            .map(|(n, o)| format!("NodeName={n} {}\n", render::slurm_features(&o.features)))
            .collect(),
        Format::SlurmHelper => {
            if offers.len() != 1 {
                return Err(CliError::Action(
                    "--format slurm-helper answers for one host: this one (or --root)".into(),
                ));
            }
            render::slurm_helper(&offers[0].1.features)
        }
        Format::SlurmHelpersConf => {
            let helper = args.helper.as_deref().ok_or_else(|| {
                CliError::Action(
                    "--format slurm-helpers-conf needs --helper PATH (the script slurmd runs)"
                        .into(),
                )
            })?;
            if !helper.starts_with('/') || helper.chars().any(char::is_whitespace) {
                return Err(CliError::Action(format!(
                    "--helper {helper:?}: slurmd needs an absolute path without spaces"
                )));
            }
            let all = offers
                .iter()
                .flat_map(|(_, o)| o.features.iter().cloned())
                .collect();
            render::slurm_helpers_conf(&all, helper)
        }
        Format::Nfd => {
            if offers.len() != 1 {
                return Err(CliError::Action(
                    "--format nfd writes the file of one host: this one (or --root)".into(),
                ));
            }
            let seconds = duration(&args.expires_in)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            let text = render::nfd_feature_file(&offers[0].1.features, now + seconds);
            if text.len() > render::NFD_MAX_FILE {
                return Err(CliError::Action(format!(
                    "the feature file would be {} bytes; Node Feature Discovery ignores files over {}",
                    text.len(),
                    render::NFD_MAX_FILE
                )));
            }
            if let Some(path) = &args.output {
                crate::store::write_file(path, text.as_bytes(), 0o644).map_err(|e| {
                    CliError::Target {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    }
                })?;
                return Ok(0);
            }
            text
        }
        Format::Text | Format::Json => {
            return Err(CliError::Action(
                "the inventory formats (text, json) are not features formats".into(),
            ));
        }
    };
    if args.output.is_some() {
        return Err(CliError::Action(
            "--output writes the nfd format only".into(),
        ));
    }
    super::print_text(&text)?;
    Ok(0)
}

/// `90m`, `12h`, `7d`, `3600` (seconds).
fn duration(text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match digits.parse::<i64>() {
        Ok(n) if scale > 0 && n > 0 && n <= 3650 * 86_400 / scale => Ok(n * scale),
        _ => Err(CliError::Action(format!(
            "--expires-in {text:?}: a positive duration such as 90m, 12h, 7d (at most ten years)"
        ))),
    }
}
