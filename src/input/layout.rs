//! OCI image layouts (`skopeo copy ... oci:DIR:TAG`, `umoci init`): the image is unpacked
//! from its blobs into a private temporary directory, layer by layer (whiteouts applied,
//! symlinks resolved inside the image, never outside), and read like any rootfs; its
//! config gives the labels, environment and first process. `DIR:TAG` names one image of
//! a layout that holds several; an index with several platforms gives this machine's.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::registry::layers::{TempRoot, Tree, decompress};
use crate::registry::{Manifest, parse_manifest, platform_matches};

/// index.json, manifests and configs larger than this are refused.
const MAX_JSON: u64 = 4 << 20;

/// An unpacked image: its root (removed when this is dropped) and its config's facts.
#[derive(Debug)]
pub struct Unpacked {
    pub root: TempRoot,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    pub args: Vec<String>,
    pub cwd: String,
    /// The manifest's digest.
    pub digest: String,
}

/// Whether `dir` is an OCI image layout.
pub fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file() && dir.join("index.json").is_file()
}

/// Splits `DIR:TAG` when `DIR` is a layout and the whole path is not.
pub fn split_ref(path: &Path) -> Option<(PathBuf, String)> {
    let text = path.to_str()?;
    let (dir, tag) = text.rsplit_once(':')?;
    let dir = PathBuf::from(dir);
    (!tag.is_empty() && !tag.contains('/') && is_layout(&dir)).then(|| (dir, tag.to_string()))
}

fn read_json(path: &Path) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(format!("{}: larger than {MAX_JSON} bytes", path.display()));
    }
    Ok(bytes)
}

/// The blob file of `digest`, which must be `sha256:` and 64 hex digits.
fn blob(dir: &Path, digest: &str) -> Result<PathBuf, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("digest {digest:?} is not sha256"))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// Unpacks the image `tag` (or the only one) of the layout at `dir` for `platform`
/// (`linux/amd64`).
pub fn unpack(dir: &Path, tag: Option<&str>, platform: &str) -> Result<Unpacked, String> {
    let index_path = dir.join("index.json");
    let index = parse_manifest(&index_path.display().to_string(), &read_json(&index_path)?)
        .map_err(|e| e.to_string())?;
    let named = |d: &&crate::registry::Descriptor| tag.is_none_or(|t| d.ref_name() == Some(t));
    let chosen: Vec<&crate::registry::Descriptor> = index.manifests.iter().filter(named).collect();
    let entry = match chosen.as_slice() {
        [] => {
            let tags: Vec<&str> = index
                .manifests
                .iter()
                .filter_map(|d| d.ref_name())
                .collect();
            return Err(format!(
                "{}: no image {} (it has {})",
                index_path.display(),
                tag.unwrap_or("at all"),
                if tags.is_empty() {
                    "none named".to_string()
                } else {
                    tags.join(", ")
                }
            ));
        }
        [one] => *one,
        several => {
            // Several images: the one for this platform, else ask for a tag.
            match several.iter().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform_matches(&p.text(), platform))
            }) {
                Some(d) => *d,
                None => {
                    return Err(format!(
                        "{}: {} images; name one as {}:TAG",
                        index_path.display(),
                        several.len(),
                        dir.display()
                    ));
                }
            }
        }
    };
    let mut digest = entry.digest.clone();
    let mut manifest: Manifest = load_manifest(dir, &digest)?;
    if !manifest.manifests.is_empty() {
        let Some(m) = manifest.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform_matches(&p.text(), platform))
        }) else {
            return Err(format!(
                "{digest}: the index has no manifest for {platform}"
            ));
        };
        digest = m.digest.clone();
        manifest = load_manifest(dir, &digest)?;
    }
    let config_digest = manifest
        .config
        .as_ref()
        .map(|c| c.digest.clone())
        .ok_or_else(|| format!("{digest}: a manifest without a config"))?;
    let config: serde_json::Value =
        serde_json::from_slice(&read_json(&blob(dir, &config_digest)?)?)
            .map_err(|e| format!("{config_digest}: the image config is not JSON: {e}"))?;
    let c = &config["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels: BTreeMap<String, String> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut args = strings(&c["Entrypoint"]);
    args.extend(strings(&c["Cmd"]));
    let cwd = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .unwrap_or("/")
        .to_string();

    let staging = TempRoot::new("staging").map_err(|e| format!("a temporary directory: {e}"))?;
    let mut tree = Tree::unpacking(staging.path.clone());
    for layer in &manifest.layers {
        let path = blob(dir, &layer.digest)?;
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let stream = decompress(&layer.media_type, std::io::BufReader::new(file))?;
        tree.apply_layer(stream)
            .map_err(|e| format!("layer {}: {e}", layer.digest))?;
    }
    let root = TempRoot::new("image").map_err(|e| format!("a temporary directory: {e}"))?;
    tree.write_to(&root.path)
        .map_err(|e| format!("cannot unpack into {}: {e}", root.path.display()))?;
    drop(staging);
    Ok(Unpacked {
        root,
        labels,
        env: strings(&c["Env"]),
        args,
        cwd,
        digest,
    })
}

fn load_manifest(dir: &Path, digest: &str) -> Result<Manifest, String> {
    let bytes = read_json(&blob(dir, digest)?)?;
    let actual = crate::registry::sha256_digest(&bytes);
    if actual != digest {
        return Err(format!(
            "blob {digest} does not match its digest ({actual})"
        ));
    }
    parse_manifest(digest, &bytes).map_err(|e| e.to_string())
}
