//! A parser for the text of `ld.so.conf` files, the directory list `ldconfig` builds the
//! cache from, and the glob matching its `include` lines need. It follows `parse_conf`
//! and `add_dir_1` of glibc 2.36's `elf/ldconfig.c` (checked against its ldconfig):
//! `#` starts a comment anywhere on a line; `include` followed by a blank takes
//! patterns separated by spaces or tabs; `hwcap` lines are ignored; any other line is
//! one directory, with a trailing `=TYPE` (an old library-type suffix), trailing
//! whitespace and trailing slashes removed. glibc does not split a directory line on
//! spaces, colons or commas: `/opt/a b` is one directory, and so is `/a:/b`. File
//! access stays with the caller, which owns the root the files are confined to.

/// One meaningful line of an `ld.so.conf` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// A directory to scan, as written (possibly relative, which ldconfig resolves
    /// against its working directory).
    Dir(String),
    /// A glob pattern of more configuration files; a relative one is relative to the
    /// directory of the file that includes it.
    Include(String),
}

/// The directives of one file, in order.
pub fn parse(text: &str) -> Vec<Directive> {
    let mut directives = Vec::new();
    for line in text.split('\n') {
        parse_line(line, &mut directives);
    }
    directives
}

fn parse_line(line: &str, out: &mut Vec<Directive>) {
    // ldconfig handles lines as C strings: a NUL ends the line, then '#' does.
    let line = line.split('\0').next().unwrap_or("");
    let line = line.split('#').next().unwrap_or("");
    let line = line.trim_start_matches(is_c_space);
    if line.is_empty() {
        return;
    }
    if let Some(patterns) = keyword_argument(line, "include", false) {
        let patterns = patterns.split([' ', '\t']).filter(|p| !p.is_empty());
        out.extend(patterns.map(|p| Directive::Include(p.to_string())));
    } else if keyword_argument(line, "hwcap", true).is_some() {
        log::debug!("ld.so.conf: hwcap directive ignored, as ldconfig ignores it");
    } else if let Some(dir) = directory(line) {
        out.push(Directive::Dir(dir.to_string()));
    }
}

/// The rest of `line` after `keyword` and one blank, if the line starts with them.
fn keyword_argument<'a>(line: &'a str, keyword: &str, ignore_case: bool) -> Option<&'a str> {
    let head = line.get(..keyword.len())?;
    let matches = if ignore_case {
        head.eq_ignore_ascii_case(keyword)
    } else {
        head == keyword
    };
    let rest = line.get(keyword.len()..)?;
    let rest = rest.strip_prefix([' ', '\t'])?;
    matches.then_some(rest)
}

/// `add_dir_1`: cut at the first '=', then trailing whitespace and slashes. "/" and
/// "=libc6" become empty and are dropped, as ldconfig drops them.
fn directory(line: &str) -> Option<&str> {
    let path = line.split('=').next().unwrap_or("");
    let path = path.trim_end_matches(is_c_space).trim_end_matches('/');
    (!path.is_empty()).then_some(path)
}

/// C `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Whether one path segment `name` matches the glob segment `pattern`, as `glob(3)`
/// without flags matches it: `*` any run, `?` any one character, `[...]` a class (with
/// `!` or `^` negation, ranges and `[:alpha:]`-style names), `\` quoting the next
/// character. A name starting with '.' only matches a pattern starting with a literal
/// '.'. Matching takes time proportional to pattern length times name length.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    if name.first() == Some(&'.') && !starts_with_literal_dot(&pattern) {
        return false;
    }
    match_from(&pattern, &name)
}

fn starts_with_literal_dot(pattern: &[char]) -> bool {
    matches!(pattern, ['.', ..] | ['\\', '.', ..])
}

/// Iterative matching with one backtrack point, the last `*`: on a mismatch the star
/// absorbs one more character. Enough for globs, and never exponential.
fn match_from(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pattern.get(p) == Some(&'*') {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if let Some(next) = name.get(n).and_then(|c| single(pattern, p, *c)) {
            p = next;
            n += 1;
            continue;
        }
        if p >= pattern.len() && n >= name.len() {
            return true;
        }
        match star {
            Some((star_p, star_n)) if star_n < name.len() => {
                star = Some((star_p, star_n + 1));
                p = star_p;
                n = star_n + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the one-character item at `pattern[p]` against `c`; the index after the
/// item when it matches.
fn single(pattern: &[char], p: usize, c: char) -> Option<usize> {
    match *pattern.get(p)? {
        '?' => Some(p + 1),
        '[' => match bracket(pattern, p + 1, c) {
            Some((true, next)) => Some(next),
            Some((false, _)) => None,
            // No closing ']': the '[' is an ordinary character.
            None => (c == '[').then_some(p + 1),
        },
        '\\' => match pattern.get(p + 1) {
            Some(quoted) => (*quoted == c).then_some(p + 2),
            None => (c == '\\').then_some(p + 1),
        },
        literal => (literal == c).then_some(p + 1),
    }
}

/// A bracket expression starting after its '[': whether `c` is in it, and the index
/// after its ']'; `None` when it is not closed.
fn bracket(pattern: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start;
    let negate = matches!(pattern.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let item = *pattern.get(i)?;
        if item == ']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if item == '[' && pattern.get(i + 1) == Some(&':') {
            if let Some((class_match, next)) = named_class(pattern, i + 2, c) {
                found |= class_match;
                i = next;
                continue;
            }
        }
        let (low, after_low) = class_char(pattern, i)?;
        let is_range = pattern.get(after_low) == Some(&'-')
            && pattern.get(after_low + 1).is_some_and(|e| *e != ']');
        if is_range {
            let (high, after_high) = class_char(pattern, after_low + 1)?;
            found |= low <= c && c <= high;
            i = after_high;
        } else {
            found |= low == c;
            i = after_low;
        }
    }
}

/// One possibly backslash-quoted character inside a bracket expression.
fn class_char(pattern: &[char], i: usize) -> Option<(char, usize)> {
    match *pattern.get(i)? {
        '\\' => pattern.get(i + 1).map(|q| (*q, i + 2)),
        other => Some((other, i + 1)),
    }
}

/// `[:name:]` inside a bracket, starting after "[:"; `None` when no ":]" closes it, so
/// the '[' counts as a plain character. Unknown names match no character.
fn named_class(pattern: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let len = pattern
        .get(start..)?
        .windows(2)
        .position(|w| w == [':', ']'])?;
    let name: String = pattern.get(start..start + len)?.iter().collect();
    let matched = match name.as_str() {
        "alpha" => c.is_ascii_alphabetic(),
        "digit" => c.is_ascii_digit(),
        "alnum" => c.is_ascii_alphanumeric(),
        "upper" => c.is_ascii_uppercase(),
        "lower" => c.is_ascii_lowercase(),
        "space" => is_c_space(c),
        "blank" => c == ' ' || c == '\t',
        "punct" => c.is_ascii_punctuation(),
        "xdigit" => c.is_ascii_hexdigit(),
        "cntrl" => c.is_ascii_control(),
        "graph" => c.is_ascii_graphic(),
        "print" => c.is_ascii_graphic() || c == ' ',
        _ => false,
    };
    Some((matched, start + len + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(s: &str) -> Directive {
        Directive::Dir(s.to_string())
    }

    fn include(s: &str) -> Directive {
        Directive::Include(s.to_string())
    }

    #[test]
    fn debian_default() {
        let text = "include /etc/ld.so.conf.d/*.conf\n\n";
        assert_eq!(parse(text), vec![include("/etc/ld.so.conf.d/*.conf")]);
        let text = "# libc default configuration\n/usr/local/lib\n";
        assert_eq!(parse(text), vec![dir("/usr/local/lib")]);
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let text = "  # only a comment\n\t/b/// # trailing comment\n\n   \n/c\r\n/d";
        assert_eq!(parse(text), vec![dir("/b"), dir("/c"), dir("/d")]);
    }

    #[test]
    fn directory_lines_are_not_split() {
        // Checked against glibc 2.36's ldconfig: each of these is one directory.
        assert_eq!(parse("/a /b"), vec![dir("/a /b")]);
        assert_eq!(parse("/a:/b"), vec![dir("/a:/b")]);
        assert_eq!(parse("/a,/b"), vec![dir("/a,/b")]);
    }

    #[test]
    fn type_suffix_is_stripped() {
        assert_eq!(parse("/b=libc6"), vec![dir("/b")]);
        assert_eq!(parse("/a b = libc6 "), vec![dir("/a b")]);
        assert_eq!(parse("/b=libc6=x"), vec![dir("/b")]);
        assert_eq!(parse("=libc6"), vec![]);
    }

    #[test]
    fn root_and_slashes_only_are_dropped() {
        assert_eq!(parse("/\n///\n"), vec![]);
    }

    #[test]
    fn include_lines() {
        let text = "include /etc/x.conf\t/etc/y.conf  conf.d/*.conf\ninclude\t/z.conf";
        let want = vec![
            include("/etc/x.conf"),
            include("/etc/y.conf"),
            include("conf.d/*.conf"),
            include("/z.conf"),
        ];
        assert_eq!(parse(text), want);
        assert_eq!(parse("include \t "), vec![]);
        // Without a blank after it, "include" is a (relative) directory, as in ldconfig.
        assert_eq!(parse("include"), vec![dir("include")]);
        assert_eq!(parse("includes /x"), vec![dir("includes /x")]);
        assert_eq!(parse("INCLUDE /x"), vec![dir("INCLUDE /x")]);
    }

    #[test]
    fn hwcap_lines_are_ignored_in_any_case() {
        assert_eq!(parse("hwcap 1 nosegneg\nHWCAP x\n/lib"), vec![dir("/lib")]);
        assert_eq!(parse("hwcaps"), vec![dir("hwcaps")]);
    }

    #[test]
    fn nul_ends_a_line() {
        assert_eq!(
            parse("/lib\0/ignored\n/usr/lib"),
            vec![dir("/lib"), dir("/usr/lib")]
        );
    }

    #[test]
    fn glob_wildcards() {
        assert!(glob_match("*.conf", "libc.conf"));
        assert!(!glob_match("*.conf", ".conf"));
        assert!(!glob_match("*.conf", "libc.conf.bak"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("lib?.so", "libz.so"));
        assert!(!glob_match("lib?.so", "lib.so"));
        assert!(glob_match("**x", "abx"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn glob_hidden_names() {
        assert!(!glob_match("*", ".hidden"));
        assert!(!glob_match("?hidden", ".hidden"));
        assert!(!glob_match("[.]hidden", ".hidden"));
        assert!(glob_match(".*", ".hidden"));
        assert!(glob_match("\\.h*", ".hidden"));
    }

    #[test]
    fn glob_classes() {
        assert!(glob_match("[abc].conf", "b.conf"));
        assert!(!glob_match("[abc].conf", "d.conf"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("[^a-c]x", "dx"));
        assert!(glob_match("[]]", "]"));
        assert!(glob_match("[!]]", "a"));
        assert!(glob_match("[a-]", "-"));
        assert!(glob_match("[[:digit:]]*", "10-cuda.conf"));
        assert!(!glob_match("[[:digit:]]*", "cuda.conf"));
        assert!(glob_match("[[:alpha:]_]x", "_x"));
        assert!(glob_match("[\\]]", "]"));
    }

    #[test]
    fn glob_unclosed_bracket_and_escapes_are_literal() {
        assert!(glob_match("[abc", "[abc"));
        assert!(!glob_match("[abc", "a"));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
        assert!(glob_match("a\\", "a\\"));
        assert!(!glob_match("[[:bogus:]]", "b"));
        assert!(glob_match("[[:bogus:]b]", "b"));
    }

    #[test]
    fn glob_non_ascii() {
        assert!(glob_match("?.conf", "é.conf"));
        assert!(glob_match("*é*", "caféine"));
    }

    #[test]
    fn glob_is_not_exponential() {
        let name = "a".repeat(200);
        let pattern = format!("{}b", "*a".repeat(50));
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &name));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
