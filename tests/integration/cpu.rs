//! Checks `inventory::cpu::host_cpu()` against this machine, using sources the module does not
//! share code with: /proc/cpuinfo parsed here, the x86-64 psABI level lists written out here,
//! archspec's own tables, and the Python archspec package when it is installed. These tests are
//! written for the x86_64 build host; on other architectures only the generic checks run.

use std::collections::BTreeSet;
use std::process::Command;

use archspec::cpu::Microarchitecture;
use containerspec::inventory::cpu::{TargetCheck, host_cpu, normalize_target, target_supported};

/// The first processor's "key: value" for `key`, read without the module's parser.
fn cpuinfo_field(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo is readable");
    let first = text.split("\n\n").next().unwrap_or_default();
    first.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn cpuinfo_flags() -> BTreeSet<String> {
    let flags = cpuinfo_field("flags").expect("cpuinfo has a flags line");
    flags.split_whitespace().map(str::to_string).collect()
}

/// The x86-64 psABI levels in cpuinfo spelling, as archspec defines them (no SSE3: archspec's
/// x86_64_v2 does not list it), written out independently of the module.
fn independent_level(flags: &BTreeSet<String>) -> u8 {
    let v2 = [
        "cx16", "lahf_lm", "mmx", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "popcnt",
    ];
    let v3 = [
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
    ];
    let v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"];
    let has = |list: &[&str]| list.iter().all(|f| flags.contains(*f));
    match (has(&v2), has(&v3), has(&v4)) {
        (true, true, true) => 4,
        (true, true, false) => 3,
        (true, false, _) => 2,
        (false, _, _) => 1,
    }
}

fn uname_m() -> String {
    let out = Command::new("uname")
        .arg("-m")
        .output()
        .expect("uname runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn host_cpu_matches_uname_and_archspec() {
    let host = host_cpu();
    assert_eq!(host.arch, uname_m());
    let targets = Microarchitecture::known_targets();
    let detected = targets
        .get(&host.microarchitecture)
        .unwrap_or_else(|| panic!("{} is not an archspec target", host.microarchitecture));
    // archspec only picks targets whose features the host has (modulo its aliases, which the
    // generic-level targets do not need).
    let features: BTreeSet<String> = host.features.iter().cloned().collect();
    let own: BTreeSet<String> = detected
        .all_features()
        .into_iter()
        .filter(|f| f != "sse3")
        .collect();
    assert_eq!(
        own.difference(&features).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn host_cpu_on_x86_64() {
    let host = host_cpu();
    let flags = cpuinfo_flags();
    let level = independent_level(&flags);
    assert_eq!(host.arch, "x86_64");
    assert_eq!(host.features, flags.iter().cloned().collect::<Vec<_>>());
    assert_eq!(host.generic_level, Some(format!("x86_64_v{level}")));
    assert_eq!(
        host.vendor,
        cpuinfo_field("vendor_id").expect("cpuinfo has vendor_id")
    );
    assert_eq!(host.cross_check.source, "cpuid");
    assert_eq!(host.cross_check.notes, Vec::<String>::new());
    assert!(host.cross_check.agrees);
}

/// archspec narrows to descendants of the best generic level, so the detected target is that
/// level or one of its descendants.
#[cfg(target_arch = "x86_64")]
#[test]
fn microarchitecture_descends_from_generic_level() {
    let host = host_cpu();
    let level = host.generic_level.clone().expect("x86 hosts have a level");
    let level_target = normalize_target(&level).expect("the level is an archspec name");
    let targets = Microarchitecture::known_targets();
    let (detected, generic) = (&targets[&host.microarchitecture], &targets[&level_target]);
    assert!(
        detected.name() == generic.name() || detected.decendent_of(generic),
        "{} does not descend from {level_target}",
        host.microarchitecture
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn host_runs_its_own_level_and_not_the_next() {
    let host = host_cpu();
    let features: BTreeSet<String> = host.features.iter().cloned().collect();
    let level = independent_level(&features);
    let own = format!("x86-64-v{level}");
    assert_eq!(target_supported(&own, &features), Ok(()));
    assert_eq!(target_supported(&host.microarchitecture, &features), Ok(()));
    if level < 4 {
        let next = format!("x86_64_v{}", level + 1);
        let got = target_supported(&next, &features);
        assert!(
            matches!(&got, Err(TargetCheck::Missing(m)) if !m.is_empty()),
            "{next}: {got:?}"
        );
    }
}

#[test]
fn host_cpu_json_schema() {
    let value = serde_json::to_value(host_cpu()).expect("host_cpu serialises");
    // Sorted here so that serde_json's preserve_order feature cannot change the answer.
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().expect("an object").keys().cloned().collect()
    };
    let want = [
        "arch",
        "cross_check",
        "features",
        "generic_level",
        "microarchitecture",
        "usable_features",
        "vendor",
    ];
    assert_eq!(keys(&value), want.map(String::from).into());
    assert_eq!(
        keys(&value["cross_check"]),
        ["agrees", "notes", "source"].map(String::from).into()
    );
}

/// The Python archspec is the reference implementation: it must name the same
/// microarchitecture. It runs from the virtualenv tests/rigs/archspec.sh makes (setup.sh
/// runs it); CI fails without it.
#[test]
fn matches_python_archspec() {
    let cache = std::env::var_os("CONTAINERSPEC_TEST_CACHE").map_or_else(
        || std::path::PathBuf::from("/var/cache/containerspec-test"),
        Into::into,
    );
    let python = cache.join("venv-archspec/bin/python3");
    let out = Command::new(&python)
        .args(["-c", "import archspec.cpu; print(archspec.cpu.host())"])
        .output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        assert!(
            std::env::var("CONTAINERSPEC_REQUIRE_ROOTFS").as_deref() != Ok("1"),
            "{} has no archspec: run tests/rigs/archspec.sh",
            python.display()
        );
        println!(
            "skipping: {} has no archspec: run tests/rigs/archspec.sh",
            python.display()
        );
        return;
    };
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(host_cpu().microarchitecture, python);
}
