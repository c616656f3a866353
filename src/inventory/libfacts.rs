//! What the verdict's checks need of one ELF object ([`Lib`]) and of an MPI library
//! ([`MpiLib`]): plain data taken from a parsed [`Object`], so that the engine's rules
//! work on tables and the host's facts can be cached as JSON.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::elf::{VersionNeed, dynamic_symbols};
use super::model::MpiInstall;
use super::object::Object;
use crate::input::rootfs::RootFs;

/// An ELF library or program, with what the checks need of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lib {
    /// The file's canonical path inside its root.
    pub path: String,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// `.gnu.version_r`: which versions it needs from which file.
    pub needs: Vec<VersionNeed>,
    /// `.gnu.version_d`: the version nodes it defines.
    pub defines: Vec<String>,
    /// ELF flags for a loader cache entry (`libc6,x86-64` is 0x0303).
    pub cache_flags: i32,
    /// Directories its own `DT_RUNPATH` (else `DT_RPATH`) names, unexpanded: the loader
    /// searches them before the cache.
    pub search_dirs: Vec<String>,
}

impl Lib {
    /// The name the loader knows it by: its soname, else its file name.
    pub fn name(&self) -> &str {
        self.soname
            .as_deref()
            .unwrap_or_else(|| self.path.rsplit('/').next().unwrap_or(&self.path))
    }
}

/// An MPI library with its exported symbols.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MpiLib {
    pub lib: Lib,
    pub install: Option<MpiInstall>,
    pub defined_symbols: BTreeSet<String>,
}

/// The facts of one object, at its canonical path.
pub fn lib_of(root: &RootFs, obj: &Object) -> Lib {
    Lib {
        path: root
            .canonicalize(&obj.path)
            .unwrap_or_else(|_| obj.path.clone()),
        soname: obj.info.soname.clone(),
        needed: obj.info.needed.clone(),
        needs: obj.info.version_needs.clone(),
        defines: obj.info.version_definitions.clone(),
        cache_flags: cache_flags(obj.info.machine),
        search_dirs: if obj.info.runpath.is_empty() {
            obj.info.rpath.clone()
        } else {
            obj.info.runpath.clone()
        },
    }
}

/// An MPI library's facts with the symbols it defines.
pub fn mpi_lib(root: &RootFs, obj: &Object, install: Option<MpiInstall>) -> MpiLib {
    let defined_symbols = dynamic_symbols(&obj.bytes())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.defined)
        .map(|s| s.name)
        .collect();
    MpiLib {
        lib: lib_of(root, obj),
        install,
        defined_symbols,
    }
}

/// The flags ldconfig gives a library of this machine (`libc6` plus the ABI).
fn cache_flags(machine: u16) -> i32 {
    use crate::ldcache::*;
    match machine {
        goblin::elf::header::EM_X86_64 => FLAG_ELF_LIBC6 | FLAG_X8664_LIB64,
        goblin::elf::header::EM_AARCH64 => FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64,
        _ => FLAG_ELF_LIBC6,
    }
}

/// The directory part of an absolute path (`/` for a top-level entry).
pub fn parent(path: &str) -> String {
    path.rsplit_once('/').map_or("/".into(), |(d, _)| {
        if d.is_empty() {
            "/".into()
        } else {
            d.to_string()
        }
    })
}
