//! An Apptainer / SingularityCE image as containerspec needs it, whichever form it has:
//! - a SIF file: its primary system partition, a squashfs read in place at its offset
//!   (only the blocks the inventory asks for are read; nothing is unpacked or mounted);
//! - a bare squashfs image file (what `apptainer build` wrote before SIF, and what
//!   `apptainer exec` still accepts);
//! - a sandbox directory (`apptainer build --sandbox`, or any unpacked rootfs).
//!
//! The image's labels come from `/.singularity.d/labels.json` inside it and count like an
//! OCI bundle's annotations. Its environment comes from the plain assignments in
//! `/.singularity.d/env/*.sh`: those scripts are never run, so a value that needs a shell
//! to compute (`$VAR`, `` `cmd` ``) is left out and reported at debug level.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::rootfs::{EntryKind, RootError, RootFs};
use super::sif::{Sif, SifError, check_squashfs};
use super::squashfs::{SquashError, SquashFs};

/// Apptainer's PATH in a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Apptainer appends this to every container's LD_LIBRARY_PATH (where `--nv` puts the
/// driver's libraries).
pub const APPTAINER_LIBS: &str = "/.singularity.d/libs";
const LABELS: &str = "/.singularity.d/labels.json";
const ENV_DIR: &str = "/.singularity.d/env";
/// Labels and environment scripts larger than this are not an image's metadata.
const MAX_METADATA: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "{path}: not an Apptainer image: expected a SIF file, a squashfs image or a sandbox \
         directory (for docker:// or library:// references, `apptainer pull` the image first)"
    )]
    Unknown { path: String },
    #[error(transparent)]
    Sif(#[from] SifError),
    #[error(transparent)]
    Squashfs(#[from] SquashError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("{path}: {LABELS}: {message}")]
    Labels { path: String, message: String },
}

/// The form the image came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageForm {
    /// A SIF file; the system partition's place in it and its squashfs compression.
    Sif {
        partition_offset: u64,
        partition_size: u64,
        compression: String,
    },
    /// A bare squashfs image file.
    Squashfs { compression: String },
    /// A sandbox directory.
    Sandbox,
}

impl ImageForm {
    /// `SIF (squashfs, gzip)` and the like, for reports.
    pub fn describe(&self) -> String {
        match self {
            ImageForm::Sif { compression, .. } => format!("SIF (squashfs, {compression})"),
            ImageForm::Squashfs { compression } => format!("squashfs image ({compression})"),
            ImageForm::Sandbox => "sandbox directory".into(),
        }
    }
}

/// An opened image.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub form: ImageForm,
    pub root: RootFs,
    /// `/.singularity.d/labels.json`, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// The environment the image sets (`NAME=value`), Apptainer's defaults included.
    pub env: Vec<String>,
}

impl Image {
    /// Opens `path` as whichever form it is.
    pub fn open(path: &Path) -> Result<Image, ImageError> {
        let shown = path.display().to_string();
        let open_error = |e: std::io::Error| ImageError::Open {
            path: shown.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".into()
            } else {
                e.to_string()
            },
        };
        let meta = std::fs::metadata(path).map_err(open_error)?;
        let (root, form) = if meta.is_dir() {
            (RootFs::open(path)?, ImageForm::Sandbox)
        } else if meta.is_file() {
            let mut file = File::open(path).map_err(open_error)?;
            let mut head = [0u8; 48];
            let n = read_head(&mut file, &mut head).map_err(open_error)?;
            let head = head.get(..n).unwrap_or_default();
            if head.get(32..41) == Some(b"SIF_MAGIC".as_slice()) {
                open_sif(path, file)?
            } else if head.starts_with(b"hsqs") {
                let len = meta.len();
                let fs = SquashFs::open(file, 0, len, &shown)?;
                let compression = fs.compression().to_string();
                let root = RootFs::from_squashfs(fs, path.to_path_buf(), shown.clone())?;
                (root, ImageForm::Squashfs { compression })
            } else {
                return Err(ImageError::Unknown { path: shown });
            }
        } else {
            return Err(ImageError::Unknown { path: shown });
        };
        let labels = read_labels(&root, &shown)?;
        let env = read_env(&root);
        Ok(Image {
            path: path.to_path_buf(),
            form,
            root,
            labels,
            env,
        })
    }
}

fn read_head(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn open_sif(path: &Path, file: File) -> Result<(RootFs, ImageForm), ImageError> {
    let shown = path.display().to_string();
    let sif = Sif::read(&file)?;
    let len = file
        .metadata()
        .map_err(|e| ImageError::Open {
            path: shown.clone(),
            message: e.to_string(),
        })?
        .len();
    let desc = sif.primary_partition(len)?;
    check_squashfs(&file, desc)?;
    let (offset, size) = (desc.offset as u64, desc.size as u64);
    let fs = SquashFs::open(file, offset, size, &shown)?;
    let compression = fs.compression().to_string();
    let root = RootFs::from_squashfs(fs, path.to_path_buf(), shown)?;
    Ok((
        root,
        ImageForm::Sif {
            partition_offset: offset,
            partition_size: size,
            compression,
        },
    ))
}

/// `/.singularity.d/labels.json`: an object of strings (other values are kept as their
/// JSON text). Absent is fine; present and broken is an error, since labels decide.
fn read_labels(root: &RootFs, shown: &str) -> Result<BTreeMap<String, String>, ImageError> {
    let bytes = match root.read_limited(LABELS, MAX_METADATA) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    parse_labels(&bytes, shown)
}

/// The labels in the bytes of a `labels.json`: an object whose string values are kept
/// as they are and whose other values are kept as their JSON text. `shown` names the
/// image in errors.
///
/// # Errors
/// `ImageError::Labels` when the bytes are not JSON or not a JSON object.
pub fn parse_labels(bytes: &[u8], shown: &str) -> Result<BTreeMap<String, String>, ImageError> {
    let labels_error = |message: String| ImageError::Labels {
        path: shown.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| labels_error(format!("invalid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(labels_error("not a JSON object".into()));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// The plain assignments of `/.singularity.d/env/*.sh`, in the order Apptainer sources
/// them (by name), later ones winning; then Apptainer's own defaults.
fn read_env(root: &RootFs) -> Vec<String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut scripts: Vec<String> = root
        .list_dir(ENV_DIR)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, kind)| name.ends_with(".sh") && *kind != EntryKind::Dir)
        .map(|(name, _)| name)
        .collect();
    scripts.sort();
    for name in scripts {
        let path = format!("{ENV_DIR}/{name}");
        let Ok(bytes) = root.read_limited(&path, MAX_METADATA) else {
            continue;
        };
        for found in parse_env_script(&String::from_utf8_lossy(&bytes)) {
            match found {
                Ok((key, value)) => {
                    if !vars.contains_key(&key) {
                        order.push(key.clone());
                    }
                    vars.insert(key, value);
                }
                Err(key) => {
                    log::debug!("{path}: {key} needs a shell to compute; left out");
                }
            }
        }
    }
    let ld = match vars.get("LD_LIBRARY_PATH") {
        Some(v) if v.split(':').any(|d| d == APPTAINER_LIBS) => v.clone(),
        Some(v) if !v.is_empty() => format!("{v}:{APPTAINER_LIBS}"),
        _ => APPTAINER_LIBS.to_string(),
    };
    if !vars.contains_key("LD_LIBRARY_PATH") {
        order.push("LD_LIBRARY_PATH".into());
    }
    vars.insert("LD_LIBRARY_PATH".into(), ld);
    if !vars.contains_key("PATH") {
        order.push("PATH".into());
        vars.insert("PATH".into(), DEFAULT_PATH.into());
    }
    order
        .into_iter()
        .filter_map(|k| vars.get(&k).map(|v| format!("{k}={v}")))
        .collect()
}

/// The assignments of an environment script's text, in order (see [`assignment`]): Ok
/// for a literal value, Err(name) for one that needs a shell; other lines are skipped.
pub fn parse_env_script(text: &str) -> Vec<Result<(String, String), String>> {
    text.lines().filter_map(assignment).collect()
}

/// `export NAME=value`, `NAME="value"` or `NAME='value'` at the start of a line: Some(Ok)
/// for a literal value, Some(Err(name)) for one that needs a shell, None for any other
/// line. Indented lines are inside a conditional or a function (Apptainer's own
/// `99-base.sh` sets defaults that way) and are not taken.
pub fn assignment(line: &str) -> Option<Result<(String, String), String>> {
    if line.starts_with([' ', '\t']) {
        return None;
    }
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
    let (name, raw) = line.split_once('=')?;
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let value = if let Some(inner) = raw.strip_prefix('\'') {
        inner.strip_suffix('\'')?.to_string()
    } else if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        if inner.contains(['$', '`', '\\']) {
            return Some(Err(name.to_string()));
        }
        inner.to_string()
    } else {
        if raw.contains(['$', '`', '\\', ' ', ';', '(', '&', '|']) {
            return Some(Err(name.to_string()));
        }
        raw.to_string()
    };
    Some(Ok((name.to_string(), value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_read_only_when_literal() {
        let ok = |l: &str| assignment(l).and_then(Result::ok);
        assert_eq!(
            ok("export PATH=\"/opt/x/bin:/usr/bin\""),
            Some(("PATH".into(), "/opt/x/bin:/usr/bin".into()))
        );
        assert_eq!(
            ok("LANG='C.UTF-8'"),
            Some(("LANG".into(), "C.UTF-8".into()))
        );
        assert_eq!(ok("export A=b"), Some(("A".into(), "b".into())));
        assert_eq!(
            assignment("export PATH=\"$PATH:/opt\""),
            Some(Err("PATH".into()))
        );
        assert_eq!(assignment("X=`id`"), Some(Err("X".into())));
        assert_eq!(assignment("if [ -z \"$X\" ]; then"), None);
        assert_eq!(assignment("# A=b"), None);
        assert_eq!(assignment("1A=b"), None);
        assert_eq!(
            assignment("    LD_LIBRARY_PATH=\"/.singularity.d/libs\""),
            None
        );
        assert_eq!(assignment("export A=\"unterminated"), None);
    }

    #[test]
    fn labels_and_env_scripts_parse_from_bytes() {
        let labels = parse_labels(br#"{"a":"b","n":1,"o":{"k":[true]}}"#, "x.sif").unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["n"], "1");
        assert_eq!(labels["o"], r#"{"k":[true]}"#);
        assert!(matches!(
            parse_labels(b"[1]", "x.sif"),
            Err(ImageError::Labels { .. })
        ));
        assert!(matches!(
            parse_labels(b"{", "x.sif"),
            Err(ImageError::Labels { .. })
        ));
        let script = "#!/bin/sh\nexport PATH=\"/bin\"\nX=`id`\n  Y=1\nLANG='C'\n";
        assert_eq!(
            parse_env_script(script),
            vec![
                Ok(("PATH".into(), "/bin".into())),
                Err("X".into()),
                Ok(("LANG".into(), "C".into())),
            ]
        );
    }
}
