//! The integration tests, one binary (so the crate links once): each module covers one
//! reader or command against real files, real root filesystems and real tools.

mod util;

mod apptainer;
mod bad_input;
mod cdi;
mod check_bundle;
mod clusters;
mod config;
mod cpu;
mod cpu_names;
mod cpu_truth;
mod cuda_truth;
mod dockerfile;
mod elf;
mod entrypoint;
mod fixtures;
mod hook_input;
mod hook_namespace;
mod hook_podman;
mod hook_runc;
mod host;
mod image_input;
mod inject_pairs;
mod labels;
mod layout;
mod ldcache;
mod ldcache_write;
mod output;
mod real_rootfs;
mod registry_rig;
mod rootfs;
mod schema;
mod select;
mod sif;
mod site_mpi;
mod slurm_placement;
mod slurm_rig;
mod snapshot;
mod unloadable;
mod worst_case;
