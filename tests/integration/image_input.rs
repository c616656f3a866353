//! Apptainer images as input to `inspect` and `apptainer check`, without the Apptainer
//! rig: SIF files written here around real squashfs images (mksquashfs) of a small real
//! root (this machine's glibc). An intact SIF gives the same inventory as the directory it
//! was made from; every broken form (not a SIF, truncated, encrypted or non-squashfs
//! partition, damaged squashfs tables or data) is an error naming the file, exit 2, never
//! a panic and never a verdict.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bad_input::mini_root;
use crate::sif::{Object, build, typical};
use crate::util::{TempDir, assert_error, containerspec};

/// A squashfs image of `src` (gzip, mksquashfs's default), or None after saying why.
fn squash_of(src: &Path, out: &Path) -> Option<Vec<u8>> {
    let status = Command::new("mksquashfs")
        .arg(src)
        .arg(out)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .status();
    match status {
        Ok(s) if s.success() => Some(std::fs::read(out).unwrap()),
        Ok(s) => panic!("mksquashfs failed: {s}"),
        Err(_) => {
            let hint = "mksquashfs not installed (tests/rigs/setup.sh installs squashfs-tools)";
            // CI installs it: there a missing tool is a failure, not a skip.
            assert!(
                std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
                "{hint}"
            );
            eprintln!("skipping: {hint}");
            None
        }
    }
}

/// The mini root (with labels unless `bare`) as a SIF; returns (rootfs dir, SIF bytes,
/// partition offset).
fn mini_sif(dir: &TempDir, name: &str, bare: bool) -> Option<(PathBuf, Vec<u8>, usize)> {
    let root = mini_root(name);
    if !bare {
        std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
        std::fs::write(
            root.join(".singularity.d/labels.json"),
            r#"{"org.supercontainers.glibc": "2.36", "org.label-schema.build-date": "today"}"#,
        )
        .unwrap();
    }
    let squash = squash_of(&root, &dir.path().join(format!("{name}.sqfs")))?;
    let built = build(&typical(squash));
    let offset = built.placed[2].0 as usize;
    Some((root, built.bytes, offset))
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn inventory(target: &str) -> serde_json::Value {
    let out = containerspec(&["inspect", target, "--json"]);
    assert!(
        out.status.success(),
        "inspect {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object_mut().unwrap().remove("root");
    v
}

#[test]
fn a_sif_reads_like_the_directory_it_was_made_from() {
    let dir = TempDir::new("img-equal");
    let Some((root, sif, _)) = mini_sif(&dir, "img-equal", false) else {
        return;
    };
    let path = write(&dir, "mini.sif", &sif);
    let from_sif = inventory(&path);
    let mut from_dir = inventory(&root.display().to_string());
    // A directory has no labels of its own; the SIF's labels.json counts (filtered).
    assert_eq!(
        from_sif["labels"],
        serde_json::json!({"org.supercontainers.glibc": "2.36"})
    );
    from_dir["labels"] = from_sif["labels"].clone();
    assert_eq!(from_sif, from_dir);
    assert!(from_sif["libc"]["version"].is_string(), "{from_sif}");
    // The same for --all, which walks the whole image.
    let all = |t: &str| {
        let out = containerspec(&["inspect", t, "--all", "--json"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["objects"].clone()
    };
    assert_eq!(all(&path), all(&root.display().to_string()));
    // And `apptainer check` gives a verdict on it (exit 0 or 1, never 2).
    let out = containerspec(&["apptainer", "check", &path, "--json"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["apptainer"]["form"], "SIF (squashfs, gzip)");
    // A bare squashfs image is an image too.
    let sqfs = dir.path().join("img-equal.sqfs").display().to_string();
    let mut from_sqfs = inventory(&sqfs);
    from_sqfs["labels"] = from_sif["labels"].clone();
    assert_eq!(from_sqfs, from_sif);
}

#[test]
fn labels_count_like_bundle_annotations() {
    let dir = TempDir::new("img-labels");
    let root = mini_root("img-labels");
    std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
    std::fs::write(
        root.join(".singularity.d/labels.json"),
        r#"{"org.supercontainers.inject": "mpi"}"#,
    )
    .unwrap();
    let Some(squash) = squash_of(&root, &dir.path().join("labels.sqfs")) else {
        return;
    };
    let path = write(&dir, "labels.sif", &build(&typical(squash)).bytes);
    let report = |extra: &[&str]| {
        let mut args = vec!["apptainer", "check", "--json"];
        args.extend_from_slice(extra);
        args.push(&path);
        let out = containerspec(&args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // The label asks for MPI injection; --inject wins over it.
    assert_eq!(report(&[])["inject"], serde_json::json!(["mpi"]));
    assert_eq!(
        report(&["--inject", "none"])["inject"],
        serde_json::json!([])
    );
    // A labels.json that is not JSON is an error naming it.
    std::fs::write(root.join(".singularity.d/labels.json"), "{not json").unwrap();
    let Some(squash) = squash_of(&root, &dir.path().join("broken-labels.sqfs")) else {
        return;
    };
    let broken = write(&dir, "broken-labels.sif", &build(&typical(squash)).bytes);
    let out = containerspec(&["apptainer", "check", &broken]);
    assert_error(&out, "/.singularity.d/labels.json: invalid JSON");
}

#[test]
fn broken_images_are_errors_naming_the_file() {
    let dir = TempDir::new("img-broken");
    let Some((_, sif, offset)) = mini_sif(&dir, "img-broken", false) else {
        return;
    };
    let squash = sif[offset..].to_vec();
    let le_u64 = |at: usize| u64::from_le_bytes(squash[at..at + 8].try_into().unwrap()) as usize;
    let (inode_table, dir_table) = (le_u64(64), le_u64(72));

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text.sif",
            b"this is not an image\n".to_vec(),
            "not an Apptainer image",
        ),
        ("empty.sif", Vec::new(), "not an Apptainer image"),
        (
            "cut-in-header.sif",
            sif[..100].to_vec(),
            "cut-in-header.sif",
        ),
        (
            "cut-in-partition.sif",
            sif[..offset + 4096].to_vec(),
            "cut-in-partition.sif",
        ),
        (
            "encrypted.sif",
            build(&[Object::partition(3, squash.clone(), 5, 2)]).bytes,
            "encrypted",
        ),
        (
            "ext3.sif",
            build(&[Object::partition(3, squash.clone(), 2, 2)]).bytes,
            "ext3",
        ),
        (
            "not-squashfs.sif",
            build(&[Object::partition(3, vec![0x5a; 8192], 1, 2)]).bytes,
            "squashfs",
        ),
    ];
    // Damaged tables: the directory table, then the inode table, overwritten.
    let mut bad_dirs = sif.clone();
    for b in &mut bad_dirs[offset + dir_table..offset + dir_table + 64] {
        *b = 0xff;
    }
    cases.push(("bad-directory-table.sif", bad_dirs, "damaged"));
    let mut bad_inodes = sif.clone();
    for b in &mut bad_inodes[offset + inode_table..offset + inode_table + 64] {
        *b ^= 0xa5;
    }
    cases.push(("bad-inode-table.sif", bad_inodes, "damaged"));
    // Damaged data: the data blocks scrambled (the tables stay intact, so lookups work
    // and reading libc's compressed blocks fails). Squashfs keeps no checksums: a block
    // stored uncompressed would read back scrambled without an error, so this image holds
    // only the two large (compressed) libraries.
    let Some((_, bare, bare_offset)) = mini_sif(&dir, "img-broken-bare", true) else {
        return;
    };
    let bare_inodes =
        u64::from_le_bytes(bare[bare_offset + 64..bare_offset + 72].try_into().unwrap()) as usize;
    let mut bad_data = bare.clone();
    for (i, b) in bad_data[bare_offset + 96..bare_offset + bare_inodes]
        .iter_mut()
        .enumerate()
    {
        if i % 7 == 3 {
            *b ^= 0x5a;
        }
    }
    cases.push(("bad-data.sif", bad_data, "damaged"));

    for (name, bytes, needle) in cases {
        let path = write(&dir, name, &bytes);
        for cmd in [&["apptainer", "check"][..], &["inspect"][..]] {
            let mut args = cmd.to_vec();
            args.push(&path);
            let out = containerspec(&args);
            // inspect also takes directories, and says so.
            let needle = match (cmd[0], needle) {
                ("inspect", "not an Apptainer image") => "not a directory, SIF or squashfs image",
                _ => needle,
            };
            assert_error(&out, needle);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&path),
                "{name}: {cmd:?} does not name the file: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{name}: {cmd:?} printed a result");
        }
    }
}

#[test]
fn a_missing_image_and_a_directory_that_is_no_root() {
    let out = containerspec(&["apptainer", "check", "/nonexistent/app.sif"]);
    assert_error(&out, "/nonexistent/app.sif: no such file or directory");
    let out = containerspec(&["apptainer", "exec", "/nonexistent/app.sif", "true"]);
    assert_error(&out, "no such file or directory");
}

/// A real squashfs image (mksquashfs, inode and directory tables left uncompressed) whose
/// directory `/a/b/c` is made, by one patched directory entry, to be `/a` again: a cycle.
/// `inspect --all` walks it to the end, naming the cycle, where a walk without a visited
/// set went round for ever.
#[test]
fn a_squashfs_directory_cycle_is_walked_once() {
    use containerspec::input::squashfs::SquashFs;
    let dir = TempDir::new("sqfs-cycle");
    let root = mini_root("sqfs-cycle");
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::write(root.join("a/b/file"), "x").unwrap();
    let out = dir.path().join("cycle.sqfs");
    let status = Command::new("mksquashfs")
        .arg(&root)
        .arg(&out)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-all-root",
            "-noI",
            "-noD",
        ])
        .status();
    match status {
        Ok(s) => assert!(s.success(), "mksquashfs failed: {s}"),
        Err(_) => {
            assert!(squash_of(&root, &dir.path().join("probe.sqfs")).is_none());
            return;
        }
    }
    let mut bytes = std::fs::read(&out).unwrap();
    let len = bytes.len() as u64;
    let fs = SquashFs::open(std::fs::File::open(&out).unwrap(), 0, len, "cycle").unwrap();
    let top = fs.root().unwrap();
    let a = fs.lookup(&top, b"a").unwrap().unwrap();
    let b = fs.lookup(&a, b"b").unwrap().unwrap();
    let c = fs.lookup(&b, b"c").unwrap().unwrap();
    let (ref_a, ref_c) = (a.reference(), c.reference());
    assert_eq!(
        ref_a >> 16,
        ref_c >> 16,
        "the inodes should share a metadata block"
    );
    // The directory entry of `c`: offset (u16), inode number delta (i16), type 1 (a
    // directory), name length - 1 = 0, the name.
    let offset_c = ((ref_c & 0xffff) as u16).to_le_bytes();
    let at = (0..bytes.len() - 9)
        .find(|&i| {
            bytes[i..i + 2] == offset_c
                && bytes[i + 4..i + 6] == [1, 0]
                && bytes[i + 6..i + 8] == [0, 0]
                && bytes[i + 8] == b'c'
        })
        .expect("the directory entry of c");
    bytes[at..at + 2].copy_from_slice(&((ref_a & 0xffff) as u16).to_le_bytes());
    let patched = write(&dir, "patched.sqfs", &bytes);
    // The patch took: c now is a's inode.
    let fs = SquashFs::open(std::fs::File::open(&patched).unwrap(), 0, len, "cycle").unwrap();
    let top = fs.root().unwrap();
    let a = fs.lookup(&top, b"a").unwrap().unwrap();
    let b = fs.lookup(&a, b"b").unwrap().unwrap();
    let c = fs.lookup(&b, b"c").unwrap().unwrap();
    assert_eq!(c.reference(), ref_a);

    let out = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_containerspec"),
            "inspect",
            "--all",
            "--json",
        ])
        .arg(&patched)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "inspect --all: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a directory already walked") && text.contains("/a/b/c"),
        "the cycle should be named: {text}"
    );
}
