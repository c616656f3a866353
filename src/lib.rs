//! containerspec decides, before a container starts, whether it can run on this host, from
//! files alone: it never runs anything from the image.
//!
//! The modules follow the data flow:
//! - [`input`]: what arrives (a root directory opened confined, an OCI bundle);
//! - [`inventory`]: what a root contains (ELF objects, the loader's view, libc, MPI, GPU,
//!   CPU), gathered by one code path for the host and for a container;
//! - [`cli`]: the commands that print it.

pub mod cli;
pub mod input;
pub mod inventory;
