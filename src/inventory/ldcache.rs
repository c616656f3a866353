//! A reader for glibc's `/etc/ld.so.cache`, from bytes: the list of libraries `ldconfig`
//! found, with the ABI flags and glibc-hwcaps subdirectory of each, and the choice the
//! dynamic loader makes among them. It reads the three layouts glibc's loader reads:
//! the new format alone (what glibc 2.32 and later write by default), the old
//! libc5-era format alone, and the old format with the new one hidden in its string
//! table ("compat"). It follows `elf/dl-cache.c` and `ldconfig -p` (`elf/cache.c`) of
//! glibc 2.36 byte for byte, including their quirks, so that what it reports is what
//! the loader sees. The input is untrusted: every offset and count is checked, nothing
//! panics, and every error says which part of the file was being read.

use std::fmt::Write as _;

use serde::Serialize;

use crate::input::bytes::Endian;

/// `CACHEMAGIC` of the old format; the header is this, one byte of padding, `nlibs`.
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
/// `CACHEMAGIC_NEW` followed by `CACHE_VERSION`.
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Offset of the old header's `nlibs`, after the magic and one byte of padding.
const OLD_NLIBS_AT: usize = 12;
/// `sizeof (struct cache_file)` and `sizeof (struct file_entry)`.
const OLD_HEADER_SIZE: usize = 16;
const OLD_ENTRY_SIZE: usize = 12;
/// `sizeof (struct cache_file_new)` and `sizeof (struct file_entry_new)`.
const NEW_HEADER_SIZE: usize = 48;
const NEW_ENTRY_SIZE: usize = 24;
/// `ALIGN_CACHE` on 64-bit hosts: `__alignof__ (struct cache_file_new)` is 8 there. Caches
/// written by ldconfig pad the old table to an even count, so 4 would give the same offset.
const NEW_HEADER_ALIGN: usize = 8;
/// Offsets of the new header's fields.
const NEW_NLIBS_AT: usize = 20;
const NEW_FLAGS_AT: usize = 28;
const NEW_EXTENSION_AT: usize = 32;

/// `cache_extension_magic`, `(uint32_t) -358342284`.
const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
const EXTENSION_HEADER_SIZE: usize = 8;
const EXTENSION_SECTION_SIZE: usize = 16;
const TAG_GENERATOR: u32 = 0;
const TAG_GLIBC_HWCAPS: u32 = 1;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// One library for a hand-built fixture.
    #[derive(Clone, Copy)]
    struct Lib {
        flags: i32,
        soname: &'static str,
        path: &'static str,
        hwcaps: Option<&'static str>,
        isa_level: u64,
    }

    const fn lib(flags: i32, soname: &'static str, path: &'static str) -> Lib {
        Lib {
            flags,
            soname,
            path,
            hwcaps: None,
            isa_level: 0,
        }
    }

    const fn hw(flags: i32, soname: &'static str, path: &'static str, name: &'static str) -> Lib {
        Lib {
            flags,
            soname,
            path,
            hwcaps: Some(name),
            isa_level: 0,
        }
    }

    const X86_64: i32 = FLAG_ELF_LIBC6 | FLAG_X8664_LIB64;
    const GENERATOR: &str = "ldconfig (test) stable release version 2.36";

    /// Writes numbers in one byte order, as ldconfig writes them in the host's.
    struct Out {
        bytes: Vec<u8>,
        big: bool,
    }

    impl Out {
        fn u32(&mut self, v: u32) {
            let raw = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.bytes.extend_from_slice(&raw);
        }
        fn u64(&mut self, v: u64) {
            let raw = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.bytes.extend_from_slice(&raw);
        }
        fn i32(&mut self, v: i32) {
            self.u32(u32::from_ne_bytes(v.to_ne_bytes()));
        }
        fn pad_to(&mut self, align: usize) {
            while self.bytes.len() % align != 0 {
                self.bytes.push(0);
            }
        }
    }

    /// A string table: strings in order, offsets from the table start.
    fn strings(libs: &[Lib], names: &[&str]) -> (Vec<u8>, Vec<(u32, u32)>, Vec<u32>) {
        let mut table = Vec::new();
        let mut add = |s: &str| {
            let at = table.len() as u32;
            table.extend_from_slice(s.as_bytes());
            table.push(0);
            at
        };
        let offsets = libs.iter().map(|l| (add(l.soname), add(l.path))).collect();
        let name_offsets = names.iter().map(|n| add(n)).collect();
        (table, offsets, name_offsets)
    }

    /// The new format starting at `out`'s current end, laid out as ldconfig 2.36 does:
    /// header, entries, strings, extension directory (aligned to 4), hwcaps array,
    /// generator text.
    fn write_new(out: &mut Out, libs: &[Lib], generator: Option<&str>, endian_flag: u8) {
        let start = out.bytes.len();
        let mut names: Vec<&str> = libs.iter().filter_map(|l| l.hwcaps).collect();
        names.sort();
        names.dedup();
        let (table, offsets, name_offsets) = strings(libs, &names);
        let strings_rel = (NEW_HEADER_SIZE + libs.len() * NEW_ENTRY_SIZE) as u32;
        let ext_at = (start + strings_rel as usize + table.len()).next_multiple_of(4);
        let with_ext = generator.is_some() || !names.is_empty();
        out.bytes.extend_from_slice(NEW_MAGIC);
        out.u32(libs.len() as u32);
        out.u32(table.len() as u32);
        out.bytes.extend_from_slice(&[endian_flag, 0, 0, 0]);
        out.u32(if with_ext { ext_at as u32 } else { 0 });
        out.bytes.extend_from_slice(&[0; 12]);
        for (l, (key, value)) in libs.iter().zip(&offsets) {
            out.i32(l.flags);
            out.u32(strings_rel + key);
            out.u32(strings_rel + value);
            out.u32(0);
            let index = l
                .hwcaps
                .map(|n| names.iter().position(|m| *m == n).unwrap() as u64);
            out.u64(index.map_or(0, |i| DL_CACHE_HWCAP_EXTENSION | (l.isa_level << 32) | i));
        }
        out.bytes.extend_from_slice(&table);
        if with_ext {
            write_extensions(out, generator, &name_offsets, strings_rel);
        }
    }

    fn write_extensions(out: &mut Out, generator: Option<&str>, names: &[u32], strings_rel: u32) {
        out.pad_to(4);
        let ext_at = out.bytes.len() as u32;
        let count = u32::from(generator.is_some()) + u32::from(!names.is_empty());
        let hwcaps_at = ext_at + 8 + 16 * count;
        let hwcaps_size = 4 * names.len() as u32;
        out.u32(EXTENSION_MAGIC);
        out.u32(count);
        if let Some(g) = generator {
            out.u32(TAG_GENERATOR);
            out.u32(0);
            out.u32(hwcaps_at + hwcaps_size);
            out.u32(g.len() as u32);
        }
        if !names.is_empty() {
            out.u32(TAG_GLIBC_HWCAPS);
            out.u32(0);
            out.u32(hwcaps_at);
            out.u32(hwcaps_size);
        }
        for n in names {
            out.u32(strings_rel + n);
        }
        out.bytes
            .extend_from_slice(generator.unwrap_or("").as_bytes());
    }

    fn new_format(libs: &[Lib], generator: Option<&str>) -> Vec<u8> {
        let mut out = Out {
            bytes: Vec::new(),
            big: false,
        };
        write_new(&mut out, libs, generator, 2);
        out.bytes
    }

    /// Old header and table; strings follow the table unless `padded_count` (compat
    /// mode, count rounded up to even by repeating the last entry) puts a new part there.
    fn write_old(out: &mut Out, libs: &[Lib], string_offsets: &[(u32, u32)], padded_count: usize) {
        out.bytes.extend_from_slice(OLD_MAGIC);
        out.bytes.push(0);
        out.u32(padded_count as u32);
        for i in 0..padded_count {
            let j = i.min(libs.len() - 1);
            out.i32(libs[j].flags);
            out.u32(string_offsets[j].0);
            out.u32(string_offsets[j].1);
        }
    }

    fn old_format(libs: &[Lib], big: bool) -> Vec<u8> {
        let (table, offsets, _) = strings(libs, &[]);
        let mut out = Out {
            bytes: Vec::new(),
            big,
        };
        write_old(&mut out, libs, &offsets, libs.len());
        out.bytes.extend_from_slice(&table);
        out.bytes
    }

    /// Compat layout: old entries point into the new part's string table, whose offsets
    /// count from the new header (the end of the even-length old table).
    fn combined_format(libs: &[Lib], generator: Option<&str>) -> Vec<u8> {
        let (_, offsets, _) = strings(libs, &[]);
        let rel = (NEW_HEADER_SIZE + libs.len() * NEW_ENTRY_SIZE) as u32;
        let shifted: Vec<(u32, u32)> = offsets.iter().map(|(k, v)| (k + rel, v + rel)).collect();
        let mut out = Out {
            bytes: Vec::new(),
            big: false,
        };
        write_old(&mut out, libs, &shifted, libs.len().next_multiple_of(2));
        out.pad_to(NEW_HEADER_ALIGN);
        write_new(&mut out, libs, generator, 2);
        out.bytes
    }

    fn base_libs() -> Vec<Lib> {
        vec![
            lib(X86_64, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"),
            lib(FLAG_ELF_LIBC6, "libz.so.1", "/lib/i386-linux-gnu/libz.so.1"),
            lib(X86_64, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        ]
    }

    fn hwcaps_libs() -> Vec<Lib> {
        vec![
            hw(
                X86_64,
                "libfoo.so.1",
                "/usr/lib/glibc-hwcaps/x86-64-v4/libfoo.so.1.0",
                "x86-64-v4",
            ),
            hw(
                X86_64,
                "libfoo.so.1",
                "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1.0",
                "x86-64-v3",
            ),
            lib(X86_64, "libfoo.so.1", "/usr/lib/libfoo.so.1"),
            lib(
                FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64,
                "libbar.so.2",
                "/usr/lib/aarch64/libbar.so.2",
            ),
            lib(X86_64, "libbar.so.2", "/usr/lib/libbar.so.2"),
        ]
    }

    fn expect(libs: &[Lib]) -> Vec<CacheEntry> {
        let mut names: Vec<&str> = libs.iter().filter_map(|l| l.hwcaps).collect();
        names.sort();
        names.dedup();
        libs.iter()
            .map(|l| CacheEntry {
                soname: l.soname.into(),
                path: l.path.into(),
                flags: l.flags,
                hwcaps: l.hwcaps.map(str::to_owned),
                hwcap: l.hwcaps.map_or(0, |n| {
                    DL_CACHE_HWCAP_EXTENSION
                        | (l.isa_level << 32)
                        | names.iter().position(|m| *m == n).unwrap() as u64
                }),
            })
            .collect()
    }

    #[test]
    fn new_format_without_extensions() {
        let cache = LdCache::parse(&new_format(&base_libs(), None)).unwrap();
        assert_eq!(cache.format, CacheFormat::New);
        assert_eq!(cache.byte_order, ByteOrder::Little);
        assert_eq!(cache.entries, expect(&base_libs()));
        assert_eq!(cache.generator, None);
        assert!(cache.warnings.is_empty());
    }

    #[test]
    fn new_format_with_hwcaps_and_generator() {
        let libs = hwcaps_libs();
        let cache = LdCache::parse(&new_format(&libs, Some(GENERATOR))).unwrap();
        assert_eq!(cache.entries, expect(&libs));
        assert_eq!(cache.entries[1].hwcaps.as_deref(), Some("x86-64-v3"));
        // Sorted names: x86-64-v3 is index 0, x86-64-v4 index 1.
        assert_eq!(cache.entries[1].hwcap, DL_CACHE_HWCAP_EXTENSION);
        assert_eq!(cache.entries[0].hwcap, DL_CACHE_HWCAP_EXTENSION | 1);
        assert_eq!(cache.generator.as_deref(), Some(GENERATOR));
        assert!(cache.warnings.is_empty());
    }

    #[test]
    fn old_format_entries() {
        let cache = LdCache::parse(&old_format(&base_libs(), false)).unwrap();
        assert_eq!(cache.format, CacheFormat::Old);
        assert_eq!(cache.entries, expect(&base_libs()));
        assert_eq!(cache.generator, None);
    }

    #[test]
    fn old_format_big_endian_is_recognised_by_its_count() {
        let cache = LdCache::parse(&old_format(&base_libs(), true)).unwrap();
        assert_eq!(cache.byte_order, ByteOrder::Big);
        assert_eq!(cache.entries, expect(&base_libs()));
    }

    #[test]
    fn new_format_big_endian_by_flag() {
        let mut out = Out {
            bytes: Vec::new(),
            big: true,
        };
        write_new(&mut out, &hwcaps_libs(), Some(GENERATOR), 3);
        let cache = LdCache::parse(&out.bytes).unwrap();
        assert_eq!(cache.byte_order, ByteOrder::Big);
        assert_eq!(cache.entries, expect(&hwcaps_libs()));
        assert_eq!(cache.generator.as_deref(), Some(GENERATOR));
    }

    #[test]
    fn new_format_unset_endianness_is_guessed() {
        let mut out = Out {
            bytes: Vec::new(),
            big: true,
        };
        write_new(&mut out, &base_libs(), None, 0);
        assert_eq!(
            LdCache::parse(&out.bytes).unwrap().byte_order,
            ByteOrder::Big
        );
        let mut out = Out {
            bytes: Vec::new(),
            big: false,
        };
        write_new(&mut out, &base_libs(), None, 0);
        assert_eq!(
            LdCache::parse(&out.bytes).unwrap().byte_order,
            ByteOrder::Little
        );
    }

    #[test]
    fn invalid_endianness_flag_is_an_error() {
        let mut out = Out {
            bytes: Vec::new(),
            big: false,
        };
        write_new(&mut out, &base_libs(), None, 1);
        let err = LdCache::parse(&out.bytes).unwrap_err();
        assert!(matches!(err, LdCacheError::InvalidByteOrder(1)), "{err}");
    }

    #[test]
    fn combined_format_reads_the_new_part() {
        let libs = base_libs();
        let bytes = combined_format(&libs, Some(GENERATOR));
        // Three entries are padded to four: the new header follows at 16 + 48.
        assert_eq!(&bytes[64..84], NEW_MAGIC);
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(cache.format, CacheFormat::Combined);
        assert_eq!(cache.entries, expect(&libs));
        assert_eq!(cache.generator.as_deref(), Some(GENERATOR));
    }

    #[test]
    fn old_entries_of_a_combined_file_point_at_the_new_strings() {
        // Cutting the file just before the new header leaves a valid old-format file
        // whose strings are gone: the old entries' offsets lead past the end.
        let bytes = combined_format(&base_libs(), None);
        let err = LdCache::parse(&bytes[..64]).unwrap_err();
        assert!(
            matches!(
                err,
                LdCacheError::BadString {
                    index: 0,
                    field: "soname",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_and_header_only() {
        assert!(matches!(LdCache::parse(&[]), Err(LdCacheError::Empty)));
        let empty = new_format(&[], None);
        assert_eq!(empty.len(), NEW_HEADER_SIZE);
        let cache = LdCache::parse(&empty).unwrap();
        assert!(cache.entries.is_empty());
        let old_empty = old_format(&[], false);
        assert_eq!(LdCache::parse(&old_empty).unwrap().format, CacheFormat::Old);
        let header = &new_format(&base_libs(), None)[..NEW_HEADER_SIZE];
        let err = LdCache::parse(header).unwrap_err();
        assert!(
            matches!(err, LdCacheError::Truncated("new-format entry table")),
            "{err}"
        );
    }

    #[test]
    fn magic_errors() {
        assert!(matches!(
            LdCache::parse(b"glibc-ld.so"),
            Err(LdCacheError::Truncated("cache magic"))
        ));
        assert!(matches!(
            LdCache::parse(b"\x7fELF\x02\x01\x01"),
            Err(LdCacheError::BadMagic)
        ));
        assert!(matches!(
            LdCache::parse(b"glibc-ld.so.cache1.0xxxxxxxxxxxxxxxxx"),
            Err(LdCacheError::BadMagic)
        ));
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_cache() {
        let fixtures = [
            new_format(&hwcaps_libs(), Some(GENERATOR)),
            old_format(&base_libs(), false),
            combined_format(&base_libs(), Some(GENERATOR)),
        ];
        for bytes in &fixtures {
            let full = LdCache::parse(bytes).unwrap();
            for len in 0..bytes.len() {
                match LdCache::parse(&bytes[..len]) {
                    // Only the extension data may go missing without an error, and
                    // then the loss is reported.
                    Ok(cache) => {
                        assert_eq!(cache.entries.len(), full.entries.len(), "len {len}");
                        assert!(!cache.warnings.is_empty(), "len {len}");
                    }
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
    }

    #[test]
    fn truncated_new_entries_message() {
        let bytes = new_format(&base_libs(), None);
        let err = LdCache::parse(&bytes[..NEW_HEADER_SIZE + 30]).unwrap_err();
        assert_eq!(err.to_string(), "truncated: new-format entry table");
    }

    #[test]
    fn huge_counts_are_rejected() {
        let mut bytes = new_format(&base_libs(), None);
        bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            LdCache::parse(&bytes),
            Err(LdCacheError::Truncated("new-format entry table"))
        ));
        let mut bytes = old_format(&base_libs(), false);
        bytes[12..16].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert!(matches!(
            LdCache::parse(&bytes),
            Err(LdCacheError::Truncated("old-format entry table"))
        ));
    }

    #[test]
    fn corrupt_string_offsets() {
        let mut bytes = new_format(&base_libs(), None);
        // Entry 1's value (path) field.
        let at = NEW_HEADER_SIZE + NEW_ENTRY_SIZE + 8;
        bytes[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let err = LdCache::parse(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 1: path string offset 4294967280 out of range"
        );
        let len = bytes.len() as u32;
        bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        assert!(
            matches!(LdCache::parse(&bytes), Err(LdCacheError::BadString { index: 1, offset, .. }) if offset == len)
        );
    }

    #[test]
    fn unterminated_and_non_utf8_strings() {
        let mut bytes = new_format(&base_libs(), None);
        let last = bytes.len() - 1;
        bytes[last] = b'x';
        let err = LdCache::parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                LdCacheError::UnterminatedString {
                    index: 2,
                    field: "path",
                    ..
                }
            ),
            "{err}"
        );
        let mut bytes = new_format(&base_libs(), None);
        let soname_at = NEW_HEADER_SIZE + 3 * NEW_ENTRY_SIZE;
        bytes[soname_at] = 0xff;
        let err = LdCache::parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                LdCacheError::NotUtf8 {
                    index: 0,
                    field: "soname",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn entries_sharing_one_long_string_are_refused() {
        // 2000 entries whose soname and path are all the same 4000-byte string: 16 MB of
        // copies from a 52 kB file.
        let long = "x".repeat(4000);
        let count = 2000usize;
        let strings_at = (NEW_HEADER_SIZE + count * NEW_ENTRY_SIZE) as u32;
        let mut out = Out {
            bytes: Vec::new(),
            big: false,
        };
        out.bytes.extend_from_slice(NEW_MAGIC);
        out.u32(count as u32);
        out.u32(long.len() as u32 + 1);
        out.bytes.extend_from_slice(&[2, 0, 0, 0]);
        out.bytes.extend_from_slice(&[0; 16]);
        for _ in 0..count {
            out.i32(X86_64);
            out.u32(strings_at);
            out.u32(strings_at);
            out.u32(0);
            out.u64(0);
        }
        out.bytes.extend_from_slice(long.as_bytes());
        out.bytes.push(0);
        let limit = out.bytes.len() * STRING_BUDGET_FACTOR + STRING_BUDGET_EXTRA;
        match LdCache::parse(&out.bytes) {
            Err(LdCacheError::StringsTooLarge { index, limit: l }) => {
                assert_eq!(l, limit);
                assert_eq!(index, limit / 8000);
            }
            other => panic!("expected StringsTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn malformed_extension_directory_is_ignored_with_a_warning() {
        let libs = hwcaps_libs();
        let mut bytes = new_format(&libs, Some(GENERATOR));
        let ext_at = u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
        bytes[ext_at] ^= 1;
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(cache.generator, None);
        assert_eq!(cache.entries[1].hwcaps, None);
        assert_eq!(
            cache.warnings,
            vec![format!(
                "ignored the extension directory at offset {ext_at}: bad magic"
            )]
        );
        // Without a name the loader cannot use the entry; ldconfig -p prints the number.
        assert_eq!(
            cache.entries[1].arch_description(),
            "libc6,x86-64, hwcap: 0x4000000000000000"
        );
        assert_eq!(
            cache
                .lookup("libfoo.so.1", 62, &["x86-64-v3"])
                .unwrap()
                .path,
            "/usr/lib/libfoo.so.1"
        );
    }

    #[test]
    fn misaligned_hwcaps_section_is_dropped_silently() {
        let mut bytes = new_format(&hwcaps_libs(), Some(GENERATOR));
        let ext_at = u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
        // Second section descriptor (glibc-hwcaps): size field made 3.
        let size_at = ext_at + 8 + 16 + 12;
        bytes[size_at..size_at + 4].copy_from_slice(&3u32.to_le_bytes());
        let cache = LdCache::parse(&bytes).unwrap();
        assert!(cache.warnings.is_empty());
        assert_eq!(cache.generator.as_deref(), Some(GENERATOR));
        assert!(cache.entries.iter().all(|e| e.hwcaps.is_none()));
    }

    /// A small xorshift generator: repeatable noise without a dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn bit_flips_never_panic() {
        let fixtures = [
            new_format(&hwcaps_libs(), Some(GENERATOR)),
            old_format(&base_libs(), false),
            combined_format(&base_libs(), Some(GENERATOR)),
        ];
        for bytes in &fixtures {
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                if let Ok(cache) = LdCache::parse(&flipped) {
                    let _ = cache.lookup("libfoo.so.1", 62, &["x86-64-v3"]);
                    cache
                        .entries
                        .iter()
                        .for_each(|e| drop(e.arch_description()));
                }
            }
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..2000 {
                let mut noisy = bytes.clone();
                for _ in 0..1 + xorshift(&mut state) % 8 {
                    let at = (xorshift(&mut state) % noisy.len() as u64) as usize;
                    noisy[at] = xorshift(&mut state) as u8;
                }
                let _ = LdCache::parse(&noisy);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 42u64;
        for len in 0..600 {
            let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            // Half of them get a valid magic so the header paths are exercised.
            if len >= 20 && len % 2 == 0 {
                bytes[..20].copy_from_slice(NEW_MAGIC);
            } else if len >= 11 && len % 3 == 0 {
                bytes[..11].copy_from_slice(OLD_MAGIC);
            }
            let _ = LdCache::parse(&bytes);
        }
    }

    fn cache_of(libs: &[Lib]) -> LdCache {
        LdCache::parse(&new_format(libs, Some(GENERATOR))).unwrap()
    }

    #[test]
    fn lookup_prefers_the_best_supported_hwcaps() {
        let cache = cache_of(&hwcaps_libs());
        let path = |hwcaps: &[&str]| {
            cache
                .lookup("libfoo.so.1", 62, hwcaps)
                .map(|e| e.path.as_str())
        };
        let v4 = "/usr/lib/glibc-hwcaps/x86-64-v4/libfoo.so.1.0";
        let v3 = "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1.0";
        assert_eq!(path(&["x86-64-v4", "x86-64-v3", "x86-64-v2"]), Some(v4));
        assert_eq!(path(&["x86-64-v3", "x86-64-v2"]), Some(v3));
        // The host's order decides, not the cache's.
        assert_eq!(path(&["x86-64-v3", "x86-64-v4"]), Some(v3));
        assert_eq!(path(&["x86-64-v2"]), Some("/usr/lib/libfoo.so.1"));
        assert_eq!(path(&[]), Some("/usr/lib/libfoo.so.1"));
    }

    #[test]
    fn lookup_skips_other_machines() {
        let cache = cache_of(&hwcaps_libs());
        assert_eq!(
            cache.lookup("libbar.so.2", 62, &[]).unwrap().path,
            "/usr/lib/libbar.so.2"
        );
        assert_eq!(
            cache.lookup("libbar.so.2", 183, &[]).unwrap().path,
            "/usr/lib/aarch64/libbar.so.2"
        );
        assert_eq!(cache.lookup("libfoo.so.1", 183, &["x86-64-v3"]), None);
        assert_eq!(cache.lookup("libnone.so", 62, &[]), None);
    }

    #[test]
    fn lookup_plain_libc6_is_for_unflagged_machines_only() {
        let cache = cache_of(&base_libs());
        assert_eq!(
            cache.lookup("libz.so.1", 62, &[]).unwrap().path,
            "/lib/x86_64-linux-gnu/libz.so.1"
        );
        assert_eq!(
            cache.lookup("libz.so.1", 3, &[]).unwrap().path,
            "/lib/i386-linux-gnu/libz.so.1"
        );
        assert_eq!(cache.lookup("libc.so.6", 3, &[]), None);
    }

    #[test]
    fn lookup_x32_is_not_x86_64() {
        let x32 = FLAG_ELF_LIBC6 | FLAG_X8664_LIBX32;
        // ldconfig sorts higher flags first, so the x32 entry comes first.
        let cache = cache_of(&[
            lib(x32, "libc.so.6", "/libx32/libc.so.6"),
            lib(X86_64, "libc.so.6", "/lib64/libc.so.6"),
        ]);
        assert_eq!(
            cache.lookup("libc.so.6", 62, &[]).unwrap().path,
            "/lib64/libc.so.6"
        );
        assert_eq!(cache.entries[0].required_machine(), Some(62));
    }

    #[test]
    fn lookup_generic_elf_entry_gives_way_to_an_exact_one() {
        let cache = cache_of(&[
            lib(FLAG_ELF, "libold.so", "/lib/elf/libold.so"),
            lib(X86_64, "libold.so", "/lib/libold.so"),
        ]);
        assert_eq!(
            cache.lookup("libold.so", 62, &[]).unwrap().path,
            "/lib/libold.so"
        );
        let only_elf = cache_of(&[lib(FLAG_ELF, "libold.so", "/lib/elf/libold.so")]);
        assert_eq!(
            only_elf.lookup("libold.so", 62, &[]).unwrap().path,
            "/lib/elf/libold.so"
        );
    }

    #[test]
    fn lookup_checks_the_x86_isa_level() {
        let mut needs_v4 = hw(
            X86_64,
            "libisa.so",
            "/lib/glibc-hwcaps/x86-64-v3/libisa.so",
            "x86-64-v3",
        );
        needs_v4.isa_level = 3;
        let cache = cache_of(&[needs_v4, lib(X86_64, "libisa.so", "/lib/libisa.so")]);
        assert_eq!(cache.entries[0].isa_level(), 3);
        assert_eq!(
            cache.lookup("libisa.so", 62, &["x86-64-v3"]).unwrap().path,
            "/lib/libisa.so"
        );
        let found = cache
            .lookup("libisa.so", 62, &["x86-64-v4", "x86-64-v3"])
            .unwrap();
        assert_eq!(found.path, "/lib/glibc-hwcaps/x86-64-v3/libisa.so");
    }

    #[test]
    fn lookup_skips_legacy_hwcap_entries_but_not_tls() {
        let libs = [
            lib(X86_64, "libl.so", "/lib/sse2/libl.so"),
            lib(X86_64, "libl.so", "/lib/tls/libl.so"),
        ];
        let mut bytes = new_format(&libs, None);
        let hwcap_at = |i: usize| NEW_HEADER_SIZE + i * NEW_ENTRY_SIZE + 16;
        bytes[hwcap_at(0)..hwcap_at(0) + 8].copy_from_slice(&(1u64 << 2).to_le_bytes());
        bytes[hwcap_at(1)..hwcap_at(1) + 8].copy_from_slice(&TLS_HWCAP.to_le_bytes());
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(
            cache.lookup("libl.so", 62, &[]).unwrap().path,
            "/lib/tls/libl.so"
        );
        assert_eq!(
            cache.entries[0].arch_description(),
            "libc6,x86-64, hwcap: 0x0000000000000004"
        );
    }

    #[test]
    fn arch_descriptions() {
        let desc = |flags: i32| {
            CacheEntry {
                soname: String::new(),
                path: String::new(),
                flags,
                hwcaps: None,
                hwcap: 0,
            }
            .arch_description()
        };
        assert_eq!(desc(X86_64), "libc6,x86-64");
        assert_eq!(desc(FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64), "libc6,AArch64");
        assert_eq!(desc(FLAG_ELF_LIBC6), "libc6");
        assert_eq!(desc(FLAG_ELF), "ELF");
        assert_eq!(
            desc(FLAG_ELF_LIBC6 | FLAG_MIPS64_LIBN64_NAN2008),
            "libc6,64bit,nan2008"
        );
        assert_eq!(
            desc(FLAG_ELF_LIBC6 | FLAG_LARCH_FLOAT_ABI_DOUBLE),
            "libc6,4608"
        );
        assert_eq!(desc(4), "unknown");
        let cache = cache_of(&hwcaps_libs());
        assert_eq!(
            cache.entries[1].arch_description(),
            "libc6,x86-64, hwcap: \"x86-64-v3\""
        );
    }

    #[test]
    fn required_machines() {
        let machine = |flags: i32| {
            CacheEntry {
                soname: String::new(),
                path: String::new(),
                flags,
                hwcaps: None,
                hwcap: 0,
            }
            .required_machine()
        };
        assert_eq!(machine(X86_64), Some(62));
        assert_eq!(machine(FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64), Some(183));
        assert_eq!(machine(FLAG_ELF_LIBC6 | FLAG_POWERPC_LIB64), Some(21));
        assert_eq!(
            machine(FLAG_ELF_LIBC6 | FLAG_RISCV_FLOAT_ABI_DOUBLE),
            Some(243)
        );
        assert_eq!(machine(FLAG_ELF_LIBC6), None);
        assert_eq!(machine(FLAG_ELF_LIBC6 | 0x7f00), None);
    }

    #[test]
    fn serializes_as_kebab_case() {
        let cache = cache_of(&hwcaps_libs());
        let json = serde_json::to_value(&cache).unwrap();
        assert_eq!(json["format"], "new");
        assert_eq!(json["byte_order"], "little");
        assert_eq!(json["entries"][1]["hwcaps"], "x86-64-v3");
    }

    const EM_SPARC: u16 = 2;
    const EM_SPARC32PLUS: u16 = 18;

    #[test]
    fn sparc32_and_arm_accept_plain_entries() {
        let cache = cache_of(&[lib(FLAG_ELF_LIBC6, "libq.so", "/lib/libq.so")]);
        for machine in [EM_SPARC, EM_SPARC32PLUS, EM_ARM, EM_MIPS, EM_S390] {
            assert!(
                cache.lookup("libq.so", machine, &[]).is_some(),
                "machine {machine}"
            );
        }
    }
}
