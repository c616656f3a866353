//! Registry credentials from the files `podman login` and `docker login` write. Looked
//! for in the order skopeo and podman use: `--authfile` (or `REGISTRY_AUTH_FILE`), then
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`
//! (`~/.config/...`), then Docker's `$DOCKER_CONFIG/config.json` (`~/.docker/...`). In each,
//! `auths` keys may be a registry (`registry.example:5000`), a repository namespace
//! within it (the longest match wins), or Docker Hub's legacy URL. Credential helpers
//! (`credHelpers`, `credsStore`) are programs: they are not run, and the report says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;

/// Auth files larger than this are not read.
const MAX_AUTH_FILE: u64 = 1 << 20;

/// Credentials for one registry request.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// The file they came from (named in errors; the secret never is).
    pub from: PathBuf,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential({} from {})",
            self.username,
            self.from.display()
        )
    }
}

/// Every auth file found, in precedence order.
#[derive(Debug, Default, Clone)]
pub struct AuthFiles {
    files: Vec<AuthFile>,
    /// Problems reading a file (named, never fatal: anonymous access may still work).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone)]
struct AuthFile {
    path: PathBuf,
    /// Normalised key -> (user, password).
    auths: BTreeMap<String, (String, String)>,
    helpers: BTreeMap<String, String>,
    store: Option<String>,
}

impl AuthFiles {
    /// The files the environment names; `explicit` replaces the search when given.
    pub fn load(explicit: Option<&Path>) -> AuthFiles {
        let mut out = AuthFiles::default();
        let paths: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => default_paths(),
        };
        for path in paths {
            match read(&path) {
                Ok(Some(file)) => out.files.push(file),
                Ok(None) if explicit.is_some() => out
                    .problems
                    .push(format!("{}: no such file", path.display())),
                Ok(None) => {}
                Err(e) => out.problems.push(format!("{}: {e}", path.display())),
            }
        }
        out
    }

    /// The credential for `repository` (`name/space/repo`) at `registry`, if any file
    /// has one, and a note when a credential helper was configured instead.
    pub fn find(&self, registry: &str, repository: &str) -> (Option<Credential>, Option<String>) {
        let keys = candidate_keys(registry, repository);
        for file in &self.files {
            for key in &keys {
                if let Some((u, p)) = file.auths.get(key) {
                    return (
                        Some(Credential {
                            username: u.clone(),
                            password: p.clone(),
                            from: file.path.clone(),
                        }),
                        None,
                    );
                }
            }
        }
        let helper = self.files.iter().find_map(|f| {
            keys.iter()
                .find_map(|k| f.helpers.get(k))
                .or(f.store.as_ref())
                .map(|h| {
                    format!(
                        "{}: credential helper docker-credential-{h} is not run; \
                         give credentials in an auth file (--authfile)",
                        f.path.display()
                    )
                })
        });
        (None, helper)
    }
}

fn default_paths() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut paths = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        paths.push(p);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        paths.push(d.join("containers/auth.json"));
    }
    match env("XDG_CONFIG_HOME") {
        Some(d) => paths.push(d.join("containers/auth.json")),
        None => {
            if let Some(h) = &home {
                paths.push(h.join(".config/containers/auth.json"));
            }
        }
    }
    match env("DOCKER_CONFIG") {
        Some(d) => paths.push(d.join("config.json")),
        None => {
            if let Some(h) = &home {
                paths.push(h.join(".docker/config.json"));
            }
        }
    }
    paths
}

fn read(path: &Path) -> Result<Option<AuthFile>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_AUTH_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_AUTH_FILE {
        return Err(format!("larger than {MAX_AUTH_FILE} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = AuthFile {
        path: path.to_path_buf(),
        auths: BTreeMap::new(),
        helpers: BTreeMap::new(),
        store: value
            .get("credsStore")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    };
    if let Some(map) = value.get("auths").and_then(|v| v.as_object()) {
        for (key, entry) in map {
            let Some(encoded) = entry.get("auth").and_then(|v| v.as_str()) else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| format!("auths.{key:?}.auth: not base64: {e}"))?;
            let text =
                String::from_utf8(decoded).map_err(|_| format!("auths.{key:?}.auth: not UTF-8"))?;
            let Some((u, p)) = text.split_once(':') else {
                return Err(format!("auths.{key:?}.auth: not user:password"));
            };
            out.auths
                .insert(normalise(key), (u.to_string(), p.to_string()));
        }
    }
    if let Some(map) = value.get("credHelpers").and_then(|v| v.as_object()) {
        for (key, helper) in map {
            if let Some(h) = helper.as_str() {
                out.helpers.insert(normalise(key), h.to_string());
            }
        }
    }
    Ok(Some(out))
}

/// `https://index.docker.io/v1/` -> `docker.io`; `http://host:5000/` -> `host:5000`.
fn normalise(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k
        .strip_suffix("/v1/")
        .or_else(|| k.strip_suffix("/v1"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// `registry/a/b/c`, `registry/a/b`, `registry/a`, `registry`: most specific first.
fn candidate_keys(registry: &str, repository: &str) -> Vec<String> {
    let registry = normalise(registry);
    let mut keys = Vec::new();
    let parts: Vec<&str> = repository.split('/').collect();
    for n in (1..=parts.len()).rev() {
        keys.push(format!("{registry}/{}", parts[..n].join("/")));
    }
    keys.push(registry);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn longest_key_wins_and_docker_hub_urls_are_one_registry() {
        let dir = std::env::temp_dir().join(format!("cs-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let p = write(
            &dir,
            "auth.json",
            &format!(
                r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{}"}},
                   "127.0.0.1:5000/team": {{"auth": "{}"}},
                   "https://index.docker.io/v1/": {{"auth": "{}"}}}},
                   "credHelpers": {{"ghcr.example": "secretservice"}}}}"#,
                b64("all:one"),
                b64("team:two:with:colons"),
                b64("hub:three")
            ),
        );
        let files = AuthFiles::load(Some(&p));
        assert!(files.problems.is_empty(), "{:?}", files.problems);
        let (c, _) = files.find("127.0.0.1:5000", "team/app");
        let c = c.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("team", "two:with:colons")
        );
        assert_eq!(
            files.find("127.0.0.1:5000", "other").0.unwrap().username,
            "all"
        );
        assert_eq!(
            files
                .find("docker.io", "library/debian")
                .0
                .unwrap()
                .username,
            "hub"
        );
        let (none, note) = files.find("ghcr.example", "x/y");
        assert!(none.is_none());
        assert!(
            note.unwrap()
                .contains("docker-credential-secretservice is not run")
        );
        // The secret never reaches a debug print.
        assert!(!format!("{c:?}").contains("two"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broken_files_are_named() {
        let dir = std::env::temp_dir().join(format!("cs-auth-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = write(&dir, "a.json", r#"{"auths": {"r": {"auth": "%%%"}}}"#);
        let files = AuthFiles::load(Some(&p));
        assert!(
            files.problems[0].contains("not base64"),
            "{:?}",
            files.problems
        );
        let missing = AuthFiles::load(Some(&dir.join("nope.json")));
        assert!(missing.problems[0].contains("no such file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
