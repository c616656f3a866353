//! An OCI bundle as containerspec needs it: the part of `config.json` that decides what
//! runs (root path, `process.args`, `process.env`, `process.cwd`) and the annotations that
//! carry an image's labels. The bundle directory and its `config.json` belong to the
//! runtime (host side); the rootfs they point at belongs to the image and is only ever
//! read through [`RootFs`].

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::rootfs::{RootError, RootFs};
use super::target::{ProcessSpec, Target};

/// `config.json` larger than this is not a real runtime config.
const MAX_CONFIG_SIZE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{bundle}: bundle directory not found")]
    NotFound { bundle: String },
    #[error("{bundle}: not a directory")]
    NotADirectory { bundle: String },
    #[error("{path}: cannot read: {source}")]
    ReadConfig {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: file too large ({size} bytes)")]
    ConfigTooLarge { path: String, size: u64 },
    #[error("{path}: invalid config.json: {source}")]
    ParseConfig {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: field `root.path` is missing")]
    NoRoot { path: String },
    #[error("rootfs of bundle {bundle}: {source}")]
    Rootfs { bundle: String, source: RootError },
}

/// Loads `DIR/config.json` and opens the rootfs it names (relative to the bundle when
/// `root.path` is relative).
pub fn load(dir: impl AsRef<Path>) -> Result<Target, BundleError> {
    let dir = dir.as_ref().to_path_buf();
    let spec = read_config(&dir)?;
    let config_path = dir.join("config.json").display().to_string();
    let root = spec
        .root()
        .as_ref()
        .ok_or(BundleError::NoRoot { path: config_path })?;
    let root_path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = RootFs::open(&root_path).map_err(|source| BundleError::Rootfs {
        bundle: dir.display().to_string(),
        source,
    })?;
    let process = spec
        .process()
        .as_ref()
        .map(process_spec)
        .unwrap_or_default();
    let annotations = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mount_namespace = mount_namespace(&spec);
    Ok(Target::from_bundle(
        dir,
        rootfs,
        process,
        annotations,
        mount_namespace,
    ))
}

/// What `linux.namespaces` says of the container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountNamespace {
    /// A `mount` entry without a path: the runtime makes a new namespace for the container.
    New,
    /// A `mount` entry with a path: the container joins that existing namespace.
    Join(PathBuf),
    /// No `mount` entry (or no `linux` section): the container shares the runtime's.
    Shared,
}

fn mount_namespace(spec: &Spec) -> MountNamespace {
    let entry = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|all| all.iter().find(|n| n.typ() == LinuxNamespaceType::Mount));
    match entry {
        None => MountNamespace::Shared,
        Some(n) => match n.path() {
            Some(path) if !path.as_os_str().is_empty() => MountNamespace::Join(path.clone()),
            _ => MountNamespace::New,
        },
    }
}

/// True when `dir` looks like a bundle (has a `config.json`) rather than a bare rootfs.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

fn read_config(dir: &Path) -> Result<Spec, BundleError> {
    let bundle = dir.display().to_string();
    match std::fs::metadata(dir) {
        Err(_) => return Err(BundleError::NotFound { bundle }),
        Ok(meta) if !meta.is_dir() => return Err(BundleError::NotADirectory { bundle }),
        Ok(_) => {}
    }
    let path = dir.join("config.json");
    let shown = path.display().to_string();
    let read_err = |source| BundleError::ReadConfig {
        path: shown.clone(),
        source,
    };
    let size = std::fs::metadata(&path).map_err(read_err)?.len();
    if size > MAX_CONFIG_SIZE {
        return Err(BundleError::ConfigTooLarge { path: shown, size });
    }
    let bytes = std::fs::read(&path).map_err(read_err)?;
    serde_json::from_slice(&bytes).map_err(|source| BundleError::ParseConfig {
        path: shown,
        source,
    })
}

fn process_spec(process: &oci_spec::runtime::Process) -> ProcessSpec {
    ProcessSpec {
        args: process.args().clone().unwrap_or_default(),
        env: process.env().clone().unwrap_or_default(),
        cwd: process.cwd().display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(linux: &str) -> MountNamespace {
        let text = format!(r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}}{linux}}}"#);
        mount_namespace(&serde_json::from_str::<Spec>(&text).unwrap())
    }

    #[test]
    fn what_config_json_says_of_the_mount_namespace() {
        let new = r#","linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}"#;
        assert_eq!(of(new), MountNamespace::New);
        let empty_path = r#","linux":{"namespaces":[{"type":"mount","path":""}]}"#;
        assert_eq!(of(empty_path), MountNamespace::New);
        let join = r#","linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}"#;
        assert_eq!(
            of(join),
            MountNamespace::Join(PathBuf::from("/proc/1/ns/mnt"))
        );
        let no_mount = r#","linux":{"namespaces":[{"type":"network"}]}"#;
        assert_eq!(of(no_mount), MountNamespace::Shared);
        assert_eq!(of(""), MountNamespace::Shared);
    }
}
