//! A reader for glibc's `/etc/ld.so.cache`, from bytes: the list of libraries `ldconfig`
//! found, with the ABI flags and glibc-hwcaps subdirectory of each, and the choice the
//! dynamic loader makes among them. It reads the three layouts glibc's loader reads:
//! the new format alone (what glibc 2.32 and later write by default), the old
//! libc5-era format alone, and the old format with the new one hidden in its string
//! table ("compat"). It follows `elf/dl-cache.c` and `ldconfig -p` (`elf/cache.c`) of
//! glibc 2.36 byte for byte, including their quirks, so that what it reports is what
//! the loader sees. The input is untrusted: every offset and count is checked, nothing
//! panics, and every error says which part of the file was being read.
//!
//! The format's constants are defined here once; [`write`] writes the new format with
//! them (the loader cache a plan gives a container), in memory: putting the bytes in a
//! file is the caller's business.

use std::fmt::Write as _;

use serde::Serialize;

use crate::input::bytes::Endian;

pub mod write;

#[cfg(test)]
mod tests;

/// `CACHEMAGIC` of the old format; the header is this, one byte of padding, `nlibs`.
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
/// `CACHEMAGIC_NEW` followed by `CACHE_VERSION`.
pub(crate) const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Offset of the old header's `nlibs`, after the magic and one byte of padding.
const OLD_NLIBS_AT: usize = 12;
/// `sizeof (struct cache_file)` and `sizeof (struct file_entry)`.
const OLD_HEADER_SIZE: usize = 16;
const OLD_ENTRY_SIZE: usize = 12;
/// `sizeof (struct cache_file_new)` and `sizeof (struct file_entry_new)`.
pub(crate) const NEW_HEADER_SIZE: usize = 48;
pub(crate) const NEW_ENTRY_SIZE: usize = 24;
/// `ALIGN_CACHE` on 64-bit hosts: `__alignof__ (struct cache_file_new)` is 8 there. Caches
/// written by ldconfig pad the old table to an even count, so 4 would give the same offset.
const NEW_HEADER_ALIGN: usize = 8;
/// Offsets of the new header's fields.
const NEW_NLIBS_AT: usize = 20;
const NEW_FLAGS_AT: usize = 28;
const NEW_EXTENSION_AT: usize = 32;

/// `cache_extension_magic`, `(uint32_t) -358342284`.
pub(crate) const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
pub(crate) const EXTENSION_HEADER_SIZE: usize = 8;
pub(crate) const EXTENSION_SECTION_SIZE: usize = 16;
pub(crate) const TAG_GENERATOR: u32 = 0;
pub(crate) const TAG_GLIBC_HWCAPS: u32 = 1;

/// Bit 62 of `hwcap`: the low 32 bits index the glibc-hwcaps name array.
pub const DL_CACHE_HWCAP_EXTENSION: u64 = 1 << 62;
/// Bits 32..42 of `hwcap` of a glibc-hwcaps entry: the x86 ISA level the library needs.
const ISA_LEVEL_MASK: u64 = (1 << 10) - 1;
/// Bit 63 marks libraries in legacy `tls/` subdirectories; the loader always accepts it.
const TLS_HWCAP: u64 = 1 << 63;

/// Entries' copied strings may add up to this many times the file size (plus a little):
/// real caches share bytes between sonames and paths but stay under twice their size,
/// while a hostile one could point every entry at one long string and exhaust memory.
const STRING_BUDGET_FACTOR: usize = 4;
const STRING_BUDGET_EXTRA: usize = 64 << 10;

/// Longest string accepted: longer than any path the kernel opens (PATH_MAX), and it
/// bounds the work a hostile file can cause to this many bytes per string.
const MAX_STRING_LEN: usize = 4096;

/// `ldconfig.h`: the low byte says which C library, the next one which ABI.
pub const FLAG_TYPE_MASK: i32 = 0x00ff;
pub const FLAG_REQUIRED_MASK: i32 = 0xff00;
pub const FLAG_LIBC4: i32 = 0x0000;
pub const FLAG_ELF: i32 = 0x0001;
pub const FLAG_ELF_LIBC5: i32 = 0x0002;
pub const FLAG_ELF_LIBC6: i32 = 0x0003;
pub const FLAG_SPARC_LIB64: i32 = 0x0100;
pub const FLAG_IA64_LIB64: i32 = 0x0200;
pub const FLAG_X8664_LIB64: i32 = 0x0300;
pub const FLAG_S390_LIB64: i32 = 0x0400;
pub const FLAG_POWERPC_LIB64: i32 = 0x0500;
pub const FLAG_MIPS64_LIBN32: i32 = 0x0600;
pub const FLAG_MIPS64_LIBN64: i32 = 0x0700;
pub const FLAG_X8664_LIBX32: i32 = 0x0800;
pub const FLAG_ARM_LIBHF: i32 = 0x0900;
pub const FLAG_AARCH64_LIB64: i32 = 0x0a00;
pub const FLAG_ARM_LIBSF: i32 = 0x0b00;
pub const FLAG_MIPS_LIB32_NAN2008: i32 = 0x0c00;
pub const FLAG_MIPS64_LIBN32_NAN2008: i32 = 0x0d00;
pub const FLAG_MIPS64_LIBN64_NAN2008: i32 = 0x0e00;
pub const FLAG_RISCV_FLOAT_ABI_SOFT: i32 = 0x0f00;
pub const FLAG_RISCV_FLOAT_ABI_DOUBLE: i32 = 0x1000;
pub const FLAG_LARCH_FLOAT_ABI_SOFT: i32 = 0x1100;
pub const FLAG_LARCH_FLOAT_ABI_DOUBLE: i32 = 0x1200;

/// ELF `e_machine` values the flags imply.
const EM_MIPS: u16 = 8;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_SPARCV9: u16 = 43;
const EM_IA_64: u16 = 50;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;

/// Machines whose ldconfig marks every libc6 library with an ABI flag: a plain "libc6"
/// entry is never theirs (it is an i386 library in an x86-64 cache, say).
const ALWAYS_FLAGGED: &[u16] = &[
    EM_X86_64,
    EM_AARCH64,
    EM_IA_64,
    EM_PPC64,
    EM_SPARCV9,
    EM_RISCV,
    EM_LOONGARCH,
];

/// One library in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CacheEntry {
    pub soname: String,
    pub path: String,
    /// `FLAG_*` type and ABI bits, as ldconfig stored them.
    pub flags: i32,
    /// The glibc-hwcaps subdirectory name (`x86-64-v3`) when `hwcap` refers to one.
    pub hwcaps: Option<String>,
    /// The raw hwcap field: 0 for ordinary entries, see [`DL_CACHE_HWCAP_EXTENSION`].
    pub hwcap: u64,
}

/// Which of glibc's layouts the file uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CacheFormat {
    New,
    Old,
    /// Old format with the new one inside; the entries are read from the new part, as
    /// the loader and `ldconfig -p` read them.
    Combined,
}

/// Byte order of the numbers in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ByteOrder {
    Little,
    Big,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LdCache {
    pub format: CacheFormat,
    pub byte_order: ByteOrder,
    /// In file order, which is the order `ldconfig -p` prints.
    pub entries: Vec<CacheEntry>,
    /// The generator extension, e.g. "ldconfig (Debian GLIBC 2.36-9) stable release version 2.36".
    pub generator: Option<String>,
    /// Problems the loader tolerates (a malformed extension directory is ignored, as
    /// `dl-cache.c` ignores it, which disables glibc-hwcaps entries).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdCacheError {
    #[error("empty file")]
    Empty,
    /// More entries than any real system has: refused before they are read.
    #[error("{count} entries, more than the {MAX_ENTRIES} containerspec reads")]
    TooManyEntries { count: u32 },
    #[error("unknown magic")]
    BadMagic,
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("new-format header marks the cache as invalid (endianness flag {0})")]
    InvalidByteOrder(u8),
    #[error("entry {index}: {field} string offset {offset} out of range")]
    BadString {
        index: usize,
        field: &'static str,
        offset: u32,
    },
    #[error(
        "entry {index}: {field} string at offset {offset} has no terminating nul within {MAX_STRING_LEN} bytes"
    )]
    UnterminatedString {
        index: usize,
        field: &'static str,
        offset: u32,
    },
    #[error("entry {index}: {field} string at offset {offset} is not utf-8")]
    NotUtf8 {
        index: usize,
        field: &'static str,
        offset: u32,
    },
    #[error(
        "entry {index}: the entries' strings add up to more than {limit} bytes, more than a real cache holds"
    )]
    StringsTooLarge { index: usize, limit: usize },
}

impl CacheEntry {
    /// What `ldconfig -p` (glibc 2.36) prints between the parentheses: "libc6,x86-64",
    /// "libc6,AArch64, hwcap: \"x86-64-v3\"", "ELF", "libc6,4608" for flags it has no
    /// name for.
    pub fn arch_description(&self) -> String {
        let mut out = String::from(type_name(self.flags));
        match abi_name(self.flags) {
            Some(name) => out.push_str(name),
            None => {
                // ldconfig prints unnamed ABI bits in decimal; it never fails.
                let _ = write!(out, ",{}", self.flags & FLAG_REQUIRED_MASK);
            }
        }
        if let Some(name) = &self.hwcaps {
            let _ = write!(out, ", hwcap: \"{name}\"");
        } else if self.hwcap != 0 {
            let _ = write!(out, ", hwcap: {:#018x}", self.hwcap);
        }
        out
    }

    /// The ELF `e_machine` the ABI flags imply (62 for x86-64 and x32, 183 for AArch64);
    /// `None` for entries without ABI flags (plain "libc6") or with unknown ones.
    pub fn required_machine(&self) -> Option<u16> {
        match self.flags & FLAG_REQUIRED_MASK {
            FLAG_SPARC_LIB64 => Some(EM_SPARCV9),
            FLAG_IA64_LIB64 => Some(EM_IA_64),
            FLAG_X8664_LIB64 | FLAG_X8664_LIBX32 => Some(EM_X86_64),
            FLAG_S390_LIB64 => Some(EM_S390),
            FLAG_POWERPC_LIB64 => Some(EM_PPC64),
            FLAG_MIPS64_LIBN32 | FLAG_MIPS64_LIBN64 | FLAG_MIPS_LIB32_NAN2008 => Some(EM_MIPS),
            FLAG_MIPS64_LIBN32_NAN2008 | FLAG_MIPS64_LIBN64_NAN2008 => Some(EM_MIPS),
            FLAG_ARM_LIBHF | FLAG_ARM_LIBSF => Some(EM_ARM),
            FLAG_AARCH64_LIB64 => Some(EM_AARCH64),
            FLAG_RISCV_FLOAT_ABI_SOFT | FLAG_RISCV_FLOAT_ABI_DOUBLE => Some(EM_RISCV),
            FLAG_LARCH_FLOAT_ABI_SOFT | FLAG_LARCH_FLOAT_ABI_DOUBLE => Some(EM_LOONGARCH),
            _ => None,
        }
    }

    /// True for entries in a glibc-hwcaps subdirectory (even if the name is unreadable).
    pub fn is_hwcaps_entry(&self) -> bool {
        self.hwcap & DL_CACHE_HWCAP_EXTENSION != 0
    }

    /// The x86 ISA level a glibc-hwcaps entry needs: 0 baseline, 1 v2, 2 v3, 3 v4.
    pub fn isa_level(&self) -> u32 {
        if !self.is_hwcaps_entry() {
            return 0;
        }
        // The mask keeps 10 bits, so the value always fits.
        u32::try_from((self.hwcap >> 32) & ISA_LEVEL_MASK).unwrap_or(u32::MAX)
    }

    /// Whether the loader of an object of `machine` may use this entry at all:
    /// `_dl_cache_check_flags` of that machine, as far as `e_machine` can tell. x86-64
    /// is taken as LP64 (x32 entries are skipped), the ARM float ABI and the MIPS
    /// variants are not told apart.
    pub fn runs_on(&self, machine: u16) -> bool {
        // Every glibc port accepts flags == FLAG_ELF (a generic ELF library).
        if self.flags == FLAG_ELF {
            return true;
        }
        if self.flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6 {
            return false;
        }
        let abi = self.flags & FLAG_REQUIRED_MASK;
        match self.required_machine() {
            Some(EM_X86_64) => machine == EM_X86_64 && abi == FLAG_X8664_LIB64,
            Some(required) => required == machine,
            None => abi == 0 && !ALWAYS_FLAGGED.contains(&machine),
        }
    }
}

fn type_name(flags: i32) -> &'static str {
    match flags & FLAG_TYPE_MASK {
        FLAG_LIBC4 => "libc4",
        FLAG_ELF => "ELF",
        FLAG_ELF_LIBC5 => "libc5",
        FLAG_ELF_LIBC6 => "libc6",
        _ => "unknown",
    }
}

/// The ABI suffix `print_entry` writes; `None` where it prints the number. glibc 2.36
/// has no names for the LoongArch flags.
fn abi_name(flags: i32) -> Option<&'static str> {
    Some(match flags & FLAG_REQUIRED_MASK {
        0 => "",
        FLAG_SPARC_LIB64 | FLAG_S390_LIB64 | FLAG_POWERPC_LIB64 | FLAG_MIPS64_LIBN64 => ",64bit",
        FLAG_IA64_LIB64 => ",IA-64",
        FLAG_X8664_LIB64 => ",x86-64",
        FLAG_MIPS64_LIBN32 => ",N32",
        FLAG_X8664_LIBX32 => ",x32",
        FLAG_ARM_LIBHF => ",hard-float",
        FLAG_AARCH64_LIB64 => ",AArch64",
        FLAG_ARM_LIBSF | FLAG_RISCV_FLOAT_ABI_SOFT => ",soft-float",
        FLAG_MIPS_LIB32_NAN2008 => ",nan2008",
        FLAG_MIPS64_LIBN32_NAN2008 => ",N32,nan2008",
        FLAG_MIPS64_LIBN64_NAN2008 => ",64bit,nan2008",
        FLAG_RISCV_FLOAT_ABI_DOUBLE => ",double-float",
        _ => return None,
    })
}

impl LdCache {
    /// Reads a cache file's bytes. Formats are tried in `dl-cache.c`'s order: the new
    /// format at the start, then the old one, with or without a new part inside.
    pub fn parse(bytes: &[u8]) -> Result<LdCache, LdCacheError> {
        if bytes.is_empty() {
            return Err(LdCacheError::Empty);
        }
        if bytes.starts_with(NEW_MAGIC) {
            let section = NewSection::read(bytes, 0)?;
            return Ok(section.into_cache(CacheFormat::New));
        }
        if bytes.starts_with(OLD_MAGIC) {
            return parse_old_or_combined(bytes);
        }
        if NEW_MAGIC.starts_with(bytes) || OLD_MAGIC.starts_with(bytes) {
            return Err(LdCacheError::Truncated("cache magic"));
        }
        Err(LdCacheError::BadMagic)
    }

    /// The entry the dynamic loader would pick for `soname` given the object's machine
    /// and the host's supported glibc-hwcaps subdirectories (in priority order, e.g.
    /// `["x86-64-v4", "x86-64-v3", "x86-64-v2"]`): glibc-hwcaps entries the host supports
    /// first in that priority, then the base entry; entries whose flags require another
    /// machine are skipped. Like `search_cache` in glibc 2.36, x86 glibc-hwcaps entries
    /// must also have an ISA level the host supports (read from the same list), and
    /// entries with legacy hwcap bits (other than `tls`) are skipped, since the host's
    /// legacy hwcaps are not known here.
    pub fn lookup(
        &self,
        soname: &str,
        machine: u16,
        supported_hwcaps: &[&str],
    ) -> Option<&CacheEntry> {
        let host_isa = x86_isa_support(supported_hwcaps);
        let mut best_hwcaps: Option<(usize, &CacheEntry)> = None;
        let mut best_base: Option<&CacheEntry> = None;
        for entry in self
            .entries
            .iter()
            .filter(|e| e.soname == soname && e.runs_on(machine))
        {
            if entry.is_hwcaps_entry() {
                let Some(priority) = hwcaps_priority(entry, supported_hwcaps) else {
                    continue;
                };
                if machine == EM_X86_64 && !isa_level_supported(entry.isa_level(), host_isa) {
                    continue;
                }
                // Ties keep the earlier entry, as glibc's strict comparison does.
                if best_hwcaps.is_none_or(|(best, _)| priority < best) {
                    best_hwcaps = Some((priority, entry));
                }
            } else if entry.hwcap & !TLS_HWCAP == 0 {
                // The first usable base entry wins, except that a generic ELF entry
                // (flags 1) gives way to a later exact match, as in search_cache.
                if best_base.is_none_or(|b| b.flags == FLAG_ELF && entry.flags != FLAG_ELF) {
                    best_base = Some(entry);
                }
            }
        }
        best_hwcaps.map(|(_, entry)| entry).or(best_base)
    }
}

/// Position of the entry's subdirectory in the host's list; `None` when unsupported or
/// unnamed (glibc gives those priority 0: never used).
fn hwcaps_priority(entry: &CacheEntry, supported: &[&str]) -> Option<usize> {
    let name = entry.hwcaps.as_deref()?;
    supported.iter().position(|s| *s == name)
}

/// `GNU_PROPERTY_X86_ISA_1_*` bits the host has, derived from its glibc-hwcaps list:
/// baseline always, v2/v3/v4 when their subdirectory is supported.
fn x86_isa_support(supported: &[&str]) -> u32 {
    let levels = [
        ("x86-64-v2", 1 << 1),
        ("x86-64-v3", 1 << 2),
        ("x86-64-v4", 1 << 3),
    ];
    levels
        .iter()
        .filter(|(name, _)| supported.contains(name))
        .fold(1, |acc, (_, bit)| acc | bit)
}

/// `dl_cache_hwcap_isa_level_compatible` on x86: level N needs ISA bit 1 << N.
fn isa_level_supported(level: u32, host: u32) -> bool {
    1u32.checked_shl(level)
        .is_some_and(|needed| needed & host == needed)
}

/// The old format, then a new part at the aligned end of the old table if its magic is
/// there (glibc then ignores the old entries).
/// Entries read at most. A distribution's cache lists a few thousand libraries, a large
/// HPC image some tens of thousands; more is a file made to cost time and memory.
pub const MAX_ENTRIES: u32 = 100_000;

fn within_limit(nlibs: u32) -> Result<(), LdCacheError> {
    if nlibs > MAX_ENTRIES {
        return Err(LdCacheError::TooManyEntries { count: nlibs });
    }
    Ok(())
}

fn parse_old_or_combined(bytes: &[u8]) -> Result<LdCache, LdCacheError> {
    let fits = |n: u32| {
        table_end(OLD_HEADER_SIZE, n, OLD_ENTRY_SIZE).is_some_and(|end| end <= bytes.len())
    };
    let order = guess_order(bytes, OLD_NLIBS_AT, fits)
        .ok_or(LdCacheError::Truncated("old-format header"))?;
    let reader = Reader { bytes, order };
    let nlibs = reader
        .u32(OLD_NLIBS_AT)
        .ok_or(LdCacheError::Truncated("old-format header"))?;
    within_limit(nlibs)?;
    let strings_at = table_end(OLD_HEADER_SIZE, nlibs, OLD_ENTRY_SIZE)
        .filter(|end| *end <= bytes.len())
        .ok_or(LdCacheError::Truncated("old-format entry table"))?;
    if let Some(new_at) = embedded_new_section(bytes, strings_at) {
        let section = NewSection::read(bytes, new_at)?;
        return Ok(section.into_cache(CacheFormat::Combined));
    }
    let entries = read_old_entries(&reader, nlibs, strings_at)?;
    Ok(LdCache {
        format: CacheFormat::Old,
        byte_order: order,
        entries,
        generator: None,
        warnings: Vec::new(),
    })
}

/// Where the new header of a combined file starts, if it is there.
fn embedded_new_section(bytes: &[u8], old_table_end: usize) -> Option<usize> {
    let at = old_table_end.checked_next_multiple_of(NEW_HEADER_ALIGN)?;
    let magic = bytes.get(at..at.checked_add(NEW_MAGIC.len())?)?;
    let header_fits = at
        .checked_add(NEW_HEADER_SIZE)
        .is_some_and(|end| end <= bytes.len());
    (magic == NEW_MAGIC && header_fits).then_some(at)
}

/// Old entries: `{flags, key, value}`, string offsets relative to the end of the table.
fn read_old_entries(
    reader: &Reader,
    nlibs: u32,
    strings_at: usize,
) -> Result<Vec<CacheEntry>, LdCacheError> {
    let mut entries = Vec::with_capacity(usize::try_from(nlibs).unwrap_or(0));
    let mut budget = StringBudget::for_file(reader.bytes);
    let mut at = OLD_HEADER_SIZE;
    for index in 0..table_len(nlibs) {
        let (flags, key, value) = reader
            .entry_head(at)
            .ok_or(LdCacheError::Truncated("old-format entry table"))?;
        let soname = reader.entry_string(strings_at, key, index, "soname")?;
        let path = reader.entry_string(strings_at, value, index, "path")?;
        budget.charge(index, &[&soname, &path])?;
        entries.push(CacheEntry {
            soname,
            path,
            flags,
            hwcaps: None,
            hwcap: 0,
        });
        at = at
            .checked_add(OLD_ENTRY_SIZE)
            .ok_or(LdCacheError::Truncated("old-format entry table"))?;
    }
    Ok(entries)
}

/// The new-format part, read: entries, byte order and extension results.
struct NewSection {
    order: ByteOrder,
    entries: Vec<CacheEntry>,
    generator: Option<String>,
    warnings: Vec<String>,
}

impl NewSection {
    /// Reads the new format whose header starts at `start` (0, or after the old table).
    /// String offsets are relative to `start`; extension offsets to the file start.
    fn read(bytes: &[u8], start: usize) -> Result<NewSection, LdCacheError> {
        let header_end = start
            .checked_add(NEW_HEADER_SIZE)
            .filter(|end| *end <= bytes.len());
        let header_end = header_end.ok_or(LdCacheError::Truncated("new-format header"))?;
        let order = new_section_order(bytes, start, header_end)?;
        let reader = Reader { bytes, order };
        let nlibs = reader
            .u32_at(start, NEW_NLIBS_AT)
            .ok_or(LdCacheError::Truncated("new-format header"))?;
        within_limit(nlibs)?;
        table_end(header_end, nlibs, NEW_ENTRY_SIZE)
            .filter(|end| *end <= bytes.len())
            .ok_or(LdCacheError::Truncated("new-format entry table"))?;
        let extension_at = reader
            .u32_at(start, NEW_EXTENSION_AT)
            .ok_or(LdCacheError::Truncated("new-format header"))?;
        let mut warnings = Vec::new();
        let extensions = Extensions::read(&reader, extension_at).unwrap_or_else(|problem| {
            warnings.push(format!(
                "ignored the extension directory at offset {extension_at}: {problem}"
            ));
            Extensions::default()
        });
        let entries = read_new_entries(&reader, nlibs, start, header_end, &extensions)?;
        let generator = extensions.generator(bytes);
        Ok(NewSection {
            order,
            entries,
            generator,
            warnings,
        })
    }

    fn into_cache(self, format: CacheFormat) -> LdCache {
        LdCache {
            format,
            byte_order: self.order,
            entries: self.entries,
            generator: self.generator,
            warnings: self.warnings,
        }
    }
}

/// The byte order the header's flags declare. Caches from before glibc 2.33 leave it
/// unset; glibc then assumes its own order, which for a foreign image is unknown, so
/// the order in which `nlibs` fits the file is taken.
fn new_section_order(
    bytes: &[u8],
    start: usize,
    header_end: usize,
) -> Result<ByteOrder, LdCacheError> {
    let flags = start
        .checked_add(NEW_FLAGS_AT)
        .and_then(|at| bytes.get(at))
        .copied()
        .ok_or(LdCacheError::Truncated("new-format header"))?;
    match flags & 3 {
        2 => Ok(ByteOrder::Little),
        3 => Ok(ByteOrder::Big),
        1 => Err(LdCacheError::InvalidByteOrder(1)),
        _ => {
            let fits = |n: u32| {
                table_end(header_end, n, NEW_ENTRY_SIZE).is_some_and(|end| end <= bytes.len())
            };
            guess_order(bytes, start.saturating_add(NEW_NLIBS_AT), fits)
                .ok_or(LdCacheError::Truncated("new-format header"))
        }
    }
}

/// New entries: `{flags, key, value, osversion, hwcap}`.
fn read_new_entries(
    reader: &Reader,
    nlibs: u32,
    strings_at: usize,
    table_at: usize,
    extensions: &Extensions,
) -> Result<Vec<CacheEntry>, LdCacheError> {
    let mut entries = Vec::with_capacity(usize::try_from(nlibs).unwrap_or(0));
    let mut budget = StringBudget::for_file(reader.bytes);
    let mut at = table_at;
    for index in 0..table_len(nlibs) {
        let (flags, key, value) = reader
            .entry_head(at)
            .ok_or(LdCacheError::Truncated("new-format entry table"))?;
        let hwcap = at
            .checked_add(16)
            .and_then(|a| reader.u64(a))
            .ok_or(LdCacheError::Truncated("new-format entry table"))?;
        let soname = reader.entry_string(strings_at, key, index, "soname")?;
        let path = reader.entry_string(strings_at, value, index, "path")?;
        let name = extensions.hwcaps_name(reader, hwcap);
        budget.charge(index, &[&soname, &path, name.unwrap_or("")])?;
        let hwcaps = name.map(str::to_owned);
        entries.push(CacheEntry {
            soname,
            path,
            flags,
            hwcaps,
            hwcap,
        });
        at = at
            .checked_add(NEW_ENTRY_SIZE)
            .ok_or(LdCacheError::Truncated("new-format entry table"))?;
    }
    Ok(entries)
}

/// Where the extension sections are: `(offset, size)` in the file.
#[derive(Default)]
struct Extensions {
    generator: Option<(usize, usize)>,
    hwcaps: Option<(usize, usize)>,
}

impl Extensions {
    /// `cache_extension_load` and `cache_extension_verify`: the reasons it refuses the
    /// directory become the error; a bad glibc-hwcaps section alone is dropped.
    fn read(reader: &Reader, offset: u32) -> Result<Extensions, &'static str> {
        let mut found = Extensions::default();
        if offset == 0 {
            return Ok(found);
        }
        if offset % 4 != 0 {
            return Err("offset is not a multiple of 4");
        }
        let at = usize::try_from(offset).map_err(|_| "offset out of range")?;
        let magic = reader
            .u32(at)
            .ok_or("directory extends beyond the end of the file")?;
        if magic != EXTENSION_MAGIC {
            return Err("bad magic");
        }
        let count = reader
            .u32_at(at, 4)
            .ok_or("directory extends beyond the end of the file")?;
        let sections_at = at
            .checked_add(EXTENSION_HEADER_SIZE)
            .ok_or("offset out of range")?;
        table_end(sections_at, count, EXTENSION_SECTION_SIZE)
            .filter(|end| *end <= reader.bytes.len())
            .ok_or("section table extends beyond the end of the file")?;
        // The table end was checked above, so these offsets stay inside the file.
        for section_at in (sections_at..)
            .step_by(EXTENSION_SECTION_SIZE)
            .take(table_len(count))
        {
            found.add_section(reader, section_at)?;
        }
        found.hwcaps = found
            .hwcaps
            .filter(|(off, size)| *size != 0 && off % 4 == 0 && size % 4 == 0);
        Ok(found)
    }

    /// One `{tag, flags, offset, size}` descriptor; later ones replace earlier ones of
    /// the same tag, unknown tags are skipped, as in glibc.
    fn add_section(&mut self, reader: &Reader, at: usize) -> Result<(), &'static str> {
        let read = |field: usize| {
            reader
                .u32_at(at, field)
                .ok_or("section table extends beyond the end of the file")
        };
        let (tag, offset, size) = (read(0)?, read(8)?, read(12)?);
        let offset = usize::try_from(offset).map_err(|_| "section offset out of range")?;
        let size = usize::try_from(size).map_err(|_| "section size out of range")?;
        if offset
            .checked_add(size)
            .is_none_or(|end| end > reader.bytes.len())
        {
            return Err("section data extends beyond the end of the file");
        }
        match tag {
            TAG_GENERATOR => self.generator = Some((offset, size)),
            TAG_GLIBC_HWCAPS => self.hwcaps = Some((offset, size)),
            _ => {}
        }
        Ok(())
    }

    fn generator(&self, bytes: &[u8]) -> Option<String> {
        let (offset, size) = self.generator?;
        let text = bytes.get(offset..offset.checked_add(size)?)?;
        Some(String::from_utf8_lossy(text).into_owned())
    }

    /// `glibc_hwcaps_string`: the name for a hwcap value with the extension bit, or
    /// `None` (ldconfig then prints the number, the loader never uses the entry). The
    /// name's offset counts from the start of the file, as `dl-cache.c` and `ldconfig
    /// -p` read it, although ldconfig writes it relative to the new header: in combined
    /// files the two differ, and glibc then finds no usable name.
    fn hwcaps_name<'a>(&self, reader: &Reader<'a>, hwcap: u64) -> Option<&'a str> {
        if hwcap & DL_CACHE_HWCAP_EXTENSION == 0 {
            return None;
        }
        let (offset, size) = self.hwcaps?;
        // The low 32 bits are the index, by definition of the field.
        let index = usize::try_from(hwcap & 0xffff_ffff).ok()?;
        if index >= size / 4 {
            return None;
        }
        let name_at = reader.u32(offset.checked_add(index.checked_mul(4)?)?)?;
        c_string(reader.bytes, usize::try_from(name_at).ok()?).ok()
    }
}

/// How many string bytes the entries may still copy.
struct StringBudget {
    limit: usize,
    left: usize,
}

impl StringBudget {
    fn for_file(bytes: &[u8]) -> StringBudget {
        let limit = bytes
            .len()
            .saturating_mul(STRING_BUDGET_FACTOR)
            .saturating_add(STRING_BUDGET_EXTRA);
        StringBudget { limit, left: limit }
    }

    fn charge(&mut self, index: usize, strings: &[&str]) -> Result<(), LdCacheError> {
        for s in strings {
            self.left = self
                .left
                .checked_sub(s.len())
                .ok_or(LdCacheError::StringsTooLarge {
                    index,
                    limit: self.limit,
                })?;
        }
        Ok(())
    }
}

/// Why a string could not be read.
enum StringError {
    OutOfRange,
    Unterminated,
    NotUtf8,
}

/// The NUL-terminated string at `at`.
fn c_string(bytes: &[u8], at: usize) -> Result<&str, StringError> {
    if at >= bytes.len() {
        return Err(StringError::OutOfRange);
    }
    let tail = bytes.get(at..).ok_or(StringError::OutOfRange)?;
    let window = tail.get(..MAX_STRING_LEN.saturating_add(1)).unwrap_or(tail);
    let end = window
        .iter()
        .position(|b| *b == 0)
        .ok_or(StringError::Unterminated)?;
    let text = window.get(..end).ok_or(StringError::Unterminated)?;
    std::str::from_utf8(text).map_err(|_| StringError::NotUtf8)
}

/// Bounds-checked reads of numbers in the file's byte order (through the shared checked
/// reader) and of the entries' strings.
struct Reader<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
}

impl<'a> Reader<'a> {
    fn endian(&self) -> Endian {
        match self.order {
            ByteOrder::Little => Endian::Little,
            ByteOrder::Big => Endian::Big,
        }
    }

    /// The u32 `field` bytes after `base`.
    fn u32_at(&self, base: usize, field: usize) -> Option<u32> {
        self.u32(base.checked_add(field)?)
    }

    fn u32(&self, at: usize) -> Option<u32> {
        self.endian().u32_at(self.bytes, at)
    }

    fn u64(&self, at: usize) -> Option<u64> {
        self.endian().u64_at(self.bytes, at)
    }

    /// The `{flags, key, value}` start both entry layouts share.
    fn entry_head(&self, at: usize) -> Option<(i32, u32, u32)> {
        let flags = i32::from_ne_bytes(self.u32(at)?.to_ne_bytes());
        Some((flags, self.u32_at(at, 4)?, self.u32_at(at, 8)?))
    }

    /// An entry's soname or path: `offset` counts from `base`.
    fn entry_string(
        &self,
        base: usize,
        offset: u32,
        index: usize,
        field: &'static str,
    ) -> Result<String, LdCacheError> {
        let at = usize::try_from(offset)
            .ok()
            .and_then(|o| base.checked_add(o));
        let at = at.ok_or(LdCacheError::BadString {
            index,
            field,
            offset,
        })?;
        match c_string(self.bytes, at) {
            Ok(text) => Ok(text.to_owned()),
            Err(StringError::OutOfRange) => Err(LdCacheError::BadString {
                index,
                field,
                offset,
            }),
            Err(StringError::Unterminated) => Err(LdCacheError::UnterminatedString {
                index,
                field,
                offset,
            }),
            Err(StringError::NotUtf8) => Err(LdCacheError::NotUtf8 {
                index,
                field,
                offset,
            }),
        }
    }
}

/// Picks the byte order for a count with no declared order: little-endian unless only
/// the big-endian reading fits the file. `None` when the count is beyond the file.
fn guess_order(bytes: &[u8], count_at: usize, fits: impl Fn(u32) -> bool) -> Option<ByteOrder> {
    let raw: [u8; 4] = bytes
        .get(count_at..count_at.checked_add(4)?)?
        .try_into()
        .ok()?;
    if !fits(u32::from_le_bytes(raw)) && fits(u32::from_be_bytes(raw)) {
        return Some(ByteOrder::Big);
    }
    Some(ByteOrder::Little)
}

/// End offset of a table of `count` items of `size` bytes starting at `start`.
fn table_end(start: usize, count: u32, size: usize) -> Option<usize> {
    start.checked_add(usize::try_from(count).ok()?.checked_mul(size)?)
}

/// A count already checked against the file size, as a loop bound.
fn table_len(count: u32) -> usize {
    usize::try_from(count).unwrap_or(0)
}
