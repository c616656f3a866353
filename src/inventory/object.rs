//! An ELF object read from a root: opened confined to the root, mapped read-only, parsed
//! once. The mapping stays with the object so later questions (a data symbol's string,
//! a section's strings) do not read the file again.

use memmap2::Mmap;

use super::elf::{ElfError, ElfInfo, is_elf};
use crate::input::rootfs::{RootError, RootFs};

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("{path}: cannot map: {source}")]
    Map {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not an ELF file")]
    NotElf { path: String },
    #[error("{path}: {source}")]
    Elf { path: String, source: ElfError },
}

pub struct Object {
    /// The path it was found at (inside the root), as the loader would name it.
    pub path: String,
    pub info: ElfInfo,
    map: Mmap,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

impl Object {
    /// Opens and parses `path` inside `root`.
    pub fn load(root: &RootFs, path: &str) -> Result<Object, ObjectError> {
        let (file, _) = root.open_file(path)?;
        Object::from_file(path, &file)
    }

    /// Parses an already opened file (the `--all` walk opens files itself).
    pub fn from_file(path: &str, file: &std::fs::File) -> Result<Object, ObjectError> {
        let map = map_file(path, file)?;
        if !is_elf(&map) {
            return Err(ObjectError::NotElf {
                path: path.to_string(),
            });
        }
        let info = ElfInfo::parse(&map).map_err(|source| ObjectError::Elf {
            path: path.to_string(),
            source,
        })?;
        Ok(Object {
            path: path.to_string(),
            info,
            map,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The file name part of the path.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Maps `file` read-only. An empty file maps to an empty slice (mmap refuses length 0).
pub fn map_file(path: &str, file: &std::fs::File) -> Result<Mmap, ObjectError> {
    // SAFETY: the mapping is private and read-only; the files are an image's, not being
    // written while containerspec reads them. A concurrent truncation by a privileged
    // host process could raise SIGBUS; nothing the image itself controls can.
    unsafe { Mmap::map(file) }.map_err(|source| ObjectError::Map {
        path: path.to_string(),
        source,
    })
}
