//! `containerspec labels` on real images: the labels it derives equal what `inspect` says
//! of the same image (worked out here from inspect's own fields, and for MPI and glibc
//! also from the root's package database), for the six Debian MPI roots, the Apptainer
//! SIFs built from them and an OCI image made with umoci; `--check` exits 1 and names a
//! carried label that contradicts the files (bundle annotations, OCI image labels, an
//! Apptainer `labels.json`), and 0 once the image carries the derived labels, including
//! through a real `apptainer build` of the `%labels` section it prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use containerspec::engine::labels::VOCABULARY;
use serde_json::Value;

use crate::util::{
    TempDir, assert_error, cached_rootfs, containerspec, dpkg_version, json, upstream_version,
};

const ROOTS: [&str; 6] = [
    "bullseye-mpich",
    "bullseye-openmpi",
    "bookworm-mpich",
    "bookworm-openmpi",
    "trixie-mpich",
    "trixie-openmpi",
];

/// What each label should be by `inspect --json`'s fields (None: the files cannot tell),
/// computed here independently of the derivation.
fn expected(inv: &Value) -> BTreeMap<&'static str, Option<String>> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let mpi = inv["mpi"].as_array().cloned().unwrap_or_default();
    let mut families: Vec<String> = mpi
        .iter()
        .map(|m| match m["abi"].as_str() {
            Some("open-mpi") => "openmpi".to_string(),
            Some("standard") => "mpi-abi".to_string(),
            other => other.unwrap_or_default().to_string(),
        })
        .collect();
    families.sort();
    families.dedup();
    let mut implementations: Vec<String> = Vec::new();
    for m in &mpi {
        let name = m["implementation"].as_str().unwrap_or_default().to_string();
        if !implementations.contains(&name) {
            implementations.push(name);
        }
    }
    let releases: Option<Vec<String>> = mpi
        .iter()
        .map(|m| (m["version_source"] != "file-name").then(|| s(&m["version"]))?)
        .collect();
    let version = releases.filter(|r| !r.is_empty()).and_then(|mut r| {
        r.dedup();
        (r.len() == 1).then(|| r[0].clone())
    });
    let libc = &inv["libc"];
    let glibc = (libc["family"] == "glibc" && libc["version_source"] == "release-string")
        .then(|| s(&libc["version"]))
        .flatten();
    let gpu = &inv["gpu"];
    let cuda = !gpu["cuda_runtime"].is_null()
        || gpu["cuda_runtimes"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
    let mut kinds = Vec::new();
    if cuda {
        kinds.push("cuda");
    }
    if !gpu["rocm"].is_null() {
        kinds.push("rocm");
    }
    let m = &inv["microarch"];
    let cpu = match m["status"].as_str() {
        Some("unknown") => None,
        _ if m["features"].as_array().is_some_and(|f| f.is_empty()) => s(&inv["arch"]),
        other => panic!("no test image records a CPU target above the baseline: {other:?}"),
    };
    let mut out = BTreeMap::new();
    let some = |v: String| (!v.is_empty()).then_some(v);
    out.insert("org.supercontainers.mpi", some(families.join(",")));
    out.insert(
        "org.supercontainers.mpi.implementation",
        some(implementations.join(",")),
    );
    out.insert("org.supercontainers.mpi.version", version);
    out.insert("org.supercontainers.libc", s(&libc["family"]));
    out.insert("org.supercontainers.glibc", glibc);
    out.insert(
        "org.supercontainers.glibc.required",
        s(&inv["glibc_required"]["version"]),
    );
    out.insert("org.supercontainers.gpu", some(kinds.join(",")));
    out.insert(
        "org.supercontainers.gpu.cuda.version",
        s(&gpu["cuda_runtime"]["version"]),
    );
    out.insert(
        "org.supercontainers.gpu.rocm.version",
        s(&gpu["rocm"]["version"]),
    );
    out.insert("io.archspec.cpu.target", cpu);
    assert_eq!(out.len(), VOCABULARY.len());
    out
}

/// `labels --json` of `target`, asserted equal, label by label, to what `inspect --json`
/// of the same target says; every label left out is listed with a reason.
fn labels_equal_inspect(target: &str) -> Value {
    let labels = json(&["labels", target]);
    let inv = json(&["inspect", target]);
    let mut shown = Vec::new();
    for (key, want) in expected(&inv) {
        let got = labels["labels"].get(key).and_then(Value::as_str);
        assert_eq!(got, want.as_deref(), "{target}: {key}");
        if want.is_none() {
            let reason = labels["unknown"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["key"] == key)
                .and_then(|u| u["reason"].as_str())
                .unwrap_or_else(|| panic!("{target}: {key} neither derived nor explained"));
            assert!(!reason.is_empty());
        } else {
            shown.push(format!("{key}={}", want.unwrap_or_default()));
        }
    }
    let derived = labels["derived"].as_array().unwrap().len();
    let unknown = labels["unknown"].as_array().unwrap().len();
    assert_eq!(derived + unknown, VOCABULARY.len(), "{target}");
    eprintln!("{target}: {}", shown.join(" "));
    labels
}

/// The labels map of a `labels --json` output.
fn map(labels: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(labels["labels"].clone()).unwrap()
}

fn required() -> bool {
    std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() == Ok("1")
}

#[test]
fn the_six_mpi_roots_get_the_labels_inspect_describes() {
    for name in ROOTS {
        let Some(root) = cached_rootfs(name) else {
            return;
        };
        let target = root.display().to_string();
        let labels = labels_equal_inspect(&target);
        let l = map(&labels);
        // And what the package database says of the same root.
        let mpi_package = ["libmpich12", "libopenmpi3", "libopenmpi40"]
            .into_iter()
            .find_map(|p| dpkg_version(&root, p))
            .expect("an MPI library package");
        assert_eq!(
            l["org.supercontainers.mpi.version"],
            upstream_version(&mpi_package),
            "{name}"
        );
        let family = if name.ends_with("mpich") {
            ("mpich", "MPICH")
        } else {
            ("openmpi", "Open MPI")
        };
        assert_eq!(l["org.supercontainers.mpi"], family.0, "{name}");
        assert_eq!(l["org.supercontainers.mpi.implementation"], family.1);
        let libc6 = dpkg_version(&root, "libc6").expect("libc6 installed");
        assert_eq!(l["org.supercontainers.glibc"], upstream_version(&libc6));
        assert_eq!(l["org.supercontainers.libc"], "glibc");
        // A root that carries no label: --check says what it should carry, and passes.
        let out = containerspec(&["labels", &target, "--check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("carries no org.supercontainers"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "not carried  org.supercontainers.mpi: the files say {}",
                family.0
            )),
            "{stdout}"
        );
    }
}

#[test]
fn the_sifs_get_the_labels_inspect_describes_and_their_directories_get() {
    for name in ["trixie-mpich", "bullseye-mpich"] {
        let Some((_, sif, rootfs)) = crate::apptainer::rig(name) else {
            return;
        };
        let from_sif = labels_equal_inspect(&sif.display().to_string());
        let from_dir = json(&["labels", &rootfs.display().to_string()]);
        assert_eq!(from_sif["labels"], from_dir["labels"], "{name}");
        assert_eq!(from_sif["form"], "SIF (squashfs, gzip)");
        assert_eq!(map(&from_sif)["org.supercontainers.mpi"], "mpich");
    }
}

/// A bundle over `rootfs` running the roots' MPI test program, with `annotations`.
fn bundle(dir: &Path, rootfs: &Path, annotations: &BTreeMap<String, String>) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": rootfs},
        "process": {"cwd": "/", "args": [crate::inject_pairs::PROGRAM],
                    "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": annotations,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.display().to_string()
}

fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `labels --check` of `target`: (exit status, stdout, the JSON comparison).
fn check(target: &str) -> (Option<i32>, String, Value) {
    let out = containerspec(&["labels", target, "--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let j = containerspec(&["labels", target, "--check", "--json"]);
    assert_eq!(j.status.code(), out.status.code(), "--json exits the same");
    let v: Value = serde_json::from_slice(&j.stdout).expect("JSON");
    (out.status.code(), text, v["check"].clone())
}

/// The findings of `check-bundle` (this machine as the host) with code `code`.
fn rule_findings(bundle: &str, code: &str) -> Vec<String> {
    let out = containerspec(&["check-bundle", bundle, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "check-bundle {bundle}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn check_names_a_contradicting_annotation_and_passes_the_derived_ones() {
    let Some(root) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let dir = TempDir::new("labels-bundle");
    let wrong = bundle(
        &dir.path().join("wrong"),
        &root,
        &pairs(&[
            ("org.supercontainers.mpi", "openmpi"),
            ("org.supercontainers.mpi.provider", "openmpi"),
            ("org.supercontainers.inject", "none"),
        ]),
    );
    let (code, text, c) = check(&wrong);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("contradicts  org.supercontainers.mpi=openmpi, but the files say mpich"),
        "{text}"
    );
    assert!(
        text.contains("contradicts  org.supercontainers.mpi.provider=openmpi"),
        "{text}"
    );
    assert_eq!(c["contradictions"], 2);
    let first = &c["results"][0];
    assert_eq!(first["outcome"], "contradicts");
    assert_eq!(first["declared"], "openmpi");
    assert_eq!(first["files_say"], "mpich");
    assert!(
        first["from"][0]
            .as_str()
            .unwrap()
            .contains("libmpich.so.12"),
        "{first}"
    );
    // The verdict's rule says the same, through the same mapping.
    let rule = rule_findings(&wrong, "label-mismatch");
    assert!(
        rule.contains(&"label org.supercontainers.mpi=openmpi but the files say mpich".to_string()),
        "{rule:?}"
    );
    eprintln!("{text}");

    // The labels `labels` prints, carried as annotations: nothing to say against them.
    let derived = map(&labels_equal_inspect(&bundle(
        &dir.path().join("bare"),
        &root,
        &BTreeMap::new(),
    )));
    assert!(derived.contains_key("org.supercontainers.glibc.required"));
    let right = bundle(&dir.path().join("right"), &root, &derived);
    let (code, text, c) = check(&right);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(c["contradictions"], 0);
    let outcomes: Vec<&str> = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["agrees"; derived.len()], "{text}");
    assert!(rule_findings(&right, "label-mismatch").is_empty());
    // inspect reports them as the bundle's labels, unchanged.
    let inv = json(&["inspect", &right]);
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(inv["labels"].clone()).unwrap(),
        derived
    );

    // A label the files cannot confirm is reported, and does not fail the check.
    let unverified = bundle(
        &dir.path().join("unverified"),
        &root,
        &pairs(&[("org.supercontainers.gpu", "opencl")]),
    );
    let (code, text, _) = check(&unverified);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("unverified   org.supercontainers.gpu=opencl"),
        "{text}"
    );
}

/// The `%labels` lines of `text` as Apptainer reads them: the key, then the rest of the
/// line as the value.
fn apptainer_labels(text: &str) -> BTreeMap<String, String> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("%labels"), "{text}");
    lines
        .map(|l| {
            assert!(l.starts_with("    "), "{l:?}");
            let (k, v) = l.trim().split_once(' ').expect("key value");
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn an_apptainer_sandbox_labels_json_is_checked() {
    let root = crate::bad_input::mini_root("labels-sandbox");
    let target = root.display().to_string();
    let out = containerspec(&["labels", &target, "--format", "apptainer"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let labels = apptainer_labels(&text);
    assert_eq!(labels, map(&json(&["labels", &target])), "{text}");
    assert_eq!(labels["org.supercontainers.libc"], "glibc");
    let glibc = labels["org.supercontainers.glibc"].clone();
    // What it printed, as Apptainer's labels.json: the sandbox passes.
    std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
    let write = |l: &BTreeMap<String, String>| {
        std::fs::write(
            root.join(".singularity.d/labels.json"),
            serde_json::to_string(l).unwrap(),
        )
        .unwrap();
    };
    write(&labels);
    let (code, text, _) = check(&target);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(sandbox directory)"), "{text}");
    // A glibc older than the one it ships: named, exit 1.
    let mut wrong = labels.clone();
    wrong.insert("org.supercontainers.glibc".into(), "2.17".into());
    write(&wrong);
    let (code, text, c) = check(&target);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "org.supercontainers.glibc=2.17, but the files say glibc {glibc}"
        )),
        "{text}"
    );
    assert_eq!(c["contradictions"], 1);
}

fn umoci(args: &[&str]) {
    let out = Command::new("umoci").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `path` as the relative entries it reaches in `root`: every symlink on the way (each
/// followed inside the root), the final file, and the directories above each.
fn reach(root: &Path, path: &str, out: &mut Vec<String>, depth: u32) {
    assert!(depth < 40, "symlink loop at {path}");
    let mut parts: Vec<String> = Vec::new();
    let components: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, c) in components.iter().enumerate() {
        if *c == ".." {
            parts.pop();
            continue;
        }
        parts.push(c.to_string());
        let rel = parts.join("/");
        let Ok(meta) = std::fs::symlink_metadata(root.join(&rel)) else {
            return;
        };
        out.push(rel.clone());
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(root.join(&rel)).unwrap();
            let link = link.to_string_lossy();
            parts.pop();
            let base = if link.starts_with('/') {
                link.to_string()
            } else {
                format!("{}/{link}", parts.join("/"))
            };
            let rest = components[i + 1..].join("/");
            return reach(root, &format!("{base}/{rest}"), out, depth + 1);
        }
        if meta.is_dir() && i + 1 == components.len() {
            for e in std::fs::read_dir(root.join(&rel)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                reach(root, &format!("{rel}/{name}"), out, depth + 1);
            }
        }
    }
}

/// An OCI image layout at `dir/layout` whose one layer holds what `inspect` of a bundle
/// over `root` examines (the MPI program, its libraries, libc, the loader, the loader's
/// cache and configuration, os-release), taken from the real root with tar; tag `img`.
fn oci_image_of(dir: &Path, root: &Path) -> PathBuf {
    let probe = bundle(&dir.join("probe"), root, &BTreeMap::new());
    let inv = json(&["inspect", &probe]);
    let mut paths: Vec<String> = [
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/os-release",
        "/bin",
        "/sbin",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    for o in inv["objects"].as_array().unwrap() {
        paths.push(o["path"].as_str().unwrap().to_string());
        paths.push(o["real_path"].as_str().unwrap().to_string());
    }
    for m in inv["mpi"].as_array().unwrap() {
        paths.push(m["path"].as_str().unwrap().to_string());
    }
    paths.extend(inv["libc"]["loader"].as_str().map(str::to_string));
    paths.extend(inv["gpu"]["rocm"]["source"].as_str().map(str::to_string));
    let mut entries = Vec::new();
    for p in &paths {
        reach(root, p, &mut entries, 0);
    }
    entries.sort();
    entries.dedup();
    let list = dir.join("entries");
    std::fs::write(&list, entries.join("\n") + "\n").unwrap();
    let layer = dir.join("layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--no-recursion", "-cf"])
        .arg(&layer)
        .arg("-T")
        .arg(&list)
        .status()
        .unwrap();
    assert!(status.success(), "tar of {} entries", entries.len());
    let layout = dir.join("layout");
    let image = format!("{}:img", layout.display());
    umoci(&["init", "--layout", &layout.display().to_string()]);
    umoci(&["new", "--image", &image]);
    umoci(&[
        "raw",
        "add-layer",
        "--image",
        &image,
        &layer.display().to_string(),
    ]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        crate::inject_pairs::PROGRAM,
        "--config.env",
        "PATH=/usr/bin:/bin",
    ]);
    layout
}

/// Tags `tag` as image `img` with `labels` added to its config, and unpacks it (umoci
/// copies the image's labels into the bundle's annotations).
fn labelled(layout: &Path, tag: &str, labels: &BTreeMap<String, String>, out: &Path) -> String {
    let image = format!("{}:img", layout.display());
    let mut args = vec![
        "config".to_string(),
        "--image".into(),
        image,
        "--tag".into(),
        tag.into(),
    ];
    for (k, v) in labels {
        args.push("--config.label".into());
        args.push(format!("{k}={v}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    umoci(&refs);
    let bundle = out.display().to_string();
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:{tag}", layout.display()),
        &bundle,
    ]);
    bundle
}

#[test]
fn an_oci_image_gets_its_labels_and_its_labels_are_checked() {
    let Some(root) = cached_rootfs("bookworm-openmpi") else {
        return;
    };
    if Command::new("umoci").arg("--version").output().is_err() {
        let hint = "umoci is not installed (tests/rigs/setup.sh installs it)";
        assert!(!required(), "{hint}");
        crate::skip!("{hint}");
    }
    let dir = TempDir::new("labels-oci");
    let layout = oci_image_of(dir.path(), &root);
    let plain = labelled(
        &layout,
        "plain",
        &BTreeMap::new(),
        &dir.path().join("plain"),
    );
    let labels = labels_equal_inspect(&plain);
    let derived = map(&labels);
    assert_eq!(derived["org.supercontainers.mpi"], "openmpi");
    assert_eq!(labels["form"], "OCI bundle");
    // The OCI image's files say what the root they came from says.
    let from_root = map(&json(&[
        "labels",
        &bundle(&dir.path().join("root"), &root, &BTreeMap::new()),
    ]));
    assert_eq!(derived, from_root);

    // An image label that says MPICH over Open MPI's files.
    let wrong = labelled(
        &layout,
        "wrong",
        &pairs(&[("org.supercontainers.mpi", "mpich")]),
        &dir.path().join("wrong"),
    );
    let (code, text, c) = check(&wrong);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("contradicts  org.supercontainers.mpi=mpich, but the files say openmpi"),
        "{text}"
    );
    assert_eq!(c["carried"]["org.supercontainers.mpi"], "mpich");
    eprintln!("{text}");

    // The derived labels as the image's labels: --check passes, every one agrees.
    let right = labelled(&layout, "right", &derived, &dir.path().join("right"));
    let (code, text, c) = check(&right);
    assert_eq!(code, Some(0), "{text}");
    let agree = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "agrees")
        .count();
    assert_eq!(agree, derived.len(), "{text}");
    assert!(rule_findings(&right, "label-mismatch").is_empty());

    // The layout itself, without umoci unpacking it: `LAYOUT:TAG` is unpacked by
    // containerspec (layers applied in a private directory) and says the same.
    let plain_ref = format!("{}:plain", layout.display());
    let from_layout = labels_equal_inspect(&plain_ref);
    assert!(
        from_layout["form"]
            .as_str()
            .unwrap()
            .starts_with("OCI image layout (sha256:"),
        "{from_layout}"
    );
    assert_eq!(map(&from_layout), derived);
    let (code, text, _) = check(&format!("{}:wrong", layout.display()));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("contradicts  org.supercontainers.mpi=mpich, but the files say openmpi"),
        "{text}"
    );
    let (code, text, _) = check(&format!("{}:right", layout.display()));
    assert_eq!(code, Some(0), "{text}");
}

/// Builds, with the Apptainer rig, a SIF from `sif` whose definition file's `%labels`
/// section is `labels`; the new SIF's path.
fn apptainer_build(sif: &Path, labels: &str, dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rigs/apptainer.sh");
    std::fs::write(
        dir.join("labels.def"),
        format!("Bootstrap: localimage\nFrom: /img.sif\n\n{labels}"),
    )
    .unwrap();
    // apptainer builds as uid 1000, which must be able to write there.
    let chmod = Command::new("chmod").arg("0777").arg(dir).status().unwrap();
    assert!(chmod.success());
    let out = Command::new(script)
        .arg("run")
        .arg("--bind")
        .arg(format!("{}:/img.sif:ro", sif.display()))
        .arg("--bind")
        .arg(format!("{}:/scratch", dir.display()))
        .args([
            "--",
            "apptainer",
            "build",
            "/scratch/labelled.sif",
            "/scratch/labels.def",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apptainer build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("labelled.sif")
}

#[test]
fn a_sif_built_with_the_printed_labels_section_passes_the_check() {
    let Some((_, sif, _)) = crate::apptainer::rig("bullseye-mpich") else {
        return;
    };
    let out = containerspec(&[
        "labels",
        &sif.display().to_string(),
        "--format",
        "apptainer",
    ]);
    assert!(out.status.success());
    let section = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed = apptainer_labels(&section);
    let dir = TempDir::new("labels-apptainer");
    let built = apptainer_build(&sif, &section, dir.path());
    let target = built.display().to_string();
    // Apptainer stored each line as one label, value and all.
    let inv = json(&["inspect", &target]);
    let stored: BTreeMap<String, String> = serde_json::from_value(inv["labels"].clone()).unwrap();
    assert_eq!(stored, printed, "{section}");
    let (code, text, c) = check(&target);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(c["contradictions"], 0);
    assert!(
        c["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "agrees"),
        "{text}"
    );
    eprintln!("{section}{text}");
}

#[test]
fn bad_targets_and_arguments() {
    let out = containerspec(&["labels", "/nonexistent/image.sif"]);
    assert_error(&out, "/nonexistent/image.sif");
    let dir = TempDir::new("labels-bad");
    let file = dir.path().join("not-an-image");
    std::fs::write(&file, b"hello").unwrap();
    let out = containerspec(&["labels", &file.display().to_string(), "--check"]);
    assert_error(&out, "not-an-image");
    let out = containerspec(&["labels", "/", "--check", "--format", "apptainer"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A broken OCI layout: each damage is an error naming the file, exit 2, no panic.
#[test]
fn broken_oci_layouts_are_named() {
    let source = crate::registry_rig::layouts().join("base");
    if !source.join("index.json").is_file() {
        crate::util::missing("the registry rig's layouts: run tests/rigs/registry.sh");
        return;
    }
    let dir = TempDir::new("labels-broken-layout");
    let fresh = |name: &str| {
        let to = dir.path().join(name);
        let status = Command::new("cp")
            .arg("-a")
            .arg(&source)
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
        to
    };
    let run = |target: String| {
        let out = containerspec(&["labels", &target]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code(), stderr)
    };

    let garbage = fresh("garbage");
    std::fs::write(garbage.join("index.json"), "{not json").unwrap();
    let (code, err) = run(format!("{}:bookworm", garbage.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("index.json"), "{err}");

    let digest = crate::registry_rig::layout_digest("base:bookworm");
    let manifest_path = |root: &Path| {
        root.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let tampered = fresh("tampered");
    let mut bytes = std::fs::read(manifest_path(&tampered)).unwrap();
    bytes.push(b' ');
    std::fs::write(manifest_path(&tampered), bytes).unwrap();
    let (code, err) = run(format!("{}:bookworm", tampered.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not match its digest"), "{err}");

    let missing = fresh("missing");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(manifest_path(&missing)).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    std::fs::remove_file(
        missing
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    let (code, err) = run(format!("{}:bookworm", missing.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(layer.trim_start_matches("sha256:")), "{err}");

    let (code, err) = run(format!("{}:nope", missing.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no image nope (it has bullseye, bookworm"),
        "{err}"
    );
}
