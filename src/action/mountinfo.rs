//! The mount table as this process's mount namespace shows it (`/proc/self/mountinfo`),
//! and the mount a file descriptor lies on (`statx` with `STATX_MNT_ID`).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;

use nix::errno::Errno;

/// `thread-self`: a thread that unshared its mount namespace reads its own table.
const MOUNTINFO: &str = "/proc/thread-self/mountinfo";
/// The table of a namespace with this many bytes of mounts is not one a runtime made.
const MAX_TABLE: u64 = 64 << 20;

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    /// The filesystem's device, `major:minor`, the same for every mount of it.
    pub device: String,
    pub mount_point: PathBuf,
    /// The optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub tags: Vec<String>,
}

impl MountEntry {
    /// Mounts made under it propagate to other mounts (its peer group): possibly into
    /// other namespaces, the host's among them.
    pub fn is_shared(&self) -> bool {
        self.tags.iter().any(|t| t.starts_with("shared:"))
    }
}

/// This namespace's mount table.
pub fn read() -> Result<Vec<MountEntry>, std::io::Error> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(MOUNTINFO)?
        .take(MAX_TABLE)
        .read_to_string(&mut text)?;
    Ok(parse(&text))
}

/// Parses mountinfo text; lines that do not have its shape are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount-point options [tags...] - fstype source super
    let fields: Vec<&str> = line.split(' ').collect();
    let id = fields.first()?.parse().ok()?;
    let device = fields.get(2)?.to_string();
    let mount_point = PathBuf::from(unescape(fields.get(4)?));
    let end = fields.iter().position(|f| *f == "-")?;
    let tags = fields.get(6..end)?.iter().map(|t| t.to_string()).collect();
    Some(MountEntry {
        id,
        device,
        mount_point,
        tags,
    })
}

/// The id of the mount `fd` lies on, as mountinfo's first field numbers it.
pub fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    // SAFETY: statx fills the zeroed buffer it is given.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH, a buffer of the right
    // type.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    Errno::result(rc)?;
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(stx.stx_mnt_id)
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let code = rest
            .get(pos + 1..pos + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[pos + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape("/a\\040b/proc"), "/a b/proc");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\x"), "/odd\\x");
    }

    #[test]
    fn lines_and_tags() {
        let text = "\
22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw
97 80 0:45 / /b\\040c/rootfs rw master:3 shared:40 - overlay overlay rw,lowerdir=/l
98 97 0:46 / /b/rootfs/proc rw - proc proc rw
not a mountinfo line
";
        let all = parse(text);
        assert_eq!(all.len(), 3);
        assert_eq!((all[0].id, all[0].device.as_str()), (22, "0:21"));
        assert!(all[0].is_shared());
        assert_eq!(all[1].mount_point, PathBuf::from("/b c/rootfs"));
        assert_eq!(all[1].tags, ["master:3", "shared:40"]);
        assert!(all[1].is_shared());
        assert!(all[2].tags.is_empty());
        assert!(!all[2].is_shared());
    }

    #[test]
    fn this_process_lies_on_a_listed_mount() {
        let root = std::fs::File::open("/").unwrap();
        let id = mount_id(std::os::fd::AsFd::as_fd(&root)).unwrap();
        assert!(read().unwrap().iter().any(|m| m.id == id));
    }
}
