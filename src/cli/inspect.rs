//! `containerspec inspect TARGET`: a container's inventory, from a rootfs directory, an
//! OCI bundle (a directory with `config.json`, whose process and annotations count), or
//! an Apptainer image file (SIF or squashfs, read in place; its labels count).

use std::path::PathBuf;

use clap::Args;

use super::{CliError, print_json, render};
use crate::input::bundle::{Bundle, is_bundle};
use crate::input::image::{Image, ImageError};
use crate::input::rootfs::RootError;
use crate::input::rootfs::RootFs;
use crate::inventory::gather::{Request, gather};
use crate::inventory::hostcache::host_cpu_cached;

#[derive(Debug, Args)]
#[command(
    after_help = "By default inspect reads what a start decision needs: the entrypoint \
(process.args[0] through the container's PATH) and its library closure, the libc and loader, \
and every MPI and GPU library the container's loader can see. --all reads every ELF file."
)]
pub struct InspectArgs {
    /// A rootfs directory, an OCI bundle directory (with config.json), or an Apptainer
    /// SIF or squashfs image file
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
    let target = &args.target;
    let meta = std::fs::metadata(target).map_err(|e| CliError::Target {
        path: target.display().to_string(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory".into()
        } else {
            e.to_string()
        },
    })?;
    // The container will run on this CPU: its loader searches these hwcaps directories.
    let hwcaps = host_cpu_cached(true).hwcaps();
    let inventory = if !meta.is_dir() {
        // An image file: its filesystem read like a rootfs directory, and its labels.
        let image = Image::open(target).map_err(|e| match e {
            ImageError::Unknown { path } => CliError::Target {
                path,
                message: "not a directory, SIF or squashfs image (expected a rootfs, an OCI \
                          bundle or an Apptainer image)"
                    .into(),
            },
            other => other.into(),
        })?;
        let request = Request {
            annotations: Some(&image.labels),
            all: args.all,
            hwcaps,
            ..Default::default()
        };
        let inventory = gather(&image.root, &request);
        if let Some(damage) = image.root.damage() {
            return Err(CliError::Root(RootError::Damaged { message: damage }));
        }
        inventory
    } else if is_bundle(target) {
        let bundle = Bundle::load(target)?;
        let request = Request {
            process: Some(&bundle.process),
            annotations: Some(&bundle.annotations),
            all: args.all,
            hwcaps,
        };
        gather(&bundle.rootfs, &request)
    } else {
        let root = RootFs::open(target)?;
        gather(
            &root,
            &Request {
                all: args.all,
                hwcaps,
                ..Default::default()
            },
        )
    };
    if args.json {
        print_json(&inventory)?;
    } else {
        super::print_text(&render::container(&inventory))?;
    }
    Ok(0)
}
