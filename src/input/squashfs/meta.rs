//! Metadata blocks (the inode, directory, fragment and id tables are made of them): where
//! a table may lie, reading across block boundaries, and the cache of decompressed blocks;
//! the fragment and id lookup tables.

use super::*;

/// A position in a metadata table: a block's start (absolute) and an offset into its
/// decompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MetaPos {
    pub(super) block: u64,
    pub(super) offset: u16,
}

/// The span of the image where one table's metadata blocks may lie.
#[derive(Debug, Clone, Copy)]
pub(super) struct Region {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) name: &'static str,
}

/// A decompressed metadata block.
#[derive(Debug)]
pub(super) struct MetaBlock {
    pub(super) data: Box<[u8]>,
    /// Where the next block starts.
    pub(super) next: u64,
}

/// Sequential reads from a metadata table, crossing block boundaries.
pub(super) struct MetaReader<'a> {
    pub(super) fs: &'a SquashFs,
    pub(super) region: Region,
    pub(super) block_pos: u64,
    pub(super) block: Rc<MetaBlock>,
    pub(super) offset: usize,
}

impl<'a> MetaReader<'a> {
    pub(super) fn new(
        fs: &'a SquashFs,
        region: Region,
        pos: MetaPos,
    ) -> Result<MetaReader<'a>, Fault> {
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
    pub(super) fn pos(&self) -> MetaPos {
        MetaPos {
            block: self.block_pos,
            // At most METADATA_SIZE, which fits.
            offset: u16::try_from(self.offset).unwrap_or(u16::MAX),
        }
    }

    /// Fills `out`, moving on to following blocks as needed.
    pub(super) fn read(&mut self, out: &mut [u8]) -> Result<(), Fault> {
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

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let mut out = [0u8; N];
        self.read(&mut out)?;
        Ok(out)
    }

    pub(super) fn u16(&mut self) -> Result<u16, Fault> {
        self.array().map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, Fault> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64, Fault> {
        self.array().map(u64::from_le_bytes)
    }
}

impl SquashFs {
    /// The decompressed metadata block at `pos`, which must lie in `region`.
    pub(super) fn meta_block(&self, pos: u64, region: Region) -> Result<Rc<MetaBlock>, Fault> {
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
}

impl SquashFs {
    /// The metadata block positions of a lookup table (fragment or id table): `count`
    /// entries of `entry_len` bytes, `per_block` to a block, listed at `start`.
    pub(super) fn lookup_table(
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
    pub(super) fn fragment(&self, index: u32) -> Result<(u64, u32), Fault> {
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
    pub(super) fn id(&self, index: u16) -> Result<u32, Fault> {
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
