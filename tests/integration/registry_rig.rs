//! Real OCI registries on loopback for the tests that resolve image references: Debian's
//! `docker-registry` (the CNCF distribution registry) started with a config of the test's
//! own on a free 127.0.0.1 port, anonymous or behind htpasswd basic auth, and the small
//! real images of `tests/rigs/registry.sh` pushed to it with `skopeo`. A `Registry` is
//! stopped (killed and reaped) when dropped; its storage lives in a scratch directory
//! removed with it.
//!
//! The smoke tests below check the rig against ground truth: the digests the registry
//! answers are those of the layouts' own `index.json`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{TempDir, built, free_port, tail};

/// How long a registry may take to answer `/v2/` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry on 127.0.0.1, stopped when dropped.
pub struct Registry {
    process: Process,
    addr: String,
    creds: Option<(String, String)>,
    // Removed after the process is stopped: config, password file, storage, log.
    dir: TempDir,
}

/// One HTTP answer, as read from the socket.
pub struct HttpResponse {
    pub status: u16,
    /// Header names as sent; compare them case-insensitively (`header`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The OCI image layouts built by `tests/rigs/registry.sh`: `base` (tags `bullseye`,
/// `bookworm`, `trixie`: linux/amd64; `bookworm-arm64`: linux/arm64) and `multi` (tag
/// `bookworm`: an image index of the two bookworm images).
pub fn layouts() -> PathBuf {
    std::env::var_os("CONTAINERSPEC_TEST_CACHE")
        .map_or_else(
            || PathBuf::from("/var/cache/containerspec-test"),
            PathBuf::from,
        )
        .join("registry/layouts")
}

/// The digest (`sha256:...`) of the manifest or image index that `layout_ref`
/// (`LAYOUT:TAG`, e.g. `base:bookworm`, `multi:bookworm`) names, read from the layout's
/// `index.json`: what a registry must answer for the image once it is pushed.
pub fn layout_digest(layout_ref: &str) -> String {
    let (layout, tag) = split_ref(layout_ref);
    let path = layouts().join(layout).join("index.json");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("{} has no tag {tag}", path.display()))
        .to_string()
}

/// `sha256:<hex>` of `bytes` (the machine's `sha256sum`).
pub fn sha256_digest(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sha256sum failed");
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn split_ref(layout_ref: &str) -> (&str, &str) {
    layout_ref
        .split_once(':')
        .unwrap_or_else(|| panic!("{layout_ref:?} is not LAYOUT:TAG"))
}

/// False (after saying why) when a prerequisite is missing; with
/// CONTAINERSPEC_REQUIRE_ROOTFS=1 (CI) a missing one fails the test instead.
fn present(ok: bool, hint: &str) -> bool {
    ok || crate::util::missing(hint)
}

fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// GET `path` from `addr` over a plain TCP connection (HTTP/1.0, so the answer is never
/// chunked), with basic auth when `creds` are given.
fn http_get(addr: &str, path: &str, creds: Option<(&str, &str)>) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: containerspec-test\r\n");
    if let Some((user, pass)) = creds {
        request += &format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{user}:{pass}").as_bytes())
        );
    }
    request += "\r\n";
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{why} from {addr}{path}"),
        )
    };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

impl Registry {
    /// Starts a registry on a free loopback port, anonymous or (with `auth`, user and
    /// password) behind htpasswd basic auth, and waits until `/v2/` answers. None, after
    /// printing "skipping: ...", when docker-registry, skopeo, htpasswd or the layouts of
    /// `tests/rigs/registry.sh` are missing (a failure instead under
    /// CONTAINERSPEC_REQUIRE_ROOTFS=1).
    pub fn start(auth: Option<(&str, &str)>) -> Option<Registry> {
        for tool in ["docker-registry", "skopeo", "htpasswd"] {
            if !present(
                runs(tool),
                &format!("{tool} is not installed (tests/rigs/setup.sh installs it)"),
            ) {
                return None;
            }
        }
        built(
            layouts(),
            "registry images not built: run tests/rigs/registry.sh",
        )?;

        let dir = TempDir::new("registry");
        let auth_yaml = match auth {
            None => String::new(),
            Some((user, pass)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("run htpasswd");
                assert!(
                    out.status.success(),
                    "htpasswd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: containerspec-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        // No credentials but those a call passes: skopeo reads none from the machine.
        std::fs::write(dir.path().join("auth.json"), "{\"auths\":{}}\n").unwrap();
        let log_path = dir.path().join("registry.log");
        let config = dir.path().join("config.yml");
        let expected = if auth.is_some() { 401 } else { 200 };

        // The port is free when picked but may be taken before the registry binds it:
        // then try another.
        for _attempt in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    \
                     rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n\
                     {auth_yaml}",
                    dir.path().join("storage").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut command = Command::new("docker-registry");
            command
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            // The registry lets REGISTRY_* variables override its config file.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            // Killed and reaped when dropped: on every panic below too.
            let mut process = Process(command.spawn().expect("start docker-registry"));
            let deadline = Instant::now() + START_TIMEOUT;
            let answered = loop {
                if let Ok(r) = http_get(&addr, "/v2/", None) {
                    assert_eq!(
                        r.status,
                        expected,
                        "GET /v2/ on {addr} answered {}; log:\n{}",
                        r.status,
                        tail(&log_path, 20)
                    );
                    break true;
                }
                if let Some(status) = process.0.try_wait().unwrap() {
                    let log = tail(&log_path, 20);
                    if log.contains("address already in use") {
                        break false;
                    }
                    panic!("docker-registry exited ({status}) before answering; log:\n{log}");
                }
                assert!(
                    Instant::now() < deadline,
                    "docker-registry did not answer on {addr} within {START_TIMEOUT:?}; log:\n{}",
                    tail(&log_path, 20)
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            if answered {
                return Some(Registry {
                    process,
                    addr,
                    creds: auth.map(|(u, p)| (u.to_string(), p.to_string())),
                    dir,
                });
            }
        }
        panic!("no free loopback port for docker-registry after 5 tries");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The registry process's pid.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// The registry's log (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes `layout_ref` (`LAYOUT:TAG` of `layouts()`, e.g. `base:bookworm`) as
    /// `dest` (`NAME:TAG`) with the registry's own credentials; every platform of an image
    /// index goes too. Panics with skopeo's stderr when the push fails.
    pub fn push(&self, layout_ref: &str, dest: &str) {
        let creds = self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        let out = self.push_as(layout_ref, dest, creds);
        assert!(
            out.status.success(),
            "skopeo push of {layout_ref} to {}/{dest} failed: {}\nregistry log:\n{}",
            self.addr,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.dir.path().join("registry.log"), 10)
        );
    }

    /// Pushes as `push` does but with `creds` (None: anonymous), returning skopeo's output
    /// whatever it is (for pushes that must be refused).
    pub fn push_as(&self, layout_ref: &str, dest: &str, creds: Option<(&str, &str)>) -> Output {
        let (layout, tag) = split_ref(layout_ref);
        let src = format!("oci:{}:{tag}", layouts().join(layout).display());
        let mut command = self.skopeo();
        command.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"]);
        match creds {
            Some((user, pass)) => command.arg(format!("--dest-creds={user}:{pass}")),
            None => command.arg("--dest-no-creds"),
        };
        command
            .arg(src)
            .arg(format!("docker://{}/{dest}", self.addr))
            .output()
            .expect("run skopeo")
    }

    /// The manifest or image index `reference` (`NAME:TAG` or `NAME@DIGEST`) names, byte
    /// for byte as the registry serves it (`skopeo inspect --raw`, with the registry's
    /// credentials).
    pub fn inspect_raw(&self, reference: &str) -> Vec<u8> {
        let mut command = self.skopeo();
        command.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some((user, pass)) = &self.creds {
            command.arg(format!("--creds={user}:{pass}"));
        }
        let out = command
            .arg(format!("docker://{}/{reference}", self.addr))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect --raw of {}/{reference} failed: {}",
            self.addr,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// GET `path` (e.g. `/v2/debian/tags/list`) from the registry over plain HTTP, with
    /// basic auth when `creds` are given. Panics when the connection fails.
    pub fn get(&self, path: &str, creds: Option<(&str, &str)>) -> HttpResponse {
        http_get(&self.addr, path, creds)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.addr))
    }

    /// skopeo with no credentials but those a call passes (an empty auth file of the
    /// registry's own) and no signature policy of the machine.
    fn skopeo(&self) -> Command {
        let mut command = Command::new("skopeo");
        command.arg("--insecure-policy");
        command.env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json"));
        command
    }
}

/// A child process killed and reaped when dropped.
struct Process(Child);

impl Process {
    fn stop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Drop for Registry {
    /// Kills the registry by its pid and waits for it; the scratch directory (storage,
    /// config, log) goes after.
    fn drop(&mut self) {
        self.process.stop();
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

const BASE_TAGS: [&str; 4] = ["bullseye", "bookworm", "trixie", "bookworm-arm64"];

#[test]
fn anonymous_registry_serves_the_pushed_manifests() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    for tag in BASE_TAGS {
        let layout_ref = format!("base:{tag}");
        registry.push(&layout_ref, &format!("debian:{tag}"));
        let raw = registry.inspect_raw(&format!("debian:{tag}"));
        let digest = sha256_digest(&raw);
        eprintln!("{layout_ref}: {digest}");
        assert_eq!(digest, layout_digest(&layout_ref), "{layout_ref}");
        let manifest = json(&raw);
        // umoci writes OCI manifests without the optional mediaType field; the config
        // descriptor says what it is.
        assert_eq!(manifest["schemaVersion"], 2, "{layout_ref}");
        assert!(
            manifest["mediaType"].is_null()
                || manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json",
            "{layout_ref}: {manifest}"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{layout_ref}: one layer");
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        // The image config, fetched from the registry by its digest, names the platform
        // and the suite.
        let config = registry.get(
            &format!(
                "/v2/debian/blobs/{}",
                manifest["config"]["digest"].as_str().unwrap()
            ),
            None,
        );
        assert_eq!(config.status, 200, "{layout_ref}: config blob");
        let config = json(&config.body);
        let arch = if tag.ends_with("arm64") {
            "arm64"
        } else {
            "amd64"
        };
        assert_eq!(config["architecture"], arch, "{layout_ref}");
        assert_eq!(config["os"], "linux", "{layout_ref}");
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.version"],
            tag.trim_end_matches("-arm64"),
            "{layout_ref}"
        );
    }
    let list = registry.get("/v2/debian/tags/list", None);
    assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
    let list = json(&list.body);
    assert_eq!(list["name"], "debian");
    let mut tags: Vec<&str> = list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    let mut want = BASE_TAGS.to_vec();
    want.sort_unstable();
    assert_eq!(tags, want);
}

#[test]
fn multi_platform_index_is_pushed_whole() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    registry.push("multi:bookworm", "debian:bookworm");
    let raw = registry.inspect_raw("debian:bookworm");
    let digest = sha256_digest(&raw);
    eprintln!("multi:bookworm: {digest}");
    assert_eq!(digest, layout_digest("multi:bookworm"));
    let index = json(&raw);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let platforms: Vec<(String, String, String)> = manifests
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
            (s(&p["os"]), s(&p["architecture"]), s(&p["variant"]))
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".into(), "amd64".into(), String::new()),
            ("linux".into(), "arm64".into(), "v8".into())
        ]
    );
    // Each platform's manifest is in the registry too, the same bytes as the single
    // images of the base layout.
    for (m, layout_ref) in manifests
        .iter()
        .zip(["base:bookworm", "base:bookworm-arm64"])
    {
        let d = m["digest"].as_str().unwrap();
        assert_eq!(d, layout_digest(layout_ref));
        let raw = registry.inspect_raw(&format!("debian@{d}"));
        assert_eq!(sha256_digest(&raw), d);
        assert_eq!(raw.len() as u64, m["size"].as_u64().unwrap());
    }
}

#[test]
fn basic_auth_registry_refuses_anonymous_pushes() {
    let (user, pass) = ("containerspec", "s3cret pass");
    let Some(registry) = Registry::start(Some((user, pass))) else {
        return;
    };
    let anonymous = registry.push_as("base:trixie", "debian:trixie", None);
    assert!(!anonymous.status.success(), "an anonymous push was taken");
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("authentication required") || stderr.contains("unauthorized"),
        "{stderr}"
    );
    let wrong = registry.push_as("base:trixie", "debian:trixie", Some((user, "wrong")));
    assert!(
        !wrong.status.success(),
        "a push with a wrong password was taken"
    );

    registry.push("base:trixie", "debian:trixie");
    let raw = registry.inspect_raw("debian:trixie");
    assert_eq!(sha256_digest(&raw), layout_digest("base:trixie"));

    let v2 = registry.get("/v2/", None);
    assert_eq!(v2.status, 401);
    let challenge = v2.header("WWW-Authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Basic ") && challenge.contains("realm="),
        "{:?}",
        v2.headers
    );
    assert_eq!(registry.get("/v2/", Some((user, pass))).status, 200);
    assert_eq!(registry.get("/v2/", Some((user, "wrong"))).status, 401);
    assert_eq!(registry.get("/v2/debian/tags/list", None).status, 401);
    let list = registry.get("/v2/debian/tags/list", Some((user, pass)));
    assert_eq!(list.status, 200);
    assert_eq!(json(&list.body)["tags"], serde_json::json!(["trixie"]));
}

#[test]
fn dropping_the_registry_stops_it() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let pid = registry.pid();
    let addr = registry.addr();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc.exists(), "{}", registry.log());
    assert!(
        registry.log().contains("listening on"),
        "{}",
        registry.log()
    );
    drop(registry);
    assert!(!proc.exists(), "pid {pid} still exists after drop");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "{addr} still accepts connections"
    );
}

#[test]
fn base64_of_credentials() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
}
