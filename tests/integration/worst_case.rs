//! The limits that bound what an image can make the hook read, at and past the limit: a
//! dynamic symbol table one past [`MAX_DYNAMIC_SYMBOLS`] is refused by name, and the
//! worst-case benchmark (ignored here; `tests/bench/run.sh` runs it) judges a real MPICH
//! container whose loader cache and MPI library are the largest the limits accept,
//! against the same container as Debian ships it.

use std::path::{Path, PathBuf};
use std::process::Command;

use containerspec::inventory::elf::{MAX_DYNAMIC_SYMBOLS, dynamic_symbols};

use crate::util::{cached_rootfs, is_root, scratch};

/// A real shared library (assembled and linked by gcc) defining `count` functions, with
/// `soname`.
fn library_with_symbols(dir: &Path, soname: &str, count: usize) -> PathBuf {
    use std::io::Write;
    let asm = dir.join(format!("{soname}.s"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&asm).unwrap());
    writeln!(out, ".text").unwrap();
    for i in 0..count {
        writeln!(
            out,
            ".globl MPIX_s{i}\n.type MPIX_s{i},@function\nMPIX_s{i}: ret"
        )
        .unwrap();
    }
    drop(out);
    let lib = dir.join(soname);
    let built = Command::new("gcc")
        .args([
            "-shared",
            "-nostdlib",
            &format!("-Wl,-soname,{soname}"),
            "-o",
        ])
        .arg(&lib)
        .arg(&asm)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let _ = std::fs::remove_file(asm);
    lib
}

fn have_gcc() -> bool {
    let found = Command::new("gcc").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
            "gcc is missing (tests/rigs/setup.sh installs it)"
        );
        eprintln!("skipping: needs gcc");
    }
    found
}

#[test]
fn a_symbol_table_past_the_limit_is_refused_by_name() {
    if !have_gcc() {
        return;
    }
    let dir = scratch("symbols-past-limit");
    let lib = library_with_symbols(&dir, "libmany.so.12", MAX_DYNAMIC_SYMBOLS + 8);
    let bytes = std::fs::read(&lib).unwrap();
    let err = dynamic_symbols(&bytes).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "more than the {MAX_DYNAMIC_SYMBOLS} this reader takes"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// One measured run: wall seconds (the run's overlay mount included, the same for every
/// case), the judging process's peak resident memory (KiB), and the exit status.
struct Run {
    seconds: f64,
    peak_kib: u64,
    status: i32,
    stdout: String,
}

/// Runs `check-bundle` on `bundle` whose rootfs is an overlay of `lower` and `upper`,
/// mounted in a private mount namespace for this run only.
fn measure(bundle: &Path, lower: &Path, upper: &Path) -> Run {
    let work = bundle.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {}/rootfs && \
         exec /usr/bin/time -f 'TIME %e %M' -o {}/time {} check-bundle {} --inject mpi --no-cache --json",
        lower.display(),
        upper.display(),
        work.display(),
        bundle.display(),
        bundle.display(),
        env!("CARGO_BIN_EXE_containerspec"),
        bundle.display(),
    );
    let start = std::time::Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let time = std::fs::read_to_string(bundle.join("time")).unwrap_or_default();
    let fields: Vec<&str> = time
        .lines()
        .find_map(|l| l.strip_prefix("TIME "))
        .unwrap_or_else(|| {
            panic!(
                "no timing: {time}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .split(' ')
        .collect();
    Run {
        seconds,
        peak_kib: fields[1].parse().unwrap(),
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

#[test]
#[ignore = "a benchmark: tests/bench/run.sh runs it"]
fn worst_case_inputs_the_limits_allow() {
    use containerspec::ldcache::write::{NewEntry, write};
    if !is_root() || !have_gcc() {
        eprintln!("skipping: the worst-case benchmark needs root (overlay mounts) and gcc");
        return;
    }
    let Some(lower) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let rounds: usize = std::env::var("CONTAINERSPEC_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let dir = scratch("worst-case");
    let libdir = "usr/lib/x86_64-linux-gnu";

    // The largest loader cache the reader accepts: MAX_ENTRIES entries.
    let cache_upper = dir.join("upper-cache");
    std::fs::create_dir_all(cache_upper.join("etc")).unwrap();
    let entries: Vec<NewEntry> = (0..containerspec::ldcache::MAX_ENTRIES)
        .map(|i| NewEntry {
            soname: format!("libworst{i}.so.1"),
            path: format!("/usr/lib/x86_64-linux-gnu/libworst{i}.so.1"),
            flags: 0x0303,
            hwcaps: None,
        })
        .collect();
    let cache = write(&entries).unwrap();
    std::fs::write(cache_upper.join("etc/ld.so.cache"), &cache).unwrap();

    // The largest dynamic symbol table accepted, as the container's libmpich.so.12.
    let symbols_upper = dir.join("upper-symbols");
    std::fs::create_dir_all(symbols_upper.join(libdir)).unwrap();
    let lib = library_with_symbols(&dir, "libmpich.so.12", MAX_DYNAMIC_SYMBOLS - 8);
    let lib_size = std::fs::metadata(&lib).unwrap().len();
    std::fs::rename(&lib, symbols_upper.join(libdir).join("libmpich.so.12.2.2")).unwrap();

    let both_upper = dir.join("upper-both");
    std::fs::create_dir_all(both_upper.join("etc")).unwrap();
    std::fs::create_dir_all(both_upper.join(libdir)).unwrap();
    std::fs::write(both_upper.join("etc/ld.so.cache"), &cache).unwrap();
    std::fs::hard_link(
        symbols_upper.join(libdir).join("libmpich.so.12.2.2"),
        both_upper.join(libdir).join("libmpich.so.12.2.2"),
    )
    .unwrap();
    let normal_upper = dir.join("upper-normal");
    std::fs::create_dir_all(&normal_upper).unwrap();

    let cases = [
        ("as shipped (baseline)", normal_upper),
        (
            &*format!(
                "loader cache of {} entries",
                containerspec::ldcache::MAX_ENTRIES
            ),
            cache_upper,
        ),
        (
            &*format!("libmpich with {} symbols", MAX_DYNAMIC_SYMBOLS - 8),
            symbols_upper,
        ),
        ("both", both_upper),
    ]
    .map(|(name, upper)| (name.to_string(), upper));
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["/opt/containerspec-test/mpi-version"],
                    "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}]},
    });
    let bundles: Vec<PathBuf> = (0..cases.len())
        .map(|i| {
            let b = dir.join(format!("bundle-{i}"));
            std::fs::create_dir_all(b.join("rootfs")).unwrap();
            std::fs::write(b.join("config.json"), config.to_string()).unwrap();
            b
        })
        .collect();

    let mut runs: Vec<Vec<Run>> = (0..cases.len()).map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, upper)) in cases.iter().enumerate() {
            runs[i].push(measure(&bundles[i], &lower, upper));
        }
    }
    // Every case was judged (a verdict, not an error) and took its input as within the
    // limits: the figures are those of the limits, not of a refusal.
    for ((name, _), r) in cases.iter().zip(&runs) {
        let last = r.last().unwrap();
        assert!(
            matches!(last.status, 0 | 1),
            "{name}: exit {}: {}",
            last.status,
            last.stdout
        );
        assert!(
            !last.stdout.contains("ld-cache-too-large")
                && !last.stdout.contains("this reader takes"),
            "{name}: the input was refused: {}",
            last.stdout
        );
    }
    println!(
        "\nworst cases the limits allow: check-bundle --inject mpi --no-cache on bookworm MPICH, \
         {rounds} rounds interleaved, wall time with the overlay mount (loader cache {:.1} MiB, \
         libmpich {:.1} MiB)",
        cache.len() as f64 / 1048576.0,
        lib_size as f64 / 1048576.0
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>8} {:>11} {:>8}  verdict",
        "case", "median s", "q1", "q3", "ratio", "peak MiB", "ratio"
    );
    let (_, base_t, _) = quartiles(runs[0].iter().map(|r| r.seconds).collect());
    let (_, base_m, _) = quartiles(runs[0].iter().map(|r| r.peak_kib as f64).collect());
    for ((name, _), r) in cases.iter().zip(&runs) {
        let (q1, med, q3) = quartiles(r.iter().map(|r| r.seconds).collect());
        let (_, mem, _) = quartiles(r.iter().map(|r| r.peak_kib as f64).collect());
        let verdict = serde_json::from_str::<serde_json::Value>(&r[0].stdout)
            .map(|v| v["verdict"].as_str().unwrap_or("?").to_string())
            .unwrap_or_else(|_| "?".into());
        println!(
            "{name:<34} {med:>9.3} {q1:>9.3} {q3:>9.3} {:>7.1}x {:>11.1} {:>7.1}x  {verdict}",
            med / base_t.max(0.001),
            mem / 1024.0,
            mem / base_m.max(1.0)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
