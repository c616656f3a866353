//! `containerspec labels TARGET`: the labels an image should carry, from what its files
//! say (docs/labels.md), as Dockerfile `LABEL` lines, an Apptainer `%labels` section or
//! JSON; `--check` compares the labels it carries with them, for CI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{CliError, print_json, print_text};
use crate::engine::labels::{self as derive, Derivation, LabelCheck, Outcome};
use crate::input::target::Target;

#[derive(Debug, Args)]
#[command(
    after_help = "The labels (docs/labels.md): org.supercontainers.mpi (mpich, openmpi, mpi-abi), \
org.supercontainers.mpi.implementation, org.supercontainers.mpi.version, org.supercontainers.libc, \
org.supercontainers.glibc (the glibc shipped), org.supercontainers.glibc.required (the highest \
GLIBC_ version its objects need), org.supercontainers.gpu (cuda, rocm), \
org.supercontainers.gpu.cuda.version, org.supercontainers.gpu.rocm.version, io.archspec.cpu.target. \
A label the files cannot tell is left out, and stderr (or the JSON's `unknown`) says why.\n\n\
The files are read as `inspect` reads them, without the labels the image carries: a label \
cannot confirm itself. --check prints each carried label that contradicts the files (exit 1), \
those they cannot confirm (unverified), and the derived labels it does not carry.\n\n\
Examples:\n  containerspec labels ./rootfs >> Dockerfile\n  \
containerspec labels app.sif --format apptainer\n  containerspec labels ./bundle --check"
)]
pub struct LabelsArgs {
    /// A rootfs directory, an OCI bundle directory (with config.json), an Apptainer SIF
    /// or squashfs image file, or an OCI image layout (DIR, or DIR:TAG when it holds
    /// several images), unpacked into a private temporary directory
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// How to print the labels: Dockerfile LABEL lines, or an Apptainer definition
    /// file's %labels section
    #[arg(long, value_enum, default_value_t = Format::Dockerfile)]
    pub format: Format,
    /// Print the labels, the reasons for those left out (and with --check the
    /// comparison) as JSON (schema: docs/schema/labels.json)
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Compare the labels the image carries (bundle annotations, image labels) with what
    /// its files say: exit 1 when one contradicts them
    #[arg(long, conflicts_with = "format")]
    pub check: bool,
    /// Examine every ELF file, not only what the entrypoint loads (for
    /// org.supercontainers.glibc.required)
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `LABEL key="value" \` lines
    Dockerfile,
    /// `%labels` and one `    key value` line per label
    Apptainer,
}

/// `labels --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LabelsJson {
    /// The target as named.
    pub target: String,
    /// `rootfs directory`, `OCI bundle`, `SIF (squashfs, gzip)`, ...
    pub form: String,
    /// `default` or `all` (`--all`): which objects were examined.
    pub scan: String,
    /// The labels the files give values for: what the image should carry.
    pub labels: BTreeMap<String, String>,
    /// Each of them with the files it comes from.
    pub derived: Vec<derive::Derived>,
    /// The labels the files cannot give a value for, and why.
    pub unknown: Vec<derive::Unknown>,
    /// With `--check`: the labels the image carries compared with the files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckJson>,
}

/// `labels --check --json`'s comparison.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckJson {
    /// The `org.supercontainers.*` and `io.archspec.*` labels the image carries.
    pub carried: BTreeMap<String, String>,
    /// Each carried label of the vocabulary (or an alias) compared with the files, then
    /// each derived label the image does not carry (`missing`).
    pub results: Vec<LabelCheck>,
    /// How many contradict the files (exit 1 when any).
    pub contradictions: usize,
}

pub fn run(args: &LabelsArgs) -> Result<u8, CliError> {
    let target = Target::open(&args.target)?;
    // The files alone: the labels the image carries are compared with them, never
    // mixed into them (a CPU target label would otherwise confirm itself).
    let (inventory, _cpu) = super::inspect::inventory_of(&target, args.all, false)?;
    let derivation = derive::derive(&inventory);
    let carried = carried_labels(&target.annotations);
    let check = args.check.then(|| {
        let mut results = derive::check(&carried, &inventory);
        results.extend(derive::missing(&carried, &derivation));
        let contradictions = results
            .iter()
            .filter(|c| c.outcome == Outcome::Contradicts)
            .count();
        CheckJson {
            carried: carried.clone(),
            results,
            contradictions,
        }
    });
    let status = u8::from(check.as_ref().is_some_and(|c| c.contradictions > 0));
    let name = args.target.display().to_string();
    if args.json {
        print_json(&LabelsJson {
            target: name,
            form: target.form.describe(),
            scan: inventory.scan.mode.clone(),
            labels: derivation.values(),
            derived: derivation.derived.clone(),
            unknown: derivation.unknown.clone(),
            check,
        })?;
        return Ok(status);
    }
    if let Some(check) = &check {
        print_text(&render_check(&name, &target.form.describe(), check))?;
        return Ok(status);
    }
    let text = match args.format {
        Format::Dockerfile => dockerfile(&derivation),
        Format::Apptainer => apptainer(&derivation),
    };
    print_text(&text)?;
    // What was left out goes to stderr, so that stdout can be appended to a recipe.
    let notes = render_unknown(&name, &derivation);
    if !notes.is_empty() {
        eprint!("{notes}");
    }
    Ok(status)
}

/// The labels a target carries that are this vocabulary's namespaces (as `inspect`
/// keeps them).
fn carried_labels(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| k.starts_with("org.supercontainers.") || k.starts_with("io.archspec."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A value without control characters (a label is one line in every format).
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `LABEL key="value" \` lines, one instruction; empty when no label is derived.
/// Inside double quotes a Dockerfile takes `\` as an escape and expands `$`.
pub fn dockerfile(d: &Derivation) -> String {
    let pairs: Vec<String> = d
        .derived
        .iter()
        .map(|l| {
            let mut v = String::new();
            for c in one_line(&l.value).chars() {
                if matches!(c, '"' | '\\' | '$') {
                    v.push('\\');
                }
                v.push(c);
            }
            format!("{}=\"{v}\"", l.key)
        })
        .collect();
    if pairs.is_empty() {
        return String::new();
    }
    format!("LABEL {}\n", pairs.join(" \\\n      "))
}

/// An Apptainer definition file's `%labels` section: `key value`, the value being the
/// rest of the line; empty when no label is derived.
pub fn apptainer(d: &Derivation) -> String {
    if d.derived.is_empty() {
        return String::new();
    }
    let mut out = String::from("%labels\n");
    for l in &d.derived {
        out.push_str(&format!("    {} {}\n", l.key, one_line(&l.value).trim()));
    }
    out
}

fn render_unknown(name: &str, d: &Derivation) -> String {
    let mut out = String::new();
    if d.derived.is_empty() {
        out.push_str(&format!(
            "containerspec labels: the files of {name} give no label a value\n"
        ));
    }
    for u in &d.unknown {
        out.push_str(&format!("not derived: {}: {}\n", u.key, u.reason));
    }
    out
}

fn render_check(name: &str, form: &str, c: &CheckJson) -> String {
    let count = |o: Outcome| c.results.iter().filter(|r| r.outcome == o).count();
    let mut out = format!(
        "labels of {name} ({form}): {} contradict the files, {} unverified, {} agree, {} not carried\n",
        count(Outcome::Contradicts),
        count(Outcome::Unverified),
        count(Outcome::Agrees),
        count(Outcome::Missing),
    );
    if c.carried.is_empty() {
        out.push_str("  the image carries no org.supercontainers.* or io.archspec.* label\n");
    }
    for o in [
        Outcome::Contradicts,
        Outcome::Unverified,
        Outcome::Agrees,
        Outcome::Missing,
    ] {
        for r in c.results.iter().filter(|r| r.outcome == o) {
            let from = match r.from.len() {
                0 => String::new(),
                1..=3 => format!(" ({})", r.from.join(", ")),
                n => format!(" ({} and {} more)", r.from[..3].join(", "), n - 3),
            };
            let line = match (&r.declared, o) {
                (Some(declared), Outcome::Contradicts) => format!(
                    "{}={declared}, but the files say {}{from}",
                    r.key, r.files_say
                ),
                (Some(declared), Outcome::Unverified) => {
                    format!("{}={declared}: {}{from}", r.key, r.files_say)
                }
                (Some(declared), _) => format!("{}={declared}{from}", r.key),
                (None, _) => format!("{}: the files say {}{from}", r.key, r.files_say),
            };
            let word = match o {
                Outcome::Missing => "not carried",
                other => other.as_str(),
            };
            out.push_str(&format!("  {word:<12} {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::labels::{Derived, Unknown};

    fn derivation() -> Derivation {
        Derivation {
            derived: vec![
                Derived {
                    key: "org.supercontainers.mpi".into(),
                    value: "openmpi".into(),
                    from: vec![],
                    note: None,
                },
                Derived {
                    key: "org.supercontainers.mpi.implementation".into(),
                    value: "Open MPI".into(),
                    from: vec![],
                    note: None,
                },
                Derived {
                    key: "org.example.odd".into(),
                    value: "a \"b\" \\ $c\nd".into(),
                    from: vec![],
                    note: None,
                },
            ],
            unknown: vec![Unknown {
                key: "io.archspec.cpu.target".into(),
                reason: "no examined file records its target".into(),
            }],
        }
    }

    #[test]
    fn dockerfile_label_lines() {
        assert_eq!(
            dockerfile(&derivation()),
            "LABEL org.supercontainers.mpi=\"openmpi\" \\\n      \
             org.supercontainers.mpi.implementation=\"Open MPI\" \\\n      \
             org.example.odd=\"a \\\"b\\\" \\\\ \\$c d\"\n"
        );
        assert_eq!(dockerfile(&Derivation::default()), "");
    }

    #[test]
    fn apptainer_labels_section() {
        assert_eq!(
            apptainer(&derivation()),
            "%labels\n    org.supercontainers.mpi openmpi\n    \
             org.supercontainers.mpi.implementation Open MPI\n    \
             org.example.odd a \"b\" \\ $c d\n"
        );
        assert_eq!(apptainer(&Derivation::default()), "");
    }

    #[test]
    fn what_is_left_out_is_said() {
        let text = render_unknown("img", &derivation());
        assert_eq!(
            text,
            "not derived: io.archspec.cpu.target: no examined file records its target\n"
        );
        let none = render_unknown("img", &Derivation::default());
        assert!(none.contains("give no label a value"), "{none}");
    }
}
