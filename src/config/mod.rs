//! The config file: the site's policy, host overrides, explicit host library lists, logging
//! and where reports go.
//!
//! # File
//!
//! TOML, read from `/etc/containerspec/config.toml` unless a path is given. Without a path,
//! a missing file means the defaults; a path given explicitly must exist. The file is read
//! once per run (the hook reads it on every container start), so keep it small. Every key
//! is optional; an unknown section or key is an error, so a typo never silently drops a
//! setting. Every error names the file and the key.
//!
//! # Sections
//!
//! `[policy]`
//! : One key per rule, named by its finding code (`glibc-too-old`, `microarch-unsupported`,
//!   ...: the code printed with each finding), with the value `"enforce"` (the default: an error
//!   blocks the start), `"warn"` (an error is reported as a warning and the start goes on)
//!   or `"off"` (the rule's findings are dropped). A container may ask for a stricter level
//!   with the annotation `org.supercontainers.policy.<code>=<level>`, never a looser one.
//!
//! `[host]`
//! : `target`: treat the host CPU as this archspec target (`"haswell"`, `"zen3"`,
//!   `"x86_64_v3"`) instead of detecting it: for nodes whose CPU detection is wrong, or to
//!   hold containers to a common target across a heterogeneous partition.
//!   `root`: read this directory as the host (an image of a node, a test tree) instead of
//!   `/`; the library lists below are checked inside it.
//!
//! `[inject.mpi]`, `[inject.gpu]`
//! : `libraries`: the host libraries to inject, as absolute paths on the host (inside
//!   `host.root` when set). Empty: discover them from the host's loader cache. Set it where
//!   the loader cache does not tell (Cray programming environments, modules). Every file must
//!   exist when the config is read.
//!   `prefixes` (`[inject.mpi]` only): installation prefixes of the host's MPI, as a site
//!   installs it under a module (`/sw/openmpi/5.0.11`, `/opt/intel/mpi/2021.13`): the MPI
//!   libraries are looked for in their `lib`, `lib64` and the prefix itself, and the prefix
//!   is mounted at its own path in the container, so that the libraries' `$ORIGIN` still
//!   finds their bundled dependencies.
//!   `plugin_dirs`: extra directories the host libraries load plugins from (Open MPI's
//!   `mca_*` components, UCX, libfabric providers), injected at the same paths.
//!   `data_dirs`: extra directories of data files they read (help texts, topology files).
//!   Directories must exist when the config is read.
//!
//! `[log]`
//! : `file`: also log to this file (the hook's stderr often goes nowhere: crun and podman
//!   drop it). `level`: `"error"`, `"warn"`, `"info"`, `"debug"`, `"trace"` or `"off"`.
//!
//! `[report]`
//! : `dir`: where the hook writes one report per container start (default
//!   `/run/containerspec`).
//!
//! Every path must be absolute: the hook's working directory is the runtime's choice.
//!
//! # Example
//!
//! ```toml
//! [policy]                 # per rule (finding code): "enforce" (default), "warn" or "off"
//! microarch-unsupported = "warn"
//!
//! [host]
//! target = "haswell"       # treat the host CPU as this archspec target
//! root = "/"               # read this directory as the host (testing, images of nodes)
//!
//! [inject.mpi]
//! libraries = ["/opt/cray/pe/lib64/libmpi_gnu_123.so.12"]   # absolute; empty: loader cache
//! prefixes = ["/sw/openmpi/5.0.11"]   # installation trees (modules, Spack, vendors)
//! plugin_dirs = []         # extra directories the host libraries load plugins from
//! data_dirs = []
//!
//! [inject.gpu]
//! libraries = []
//!
//! [log]
//! file = "/var/log/containerspec.log"
//! level = "info"           # error, warn, info, debug, trace
//!
//! [report]
//! dir = "/run/containerspec"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::engine::finding::{Code, UnknownCode};
use crate::engine::policy::{Level, Policy, UnknownLevel};
use crate::input::rootfs::{EntryKind, RootError, RootFs};

pub const DEFAULT_PATH: &str = "/etc/containerspec/config.toml";
pub const DEFAULT_REPORT_DIR: &str = "/run/containerspec";
/// A config file is a few hundred bytes; anything far larger is a mistake (a wrong path).
const MAX_SIZE: u64 = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub policy: Policy,
    pub host: HostConfig,
    pub inject: InjectConfig,
    pub log: LogConfig,
    pub report: ReportConfig,
    /// The file read, None for defaults.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// CPU target override (archspec name), not checked against archspec here.
    pub target: Option<String>,
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct InjectConfig {
    pub mpi: LibrarySet,
    pub gpu: LibrarySet,
}

#[derive(Debug, Clone, Default)]
pub struct LibrarySet {
    /// Explicit host library list (Cray sites), host paths (inside `host.root` when set);
    /// empty = discover from the host's loader cache.
    pub libraries: Vec<PathBuf>,
    /// Installation prefixes (MPI only): `/sw/openmpi/5.0.11`, searched in `lib`, `lib64`
    /// and the prefix itself; mounted at their own path in the container.
    pub prefixes: Vec<PathBuf>,
    pub plugin_dirs: Vec<PathBuf>,
    pub data_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    pub file: Option<PathBuf>,
    pub level: Option<log::LevelFilter>,
}

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub dir: PathBuf,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            dir: PathBuf::from(DEFAULT_REPORT_DIR),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: file too large ({size} bytes, limit {limit})", .path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The TOML does not parse, or does not fit the layout (unknown key, wrong type). `key`
    /// is the dotted key the error is at, when one is.
    #[error("{}: {}{message}{}", .path.display(), key_prefix(.key.as_deref()), location_suffix(.location.as_ref()))]
    Toml {
        path: PathBuf,
        key: Option<String>,
        message: String,
        location: Option<Location>,
    },
    #[error("{}: {key}: {problem}", .path.display())]
    Field {
        path: PathBuf,
        key: String,
        problem: FieldProblem,
    },
}

/// A line and column in the config file, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|k| format!("{k}: ")).unwrap_or_default()
}

fn location_suffix(location: Option<&Location>) -> String {
    location.map(|l| format!(" ({l})")).unwrap_or_default()
}

/// What is wrong with one key's value.
#[derive(Debug, thiserror::Error)]
pub enum FieldProblem {
    #[error(transparent)]
    UnknownCode(#[from] UnknownCode),
    #[error(transparent)]
    UnknownLevel(#[from] UnknownLevel),
    #[error("unknown log level \"{0}\" (expected error, warn, info, debug, trace or off)")]
    UnknownLogLevel(String),
    #[error("empty")]
    Empty,
    #[error("{}: relative path (paths in the config file must be absolute)", .0.display())]
    RelativePath(PathBuf),
    #[error("{}: no such {kind}{}", .path.display(), in_root(.root.as_deref()))]
    Missing {
        path: PathBuf,
        kind: &'static str,
        root: Option<PathBuf>,
    },
    #[error("{}: not a {kind}{}", .path.display(), in_root(.root.as_deref()))]
    WrongKind {
        path: PathBuf,
        kind: &'static str,
        root: Option<PathBuf>,
    },
    #[error("{0}")]
    Root(RootError),
}

fn in_root(root: Option<&Path>) -> String {
    root.map(|r| format!(" (in host root {})", r.display()))
        .unwrap_or_default()
}

impl Config {
    /// `None`: the default path, whose absence means defaults; `Some(path)`: that file,
    /// which must exist.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_for(path, None)
    }

    /// Like [`Config::load`], with the host root the command was given (`--host-root`):
    /// it wins over the file's `host.root`, and the file's paths are checked inside it.
    pub fn load_for(path: Option<&Path>, host_root: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return match Config::read(Path::new(DEFAULT_PATH), host_root) {
                Err(ConfigError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(Config::default())
                }
                other => other,
            };
        };
        Config::read(path, host_root)
    }

    fn read(path: &Path, host_root: Option<&Path>) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        // Non-blocking so that a FIFO given by mistake is refused below instead of hanging
        // the hook; reads of a regular file are unaffected.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(read_error)?;
        let meta = file.metadata().map_err(read_error)?;
        if !meta.is_file() {
            return Err(ConfigError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        if meta.len() > MAX_SIZE {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
                limit: MAX_SIZE,
            });
        }
        let mut text = String::new();
        file.take(MAX_SIZE)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        Config::parse_for(&text, path, host_root)
    }

    /// Parses and checks `text`, read from `source` (named in errors). The library lists
    /// are checked against the filesystem (inside `host.root` when set): a config is only
    /// valid on the host it describes.
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
        Config::parse_for(text, source, None)
    }

    fn parse_for(
        text: &str,
        source: &Path,
        root_given: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, source, &e))?;
        let field = |key: &str, problem: FieldProblem| ConfigError::Field {
            path: source.to_path_buf(),
            key: key.to_string(),
            problem,
        };
        let policy = policy(&raw.policy).map_err(|(key, p)| field(&key, p))?;
        let mut host = host(&raw.host).map_err(|(key, p)| field(key, p))?;
        if let Some(root) = root_given {
            host.root = Some(root.to_path_buf());
        }
        let root = host_root(&host).map_err(|p| field("host.root", p))?;
        let inject = InjectConfig {
            mpi: library_set(&raw.inject.mpi, "inject.mpi", &root)
                .map_err(|(key, p)| field(&key, p))?,
            gpu: library_set(&raw.inject.gpu, "inject.gpu", &root)
                .map_err(|(key, p)| field(&key, p))?,
        };
        let log = log_config(&raw.log).map_err(|(key, p)| field(key, p))?;
        let report = ReportConfig {
            dir: absolute(raw.report.dir.as_deref())
                .map_err(|p| field("report.dir", p))?
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR)),
        };
        Ok(Config {
            policy,
            host,
            inject,
            log,
            report,
            source: Some(source.to_path_buf()),
        })
    }
}

/// The file's layout, as written: strings are checked and converted afterwards, so that
/// each error can name its key.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    policy: BTreeMap<String, String>,
    host: RawHost,
    inject: RawInject,
    log: RawLog,
    report: RawReport,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawHost {
    target: Option<String>,
    root: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawInject {
    mpi: RawLibrarySet,
    gpu: RawLibrarySet,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLibrarySet {
    libraries: Vec<String>,
    prefixes: Vec<String>,
    plugin_dirs: Vec<String>,
    data_dirs: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLog {
    file: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReport {
    dir: Option<String>,
}

fn policy(raw: &BTreeMap<String, String>) -> Result<Policy, (String, FieldProblem)> {
    let mut policy = Policy::default();
    for (name, value) in raw {
        let key = format!("policy.{name}");
        let code: Code = name
            .parse()
            .map_err(|e: UnknownCode| (key.clone(), e.into()))?;
        let level: Level = value
            .parse()
            .map_err(|e: UnknownLevel| (key.clone(), e.into()))?;
        policy.set(code, level);
    }
    Ok(policy)
}

fn host(raw: &RawHost) -> Result<HostConfig, (&'static str, FieldProblem)> {
    if raw.target.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(("host.target", FieldProblem::Empty));
    }
    Ok(HostConfig {
        target: raw.target.clone(),
        root: absolute(raw.root.as_deref()).map_err(|p| ("host.root", p))?,
    })
}

/// The root the library lists are checked in: `host.root`, or `/`.
fn host_root(host: &HostConfig) -> Result<RootFs, FieldProblem> {
    let root = host.root.as_deref().unwrap_or(Path::new("/"));
    RootFs::open(root).map_err(FieldProblem::Root)
}

fn library_set(
    raw: &RawLibrarySet,
    section: &str,
    root: &RootFs,
) -> Result<LibrarySet, (String, FieldProblem)> {
    let list = |name: &str, paths: &[String], kind: EntryKind| {
        existing(paths, kind, root).map_err(|p| (format!("{section}.{name}"), p))
    };
    Ok(LibrarySet {
        libraries: list("libraries", &raw.libraries, EntryKind::File)?,
        prefixes: list("prefixes", &raw.prefixes, EntryKind::Dir)?,
        plugin_dirs: list("plugin_dirs", &raw.plugin_dirs, EntryKind::Dir)?,
        data_dirs: list("data_dirs", &raw.data_dirs, EntryKind::Dir)?,
    })
}

/// Absolute paths that resolve, inside `root`, to an entry of `kind`.
fn existing(
    paths: &[String],
    kind: EntryKind,
    root: &RootFs,
) -> Result<Vec<PathBuf>, FieldProblem> {
    paths
        .iter()
        .map(|text| {
            let path = PathBuf::from(text);
            if !path.is_absolute() {
                return Err(FieldProblem::RelativePath(path));
            }
            check_kind(root, path, kind)
        })
        .collect()
}

fn check_kind(root: &RootFs, path: PathBuf, kind: EntryKind) -> Result<PathBuf, FieldProblem> {
    let name = if kind == EntryKind::Dir {
        "directory"
    } else {
        "file"
    };
    // Named in errors only when it is not the real root, where it would be noise.
    let shown_root = (root.path() != Path::new("/")).then(|| root.path().to_path_buf());
    match root.kind(&path.to_string_lossy()) {
        Some(found) if found == kind => Ok(path),
        Some(_) => Err(FieldProblem::WrongKind {
            path,
            kind: name,
            root: shown_root,
        }),
        None => Err(FieldProblem::Missing {
            path,
            kind: name,
            root: shown_root,
        }),
    }
}

fn log_config(raw: &RawLog) -> Result<LogConfig, (&'static str, FieldProblem)> {
    let level = match raw.level.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<log::LevelFilter>()
                .map_err(|_| ("log.level", FieldProblem::UnknownLogLevel(text.to_string())))?,
        ),
    };
    Ok(LogConfig {
        file: absolute(raw.file.as_deref()).map_err(|p| ("log.file", p))?,
        level,
    })
}

fn absolute(text: Option<&str>) -> Result<Option<PathBuf>, FieldProblem> {
    let Some(text) = text else {
        return Ok(None);
    };
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(Some(path))
    } else {
        Err(FieldProblem::RelativePath(path))
    }
}

/// A TOML error, with the dotted key it is at (found from its position in the document)
/// and its line and column.
fn toml_error(text: &str, source: &Path, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    ConfigError::Toml {
        path: source.to_path_buf(),
        key: span.clone().and_then(|span| key_at(text, span)),
        message: error.message().trim_end().to_string(),
        location: span.and_then(|span| location(text, span.start)),
    }
}

fn location(text: &str, offset: usize) -> Option<Location> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    })
}

/// The deepest dotted key whose name or value covers `span`: `inject.mpi.plugin_dir` for an
/// unknown key, `host.root` for a value of the wrong type. None when the text does not parse
/// as TOML at all (a syntax error has no key yet).
fn key_at(text: &str, span: Range<usize>) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut best = None;
    search_table(document.get_ref(), &[], span.start, &mut best);
    best.map(|(_, path): (usize, Vec<String>)| path.join("."))
}

type Best = Option<(usize, Vec<String>)>;

fn search_table(table: &toml::de::DeTable<'_>, prefix: &[String], at: usize, best: &mut Best) {
    for (key, value) in table {
        let mut path = prefix.to_vec();
        path.push(key.get_ref().to_string());
        if covers(&key.span(), at) || covers(&value.span(), at) {
            let deeper = best.as_ref().is_none_or(|(depth, _)| path.len() > *depth);
            if deeper {
                *best = Some((path.len(), path.clone()));
            }
        }
        search_value(value.get_ref(), &path, at, best);
    }
}

/// Tables can sit inside arrays (`[[x]]`, inline tables): they keep the array's key.
fn search_value(value: &toml::de::DeValue<'_>, path: &[String], at: usize, best: &mut Best) {
    match value {
        toml::de::DeValue::Table(table) => search_table(table, path, at, best),
        toml::de::DeValue::Array(items) => {
            for item in items {
                search_value(item.get_ref(), path, at, best);
            }
        }
        _ => {}
    }
}

fn covers(span: &Range<usize>, at: usize) -> bool {
    span.start <= at && (at < span.end || (span.is_empty() && at == span.start))
}

#[cfg(test)]
mod tests;
