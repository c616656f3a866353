//! Helpers shared by the fuzz targets.

use std::collections::{HashSet, VecDeque};
use std::ffi::CStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::Once;

use containerspec::input::squashfs::{Inode, Kind, SquashFs};

/// Where the decompressors that squashfs reading calls live (their source paths under
/// Cargo's registry): containerspec runs them inside `catch_unwind` and reports a panic
/// there as corrupt data (src/input/squashfs/codec.rs, `with_codec`).
const CONTAINED: &[&str] = &[
    "/lzma-rs-",
    "/ruzstd-",
    "/lz4_flex-",
    "/libdeflater-",
    "/flate2-",
    "/zlib-rs-",
];

/// Replaces honggfuzz's panic hook, which aborts on every panic before it unwinds, with
/// one that prints the panic's message and location (in the campaign log with `-Q`) and
/// then aborts, except for panics inside the decompressors in [`CONTAINED`]: those
/// unwind to containerspec's own `catch_unwind`, as they do in production, and the
/// input goes on. A decompressor panic that nothing catches still ends in honggfuzz's
/// abort. Call at the start of every input (only the first call does anything; it must
/// come after honggfuzz installed its hook, which `fuzz!` does before the first input).
pub fn panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map_or("", |l| l.file());
            if CONTAINED.iter().any(|c| file.contains(c)) {
                return;
            }
            eprintln!("{info}");
            std::process::abort();
        }));
    });
}

/// An anonymous in-memory file holding `data`: the image parsers read through a `File`
/// with positioned reads, as they read real images.
pub fn memfd(data: &[u8]) -> File {
    const NAME: &CStr = c"fuzz-input";
    // SAFETY: a valid NUL-terminated name; the descriptor returned is owned by the File.
    let fd = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and nothing else owns it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data).expect("writing the memfd");
    file
}

/// Bounds of one walk, so that the harness itself ends on any image (a crafted image can
/// have directory cycles and any number of entries).
const MAX_ENTRIES: usize = 10_000;
const MAX_FILE: u64 = 1 << 20;
const MAX_READ_TOTAL: u64 = 16 << 20;
const MAX_LOOKUPS_PER_DIR: usize = 4;

/// Walks a squashfs image breadth first from its root, listing each directory once
/// (`read_dir`, `lookup` of present and absent names, `owner`), reading each entry's
/// inode and, by kind, its device numbers, symlink target or file content (`read_at`
/// across the first block boundary, `read_all` up to 1 MiB). Stops after
/// [`MAX_ENTRIES`] entries; file reads stop after [`MAX_READ_TOTAL`] bytes.
pub fn walk_squashfs(fs: &SquashFs) {
    let _ = (
        fs.compression(),
        fs.block_size(),
        fs.bytes_used(),
        fs.inode_count(),
    );
    let Ok(root) = fs.root() else {
        return;
    };
    let mut seen_dirs = HashSet::new();
    let mut queue = VecDeque::from([root]);
    let mut visited = 0usize;
    let mut read_total = 0u64;
    while let Some(dir) = queue.pop_front() {
        if !seen_dirs.insert(dir.reference()) {
            continue;
        }
        let _ = fs.owner(&dir);
        let Ok(entries) = fs.read_dir(&dir) else {
            continue;
        };
        for entry in entries.iter().take(MAX_LOOKUPS_PER_DIR) {
            let _ = fs.lookup(&dir, &entry.name);
        }
        let _ = fs.lookup(&dir, b"zzz-not-there");
        for entry in &entries {
            visited += 1;
            if visited > MAX_ENTRIES {
                return;
            }
            let Ok(inode) = fs.inode_of(entry) else {
                continue;
            };
            let _ = inode.device();
            match inode.kind {
                Kind::Dir => queue.push_back(inode),
                Kind::Symlink => {
                    let _ = fs.read_link(&inode);
                }
                Kind::File if read_total < MAX_READ_TOTAL => {
                    read_total += inode.size.min(MAX_FILE);
                    read_file(fs, &inode);
                }
                _ => {}
            }
        }
    }
}

fn read_file(fs: &SquashFs, inode: &Inode) {
    // A short read across the first block boundary, then the whole file.
    let mut head = [0u8; 64];
    let _ = fs.read_at(
        inode,
        u64::from(fs.block_size()).saturating_sub(16),
        &mut head,
    );
    let _ = fs.read_all(inode, MAX_FILE);
}
