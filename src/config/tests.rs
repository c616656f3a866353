use super::*;

const SOURCE: &str = "/etc/containerspec/config.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(SOURCE))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// A scratch directory with a library and a plugin directory in it.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!(
            "containerspec-config-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lib/openmpi")).unwrap();
        std::fs::write(dir.join("lib/libmpi.so.12"), b"\x7fELF").unwrap();
        Tree(dir)
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn empty_file_is_the_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config.policy, Policy::default());
    assert_eq!(config.host.target, None);
    assert_eq!(config.host.root, None);
    assert!(config.inject.mpi.libraries.is_empty());
    assert!(config.inject.gpu.plugin_dirs.is_empty());
    assert_eq!(config.log.file, None);
    assert_eq!(config.log.level, None);
    assert_eq!(config.report.dir, Path::new("/run/containerspec"));
    assert_eq!(config.source.as_deref(), Some(Path::new(SOURCE)));
    assert_eq!(Config::default().report.dir, Path::new(DEFAULT_REPORT_DIR));
    assert_eq!(Config::default().source, None);
}

#[test]
fn every_setting_is_read() {
    let tree = Tree::new("every");
    let text = format!(
        r#"
[policy]
microarch-unsupported = "warn"
label-mismatch = "off"
glibc-too-old = "enforce"

[host]
target = "haswell"
root = "{root}"

[inject.mpi]
libraries = ["/lib/libmpi.so.12"]
plugin_dirs = ["/lib/openmpi"]
data_dirs = ["/lib"]

[inject.gpu]
libraries = []

[log]
file = "/var/log/containerspec.log"
level = "debug"

[report]
dir = "/var/run/cs"
"#,
        root = tree.0.display()
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.policy.level(Code::MicroarchUnsupported), Level::Warn);
    assert_eq!(config.policy.level(Code::LabelMismatch), Level::Off);
    assert_eq!(config.policy.level(Code::GlibcTooOld), Level::Enforce);
    assert_eq!(config.policy.level(Code::CudaDriverTooOld), Level::Enforce);
    assert_eq!(config.host.target.as_deref(), Some("haswell"));
    assert_eq!(config.host.root.as_deref(), Some(tree.0.as_path()));
    assert_eq!(
        config.inject.mpi.libraries,
        [Path::new("/lib/libmpi.so.12")]
    );
    assert_eq!(config.inject.mpi.plugin_dirs, [Path::new("/lib/openmpi")]);
    assert_eq!(config.inject.mpi.data_dirs, [Path::new("/lib")]);
    assert!(config.inject.gpu.libraries.is_empty());
    assert_eq!(
        config.log.file.as_deref(),
        Some(Path::new("/var/log/containerspec.log"))
    );
    assert_eq!(config.log.level, Some(log::LevelFilter::Debug));
    assert_eq!(config.report.dir, Path::new("/var/run/cs"));
}

#[test]
fn libraries_on_the_real_root() {
    let tree = Tree::new("real");
    let text = format!(
        "[inject.gpu]\nlibraries = [\"{}\"]\nplugin_dirs = [\"{}\"]\n",
        tree.path("lib/libmpi.so.12"),
        tree.path("lib/openmpi")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.inject.gpu.libraries.len(), 1);
    assert_eq!(config.inject.gpu.plugin_dirs.len(), 1);
}

#[test]
fn log_levels() {
    for (text, level) in [
        ("error", log::LevelFilter::Error),
        ("warn", log::LevelFilter::Warn),
        ("info", log::LevelFilter::Info),
        ("debug", log::LevelFilter::Debug),
        ("trace", log::LevelFilter::Trace),
        ("off", log::LevelFilter::Off),
    ] {
        let config = parse(&format!("[log]\nlevel = \"{text}\"\n")).unwrap();
        assert_eq!(config.log.level, Some(level), "{text}");
    }
}

/// (config text, what the message must contain after the file name).
#[test]
fn errors_name_the_file_and_the_key() {
    let table: &[(&str, &str)] = &[
        (
            "[policy]\nglibc-too-old = \"strict\"\n",
            "policy.glibc-too-old: unknown level \"strict\" (expected enforce, warn or off)",
        ),
        (
            "[policy]\nglibc-too-new = \"warn\"\n",
            "policy.glibc-too-new: unknown rule \"glibc-too-new\" (expected one of: arch-mismatch,",
        ),
        (
            "[policy]\nglibc-too-old = true\n",
            "policy.glibc-too-old: invalid type: boolean `true`, expected a string (line 2, column 17)",
        ),
        ("[host]\ntarget = \"\"\n", "host.target: empty"),
        (
            "[host]\nroot = \"nodes/a\"\n",
            "host.root: nodes/a: relative path (paths in the config file must be absolute)",
        ),
        (
            "[host]\nroot = \"/nonexistent/containerspec-root\"\n",
            "host.root: /nonexistent/containerspec-root: cannot open root",
        ),
        (
            "[host]\nroot = 1\n",
            "host.root: invalid type: integer `1`, expected a string (line 2, column 8)",
        ),
        (
            "[host]\ntargt = \"haswell\"\n",
            "host.targt: unknown field `targt`, expected `target` or `root` (line 2, column 1)",
        ),
        (
            "[inject.mpi]\nlibraries = [\"lib/libmpi.so.12\"]\n",
            "inject.mpi.libraries: lib/libmpi.so.12: relative path",
        ),
        (
            "[inject.mpi]\nlibraries = [\"/opt/x/libmpi.so.12\"]\n",
            "inject.mpi.libraries: /opt/x/libmpi.so.12: no such file",
        ),
        (
            "[inject.gpu]\nlibraries = [\"/\"]\n",
            "inject.gpu.libraries: /: not a file",
        ),
        (
            "[inject.gpu]\nplugin_dirs = [\"/nonexistent/plugins\"]\n",
            "inject.gpu.plugin_dirs: /nonexistent/plugins: no such directory",
        ),
        (
            "[inject.mpi]\ndata_dirs = [\"share\"]\n",
            "inject.mpi.data_dirs: share: relative path",
        ),
        (
            "[inject.mpi]\nlibraries = \"/usr/lib/libmpi.so.12\"\n",
            "inject.mpi.libraries: invalid type: string \"/usr/lib/libmpi.so.12\", expected a sequence",
        ),
        (
            "[inject.mpi]\nlibraries = [1]\n",
            "inject.mpi.libraries: invalid type: integer `1`, expected a string (line 2, column 14)",
        ),
        (
            "[inject.mpi]\nplugin_dir = []\n",
            "inject.mpi.plugin_dir: unknown field `plugin_dir`, expected one of `libraries`, `prefixes`, `plugin_dirs`, `data_dirs`",
        ),
        (
            "[inject]\nmpi = { libraries = [], bad = 1 }\n",
            "inject.mpi.bad: unknown field `bad`",
        ),
        (
            "[inject.rocm]\nlibraries = []\n",
            "inject.rocm: unknown field `rocm`, expected `mpi` or `gpu`",
        ),
        (
            "[log]\nlevel = \"verbose\"\n",
            "log.level: unknown log level \"verbose\" (expected error, warn, info, debug, trace or off)",
        ),
        (
            "[log]\nfile = \"containerspec.log\"\n",
            "log.file: containerspec.log: relative path",
        ),
        (
            "[report]\ndir = \"run\"\n",
            "report.dir: run: relative path",
        ),
        (
            "[reports]\ndir = \"/run\"\n",
            "reports: unknown field `reports`, expected one of `policy`, `host`, `inject`, `log`, `report`",
        ),
        (
            "policy = \"enforce\"\n",
            "policy: invalid type: string \"enforce\", expected a map",
        ),
    ];
    for (text, expected) in table {
        let message = error(text);
        let wanted = format!("{SOURCE}: {expected}");
        assert!(
            message.starts_with(&wanted),
            "config {text:?}\n  gave: {message}\n  want: {wanted}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn libraries_are_checked_inside_the_host_root() {
    let tree = Tree::new("root");
    let root = tree.0.display();
    let ok =
        format!("[host]\nroot = \"{root}\"\n[inject.mpi]\nlibraries = [\"/lib/libmpi.so.12\"]\n");
    assert!(parse(&ok).is_ok());
    let missing =
        format!("[host]\nroot = \"{root}\"\n[inject.mpi]\nlibraries = [\"/lib/libmpich.so.12\"]\n");
    assert_eq!(
        error(&missing),
        format!(
            "{SOURCE}: inject.mpi.libraries: /lib/libmpich.so.12: no such file (in host \
             root {root})"
        )
    );
}

#[test]
fn syntax_errors_give_a_position_without_a_key() {
    let message = error("[inject.mpi]\nlibraries = [\n");
    assert!(
        message.starts_with(&format!("{SOURCE}: ")) && message.contains("(line 2, column"),
        "{message}"
    );
    let message = error("[policy\n");
    assert!(message.contains("(line 1, column"), "{message}");
}

#[test]
fn the_error_keeps_the_key_as_data() {
    let Err(ConfigError::Toml { key, location, .. }) = parse("[host]\n# comment\n\nroot = 1\n")
    else {
        panic!("expected a TOML error");
    };
    assert_eq!(key.as_deref(), Some("host.root"));
    assert_eq!(location, Some(Location { line: 4, column: 8 }));
    let Err(ConfigError::Field { key, .. }) = parse("[log]\nlevel = \"loud\"\n") else {
        panic!("expected a field error");
    };
    assert_eq!(key, "log.level");
}

#[test]
fn key_search_handles_dotted_and_inline_forms() {
    let text = "inject.mpi.libraries = [\"/a\", 3]\n";
    let at = text.find('3').unwrap();
    assert_eq!(
        key_at(text, at..at + 1).as_deref(),
        Some("inject.mpi.libraries")
    );
    assert_eq!(key_at("x = [", 0..1), None);
    assert_eq!(location("é\nab", 5), Some(Location { line: 2, column: 3 }));
    assert_eq!(location("é", 1), None);
}

#[test]
fn missing_explicit_file_is_an_error() {
    let path = Path::new("/nonexistent/containerspec/config.toml");
    let message = Config::load(Some(path)).unwrap_err().to_string();
    assert!(
        message.starts_with("/nonexistent/containerspec/config.toml: cannot read: "),
        "{message}"
    );
}

#[test]
fn missing_default_file_means_defaults() {
    if Path::new(DEFAULT_PATH).exists() {
        eprintln!("skipping: {DEFAULT_PATH} exists on this machine");
        return;
    }
    let config = Config::load(None).unwrap();
    assert_eq!(config.source, None);
    assert_eq!(config.policy, Policy::default());
}
