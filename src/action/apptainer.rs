//! Carrying a plan out with Apptainer / SingularityCE, which runs no hooks: the plan's
//! mounts become `--bind SRC:DST:ro` specs that Apptainer itself mounts. The loader
//! cache the plan gives the container is written to a host file first (content-named, in
//! a directory only this user can write), and bound over `/etc/ld.so.cache`.
//!
//! Three forms, for the ways people start Apptainer (per rank under `mpirun` and `srun`
//! included): `--bind` arguments, an `APPTAINER_BIND` assignment a job script can `eval`,
//! and [`exec`], which replaces this process with `apptainer exec` (same pid, signals
//! and exit status as if the job script had started Apptainer itself).

use std::ffi::OsString;
use std::hash::Hasher;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::plan::{EnvVar, LD_CACHE, Plan};

/// Which command line the binds are for: the environment variables differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Apptainer,
    Singularity,
}

impl Flavor {
    /// The command's usual name.
    pub fn command(self) -> &'static str {
        match self {
            Flavor::Apptainer => "apptainer",
            Flavor::Singularity => "singularity",
        }
    }

    /// The prefix that sets a variable inside the container (`APPTAINERENV_`).
    pub fn env_prefix(self) -> &'static str {
        match self {
            Flavor::Apptainer => "APPTAINERENV_",
            Flavor::Singularity => "SINGULARITYENV_",
        }
    }

    /// The variable that adds binds (`APPTAINER_BIND`, `SINGULARITY_BIND`).
    pub fn bind_variable(self) -> &'static str {
        match self {
            Flavor::Apptainer => "APPTAINER_BIND",
            Flavor::Singularity => "SINGULARITY_BIND",
        }
    }
}

/// One bind: a host file or directory, where it appears, read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Bind {
    pub source: String,
    pub destination: String,
}

impl Bind {
    /// `SRC:DST:ro`, Apptainer's bind spec.
    pub fn spec(&self) -> String {
        format!("{}:{}:ro", self.source, self.destination)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{path}: Apptainer's bind specs cannot carry a path with ',' or ':' (or a newline)")]
    Unrepresentable { path: String },
    #[error("{path}: {message}")]
    CacheDir { path: String, message: String },
    #[error("{path}: cannot write the loader cache: {message}")]
    CacheFile { path: String, message: String },
}

/// The binds that carry `plan` out. The plan's loader cache, if any, is written to a file
/// in `cache_dir` (see [`ld_cache_dir`]) and bound over the container's.
pub fn binds(plan: &Plan, cache_dir: &Path) -> Result<Vec<Bind>, BindError> {
    let mut out: Vec<Bind> = plan
        .mounts
        .iter()
        .map(|m| Bind {
            source: m.source.clone(),
            destination: m.destination.clone(),
        })
        .collect();
    if let Some(cache) = &plan.ld_cache {
        let bytes = cache.bytes().map_err(|e| BindError::CacheFile {
            path: cache_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let file = write_cache_file(cache_dir, &bytes)?;
        out.push(Bind {
            source: file.display().to_string(),
            destination: LD_CACHE.to_string(),
        });
    }
    for b in &out {
        for path in [&b.source, &b.destination] {
            if path.contains([',', ':', '\n']) {
                return Err(BindError::Unrepresentable { path: path.clone() });
            }
        }
    }
    Ok(out)
}

/// Where the loader caches go: `--ld-cache-dir`, else containerspec's cache directory
/// (`/run/containerspec` for root, `$XDG_RUNTIME_DIR/containerspec`), else
/// `$TMPDIR/containerspec-UID` (`/tmp` without TMPDIR), which is created private to this
/// user and refused if anyone else could have made or changed it.
pub fn ld_cache_dir(explicit: Option<&Path>) -> Result<PathBuf, BindError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = crate::inventory::hostcache::cache_dir() {
        return Ok(dir.join("ld-cache"));
    }
    let base = std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let uid = nix::unistd::Uid::effective().as_raw();
    let dir = base.join(format!("containerspec-{uid}"));
    let refuse = |message: String| BindError::CacheDir {
        path: dir.display().to_string(),
        message,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(refuse(format!("cannot create: {e}"))),
    }
    check_private(&dir, uid).map_err(refuse)?;
    Ok(dir)
}

/// A directory (not a symlink to one) owned by `uid` that nobody else can write to.
fn check_private(dir: &Path, uid: u32) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("exists and is not a directory".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "owned by uid {}, not by this user ({uid})",
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:o}: others can write to it",
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

/// Writes `bytes` as `ld.so.cache-HASH` in `dir` (atomically, unless an identical file
/// is there already: every rank of a job asks for the same one).
fn write_cache_file(dir: &Path, bytes: &[u8]) -> Result<PathBuf, BindError> {
    let mut hasher = Fnv64::default();
    hasher.write(bytes);
    let path = dir.join(format!("ld.so.cache-{:016x}", hasher.finish()));
    if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
        return Ok(path);
    }
    crate::inventory::hostcache::write_atomic(dir, &path, bytes).map_err(|e| {
        BindError::CacheFile {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    })?;
    // Apptainer reads it as the user; a root-written cache must be readable by all.
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    Ok(path)
}

/// FNV-1a: a stable name for a file's content (the directory is private, so this needs
/// to tell contents apart, not to resist an adversary).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `--bind 'SRC:DST:ro' ...` on one line, each quoted for a POSIX shell when needed.
pub fn shell_args(binds: &[Bind]) -> String {
    binds
        .iter()
        .map(|b| format!("--bind {}", shell_quote(&b.spec())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--env NAME=VALUE ...` for the plan's environment.
pub fn shell_env_args(env: &[EnvVar]) -> String {
    env.iter()
        .map(|e| format!("--env {}", shell_quote(&format!("{}={}", e.name, e.value))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `export APPTAINERENV_NAME=VALUE` lines for the plan's environment.
pub fn shell_env_exports(env: &[EnvVar], flavor: Flavor) -> String {
    env.iter()
        .map(|e| {
            format!(
                "export {}{}={}\n",
                flavor.env_prefix(),
                e.name,
                shell_quote(&e.value)
            )
        })
        .collect()
}

/// An `export` a job script can `eval`: appends the binds to what the variable already
/// holds (the user's own binds stay).
pub fn shell_env(binds: &[Bind], flavor: Flavor) -> String {
    if binds.is_empty() {
        return String::new();
    }
    let var = flavor.bind_variable();
    let list = binds.iter().map(Bind::spec).collect::<Vec<_>>().join(",");
    format!(
        "export {var}=\"${{{var}:+${var},}}\"{}\n",
        shell_quote(&list)
    )
}

/// Quotes `s` for a POSIX shell unless it is made only of safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `apptainer exec` command line: our binds, then the user's options, the image and
/// the command.
pub fn exec_command(
    runtime: &OsString,
    binds: &[Bind],
    env: &[EnvVar],
    runtime_args: &[OsString],
    image: &Path,
    command: &[OsString],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(runtime);
    cmd.arg("exec");
    for b in binds {
        cmd.arg("--bind").arg(b.spec());
    }
    for e in env {
        cmd.arg("--env").arg(format!("{}={}", e.name, e.value));
    }
    cmd.args(runtime_args).arg(image).args(command);
    cmd
}

/// Replaces this process with `cmd`; returns only on failure.
pub fn exec(mut cmd: std::process::Command) -> std::io::Error {
    cmd.exec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{CacheLine, LdCachePlan, Mount};

    fn plan() -> Plan {
        Plan {
            owned_dir: Some("/run/containerspec/lib".into()),
            mounts: vec![Mount {
                source: "/usr/lib/x86_64-linux-gnu/libmpich.so.12.4.3".into(),
                destination: "/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10".into(),
                kind: crate::engine::plan::MountKind::File,
                options: vec![],
                reason: String::new(),
            }],
            env: Vec::new(),
            ld_cache: Some(LdCachePlan {
                destination: LD_CACHE.into(),
                entries: vec![CacheLine {
                    soname: "libucp.so.0".into(),
                    path: "/run/containerspec/lib/libucp.so.0".into(),
                    flags: 0x0303,
                    hwcaps: None,
                }],
            }),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cs-appt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn binds_carry_mounts_and_the_written_cache() {
        let dir = scratch("binds");
        let binds = binds(&plan(), &dir).unwrap();
        assert_eq!(binds.len(), 2);
        assert_eq!(
            binds[0].spec(),
            "/usr/lib/x86_64-linux-gnu/libmpich.so.12.4.3:/usr/lib/x86_64-linux-gnu/libmpich.so.12.1.10:ro"
        );
        assert_eq!(binds[1].destination, "/etc/ld.so.cache");
        let written = std::fs::read(&binds[1].source).unwrap();
        assert_eq!(written, plan().ld_cache.unwrap().bytes().unwrap());
        // The same plan again names the same file (every rank shares it).
        let again = super::binds(&plan(), &dir).unwrap();
        assert_eq!(again[1].source, binds[1].source);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_apptainer_cannot_parse_are_refused() {
        let dir = scratch("comma");
        let mut p = plan();
        p.mounts[0].source = "/opt/a,b/libmpi.so.40".into();
        let err = binds(&p, &dir).unwrap_err();
        assert!(err.to_string().contains("/opt/a,b/libmpi.so.40"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shell_forms_quote_and_append() {
        let b = vec![
            Bind {
                source: "/a b/lib.so".into(),
                destination: "/x/lib.so".into(),
            },
            Bind {
                source: "/c".into(),
                destination: "/d".into(),
            },
        ];
        assert_eq!(
            shell_args(&b),
            "--bind '/a b/lib.so:/x/lib.so:ro' --bind /c:/d:ro"
        );
        assert_eq!(
            shell_env(&b, Flavor::Singularity),
            "export SINGULARITY_BIND=\"${SINGULARITY_BIND:+$SINGULARITY_BIND,}\"'/a b/lib.so:/x/lib.so:ro,/c:/d:ro'\n"
        );
        assert_eq!(shell_env(&[], Flavor::Apptainer), "");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn only_a_private_cache_dir_is_used() {
        let dir = scratch("shared");
        let uid = nix::unistd::Uid::effective().as_raw();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_private(&dir, uid), Ok(()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check_private(&dir, uid)
                .unwrap_err()
                .contains("others can write")
        );
        assert!(
            check_private(&dir, uid + 1)
                .unwrap_err()
                .contains("owned by uid")
        );
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(
            check_private(&link, uid)
                .unwrap_err()
                .contains("not a directory")
        );
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
