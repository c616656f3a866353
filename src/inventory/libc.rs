//! Which C library a root has and which version, from files: glibc's loader and
//! `libc.so.6` (the "release version X.Y" banner, else the highest `GLIBC_2.N` node it
//! defines, which is only a lower bound), or musl's `ld-musl-ARCH.so.1` (its version
//! string). The loader path comes from the entrypoint's `PT_INTERP` when there is one.

use super::elf::section_bytes;
use super::loader::Loader;
use super::model::{Libc, LibcFamily};
use super::object::{Object, ObjectError};
use super::strings::{c_strings, find, is_dotted_version, leading_version, string_at};
use super::version::highest_node;

/// glibc loaders by architecture, most common first.
const GLIBC_LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib64/ld64.so.2",
    "/lib/ld-linux-riscv64-lp64d.so.1",
    "/lib/ld64.so.1",
    "/lib/ld-linux-armhf.so.3",
    "/lib/ld-linux.so.2",
];

/// What was found: the summary, and the objects read (loader, libc) for later checks.
pub struct LibcFound {
    pub libc: Libc,
    pub loader: Option<Object>,
    pub libc_object: Object,
}

/// Detects the C library. `interp` is the entrypoint's `PT_INTERP`, if known.
pub fn detect(loader: &Loader, interp: Option<&str>) -> Result<Option<LibcFound>, ObjectError> {
    let root = loader.root();
    let interp = match interp {
        Some(i) if root.is_file(i) => Some(i.to_string()),
        _ => probe_loader(loader),
    };
    let Some(interp) = interp else {
        return Ok(None);
    };
    let ld = Object::load(root, &interp)?;
    if interp.contains("ld-musl-") {
        return Ok(Some(musl(ld)));
    }
    let Some(found) = loader.find_plain("libc.so.6", ld.info.machine, ld.info.class) else {
        return Ok(None);
    };
    let libc_object = Object::load(root, &found.path)?;
    Ok(Some(glibc(ld, libc_object)))
}

fn probe_loader(loader: &Loader) -> Option<String> {
    let root = loader.root();
    if let Some(p) = GLIBC_LOADERS.iter().find(|p| root.is_file(p)) {
        return Some((*p).to_string());
    }
    let mut musl: Vec<String> = root
        .list_dir("/lib")
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name.starts_with("ld-musl-") && name.ends_with(".so.1"))
        .map(|(name, _)| format!("/lib/{name}"))
        .collect();
    musl.sort();
    musl.into_iter().find(|p| root.is_file(p))
}

fn glibc(ld: Object, libc_object: Object) -> LibcFound {
    let max_node = highest_node(
        libc_object
            .info
            .version_definitions
            .iter()
            .map(String::as_str),
        "GLIBC_",
    );
    let release = if libc_object.find_in_section(".rodata", b"release version ") {
        release_version(&libc_object.bytes())
    } else {
        release_version(&rodata_or_all(&libc_object))
    };
    let (version, source) = match (&release, &max_node) {
        (Some(v), _) => (Some(v.clone()), Some("release-string".to_string())),
        (None, Some(v)) => (Some(v.to_string()), Some("symbol-versions".to_string())),
        (None, None) => (None, None),
    };
    let libc = Libc {
        family: LibcFamily::Glibc,
        version,
        version_source: source,
        path: libc_object.path.clone(),
        loader: Some(ld.path.clone()),
        max_symbol_version: max_node.map(|v| format!("GLIBC_{v}")),
    };
    LibcFound {
        libc,
        loader: Some(ld),
        libc_object,
    }
}

/// The object's bytes with `.rodata` (or, without one, the whole file) readable.
fn rodata_or_all(obj: &Object) -> crate::inventory::object::Bytes<'_> {
    if !obj.ensure_section(".rodata") {
        obj.ensure_all();
    }
    obj.bytes()
}

/// glibc's banner: "GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36."
fn release_version(bytes: &[u8]) -> Option<String> {
    let rodata = section_bytes(bytes, ".rodata").unwrap_or(bytes);
    let at = find(rodata, b"release version ")?;
    let banner = string_at(rodata, at)?;
    if !banner.starts_with("GNU C Library") {
        return None;
    }
    banner
        .split_once("release version ")
        .and_then(|(_, v)| leading_version(v))
}

fn musl(ld: Object) -> LibcFound {
    let version = musl_version(&rodata_or_all(&ld));
    let libc = Libc {
        family: LibcFamily::Musl,
        version_source: version.as_ref().map(|_| "version-string".to_string()),
        version,
        path: ld.path.clone(),
        loader: Some(ld.path.clone()),
        max_symbol_version: None,
    };
    LibcFound {
        libc,
        loader: None,
        libc_object: ld,
    }
}

/// musl keeps its version as a lone string next to the "Version %s" format it prints
/// when run as a program: accept it only when exactly one X.Y.Z string is present.
fn musl_version(bytes: &[u8]) -> Option<String> {
    let rodata = section_bytes(bytes, ".rodata").unwrap_or(bytes);
    let mut strings = c_strings(rodata, 2);
    if !strings.any(|s| s.contains("Version %s")) {
        let again = c_strings(rodata, 2).any(|s| s.contains("musl libc"));
        if !again {
            return None;
        }
    }
    let mut versions: Vec<&str> = c_strings(rodata, 5)
        .filter(|s| is_dotted_version(s) && s.split('.').count() == 3)
        .collect();
    versions.sort_unstable();
    versions.dedup();
    (versions.len() == 1).then(|| versions[0].to_string())
}
