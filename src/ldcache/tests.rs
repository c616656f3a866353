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
    // Beyond the limit: refused from the header, before anything else is read.
    let mut bytes = new_format(&base_libs(), None);
    bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        LdCache::parse(&bytes),
        Err(LdCacheError::TooManyEntries { count: u32::MAX })
    ));
    // Within the limit but more than the file holds: truncated.
    let mut bytes = new_format(&base_libs(), None);
    bytes[20..24].copy_from_slice(&MAX_ENTRIES.to_le_bytes());
    assert!(matches!(
        LdCache::parse(&bytes),
        Err(LdCacheError::Truncated("new-format entry table"))
    ));
    let mut bytes = old_format(&base_libs(), false);
    bytes[12..16].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    assert!(matches!(
        LdCache::parse(&bytes),
        Err(LdCacheError::TooManyEntries { .. })
    ));
    let mut bytes = old_format(&base_libs(), false);
    bytes[12..16].copy_from_slice(&MAX_ENTRIES.to_le_bytes());
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
