//! The CPU features a container requires, from what its files record:
//! - the x86 ISA-level note (`GNU_PROPERTY_X86_ISA_1_NEEDED`, from `-mneeded` or
//!   `-z x86-64-vN`), which the linker ORs over the inputs that carry one, so a level above
//!   the baseline holds for the whole file (a baseline note may come from glibc's start
//!   files alone, so it records nothing);
//! - Go's `GOAMD64=vN` build setting, which holds for the whole program;
//! - the command lines compilers record per compilation unit: gcc's
//!   `-frecord-gcc-switches` (`.GCC.command.line`, clang's `-frecord-command-line` too) and
//!   the DWARF producer strings (`.debug_str`) that `-g` leaves: `-march=NAME` plus the
//!   `-m<feature>` / `-mno-<feature>` options that follow it (`-march=native` is recorded
//!   expanded that way);
//! - declared labels (`io.archspec.cpu.target`).
//!
//! Every name becomes a feature set ([`crate::inventory::cpu`]'s tables) and the
//! requirement is their union: an object linked from units built for different targets
//! needs what all of them need, unless its code checks the CPU before running the newer
//! code, which the files cannot prove. So the features that *every* recorded unit of an
//! object was built for are required; those only *some* were built for are reported apart
//! (with any sign of run-time dispatch found), for the verdict to call unverified rather
//! than guess either way. A copy under `glibc-hwcaps/x86-64-vN/` is only loaded by a CPU
//! of that level, so that level's features are not required of it.
//!
//! Instruction scanning is deliberately absent: glibc itself carries AVX-512 code behind
//! run-time dispatch, so the presence of an instruction proves nothing. An object that
//! records nothing has an unknown requirement, and the report says so.

use std::collections::{BTreeMap, BTreeSet};

use super::cpu::{
    X86_BASELINE, archspec_features, archspec_name_for_gcc, gcc_flag_feature, gcc_march_features,
    normalize_target, x86_level_features, x86_level_of,
};
use super::elf::{ElfInfo, section_bytes};
use super::model::{Microarch, MicroarchSignal, MixedObject, TargetStatus};
use super::object::Object;
use super::strings::{c_strings, find, string_at};

/// Annotation / label keys that declare a target.
pub const TARGET_LABELS: &[&str] = &["io.archspec.cpu.target", "org.supercontainers.cpu.target"];

/// Symbols whose presence shows that an object checks the CPU at run time: gcc's
/// `__builtin_cpu_supports` / `target_clones` (libgcc's `__cpu_model`), glibc's
/// `<sys/platform/x86.h>` interface.
const DISPATCH_SYMBOLS: &[&str] = &[
    "__cpu_indicator_init",
    "__cpu_model",
    "__cpu_features2",
    "__x86_get_cpuid_feature_leaf",
    "__x86_get_cpu_features",
    "__get_cpu_features",
];

/// At most this many distinct recorded command lines are read per object: beyond, the
/// object's requirement is reported as unknown rather than read without bound.
const MAX_RECORDS: usize = 4096;

/// What one object records about the CPU it needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectTargets {
    /// One per distinct recorded target (baseline-only records are not listed).
    pub signals: Vec<MicroarchSignal>,
    /// Features the whole object needs.
    pub certain: BTreeSet<String>,
    /// Features only some of its compilation units were built for.
    pub partial: BTreeSet<String>,
    /// The targets of its units, when they differ.
    pub mixed_targets: Vec<String>,
    /// A symbol showing run-time CPU dispatch, when `partial` is not empty.
    pub dispatch: Option<String>,
    /// Recorded names that no table knows, with where they were recorded.
    pub unknown: Vec<String>,
    /// The object records some target (even the baseline).
    pub marked: bool,
}

/// A target recorded by one compilation unit (or one whole file).
#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    features: BTreeSet<String>,
}

/// The targets one object records.
pub fn object_targets(obj: &Object) -> ObjectTargets {
    // Only these sections are read (fetched first when the object is in an image).
    for section in [".go.buildinfo", ".GCC.command.line", ".debug_str"] {
        obj.ensure_section(section);
    }
    let mut out = targets_in(&obj.bytes(), &obj.info, &obj.path);
    if !out.partial.is_empty() {
        for section in [".strtab", ".dynstr"] {
            obj.ensure_section(section);
        }
        out.dispatch = dispatch_evidence(&obj.bytes());
    }
    out
}

/// The targets an ELF file's bytes record (`info` parsed from them; `path` names it in
/// the signals). Every section is bounded by the file; at most [`MAX_RECORDS`] command
/// lines are read. Run-time dispatch is looked for by [`dispatch_evidence`].
pub fn targets_in(bytes: &[u8], info: &ElfInfo, path: &str) -> ObjectTargets {
    let mut out = ObjectTargets::default();
    let x86 = info.machine_name() == "x86_64";
    let aarch64 = info.machine_name() == "aarch64";
    if x86 {
        if let Some(level) = info.x86_isa_level() {
            whole_file_level(&mut out, level, "x86-isa-note", path);
        }
        if let Some(level) = go_amd64_level(bytes) {
            whole_file_level(&mut out, level, "go-goamd64", path);
        }
    }
    if x86 || aarch64 {
        let mut records = Vec::new();
        if let Some(data) = section_bytes(bytes, ".GCC.command.line") {
            command_line_records(data, aarch64, &mut records, &mut out.unknown);
        }
        if let Some(data) = section_bytes(bytes, ".debug_str") {
            producer_records(data, aarch64, &mut records, &mut out.unknown);
        }
        add_records(&mut out, records, path);
    }
    if let Some(level) = hwcaps_level(path) {
        let covered = x86_level_features(level);
        out.certain.retain(|f| !covered.contains(f));
        out.partial.retain(|f| !covered.contains(f));
    }
    out
}

fn whole_file_level(out: &mut ObjectTargets, level: u8, kind: &str, path: &str) {
    // The linker ORs the ISA-level notes of the inputs that carry one, so "baseline"
    // often only says that glibc's start files were built for it (Debian's crt1.o has
    // the note): it is no record of the program's own code. A higher level is (from
    // `-mneeded` or `-z x86-64-vN`), as is Go's setting, which covers all Go code.
    if level < 2 && kind == "x86-isa-note" {
        return;
    }
    out.marked = true;
    if level > 4 {
        out.unknown.push(format!(
            "x86-64 ISA level {level} ({kind}), beyond x86-64-v4"
        ));
        return;
    }
    let features = x86_level_features(level);
    if level >= 2 {
        out.signals
            .push(signal(format!("x86-64-v{level}"), kind, path, &features));
    }
    out.certain.extend(features);
}

fn add_records(out: &mut ObjectTargets, mut records: Vec<Record>, path: &str) {
    if records.is_empty() {
        return;
    }
    out.marked = true;
    records.sort_by(|a, b| a.name.cmp(&b.name));
    records.dedup();
    let mut every: Option<BTreeSet<String>> = None;
    let mut some = BTreeSet::new();
    for r in &records {
        every = Some(match every {
            None => r.features.clone(),
            Some(e) => e.intersection(&r.features).cloned().collect(),
        });
        some.extend(r.features.iter().cloned());
    }
    out.certain.extend(every.unwrap_or_default());
    out.partial = some.difference(&out.certain).cloned().collect();
    let baseline: BTreeSet<String> = X86_BASELINE.iter().map(|f| f.to_string()).collect();
    for r in &records {
        if !r.features.is_subset(&baseline) {
            out.signals
                .push(signal(r.name.clone(), "gcc-march", path, &r.features));
        }
    }
    if !out.partial.is_empty() {
        out.mixed_targets = records.iter().map(|r| r.name.clone()).collect();
    }
}

/// `.GCC.command.line`: gcc stores one option per string, merged (deduplicated) over
/// every unit, so a unit's options cannot be told apart once there are several targets;
/// clang stores one whole command line per unit.
fn command_line_records(
    data: &[u8],
    aarch64: bool,
    records: &mut Vec<Record>,
    unknown: &mut Vec<String>,
) {
    let mut options = Vec::new();
    for s in c_strings(data, 1).take(MAX_RECORDS) {
        if s.contains(' ') {
            let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
            records.extend(record(&tokens, aarch64, ".GCC.command.line", unknown));
        } else {
            options.push(s);
        }
    }
    let marches: Vec<&str> = options
        .iter()
        .copied()
        .filter(|o| o.starts_with("-march=") || o.starts_with("-mcpu="))
        .collect();
    if marches.len() <= 1 {
        records.extend(record(&options, aarch64, ".GCC.command.line", unknown));
        return;
    }
    // Several targets: each with every positive option (a superset of what any unit
    // was built for), and no unit credited with a `-mno-` it may not have had.
    let flags: Vec<&str> = options
        .iter()
        .copied()
        .filter(|o| o.starts_with("-m") && !o.starts_with("-mno-") && !marches.contains(o))
        .collect();
    for m in marches {
        let mut tokens = vec![m];
        tokens.extend(flags.iter().copied());
        records.extend(record(&tokens, aarch64, ".GCC.command.line", unknown));
    }
}

/// `.debug_str`: each DWARF producer string is one unit's command line
/// (`GNU C17 12.2.0 -march=haswell -mavx2 ... -g -O2`).
fn producer_records(
    data: &[u8],
    aarch64: bool,
    records: &mut Vec<Record>,
    unknown: &mut Vec<String>,
) {
    let needle: &[u8] = if aarch64 { b" -m" } else { b" -march=" };
    let mut seen = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = data.get(from..).and_then(|d| find(d, needle)) {
        let at = from + at;
        from = at + needle.len();
        let Some(s) = string_at(data, at) else {
            continue;
        };
        if !seen.insert(s) {
            continue;
        }
        if seen.len() > MAX_RECORDS {
            unknown.push(format!(
                "more than {MAX_RECORDS} distinct compiler command lines in .debug_str"
            ));
            return;
        }
        let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
        records.extend(record(&tokens, aarch64, ".debug_str", unknown));
    }
}

/// The target one command line builds for: its last `-march=` (or, on aarch64,
/// `-mcpu=`), then each `-m<feature>` / `-mno-<feature>` applied in order, wherever it
/// stands (gcc's explicit ISA options override the target's, and its producer strings
/// put them before `-march=`). None when the
/// line names no target and no feature; an unknown name is recorded in `unknown`.
fn record(
    tokens: &[&str],
    aarch64: bool,
    section: &str,
    unknown: &mut Vec<String>,
) -> Option<Record> {
    let mut base: Option<(String, BTreeSet<String>)> = None;
    let mut toggles: Vec<(bool, &'static str)> = Vec::new();
    for t in tokens {
        let t = t.trim_matches(|c| c == '"' || c == '\'');
        let named = t.strip_prefix("-march=").or_else(|| {
            if aarch64 {
                t.strip_prefix("-mcpu=")
            } else {
                None
            }
        });
        if let Some(name) = named {
            let features = if aarch64 {
                aarch64_features(name)
            } else {
                gcc_march_features(name)
            };
            match features {
                Some(f) => base = Some((name.to_string(), f)),
                None => {
                    unknown.push(unknown_name_message(t, section));
                    return None;
                }
            }
        } else if !aarch64 {
            if let Some(flag) = t.strip_prefix("-mno-") {
                toggles.extend(gcc_flag_feature(flag).map(|f| (false, f)));
            } else if let Some(flag) = t.strip_prefix("-m") {
                toggles.extend(gcc_flag_feature(flag).map(|f| (true, f)));
            }
        }
    }
    if base.is_none() && toggles.is_empty() {
        return None;
    }
    let (name, base) = base.unwrap_or_else(|| {
        let baseline = X86_BASELINE.iter().map(|f| f.to_string()).collect();
        ("x86-64".to_string(), baseline)
    });
    let mut features = base.clone();
    for (on, f) in toggles {
        if on {
            features.insert(f.to_string());
        } else {
            features.remove(f);
        }
    }
    let mut label = name;
    for f in features.difference(&base) {
        label.push_str(&format!("+{f}"));
    }
    for f in base.difference(&features) {
        label.push_str(&format!("-{f}"));
    }
    Some(Record {
        name: label,
        features,
    })
}

fn unknown_name_message(option: &str, section: &str) -> String {
    let name = option.split_once('=').map_or(option, |(_, n)| n);
    let hint = if name == "native" {
        "the build machine's CPU, which the file does not name".to_string()
    } else {
        "not a name the gcc 12/14 or archspec tables know".to_string()
    };
    format!("{option} recorded in {section}: {hint}")
}

/// aarch64 `-march=armv8.2-a+ext...` or `-mcpu=NAME+ext...`: archspec's generic
/// `armvX.Ya` or its named core, plus the extensions gcc names. None for anything not
/// known, including an unknown extension.
fn aarch64_features(value: &str) -> Option<BTreeSet<String>> {
    let mut parts = value.split('+');
    let base = parts.next()?;
    let mut features = match base.strip_suffix("-a").and_then(|v| v.strip_prefix("armv")) {
        Some(version) => aarch64_version_features(version)?,
        None => archspec_features(&base.replace('-', "_"))?,
    };
    for ext in parts {
        if let Some(off) = ext.strip_prefix("no") {
            for f in aarch64_extension(off)? {
                features.remove(*f);
            }
        } else {
            features.extend(aarch64_extension(ext)?.iter().map(|f| f.to_string()));
        }
    }
    Some(features)
}

/// The features an `armvX.Y-a` architecture makes mandatory that code generation uses
/// (archspec's generic `armvX.Ya` targets list none).
fn aarch64_version_features(version: &str) -> Option<BTreeSet<String>> {
    let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
    let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
    if !(8..=9).contains(&major) {
        return None;
    }
    let at_least = |m: u32, n: u32| (major, minor) >= (m, n);
    let mut f: BTreeSet<String> = ["fp", "asimd"].iter().map(|s| s.to_string()).collect();
    let mut add = |names: &[&str]| f.extend(names.iter().map(|s| s.to_string()));
    if at_least(8, 1) {
        add(&["atomics", "asimdrdm", "crc32"]);
    }
    if at_least(8, 3) {
        add(&["lrcpc", "jscvt", "fcma"]);
    }
    if at_least(8, 4) {
        add(&["asimddp"]);
    }
    Some(f)
}

/// gcc's aarch64 extension names and the `/proc/cpuinfo` features each needs.
fn aarch64_extension(ext: &str) -> Option<&'static [&'static str]> {
    Some(match ext {
        "crc" => &["crc32"],
        "crypto" => &["aes", "pmull", "sha1", "sha2"],
        "aes" => &["aes", "pmull"],
        "sha2" => &["sha1", "sha2"],
        "sha3" => &["sha3", "sha512"],
        "sm4" => &["sm3", "sm4"],
        "lse" => &["atomics"],
        "rdma" => &["asimdrdm"],
        "fp16" => &["fphp", "asimdhp"],
        "fp16fml" => &["asimdfhm"],
        "dotprod" => &["asimddp"],
        "rcpc" => &["lrcpc"],
        "sve" => &["sve"],
        "sve2" => &["sve2"],
        "i8mm" => &["i8mm"],
        "bf16" => &["bf16"],
        "fp" => &["fp"],
        "simd" => &["asimd"],
        _ => return None,
    })
}

/// `N` when `path` lies in a `glibc-hwcaps/x86-64-vN/` directory.
fn hwcaps_level(path: &str) -> Option<u8> {
    let rest = path.split("/glibc-hwcaps/x86-64-v").nth(1)?;
    let (digit, tail) = rest.split_at(rest.find('/')?);
    (!tail.is_empty()).then_some(())?;
    digit.parse().ok().filter(|n| (2..=4).contains(n))
}

/// A symbol in the file's string tables that shows run-time CPU dispatch, with its table.
pub fn dispatch_evidence(bytes: &[u8]) -> Option<String> {
    for section in [".dynstr", ".strtab"] {
        let Some(data) = section_bytes(bytes, section) else {
            continue;
        };
        for name in DISPATCH_SYMBOLS {
            if has_string(data, name) {
                return Some(format!("{name} in {section}"));
            }
        }
        if let Some(resolver) = c_strings(data, 10).find(|s| s.ends_with(".resolver")) {
            return Some(format!(
                "the target_clones resolver {resolver} in {section}"
            ));
        }
    }
    None
}

/// Whether the NUL-terminated string `name` is one of `data`'s strings.
fn has_string(data: &[u8], name: &str) -> bool {
    let mut from = 0;
    while let Some(at) = data.get(from..).and_then(|d| find(d, name.as_bytes())) {
        let at = from + at;
        let end = at + name.len();
        let starts = at == 0 || data.get(at - 1) == Some(&0);
        if starts && data.get(end) == Some(&0) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The targets labels declare; unknown names are returned with a message.
pub fn label_signals(
    labels: &BTreeMap<String, String>,
) -> (Vec<MicroarchSignal>, Vec<(String, String)>) {
    let mut signals = Vec::new();
    let mut unknown = Vec::new();
    for key in TARGET_LABELS {
        let Some(value) = labels.get(*key) else {
            continue;
        };
        match normalize_target(value).and_then(|t| Some((archspec_features(&t)?, t))) {
            Some((features, t)) => signals.push(signal(t, "label", key, &features)),
            None => {
                let hint = archspec_name_for_gcc(value.trim())
                    .map(|a| format!("; {value} is gcc's name for archspec's {a}"))
                    .unwrap_or_default();
                unknown.push((
                    key.to_string(),
                    format!("label {key}={value}: not a target archspec knows{hint}"),
                ));
            }
        }
    }
    (signals, unknown)
}

/// One examined object's targets, for [`combine`].
pub struct Examined<'a> {
    pub path: &'a str,
    pub targets: &'a ObjectTargets,
    /// glibc's own parts (libc, the loader) dispatch internally and do not decide.
    pub counts: bool,
}

/// The container's requirement: the union over objects and labels, the objects whose
/// units need more than that, and the objects that record nothing.
pub fn combine(objects: &[Examined], labels: Vec<MicroarchSignal>, x86: bool) -> Microarch {
    let mut features = BTreeSet::new();
    let mut signals = Vec::new();
    let mut unmarked = Vec::new();
    let mut marked = 0;
    for o in objects {
        features.extend(o.targets.certain.iter().cloned());
        signals.extend(o.targets.signals.iter().cloned());
        if !o.counts {
            continue;
        }
        if o.targets.marked {
            marked += 1;
        } else {
            unmarked.push(o.path.to_string());
        }
    }
    for s in &labels {
        features.extend(s.features.iter().cloned());
    }
    let mixed = objects
        .iter()
        .filter_map(|o| {
            let extra: Vec<String> = o.targets.partial.difference(&features).cloned().collect();
            (!extra.is_empty()).then(|| MixedObject {
                object: o.path.to_string(),
                targets: o.targets.mixed_targets.clone(),
                features: extra,
                dispatch: o.targets.dispatch.clone(),
            })
        })
        .collect();
    let declared = !labels.is_empty();
    signals.extend(labels);
    signals.sort_by(|a, b| (&a.source, &a.target, &a.kind).cmp(&(&b.source, &b.target, &b.kind)));
    signals.dedup();
    let status = match (unmarked.is_empty(), marked > 0, declared) {
        (true, true, _) => TargetStatus::Recorded,
        (_, _, true) => TargetStatus::Declared,
        (false, true, false) => TargetStatus::Partial,
        _ => TargetStatus::Unknown,
    };
    let baseline: BTreeSet<String> = X86_BASELINE.iter().map(|f| f.to_string()).collect();
    let required = required_names(&signals, &features);
    let level = x86.then(|| x86_level_of(&features));
    let features = if x86 && features.is_subset(&baseline) {
        BTreeSet::new()
    } else {
        features
    };
    Microarch {
        status,
        required,
        level,
        features: features.into_iter().collect(),
        mixed,
        signals,
        unmarked,
    }
}

/// The names of the signals that set the requirement: those within it and not contained
/// in another's features.
fn required_names(signals: &[MicroarchSignal], features: &BTreeSet<String>) -> Option<String> {
    let sets: Vec<(&str, BTreeSet<&String>)> = signals
        .iter()
        .map(|s| (s.target.as_str(), s.features.iter().collect()))
        .filter(|(_, f): &(&str, BTreeSet<&String>)| f.iter().all(|x| features.contains(*x)))
        .collect();
    let mut names: Vec<&str> = sets
        .iter()
        .filter(|(name, f)| {
            !sets
                .iter()
                .any(|(other, g)| other != name && f.is_subset(g) && (f != g || other < name))
        })
        .map(|(name, _)| *name)
        .collect();
    names.sort_unstable();
    names.dedup();
    (!names.is_empty()).then(|| names.join(" + "))
}

fn signal(
    target: String,
    kind: &str,
    source: &str,
    features: &BTreeSet<String>,
) -> MicroarchSignal {
    MicroarchSignal {
        target,
        kind: kind.to_string(),
        source: source.to_string(),
        features: features.iter().cloned().collect(),
    }
}

/// Go 1.18+ records build settings in `.go.buildinfo`'s module info ("build\tGOAMD64=v3").
fn go_amd64_level(bytes: &[u8]) -> Option<u8> {
    let info = section_bytes(bytes, ".go.buildinfo")?;
    let at = find(info, b"GOAMD64=v")?;
    let digit = *info.get(at + b"GOAMD64=v".len())?;
    let level = digit.checked_sub(b'0')?;
    (1..=9).contains(&level).then_some(level)
}

#[cfg(test)]
mod tests;
