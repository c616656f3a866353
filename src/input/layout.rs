//! OCI image layouts (`skopeo copy ... oci:DIR:TAG`, `umoci init`): the image is unpacked
//! from its blobs into a private temporary directory, layer by layer (whiteouts applied,
//! symlinks resolved inside the image, never outside), and read like any rootfs; its
//! config gives the labels, environment and first process. `DIR:TAG` names one image of
//! a layout that holds several; an index with several platforms gives this machine's.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::registry::layers::{TempRoot, Tree, decompress};
use crate::registry::{Descriptor, Manifest, Platform, parse_manifest, platform_matches};

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
    /// The platform its config names (`os`, `architecture`, `variant`), when it does.
    pub platform: Option<Platform>,
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

/// The manifests the image `tag` (or the only image) of the layout at `dir` offers, each
/// with its platform and annotations: the entries of the image index it names, or the one
/// manifest. Without a tag, index.json's own entries when none of them is an index (a
/// layout written with one manifest per platform).
pub fn manifests(dir: &Path, tag: Option<&str>) -> Result<Vec<Descriptor>, String> {
    let index_path = dir.join("index.json");
    let index = parse_manifest(&index_path.display().to_string(), &read_json(&index_path)?)
        .map_err(|e| e.to_string())?;
    let named: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| tag.is_none_or(|t| d.ref_name() == Some(t)))
        .collect();
    match named.as_slice() {
        [] => {
            let tags: Vec<&str> = index
                .manifests
                .iter()
                .filter_map(|d| d.ref_name())
                .collect();
            Err(format!(
                "{}: no image {} (it has {})",
                index_path.display(),
                tag.unwrap_or("at all"),
                if tags.is_empty() {
                    "none named".to_string()
                } else {
                    tags.join(", ")
                }
            ))
        }
        [one] => {
            let manifest = load_manifest(dir, &one.digest)?;
            Ok(if manifest.manifests.is_empty() {
                vec![(*one).clone()]
            } else {
                manifest.manifests
            })
        }
        several if several.iter().all(|d| !is_index(d)) => {
            Ok(several.iter().map(|d| (*d).clone()).collect())
        }
        several => Err(format!(
            "{}: {} images; name one as {}:TAG",
            index_path.display(),
            several.len(),
            dir.display()
        )),
    }
}

/// Whether a descriptor names an image index (OCI) or a manifest list (Docker).
fn is_index(d: &Descriptor) -> bool {
    d.media_type.ends_with(".index.v1+json") || d.media_type.ends_with(".manifest.list.v2+json")
}

/// Unpacks the image `tag` (or the only one) of the layout at `dir` for `platform`
/// (`linux/amd64`).
pub fn unpack(dir: &Path, tag: Option<&str>, platform: &str) -> Result<Unpacked, String> {
    let offered = manifests(dir, tag)?;
    let entry = match offered.as_slice() {
        [one] if one.platform.is_none() => one,
        several => several
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform_matches(&p.text(), platform))
            })
            .ok_or_else(|| {
                let platforms: Vec<String> = several
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(Platform::text))
                    .collect();
                if platforms.is_empty() {
                    format!(
                        "{}: {} images; name one as {}:TAG",
                        dir.join("index.json").display(),
                        several.len(),
                        dir.display()
                    )
                } else {
                    format!(
                        "{}: no manifest for {platform} (it has {})",
                        dir.display(),
                        platforms.join(", ")
                    )
                }
            })?,
    };
    unpack_manifest(dir, &entry.digest)
}

/// Unpacks the manifest `digest` (an image, not an index) of the layout at `dir`.
pub fn unpack_manifest(dir: &Path, digest: &str) -> Result<Unpacked, String> {
    let manifest = load_manifest(dir, digest)?;
    if !manifest.manifests.is_empty() {
        return Err(format!("{digest}: an image index, not an image manifest"));
    }
    let digest = digest.to_string();
    let config_digest = manifest
        .config
        .as_ref()
        .map(|c| c.digest.clone())
        .ok_or_else(|| format!("{digest}: a manifest without a config"))?;
    let config: serde_json::Value =
        serde_json::from_slice(&read_json(&blob(dir, &config_digest)?)?)
            .map_err(|e| format!("{config_digest}: the image config is not JSON: {e}"))?;
    let c = &config["config"];
    let field = |k: &str| {
        config[k]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let platform = field("architecture").map(|architecture| Platform {
        architecture,
        os: field("os").unwrap_or_default(),
        variant: field("variant"),
    });
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
        platform,
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
