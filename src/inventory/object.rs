//! An ELF object read from a root, parsed once. A host file is mapped read-only; a file
//! inside an image (a squashfs read in place) is fetched block by block into a private
//! buffer, only where the reader looks: the headers and the symbol, string, version and
//! note tables at load, a section or a symbol's bytes when a later question needs them
//! ([`Object::ensure_section`], [`Object::ensure_symbol`]). A 40 MB MPI library in an
//! image thus costs a few blocks, not 40 MB of decompression.

use std::cell::{Ref, RefCell};
use std::ops::Deref;

use memmap2::{Mmap, MmapMut};

use super::elf::{ElfError, ElfInfo, is_elf, metadata_ranges, section_range, symbol_range};
use crate::input::rootfs::{ImageFile, RootError, RootFile, RootFs};

/// Objects inside an image larger than this are not read (the largest real shared
/// libraries, CUDA's, are below 2 GiB).
const MAX_IMAGE_OBJECT: u64 = 4 << 30;
/// What [`Object::find_in_section`] makes readable on each side of the needle: MPICH's
/// version block (device, configure line, ABI, date, version) spans a few KiB.
const AROUND_NEEDLE: u64 = 16 << 10;
/// Fetches grow a block's fetched prefix by at least this much (each growth decodes the
/// block from its start again).
const FETCH_GRAIN: u64 = 32 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("{path}: cannot map: {source}")]
    Map {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot read: {message}")]
    Read { path: String, message: String },
    #[error("{path}: not an ELF file")]
    NotElf { path: String },
    #[error("{path}: {source}")]
    Elf { path: String, source: ElfError },
}

pub struct Object {
    /// The path it was found at (inside the root), as the loader would name it.
    pub path: String,
    pub info: ElfInfo,
    data: Data,
}

enum Data {
    Mapped(Mmap),
    Fetched(Fetched),
}

/// A file of an image, fetched into an anonymous mapping of its size (pages never
/// written cost nothing) one filesystem block at a time.
struct Fetched {
    file: ImageFile,
    block: u64,
    state: RefCell<FetchedState>,
}

struct FetchedState {
    buf: MmapMut,
    /// Per block: how many of its first bytes are fetched. A compressed block decodes
    /// from its start, so what is fetched is always a prefix; headers and tables at a
    /// file's start need only the beginning of its first block.
    loaded: Vec<u64>,
}

/// The bytes of an object, borrowed. For a fetched file only the ranges asked for
/// (and the headers and tables) hold the file's bytes; the rest reads as zeros.
pub struct Bytes<'a>(BytesOf<'a>);

enum BytesOf<'a> {
    Slice(&'a [u8]),
    Fetched(Ref<'a, FetchedState>),
}

impl Deref for Bytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            BytesOf::Slice(s) => s,
            BytesOf::Fetched(state) => &state.buf,
        }
    }
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
        let file = root.open_file(path)?;
        Object::from_file(path, file)
    }

    /// Parses an already opened file (the `--all` walk opens files itself).
    pub fn from_file(path: &str, file: RootFile) -> Result<Object, ObjectError> {
        let data = match file {
            RootFile::Host(file) => Data::Mapped(map_file(path, &file)?),
            RootFile::Image(file) => Data::Fetched(Fetched::new(path, file)?),
        };
        let info = {
            let bytes = data.bytes();
            if !is_elf(&bytes) {
                return Err(ObjectError::NotElf {
                    path: path.to_string(),
                });
            }
            ElfInfo::parse(&bytes).map_err(|source| ObjectError::Elf {
                path: path.to_string(),
                source,
            })?
        };
        Ok(Object {
            path: path.to_string(),
            info,
            data,
        })
    }

    /// The file's bytes. Of a file inside an image, only the headers, the tables
    /// [`metadata_ranges`] names and what was ensured since are fetched.
    pub fn bytes(&self) -> Bytes<'_> {
        self.data.bytes()
    }

    /// Makes a named section's bytes readable; false when the file has no such
    /// section (or it could not be read).
    pub fn ensure_section(&self, name: &str) -> bool {
        let range = section_range(&self.bytes(), name);
        range.is_some_and(|r| self.data.fetch(&[r]).is_ok())
    }

    /// Makes a named section readable around the first place `needle` is found, for a
    /// search that needs only the text there (a version banner); false when the section
    /// is not there (or, in an image, the needle). A mapped file is readable already: the
    /// caller's own search decides. A file in an image is searched block by block from the
    /// section's end, where such banners sit in the libraries read (the whole `.rodata`
    /// of an MPI library is megabytes); [`AROUND_NEEDLE`] bytes on each side of the place
    /// found are fetched.
    /// The caller then searches the section as usual: blocks not fetched read as zeros,
    /// which a needle never matches.
    pub fn find_in_section(&self, name: &str, needle: &[u8]) -> bool {
        let Some((offset, len)) = section_range(&self.bytes(), name) else {
            return false;
        };
        let Data::Fetched(f) = &self.data else {
            return true;
        };
        let end = offset.saturating_add(len);
        if len == 0 || needle.is_empty() {
            return false;
        }
        let (first, last) = (offset / f.block, (end - 1) / f.block);
        for index in (first..=last).rev() {
            let start = (index * f.block).max(offset);
            // The next block is fetched already: a needle may straddle the boundary.
            let stop = ((index + 1) * f.block)
                .saturating_add(needle.len() as u64 - 1)
                .min(end);
            if f.fetch(&[(start, stop - start)]).is_err() {
                return false;
            }
            let bytes = self.bytes();
            let window = bytes.get(start as usize..stop as usize).unwrap_or_default();
            if let Some(at) = memchr::memmem::find(window, needle) {
                drop(bytes);
                let at = start + at as u64;
                let from = at.saturating_sub(AROUND_NEEDLE).max(offset);
                let to = at.saturating_add(AROUND_NEEDLE).min(end);
                return f.fetch(&[(from, to - from)]).is_ok();
            }
        }
        false
    }

    /// Makes the bytes `read_symbol_string(symbol)` reads readable; false when the
    /// symbol is not defined (or could not be read).
    pub fn ensure_symbol(&self, symbol: &str) -> bool {
        let range = symbol_range(&self.bytes(), symbol);
        range.is_some_and(|r| self.data.fetch(&[r]).is_ok())
    }

    /// Makes the whole file readable (for scans that have no section to go by).
    pub fn ensure_all(&self) -> bool {
        let len = self.bytes().len() as u64;
        self.data.fetch(&[(0, len)]).is_ok()
    }

    /// The file name part of the path.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

impl Data {
    fn bytes(&self) -> Bytes<'_> {
        match self {
            Data::Mapped(map) => Bytes(BytesOf::Slice(map)),
            Data::Fetched(f) => Bytes(BytesOf::Fetched(f.state.borrow())),
        }
    }

    fn fetch(&self, ranges: &[(u64, u64)]) -> Result<bool, String> {
        match self {
            Data::Mapped(_) => Ok(false),
            Data::Fetched(f) => f.fetch(ranges),
        }
    }
}

impl Fetched {
    fn new(path: &str, file: ImageFile) -> Result<Fetched, ObjectError> {
        let size = file.inode.size;
        if size > MAX_IMAGE_OBJECT {
            return Err(ObjectError::Read {
                path: path.to_string(),
                message: format!("{size} bytes, more than the {MAX_IMAGE_OBJECT}-byte limit"),
            });
        }
        if size < 4 {
            return Err(ObjectError::NotElf {
                path: path.to_string(),
            });
        }
        let map_error = |source| ObjectError::Map {
            path: path.to_string(),
            source,
        };
        let buf = MmapMut::map_anon(
            usize::try_from(size)
                .map_err(|_| map_error(std::io::Error::from(std::io::ErrorKind::OutOfMemory)))?,
        )
        .map_err(map_error)?;
        let block = u64::from(file.fs.block_size()).max(1);
        let blocks = usize::try_from(size.div_ceil(block)).unwrap_or(usize::MAX);
        let fetched = Fetched {
            file,
            block,
            state: RefCell::new(FetchedState {
                buf,
                loaded: vec![0; blocks],
            }),
        };
        let read_error = |message| ObjectError::Read {
            path: path.to_string(),
            message,
        };
        // The headers, then what they locate, until nothing new is named.
        for _ in 0..4 {
            let ranges = metadata_ranges(&fetched.state.borrow().buf);
            if !fetched.fetch(&ranges).map_err(read_error)? {
                break;
            }
        }
        Ok(fetched)
    }

    /// Reads what `ranges` (clipped to the file) need and is not read yet: of each block
    /// they touch, the prefix up to the range's end (rounded up to [`FETCH_GRAIN`]); true
    /// when anything new was read.
    fn fetch(&self, ranges: &[(u64, u64)]) -> Result<bool, String> {
        let mut state = self
            .state
            .try_borrow_mut()
            .map_err(|_| "the file's bytes are in use".to_string())?;
        let size = state.buf.len() as u64;
        let mut any = false;
        for &(offset, len) in ranges {
            if len == 0 || offset >= size {
                continue;
            }
            let end = offset.saturating_add(len).min(size);
            let first = offset / self.block;
            let last = (end - 1) / self.block;
            for index in first..=last {
                let i = index as usize;
                let block_start = index * self.block;
                let block_len = (size - block_start).min(self.block);
                let need = (end - block_start)
                    .min(block_len)
                    .next_multiple_of(FETCH_GRAIN)
                    .min(block_len);
                let have = state.loaded.get(i).copied().unwrap_or(u64::MAX);
                if have >= need {
                    continue;
                }
                let (from, to) = (block_start + have, block_start + need);
                let target = state
                    .buf
                    .get_mut(from as usize..to as usize)
                    .ok_or_else(|| "block outside the file".to_string())?;
                let n = self.file.read_at(from, target).map_err(|e| e.to_string())?;
                if n < target.len() {
                    return Err(format!(
                        "the file ends at {} bytes, before its recorded size {size}",
                        from + n as u64
                    ));
                }
                if let Some(loaded) = state.loaded.get_mut(i) {
                    *loaded = need;
                }
                any = true;
            }
        }
        Ok(any)
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
