//! The SIF reader (`input::sif`) against SIF files written here byte by byte around a
//! real squashfs image made by `mksquashfs`, laid out as Apptainer lays them out
//! (descriptor table at 4096 with 48 slots, data from 32768, objects 4096-aligned): every
//! parsed field is compared exactly, the partition is cross-checked with `unsquashfs`,
//! and broken files (empty, foreign, truncated, out-of-range, encrypted, ext3, not
//! squashfs, huge counts, random truncations and byte flips) must give an error naming
//! the file, never a panic. Real Apptainer images are parsed too when a rig left some.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use containerspec::input::sif::{
    DataType, Descriptor, FsType, PartType, Partition, Sif, SifError, check_squashfs,
};

use crate::util::TempDir;

const DESCR_LEN: usize = 585;
const DESCR_OFFSET: usize = 4096;
const DESCR_SLOTS: usize = 48;
const DATA_OFFSET: usize = 32768;
const ALIGN: usize = 4096;
const UUID: [u8; 16] = [
    0xb2, 0x65, 0x9d, 0x4e, 0xbd, 0x50, 0x4e, 0xa5, 0xbd, 0x17, 0xee, 0xc5, 0xe5, 0x4f, 0x91, 0x8e,
];
const CREATED: i64 = 1_700_000_000;
const MODIFIED: i64 = 1_700_000_123;
const LABELS: &[u8] = br#"{"org.label-schema.schema-version":"1.0","MPI":"mpich"}"#;
const DEFFILE: &[u8] = b"Bootstrap: docker\nFrom: debian:bookworm\n";
/// Where tests/rigs/apptainer.sh keeps the SIF images Apptainer's own tools wrote.
fn real_sif_dir() -> PathBuf {
    let cache = crate::util::rootfs_cache();
    cache
        .parent()
        .map_or(cache.clone(), |p| p.to_path_buf())
        .join("apptainer/sif")
}

/// One data object for the test writer (the SIF on-disk fields it sets).
#[derive(Clone)]
pub(crate) struct Object {
    data_type: i32,
    id: u32,
    /// As stored: 0xf0000000 | group, or 0 for none.
    group: u32,
    link: u32,
    name: &'static str,
    data: Vec<u8>,
    extra: Vec<u8>,
}

impl Object {
    fn new(data_type: i32, id: u32, name: &'static str, data: Vec<u8>) -> Object {
        Object {
            data_type,
            id,
            group: 0xf000_0001,
            link: 0,
            name,
            data,
            extra: Vec::new(),
        }
    }

    pub(crate) fn partition(id: u32, data: Vec<u8>, fs: i32, part: i32) -> Object {
        let mut o = Object::new(0x4004, id, "rootfs", data);
        o.extra = partition_extra(fs, part, b"02");
        o
    }
}

/// The partition "extra" bytes: Fstype int32, Parttype int32, Arch [3]byte.
fn partition_extra(fs: i32, part: i32, arch: &[u8; 2]) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend(fs.to_le_bytes());
    e.extend(part.to_le_bytes());
    e.extend(arch);
    e.push(0);
    e
}

/// A written test image: its bytes and where each object's data went.
pub(crate) struct Built {
    pub(crate) bytes: Vec<u8>,
    pub(crate) placed: Vec<(i64, i64)>,
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Test-only SIF writer: header, 48-slot descriptor table, aligned data objects.
pub(crate) fn build(objects: &[Object]) -> Built {
    let mut bytes = vec![0u8; DATA_OFFSET];
    let mut placed = Vec::new();
    for (slot, o) in objects.iter().enumerate() {
        let offset = bytes.len().next_multiple_of(ALIGN);
        bytes.resize(offset, 0);
        bytes.extend(&o.data);
        placed.push((offset as i64, o.data.len() as i64));
        let d = descriptor_bytes(o, offset as i64);
        put(&mut bytes, DESCR_OFFSET + slot * DESCR_LEN, &d);
    }
    let header = header_bytes(objects.len(), (bytes.len() - DATA_OFFSET) as i64);
    put(&mut bytes, 0, &header);
    Built { bytes, placed }
}

fn header_bytes(used: usize, data_size: i64) -> Vec<u8> {
    let mut h = vec![0u8; 128];
    put(&mut h, 0, b"#!/usr/bin/env run-singularity\n");
    put(&mut h, 32, b"SIF_MAGIC");
    put(&mut h, 42, b"01");
    put(&mut h, 45, b"02");
    put(&mut h, 48, &UUID);
    let fields = [
        CREATED,
        MODIFIED,
        (DESCR_SLOTS - used) as i64,
        DESCR_SLOTS as i64,
        DESCR_OFFSET as i64,
        (DESCR_SLOTS * DESCR_LEN) as i64,
        DATA_OFFSET as i64,
        data_size,
    ];
    for (i, v) in fields.iter().enumerate() {
        put(&mut h, 64 + i * 8, &v.to_le_bytes());
    }
    h
}

fn descriptor_bytes(o: &Object, offset: i64) -> Vec<u8> {
    let mut d = vec![0u8; DESCR_LEN];
    put(&mut d, 0, &o.data_type.to_le_bytes());
    d[4] = 1;
    put(&mut d, 5, &o.id.to_le_bytes());
    put(&mut d, 9, &o.group.to_le_bytes());
    put(&mut d, 13, &o.link.to_le_bytes());
    put(&mut d, 17, &offset.to_le_bytes());
    let size = o.data.len() as i64;
    put(&mut d, 25, &size.to_le_bytes());
    let padded = o.data.len().next_multiple_of(ALIGN) as i64;
    put(&mut d, 33, &padded.to_le_bytes());
    put(&mut d, 41, &CREATED.to_le_bytes());
    put(&mut d, 49, &MODIFIED.to_le_bytes());
    put(&mut d, 73, o.name.as_bytes());
    put(&mut d, 201, &o.extra);
    d
}

/// A squashfs image of a tiny directory, or None (with the skip message) without
/// mksquashfs.
fn squashfs(dir: &TempDir) -> Option<Vec<u8>> {
    let src = dir.path().join("rootfs");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    let img = dir.path().join("rootfs.sqfs");
    let status = Command::new("mksquashfs")
        .args([src.as_os_str(), img.as_os_str()])
        .args(["-noappend", "-quiet", "-no-progress"])
        .status();
    match status {
        Ok(s) if s.success() => Some(std::fs::read(&img).unwrap()),
        Ok(s) => panic!("mksquashfs failed: {s}"),
        Err(_) => {
            eprintln!("skipping: mksquashfs not found");
            None
        }
    }
}

/// The objects of a typical Apptainer image: deffile, labels, rootfs, signature.
pub(crate) fn typical(squash: Vec<u8>) -> Vec<Object> {
    let mut sig = Object::new(0x4005, 4, "", b"-----BEGIN PGP SIGNATURE-----".to_vec());
    sig.group = 0;
    sig.link = 3;
    vec![
        Object::new(0x4001, 1, "", DEFFILE.to_vec()),
        Object::new(0x4003, 2, "labels.json", LABELS.to_vec()),
        Object::partition(3, squash, 1, 2),
        sig,
    ]
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> (PathBuf, File) {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let file = File::open(&path).unwrap();
    (path, file)
}

/// Reads `bytes` as a SIF file and returns the error's message, checking that it
/// names the file.
fn read_err(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let (path, file) = write(dir, name, bytes);
    let err = Sif::read(&file).expect_err("must be rejected");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn synthetic_sif_parses_exactly() {
    let dir = TempDir::new("sif-exact");
    let Some(squash) = squashfs(&dir) else { return };
    let squash_len = squash.len() as i64;
    let built = build(&typical(squash));
    let (path, file) = write(&dir, "image.sif", &built.bytes);
    let sif = Sif::read(&file).expect("parse");

    assert_eq!(sif.file, path.display().to_string());
    let h = &sif.header;
    assert_eq!(h.version, "01");
    assert_eq!(h.arch, "amd64");
    assert_eq!(h.id, "b2659d4e-bd50-4ea5-bd17-eec5e54f918e");
    assert_eq!((h.created, h.modified), (CREATED, MODIFIED));
    assert_eq!((h.descriptors_free, h.descriptors_total), (44, 48));
    assert_eq!((h.descriptors_offset, h.descriptors_size), (4096, 48 * 585));
    assert_eq!(h.data_offset, 32768);
    assert_eq!(h.data_size, built.bytes.len() as i64 - 32768);

    let p = built.placed.clone();
    let desc = |data_type, id, group_id, link, i: usize, name: &str, partition| Descriptor {
        data_type,
        id,
        group_id,
        link,
        offset: p[i].0,
        size: p[i].1,
        name: name.to_string(),
        partition,
    };
    let rootfs = Partition {
        fs_type: FsType::Squash,
        part_type: PartType::PrimSys,
        arch: "amd64".to_string(),
    };
    let want = vec![
        desc(DataType::DefFile, 1, 1, 0, 0, "", None),
        desc(DataType::Labels, 2, 1, 0, 1, "labels.json", None),
        desc(DataType::Partition, 3, 1, 0, 2, "rootfs", Some(rootfs)),
        desc(DataType::Signature, 4, 0, 3, 3, "", None),
    ];
    assert_eq!(sif.descriptors, want);
    assert_eq!(p[0].0, 32768, "first object at the data section");
    assert_eq!(p[2].1, squash_len);

    let prim = sif
        .primary_partition(built.bytes.len() as u64)
        .expect("primary");
    assert_eq!(prim.id, 3);
    check_squashfs(&file, prim).expect("squashfs superblock");
    assert_eq!(sif.labels(&file).unwrap().as_deref(), Some(LABELS));
    unsquashfs_lists(&path, prim.offset);
}

/// The partition's offset really is a squashfs image, by squashfs-tools' own reading.
fn unsquashfs_lists(path: &Path, offset: i64) {
    let out = Command::new("unsquashfs")
        .args(["-o", &offset.to_string(), "-l"])
        .arg(path)
        .output();
    let Ok(out) = out else {
        eprintln!("skipping the unsquashfs cross-check: unsquashfs not found");
        return;
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "unsquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing.contains("etc/os-release"), "{listing}");
}

#[test]
fn every_data_type_and_no_labels() {
    let dir = TempDir::new("sif-types");
    let objects: Vec<Object> = (0x4001..=0x400c)
        .filter(|&t| t != 0x4003)
        .zip(1u32..)
        .map(|(t, id)| Object::new(t, id, "x", vec![1, 2, 3]))
        .collect();
    let (_, file) = write(&dir, "types.sif", &build(&objects).bytes);
    let sif = Sif::read(&file).unwrap();
    let types: Vec<DataType> = sif.descriptors.iter().map(|d| d.data_type).collect();
    use DataType::*;
    let want = [
        DefFile,
        EnvVar,
        Partition,
        Signature,
        GenericJson,
        Generic,
        CryptoMessage,
        Sbom,
        OciRootIndex,
        OciBlob,
        Unknown(0x400c),
    ];
    assert_eq!(types, want);
    assert_eq!(sif.labels(&file).unwrap(), None);
    // The partition here has all-zero extra bytes: unknown types, not PrimSys.
    let part = sif.descriptors[2].partition.clone().unwrap();
    assert_eq!(
        (part.fs_type, part.part_type),
        (FsType::Unknown(0), PartType::Unknown(0))
    );
    assert_eq!(part.arch, "unknown");
    let err = sif.primary_partition(u64::MAX).unwrap_err();
    assert!(matches!(err, SifError::NoPrimaryPartition { .. }), "{err}");
}

#[test]
fn foreign_and_truncated_files_are_errors() {
    let dir = TempDir::new("sif-foreign");
    let msg = read_err(&dir, "empty", b"");
    assert!(msg.contains("not a SIF file: the file is empty"), "{msg}");
    let msg = read_err(&dir, "short", b"#!/bin/sh\n");
    assert!(msg.contains("not a SIF file"), "{msg}");
    let msg = read_err(&dir, "elf", &[0x7f, b'E', b'L', b'F'].repeat(64));
    assert!(msg.contains("no \"SIF_MAGIC\""), "{msg}");
    let mut squash_like = b"hsqs".to_vec();
    squash_like.resize(4096, 0);
    let msg = read_err(&dir, "squashfs", &squash_like);
    assert!(msg.contains("not a SIF file"), "{msg}");

    let full = build(&[Object::new(0x4001, 1, "", DEFFILE.to_vec())]).bytes;
    let msg = read_err(&dir, "header", &full[..100]);
    assert!(
        msg.contains("truncated") && msg.contains("global header"),
        "{msg}"
    );
    let msg = read_err(&dir, "table", &full[..DESCR_OFFSET + 2 * DESCR_LEN]);
    assert!(
        msg.contains("truncated") && msg.contains("descriptor table (48 entries"),
        "{msg}"
    );
}

/// Sets the i64 at `at` in a built image.
fn set_i64(bytes: &mut [u8], at: usize, v: i64) {
    put(bytes, at, &v.to_le_bytes());
}

#[test]
fn descriptors_outside_the_file_are_errors() {
    let dir = TempDir::new("sif-range");
    let objects = [Object::new(0x4001, 1, "", DEFFILE.to_vec())];
    let base = build(&objects).bytes;
    let cases: [(&str, usize, i64, &str); 4] = [
        ("size", 25, 1 << 20, "lies outside the file"),
        ("offset", 17, 1 << 40, "lies outside the file"),
        ("overflow", 25, i64::MAX, "lies outside the file"),
        ("negative", 17, -4096, "negative data offset"),
    ];
    for (name, field, value, needle) in cases {
        let mut bytes = base.clone();
        set_i64(&mut bytes, DESCR_OFFSET + field, value);
        let msg = read_err(&dir, name, &bytes);
        assert!(
            msg.contains("bad SIF descriptor 0: id 1") && msg.contains(needle),
            "{msg}"
        );
    }
    let mut bytes = base.clone();
    set_i64(&mut bytes, 96, -1);
    let msg = read_err(&dir, "table-offset", &bytes);
    assert!(msg.contains("negative descriptor table offset"), "{msg}");
    set_i64(&mut bytes, 96, 1 << 50);
    let msg = read_err(&dir, "table-far", &bytes);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn huge_descriptor_counts_are_errors_without_allocating() {
    let dir = TempDir::new("sif-count");
    let mut bytes = build(&[]).bytes;
    for (name, count) in [("max", i64::MAX), ("big", 1 << 40), ("neg", -1)] {
        set_i64(&mut bytes, 88, count);
        let msg = read_err(&dir, name, &bytes);
        assert!(msg.contains("descriptor"), "{msg}");
    }
    // A table that does fit in a (sparse) file but exceeds the cap.
    set_i64(&mut bytes, 88, 70_000);
    let (path, file) = write(&dir, "sparse", &bytes);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len((DESCR_OFFSET + 70_000 * DESCR_LEN) as u64)
        .unwrap();
    let msg = Sif::read(&file).unwrap_err().to_string();
    assert!(
        msg.contains("70000 descriptors, more than the limit"),
        "{msg}"
    );
}

#[test]
fn unusable_primary_partitions_are_errors() {
    let dir = TempDir::new("sif-prim");
    let Some(squash) = squashfs(&dir) else { return };
    let cases: [(&str, Vec<Object>, &str); 5] = [
        (
            "encrypted",
            vec![Object::partition(3, squash.clone(), 5, 2)],
            "encrypted squashfs",
        ),
        (
            "ext3",
            vec![Object::partition(3, squash.clone(), 2, 2)],
            "type ext3, not squashfs",
        ),
        (
            "raw",
            vec![Object::partition(3, squash.clone(), 4, 2)],
            "type raw data",
        ),
        (
            "data-only",
            vec![Object::partition(3, squash.clone(), 1, 3)],
            "no primary system",
        ),
        (
            "two",
            vec![
                Object::partition(3, squash.clone(), 1, 2),
                Object::partition(4, squash, 1, 2),
            ],
            "2 primary system partitions",
        ),
    ];
    for (name, objects, needle) in cases {
        let (path, file) = write(&dir, name, &build(&objects).bytes);
        let sif = Sif::read(&file).unwrap();
        let msg = sif.primary_partition(u64::MAX).unwrap_err().to_string();
        assert!(
            msg.contains(needle) && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }
}

#[test]
fn partition_range_and_bytes_are_checked() {
    let dir = TempDir::new("sif-bytes");
    let Some(squash) = squashfs(&dir) else { return };
    let (_, file) = write(&dir, "ok.sif", &build(&typical(squash.clone())).bytes);
    let sif = Sif::read(&file).unwrap();
    // A file shorter than when it was read: the caller's length is trusted.
    let msg = sif.primary_partition(40_000).unwrap_err().to_string();
    assert!(
        msg.contains("data of descriptor 3") && msg.contains("outside the file"),
        "{msg}"
    );

    let junk = build(&[Object::partition(3, vec![0x5a; 8192], 1, 2)]);
    let (_, file) = write(&dir, "junk.sif", &junk.bytes);
    let sif = Sif::read(&file).unwrap();
    let prim = sif.primary_partition(junk.bytes.len() as u64).unwrap();
    let msg = check_squashfs(&file, prim).unwrap_err().to_string();
    assert!(
        msg.contains("partition 3 is not squashfs: no \"hsqs\" magic"),
        "{msg}"
    );

    let tiny = build(&[Object::partition(3, b"hsqs".to_vec(), 1, 2)]);
    let (_, file) = write(&dir, "tiny.sif", &tiny.bytes);
    let sif = Sif::read(&file).unwrap();
    let msg = check_squashfs(&file, &sif.descriptors[0])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("partition 3 is not squashfs") && msg.contains("4 bytes"),
        "{msg}"
    );

    let mut old = squash.clone();
    old[28] = 3;
    let built = build(&[Object::partition(3, old, 1, 2)]);
    let (_, file) = write(&dir, "v3.sif", &built.bytes);
    let sif = Sif::read(&file).unwrap();
    let msg = check_squashfs(&file, &sif.descriptors[0])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("squashfs version 3."), "{msg}");

    // A descriptor whose data was cut off after parsing: truncation, not a panic.
    let (path, file) = write(&dir, "cut.sif", &build(&typical(squash)).bytes);
    let sif = Sif::read(&file).unwrap();
    let prim = sif.primary_partition(u64::MAX).unwrap().clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(prim.offset as u64 + 10)
        .unwrap();
    let msg = check_squashfs(&file, &prim).unwrap_err().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("superblock of partition 3"),
        "{msg}"
    );
}

#[test]
fn oversized_labels_are_refused() {
    let dir = TempDir::new("sif-labels");
    let built = build(&[Object::new(0x4003, 7, "", vec![b' '; 100])]);
    let mut bytes = built.bytes.clone();
    set_i64(&mut bytes, DESCR_OFFSET + 25, 17 << 20);
    bytes.resize(bytes.len() + (17 << 20), 0);
    let (_, file) = write(&dir, "labels.sif", &bytes);
    let sif = Sif::read(&file).unwrap();
    let msg = sif.labels(&file).unwrap_err().to_string();
    assert!(
        msg.contains("labels descriptor 7 is 17825792 bytes"),
        "{msg}"
    );
}

/// Exercises every entry point on whatever `bytes` holds; only panics fail.
fn exercise(dir: &TempDir, bytes: &[u8]) {
    let (path, file) = write(dir, "fuzz.sif", bytes);
    let shown = path.display().to_string();
    let named = |e: SifError| assert!(e.to_string().contains(&shown), "{e}");
    let sif = match Sif::read(&file) {
        Ok(sif) => sif,
        Err(e) => return named(e),
    };
    let _ = sif.labels(&file).map_err(named);
    for d in &sif.descriptors {
        let _ = check_squashfs(&file, d).map_err(named);
    }
    if let Ok(prim) = sif.primary_partition(bytes.len() as u64) {
        let _ = check_squashfs(&file, prim).map_err(named);
    }
}

/// xorshift64: reproducible "random" flips without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncations_and_byte_flips_never_panic() {
    let dir = TempDir::new("sif-fuzz");
    let Some(squash) = squashfs(&dir) else { return };
    let valid = build(&typical(squash)).bytes;
    let meta_end = DESCR_OFFSET + 4 * DESCR_LEN;
    let lens = (0..200)
        .chain((200..meta_end + 64).step_by(37))
        .chain((meta_end..valid.len()).step_by(1021));
    for len in lens {
        exercise(&dir, &valid[..len.min(valid.len())]);
    }
    let squash_at = build(&typical(Vec::new())).placed[2].0 as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..3000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + round % 4 {
            let r = next(&mut state);
            // Aim at the parsed regions: header, used descriptors, squashfs superblock.
            let at = match r % 3 {
                0 => (r >> 8) as usize % 128,
                1 => DESCR_OFFSET + (r >> 8) as usize % (4 * DESCR_LEN),
                _ => squash_at + (r >> 8) as usize % 96,
            };
            bytes[at] = (r >> 40) as u8;
        }
        exercise(&dir, &bytes);
    }
}

#[test]
fn real_apptainer_images() {
    let dir = real_sif_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        crate::skip!(
            "no real SIF images under {} (tests/rigs/apptainer.sh sif bookworm-mpich)",
            dir.display()
        );
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sif"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        crate::skip!(
            "no *.sif under {} (expected bookworm-mpich.sif)",
            dir.display()
        );
    }
    for path in paths {
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let sif = Sif::read(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sif.header.version, "01", "{}", path.display());
        let prim = sif.primary_partition(len).unwrap_or_else(|e| panic!("{e}"));
        let part = prim.partition.as_ref().unwrap();
        assert_eq!(
            (part.fs_type, part.part_type),
            (FsType::Squash, PartType::PrimSys)
        );
        check_squashfs(&file, prim).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "{}: primary partition {} at {}, {} bytes",
            path.display(),
            prim.id,
            prim.offset,
            prim.size
        );
    }
}
