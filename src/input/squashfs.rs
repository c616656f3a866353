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

/// The superblock's fields that are used.
#[derive(Debug, Clone)]
struct Superblock {
    inode_count: u32,
    block_size: u32,
    block_log: u32,
    fragment_count: u32,
    compression: Compression,
    flags: u16,
    id_count: u16,
    root_inode: u64,
    bytes_used: u64,
    id_table: u64,
    inode_table: u64,
    directory_table: u64,
    fragment_table: u64,
    /// End of the directory table: the next table's start, or `bytes_used`.
    directory_end: u64,
}

impl Superblock {
    /// Parses and checks the 96 superblock bytes of a partition of `len` bytes.
    fn parse(raw: &[u8; SUPERBLOCK_BYTES], len: u64) -> Result<Superblock, Fault> {
        let mut b = Cursor::new(raw);
        let short = || "short superblock".to_owned();
        let magic = b.u32().or_corrupt(short)?;
        let inode_count = b.u32().or_corrupt(short)?;
        let _mtime = b.u32().or_corrupt(short)?;
        let block_size = b.u32().or_corrupt(short)?;
        let fragment_count = b.u32().or_corrupt(short)?;
        let compression_id = b.u16().or_corrupt(short)?;
        let block_log = b.u16().or_corrupt(short)?;
        let flags = b.u16().or_corrupt(short)?;
        let id_count = b.u16().or_corrupt(short)?;
        let major = b.u16().or_corrupt(short)?;
        let minor = b.u16().or_corrupt(short)?;
        let root_inode = b.u64().or_corrupt(short)?;
        let bytes_used = b.u64().or_corrupt(short)?;
        let id_table = b.u64().or_corrupt(short)?;
        let xattr_table = b.u64().or_corrupt(short)?;
        let inode_table = b.u64().or_corrupt(short)?;
        let directory_table = b.u64().or_corrupt(short)?;
        let fragment_table = b.u64().or_corrupt(short)?;
        let export_table = b.u64().or_corrupt(short)?;

        if magic == MAGIC_SWAPPED {
            return Err(Fault::Unsupported(
                "big-endian squashfs (written by squashfs-tools before 4.0)".to_owned(),
            ));
        }
        if magic != MAGIC {
            return Err(corrupt(format!(
                "not a squashfs filesystem (magic 0x{magic:08x}, expected 0x{MAGIC:08x} \"hsqs\")"
            )));
        }
        if (major, minor) != (4, 0) {
            return Err(Fault::Unsupported(format!(
                "version {major}.{minor} (this reader knows 4.0)"
            )));
        }
        let compression = Compression::from_id(compression_id)
            .ok_or_else(|| Fault::Unsupported(format!("unknown compressor id {compression_id}")))?;
        if compression == Compression::Lzo {
            return Err(Fault::Unsupported("lzo compression".to_owned()));
        }
        let block_log = u32::from(block_log);
        if !block_size.is_power_of_two()
            || !(MIN_BLOCK_LOG..=MAX_BLOCK_LOG).contains(&block_size.trailing_zeros())
            || block_size.trailing_zeros() != block_log
        {
            return Err(corrupt(format!(
                "bad block size {block_size} (log {block_log}): expected a power of two from \
                 4096 to 1048576 matching its log"
            )));
        }
        if bytes_used < SUPERBLOCK_LEN || bytes_used > len {
            return Err(corrupt(format!(
                "bytes used ({bytes_used}) is outside {SUPERBLOCK_LEN}..={len}, the partition's \
                 size (truncated image?)"
            )));
        }
        if inode_table < SUPERBLOCK_LEN
            || inode_table >= directory_table
            || directory_table >= bytes_used
        {
            return Err(corrupt(format!(
                "inode table ({inode_table}) and directory table ({directory_table}) are not in \
                 order within the {bytes_used} bytes used"
            )));
        }
        for (name, start) in [
            ("id table", id_table),
            ("xattr id table", xattr_table),
            ("fragment table", fragment_table),
            ("export table", export_table),
        ] {
            if start != NO_TABLE && (start < SUPERBLOCK_LEN || start >= bytes_used) {
                return Err(corrupt(format!(
                    "{name} start {start} is outside the {bytes_used} bytes used"
                )));
            }
        }
        if fragment_count > 0 && fragment_table == NO_TABLE {
            return Err(corrupt(format!(
                "{fragment_count} fragments but no fragment table"
            )));
        }
        let root_block = root_inode >> 16;
        let inode_table_len = directory_table.saturating_sub(inode_table);
        if root_inode >> 48 != 0 || root_block >= inode_table_len {
            return Err(corrupt(format!(
                "root inode reference 0x{root_inode:x} is outside the inode table"
            )));
        }
        let directory_end = [fragment_table, export_table, id_table, xattr_table]
            .into_iter()
            .filter(|&start| start != NO_TABLE && start > directory_table)
            .min()
            .unwrap_or(bytes_used)
            .min(bytes_used);
        Ok(Superblock {
            inode_count,
            block_size,
            block_log,
            fragment_count,
            compression,
            flags,
            id_count,
            root_inode,
            bytes_used,
            id_table,
            inode_table,
            directory_table,
            fragment_table,
            directory_end,
        })
    }
}

/// A position in a metadata table: a block's start (absolute) and an offset into its
/// decompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MetaPos {
    block: u64,
    offset: u16,
}

/// The span of the image where one table's metadata blocks may lie.
#[derive(Debug, Clone, Copy)]
struct Region {
    start: u64,
    end: u64,
    name: &'static str,
}

/// A decompressed metadata block.
#[derive(Debug)]
struct MetaBlock {
    data: Box<[u8]>,
    /// Where the next block starts.
    next: u64,
}

/// Sequential reads from a metadata table, crossing block boundaries.
struct MetaReader<'a> {
    fs: &'a SquashFs,
    region: Region,
    block_pos: u64,
    block: Rc<MetaBlock>,
    offset: usize,
}

impl<'a> MetaReader<'a> {
    fn new(fs: &'a SquashFs, region: Region, pos: MetaPos) -> Result<MetaReader<'a>, Fault> {
        let block = fs.meta_block(pos.block, region)?;
        let offset = usize::from(pos.offset);
        if offset > block.data.len() {
            return Err(corrupt(format!(
                "offset {offset} is past the end of the {}-byte metadata block at byte {} of the \
                 {}",
                block.data.len(),
                pos.block,
                region.name
            )));
        }
        Ok(MetaReader {
            fs,
            region,
            block_pos: pos.block,
            block,
            offset,
        })
    }

    /// The current position.
    fn pos(&self) -> MetaPos {
        MetaPos {
            block: self.block_pos,
            // At most METADATA_SIZE, which fits.
            offset: u16::try_from(self.offset).unwrap_or(u16::MAX),
        }
    }

    /// Fills `out`, moving on to following blocks as needed.
    fn read(&mut self, out: &mut [u8]) -> Result<(), Fault> {
        let mut out = out;
        loop {
            let available = self.block.data.get(self.offset..).unwrap_or_default();
            let n = available.len().min(out.len());
            let (head, rest) = out.split_at_mut(n);
            head.copy_from_slice(available.get(..n).unwrap_or_default());
            self.offset = self.offset.saturating_add(n);
            out = rest;
            if out.is_empty() {
                return Ok(());
            }
            self.block_pos = self.block.next;
            self.block = self.fs.meta_block(self.block_pos, self.region)?;
            self.offset = 0;
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let mut out = [0u8; N];
        self.read(&mut out)?;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, Fault> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, Fault> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Fault> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Where the file read last stands in its block list, so that the next read from the same
/// file can continue rather than sum the list from its start.
#[derive(Debug, Clone, Copy)]
struct BlockWalker {
    /// The file's inode reference.
    inode: u64,
    /// The index of the block the walker stands at.
    index: u64,
    /// That block's position.
    disk: u64,
    /// That block's entry in the list.
    list: MetaPos,
}

/// One entry of a directory listing, as scanned.
struct RawEntry<'n> {
    name: &'n [u8],
    kind: Kind,
    reference: u64,
    number: u32,
}

/// A decompressed data or fragment block in the cache.
struct CachedBlock {
    pos: u64,
    word: u32,
    data: Rc<[u8]>,
    /// False when `data` is only the block's first bytes.
    complete: bool,
}

/// The decompressor for an image, with state kept between blocks.
struct Codec {
    compression: Compression,
    inflate: Option<flate2::Decompress>,
    deflate: Option<libdeflater::Decompressor>,
    zstd: Option<ruzstd::decoding::FrameDecoder>,
}

impl Codec {
    fn new(compression: Compression) -> Codec {
        Codec {
            compression,
            inflate: None,
            deflate: None,
            zstd: None,
        }
    }

    /// Decompresses `input` into `out`, refusing output longer than `out`; returns the
    /// decompressed length.
    fn decompress(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, Fault> {
        let cap = out.len();
        match self.compression {
            Compression::Gzip => {
                let deflate = self
                    .deflate
                    .get_or_insert_with(libdeflater::Decompressor::new);
                deflate.zlib_decompress(input, out).map_err(|e| match e {
                    libdeflater::DecompressionError::InsufficientSpace => too_long(cap),
                    libdeflater::DecompressionError::BadData => {
                        corrupt("gzip data does not decompress".to_string())
                    }
                })
            }
            Compression::Xz => {
                xz_precheck(input, cap)?;
                let mut writer = SliceWriter { out, len: 0 };
                lzma_rs::xz_decompress(&mut &*input, &mut writer)
                    .map_err(|e| corrupt(format!("xz data does not decompress: {e}")))?;
                Ok(writer.len)
            }
            Compression::Lzma => {
                let options = lzma_rs::decompress::Options {
                    unpacked_size: lzma_rs::decompress::UnpackedSize::ReadFromHeader,
                    memlimit: Some(cap),
                    allow_incomplete: false,
                };
                let mut writer = SliceWriter { out, len: 0 };
                lzma_rs::lzma_decompress_with_options(&mut &*input, &mut writer, &options)
                    .map_err(|e| corrupt(format!("lzma data does not decompress: {e}")))?;
                Ok(writer.len)
            }
            Compression::Lz4 => lz4_flex::block::decompress_into(input, out).map_err(|e| match e {
                lz4_flex::block::DecompressError::OutputTooSmall { .. } => too_long(cap),
                e => corrupt(format!("lz4 data does not decompress: {e}")),
            }),
            Compression::Zstd => {
                zstd_precheck(input, cap)?;
                let decoder = self
                    .zstd
                    .get_or_insert_with(ruzstd::decoding::FrameDecoder::new);
                decoder.decode_all(input, out).map_err(|e| match e {
                    ruzstd::decoding::errors::FrameDecoderError::TargetTooSmall => too_long(cap),
                    e => corrupt(format!("zstd data does not decompress: {e}")),
                })
            }
            Compression::Lzo => Err(Fault::Unsupported("lzo compression".to_owned())),
        }
    }
}

impl Codec {
    /// Decompresses a gzip stream until `out` is full or the stream ends, whichever comes
    /// first; returns the length produced and whether the stream ended.
    fn inflate_prefix(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, bool), Fault> {
        let inflate = self
            .inflate
            .get_or_insert_with(|| flate2::Decompress::new(true));
        inflate.reset(true);
        let status = inflate
            .decompress(input, out, flate2::FlushDecompress::None)
            .map_err(|e| corrupt(format!("gzip data does not decompress: {e}")))?;
        let n = usize::try_from(inflate.total_out()).unwrap_or(usize::MAX);
        match status {
            flate2::Status::StreamEnd => Ok((n, true)),
            _ if n >= out.len() => Ok((n, false)),
            _ => Err(corrupt("gzip data ends inside its stream")),
        }
    }
}

#[cold]
fn too_long(cap: usize) -> Fault {
    corrupt(format!("the block decompresses to more than {cap} bytes"))
}

/// A `Write` into a fixed slice that fails rather than grow.
struct SliceWriter<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let cap = self.out.len();
        let too_long = || io::Error::other(format!("decompresses to more than {cap} bytes"));
        let end = self
            .len
            .checked_add(data.len())
            .filter(|&end| end <= cap)
            .ok_or_else(too_long)?;
        self.out
            .get_mut(self.len..end)
            .ok_or_else(too_long)?
            .copy_from_slice(data);
        self.len = end;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Walks an xz stream's block headers and LZMA2 chunk headers without decoding, refusing
/// filters other than LZMA2 and streams whose chunks declare more than `cap` bytes of
/// output (the decoder buffers a whole block before writing it out, so its output must be
/// bounded before it runs).
fn xz_precheck(input: &[u8], cap: usize) -> Result<(), Fault> {
    let bad = |what: &str| corrupt(format!("xz data is malformed: {what}"));
    let mut b = Cursor::new(input);
    if b.take(6) != Some(b"\xfd7zXZ\x00".as_slice()) {
        return Err(bad("no stream header magic"));
    }
    let flags = b.array::<2>().ok_or_else(|| bad("short stream header"))?;
    let check_len: u64 = match flags[1] & 0x0f {
        0 => 0,
        1..=3 => 4,
        4..=6 => 8,
        7..=9 => 16,
        10..=12 => 32,
        _ => 64,
    };
    b.skip(4).ok_or_else(|| bad("short stream header"))?;
    let cap = cap as u64;
    let mut total = 0u64;
    loop {
        let block_start = b.position();
        let size_byte = b.u8().ok_or_else(|| bad("no block or index"))?;
        if size_byte == 0 {
            // The index: the decoder checks it and the stream footer.
            return Ok(());
        }
        let header_len = usize::from(size_byte).saturating_add(1).saturating_mul(4);
        let header = input
            .get(block_start..block_start.saturating_add(header_len))
            .ok_or_else(|| bad("short block header"))?;
        let mut h = Cursor::new(
            header
                .get(1..header_len.saturating_sub(4))
                .unwrap_or_default(),
        );
        let block_flags = h.u8().ok_or_else(|| bad("short block header"))?;
        if block_flags & 0x40 != 0 {
            h.varint().ok_or_else(|| bad("bad compressed size"))?;
        }
        if block_flags & 0x80 != 0 {
            h.varint().ok_or_else(|| bad("bad uncompressed size"))?;
        }
        for _ in 0..=(block_flags & 0x03) {
            let id = h.varint().ok_or_else(|| bad("bad filter id"))?;
            let props = h.varint().ok_or_else(|| bad("bad filter properties"))?;
            h.skip(props).ok_or_else(|| bad("bad filter properties"))?;
            if id != 0x21 {
                let name = match id {
                    0x03 => "delta",
                    0x04 => "BCJ x86",
                    0x05 => "BCJ PowerPC",
                    0x06 => "BCJ IA-64",
                    0x07 => "BCJ ARM",
                    0x08 => "BCJ ARM-Thumb",
                    0x09 => "BCJ SPARC",
                    0x0a => "BCJ ARM64",
                    _ => "unknown",
                };
                return Err(Fault::Unsupported(format!(
                    "xz filter 0x{id:x} ({name}); only LZMA2 is supported"
                )));
            }
        }
        b.skip(header_len.saturating_sub(1) as u64)
            .ok_or_else(|| bad("short block header"))?;
        loop {
            let ends_early = || bad("LZMA2 data ends early");
            let control = b.u8().ok_or_else(ends_early)?;
            let (unpacked, stored) = match control {
                0 => break,
                1 | 2 => {
                    let n = u64::from(b.u16_be().ok_or_else(ends_early)?).saturating_add(1);
                    (n, n)
                }
                3..=0x7f => return Err(bad("invalid LZMA2 chunk")),
                _ => {
                    let low = b.u16_be().ok_or_else(ends_early)?;
                    let unpacked =
                        (u64::from(control & 0x1f) << 16 | u64::from(low)).saturating_add(1);
                    let packed = u64::from(b.u16_be().ok_or_else(ends_early)?).saturating_add(1);
                    // Chunks that reset the properties carry one more byte.
                    (unpacked, packed.saturating_add(u64::from(control >= 0xc0)))
                }
            };
            total = total.saturating_add(unpacked);
            if total > cap {
                return Err(too_long(usize::try_from(cap).unwrap_or(usize::MAX)));
            }
            b.skip(stored).ok_or_else(ends_early)?;
        }
        let padding = b.position().wrapping_sub(block_start).wrapping_neg() & 3;
        b.skip((padding as u64).saturating_add(check_len))
            .ok_or_else(|| bad("block ends early"))?;
    }
}

/// Walks zstd frame headers and block headers without decoding, refusing windows larger
/// than [`ZSTD_MAX_WINDOW`] (the decoder reserves the window up front) and frames that
/// declare more than `cap` bytes.
fn zstd_precheck(input: &[u8], cap: usize) -> Result<(), Fault> {
    let bad = |what: &str| corrupt(format!("zstd data is malformed: {what}"));
    let mut b = Cursor::new(input);
    while !b.is_empty() {
        let magic = b.u32().ok_or_else(|| bad("short frame header"))?;
        if (0x184d_2a50..=0x184d_2a5f).contains(&magic) {
            let len = b.u32().ok_or_else(|| bad("short skippable frame"))?;
            b.skip(u64::from(len))
                .ok_or_else(|| bad("short skippable frame"))?;
            continue;
        }
        if magic != 0xfd2f_b528 {
            return Err(bad("no frame magic"));
        }
        let descriptor = b.u8().ok_or_else(|| bad("short frame header"))?;
        if descriptor & 0x08 != 0 {
            return Err(bad("reserved frame header bit set"));
        }
        let single_segment = descriptor & 0x20 != 0;
        let mut window = 0u64;
        if !single_segment {
            let w = b.u8().ok_or_else(|| bad("short frame header"))?;
            let base = 1u64 << (10 + u32::from(w >> 3));
            window = base.saturating_add((base >> 3).saturating_mul(u64::from(w & 0x07)));
        }
        let dict_len = [0, 1, 2, 4]
            .get(usize::from(descriptor & 0x03))
            .copied()
            .unwrap_or(0);
        b.skip(dict_len).ok_or_else(|| bad("short frame header"))?;
        let content_len_size = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        if content_len_size > 0 {
            let mut content = b
                .uint(content_len_size)
                .ok_or_else(|| bad("short frame header"))?;
            if content_len_size == 2 {
                content = content.saturating_add(256);
            }
            if content > cap as u64 {
                return Err(too_long(cap));
            }
            if single_segment {
                window = content;
            }
        }
        if window > ZSTD_MAX_WINDOW {
            return Err(bad(&format!(
                "window of {window} bytes, more than the {ZSTD_MAX_WINDOW} accepted"
            )));
        }
        loop {
            let header = b.uint(3).ok_or_else(|| bad("block ends early"))?;
            let size = header >> 3;
            let skip = match (header >> 1) & 0x03 {
                0 | 2 => size,
                1 => 1,
                _ => return Err(bad("reserved block type")),
            };
            b.skip(skip).ok_or_else(|| bad("block ends early"))?;
            if header & 1 != 0 {
                break;
            }
        }
        if descriptor & 0x04 != 0 {
            b.skip(4)
                .ok_or_else(|| bad("frame ends inside its checksum"))?;
        }
    }
    Ok(())
}

/// Whether `name` can be a directory entry's name.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.iter().any(|&c| c == b'/' || c == 0)
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

    /// Decompresses with the image's compressor into `out` (at most `out.len()` bytes).
    fn decompress(&self, input: &[u8], out: &mut [u8]) -> Result<usize, Fault> {
        self.with_codec(|codec| codec.decompress(input, out))
    }

    /// Runs `f` on the decompressor. The decompressors are third-party code fed untrusted
    /// bytes: a panic in one of them is reported as corrupt data rather than unwinding
    /// through the caller.
    fn with_codec<T>(&self, f: impl FnOnce(&mut Codec) -> Result<T, Fault>) -> Result<T, Fault> {
        let mut codec = self.codec.borrow_mut();
        match panic::catch_unwind(AssertUnwindSafe(|| f(&mut codec))) {
            Ok(result) => result,
            Err(_) => {
                *codec = Codec::new(self.sb.compression);
                Err(corrupt(format!(
                    "the {} decompressor failed on malformed data",
                    self.sb.compression
                )))
            }
        }
    }

    /// The decompressed metadata block at `pos`, which must lie in `region`.
    fn meta_block(&self, pos: u64, region: Region) -> Result<Rc<MetaBlock>, Fault> {
        let outside = || {
            corrupt(format!(
                "metadata block at byte {pos} is outside the {} (bytes {}..{})",
                region.name, region.start, region.end
            ))
        };
        if pos < region.start || pos >= region.end {
            return Err(outside());
        }
        if let Some(block) = self.meta_cache.borrow().get(&pos) {
            return if block.next <= region.end {
                Ok(Rc::clone(block))
            } else {
                Err(outside())
            };
        }
        let place = || format!("metadata block at byte {pos} of the {}", region.name);
        let available = region.end.saturating_sub(pos);
        let want = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(METADATA_SIZE.saturating_add(2));
        let mut raw = [0u8; METADATA_SIZE + 2];
        let raw = raw.get_mut(..want).unwrap_or_default();
        self.pread(pos, raw, place)?;
        let (header, rest) = raw
            .split_first_chunk::<2>()
            .or_corrupt(|| format!("{}: no room for its header", place()))?;
        let header = u16::from_le_bytes(*header);
        let stored = usize::from(header & !METADATA_UNCOMPRESSED);
        if stored == 0 || stored > METADATA_SIZE {
            return Err(corrupt(format!(
                "{}: stored size {stored} is outside 1..={METADATA_SIZE}",
                place()
            )));
        }
        let payload = rest.get(..stored).or_corrupt(|| {
            format!(
                "{}: its {stored} bytes run past the end of the table",
                place()
            )
        })?;
        let data: Box<[u8]> = if header & METADATA_UNCOMPRESSED != 0 {
            payload.into()
        } else {
            let mut out = [0u8; METADATA_SIZE];
            let n = self
                .decompress(payload, &mut out)
                .map_err(|f| f.at(place))?;
            out.get(..n).unwrap_or_default().into()
        };
        if data.is_empty() {
            return Err(corrupt(format!("{}: it is empty", place())));
        }
        let block = Rc::new(MetaBlock {
            data,
            // pos + 2 + stored <= region.end, checked by the read above.
            next: pos.saturating_add(2).saturating_add(stored as u64),
        });
        let mut cache = self.meta_cache.borrow_mut();
        if cache.len() >= META_CACHE_BLOCKS {
            cache.clear();
        }
        cache.insert(pos, Rc::clone(&block));
        Ok(block)
    }

    /// Reads and checks the compressor options block after the superblock.
    fn check_compressor_options(&self) -> Result<(), Fault> {
        let region = Region {
            start: SUPERBLOCK_LEN,
            end: self.sb.inode_table,
            name: "space before the inode table",
        };
        let block = self.meta_block(SUPERBLOCK_LEN, region)?;
        let options = &block.data;
        let compression = self.sb.compression;
        let expected = match compression {
            Compression::Gzip | Compression::Xz | Compression::Lz4 | Compression::Lzo => 8,
            Compression::Zstd => 4,
            // squashfs-tools defines no options for lzma.
            Compression::Lzma => options.len(),
        };
        if options.len() != expected {
            return Err(corrupt(format!(
                "{compression} options are {} bytes, expected {expected}",
                options.len()
            )));
        }
        let mut b = Cursor::new(options);
        match compression {
            Compression::Lz4 => {
                let version = b.u32().unwrap_or(0);
                if version != 1 {
                    return Err(Fault::Unsupported(format!(
                        "lz4 format version {version} (this reader knows 1)"
                    )));
                }
            }
            Compression::Xz => {
                let _dictionary = b.u32();
                let filters = b.u32().unwrap_or(0);
                if filters != 0 {
                    log::debug!(
                        "{}: squashfs: xz with BCJ filters (0x{filters:x}): blocks that use them \
                         cannot be read",
                        self.name
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The position an inode reference points to, checked to be in the inode table.
    fn inode_pos(&self, reference: u64) -> Result<MetaPos, Fault> {
        let bad = || format!("inode reference 0x{reference:x} is outside the inode table");
        if reference >> 48 != 0 {
            return Err(corrupt(bad()));
        }
        let block = self
            .sb
            .inode_table
            .checked_add(reference >> 16)
            .filter(|&b| b < self.sb.directory_table)
            .or_corrupt(bad)?;
        let offset = u16::try_from(reference & 0xffff)
            .ok()
            .filter(|&o| usize::from(o) < METADATA_SIZE)
            .or_corrupt(bad)?;
        Ok(MetaPos { block, offset })
    }

    /// Reads the inode an entry names, checking that it is of the entry's kind.
    fn entry_inode(&self, reference: u64, kind: Kind) -> Result<Inode, Fault> {
        let inode = self.read_inode(reference)?;
        if inode.kind != kind {
            return Err(corrupt(format!(
                "the directory entry says {kind} but inode {} is a {}",
                inode.number, inode.kind
            )));
        }
        Ok(inode)
    }

    /// Reads the inode at `reference`.
    fn read_inode(&self, reference: u64) -> Result<Inode, Fault> {
        let place = || {
            format!(
                "inode at block {} offset {} of the inode table",
                reference >> 16,
                reference & 0xffff
            )
        };
        self.read_inode_at(reference).map_err(|f| f.at(place))
    }

    fn read_inode_at(&self, reference: u64) -> Result<Inode, Fault> {
        let pos = self.inode_pos(reference)?;
        let mut r = MetaReader::new(self, self.inode_region(), pos)?;
        let inode_type = r.u16()?;
        let mode = r.u16()? & 0o7777;
        let uid_index = r.u16()?;
        let gid_index = r.u16()?;
        let mtime = r.u32()?;
        let number = r.u32()?;
        let kind = Kind::from_type(inode_type)
            .or_corrupt(|| format!("unknown inode type {inode_type}"))?;
        let extended = inode_type > 7;
        let (size, nlink, detail) = match kind {
            Kind::Dir => self.read_dir_inode(&mut r, extended)?,
            Kind::File => self.read_file_inode(&mut r, extended)?,
            Kind::Symlink => {
                let nlink = r.u32()?;
                let size = r.u32()?;
                (u64::from(size), nlink, Detail::Symlink(r.pos()))
            }
            Kind::BlockDevice | Kind::CharDevice => {
                let nlink = r.u32()?;
                let rdev = r.u32()?;
                (0, nlink, Detail::Device(rdev))
            }
            Kind::Fifo | Kind::Socket => {
                let nlink = r.u32()?;
                (0, nlink, Detail::Ipc)
            }
        };
        Ok(Inode {
            kind,
            mode,
            size,
            number,
            nlink,
            mtime,
            uid_index,
            gid_index,
            reference,
            detail,
        })
    }

    fn read_dir_inode(
        &self,
        r: &mut MetaReader<'_>,
        extended: bool,
    ) -> Result<(u64, u32, Detail), Fault> {
        let (nlink, size, start_block, offset, index) = if extended {
            let nlink = r.u32()?;
            let size = r.u32()?;
            let start_block = r.u32()?;
            let _parent = r.u32()?;
            let index_count = r.u16()?;
            let offset = r.u16()?;
            let _xattr = r.u32()?;
            let index = (index_count > 0).then(|| (r.pos(), index_count));
            (nlink, size, start_block, offset, index)
        } else {
            let start_block = r.u32()?;
            let nlink = r.u32()?;
            let size = r.u16()?;
            let offset = r.u16()?;
            let _parent = r.u32()?;
            (nlink, u32::from(size), start_block, offset, None)
        };
        if usize::from(offset) >= METADATA_SIZE {
            return Err(corrupt(format!(
                "directory listing offset {offset} is past a metadata block"
            )));
        }
        // Checked to be inside the directory table when the listing is read (the listing of
        // an empty directory is never read, and may point at the table's end).
        let block = self
            .sb
            .directory_table
            .checked_add(u64::from(start_block))
            .or_corrupt(|| format!("directory listing block {start_block} overflows"))?;
        let loc = DirLoc {
            start: MetaPos { block, offset },
            len: u64::from(size).saturating_sub(DIR_DOT_ENTRIES),
            index,
        };
        Ok((u64::from(size), nlink, Detail::Dir(loc)))
    }

    fn read_file_inode(
        &self,
        r: &mut MetaReader<'_>,
        extended: bool,
    ) -> Result<(u64, u32, Detail), Fault> {
        let (blocks_start, size, nlink, fragment, fragment_offset) = if extended {
            let blocks_start = r.u64()?;
            let size = r.u64()?;
            let _sparse = r.u64()?;
            let nlink = r.u32()?;
            let fragment = r.u32()?;
            let fragment_offset = r.u32()?;
            let _xattr = r.u32()?;
            (blocks_start, size, nlink, fragment, fragment_offset)
        } else {
            let blocks_start = r.u32()?;
            let fragment = r.u32()?;
            let fragment_offset = r.u32()?;
            let size = r.u32()?;
            (
                u64::from(blocks_start),
                u64::from(size),
                1,
                fragment,
                fragment_offset,
            )
        };
        let full_blocks = size >> self.sb.block_log;
        let block_count = if fragment == NO_FRAGMENT && size & self.block_mask() != 0 {
            full_blocks.saturating_add(1)
        } else {
            full_blocks
        };
        // Each stored metadata block is at least 3 bytes and holds at most 8192: the list
        // cannot be longer than what the rest of the inode table can hold.
        let list = r.pos();
        let room = self
            .sb
            .directory_table
            .saturating_sub(list.block)
            .div_ceil(MIN_STORED_METADATA)
            .saturating_mul(METADATA_SIZE as u64);
        if block_count.saturating_mul(4) > room {
            return Err(corrupt(format!(
                "a file of {size} bytes has {block_count} blocks, more than the inode table can \
                 list"
            )));
        }
        let loc = FileLoc {
            blocks_start,
            block_count,
            list,
            fragment,
            fragment_offset,
        };
        Ok((size, nlink, Detail::File(loc)))
    }

    fn block_mask(&self) -> u64 {
        u64::from(self.sb.block_size).saturating_sub(1)
    }

    /// A directory's listing location, checking the kind and the listing cap.
    fn dir_loc<'i>(
        &self,
        dir: &'i Inode,
        what: impl Fn() -> String,
    ) -> Result<&'i DirLoc, SquashError> {
        let Detail::Dir(loc) = &dir.detail else {
            return Err(self.wrong_kind(dir, Kind::Dir, what()));
        };
        if loc.len > MAX_DIR_LISTING {
            return Err(SquashError::Unsupported {
                image: self.name.clone(),
                what: what(),
                problem: format!(
                    "a directory listing of {} bytes, more than {MAX_DIR_LISTING}",
                    loc.len
                ),
            });
        }
        Ok(loc)
    }

    /// Calls `visit` on each entry of the listing of `len` bytes at `start`, until it breaks.
    fn scan_dir(
        &self,
        start: MetaPos,
        len: u64,
        mut visit: impl FnMut(&RawEntry<'_>) -> ControlFlow<()>,
    ) -> Result<(), Fault> {
        if len == 0 {
            return Ok(());
        }
        let mut r = MetaReader::new(self, self.dir_region(), start)?;
        let mut left = len;
        let mut name_buf = [0u8; MAX_NAME_LEN];
        let ends_early = |inside: &str| corrupt(format!("the listing ends inside {inside}"));
        while left > 0 {
            left = left
                .checked_sub(DIR_HEADER_LEN)
                .ok_or_else(|| ends_early("a header"))?;
            let count = r.u32()?;
            let block = r.u32()?;
            let base = r.u32()?;
            if count >= DIR_HEADER_MAX_ENTRIES {
                return Err(corrupt(format!(
                    "a directory header counts {} entries, more than {DIR_HEADER_MAX_ENTRIES}",
                    u64::from(count) + 1
                )));
            }
            for _ in 0..=count {
                left = left
                    .checked_sub(DIR_ENTRY_LEN)
                    .ok_or_else(|| ends_early("an entry"))?;
                let offset = r.u16()?;
                let delta = i16::from_le_bytes(r.array()?);
                let entry_type = r.u16()?;
                let name_len = usize::from(r.u16()?).saturating_add(1);
                left = left
                    .checked_sub(name_len as u64)
                    .ok_or_else(|| ends_early("a name"))?;
                let name = name_buf.get_mut(..name_len).or_corrupt(|| {
                    format!("a name of {name_len} bytes, more than {MAX_NAME_LEN}")
                })?;
                r.read(name)?;
                if !valid_name(name) {
                    return Err(corrupt(format!(
                        "invalid entry name \"{}\"",
                        name.escape_ascii()
                    )));
                }
                let kind = Kind::from_type(entry_type).or_corrupt(|| {
                    format!(
                        "entry \"{}\" has unknown type {entry_type}",
                        name.escape_ascii()
                    )
                })?;
                let number = base.checked_add_signed(i32::from(delta)).or_corrupt(|| {
                    format!(
                        "entry \"{}\" has an out-of-range inode number",
                        name.escape_ascii()
                    )
                })?;
                let entry = RawEntry {
                    name,
                    kind,
                    reference: u64::from(block) << 16 | u64::from(offset),
                    number,
                };
                if visit(&entry).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Finds `name` in a directory: the entry's inode reference and kind.
    fn find(&self, dir: &DirLoc, name: &[u8]) -> Result<Option<(u64, Kind)>, Fault> {
        let (start, skipped) = self.index_start(dir, name)?;
        let mut found = None;
        self.scan_dir(start, dir.len.saturating_sub(skipped), |e| {
            match e.name.cmp(name) {
                Ordering::Less => ControlFlow::Continue(()),
                Ordering::Equal => {
                    found = Some((e.reference, e.kind));
                    ControlFlow::Break(())
                }
                // Entries are sorted: the name is absent.
                Ordering::Greater => ControlFlow::Break(()),
            }
        })?;
        Ok(found)
    }

    /// Where a lookup of `name` can start: the last indexed directory header whose first
    /// name is not after `name`, and how many listing bytes that skips.
    fn index_start(&self, dir: &DirLoc, name: &[u8]) -> Result<(MetaPos, u64), Fault> {
        let mut start = dir.start;
        let mut skipped = 0;
        let Some((pos, count)) = dir.index else {
            return Ok((start, skipped));
        };
        let mut r = MetaReader::new(self, self.inode_region(), pos)?;
        let mut name_buf = [0u8; MAX_NAME_LEN];
        for _ in 0..count {
            let index = r.u32()?;
            let block = r.u32()?;
            let name_len = usize::try_from(r.u32()?)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let indexed = name_buf.get_mut(..name_len).or_corrupt(|| {
                format!("a directory index name of {name_len} bytes, more than {MAX_NAME_LEN}")
            })?;
            r.read(indexed)?;
            if &*indexed > name {
                break;
            }
            let index = u64::from(index);
            if index > dir.len {
                return Err(corrupt(format!(
                    "directory index offset {index} is past the {}-byte listing",
                    dir.len
                )));
            }
            let block = self
                .sb
                .directory_table
                .checked_add(u64::from(block))
                .or_corrupt(|| format!("directory index block {block} overflows"))?;
            let offset = u64::from(dir.start.offset).saturating_add(index) & METADATA_OFFSET_MASK;
            start = MetaPos {
                block,
                offset: u16::try_from(offset).unwrap_or(0),
            };
            skipped = index;
        }
        Ok((start, skipped))
    }

    /// The body of [`SquashFs::read_at`].
    fn read_file(
        &self,
        file: &Inode,
        loc: &FileLoc,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Fault> {
        let size = file.size;
        let Some(left) = size.checked_sub(offset).filter(|&left| left > 0) else {
            return Ok(0);
        };
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let block_size = u64::from(self.sb.block_size);
        let mut done = 0usize;
        while done < want {
            // offset + done < size, so nothing below overflows.
            let pos = offset.saturating_add(done as u64);
            let index = pos >> self.sb.block_log;
            let within = pos & self.block_mask();
            let block_start = index << self.sb.block_log;
            let block_len = size.saturating_sub(block_start).min(block_size);
            let take = usize::try_from(block_len.saturating_sub(within))
                .unwrap_or(usize::MAX)
                .min(want.saturating_sub(done));
            let end = done.saturating_add(take);
            let dst = buf
                .get_mut(done..end)
                .or_corrupt(|| "internal: read past the buffer".to_owned())?;
            let within = usize::try_from(within).unwrap_or(usize::MAX);
            if index < loc.block_count {
                let (disk, word) = self.block_location(file.reference, loc, index)?;
                let place = || format!("data block {index} at byte {disk}");
                if word & DATA_SIZE_MASK == 0 {
                    dst.fill(0);
                } else if within == 0 && take as u64 == block_len {
                    self.load_block(disk, word, dst, true)
                        .map_err(|f| f.at(place))?;
                } else {
                    let expected = usize::try_from(block_len).unwrap_or(usize::MAX);
                    let data = self
                        .cached_block(disk, word, Some(expected), within.saturating_add(take))
                        .map_err(|f| f.at(place))?;
                    dst.copy_from_slice(
                        data.get(within..within.saturating_add(take))
                            .unwrap_or_default(),
                    );
                }
            } else {
                self.read_tail(loc, within, dst)?;
            }
            done = end;
        }
        Ok(want)
    }

    /// Copies a file's tail, from `within` on, out of its fragment block.
    fn read_tail(&self, loc: &FileLoc, within: usize, dst: &mut [u8]) -> Result<(), Fault> {
        if loc.fragment == NO_FRAGMENT {
            return Err(corrupt("the file's data runs past its block list"));
        }
        let index = loc.fragment;
        let place = || format!("fragment {index}");
        let (start, word) = self.fragment(index).map_err(|f| f.at(place))?;
        if word & DATA_SIZE_MASK == 0 {
            return Err(corrupt(format!("{}: its block has size 0", place())));
        }
        let from = usize::try_from(loc.fragment_offset)
            .unwrap_or(usize::MAX)
            .saturating_add(within);
        let need = from.saturating_add(dst.len());
        let data = self
            .cached_block(start, word, None, need)
            .map_err(|f| f.at(|| format!("{} at byte {start}", place())))?;
        let tail = from
            .checked_add(dst.len())
            .and_then(|end| data.get(from..end))
            .or_corrupt(|| {
                format!(
                    "{}: the file's tail at offset {} lies outside the {}-byte fragment block",
                    place(),
                    loc.fragment_offset,
                    data.len()
                )
            })?;
        dst.copy_from_slice(tail);
        Ok(())
    }

    /// The position and size word of block `index` of a file, continuing from where the
    /// previous call for the same file stopped when it can (at the same block or before).
    fn block_location(&self, inode: u64, loc: &FileLoc, index: u64) -> Result<(u64, u32), Fault> {
        let mut walker = match self.walker.take() {
            Some(w) if w.inode == inode && w.index <= index => w,
            _ => BlockWalker {
                inode,
                index: 0,
                disk: loc.blocks_start,
                list: loc.list,
            },
        };
        let mut r = MetaReader::new(self, self.inode_region(), walker.list)
            .map_err(|f| f.at(|| "the block list".to_owned()))?;
        loop {
            let entry = r.pos();
            let word = r
                .u32()
                .map_err(|f| f.at(|| format!("block list entry {}", walker.index)))?;
            if word >> 25 != 0 {
                return Err(corrupt(format!(
                    "block list entry {} has a bad size word 0x{word:x}",
                    walker.index
                )));
            }
            if walker.index == index {
                walker.list = entry;
                self.walker.set(Some(walker));
                return Ok((walker.disk, word));
            }
            walker.disk = walker
                .disk
                .checked_add(u64::from(word & DATA_SIZE_MASK))
                .or_corrupt(|| "block positions overflow".to_owned())?;
            walker.index = walker.index.saturating_add(1);
        }
    }

    /// The stored length of the data block at `pos` with size word `word`, checked.
    fn stored_len(&self, pos: u64, word: u32) -> Result<usize, Fault> {
        let stored = word & DATA_SIZE_MASK;
        if word >> 25 != 0 || stored > self.sb.block_size {
            return Err(corrupt(format!(
                "bad size word 0x{word:x} (block size {})",
                self.sb.block_size
            )));
        }
        if pos
            .checked_add(u64::from(stored))
            .is_none_or(|end| end > self.sb.bytes_used)
        {
            return Err(corrupt(format!(
                "its {stored} bytes run past the {} bytes used",
                self.sb.bytes_used
            )));
        }
        usize::try_from(stored)
            .ok()
            .or_corrupt(|| format!("{stored} bytes do not fit in memory"))
    }

    /// Reads the stored bytes of a compressed block into the scratch buffer and runs `f` on
    /// them.
    fn with_stored<T>(
        &self,
        pos: u64,
        stored: usize,
        f: impl FnOnce(&[u8]) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        scratch.resize(stored, 0);
        self.pread(pos, &mut scratch, || "the stored block".to_owned())?;
        f(&scratch)
    }

    /// Reads the data block at `pos` with size word `word` into `out`: with `exact` it must
    /// hold exactly `out.len()` bytes (a data block), else at most that (a fragment block).
    /// Returns its length.
    fn load_block(&self, pos: u64, word: u32, out: &mut [u8], exact: bool) -> Result<usize, Fault> {
        let stored = self.stored_len(pos, word)?;
        let out_len = out.len();
        let len = if word & DATA_UNCOMPRESSED != 0 {
            let dst = out
                .get_mut(..stored)
                .filter(|dst| !exact || dst.len() == out_len);
            let dst = dst.or_corrupt(|| {
                format!("{stored} bytes are stored uncompressed, expected {out_len}")
            })?;
            self.pread(pos, dst, || "the stored block".to_owned())?;
            stored
        } else {
            self.with_stored(pos, stored, |input| self.decompress(input, out))?
        };
        if exact && len != out_len {
            return Err(corrupt(format!("it holds {len} bytes, expected {out_len}")));
        }
        Ok(len)
    }

    /// Reads the first `out.len()` bytes of an uncompressed or gzip block, or all of it when
    /// it is shorter: returns the length read and whether that is the whole block.
    fn load_prefix(&self, pos: u64, word: u32, out: &mut [u8]) -> Result<(usize, bool), Fault> {
        let stored = self.stored_len(pos, word)?;
        if word & DATA_UNCOMPRESSED != 0 {
            let len = stored.min(out.len());
            let dst = out.get_mut(..len).unwrap_or_default();
            self.pread(pos, dst, || "the stored block".to_owned())?;
            Ok((len, len == stored))
        } else {
            self.with_stored(pos, stored, |input| {
                self.with_codec(|codec| codec.inflate_prefix(input, out))
            })
        }
    }

    /// A decompressed data block (of `expected` bytes) or fragment block (`None`: at most a
    /// block) from the cache, read into it when missing. At least the first `need` bytes
    /// are wanted: an uncompressed or gzip block is first read only that far (at least
    /// [`PREFIX_MIN`]), and in full when a later read needs more of it.
    fn cached_block(
        &self,
        pos: u64,
        word: u32,
        expected: Option<usize>,
        need: usize,
    ) -> Result<Rc<[u8]>, Fault> {
        let mut had_prefix = false;
        {
            let mut cache = self.data_cache.borrow_mut();
            if let Some(i) = cache.iter().position(|b| b.pos == pos && b.word == word) {
                let block = cache.remove(i);
                let fits = if block.complete {
                    expected.is_none_or(|len| len == block.data.len())
                } else {
                    block.data.len() >= need
                };
                if fits {
                    let data = Rc::clone(&block.data);
                    cache.push(block);
                    return Ok(data);
                }
                had_prefix = !block.complete;
            }
        }
        let block_size = usize::try_from(self.sb.block_size).unwrap_or(0);
        let prefix = need.max(PREFIX_MIN);
        let prefix_reads =
            word & DATA_UNCOMPRESSED != 0 || self.sb.compression == Compression::Gzip;
        let (mut buf, len, complete) =
            if prefix_reads && !had_prefix && prefix < expected.unwrap_or(block_size) {
                let mut buf = vec![0u8; prefix];
                let (len, complete) = self.load_prefix(pos, word, &mut buf)?;
                (buf, len, complete)
            } else {
                let mut buf = vec![0u8; expected.unwrap_or(block_size)];
                let len = self.load_block(pos, word, &mut buf, expected.is_some())?;
                (buf, len, true)
            };
        if let Some(expected) = expected.filter(|&e| complete && e != len) {
            return Err(corrupt(format!(
                "it holds {len} bytes, expected {expected}"
            )));
        }
        buf.truncate(len);
        let data: Rc<[u8]> = buf.into();
        let mut cache = self.data_cache.borrow_mut();
        if cache.len() >= DATA_CACHE_BLOCKS {
            cache.remove(0);
        }
        cache.push(CachedBlock {
            pos,
            word,
            data: Rc::clone(&data),
            complete,
        });
        Ok(data)
    }

    /// The metadata block positions of a lookup table (fragment or id table): `count`
    /// entries of `entry_len` bytes, `per_block` to a block, listed at `start`.
    fn lookup_table(
        &self,
        start: u64,
        count: u64,
        per_block: u64,
        what: &str,
    ) -> Result<Vec<u64>, Fault> {
        let blocks = count.div_ceil(per_block.max(1));
        let len = blocks.saturating_mul(8);
        if start == NO_TABLE
            || start
                .checked_add(len)
                .is_none_or(|end| end > self.sb.bytes_used)
        {
            return Err(corrupt(format!(
                "the {what} ({blocks} block positions at byte {start}) lies outside the {} bytes \
                 used",
                self.sb.bytes_used
            )));
        }
        let mut raw = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.pread(start, &mut raw, || format!("the {what}"))?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }

    /// A fragment's block position and size word.
    fn fragment(&self, index: u32) -> Result<(u64, u32), Fault> {
        if index >= self.sb.fragment_count {
            return Err(corrupt(format!(
                "index {index} is past the {} fragments",
                self.sb.fragment_count
            )));
        }
        let blocks = match self.fragment_blocks.get() {
            Some(blocks) => blocks,
            None => {
                let blocks = self.lookup_table(
                    self.sb.fragment_table,
                    u64::from(self.sb.fragment_count),
                    u64::from(FRAGMENTS_PER_BLOCK),
                    "fragment table",
                )?;
                self.fragment_blocks.get_or_init(|| blocks)
            }
        };
        let block = usize::try_from(index / FRAGMENTS_PER_BLOCK)
            .ok()
            .and_then(|i| blocks.get(i))
            .copied()
            .or_corrupt(|| format!("index {index} is past the fragment table"))?;
        let region = Region {
            start: SUPERBLOCK_LEN,
            end: self.sb.fragment_table,
            name: "fragment table",
        };
        let offset = (index % FRAGMENTS_PER_BLOCK).saturating_mul(FRAGMENT_ENTRY_LEN);
        let pos = MetaPos {
            block,
            offset: u16::try_from(offset).unwrap_or(0),
        };
        let mut r = MetaReader::new(self, region, pos)?;
        let start = r.u64()?;
        let word = r.u32()?;
        Ok((start, word))
    }

    /// An entry of the id table.
    fn id(&self, index: u16) -> Result<u32, Fault> {
        if index >= self.sb.id_count {
            return Err(corrupt(format!(
                "id index {index} is past the {} ids",
                self.sb.id_count
            )));
        }
        let blocks = match self.id_blocks.get() {
            Some(blocks) => blocks,
            None => {
                let blocks = self.lookup_table(
                    self.sb.id_table,
                    u64::from(self.sb.id_count),
                    u64::from(IDS_PER_BLOCK),
                    "id table",
                )?;
                self.id_blocks.get_or_init(|| blocks)
            }
        };
        let block = blocks
            .get(usize::from(index / IDS_PER_BLOCK))
            .copied()
            .or_corrupt(|| format!("id index {index} is past the id table"))?;
        let region = Region {
            start: SUPERBLOCK_LEN,
            end: self.sb.id_table,
            name: "id table",
        };
        let pos = MetaPos {
            block,
            offset: (index % IDS_PER_BLOCK).saturating_mul(ID_ENTRY_LEN),
        };
        MetaReader::new(self, region, pos)?.u32()
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

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;
    use std::ffi::{CString, OsStr};
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "containerspec-squashfs-{}-{n}-{tag}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn have_mksquashfs() -> bool {
        Command::new("mksquashfs").arg("-version").output().is_ok()
    }

    macro_rules! require_mksquashfs {
        () => {
            if !have_mksquashfs() {
                eprintln!("skipping: mksquashfs not installed");
                return;
            }
        };
    }

    /// Runs mksquashfs on `src` into `image`.
    fn mksquashfs(src: &Path, image: &Path, args: &[&str]) -> Result<(), String> {
        let out = Command::new("mksquashfs")
            .arg(src)
            .arg(image)
            .args(["-noappend", "-no-progress", "-quiet", "-processors", "1"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "mksquashfs {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn open_image(path: &Path) -> SquashFs {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        SquashFs::open(file, 0, len, &path.display().to_string()).unwrap()
    }

    fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<SquashFs, SquashError> {
        let path = dir.join("image.sqfs");
        fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        SquashFs::open(file, 0, bytes.len() as u64, "test image")
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Test content: 1 KiB stretches of random bytes alternating with repeated text, so
    /// that blocks compress, but not to nothing.
    fn content(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let chunk = 1024.min(len - out.len());
            if rng.next() & 1 == 0 {
                out.extend((0..chunk).map(|_| rng.next() as u8));
            } else {
                let text = format!("line {} of seed {seed}\n", out.len());
                out.extend(text.bytes().cycle().take(chunk));
            }
        }
        out
    }

    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = XorShift(seed | 1);
        (0..len).map(|_| rng.next() as u8).collect()
    }

    fn symlink(target: &str, link: &Path) {
        std::os::unix::fs::symlink(target, link).unwrap();
    }

    fn mkfifo(path: &Path) -> bool {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::mkfifo(c.as_ptr(), 0o640) == 0 }
    }

    /// Makes a device node; false without the privilege to.
    fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> bool {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) == 0 }
    }

    /// Sets an xattr without following symlinks; false where the filesystem or the
    /// privileges do not allow it.
    fn set_xattr(path: &Path, name: &str) -> bool {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let c_name = CString::new(name).unwrap();
        let value = b"value";
        // SAFETY: valid NUL-terminated strings and a value buffer of the given length.
        unsafe {
            libc::lsetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ) == 0
        }
    }

    const BIG_DIR_ENTRIES: usize = 700;

    fn big_dir_name(i: usize) -> String {
        format!("entry-{i:04}-{}", "n".repeat(i % 23))
    }

    /// The sizes the standard tree has files of, for block size `bs`.
    fn sizes(bs: usize) -> Vec<usize> {
        vec![0, 1, 100, bs - 1, bs, bs + 1, 3 * bs + 17, 5 * bs]
    }

    /// Builds the standard tree for block size `bs` under `root`: files of many sizes,
    /// random (incompressible) and zero (sparse) files, a file with holes, duplicates,
    /// nested and empty directories, symlinks, hard links, a fifo, a large directory, and
    /// (where allowed) entries with xattrs, which become extended inodes.
    fn make_tree(root: &Path, bs: usize) {
        for (i, size) in sizes(bs).into_iter().enumerate() {
            fs::write(root.join(format!("size-{size}")), content(size, i as u64)).unwrap();
        }
        fs::write(root.join("random"), random_bytes(2 * bs + 100, 7)).unwrap();
        fs::write(root.join("zeros"), vec![0u8; 3 * bs + 100]).unwrap();
        let sparse = File::create(root.join("sparse")).unwrap();
        sparse.set_len((6 * bs + 10) as u64).unwrap();
        sparse
            .write_all_at(b"middle of a hole", (2 * bs + 5) as u64)
            .unwrap();
        sparse.write_all_at(b"end", (6 * bs + 7) as u64).unwrap();
        drop(sparse);
        let dup = content(2 * bs + 50, 99);
        fs::write(root.join("dup-a"), &dup).unwrap();
        fs::write(root.join("dup-b"), &dup).unwrap();

        fs::create_dir_all(root.join("a/b/c/d")).unwrap();
        fs::create_dir_all(root.join("a/b/empty-dir")).unwrap();
        fs::write(root.join("a/b/c/d/deep.txt"), b"deep down\n").unwrap();
        fs::write(root.join("a/x"), content(bs / 2 + 3, 11)).unwrap();
        fs::set_permissions(root.join("a/x"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::set_permissions(
            root.join("a/b/empty-dir"),
            fs::Permissions::from_mode(0o1777),
        )
        .unwrap();

        symlink("a/b/c/d/deep.txt", &root.join("link-rel"));
        symlink("/etc/passwd", &root.join("link-abs"));
        symlink("a/b", &root.join("link-dir"));
        symlink("../../nowhere", &root.join("link-dangling"));
        symlink(&"long/".repeat(200), &root.join("link-long"));

        fs::write(root.join("hard-1"), content(bs + 9, 5)).unwrap();
        fs::hard_link(root.join("hard-1"), root.join("hard-2")).unwrap();
        fs::hard_link(root.join("hard-1"), root.join("a/hard-3")).unwrap();

        assert!(mkfifo(&root.join("fifo")));

        let big = root.join("big");
        fs::create_dir(&big).unwrap();
        for i in 0..BIG_DIR_ENTRIES {
            let path = big.join(big_dir_name(i));
            if i % 10 == 0 {
                fs::create_dir(&path).unwrap();
            } else if i % 7 == 0 {
                symlink("entry-0001-n", &path);
            } else {
                fs::write(&path, content(i % 37, i as u64)).unwrap();
            }
        }

        // Extended inodes through xattrs, where the filesystem and privileges allow.
        fs::write(root.join("xattr-file"), content(bs + 1, 3)).unwrap();
        set_xattr(&root.join("xattr-file"), "user.test");
        fs::create_dir(root.join("xattr-dir")).unwrap();
        fs::write(root.join("xattr-dir/inside"), b"inside\n").unwrap();
        set_xattr(&root.join("xattr-dir"), "user.test");
        symlink("xattr-file", &root.join("xattr-link"));
        set_xattr(&root.join("xattr-link"), "trusted.test");
        if mkfifo(&root.join("xattr-fifo")) {
            set_xattr(&root.join("xattr-fifo"), "trusted.test");
        }
        if std::os::unix::net::UnixListener::bind(root.join("xattr-sock")).is_ok() {
            set_xattr(&root.join("xattr-sock"), "trusted.test");
        }
        for (name, kind, major, minor) in [
            ("xattr-chr", libc::S_IFCHR, 1, 5),
            ("xattr-blk", libc::S_IFBLK, 7, 200),
        ] {
            if mknod(&root.join(name), kind, major, minor) {
                set_xattr(&root.join(name), "trusted.test");
            }
        }
    }

    /// Pseudo definitions for device nodes, a fifo and a socket (no root needed).
    const PSEUDO: [&str; 8] = [
        "-p",
        "pdev c 644 0 0 1 3",
        "-p",
        "pblk b 600 0 0 8 1",
        "-p",
        "pfifo i 644 0 0 f",
        "-p",
        "psock i 640 0 0 s",
    ];
    const PSEUDO_NAMES: [&str; 4] = ["pdev", "pblk", "pfifo", "psock"];

    fn kind_of(file_type: fs::FileType) -> Kind {
        if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_block_device() {
            Kind::BlockDevice
        } else if file_type.is_char_device() {
            Kind::CharDevice
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        }
    }

    /// What a comparison saw, to check that a tree exercised what it should.
    #[derive(Default, Debug)]
    struct Seen {
        files: usize,
        bytes: u64,
        dirs: usize,
        symlinks: usize,
        other: usize,
    }

    /// Compares the image's directory `dir` with `src`, recursively: listings, kinds,
    /// permissions, owners, link counts, file contents and symlink targets. Root entries
    /// named in `skip` (pseudo entries) are not in `src`.
    fn compare_dir(fs: &SquashFs, dir: &Inode, src: &Path, skip: &[&str], seen: &mut Seen) {
        seen.dirs += 1;
        let entries = fs.read_dir(dir).unwrap();
        for pair in entries.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "listing of {src:?} is not sorted"
            );
        }
        let got: Vec<&[u8]> = entries
            .iter()
            .map(|e| e.name.as_slice())
            .filter(|n| !skip.iter().any(|s| s.as_bytes() == *n))
            .collect();
        let mut expected: Vec<Vec<u8>> = fs::read_dir(src)
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        expected.sort();
        assert_eq!(got, expected, "listing of {src:?}");
        let src_meta = fs::metadata(src).unwrap();
        assert_eq!(dir.nlink as u64, src_meta.nlink(), "nlink of {src:?}");
        for entry in &entries {
            if skip.iter().any(|s| s.as_bytes() == entry.name) {
                continue;
            }
            let path = src.join(OsStr::from_bytes(&entry.name));
            let meta = fs::symlink_metadata(&path).unwrap();
            let inode = fs.inode_of(entry).unwrap();
            assert_eq!(inode.kind, entry.kind, "{path:?}");
            assert_eq!(inode.number, entry.number, "{path:?}");
            assert_eq!(inode.kind, kind_of(meta.file_type()), "{path:?}");
            let looked_up = fs.lookup(dir, &entry.name).unwrap().unwrap();
            assert_eq!(looked_up.number, inode.number, "{path:?}");
            assert_eq!(
                u32::from(inode.mode),
                meta.mode() & 0o7777,
                "mode of {path:?}"
            );
            assert_eq!(
                fs.owner(&inode).unwrap(),
                (meta.uid(), meta.gid()),
                "{path:?}"
            );
            if inode.kind != Kind::Dir {
                assert_eq!(u64::from(inode.nlink), meta.nlink(), "nlink of {path:?}");
            }
            match inode.kind {
                Kind::File => {
                    let data = fs.read_all(&inode, u64::MAX).unwrap();
                    assert_eq!(inode.size, meta.len(), "size of {path:?}");
                    assert!(data == fs::read(&path).unwrap(), "content of {path:?}");
                    seen.files += 1;
                    seen.bytes += inode.size;
                }
                Kind::Symlink => {
                    let target = fs.read_link(&inode).unwrap();
                    let expected = fs::read_link(&path).unwrap();
                    assert_eq!(target, expected.as_os_str().as_bytes(), "{path:?}");
                    assert_eq!(inode.size, target.len() as u64);
                    seen.symlinks += 1;
                }
                Kind::Dir => compare_dir(fs, &inode, &path, &[], seen),
                Kind::BlockDevice | Kind::CharDevice => {
                    let rdev = meta.rdev();
                    assert_eq!(
                        inode.device(),
                        Some((libc::major(rdev), libc::minor(rdev))),
                        "{path:?}"
                    );
                    seen.other += 1;
                }
                Kind::Fifo | Kind::Socket => seen.other += 1,
            }
        }
    }

    /// Builds the standard tree with block size `bs`, makes an image with `args` and
    /// compares it in full; returns the image (in `tmp`) and the source root.
    fn build_and_compare(tmp: &TempDir, bs: usize, args: &[&str]) -> (SquashFs, PathBuf) {
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        make_tree(&src, bs);
        let image = tmp.path().join("image.sqfs");
        let bs_arg = bs.to_string();
        let mut all_args = vec!["-b", bs_arg.as_str()];
        all_args.extend_from_slice(args);
        all_args.extend_from_slice(&PSEUDO);
        mksquashfs(&src, &image, &all_args).unwrap();
        let fs = open_image(&image);
        assert_eq!(fs.block_size() as usize, bs);
        let root = fs.root().unwrap();
        let mut seen = Seen::default();
        compare_dir(&fs, &root, &src, &PSEUDO_NAMES, &mut seen);
        assert!(seen.files > BIG_DIR_ENTRIES / 2, "{seen:?}");
        assert!(seen.symlinks >= 5, "{seen:?}");
        check_pseudo(&fs, &root);
        (fs, src)
    }

    fn check_pseudo(fs: &SquashFs, root: &Inode) {
        let dev = fs.lookup(root, b"pdev").unwrap().unwrap();
        assert_eq!(dev.kind, Kind::CharDevice);
        assert_eq!(dev.device(), Some((1, 3)));
        assert_eq!(dev.mode, 0o644);
        let blk = fs.lookup(root, b"pblk").unwrap().unwrap();
        assert_eq!(blk.kind, Kind::BlockDevice);
        assert_eq!(blk.device(), Some((8, 1)));
        let fifo = fs.lookup(root, b"pfifo").unwrap().unwrap();
        assert_eq!(fifo.kind, Kind::Fifo);
        assert_eq!(fifo.device(), None);
        let sock = fs.lookup(root, b"psock").unwrap().unwrap();
        assert_eq!(sock.kind, Kind::Socket);
        assert_eq!(sock.mode, 0o640);
        assert_eq!(fs.owner(&sock).unwrap(), (0, 0));
    }

    #[test]
    fn gzip_tree_with_4k_blocks() {
        require_mksquashfs!();
        let tmp = TempDir::new("gzip");
        let (fs, _) = build_and_compare(&tmp, 4096, &["-comp", "gzip"]);
        assert_eq!(fs.compression(), Compression::Gzip);
        assert!(fs.bytes_used() > 0);
    }

    #[test]
    fn each_compressor() {
        require_mksquashfs!();
        for comp in ["xz", "zstd", "lz4", "lzma"] {
            let tmp = TempDir::new(comp);
            let (fs, _) = build_and_compare(&tmp, 4096, &["-comp", comp]);
            assert_eq!(fs.compression().name(), comp);
            assert_eq!(fs.compression().to_string(), comp);
        }
    }

    #[test]
    fn compressor_options_are_accepted() {
        require_mksquashfs!();
        for (bs, args) in [
            (
                4096,
                &[
                    "-comp",
                    "gzip",
                    "-Xcompression-level",
                    "1",
                    "-Xwindow-size",
                    "10",
                ][..],
            ),
            (16384, &["-comp", "xz", "-Xdict-size", "8K"]),
            (4096, &["-comp", "lz4", "-Xhc"]),
            (4096, &["-comp", "zstd", "-Xcompression-level", "3"]),
        ] {
            let tmp = TempDir::new("options");
            build_and_compare(&tmp, bs, args);
        }
    }

    #[test]
    fn lzo_is_unsupported() {
        require_mksquashfs!();
        let tmp = TempDir::new("lzo");
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"data").unwrap();
        let image = tmp.path().join("image.sqfs");
        if let Err(e) = mksquashfs(&src, &image, &["-comp", "lzo"]) {
            eprintln!("skipping the lzo check: {e}");
            return;
        }
        let file = File::open(&image).unwrap();
        let len = file.metadata().unwrap().len();
        let err = SquashFs::open(file, 0, len, "lzo.sqfs").unwrap_err();
        assert!(matches!(err, SquashError::Unsupported { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.starts_with("lzo.sqfs: squashfs: "), "{message}");
        assert!(message.contains("lzo"), "{message}");
    }

    #[test]
    fn fragment_variants() {
        require_mksquashfs!();
        for args in [
            &["-no-fragments"][..],
            &["-always-use-fragments"],
            &["-tailends"],
            &["-no-duplicates", "-no-sparse"],
        ] {
            let tmp = TempDir::new("fragments");
            build_and_compare(&tmp, 4096, args);
        }
    }

    #[test]
    fn uncompressed_tables_and_data() {
        require_mksquashfs!();
        let tmp = TempDir::new("uncompressed");
        build_and_compare(&tmp, 4096, &["-noI", "-noD", "-noF", "-noX"]);
    }

    #[test]
    fn default_and_largest_block_sizes() {
        require_mksquashfs!();
        // With gzip and uncompressed blocks larger than PREFIX_MIN, reads first decompress
        // only the start of a block or fragment block.
        for (bs, args) in [
            (128 << 10, &["-comp", "gzip"][..]),
            (128 << 10, &["-comp", "zstd"]),
            (128 << 10, &["-noD", "-noF"]),
            (1 << 20, &["-comp", "gzip"]),
        ] {
            let tmp = TempDir::new("blocksize");
            build_and_compare(&tmp, bs, args);
        }
    }

    #[test]
    fn embedded_at_an_offset() {
        require_mksquashfs!();
        let tmp = TempDir::new("offset");
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        make_tree(&src, 4096);
        let image = tmp.path().join("image.sqfs");
        mksquashfs(&src, &image, &["-b", "4096"]).unwrap();
        let raw = fs::read(&image).unwrap();
        let prefix = random_bytes(4096 + 13, 42);
        let mut combined = prefix.clone();
        combined.extend_from_slice(&raw);
        combined.extend_from_slice(&random_bytes(777, 43));
        let path = tmp.path().join("combined");
        fs::write(&path, &combined).unwrap();
        let file = File::open(&path).unwrap();
        let fs = SquashFs::open(file, prefix.len() as u64, raw.len() as u64, "combined").unwrap();
        let root = fs.root().unwrap();
        compare_dir(&fs, &root, &src, &[], &mut Seen::default());

        // A partition that claims to run past the end of the file.
        let file = File::open(&path).unwrap();
        let err = SquashFs::open(file, prefix.len() as u64, combined.len() as u64, "combined")
            .unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
    }

    #[test]
    fn empty_root_and_single_file() {
        require_mksquashfs!();
        let tmp = TempDir::new("empty");
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        let image = tmp.path().join("empty.sqfs");
        mksquashfs(&src, &image, &[]).unwrap();
        let fs = open_image(&image);
        let root = fs.root().unwrap();
        assert!(fs.read_dir(&root).unwrap().is_empty());
        assert!(fs.lookup(&root, b"x").unwrap().is_none());

        fs::write(src.join("only"), b"one file").unwrap();
        mksquashfs(&src, &image, &["-no-fragments"]).unwrap();
        let fs = open_image(&image);
        let root = fs.root().unwrap();
        let only = fs.lookup(&root, b"only").unwrap().unwrap();
        assert_eq!(fs.read_all(&only, 100).unwrap(), b"one file");
    }

    #[test]
    fn small_reads_walk_a_long_file_in_order_and_back() {
        require_mksquashfs!();
        // 3000 small blocks: the block list spans two metadata blocks. Large gzip blocks
        // are first decompressed only as far as a read needs, then in full; uncompressed
        // ones are read only as far as needed.
        for (bs, blocks, args) in [
            (4096, 3000, &[][..]),
            (128 << 10, 40, &[]),
            (128 << 10, 40, &["-noD"]),
        ] {
            let tmp = TempDir::new("small-reads");
            let src = tmp.path().join("src");
            fs::create_dir(&src).unwrap();
            let data = content(blocks * bs + 5, 8);
            fs::write(src.join("long"), &data).unwrap();
            let image = tmp.path().join("long.sqfs");
            let bs_arg = bs.to_string();
            let mut all = vec!["-b", bs_arg.as_str()];
            all.extend_from_slice(args);
            mksquashfs(&src, &image, &all).unwrap();
            let fs = open_image(&image);
            let long = resolve(&fs, "long").unwrap();
            let mut rng = XorShift(3);
            let mut buf = vec![0u8; 10_000];
            let mut offset = 0usize;
            for step in 0..3000 {
                // Mostly forwards in small steps, sometimes backwards or far.
                offset = match step % 50 {
                    0 => rng.below(data.len() as u64 + 10) as usize,
                    1 => offset.saturating_sub(9000),
                    _ => offset + rng.below(6000) as usize,
                };
                let len = rng.below(buf.len() as u64) as usize;
                let n = fs.read_at(&long, offset as u64, &mut buf[..len]).unwrap();
                let want = len.min(data.len().saturating_sub(offset));
                assert_eq!(n, want);
                if n > 0 {
                    assert!(buf[..n] == data[offset..offset + n], "at {offset}");
                }
                if offset >= data.len() {
                    offset = 0;
                }
            }
            assert!(fs.read_all(&long, u64::MAX).unwrap() == data);
        }
    }

    /// Looks up a slash-separated path from the root, without following symlinks.
    fn resolve(fs: &SquashFs, path: &str) -> Option<Inode> {
        let mut inode = fs.root().unwrap();
        for part in path.split('/') {
            inode = fs.lookup(&inode, part.as_bytes()).unwrap()?;
        }
        Some(inode)
    }

    #[test]
    fn read_at_offsets_and_limits() {
        require_mksquashfs!();
        let tmp = TempDir::new("read-at");
        let bs = 4096;
        let (fs, src) = build_and_compare(&tmp, bs, &[]);
        for name in [
            "size-12305",
            "random",
            "sparse",
            "hard-2",
            "zeros",
            "size-4097",
        ] {
            let inode = resolve(&fs, name).unwrap();
            let expected = fs::read(src.join(name)).unwrap();
            let size = expected.len();
            assert_eq!(inode.size, size as u64);
            for offset in [
                0,
                1,
                17,
                bs - 1,
                bs,
                bs + 1,
                2 * bs - 3,
                size.saturating_sub(1),
                size,
            ] {
                if offset > size {
                    continue;
                }
                for len in [1, 7, 100, bs, bs + 2, 3 * bs + 5] {
                    let mut buf = vec![0xa5u8; len];
                    let n = fs.read_at(&inode, offset as u64, &mut buf).unwrap();
                    let want = len.min(size.saturating_sub(offset));
                    assert_eq!(n, want, "{name} at {offset} for {len}");
                    assert!(
                        buf[..n] == expected[offset..offset + n],
                        "{name} at {offset} for {len}"
                    );
                }
            }
            let mut buf = [0u8; 10];
            assert_eq!(fs.read_at(&inode, size as u64 + 100, &mut buf).unwrap(), 0);
            assert_eq!(fs.read_at(&inode, u64::MAX, &mut buf).unwrap(), 0);
            assert_eq!(fs.read_at(&inode, 0, &mut []).unwrap(), 0);
            // Backwards after forwards (the block list walk restarts).
            let mut buf = vec![0u8; 50];
            let n = fs.read_at(&inode, 5, &mut buf).unwrap();
            assert_eq!(buf[..n], expected[5..5 + n]);
        }

        let inode = resolve(&fs, "size-12305").unwrap();
        let err = fs.read_all(&inode, 12304).unwrap_err();
        assert!(matches!(err, SquashError::TooLarge { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("12305") && message.contains("12304"),
            "{message}"
        );
        assert_eq!(fs.read_all(&inode, 12305).unwrap().len(), 12305);
        let empty = resolve(&fs, "size-0").unwrap();
        assert!(fs.read_all(&empty, 0).unwrap().is_empty());
    }

    #[test]
    fn lookups_in_a_large_directory() {
        require_mksquashfs!();
        let tmp = TempDir::new("big-dir");
        let (fs, _) = build_and_compare(&tmp, 4096, &[]);
        let big = resolve(&fs, "big").unwrap();
        assert_eq!(big.kind, Kind::Dir);
        let entries = fs.read_dir(&big).unwrap();
        assert_eq!(entries.len(), BIG_DIR_ENTRIES);
        for i in [
            0,
            1,
            9,
            10,
            255,
            256,
            257,
            349,
            350,
            511,
            512,
            600,
            BIG_DIR_ENTRIES - 1,
        ] {
            let name = big_dir_name(i);
            let inode = fs.lookup(&big, name.as_bytes()).unwrap();
            let inode = inode.unwrap_or_else(|| panic!("{name} not found"));
            let expected = if i % 10 == 0 {
                Kind::Dir
            } else if i % 7 == 0 {
                Kind::Symlink
            } else {
                Kind::File
            };
            assert_eq!(inode.kind, expected, "{name}");
        }
        for absent in [
            "",
            ".",
            "..",
            "a",
            "entry",
            "entry-0000",
            "entry-0000-nn",
            "entry-0350",
            "entry-0699-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
            "entry-9999",
            "zzz",
            "entry-0001-n/x",
        ] {
            assert!(
                fs.lookup(&big, absent.as_bytes()).unwrap().is_none(),
                "{absent:?}"
            );
        }
        assert!(resolve(&fs, "a/b/c/d/deep.txt").is_some());
        assert!(resolve(&fs, "a/b/c/d/missing").is_none());
    }

    /// The on-disk type of an inode (1..=7 basic, 8..=14 extended).
    fn inode_type(fs: &SquashFs, inode: &Inode) -> u16 {
        let pos = fs.inode_pos(inode.reference).unwrap();
        MetaReader::new(fs, fs.inode_region(), pos)
            .unwrap()
            .u16()
            .unwrap()
    }

    #[test]
    fn extended_inodes() {
        require_mksquashfs!();
        let tmp = TempDir::new("extended");
        let (fs, src) = build_and_compare(&tmp, 4096, &[]);
        let hard = resolve(&fs, "hard-1").unwrap();
        assert_eq!(hard.nlink, 3);
        assert_eq!(inode_type(&fs, &hard), 9);
        assert_eq!(resolve(&fs, "a/hard-3").unwrap().number, hard.number);
        let sparse = resolve(&fs, "sparse").unwrap();
        assert_eq!(inode_type(&fs, &sparse), 9);
        let big = resolve(&fs, "big").unwrap();
        assert_eq!(inode_type(&fs, &big), 8);
        let Detail::Dir(loc) = &big.detail else {
            panic!("big is not a directory");
        };
        assert!(loc.index.is_some(), "big has no directory index");
        assert_eq!(inode_type(&fs, &resolve(&fs, "size-1").unwrap()), 2);
        // Entries with xattrs are extended, where they could be set here (the trusted
        // namespace, on symlinks and special files, needs root).
        for (name, basic) in [
            ("xattr-file", 2),
            ("xattr-dir", 1),
            ("xattr-link", 3),
            ("xattr-fifo", 6),
            ("xattr-sock", 7),
            ("xattr-blk", 4),
            ("xattr-chr", 5),
        ] {
            let path = src.join(name);
            let Some(inode) = resolve(&fs, name) else {
                eprintln!("{name} could not be made here");
                continue;
            };
            let expected = if xattr_count(&path) > 0 {
                basic + 7
            } else {
                basic
            };
            assert_eq!(inode_type(&fs, &inode), expected, "{name}");
        }
        let link = resolve(&fs, "xattr-link").unwrap();
        assert_eq!(fs.read_link(&link).unwrap(), b"xattr-file");
        let dir = resolve(&fs, "xattr-dir").unwrap();
        assert_eq!(fs.read_dir(&dir).unwrap().len(), 1);
    }

    fn xattr_count(path: &Path) -> isize {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; a null buffer of length 0 asks for the size only.
        unsafe { libc::llistxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) }
    }

    #[test]
    fn wrong_kinds_are_errors() {
        require_mksquashfs!();
        let tmp = TempDir::new("kinds");
        let (fs, _) = build_and_compare(&tmp, 4096, &[]);
        let root = fs.root().unwrap();
        let file = resolve(&fs, "size-1").unwrap();
        let link = resolve(&fs, "link-rel").unwrap();
        let err = fs.lookup(&file, b"x").unwrap_err();
        assert!(matches!(err, SquashError::WrongKind { .. }), "{err:?}");
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(fs.read_dir(&link).is_err());
        assert!(fs.read_at(&root, 0, &mut [0u8; 4]).is_err());
        assert!(fs.read_all(&link, 100).is_err());
        assert!(fs.read_link(&file).is_err());
        assert_eq!(link.kind, Kind::Symlink);
        assert_eq!(fs.read_link(&link).unwrap(), b"a/b/c/d/deep.txt");
    }

    /// A small image for the corruption tests.
    fn small_image(tmp: &TempDir, args: &[&str]) -> Vec<u8> {
        let src = tmp.path().join("small");
        fs::create_dir(&src).unwrap();
        fs::create_dir_all(src.join("d/e")).unwrap();
        for i in 0..40 {
            fs::write(src.join(format!("d/f{i:02}")), content(i * 37, i as u64)).unwrap();
        }
        fs::write(src.join("big"), content(3 * 8192 + 100, 1)).unwrap();
        fs::write(src.join("d/e/tail"), content(5000, 2)).unwrap();
        symlink("d/e/tail", &src.join("link"));
        fs::hard_link(src.join("big"), src.join("d/big-link")).unwrap();
        let image = tmp.path().join("small.sqfs");
        // 8 KiB blocks: reads that need only the start of a block take the prefix path.
        let mut all = vec!["-b", "8192"];
        all.extend_from_slice(args);
        mksquashfs(&src, &image, &all).unwrap();
        fs::read(&image).unwrap()
    }

    /// Walks the whole tree tolerating every error, reading every file and link.
    fn walk_tolerant(fs: &SquashFs, dir: &Inode, depth: u32, budget: &mut u32) {
        if depth > 8 {
            return;
        }
        let Ok(entries) = fs.read_dir(dir) else {
            return;
        };
        for entry in entries {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let _ = fs.lookup(dir, &entry.name);
            let Ok(inode) = fs.inode_of(&entry) else {
                continue;
            };
            let _ = fs.owner(&inode);
            match inode.kind {
                Kind::File => {
                    let _ = fs.read_all(&inode, 1 << 20);
                    let mut buf = [0u8; 300];
                    let _ = fs.read_at(&inode, 4000, &mut buf);
                }
                Kind::Symlink => {
                    let _ = fs.read_link(&inode);
                }
                Kind::Dir => walk_tolerant(fs, &inode, depth + 1, budget),
                _ => {}
            }
        }
    }

    #[test]
    fn not_squashfs() {
        let tmp = TempDir::new("garbage");
        for (i, bytes) in [
            random_bytes(10_000, 1),
            vec![0u8; 4096],
            b"hsqs".to_vec(),
            Vec::new(),
        ]
        .iter()
        .enumerate()
        {
            let err = open_bytes(tmp.path(), bytes).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("test image: squashfs: "),
                "{i}: {message}"
            );
        }
        let err = open_bytes(tmp.path(), &random_bytes(10_000, 1)).unwrap_err();
        assert!(matches!(err, SquashError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("not a squashfs"), "{err}");
    }

    #[test]
    fn truncated_images() {
        require_mksquashfs!();
        let tmp = TempDir::new("truncated");
        let image = small_image(&tmp, &[]);
        let fs = open_bytes(tmp.path(), &image).unwrap();
        let inode_table = fs.sb.inode_table as usize;
        let used = fs.bytes_used() as usize;
        drop(fs);
        for cut in [
            0,
            10,
            50,
            95,
            96,
            200,
            inode_table / 2,
            inode_table + 10,
            used - 1,
        ] {
            let err = open_bytes(tmp.path(), &image[..cut]).unwrap_err();
            assert!(
                matches!(err, SquashError::Corrupt { .. }),
                "cut at {cut}: {err:?}"
            );
        }
        // The file shorter than the partition the caller says it holds.
        let path = tmp.path().join("short");
        fs::write(&path, &image[..used / 2]).unwrap();
        let err = SquashFs::open(File::open(&path).unwrap(), 0, used as u64, "short").unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
    }

    #[test]
    fn bad_superblocks() {
        require_mksquashfs!();
        let tmp = TempDir::new("superblock");
        let image = small_image(&tmp, &[]);
        let patched = |at: usize, bytes: &[u8]| {
            let mut copy = image.clone();
            copy[at..at + bytes.len()].copy_from_slice(bytes);
            copy
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (patched(28, &3u16.to_le_bytes()), "version 3.0"),
            (patched(30, &1u16.to_le_bytes()), "version 4.1"),
            (patched(12, &5000u32.to_le_bytes()), "bad block size"),
            (patched(12, &(2u32 << 20).to_le_bytes()), "bad block size"),
            (patched(22, &12u16.to_le_bytes()), "bad block size"),
            (patched(20, &9u16.to_le_bytes()), "compressor id 9"),
            (patched(20, &3u16.to_le_bytes()), "lzo"),
            (patched(0, b"sqsh"), "big-endian"),
            (patched(40, &(1u64 << 40).to_le_bytes()), "bytes used"),
            (patched(64, &(1u64 << 40).to_le_bytes()), "inode table"),
            (patched(32, &(1u64 << 40).to_le_bytes()), "root inode"),
        ];
        for (bytes, needle) in cases {
            let err = open_bytes(tmp.path(), &bytes).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(needle), "{needle}: {message}");
            assert!(
                message.starts_with("test image: squashfs: superblock: "),
                "{message}"
            );
        }
        let err = open_bytes(tmp.path(), &patched(28, &3u16.to_le_bytes())).unwrap_err();
        assert!(matches!(err, SquashError::Unsupported { .. }), "{err:?}");
    }

    #[test]
    fn bit_flips_never_panic() {
        require_mksquashfs!();
        let mut rng = XorShift(0x5eed_f00d);
        // Uncompressed tables let flips reach the structures' fields directly; compressed
        // ones exercise the decompressors on damaged input.
        for (args, iterations) in [
            (&["-noI", "-noD", "-noF"][..], 1000),
            (&["-comp", "gzip"], 500),
            (&["-comp", "zstd"], 200),
            (&["-comp", "xz"], 150),
            (&["-comp", "lz4"], 150),
        ] {
            let tmp = TempDir::new("flips");
            let image = small_image(&tmp, args);
            let pristine = open_bytes(tmp.path(), &image).unwrap();
            let tables = pristine.sb.inode_table;
            let used = pristine.bytes_used();
            let mut budget = u32::MAX;
            walk_tolerant(&pristine, &pristine.root().unwrap(), 0, &mut budget);
            drop(pristine);
            for _ in 0..iterations {
                let mut bytes = image.clone();
                for _ in 0..=rng.below(8) {
                    let at = if rng.next() & 1 == 0 {
                        tables + rng.below(used - tables)
                    } else {
                        rng.below(used)
                    };
                    bytes[at as usize] ^= 1 << rng.below(8);
                }
                let Ok(fs) = open_bytes(tmp.path(), &bytes) else {
                    continue;
                };
                if let Ok(root) = fs.root() {
                    let mut budget = 2000;
                    walk_tolerant(&fs, &root, 0, &mut budget);
                }
            }
        }
    }

    #[test]
    fn xz_with_bcj_filters_reads_or_says_unsupported() {
        require_mksquashfs!();
        let tmp = TempDir::new("bcj");
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        make_tree(&src, 4096);
        // Machine code, where the x86 filter tends to win.
        let exe = std::env::current_exe().unwrap();
        let code = fs::read(&exe).unwrap();
        fs::write(src.join("code"), &code[..code.len().min(1 << 20)]).unwrap();
        let image = tmp.path().join("image.sqfs");
        mksquashfs(&src, &image, &["-b", "4096", "-comp", "xz", "-Xbcj", "x86"]).unwrap();
        let fs = open_image(&image);
        let root = fs.root().unwrap();
        let mut unsupported = 0;
        for entry in fs.read_dir(&root).unwrap() {
            let Ok(inode) = fs.inode_of(&entry) else {
                unsupported += 1;
                continue;
            };
            if inode.kind != Kind::File {
                continue;
            }
            match fs.read_all(&inode, u64::MAX) {
                Ok(data) => {
                    assert!(data == fs::read(src.join(OsStr::from_bytes(&entry.name))).unwrap())
                }
                Err(e) => {
                    assert!(matches!(e, SquashError::Unsupported { .. }), "{e:?}");
                    assert!(e.to_string().contains("BCJ x86"), "{e}");
                    unsupported += 1;
                }
            }
        }
        eprintln!("files in blocks with the BCJ filter: {unsupported}");
    }

    #[test]
    fn hostile_decompressor_input_is_bounded() {
        // xz: a chunk that declares more output than a metadata block holds.
        let mut xz = b"\xfd7zXZ\x00\x00\x01".to_vec();
        xz.extend_from_slice(&[0; 4]);
        xz.extend_from_slice(&[0x02, 0x00, 0x21, 0x01, 0x16, 0x00, 0x00, 0x00, 0, 0, 0, 0]);
        xz.extend_from_slice(&[0xe0, 0xff, 0xff, 0x00, 0x10, 0x5d]);
        let err = xz_precheck(&xz, METADATA_SIZE).unwrap_err();
        assert!(format!("{err:?}").contains("more than 8192"), "{err:?}");
        // zstd: a window far larger than accepted.
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00];
        let err = zstd_precheck(&zstd, METADATA_SIZE).unwrap_err();
        assert!(format!("{err:?}").contains("window"), "{err:?}");
        // zstd: a frame that declares more than the cap.
        let zstd = [
            0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
        ];
        let err = zstd_precheck(&zstd, METADATA_SIZE).unwrap_err();
        assert!(format!("{err:?}").contains("more than 8192"), "{err:?}");
    }
}
