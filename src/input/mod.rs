//! Inputs: a target (a bundle, a rootfs, an Apptainer image or an OCI image layout, opened as one type), a root (a directory, or a squashfs inside an image file) opened so that no
//! lookup leaves it, OCI bundles and hook state, and Apptainer's SIF images.

pub mod bundle;
pub mod bytes;
pub mod cdi;
pub mod image;
pub mod layout;
pub mod rootfs;
pub mod sif;
pub mod squashfs;
pub mod state;
pub mod target;
