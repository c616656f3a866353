use super::*;
use crate::ldcache::{
    CacheFormat, FLAG_ELF, FLAG_ELF_LIBC6, FLAG_X8664_LIB64, FLAG_X8664_LIBX32, LdCache,
};

const X86_64: i32 = FLAG_ELF_LIBC6 | FLAG_X8664_LIB64;
const X32: i32 = FLAG_ELF_LIBC6 | FLAG_X8664_LIBX32;

fn entry(flags: i32, soname: &str, path: &str, hwcaps: Option<&str>) -> NewEntry {
    NewEntry {
        soname: soname.to_owned(),
        path: path.to_owned(),
        flags,
        hwcaps: hwcaps.map(str::to_owned),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// What a reader gets back: (soname, path, flags, hwcaps) in file order.
fn read_back(bytes: &[u8]) -> Vec<(String, String, i32, Option<String>)> {
    let cache = LdCache::parse(bytes).unwrap();
    assert_eq!(cache.format, CacheFormat::New);
    assert!(cache.warnings.is_empty(), "{:?}", cache.warnings);
    assert_eq!(cache.generator.as_deref(), Some(GENERATOR));
    cache
        .entries
        .into_iter()
        .map(|e| (e.soname, e.path, e.flags, e.hwcaps))
        .collect()
}

fn tuple(e: &NewEntry) -> (String, String, i32, Option<String>) {
    (e.soname.clone(), e.path.clone(), e.flags, e.hwcaps.clone())
}

#[test]
fn empty_list_gives_a_header_and_the_generator() {
    let bytes = write(&[]).unwrap();
    assert_eq!(
        GENERATOR,
        concat!("containerspec ", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(bytes.len(), 48 + 8 + 16 + GENERATOR.len());
    assert_eq!(&bytes[..20], b"glibc-ld.so.cache1.1");
    assert_eq!(u32_at(&bytes, 20), 0, "nlibs");
    assert_eq!(u32_at(&bytes, 24), 0, "len_strings");
    // glibc 2.33+ reads 2 as little-endian and 3 as big-endian.
    let endian = if cfg!(target_endian = "big") { 3 } else { 2 };
    assert_eq!(&bytes[28..32], &[endian, 0, 0, 0]);
    assert_eq!(u32_at(&bytes, 32), 48, "extension offset");
    assert_eq!(&bytes[36..48], &[0; 12]);
    let directory: Vec<u32> = (0..6).map(|i| u32_at(&bytes, 48 + 4 * i)).collect();
    let generator_len = GENERATOR.len() as u32;
    assert_eq!(directory, [EXTENSION_MAGIC, 1, 0, 0, 72, generator_len]);
    assert_eq!(&bytes[72..], GENERATOR.as_bytes());
    assert_eq!(read_back(&bytes), []);
}

#[test]
fn nul_bytes_are_refused() {
    let good = entry(X86_64, "libz.so.1", "/lib/libz.so.1", None);
    let cases = [
        (
            entry(X86_64, "libz.so.1\0x", "/lib/libz.so.1", None),
            "soname",
        ),
        (entry(X86_64, "libz.so.1", "/lib/\0libz.so.1", None), "path"),
        (
            entry(X86_64, "libz.so.1", "/lib/libz.so.1", Some("x86\0")),
            "hwcaps",
        ),
    ];
    for (bad, field) in cases {
        let err = write(&[good.clone(), bad]).unwrap_err();
        assert_eq!(err, WriteError::NulByte { index: 1, field });
        assert_eq!(
            err.to_string(),
            format!("entry 1: {field} contains a nul byte")
        );
    }
}

#[test]
fn first_of_equal_entries_wins() {
    let entries = [
        entry(X86_64, "libm.so.6", "/container/libm.so.6", None),
        entry(X86_64, "libm.so.6", "/host/libm.so.6", None),
        entry(FLAG_ELF_LIBC6, "libm.so.6", "/i386/libm.so.6", None),
        entry(
            X86_64,
            "libm.so.6",
            "/h/glibc-hwcaps/x86-64-v3/libm.so.6",
            Some("x86-64-v3"),
        ),
        entry(
            X86_64,
            "libm.so.6",
            "/h2/glibc-hwcaps/x86-64-v3/libm.so.6",
            Some("x86-64-v3"),
        ),
    ];
    let got = read_back(&write(&entries).unwrap());
    let want: Vec<_> = [&entries[3], &entries[0], &entries[2]]
        .into_iter()
        .map(tuple)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn tricky_names_and_flags_sort_as_ldconfig_sorts_them() {
    let given = [
        entry(X86_64, "libfoo.so.1", "/a/libfoo.so.1", None),
        entry(X86_64, "libfoo.so", "/a/libfoo.so", None),
        entry(X86_64, "libfoo.so.10", "/a/libfoo.so.10", None),
        entry(FLAG_ELF, "libfoo.so.1", "/elf/libfoo.so.1", None),
        entry(X86_64, "libfoo.so.2", "/a/libfoo.so.2", None),
        entry(
            X86_64,
            "libfoo.so.1",
            "/a/glibc-hwcaps/x86-64-v3/libfoo.so.1",
            Some("x86-64-v3"),
        ),
        entry(FLAG_ELF_LIBC6, "libfoo.so.1", "/i386/libfoo.so.1", None),
        entry(X32, "libfoo.so.1", "/x32/libfoo.so.1", None),
        entry(
            X86_64,
            "libfoo.so.1",
            "/a/glibc-hwcaps/x86-64-v2/libfoo.so.1",
            Some("x86-64-v2"),
        ),
        entry(X86_64, "libfoo2.so.1", "/a/libfoo2.so.1", None),
        entry(X86_64, "libFoo.so.1", "/a/libFoo.so.1", None),
    ];
    let paths: Vec<String> = read_back(&write(&given).unwrap())
        .into_iter()
        .map(|(_, path, _, _)| path)
        .collect();
    assert_eq!(
        paths,
        [
            // A digit run ranks above any other character: libfoo2 > libfoo.
            "/a/libfoo2.so.1",
            "/a/libfoo.so.10",
            "/a/libfoo.so.2",
            // Same soname: x32 (0x0803) > x86-64 (0x0303) > libc6 (3) > ELF (1), and
            // glibc-hwcaps entries by name before the plain one.
            "/x32/libfoo.so.1",
            "/a/glibc-hwcaps/x86-64-v2/libfoo.so.1",
            "/a/glibc-hwcaps/x86-64-v3/libfoo.so.1",
            "/a/libfoo.so.1",
            "/i386/libfoo.so.1",
            "/elf/libfoo.so.1",
            // The end of a name ranks below '.'.
            "/a/libfoo.so",
            // 'F' (70) < 'f' (102).
            "/a/libFoo.so.1",
        ]
    );
}

#[test]
fn round_trip_through_the_reader() {
    let given = [
        entry(X86_64, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", None),
        entry(
            X86_64,
            "libmpi.so.12",
            "/opt/host/lib/glibc-hwcaps/x86-64-v3/libmpi.so.12",
            Some("x86-64-v3"),
        ),
        entry(X86_64, "libmpi.so.12", "/opt/host/lib/libmpi.so.12", None),
        entry(
            FLAG_ELF_LIBC6,
            "libc.so.6",
            "/lib/i386-linux-gnu/libc.so.6",
            None,
        ),
        entry(
            X86_64,
            "libmpi.so.12",
            "/opt/host/lib/glibc-hwcaps/x86-64-v2/libmpi.so.12",
            Some("x86-64-v2"),
        ),
        entry(X32, "libc.so.6", "/libx32/libc.so.6", None),
        entry(FLAG_ELF, "libold.so", "/lib/libold.so", None),
    ];
    let bytes = write(&given).unwrap();
    // Sonames descending (libold > libmpi > libc); glibc-hwcaps names in strcmp
    // order before the plain entry; higher flags first.
    let want: Vec<_> = [6, 4, 1, 2, 5, 0, 3].map(|i| tuple(&given[i])).to_vec();
    assert_eq!(read_back(&bytes), want);
    let cache = LdCache::parse(&bytes).unwrap();
    let hwcap: Vec<u64> = cache.entries.iter().map(|e| e.hwcap).collect();
    let ext = DL_CACHE_HWCAP_EXTENSION;
    assert_eq!(hwcap, [0, ext, ext | 1, 0, 0, 0, 0]);
    let found = cache.lookup("libmpi.so.12", 62, &["x86-64-v3", "x86-64-v2"]);
    assert_eq!(
        found.map(|e| e.path.as_str()),
        Some("/opt/host/lib/glibc-hwcaps/x86-64-v3/libmpi.so.12")
    );
}

/// `_dl_cache_libcmp` transcribed line by line from glibc (NUL-terminated bytes, C
/// `char` arithmetic in `int`), to check the token-based version against.
fn glibc_libcmp(a: &[u8], b: &[u8]) -> i32 {
    let (a, b) = ([a, &[0]].concat(), [b, &[0]].concat());
    let at = |s: &[u8], i: usize| c_char_value(s[i]);
    let digit = |c: i32| (i32::from(b'0')..=i32::from(b'9')).contains(&c);
    let (mut i, mut j) = (0, 0);
    while at(&a, i) != 0 {
        if digit(at(&a, i)) {
            if !digit(at(&b, j)) {
                return 1;
            }
            let (mut v1, mut v2) = (0i32, 0i32);
            while digit(at(&a, i)) {
                v1 = v1.wrapping_mul(10).wrapping_add(at(&a, i) - 48);
                i += 1;
            }
            while digit(at(&b, j)) {
                v2 = v2.wrapping_mul(10).wrapping_add(at(&b, j) - 48);
                j += 1;
            }
            if v1 != v2 {
                return v1.wrapping_sub(v2);
            }
        } else if digit(at(&b, j)) {
            return -1;
        } else if at(&a, i) != at(&b, j) {
            return at(&a, i) - at(&b, j);
        } else {
            i += 1;
            j += 1;
        }
    }
    at(&a, i) - at(&b, j)
}

/// A small xorshift generator: repeatable noise without a dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A name from pieces that exercise every branch: digit runs (with leading zeros;
/// up to 20 digits more often with `long_numbers`), dots, letters of both cases, and
/// a non-ASCII letter.
fn random_name(state: &mut u64, long_numbers: bool) -> String {
    let pieces = [
        "lib", ".", "so", "0", "1", "2", "9", "10", "007", "F", "f", "é", "-",
    ];
    let mut name = String::new();
    for _ in 0..xorshift(state) % 7 {
        if long_numbers && xorshift(state).is_multiple_of(8) {
            name.push_str(&"98765432109876543210"[..(xorshift(state) % 20) as usize]);
        } else {
            name.push_str(pieces[(xorshift(state) % pieces.len() as u64) as usize]);
        }
    }
    name
}

#[test]
fn libcmp_agrees_with_glibc() {
    let pairs: [(&str, &str, Ordering); 11] = [
        ("libfoo.so.10", "libfoo.so.2", Ordering::Greater),
        ("libfoo.so.2", "libfoo.so.1", Ordering::Greater),
        ("libfoo.so.01", "libfoo.so.1", Ordering::Equal),
        ("libfoo.so", "libfoo.so.1", Ordering::Less),
        ("libfoo2.so", "libfoo.so", Ordering::Greater),
        ("lib9", "libz", Ordering::Greater),
        ("libFoo", "libfoo", Ordering::Less),
        ("", "", Ordering::Equal),
        ("", "0", Ordering::Less),
        (
            "lib99999999999999999999",
            "lib99999999999999999998",
            Ordering::Greater,
        ),
        ("a00000000000000000000001", "a1", Ordering::Equal),
    ];
    for (a, b, want) in pairs {
        assert_eq!(libcmp(a.as_bytes(), b.as_bytes()), want, "{a:?} vs {b:?}");
    }
    // Where glibc's int arithmetic does not overflow (digit runs of at most 9), the
    // two agree on every pair.
    let longest_run = |s: &str| {
        s.split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0)
    };
    let mut state = 7u64;
    let mut compared = 0;
    for _ in 0..20_000 {
        let a = random_name(&mut state, false);
        let b = random_name(&mut state, false);
        if longest_run(&a) > 9 || longest_run(&b) > 9 {
            continue;
        }
        compared += 1;
        let want = glibc_libcmp(a.as_bytes(), b.as_bytes()).cmp(&0);
        assert_eq!(libcmp(a.as_bytes(), b.as_bytes()), want, "{a:?} vs {b:?}");
    }
    assert!(compared > 15_000, "{compared}");
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[test]
fn non_ascii_bytes_compare_as_signed_char_on_x86() {
    // 'é' is 0xc3 0xa9: negative as a signed char, below the terminating NUL.
    assert_eq!(
        glibc_libcmp(b"lib", "libé".as_bytes()).cmp(&0),
        Ordering::Greater
    );
    assert_eq!(libcmp(b"lib", "libé".as_bytes()), Ordering::Greater);
    assert_eq!(libcmp("libé".as_bytes(), b"libe"), Ordering::Less);
}

#[test]
fn random_entries_round_trip_in_order() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let flags = [X86_64, X32, FLAG_ELF, FLAG_ELF_LIBC6, -1, i32::MIN];
    let names = [None, Some("x86-64-v2"), Some("x86-64-v3"), Some("")];
    for round in 0..200 {
        let count = (xorshift(&mut state) % 40) as usize;
        let given: Vec<NewEntry> = (0..count)
            .map(|_| NewEntry {
                soname: random_name(&mut state, true),
                path: format!("/l/{}", random_name(&mut state, true)),
                flags: flags[(xorshift(&mut state) % 6) as usize],
                hwcaps: names[(xorshift(&mut state) % 4) as usize].map(str::to_owned),
            })
            .collect();
        let got = read_back(&write(&given).unwrap());
        let mut want: Vec<&NewEntry> = first_of_each(&given);
        want.sort_by(|a, b| ldconfig_order(a, b));
        let want: Vec<_> = want.into_iter().map(tuple).collect();
        assert_eq!(got, want, "round {round}");
        // Every neighbour pair is in order: the table can be binary-searched.
        let as_entries: Vec<NewEntry> = got
            .into_iter()
            .map(|(soname, path, flags, hwcaps)| NewEntry {
                soname,
                path,
                flags,
                hwcaps,
            })
            .collect();
        for pair in as_entries.windows(2) {
            assert_ne!(ldconfig_order(&pair[0], &pair[1]), Ordering::Greater);
        }
    }
}

#[test]
fn sizes_beyond_32_bits_are_refused() {
    // Header 48, strings up to a multiple of 4, directory 8 + 16, then the generator:
    // the largest file ends exactly at u32::MAX.
    let strings = (u32::MAX as usize - 72) / 4 * 4;
    let fits = Layout::new(0, strings, 0, 3).unwrap();
    assert_eq!(fits.total, u32::MAX as usize);
    assert_eq!(fits.generator_at, u32::MAX - 3);
    assert_eq!(Layout::new(0, strings, 0, 4), Err(WriteError::TooLarge));
    assert_eq!(
        Layout::new(usize::MAX / 8, 0, 0, 0),
        Err(WriteError::TooLarge)
    );
    assert_eq!(
        Layout::new(0, usize::MAX - 10, 0, 0),
        Err(WriteError::TooLarge)
    );
    assert_eq!(
        Layout::new(0, 0, usize::MAX / 2, 0),
        Err(WriteError::TooLarge)
    );
    assert_eq!(
        WriteError::TooLarge.to_string(),
        "the cache would be larger than 4 GiB, beyond what its 32-bit offsets reach"
    );
}

#[test]
fn layout_with_hwcaps_names() {
    let layout = Layout::new(2, 30, 2, 5).unwrap();
    let want = Layout {
        nlibs: 2,
        strings_at: 96,
        strings_len: 30,
        extension_at: 128,
        sections: 2,
        hwcaps_at: 128 + 8 + 32,
        hwcaps_size: 8,
        generator_at: 176,
        generator_len: 5,
        total: 181,
    };
    assert_eq!(layout, want);
}

#[test]
fn from_cache_entry_keeps_or_recovers_the_hwcaps_name() {
    let cache_entry = |path: &str, hwcaps: Option<&str>, hwcap: u64| CacheEntry {
        soname: "libq.so.1".to_owned(),
        path: path.to_owned(),
        flags: X86_64,
        hwcaps: hwcaps.map(str::to_owned),
        hwcap,
    };
    let ext = DL_CACHE_HWCAP_EXTENSION;
    let named = cache_entry(
        "/l/glibc-hwcaps/x86-64-v4/libq.so.1",
        Some("x86-64-v4"),
        ext,
    );
    let unnamed = cache_entry("/l/glibc-hwcaps/x86-64-v3/libq.so.1", None, ext | 3);
    let odd_path = cache_entry("/l/x86-64-v3/libq.so.1", None, ext);
    let plain = cache_entry("/l/libq.so.1", None, 0);
    let hwcaps = |e: &CacheEntry| NewEntry::from(e).hwcaps;
    assert_eq!(hwcaps(&named).as_deref(), Some("x86-64-v4"));
    assert_eq!(hwcaps(&unnamed).as_deref(), Some("x86-64-v3"));
    assert_eq!(hwcaps(&odd_path), None);
    assert_eq!(hwcaps(&plain), None);
    assert_eq!(
        NewEntry::from(&plain),
        entry(X86_64, "libq.so.1", "/l/libq.so.1", None)
    );
}
