//! Dotted version numbers as the toolchain spells them (`2.36`, `GLIBC_2.2.5`,
//! `GLIBCXX_3.4.30`), compared numerically: `2.10` is above `2.9`.

use std::cmp::Ordering;

/// A version as its numeric components.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub Vec<u32>);

impl Version {
    /// Parses `2.36` or `2.2.5`; None for anything else.
    pub fn parse(s: &str) -> Option<Version> {
        let parts: Option<Vec<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty()).map(Version)
    }

    /// Parses a symbol-version node with the given prefix: `GLIBC_2.34` with `GLIBC_`.
    pub fn from_node(node: &str, prefix: &str) -> Option<Version> {
        node.strip_prefix(prefix).and_then(Version::parse)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Compares two dotted strings numerically, unparsable ones last.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The highest `PREFIX<version>` node among `nodes`.
pub fn highest_node<'a>(nodes: impl IntoIterator<Item = &'a str>, prefix: &str) -> Option<Version> {
    nodes
        .into_iter()
        .filter_map(|n| Version::from_node(n, prefix))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order() {
        assert!(Version::parse("2.10") > Version::parse("2.9"));
        assert!(Version::parse("2.2.5") < Version::parse("2.3"));
        assert_eq!(Version::parse("2.x"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(
            Version::from_node("GLIBC_2.34", "GLIBC_"),
            Version::parse("2.34")
        );
        assert_eq!(Version::from_node("GLIBC_PRIVATE", "GLIBC_"), None);
    }

    #[test]
    fn highest() {
        let nodes = ["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_PRIVATE", "GLIBC_2.4"];
        assert_eq!(
            highest_node(nodes, "GLIBC_").map(|v| v.to_string()),
            Some("2.34".to_string())
        );
    }
}
