//! Host descriptions (`host --json` output) read from files and directories, for the
//! commands that judge images against hosts other than this one: `dockerfile update`,
//! `match` and `select`.

use std::path::{Path, PathBuf};

use super::CliError;
use crate::engine::hostdesc::HostDescription;

/// Host descriptions from `--hosts` (files or directories of `host --json` output) and
/// `--host-root` (described here), each with a name for reports.
pub(super) fn load(
    hosts: &[PathBuf],
    host_roots: &[PathBuf],
) -> Result<Vec<(String, HostDescription)>, CliError> {
    let mut out = Vec::new();
    for p in hosts {
        let files: Vec<PathBuf> = if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CliError::Target {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            v.sort();
            v
        } else {
            vec![p.clone()]
        };
        for f in files {
            out.extend(read(&f)?);
        }
    }
    for root in host_roots {
        let host = super::host::describe(root, None, true)?;
        out.push((root.display().to_string(), host));
    }
    if !hosts.is_empty() && out.is_empty() {
        return Err(CliError::Action(
            "--hosts: no host description (*.json) found".into(),
        ));
    }
    Ok(out)
}

/// Host descriptions larger than this are refused (one is about 100 KiB).
const MAX_HOST_FILE: u64 = 64 << 20;

pub(super) fn read(path: &Path) -> Result<Vec<(String, HostDescription)>, CliError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let err = |message: String| CliError::Target {
        path: shown.clone(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(MAX_HOST_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_HOST_FILE {
        return Err(err(format!("larger than {MAX_HOST_FILE} bytes")));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.clone());
    // One description (what `host --json` writes): read straight into its type once its
    // schema version is checked, without building a tree of the whole file first.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        #[derive(serde::Deserialize)]
        struct Versioned {
            schema_version: Option<serde_json::Value>,
        }
        let v: Versioned =
            serde_json::from_slice(&bytes).map_err(|e| err(format!("not JSON: {e}")))?;
        check_version(&stem, v.schema_version.as_ref().and_then(|s| s.as_u64())).map_err(err)?;
        let host: HostDescription = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("{stem}: not a host description (host --json): {e}")))?;
        return Ok(vec![(stem, host)]);
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    let items: Vec<(String, serde_json::Value)> = match value {
        serde_json::Value::Array(a) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{stem}[{i}]"), v))
            .collect(),
        v => vec![(stem, v)],
    };
    let mut out = Vec::new();
    for (name, v) in items {
        check_version(&name, v.get("schema_version").and_then(|s| s.as_u64())).map_err(err)?;
        let host: HostDescription = serde_json::from_value(v)
            .map_err(|e| err(format!("{name}: not a host description (host --json): {e}")))?;
        out.push((name, host));
    }
    Ok(out)
}

fn check_version(name: &str, version: Option<u64>) -> Result<(), String> {
    let expected = u64::from(crate::inventory::model::SCHEMA_VERSION);
    if version == Some(expected) {
        return Ok(());
    }
    Err(format!(
        "{name}: schema_version {} where {expected} is read (describe the host again with this containerspec: host --json)",
        version.map_or("missing".to_string(), |v| v.to_string())
    ))
}
