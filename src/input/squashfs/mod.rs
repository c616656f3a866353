//! A read-only squashfs 4.0 reader that works in place: it reads the filesystem inside a
//! file (for example the squashfs partition of an Apptainer SIF image, at an offset) with
//! positioned reads, and only reads the metadata and data blocks that a call needs.
//!
//! The images are untrusted: every size, offset and count read from the image is checked
//! before it is used, arithmetic on them is checked, allocations are bounded by the image's
//! size or by fixed caps, and third-party decompressors are only ever asked for a bounded
//! amount of output. Errors name the image and what was being read.
//!
//! # On-disk format
//!
//! All integers are little endian. Positions below are relative to the start of the
//! filesystem (the `offset` given to [`SquashFs::open`]).
//!
//! ## Superblock (96 bytes at position 0)
//!
//! | at | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `hsqs` (0x73717368) |
//! | 4 | 4 | inode count |
//! | 8 | 4 | modification time |
//! | 12 | 4 | data block size (a power of two, 4 KiB ..= 1 MiB) |
//! | 16 | 4 | fragment entry count |
//! | 20 | 2 | compressor: 1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd |
//! | 22 | 2 | log2 of the block size |
//! | 24 | 2 | flags (0x0400: compressor options follow the superblock) |
//! | 26 | 2 | id (uid/gid) count |
//! | 28 | 2+2 | version major, minor: 4, 0 |
//! | 32 | 8 | root inode reference |
//! | 40 | 8 | bytes used |
//! | 48 | 8 | id table, xattr id table, inode table, directory table, fragment table, |
//! |    |   | export table starts (8 bytes each; `u64::MAX` for an absent optional table) |
//!
//! Checked: the magic, the version, a known compressor (lzo and unknown ids are refused as
//! unsupported), the block size against its log, `bytes_used` within the partition and the
//! partition within the file, the inode table before the directory table, every present
//! table start within `bytes_used`, and the root reference inside the inode table.
//!
//! ## Metadata blocks
//!
//! Inodes, directory listings, fragment entries and ids are stored in metadata blocks: a
//! 2-byte header (bit 15 set: stored uncompressed; the low 15 bits: the stored size, 1 ..= 8192)
//! followed by the stored bytes, which hold at most 8192 bytes once decompressed. A
//! table is a run of such blocks; a position inside it is a block's start and an offset into
//! its decompressed bytes, and a structure may continue into the next block. An *inode
//! reference* is `(block start relative to the inode table) << 16 | offset`.
//!
//! When the compressor-options flag is set, one metadata block at position 96 holds the
//! compressor's options (gzip: level u32, window u16, strategies u16; xz: dictionary size
//! u32, filters u32; lz4: version u32 (must be 1), flags u32; zstd: level u32; lzo:
//! algorithm u32, level u32); its length is checked and its content is otherwise not needed.
//!
//! ## Inodes (inode table)
//!
//! Every inode starts with a 16-byte header: type u16, permissions u16, uid index u16, gid
//! index u16, mtime u32, inode number u32. Then, by type:
//!
//! | type | layout after the header |
//! | --- | --- |
//! | 1 directory | start block u32, nlink u32, listing size u16, offset u16, parent u32 |
//! | 8 ext. directory | nlink u32, listing size u32, start block u32, parent u32, index count u16, offset u16, xattr u32, index entries |
//! | 2 file | blocks start u32, fragment u32, fragment offset u32, size u32, block sizes u32[] |
//! | 9 ext. file | blocks start u64, size u64, sparse u64, nlink u32, fragment u32, fragment offset u32, xattr u32, block sizes u32[] |
//! | 3 / 10 symlink | nlink u32, target size u32, target bytes (ext.: then xattr u32) |
//! | 4, 5 / 11, 12 block, char device | nlink u32, device u32 (ext.: then xattr u32) |
//! | 6, 7 / 13, 14 fifo, socket | nlink u32 (ext.: then xattr u32) |
//!
//! A directory's listing size counts 3 bytes for the implicit "." and ".." entries. An
//! extended directory's index entries (index u32: offset of a directory header within the
//! listing, start u32: that header's metadata block relative to the directory table, name
//! size u32 (length − 1), name) name the first entry of each header and let a lookup start
//! near its target. Xattr indices are skipped.
//!
//! A file has `ceil(size / block size)` blocks, or `floor(size / block size)` when its tail
//! is in a fragment (fragment ≠ `u32::MAX`). Each block size word is the stored size in its
//! low 24 bits (0: a sparse block of zeros), bit 24 set when the block is stored uncompressed; the
//! blocks are stored one after the other from the blocks start. Checked: the block list fits
//! in what the rest of the inode table can hold, stored sizes are at most a block, a block
//! decompresses to exactly its length, every block lies within `bytes_used`.
//!
//! ## Directory listings (directory table)
//!
//! A listing is a run of headers, each followed by its entries:
//! header: count u32 (entries − 1, at most 255), inode table block u32, base inode number
//! u32; entry: inode offset u16, inode number delta i16, type u16, name size u16 (length −
//! 1, at most 255), name. An entry's inode reference is `header block << 16 | offset`.
//! Entries are sorted by name, which lets a lookup stop early. Checked: counts, name lengths
//! (names must not be empty, ".", ".." or contain '/' or NUL), that headers and entries fit
//! in the listing size, and listings of at most [`MAX_DIR_LISTING`] bytes.
//!
//! ## Fragment and id tables
//!
//! Fragment entries (start u64, size word u32 as for data blocks, unused u32) and ids (u32)
//! are stored in metadata blocks placed before their table start; the table start holds the
//! positions (u64) of those blocks. These small position lists are read once, when first
//! needed; single entries are then read through the metadata cache.
//!
//! # Decompression
//!
//! Every decompression writes into a buffer of the most the block may hold (8192 bytes for
//! metadata, the block size for data); more output is an error, not an allocation. gzip
//! (zlib streams) uses libdeflate (`libdeflater`) for whole blocks and `flate2` (zlib-rs)
//! where only a block's first bytes are wanted; xz and lzma use `lzma-rs`; zstd
//! uses `ruzstd`; lz4 (raw LZ4 blocks) uses `lz4_flex`. lzo is refused when the image is
//! opened. The xz decoder buffers a whole block before writing it out, so an xz stream's
//! LZMA2 chunk headers are walked first and their declared sizes must fit in the output
//! (filters other than LZMA2, such as the BCJ filters of `mksquashfs -Xbcj`, are reported
//! as unsupported); a zstd frame's header is checked first for a window of at most 8 MiB
//! (the decoder reserves the window up front) and a content size that fits. A panic inside
//! a decompressor is reported as corrupt data.
//!
//! # Caching
//!
//! Decompressed metadata blocks are cached by position (at most 1024 blocks, 8 MiB); the
//! last 8 data and fragment blocks that reads used only part of are cached; and the place
//! in the block list of the file read last is remembered, so that reads moving forward
//! through a file do not sum the list from its start. A read that covers whole data blocks
//! decompresses straight into the caller's buffer. A read that needs only the start of an
//! uncompressed or gzip block reads or inflates only that far (at least 4 KiB), and the
//! whole block when a later read needs more of it.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::cell::{Cell, OnceCell, RefCell};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use super::bytes::Cursor;

mod codec;
mod dir;
mod file;
mod inode;
mod meta;
mod superblock;
#[cfg(test)]
mod tests;

use codec::*;
use dir::*;
use file::*;
use meta::*;
use superblock::*;

/// "hsqs" read as a little-endian u32.
const MAGIC: u32 = 0x7371_7368;
/// "hsqs" read as a big-endian u32: a big-endian (pre-4.0) image.
const MAGIC_SWAPPED: u32 = 0x6873_7173;
/// Length of the superblock.
const SUPERBLOCK_BYTES: usize = 96;
const SUPERBLOCK_LEN: u64 = SUPERBLOCK_BYTES as u64;
/// Largest decompressed size of a metadata block.
const METADATA_SIZE: usize = 8192;
/// Offsets in the decompressed stream of a table, modulo a block (METADATA_SIZE is a power
/// of two).
const METADATA_OFFSET_MASK: u64 = METADATA_SIZE as u64 - 1;
/// Metadata block header bit: stored uncompressed.
const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Data block size word bit: stored uncompressed.
const DATA_UNCOMPRESSED: u32 = 1 << 24;
/// Data block size word: the stored size.
const DATA_SIZE_MASK: u32 = DATA_UNCOMPRESSED - 1;
/// Table start of an absent optional table.
const NO_TABLE: u64 = u64::MAX;
/// Fragment index of a file without a fragment.
const NO_FRAGMENT: u32 = u32::MAX;
/// Smallest and largest block size, as log2.
const MIN_BLOCK_LOG: u32 = 12;
const MAX_BLOCK_LOG: u32 = 20;
/// Superblock flag: compressor options follow the superblock.
const FLAG_COMPRESSOR_OPTIONS: u16 = 0x0400;
/// Most entries under one directory header.
const DIR_HEADER_MAX_ENTRIES: u32 = 256;
/// Longest file name.
const MAX_NAME_LEN: usize = 256;
/// Length of a directory header and of a directory entry before its name.
const DIR_HEADER_LEN: u64 = 12;
const DIR_ENTRY_LEN: u64 = 8;
/// Implicit size of "." and ".." in a directory's listing size.
const DIR_DOT_ENTRIES: u64 = 3;
/// Fragment entries and ids per metadata block.
const FRAGMENTS_PER_BLOCK: u32 = 512;
const FRAGMENT_ENTRY_LEN: u32 = 16;
const IDS_PER_BLOCK: u16 = 2048;
const ID_ENTRY_LEN: u16 = 4;
/// Metadata blocks kept decompressed.
const META_CACHE_BLOCKS: usize = 1024;
/// Data and fragment blocks kept decompressed.
const DATA_CACHE_BLOCKS: usize = 8;
/// The least of an uncompressed or gzip block read for a read that needs only its start.
const PREFIX_MIN: usize = 4 << 10;
/// Largest zstd window accepted (mksquashfs writes single-segment frames whose window is
/// the block's size; this leaves room for other writers without letting a frame header
/// claim the decoder's 100 MiB maximum).
const ZSTD_MAX_WINDOW: u64 = 8 << 20;
/// The smallest stored metadata block: a header and one byte.
const MIN_STORED_METADATA: u64 = 3;

/// Longest symlink target that [`SquashFs::read_link`] returns.
pub const MAX_SYMLINK_LEN: u32 = 4096;
/// Largest directory listing that [`SquashFs::read_dir`] and [`SquashFs::lookup`] read.
pub const MAX_DIR_LISTING: u64 = 64 << 20;

/// The compressor of an image's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Lzma,
    Lzo,
    Xz,
    Lz4,
    Zstd,
}

impl Compression {
    fn from_id(id: u16) -> Option<Compression> {
        Some(match id {
            1 => Compression::Gzip,
            2 => Compression::Lzma,
            3 => Compression::Lzo,
            4 => Compression::Xz,
            5 => Compression::Lz4,
            6 => Compression::Zstd,
            _ => return None,
        })
    }

    /// The name mksquashfs uses for it (`-comp NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

impl Kind {
    /// The kind of a basic (1..=7) or extended (8..=14) inode type.
    fn from_type(inode_type: u16) -> Option<Kind> {
        Some(match inode_type {
            1 | 8 => Kind::Dir,
            2 | 9 => Kind::File,
            3 | 10 => Kind::Symlink,
            4 | 11 => Kind::BlockDevice,
            5 | 12 => Kind::CharDevice,
            6 | 13 => Kind::Fifo,
            7 | 14 => Kind::Socket,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "regular file",
            Kind::Symlink => "symlink",
            Kind::BlockDevice => "block device",
            Kind::CharDevice => "character device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An inode read from the image.
#[derive(Debug, Clone)]
pub struct Inode {
    pub kind: Kind,
    /// Permission bits (including set-id and sticky bits).
    pub mode: u16,
    /// A file's size; a symlink's target length; a directory's listing size as stored (it
    /// counts 3 bytes for "." and "..", as `stat` on a mounted image shows); 0 otherwise.
    pub size: u64,
    /// The inode number.
    pub number: u32,
    /// The link count.
    pub nlink: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    uid_index: u16,
    gid_index: u16,
    /// Where the inode is (its inode reference).
    reference: u64,
    detail: Detail,
}

impl Inode {
    /// Where the inode is in the image (its inode reference): two entries that lead to the
    /// same inode share it, whatever numbers a crafted image gives them.
    pub fn reference(&self) -> u64 {
        self.reference
    }

    /// A device's (major, minor) numbers; None for other kinds.
    pub fn device(&self) -> Option<(u32, u32)> {
        match self.detail {
            Detail::Device(rdev) => Some((
                (rdev >> 8) & 0xfff,
                (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
            )),
            _ => None,
        }
    }
}

/// What is needed to read an inode's content.
#[derive(Debug, Clone)]
enum Detail {
    Dir(DirLoc),
    File(FileLoc),
    /// Where the target starts.
    Symlink(MetaPos),
    /// The encoded device number.
    Device(u32),
    Ipc,
}

/// Where a directory's listing is.
#[derive(Debug, Clone)]
struct DirLoc {
    /// The listing's first metadata block (absolute) and offset in it.
    start: MetaPos,
    /// The listing's length in bytes (without the 3 for "." and "..").
    len: u64,
    /// Where the directory index starts, and its entry count (extended directories).
    index: Option<(MetaPos, u16)>,
}

/// Where a regular file's blocks are.
#[derive(Debug, Clone)]
struct FileLoc {
    blocks_start: u64,
    block_count: u64,
    /// Where the block size list starts in the inode table.
    list: MetaPos,
    fragment: u32,
    fragment_offset: u32,
}

/// A directory entry (without "." and "..").
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub kind: Kind,
    /// The inode number (entries that are hard links to one inode share it).
    pub number: u32,
    reference: u64,
}

/// An error reading an image; its message names the image and what was being read.
#[derive(Debug, thiserror::Error)]
pub enum SquashError {
    #[error("{image}: squashfs: {what}: {source}")]
    Io {
        image: String,
        what: String,
        source: io::Error,
    },
    /// Bad structure, a value out of range, or data that does not decompress.
    #[error("{image}: squashfs: {what}: {problem}")]
    Corrupt {
        image: String,
        what: String,
        problem: String,
    },
    /// A valid image this reader cannot read (compressor, version, filter).
    #[error("{image}: squashfs: {what}: unsupported: {problem}")]
    Unsupported {
        image: String,
        what: String,
        problem: String,
    },
    /// The call needs another kind of inode (a directory to look up in, a file to read).
    #[error("{image}: squashfs: {what}: it is a {actual}, not a {expected}")]
    WrongKind {
        image: String,
        what: String,
        actual: Kind,
        expected: Kind,
    },
    /// A file larger than the caller's limit.
    #[error("{image}: squashfs: {what}: the file is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        image: String,
        what: String,
        size: u64,
        limit: u64,
    },
}

/// A problem found below the public calls, before their context is added.
#[derive(Debug)]
enum Fault {
    Io { what: String, source: io::Error },
    Corrupt(String),
    Unsupported(String),
}

impl Fault {
    /// Prefixes the problem with where it was found.
    #[cold]
    fn at(self, place: impl FnOnce() -> String) -> Fault {
        match self {
            Fault::Io { what, source } => Fault::Io {
                what: format!("{}: {what}", place()),
                source,
            },
            Fault::Corrupt(problem) => Fault::Corrupt(format!("{}: {problem}", place())),
            Fault::Unsupported(problem) => Fault::Unsupported(format!("{}: {problem}", place())),
        }
    }
}

#[cold]
fn corrupt(problem: impl Into<String>) -> Fault {
    Fault::Corrupt(problem.into())
}

/// `Option` to `Fault::Corrupt`, building the message only when needed.
trait OrCorrupt<T> {
    fn or_corrupt(self, problem: impl FnOnce() -> String) -> Result<T, Fault>;
}

impl<T> OrCorrupt<T> for Option<T> {
    fn or_corrupt(self, problem: impl FnOnce() -> String) -> Result<T, Fault> {
        match self {
            Some(v) => Ok(v),
            None => Err(corrupt(problem())),
        }
    }
}

/// A squashfs 4.0 filesystem inside a file, read in place.
pub struct SquashFs {
    file: File,
    /// Where the filesystem starts in `file`.
    offset: u64,
    name: String,
    sb: Superblock,
    meta_cache: RefCell<HashMap<u64, Rc<MetaBlock>>>,
    /// Most recently used last.
    data_cache: RefCell<Vec<CachedBlock>>,
    fragment_blocks: OnceCell<Vec<u64>>,
    id_blocks: OnceCell<Vec<u64>>,
    walker: Cell<Option<BlockWalker>>,
    codec: RefCell<Codec>,
    /// Stored bytes of the data block being decompressed.
    scratch: RefCell<Vec<u8>>,
}

impl fmt::Debug for SquashFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SquashFs")
            .field("name", &self.name)
            .field("offset", &self.offset)
            .field("compression", &self.sb.compression)
            .field("block_size", &self.sb.block_size)
            .field("bytes_used", &self.sb.bytes_used)
            .finish_non_exhaustive()
    }
}

impl SquashFs {
    /// Opens the filesystem that `file` holds at `offset`, `len` bytes long (the SIF
    /// partition); `name` is how errors name the image. Reads and checks the superblock and
    /// the compressor options.
    ///
    /// # Errors
    /// The partition extends past the end of the file; not squashfs; a version other than
    /// 4.0 or an unsupported compressor (`Unsupported`); a superblock that fails its checks
    /// (`Corrupt`); I/O errors.
    pub fn open(file: File, offset: u64, len: u64, name: &str) -> Result<SquashFs, SquashError> {
        let fail = |fault: Fault, what: &str| make_error(name, fault, what.to_owned());
        let file_len = file
            .metadata()
            .map(|m| m.len())
            .map_err(|source| SquashError::Io {
                image: name.to_owned(),
                what: "reading the image file's size".to_owned(),
                source,
            })?;
        if offset.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(fail(
                corrupt(format!(
                    "the partition (offset {offset}, {len} bytes) extends past the end of the \
                     {file_len}-byte file"
                )),
                "partition",
            ));
        }
        if len < SUPERBLOCK_LEN {
            return Err(fail(
                corrupt(format!(
                    "the partition is {len} bytes, smaller than a superblock ({SUPERBLOCK_LEN})"
                )),
                "superblock",
            ));
        }
        let mut raw = [0u8; SUPERBLOCK_BYTES];
        read_at_exact(&file, offset, &mut raw, || "the superblock".to_owned())
            .map_err(|f| fail(f, "superblock"))?;
        let sb = Superblock::parse(&raw, len).map_err(|f| fail(f, "superblock"))?;
        log::debug!(
            "{name}: squashfs: {} compression, {}-byte blocks, {} bytes used, {} inodes",
            sb.compression,
            sb.block_size,
            sb.bytes_used,
            sb.inode_count
        );
        let fs = SquashFs {
            file,
            offset,
            name: name.to_owned(),
            codec: RefCell::new(Codec::new(sb.compression)),
            sb,
            meta_cache: RefCell::new(HashMap::new()),
            data_cache: RefCell::new(Vec::new()),
            fragment_blocks: OnceCell::new(),
            id_blocks: OnceCell::new(),
            walker: Cell::new(None),
            scratch: RefCell::new(Vec::new()),
        };
        if fs.sb.flags & FLAG_COMPRESSOR_OPTIONS != 0 {
            fs.check_compressor_options()
                .map_err(|f| fail(f, "compressor options"))?;
        }
        Ok(fs)
    }

    /// The compressor of the image's blocks.
    pub fn compression(&self) -> Compression {
        self.sb.compression
    }

    /// The data block size.
    pub fn block_size(&self) -> u32 {
        self.sb.block_size
    }

    /// The filesystem's size in bytes (without padding).
    pub fn bytes_used(&self) -> u64 {
        self.sb.bytes_used
    }

    /// The number of inodes the superblock declares.
    pub fn inode_count(&self) -> u32 {
        self.sb.inode_count
    }

    /// How errors name the image.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root directory's inode.
    ///
    /// # Errors
    /// The root inode cannot be read or is not a directory.
    pub fn root(&self) -> Result<Inode, SquashError> {
        let what = || "reading the root inode".to_owned();
        let inode = self
            .read_inode(self.sb.root_inode)
            .map_err(|f| self.error(f, what()))?;
        if inode.kind != Kind::Dir {
            return Err(self.error(corrupt(format!("it is a {}", inode.kind)), what()));
        }
        Ok(inode)
    }

    /// The inode a directory entry names.
    ///
    /// # Errors
    /// The inode cannot be read, or is not of the kind the entry says.
    pub fn inode_of(&self, entry: &DirEntry) -> Result<Inode, SquashError> {
        self.entry_inode(entry.reference, entry.kind).map_err(|f| {
            self.error(
                f,
                format!(
                    "reading the inode of entry \"{}\"",
                    entry.name.escape_ascii()
                ),
            )
        })
    }

    /// Looks up one name in a directory (not a path: no '/' handling, no symlink
    /// following). Names that no entry can have (empty, ".", "..", containing '/' or NUL)
    /// are never found.
    ///
    /// # Errors
    /// `dir` is not a directory (`WrongKind`); its listing or the entry's inode cannot be
    /// read.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<Inode>, SquashError> {
        let what = || {
            format!(
                "looking up \"{}\" in directory inode {}",
                name.escape_ascii(),
                dir.number
            )
        };
        let loc = self.dir_loc(dir, what)?;
        if !valid_name(name) {
            return Ok(None);
        }
        let found = self
            .find(loc, name)
            .and_then(|found| {
                found
                    .map(|(reference, kind)| self.entry_inode(reference, kind))
                    .transpose()
            })
            .map_err(|f| self.error(f, what()))?;
        Ok(found)
    }

    /// A directory's entries, without "." and "..", in the image's (sorted) order.
    ///
    /// # Errors
    /// `dir` is not a directory (`WrongKind`); its listing cannot be read.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>, SquashError> {
        let what = || format!("listing directory inode {}", dir.number);
        let loc = self.dir_loc(dir, what)?;
        let mut entries = Vec::new();
        self.scan_dir(loc.start, loc.len, |e| {
            entries.push(DirEntry {
                name: e.name.to_vec(),
                kind: e.kind,
                number: e.number,
                reference: e.reference,
            });
            ControlFlow::Continue(())
        })
        .map_err(|f| self.error(f, what()))?;
        Ok(entries)
    }

    /// A symlink's target bytes (at most [`MAX_SYMLINK_LEN`]).
    ///
    /// # Errors
    /// `link` is not a symlink (`WrongKind`); the target is too long or cannot be read.
    pub fn read_link(&self, link: &Inode) -> Result<Vec<u8>, SquashError> {
        let what = || format!("reading symlink inode {}", link.number);
        let Detail::Symlink(pos) = link.detail else {
            return Err(self.wrong_kind(link, Kind::Symlink, what()));
        };
        if link.size > u64::from(MAX_SYMLINK_LEN) {
            return Err(self.error(
                corrupt(format!(
                    "the target is {} bytes, more than {MAX_SYMLINK_LEN}",
                    link.size
                )),
                what(),
            ));
        }
        let mut target = vec![0u8; usize::try_from(link.size).unwrap_or(0)];
        MetaReader::new(self, self.inode_region(), pos)
            .and_then(|mut r| r.read(&mut target))
            .map_err(|f| self.error(f.at(|| "the target".to_owned()), what()))?;
        Ok(target)
    }

    /// Reads from a regular file at `offset` into `buf`, like pread: returns the bytes read,
    /// short only at the end of the file and 0 at or after it. Sparse blocks read as zeros.
    ///
    /// # Errors
    /// `file` is not a regular file (`WrongKind`); a block or fragment cannot be read or
    /// does not decompress to its length.
    pub fn read_at(&self, file: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize, SquashError> {
        let Detail::File(loc) = &file.detail else {
            return Err(self.wrong_kind(
                file,
                Kind::File,
                format!("reading inode {} at offset {offset}", file.number),
            ));
        };
        self.read_file(file, loc, offset, buf).map_err(|f| {
            self.error(
                f,
                format!("reading file inode {} at offset {offset}", file.number),
            )
        })
    }

    /// A whole regular file, refusing files larger than `limit` bytes.
    ///
    /// # Errors
    /// As [`SquashFs::read_at`]; `TooLarge` when the file is larger than `limit`.
    pub fn read_all(&self, file: &Inode, limit: u64) -> Result<Vec<u8>, SquashError> {
        let what = || format!("reading file inode {}", file.number);
        let Detail::File(loc) = &file.detail else {
            return Err(self.wrong_kind(file, Kind::File, what()));
        };
        if file.size > limit {
            return Err(SquashError::TooLarge {
                image: self.name.clone(),
                what: what(),
                size: file.size,
                limit,
            });
        }
        let len = usize::try_from(file.size).map_err(|_| {
            self.error(
                corrupt(format!("{} bytes do not fit in memory", file.size)),
                what(),
            )
        })?;
        let mut data = vec![0u8; len];
        let n = self
            .read_file(file, loc, 0, &mut data)
            .map_err(|f| self.error(f, what()))?;
        data.truncate(n);
        Ok(data)
    }

    /// An inode's owner (uid, gid), from the id table (read when first needed).
    ///
    /// # Errors
    /// The id table or the inode's entries in it cannot be read.
    pub fn owner(&self, inode: &Inode) -> Result<(u32, u32), SquashError> {
        let what = || format!("reading the owner of inode {}", inode.number);
        let uid = self
            .id(inode.uid_index)
            .map_err(|f| self.error(f, what()))?;
        let gid = self
            .id(inode.gid_index)
            .map_err(|f| self.error(f, what()))?;
        Ok((uid, gid))
    }

    #[cold]
    fn error(&self, fault: Fault, what: String) -> SquashError {
        make_error(&self.name, fault, what)
    }

    #[cold]
    fn wrong_kind(&self, inode: &Inode, expected: Kind, what: String) -> SquashError {
        SquashError::WrongKind {
            image: self.name.clone(),
            what,
            actual: inode.kind,
            expected,
        }
    }

    fn inode_region(&self) -> Region {
        Region {
            start: self.sb.inode_table,
            end: self.sb.directory_table,
            name: "inode table",
        }
    }

    fn dir_region(&self) -> Region {
        Region {
            start: self.sb.directory_table,
            end: self.sb.directory_end,
            name: "directory table",
        }
    }

    /// Reads `buf.len()` bytes at filesystem position `pos`.
    fn pread(&self, pos: u64, buf: &mut [u8], what: impl Fn() -> String) -> Result<(), Fault> {
        let at = self
            .offset
            .checked_add(pos)
            .or_corrupt(|| format!("{}: position {pos} overflows", what()))?;
        read_at_exact(&self.file, at, buf, what)
    }
}

/// Reads exactly `buf.len()` bytes at `at`; a short file is corrupt (truncated), not I/O.
fn read_at_exact(
    file: &File,
    at: u64,
    buf: &mut [u8],
    what: impl Fn() -> String,
) -> Result<(), Fault> {
    match file.read_exact_at(buf, at) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(corrupt(format!(
            "{}: the image file ends before byte {}",
            what(),
            at.saturating_add(buf.len() as u64)
        ))),
        Err(source) => Err(Fault::Io {
            what: format!("reading {}", what()),
            source,
        }),
    }
}

#[cold]
fn make_error(image: &str, fault: Fault, what: String) -> SquashError {
    let image = image.to_owned();
    match fault {
        Fault::Io {
            what: inner,
            source,
        } => SquashError::Io {
            image,
            what: format!("{what}: {inner}"),
            source,
        },
        Fault::Corrupt(problem) => SquashError::Corrupt {
            image,
            what,
            problem,
        },
        Fault::Unsupported(problem) => SquashError::Unsupported {
            image,
            what,
            problem,
        },
    }
}
