//! Rewriting a Dockerfile in place: only the spans that change are replaced (an image
//! reference, an `ARG` default, a label value), base-image labels are added as one new
//! `LABEL` line right after a `FROM`, or removed; every other byte stays as it was.

use std::ops::Range;

use super::parse::{BASE_DIGEST, BASE_NAME, Dockerfile, LabelSite};

/// What one stage should become.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageChange {
    /// New text for where the reference is written (the `FROM` image or the `ARG`
    /// default it comes from), and that span.
    pub reference: Option<(Range<usize>, String)>,
    pub labels: Labels,
}

/// The base-image labels a stage should carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Labels {
    /// Leave them as they are (the base could not be resolved).
    #[default]
    Keep,
    /// Make them say this: update the ones present and, with `add`, add the missing ones.
    Set {
        name: String,
        digest: String,
        add: bool,
    },
    /// The stage has no image base (`scratch`): labels claiming one go.
    Remove,
}

/// Applies `changes` (one per stage, in stage order) and returns the new text.
pub fn apply(file: &Dockerfile, changes: &[StageChange]) -> String {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for (stage, change) in file.stages.iter().zip(changes) {
        if let Some((span, text)) = &change.reference {
            edits.push((span.clone(), text.clone()));
        }
        match &change.labels {
            Labels::Keep => {}
            Labels::Set { name, digest, add } => {
                let mut missing = Vec::new();
                for (key, value) in [(BASE_NAME, name), (BASE_DIGEST, digest)] {
                    let sites: Vec<&LabelSite> =
                        stage.labels.iter().filter(|l| l.key == key).collect();
                    if sites.is_empty() {
                        missing.push((key, value));
                    }
                    for site in sites {
                        if &site.value != value {
                            edits.push((site.value_span.clone(), quote(value)));
                        }
                    }
                }
                if *add && !missing.is_empty() {
                    let at = line_end(&file.text, stage.span.end);
                    let mut line = String::new();
                    if at == file.text.len() && !file.text.ends_with('\n') {
                        line.push('\n');
                    }
                    line.push_str("LABEL ");
                    let pairs: Vec<String> = missing
                        .iter()
                        .map(|(k, v)| format!("{k}={}", quote(v)))
                        .collect();
                    line.push_str(&pairs.join(" \\\n      "));
                    line.push('\n');
                    edits.push((at..at, line));
                }
            }
            Labels::Remove => {
                edits.extend(removals(&file.text, &stage.labels));
            }
        }
    }
    splice(&file.text, edits)
}

/// Edits that take the given labels out: a `LABEL` left with nothing loses its whole
/// line(s); otherwise a pair goes with the separator before it (or after it, for the
/// first), continuation included, so the instruction stays well formed.
fn removals(text: &str, labels: &[LabelSite]) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut by_instruction: Vec<(Range<usize>, Vec<&LabelSite>)> = Vec::new();
    for l in labels {
        match by_instruction
            .iter_mut()
            .find(|(span, _)| *span == l.instruction_span)
        {
            Some((_, v)) => v.push(l),
            None => by_instruction.push((l.instruction_span.clone(), vec![l])),
        }
    }
    for (span, going) in by_instruction {
        let siblings = &going[0].siblings;
        if going.len() == siblings.len() {
            let start = line_start(text, span.start);
            let end = line_end(text, span.end);
            out.push((start..end, String::new()));
            continue;
        }
        let mut kept_before = true;
        for (i, pair) in siblings.iter().enumerate() {
            let goes = going.iter().any(|g| g.pair_span == *pair);
            if !goes {
                kept_before = true;
                continue;
            }
            let range = if i > 0 && kept_before {
                siblings[i - 1].end..pair.end
            } else {
                match siblings.get(i + 1) {
                    Some(next) => pair.start..next.start,
                    None => siblings[i - 1].end..pair.end,
                }
            };
            kept_before = false;
            out.push((range, String::new()));
        }
    }
    out
}

/// Applies non-overlapping edits; an edit inside another one's range is dropped.
fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            continue;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The offset just past the newline that ends the line holding `offset - 1` (an
/// instruction's span ends at its last character).
fn line_end(text: &str, offset: usize) -> usize {
    match text[offset..].find('\n') {
        Some(i) => offset + i + 1,
        None => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn file(text: &str) -> Dockerfile {
        Dockerfile::parse(text, &BTreeMap::new()).unwrap()
    }

    fn set(add: bool) -> Labels {
        Labels::Set {
            name: "docker.io/library/debian:bookworm".into(),
            digest: "sha256:aa".into(),
            add,
        }
    }

    #[test]
    fn pins_in_place_and_adds_labels_after_the_from() {
        let text = "# keep me\nFROM debian:bookworm \\\n  AS base\nRUN true\n";
        let d = file(text);
        let span = d.stages[0].image_span.clone();
        let out = apply(
            &d,
            &[StageChange {
                reference: Some((span, "debian:bookworm@sha256:aa".into())),
                labels: set(true),
            }],
        );
        assert_eq!(
            out,
            "# keep me\nFROM debian:bookworm@sha256:aa \\\n  AS base\n\
             LABEL org.opencontainers.image.base.name=\"docker.io/library/debian:bookworm\" \\\n      \
             org.opencontainers.image.base.digest=\"sha256:aa\"\nRUN true\n"
        );
    }

    #[test]
    fn updates_present_labels_and_adds_only_the_missing_one() {
        let text = "FROM debian:bookworm\nLABEL maintainer=x org.opencontainers.image.base.digest=\"sha256:old\"\n";
        let d = file(text);
        let out = apply(
            &d,
            &[StageChange {
                reference: None,
                labels: set(true),
            }],
        );
        assert_eq!(
            out,
            "FROM debian:bookworm\nLABEL org.opencontainers.image.base.name=\"docker.io/library/debian:bookworm\"\n\
             LABEL maintainer=x org.opencontainers.image.base.digest=\"sha256:aa\"\n"
        );
    }

    #[test]
    fn removes_whole_instructions_or_single_pairs() {
        let text = "FROM scratch\nLABEL org.opencontainers.image.base.name=x \\\n  org.opencontainers.image.base.digest=y\n\
                    LABEL a=1 \\\n  org.opencontainers.image.base.name=z\nLABEL org.opencontainers.image.base.digest=w b=2\nCOPY x /\n";
        let d = file(text);
        let out = apply(
            &d,
            &[StageChange {
                reference: None,
                labels: Labels::Remove,
            }],
        );
        assert_eq!(out, "FROM scratch\nLABEL a=1\nLABEL b=2\nCOPY x /\n");
        // What is left parses, and carries no base label.
        assert!(file(&out).stages[0].labels.is_empty());
    }

    #[test]
    fn a_file_without_final_newline_gets_one_before_the_label() {
        let d = file("FROM debian:bookworm");
        let out = apply(
            &d,
            &[StageChange {
                reference: None,
                labels: set(true),
            }],
        );
        assert!(out.starts_with("FROM debian:bookworm\nLABEL "), "{out}");
    }
}
