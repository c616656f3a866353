//! Dockerfiles and Containerfiles: their base images (`parse`), the rewrite that pins and
//! moves them (`rewrite`), the tracks their tags follow (`tags`), and how a change is
//! written (`write`). Registry access is `crate::registry`'s; this module reads and
//! writes text only.

pub mod parse;
pub mod rewrite;
pub mod tags;
pub mod write;

pub use parse::{Base, Dockerfile, ParseError, Stage};

/// A reference as written, split the way the distribution reference grammar does: the
/// tag is after the last `:` that follows the last `/` (a registry port is not a tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<'a> {
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> Written<'a> {
    pub fn split(text: &'a str) -> Written<'a> {
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (text, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        Written { name, tag, digest }
    }

    /// The same reference with `tag` (if given) and pinned to `digest`.
    pub fn pinned(&self, tag: Option<&str>, digest: &str) -> String {
        match tag.or(self.tag) {
            Some(t) => format!("{}:{t}@{digest}", self.name),
            None => format!("{}@{digest}", self.name),
        }
    }
}

/// Dockerfile names this command looks for in a directory: `Dockerfile`,
/// `Containerfile`, and the `Dockerfile.<x>` / `<x>.Dockerfile` / `Containerfile.<x>`
/// variants.
pub fn is_dockerfile_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "dockerfile"
        || lower == "containerfile"
        || lower.starts_with("dockerfile.")
        || lower.starts_with("containerfile.")
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_the_grammar() {
        let w = Written::split("127.0.0.1:5000/base:bookworm@sha256:ab");
        assert_eq!(w.name, "127.0.0.1:5000/base");
        assert_eq!(w.tag, Some("bookworm"));
        assert_eq!(w.digest, Some("sha256:ab"));
        let w = Written::split("127.0.0.1:5000/base");
        assert_eq!((w.name, w.tag), ("127.0.0.1:5000/base", None));
        assert_eq!(w.pinned(None, "sha256:cd"), "127.0.0.1:5000/base@sha256:cd");
        assert_eq!(
            Written::split("debian:12.1@sha256:ab").pinned(Some("12.2"), "sha256:cd"),
            "debian:12.2@sha256:cd"
        );
    }

    #[test]
    fn dockerfile_names() {
        for n in [
            "Dockerfile",
            "Containerfile",
            "Dockerfile.cuda",
            "app.Dockerfile",
        ] {
            assert!(is_dockerfile_name(n), "{n}");
        }
        assert!(!is_dockerfile_name("Makefile"));
    }
}
