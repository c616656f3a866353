//! Byte-level checks of the decoders and of the header/table logic on small files
//! written here; the integration tests cover whole images with real squashfs data.

#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use super::*;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "containerspec-squashfs-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn have_mksquashfs() -> bool {
    Command::new("mksquashfs").arg("-version").output().is_ok()
}

macro_rules! require_mksquashfs {
    () => {
        if !have_mksquashfs() {
            eprintln!("skipping: mksquashfs not installed");
            return;
        }
    };
}

/// Runs mksquashfs on `src` into `image`.
fn mksquashfs(src: &Path, image: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(image)
        .args(["-noappend", "-no-progress", "-quiet", "-processors", "1"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mksquashfs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn open_image(path: &Path) -> SquashFs {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    SquashFs::open(file, 0, len, &path.display().to_string()).unwrap()
}

fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<SquashFs, SquashError> {
    let path = dir.join("image.sqfs");
    fs::write(&path, bytes).unwrap();
    let file = File::open(&path).unwrap();
    SquashFs::open(file, 0, bytes.len() as u64, "test image")
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Test content: 1 KiB stretches of random bytes alternating with repeated text, so
/// that blocks compress, but not to nothing.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let chunk = 1024.min(len - out.len());
        if rng.next() & 1 == 0 {
            out.extend((0..chunk).map(|_| rng.next() as u8));
        } else {
            let text = format!("line {} of seed {seed}\n", out.len());
            out.extend(text.bytes().cycle().take(chunk));
        }
    }
    out
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn mkfifo(path: &Path) -> bool {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::mkfifo(c.as_ptr(), 0o640) == 0 }
}

/// Makes a device node; false without the privilege to.
fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> bool {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) == 0 }
}

/// Sets an xattr without following symlinks; false where the filesystem or the
/// privileges do not allow it.
fn set_xattr(path: &Path, name: &str) -> bool {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = CString::new(name).unwrap();
    let value = b"value";
    // SAFETY: valid NUL-terminated strings and a value buffer of the given length.
    unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

const BIG_DIR_ENTRIES: usize = 700;

fn big_dir_name(i: usize) -> String {
    format!("entry-{i:04}-{}", "n".repeat(i % 23))
}

/// The sizes the standard tree has files of, for block size `bs`.
fn sizes(bs: usize) -> Vec<usize> {
    vec![0, 1, 100, bs - 1, bs, bs + 1, 3 * bs + 17, 5 * bs]
}

/// Builds the standard tree for block size `bs` under `root`: files of many sizes,
/// random (incompressible) and zero (sparse) files, a file with holes, duplicates,
/// nested and empty directories, symlinks, hard links, a fifo, a large directory, and
/// (where allowed) entries with xattrs, which become extended inodes.
fn make_tree(root: &Path, bs: usize) {
    for (i, size) in sizes(bs).into_iter().enumerate() {
        fs::write(root.join(format!("size-{size}")), content(size, i as u64)).unwrap();
    }
    fs::write(root.join("random"), random_bytes(2 * bs + 100, 7)).unwrap();
    fs::write(root.join("zeros"), vec![0u8; 3 * bs + 100]).unwrap();
    let sparse = File::create(root.join("sparse")).unwrap();
    sparse.set_len((6 * bs + 10) as u64).unwrap();
    sparse
        .write_all_at(b"middle of a hole", (2 * bs + 5) as u64)
        .unwrap();
    sparse.write_all_at(b"end", (6 * bs + 7) as u64).unwrap();
    drop(sparse);
    let dup = content(2 * bs + 50, 99);
    fs::write(root.join("dup-a"), &dup).unwrap();
    fs::write(root.join("dup-b"), &dup).unwrap();

    fs::create_dir_all(root.join("a/b/c/d")).unwrap();
    fs::create_dir_all(root.join("a/b/empty-dir")).unwrap();
    fs::write(root.join("a/b/c/d/deep.txt"), b"deep down\n").unwrap();
    fs::write(root.join("a/x"), content(bs / 2 + 3, 11)).unwrap();
    fs::set_permissions(root.join("a/x"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(
        root.join("a/b/empty-dir"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();

    symlink("a/b/c/d/deep.txt", &root.join("link-rel"));
    symlink("/etc/passwd", &root.join("link-abs"));
    symlink("a/b", &root.join("link-dir"));
    symlink("../../nowhere", &root.join("link-dangling"));
    symlink(&"long/".repeat(200), &root.join("link-long"));

    fs::write(root.join("hard-1"), content(bs + 9, 5)).unwrap();
    fs::hard_link(root.join("hard-1"), root.join("hard-2")).unwrap();
    fs::hard_link(root.join("hard-1"), root.join("a/hard-3")).unwrap();

    assert!(mkfifo(&root.join("fifo")));

    let big = root.join("big");
    fs::create_dir(&big).unwrap();
    for i in 0..BIG_DIR_ENTRIES {
        let path = big.join(big_dir_name(i));
        if i % 10 == 0 {
            fs::create_dir(&path).unwrap();
        } else if i % 7 == 0 {
            symlink("entry-0001-n", &path);
        } else {
            fs::write(&path, content(i % 37, i as u64)).unwrap();
        }
    }

    // Extended inodes through xattrs, where the filesystem and privileges allow.
    fs::write(root.join("xattr-file"), content(bs + 1, 3)).unwrap();
    set_xattr(&root.join("xattr-file"), "user.test");
    fs::create_dir(root.join("xattr-dir")).unwrap();
    fs::write(root.join("xattr-dir/inside"), b"inside\n").unwrap();
    set_xattr(&root.join("xattr-dir"), "user.test");
    symlink("xattr-file", &root.join("xattr-link"));
    set_xattr(&root.join("xattr-link"), "trusted.test");
    if mkfifo(&root.join("xattr-fifo")) {
        set_xattr(&root.join("xattr-fifo"), "trusted.test");
    }
    if std::os::unix::net::UnixListener::bind(root.join("xattr-sock")).is_ok() {
        set_xattr(&root.join("xattr-sock"), "trusted.test");
    }
    for (name, kind, major, minor) in [
        ("xattr-chr", libc::S_IFCHR, 1, 5),
        ("xattr-blk", libc::S_IFBLK, 7, 200),
    ] {
        if mknod(&root.join(name), kind, major, minor) {
            set_xattr(&root.join(name), "trusted.test");
        }
    }
}

/// Pseudo definitions for device nodes, a fifo and a socket (no root needed).
const PSEUDO: [&str; 8] = [
    "-p",
    "pdev c 644 0 0 1 3",
    "-p",
    "pblk b 600 0 0 8 1",
    "-p",
    "pfifo i 644 0 0 f",
    "-p",
    "psock i 640 0 0 s",
];
const PSEUDO_NAMES: [&str; 4] = ["pdev", "pblk", "pfifo", "psock"];

fn kind_of(file_type: fs::FileType) -> Kind {
    if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_block_device() {
        Kind::BlockDevice
    } else if file_type.is_char_device() {
        Kind::CharDevice
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    }
}

/// What a comparison saw, to check that a tree exercised what it should.
#[derive(Default, Debug)]
struct Seen {
    files: usize,
    bytes: u64,
    dirs: usize,
    symlinks: usize,
    other: usize,
}

/// Compares the image's directory `dir` with `src`, recursively: listings, kinds,
/// permissions, owners, link counts, file contents and symlink targets. Root entries
/// named in `skip` (pseudo entries) are not in `src`.
fn compare_dir(fs: &SquashFs, dir: &Inode, src: &Path, skip: &[&str], seen: &mut Seen) {
    seen.dirs += 1;
    let entries = fs.read_dir(dir).unwrap();
    for pair in entries.windows(2) {
        assert!(
            pair[0].name < pair[1].name,
            "listing of {src:?} is not sorted"
        );
    }
    let got: Vec<&[u8]> = entries
        .iter()
        .map(|e| e.name.as_slice())
        .filter(|n| !skip.iter().any(|s| s.as_bytes() == *n))
        .collect();
    let mut expected: Vec<Vec<u8>> = fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    expected.sort();
    assert_eq!(got, expected, "listing of {src:?}");
    let src_meta = fs::metadata(src).unwrap();
    assert_eq!(dir.nlink as u64, src_meta.nlink(), "nlink of {src:?}");
    for entry in &entries {
        if skip.iter().any(|s| s.as_bytes() == entry.name) {
            continue;
        }
        let path = src.join(OsStr::from_bytes(&entry.name));
        let meta = fs::symlink_metadata(&path).unwrap();
        let inode = fs.inode_of(entry).unwrap();
        assert_eq!(inode.kind, entry.kind, "{path:?}");
        assert_eq!(inode.number, entry.number, "{path:?}");
        assert_eq!(inode.kind, kind_of(meta.file_type()), "{path:?}");
        let looked_up = fs.lookup(dir, &entry.name).unwrap().unwrap();
        assert_eq!(looked_up.number, inode.number, "{path:?}");
        assert_eq!(
            u32::from(inode.mode),
            meta.mode() & 0o7777,
            "mode of {path:?}"
        );
        assert_eq!(
            fs.owner(&inode).unwrap(),
            (meta.uid(), meta.gid()),
            "{path:?}"
        );
        if inode.kind != Kind::Dir {
            assert_eq!(u64::from(inode.nlink), meta.nlink(), "nlink of {path:?}");
        }
        match inode.kind {
            Kind::File => {
                let data = fs.read_all(&inode, u64::MAX).unwrap();
                assert_eq!(inode.size, meta.len(), "size of {path:?}");
                assert!(data == fs::read(&path).unwrap(), "content of {path:?}");
                seen.files += 1;
                seen.bytes += inode.size;
            }
            Kind::Symlink => {
                let target = fs.read_link(&inode).unwrap();
                let expected = fs::read_link(&path).unwrap();
                assert_eq!(target, expected.as_os_str().as_bytes(), "{path:?}");
                assert_eq!(inode.size, target.len() as u64);
                seen.symlinks += 1;
            }
            Kind::Dir => compare_dir(fs, &inode, &path, &[], seen),
            Kind::BlockDevice | Kind::CharDevice => {
                let rdev = meta.rdev();
                assert_eq!(
                    inode.device(),
                    Some((libc::major(rdev), libc::minor(rdev))),
                    "{path:?}"
                );
                seen.other += 1;
            }
            Kind::Fifo | Kind::Socket => seen.other += 1,
        }
    }
}

/// Builds the standard tree with block size `bs`, makes an image with `args` and
/// compares it in full; returns the image (in `tmp`) and the source root.
fn build_and_compare(tmp: &TempDir, bs: usize, args: &[&str]) -> (SquashFs, PathBuf) {
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src, bs);
    let image = tmp.path().join("image.sqfs");
    let bs_arg = bs.to_string();
    let mut all_args = vec!["-b", bs_arg.as_str()];
    all_args.extend_from_slice(args);
    all_args.extend_from_slice(&PSEUDO);
    mksquashfs(&src, &image, &all_args).unwrap();
    let fs = open_image(&image);
    assert_eq!(fs.block_size() as usize, bs);
    let root = fs.root().unwrap();
    let mut seen = Seen::default();
    compare_dir(&fs, &root, &src, &PSEUDO_NAMES, &mut seen);
    assert!(seen.files > BIG_DIR_ENTRIES / 2, "{seen:?}");
    assert!(seen.symlinks >= 5, "{seen:?}");
    check_pseudo(&fs, &root);
    (fs, src)
}

fn check_pseudo(fs: &SquashFs, root: &Inode) {
    let dev = fs.lookup(root, b"pdev").unwrap().unwrap();
    assert_eq!(dev.kind, Kind::CharDevice);
    assert_eq!(dev.device(), Some((1, 3)));
    assert_eq!(dev.mode, 0o644);
    let blk = fs.lookup(root, b"pblk").unwrap().unwrap();
    assert_eq!(blk.kind, Kind::BlockDevice);
    assert_eq!(blk.device(), Some((8, 1)));
    let fifo = fs.lookup(root, b"pfifo").unwrap().unwrap();
    assert_eq!(fifo.kind, Kind::Fifo);
    assert_eq!(fifo.device(), None);
    let sock = fs.lookup(root, b"psock").unwrap().unwrap();
    assert_eq!(sock.kind, Kind::Socket);
    assert_eq!(sock.mode, 0o640);
    assert_eq!(fs.owner(&sock).unwrap(), (0, 0));
}

#[test]
fn gzip_tree_with_4k_blocks() {
    require_mksquashfs!();
    let tmp = TempDir::new("gzip");
    let (fs, _) = build_and_compare(&tmp, 4096, &["-comp", "gzip"]);
    assert_eq!(fs.compression(), Compression::Gzip);
    assert!(fs.bytes_used() > 0);
}

#[test]
fn each_compressor() {
    require_mksquashfs!();
    for comp in ["xz", "zstd", "lz4", "lzma"] {
        let tmp = TempDir::new(comp);
        let (fs, _) = build_and_compare(&tmp, 4096, &["-comp", comp]);
        assert_eq!(fs.compression().name(), comp);
        assert_eq!(fs.compression().to_string(), comp);
    }
}

#[test]
fn compressor_options_are_accepted() {
    require_mksquashfs!();
    for (bs, args) in [
        (
            4096,
            &[
                "-comp",
                "gzip",
                "-Xcompression-level",
                "1",
                "-Xwindow-size",
                "10",
            ][..],
        ),
        (16384, &["-comp", "xz", "-Xdict-size", "8K"]),
        (4096, &["-comp", "lz4", "-Xhc"]),
        (4096, &["-comp", "zstd", "-Xcompression-level", "3"]),
    ] {
        let tmp = TempDir::new("options");
        build_and_compare(&tmp, bs, args);
    }
}

#[test]
fn lzo_is_unsupported() {
    require_mksquashfs!();
    let tmp = TempDir::new("lzo");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    let image = tmp.path().join("image.sqfs");
    if let Err(e) = mksquashfs(&src, &image, &["-comp", "lzo"]) {
        eprintln!("skipping the lzo check: {e}");
        return;
    }
    let file = File::open(&image).unwrap();
    let len = file.metadata().unwrap().len();
    let err = SquashFs::open(file, 0, len, "lzo.sqfs").unwrap_err();
    assert!(matches!(err, SquashError::Unsupported { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("lzo.sqfs: squashfs: "), "{message}");
    assert!(message.contains("lzo"), "{message}");
}

#[test]
fn fragment_variants() {
    require_mksquashfs!();
    for args in [
        &["-no-fragments"][..],
        &["-always-use-fragments"],
        &["-tailends"],
        &["-no-duplicates", "-no-sparse"],
    ] {
        let tmp = TempDir::new("fragments");
        build_and_compare(&tmp, 4096, args);
    }
}

#[test]
fn uncompressed_tables_and_data() {
    require_mksquashfs!();
    let tmp = TempDir::new("uncompressed");
    build_and_compare(&tmp, 4096, &["-noI", "-noD", "-noF", "-noX"]);
}

#[test]
fn default_and_largest_block_sizes() {
    require_mksquashfs!();
    // With gzip and uncompressed blocks larger than PREFIX_MIN, reads first decompress
    // only the start of a block or fragment block.
    for (bs, args) in [
        (128 << 10, &["-comp", "gzip"][..]),
        (128 << 10, &["-comp", "zstd"]),
        (128 << 10, &["-noD", "-noF"]),
        (1 << 20, &["-comp", "gzip"]),
    ] {
        let tmp = TempDir::new("blocksize");
        build_and_compare(&tmp, bs, args);
    }
}

#[test]
fn embedded_at_an_offset() {
    require_mksquashfs!();
    let tmp = TempDir::new("offset");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src, 4096);
    let image = tmp.path().join("image.sqfs");
    mksquashfs(&src, &image, &["-b", "4096"]).unwrap();
    let raw = fs::read(&image).unwrap();
    let prefix = random_bytes(4096 + 13, 42);
    let mut combined = prefix.clone();
    combined.extend_from_slice(&raw);
    combined.extend_from_slice(&random_bytes(777, 43));
    let path = tmp.path().join("combined");
    fs::write(&path, &combined).unwrap();
    let file = File::open(&path).unwrap();
    let fs = SquashFs::open(file, prefix.len() as u64, raw.len() as u64, "combined").unwrap();
    let root = fs.root().unwrap();
    compare_dir(&fs, &root, &src, &[], &mut Seen::default());

    // A partition that claims to run past the end of the file.
    let file = File::open(&path).unwrap();
    let err =
        SquashFs::open(file, prefix.len() as u64, combined.len() as u64, "combined").unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

#[test]
fn empty_root_and_single_file() {
    require_mksquashfs!();
    let tmp = TempDir::new("empty");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let image = tmp.path().join("empty.sqfs");
    mksquashfs(&src, &image, &[]).unwrap();
    let fs = open_image(&image);
    let root = fs.root().unwrap();
    assert!(fs.read_dir(&root).unwrap().is_empty());
    assert!(fs.lookup(&root, b"x").unwrap().is_none());

    fs::write(src.join("only"), b"one file").unwrap();
    mksquashfs(&src, &image, &["-no-fragments"]).unwrap();
    let fs = open_image(&image);
    let root = fs.root().unwrap();
    let only = fs.lookup(&root, b"only").unwrap().unwrap();
    assert_eq!(fs.read_all(&only, 100).unwrap(), b"one file");
}

#[test]
fn small_reads_walk_a_long_file_in_order_and_back() {
    require_mksquashfs!();
    // 3000 small blocks: the block list spans two metadata blocks. Large gzip blocks
    // are first decompressed only as far as a read needs, then in full; uncompressed
    // ones are read only as far as needed.
    for (bs, blocks, args) in [
        (4096, 3000, &[][..]),
        (128 << 10, 40, &[]),
        (128 << 10, 40, &["-noD"]),
    ] {
        let tmp = TempDir::new("small-reads");
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        let data = content(blocks * bs + 5, 8);
        fs::write(src.join("long"), &data).unwrap();
        let image = tmp.path().join("long.sqfs");
        let bs_arg = bs.to_string();
        let mut all = vec!["-b", bs_arg.as_str()];
        all.extend_from_slice(args);
        mksquashfs(&src, &image, &all).unwrap();
        let fs = open_image(&image);
        let long = resolve(&fs, "long").unwrap();
        let mut rng = XorShift(3);
        let mut buf = vec![0u8; 10_000];
        let mut offset = 0usize;
        for step in 0..3000 {
            // Mostly forwards in small steps, sometimes backwards or far.
            offset = match step % 50 {
                0 => rng.below(data.len() as u64 + 10) as usize,
                1 => offset.saturating_sub(9000),
                _ => offset + rng.below(6000) as usize,
            };
            let len = rng.below(buf.len() as u64) as usize;
            let n = fs.read_at(&long, offset as u64, &mut buf[..len]).unwrap();
            let want = len.min(data.len().saturating_sub(offset));
            assert_eq!(n, want);
            if n > 0 {
                assert!(buf[..n] == data[offset..offset + n], "at {offset}");
            }
            if offset >= data.len() {
                offset = 0;
            }
        }
        assert!(fs.read_all(&long, u64::MAX).unwrap() == data);
    }
}

/// Looks up a slash-separated path from the root, without following symlinks.
fn resolve(fs: &SquashFs, path: &str) -> Option<Inode> {
    let mut inode = fs.root().unwrap();
    for part in path.split('/') {
        inode = fs.lookup(&inode, part.as_bytes()).unwrap()?;
    }
    Some(inode)
}

#[test]
fn read_at_offsets_and_limits() {
    require_mksquashfs!();
    let tmp = TempDir::new("read-at");
    let bs = 4096;
    let (fs, src) = build_and_compare(&tmp, bs, &[]);
    for name in [
        "size-12305",
        "random",
        "sparse",
        "hard-2",
        "zeros",
        "size-4097",
    ] {
        let inode = resolve(&fs, name).unwrap();
        let expected = fs::read(src.join(name)).unwrap();
        let size = expected.len();
        assert_eq!(inode.size, size as u64);
        for offset in [
            0,
            1,
            17,
            bs - 1,
            bs,
            bs + 1,
            2 * bs - 3,
            size.saturating_sub(1),
            size,
        ] {
            if offset > size {
                continue;
            }
            for len in [1, 7, 100, bs, bs + 2, 3 * bs + 5] {
                let mut buf = vec![0xa5u8; len];
                let n = fs.read_at(&inode, offset as u64, &mut buf).unwrap();
                let want = len.min(size.saturating_sub(offset));
                assert_eq!(n, want, "{name} at {offset} for {len}");
                assert!(
                    buf[..n] == expected[offset..offset + n],
                    "{name} at {offset} for {len}"
                );
            }
        }
        let mut buf = [0u8; 10];
        assert_eq!(fs.read_at(&inode, size as u64 + 100, &mut buf).unwrap(), 0);
        assert_eq!(fs.read_at(&inode, u64::MAX, &mut buf).unwrap(), 0);
        assert_eq!(fs.read_at(&inode, 0, &mut []).unwrap(), 0);
        // Backwards after forwards (the block list walk restarts).
        let mut buf = vec![0u8; 50];
        let n = fs.read_at(&inode, 5, &mut buf).unwrap();
        assert_eq!(buf[..n], expected[5..5 + n]);
    }

    let inode = resolve(&fs, "size-12305").unwrap();
    let err = fs.read_all(&inode, 12304).unwrap_err();
    assert!(matches!(err, SquashError::TooLarge { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("12305") && message.contains("12304"),
        "{message}"
    );
    assert_eq!(fs.read_all(&inode, 12305).unwrap().len(), 12305);
    let empty = resolve(&fs, "size-0").unwrap();
    assert!(fs.read_all(&empty, 0).unwrap().is_empty());
}

#[test]
fn lookups_in_a_large_directory() {
    require_mksquashfs!();
    let tmp = TempDir::new("big-dir");
    let (fs, _) = build_and_compare(&tmp, 4096, &[]);
    let big = resolve(&fs, "big").unwrap();
    assert_eq!(big.kind, Kind::Dir);
    let entries = fs.read_dir(&big).unwrap();
    assert_eq!(entries.len(), BIG_DIR_ENTRIES);
    for i in [
        0,
        1,
        9,
        10,
        255,
        256,
        257,
        349,
        350,
        511,
        512,
        600,
        BIG_DIR_ENTRIES - 1,
    ] {
        let name = big_dir_name(i);
        let inode = fs.lookup(&big, name.as_bytes()).unwrap();
        let inode = inode.unwrap_or_else(|| panic!("{name} not found"));
        let expected = if i % 10 == 0 {
            Kind::Dir
        } else if i % 7 == 0 {
            Kind::Symlink
        } else {
            Kind::File
        };
        assert_eq!(inode.kind, expected, "{name}");
    }
    for absent in [
        "",
        ".",
        "..",
        "a",
        "entry",
        "entry-0000",
        "entry-0000-nn",
        "entry-0350",
        "entry-0699-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "entry-9999",
        "zzz",
        "entry-0001-n/x",
    ] {
        assert!(
            fs.lookup(&big, absent.as_bytes()).unwrap().is_none(),
            "{absent:?}"
        );
    }
    assert!(resolve(&fs, "a/b/c/d/deep.txt").is_some());
    assert!(resolve(&fs, "a/b/c/d/missing").is_none());
}

/// The on-disk type of an inode (1..=7 basic, 8..=14 extended).
fn inode_type(fs: &SquashFs, inode: &Inode) -> u16 {
    let pos = fs.inode_pos(inode.reference).unwrap();
    MetaReader::new(fs, fs.inode_region(), pos)
        .unwrap()
        .u16()
        .unwrap()
}

#[test]
fn extended_inodes() {
    require_mksquashfs!();
    let tmp = TempDir::new("extended");
    let (fs, src) = build_and_compare(&tmp, 4096, &[]);
    let hard = resolve(&fs, "hard-1").unwrap();
    assert_eq!(hard.nlink, 3);
    assert_eq!(inode_type(&fs, &hard), 9);
    assert_eq!(resolve(&fs, "a/hard-3").unwrap().number, hard.number);
    let sparse = resolve(&fs, "sparse").unwrap();
    assert_eq!(inode_type(&fs, &sparse), 9);
    let big = resolve(&fs, "big").unwrap();
    assert_eq!(inode_type(&fs, &big), 8);
    let Detail::Dir(loc) = &big.detail else {
        panic!("big is not a directory");
    };
    assert!(loc.index.is_some(), "big has no directory index");
    assert_eq!(inode_type(&fs, &resolve(&fs, "size-1").unwrap()), 2);
    // Entries with xattrs are extended, where they could be set here (the trusted
    // namespace, on symlinks and special files, needs root).
    for (name, basic) in [
        ("xattr-file", 2),
        ("xattr-dir", 1),
        ("xattr-link", 3),
        ("xattr-fifo", 6),
        ("xattr-sock", 7),
        ("xattr-blk", 4),
        ("xattr-chr", 5),
    ] {
        let path = src.join(name);
        let Some(inode) = resolve(&fs, name) else {
            eprintln!("{name} could not be made here");
            continue;
        };
        let expected = if xattr_count(&path) > 0 {
            basic + 7
        } else {
            basic
        };
        assert_eq!(inode_type(&fs, &inode), expected, "{name}");
    }
    let link = resolve(&fs, "xattr-link").unwrap();
    assert_eq!(fs.read_link(&link).unwrap(), b"xattr-file");
    let dir = resolve(&fs, "xattr-dir").unwrap();
    assert_eq!(fs.read_dir(&dir).unwrap().len(), 1);
}

fn xattr_count(path: &Path) -> isize {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path; a null buffer of length 0 asks for the size only.
    unsafe { libc::llistxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) }
}

#[test]
fn wrong_kinds_are_errors() {
    require_mksquashfs!();
    let tmp = TempDir::new("kinds");
    let (fs, _) = build_and_compare(&tmp, 4096, &[]);
    let root = fs.root().unwrap();
    let file = resolve(&fs, "size-1").unwrap();
    let link = resolve(&fs, "link-rel").unwrap();
    let err = fs.lookup(&file, b"x").unwrap_err();
    assert!(matches!(err, SquashError::WrongKind { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(fs.read_dir(&link).is_err());
    assert!(fs.read_at(&root, 0, &mut [0u8; 4]).is_err());
    assert!(fs.read_all(&link, 100).is_err());
    assert!(fs.read_link(&file).is_err());
    assert_eq!(link.kind, Kind::Symlink);
    assert_eq!(fs.read_link(&link).unwrap(), b"a/b/c/d/deep.txt");
}

/// A small image for the corruption tests.
fn small_image(tmp: &TempDir, args: &[&str]) -> Vec<u8> {
    let src = tmp.path().join("small");
    fs::create_dir(&src).unwrap();
    fs::create_dir_all(src.join("d/e")).unwrap();
    for i in 0..40 {
        fs::write(src.join(format!("d/f{i:02}")), content(i * 37, i as u64)).unwrap();
    }
    fs::write(src.join("big"), content(3 * 8192 + 100, 1)).unwrap();
    fs::write(src.join("d/e/tail"), content(5000, 2)).unwrap();
    symlink("d/e/tail", &src.join("link"));
    fs::hard_link(src.join("big"), src.join("d/big-link")).unwrap();
    let image = tmp.path().join("small.sqfs");
    // 8 KiB blocks: reads that need only the start of a block take the prefix path.
    let mut all = vec!["-b", "8192"];
    all.extend_from_slice(args);
    mksquashfs(&src, &image, &all).unwrap();
    fs::read(&image).unwrap()
}

/// Walks the whole tree tolerating every error, reading every file and link.
fn walk_tolerant(fs: &SquashFs, dir: &Inode, depth: u32, budget: &mut u32) {
    if depth > 8 {
        return;
    }
    let Ok(entries) = fs.read_dir(dir) else {
        return;
    };
    for entry in entries {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let _ = fs.lookup(dir, &entry.name);
        let Ok(inode) = fs.inode_of(&entry) else {
            continue;
        };
        let _ = fs.owner(&inode);
        match inode.kind {
            Kind::File => {
                let _ = fs.read_all(&inode, 1 << 20);
                let mut buf = [0u8; 300];
                let _ = fs.read_at(&inode, 4000, &mut buf);
            }
            Kind::Symlink => {
                let _ = fs.read_link(&inode);
            }
            Kind::Dir => walk_tolerant(fs, &inode, depth + 1, budget),
            _ => {}
        }
    }
}

#[test]
fn not_squashfs() {
    let tmp = TempDir::new("garbage");
    for (i, bytes) in [
        random_bytes(10_000, 1),
        vec![0u8; 4096],
        b"hsqs".to_vec(),
        Vec::new(),
    ]
    .iter()
    .enumerate()
    {
        let err = open_bytes(tmp.path(), bytes).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("test image: squashfs: "),
            "{i}: {message}"
        );
    }
    let err = open_bytes(tmp.path(), &random_bytes(10_000, 1)).unwrap_err();
    assert!(matches!(err, SquashError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("not a squashfs"), "{err}");
}

#[test]
fn truncated_images() {
    require_mksquashfs!();
    let tmp = TempDir::new("truncated");
    let image = small_image(&tmp, &[]);
    let fs = open_bytes(tmp.path(), &image).unwrap();
    let inode_table = fs.sb.inode_table as usize;
    let used = fs.bytes_used() as usize;
    drop(fs);
    for cut in [
        0,
        10,
        50,
        95,
        96,
        200,
        inode_table / 2,
        inode_table + 10,
        used - 1,
    ] {
        let err = open_bytes(tmp.path(), &image[..cut]).unwrap_err();
        assert!(
            matches!(err, SquashError::Corrupt { .. }),
            "cut at {cut}: {err:?}"
        );
    }
    // The file shorter than the partition the caller says it holds.
    let path = tmp.path().join("short");
    fs::write(&path, &image[..used / 2]).unwrap();
    let err = SquashFs::open(File::open(&path).unwrap(), 0, used as u64, "short").unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

#[test]
fn bad_superblocks() {
    require_mksquashfs!();
    let tmp = TempDir::new("superblock");
    let image = small_image(&tmp, &[]);
    let patched = |at: usize, bytes: &[u8]| {
        let mut copy = image.clone();
        copy[at..at + bytes.len()].copy_from_slice(bytes);
        copy
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (patched(28, &3u16.to_le_bytes()), "version 3.0"),
        (patched(30, &1u16.to_le_bytes()), "version 4.1"),
        (patched(12, &5000u32.to_le_bytes()), "bad block size"),
        (patched(12, &(2u32 << 20).to_le_bytes()), "bad block size"),
        (patched(22, &12u16.to_le_bytes()), "bad block size"),
        (patched(20, &9u16.to_le_bytes()), "compressor id 9"),
        (patched(20, &3u16.to_le_bytes()), "lzo"),
        (patched(0, b"sqsh"), "big-endian"),
        (patched(40, &(1u64 << 40).to_le_bytes()), "bytes used"),
        (patched(64, &(1u64 << 40).to_le_bytes()), "inode table"),
        (patched(32, &(1u64 << 40).to_le_bytes()), "root inode"),
    ];
    for (bytes, needle) in cases {
        let err = open_bytes(tmp.path(), &bytes).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(needle), "{needle}: {message}");
        assert!(
            message.starts_with("test image: squashfs: superblock: "),
            "{message}"
        );
    }
    let err = open_bytes(tmp.path(), &patched(28, &3u16.to_le_bytes())).unwrap_err();
    assert!(matches!(err, SquashError::Unsupported { .. }), "{err:?}");
}

#[test]
fn bit_flips_never_panic() {
    require_mksquashfs!();
    let mut rng = XorShift(0x5eed_f00d);
    // Uncompressed tables let flips reach the structures' fields directly; compressed
    // ones exercise the decompressors on damaged input.
    for (args, iterations) in [
        (&["-noI", "-noD", "-noF"][..], 1000),
        (&["-comp", "gzip"], 500),
        (&["-comp", "zstd"], 200),
        (&["-comp", "xz"], 150),
        (&["-comp", "lz4"], 150),
    ] {
        let tmp = TempDir::new("flips");
        let image = small_image(&tmp, args);
        let pristine = open_bytes(tmp.path(), &image).unwrap();
        let tables = pristine.sb.inode_table;
        let used = pristine.bytes_used();
        let mut budget = u32::MAX;
        walk_tolerant(&pristine, &pristine.root().unwrap(), 0, &mut budget);
        drop(pristine);
        for _ in 0..iterations {
            let mut bytes = image.clone();
            for _ in 0..=rng.below(8) {
                let at = if rng.next() & 1 == 0 {
                    tables + rng.below(used - tables)
                } else {
                    rng.below(used)
                };
                bytes[at as usize] ^= 1 << rng.below(8);
            }
            let Ok(fs) = open_bytes(tmp.path(), &bytes) else {
                continue;
            };
            if let Ok(root) = fs.root() {
                let mut budget = 2000;
                walk_tolerant(&fs, &root, 0, &mut budget);
            }
        }
    }
}

#[test]
fn xz_with_bcj_filters_reads_or_says_unsupported() {
    require_mksquashfs!();
    let tmp = TempDir::new("bcj");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src, 4096);
    // Machine code, where the x86 filter tends to win.
    let exe = std::env::current_exe().unwrap();
    let code = fs::read(&exe).unwrap();
    fs::write(src.join("code"), &code[..code.len().min(1 << 20)]).unwrap();
    let image = tmp.path().join("image.sqfs");
    mksquashfs(&src, &image, &["-b", "4096", "-comp", "xz", "-Xbcj", "x86"]).unwrap();
    let fs = open_image(&image);
    let root = fs.root().unwrap();
    let mut unsupported = 0;
    for entry in fs.read_dir(&root).unwrap() {
        let Ok(inode) = fs.inode_of(&entry) else {
            unsupported += 1;
            continue;
        };
        if inode.kind != Kind::File {
            continue;
        }
        match fs.read_all(&inode, u64::MAX) {
            Ok(data) => {
                assert!(data == fs::read(src.join(OsStr::from_bytes(&entry.name))).unwrap())
            }
            Err(e) => {
                assert!(matches!(e, SquashError::Unsupported { .. }), "{e:?}");
                assert!(e.to_string().contains("BCJ x86"), "{e}");
                unsupported += 1;
            }
        }
    }
    eprintln!("files in blocks with the BCJ filter: {unsupported}");
}

#[test]
fn hostile_decompressor_input_is_bounded() {
    // xz: a chunk that declares more output than a metadata block holds.
    let mut xz = b"\xfd7zXZ\x00\x00\x01".to_vec();
    xz.extend_from_slice(&[0; 4]);
    xz.extend_from_slice(&[0x02, 0x00, 0x21, 0x01, 0x16, 0x00, 0x00, 0x00, 0, 0, 0, 0]);
    xz.extend_from_slice(&[0xe0, 0xff, 0xff, 0x00, 0x10, 0x5d]);
    let err = xz_precheck(&xz, METADATA_SIZE).unwrap_err();
    assert!(format!("{err:?}").contains("more than 8192"), "{err:?}");
    // zstd: a window far larger than accepted.
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00];
    let err = zstd_precheck(&zstd, METADATA_SIZE).unwrap_err();
    assert!(format!("{err:?}").contains("window"), "{err:?}");
    // zstd: a frame that declares more than the cap.
    let zstd = [
        0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
    ];
    let err = zstd_precheck(&zstd, METADATA_SIZE).unwrap_err();
    assert!(format!("{err:?}").contains("more than 8192"), "{err:?}");
}
