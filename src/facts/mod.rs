//! The facts floor: everything a verdict needs to know about the host and the container,
//! read from files through the inventory, so that the engine decides over data.
//!
//! [`read::prepare`] reads the host's side (its inventory, CPU target, MPI installations
//! and GPU libraries; cached across starts by [`cache`]) and the container's (its
//! entrypoint's closure, its MPI, its loader cache), asks the engine which host
//! installation serves the container, and then reads what the container holds where
//! that installation's libraries will look.

pub mod cache;
pub mod read;

pub use read::{Inputs, PrepareError, prepare};
