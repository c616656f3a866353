//! Reading a Dockerfile: the base image of every stage, where it is written (byte spans and
//! lines, for rewriting in place), the `ARG` values it is built from, and the base-image
//! labels each stage carries.
//!
//! The grammar is the `dockerfile-parser` crate's. Two things it does not know are handled
//! here, before it runs, without moving a byte: heredoc bodies (`RUN <<EOF` ... `EOF`)
//! are blanked (a `FROM` line inside a script is not an instruction), and an `escape`
//! parser directive other than `\` is refused with its line.

use std::collections::BTreeMap;
use std::ops::Range;

use dockerfile_parser::{Dockerfile as Parsed, Instruction};

/// The base-image labels of the OCI image spec (annotations.md).
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// Dockerfiles larger than this are refused (the largest real ones are tens of KiB).
pub const MAX_SIZE: usize = 1 << 20;

/// A parsed Dockerfile and the text it was parsed from.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub text: String,
    pub stages: Vec<Stage>,
    /// `ARG`s before the first `FROM`: the only ones `FROM` can use.
    pub global_args: Vec<ArgDef>,
}

/// An `ARG NAME[=default]` before the first `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub name: String,
    pub default: Option<String>,
    /// Where the default value is written (quotes included), for pinning through it.
    pub value_span: Option<Range<usize>>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    /// The whole `FROM` instruction, continuation lines included.
    pub span: Range<usize>,
    pub line: usize,
    /// The image as written (`${BASE}:${TAG}`, `debian:bookworm@sha256:...`).
    pub image: String,
    pub image_span: Range<usize>,
    /// `--platform=...` as written.
    pub platform: Option<String>,
    pub base: Base,
    /// The base-image labels set in this stage, in order.
    pub labels: Vec<LabelSite>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image in a registry. `reference` has the `ARG`s substituted.
    Image {
        reference: String,
        /// The image is one `ARG` (`FROM ${BASE}`) whose default holds the whole
        /// reference: pinning rewrites that default.
        via_arg: Option<String>,
        /// `ARG`s the reference is built from (none when written literally).
        uses_args: Vec<String>,
    },
    /// The image names an `ARG` with no value.
    Unresolved { reason: String },
}

/// One base-image label (`LABEL org.opencontainers.image.base.name=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSite {
    pub key: String,
    pub value: String,
    pub line: usize,
    /// `key=value` as written.
    pub pair_span: Range<usize>,
    pub value_span: Range<usize>,
    /// The `LABEL` instruction holding it, and the spans of all its pairs in order.
    pub instruction_span: Range<usize>,
    pub siblings: Vec<Range<usize>>,
}

/// Why a Dockerfile cannot be read; `line` is 1-based where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Dockerfile {
    /// Parses `text`; `build_args` (`--build-arg NAME=VALUE`) win over `ARG` defaults.
    pub fn parse(text: &str, build_args: &BTreeMap<String, String>) -> Result<Self, ParseError> {
        if text.len() > MAX_SIZE {
            return Err(ParseError {
                line: None,
                message: format!(
                    "{} bytes: larger than the {MAX_SIZE} bytes read",
                    text.len()
                ),
            });
        }
        check_directives(text)?;
        let masked = mask_heredocs(text);
        let parsed = Parsed::parse(&masked).map_err(|e| parse_error(&e))?;
        let lines = LineIndex::new(text);
        let mut global_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for instruction in &parsed.instructions {
            match instruction {
                Instruction::Arg(arg) if stages.is_empty() => global_args.push(ArgDef {
                    name: arg.name.content.clone(),
                    default: arg.value.as_ref().map(|v| v.content.clone()),
                    value_span: arg.value.as_ref().map(|v| v.span.start..v.span.end),
                    line: lines.line(arg.span.start),
                }),
                Instruction::From(from) => {
                    let image = from.image.content.clone();
                    let name = from.alias.as_ref().map(|a| a.content.clone());
                    let platform = from
                        .flags
                        .iter()
                        .find(|f| f.name.content.eq_ignore_ascii_case("platform"))
                        .map(|f| f.value.content.clone());
                    let base = base_of(&image, &stages, &global_args, build_args);
                    stages.push(Stage {
                        index: stages.len(),
                        name,
                        span: from.span.start..from.span.end,
                        line: lines.line(from.span.start),
                        image,
                        image_span: from.image.span.start..from.image.span.end,
                        platform,
                        base,
                        labels: Vec::new(),
                    });
                }
                Instruction::Label(label) => {
                    let Some(stage) = stages.last_mut() else {
                        continue;
                    };
                    let siblings: Vec<Range<usize>> = label
                        .labels
                        .iter()
                        .map(|l| l.span.start..l.span.end)
                        .collect();
                    for l in &label.labels {
                        if l.name.content == BASE_NAME || l.name.content == BASE_DIGEST {
                            stage.labels.push(LabelSite {
                                key: l.name.content.clone(),
                                value: l.value.content.clone(),
                                line: lines.line(l.span.start),
                                pair_span: l.span.start..l.span.end,
                                value_span: l.value.span.start..l.value.span.end,
                                instruction_span: label.span.start..label.span.end,
                                siblings: siblings.clone(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Dockerfile {
            text: text.to_string(),
            stages,
            global_args,
        })
    }

    /// The 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        LineIndex::new(&self.text).line(offset)
    }
}

fn parse_error(e: &dockerfile_parser::Error) -> ParseError {
    match e {
        dockerfile_parser::Error::ParseError { source } => {
            let line = match source.line_col {
                pest::error::LineColLocation::Pos((l, _))
                | pest::error::LineColLocation::Span((l, _), _) => l,
            };
            ParseError {
                line: Some(line),
                message: format!(
                    "not a Dockerfile instruction here: {}",
                    source.line().trim_end()
                ),
            }
        }
        other => ParseError {
            line: None,
            message: other.to_string(),
        },
    }
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`) come before anything else.
/// Only the default escape character is understood by the grammar.
fn check_directives(text: &str) -> Result<(), ParseError> {
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if key.contains(char::is_whitespace) {
            break;
        }
        if key == "escape" && value.trim() != "\\" {
            return Err(ParseError {
                line: Some(n + 1),
                message: format!(
                    "parser directive escape={}: only the default escape character \\ is supported",
                    value.trim()
                ),
            });
        }
    }
    Ok(())
}

/// Blanks heredoc bodies and their terminators (every byte but newlines becomes a
/// space), so that the grammar sees empty lines there and every offset stays the same.
/// A heredoc opens with `<<WORD`, `<<-WORD`, `<<"WORD"` or `<<'WORD'` outside quotes on
/// a `RUN`, `COPY` or `ADD` line, and its body starts on the next line; several on one
/// line follow one another.
pub fn mask_heredocs(text: &str) -> String {
    let mut out = text.as_bytes().to_vec();
    let mut offset = 0;
    let mut pending: Vec<(String, bool)> = Vec::new();
    let mut continued = false;
    let mut in_heredoc_capable = false;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some((word, strip_tabs)) = pending.first().cloned() {
            let candidate = if strip_tabs {
                body.trim_start_matches('\t')
            } else {
                body
            };
            for b in &mut out[start..start + body.len()] {
                *b = b' ';
            }
            if candidate == word {
                pending.remove(0);
            }
            continue;
        }
        let trimmed = body.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        if !continued {
            let keyword = trimmed
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            in_heredoc_capable = matches!(keyword.as_str(), "RUN" | "COPY" | "ADD");
        }
        if in_heredoc_capable {
            pending.extend(heredoc_words(body));
        }
        continued = body.ends_with('\\') && pending.is_empty();
    }
    // Invalid UTF-8 cannot arise: only ASCII bytes of whole lines were replaced.
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The heredoc words a line opens, in order, with whether `<<-` strips leading tabs.
fn heredoc_words(line: &str) -> Vec<(String, bool)> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'<' && bytes.get(i + 1) == Some(&b'<') => {
                // `<<<` is a here-string, not a heredoc.
                if bytes.get(i + 2) == Some(&b'<') {
                    i += 3;
                    continue;
                }
                let mut j = i + 2;
                let strip = bytes.get(j) == Some(&b'-');
                if strip {
                    j += 1;
                }
                let q = bytes.get(j).copied().filter(|b| *b == b'"' || *b == b'\'');
                if q.is_some() {
                    j += 1;
                }
                let begin = j;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if j > begin && q.is_none_or(|q| bytes.get(j) == Some(&q)) {
                    words.push((line[begin..j].to_string(), strip));
                    i = j + usize::from(q.is_some());
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    words
}

fn base_of(
    image: &str,
    stages: &[Stage],
    args: &[ArgDef],
    build_args: &BTreeMap<String, String>,
) -> Base {
    if image.eq_ignore_ascii_case("scratch") {
        return Base::Scratch;
    }
    let expanded = match expand(image, args, build_args) {
        Ok(e) => e,
        Err(reason) => return Base::Unresolved { reason },
    };
    if let Some(stage) = stages.iter().rev().find(|s| {
        s.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&expanded.text))
    }) {
        return Base::Stage(stage.index);
    }
    if expanded.text.eq_ignore_ascii_case("scratch") {
        return Base::Scratch;
    }
    let via_arg = match expanded.used.as_slice() {
        [one] if is_single_reference(image, one) && !build_args.contains_key(one) => {
            Some(one.clone())
        }
        _ => None,
    };
    Base::Image {
        reference: expanded.text,
        via_arg,
        uses_args: expanded.used,
    }
}

/// `$NAME` or `${NAME}` and nothing else.
fn is_single_reference(image: &str, name: &str) -> bool {
    image == format!("${name}") || image == format!("${{{name}}}")
}

struct Expanded {
    text: String,
    used: Vec<String>,
}

/// Substitutes `$NAME`, `${NAME}`, `${NAME:-word}` and `${NAME:+word}` the way the
/// builder does for `FROM`: from `--build-arg`, else the global `ARG` default.
fn expand(
    image: &str,
    args: &[ArgDef],
    build_args: &BTreeMap<String, String>,
) -> Result<Expanded, String> {
    let value = |name: &str| -> Option<String> {
        if let Some(v) = build_args.get(name) {
            return Some(v.clone());
        }
        args.iter()
            .rev()
            .find(|a| a.name == name)
            .and_then(|a| a.default.clone())
    };
    let declared =
        |name: &str| build_args.contains_key(name) || args.iter().any(|a| a.name == name);
    let mut text = String::new();
    let mut used = Vec::new();
    let mut rest = image;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, modifier, consumed) = if let Some(inner) = after.strip_prefix('{') {
            let Some(close) = inner.find('}') else {
                return Err(format!("unclosed ${{ in {image:?}"));
            };
            let body = &inner[..close];
            let (name, modifier) = match body.find(':') {
                Some(c) => (&body[..c], Some(&body[c + 1..])),
                None => (body, None),
            };
            (name, modifier, close + 2)
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..len], None, len)
        };
        if name.is_empty() {
            text.push('$');
            rest = after;
            continue;
        }
        if !used.iter().any(|u| u == name) {
            used.push(name.to_string());
        }
        let current = value(name).filter(|v| !v.is_empty());
        let replaced = match modifier {
            None => match current {
                Some(v) => v,
                None if declared(name) => {
                    return Err(format!(
                        "ARG {name} has no value (give it a default or pass --build-arg {name}=...)"
                    ));
                }
                None => {
                    return Err(format!(
                        "${name} is not an ARG declared before the first FROM"
                    ));
                }
            },
            Some(m) if m.starts_with('-') => current.unwrap_or_else(|| m[1..].to_string()),
            Some(m) if m.starts_with('+') => {
                if current.is_some() {
                    m[1..].to_string()
                } else {
                    String::new()
                }
            }
            Some(m) => return Err(format!("unsupported substitution ${{{name}:{m}}}")),
        };
        text.push_str(&replaced);
        rest = &after[consumed..];
    }
    text.push_str(rest);
    Ok(Expanded { text, used })
}

/// Byte offset to 1-based line.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|s| *s <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Dockerfile {
        Dockerfile::parse(text, &BTreeMap::new()).expect("parses")
    }

    #[test]
    fn stages_names_scratch_and_platform() {
        let d = parse(
            "# syntax=docker/dockerfile:1\nARG BASE=debian\nARG TAG=bookworm\n\
             FROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS build\nRUN true\n\
             FROM build\nFROM scratch\nFROM Build AS again\n",
        );
        assert_eq!(d.stages.len(), 4);
        let s = &d.stages[0];
        assert_eq!(s.line, 4);
        assert_eq!(s.platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(
            s.base,
            Base::Image {
                reference: "debian:bookworm".into(),
                via_arg: None,
                uses_args: vec!["BASE".into(), "TAG".into()],
            }
        );
        assert_eq!(&d.text[s.image_span.clone()], "${BASE}:${TAG}");
        assert_eq!(d.stages[1].base, Base::Stage(0));
        assert_eq!(d.stages[2].base, Base::Scratch);
        // Stage names are case-insensitive, as the builder treats them.
        assert_eq!(d.stages[3].base, Base::Stage(0));
    }

    #[test]
    fn one_arg_holding_the_whole_reference_is_pinned_through_the_arg() {
        let d = parse("ARG IMAGE=\"debian:bookworm\"\nFROM ${IMAGE}\n");
        assert_eq!(
            d.stages[0].base,
            Base::Image {
                reference: "debian:bookworm".into(),
                via_arg: Some("IMAGE".into()),
                uses_args: vec!["IMAGE".into()],
            }
        );
        let span = d.global_args[0].value_span.clone().unwrap();
        assert_eq!(&d.text[span], "\"debian:bookworm\"");
    }

    #[test]
    fn build_args_win_and_missing_values_are_named() {
        let mut args = BTreeMap::new();
        args.insert("TAG".to_string(), "trixie".to_string());
        let d = Dockerfile::parse("ARG TAG=bookworm\nFROM debian:$TAG\n", &args).unwrap();
        assert!(
            matches!(&d.stages[0].base, Base::Image { reference, .. } if reference == "debian:trixie")
        );
        let d = parse("ARG TAG\nFROM debian:${TAG}\n");
        assert!(
            matches!(&d.stages[0].base, Base::Unresolved { reason } if reason.contains("ARG TAG has no value"))
        );
        let d = parse("FROM debian:${NOPE:-bookworm}\nFROM debian:${NOPE2}\n");
        assert!(
            matches!(&d.stages[0].base, Base::Image { reference, .. } if reference == "debian:bookworm")
        );
        assert!(
            matches!(&d.stages[1].base, Base::Unresolved { reason } if reason.contains("not an ARG declared"))
        );
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let text = "FROM debian:bookworm\nRUN <<EOF cat >/x\nFROM evil:latest\nEOF\n\
                    COPY <<-\"A\" <<'B' /dst/\n\tFROM a\n\tA\nFROM b\nB\nRUN echo '<<NOT' && cat <<<here\n\
                    FROM alpine:3.20\n";
        let masked = mask_heredocs(text);
        assert_eq!(masked.len(), text.len());
        let d = parse(text);
        let images: Vec<&str> = d.stages.iter().map(|s| s.image.as_str()).collect();
        assert_eq!(images, ["debian:bookworm", "alpine:3.20"]);
        assert_eq!(d.stages[1].line, 11);
    }

    #[test]
    fn base_labels_with_spans_and_lines() {
        let text = "FROM debian:bookworm\nLABEL a=b \\\n  org.opencontainers.image.base.name=\"docker.io/library/debian:bookworm\"\n";
        let d = parse(text);
        let l = &d.stages[0].labels[0];
        assert_eq!(l.key, BASE_NAME);
        assert_eq!(l.value, "docker.io/library/debian:bookworm");
        assert_eq!(l.line, 3);
        assert_eq!(l.siblings.len(), 2);
        assert_eq!(
            &text[l.value_span.clone()],
            "\"docker.io/library/debian:bookworm\""
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e =
            Dockerfile::parse("FROM debian\nRUN true\n\"broken\n", &BTreeMap::new()).unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        let e = Dockerfile::parse("# escape=`\nFROM debian\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("escape"));
        let big = "#".repeat(MAX_SIZE + 1);
        assert!(Dockerfile::parse(&big, &BTreeMap::new()).is_err());
    }
}
