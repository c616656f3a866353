//! MPI installations in a root, identified from their libraries: the ABI family by soname
//! and symbols, the implementation, the version and (MPICH) the device.
//!
//! `libmpich.so.12` and `libmpi.so.12` follow the MPICH ABI initiative (MPICH >= 3.1,
//! Intel MPI >= 5, Cray MPICH, MVAPICH2); `libmpi.so.40` is Open MPI 3.0 to 5.0;
//! `libmpi_abi.so` is the MPI-5 standard ABI. `libmpi.so.12` is ambiguous (Open MPI 1.10
//! used it too), so symbols decide: `ompi_mpi_comm_world` is Open MPI, `MPIR_*`/`MPII_*`
//! are MPICH. Versions come from exported data symbols (`MPII_Version_string`), else
//! from the version block the library keeps in `.rodata` (MPICH 4.2 no longer exports
//! it; Open MPI keeps "vX.Y.Z"), else from the file name's numbers, which are the
//! library's ABI version rather than a release and are labelled as such.

use super::elf::{DynSymbol, dynamic_symbols, read_symbol_string, section_bytes};
use super::model::{MpiAbi, MpiInstall};
use super::object::Object;
use super::strings::{c_strings, find, is_dotted_version, string_at, strings_after};

/// True for sonames that name an MPI library's main entry point (its C interface).
pub fn is_mpi_soname(soname: &str) -> bool {
    abi_role(soname).is_some_and(|(_, role)| role == MpiRole::C)
        || soname.split_once(".so.").is_some_and(|(stem, major)| {
            stem == "libmpi" && !major.is_empty() && major.chars().all(|c| c.is_ascii_digit())
        })
}

/// MPI-family sonames: the libraries an MPI installation ships for applications.
pub fn is_mpi_family(soname: &str) -> bool {
    let stem = soname.split(".so").next().unwrap_or_default();
    soname.contains(".so.") && (stem.starts_with("libmpi") || stem.starts_with("libpmpi"))
}

/// Which interface of an ABI a library provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MpiRole {
    C,
    Fortran,
    Cxx,
}

/// The ABI and interface a soname stands for where one ABI ships under several names:
/// the MPICH ABI initiative's `.so.12` libraries (MPICH's `libmpich`/`libmpi`, Intel's
/// `libmpi`, Cray's `libmpi_cray` and `libmpi_gnu_123`, Fortran `libmpichfort`/`libmpifort`
/// and their compiler-suffixed forms, C++ `libmpichcxx`/`libmpicxx`) and the MPI-5
/// standard ABI (`libmpi_abi`, `libmpifort_abi`). Open MPI's sonames name one library
/// each and are matched as they are (None here). `libmpi.so.12` is MPICH's name too, so
/// it maps here; an Open MPI 1.10 `libmpi.so.12` is told apart by its symbols, not its name.
pub fn abi_role(soname: &str) -> Option<(MpiAbi, MpiRole)> {
    let (stem, major) = soname.split_once(".so.")?;
    if major.is_empty() || !major.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match (stem, major) {
        ("libmpi_abi", _) => return Some((MpiAbi::Standard, MpiRole::C)),
        ("libmpifort_abi", _) => return Some((MpiAbi::Standard, MpiRole::Fortran)),
        (_, "12") => {}
        _ => return None,
    }
    let role = match stem {
        "libmpich" | "libmpi" | "libmpi_cray" | "libmpi_ibm" => MpiRole::C,
        "libmpichfort" | "libmpifort" | "libmpifort_cray" => MpiRole::Fortran,
        "libmpichcxx" | "libmpicxx" => MpiRole::Cxx,
        // Cray's compiler-suffixed builds: libmpi_gnu_123, libmpi_intel_2022, libmpifort_gnu_123.
        s if s.starts_with("libmpifort_") => MpiRole::Fortran,
        s if s.starts_with("libmpi_") && !s.starts_with("libmpi_ilp64") => MpiRole::C,
        _ => return None,
    };
    Some((MpiAbi::Mpich, role))
}

/// Identifies the MPI installation behind `obj`, found at `path` (which may be a symlink
/// to `obj.path`'s canonical file `real_path`).
pub fn identify(obj: &Object, soname: &str, real_path: &str) -> MpiInstall {
    let symbols = dynamic_symbols(&obj.bytes()).unwrap_or_default();
    let defined = |name: &str| symbols.iter().any(|s| s.defined && s.name == name);
    let abi = abi_family(soname, &symbols, &defined);
    // A standard-ABI library is still one implementation's build, whose own version
    // readers apply (the ABI version is its soname's).
    let built_as = match abi {
        MpiAbi::Standard => implementation_family(&symbols),
        other => Some(other),
    };
    let implementation = match built_as {
        Some(family) => implementation(family, soname, &symbols),
        None => "MPI ABI".to_string(),
    };
    let (version, source, device) = match built_as {
        Some(MpiAbi::Mpich) if implementation == "Intel MPI" => intel_version(obj),
        Some(MpiAbi::Mpich) => mpich_version(obj),
        Some(MpiAbi::OpenMpi) => open_mpi_version(obj),
        Some(MpiAbi::Standard) | None => (None, None, None),
    };
    // A file name's version is the implementation's only outside the standard ABI
    // (`libmpi_abi_mpich.so.1.0.0` is the ABI's 1.0.0).
    let (version, source) = match version {
        Some(v) => (Some(v), source),
        None if abi == MpiAbi::Standard => (None, None),
        None => match file_name_version(real_path) {
            Some(v) => (Some(v), Some("file-name".to_string())),
            None => (None, None),
        },
    };
    MpiInstall {
        abi,
        implementation,
        version,
        version_source: source,
        device,
        soname: soname.to_string(),
        path: obj.path.clone(),
        real_path: real_path.to_string(),
    }
}

fn abi_family(soname: &str, symbols: &[DynSymbol], defined: &dyn Fn(&str) -> bool) -> MpiAbi {
    if soname.starts_with("libmpi_abi.") {
        return MpiAbi::Standard;
    }
    if defined("ompi_mpi_comm_world") {
        return MpiAbi::OpenMpi;
    }
    let mpich_internals = symbols.iter().any(|s| {
        s.defined
            && (s.name.starts_with("MPIR_")
                || s.name.starts_with("MPII_")
                || s.name.starts_with("MPID_"))
    });
    if mpich_internals || soname.starts_with("libmpich.") {
        return MpiAbi::Mpich;
    }
    // libmpi.so.40 without the Open MPI marker symbol: the soname still says Open MPI.
    if soname.starts_with("libmpi.so.40") {
        MpiAbi::OpenMpi
    } else {
        MpiAbi::Mpich
    }
}

/// Which implementation built a standard-ABI library, from its own internal symbols
/// (MPICH's `MPIR_`/`MPII_`/`MPID_`, Open MPI's `ompi_`); None when they do not say.
fn implementation_family(symbols: &[DynSymbol]) -> Option<MpiAbi> {
    let has_prefix = |p: &str| symbols.iter().any(|s| s.defined && s.name.starts_with(p));
    if has_prefix("ompi_") {
        return Some(MpiAbi::OpenMpi);
    }
    if has_prefix("MPIR_") || has_prefix("MPII_") || has_prefix("MPID_") {
        return Some(MpiAbi::Mpich);
    }
    None
}

fn implementation(abi: MpiAbi, soname: &str, symbols: &[DynSymbol]) -> String {
    let has_prefix = |p: &str| symbols.iter().any(|s| s.defined && s.name.starts_with(p));
    let name = match abi {
        MpiAbi::OpenMpi => "Open MPI",
        MpiAbi::Standard => "MPI ABI",
        MpiAbi::Mpich if soname.contains("cray") => "Cray MPICH",
        MpiAbi::Mpich if has_prefix("I_MPI_") => "Intel MPI",
        MpiAbi::Mpich if has_prefix("MV2_") || has_prefix("mv2_") => "MVAPICH2",
        MpiAbi::Mpich => "MPICH",
    };
    name.to_string()
}

type VersionFacts = (Option<String>, Option<String>, Option<String>);

/// MPICH 3.x/4.0 export `MPII_Version_string` and `MPII_Version_device`; older ones
/// `MPIR_Version_*`; 4.2 keeps the same block unexported in `.rodata`.
fn mpich_version(obj: &Object) -> VersionFacts {
    for prefix in ["MPII_Version_", "MPIR_Version_"] {
        let (string, device) = (format!("{prefix}string"), format!("{prefix}device"));
        if !obj.ensure_symbol(&string) {
            continue;
        }
        obj.ensure_symbol(&device);
        let bytes = obj.bytes();
        if let Some(v) = read_symbol_string(&bytes, &string) {
            let device = read_symbol_string(&bytes, &device);
            return (Some(v), Some("symbol".to_string()), device);
        }
    }
    obj.find_in_section(".rodata", b"--with-device=");
    match mpich_rodata_block(&obj.bytes()) {
        Some((v, device)) => (Some(v), Some("rodata".to_string()), Some(device)),
        None => (None, None, None),
    }
}

/// Intel MPI reports its own release (`2021.13`), printed in its banner ("Intel(R) MPI
/// Library %s for Linux* OS") from a string of its own in `.rodata`; the MPICH version
/// its `MPII_Version_string` holds is the base it derives from, not what users know.
fn intel_version(obj: &Object) -> VersionFacts {
    let (_, _, device) = mpich_version(obj);
    obj.ensure_section(".rodata");
    let bytes = obj.bytes();
    let rodata = section_bytes(&bytes, ".rodata").unwrap_or_default();
    let mut found: Vec<&str> = c_strings(rodata, 6)
        .filter(|s| is_dotted_version(s))
        .filter(|s| {
            s.split('.')
                .next()
                .and_then(|y| y.parse::<u32>().ok())
                .is_some_and(|y| (2017..2100).contains(&y))
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => (Some((*one).to_string()), Some("rodata".to_string()), device),
        _ => (None, None, device),
    }
}

/// MPICH's version block is laid out in `.rodata` as: device (`ch4:ucx`), the configure
/// arguments (containing `--with-device=`), the ABI (`16:1:4`), the build date, the
/// version. Accept it only when that whole sequence is there.
fn mpich_rodata_block(bytes: &[u8]) -> Option<(String, String)> {
    let rodata = section_bytes(bytes, ".rodata")?;
    let at = find(rodata, b"--with-device=")?;
    let configure = string_at(rodata, at)?;
    let configure_start = at.checked_sub(configure.find("--with-device=")?)?;
    // The device string ends just before, possibly with alignment padding between.
    let device_end = rodata
        .get(..configure_start)?
        .iter()
        .rposition(|&b| b != 0)?;
    let device = string_at(rodata, device_end)?;
    let mut next = strings_after(rodata, at);
    let (abi, _date, version) = (next.next()?, next.next()?, next.next()?);
    // MPICH 5 with several netmods names them all: "ch4:ucx ofi".
    let device_ok = (device.starts_with("ch3:") || device.starts_with("ch4:"))
        && device.len() < 64
        && device.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    let abi_ok = abi.split(':').count() == 3 && abi.split(':').all(|p| p.parse::<u32>().is_ok());
    (device_ok && abi_ok && is_dotted_version(version))
        .then(|| (version.to_string(), device.to_string()))
}

/// Open MPI keeps "vX.Y.Z" (its OMPI_VERSION with a `v`) in `libmpi`'s `.rodata`.
fn open_mpi_version(obj: &Object) -> VersionFacts {
    obj.ensure_section(".rodata");
    let bytes = obj.bytes();
    let rodata = section_bytes(&bytes, ".rodata").unwrap_or_default();
    match open_mpi_release(rodata) {
        Some(v) => (Some(v), Some("rodata".to_string()), None),
        None => (None, None, None),
    }
}

/// Open MPI's release in its `.rodata`. The built-in components describe themselves as
/// "Open MPI sm collective MCA component version 5.0.11": that is the release (what
/// `MPI_Get_library_version` prints). The repository revision ("v5.0.11rc1", the tag the
/// tarball was cut from) is the release only where no component says otherwise (Open
/// MPI 4 builds its components as plugins, outside libmpi).
fn open_mpi_release(rodata: &[u8]) -> Option<String> {
    let single = |mut found: Vec<&str>| {
        found.sort_unstable();
        found.dedup();
        match found.as_slice() {
            [one] => Some((*one).to_string()),
            _ => None,
        }
    };
    let components: Vec<&str> = c_strings(rodata, 8)
        .filter(|s| s.starts_with("Open MPI ") || s.starts_with("OMPI"))
        .filter_map(|s| s.split_once(" MCA component version ").map(|(_, v)| v))
        .filter(|v| is_dotted_version(v))
        .collect();
    if !components.is_empty() {
        return single(components);
    }
    single(
        c_strings(rodata, 4)
            .filter_map(|s| s.strip_prefix('v'))
            .filter(|s| is_dotted_version(s))
            .collect(),
    )
}

/// `libmpich.so.12.2.2` -> `12.2.2` (the library's ABI version, not the release).
fn file_name_version(real_path: &str) -> Option<String> {
    let name = real_path.rsplit('/').next()?;
    let (_, numbers) = name.split_once(".so.")?;
    (numbers.contains('.') && numbers.split('.').all(|p| p.parse::<u32>().is_ok()))
        .then(|| numbers.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_mpi_release_is_the_components_not_the_tag() {
        // Open MPI 5.0.11's wheel: the tarball came from the rc1 tag.
        let wheel = b"\0v5.0.11rc1\0Open MPI repo revision\0Open MPI sm collective MCA component version 5.0.11\0Open MPI self collective MCA component version 5.0.11\0";
        assert_eq!(open_mpi_release(wheel).as_deref(), Some("5.0.11"));
        // Open MPI 4.1 (components are plugins): the tag is the release.
        let debian = b"\0v4.1.4\0Open MPI repo revision\0OMPI orte rte MCA component version 4\0";
        assert_eq!(open_mpi_release(debian).as_deref(), Some("4.1.4"));
        // Components that disagree say nothing for sure.
        let mixed =
            b"\0Open MPI a MCA component version 5.0.1\0Open MPI b MCA component version 5.0.2\0";
        assert_eq!(open_mpi_release(mixed), None);
    }

    #[test]
    fn mpi_sonames() {
        for yes in [
            "libmpi.so.40",
            "libmpich.so.12",
            "libmpi.so.12",
            "libmpi_abi.so.1",
            "libmpi_cray.so.12",
            "libmpi_gnu_123.so.12",
        ] {
            assert!(is_mpi_soname(yes), "{yes}");
        }
        for no in [
            "libmpi_cxx.so.40",
            "libmpi.so",
            "libmpich.so.12.2.2",
            "libmpifort.so.12",
            "libmpi.so.x",
        ] {
            assert!(!is_mpi_soname(no), "{no}");
        }
    }

    #[test]
    fn one_abi_many_names() {
        let c = Some((MpiAbi::Mpich, MpiRole::C));
        for name in [
            "libmpich.so.12",
            "libmpi.so.12",
            "libmpi_cray.so.12",
            "libmpi_gnu_123.so.12",
        ] {
            assert_eq!(abi_role(name), c, "{name}");
        }
        let fort = Some((MpiAbi::Mpich, MpiRole::Fortran));
        for name in [
            "libmpichfort.so.12",
            "libmpifort.so.12",
            "libmpifort_gnu_123.so.12",
        ] {
            assert_eq!(abi_role(name), fort, "{name}");
        }
        assert_eq!(
            abi_role("libmpicxx.so.12"),
            Some((MpiAbi::Mpich, MpiRole::Cxx))
        );
        assert_eq!(
            abi_role("libmpi_abi.so.1"),
            Some((MpiAbi::Standard, MpiRole::C))
        );
        assert_eq!(abi_role("libmpi.so.40"), None);
        assert_eq!(abi_role("libmpi_ilp64.so.4"), None);
        assert_eq!(abi_role("libmpi_ilp64.so.12"), None);
    }

    #[test]
    fn file_name_versions() {
        assert_eq!(
            file_name_version("/usr/lib/libmpich.so.12.2.2").as_deref(),
            Some("12.2.2")
        );
        assert_eq!(file_name_version("/usr/lib/libmpich.so.12"), None);
        assert_eq!(file_name_version("/usr/lib/libmpich.so"), None);
    }
}
