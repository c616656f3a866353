//! Test fixtures built at test time with the machine's C toolchain: C source
//! strings are written into a fresh directory under the system temp dir and
//! compiled with the arguments a test gives, so tests can check the reader
//! against real linker output (version scripts, rpath flavours, ISA notes)
//! instead of checked-in binaries. When the compiler is missing the helpers
//! print `skipping: <compiler> not found` and return None, and the test returns.

#![allow(dead_code)] // each test module uses a different subset of the helpers

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A directory under the system temp dir, removed when dropped.
pub struct FixtureDir {
    path: PathBuf,
}

impl FixtureDir {
    /// A new empty directory whose name is unique across tests running in
    /// parallel (counter) and across concurrent test processes (pid, time).
    pub fn new(tag: &str) -> FixtureDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "containerspec-{tag}-{}-{serial}-{nanos}",
            std::process::id()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating fixture dir {}: {e}", path.display()));
        FixtureDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing fixture {}: {e}", path.display()));
        path
    }

    /// Writes each (file name, C source) pair, compiles them with `compiler` and
    /// `args` into `output` inside the directory, and returns the output path.
    /// The compiler runs with the directory as working directory, so `args` can
    /// name other fixtures (`-L.`, version scripts) relatively. Arguments are
    /// passed without a shell, so `$ORIGIN` arrives literally. Panics with the
    /// compiler's stderr when compilation fails: the fixture is the test's premise.
    pub fn compile(
        &self,
        compiler: &str,
        output: &str,
        sources: &[(&str, &str)],
        args: &[&str],
    ) -> PathBuf {
        let files: Vec<PathBuf> = sources
            .iter()
            .map(|(name, text)| self.write(name, text))
            .collect();
        let out = self.path.join(output);
        let result = Command::new(compiler)
            .current_dir(&self.path)
            .args(&files)
            .args(args)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
        assert!(
            result.status.success(),
            "{compiler} {args:?} failed building {output}:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        out
    }

    /// Like [`compile`](Self::compile), with gcc.
    pub fn gcc(&self, output: &str, sources: &[(&str, &str)], args: &[&str]) -> PathBuf {
        self.compile("gcc", output, sources, args)
    }
}

impl Drop for FixtureDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir must not turn a passing test into a failure.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// True when `compiler --version` runs.
pub fn have(compiler: &str) -> bool {
    Command::new(compiler)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A fixture directory if `compiler` is installed; otherwise prints the skip
/// message and returns None.
pub fn dir_for(compiler: &str, tag: &str) -> Option<FixtureDir> {
    if have(compiler) {
        Some(FixtureDir::new(tag))
    } else {
        println!("skipping: {compiler} not found");
        None
    }
}

/// A fixture directory if gcc is installed (prints `skipping: gcc not found` otherwise).
pub fn gcc_dir(tag: &str) -> Option<FixtureDir> {
    dir_for("gcc", tag)
}

/// True when gcc can link static executables (libc.a is installed): gcc
/// prints the bare name when it cannot find the file.
pub fn have_static_libc() -> bool {
    Command::new("gcc")
        .arg("-print-file-name=libc.a")
        .output()
        .is_ok_and(|out| Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_absolute())
}

/// Reads a fixture's bytes.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
