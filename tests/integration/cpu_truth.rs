//! The CPU verdict against real runs. Binaries are built here the ways people build them
//! (gcc with `-march=` for gcc's and archspec's names, `-march=native`, mixed objects,
//! run-time dispatch, `-mneeded`, `-z x86-64-vN`, `-frecord-gcc-switches`, stripped
//! files, glibc-hwcaps copies; clang with its command line recorded; Go with
//! `GOAMD64=v1..v4`), put in a bundle, judged by `check-bundle` running under
//! `qemu-x86_64 -cpu MODEL` (Debian's qemu-user, whose models lack AVX-512: the verdict
//! reads the emulated CPUID) and on this machine's own CPU (the AVX-512 reference), and
//! by `--host-target` with the Intel models' names; then run for real on the same CPU.
//!
//! Each (binary, CPU) pair is one of: right (compatible and it runs, or incompatible and it
//! fails), false compatible, false incompatible, or unknown (the verdict says the files
//! cannot tell: `microarch-unknown`, `microarch-unverified`, `cpu-target-unknown`). The
//! matrix is printed; the test fails on any false compatible where the files record the
//! target, and on any false incompatible whose missing features the CPU in fact has (a
//! refusal from naming).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::TempDir;

/// qemu's CPU models, each judged as the archspec target `host` names it from its CPUID.
const MODELS: &[&str] = &[
    "Nehalem",
    "SandyBridge",
    "Haswell",
    "Skylake-Client",
    "EPYC",
    "EPYC-Rome",
    "EPYC-Milan",
];

const PROGRAM: &str = r#"
#include <stdint.h>
#include <stdio.h>
#define N 4096
double a[N], b[N], c[N];
float fa[N], fb[N];
void kernel(int n);
int main(int argc, char **argv) {
  volatile uint64_t x = (uint64_t)argc * 0x123456789ULL;
  uint64_t v = x;
  int p = __builtin_popcountll(v), z = __builtin_clzll(v), t = __builtin_ctzll(v);
  for (int i = 0; i < N; i++) { a[i] = i; b[i] = 0.5; c[i] = 1; fa[i] = i; fb[i] = 2; }
  kernel(N);
  printf("%d %d %d %f %f\n", p, z, t, a[N-1], fa[7]);
  return 0;
}
"#;

/// Vectorisable floating-point work: FMA, AVX2, AVX-512 with 512-bit vectors preferred.
const KERNEL: &str = r#"
#define N 4096
extern double a[N], b[N], c[N];
extern float fa[N], fb[N];
__attribute__((noinline)) void kernel(int n) {
  for (int i = 0; i < n; i++) a[i] = a[i] * b[i] + c[i];
  for (int i = 0; i < n; i++) fa[i] = fa[i] * fb[i] + fa[i];
}
"#;

/// How the AVX-512 kernel of the mixed and dispatching builds is compiled.
const AVX512_KERNEL: &[&str] = &[
    "-c",
    "-O3",
    "-g",
    "-march=skylake-avx512",
    "-mprefer-vector-width=512",
    "kernel.c",
];

/// A baseline main that runs an AVX-512 kernel only where the CPU has it.
const DISPATCH_MAIN: &str = r#"
#include <stdio.h>
#define N 4096
double a[N], b[N], c[N];
float fa[N], fb[N];
void kernel(int n);
static void plain(int n) { for (int i = 0; i < n; i++) a[i] = a[i] * b[i] + c[i]; }
int main(void) {
  for (int i = 0; i < N; i++) { a[i] = i; b[i] = 0.5; c[i] = 1; fa[i] = i; fb[i] = 2; }
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) kernel(N); else plain(N);
  printf("%f\n", a[N-1]);
  return 0;
}
"#;

const LIBRARY: &str = r#"
#define N 4096
double la[N], lb[N];
double work(void) {
  for (int i = 0; i < N; i++) { la[i] = i; lb[i] = 0.25; }
  double s = 0;
  for (int i = 0; i < N; i++) s += la[i] * lb[i] + la[i];
  return s;
}
"#;

const LIBRARY_MAIN: &str = r#"
#include <stdio.h>
double work(void);
int main(void) { printf("%f\n", work()); return 0; }
"#;

const GO_PROGRAM: &str = r#"package main

import "fmt"

func main() {
	s := 0.0
	for i := 0; i < 4096; i++ {
		s += float64(i) * 0.5
	}
	fmt.Println(s)
}
"#;

/// One built binary: a bundle whose entrypoint it is, and how to run it on this machine.
struct Case {
    name: String,
    /// What the files record, for the matrix: "recorded" or "unrecorded".
    recorded: bool,
    bundle: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Right,
    FalseCompatible,
    FalseIncompatible,
    Unknown,
}

struct Builder {
    dir: PathBuf,
    cases: Vec<Case>,
}

impl Builder {
    /// A bundle with this machine's glibc (the binaries are built against it) and `files`
    /// (rootfs path, host file) besides the entrypoint `/app`.
    fn bundle(&mut self, name: &str, app: &Path, extra: &[(&str, PathBuf)], recorded: bool) {
        let bundle = self.dir.join(format!("bundle-{name}"));
        let root = bundle.join("rootfs");
        for d in ["lib64", "lib/x86_64-linux-gnu", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for lib in ["libc.so.6", "libm.so.6"] {
            std::fs::copy(
                Path::new("/lib/x86_64-linux-gnu").join(lib),
                root.join("lib/x86_64-linux-gnu").join(lib),
            )
            .unwrap();
        }
        std::fs::copy(
            "/lib64/ld-linux-x86-64.so.2",
            root.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        std::fs::write(root.join("etc/ld.so.conf"), "/lib/x86_64-linux-gnu\n").unwrap();
        std::fs::copy(app, root.join("app")).unwrap();
        for (dest, src) in extra {
            let to = root.join(dest.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(src, &to).unwrap();
        }
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/app"],"env":["PATH=/bin"],"cwd":"/"},"root":{"path":"rootfs"}}"#,
        )
        .unwrap();
        self.cases.push(Case {
            name: name.to_string(),
            recorded,
            bundle,
        });
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn gcc(&self, out: &str, args: &[&str]) -> PathBuf {
        self.cc("gcc", out, args)
    }

    fn cc(&self, compiler: &str, out: &str, args: &[&str]) -> PathBuf {
        let path = self.dir.join(out);
        let mut cc = Command::new(compiler);
        cc.current_dir(&self.dir).args(args).arg("-o").arg(&path);
        succeed(&mut cc, &format!("{compiler} {args:?}"));
        path
    }

    /// main and kernel, each compiled by gcc with `flags`, linked with `link`.
    fn c_program(&mut self, name: &str, flags: &[&str], link: &[&str], recorded: bool) {
        self.program_by("gcc", name, flags, link, recorded);
    }

    fn program_by(
        &mut self,
        compiler: &str,
        name: &str,
        flags: &[&str],
        link: &[&str],
        recorded: bool,
    ) {
        let objects = ["main", "kernel"].map(|unit| {
            let mut args = vec!["-c", "-O3"];
            args.extend(flags);
            args.push(if unit == "main" { "main.c" } else { "kernel.c" });
            self.cc(compiler, &format!("{name}-{unit}.o"), &args)
        });
        let mut args: Vec<&str> = objects.iter().map(|p| p.to_str().unwrap()).collect();
        args.extend(link);
        let app = self.cc(compiler, &format!("{name}.bin"), &args);
        self.bundle(name, &app, &[], recorded);
    }
}

/// Builds every case; Go ones only where `go` is installed (it is in CI).
fn build(dir: &Path) -> Vec<Case> {
    let mut b = Builder {
        dir: dir.to_path_buf(),
        cases: Vec::new(),
    };
    b.write("main.c", PROGRAM);
    b.write("kernel.c", KERNEL);
    // gcc's and archspec's names, recorded in the DWARF producer by -g.
    for march in [
        "x86-64",
        "x86-64-v2",
        "x86-64-v3",
        "nehalem",
        "corei7",
        "sandybridge",
        "corei7-avx",
        "haswell",
        "core-avx2",
        "skylake",
        "znver1",
        "znver2",
        "znver3",
        "icelake-client",
        "alderlake",
        "skylake-avx512",
        "icelake-server",
        "tigerlake",
        "cooperlake",
        "sapphirerapids",
    ] {
        let arg = format!("-march={march}");
        b.c_program(
            &format!("g-{march}"),
            &["-g", &arg, "-mprefer-vector-width=512"],
            &[],
            true,
        );
    }
    b.c_program(
        "g-x86-64-v4",
        &["-g", "-march=x86-64-v4", "-mprefer-vector-width=512"],
        &[],
        true,
    );
    // -march=native: gcc records the name and every -m option it expanded to.
    b.c_program("g-native", &["-g", "-march=native"], &[], true);
    // clang: its command line in .GCC.command.line (-frecord-command-line) or in the
    // DWARF producer (-grecord-command-line); -march=native recorded as written; and
    // plain -g, whose producer names no target.
    b.program_by(
        "clang",
        "clang-record-haswell",
        &["-frecord-command-line", "-march=haswell"],
        &[],
        true,
    );
    b.program_by(
        "clang",
        "clang-g-znver3",
        &["-g", "-grecord-command-line", "-march=znver3"],
        &[],
        true,
    );
    b.program_by(
        "clang",
        "clang-g-x86-64-v4",
        &[
            "-g",
            "-grecord-command-line",
            "-march=x86-64-v4",
            "-mprefer-vector-width=512",
        ],
        &[],
        true,
    );
    b.program_by(
        "clang",
        "clang-native",
        &["-frecord-command-line", "-march=native"],
        &[],
        false,
    );
    b.program_by(
        "clang",
        "clang-plain-haswell",
        &["-g", "-march=haswell"],
        &[],
        false,
    );
    // -frecord-gcc-switches without debug information.
    b.c_program(
        "switches-haswell",
        &["-frecord-gcc-switches", "-march=haswell"],
        &[],
        true,
    );
    b.c_program(
        "switches-znver3",
        &["-frecord-gcc-switches", "-march=znver3"],
        &[],
        true,
    );
    // ISA-level notes: -mneeded marks what the code was built for; -z x86-64-vN says
    // more than baseline code needs, and glibc's loader enforces it.
    b.c_program(
        "mneeded-haswell",
        &["-mneeded", "-march=haswell"],
        &[],
        true,
    );
    b.c_program("mneeded-v2", &["-mneeded", "-march=x86-64-v2"], &[], true);
    b.c_program("z-x86-64-v3", &[], &["-Wl,-z,x86-64-v3"], true);
    // Nothing recorded: stripped, built for haswell, and a baseline build.
    b.c_program("stripped-haswell", &["-march=haswell"], &["-s"], false);
    b.c_program("stripped-baseline", &[], &["-s"], false);
    // A baseline main with an AVX-512 kernel, called unguarded; both link orders.
    for (name, first) in [
        ("mixed-main-first", "main"),
        ("mixed-kernel-first", "kernel"),
    ] {
        let main = b.gcc(
            &format!("{name}-main.o"),
            &["-c", "-O3", "-g", "-march=x86-64", "main.c"],
        );
        let kernel = b.gcc(&format!("{name}-kernel.o"), AVX512_KERNEL);
        let (one, two) = if first == "main" {
            (&main, &kernel)
        } else {
            (&kernel, &main)
        };
        let app = b.gcc(
            &format!("{name}.bin"),
            &[one.to_str().unwrap(), two.to_str().unwrap()],
        );
        b.bundle(name, &app, &[], true);
    }
    // The same kernel behind __builtin_cpu_supports.
    b.write("dispatch.c", DISPATCH_MAIN);
    let main = b.gcc(
        "dispatch-main.o",
        &["-c", "-O3", "-g", "-march=x86-64", "dispatch.c"],
    );
    let kernel = b.gcc("dispatch-kernel.o", AVX512_KERNEL);
    let app = b.gcc(
        "dispatch.bin",
        &[main.to_str().unwrap(), kernel.to_str().unwrap()],
    );
    b.bundle("dispatch-avx512", &app, &[], true);
    // glibc-hwcaps: a baseline library and an x86-64-v4 copy the loader picks only on a
    // v4 CPU; and a copy in the v3 directory built for more than v3 (a packaging bug).
    b.write("lib.c", LIBRARY);
    b.write("libmain.c", LIBRARY_MAIN);
    let base = b.gcc(
        "libwork-base.so",
        &[
            "-shared",
            "-fPIC",
            "-O3",
            "-g",
            "-march=x86-64",
            "-Wl,-soname,libwork.so",
            "lib.c",
        ],
    );
    let v4 = b.gcc(
        "libwork-v4.so",
        &[
            "-shared",
            "-fPIC",
            "-O3",
            "-g",
            "-march=x86-64-v4",
            "-mprefer-vector-width=512",
            "-Wl,-soname,libwork.so",
            "lib.c",
        ],
    );
    let app = b.gcc(
        "hwcaps.bin",
        &[
            "-O2",
            "-g",
            "libmain.c",
            "-L.",
            "-l:libwork-base.so",
            "-Wl,-rpath,$ORIGIN/opt/work/lib",
        ],
    );
    let lib = "/opt/work/lib/libwork.so";
    let v4_copy = "/opt/work/lib/glibc-hwcaps/x86-64-v4/libwork.so";
    let v3_copy = "/opt/work/lib/glibc-hwcaps/x86-64-v3/libwork.so";
    b.bundle(
        "hwcaps-v4-copy",
        &app,
        &[(lib, base.clone()), (v4_copy, v4.clone())],
        true,
    );
    b.bundle(
        "hwcaps-v3-dir-holds-v4-code",
        &app,
        &[(lib, base), (v3_copy, v4)],
        true,
    );
    // Go: GOAMD64=v1..v4.
    if on_path("go") {
        b.write("go.mod", "module truth\n\ngo 1.18\n");
        b.write("main.go", GO_PROGRAM);
        for level in 1..=4 {
            let out = b.dir.join(format!("go-v{level}.bin"));
            let mut go = Command::new("go");
            go.current_dir(&b.dir)
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .env("GOAMD64", format!("v{level}"))
                .env("GOCACHE", b.dir.join("gocache"))
                .env("GOPATH", b.dir.join("gopath"))
                .env("GOFLAGS", "-mod=mod")
                .env("CGO_ENABLED", "0");
            succeed(&mut go, "go build");
            b.bundle(&format!("go-v{level}"), &out, &[], true);
        }
    }
    b.cases
}

/// Whether `tool` is an executable on `PATH`.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file()))
    })
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds.
fn succeed(cmd: &mut Command, what: &str) {
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `program` to run under qemu as `model`, or natively.
pub(crate) fn on_cpu(model: Option<&str>, program: &Path) -> Command {
    match model {
        Some(m) => {
            let mut c = Command::new("qemu-x86_64");
            c.args(["-cpu", m]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Runs the bundle's entrypoint on this machine, under qemu as `model` or natively: a
/// dynamic one by the bundle's own loader with the bundle's libraries, whatever this
/// machine's cache says.
fn runs(case: &Case, model: Option<&str>) -> bool {
    let root = case.bundle.join("rootfs");
    let app = root.join("app");
    let mut cmd = if is_static(&app) {
        on_cpu(model, &app)
    } else {
        let mut c = on_cpu(model, &root.join("lib64/ld-linux-x86-64.so.2"));
        c.arg("--library-path")
            .arg(root.join("lib/x86_64-linux-gnu"))
            .arg(&app);
        c
    };
    cmd.output().unwrap().status.success()
}

fn is_static(path: &Path) -> bool {
    let out = Command::new("readelf")
        .arg("-l")
        .arg(path)
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).contains("INTERP")
}

/// Who judges: `check-bundle` run under the emulated CPU (it detects that CPU), run here
/// with `--host-target NAME`, or run here as this machine.
#[derive(Clone, Copy)]
enum Judge<'a> {
    Emulated(&'a str),
    Named(&'a str),
    Native,
}

/// The verdict, whether it says the files cannot tell, and the features it says are
/// missing.
fn judge(case: &Case, by: Judge) -> (bool, bool, Vec<String>) {
    let exe = Path::new(env!("CARGO_BIN_EXE_containerspec"));
    let model = match by {
        Judge::Emulated(model) => Some(model),
        _ => None,
    };
    let mut cmd = on_cpu(model, exe);
    cmd.args(["check-bundle", "--json", "--no-cache"])
        .arg(&case.bundle);
    if let Judge::Named(t) = by {
        cmd.args(["--host-target", t]);
    }
    let out = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let findings = report["findings"].as_array().unwrap();
    let compatible = report["verdict"] == "compatible";
    let unknown = findings.iter().any(|f| {
        matches!(
            f["code"].as_str(),
            Some("microarch-unknown" | "microarch-unverified" | "cpu-target-unknown")
        )
    });
    let missing = findings
        .iter()
        .filter(|f| f["code"] == "microarch-unsupported")
        .flat_map(|f| f["versions"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (compatible, unknown, missing)
}

/// What `host --json` says under qemu as `model`: its target name and usable features.
fn emulated_host(model: &str) -> (String, BTreeSet<String>) {
    let exe = Path::new(env!("CARGO_BIN_EXE_containerspec"));
    let out = on_cpu(Some(model), exe)
        .args(["host", "--json", "--no-cache"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "host under {model}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpu = &v["cpu"];
    let features = cpu["usable_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    (
        cpu["microarchitecture"].as_str().unwrap().to_string(),
        features,
    )
}

#[test]
fn cpu_verdicts_match_real_runs() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipping: the CPU truth matrix is built for x86_64");
        return;
    }
    let ci = std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() == Ok("1");
    for tool in ["gcc", "clang", "qemu-x86_64", "go", "readelf"] {
        if !on_path(tool) {
            assert!(
                !ci,
                "{tool} is not installed (tests/rigs/setup.sh installs it)"
            );
            eprintln!("skipping: {tool} is not installed (tests/rigs/setup.sh installs it)");
            return;
        }
    }
    let dir = TempDir::new("cpu-truth");
    let cases = build(dir.path());
    let native: BTreeSet<String> = containerspec::inventory::cpu::host_cpu()
        .usable_features
        .into_iter()
        .collect();
    // Each emulated CPU judges for itself (check-bundle runs under it and reads its
    // CPUID), then this machine's CPU, the AVX-512 reference.
    let mut cpus: Vec<Cpu> = MODELS
        .iter()
        .map(|m| Cpu {
            label: m.to_string(),
            model: Some(m),
            judge: Judge::Emulated(m),
            features: emulated_host(m).1,
        })
        .collect();
    cpus.push(Cpu {
        label: "this machine".into(),
        model: None,
        judge: Judge::Native,
        features: native,
    });
    let detected = matrix(
        &cases,
        &cpus,
        "judged by check-bundle on each CPU (detected)",
    );
    // And by name: `--host-target` with gcc's/archspec's name of each Intel model, where
    // the emulated CPU has every feature of the name (TCG lacks SHA, so the zen names
    // claim more than qemu's EPYC models have).
    let mut named = Vec::new();
    for (model, name) in NAMED {
        let features = emulated_host(model).1;
        let claimed = containerspec::inventory::cpu::target_features(name).unwrap();
        let beyond: Vec<&String> = claimed.difference(&features).collect();
        assert!(beyond.is_empty(), "{model} lacks {beyond:?} of {name}");
        named.push(Cpu {
            label: format!("{model}={name}"),
            model: Some(model),
            judge: Judge::Named(name),
            features,
        });
    }
    let by_name = matrix(&cases, &named, "judged with --host-target NAME");
    let failures: Vec<String> = detected.1.into_iter().chain(by_name.1).collect();
    assert!(
        failures.is_empty(),
        "{}\n{}\n{}",
        failures.join("\n"),
        detected.0,
        by_name.0
    );
}

/// qemu's Intel models and the name each is judged as with `--host-target`.
const NAMED: &[(&str, &str)] = &[
    ("Nehalem", "nehalem"),
    ("SandyBridge", "sandybridge"),
    ("Haswell", "haswell"),
    ("Skylake-Client", "skylake"),
];

struct Cpu {
    label: String,
    model: Option<&'static str>,
    judge: Judge<'static>,
    features: BTreeSet<String>,
}

/// Judges and runs every case on every CPU; prints the matrix and its counts, and returns
/// them with the failures: a false compatible where the files record the target, a false
/// incompatible naming a feature the CPU has.
fn matrix(cases: &[Case], cpus: &[Cpu], title: &str) -> (String, Vec<String>) {
    let mut text = format!("{title}\n{:<28} ", "binary");
    for c in cpus {
        let _ = write!(text, "{:<16}", c.label);
    }
    text.push('\n');
    let mut counts = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    let mut unused = Vec::new();
    for case in cases {
        let _ = write!(text, "{:<28} ", case.name);
        for cpu in cpus {
            let ran = runs(case, cpu.model);
            let (compatible, unknown, missing) = judge(case, cpu.judge);
            let class = match (compatible, ran) {
                (true, _) if unknown => Class::Unknown,
                (true, true) | (false, false) => Class::Right,
                (true, false) => Class::FalseCompatible,
                (false, true) => Class::FalseIncompatible,
            };
            let cell = match class {
                Class::Right if ran => "ok/runs",
                Class::Right => "ok/fails",
                Class::FalseCompatible => "FALSE-COMPAT",
                Class::FalseIncompatible => "false-incomp",
                Class::Unknown if ran => "unknown/runs",
                Class::Unknown => "unknown/fails",
            };
            let _ = write!(text, "{cell:<16}");
            let recorded = if case.recorded {
                "recorded"
            } else {
                "unrecorded"
            };
            *counts.entry((format!("{class:?}"), recorded)).or_insert(0) += 1;
            if class == Class::FalseCompatible && case.recorded {
                failures.push(format!(
                    "{} on {}: compatible, but it fails",
                    case.name, cpu.label
                ));
            }
            if class == Class::FalseIncompatible {
                let present: Vec<&String> = missing
                    .iter()
                    .filter(|f| cpu.features.contains(*f))
                    .collect();
                if missing.is_empty() || !present.is_empty() {
                    failures.push(format!(
                        "{} on {}: refused for {missing:?}, which the CPU has ({present:?})",
                        case.name, cpu.label
                    ));
                } else {
                    unused.push(format!(
                        "{} on {}: lacks {}",
                        case.name,
                        cpu.label,
                        missing.join(" ")
                    ));
                }
            }
        }
        text.push('\n');
    }
    let _ = writeln!(text, "\ncounts (class, what the files record): {counts:?}");
    if !unused.is_empty() {
        let _ = writeln!(
            text,
            "false incompatible: the CPU lacks a feature the target lets the compiler use, which this program happened not to use:\n  {}",
            unused.join("\n  ")
        );
    }
    println!("{text}");
    (text, failures)
}

/// `host` under an emulated Nehalem judges with Nehalem's features: CPUID (through the
/// emulator) wins over the real machine's /proc/cpuinfo, and a haswell build is refused.
#[test]
fn host_under_an_emulated_nehalem() {
    if !cfg!(target_arch = "x86_64") || !on_path("qemu-x86_64") || !on_path("gcc") {
        assert!(
            std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
            "qemu-x86_64 or gcc missing"
        );
        eprintln!("skipping: needs qemu-x86_64 and gcc on x86_64");
        return;
    }
    let (name, features) = emulated_host("Nehalem");
    assert_eq!(name, "nehalem");
    for f in ["sse4_2", "popcnt", "ssse3"] {
        assert!(features.contains(f), "{f}: {features:?}");
    }
    for f in ["avx", "avx2", "avx512f", "aes"] {
        assert!(!features.contains(f), "{f}: {features:?}");
    }
    let dir = TempDir::new("cpu-nehalem");
    let mut b = Builder {
        dir: dir.path().to_path_buf(),
        cases: Vec::new(),
    };
    b.write("main.c", PROGRAM);
    b.write("kernel.c", KERNEL);
    b.c_program("haswell", &["-g", "-march=haswell"], &[], true);
    b.c_program("nehalem", &["-g", "-march=nehalem"], &[], true);
    let exe = Path::new(env!("CARGO_BIN_EXE_containerspec"));
    for (case, want) in b.cases.iter().zip([1, 0]) {
        let out = on_cpu(Some("Nehalem"), exe)
            .args(["check-bundle", "--no-cache"])
            .arg(&case.bundle)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(want), "{}: {text}", case.name);
        if want == 1 {
            assert!(
                text.contains("nehalem (detected) lacks") && text.contains("avx2"),
                "{text}"
            );
        }
        assert_eq!(runs(case, Some("Nehalem")), want == 0, "{}", case.name);
    }
}
