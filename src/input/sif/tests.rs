//! Byte-level checks of the decoders and of the header/table logic on small files
//! written here; the integration tests cover whole images with real squashfs data.

use super::*;
use std::io::Write;

fn temp_file(tag: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "containerspec-sif-unit-{tag}-{}-{n}",
        std::process::id()
    ));
    let mut f = File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    (path.clone(), File::open(&path).unwrap())
}

/// A header with `total` descriptors at offset 128 and no data section.
fn header(total: i64) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[..31].copy_from_slice(b"#!/usr/bin/env run-singularity\n");
    h[32..41].copy_from_slice(b"SIF_MAGIC");
    h[42..44].copy_from_slice(b"01");
    h[45..47].copy_from_slice(b"04");
    h[48..64].copy_from_slice(&(0u8..16).collect::<Vec<_>>());
    h[64..72].copy_from_slice(&7i64.to_le_bytes());
    h[88..96].copy_from_slice(&total.to_le_bytes());
    h[96..104].copy_from_slice(&(HEADER_LEN as i64).to_le_bytes());
    h
}

fn descriptor(data_type: i32, used: bool, offset: i64, size: i64) -> Vec<u8> {
    let mut d = vec![0u8; DESCRIPTOR_LEN];
    d[0..4].copy_from_slice(&data_type.to_le_bytes());
    d[4] = used as u8;
    d[5..9].copy_from_slice(&9u32.to_le_bytes());
    d[9..13].copy_from_slice(&(GROUP_MASK | 1).to_le_bytes());
    d[17..25].copy_from_slice(&offset.to_le_bytes());
    d[25..33].copy_from_slice(&size.to_le_bytes());
    d[73..77].copy_from_slice(b"name");
    d[201..205].copy_from_slice(&3i32.to_le_bytes());
    d[205..209].copy_from_slice(&4i32.to_le_bytes());
    d[209..211].copy_from_slice(b"11");
    d
}

#[test]
fn decoders() {
    assert_eq!(
        uuid_text(&[0xab; 16]),
        "abababab-abab-abab-abab-abababababab"
    );
    assert_eq!(text(b"ab\0\0"), "ab");
    assert_eq!(text(b"\0\0"), "");
    assert_eq!(go_arch(b"02\0"), "amd64");
    assert_eq!(go_arch(b"99\0"), "unknown");
    assert_eq!(DataType::from_raw(0x400b), DataType::OciBlob);
    assert_eq!(DataType::from_raw(7), DataType::Unknown(7));
    assert_eq!(FsType::from_raw(5), FsType::EncryptedSquash);
    assert_eq!(PartType::from_raw(0), PartType::Unknown(0));
    assert_eq!(le_u32(&[1, 0], 0), 0, "short buffers read as zero");
    assert!(!range_inside(i64::MAX, 1, 100));
    assert!(!range_inside(-1, 1, 100));
    assert!(!range_inside(1, -1, 100));
    assert!(range_inside(10, 0, 10));
}

#[test]
fn skips_unused_and_decodes_fields() {
    let mut bytes = header(2);
    bytes.extend(descriptor(0x4004, true, 0, 16));
    bytes.extend(descriptor(0x4001, false, -1, -1));
    let (path, file) = temp_file("fields", &bytes);
    let sif = Sif::read(&file).unwrap();
    assert_eq!(sif.file, path.display().to_string());
    assert_eq!(sif.header.arch, "arm64");
    assert_eq!(sif.header.id, "00010203-0405-0607-0809-0a0b0c0d0e0f");
    assert_eq!(sif.header.created, 7);
    assert_eq!(sif.descriptors.len(), 1, "the unused slot is skipped");
    let d = &sif.descriptors[0];
    assert_eq!(
        (d.id, d.group_id, d.link, d.offset, d.size),
        (9, 1, 0, 0, 16)
    );
    assert_eq!(d.name, "name");
    let p = d.partition.as_ref().unwrap();
    assert_eq!(
        (p.fs_type, p.part_type, p.arch.as_str()),
        (FsType::ImmuObj, PartType::Overlay, "s390x")
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn table_past_end_is_truncation_without_allocating() {
    let (path, file) = temp_file("huge", &header(i64::MAX));
    let err = Sif::read(&file).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains("descriptor table"),
        "{err}"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn newer_version_is_rejected() {
    let mut h = header(0);
    h[42..44].copy_from_slice(b"02");
    let (path, file) = temp_file("version", &h);
    let err = Sif::read(&file).unwrap_err().to_string();
    assert!(err.contains("unsupported SIF version \"02\""), "{err}");
    std::fs::remove_file(path).unwrap();
}
