//! Actions: carrying a verdict out. For a container being created by an OCI runtime:
//! joining its mount namespace and making the planned mounts; for Apptainer: turning the
//! plan into binds and starting `apptainer exec`. The only code that changes anything.

pub mod apptainer;
pub mod mount;
pub mod mountinfo;
pub mod namespace;
pub mod stubs;
