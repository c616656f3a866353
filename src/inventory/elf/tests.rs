use super::*;

/// A small real shared library present on Debian (glibc's compatibility
/// stubs are ~14 KB yet have every table), else the test binary itself.
fn small_library() -> Vec<u8> {
    let candidates = [
        "/lib/x86_64-linux-gnu/libdl.so.2",
        "/lib/x86_64-linux-gnu/libutil.so.1",
        "/lib/x86_64-linux-gnu/librt.so.1",
    ];
    candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .unwrap_or_else(own_executable)
}

fn own_executable() -> Vec<u8> {
    let path = std::env::current_exe().expect("test executable path");
    std::fs::read(path).expect("reading the test executable")
}

/// Runs every public entry point; the assertion is that none panics.
fn exercise(bytes: &[u8]) {
    if let Ok(info) = ElfInfo::parse(bytes) {
        let _ = info.machine_name();
        let _ = info.x86_isa_level();
        let _ = info.required_versions().count();
    }
    let _ = dynamic_symbols(bytes);
    let _ = read_symbol_string(bytes, "gnu_get_libc_version");
    let _ = read_symbol_string(bytes, "_IO_stdin_used");
    let _ = section_bytes(bytes, ".dynstr");
    let _ = section_bytes(bytes, ".note.gnu.property");
    let _ = is_elf(bytes);
}

#[test]
fn empty_and_short_inputs_are_not_elf() {
    for bytes in [&b""[..], &b"\x7fEL"[..], &b"#!/bin/sh\necho hi\n"[..]] {
        assert!(matches!(ElfInfo::parse(bytes), Err(ElfError::NotElf)));
        assert!(matches!(dynamic_symbols(bytes), Err(ElfError::NotElf)));
        assert_eq!(read_symbol_string(bytes, "x"), None);
        assert_eq!(section_bytes(bytes, ".text"), None);
        assert!(!is_elf(bytes));
    }
}

#[test]
fn magic_followed_by_garbage_is_malformed() {
    let mut bytes = b"\x7fELF".to_vec();
    bytes.extend((0..200u32).map(|i| (i.wrapping_mul(131) % 251) as u8));
    assert!(is_elf(&bytes));
    assert!(matches!(
        ElfInfo::parse(&bytes),
        Err(ElfError::Malformed(_))
    ));
    assert!(matches!(
        ElfInfo::parse(b"\x7fELF"),
        Err(ElfError::Malformed(_))
    ));
    exercise(&bytes);
}

#[test]
fn error_messages_say_what_was_read() {
    let mut bytes = b"\x7fELF".to_vec();
    bytes.extend([9u8; 60]);
    let message = ElfInfo::parse(&bytes)
        .expect_err("class 9 is invalid")
        .to_string();
    assert!(
        message.starts_with("malformed ELF: reading the ELF header"),
        "{message}"
    );
}

#[test]
fn truncated_real_elf_never_panics() {
    let bytes = own_executable();
    let len = bytes.len();
    for cut in [
        0,
        4,
        5,
        16,
        52,
        63,
        64,
        65,
        100,
        1000,
        4096,
        len / 3,
        len / 2,
        len - 1,
    ] {
        exercise(bytes.get(..cut).unwrap_or(&bytes));
    }
    assert!(ElfInfo::parse(&bytes).is_ok());
}

#[test]
fn every_truncation_of_a_library_never_panics() {
    let bytes = small_library();
    let mut cut = 0;
    while cut < bytes.len() {
        exercise(bytes.get(..cut).unwrap_or(&bytes));
        cut += 97;
    }
}

/// Flips bits in every byte of a real library, one pattern per byte in
/// rotation (low bit, sign bit, all bits) to keep debug-build runs short.
#[test]
fn bit_flips_never_panic() {
    let original = small_library();
    assert!(
        ElfInfo::parse(&original).is_ok(),
        "the unmodified library must parse"
    );
    let mut bytes = original.clone();
    for (offset, pattern) in (0..original.len()).zip([0x01u8, 0x80, 0xff].into_iter().cycle()) {
        if let Some(byte) = bytes.get_mut(offset) {
            *byte ^= pattern;
        }
        exercise(&bytes);
        if let Some(byte) = bytes.get_mut(offset) {
            *byte ^= pattern;
        }
    }
}

/// Overwrites each aligned 8-byte word with extreme values, which hits
/// offsets, sizes and counts in headers and tables head-on.
#[test]
fn extreme_words_never_panic() {
    let original = small_library();
    let words = [u64::MAX, 0x7fff_ffff, 0x8000_0000_0000_0000, 0];
    let mut bytes = original.clone();
    for (offset, word) in (0..original.len().saturating_sub(8))
        .step_by(4)
        .zip(words.into_iter().cycle())
    {
        let range = offset..offset + 8;
        if let Some(slot) = bytes.get_mut(range.clone()) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
        exercise(&bytes);
        if let (Some(slot), Some(orig)) = (bytes.get_mut(range.clone()), original.get(range)) {
            slot.copy_from_slice(orig);
        }
    }
}

fn property(pr_type: u32, data: &[u8]) -> Vec<u8> {
    let mut out = pr_type.to_le_bytes().to_vec();
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    while out.len() % 8 != 0 {
        out.push(0);
    }
    out
}

#[test]
fn isa_needed_property_is_read_and_others_ignored() {
    let used = 0xc001_0002; // GNU_PROPERTY_X86_ISA_1_USED: not what a binary needs
    let mut desc = property(used, &0xfu32.to_le_bytes());
    desc.extend(property(
        GNU_PROPERTY_X86_ISA_1_NEEDED,
        &0b101u32.to_le_bytes(),
    ));
    let got = x86_isa_needed_property(&desc, true, false, "test").expect("well formed");
    assert_eq!(got, Some(0b101));
    let only_used = property(used, &0xfu32.to_le_bytes());
    assert_eq!(
        x86_isa_needed_property(&only_used, true, false, "test").expect("ok"),
        None
    );
}

#[test]
fn truncated_property_is_an_error() {
    let desc = property(GNU_PROPERTY_X86_ISA_1_NEEDED, &1u32.to_le_bytes());
    for cut in [3, 8, 11] {
        let result =
            x86_isa_needed_property(desc.get(..cut).unwrap_or_default(), true, false, "test");
        assert!(result.is_err(), "cut at {cut}");
    }
    let wrong_size = property(GNU_PROPERTY_X86_ISA_1_NEEDED, &[1, 0]);
    assert!(x86_isa_needed_property(&wrong_size, true, false, "test").is_err());
}

fn info(machine: u16, class: ElfClass, endian: ElfEndian, isa: Option<u32>) -> ElfInfo {
    ElfInfo {
        class,
        endian,
        machine,
        kind: ElfKind::SharedObject,
        interpreter: None,
        soname: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        version_definitions: Vec::new(),
        version_needs: Vec::new(),
        x86_isa_needed: isa,
        is_static: false,
    }
}

#[test]
fn machine_names() {
    use ElfClass::{Elf32, Elf64};
    use ElfEndian::{Big, Little};
    let cases = [
        (header::EM_X86_64, Elf64, Little, "x86_64"),
        (header::EM_386, Elf32, Little, "i386"),
        (header::EM_AARCH64, Elf64, Little, "aarch64"),
        (header::EM_PPC64, Elf64, Little, "ppc64le"),
        (header::EM_PPC64, Elf64, Big, "ppc64"),
        (header::EM_RISCV, Elf64, Little, "riscv64"),
        (header::EM_S390, Elf64, Big, "s390x"),
        (header::EM_ARM, Elf32, Little, "arm"),
        (0x1234, Elf64, Little, "unknown"),
    ];
    for (machine, class, endian, name) in cases {
        assert_eq!(info(machine, class, endian, None).machine_name(), name);
    }
}

#[test]
fn isa_levels() {
    let level =
        |bits| info(header::EM_X86_64, ElfClass::Elf64, ElfEndian::Little, bits).x86_isa_level();
    assert_eq!(level(None), None);
    assert_eq!(level(Some(0)), None);
    assert_eq!(level(Some(0b1)), Some(1));
    assert_eq!(level(Some(0b10)), Some(2));
    assert_eq!(level(Some(0b101)), Some(3));
    assert_eq!(level(Some(0b1001)), Some(4));
    assert_eq!(level(Some(0b1_0000)), Some(5));
}

#[test]
fn kinds() {
    assert_eq!(
        classify(header::ET_EXEC, 0, true, false),
        ElfKind::Executable
    );
    assert_eq!(
        classify(header::ET_DYN, dynamic::DF_1_PIE, false, false),
        ElfKind::PieExecutable
    );
    assert_eq!(
        classify(header::ET_DYN, 0, true, false),
        ElfKind::PieExecutable
    );
    assert_eq!(
        classify(header::ET_DYN, 0, true, true),
        ElfKind::SharedObject
    );
    assert_eq!(
        classify(header::ET_DYN, 0, false, false),
        ElfKind::SharedObject
    );
    assert_eq!(
        classify(header::ET_REL, 0, false, false),
        ElfKind::Relocatable
    );
    assert_eq!(classify(header::ET_CORE, 0, false, false), ElfKind::Other);
}

#[test]
fn gnu_hash_counts() {
    // 1 bucket, symoffset 1, 1 bloom word (ELF64), bucket -> 1, chain: 2 entries, 2nd ends.
    let mut table = Vec::new();
    for word in [1u32, 1, 1, 0] {
        table.extend(word.to_le_bytes());
    }
    table.extend(0u64.to_le_bytes());
    table.extend(1u32.to_le_bytes());
    table.extend(0x10u32.to_le_bytes());
    table.extend(0x21u32.to_le_bytes());
    assert_eq!(gnu_hash_symbol_count(&table, true, false), Some(3));
    // The same table cut before its end marker cannot be counted.
    assert_eq!(
        gnu_hash_symbol_count(
            table.get(..table.len() - 4).unwrap_or_default(),
            true,
            false
        ),
        None
    );
}

#[test]
fn version_chains_must_end_cleanly() {
    assert!(check_complete("t", 2, 2, 0).is_ok());
    assert!(
        check_complete("t", 1, 2, 0).is_ok(),
        "a zero link ends the chain early"
    );
    assert!(
        check_complete("t", 1, 2, 16).is_err(),
        "the next entry was unreadable"
    );
    assert!(
        check_complete("t", 0, 1, 0).is_err(),
        "not even the first entry"
    );
    assert!(
        check_complete("t", 3, u32::MAX, 0).is_ok(),
        "no count: the chain decides"
    );
    let message = check_complete("DT_VERNEED", 0, u32::MAX, 0)
        .expect_err("empty chain")
        .to_string();
    assert_eq!(
        message,
        "malformed ELF: DT_VERNEED: entry 0 lies outside the table"
    );
}

#[test]
fn budget_stops_amplification() {
    let mut budget = Budget { left: 100 };
    assert!(budget.charge(10, "x").is_ok());
    assert!(budget.charge(100, "x").is_err());
}

#[test]
fn strings_are_bounded_and_terminated() {
    let table = StrTab {
        data: b"\0abc\0def",
        what: "test table",
    };
    let mut budget = Budget { left: 1000 };
    assert_eq!(table.get(1, &mut budget, "t").expect("terminated"), "abc");
    assert_eq!(table.get(2, &mut budget, "t").expect("suffix"), "bc");
    assert!(table.get(5, &mut budget, "t").is_err());
    assert!(table.get(u64::MAX, &mut budget, "t").is_err());
}

#[test]
fn printable_strings_only() {
    assert_eq!(
        printable(b"Open MPI v4.1.5"),
        Some("Open MPI v4.1.5".to_string())
    );
    assert_eq!(printable(b"line\nnext\t"), Some("line\nnext\t".to_string()));
    assert_eq!(printable(b"\x01\x02"), None);
    assert_eq!(printable(b"\xff\xfe"), None);
    assert_eq!(printable(b""), None);
}

#[test]
fn serializes_kinds_and_classes() {
    let json = serde_json::to_string(&(ElfKind::PieExecutable, ElfClass::Elf64, ElfEndian::Big))
        .expect("serializable");
    assert_eq!(json, r#"["pie-executable","elf64","big"]"#);
}
