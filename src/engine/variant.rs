//! Which manifest of a multi-platform image runs best on a host (`select`). An image
//! index offers one manifest per platform (`linux/amd64/v3`), and an entry or its image
//! may name an archspec CPU target in a label; the files of a manifest, where they were
//! read, may need more than it claims. Pure: the candidates and the host's description
//! are data.
//!
//! A candidate runs when it is for the host's os and architecture and the host has every
//! code-generation feature its claim and its files need (a variant whose files need more
//! than it claims is judged by its files, and the mismatch is reported). The best is the
//! runnable one with the highest x86-64 level, then one whose every feature the host has
//! (even those only intrinsics use), then the most features (the most specific target);
//! at the same need, a claim its files exceed ranks below an honest one; then the first
//! in the index. An amd64 manifest without a variant is the baseline (v1).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::hostdesc::HostDescription;
use crate::inventory::cpu::{
    is_intrinsic_only, missing_features, x86_level_features, x86_level_of,
};
use crate::inventory::microarch::label_signals;
use crate::inventory::model::{Microarch, TargetStatus};

/// One manifest of the index, as read.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub digest: String,
    /// `os/architecture[/variant]`; None when neither the index nor the image's config
    /// names it.
    pub platform: Option<String>,
    /// The index entry's annotations and, where the image was read, its config's labels.
    pub labels: BTreeMap<String, String>,
    /// What its files record about the CPU they need, when they were read.
    pub files: Option<Microarch>,
}

/// Why a candidate was taken or passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The best of those that run on the host.
    Chosen,
    /// Runs on the host, but another ranks higher.
    Outranked,
    /// Built for another os or architecture.
    OtherPlatform,
    /// Neither the index nor the image's config names a platform: taken as the host's.
    PlatformUnstated,
    /// An amd64 variant that is not a level v1..v4.
    UnknownVariant,
    /// An amd64 level above the host CPU's.
    LevelAboveHost,
    /// A CPU target label that no table knows.
    UnknownTarget,
    /// A CPU target label the host CPU cannot run.
    TargetNotRunnable,
    /// Its files need more than its variant or label claims.
    ClaimExceeded,
    /// Its files need, beyond its claim, what the host CPU lacks.
    FilesNotRunnable,
    /// Its files were not read, or none records its target: the claim stands unchecked.
    ClaimUnverified,
}

impl Reason {
    /// The kebab-case name the JSON uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Chosen => "chosen",
            Reason::Outranked => "outranked",
            Reason::OtherPlatform => "other-platform",
            Reason::PlatformUnstated => "platform-unstated",
            Reason::UnknownVariant => "unknown-variant",
            Reason::LevelAboveHost => "level-above-host",
            Reason::UnknownTarget => "unknown-target",
            Reason::TargetNotRunnable => "target-not-runnable",
            Reason::ClaimExceeded => "claim-exceeded",
            Reason::FilesNotRunnable => "files-not-runnable",
            Reason::ClaimUnverified => "claim-unverified",
        }
    }
}

/// One reason with the words that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Note {
    pub reason: Reason,
    pub message: String,
}

/// One candidate as judged.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Judged {
    /// The manifest's digest: what to pull.
    pub digest: String,
    pub platform: Option<String>,
    /// What the index claims: `x86_64_v3`, the architecture for its baseline, plus the
    /// targets labels name.
    pub claim: String,
    /// x86-64 only: the generic level it is judged by (its claim, raised to what its
    /// files need).
    pub level: Option<u8>,
    /// Whether its files were read and their needs compared with the claim.
    pub files_read: bool,
    pub runs: bool,
    pub chosen: bool,
    pub notes: Vec<Note>,
}

/// The choice for one host.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Choice {
    /// The platform the host needs: `linux/amd64`.
    pub host_platform: String,
    /// x86-64 hosts: the generic level of the CPU's usable features.
    pub host_level: Option<u8>,
    /// The digest of the chosen manifest: what to pull.
    pub digest: Option<String>,
    /// Why none was chosen.
    pub none: Option<String>,
    /// Every candidate in the index's order, with why it was taken or passed over.
    pub candidates: Vec<Judged>,
}

/// Chooses among `candidates` (in the index's order) for `host`.
pub fn choose(candidates: &[Candidate], host: &HostDescription) -> Choice {
    let host_platform = host.platform().unwrap_or_default();
    let usable: Option<BTreeSet<String>> = host
        .inventory
        .cpu
        .as_ref()
        .map(|c| c.usable_features.iter().cloned().collect());
    let host_level = (host_platform == "linux/amd64")
        .then(|| usable.as_ref().map(x86_level_of))
        .flatten();
    let mut judged: Vec<Judged> = Vec::new();
    let mut best: Option<(usize, Rank)> = None;
    for (i, c) in candidates.iter().enumerate() {
        let (j, rank) = judge(c, &host_platform, usable.as_ref());
        if let Some(rank) = rank {
            if best.as_ref().is_none_or(|(_, b)| rank > *b) {
                best = Some((i, rank));
            }
        }
        judged.push(j);
    }
    let digest = best.map(|(i, _)| {
        let claim = judged[i].claim.clone();
        for (k, j) in judged.iter_mut().enumerate() {
            if k == i {
                j.chosen = true;
                j.notes.push(note(
                    Reason::Chosen,
                    format!("the best of those that run on the host ({claim})"),
                ));
            } else if j.runs {
                j.notes.push(note(
                    Reason::Outranked,
                    format!("runs on the host, but {claim} ranks higher"),
                ));
            }
        }
        judged[i].digest.clone()
    });
    let none = digest.is_none().then(|| why_none(&host_platform, &judged));
    Choice {
        host_platform,
        host_level,
        digest,
        none,
        candidates: judged,
    }
}

/// How candidates compare: x86-64 level; whether the host has every feature it names,
/// even those only intrinsics use; the number of features; honesty.
type Rank = (u8, bool, usize, bool);

fn note(reason: Reason, message: String) -> Note {
    Note { reason, message }
}

/// `wanted`'s features that `host` lacks, those compilers emit only for intrinsics aside.
fn lacking(wanted: &BTreeSet<String>, host: &BTreeSet<String>) -> Vec<String> {
    missing_features(wanted, host)
        .into_iter()
        .filter(|f| !is_intrinsic_only(f))
        .collect()
}

fn level_name(level: u8) -> String {
    if level <= 1 {
        "x86_64".into()
    } else {
        format!("x86_64_v{level}")
    }
}

/// One candidate judged, with its rank when it runs.
fn judge(
    c: &Candidate,
    host_platform: &str,
    usable: Option<&BTreeSet<String>>,
) -> (Judged, Option<Rank>) {
    let mut notes = Vec::new();
    let mut blocked = false;
    let (host_os, host_arch) = host_platform.split_once('/').unwrap_or(("", ""));
    let (os, arch, variant) = match c.platform.as_deref() {
        Some(p) => {
            let mut parts = p.split('/');
            (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().filter(|v| !v.is_empty()),
            )
        }
        None => {
            notes.push(note(
                Reason::PlatformUnstated,
                format!(
                    "neither the index nor the image's config names a platform: taken as {host_platform}"
                ),
            ));
            (host_os, host_arch, None)
        }
    };
    if os != host_os || arch != host_arch {
        notes.push(note(
            Reason::OtherPlatform,
            format!(
                "{}: the host is {host_platform}",
                c.platform.as_deref().unwrap_or_default()
            ),
        ));
        blocked = true;
    }
    let amd64 = arch == "amd64";
    let mut claim: Vec<String> = Vec::new();
    let mut need: BTreeSet<String> = BTreeSet::new();
    if amd64 && !blocked {
        let level = match variant {
            None => Some(1),
            Some(v) => v
                .strip_prefix('v')
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (1..=4).contains(n)),
        };
        match level {
            Some(level) => {
                need = x86_level_features(level);
                claim.push(level_name(level));
                let lacks = usable.map(|h| lacking(&need, h)).unwrap_or_default();
                if !lacks.is_empty() {
                    notes.push(note(
                        Reason::LevelAboveHost,
                        format!(
                            "variant v{level} needs {}; the host CPU is {} (it lacks {})",
                            level_name(level),
                            level_name(usable.map_or(1, x86_level_of)),
                            lacks.join(", ")
                        ),
                    ));
                }
            }
            None => {
                notes.push(note(
                    Reason::UnknownVariant,
                    format!(
                        "variant {:?} is not an amd64 level (v1 to v4)",
                        variant.unwrap_or_default()
                    ),
                ));
                blocked = true;
            }
        }
    } else if !blocked {
        claim.push(arch.to_string());
    }
    if !blocked {
        let (signals, unknown) = label_signals(&c.labels);
        for (_, message) in unknown {
            notes.push(note(Reason::UnknownTarget, message));
            blocked = true;
        }
        for s in signals {
            let wanted: BTreeSet<String> = s.features.iter().cloned().collect();
            let lacks = usable.map(|h| lacking(&wanted, h)).unwrap_or_default();
            if !lacks.is_empty() {
                notes.push(note(
                    Reason::TargetNotRunnable,
                    format!(
                        "{}={}: the host CPU lacks {}",
                        s.source,
                        s.target,
                        lacks.join(", ")
                    ),
                ));
            }
            need.extend(wanted);
            claim.push(s.target);
        }
    }
    let claim = claim.join(" + ");
    let mut honest = true;
    if !blocked {
        match &c.files {
            Some(m) if m.status != TargetStatus::Unknown => {
                let files: BTreeSet<String> = m.features.iter().cloned().collect();
                if !lacking(&files, &need).is_empty() {
                    honest = false;
                    let by: Vec<String> = m
                        .signals
                        .iter()
                        .filter(|s| s.features.iter().any(|f| !need.contains(f)))
                        .map(|s| format!("{} records {} ({})", s.source, s.target, s.kind))
                        .collect();
                    notes.push(note(
                        Reason::ClaimExceeded,
                        format!(
                            "claims {claim} but {}: judged by what its files need",
                            if by.is_empty() {
                                format!("its files need {}", files_need(m))
                            } else {
                                by.join(", ")
                            }
                        ),
                    ));
                }
                // What the claim needs is reported above; here what the files add.
                let beyond: BTreeSet<String> = files.difference(&need).cloned().collect();
                let lacks = usable.map(|h| lacking(&beyond, h)).unwrap_or_default();
                if !lacks.is_empty() {
                    notes.push(note(
                        Reason::FilesNotRunnable,
                        format!(
                            "its files need {}; the host CPU lacks {}",
                            files_need(m),
                            lacks.join(", ")
                        ),
                    ));
                }
                need.extend(files);
            }
            Some(_) => notes.push(note(
                Reason::ClaimUnverified,
                "no file examined records its CPU target: the claim is not checked".into(),
            )),
            None => notes.push(note(
                Reason::ClaimUnverified,
                "its files were not read: the claim is not checked".into(),
            )),
        }
    }
    let runs = !blocked && usable.is_none_or(|h| lacking(&need, h).is_empty());
    let level = (amd64 && !blocked).then(|| x86_level_of(&need));
    let complete = usable.is_none_or(|h| missing_features(&need, h).is_empty());
    let rank = runs.then(|| (level.unwrap_or(0), complete, need.len(), honest));
    let judged = Judged {
        digest: c.digest.clone(),
        platform: c.platform.clone(),
        claim,
        level,
        files_read: c.files.is_some(),
        runs,
        chosen: false,
        notes,
    };
    (judged, rank)
}

/// `x86-64-v3 (x86_64_v3)`: what the files record, for messages.
fn files_need(m: &Microarch) -> String {
    let required = m.required.as_deref().unwrap_or("their targets");
    match m.level {
        Some(l) if l > 1 => format!("{required} ({})", level_name(l)),
        _ => required.to_string(),
    }
}

fn why_none(host_platform: &str, judged: &[Judged]) -> String {
    if host_platform.is_empty() {
        return "the host description names no architecture".into();
    }
    let for_host = judged
        .iter()
        .filter(|j| !j.notes.iter().any(|n| n.reason == Reason::OtherPlatform))
        .count();
    if for_host == 0 {
        let mut offered: Vec<&str> = judged
            .iter()
            .filter_map(|j| j.platform.as_deref())
            .collect();
        offered.dedup();
        return format!(
            "no manifest for {host_platform} in the index (it has {})",
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        );
    }
    format!("none of the {for_host} manifests for {host_platform} runs on the host")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::model::{Inventory, MicroarchSignal};

    /// A host of `arch` whose CPU has exactly `usable`.
    fn host(arch: &str, usable: &BTreeSet<String>) -> HostDescription {
        let cpu = serde_json::from_value(serde_json::json!({
            "arch": arch, "microarchitecture": arch, "vendor": "generic",
            "generic_level": null, "features": usable, "usable_features": usable,
            "cross_check": {"source": "none", "agrees": false, "notes": []}
        }))
        .expect("a CPU description");
        HostDescription {
            inventory: Inventory {
                arch: Some(arch.into()),
                cpu: Some(cpu),
                ..Default::default()
            },
            mpi_installations: Vec::new(),
        }
    }

    fn x86(level: u8) -> HostDescription {
        host("x86_64", &x86_level_features(level))
    }

    fn amd64(digest: &str, variant: Option<&str>) -> Candidate {
        Candidate {
            digest: digest.into(),
            platform: Some(match variant {
                Some(v) => format!("linux/amd64/{v}"),
                None => "linux/amd64".into(),
            }),
            ..Default::default()
        }
    }

    /// Files whose one program records x86-64-v`level` in its ISA note.
    fn files(level: u8) -> Microarch {
        let features: Vec<String> = x86_level_features(level).into_iter().collect();
        Microarch {
            status: TargetStatus::Recorded,
            required: Some(format!("x86-64-v{level}")),
            level: Some(level),
            features: features.clone(),
            signals: vec![MicroarchSignal {
                target: format!("x86-64-v{level}"),
                kind: "x86-isa-note".into(),
                source: "/usr/bin/app".into(),
                features,
            }],
            ..Default::default()
        }
    }

    fn reasons(j: &Judged) -> Vec<Reason> {
        j.notes.iter().map(|n| n.reason).collect()
    }

    fn levels() -> Vec<Candidate> {
        vec![
            amd64("v1", Some("v1")),
            amd64("v2", Some("v2")),
            amd64("v3", Some("v3")),
            amd64("v4", Some("v4")),
        ]
    }

    #[test]
    fn the_highest_level_the_host_runs() {
        for (host_level, expected) in [(1, "v1"), (2, "v2"), (3, "v3"), (4, "v4")] {
            let c = choose(&levels(), &x86(host_level));
            assert_eq!(c.digest.as_deref(), Some(expected), "host v{host_level}");
            assert_eq!(c.host_level, Some(host_level));
            for j in &c.candidates {
                let level: u8 = j.digest[1..].parse().unwrap();
                assert_eq!(j.runs, level <= host_level, "{}", j.digest);
                if level > host_level {
                    assert_eq!(
                        reasons(j),
                        [Reason::LevelAboveHost, Reason::ClaimUnverified]
                    );
                    assert!(j.notes[0].message.contains("it lacks "), "{:?}", j.notes);
                }
            }
        }
    }

    #[test]
    fn no_variant_is_the_baseline_and_ties_go_to_the_first() {
        let c = choose(&[amd64("plain", None), amd64("v1", Some("v1"))], &x86(4));
        assert_eq!(c.digest.as_deref(), Some("plain"));
        assert_eq!(c.candidates[0].level, Some(1));
        assert_eq!(c.candidates[1].notes[1].reason, Reason::Outranked);
    }

    #[test]
    fn files_that_need_more_than_the_claim_decide() {
        let mut list = levels();
        list[1].files = Some(files(3));
        list[2].files = Some(files(3));
        // A v3 host: the liar needs v3 too, and ranks below the honest v3.
        let c = choose(&list, &x86(3));
        assert_eq!(c.digest.as_deref(), Some("v3"));
        let liar = &c.candidates[1];
        assert!(liar.runs);
        assert_eq!(liar.level, Some(3));
        let exceeded = liar
            .notes
            .iter()
            .find(|n| n.reason == Reason::ClaimExceeded)
            .expect("the mismatch is reported");
        assert_eq!(
            exceeded.message,
            "claims x86_64_v2 but /usr/bin/app records x86-64-v3 (x86-isa-note): judged by \
             what its files need"
        );
        // A v2 host: the liar claims what it runs, but its files do not.
        let c = choose(&list, &x86(2));
        assert_eq!(c.digest.as_deref(), Some("v1"));
        assert!(!c.candidates[1].runs);
        assert_eq!(
            reasons(&c.candidates[1]),
            [Reason::ClaimExceeded, Reason::FilesNotRunnable]
        );
        // Files that record less than the claim change nothing.
        list[3].files = Some(files(2));
        assert_eq!(choose(&list, &x86(4)).digest.as_deref(), Some("v4"));
    }

    #[test]
    fn archspec_targets_in_labels() {
        let labelled = |digest: &str, key: &str, target: &str| {
            let mut c = amd64(digest, None);
            c.labels.insert(key.into(), target.into());
            c
        };
        let list = vec![
            amd64("v3", Some("v3")),
            labelled("zen2", "io.archspec.cpu.target", "zen2"),
            labelled("zen4", "io.archspec.cpu.target", "zen4"),
            labelled("odd", "org.supercontainers.cpu.target", "not-a-cpu"),
        ];
        let target_host = |name: &str| {
            host(
                "x86_64",
                &crate::inventory::cpu::target_features(name).unwrap(),
            )
        };
        // zen2 is a v3 machine with more: the more specific target wins where it runs.
        let c = choose(&list, &target_host("zen2"));
        assert_eq!(c.digest.as_deref(), Some("zen2"));
        assert_eq!(c.candidates[1].claim, "x86_64 + zen2");
        assert_eq!(reasons(&c.candidates[3]), [Reason::UnknownTarget]);
        let zen4 = &c.candidates[2];
        assert!(!zen4.runs);
        assert_eq!(zen4.notes[0].reason, Reason::TargetNotRunnable);
        assert!(
            zen4.notes[0]
                .message
                .starts_with("io.archspec.cpu.target=zen4: the host CPU lacks avx512"),
            "{:?}",
            zen4.notes
        );
        // A plain v3 CPU lacks only zen2's intrinsics (SHA, AES): zen2 runs, but the
        // variant the CPU has everything of ranks higher.
        let c = choose(&list, &x86(3));
        assert_eq!(c.digest.as_deref(), Some("v3"));
        assert!(c.candidates[1].runs);
        // zen4 wins on a zen4.
        assert_eq!(
            choose(&list, &target_host("zen4")).digest.as_deref(),
            Some("zen4")
        );
    }

    #[test]
    fn another_architecture_gets_none_and_is_told_what_is_offered() {
        let mut list = levels();
        list.push(Candidate {
            digest: "s390x".into(),
            platform: Some("linux/s390x".into()),
            ..Default::default()
        });
        let arm = host("aarch64", &BTreeSet::new());
        let c = choose(&list, &arm);
        assert_eq!(c.digest, None);
        assert_eq!(
            c.none.as_deref(),
            Some(
                "no manifest for linux/arm64 in the index (it has linux/amd64/v1, \
                 linux/amd64/v2, linux/amd64/v3, linux/amd64/v4, linux/s390x)"
            )
        );
        assert!(
            c.candidates
                .iter()
                .all(|j| reasons(j) == [Reason::OtherPlatform])
        );
        // The host's architecture, but nothing it runs.
        let c = choose(&[amd64("v4", Some("v4")), amd64("v9", Some("v9"))], &x86(2));
        assert_eq!(
            c.none.as_deref(),
            Some("none of the 2 manifests for linux/amd64 runs on the host")
        );
        assert_eq!(reasons(&c.candidates[1]), [Reason::UnknownVariant]);
        assert!(choose(&[], &x86(2)).none.unwrap().contains("it has none"));
    }

    #[test]
    fn reason_names_are_the_json_names() {
        for r in [
            Reason::Chosen,
            Reason::Outranked,
            Reason::OtherPlatform,
            Reason::PlatformUnstated,
            Reason::UnknownVariant,
            Reason::LevelAboveHost,
            Reason::UnknownTarget,
            Reason::TargetNotRunnable,
            Reason::ClaimExceeded,
            Reason::FilesNotRunnable,
            Reason::ClaimUnverified,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn an_unstated_platform_is_taken_as_the_hosts() {
        let c = choose(
            &[Candidate {
                digest: "only".into(),
                ..Default::default()
            }],
            &x86(1),
        );
        assert_eq!(c.digest.as_deref(), Some("only"));
        assert_eq!(c.candidates[0].notes[0].reason, Reason::PlatformUnstated);
    }
}
