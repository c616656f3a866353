//! What a root contains, read from files only. [`gather::gather`] assembles an
//! [`model::Inventory`] from the readers below: ELF objects ([`elf`], [`object`]), the
//! loader's view ([`crate::ldcache`], [`ldconf`], [`loader`], [`entrypoint`]), and the facts
//! built on them ([`libc`], [`mpi`], [`gpu`], [`cpu`], [`microarch`], [`osrelease`]).

pub mod cpu;
pub mod cuda;
pub mod elf;
pub mod entrypoint;
pub mod gather;
pub mod gpu;
pub mod hostcache;
pub mod ldconf;
pub mod libc;
pub mod libfacts;
pub mod loader;
pub mod microarch;
pub mod model;
pub mod mpi;
pub mod mpi_host;
pub mod object;
pub mod osrelease;
pub mod strings;
pub mod version;
