//! Integration tests of the ELF reader against files the local toolchain builds
//! at test time (a versioned shared library, executables linked against it with
//! each rpath flavour, ISA-level notes, static and musl binaries) and against the
//! system's own libc. Expected values are what binutils 2.40 and gcc 12 on
//! Debian 12 emit; a test whose toolchain is missing prints why and returns.

use std::collections::BTreeSet;
use std::path::Path;

use containerspec::inventory::elf::{
    self, DynSymbol, ElfClass, ElfInfo, ElfKind, NeededVersion, dynamic_symbols,
    read_symbol_string, section_bytes,
};

use crate::fixtures::{self, FixtureDir};

const LIBFOO_C: &str = r#"
#include <stdio.h>
int foo1(void) { return 1; }
int foo2(void) { puts("foo2"); return 2; }
__attribute__((weak)) int foo_weak(void) { return 3; }
const char my_version_string[] = "Fixture 1.2.3";
char my_data_string[] = "data 4.5";
char my_bss_buffer[64];
const char *my_version_pointer = "pointer";
int foo_v1(void) { return 10; }
int foo_v2(void) { return 20; }
__asm__(".symver foo_v1, foo@FOO_1.0");
__asm__(".symver foo_v2, foo@@FOO_2.0");
"#;

const LIBFOO_MAP: &str = "
FOO_1.0 { global: foo; foo1; local: *; };
FOO_2.0 { global: foo; foo2; foo_weak; my_version_string; my_data_string; my_bss_buffer; my_version_pointer; } FOO_1.0;
";

const MAIN_C: &str = r#"
#include <stdio.h>
int foo1(void);
int foo2(void);
int main(void) { printf("%d\n", foo1() + foo2()); return 0; }
"#;

const HELLO_C: &str = r#"
#include <stdio.h>
__attribute__((used)) const char static_version[] = "Static 9.9";
int main(void) { puts("hello"); return 0; }
"#;

/// Builds libfoo.so (soname libfoo.so.1, versions FOO_1.0 and FOO_2.0) in `dir`.
fn build_libfoo(dir: &FixtureDir) -> std::path::PathBuf {
    dir.write("foo.map", LIBFOO_MAP);
    dir.gcc(
        "libfoo.so",
        &[("foo.c", LIBFOO_C)],
        &[
            "-shared",
            "-fPIC",
            "-Wl,--version-script=foo.map",
            "-Wl,-soname,libfoo.so.1",
        ],
    )
}

/// Builds libfoo.so and an executable linked against it with `extra` link args.
fn build_main(dir: &FixtureDir, extra: &[&str]) -> std::path::PathBuf {
    build_libfoo(dir);
    let mut args = vec!["-L.", "-lfoo"];
    args.extend_from_slice(extra);
    dir.gcc("main", &[("main.c", MAIN_C)], &args)
}

fn parse(path: &Path) -> ElfInfo {
    let bytes = fixtures::read(path);
    ElfInfo::parse(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn version_names(versions: &[NeededVersion]) -> BTreeSet<&str> {
    versions.iter().map(|v| v.name.as_str()).collect()
}

fn needs_from<'a>(info: &'a ElfInfo, file: &str) -> &'a [NeededVersion] {
    info.version_needs
        .iter()
        .find(|n| n.file == file)
        .map(|n| n.versions.as_slice())
        .unwrap_or_else(|| panic!("no version needs from {file} in {:?}", info.version_needs))
}

#[test]
fn versioned_library_soname_and_definitions() {
    let Some(dir) = fixtures::gcc_dir("elf-libfoo") else {
        return;
    };
    let info = parse(&build_libfoo(&dir));
    assert_eq!(info.soname.as_deref(), Some("libfoo.so.1"));
    assert_eq!(info.version_definitions, ["FOO_1.0", "FOO_2.0"]);
    assert_eq!(info.kind, ElfKind::SharedObject);
    assert_eq!(info.class, ElfClass::Elf64);
    assert_eq!(info.machine, 62);
    assert_eq!(info.machine_name(), "x86_64");
    assert_eq!(info.needed, ["libc.so.6"]);
    assert_eq!(info.interpreter, None);
    assert!(!info.is_static);
    // puts is the only versioned reference the library makes.
    assert_eq!(info.version_needs.len(), 1);
    assert_eq!(
        version_names(needs_from(&info, "libc.so.6")),
        BTreeSet::from(["GLIBC_2.2.5"])
    );
}

#[test]
fn executable_needs_libraries_and_versions() {
    let Some(dir) = fixtures::gcc_dir("elf-main") else {
        return;
    };
    let info = parse(&build_main(&dir, &[]));
    assert_eq!(info.needed, ["libfoo.so.1", "libc.so.6"]);
    assert_eq!(
        info.interpreter.as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    // Debian's gcc builds PIEs by default; ld marks them DF_1_PIE.
    assert_eq!(info.kind, ElfKind::PieExecutable);
    assert_eq!(info.soname, None);
    assert!(!info.is_static);
    assert!(info.version_definitions.is_empty());
    let foo = needs_from(&info, "libfoo.so.1");
    assert_eq!(version_names(foo), BTreeSet::from(["FOO_1.0", "FOO_2.0"]));
    assert!(foo.iter().all(|v| !v.weak));
    // printf is GLIBC_2.2.5 and __libc_start_main GLIBC_2.34 on glibc >= 2.34.
    let libc = version_names(needs_from(&info, "libc.so.6"));
    assert_eq!(libc, BTreeSet::from(["GLIBC_2.2.5", "GLIBC_2.34"]));
    let pairs: Vec<(&str, &str)> = info
        .required_versions()
        .map(|(f, v)| (f, v.name.as_str()))
        .collect();
    assert_eq!(pairs.len(), 4);
    assert!(pairs.contains(&("libfoo.so.1", "FOO_2.0")));
    assert!(pairs.contains(&("libc.so.6", "GLIBC_2.34")));
    assert_eq!(info.rpath, Vec::<String>::new());
    assert_eq!(info.runpath, Vec::<String>::new());
}

#[test]
fn rpath_with_disable_new_dtags() {
    let Some(dir) = fixtures::gcc_dir("elf-rpath") else {
        return;
    };
    let path = build_main(
        &dir,
        &[
            "-Wl,-rpath,/opt/x:$ORIGIN/../lib",
            "-Wl,--disable-new-dtags",
        ],
    );
    let info = parse(&path);
    assert_eq!(info.rpath, ["/opt/x", "$ORIGIN/../lib"]);
    assert_eq!(info.runpath, Vec::<String>::new());
}

#[test]
fn runpath_with_enable_new_dtags() {
    let Some(dir) = fixtures::gcc_dir("elf-runpath") else {
        return;
    };
    let path = build_main(
        &dir,
        &["-Wl,-rpath,/opt/x:$ORIGIN/../lib", "-Wl,--enable-new-dtags"],
    );
    let info = parse(&path);
    assert_eq!(info.runpath, ["/opt/x", "$ORIGIN/../lib"]);
    assert_eq!(info.rpath, Vec::<String>::new());
}

/// Sets VER_FLG_WEAK on the `Vernaux` entry named `version` in .gnu.version_r.
/// ld never emits this flag for ordinary references (it copies the defining
/// library's vd_flags), so weak references exist in practice only in binaries
/// patched this way to tolerate an older glibc; the test does the same.
fn mark_version_weak(bytes: &mut [u8], version: &str) {
    let base = bytes.as_ptr() as usize;
    let verneed = section_bytes(bytes, ".gnu.version_r").expect(".gnu.version_r");
    let dynstr = section_bytes(bytes, ".dynstr").expect(".dynstr");
    let (table_at, table_len) = (verneed.as_ptr() as usize - base, verneed.len());
    let strings_at = dynstr.as_ptr() as usize - base;
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let name_at = |b: &[u8], offset: usize| {
        let start = strings_at + offset;
        let end = b[start..].iter().position(|c| *c == 0).unwrap() + start;
        String::from_utf8(b[start..end].to_vec()).unwrap()
    };
    let mut need = table_at;
    loop {
        let mut aux = need + u32_at(bytes, need + 8);
        for _ in 0..u16_at(bytes, need + 2) {
            if name_at(bytes, u32_at(bytes, aux + 8)) == version {
                bytes[aux + 4..aux + 6].copy_from_slice(&2u16.to_le_bytes());
                return;
            }
            aux += u32_at(bytes, aux + 12);
        }
        let next = u32_at(bytes, need + 12);
        assert!(
            next != 0 && need + next < table_at + table_len,
            "{version} not in .gnu.version_r"
        );
        need += next;
    }
}

#[test]
fn weak_version_reference() {
    let Some(dir) = fixtures::gcc_dir("elf-weak") else {
        return;
    };
    let mut bytes = fixtures::read(&build_main(&dir, &[]));
    mark_version_weak(&mut bytes, "FOO_1.0");
    let info = ElfInfo::parse(&bytes).expect("patched executable parses");
    let foo = needs_from(&info, "libfoo.so.1");
    let weak: Vec<(&str, bool)> = foo.iter().map(|v| (v.name.as_str(), v.weak)).collect();
    assert!(weak.contains(&("FOO_1.0", true)), "{weak:?}");
    assert!(weak.contains(&("FOO_2.0", false)), "{weak:?}");
    assert!(needs_from(&info, "libc.so.6").iter().all(|v| !v.weak));
}

fn isa_of(dir: &FixtureDir, output: &str, args: &[&str]) -> (Option<u32>, Option<u8>) {
    let info = parse(&dir.gcc(output, &[("hello.c", HELLO_C)], args));
    (info.x86_isa_needed, info.x86_isa_level())
}

#[test]
fn isa_level_notes_in_executables() {
    let Some(dir) = fixtures::gcc_dir("elf-isa-exe") else {
        return;
    };
    // crt1.o carries an x86-64-baseline note, so executables always have bit 0.
    assert_eq!(isa_of(&dir, "plain", &[]), (Some(0b1), Some(1)));
    assert_eq!(
        isa_of(&dir, "v3", &["-Wl,-z,x86-64-v3"]),
        (Some(0b101), Some(3))
    );
    assert_eq!(
        isa_of(&dir, "v4", &["-Wl,-z,x86-64-v4"]),
        (Some(0b1001), Some(4))
    );
}

#[test]
fn isa_level_notes_in_shared_libraries() {
    let Some(dir) = fixtures::gcc_dir("elf-isa-lib") else {
        return;
    };
    let lib = |name: &str, extra: &[&str]| {
        let mut args = vec!["-shared", "-fPIC"];
        args.extend_from_slice(extra);
        parse(&dir.gcc(name, &[("foo.c", "int f(void) { return 1; }")], &args))
    };
    // Without crt1.o nothing contributes a note: there is no ISA property at all.
    let plain = lib("plain.so", &[]);
    assert_eq!((plain.x86_isa_needed, plain.x86_isa_level()), (None, None));
    let v3 = lib("v3.so", &["-Wl,-z,x86-64-v3"]);
    assert_eq!(
        (v3.x86_isa_needed, v3.x86_isa_level()),
        (Some(0b100), Some(3))
    );
}

#[test]
fn recorded_gcc_switches_section() {
    let Some(dir) = fixtures::gcc_dir("elf-switches") else {
        return;
    };
    let path = dir.gcc(
        "sw",
        &[("hello.c", HELLO_C)],
        &["-frecord-gcc-switches", "-march=x86-64-v3"],
    );
    let bytes = fixtures::read(&path);
    let switches = section_bytes(&bytes, ".GCC.command.line").expect(".GCC.command.line present");
    // gcc 12 records one NUL-terminated line: "GNU C17 12.2.0 -march=x86-64-v3 ...".
    let text = String::from_utf8_lossy(switches);
    assert!(
        text.split(['\0', ' ']).any(|s| s == "-march=x86-64-v3"),
        "{text:?}"
    );
    assert_eq!(
        section_bytes(&bytes, ".bss"),
        None,
        "SHT_NOBITS has no bytes"
    );
    assert_eq!(section_bytes(&bytes, ".no.such.section"), None);
    let interp = section_bytes(&bytes, ".interp").expect(".interp");
    assert_eq!(interp, b"/lib64/ld-linux-x86-64.so.2\0");
}

#[test]
fn symbol_strings() {
    let Some(dir) = fixtures::gcc_dir("elf-symstr") else {
        return;
    };
    let lib = fixtures::read(&build_libfoo(&dir));
    assert_eq!(
        read_symbol_string(&lib, "my_version_string").as_deref(),
        Some("Fixture 1.2.3")
    );
    assert_eq!(
        read_symbol_string(&lib, "my_data_string").as_deref(),
        Some("data 4.5")
    );
    assert_eq!(
        read_symbol_string(&lib, "my_bss_buffer"),
        None,
        ".bss has no file bytes"
    );
    assert_eq!(
        read_symbol_string(&lib, "my_version_pointer"),
        None,
        "a pointer is not a string"
    );
    assert_eq!(read_symbol_string(&lib, "missing_symbol"), None);
    assert_eq!(
        read_symbol_string(&lib, "my_version"),
        None,
        "prefixes must not match"
    );
    // puts is only referenced (undefined) in the library.
    assert_eq!(read_symbol_string(&lib, "puts"), None);
    let exe = fixtures::read(&build_main(&dir, &[]));
    assert_eq!(
        read_symbol_string(&exe, "foo1"),
        None,
        "undefined in the executable"
    );
}

#[test]
fn symbol_string_from_symtab_of_static_executable() {
    let Some(dir) = fixtures::gcc_dir("elf-symstr-static") else {
        return;
    };
    if !fixtures::have_static_libc() {
        println!("skipping: libc.a not found");
        return;
    }
    let exe = fixtures::read(&dir.gcc("hello", &[("hello.c", HELLO_C)], &["-static"]));
    // A static executable has no .dynsym: the symbol comes from .symtab.
    assert_eq!(
        dynamic_symbols(&exe).expect("parses"),
        Vec::<DynSymbol>::new()
    );
    assert_eq!(
        read_symbol_string(&exe, "static_version").as_deref(),
        Some("Static 9.9")
    );
}

fn symbol<'a>(symbols: &'a [DynSymbol], name: &str, version: Option<&str>) -> &'a DynSymbol {
    symbols
        .iter()
        .find(|s| s.name == name && s.version.as_deref() == version)
        .unwrap_or_else(|| panic!("no symbol {name} {version:?} in {symbols:#?}"))
}

#[test]
fn dynamic_symbol_flags_and_versions() {
    let Some(dir) = fixtures::gcc_dir("elf-dynsym") else {
        return;
    };
    let symbols = dynamic_symbols(&fixtures::read(&build_libfoo(&dir))).expect("parses");
    let foo1 = symbol(&symbols, "foo1", Some("FOO_1.0"));
    assert!(foo1.defined && foo1.is_function && !foo1.weak && !foo1.hidden);
    let weak = symbol(&symbols, "foo_weak", Some("FOO_2.0"));
    assert!(weak.defined && weak.is_function && weak.weak);
    let data = symbol(&symbols, "my_version_string", Some("FOO_2.0"));
    assert!(data.defined && !data.is_function && !data.weak);
    let puts = symbol(&symbols, "puts", Some("GLIBC_2.2.5"));
    assert!(!puts.defined && puts.is_function && !puts.weak);
    // foo@FOO_1.0 is the hidden compatibility version, foo@@FOO_2.0 the default.
    assert!(symbol(&symbols, "foo", Some("FOO_1.0")).hidden);
    assert!(!symbol(&symbols, "foo", Some("FOO_2.0")).hidden);
    // The version definitions themselves appear as absolute symbols named after them.
    assert!(symbol(&symbols, "FOO_1.0", Some("FOO_1.0")).defined);
    // Unversioned weak references from crt files.
    let gmon = symbol(&symbols, "__gmon_start__", None);
    assert!(!gmon.defined && gmon.weak && !gmon.is_function);
    assert!(symbols.iter().all(|s| !s.name.is_empty()));
    assert!(
        !symbols.iter().any(|s| s.name == "foo_v1"),
        "local symbols are not exported"
    );
}

#[test]
fn static_executable() {
    let Some(dir) = fixtures::gcc_dir("elf-static") else {
        return;
    };
    if !fixtures::have_static_libc() {
        println!("skipping: libc.a not found");
        return;
    }
    let info = parse(&dir.gcc("hello", &[("hello.c", HELLO_C)], &["-static"]));
    assert!(info.is_static);
    assert_eq!(info.kind, ElfKind::Executable);
    assert_eq!(info.interpreter, None);
    assert!(info.needed.is_empty());
    assert!(info.version_needs.is_empty());

    let pie = parse(&dir.gcc("hello-pie", &[("hello.c", HELLO_C)], &["-static-pie"]));
    assert!(pie.is_static);
    assert_eq!(pie.kind, ElfKind::PieExecutable);
    assert_eq!(pie.interpreter, None);
}

#[test]
fn musl_executable() {
    let Some(dir) = fixtures::dir_for("musl-gcc", "elf-musl") else {
        return;
    };
    let info = parse(&dir.compile("musl-gcc", "hello", &[("hello.c", HELLO_C)], &[]));
    assert_eq!(
        info.interpreter.as_deref(),
        Some("/lib/ld-musl-x86_64.so.1")
    );
    assert_eq!(info.needed, ["libc.so"]);
    assert!(
        info.version_needs.is_empty(),
        "musl has no symbol versioning"
    );
    assert!(!info.is_static);
}

#[test]
fn object_file_is_relocatable() {
    let Some(dir) = fixtures::gcc_dir("elf-object") else {
        return;
    };
    let info = parse(&dir.gcc("hello.o", &[("hello.c", HELLO_C)], &["-c"]));
    assert_eq!(info.kind, ElfKind::Relocatable);
    assert!(!info.is_static);
    assert!(info.needed.is_empty());
    let bytes = fixtures::read(&dir.path().join("hello.o"));
    // In an object file st_value is section-relative.
    assert_eq!(
        read_symbol_string(&bytes, "static_version").as_deref(),
        Some("Static 9.9")
    );
}

#[test]
fn system_libc() {
    let path = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    if !path.exists() {
        println!("skipping: {} not found", path.display());
        return;
    }
    let info = parse(path);
    assert_eq!(info.soname.as_deref(), Some("libc.so.6"));
    for version in ["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_PRIVATE"] {
        assert!(
            info.version_definitions.iter().any(|v| v == version),
            "{version} missing"
        );
    }
    assert!(
        !info.version_definitions.iter().any(|v| v == "libc.so.6"),
        "base entry excluded"
    );
    // libc.so.6 can be run, so it has an interpreter, but it is still a library.
    assert_eq!(info.kind, ElfKind::SharedObject);
    assert_eq!(
        info.interpreter.as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    assert_eq!(info.needed, ["ld-linux-x86-64.so.2"]);
    let bytes = fixtures::read(path);
    let symbols = dynamic_symbols(&bytes).expect("libc symbols");
    let memcpy: Vec<_> = symbols.iter().filter(|s| s.name == "memcpy").collect();
    assert!(
        memcpy
            .iter()
            .any(|s| s.version.as_deref() == Some("GLIBC_2.14") && !s.hidden)
    );
    assert!(
        memcpy
            .iter()
            .any(|s| s.version.as_deref() == Some("GLIBC_2.2.5") && s.hidden)
    );
}

#[test]
fn json_shape() {
    let Some(dir) = fixtures::gcc_dir("elf-json") else {
        return;
    };
    let info = parse(&build_libfoo(&dir));
    let json = serde_json::to_value(&info).expect("serializable");
    assert_eq!(json["class"], "elf64");
    assert_eq!(json["endian"], "little");
    assert_eq!(json["kind"], "shared-object");
    assert_eq!(json["soname"], "libfoo.so.1");
    assert_eq!(json["version_needs"][0]["versions"][0]["weak"], false);
}

#[test]
fn non_elf_files() {
    assert!(matches!(
        ElfInfo::parse(b"#!/bin/sh\n"),
        Err(elf::ElfError::NotElf)
    ));
    assert!(!elf::is_elf(b"\x7fEL"));
    assert!(elf::is_elf(b"\x7fELF\x02"));
}

/// Collects regular files under `dir` without following symlinks.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// Every real ELF file under /usr/lib/x86_64-linux-gnu parses, with its dynamic symbols,
/// memory-mapped as the inventory reads them. (Speed is the benchmark's business.)
#[test]
fn every_system_library_parses() {
    let mut files = Vec::new();
    files_under(Path::new("/usr/lib/x86_64-linux-gnu"), &mut files);
    let (mut elves, mut failures) = (0usize, Vec::new());
    for path in &files {
        let Ok(file) = std::fs::File::open(path) else {
            continue;
        };
        // SAFETY: test-only read of system files nobody modifies during the run.
        let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
            continue;
        };
        if !elf::is_elf(&map) {
            continue;
        }
        elves += 1;
        if let Err(e) = ElfInfo::parse(&map) {
            failures.push(format!("{}: {e}", path.display()));
        }
        if let Err(e) = dynamic_symbols(&map) {
            failures.push(format!("{} (symbols): {e}", path.display()));
        }
    }
    assert!(elves > 100, "only {elves} ELF files found");
    assert!(failures.is_empty(), "{failures:#?}");
}
