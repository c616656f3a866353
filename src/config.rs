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
mod tests {
    use super::*;

    const SOURCE: &str = "/etc/containerspec/config.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new(SOURCE))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A scratch directory with a library and a plugin directory in it.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Tree {
            let dir = std::env::temp_dir().join(format!(
                "containerspec-config-{}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("lib/openmpi")).unwrap();
            std::fs::write(dir.join("lib/libmpi.so.12"), b"\x7fELF").unwrap();
            Tree(dir)
        }

        fn path(&self, rel: &str) -> String {
            self.0.join(rel).display().to_string()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.policy, Policy::default());
        assert_eq!(config.host.target, None);
        assert_eq!(config.host.root, None);
        assert!(config.inject.mpi.libraries.is_empty());
        assert!(config.inject.gpu.plugin_dirs.is_empty());
        assert_eq!(config.log.file, None);
        assert_eq!(config.log.level, None);
        assert_eq!(config.report.dir, Path::new("/run/containerspec"));
        assert_eq!(config.source.as_deref(), Some(Path::new(SOURCE)));
        assert_eq!(Config::default().report.dir, Path::new(DEFAULT_REPORT_DIR));
        assert_eq!(Config::default().source, None);
    }

    #[test]
    fn every_setting_is_read() {
        let tree = Tree::new("every");
        let text = format!(
            r#"
[policy]
microarch-unsupported = "warn"
label-mismatch = "off"
glibc-too-old = "enforce"

[host]
target = "haswell"
root = "{root}"

[inject.mpi]
libraries = ["/lib/libmpi.so.12"]
plugin_dirs = ["/lib/openmpi"]
data_dirs = ["/lib"]

[inject.gpu]
libraries = []

[log]
file = "/var/log/containerspec.log"
level = "debug"

[report]
dir = "/var/run/cs"
"#,
            root = tree.0.display()
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.policy.level(Code::MicroarchUnsupported), Level::Warn);
        assert_eq!(config.policy.level(Code::LabelMismatch), Level::Off);
        assert_eq!(config.policy.level(Code::GlibcTooOld), Level::Enforce);
        assert_eq!(config.policy.level(Code::CudaDriverTooOld), Level::Enforce);
        assert_eq!(config.host.target.as_deref(), Some("haswell"));
        assert_eq!(config.host.root.as_deref(), Some(tree.0.as_path()));
        assert_eq!(
            config.inject.mpi.libraries,
            [Path::new("/lib/libmpi.so.12")]
        );
        assert_eq!(config.inject.mpi.plugin_dirs, [Path::new("/lib/openmpi")]);
        assert_eq!(config.inject.mpi.data_dirs, [Path::new("/lib")]);
        assert!(config.inject.gpu.libraries.is_empty());
        assert_eq!(
            config.log.file.as_deref(),
            Some(Path::new("/var/log/containerspec.log"))
        );
        assert_eq!(config.log.level, Some(log::LevelFilter::Debug));
        assert_eq!(config.report.dir, Path::new("/var/run/cs"));
    }

    #[test]
    fn libraries_on_the_real_root() {
        let tree = Tree::new("real");
        let text = format!(
            "[inject.gpu]\nlibraries = [\"{}\"]\nplugin_dirs = [\"{}\"]\n",
            tree.path("lib/libmpi.so.12"),
            tree.path("lib/openmpi")
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.inject.gpu.libraries.len(), 1);
        assert_eq!(config.inject.gpu.plugin_dirs.len(), 1);
    }

    #[test]
    fn log_levels() {
        for (text, level) in [
            ("error", log::LevelFilter::Error),
            ("warn", log::LevelFilter::Warn),
            ("info", log::LevelFilter::Info),
            ("debug", log::LevelFilter::Debug),
            ("trace", log::LevelFilter::Trace),
            ("off", log::LevelFilter::Off),
        ] {
            let config = parse(&format!("[log]\nlevel = \"{text}\"\n")).unwrap();
            assert_eq!(config.log.level, Some(level), "{text}");
        }
    }

    /// (config text, what the message must contain after the file name).
    #[test]
    fn errors_name_the_file_and_the_key() {
        let table: &[(&str, &str)] = &[
            (
                "[policy]\nglibc-too-old = \"strict\"\n",
                "policy.glibc-too-old: unknown level \"strict\" (expected enforce, warn or off)",
            ),
            (
                "[policy]\nglibc-too-new = \"warn\"\n",
                "policy.glibc-too-new: unknown rule \"glibc-too-new\" (expected one of: arch-mismatch,",
            ),
            (
                "[policy]\nglibc-too-old = true\n",
                "policy.glibc-too-old: invalid type: boolean `true`, expected a string (line 2, column 17)",
            ),
            ("[host]\ntarget = \"\"\n", "host.target: empty"),
            (
                "[host]\nroot = \"nodes/a\"\n",
                "host.root: nodes/a: relative path (paths in the config file must be absolute)",
            ),
            (
                "[host]\nroot = \"/nonexistent/containerspec-root\"\n",
                "host.root: /nonexistent/containerspec-root: cannot open root",
            ),
            (
                "[host]\nroot = 1\n",
                "host.root: invalid type: integer `1`, expected a string (line 2, column 8)",
            ),
            (
                "[host]\ntargt = \"haswell\"\n",
                "host.targt: unknown field `targt`, expected `target` or `root` (line 2, column 1)",
            ),
            (
                "[inject.mpi]\nlibraries = [\"lib/libmpi.so.12\"]\n",
                "inject.mpi.libraries: lib/libmpi.so.12: relative path",
            ),
            (
                "[inject.mpi]\nlibraries = [\"/opt/x/libmpi.so.12\"]\n",
                "inject.mpi.libraries: /opt/x/libmpi.so.12: no such file",
            ),
            (
                "[inject.gpu]\nlibraries = [\"/\"]\n",
                "inject.gpu.libraries: /: not a file",
            ),
            (
                "[inject.gpu]\nplugin_dirs = [\"/nonexistent/plugins\"]\n",
                "inject.gpu.plugin_dirs: /nonexistent/plugins: no such directory",
            ),
            (
                "[inject.mpi]\ndata_dirs = [\"share\"]\n",
                "inject.mpi.data_dirs: share: relative path",
            ),
            (
                "[inject.mpi]\nlibraries = \"/usr/lib/libmpi.so.12\"\n",
                "inject.mpi.libraries: invalid type: string \"/usr/lib/libmpi.so.12\", expected a sequence",
            ),
            (
                "[inject.mpi]\nlibraries = [1]\n",
                "inject.mpi.libraries: invalid type: integer `1`, expected a string (line 2, column 14)",
            ),
            (
                "[inject.mpi]\nplugin_dir = []\n",
                "inject.mpi.plugin_dir: unknown field `plugin_dir`, expected one of `libraries`, `prefixes`, `plugin_dirs`, `data_dirs`",
            ),
            (
                "[inject]\nmpi = { libraries = [], bad = 1 }\n",
                "inject.mpi.bad: unknown field `bad`",
            ),
            (
                "[inject.rocm]\nlibraries = []\n",
                "inject.rocm: unknown field `rocm`, expected `mpi` or `gpu`",
            ),
            (
                "[log]\nlevel = \"verbose\"\n",
                "log.level: unknown log level \"verbose\" (expected error, warn, info, debug, trace or off)",
            ),
            (
                "[log]\nfile = \"containerspec.log\"\n",
                "log.file: containerspec.log: relative path",
            ),
            (
                "[report]\ndir = \"run\"\n",
                "report.dir: run: relative path",
            ),
            (
                "[reports]\ndir = \"/run\"\n",
                "reports: unknown field `reports`, expected one of `policy`, `host`, `inject`, `log`, `report`",
            ),
            (
                "policy = \"enforce\"\n",
                "policy: invalid type: string \"enforce\", expected a map",
            ),
        ];
        for (text, expected) in table {
            let message = error(text);
            let wanted = format!("{SOURCE}: {expected}");
            assert!(
                message.starts_with(&wanted),
                "config {text:?}\n  gave: {message}\n  want: {wanted}"
            );
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    #[test]
    fn libraries_are_checked_inside_the_host_root() {
        let tree = Tree::new("root");
        let root = tree.0.display();
        let ok = format!(
            "[host]\nroot = \"{root}\"\n[inject.mpi]\nlibraries = [\"/lib/libmpi.so.12\"]\n"
        );
        assert!(parse(&ok).is_ok());
        let missing = format!(
            "[host]\nroot = \"{root}\"\n[inject.mpi]\nlibraries = [\"/lib/libmpich.so.12\"]\n"
        );
        assert_eq!(
            error(&missing),
            format!(
                "{SOURCE}: inject.mpi.libraries: /lib/libmpich.so.12: no such file (in host \
                 root {root})"
            )
        );
    }

    #[test]
    fn syntax_errors_give_a_position_without_a_key() {
        let message = error("[inject.mpi]\nlibraries = [\n");
        assert!(
            message.starts_with(&format!("{SOURCE}: ")) && message.contains("(line 2, column"),
            "{message}"
        );
        let message = error("[policy\n");
        assert!(message.contains("(line 1, column"), "{message}");
    }

    #[test]
    fn the_error_keeps_the_key_as_data() {
        let Err(ConfigError::Toml { key, location, .. }) = parse("[host]\n# comment\n\nroot = 1\n")
        else {
            panic!("expected a TOML error");
        };
        assert_eq!(key.as_deref(), Some("host.root"));
        assert_eq!(location, Some(Location { line: 4, column: 8 }));
        let Err(ConfigError::Field { key, .. }) = parse("[log]\nlevel = \"loud\"\n") else {
            panic!("expected a field error");
        };
        assert_eq!(key, "log.level");
    }

    #[test]
    fn key_search_handles_dotted_and_inline_forms() {
        let text = "inject.mpi.libraries = [\"/a\", 3]\n";
        let at = text.find('3').unwrap();
        assert_eq!(
            key_at(text, at..at + 1).as_deref(),
            Some("inject.mpi.libraries")
        );
        assert_eq!(key_at("x = [", 0..1), None);
        assert_eq!(location("é\nab", 5), Some(Location { line: 2, column: 3 }));
        assert_eq!(location("é", 1), None);
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let path = Path::new("/nonexistent/containerspec/config.toml");
        let message = Config::load(Some(path)).unwrap_err().to_string();
        assert!(
            message.starts_with("/nonexistent/containerspec/config.toml: cannot read: "),
            "{message}"
        );
    }

    #[test]
    fn missing_default_file_means_defaults() {
        if Path::new(DEFAULT_PATH).exists() {
            eprintln!("skipping: {DEFAULT_PATH} exists on this machine");
            return;
        }
        let config = Config::load(None).unwrap();
        assert_eq!(config.source, None);
        assert_eq!(config.policy, Policy::default());
    }
}
