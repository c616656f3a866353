//! Directories: listings scanned entry by entry, names checked, and lookups that use the
//! directory index to start near the name.

use super::*;

/// One entry of a directory listing, as scanned.
pub(super) struct RawEntry<'n> {
    pub(super) name: &'n [u8],
    pub(super) kind: Kind,
    pub(super) reference: u64,
    pub(super) number: u32,
}

/// Whether `name` can be a directory entry's name.
pub(super) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.iter().any(|&c| c == b'/' || c == 0)
}

impl SquashFs {
    pub(super) fn block_mask(&self) -> u64 {
        u64::from(self.sb.block_size).saturating_sub(1)
    }

    /// A directory's listing location, checking the kind and the listing cap.
    pub(super) fn dir_loc<'i>(
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
    pub(super) fn scan_dir(
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
    pub(super) fn find(&self, dir: &DirLoc, name: &[u8]) -> Result<Option<(u64, Kind)>, Fault> {
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
    pub(super) fn index_start(&self, dir: &DirLoc, name: &[u8]) -> Result<(MetaPos, u64), Fault> {
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
}
