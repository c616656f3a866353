//! Inodes: where an inode reference points, and the file, directory and symlink inodes
//! decoded and checked.

use super::*;

impl SquashFs {
    /// The position an inode reference points to, checked to be in the inode table.
    pub(super) fn inode_pos(&self, reference: u64) -> Result<MetaPos, Fault> {
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
    pub(super) fn entry_inode(&self, reference: u64, kind: Kind) -> Result<Inode, Fault> {
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
    pub(super) fn read_inode(&self, reference: u64) -> Result<Inode, Fault> {
        let place = || {
            format!(
                "inode at block {} offset {} of the inode table",
                reference >> 16,
                reference & 0xffff
            )
        };
        self.read_inode_at(reference).map_err(|f| f.at(place))
    }

    pub(super) fn read_inode_at(&self, reference: u64) -> Result<Inode, Fault> {
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

    pub(super) fn read_dir_inode(
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

    pub(super) fn read_file_inode(
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
}
