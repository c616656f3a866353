//! The entrypoint of a bundle: found through the container's PATH, scripts followed to
//! their interpreter, the library closure resolved as the container's loader would, and
//! the CPU target its objects require. Programs are compiled here with the machine's gcc
//! (and musl-gcc) so that what is built is exactly known.

use std::path::Path;
use std::process::Command;

use crate::bad_input::{bundle_with_config, mini_root};
use crate::util::{dpkg_version, json, upstream_version};

const HELLO: &str = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n";

/// Compiles `source` with `compiler` and `args` to `out`; false (after saying why) when
/// the compiler is missing.
fn compile(compiler: &str, source: &str, out: &Path, args: &[&str]) -> bool {
    let src = out.with_extension("c");
    std::fs::write(&src, source).unwrap();
    // Libraries (-l) must follow the source on the command line.
    match Command::new(compiler)
        .arg(&src)
        .arg("-o")
        .arg(out)
        .args(args)
        .status()
    {
        Ok(s) => {
            assert!(s.success(), "{compiler} {args:?} failed");
            true
        }
        Err(_) => {
            eprintln!("skipping: {compiler} not found");
            false
        }
    }
}

fn config(args: &[&str], env: &[&str], annotations: &str) -> String {
    let q = |v: &[&str]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","args":[{}],"env":[{}],"user":{{"uid":0,"gid":0}}}},"annotations":{{{annotations}}}}}"#,
        q(args),
        q(env)
    )
}

#[test]
fn entrypoint_through_path_and_its_closure() {
    let root = mini_root("entry-path");
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    if !compile("gcc", HELLO, &root.join("usr/local/bin/hello"), &[]) {
        return;
    }
    let bundle = bundle_with_config(
        &root,
        &config(&["hello"], &["PATH=/usr/local/bin:/usr/bin"], ""),
    );
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    let e = &inv["entrypoint"];
    assert_eq!(e["command"], "hello");
    assert_eq!(e["path"], "/usr/local/bin/hello");
    let libs = e["libraries"].as_array().unwrap();
    // hello needs libc.so.6; libc.so.6 needs the loader itself.
    assert_eq!(libs.len(), 2, "{libs:?}");
    assert_eq!(libs[0]["soname"], "libc.so.6");
    assert_eq!(libs[0]["path"], "/usr/lib/x86_64-linux-gnu/libc.so.6");
    assert_eq!(libs[0]["via"], "system-dir");
    assert_eq!(libs[0]["needed_by"], "/usr/local/bin/hello");
    assert_eq!(libs[1]["soname"], "ld-linux-x86-64.so.2");
    assert_eq!(libs[1]["path"], "/lib64/ld-linux-x86-64.so.2");
    assert_eq!(libs[1]["needed_by"], "/usr/lib/x86_64-linux-gnu/libc.so.6");
    assert_eq!(e["missing"].as_array().unwrap().len(), 0);
    assert_eq!(inv["microarch"]["required"], serde_json::Value::Null);
}

#[test]
fn scripts_are_followed_to_their_interpreter() {
    let root = mini_root("entry-script");
    if !compile("gcc", HELLO, &root.join("bin/sh"), &[]) {
        return;
    }
    std::fs::write(root.join("bin/start.sh"), "#!/bin/sh -e\nexec hello\n").unwrap();
    let bundle = bundle_with_config(&root, &config(&["/bin/start.sh"], &[], ""));
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(inv["entrypoint"]["path"], "/bin/start.sh");
    assert_eq!(inv["entrypoint"]["interpreter"], "/bin/sh -e");
    assert_eq!(inv["entrypoint"]["libraries"][0]["soname"], "libc.so.6");
}

#[test]
fn missing_libraries_and_ld_library_path() {
    let root = mini_root("entry-missing");
    let dir = root.parent().unwrap().join("build");
    std::fs::create_dir_all(&dir).unwrap();
    let lib_src = "int answer(void) { return 42; }\n";
    if !compile(
        "gcc",
        lib_src,
        &dir.join("libanswer.so.1"),
        &["-shared", "-fPIC", "-Wl,-soname,libanswer.so.1"],
    ) {
        return;
    }
    let main_src = "int answer(void);\nint main(void) { return answer(); }\n";
    let l = format!("-L{}", dir.display());
    std::fs::copy(dir.join("libanswer.so.1"), dir.join("libanswer.so")).unwrap();
    assert!(compile(
        "gcc",
        main_src,
        &root.join("bin/app"),
        &[&l, "-lanswer"]
    ));
    // Without the library anywhere: reported missing.
    let bundle = bundle_with_config(&root, &config(&["/bin/app"], &[], ""));
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    let missing = &inv["entrypoint"]["missing"];
    assert_eq!(missing[0]["soname"], "libanswer.so.1", "{inv}");
    assert_eq!(missing[0]["needed_by"], "/bin/app");
    // In a directory named by the container's LD_LIBRARY_PATH: found there.
    std::fs::create_dir_all(root.join("opt/answer/lib")).unwrap();
    std::fs::copy(
        dir.join("libanswer.so.1"),
        root.join("opt/answer/lib/libanswer.so.1"),
    )
    .unwrap();
    let bundle = bundle_with_config(
        &root,
        &config(&["/bin/app"], &["LD_LIBRARY_PATH=/opt/answer/lib"], ""),
    );
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    let libs = inv["entrypoint"]["libraries"].as_array().unwrap();
    let answer = libs
        .iter()
        .find(|l| l["soname"] == "libanswer.so.1")
        .expect("found");
    assert_eq!(answer["path"], "/opt/answer/lib/libanswer.so.1");
    assert_eq!(answer["via"], "ld-library-path");
}

#[test]
fn isa_level_notes_and_labels_set_the_required_target() {
    let root = mini_root("entry-isa");
    if !compile("gcc", HELLO, &root.join("bin/v3"), &["-Wl,-z,x86-64-v3"]) {
        return;
    }
    let bundle = bundle_with_config(&root, &config(&["/bin/v3"], &[], ""));
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(inv["microarch"]["required"], "x86-64-v3");
    assert_eq!(inv["microarch"]["level"], 3);
    let signals = inv["microarch"]["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0]["kind"], "x86-isa-note");
    assert_eq!(signals[0]["source"], "/bin/v3");
    // A label asking for more adds to it, and is listed with where it came from.
    let annotations =
        r#""io.archspec.cpu.target":"x86_64_v4","org.supercontainers.mpi":"mpich","unrelated":"x""#;
    let bundle = bundle_with_config(&root, &config(&["/bin/v3"], &[], annotations));
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(inv["microarch"]["required"], "x86_64_v4");
    assert_eq!(
        inv["labels"],
        serde_json::json!({"io.archspec.cpu.target": "x86_64_v4", "org.supercontainers.mpi": "mpich"})
    );
}

#[test]
fn musl_binary_is_musl() {
    let root = mini_root("musl");
    let loader = Path::new("/lib/ld-musl-x86_64.so.1");
    if !loader.exists() {
        crate::skip!("musl is not installed (apt-get install musl musl-tools)");
    }
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::copy(loader, root.join("lib/ld-musl-x86_64.so.1")).unwrap();
    if !compile("musl-gcc", HELLO, &root.join("bin/hello-musl"), &[]) {
        return;
    }
    let bundle = bundle_with_config(&root, &config(&["/bin/hello-musl"], &[], ""));
    let inv = json(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(inv["libc"]["family"], "musl", "{}", inv["libc"]);
    assert_eq!(inv["libc"]["loader"], "/lib/ld-musl-x86_64.so.1");
    let expected =
        upstream_version(&dpkg_version(Path::new("/"), "musl").expect("host musl package"));
    assert_eq!(inv["libc"]["version"], expected.as_str());
}
