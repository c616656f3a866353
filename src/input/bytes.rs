//! The one checked byte reader of the binary parsers (squashfs, SIF, the loader cache,
//! ELF): every read is bounds-checked and overflow-checked, and a read that does not fit
//! is `None`, never a panic and never a read past the end. Two forms:
//! - [`Cursor`]: sequential reads that move through a slice;
//! - [`Endian`]'s `*_at` methods: reads at an offset, for fixed layouts and tables.

/// The byte order of the numbers a format stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// The `N` bytes at `at`, or None when they do not fit in `buf`.
pub fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

macro_rules! number_at {
    ($($name:ident: $ty:ty),*) => {$(
        #[doc = concat!("The `", stringify!($ty), "` at offset `at` of `buf` in this byte order.")]
        pub fn $name(self, buf: &[u8], at: usize) -> Option<$ty> {
            let raw = array_at(buf, at)?;
            Some(match self {
                Endian::Little => <$ty>::from_le_bytes(raw),
                Endian::Big => <$ty>::from_be_bytes(raw),
            })
        }
    )*};
}

impl Endian {
    /// Big-endian when `big`, else little-endian.
    pub fn big_if(big: bool) -> Endian {
        if big { Endian::Big } else { Endian::Little }
    }

    number_at!(u16_at: u16, u32_at: u32, u64_at: u64, i32_at: i32, i64_at: i64);
}

/// Sequential reads through a byte slice in one byte order.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    endian: Endian,
}

macro_rules! number {
    ($($name:ident: $ty:ty),*) => {$(
        #[doc = concat!("The next `", stringify!($ty), "` in the cursor's byte order.")]
        pub fn $name(&mut self) -> Option<$ty> {
            let raw = self.array()?;
            Some(match self.endian {
                Endian::Little => <$ty>::from_le_bytes(raw),
                Endian::Big => <$ty>::from_be_bytes(raw),
            })
        }
    )*};
}

impl<'a> Cursor<'a> {
    /// A little-endian cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor::with_endian(buf, Endian::Little)
    }

    pub fn with_endian(buf: &'a [u8], endian: Endian) -> Cursor<'a> {
        Cursor {
            buf,
            pos: 0,
            endian,
        }
    }

    /// Where the next read starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// True when nothing is left to read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// Moves `n` bytes on (None when fewer are left).
    pub fn skip(&mut self, n: u64) -> Option<()> {
        self.take(usize::try_from(n).ok()?).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    number!(u16: u16, u32: u32, u64: u64, i32: i32, i64: i64);

    /// A big-endian `u16`, whatever the cursor's order (formats that mix orders).
    pub fn u16_be(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    /// A little-endian unsigned integer of `n` (at most 8) bytes.
    pub fn uint(&mut self, n: usize) -> Option<u64> {
        let bytes = self.take(n)?;
        let mut value = [0u8; 8];
        value.get_mut(..n)?.copy_from_slice(bytes);
        Some(u64::from_le_bytes(value))
    }

    /// A variable-length integer of 7 bits a byte, low bits first, the high bit saying
    /// "more" (xz's multibyte integers; at most 9 bytes).
    pub fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..63).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_that_do_not_fit_are_none() {
        let buf = [1u8, 0, 0, 0, 0xff];
        let mut c = Cursor::new(&buf);
        assert_eq!(c.u32(), Some(1));
        assert_eq!(c.position(), 4);
        assert_eq!(c.u16(), None, "one byte left");
        assert_eq!(c.position(), 4, "a failed read does not move");
        assert_eq!(c.u8(), Some(0xff));
        assert!(c.is_empty());
        assert_eq!(c.skip(1), None);
        assert_eq!(Cursor::new(&buf).take(usize::MAX), None);
        assert_eq!(Cursor::new(&buf).skip(u64::MAX), None);
        assert_eq!(Endian::Little.u32_at(&buf, 1), Some(0xff00_0000));
        assert_eq!(Endian::Big.u16_at(&buf, 0), Some(0x0100));
        assert_eq!(Endian::Little.u64_at(&buf, 0), None);
        assert_eq!(Endian::Little.u16_at(&buf, usize::MAX), None);
    }

    #[test]
    fn orders_and_variable_lengths() {
        let mut c = Cursor::with_endian(&[0x12, 0x34, 0x12, 0x34], Endian::Big);
        assert_eq!(c.u16(), Some(0x1234));
        let mut c = Cursor::new(&[0x12, 0x34]);
        assert_eq!(c.u16_be(), Some(0x1234));
        assert_eq!(Cursor::new(&[1, 2, 3]).uint(3), Some(0x030201));
        assert_eq!(Cursor::new(&[1, 2, 3]).uint(9), None);
        // 300 = 0b10_0101100: 0xac 0x02.
        assert_eq!(Cursor::new(&[0xac, 0x02]).varint(), Some(300));
        assert_eq!(Cursor::new(&[0x80; 10]).varint(), None);
        assert_eq!(Cursor::new(&[0x80]).varint(), None);
    }
}
