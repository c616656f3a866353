//! The `-march=` name table against the compilers themselves: for every name each gcc
//! accepts, `gcc -march=NAME -Q --help=target` lists the ISA options it enables, and the
//! table must hold exactly the union of those answers (mapped to `/proc/cpuinfo` flags).
//! Two real gccs: this machine's (Debian 12, gcc 12) and the trixie test root's (gcc 14,
//! run by `chroot`). `CONTAINERSPEC_UPDATE_GCC_MARCH=1` rewrites the table from them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use containerspec::inventory::cpu::{gcc_flag_feature, gcc_march_features, gcc_march_names};

use crate::util::{cached_rootfs, root_or_skip};

type Answers = BTreeMap<String, BTreeSet<String>>;

/// Runs a gcc (`argv` is the command before its own arguments) and returns its version
/// line and, for each `-march=` name it accepts, its code-generation features.
fn ask(argv: &[&str]) -> (String, Answers) {
    let run = |args: &[&str]| {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let version = run(&["--version"]).lines().next().unwrap_or("").to_string();
    let listing = run(&[
        "-march=not-a-cpu",
        "-x",
        "c",
        "-c",
        "/dev/null",
        "-o",
        "/dev/null",
    ]);
    let names: Vec<String> = listing
        .lines()
        .find_map(|l| l.split_once("switch are: ").map(|(_, n)| n.to_string()))
        .unwrap_or_else(|| panic!("{argv:?} lists no -march names: {listing}"))
        .split_whitespace()
        .filter(|n| *n != "native")
        .map(String::from)
        .collect();
    assert!(names.len() > 40, "{argv:?}: {names:?}");
    let mut answers = Answers::new();
    for name in names {
        let help = run(&[&format!("-march={name}"), "-Q", "--help=target"]);
        let features: BTreeSet<String> = help
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let flag = words.next()?.strip_prefix("-m")?;
                (words.next() == Some("[enabled]")).then_some(flag)
            })
            .filter_map(gcc_flag_feature)
            .map(String::from)
            .collect();
        assert!(features.contains("sse2"), "{name}: {help}");
        answers.insert(name, features);
    }
    (version, answers)
}

/// The table as the library reads it.
fn table() -> Answers {
    gcc_march_names()
        .into_iter()
        .map(|n| {
            let features = gcc_march_features(&n).unwrap();
            (n, features)
        })
        .collect()
}

#[test]
fn gcc_march_table() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipping: the -march table is x86's");
        return;
    }
    let Some(trixie) = cached_rootfs("trixie-mpich") else {
        return;
    };
    if !root_or_skip("chroot into the trixie root for its gcc 14") {
        return;
    }
    let trixie = trixie.to_string_lossy().into_owned();
    let compilers = [ask(&["gcc"]), ask(&["chroot", &trixie, "gcc-14"])];
    let mut union = Answers::new();
    for (_, answers) in &compilers {
        for (name, features) in answers {
            union
                .entry(name.clone())
                .or_default()
                .extend(features.iter().cloned());
        }
    }
    if std::env::var("CONTAINERSPEC_UPDATE_GCC_MARCH").as_deref() == Ok("1") {
        let mut text = String::from(
            "# gcc -march= names and the code-generation features each enables (cpuinfo spelling),\n\
             # the union of what these compilers answer to `gcc -march=NAME -Q --help=target`:\n",
        );
        for (version, _) in &compilers {
            text.push_str(&format!("#   {version}\n"));
        }
        for (name, features) in &union {
            let list: Vec<&str> = features.iter().map(String::as_str).collect();
            text.push_str(&format!("{name}: {}\n", list.join(" ")));
        }
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/inventory/cpu/gcc-march.txt"
        );
        std::fs::write(path, text).unwrap();
        return;
    }
    let table = table();
    let stale: Vec<String> = union
        .iter()
        .filter(|(name, features)| table.get(*name) != Some(*features))
        .map(|(name, features)| {
            format!("{name}: gcc says {features:?}, table {:?}", table.get(name))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "the table disagrees with gcc (CONTAINERSPEC_UPDATE_GCC_MARCH=1 rewrites it):\n{}",
        stale.join("\n")
    );
    let extra: Vec<&String> = table.keys().filter(|n| !union.contains_key(*n)).collect();
    assert!(extra.is_empty(), "names no gcc here knows: {extra:?}");
    // Spot checks that do not depend on the table: gcc's own aliases agree.
    assert_eq!(table["corei7"], table["nehalem"]);
    assert_eq!(table["core-avx2"], table["haswell"]);
    assert!(table["znver4"].contains("avx512f") && !table["znver3"].contains("avx512f"));
}
