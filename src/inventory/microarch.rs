//! The CPU target a container requires, as the maximum of exact signals: the x86 ISA
//! level note (`GNU_PROPERTY_X86_ISA_1_NEEDED`) of its objects, Go's `GOAMD64=vN` build
//! setting, `-march=` recorded by `-frecord-gcc-switches` or in a DWARF producer string,
//! and declared labels (`io.archspec.cpu.target`). Instruction scanning is deliberately
//! absent: glibc itself carries AVX-512 code behind run-time dispatch, so the presence of
//! an instruction proves nothing.

use std::collections::BTreeMap;

use archspec::cpu::Microarchitecture;

use super::cpu::normalize_target;
use super::elf::section_bytes;
use super::model::{Microarch, MicroarchSignal};
use super::object::Object;
use super::strings::find;

/// Annotation / label keys that declare a target.
pub const TARGET_LABELS: &[&str] = &["io.archspec.cpu.target", "org.supercontainers.cpu.target"];

/// The signals one object carries.
pub fn object_signals(obj: &Object) -> Vec<MicroarchSignal> {
    let mut out = Vec::new();
    if let Some(level) = obj.info.x86_isa_level().filter(|l| *l >= 2) {
        out.push(signal(
            format!("x86_64_v{level}"),
            "x86-isa-note",
            &obj.path,
        ));
    }
    // Only these sections are read (fetched first when the object is in an image).
    for section in [".go.buildinfo", ".GCC.command.line", ".debug_str"] {
        obj.ensure_section(section);
    }
    let bytes = obj.bytes();
    if let Some(level) = go_amd64_level(&bytes) {
        out.push(signal(format!("x86_64_v{level}"), "go-goamd64", &obj.path));
    }
    if let Some(target) = gcc_march(&bytes) {
        out.push(signal(target, "gcc-march", &obj.path));
    }
    out
}

/// The signals labels carry; unknown target names are returned separately.
pub fn label_signals(
    labels: &BTreeMap<String, String>,
) -> (Vec<MicroarchSignal>, Vec<(String, String)>) {
    let mut signals = Vec::new();
    let mut unknown = Vec::new();
    for key in TARGET_LABELS {
        let Some(value) = labels.get(*key) else {
            continue;
        };
        match normalize_target(value) {
            Some(t) => signals.push(signal(t, "label", key)),
            None => unknown.push((key.to_string(), value.clone())),
        }
    }
    (signals, unknown)
}

/// Combines signals: the required target is the one that descends from (or equals) all
/// the others; targets neither of which includes the other are conflicts.
pub fn combine(mut signals: Vec<MicroarchSignal>) -> Microarch {
    signals.sort_by(|a, b| (&a.target, &a.kind, &a.source).cmp(&(&b.target, &b.kind, &b.source)));
    signals.dedup();
    if signals.is_empty() {
        // The common case; archspec's target table costs a millisecond to load.
        return Microarch::default();
    }
    let targets = Microarchitecture::known_targets();
    let mut required: Option<String> = None;
    let mut conflicts = Vec::new();
    for s in &signals {
        let Some(candidate) = targets.get(&s.target) else {
            continue;
        };
        required = match required.take() {
            None => Some(s.target.clone()),
            Some(current) => {
                let Some(cur) = targets.get(&current) else {
                    continue;
                };
                if candidate.decendent_of(cur) {
                    Some(s.target.clone())
                } else if cur.as_ref() == candidate.as_ref() || cur.decendent_of(candidate) {
                    Some(current)
                } else {
                    conflicts.push(format!(
                        "{current} and {} ({} in {})",
                        s.target, s.kind, s.source
                    ));
                    Some(current)
                }
            }
        };
    }
    Microarch {
        required,
        signals,
        conflicts,
    }
}

fn signal(target: String, kind: &str, source: &str) -> MicroarchSignal {
    MicroarchSignal {
        target,
        kind: kind.to_string(),
        source: source.to_string(),
    }
}

/// Go 1.18+ records build settings in `.go.buildinfo`'s module info ("build\tGOAMD64=v3").
fn go_amd64_level(bytes: &[u8]) -> Option<u8> {
    let info = section_bytes(bytes, ".go.buildinfo")?;
    let at = find(info, b"GOAMD64=v")?;
    let digit = *info.get(at + b"GOAMD64=v".len())?;
    let level = digit.checked_sub(b'0')?;
    (2..=4).contains(&level).then_some(level)
}

/// `-march=NAME` in `.GCC.command.line`, else in a DWARF producer string.
fn gcc_march(bytes: &[u8]) -> Option<String> {
    [".GCC.command.line", ".debug_str"].iter().find_map(|name| {
        let data = section_bytes(bytes, name)?;
        let at = find(data, b"-march=")?;
        let rest = data.get(at + b"-march=".len()..)?;
        let end = rest
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == 0)
            .unwrap_or(rest.len());
        let value = std::str::from_utf8(rest.get(..end)?).ok()?;
        normalize_target(value).filter(|t| t != "x86_64")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(target: &str) -> MicroarchSignal {
        signal(target.to_string(), "x86-isa-note", "/f")
    }

    #[test]
    fn the_most_specific_target_wins() {
        let m = combine(vec![s("x86_64_v2"), s("x86_64_v3"), s("haswell")]);
        assert_eq!(m.required.as_deref(), Some("haswell"));
        assert!(m.conflicts.is_empty());
    }

    #[test]
    fn incomparable_targets_are_conflicts() {
        let m = combine(vec![s("zen2"), s("skylake")]);
        assert_eq!(m.conflicts.len(), 1, "{:?}", m.conflicts);
    }

    #[test]
    fn no_signals_no_requirement() {
        let m = combine(vec![]);
        assert_eq!(m.required, None);
    }

    #[test]
    fn labels() {
        let mut labels = BTreeMap::new();
        labels.insert(
            "io.archspec.cpu.target".to_string(),
            "x86-64-v3".to_string(),
        );
        let (sig, unknown) = label_signals(&labels);
        assert_eq!(
            sig,
            vec![signal(
                "x86_64_v3".into(),
                "label",
                "io.archspec.cpu.target"
            )]
        );
        assert!(unknown.is_empty());
        labels.insert(
            "io.archspec.cpu.target".to_string(),
            "pentium-pro-max".to_string(),
        );
        let (sig, unknown) = label_signals(&labels);
        assert!(sig.is_empty());
        assert_eq!(unknown.len(), 1);
    }
}
