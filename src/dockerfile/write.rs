//! Replacing a Dockerfile atomically: the new text goes to a new file beside it (created
//! exclusively, never through a symlink), with the old file's mode, is synced, and is
//! renamed over the old one. A failure at any step leaves the old file as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `text` to `path` through a temporary file and a rename (`store::write_file`),
/// keeping the file's mode; a Dockerfile that is a symlink is refused, not replaced.
pub fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(std::io::Error::other(
            "is a symbolic link: not rewritten (give the file it points to)",
        ));
    }
    crate::store::write_file(path, text.as_bytes(), meta.permissions().mode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_mode_and_refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("cs-write-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Dockerfile");
        std::fs::write(&path, "FROM a\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, "FROM b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "FROM b\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let link = dir.join("Containerfile");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(replace(&link, "FROM c\n").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "FROM b\n");
        // Nothing is left beside it.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
