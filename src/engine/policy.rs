//! The policy: how strictly each rule is applied, per finding code.
//!
//! An admin sets a level per rule in the config file (`enforce`, the default; `warn`; `off`).
//! A container may ask, through annotations, to be held to a stricter level than that, never
//! a looser one: the admin's word is the floor, because an image (or whoever starts it) must
//! not be able to switch off a check that protects the node. Applying the policy to findings
//! is the last step before the verdict: `off` drops a finding, `warn` demotes an error to a
//! warning (which never blocks a start), `enforce` keeps it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::finding::{Code, Finding, Severity};

/// The annotation prefix that narrows the policy for one container:
/// `org.supercontainers.policy.<code>=<level>`.
pub const ANNOTATION_PREFIX: &str = "org.supercontainers.policy.";

/// How strictly one rule is applied, from loosest to strictest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    Warn,
    Enforce,
}

impl Level {
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Warn => "warn",
            Level::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a policy level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level \"{value}\" (expected enforce, warn or off)")]
pub struct UnknownLevel {
    pub value: String,
}

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(value: &str) -> Result<Level, UnknownLevel> {
        match value {
            "off" => Ok(Level::Off),
            "warn" => Ok(Level::Warn),
            "enforce" => Ok(Level::Enforce),
            _ => Err(UnknownLevel {
                value: value.to_string(),
            }),
        }
    }
}

/// A level per finding code; a code not set is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Only the codes that are not enforced, so that two policies with the same effect
    /// compare equal however they were built.
    relaxed: BTreeMap<Code, Level>,
}

impl Policy {
    pub fn level(&self, code: Code) -> Level {
        self.relaxed.get(&code).copied().unwrap_or(Level::Enforce)
    }

    pub fn set(&mut self, code: Code, level: Level) {
        if level == Level::Enforce {
            self.relaxed.remove(&code);
        } else {
            self.relaxed.insert(code, level);
        }
    }

    /// Annotations `org.supercontainers.policy.<code>=<level>` may narrow the policy for one
    /// container (raise a level: off->warn->enforce), never widen what the admin set (a lower
    /// level is ignored). Returns the narrowed policy and one note per annotation ignored
    /// (unknown code, bad level, or an attempt to widen), worded for a person. Annotations
    /// without the prefix are not about the policy and pass silently.
    pub fn narrowed(&self, annotations: &BTreeMap<String, String>) -> (Policy, Vec<String>) {
        let mut narrowed = self.clone();
        let mut notes = Vec::new();
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            match self.narrowing(name, value) {
                Ok(Some((code, level))) => narrowed.set(code, level),
                Ok(None) => {}
                Err(why) => notes.push(format!("ignored annotation {key}={value}: {why}")),
            }
        }
        (narrowed, notes)
    }

    /// What one policy annotation asks for: a stricter level to set, nothing (the same
    /// level), or why it cannot be honoured.
    fn narrowing(&self, name: &str, value: &str) -> Result<Option<(Code, Level)>, String> {
        let code: Code = name
            .parse()
            .map_err(|e: super::finding::UnknownCode| e.to_string())?;
        let level: Level = value.parse().map_err(|e: UnknownLevel| e.to_string())?;
        let current = self.level(code);
        if level < current {
            return Err(format!(
                "the site policy sets {code} to {current}, and an annotation may only make a \
                 rule stricter"
            ));
        }
        Ok((level > current).then_some((code, level)))
    }

    /// Applies the policy: `off` drops the finding, `warn` turns an error into a warning,
    /// `enforce` keeps it as is. Info and warnings pass unchanged under warn/enforce.
    pub fn apply(&self, findings: Vec<Finding>) -> Vec<Finding> {
        findings
            .into_iter()
            .filter_map(|finding| self.apply_one(finding))
            .collect()
    }

    fn apply_one(&self, mut finding: Finding) -> Option<Finding> {
        match self.level(finding.code) {
            Level::Off => None,
            Level::Warn => {
                if finding.severity == Severity::Error {
                    finding.severity = Severity::Warning;
                }
                Some(finding)
            }
            Level::Enforce => Some(finding),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn policy(levels: &[(Code, Level)]) -> Policy {
        let mut policy = Policy::default();
        for (code, level) in levels {
            policy.set(*code, *level);
        }
        policy
    }

    #[test]
    fn levels_parse_and_print() {
        for (text, level) in [
            ("off", Level::Off),
            ("warn", Level::Warn),
            ("enforce", Level::Enforce),
        ] {
            assert_eq!(text.parse::<Level>(), Ok(level));
            assert_eq!(level.to_string(), text);
            assert_eq!(
                serde_json::to_string(&level).unwrap(),
                format!("\"{text}\"")
            );
        }
        assert!(Level::Off < Level::Warn && Level::Warn < Level::Enforce);
    }

    #[test]
    fn bad_level_names_the_value_and_the_valid_ones() {
        for bad in ["strict", "", "Warn", "ENFORCE", " off", "warning", "error"] {
            let err = bad.parse::<Level>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("unknown level \"{bad}\" (expected enforce, warn or off)")
            );
        }
    }

    #[test]
    fn unset_codes_are_enforced() {
        let policy = Policy::default();
        for code in Code::all() {
            assert_eq!(policy.level(*code), Level::Enforce);
        }
    }

    #[test]
    fn set_then_level() {
        let mut policy = Policy::default();
        policy.set(Code::MicroarchUnsupported, Level::Warn);
        policy.set(Code::LabelMismatch, Level::Off);
        assert_eq!(policy.level(Code::MicroarchUnsupported), Level::Warn);
        assert_eq!(policy.level(Code::LabelMismatch), Level::Off);
        assert_eq!(policy.level(Code::GlibcTooOld), Level::Enforce);
        policy.set(Code::LabelMismatch, Level::Enforce);
        assert_eq!(
            policy,
            policy_of_one(Code::MicroarchUnsupported, Level::Warn)
        );
    }

    fn policy_of_one(code: Code, level: Level) -> Policy {
        policy(&[(code, level)])
    }

    /// (admin level, annotation level) -> (resulting level, whether a note is given).
    #[test]
    fn narrowing_table() {
        use Level::*;
        let table = [
            (Off, Off, Off, false),
            (Off, Warn, Warn, false),
            (Off, Enforce, Enforce, false),
            (Warn, Off, Warn, true),
            (Warn, Warn, Warn, false),
            (Warn, Enforce, Enforce, false),
            (Enforce, Off, Enforce, true),
            (Enforce, Warn, Enforce, true),
            (Enforce, Enforce, Enforce, false),
        ];
        for (admin, asked, expected, noted) in table {
            let base = policy_of_one(Code::MicroarchUnsupported, admin);
            let ann = annotations(&[(
                "org.supercontainers.policy.microarch-unsupported",
                asked.as_str(),
            )]);
            let (narrowed, notes) = base.narrowed(&ann);
            let case = format!("admin {admin}, annotation {asked}");
            assert_eq!(
                narrowed.level(Code::MicroarchUnsupported),
                expected,
                "{case}"
            );
            assert_eq!(notes.len(), usize::from(noted), "{case}: {notes:?}");
        }
    }

    #[test]
    fn widening_note_names_the_annotation_and_the_admin_level() {
        let (narrowed, notes) = Policy::default().narrowed(&annotations(&[(
            "org.supercontainers.policy.glibc-too-old",
            "off",
        )]));
        assert_eq!(narrowed, Policy::default());
        assert_eq!(
            notes,
            [
                "ignored annotation org.supercontainers.policy.glibc-too-old=off: the site policy \
              sets glibc-too-old to enforce, and an annotation may only make a rule stricter"
            ]
        );
    }

    #[test]
    fn bad_annotations_are_noted_and_ignored() {
        let base = policy_of_one(Code::LabelMismatch, Level::Off);
        let ann = annotations(&[
            ("org.supercontainers.policy.no-such-rule", "enforce"),
            ("org.supercontainers.policy.label-mismatch", "strict"),
            ("org.supercontainers.policy.", "enforce"),
            ("org.supercontainers.mpi", "mpich"),
            ("io.archspec.cpu.target", "haswell"),
        ]);
        let (narrowed, notes) = base.narrowed(&ann);
        assert_eq!(narrowed, base);
        assert_eq!(notes.len(), 3, "{notes:?}");
        let all = notes.join("\n");
        assert!(all.contains("policy.no-such-rule=enforce: unknown rule \"no-such-rule\""));
        assert!(all.contains(
            "policy.label-mismatch=strict: unknown level \"strict\" (expected enforce, warn or off)"
        ));
        assert!(all.contains("policy.=enforce: unknown rule \"\""));
        assert!(!all.contains("org.supercontainers.mpi"));
    }

    #[test]
    fn several_annotations_apply_together() {
        let base = policy(&[
            (Code::MicroarchUnsupported, Level::Off),
            (Code::LabelMismatch, Level::Off),
            (Code::MpiHostOlder, Level::Warn),
        ]);
        let ann = annotations(&[
            (
                "org.supercontainers.policy.microarch-unsupported",
                "enforce",
            ),
            ("org.supercontainers.policy.label-mismatch", "warn"),
            ("org.supercontainers.policy.mpi-host-older", "off"),
        ]);
        let (narrowed, notes) = base.narrowed(&ann);
        assert_eq!(narrowed.level(Code::MicroarchUnsupported), Level::Enforce);
        assert_eq!(narrowed.level(Code::LabelMismatch), Level::Warn);
        assert_eq!(narrowed.level(Code::MpiHostOlder), Level::Warn);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("mpi-host-older=off"), "{notes:?}");
    }

    /// (level, severity in) -> severity out (None: dropped).
    #[test]
    fn apply_table() {
        use Level::*;
        use Severity::*;
        let table = [
            (Off, Error, None),
            (Off, Warning, None),
            (Off, Info, None),
            (Warn, Error, Some(Warning)),
            (Warn, Warning, Some(Warning)),
            (Warn, Info, Some(Info)),
            (Enforce, Error, Some(Error)),
            (Enforce, Warning, Some(Warning)),
            (Enforce, Info, Some(Info)),
        ];
        for (level, severity, expected) in table {
            let policy = policy_of_one(Code::CudaDriverTooOld, level);
            let mut finding = Finding::new(Code::CudaDriverTooOld, "driver 470 is too old");
            finding.severity = severity;
            let out = policy.apply(vec![finding.clone()]);
            let got = out.first().map(|f| f.severity);
            assert_eq!(got, expected, "{level} on {severity}");
            if let Some(kept) = out.first() {
                assert_eq!(kept.message, finding.message);
                assert_eq!(kept.code, finding.code);
            }
        }
    }

    #[test]
    fn apply_acts_per_code_and_keeps_order() {
        let policy = policy(&[
            (Code::LabelMismatch, Level::Off),
            (Code::MicroarchUnsupported, Level::Warn),
        ]);
        let findings = vec![
            Finding::new(Code::GlibcTooOld, "a"),
            Finding::new(Code::LabelMismatch, "b"),
            Finding::new(Code::MicroarchUnsupported, "c"),
            Finding::new(Code::MpiHostOlder, "d"),
        ];
        let out = policy.apply(findings);
        let summary: Vec<(&str, Severity)> = out
            .iter()
            .map(|f| (f.message.as_str(), f.severity))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", Severity::Error),
                ("c", Severity::Warning),
                ("d", Severity::Warning)
            ]
        );
    }
}
