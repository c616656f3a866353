//! `containerspec inspect TARGET`: a container's inventory, from a rootfs directory, an
//! OCI bundle (a directory with `config.json`, whose process and annotations count), or
//! an Apptainer image file (SIF or squashfs, read in place; its labels count).

use std::path::PathBuf;

use clap::Args;

use super::{CliError, print_json, render};
use crate::input::target::Target;
use crate::inventory::cpu::HostCpu;
use crate::inventory::gather::{Request, gather};
use crate::inventory::hostcache::host_cpu_cached;
use crate::inventory::model::Inventory;

#[derive(Debug, Args)]
#[command(
    after_help = "By default inspect reads what a start decision needs: the entrypoint \
(process.args[0] through the container's PATH) and its library closure, the libc and loader, \
and every MPI and GPU library the container's loader can see. --all reads every ELF file."
)]
pub struct InspectArgs {
    /// A rootfs directory, an OCI bundle directory (with config.json), an Apptainer SIF
    /// or squashfs image file, or an OCI image layout (DIR, or DIR:TAG when it holds
    /// several images), unpacked into a private temporary directory
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// Print the inventory as JSON (schema: docs/json.md)
    #[arg(long)]
    pub json: bool,
    /// Examine every ELF file in the rootfs, not only what the entrypoint loads
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: &InspectArgs) -> Result<u8, CliError> {
    let target = Target::open(&args.target)?;
    let (inventory, cpu) = inventory_of(&target, args.all, true)?;
    if args.json {
        print_json(&inventory)?;
    } else {
        let mut text = render::container(&inventory);
        text.push_str(&render::on_this_cpu(&inventory.microarch, &cpu));
        super::print_text(&text)?;
    }
    Ok(0)
}

/// A target's inventory as `inspect` reads it (`labels` reads it the same way), with the
/// CPU it was read for. `with_labels`: whether the labels the target carries join the
/// inventory (its `labels`, and a declared CPU target in its requirement).
pub(super) fn inventory_of(
    target: &Target,
    all: bool,
    with_labels: bool,
) -> Result<(Inventory, HostCpu), CliError> {
    // The container will run on this CPU: its loader searches these hwcaps directories.
    let cpu = host_cpu_cached(true);
    let hwcaps = cpu.hwcaps();
    let request = Request {
        process: target.process.as_ref(),
        annotations: with_labels.then_some(&target.annotations),
        all,
        hwcaps,
    };
    let mut inventory = gather(&target.rootfs, &request);
    // An unpacked OCI layout is named by the layout, not by its temporary directory.
    if matches!(target.form, crate::input::target::Form::Layout(_)) {
        inventory.root = target.path.display().to_string();
    }
    // A search that met damage in an image went on as if the file were missing.
    target.damage()?;
    Ok((inventory, cpu))
}
