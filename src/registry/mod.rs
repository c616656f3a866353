//! Reading OCI registries through the distribution API (the `oci-client` crate): what a
//! tag points to (an image index or a manifest, with each platform's manifest), a
//! repository's tags, and the loader and libc of an image, streamed from its layers.
//!
//! Every reference is resolved once however many Dockerfiles name it, with requests made
//! concurrently up to a bound. Registries on a loopback address are spoken to in plain
//! HTTP, as Docker does; others need `--insecure-registry` for that. Credentials come from
//! the auth files (`auth`); without one, access is anonymous (with the bearer-token
//! handshake a registry asks for).

pub mod auth;
pub mod layers;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as Oci, Reference};
use serde::{Deserialize, Serialize};

pub use auth::AuthFiles;

/// Manifests and indexes larger than this are refused.
pub const MAX_MANIFEST: usize = 4 << 20;
/// Compressed layers larger than this are not streamed.
const MAX_LAYER: u64 = 16 << 30;
/// Tags listed per repository at most.
const MAX_TAGS: usize = 100_000;

const ACCEPT: &[&str] = &[
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registries (`host[:port]`) to speak plain HTTP to, beside loopback ones.
    pub insecure: Vec<String>,
    pub auth: AuthFiles,
    /// Per request.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// What a tag (or digest) points to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Resolved {
    /// Fully qualified: `docker.io/library/debian:bookworm`.
    pub reference: String,
    /// The digest of what the reference points to: the image index for a multi-platform
    /// image (what a pin should name), else the manifest.
    pub digest: String,
    pub media_type: String,
    /// For an index: each platform's manifest (`linux/amd64`, `linux/arm64/v8`).
    pub platforms: Vec<PlatformManifest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct PlatformManifest {
    pub platform: String,
    pub digest: String,
}

/// Why a registry could not answer; each names the reference or registry.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("{reference}: not a valid image reference: {message}")]
    Reference { reference: String, message: String },
    #[error("{reference}: {message}")]
    NotFound { reference: String, message: String },
    #[error("{reference}: not authorized: {message}")]
    Unauthorized { reference: String, message: String },
    #[error("{reference}: cannot reach {registry}: {message}")]
    Unreachable {
        reference: String,
        registry: String,
        message: String,
    },
    #[error("{reference}: the registry's answer is not valid: {message}")]
    Invalid { reference: String, message: String },
    #[error("{reference}: {message}")]
    Other { reference: String, message: String },
}

/// A parsed reference as the registry sees it.
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    text.parse::<Reference>()
        .map_err(|e| RegistryError::Reference {
            reference: text.to_string(),
            message: e.to_string(),
        })
}

/// `registry/repository:tag` without the digest: the name a base-image label records.
pub fn qualified_name(r: &Reference) -> String {
    match r.tag() {
        Some(t) => format!("{}/{}:{t}", r.registry(), r.repository()),
        None => format!("{}/{}", r.registry(), r.repository()),
    }
}

/// Whether `registry` (`host[:port]`) is a loopback address.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A registry client with its own single-threaded runtime.
pub struct Client {
    rt: tokio::runtime::Runtime,
    oci: Oci,
    options: Options,
    /// Notes for the report (credential helpers not run, auth files unreadable).
    pub notes: std::sync::Mutex<Vec<String>>,
}

impl Client {
    /// A client for the registries of `references` (plain HTTP for loopback ones).
    pub fn new(options: Options, references: &[Reference]) -> Result<Client, String> {
        // One crypto provider for TLS; a second install (another client) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut plain: Vec<String> = options.insecure.clone();
        for r in references {
            let reg = r.resolve_registry().to_string();
            if is_loopback(&reg) && !plain.contains(&reg) {
                plain.push(reg);
            }
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            read_timeout: Some(options.timeout),
            connect_timeout: Some(options.timeout.min(Duration::from_secs(10))),
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the registry client's runtime: {e}"))?;
        let notes = options.auth.problems.clone();
        Ok(Client {
            rt,
            oci: Oci::new(config),
            options,
            notes: std::sync::Mutex::new(notes),
        })
    }

    fn auth_for(&self, r: &Reference) -> RegistryAuth {
        let (cred, note) = self.options.auth.find(r.registry(), r.repository());
        if let Some(note) = note {
            if let Ok(mut notes) = self.notes.lock() {
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
        match cred {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        }
    }

    fn credential_file(&self, r: &Reference) -> Option<String> {
        self.options
            .auth
            .find(r.registry(), r.repository())
            .0
            .map(|c| c.from.display().to_string())
    }

    /// Resolves every distinct reference once, `concurrency` at a time; `progress` is
    /// called after each answer with (done, total).
    pub fn resolve_all(
        &self,
        references: &[String],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> BTreeMap<String, Result<Resolved, RegistryError>> {
        let mut unique: Vec<String> = references.to_vec();
        unique.sort();
        unique.dedup();
        let total = unique.len();
        self.rt.block_on(async {
            let mut done = 0;
            let mut out = BTreeMap::new();
            let mut answers = futures_util::stream::iter(unique.into_iter().map(|text| async {
                let result = self.resolve_one(&text).await;
                (text, result)
            }))
            .buffer_unordered(self.options.concurrency.max(1));
            while let Some((text, result)) = answers.next().await {
                done += 1;
                progress(done, total);
                out.insert(text, result);
            }
            out
        })
    }

    /// What `reference` points to, as the registry sends it: its digest and the index or
    /// manifest (each platform's entry with its annotations).
    pub fn index(&self, reference: &str) -> Result<(String, Manifest), RegistryError> {
        self.rt.block_on(self.pull(reference))
    }

    async fn pull(&self, text: &str) -> Result<(String, Manifest), RegistryError> {
        let r = parse_reference(text)?;
        let auth = self.auth_for(&r);
        let call = self.oci.pull_manifest_raw(&r, &auth, ACCEPT);
        let (bytes, _header) = tokio::time::timeout(self.options.timeout * 2, call)
            .await
            .map_err(|_| self.timeout_error(text, &r))?
            .map_err(|e| self.classify(text, &r, e))?;
        Ok((sha256_digest(&bytes), parse_manifest(text, &bytes)?))
    }

    async fn resolve_one(&self, text: &str) -> Result<Resolved, RegistryError> {
        let r = parse_reference(text)?;
        let (digest, m) = self.pull(text).await?;
        let platforms = m
            .manifests
            .iter()
            .map(|d| PlatformManifest {
                platform: d.platform.as_ref().map(Platform::text).unwrap_or_default(),
                digest: d.digest.clone(),
            })
            .collect();
        Ok(Resolved {
            reference: qualified_name(&r),
            digest,
            media_type: m.kind_media_type(),
            platforms,
        })
    }

    /// Every tag of each distinct repository (`registry/repository`), concurrently.
    pub fn tags_all(
        &self,
        repositories: &[String],
    ) -> BTreeMap<String, Result<Vec<String>, RegistryError>> {
        let mut unique = repositories.to_vec();
        unique.sort();
        unique.dedup();
        self.rt.block_on(async {
            futures_util::stream::iter(unique.into_iter().map(|repo| async {
                let result = self.tags_one(&repo).await;
                (repo, result)
            }))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect::<BTreeMap<_, _>>()
            .await
        })
    }

    async fn tags_one(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let r = parse_reference(repository)?;
        let auth = self.auth_for(&r);
        let mut tags: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let call = self.oci.list_tags(&r, &auth, Some(1000), last.as_deref());
            let page = tokio::time::timeout(self.options.timeout * 2, call)
                .await
                .map_err(|_| self.timeout_error(repository, &r))?
                .map_err(|e| self.classify(repository, &r, e))?;
            let count = page.tags.len();
            let next = page.tags.last().cloned();
            tags.extend(page.tags);
            if count < 1000 || next.is_none() || next == last || tags.len() >= MAX_TAGS {
                break;
            }
            last = next;
        }
        tags.truncate(MAX_TAGS);
        Ok(tags)
    }

    /// The manifest (not an index) for `platform` (`linux/amd64`) of `reference`.
    pub fn platform_manifest(
        &self,
        reference: &str,
        platform: &str,
    ) -> Result<(Reference, Manifest), RegistryError> {
        self.rt.block_on(async {
            let r = parse_reference(reference)?;
            let auth = self.auth_for(&r);
            let (bytes, _) = self
                .oci
                .pull_manifest_raw(&r, &auth, ACCEPT)
                .await
                .map_err(|e| self.classify(reference, &r, e))?;
            let m = parse_manifest(reference, &bytes)?;
            if m.manifests.is_empty() {
                return Ok((r, m));
            }
            let Some(entry) = m.manifests.iter().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform_matches(&p.text(), platform))
            }) else {
                let offered: Vec<String> = m
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(Platform::text))
                    .collect();
                return Err(RegistryError::NotFound {
                    reference: reference.to_string(),
                    message: format!(
                        "no manifest for {platform} in the index (it has {})",
                        offered.join(", ")
                    ),
                });
            };
            let by_digest = r.clone_with_digest(entry.digest.clone());
            let (bytes, _) = self
                .oci
                .pull_manifest_raw(&by_digest, &auth, ACCEPT)
                .await
                .map_err(|e| self.classify(reference, &r, e))?;
            let m = parse_manifest(reference, &bytes)?;
            Ok((by_digest, m))
        })
    }

    /// The loader, libc and release files of `reference`'s image for `platform`, read from
    /// its layers as they stream (nothing else is kept) and written into a private
    /// temporary root, removed when the returned value is dropped.
    pub fn base_root(
        &self,
        reference: &str,
        platform: &str,
    ) -> Result<layers::TempRoot, RegistryError> {
        let (r, manifest) = self.platform_manifest(reference, platform)?;
        let invalid = |message: String| RegistryError::Invalid {
            reference: reference.to_string(),
            message,
        };
        let mut tree = layers::Tree::default();
        for layer in &manifest.layers {
            let descriptor = oci_client::manifest::OciDescriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                ..Default::default()
            };
            // A layer's bytes are bounded by its descriptor's size, its time by a multiple
            // of the request timeout (a layer of hundreds of MB at a slow link).
            let limit = u64::try_from(layer.size).unwrap_or(0);
            if limit == 0 || limit > MAX_LAYER {
                return Err(invalid(format!(
                    "layer {} has size {} (read: 1 byte to {MAX_LAYER})",
                    layer.digest, layer.size
                )));
            }
            let deadline = std::time::Instant::now() + self.options.timeout * 20;
            let (tx, reader) = layers::ChannelReader::new(limit, deadline);
            let (this, image, wanted) = (self, &r, &descriptor);
            let applied = std::thread::scope(|scope| {
                let fetch = scope.spawn(move || {
                    this.rt.block_on(async {
                        match this.oci.pull_blob_stream(image, wanted).await {
                            Ok(mut stream) => {
                                while let Some(chunk) = stream.next().await {
                                    let chunk = chunk.map_err(|e| e.to_string());
                                    let stop = chunk.is_err();
                                    if tx.send(chunk).is_err() || stop {
                                        break;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ =
                                    tx.send(Err(this.classify(reference, image, e).to_string()));
                            }
                        }
                        drop(tx);
                    });
                });
                let result = layers::decompress(&layer.media_type, reader)
                    .and_then(|stream| tree.apply_layer(stream));
                // The reader is gone: the fetching thread stops at its next chunk.
                let _ = fetch.join();
                result
            });
            applied.map_err(|e| invalid(format!("layer {}: {e}", layer.digest)))?;
        }
        let root = layers::TempRoot::new("base").map_err(|e| RegistryError::Other {
            reference: reference.to_string(),
            message: format!("cannot create a temporary directory: {e}"),
        })?;
        tree.write_to(&root.path)
            .map_err(|e| RegistryError::Other {
                reference: reference.to_string(),
                message: format!("cannot write the base's files: {e}"),
            })?;
        Ok(root)
    }

    fn timeout_error(&self, text: &str, r: &Reference) -> RegistryError {
        RegistryError::Unreachable {
            reference: text.to_string(),
            registry: r.resolve_registry().to_string(),
            message: format!("no answer within {:?}", self.options.timeout * 2),
        }
    }

    fn classify(&self, text: &str, r: &Reference, e: OciDistributionError) -> RegistryError {
        let reference = text.to_string();
        let registry = r.resolve_registry().to_string();
        let creds = self.credential_file(r);
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            reference: text.to_string(),
            message: match &creds {
                Some(f) => format!("the registry refused the credentials from {f} ({detail})"),
                None => format!(
                    "anonymous access refused ({detail}); log in (podman login, docker login) or give --authfile"
                ),
            },
        };
        match e {
            OciDistributionError::UnauthorizedError { .. } => unauthorized("401".into()),
            OciDistributionError::AuthenticationFailure(m) => unauthorized(one_line(&m)),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                let text_codes = codes.join("; ");
                let upper = text_codes.to_ascii_uppercase();
                if upper.contains("UNKNOWN") {
                    RegistryError::NotFound {
                        reference,
                        message: format!("not found in the registry ({text_codes})"),
                    }
                } else if upper.contains("UNAUTHORIZED") || upper.contains("DENIED") {
                    unauthorized(text_codes)
                } else {
                    RegistryError::Other {
                        reference,
                        message: text_codes,
                    }
                }
            }
            OciDistributionError::ImageManifestNotFoundError(m) => RegistryError::NotFound {
                reference,
                message: format!("not found in the registry ({})", one_line(&m)),
            },
            OciDistributionError::ServerError { code, message, .. } => match code {
                401 | 403 => unauthorized(format!("{code}")),
                404 => RegistryError::NotFound {
                    reference,
                    message: "not found in the registry (404)".into(),
                },
                _ => RegistryError::Other {
                    reference,
                    message: format!("the registry answered {code}: {}", one_line(&message)),
                },
            },
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                RegistryError::Unreachable {
                    reference,
                    registry,
                    message: error_chain(&e),
                }
            }
            OciDistributionError::RequestError(e) => RegistryError::Invalid {
                reference,
                message: error_chain(&e),
            },
            OciDistributionError::DigestError(e) => RegistryError::Invalid {
                reference,
                message: format!("content does not match its digest: {e}"),
            },
            other => RegistryError::Invalid {
                reference,
                message: one_line(&other.to_string()),
            },
        }
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    one_line(&parts.join(": "))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// An image manifest or index: the fields read here.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub config: Option<Descriptor>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The tag an image layout's index.json gives it (`org.opencontainers.image.ref.name`).
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get("org.opencontainers.image.ref.name")
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/arm64/v8`.
    pub fn text(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

impl Manifest {
    fn kind_media_type(&self) -> String {
        self.media_type.clone().unwrap_or_else(|| {
            if self.manifests.is_empty() {
                oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string()
            } else {
                oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()
            }
        })
    }
}

/// `linux/arm64` matches `linux/arm64/v8`; a variant asked for must be the one offered.
pub fn platform_matches(offered: &str, wanted: &str) -> bool {
    let o: Vec<&str> = offered.split('/').collect();
    let w: Vec<&str> = wanted.split('/').collect();
    o.len() >= 2
        && w.len() >= 2
        && o[0] == w[0]
        && o[1] == w[1]
        && (w.len() < 3 || o.get(2) == w.get(2))
}

/// Reads a manifest or index as a registry sent it: size, JSON, schema version, digests.
pub fn parse_manifest(reference: &str, bytes: &[u8]) -> Result<Manifest, RegistryError> {
    let invalid = |message: String| RegistryError::Invalid {
        reference: reference.to_string(),
        message,
    };
    if bytes.len() > MAX_MANIFEST {
        return Err(invalid(format!(
            "a manifest of {} bytes (more than {MAX_MANIFEST})",
            bytes.len()
        )));
    }
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("not an image manifest or index: {e}")))?;
    if m.schema_version != 2 {
        return Err(invalid(format!(
            "schemaVersion {} (only 2 is read)",
            m.schema_version
        )));
    }
    if m.manifests.is_empty() && m.config.is_none() {
        return Err(invalid(
            "neither an index (manifests) nor a manifest (config)".into(),
        ));
    }
    for d in m.manifests.iter().chain(&m.layers).chain(&m.config) {
        let ok = d
            .digest
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(invalid(format!(
                "descriptor digest {:?} is not sha256",
                d.digest
            )));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["docker.io", "10.0.0.1:5000", "registry.example"] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn manifests_are_checked() {
        let ok = br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
        let m = parse_manifest("r", ok).unwrap();
        assert_eq!(
            m.manifests[0].platform.as_ref().unwrap().text(),
            "linux/arm64/v8"
        );
        for bad in [
            &b"<html>"[..],
            br#"{"schemaVersion":1}"#,
            br#"{"schemaVersion":2}"#,
            br#"{"schemaVersion":2,"config":{"digest":"md5:x"}}"#,
        ] {
            assert!(matches!(
                parse_manifest("r", bad),
                Err(RegistryError::Invalid { .. })
            ));
        }
        assert!(platform_matches("linux/arm64/v8", "linux/arm64"));
        assert!(!platform_matches("linux/arm64/v8", "linux/arm64/v7"));
        assert!(!platform_matches("linux/amd64", "linux/arm64"));
    }

    #[test]
    fn qualified_names() {
        let r = parse_reference("debian:bookworm").unwrap();
        assert_eq!(qualified_name(&r), "docker.io/library/debian:bookworm");
        let r = parse_reference("127.0.0.1:5000/base:bookworm@sha256:0000000000000000000000000000000000000000000000000000000000000000").unwrap();
        assert_eq!(qualified_name(&r), "127.0.0.1:5000/base:bookworm");
        assert!(parse_reference("not a reference").is_err());
    }

    #[test]
    fn digest_format() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
