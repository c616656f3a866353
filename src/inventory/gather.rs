//! Gathers an [`Inventory`] from a root: the one code path for a host's `/` and a
//! container's rootfs. By default it reads what a start decision needs (the entrypoint
//! and its closure, the libc and loader, every MPI and GPU library the loader can see);
//! `all` adds every ELF file in the root.

use std::collections::{BTreeMap, HashSet};

use super::elf::ElfClass;
use super::loader::{Closure, Loader};
use super::model::*;
use super::object::{Object, ObjectError};
use super::version::Version;
use super::{entrypoint, gpu, libc, microarch, mpi, osrelease};
use crate::input::rootfs::{RootFile, RootFs};
use crate::input::target::ProcessSpec;

/// Directories never worth scanning: kernel interfaces a rootfs may have mounted.
const SKIP_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The container's first process (None for a host, or a bare rootfs).
    pub process: Option<&'a ProcessSpec>,
    /// Annotations or labels; only `org.supercontainers.*` and `io.archspec.*` are kept.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// Examine every ELF file, not just the ones the loader would load.
    pub all: bool,
    /// glibc-hwcaps subdirectories the CPU supports, best first.
    pub hwcaps: Vec<String>,
}

/// Collects objects and their facts as they are examined.
struct Examined {
    /// Canonical paths of the objects already examined (a library is often reached
    /// through several symlinks).
    seen: HashSet<String>,
    objects: Vec<ObjectSummary>,
    /// Each object's recorded CPU targets, with whether it counts as the program's own
    /// (glibc's parts do not).
    targets: Vec<(String, microarch::ObjectTargets, bool)>,
    glibc: BTreeMap<Version, Vec<String>>,
    findings: Vec<FileFinding>,
}

impl Examined {
    fn new() -> Self {
        Examined {
            seen: HashSet::new(),
            objects: Vec::new(),
            targets: Vec::new(),
            glibc: BTreeMap::new(),
            findings: Vec::new(),
        }
    }

    /// Adds an object found by the loader: its path may go through symlinks.
    fn add(&mut self, root: &RootFs, obj: &Object) {
        let real = root
            .canonicalize(&obj.path)
            .unwrap_or_else(|_| obj.path.clone());
        self.add_real(obj, real);
    }

    /// Adds an object whose path is already canonical (the `--all` walk's).
    fn add_real(&mut self, obj: &Object, real_path: String) {
        if !self.seen.insert(real_path.clone()) {
            return;
        }
        let glibc_needed = glibc_needed(obj);
        if let Some(v) = &glibc_needed {
            self.glibc
                .entry(v.clone())
                .or_default()
                .push(obj.path.clone());
        }
        let targets = microarch::object_targets(obj);
        for name in &targets.unknown {
            self.findings.push(FileFinding {
                code: FileCode::UnknownCpuTarget,
                path: obj.path.clone(),
                message: format!("{name}; what this file needs of the CPU is unknown"),
            });
        }
        let glibc_part = defines_glibc(obj);
        self.targets.push((obj.path.clone(), targets, !glibc_part));
        self.objects.push(ObjectSummary {
            path: obj.path.clone(),
            real_path,
            soname: obj.info.soname.clone(),
            machine: obj.info.machine_name().to_string(),
            needed: obj.info.needed.clone(),
            glibc_needed: glibc_needed.map(|v| v.to_string()),
            x86_isa_level: obj.info.x86_isa_level(),
        });
    }

    fn error(&mut self, e: &ObjectError) {
        let (code, path) = match e {
            ObjectError::Root(r) => (FileCode::UnreadableFile, root_error_path(r)),
            ObjectError::Map { path, .. } | ObjectError::Read { path, .. } => {
                (FileCode::UnreadableFile, path.clone())
            }
            ObjectError::NotElf { path } => (FileCode::NotElf, path.clone()),
            ObjectError::Elf { path, .. } => (FileCode::MalformedElf, path.clone()),
        };
        if !self
            .findings
            .iter()
            .any(|f| f.path == path && f.code == code)
        {
            self.findings.push(FileFinding {
                code,
                path,
                message: e.to_string(),
            });
        }
    }
}

fn combine_targets(
    targets: &[(String, microarch::ObjectTargets, bool)],
    labels: Vec<MicroarchSignal>,
    arch: Option<&str>,
) -> Microarch {
    let examined: Vec<microarch::Examined> = targets
        .iter()
        .map(|(path, targets, counts)| microarch::Examined {
            path,
            targets,
            counts: *counts,
        })
        .collect();
    microarch::combine(&examined, labels, arch == Some("x86_64"))
}

fn root_error_path(e: &crate::input::rootfs::RootError) -> String {
    match e {
        crate::input::rootfs::RootError::Path { path, .. } => path.clone(),
        other => other.to_string(),
    }
}

/// The highest non-weak `GLIBC_2.N` an object needs from libc or the loader. glibc's
/// own parts (they define `GLIBC_*` nodes) need each other's versions, which they
/// bring along: they are not counted.
pub(crate) fn glibc_needed(obj: &Object) -> Option<Version> {
    if defines_glibc(obj) {
        return None;
    }
    obj.info
        .version_needs
        .iter()
        .flat_map(|need| need.versions.iter())
        .filter(|v| !v.weak)
        .filter_map(|v| Version::from_node(&v.name, "GLIBC_"))
        .max()
}

/// glibc's own parts define `GLIBC_*` version nodes.
fn defines_glibc(obj: &Object) -> bool {
    obj.info
        .version_definitions
        .iter()
        .any(|d| d.starts_with("GLIBC_"))
}

/// An inventory with the entrypoint's loaded objects and the loader that found them,
/// for checks that need more of each ELF file than the inventory keeps (and should not
/// parse the loader cache or the objects again).
pub struct Gathered<'r> {
    pub inventory: Inventory,
    pub closure: Option<Closure>,
    pub loader: Loader<'r>,
}

pub fn gather(root: &RootFs, req: &Request) -> Inventory {
    gather_with_closure(root, req).inventory
}

pub fn gather_with_closure<'r>(root: &'r RootFs, req: &Request) -> Gathered<'r> {
    let ld_library_path = req.process.and_then(|p| p.env_var("LD_LIBRARY_PATH"));
    let loader = Loader::new(root, ld_library_path, req.hwcaps.clone());
    let mut examined = Examined::new();
    loader_findings(&loader, &mut examined);

    let entry = req
        .process
        .and_then(|p| entrypoint::resolve(&loader, p, &mut examined.findings));
    if let Some((_, closure)) = &entry {
        record_closure(root, closure, &mut examined);
    }
    let interp = entry
        .as_ref()
        .and_then(|(_, c)| c.objects.first())
        .and_then(|o| o.info.interpreter.clone());
    let libc = match libc::detect(&loader, interp.as_deref()) {
        Ok(found) => found,
        Err(e) => {
            examined.error(&e);
            None
        }
    };
    if let Some(found) = &libc {
        examined.add(root, &found.libc_object);
        if let Some(ld) = &found.loader {
            examined.add(root, ld);
        }
    }
    let machine_obj = machine_object(&libc, &entry);
    let arch = machine_obj.map(|o| o.info.machine_name().to_string());
    let machine = machine_obj.map(|o| o.info.machine);
    let class = machine_obj.map_or(ElfClass::Elf64, |o| o.info.class);
    let mpi = mpi_installs(
        &loader,
        machine,
        class,
        entry.as_ref().map(|(_, c)| c),
        &mut examined,
    );
    let gpu = match machine {
        Some(m) => gpu::detect(&loader, m, req.process, entry.as_ref().map(|(_, c)| c)),
        None => Gpu::default(),
    };
    let mut scan = ScanSummary {
        mode: "default".into(),
        files: 0,
        elf_files: 0,
    };
    if req.all {
        scan = scan_all(root, &mut examined);
        // Directory order is the filesystem's; the report's is the same on any of them.
        examined.objects.sort_by(|a, b| a.path.cmp(&b.path));
    } else {
        scan.files = examined.objects.len();
        scan.elf_files = examined.objects.len();
    }
    for p in loader.skipped() {
        examined.findings.push(FileFinding {
            code: FileCode::UnloadableLibrary,
            path: p.path,
            message: p.message,
        });
    }
    let labels = filter_labels(req.annotations);
    let (label_signals, unknown) = microarch::label_signals(&labels);
    for (key, message) in unknown {
        examined.findings.push(FileFinding {
            code: FileCode::UnknownCpuTarget,
            path: key,
            message,
        });
    }
    let glibc_required = examined
        .glibc
        .iter()
        .next_back()
        .map(|(v, by)| GlibcRequirement {
            version: v.to_string(),
            needed_by: by.clone(),
        });

    let (entrypoint, closure) = match entry {
        Some((e, c)) => (Some(e), Some(c)),
        None => (None, None),
    };
    let microarch = combine_targets(&examined.targets, label_signals, arch.as_deref());
    let inventory = Inventory {
        schema_version: SCHEMA_VERSION,
        root: root.display().to_string(),
        arch,
        os_release: osrelease::read(root),
        libc: libc.map(|f| f.libc),
        loader_cache: cache_summary(&loader),
        mpi,
        gpu,
        cpu: None,
        kernel: None,
        entrypoint,
        glibc_required,
        microarch,
        labels,
        objects: examined.objects,
        scan,
        findings: examined.findings,
    };
    Gathered {
        inventory,
        closure,
        loader,
    }
}

fn loader_findings(loader: &Loader, examined: &mut Examined) {
    if let Some(p) = &loader.cache_problem {
        examined.findings.push(FileFinding {
            code: FileCode::LdCacheInvalid,
            path: p.path.clone(),
            message: p.message.clone(),
        });
    }
    for p in &loader.conf_problems {
        examined.findings.push(FileFinding {
            code: FileCode::LdConfUnreadable,
            path: p.path.clone(),
            message: p.message.clone(),
        });
    }
}

fn record_closure(root: &RootFs, closure: &Closure, examined: &mut Examined) {
    for obj in &closure.objects {
        examined.add(root, obj);
    }
    for e in &closure.unreadable {
        examined.error(e);
    }
}

/// The object that says what the root's machine is: its libc, else its entrypoint.
fn machine_object<'a>(
    libc: &'a Option<libc::LibcFound>,
    entry: &'a Option<(Entrypoint, Closure)>,
) -> Option<&'a Object> {
    match libc {
        Some(found) => Some(&found.libc_object),
        None => entry
            .as_ref()
            .and_then(|(_, c)| c.objects.first())
            .map(|o| &**o),
    }
}

/// Every MPI library the entrypoint loads, where it loads it from (its RUNPATH may reach
/// a virtualenv's copy that no cache lists), first, then every one the loader can see
/// (cache, `LD_LIBRARY_PATH`, system directories); each real file once.
fn mpi_installs(
    loader: &Loader,
    machine: Option<u16>,
    class: ElfClass,
    closure: Option<&Closure>,
    examined: &mut Examined,
) -> Vec<MpiInstall> {
    let Some(machine) = machine else {
        return Vec::new();
    };
    // The canonical sonames first, so that a library reachable under several names
    // (Debian's libmpi.so.12 -> libmpich.so.12) is reported under its own.
    let mut sonames: Vec<String> = [
        "libmpich.so.12",
        "libmpi.so.40",
        "libmpi_abi.so.1",
        "libmpi.so.12",
    ]
    .map(String::from)
    .to_vec();
    if let Some(cache) = &loader.cache {
        sonames.extend(
            cache
                .entries
                .iter()
                .map(|e| e.soname.clone())
                .filter(|s| mpi::is_mpi_soname(s)),
        );
    }
    if let Some(c) = closure {
        sonames.extend(
            c.objects
                .iter()
                .filter_map(|o| o.info.soname.clone())
                .filter(|s| mpi::is_mpi_soname(s)),
        );
    }
    let mut seen = HashSet::new();
    sonames.retain(|s| seen.insert(s.clone()));
    let mut out: Vec<MpiInstall> = Vec::new();
    for obj in closure.map(|c| c.objects.as_slice()).unwrap_or_default() {
        let Some(own) = obj.info.soname.clone().filter(|s| mpi::is_mpi_soname(s)) else {
            continue;
        };
        let Ok(real) = loader.root().canonicalize(&obj.path) else {
            continue;
        };
        if !out.iter().any(|m| m.real_path == real) {
            examined.add_real(obj, real.clone());
            out.push(mpi::identify(obj, &own, &real));
        }
    }
    for soname in sonames {
        let Some(found) = loader.find_plain(&soname, machine, class) else {
            continue;
        };
        // A file the loader stops on is no installation; the loader's finding names it.
        if loader.stops_at(&found.path).is_some() {
            continue;
        }
        let Ok(real) = loader.root().canonicalize(&found.path) else {
            continue;
        };
        if out.iter().any(|m| m.real_path == real) {
            continue;
        }
        match Object::load(loader.root(), &found.path) {
            Ok(obj) => {
                examined.add_real(&obj, real.clone());
                // The library's own DT_SONAME names it better than the alias it was found by.
                let own = obj
                    .info
                    .soname
                    .clone()
                    .filter(|s| mpi::is_mpi_soname(s))
                    .unwrap_or(soname);
                out.push(mpi::identify(&obj, &own, &real));
            }
            Err(e) => examined.error(&e),
        }
    }
    out
}

fn cache_summary(loader: &Loader) -> LoaderCacheSummary {
    let mut summary = LoaderCacheSummary {
        path: "/etc/ld.so.cache".into(),
        conf_dirs: loader.conf_dirs.clone(),
        ..Default::default()
    };
    if let Some(cache) = &loader.cache {
        summary.present = true;
        summary.format = Some(
            serde_json::to_value(&cache.format)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        );
        summary.entries = cache.entries.len();
        summary.hwcaps_entries = cache.entries.iter().filter(|e| e.hwcaps.is_some()).count();
    }
    summary.present |= loader.cache_problem.is_some();
    summary
}

fn filter_labels(annotations: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    annotations
        .map(|a| {
            a.iter()
                .filter(|(k, _)| {
                    k.starts_with("org.supercontainers.") || k.starts_with("io.archspec.")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Examines every regular file with an ELF header, without following symlinks.
fn scan_all(root: &RootFs, examined: &mut Examined) -> ScanSummary {
    let mut summary = ScanSummary {
        mode: "all".into(),
        files: 0,
        elf_files: 0,
    };
    let mut visit = |path: &str, file: Result<RootFile, crate::input::rootfs::RootError>| {
        summary.files += 1;
        let file = match file {
            Ok(f) => f,
            Err(e) => return examined.error(&ObjectError::Root(e)),
        };
        if !has_elf_magic(&file) {
            return;
        }
        summary.elf_files += 1;
        match Object::from_file(path, file) {
            Ok(obj) => examined.add_real(&obj, path.to_string()),
            Err(e) => examined.error(&e),
        }
    };
    if let Err(e) = root.walk_files("/", SKIP_DIRS, &mut visit) {
        examined.error(&ObjectError::Root(e));
    }
    summary
}

fn has_elf_magic(file: &RootFile) -> bool {
    let mut magic = [0u8; 4];
    file.read_exact_at(&mut magic, 0).is_ok() && &magic == b"\x7fELF"
}
