//! `containerspec host`: the host's inventory, the side a container is compared against.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, print_json, render};
use crate::input::rootfs::RootFs;
use crate::inventory::gather::{Request, gather};
use crate::inventory::hostcache::host_cpu_cached;
use crate::inventory::model::Kernel;

#[derive(Debug, Args)]
#[command(
    after_help = "The CPU and kernel are always the running machine's; everything else is read \
from files under --root, so an admin or a test can describe a host image or a mounted node root."
)]
pub struct HostArgs {
    /// Read this directory as if it were the host's `/`
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the inventory as JSON (schema: README, "JSON schema")
    #[arg(long)]
    pub json: bool,
    /// Detect the CPU afresh instead of using the cached description (the cache, in
    /// /run/containerspec, is keyed by boot id and CPUID and renewed on its own)
    #[arg(long)]
    pub no_cache: bool,
}

pub fn run(args: &HostArgs) -> Result<u8, CliError> {
    let root = RootFs::open(&args.root)?;
    let cpu = host_cpu_cached(!args.no_cache);
    let request = Request {
        hwcaps: cpu.hwcaps(),
        ..Default::default()
    };
    let mut inventory = gather(&root, &request);
    inventory.kernel = kernel();
    inventory.cpu = Some(cpu);
    if args.json {
        print_json(&inventory)?;
    } else {
        print!("{}", render::host(&inventory));
    }
    Ok(0)
}

fn kernel() -> Option<Kernel> {
    let uts = nix::sys::utsname::uname().ok()?;
    Some(Kernel {
        release: uts.release().to_string_lossy().into_owned(),
        version: uts.version().to_string_lossy().into_owned(),
    })
}
