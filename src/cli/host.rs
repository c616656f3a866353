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
and what else it loads (dependencies, plugins, the environment its plugins need)."
)]
pub struct HostArgs {
    /// Read this directory as if it were the host's `/`
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the inventory as JSON (schema: docs/json.md)
    #[arg(long)]
    pub json: bool,
    /// Detect the CPU afresh instead of using the cached description (the cache, in
    /// /run/containerspec, is keyed by boot id and CPUID and renewed on its own)
    #[arg(long)]
    pub no_cache: bool,
    /// The config file whose [inject.mpi] names MPI installations (default
    /// /etc/containerspec/config.toml, if it exists); its paths are read under --root
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    let host = describe(&args.root, args.config.as_deref(), !args.no_cache)?;
    if args.json {
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
