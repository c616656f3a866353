//! `/etc/os-release` (or `/usr/lib/os-release`, which it usually links to): the
//! distribution a root says it is.

use super::model::OsRelease;
use crate::input::rootfs::RootFs;

pub fn read(root: &RootFs) -> Option<OsRelease> {
    let text = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| root.read_text(p).ok())?;
    Some(parse(&text))
}

/// Parses the shell-like `KEY=value` lines, with or without quotes.
pub fn parse(text: &str) -> OsRelease {
    let mut out = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        let slot = match key {
            "ID" => &mut out.id,
            "VERSION_ID" => &mut out.version_id,
            "VERSION_CODENAME" => &mut out.version_codename,
            "PRETTY_NAME" => &mut out.pretty_name,
            _ => continue,
        };
        *slot = Some(value);
    }
    out
}

fn unquote(v: &str) -> String {
    let stripped = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
    stripped.unwrap_or(v).replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_debian() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let r = super::parse(text);
        assert_eq!(r.id.as_deref(), Some("debian"));
        assert_eq!(r.version_id.as_deref(), Some("12"));
        assert_eq!(r.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(
            r.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
