//! The integration tests, one binary (so the crate links once): each module covers one
//! reader or command against real files, real root filesystems and real tools.

mod util;

mod bad_input;
mod cpu;
mod elf;
mod entrypoint;
mod fixtures;
mod host;
mod ldcache;
mod real_rootfs;
mod rootfs;
