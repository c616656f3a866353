//! The container's first process as the kernel and loader will start it: `process.args[0]`
//! looked up through the container's own `PATH` (execvp's rules, relative to
//! `process.cwd` when it contains a slash), a `#!` script's interpreter followed, and the
//! library closure of the ELF file that actually gets loaded.

use super::loader::{Closure, Loader};
use super::model::{Entrypoint, FileCode, FileFinding, LibraryEdge, MissingLibrary};
use super::object::Object;
use crate::input::target::ProcessSpec;

/// execvp's fallback when the environment has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `#!` lines longer than this are not read further (the kernel's own limit is 256).
const MAX_SHEBANG: u64 = 256;
/// Scripts calling scripts: the kernel allows 4 levels.
const MAX_INTERPRETER_DEPTH: usize = 4;

/// Resolves the entrypoint and loads its closure. Problems become findings.
pub fn resolve(
    loader: &Loader,
    process: &ProcessSpec,
    findings: &mut Vec<FileFinding>,
) -> Option<(Entrypoint, Closure)> {
    let command = process.args.first()?.clone();
    let path_var = process.env_var("PATH").unwrap_or(DEFAULT_PATH);
    let mut entry = Entrypoint {
        command: command.clone(),
        path: None,
        interpreter: None,
        libraries: Vec::new(),
        missing: Vec::new(),
    };
    let Some(path) = lookup(loader, &command, path_var, &process.cwd) else {
        findings.push(finding(
            FileCode::EntrypointNotFound,
            &command,
            format!("{command}: not found in the container (PATH={path_var})"),
        ));
        return Some((entry, Closure::default()));
    };
    entry.path = Some(path.clone());
    let (elf_path, interpreter) = follow_shebang(loader, &path, path_var, findings);
    entry.interpreter = interpreter;
    let Some(elf_path) = elf_path else {
        return Some((entry, Closure::default()));
    };
    let obj = match Object::load(loader.root(), &elf_path) {
        Ok(obj) => obj,
        Err(e) => {
            findings.push(finding(
                FileCode::EntrypointUnreadable,
                &elf_path,
                e.to_string(),
            ));
            return Some((entry, Closure::default()));
        }
    };
    let closure = loader.closure(obj);
    describe_closure(&closure, &mut entry);
    Some((entry, closure))
}

fn describe_closure(closure: &Closure, entry: &mut Entrypoint) {
    for (obj, edges) in closure.objects.iter().zip(&closure.edges) {
        for edge in edges {
            entry.libraries.push(LibraryEdge {
                soname: edge.soname.clone(),
                path: edge.path.clone(),
                via: edge.via,
                needed_by: obj.path.clone(),
            });
        }
    }
    for (soname, by) in &closure.missing {
        entry.missing.push(MissingLibrary {
            soname: soname.clone(),
            needed_by: by.clone(),
        });
    }
}

/// execvp: a name with a slash is a path (relative to the working directory); otherwise
/// each `PATH` element in turn.
fn lookup(loader: &Loader, command: &str, path_var: &str, cwd: &str) -> Option<String> {
    let root = loader.root();
    if command.contains('/') {
        let path = if command.starts_with('/') {
            command.to_string()
        } else {
            format!("{}/{command}", cwd.trim_end_matches('/'))
        };
        return root.is_file(&path).then_some(path);
    }
    path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{}/{command}", d.trim_end_matches('/')))
        .find(|p| root.is_file(p))
}

/// Follows `#!` lines to the ELF file the kernel finally loads. `/usr/bin/env NAME` is
/// followed to NAME through `PATH`, as env does.
fn follow_shebang(
    loader: &Loader,
    path: &str,
    path_var: &str,
    findings: &mut Vec<FileFinding>,
) -> (Option<String>, Option<String>) {
    let mut current = path.to_string();
    let mut interpreter = None;
    for _ in 0..MAX_INTERPRETER_DEPTH {
        let Some(line) = shebang(loader, &current) else {
            return (Some(current), interpreter);
        };
        let mut words = line.split_whitespace();
        let Some(interp) = words.next() else { break };
        let next = if interp.ends_with("/env") {
            words
                .find(|w| !w.starts_with('-'))
                .and_then(|name| lookup(loader, name, path_var, "/"))
        } else {
            Some(interp.to_string())
        };
        interpreter = Some(line.clone());
        match next {
            Some(n) if loader.root().is_file(&n) => current = n,
            _ => {
                findings.push(finding(
                    FileCode::InterpreterNotFound,
                    path,
                    format!("{path}: interpreter of `#!{line}` not found in the container"),
                ));
                return (None, interpreter);
            }
        }
    }
    (Some(current), interpreter)
}

fn shebang(loader: &Loader, path: &str) -> Option<String> {
    let file = loader.root().open_file(path).ok()?;
    let mut head = [0u8; MAX_SHEBANG as usize];
    let n = file.read_at(&mut head, 0).ok()?;
    let head = head.get(..n)?;
    let rest = head.strip_prefix(b"#!")?;
    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    Some(String::from_utf8_lossy(rest.get(..end)?).trim().to_string())
}

fn finding(code: FileCode, path: &str, message: String) -> FileFinding {
    FileFinding {
        code,
        path: path.to_string(),
        message,
    }
}
