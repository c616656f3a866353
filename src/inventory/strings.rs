//! NUL-terminated printable strings inside a byte slice (typically an ELF `.rodata`), the
//! way `strings(1)` sees them. Version strings that libraries do not export as symbols
//! (glibc's banner, musl's version, MPICH's version block) are found this way.

/// Iterates the printable ASCII runs of at least `min_len` bytes that end in a NUL.
pub fn c_strings(bytes: &[u8], min_len: usize) -> impl Iterator<Item = &str> {
    bytes
        .split(|&b| b == 0)
        .filter(move |s| s.len() >= min_len && s.iter().all(|&b| is_printable(b)))
        .filter_map(|s| std::str::from_utf8(s).ok())
}

fn is_printable(b: u8) -> bool {
    b == b'\t' || b == b'\n' || (0x20..0x7f).contains(&b)
}

/// The NUL-terminated string that contains byte offset `at` of `bytes`.
pub fn string_at(bytes: &[u8], at: usize) -> Option<&str> {
    let start = bytes
        .get(..at)?
        .iter()
        .rposition(|&b| b == 0)
        .map_or(0, |p| p + 1);
    let len = bytes.get(start..)?.iter().position(|&b| b == 0)?;
    let s = bytes.get(start..start + len)?;
    s.iter()
        .all(|&b| is_printable(b))
        .then(|| std::str::from_utf8(s).ok())
        .flatten()
}

/// The strings that follow the one containing offset `at`, in order.
pub fn strings_after(bytes: &[u8], at: usize) -> impl Iterator<Item = &str> {
    let end = bytes
        .get(at..)
        .and_then(|b| b.iter().position(|&c| c == 0))
        .map_or(bytes.len(), |p| at + p);
    c_strings(bytes.get(end..).unwrap_or_default(), 1)
}

/// The first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// True for a dotted version such as `4.2.1`, `3.4`, `5.0.0rc12` or `4.1a1`.
pub fn is_dotted_version(s: &str) -> bool {
    let mut parts = s.split('.');
    let numeric_head = |p: &str| p.chars().next().is_some_and(|c| c.is_ascii_digit());
    let all_ok = s
        .split('.')
        .all(|p| !p.is_empty() && numeric_head(p) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    let count = s.split('.').count();
    parts.next().is_some() && all_ok && (2..=4).contains(&count)
}

/// The leading `MAJOR.MINOR[.PATCH]` numbers of a version-ish string, e.g. "2.36." -> "2.36".
pub fn leading_version(s: &str) -> Option<String> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let v = s[..end].trim_end_matches('.');
    (v.contains('.') && v.split('.').all(|p| !p.is_empty())).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_strings_between_nuls() {
        let bytes = b"\0ab\0hello\0\x01\x02bin\0world";
        let found: Vec<_> = c_strings(bytes, 3).collect();
        assert_eq!(found, vec!["hello", "world"]);
    }

    #[test]
    fn strings_around_an_offset() {
        let bytes = b"xx\0ch4:ucx\0--with-device=ch4:ucx\0\x01\0abi\0date";
        let at = find(bytes, b"--with").unwrap();
        assert_eq!(string_at(bytes, at), Some("--with-device=ch4:ucx"));
        assert_eq!(string_at(bytes, at - 3), Some("ch4:ucx"));
        let after: Vec<_> = strings_after(bytes, at).collect();
        assert_eq!(after, vec!["abi", "date"]);
        assert_eq!(string_at(b"no terminator", 3), None);
    }

    #[test]
    fn dotted_versions() {
        for ok in ["4.2.1", "3.4", "5.0.0rc12", "1.2.3"] {
            assert!(is_dotted_version(ok), "{ok}");
        }
        for bad in ["", "4", "v4.1.0", "4..1", "a.b", "16:1:4", "1.2.3.4.5"] {
            assert!(!is_dotted_version(bad), "{bad}");
        }
    }

    #[test]
    fn leading_versions() {
        assert_eq!(leading_version("2.36."), Some("2.36".into()));
        assert_eq!(leading_version("2.31-13+deb11u14"), Some("2.31".into()));
        assert_eq!(leading_version("12"), None);
        assert_eq!(leading_version("x2.3"), None);
    }
}
