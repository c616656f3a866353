//! The superblock: the 96 bytes at the start of the filesystem, read and checked before
//! anything else.

use super::*;

/// The superblock's fields that are used.
#[derive(Debug, Clone)]
pub(super) struct Superblock {
    pub(super) inode_count: u32,
    pub(super) block_size: u32,
    pub(super) block_log: u32,
    pub(super) fragment_count: u32,
    pub(super) compression: Compression,
    pub(super) flags: u16,
    pub(super) id_count: u16,
    pub(super) root_inode: u64,
    pub(super) bytes_used: u64,
    pub(super) id_table: u64,
    pub(super) inode_table: u64,
    pub(super) directory_table: u64,
    pub(super) fragment_table: u64,
    /// End of the directory table: the next table's start, or `bytes_used`.
    pub(super) directory_end: u64,
}

impl Superblock {
    /// Parses and checks the 96 superblock bytes of a partition of `len` bytes.
    pub(super) fn parse(raw: &[u8; SUPERBLOCK_BYTES], len: u64) -> Result<Superblock, Fault> {
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
