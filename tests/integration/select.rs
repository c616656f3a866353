//! `containerspec select` on an OCI image layout built here: one image index with four
//! linux/amd64 manifests, variants v1 to v4, each a real Debian loader and libc with a
//! program compiled with `gcc -march=x86-64-vN -mneeded` (its x86 ISA note records the
//! level). The v2 variant lies: its program is built for v3. Judged for host
//! descriptions whose CPUs have exactly each level's features (the psABI's lists, written
//! here), for an arm64 host, and for this machine; the chosen digest must be the expected
//! manifest's in the index, and the liar must be reported with its file. Bad input exits 2
//! naming what is wrong, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::fixtures::{FixtureDir, gcc_dir};
use crate::util::{TempDir, assert_error, cached_rootfs, containerspec};

/// The x86-64 psABI's micro-architecture levels, each adding to the one below, in
/// /proc/cpuinfo spelling (pni is SSE3, abm is LZCNT), written out here rather than taken
/// from containerspec's own tables.
const LEVELS: [&[&str]; 4] = [
    &[
        "cmov", "cx8", "fpu", "fxsr", "mmx", "sse", "sse2", "syscall", "lm",
    ],
    &[
        "cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3",
    ],
    &[
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
    ],
    &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
];

/// The features of a CPU of x86-64 level `level` (1..=4).
fn level_features(level: usize) -> Vec<&'static str> {
    LEVELS[..level]
        .iter()
        .flat_map(|l| l.iter().copied())
        .collect()
}

/// The level of a feature list by the psABI's lists.
fn level_of(features: &[String]) -> usize {
    (1..=4)
        .take_while(|l| {
            level_features(*l)
                .iter()
                .all(|f| features.iter().any(|h| h == f))
        })
        .last()
        .unwrap_or(0)
}

fn sha256(bytes: &[u8]) -> String {
    containerspec::registry::sha256_digest(bytes)
}

/// An OCI image layout being written: blobs by digest, then index.json.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    /// Writes a blob; its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let path = self
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(path, bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    fn json_blob(&self, media_type: &str, value: &Value) -> Value {
        self.blob(media_type, &serde_json::to_vec(value).unwrap())
    }
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// One uncompressed layer: the root's loader and libc where Debian puts them (merged
/// /usr), the loader's /lib64 link, and `app` as /usr/bin/app.
fn layer(root: &Path, app: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    let link = |tar: &mut tar::Builder<Vec<u8>>, path: &str, to: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, path, to).unwrap();
    };
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, from: &Path| {
        let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, path, bytes.as_slice()).unwrap();
    };
    for d in [
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/x86_64-linux-gnu",
        "lib64",
        "etc",
    ] {
        dir(&mut tar, d);
    }
    link(&mut tar, "bin", "usr/bin");
    link(&mut tar, "lib", "usr/lib");
    let libdir = root.join("usr/lib/x86_64-linux-gnu");
    for name in ["ld-linux-x86-64.so.2", "libc.so.6"] {
        file(
            &mut tar,
            &format!("usr/lib/x86_64-linux-gnu/{name}"),
            &libdir.join(name),
        );
    }
    link(
        &mut tar,
        "lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    );
    file(&mut tar, "usr/bin/app", app);
    tar.into_inner().unwrap()
}

/// The layout: (its directory, the manifest digest of variants v1..v4 in index order).
struct Built {
    _dir: TempDir,
    layout: PathBuf,
    digests: Vec<String>,
    /// Each variant's program, in index order, and the root whose loader and libc the
    /// layers carry (to run them under an emulated CPU).
    apps: Vec<PathBuf>,
    root: PathBuf,
    _gcc: FixtureDir,
}

/// Builds the four-variant layout, or None (after saying why) without gcc or the root.
fn build() -> Option<Built> {
    let root = cached_rootfs("bookworm-mpich")?;
    let gcc: FixtureDir = gcc_dir("select")?;
    // Floating-point work the compiler vectorises and contracts for the target: a v3
    // build uses AVX2 and FMA, and stops with SIGILL on a CPU without them.
    let source = [("app.c", crate::clusters::PROGRAM)];
    // The program each variant carries: (variant, -march); v2 carries a v3 program.
    let variants = [
        ("v1", "x86-64"),
        ("v2", "x86-64-v3"),
        ("v3", "x86-64-v3"),
        ("v4", "x86-64-v4"),
    ];
    let dir = TempDir::new("select-layout");
    let layout = Layout::new(dir.path().join("layout"));
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    let mut apps = Vec::new();
    for (variant, march) in variants {
        let app = gcc.gcc(
            &format!("app-{variant}"),
            &source,
            &["-O3", &format!("-march={march}"), "-mneeded"],
        );
        apps.push(app.clone());
        let tar = layer(&root, &app);
        let layer = layout.blob("application/vnd.oci.image.layer.v1.tar", &tar);
        let config = layout.json_blob(
            "application/vnd.oci.image.config.v1+json",
            &json!({
                "architecture": "amd64", "os": "linux", "variant": variant,
                "config": {"Cmd": ["/usr/bin/app"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
            }),
        );
        let manifest = layout.json_blob(
            MANIFEST,
            &json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]}),
        );
        digests.push(manifest["digest"].as_str().unwrap().to_string());
        let mut entry = manifest;
        entry["platform"] = json!({"architecture": "amd64", "os": "linux", "variant": variant});
        entries.push(entry);
    }
    let index = layout.json_blob(
        INDEX,
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}),
    );
    let mut top = index;
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "app"});
    std::fs::write(
        layout.dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [top]})).unwrap(),
    )
    .unwrap();
    Some(Built {
        layout: layout.dir,
        _dir: dir,
        digests,
        apps,
        root,
        _gcc: gcc,
    })
}

/// This machine's `host --json`.
fn this_host() -> Value {
    let out = containerspec(&["host", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// This machine's description with a CPU of exactly x86-64 level `level`.
fn x86_host(base: &Value, level: usize) -> Value {
    let mut h = base.clone();
    let features = level_features(level);
    let cpu = &mut h["cpu"];
    cpu["features"] = json!(features);
    cpu["usable_features"] = json!(features);
    cpu["generic_level"] = json!(format!("x86_64_v{level}"));
    cpu["microarchitecture"] = json!(format!("x86_64_v{level}"));
    h
}

fn write(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn the_best_variant_for_each_host_and_the_liar_reported() {
    let Some(built) = build() else { return };
    let image = format!("{}:app", built.layout.display());
    let base = this_host();
    let hosts = TempDir::new("select-hosts");
    let levels = hosts.path().join("levels");
    std::fs::create_dir_all(&levels).unwrap();
    for level in 1..=4 {
        write(
            &levels.join(format!("v{level}.json")),
            &x86_host(&base, level),
        );
    }
    // v4 and v3 hosts get their own level; a v2 host cannot run the liar (its program
    // needs v3) and gets the baseline.
    let expected = |level: usize| match level {
        4 => &built.digests[3],
        3 => &built.digests[2],
        _ => &built.digests[0],
    };

    let out = containerspec(&["select", &image, "--hosts", &levels.display().to_string()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, digest) = l.split_once(' ').unwrap();
            (name.to_string(), digest.to_string())
        })
        .collect();
    eprintln!("{lines:#?}");
    for level in 1..=4 {
        assert_eq!(
            &lines[&format!("v{level}")],
            expected(level),
            "host v{level}: {err}"
        );
    }
    let liar_line = "claim-exceeded: claims x86_64_v2 but /usr/bin/app records x86-64-v3 \
                     (x86-isa-note): judged by what its files need";
    assert!(err.contains(liar_line), "{err}");
    eprintln!("{err}");

    // One host, as JSON: every variant's reasons.
    let v2 = levels.join("v2.json").display().to_string();
    let out = containerspec(&["select", &image, "--hosts", &v2, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let choice = &report["hosts"][0];
    assert_eq!(choice["host"], "v2");
    assert_eq!(choice["host_level"], 2);
    assert_eq!(choice["digest"], built.digests[0].as_str());
    let reasons = |i: usize| -> Vec<String> {
        choice["candidates"][i]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["reason"].as_str().unwrap().to_string())
            .collect()
    };
    // -march=x86-64 leaves a baseline note, which records nothing.
    assert_eq!(reasons(0), ["claim-unverified", "chosen"]);
    assert_eq!(reasons(1), ["claim-exceeded", "files-not-runnable"]);
    assert_eq!(reasons(2), ["level-above-host"]);
    assert_eq!(reasons(3), ["level-above-host"]);
    let liar = &choice["candidates"][1];
    assert_eq!(liar["platform"], "linux/amd64/v2");
    assert_eq!(liar["level"], 3);
    assert_eq!(liar["files_read"], true);
    assert!(
        liar["notes"][0]["message"]
            .as_str()
            .unwrap()
            .contains("/usr/bin/app records x86-64-v3"),
        "{liar}"
    );

    // One host, plain: the digest alone on stdout.
    let v3 = levels.join("v3.json").display().to_string();
    let out = containerspec(&["select", &image, "--hosts", &v3]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", expected(3))
    );

    // This machine, by its own description: the layout's only image needs no tag.
    let real_level = level_of(
        &base["cpu"]["usable_features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
    );
    let out = containerspec(&["select", &built.layout.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        expected(real_level.max(1)),
        "this machine (x86-64-v{real_level})"
    );
}

#[test]
fn a_host_of_another_platform_is_told_what_the_index_offers() {
    let Some(built) = build() else { return };
    let image = format!("{}:app", built.layout.display());
    let base = this_host();
    let hosts = TempDir::new("select-arm");
    let mut arm = x86_host(&base, 1);
    arm["arch"] = json!("aarch64");
    arm["cpu"]["arch"] = json!("aarch64");
    arm["cpu"]["usable_features"] = json!(["fp", "asimd"]);
    write(&hosts.path().join("arm.json"), &arm);
    write(&hosts.path().join("x86.json"), &x86_host(&base, 3));
    let out = containerspec(&[
        "select",
        &image,
        "--hosts",
        &hosts.path().display().to_string(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "arm (linux/arm64): none: no manifest for linux/arm64 in the index (it has \
             linux/amd64/v1, linux/amd64/v2, linux/amd64/v3, linux/amd64/v4)"
        ),
        "{err}"
    );
    // The host that has one still gets its line.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("x86 {}\n", built.digests[2])
    );
}

#[test]
fn bad_input_exits_2_naming_it() {
    let Some(built) = build() else { return };
    let image = format!("{}:app", built.layout.display());
    let dir = TempDir::new("select-bad");

    let mut old = this_host();
    old["schema_version"] = json!(999);
    let old_file = dir.path().join("old-node.json");
    write(&old_file, &old);
    let out = containerspec(&["select", &image, "--hosts", &old_file.display().to_string()]);
    assert_error(&out, "old-node.json");
    assert_error(&out, "schema_version 999");

    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let out = containerspec(&["select", &plain.display().to_string()]);
    assert_error(&out, "not an OCI image layout");

    let broken = dir.path().join("broken");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&built.layout)
        .arg(&broken)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        broken.join("index.json"),
        "{\"schemaVersion\": 2, \"manifests\": [",
    )
    .unwrap();
    let out = containerspec(&["select", &broken.display().to_string()]);
    assert_error(&out, "index.json");

    let out = containerspec(&["select", &format!("{}:nope", built.layout.display())]);
    assert_error(&out, "no image nope (it has app)");
}

/// A registry reference: the index is read through the distribution API of a real
/// registry (the registry rig), and each platform's host gets that platform's manifest.
#[test]
fn a_registry_index_gives_each_platform_its_manifest() {
    use crate::registry_rig::{Registry, layout_digest, layouts};
    let Some(registry) = Registry::start(None) else {
        return;
    };
    registry.push("multi:bookworm", "multi:bookworm");
    // The index's manifests, per platform, from the layout the registry was given.
    let index_digest = layout_digest("multi:bookworm");
    let blob = layouts()
        .join("multi/blobs/sha256")
        .join(index_digest.trim_start_matches("sha256:"));
    let index: Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    let digest_of = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .and_then(|m| m["digest"].as_str())
            .unwrap_or_else(|| panic!("no {arch} in {index}"))
            .to_string()
    };
    let dir = TempDir::new("select-registry");
    let amd = this_host();
    write(&dir.path().join("amd.json"), &amd);
    let Some(arm_root) = cached_rootfs("bookworm-arm64") else {
        return;
    };
    let out = containerspec(&["host", "--root", arm_root.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(dir.path().join("arm.json"), &out.stdout).unwrap();
    let reference = format!("{}/multi:bookworm", registry.addr());
    let out = containerspec(&[
        "select",
        &reference,
        "--hosts",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = String::from_utf8(out.stdout.clone()).unwrap();
    let chosen: BTreeMap<&str, &str> = lines.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(
        chosen.get("amd").copied(),
        Some(digest_of("amd64").as_str()),
        "{lines}"
    );
    assert_eq!(
        chosen.get("arm").copied(),
        Some(digest_of("arm64").as_str()),
        "{lines}"
    );
    // A registry variant's files are not read: its claim is said to be unchecked.
    let err = stderr(&out);
    assert_eq!(
        err.matches("claim-unverified: its files were not read")
            .count(),
        2,
        "{err}"
    );
    assert!(
        err.contains("other-platform: linux/arm64/v8: the host is linux/amd64"),
        "{err}"
    );
}

/// The choice against real runs: hosts described by `host --json` run under
/// `qemu-x86_64 -cpu MODEL` (qemu64 is x86-64-v1, Nehalem v2, Haswell v3) and natively;
/// the variant chosen for each runs its program on that CPU, and the liar (a v2 claim
/// over a v3 program), which a choice by claims would take for the v2 CPU, fails there.
#[test]
fn each_choice_runs_on_its_cpu_and_the_liar_would_not() {
    let qemu = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("qemu-x86_64").is_file()));
    if !qemu
        && crate::util::missing("qemu-x86_64 is not installed (tests/rigs/setup.sh installs it)")
    {
        return;
    }
    let Some(built) = build() else { return };
    let exe = Path::new(env!("CARGO_BIN_EXE_containerspec"));
    let hosts = TempDir::new("select-emulated");
    let models = [Some("qemu64"), Some("Nehalem"), Some("Haswell"), None];
    let name = |m: Option<&str>| m.unwrap_or("native").to_string();
    for m in models {
        let out = crate::cpu_truth::on_cpu(m, exe)
            .args(["host", "--json", "--no-cache"])
            .output()
            .unwrap();
        assert!(out.status.success(), "host under {m:?}: {}", stderr(&out));
        std::fs::write(hosts.path().join(format!("{}.json", name(m))), &out.stdout).unwrap();
    }
    let image = format!("{}:app", built.layout.display());
    let out = containerspec(&["select", &image, "--hosts", hosts.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let chosen: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect();
    let libdir = built.root.join("usr/lib/x86_64-linux-gnu");
    let run = |m: Option<&str>, app: &Path| {
        crate::cpu_truth::on_cpu(m, &libdir.join("ld-linux-x86-64.so.2"))
            .arg("--library-path")
            .arg(&libdir)
            .arg(app)
            .output()
            .unwrap()
    };
    for m in models {
        let digest = &chosen[&name(m)];
        let i = built.digests.iter().position(|d| d == digest).unwrap();
        let ran = run(m, &built.apps[i]);
        assert!(
            ran.status.success(),
            "v{} chosen for {} does not run: {:?}",
            i + 1,
            name(m),
            ran.status
        );
        eprintln!("{}: v{} chosen, and it runs", name(m), i + 1);
    }
    // The emulated levels get their own variant (the v2 CPU the baseline: the liar
    // needs v3).
    assert_eq!(chosen["qemu64"], built.digests[0]);
    assert_eq!(chosen["Nehalem"], built.digests[0]);
    assert_eq!(chosen["Haswell"], built.digests[2]);
    let liar = run(Some("Nehalem"), &built.apps[1]);
    let why = String::from_utf8_lossy(&liar.stderr);
    // glibc's loader reads the same ISA note select read, and refuses the program.
    assert!(
        !liar.status.success() && why.contains("CPU ISA level is lower than required"),
        "the v3 program claimed v2 on Nehalem: {:?}: {why}",
        liar.status
    );
    eprintln!(
        "the v2-claimed program on Nehalem: {:?}: {why}",
        liar.status
    );
}
