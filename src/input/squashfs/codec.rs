//! Decompression: one decompressor per image, asked only for a bounded amount of output,
//! with prechecks of the xz and zstd headers and the compressor options of the superblock.

use super::*;

/// The decompressor for an image, with state kept between blocks.
pub(super) struct Codec {
    pub(super) compression: Compression,
    pub(super) inflate: Option<flate2::Decompress>,
    pub(super) deflate: Option<libdeflater::Decompressor>,
    pub(super) zstd: Option<ruzstd::decoding::FrameDecoder>,
}

impl Codec {
    pub(super) fn new(compression: Compression) -> Codec {
        Codec {
            compression,
            inflate: None,
            deflate: None,
            zstd: None,
        }
    }

    /// Decompresses `input` into `out`, refusing output longer than `out`; returns the
    /// decompressed length.
    pub(super) fn decompress(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, Fault> {
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
    pub(super) fn inflate_prefix(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, bool), Fault> {
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
pub(super) fn too_long(cap: usize) -> Fault {
    corrupt(format!("the block decompresses to more than {cap} bytes"))
}

/// A `Write` into a fixed slice that fails rather than grow.
pub(super) struct SliceWriter<'a> {
    pub(super) out: &'a mut [u8],
    pub(super) len: usize,
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
pub(super) fn xz_precheck(input: &[u8], cap: usize) -> Result<(), Fault> {
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
pub(super) fn zstd_precheck(input: &[u8], cap: usize) -> Result<(), Fault> {
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

impl SquashFs {
    /// Decompresses with the image's compressor into `out` (at most `out.len()` bytes).
    pub(super) fn decompress(&self, input: &[u8], out: &mut [u8]) -> Result<usize, Fault> {
        self.with_codec(|codec| codec.decompress(input, out))
    }

    /// Runs `f` on the decompressor. The decompressors are third-party code fed untrusted
    /// bytes: a panic in one of them is reported as corrupt data rather than unwinding
    /// through the caller.
    pub(super) fn with_codec<T>(
        &self,
        f: impl FnOnce(&mut Codec) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
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
}

impl SquashFs {
    /// Reads and checks the compressor options block after the superblock.
    pub(super) fn check_compressor_options(&self) -> Result<(), Fault> {
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
}
