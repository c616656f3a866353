//! containerspec decides, before a container starts, whether it can run on this host, from
//! files alone: it never runs anything from the image.
//!
//! The modules follow the data flow:
//! - [`input`]: what arrives: a target (an OCI bundle, a rootfs, an Apptainer image)
//!   opened as one type, its root read confined;
//! - [`ldcache`]: glibc's loader cache format, read (for the inventory) and written (for
//!   the plans), in memory;
//! - [`inventory`]: what a root contains (ELF objects, the loader's view, libc, MPI, GPU,
//!   CPU), gathered by one code path for the host and for a container;
//! - [`facts`]: the host's and the container's facts for one verdict, read through the
//!   inventory (and the host's side cached across starts);
//! - [`engine`]: decisions (which host MPI serves, the rules, the injection plan, the
//!   report), pure over those facts; [`config`] holds the admin's policy;
//! - [`verdict`]: the one way into a verdict, for every entrance;
//! - [`action`]: carrying a plan out in a container's mount namespace;
//! - [`store`]: containerspec's own directory on the host (reports, loader caches, the
//!   host-facts cache), written so that no symlink can redirect a write;
//! - [`cli`]: the commands.

pub mod action;
pub mod cli;
pub mod config;
pub mod dockerfile;
pub mod engine;
pub mod facts;
pub mod input;
pub mod inventory;
pub mod ldcache;
pub mod registry;
pub mod store;
pub mod verdict;
