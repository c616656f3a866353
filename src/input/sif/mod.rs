//! Apptainer/Singularity SIF files (the Singularity Image Format), read from the file
//! alone: the global header, the descriptor table, the primary system partition (whose
//! squashfs superblock can be checked in place) and the JSON labels object. Only the
//! header, the table and the few bytes asked for are read, never the whole image. The
//! input is untrusted and this runs as root, so every field is range-checked against the
//! file's length before it is used, allocations are capped, and every error names the
//! file and what was being read.
//!
//! Format source: github.com/apptainer/sif (and its upstream github.com/sylabs/sif),
//! `pkg/sif/sif.go` (the `header` struct and the DataType/FSType/PartType constants),
//! `pkg/sif/descriptor.go` (`rawDescriptor`, `partition`), `pkg/sif/arch.go` (arch codes)
//! and `pkg/sif/load.go` (read with `encoding/binary`, `binary.LittleEndian`). Go's
//! `encoding/binary` packs struct fields with no padding, which gives:
//!
//! ```text
//! header (128 bytes at offset 0)          rawDescriptor (585 bytes each)
//!   0  LaunchScript [32]byte                0  DataType        int32
//!  32  Magic        [10]byte "SIF_MAGIC\0"  4  Used            bool (1 byte)
//!  42  Version      [3]byte  "01\0"         5  ID              uint32
//!  45  Arch         [3]byte  "02\0"         9  GroupID         uint32 (0xf0000000 | group)
//!  48  ID           [16]byte (UUID)        13  LinkedID        uint32
//!  64  CreatedAt         int64             17  Offset          int64
//!  72  ModifiedAt        int64             25  Size            int64
//!  80  DescriptorsFree   int64             33  SizeWithPadding int64
//!  88  DescriptorsTotal  int64             41  CreatedAt       int64
//!  96  DescriptorsOffset int64             49  ModifiedAt      int64
//! 104  DescriptorsSize   int64             57  UID             int64 (deprecated)
//! 112  DataOffset        int64             65  GID             int64 (deprecated)
//! 120  DataSize          int64             73  Name            [128]byte
//!                                          201  Extra           [384]byte
//! partition Extra: 0 Fstype int32, 4 Parttype int32, 8 Arch [3]byte
//! ```
//!
//! The table holds `DescriptorsTotal` entries, of which only those with `Used` set are
//! data objects (load.go reads them all; lookups skip unused ones).

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::bytes::Endian;

/// Size of the global header on disk.
pub const HEADER_LEN: usize = 128;
/// Size of one descriptor on disk.
pub const DESCRIPTOR_LEN: usize = 585;
/// Apptainer creates 48 descriptors by default; a table a thousand times larger is not an
/// image but an attempt to make us allocate.
pub const MAX_DESCRIPTORS: u64 = 1 << 16;
/// Labels are a small JSON object; the cap keeps a hostile size from allocating.
pub const MAX_LABELS: i64 = 16 << 20;
/// The squashfs 4.0 superblock: the part of it that is checked.
pub const SQUASHFS_SUPERBLOCK_LEN: i64 = 96;

const MAGIC: &[u8] = b"SIF_MAGIC";
const MAGIC_AT: usize = 32;
const MAGIC_LEN: usize = 10;
/// The only specification version; load.go rejects anything newer.
const CURRENT_VERSION: &str = "01";
/// Group IDs are stored with these bits set (sif.go `descrGroupMask`).
const GROUP_MASK: u32 = 0xf000_0000;
/// "hsqs" read as a little-endian u32.
const SQUASHFS_MAGIC: u32 = 0x7371_7368;

/// A parsed SIF file: its global header and its used descriptors, in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sif {
    /// How errors name the file (its path when known).
    pub file: String,
    pub header: Header,
    pub descriptors: Vec<Descriptor>,
}

/// The SIF global header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Specification version, e.g. "01".
    pub version: String,
    /// Primary architecture as a Go arch name ("amd64", "arm64", ...) or "unknown".
    pub arch: String,
    /// The image UUID in its usual hyphenated lowercase text form.
    pub id: String,
    pub created: i64,
    pub modified: i64,
    pub descriptors_free: i64,
    pub descriptors_total: i64,
    pub descriptors_offset: i64,
    pub descriptors_size: i64,
    pub data_offset: i64,
    pub data_size: i64,
}

/// One used data-object descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub data_type: DataType,
    pub id: u32,
    /// The group number with the on-disk 0xf0000000 marker removed (0: no group), as
    /// the sif library's `Descriptor.GroupID()` reports it.
    pub group_id: u32,
    /// The raw link: an object ID, or a group ID when the 0xf0000000 bits are set.
    pub link: u32,
    pub offset: i64,
    pub size: i64,
    pub name: String,
    /// Filled for `DataType::Partition` only.
    pub partition: Option<Partition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    DefFile,
    EnvVar,
    Labels,
    Partition,
    Signature,
    GenericJson,
    Generic,
    CryptoMessage,
    Sbom,
    OciRootIndex,
    OciBlob,
    Unknown(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub fs_type: FsType,
    pub part_type: PartType,
    /// Go arch name or "unknown", as for the header.
    pub arch: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Squash,
    Ext3,
    ImmuObj,
    Raw,
    EncryptedSquash,
    Unknown(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartType {
    System,
    PrimSys,
    Data,
    Overlay,
    Unknown(i32),
}

#[derive(Debug, thiserror::Error)]
pub enum SifError {
    #[error("{file}: cannot read {what}: {source}")]
    Io {
        file: String,
        what: String,
        source: io::Error,
    },
    #[error("{file}: not a SIF file: {reason}")]
    NotSif { file: String, reason: String },
    #[error("{file}: truncated: the file ends inside {what}")]
    Truncated { file: String, what: String },
    #[error("{file}: unsupported SIF version {version:?} (this reader knows {CURRENT_VERSION})")]
    UnsupportedVersion { file: String, version: String },
    #[error("{file}: bad SIF global header: {reason}")]
    BadHeader { file: String, reason: String },
    #[error("{file}: bad SIF descriptor {index}: {reason}")]
    BadDescriptor {
        file: String,
        index: usize,
        reason: String,
    },
    #[error("{file}: no primary system partition in the SIF descriptors")]
    NoPrimaryPartition { file: String },
    #[error("{file}: {count} primary system partitions in the SIF descriptors, expected one")]
    MultiplePrimaryPartitions { file: String, count: usize },
    #[error("{file}: primary partition {id} is encrypted squashfs and cannot be inspected")]
    EncryptedPartition { file: String, id: u32 },
    #[error("{file}: primary partition {id} has file system type {fs_type}, not squashfs")]
    UnsupportedFsType {
        file: String,
        id: u32,
        fs_type: FsType,
    },
    #[error(
        "{file}: data of descriptor {id} (offset {offset}, size {size}) lies outside the file ({file_len} bytes)"
    )]
    OutOfRange {
        file: String,
        id: u32,
        offset: i64,
        size: i64,
        file_len: u64,
    },
    #[error("{file}: partition {id} is not squashfs: {reason}")]
    NotSquashfs {
        file: String,
        id: u32,
        reason: String,
    },
    #[error(
        "{file}: labels descriptor {id} is {size} bytes, more than the {MAX_LABELS}-byte limit"
    )]
    LabelsTooLarge { file: String, id: u32, size: i64 },
}

impl Sif {
    /// Parses from a reader that supports positioned reads (a File); reads only the header
    /// and descriptor table.
    ///
    /// # Errors
    /// Not a SIF file, a newer version, a truncated header or table, an oversized table, or
    /// a used descriptor whose data lies outside the file; I/O errors.
    pub fn read(file: &File) -> Result<Sif, SifError> {
        let name = file_name(file);
        let file_len = file_len(file, &name, "the file size")?;
        let raw = read_header_bytes(file, &name, file_len)?;
        let header = parse_header(&raw, &name)?;
        let table = read_table(file, &name, file_len, &header)?;
        let descriptors = parse_table(&table, &name, file_len)?;
        Ok(Sif {
            file: name,
            header,
            descriptors,
        })
    }

    /// The primary system partition (`PrimSys`), whose range lies inside the file.
    ///
    /// # Errors
    /// None or several, encrypted (`EncryptedSquash`), not squashfs (names the fs type),
    /// range outside `file_len`.
    pub fn primary_partition(&self, file_len: u64) -> Result<&Descriptor, SifError> {
        let prims: Vec<(&Descriptor, &Partition)> = self
            .descriptors
            .iter()
            .filter_map(|d| d.partition.as_ref().map(|p| (d, p)))
            .filter(|(_, p)| p.part_type == PartType::PrimSys)
            .collect();
        let (desc, part) = match prims.as_slice() {
            [] => return Err(self.err_no_primary()),
            [one] => *one,
            many => {
                return Err(SifError::MultiplePrimaryPartitions {
                    file: self.file.clone(),
                    count: many.len(),
                });
            }
        };
        self.check_fs_type(desc.id, part.fs_type)?;
        check_range(&self.file, desc, file_len)?;
        Ok(desc)
    }

    /// The JSON labels descriptor's bytes (Apptainer stores labels here too), if any. The
    /// first labels descriptor wins, as the sif library's lookup-by-type does.
    ///
    /// # Errors
    /// Larger than `MAX_LABELS`, outside the file, truncated, or I/O errors.
    pub fn labels(&self, file: &File) -> Result<Option<Vec<u8>>, SifError> {
        let Some(desc) = self
            .descriptors
            .iter()
            .find(|d| d.data_type == DataType::Labels)
        else {
            return Ok(None);
        };
        if desc.size > MAX_LABELS {
            return Err(SifError::LabelsTooLarge {
                file: self.file.clone(),
                id: desc.id,
                size: desc.size,
            });
        }
        // The file may have changed since `read`: check against its length now.
        let len = file_len(file, &self.file, "the file size")?;
        check_range(&self.file, desc, len)?;
        let what = format!("labels descriptor {}", desc.id);
        let bytes = read_exact(file, &self.file, desc.offset, desc.size, &what)?;
        Ok(Some(bytes))
    }

    fn err_no_primary(&self) -> SifError {
        SifError::NoPrimaryPartition {
            file: self.file.clone(),
        }
    }

    fn check_fs_type(&self, id: u32, fs_type: FsType) -> Result<(), SifError> {
        match fs_type {
            FsType::Squash => Ok(()),
            FsType::EncryptedSquash => Err(SifError::EncryptedPartition {
                file: self.file.clone(),
                id,
            }),
            other => Err(SifError::UnsupportedFsType {
                file: self.file.clone(),
                id,
                fs_type: other,
            }),
        }
    }
}

/// Checks that `desc`'s data starts with a squashfs 4.x superblock ("hsqs") whose
/// `bytes_used` fits inside the descriptor: what the kernel would need to mount it.
///
/// # Errors
/// `NotSquashfs` (too small, no magic, not version 4, larger than the partition),
/// `Truncated` when the file ends inside the superblock, or I/O errors.
pub fn check_squashfs(file: &File, desc: &Descriptor) -> Result<(), SifError> {
    let name = file_name(file);
    let not_squash = |reason: String| SifError::NotSquashfs {
        file: name.clone(),
        id: desc.id,
        reason,
    };
    if desc.size < SQUASHFS_SUPERBLOCK_LEN {
        return Err(not_squash(format!(
            "it is {} bytes, smaller than a squashfs superblock ({SQUASHFS_SUPERBLOCK_LEN})",
            desc.size
        )));
    }
    let what = format!("the squashfs superblock of partition {}", desc.id);
    let sb = read_exact(file, &name, desc.offset, SQUASHFS_SUPERBLOCK_LEN, &what)?;
    let magic = le_u32(&sb, 0);
    if magic != SQUASHFS_MAGIC {
        return Err(not_squash(format!(
            "no \"hsqs\" magic at offset {} (found {magic:#010x})",
            desc.offset
        )));
    }
    let (major, minor) = (le_u16(&sb, 28), le_u16(&sb, 30));
    if major != 4 {
        return Err(not_squash(format!(
            "squashfs version {major}.{minor}, expected 4.x"
        )));
    }
    let used = le_u64(&sb, 40);
    if used > desc.size.unsigned_abs() {
        return Err(not_squash(format!(
            "the superblock claims {used} bytes but the partition is {} bytes",
            desc.size
        )));
    }
    Ok(())
}

/// The file's path for messages, from /proc (the reader is handed an open File); the
/// descriptor number if /proc is unavailable.
fn file_name(file: &File) -> String {
    let fd = file.as_raw_fd();
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(path) => path.display().to_string(),
        Err(_) => format!("file descriptor {fd}"),
    }
}

fn file_len(file: &File, name: &str, what: &str) -> Result<u64, SifError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|source| io_err(name, what, source))
}

fn io_err(name: &str, what: &str, source: io::Error) -> SifError {
    SifError::Io {
        file: name.to_string(),
        what: what.to_string(),
        source,
    }
}

fn truncated(name: &str, what: &str) -> SifError {
    SifError::Truncated {
        file: name.to_string(),
        what: what.to_string(),
    }
}

/// Reads exactly `len` bytes at `offset`, both already checked non-negative by callers;
/// a short file is reported as truncation, not as an I/O error.
fn read_exact(
    file: &File,
    name: &str,
    offset: i64,
    len: i64,
    what: &str,
) -> Result<Vec<u8>, SifError> {
    let (Ok(offset), Ok(len)) = (u64::try_from(offset), usize::try_from(len)) else {
        return Err(truncated(name, what));
    };
    let mut buf = vec![0u8; len];
    match file.read_exact_at(&mut buf, offset) {
        Ok(()) => Ok(buf),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(truncated(name, what)),
        Err(e) => Err(io_err(name, what, e)),
    }
}

/// Reads the first `HEADER_LEN` bytes, telling "not a SIF at all" (no magic where it
/// should be) apart from "a SIF cut short" (magic present, header incomplete).
fn read_header_bytes(file: &File, name: &str, file_len: u64) -> Result<[u8; HEADER_LEN], SifError> {
    let not_sif = |reason: &str| SifError::NotSif {
        file: name.to_string(),
        reason: reason.to_string(),
    };
    if file_len == 0 {
        return Err(not_sif("the file is empty"));
    }
    if file_len < (MAGIC_AT + MAGIC_LEN) as u64 {
        return Err(not_sif("the file is too short to hold the SIF magic"));
    }
    let mut magic = [0u8; MAGIC_LEN];
    read_at(file, name, MAGIC_AT as u64, &mut magic, "the SIF magic")?;
    if trim_nul(&magic) != MAGIC {
        return Err(not_sif("no \"SIF_MAGIC\" at offset 32"));
    }
    let mut raw = [0u8; HEADER_LEN];
    read_at(file, name, 0, &mut raw, "the SIF global header")?;
    Ok(raw)
}

fn read_at(
    file: &File,
    name: &str,
    offset: u64,
    buf: &mut [u8],
    what: &str,
) -> Result<(), SifError> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(truncated(name, what)),
        Err(e) => Err(io_err(name, what, e)),
    }
}

fn parse_header(raw: &[u8; HEADER_LEN], name: &str) -> Result<Header, SifError> {
    let version = text(raw.get(42..45).unwrap_or_default());
    // load.go compares the trimmed version text and rejects anything newer.
    if version.as_str() > CURRENT_VERSION || version.is_empty() {
        return Err(SifError::UnsupportedVersion {
            file: name.to_string(),
            version,
        });
    }
    let header = Header {
        version,
        arch: go_arch(raw.get(45..48).unwrap_or_default()),
        id: uuid_text(raw.get(48..64).unwrap_or_default()),
        created: le_i64(raw, 64),
        modified: le_i64(raw, 72),
        descriptors_free: le_i64(raw, 80),
        descriptors_total: le_i64(raw, 88),
        descriptors_offset: le_i64(raw, 96),
        descriptors_size: le_i64(raw, 104),
        data_offset: le_i64(raw, 112),
        data_size: le_i64(raw, 120),
    };
    check_header(&header, name)?;
    Ok(header)
}

/// Only what this reader relies on is checked: the table's position and count.
fn check_header(h: &Header, name: &str) -> Result<(), SifError> {
    let bad = |reason: String| SifError::BadHeader {
        file: name.to_string(),
        reason,
    };
    if h.descriptors_total < 0 {
        return Err(bad(format!(
            "negative descriptor count {}",
            h.descriptors_total
        )));
    }
    if h.descriptors_offset < 0 {
        return Err(bad(format!(
            "negative descriptor table offset {}",
            h.descriptors_offset
        )));
    }
    Ok(())
}

/// Reads the whole descriptor table after checking, before allocating, that it fits
/// inside the file and under `MAX_DESCRIPTORS`.
fn read_table(file: &File, name: &str, file_len: u64, h: &Header) -> Result<Vec<u8>, SifError> {
    let count = h.descriptors_total.unsigned_abs();
    let offset = h.descriptors_offset.unsigned_abs();
    let what = format!("the descriptor table ({count} entries at offset {offset})");
    let table_len = count.checked_mul(DESCRIPTOR_LEN as u64);
    let end = table_len.and_then(|l| l.checked_add(offset));
    match end {
        Some(end) if end <= file_len => {}
        _ => return Err(truncated(name, &what)),
    }
    if count > MAX_DESCRIPTORS {
        return Err(SifError::BadHeader {
            file: name.to_string(),
            reason: format!("{count} descriptors, more than the limit of {MAX_DESCRIPTORS}"),
        });
    }
    let table_len = table_len
        .and_then(|l| i64::try_from(l).ok())
        .unwrap_or(i64::MAX);
    read_exact(file, name, h.descriptors_offset, table_len, &what)
}

fn parse_table(table: &[u8], name: &str, file_len: u64) -> Result<Vec<Descriptor>, SifError> {
    let mut out = Vec::new();
    for (index, raw) in table.chunks_exact(DESCRIPTOR_LEN).enumerate() {
        // encoding/binary decodes any non-zero byte as `true`.
        let used = raw.get(4).is_some_and(|&b| b != 0);
        if !used {
            continue;
        }
        let desc = parse_descriptor(raw);
        check_descriptor(&desc, index, name, file_len)?;
        out.push(desc);
    }
    Ok(out)
}

fn parse_descriptor(raw: &[u8]) -> Descriptor {
    let data_type = DataType::from_raw(le_i32(raw, 0));
    let extra = raw.get(201..DESCRIPTOR_LEN).unwrap_or_default();
    let partition = (data_type == DataType::Partition).then(|| Partition {
        fs_type: FsType::from_raw(le_i32(extra, 0)),
        part_type: PartType::from_raw(le_i32(extra, 4)),
        arch: go_arch(extra.get(8..11).unwrap_or_default()),
    });
    Descriptor {
        data_type,
        id: le_u32(raw, 5),
        group_id: le_u32(raw, 9) & !GROUP_MASK,
        link: le_u32(raw, 13),
        offset: le_i64(raw, 17),
        size: le_i64(raw, 25),
        name: text(raw.get(73..201).unwrap_or_default()),
        partition,
    }
}

/// Every used object's data must lie inside the file: later reads trust these ranges.
fn check_descriptor(
    d: &Descriptor,
    index: usize,
    name: &str,
    file_len: u64,
) -> Result<(), SifError> {
    let bad = |reason: String| SifError::BadDescriptor {
        file: name.to_string(),
        index,
        reason,
    };
    if d.offset < 0 || d.size < 0 {
        return Err(bad(format!(
            "id {}: negative data offset {} or size {}",
            d.id, d.offset, d.size
        )));
    }
    if !range_inside(d.offset, d.size, file_len) {
        return Err(bad(format!(
            "id {}: data at offset {} with size {} lies outside the file ({file_len} bytes)",
            d.id, d.offset, d.size
        )));
    }
    Ok(())
}

fn range_inside(offset: i64, size: i64, file_len: u64) -> bool {
    let (Ok(offset), Ok(size)) = (u64::try_from(offset), u64::try_from(size)) else {
        return false;
    };
    offset.checked_add(size).is_some_and(|end| end <= file_len)
}

fn check_range(name: &str, d: &Descriptor, file_len: u64) -> Result<(), SifError> {
    if range_inside(d.offset, d.size, file_len) {
        return Ok(());
    }
    Err(SifError::OutOfRange {
        file: name.to_string(),
        id: d.id,
        offset: d.offset,
        size: d.size,
        file_len,
    })
}

impl DataType {
    /// sif.go: `DataDeffile DataType = iota + 0x4001` and onwards, in this order.
    pub fn from_raw(v: i32) -> DataType {
        match v {
            0x4001 => DataType::DefFile,
            0x4002 => DataType::EnvVar,
            0x4003 => DataType::Labels,
            0x4004 => DataType::Partition,
            0x4005 => DataType::Signature,
            0x4006 => DataType::GenericJson,
            0x4007 => DataType::Generic,
            0x4008 => DataType::CryptoMessage,
            0x4009 => DataType::Sbom,
            0x400a => DataType::OciRootIndex,
            0x400b => DataType::OciBlob,
            other => DataType::Unknown(other),
        }
    }
}

impl FsType {
    /// sif.go: `FsSquash FSType = iota + 1`, then Ext3, ImmuObj, Raw, EncryptedSquashfs.
    pub fn from_raw(v: i32) -> FsType {
        match v {
            1 => FsType::Squash,
            2 => FsType::Ext3,
            3 => FsType::ImmuObj,
            4 => FsType::Raw,
            5 => FsType::EncryptedSquash,
            other => FsType::Unknown(other),
        }
    }
}

impl PartType {
    /// sif.go: `PartSystem PartType = iota + 1`, then PrimSys, Data, Overlay.
    pub fn from_raw(v: i32) -> PartType {
        match v {
            1 => PartType::System,
            2 => PartType::PrimSys,
            3 => PartType::Data,
            4 => PartType::Overlay,
            other => PartType::Unknown(other),
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsType::Squash => f.write_str("squashfs"),
            FsType::Ext3 => f.write_str("ext3"),
            FsType::ImmuObj => f.write_str("immutable object archive"),
            FsType::Raw => f.write_str("raw data"),
            FsType::EncryptedSquash => f.write_str("encrypted squashfs"),
            FsType::Unknown(v) => write!(f, "unknown ({v})"),
        }
    }
}

impl fmt::Display for PartType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartType::System => f.write_str("system"),
            PartType::PrimSys => f.write_str("primary system"),
            PartType::Data => f.write_str("data"),
            PartType::Overlay => f.write_str("overlay"),
            PartType::Unknown(v) => write!(f, "unknown ({v})"),
        }
    }
}

/// arch.go: two-digit codes, NUL-terminated, mapped to Go arch names.
fn go_arch(raw: &[u8]) -> String {
    let name = match trim_nul(raw) {
        b"01" => "386",
        b"02" => "amd64",
        b"03" => "arm",
        b"04" => "arm64",
        b"05" => "ppc64",
        b"06" => "ppc64le",
        b"07" => "mips",
        b"08" => "mipsle",
        b"09" => "mips64",
        b"10" => "mips64le",
        b"11" => "s390x",
        _ => "unknown",
    };
    name.to_string()
}

fn uuid_text(raw: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Fixed-size text fields are NUL-padded on the right (the sif library trims with
/// `TrimRight(..., "\x00")`); non-UTF-8 bytes are shown, not rejected.
fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(trim_nul(raw)).into_owned()
}

fn trim_nul(raw: &[u8]) -> &[u8] {
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    raw.get(..end).unwrap_or_default()
}

/// Little-endian reads at constant offsets inside fixed-size buffers (the shared checked
/// reader); a short buffer (impossible by construction) reads as zero rather than
/// panicking.
fn le_u16(b: &[u8], at: usize) -> u16 {
    Endian::Little.u16_at(b, at).unwrap_or(0)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    Endian::Little.u32_at(b, at).unwrap_or(0)
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    Endian::Little.i32_at(b, at).unwrap_or(0)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    Endian::Little.u64_at(b, at).unwrap_or(0)
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    Endian::Little.i64_at(b, at).unwrap_or(0)
}

#[cfg(test)]
mod tests;
