//! The config file read from disk: real files in scratch directories, host roots with
//! symlinks, and the documented example itself, so the man-page text cannot rot.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use containerspec::config::{Config, ConfigError};
use containerspec::engine::finding::Code;
use containerspec::engine::policy::Level;

use crate::util::scratch;

/// Writes `text` as `config.toml` in `dir` and returns its path.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Creates `rel` (and its parents) under `root` as a small file.
fn touch(root: &Path, rel: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, b"\x7fELF").expect("write file");
}

fn load_error(path: &Path) -> String {
    match Config::load(Some(path)) {
        Ok(config) => panic!("{} should not load: {config:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

/// The TOML example (the fenced `toml` block) in the module documentation of src/config/mod.rs.
fn documented_example() -> String {
    let source = include_str!("../../src/config/mod.rs");
    let lines: Vec<&str> = source
        .lines()
        .map(|line| line.strip_prefix("//!").unwrap_or(line))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect();
    let start = lines
        .iter()
        .position(|l| *l == "```toml")
        .expect("config.rs documents an example");
    let end = start
        + lines[start..]
            .iter()
            .position(|l| *l == "```")
            .expect("the example ends");
    lines[start + 1..end].join("\n")
}

#[test]
fn documented_example_is_valid() {
    let dir = scratch("config-doc-example");
    let host = dir.join("host");
    touch(&host, "opt/cray/pe/lib64/libmpi_gnu_123.so.12");
    std::fs::create_dir_all(host.join("sw/openmpi/5.0.11")).unwrap();
    // The example reads `/` as the host; here the host is a scratch tree holding the
    // example's Cray library and module prefix.
    let example = documented_example();
    assert!(example.contains("root = \"/\""), "{example}");
    let text = example.replace("root = \"/\"", &format!("root = \"{}\"", host.display()));
    let path = write_config(&dir, &text);

    let config = Config::load(Some(&path)).expect("the documented example loads");
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
    assert_eq!(config.policy.level(Code::MicroarchUnsupported), Level::Warn);
    assert_eq!(config.policy.level(Code::GlibcTooOld), Level::Enforce);
    assert_eq!(config.host.target.as_deref(), Some("haswell"));
    assert_eq!(config.host.root.as_deref(), Some(host.as_path()));
    assert_eq!(
        config.inject.mpi.libraries,
        [Path::new("/opt/cray/pe/lib64/libmpi_gnu_123.so.12")]
    );
    assert!(config.inject.gpu.libraries.is_empty());
    assert_eq!(config.log.level, Some(log::LevelFilter::Info));
    assert_eq!(
        config.log.file.as_deref(),
        Some(Path::new("/var/log/containerspec.log"))
    );
    assert_eq!(config.report.dir, Path::new("/run/containerspec"));
}

#[test]
fn absolute_symlinks_resolve_inside_the_host_root() {
    let dir = scratch("config-symlink-inside");
    let host = dir.join("host");
    touch(&host, "opt/mpich/lib/libmpi.so.12.4.0");
    std::fs::create_dir_all(host.join("usr/lib64")).expect("mkdir");
    // Absolute, as distributions write them: it must resolve in the host root, not in `/`.
    symlink(
        "/opt/mpich/lib/libmpi.so.12.4.0",
        host.join("usr/lib64/libmpi.so.12"),
    )
    .expect("symlink");
    let path = write_config(
        &dir,
        &format!(
            "[host]\nroot = \"{}\"\n[inject.mpi]\nlibraries = [\"/usr/lib64/libmpi.so.12\"]\n",
            host.display()
        ),
    );
    let config = Config::load(Some(&path)).expect("loads");
    assert_eq!(
        config.inject.mpi.libraries,
        [Path::new("/usr/lib64/libmpi.so.12")]
    );
}

#[test]
fn a_symlink_out_of_the_host_root_does_not_count() {
    let dir = scratch("config-symlink-escape");
    let host = dir.join("host");
    std::fs::create_dir_all(host.join("usr/lib64")).expect("mkdir");
    // /etc/passwd exists on the real host but not in this root.
    symlink("/etc/passwd", host.join("usr/lib64/libmpi.so.12")).expect("symlink");
    let path = write_config(
        &dir,
        &format!(
            "[host]\nroot = \"{}\"\n[inject.mpi]\nlibraries = [\"/usr/lib64/libmpi.so.12\"]\n",
            host.display()
        ),
    );
    assert_eq!(
        load_error(&path),
        format!(
            "{}: inject.mpi.libraries: /usr/lib64/libmpi.so.12: no such file (in host root {})",
            path.display(),
            host.display()
        )
    );
}

#[test]
fn library_list_on_the_real_filesystem() {
    let dir = scratch("config-real-fs");
    touch(&dir, "lib/libcuda.so.535.104.05");
    std::fs::create_dir_all(dir.join("plugins")).expect("mkdir");
    let library = dir.join("lib/libcuda.so.535.104.05");
    let good = write_config(
        &dir,
        &format!(
            "[inject.gpu]\nlibraries = [\"{}\"]\nplugin_dirs = [\"{}\"]\n",
            library.display(),
            dir.join("plugins").display()
        ),
    );
    let config = Config::load(Some(&good)).expect("loads");
    assert_eq!(config.inject.gpu.libraries, std::slice::from_ref(&library));

    std::fs::remove_file(&library).expect("remove library");
    assert_eq!(
        load_error(&good),
        format!(
            "{}: inject.gpu.libraries: {}: no such file",
            good.display(),
            library.display()
        )
    );
}

/// (config text, the message after "<file>: ").
#[test]
fn errors_name_the_file_and_the_key() {
    let dir = scratch("config-errors");
    touch(&dir, "host/lib/libmpi.so.12");
    let file = dir.join("host/lib/libmpi.so.12");
    let table = [
        (
            "[policy]\nmicroarch-unsupported = \"relaxed\"\n".to_string(),
            "policy.microarch-unsupported: unknown level \"relaxed\" (expected enforce, warn or off)"
                .to_string(),
        ),
        (
            "[inject.mpi]\nplugin_dirs = [\"/nonexistent/openmpi\"]\n".to_string(),
            "inject.mpi.plugin_dirs: /nonexistent/openmpi: no such directory".to_string(),
        ),
        (
            format!("[inject.mpi]\ndata_dirs = [\"{}\"]\n", file.display()),
            format!("inject.mpi.data_dirs: {}: not a directory", file.display()),
        ),
        (
            "[inject.gpu]\nlibraries = [\"libcuda.so.1\"]\n".to_string(),
            "inject.gpu.libraries: libcuda.so.1: relative path (paths in the config file must \
             be absolute)"
                .to_string(),
        ),
        (
            "[host]\nroot = \"/nonexistent/node-image\"\n".to_string(),
            "host.root: /nonexistent/node-image: cannot open root".to_string(),
        ),
        (
            "[report]\ndirectory = \"/run/cs\"\n".to_string(),
            "report.directory: unknown field `directory`, expected `dir` (line 2, column 1)"
                .to_string(),
        ),
    ];
    for (text, expected) in table {
        let path = write_config(&dir, &text);
        let message = load_error(&path);
        let wanted = format!("{}: {expected}", path.display());
        assert!(
            message.starts_with(&wanted),
            "config {text:?}\n  gave: {message}\n  want: {wanted}"
        );
    }
}

#[test]
fn the_file_itself_must_be_readable_text() {
    let dir = scratch("config-file");
    let missing = dir.join("absent.toml");
    assert!(
        load_error(&missing).starts_with(&format!("{}: cannot read: ", missing.display())),
        "{}",
        load_error(&missing)
    );
    assert_eq!(
        load_error(&dir),
        format!("{}: not a regular file", dir.display())
    );

    let fifo = dir.join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR).expect("mkfifo");
    assert_eq!(
        load_error(&fifo),
        format!("{}: not a regular file", fifo.display())
    );

    let binary = dir.join("binary.toml");
    std::fs::write(&binary, b"[log]\nlevel = \"\xff\"\n").expect("write");
    assert!(
        load_error(&binary).starts_with(&format!("{}: cannot read: ", binary.display())),
        "{}",
        load_error(&binary)
    );

    let huge = dir.join("huge.toml");
    std::fs::write(&huge, vec![b'#'; 2 << 20]).expect("write");
    assert_eq!(
        load_error(&huge),
        format!(
            "{}: file too large (2097152 bytes, limit 1048576)",
            huge.display()
        )
    );
}

#[test]
fn a_symlinked_config_file_loads_under_the_name_given() {
    let dir = scratch("config-link");
    let real = write_config(&dir, "[policy]\nlabel-mismatch = \"off\"\n");
    let link = dir.join("link.toml");
    symlink(&real, &link).expect("symlink");
    let config = Config::load(Some(&link)).expect("loads");
    assert_eq!(config.source.as_deref(), Some(link.as_path()));
    assert_eq!(config.policy.level(Code::LabelMismatch), Level::Off);
}

#[test]
fn errors_are_typed_for_callers() {
    let dir = scratch("config-typed");
    let path = write_config(&dir, "[log]\nlevel = \"loud\"\n");
    match Config::load(Some(&path)) {
        Err(ConfigError::Field {
            key, path: file, ..
        }) => {
            assert_eq!(key, "log.level");
            assert_eq!(file, path);
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}
