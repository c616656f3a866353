//! Actions: carrying a verdict out on a container that is being created (joining its
//! mount namespace, making the planned mounts). The only code that changes anything.

pub mod mount;
pub mod namespace;
