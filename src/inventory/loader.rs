//! The dynamic loader's view of a root, emulated from files: where `ld.so` would find each
//! `DT_NEEDED` library, and the closure of an object's dependencies. It follows glibc's
//! order: the requester's `DT_RPATH` chain (only without `DT_RUNPATH`), `LD_LIBRARY_PATH`
//! from the container's environment, the requester's `DT_RUNPATH`, `/etc/ld.so.cache`,
//! then the system directories; in every directory the `glibc-hwcaps` subdirectories the
//! CPU supports come first. Candidates of another ELF class or machine are skipped, as
//! the loader skips them. Nothing is executed: `ldconfig` and `ldd` are never run.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use super::ldconf;
use super::object::{Object, ObjectError};
use crate::input::rootfs::RootFs;
use crate::ldcache::LdCache;

/// ld.so.conf include nesting deeper than this is a loop.
const MAX_CONF_DEPTH: usize = 8;

/// How a library was found.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FoundVia {
    Path,
    Rpath,
    LdLibraryPath,
    Runpath,
    LdCache,
    SystemDir,
}

/// One resolved `DT_NEEDED` edge.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Resolved {
    pub soname: String,
    pub path: String,
    pub via: FoundVia,
}

/// A problem met while reading the loader configuration; reported, never fatal.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LoaderProblem {
    pub path: String,
    pub message: String,
}

pub struct Loader<'r> {
    root: &'r RootFs,
    pub cache: Option<LdCache>,
    pub cache_problem: Option<LoaderProblem>,
    /// The cache exists but is beyond what containerspec reads (its size or its entry
    /// count): the loader would use it, so nothing can be judged without it.
    pub cache_refused: bool,
    pub conf_dirs: Vec<String>,
    pub conf_problems: Vec<LoaderProblem>,
    ld_library_path: Vec<String>,
    hwcaps: Vec<String>,
    /// Candidates that exist but cannot be loaded (unreadable, not ELF, a symlink loop):
    /// the loader passes over them silently, a report should not.
    skipped: RefCell<Vec<LoaderProblem>>,
    /// glibc-hwcaps directory listings, read once each: those directories rarely exist,
    /// and one failed open answers every candidate in them.
    listings: RefCell<HashMap<String, Option<HashSet<String>>>>,
    /// Objects already parsed, by path: closures of related libraries overlap a lot.
    loaded: RefCell<HashMap<String, Rc<Object>>>,
    /// Candidates already probed, by path and wanted class and machine.
    probed: RefCell<HashMap<(String, bool, u16), Probe>>,
    /// Files the loader stops on, with its error, by path.
    stops: RefCell<HashMap<String, String>>,
}

/// What the loader makes of a candidate file (glibc's `open_verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    /// An ELF object of the wanted class and machine: the search ends here.
    Match,
    /// Passed over (missing, unreadable, another class or machine): the search goes on.
    Skip,
    /// The search ends here and the loader stops with an error ("file too short",
    /// "invalid ELF header", kept in `stops`): a program that needs it cannot start.
    Fatal,
}

/// The closure of an object's dependencies, in load order (breadth first, as ld.so).
#[derive(Debug, Default)]
pub struct Closure {
    pub objects: Vec<Rc<Object>>,
    /// For each loaded object (same index), how its `DT_NEEDED` entries resolved.
    pub edges: Vec<Vec<Resolved>>,
    /// `(needed soname, requesting object path)` that no search found.
    pub missing: Vec<(String, String)>,
    /// Files that were found but could not be read as ELF.
    pub unreadable: Vec<ObjectError>,
    /// Libraries whose search ended at a file the loader refuses with an error (not ELF,
    /// too short): the program stops there.
    pub broken: Vec<BrokenLibrary>,
}

/// A `DT_NEEDED` entry the loader resolves to a file it then refuses, stopping the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLibrary {
    pub soname: String,
    /// The file the search ended at.
    pub path: String,
    /// The object that needs it.
    pub needed_by: String,
    /// The loader's error.
    pub message: String,
}

impl<'r> Loader<'r> {
    /// Reads `/etc/ld.so.cache` and `/etc/ld.so.conf` of `root`. `ld_library_path` is the
    /// container's `LD_LIBRARY_PATH` (empty for the host: the hook's own environment
    /// never counts), `hwcaps` the glibc-hwcaps subdirectories the CPU supports, best
    /// first (`x86-64-v4`, `x86-64-v3`, ...).
    pub fn new(root: &'r RootFs, ld_library_path: Option<&str>, hwcaps: Vec<String>) -> Loader<'r> {
        let (cache, cache_problem, cache_refused) = read_cache(root);
        let mut conf_problems = Vec::new();
        let mut conf_dirs = Vec::new();
        read_conf(
            root,
            "/etc/ld.so.conf",
            0,
            &mut conf_dirs,
            &mut conf_problems,
        );
        let ld_library_path = ld_library_path.map(split_search_path).unwrap_or_default();
        Loader {
            root,
            cache,
            cache_problem,
            cache_refused,
            conf_dirs,
            conf_problems,
            ld_library_path,
            hwcaps,
            skipped: RefCell::default(),
            listings: RefCell::default(),
            loaded: RefCell::default(),
            probed: RefCell::default(),
            stops: RefCell::default(),
        }
    }

    pub fn root(&self) -> &RootFs {
        self.root
    }

    /// Finds the library `soname` that `requester` asks for, with the `DT_RPATH`s of the
    /// objects that loaded the requester (`rpath_chain`, nearest first) as ld.so uses them.
    pub fn find(
        &self,
        soname: &str,
        requester: &Object,
        rpath_chain: &[&Object],
    ) -> Option<Resolved> {
        let want = Want {
            class: requester.info.class,
            machine: requester.info.machine,
        };
        if soname.contains('/') {
            return self
                .try_path(soname, &want)
                .then(|| resolved(soname, soname.to_string(), FoundVia::Path));
        }
        let has_runpath = !requester.info.runpath.is_empty();
        if !has_runpath {
            for obj in std::iter::once(requester).chain(rpath_chain.iter().copied()) {
                let dirs = expand_dirs(&obj.info.rpath, obj);
                if let Some(p) = self.search_dirs(&dirs, soname, &want) {
                    return Some(resolved(soname, p, FoundVia::Rpath));
                }
            }
        }
        if let Some(p) = self.search_dirs(&self.ld_library_path, soname, &want) {
            return Some(resolved(soname, p, FoundVia::LdLibraryPath));
        }
        if has_runpath {
            let dirs = expand_dirs(&requester.info.runpath, requester);
            if let Some(p) = self.search_dirs(&dirs, soname, &want) {
                return Some(resolved(soname, p, FoundVia::Runpath));
            }
        }
        if let Some(p) = self.cache_lookup(soname, &want) {
            return Some(resolved(soname, p, FoundVia::LdCache));
        }
        let system = system_dirs(requester.info.machine);
        self.search_dirs(&system, soname, &want)
            .map(|p| resolved(soname, p, FoundVia::SystemDir))
    }

    /// Where `soname` resolves for an object of `machine` (64-bit) with no RPATH or
    /// RUNPATH of its own: what `dlopen` from a plain program would find.
    pub fn find_plain(
        &self,
        soname: &str,
        machine: u16,
        class: super::elf::ElfClass,
    ) -> Option<Resolved> {
        let want = Want { class, machine };
        if let Some(p) = self.search_dirs(&self.ld_library_path, soname, &want) {
            return Some(resolved(soname, p, FoundVia::LdLibraryPath));
        }
        if let Some(p) = self.cache_lookup(soname, &want) {
            return Some(resolved(soname, p, FoundVia::LdCache));
        }
        self.search_dirs(&system_dirs(machine), soname, &want)
            .map(|p| resolved(soname, p, FoundVia::SystemDir))
    }

    /// Loads `start` and everything it needs, transitively, each library once.
    pub fn closure(&self, start: Object) -> Closure {
        let mut closure = Closure::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        // parent[i]: index of the object that first pulled object i in (for RPATH chains).
        let mut parent: Vec<Option<usize>> = vec![None];
        closure.objects.push(Rc::new(start));
        let mut next = 0;
        while next < closure.objects.len() {
            let mut edges = Vec::new();
            let needed = closure.objects[next].info.needed.clone();
            for soname in needed {
                let chain = rpath_chain(&closure.objects, &parent, next);
                let Some(found) = self.find(&soname, &closure.objects[next], &chain) else {
                    closure
                        .missing
                        .push((soname, closure.objects[next].path.clone()));
                    continue;
                };
                if let Some(message) = self.stops_at(&found.path) {
                    closure.broken.push(BrokenLibrary {
                        soname,
                        path: found.path.clone(),
                        needed_by: closure.objects[next].path.clone(),
                        message,
                    });
                    continue;
                }
                if !seen.contains_key(&found.soname) && !self.already_loaded(&closure, &found.path)
                {
                    match self.load(&found.path) {
                        Ok(obj) => {
                            seen.insert(found.soname.clone(), closure.objects.len());
                            parent.push(Some(next));
                            closure.objects.push(obj);
                        }
                        Err(e) => closure.unreadable.push(e),
                    }
                }
                edges.push(found);
            }
            closure.edges.push(edges);
            next += 1;
        }
        closure
    }

    /// Parses the object at `path` once per loader.
    pub fn load(&self, path: &str) -> Result<Rc<Object>, ObjectError> {
        if let Some(obj) = self.loaded.borrow().get(path) {
            return Ok(Rc::clone(obj));
        }
        let obj = Rc::new(Object::load(self.root, path)?);
        self.loaded
            .borrow_mut()
            .insert(path.to_string(), Rc::clone(&obj));
        Ok(obj)
    }

    fn already_loaded(&self, closure: &Closure, path: &str) -> bool {
        closure.objects.iter().any(|o| o.path == path)
    }

    fn cache_lookup(&self, soname: &str, want: &Want) -> Option<String> {
        let cache = self.cache.as_ref()?;
        let hwcaps: Vec<&str> = self.hwcaps.iter().map(String::as_str).collect();
        let entry = cache.lookup(soname, want.machine, &hwcaps)?;
        self.try_path(&entry.path, want).then(|| entry.path.clone())
    }

    fn search_dirs(&self, dirs: &[String], soname: &str, want: &Want) -> Option<String> {
        for dir in dirs {
            let dir = dir.trim_end_matches('/');
            for hwcap in &self.hwcaps {
                let candidate = format!("{dir}/glibc-hwcaps/{hwcap}/{soname}");
                if self.try_path(&candidate, want) {
                    return Some(candidate);
                }
            }
            let candidate = format!("{dir}/{soname}");
            if self.try_path(&candidate, want) {
                return Some(candidate);
            }
        }
        None
    }

    /// True when the search for a library ends at `path`: an ELF file of the wanted class
    /// and machine, or a file the loader stops on with an error. The loader skips the
    /// others (missing, unreadable, "wrong ELF class", another machine) and goes on.
    fn try_path(&self, path: &str, want: &Want) -> bool {
        let key = (
            path.to_string(),
            want.class == super::elf::ElfClass::Elf64,
            want.machine,
        );
        if let Some(known) = self.probed.borrow().get(&key) {
            return *known != Probe::Skip;
        }
        let found = self.probe(path, want);
        let ends = found != Probe::Skip;
        self.probed.borrow_mut().insert(key, found);
        ends
    }

    /// The loader's error for a file it stops on, where `path` is one (it is reported
    /// with the loader's problems already).
    pub fn stops_at(&self, path: &str) -> Option<String> {
        self.stops.borrow().get(path).cloned()
    }

    /// glibc's `open_verify`: a file shorter than an ELF header or without the ELF magic
    /// stops the loader ("file too short", "invalid ELF header"); another class or
    /// machine is passed over.
    fn probe(&self, path: &str, want: &Want) -> Probe {
        if path.contains("/glibc-hwcaps/") && !self.listed(path) {
            return Probe::Skip;
        }
        let file = match self.root.open_file(path) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Probe::Skip,
            Err(e) => {
                self.skip(path, e.to_string());
                return Probe::Skip;
            }
        };
        // The loader reads a whole ELF header of its own class before any check.
        let header_len = match want.class {
            super::elf::ElfClass::Elf32 => 52,
            super::elf::ElfClass::Elf64 => 64,
        };
        let mut header = [0u8; 64];
        let read = file.read_at(&mut header[..header_len], 0).unwrap_or(0);
        if read < header_len {
            return self.stop(path, "file too short");
        }
        let Some(ident) = header.first_chunk::<20>() else {
            return self.stop(path, "file too short");
        };
        if &ident[..4] != b"\x7fELF" {
            return self.stop(path, "invalid ELF header");
        }
        if header_matches(ident, want) {
            Probe::Match
        } else {
            Probe::Skip
        }
    }

    /// Records a candidate the loader stops on, with the error it prints.
    fn stop(&self, path: &str, error: &str) -> Probe {
        let message = format!("{path}: {error} (the loader stops here)");
        self.skip(path, message.clone());
        self.stops
            .borrow_mut()
            .insert(path.to_string(), message.clone());
        Probe::Fatal
    }

    /// False when the directory of `path` has no entry of that name (or does not exist).
    fn listed(&self, path: &str) -> bool {
        let Some((dir, name)) = path.rsplit_once('/') else {
            return true;
        };
        let dir = if dir.is_empty() { "/" } else { dir };
        let mut listings = self.listings.borrow_mut();
        let listing = listings.entry(dir.to_string()).or_insert_with(|| {
            let entries = self.root.list_dir(dir).ok()?;
            Some(entries.into_iter().map(|(n, _)| n).collect())
        });
        listing.as_ref().is_some_and(|names| names.contains(name))
    }

    /// Records a candidate the loader passes over or stops on, for the report.
    fn skip(&self, path: &str, message: String) {
        let mut skipped = self.skipped.borrow_mut();
        if !skipped.iter().any(|p| p.path == path) {
            skipped.push(LoaderProblem {
                path: path.to_string(),
                message,
            });
        }
    }

    /// The candidates passed over so far.
    pub fn skipped(&self) -> Vec<LoaderProblem> {
        self.skipped.borrow().clone()
    }
}

struct Want {
    class: super::elf::ElfClass,
    machine: u16,
}

/// Checks the ELF identification and `e_machine` without parsing the whole file.
fn header_matches(h: &[u8; 20], want: &Want) -> bool {
    if &h[..4] != b"\x7fELF" {
        return false;
    }
    let class_ok = match want.class {
        super::elf::ElfClass::Elf32 => h[4] == 1,
        super::elf::ElfClass::Elf64 => h[4] == 2,
    };
    let machine = if h[5] == 2 {
        u16::from_be_bytes([h[18], h[19]])
    } else {
        u16::from_le_bytes([h[18], h[19]])
    };
    class_ok && machine == want.machine
}

fn resolved(soname: &str, path: String, via: FoundVia) -> Resolved {
    Resolved {
        soname: soname.to_string(),
        path,
        via,
    }
}

/// The objects whose `DT_RPATH` apply after the requester's own: its loaders, nearest first.
fn rpath_chain<'a>(
    objects: &'a [Rc<Object>],
    parent: &[Option<usize>],
    index: usize,
) -> Vec<&'a Object> {
    let mut chain = Vec::new();
    let mut current = parent.get(index).copied().flatten();
    while let Some(i) = current {
        if let Some(obj) = objects.get(i) {
            chain.push(&**obj);
        }
        current = parent.get(i).copied().flatten();
        if chain.len() > objects.len() {
            break;
        }
    }
    chain
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` in RPATH/RUNPATH entries of `obj`.
fn expand_dirs(dirs: &[String], obj: &Object) -> Vec<String> {
    let origin = obj
        .path
        .rsplit_once('/')
        .map_or("/", |(dir, _)| if dir.is_empty() { "/" } else { dir });
    let (lib, platform) = lib_and_platform(obj.info.machine);
    dirs.iter()
        .map(|d| {
            d.replace("${ORIGIN}", origin)
                .replace("$ORIGIN", origin)
                .replace("${LIB}", lib)
                .replace("$LIB", lib)
                .replace("${PLATFORM}", platform)
                .replace("$PLATFORM", platform)
        })
        .filter(|d| d.starts_with('/'))
        .collect()
}

/// Debian's `$LIB` is the multiarch directory; `$PLATFORM` is the AT_PLATFORM string.
fn lib_and_platform(machine: u16) -> (&'static str, &'static str) {
    match machine {
        goblin::elf::header::EM_X86_64 => ("lib/x86_64-linux-gnu", "x86_64"),
        goblin::elf::header::EM_AARCH64 => ("lib/aarch64-linux-gnu", "aarch64"),
        goblin::elf::header::EM_386 => ("lib/i386-linux-gnu", "i686"),
        goblin::elf::header::EM_PPC64 => ("lib/powerpc64le-linux-gnu", "power9"),
        _ => ("lib", ""),
    }
}

/// The loader's built-in directories: Debian's multiarch ones, then the generic ones
/// other distributions' loaders use (`lib64` on x86-64 and aarch64).
pub fn system_dirs(machine: u16) -> Vec<String> {
    let (lib, _) = lib_and_platform(machine);
    let mut dirs = vec![format!("/{lib}"), format!("/usr/{lib}")];
    if matches!(
        machine,
        goblin::elf::header::EM_X86_64 | goblin::elf::header::EM_AARCH64
    ) {
        dirs.extend(["/lib64".to_string(), "/usr/lib64".to_string()]);
    }
    dirs.extend(["/lib".to_string(), "/usr/lib".to_string()]);
    dirs.dedup();
    dirs
}

/// `LD_LIBRARY_PATH` elements: glibc splits on `:` and `;`; empty elements (the current
/// directory) cannot be resolved before the process runs and are skipped.
fn split_search_path(value: &str) -> Vec<String> {
    value
        .split([':', ';'])
        .filter(|s| s.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// A loader cache larger than this is not read (a large HPC image's is a few MB).
pub const MAX_CACHE_FILE: u64 = 16 << 20;

/// The cache, or the problem that kept it from being read (and whether that was a limit
/// of containerspec's rather than a cache the loader itself would ignore).
fn read_cache(root: &RootFs) -> (Option<LdCache>, Option<LoaderProblem>, bool) {
    const CACHE: &str = "/etc/ld.so.cache";
    let problem = |message: String| LoaderProblem {
        path: CACHE.into(),
        message,
    };
    let bytes = match root.read_limited(CACHE, MAX_CACHE_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return (None, None, false),
        Err(e) => {
            let refused = matches!(
                e,
                crate::input::rootfs::RootError::Path {
                    reason: crate::input::rootfs::PathProblem::TooLarge { .. },
                    ..
                }
            );
            return (None, Some(problem(e.to_string())), refused);
        }
    };
    match LdCache::parse(&bytes) {
        Ok(cache) => (Some(cache), None, false),
        Err(e) => {
            let refused = matches!(e, crate::ldcache::LdCacheError::TooManyEntries { .. });
            (None, Some(problem(format!("{CACHE}: {e}"))), refused)
        }
    }
}

/// Reads an ld.so.conf file, expanding `include` globs (relative ones against the
/// including file's directory), each path resolved inside the root.
fn read_conf(
    root: &RootFs,
    path: &str,
    depth: usize,
    dirs: &mut Vec<String>,
    problems: &mut Vec<LoaderProblem>,
) {
    if depth > MAX_CONF_DEPTH {
        problems.push(LoaderProblem {
            path: path.into(),
            message: format!("{path}: includes nested too deeply"),
        });
        return;
    }
    let text = match root.read_text(path) {
        Ok(text) => text,
        Err(e) if e.is_not_found() && depth == 0 => return,
        Err(e) => {
            return problems.push(LoaderProblem {
                path: path.into(),
                message: e.to_string(),
            });
        }
    };
    let base = path
        .rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    for directive in ldconf::parse(&text) {
        match directive {
            ldconf::Directive::Dir(dir) => {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            ldconf::Directive::Include(pattern) => {
                let pattern = if pattern.starts_with('/') {
                    pattern
                } else {
                    format!("{base}/{pattern}")
                };
                for file in expand_glob(root, &pattern) {
                    read_conf(root, &file, depth + 1, dirs, problems);
                }
            }
        }
    }
}

/// Expands a glob segment by segment against directory listings inside the root, sorted
/// as glob(3) sorts.
fn expand_glob(root: &RootFs, pattern: &str) -> Vec<String> {
    let mut current: BTreeSet<String> = BTreeSet::from([String::new()]);
    for segment in pattern.split('/').filter(|s| !s.is_empty()) {
        let mut next = BTreeSet::new();
        for prefix in &current {
            if !segment.contains(['*', '?', '[']) {
                next.insert(format!("{prefix}/{segment}"));
                continue;
            }
            let dir = if prefix.is_empty() {
                "/"
            } else {
                prefix.as_str()
            };
            for (name, _) in root.list_dir(dir).unwrap_or_default() {
                if !name.starts_with('.') && ldconf::glob_match(segment, &name) {
                    next.insert(format!("{prefix}/{name}"));
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .filter(|p| !p.is_empty() && root.is_file(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_splitting() {
        assert_eq!(split_search_path("/a:/b;/c::rel:"), vec!["/a", "/b", "/c"]);
        assert!(split_search_path("").is_empty());
    }

    #[test]
    fn system_dirs_for_x86_64() {
        assert_eq!(
            system_dirs(goblin::elf::header::EM_X86_64),
            vec![
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib"
            ]
        );
    }

    #[test]
    fn header_check() {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&62u16.to_le_bytes());
        let want = Want {
            class: super::super::elf::ElfClass::Elf64,
            machine: 62,
        };
        assert!(header_matches(&h, &want));
        h[4] = 1;
        assert!(!header_matches(&h, &want));
        h[4] = 2;
        h[18] = 183;
        assert!(!header_matches(&h, &want));
    }
}
