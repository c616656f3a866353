//! Node features and image constraints (`host --format`, `match`): the constraint must
//! select a node exactly when `check-bundle` says compatible there, over every pair of
//! the real test roots (as images and as hosts) and over binaries built for CPU targets
//! judged on emulated CPUs, where a fitting pair must also run; the formats must be
//! what Slurm, Node Feature Discovery and Kubernetes read (golden files and their
//! documented syntax); bad input is named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpu_truth::on_cpu;
use crate::util::{TempDir, cached_rootfs, containerspec, missing};

/// The six MPI roots of `inject_pairs`, and the arm64 one.
fn roots() -> Vec<&'static str> {
    let mut all = crate::inject_pairs::ROOTS.to_vec();
    all.push("bookworm-arm64");
    all
}
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/golden/clusters"
);
pub(crate) const MPI_PROGRAM: &str = "/opt/containerspec-test/mpi-version";

/// A bundle of `rootfs` whose process is `program`.
pub(crate) fn bundle(dir: &Path, rootfs: &Path, program: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs},
        "process": {"cwd": "/", "args": [program], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// `host --root ROOT --json` of every test root, as `DIR/ROOT.json`; None when a root
/// is not built (skipped, or a failure in CI).
pub(crate) fn root_descriptions(dir: &Path) -> Option<BTreeMap<String, PathBuf>> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = BTreeMap::new();
    for name in roots() {
        let root = cached_rootfs(name)?;
        let o = containerspec(&["host", "--root", root.to_str().unwrap(), "--json"]);
        assert!(
            o.status.success(),
            "host --root {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, &o.stdout).unwrap();
        out.insert(name.to_string(), path);
    }
    Some(out)
}

/// `match ... --json`: per node name, whether it fits.
pub(crate) fn fits_by_node(args: &[&str]) -> BTreeMap<String, bool> {
    let mut all = vec!["match"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = containerspec(&all);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "match {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["images"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["fits"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn verdict(args: &[&str]) -> bool {
    let mut all = vec!["check-bundle"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = containerspec(&all);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-bundle {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["verdict"] == "compatible"
}

#[test]
fn match_selects_exactly_the_hosts_check_bundle_calls_compatible() {
    let dir = TempDir::new("clusters-agree");
    let Some(hosts) = root_descriptions(&dir.path().join("hosts")) else {
        return;
    };
    let hosts_dir = dir.path().join("hosts");
    let mut counts = BTreeMap::<(&str, bool), usize>::new();
    let mut table = String::new();
    for inject in ["mpi", "none"] {
        for image in roots() {
            let root = cached_rootfs(image).unwrap();
            let b = bundle(
                &dir.path().join(format!("bundle-{image}")),
                &root,
                MPI_PROGRAM,
            );
            let b = b.to_str().unwrap();
            let fits = fits_by_node(&[
                b,
                "--inject",
                inject,
                "--hosts",
                hosts_dir.to_str().unwrap(),
            ]);
            assert_eq!(fits.len(), hosts.len());
            for host in roots() {
                let host_root = cached_rootfs(host).unwrap();
                let compatible = verdict(&[
                    b,
                    "--inject",
                    inject,
                    "--host-root",
                    host_root.to_str().unwrap(),
                ]);
                assert_eq!(
                    fits[host], compatible,
                    "--inject {inject}: {image} on {host}: match says fits={}, check-bundle says compatible={compatible}",
                    fits[host]
                );
                *counts.entry((inject, compatible)).or_default() += 1;
                if inject == "mpi" && compatible {
                    table.push_str(&format!("  {image} on {host}\n"));
                }
            }
        }
    }
    eprintln!(
        "match = check-bundle on every pair: {counts:?}\ncompatible with MPI injected:\n{table}"
    );
    // 98 pairs; both outcomes with injection, and the arm64 root refused elsewhere without.
    assert_eq!(
        counts.values().sum::<usize>(),
        2 * roots().len() * roots().len()
    );
    assert_eq!(counts[&("mpi", true)], 13, "{counts:?}");
    assert_eq!(counts[&("none", false)], 12, "{counts:?}");
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file()))
    })
}

/// A vectorisable kernel: FMA, AVX2 and AVX-512 where the target allows them.
pub(crate) const PROGRAM: &str = r#"
#include <stdio.h>
#define N 4096
double a[N], b[N], c[N];
__attribute__((noinline)) void kernel(int n) { for (int i = 0; i < n; i++) a[i] = a[i] * b[i] + c[i]; }
int main(int argc, char **argv) {
  for (int i = 0; i < N; i++) { a[i] = i + argc; b[i] = 0.5; c[i] = __builtin_popcount(i); }
  kernel(N);
  printf("%f\n", a[N - 1]);
  return 0;
}
"#;

/// A bundle whose `/app` is PROGRAM built by gcc with `-march=MARCH` (recorded by `-g`),
/// with this machine's loader and libc.
fn cpu_bundle(dir: &Path, march: &str) -> PathBuf {
    let b = dir.join(format!("bundle-{march}"));
    let root = b.join("rootfs");
    for d in ["lib64", "lib/x86_64-linux-gnu", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        root.join("lib/x86_64-linux-gnu/libc.so.6"),
    )
    .unwrap();
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    std::fs::write(root.join("etc/ld.so.conf"), "/lib/x86_64-linux-gnu\n").unwrap();
    let src = dir.join("program.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let mut extra = vec!["-O3", "-g"];
    if march == "x86-64-v4" {
        extra.push("-mprefer-vector-width=512");
    }
    let out = Command::new("gcc")
        .args(&extra)
        .arg(format!("-march={march}"))
        .arg(&src)
        .arg("-o")
        .arg(root.join("app"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc -march={march}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        b.join("config.json"),
        r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/app"],"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"}}"#,
    )
    .unwrap();
    b
}

#[test]
fn cpu_needs_select_the_cpus_check_bundle_accepts_and_those_run_the_binary() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipping: the CPU matrix is built for x86_64");
        return;
    }
    for tool in ["gcc", "qemu-x86_64"] {
        if !on_path(tool)
            && missing(&format!(
                "{tool} is not installed (tests/rigs/setup.sh installs it)"
            ))
        {
            return;
        }
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_containerspec"));
    let dir = TempDir::new("clusters-cpu");
    let hosts = dir.path().join("hosts");
    std::fs::create_dir_all(&hosts).unwrap();
    // qemu's models (no AVX-512) and this machine, each described by host --json run on it.
    let models: Vec<Option<&str>> = vec![
        Some("qemu64"),
        Some("Nehalem"),
        Some("Haswell"),
        Some("EPYC-Rome"),
        None,
    ];
    let name = |m: Option<&str>| m.unwrap_or("native").to_string();
    for m in &models {
        let out = on_cpu(*m, exe)
            .args(["host", "--json", "--no-cache"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "host under {m:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(hosts.join(format!("{}.json", name(*m))), &out.stdout).unwrap();
    }
    let marches = [
        "x86-64",
        "x86-64-v2",
        "x86-64-v3",
        "haswell",
        "znver2",
        "x86-64-v4",
    ];
    let (mut pairs, mut fit, mut ran) = (0, 0, 0);
    for march in marches {
        let b = cpu_bundle(dir.path(), march);
        let fits = fits_by_node(&[b.to_str().unwrap(), "--hosts", hosts.to_str().unwrap()]);
        for m in &models {
            let out = on_cpu(*m, exe)
                .args(["check-bundle", "--json", "--no-cache"])
                .arg(&b)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "check-bundle under {m:?}: {e}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            let compatible = v["verdict"] == "compatible";
            let got = fits[&name(*m)];
            assert_eq!(
                got,
                compatible,
                "-march={march} on {}: match fits={got}, check-bundle compatible={compatible}",
                name(*m)
            );
            pairs += 1;
            if got {
                fit += 1;
                // A node the constraint selects runs the program.
                let root = b.join("rootfs");
                let run = on_cpu(*m, &root.join("lib64/ld-linux-x86-64.so.2"))
                    .arg("--library-path")
                    .arg(root.join("lib/x86_64-linux-gnu"))
                    .arg(root.join("app"))
                    .output()
                    .unwrap();
                assert!(
                    run.status.success(),
                    "-march={march} selected for {} but failed: {:?}",
                    name(*m),
                    run.status
                );
                ran += 1;
            }
        }
    }
    eprintln!(
        "CPU: {pairs} (binary, CPU) pairs, match = check-bundle on all; {fit} selected, {ran} of them ran"
    );
    assert!(fit > 5 && fit < pairs, "both outcomes: {fit} of {pairs}");
}

/// A host description with a fixed CPU (Haswell's code-generation features) and the
/// files of the bookworm-mpich root: the same features on every machine.
fn fixed_host(dir: &Path) -> Option<PathBuf> {
    let root = cached_rootfs("bookworm-mpich")?;
    let out = containerspec(&["host", "--root", root.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let haswell: Vec<&str> = "abm aes avx avx2 bmi1 bmi2 cx16 f16c fma lahf_lm mmx movbe pclmulqdq pni popcnt sse sse2 sse4_1 sse4_2 ssse3"
        .split(' ')
        .collect();
    v["arch"] = "x86_64".into();
    v["cpu"]["arch"] = "x86_64".into();
    v["cpu"]["usable_features"] = serde_json::json!(haswell);
    v["cpu"]["features"] = serde_json::json!(haswell);
    let path = dir.join("node01.json");
    std::fs::write(&path, v.to_string()).unwrap();
    Some(path)
}

fn golden(name: &str, got: &str) {
    let path = Path::new(GOLDEN).join(name);
    if std::env::var("CONTAINERSPEC_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(GOLDEN).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        got,
        want,
        "{name} differs from {} (CONTAINERSPEC_UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

/// `containerspec ARGS`'s stdout, asserting success.
pub(crate) fn stdout_of(args: &[&str]) -> String {
    let out = containerspec(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Kubernetes label name part: 63 characters at most, alphanumeric at both ends,
/// `-`, `_`, `.` inside.
fn is_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// A DNS subdomain (a label's prefix).
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Reads a feature file as Node Feature Discovery's local source does
/// (`source/local/local.go`): at most 64 KiB; comments; `# +expiry-time=` in RFC 3339,
/// `# +no-label`, `# +no-feature`, any other directive an error; `key[=value]` lines,
/// the value `true` when left out. Here each key must also be a valid namespaced label.
fn read_nfd(text: &str) -> (Option<String>, BTreeMap<String, String>) {
    assert!(
        text.len() <= 65536,
        "{} bytes: NFD ignores the file",
        text.len()
    );
    let mut expiry = None;
    let mut labels = BTreeMap::new();
    for line in text.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(directive) = line.strip_prefix("# +") {
            let (key, value) = directive.split_once('=').unwrap_or((directive, ""));
            match key {
                "expiry-time" => expiry = Some(value.trim().to_string()),
                "no-label" | "no-feature" => {}
                other => panic!("unknown directive {other:?}"),
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, "true"));
        let (ns, name) = key
            .split_once('/')
            .unwrap_or_else(|| panic!("{key}: no namespace"));
        assert!(
            is_dns_subdomain(ns) && is_label_name(name),
            "{key}: not a label"
        );
        assert!(
            !ns.ends_with("kubernetes.io"),
            "{ns}: a namespace NFD denies"
        );
        labels.insert(key.to_string(), value.to_string());
    }
    (expiry, labels)
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch_of(t: &str) -> i64 {
    let b = t.as_bytes();
    assert!(
        t.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
        "{t}: not RFC 3339 UTC"
    );
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[test]
fn features_and_constraints_are_written_in_the_documented_formats() {
    let dir = TempDir::new("clusters-golden");
    let Some(node) = fixed_host(dir.path()) else {
        return;
    };
    let root = cached_rootfs("bookworm-mpich").unwrap();
    let node_s = node.to_str().unwrap();
    // Slurm: a NodeName line, the helper's answer, helpers.conf.
    let slurm = stdout_of(&["host", "--format", "slurm", "--hosts", node_s]);
    golden("node01.slurm", &slurm);
    let features: Vec<&str> = slurm
        .trim()
        .strip_prefix("NodeName=node01 Features=")
        .unwrap()
        .split(',')
        .collect();
    for f in &features {
        // What slurm.conf, helpers.conf and --constraint accept.
        assert!(f.starts_with("cs_"), "{f}");
        assert!(
            f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
            "{f}"
        );
    }
    for f in [
        "cs_glibc_2.17",
        "cs_glibc_2.36",
        "cs_x86_64_v3",
        "cs_isa_avx2",
        "cs_cpu_haswell",
        "cs_mpi_mpich",
        "cs_mpi_mpich_glibc_2.36",
        "cs_mpi_mpich_glibc_2.50",
    ] {
        assert!(features.contains(&f), "{f} in {features:?}");
    }
    for f in [
        "cs_glibc_2.37",
        "cs_x86_64_v4",
        "cs_isa_avx512f",
        "cs_mpi_mpich_glibc_2.35",
        "cs_mpi_openmpi",
    ] {
        assert!(!features.contains(&f), "{f} in {features:?}");
    }
    let conf = stdout_of(&[
        "host",
        "--format",
        "slurm-helpers-conf",
        "--hosts",
        node_s,
        "--helper",
        "/usr/local/libexec/containerspec-node-features",
    ]);
    golden("helpers.conf", &conf);
    assert_eq!(
        conf.lines().filter(|l| l.starts_with("Feature=")).count(),
        features.len()
    );
    // NFD: the local feature file, as its parser reads it; the expiry a day ahead.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let nfd = stdout_of(&["host", "--format", "nfd", "--hosts", node_s]);
    let (expiry, labels) = read_nfd(&nfd);
    let expiry = expiry.expect("an expiry-time directive");
    let at = epoch_of(&expiry);
    assert!(
        at >= before + 86_400 && at <= before + 86_400 + 120,
        "{expiry}"
    );
    golden("node01.nfd", &nfd.replace(&expiry, "EXPIRY"));
    assert_eq!(labels.len(), features.len());
    for f in &features {
        let label = format!("containerspec.io/{}", f.strip_prefix("cs_").unwrap());
        assert_eq!(
            labels.get(&label).map(String::as_str),
            Some("true"),
            "{label}"
        );
    }
    // Written atomically where NFD reads it: the file, no temporary left.
    let features_d = dir.path().join("features.d");
    std::fs::create_dir_all(&features_d).unwrap();
    let target = features_d.join("containerspec");
    let out = containerspec(&[
        "host",
        "--format",
        "nfd",
        "--hosts",
        node_s,
        "--output",
        target.to_str().unwrap(),
        "--expires-in",
        "90m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (expiry, written) = read_nfd(&std::fs::read_to_string(&target).unwrap());
    assert!((epoch_of(&expiry.unwrap()) - before - 5400).abs() <= 120);
    assert_eq!(written, labels);
    let entries: Vec<_> = std::fs::read_dir(&features_d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries, ["containerspec"]);

    // The image's constraint in each scheduler's form.
    let b = bundle(&dir.path().join("bundle"), &root, MPI_PROGRAM);
    let b = b.to_str().unwrap();
    let constraint = stdout_of(&["match", b, "--inject", "mpi"]);
    golden("bookworm-mpich.constraint", &constraint);
    assert_eq!(constraint, "cs_arch_x86_64&cs_mpi_mpich_glibc_2.36\n");
    for need in constraint.trim().split('&') {
        assert!(features.contains(&need), "{need}: the node offers it");
    }
    let affinity = stdout_of(&["match", b, "--inject", "mpi", "--for", "k8s"]);
    golden("bookworm-mpich.affinity.yaml", &affinity);
    let docs = yaml_rust2::YamlLoader::load_from_str(&affinity).unwrap();
    let terms = &docs[0]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    let expressions = terms[0]["matchExpressions"].as_vec().unwrap();
    let keys: Vec<&str> = expressions
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "containerspec.io/arch_x86_64",
            "containerspec.io/mpi_mpich_glibc_2.36"
        ]
    );
    for e in expressions {
        assert_eq!(e["operator"].as_str(), Some("Exists"));
        assert!(
            labels.contains_key(e["key"].as_str().unwrap()),
            "the node's feature file has it"
        );
    }
    let spec = stdout_of(&["match", b, "--inject", "mpi", "--for", "nfd"]);
    golden("bookworm-mpich.compat.yaml", &spec.replace(b, "IMAGE"));
    let docs = yaml_rust2::YamlLoader::load_from_str(&spec).unwrap();
    let s = &docs[0];
    assert_eq!(s["version"].as_str(), Some("v1alpha1"));
    let rule = &s["compatibilities"][0]["rules"][0];
    assert!(rule["name"].as_str().is_some());
    let m = &rule["matchFeatures"][0];
    assert_eq!(m["feature"].as_str(), Some("local.label"));
    let exprs = m["matchExpressions"].as_hash().unwrap();
    assert_eq!(exprs.len(), 2);
    for (k, v) in exprs {
        assert!(labels.contains_key(k.as_str().unwrap()));
        assert_eq!(v["op"].as_str(), Some("Exists"));
    }
}

#[test]
fn bad_cluster_input_is_named_never_a_panic() {
    let dir = TempDir::new("clusters-bad");
    let Some(node) = fixed_host(dir.path()) else {
        return;
    };
    let root = cached_rootfs("bookworm-mpich").unwrap();
    let b = bundle(&dir.path().join("bundle"), &root, MPI_PROGRAM);
    let b = b.to_str().unwrap();
    let check = |args: &[&str], status: i32, needles: &[&str]| {
        let out = containerspec(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {n:?} in {err}");
        }
    };
    // A host description of another schema version.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&node).unwrap()).unwrap();
    v["schema_version"] = 1.into();
    let old = dir.path().join("old.json");
    std::fs::write(&old, v.to_string()).unwrap();
    check(
        &["match", b, "--hosts", old.to_str().unwrap()],
        2,
        &["old.json", "schema_version 1"],
    );
    check(
        &[
            "host",
            "--format",
            "slurm",
            "--hosts",
            old.to_str().unwrap(),
        ],
        2,
        &["old.json", "schema_version 1"],
    );
    // A feature in containerspec's namespace that it never writes, in slurm.conf.
    let conf = dir.path().join("slurm.conf");
    std::fs::write(&conf, "ClusterName=c\nNodeName=n1 CPUs=1 Features=cs_arch_x86_64,site_ib\nNodeName=n2 Features=cs_arch_x86_64,cs_glibc_two State=UNKNOWN\n").unwrap();
    check(
        &["match", b, "--slurm-conf", conf.to_str().unwrap()],
        2,
        &["slurm.conf", "line 3", "n2", "cs_glibc_two"],
    );
    // A site's own features are left alone.
    std::fs::write(&conf, "NodeName=n1 Features=cs_arch_x86_64,site_ib\n").unwrap();
    let out = containerspec(&["match", b, "--slurm-conf", conf.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fits  n1"));
    // An image for another architecture is placed on that architecture's nodes.
    // (CI builds the registry rig's layouts; elsewhere a missing one is said, not hidden.)
    let layouts = crate::util::rootfs_cache().join("../registry/layouts/base");
    if layouts.join("index.json").exists()
        || missing("the registry rig's layouts are not built: run tests/rigs/registry.sh")
    {
        let arm = format!("{}:bookworm-arm64", layouts.display());
        let out = containerspec(&["match", &arm]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "cs_arch_aarch64\n");
    }
    // Options that do not fit together, and a bad duration.
    check(
        &["host", "--format", "slurm-helpers-conf"],
        2,
        &["--helper"],
    );
    check(
        &[
            "host",
            "--format",
            "slurm-helpers-conf",
            "--helper",
            "relative/path",
        ],
        2,
        &["absolute"],
    );
    check(
        &["host", "--format", "nfd", "--expires-in", "0"],
        2,
        &["--expires-in"],
    );
    check(
        &["host", "--format", "nfd", "--expires-in", "7y"],
        2,
        &["--expires-in"],
    );
    check(&["match", b, "--inject", "infiniband"], 2, &["infiniband"]);
}

/// Every form of one image gives one constraint: the SIF Apptainer built from a root (read
/// in place), and the root itself as a bundle.
#[test]
fn a_sif_and_the_root_it_was_built_from_need_the_same_nodes() {
    let Some((_, sif, rootfs)) = crate::apptainer::rig("trixie-mpich") else {
        return;
    };
    let dir = TempDir::new("clusters-sif");
    let b = bundle(&dir.path().join("bundle"), &rootfs, MPI_PROGRAM);
    let from_sif = stdout_of(&["match", sif.to_str().unwrap(), "--inject", "mpi"]);
    let from_root = stdout_of(&["match", b.to_str().unwrap(), "--inject", "mpi"]);
    assert_eq!(from_sif, from_root);
    assert_eq!(from_sif, "cs_arch_x86_64&cs_mpi_mpich_glibc_2.41\n");
}
