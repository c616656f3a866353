//! Inputs: a root directory opened so that no lookup leaves it, and OCI bundles.

pub mod bundle;
pub mod rootfs;
pub mod sif;
pub mod state;
