//! File data: the block list walked (and remembered between reads), fragments (tails),
//! and a small cache of decompressed data blocks.

use super::*;

/// Where the file read last stands in its block list, so that the next read from the same
/// file can continue rather than sum the list from its start.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockWalker {
    /// The file's inode reference.
    pub(super) inode: u64,
    /// The index of the block the walker stands at.
    pub(super) index: u64,
    /// That block's position.
    pub(super) disk: u64,
    /// That block's entry in the list.
    pub(super) list: MetaPos,
}

/// A decompressed data or fragment block in the cache.
pub(super) struct CachedBlock {
    pub(super) pos: u64,
    pub(super) word: u32,
    pub(super) data: Rc<[u8]>,
    /// False when `data` is only the block's first bytes.
    pub(super) complete: bool,
}

impl SquashFs {
    /// The body of [`SquashFs::read_at`].
    pub(super) fn read_file(
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
    pub(super) fn read_tail(
        &self,
        loc: &FileLoc,
        within: usize,
        dst: &mut [u8],
    ) -> Result<(), Fault> {
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
    pub(super) fn block_location(
        &self,
        inode: u64,
        loc: &FileLoc,
        index: u64,
    ) -> Result<(u64, u32), Fault> {
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
    pub(super) fn stored_len(&self, pos: u64, word: u32) -> Result<usize, Fault> {
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
    pub(super) fn with_stored<T>(
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
    pub(super) fn load_block(
        &self,
        pos: u64,
        word: u32,
        out: &mut [u8],
        exact: bool,
    ) -> Result<usize, Fault> {
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
    pub(super) fn load_prefix(
        &self,
        pos: u64,
        word: u32,
        out: &mut [u8],
    ) -> Result<(usize, bool), Fault> {
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
    pub(super) fn cached_block(
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
}
