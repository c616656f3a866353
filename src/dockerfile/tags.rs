//! Tag tracks: which tags of a repository are newer releases of the one a Dockerfile
//! uses. A track is a tag's shape with its last number free: `12.1` moves to `12.2` and
//! `12.10` (never `13.0`), `bookworm-20250101` to a later date stamp, `3.11.7-slim` to
//! `3.11.8-slim`. A tag without a number (`latest`, `bookworm`) or with one short number
//! (`12`, a major release line) has no track.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    Number(&'a str),
}

fn tokens(tag: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = tag.as_bytes();
    while start < bytes.len() {
        let digit = bytes[start].is_ascii_digit();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() == digit {
            end += 1;
        }
        let piece = &tag[start..end];
        out.push(if digit {
            Token::Number(piece)
        } else {
            Token::Text(piece)
        });
        start = end;
    }
    out
}

/// Compares two digit strings as numbers of any length.
fn cmp_number(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether `candidate` is in `current`'s track and newer: the same text pieces, the same
/// numbers but the last, and a larger last number.
pub fn is_newer_in_track(current: &str, candidate: &str) -> bool {
    let a = tokens(current);
    let b = tokens(candidate);
    if a.len() != b.len() {
        return false;
    }
    let Some(last) = a.iter().rposition(|t| matches!(t, Token::Number(_))) else {
        return false;
    };
    // One short number (`12`, `v3`) is a major release line of its own, not a track.
    let numbers = a.iter().filter(|t| matches!(t, Token::Number(_))).count();
    if numbers == 1 && matches!(a[last], Token::Number(n) if n.len() < 6) {
        return false;
    }
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        match (x, y) {
            (Token::Text(x), Token::Text(y)) if x == y => {}
            (Token::Number(x), Token::Number(y)) if i < last => {
                if x != y {
                    return false;
                }
            }
            (Token::Number(x), Token::Number(y)) => {
                // A date stamp stays a date stamp: `20250101` never moves to `2`.
                if (x.len() >= 6 || y.len() >= 6) && x.len() != y.len() {
                    return false;
                }
                if cmp_number(y, x) != Ordering::Greater {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Whether `tag` has a track at all (some other tag could be newer in it).
pub fn has_track(tag: &str) -> bool {
    let t = tokens(tag);
    let numbers: Vec<&str> = t
        .iter()
        .filter_map(|t| match t {
            Token::Number(n) => Some(*n),
            Token::Text(_) => None,
        })
        .collect();
    match numbers.as_slice() {
        [] => false,
        [one] => one.len() >= 6,
        _ => true,
    }
}

/// The tags of `all` newer than `current` in its track, oldest first.
pub fn newer_in_track(current: &str, all: &[String]) -> Vec<String> {
    let mut newer: Vec<String> = all
        .iter()
        .filter(|t| is_newer_in_track(current, t))
        .cloned()
        .collect();
    newer.sort_by(|a, b| compare_in_track(a, b));
    newer.dedup();
    newer
}

fn compare_in_track(a: &str, b: &str) -> Ordering {
    let last = |t: &str| {
        tokens(t)
            .into_iter()
            .rev()
            .find_map(|t| match t {
                Token::Number(n) => Some(n.to_string()),
                Token::Text(_) => None,
            })
            .unwrap_or_default()
    };
    cmp_number(&last(a), &last(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newer(current: &str, all: &[&str]) -> Vec<String> {
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        newer_in_track(current, &all)
    }

    #[test]
    fn versions_move_in_their_last_number_only() {
        assert_eq!(
            newer(
                "12.1",
                &[
                    "12.0",
                    "12.1",
                    "12.2",
                    "12.10",
                    "13.0",
                    "12.2-slim",
                    "latest",
                    "12"
                ]
            ),
            ["12.2", "12.10"]
        );
        assert_eq!(
            newer(
                "3.11.7-slim",
                &["3.11.8-slim", "3.12.0-slim", "3.11.9", "3.11.10-slim"]
            ),
            ["3.11.8-slim", "3.11.10-slim"]
        );
    }

    #[test]
    fn date_stamps_move_to_later_dates() {
        assert_eq!(
            newer(
                "bookworm-20250101",
                &[
                    "bookworm-20250203",
                    "bookworm-20241201",
                    "trixie-20250301",
                    "bookworm-2",
                    "bookworm"
                ]
            ),
            ["bookworm-20250203"]
        );
    }

    #[test]
    fn tags_without_numbers_have_no_track() {
        assert!(newer("latest", &["latest", "1.0"]).is_empty());
        assert!(newer("bookworm", &["trixie", "bookworm-slim"]).is_empty());
        // A plain major is its own line: 12 never becomes 13.
        assert!(!is_newer_in_track("12", "13"));
        assert!(is_newer_in_track("20250101", "20250202"));
        assert!(!has_track("latest") && !has_track("12") && has_track("12.1"));
        assert!(has_track("bookworm-20250101"));
    }
}
