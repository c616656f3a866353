//! `containerspec dockerfile check|pin|update PATH...`: base images pinned to digests,
//! moved forward deliberately, and the base-image labels after each `FROM` kept true. With
//! host descriptions, `update` refuses to move a base to an image whose loader and libc
//! would no longer run on those hosts.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CliError, print_json};
use crate::dockerfile::rewrite::{Labels, StageChange};
use crate::dockerfile::{Base, Dockerfile, Written, is_dockerfile_name, tags};
use crate::engine::finding::{Finding, Severity};
use crate::engine::hostdesc::{HostDescription, judge_base};
use crate::registry::{self, AuthFiles, Client, Options, RegistryError, Resolved};

#[derive(Debug, Args)]
#[command(
    after_help = "Paths are Dockerfiles or Containerfiles, or directories searched for them \
(Dockerfile, Containerfile, Dockerfile.*, *.Dockerfile, Containerfile.*).\n\n\
Every base image is resolved against its registry through the OCI distribution API: the digest \
of the image index for multi-platform images (what a pin names), and each platform's manifest \
in the report. Credentials come from the auth files podman login and docker login write \
($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, \
~/.docker/config.json) or --authfile; otherwise access is anonymous. Registries on a loopback \
address are reached over plain HTTP, as Docker does; others need --insecure-registry.\n\n\
Exit status: 0 nothing to do (check) or done (pin, update); 1 something to do (check), a base \
that cannot be pinned in place, or a move refused for a host; 2 a parse, registry or write error \
(that file is left as it was; the message names the file and line).\n\n\
Examples:\n  containerspec dockerfile check .\n  \
containerspec dockerfile pin docker/Dockerfile\n  \
containerspec dockerfile update --to-newer-tags --hosts nodes/ .\n  \
containerspec dockerfile check --json images/ | jq '.files[].bases[] | select(.status != \"current\")'"
)]
pub struct DockerfileArgs {
    #[command(subcommand)]
    pub command: DockerfileCommand,
}

#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Change nothing; exit 1 when a base is unpinned, pinned to a digest its tag no longer
    /// points to, has a newer tag in its track, or when the base-image labels are not true
    Check(CommonArgs),
    /// Pin every unpinned base (`FROM name:tag` -> `FROM name:tag@sha256:...`) and make
    /// the base-image labels after the last `FROM` true; pinned bases are left where they are
    Pin(CommonArgs),
    /// Pin, and move stale pins to what their tag points to now (with --to-newer-tags, to
    /// the newest tag of the same track); with --hosts/--host-root, only to an image whose
    /// loader and libc still run on every host given
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Dockerfiles, Containerfiles, or directories holding them
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the report as JSON (schema: docs/schema/dockerfile.json)
    #[arg(long)]
    pub json: bool,
    /// A build argument, as `docker build --build-arg` would pass it (wins over ARG defaults)
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Read registry credentials from this file only (Podman's auth.json or Docker's config.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Speak plain HTTP to this registry (host[:port]); loopback registries always are
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Registry requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds to wait for one registry answer
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Move to the newest tag of the same track (12.1 -> 12.2, bookworm-20250101 -> a
    /// later date; never to `latest`)
    #[arg(long)]
    pub to_newer_tags: bool,
    /// Host descriptions (`containerspec host --json` output): a file holding one or an
    /// array, or a directory of *.json files; a move is refused if the new image would
    /// not run on one of them
    #[arg(long, value_name = "FILE|DIR")]
    pub hosts: Vec<PathBuf>,
    /// A host root to describe and judge against, like --hosts (this machine's CPU)
    #[arg(long, value_name = "DIR")]
    pub host_root: Vec<PathBuf>,
    /// Judge as if these host libraries are injected (mpi): the new base's glibc must be
    /// at least what the host's MPI needs
    #[arg(long, value_name = "LIST")]
    pub inject: Option<String>,
    /// Report what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Check,
    Pin,
    Update,
}

/// The `--json` report.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub command: String,
    pub files: Vec<FileReport>,
    /// Things the registry client could not do (credential helpers not run...).
    pub notes: Vec<String>,
    pub summary: Summary,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub files: usize,
    pub bases: usize,
    pub current: usize,
    pub unpinned: usize,
    pub stale: usize,
    pub with_newer_tags: usize,
    pub labels_wrong: usize,
    pub changed_files: usize,
    pub refused_moves: usize,
    pub errors: usize,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FileReport {
    pub path: String,
    /// Whether the file was rewritten (never for `check` or `--dry-run`).
    pub changed: bool,
    /// The rewrite would change the file (`check`, `--dry-run`).
    pub would_change: bool,
    /// A parse, registry or write error: the file was left as it was.
    pub error: Option<String>,
    pub bases: Vec<BaseReport>,
    /// What happened to the base-image labels: `ok`, `added`, `updated`, `removed`.
    pub labels: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BaseReport {
    pub line: usize,
    pub stage: usize,
    pub stage_name: Option<String>,
    /// The image as written in the `FROM` line.
    pub written: String,
    /// `image`, `stage`, `scratch` or `unresolved`.
    pub kind: String,
    /// With the `ARG`s substituted.
    pub reference: Option<String>,
    /// `current`, `unpinned`, `stale`, `unpinnable`, `pinned` (a digest without a tag),
    /// `error`, or `-` for stages and scratch.
    pub status: String,
    /// The digest written in the file, if any.
    pub pinned: Option<String>,
    /// What the tag points to now.
    pub resolved: Option<Resolved>,
    /// Newer tags of the same track, oldest first.
    pub newer_tags: Vec<String>,
    /// What was done (or would be): `pinned`, `moved`, `moved to tag X`.
    pub action: Option<String>,
    /// Moves refused because the image would not run on a host, and why.
    pub refused: Vec<Refusal>,
    pub note: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Refusal {
    /// `name:tag@digest` that was not taken.
    pub candidate: String,
    pub host: String,
    pub findings: Vec<Finding>,
    /// The new base's files could not be read (a registry or layer error): nothing was
    /// verified, so nothing moved.
    pub error: Option<String>,
}

pub fn run(args: &DockerfileArgs) -> Result<u8, CliError> {
    match &args.command {
        DockerfileCommand::Check(c) => execute(c, Mode::Check, None),
        DockerfileCommand::Pin(c) => execute(c, Mode::Pin, None),
        DockerfileCommand::Update(u) => execute(&u.common, Mode::Update, Some(u)),
    }
}

/// One parsed file and what is decided for it.
struct Entry {
    path: PathBuf,
    file: Option<Dockerfile>,
    error: Option<String>,
}

fn execute(c: &CommonArgs, mode: Mode, update: Option<&UpdateArgs>) -> Result<u8, CliError> {
    let build_args = parse_build_args(&c.build_args)?;
    let paths = collect(&c.paths)?;
    let hosts = match update {
        Some(u) => super::hosts::load(&u.hosts, &u.host_root)?,
        None => Vec::new(),
    };
    let inject_mpi = match update.and_then(|u| u.inject.as_deref()) {
        None => false,
        Some(list) => {
            let mut mpi = false;
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item {
                    "mpi" => mpi = true,
                    other => {
                        return Err(CliError::Action(format!(
                            "--inject {other}: only mpi decides a base image's fit (gpu libraries depend on the image's CUDA, not its base)"
                        )));
                    }
                }
            }
            mpi
        }
    };
    let entries: Vec<Entry> = paths
        .into_iter()
        .map(|path| read_entry(path, &build_args))
        .collect();

    // Every distinct reference, resolved once.
    let mut parsed_refs = Vec::new();
    let mut to_resolve = Vec::new();
    for e in &entries {
        for stage in e.file.iter().flat_map(|f| &f.stages) {
            if let Base::Image { reference, .. } = &stage.base {
                if let Ok(r) = registry::parse_reference(reference) {
                    if r.tag().is_some() || r.digest().is_none() {
                        to_resolve.push(tag_ref(&r));
                    }
                    parsed_refs.push(r);
                }
            }
        }
    }
    let options = Options {
        insecure: c.insecure_registries.clone(),
        auth: AuthFiles::load(c.authfile.as_deref()),
        timeout: Duration::from_secs(c.timeout.max(1)),
        concurrency: c.concurrency.max(1),
    };
    let client = Client::new(options, &parsed_refs).map_err(CliError::Action)?;
    let show_progress = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        if show_progress {
            eprint!("\rresolving base images: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    };
    let resolved = client.resolve_all(&to_resolve, &progress);

    // Tags of every repository whose tag has a track.
    let mut repos = Vec::new();
    for r in &parsed_refs {
        if let Some(t) = r.tag() {
            if tags::has_track(t) {
                repos.push(format!("{}/{}", r.registry(), r.repository()));
            }
        }
    }
    let tag_lists = if repos.is_empty() {
        BTreeMap::new()
    } else {
        client.tags_all(&repos)
    };

    let mut ctx = Context {
        mode,
        client: &client,
        resolved,
        tag_lists,
        hosts: &hosts,
        inject_mpi,
        to_newer_tags: update.is_some_and(|u| u.to_newer_tags),
        judged: BTreeMap::new(),
    };
    // Candidates for --to-newer-tags are resolved in one more concurrent round.
    if mode == Mode::Update && ctx.to_newer_tags {
        let mut more = Vec::new();
        for r in &parsed_refs {
            for t in ctx.newer_tags(r) {
                more.push(format!("{}/{}:{t}", r.registry(), r.repository()));
            }
        }
        let extra = client.resolve_all(&more, &progress);
        ctx.resolved.extend(extra);
    }

    let dry_run = update.is_some_and(|u| u.dry_run);
    let mut files = Vec::new();
    for e in entries {
        files.push(ctx.file_report(e, dry_run));
    }
    let notes = client.notes.lock().map(|n| n.clone()).unwrap_or_default();
    let summary = summarize(&files);
    let report = Report {
        command: match mode {
            Mode::Check => "check",
            Mode::Pin => "pin",
            Mode::Update => "update",
        }
        .to_string(),
        files,
        notes,
        summary,
    };
    if c.json {
        print_json(&report)?;
    } else {
        super::print_text(&render(&report))?;
    }
    let s = &report.summary;
    Ok(if s.errors > 0 {
        2
    } else {
        let problems = match mode {
            Mode::Check => s.unpinned + s.stale + s.with_newer_tags + s.labels_wrong,
            Mode::Pin | Mode::Update => {
                s.refused_moves
                    + report
                        .files
                        .iter()
                        .flat_map(|f| &f.bases)
                        .filter(|b| b.status == "unpinnable")
                        .count()
            }
        };
        u8::from(problems > 0)
    })
}

/// `registry/repository:tag` (the digest dropped) for resolving what the tag is now.
fn tag_ref(r: &oci_client::Reference) -> String {
    format!(
        "{}/{}:{}",
        r.registry(),
        r.repository(),
        r.tag().unwrap_or("latest")
    )
}

struct Context<'a> {
    mode: Mode,
    client: &'a Client,
    resolved: BTreeMap<String, Result<Resolved, RegistryError>>,
    tag_lists: BTreeMap<String, Result<Vec<String>, RegistryError>>,
    hosts: &'a [(String, HostDescription)],
    inject_mpi: bool,
    to_newer_tags: bool,
    /// (reference@digest, platform) -> the base's files as read (or why they were not).
    judged: BTreeMap<(String, String), Result<crate::inventory::model::Inventory, Unread>>,
}

impl Context<'_> {
    fn newer_tags(&self, r: &oci_client::Reference) -> Vec<String> {
        let Some(tag) = r.tag() else {
            return Vec::new();
        };
        let repo = format!("{}/{}", r.registry(), r.repository());
        match self.tag_lists.get(&repo) {
            Some(Ok(all)) => tags::newer_in_track(tag, all),
            _ => Vec::new(),
        }
    }

    fn file_report(&mut self, e: Entry, dry_run: bool) -> FileReport {
        let path = e.path.display().to_string();
        let Some(file) = e.file else {
            return FileReport {
                path,
                changed: false,
                would_change: false,
                error: e.error,
                bases: Vec::new(),
                labels: None,
            };
        };
        let mut bases = Vec::new();
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        // Per stage: the name and digest its image base has after this run.
        let mut outcome: Vec<Option<(String, String)>> = Vec::new();
        for stage in &file.stages {
            let (report, change, result) = self.stage(&file, stage);
            if let Some(err) = &report.error {
                errors.push(format!("{path}:{}: {err}", report.line));
            }
            outcome.push(result);
            bases.push(report);
            changes.push(change);
        }
        // Base-image labels: true for every stage that carries them, added to the last.
        let last = file.stages.len().saturating_sub(1);
        let mut label_state = None;
        for (i, stage) in file.stages.iter().enumerate() {
            let root = root_stage(&file, i);
            let wanted = match root.map(|r| (&file.stages[r].base, &outcome[r])) {
                Some((Base::Scratch, _)) => Labels::Remove,
                Some((Base::Image { .. }, Some((name, digest)))) => Labels::Set {
                    name: name.clone(),
                    digest: digest.clone(),
                    add: i == last,
                },
                _ => Labels::Keep,
            };
            if i == last || !stage.labels.is_empty() {
                changes[i].labels = wanted;
            }
        }
        let new_text = crate::dockerfile::rewrite::apply(&file, &changes);
        let labels_changed = {
            let without_refs: Vec<StageChange> = changes
                .iter()
                .map(|c| StageChange {
                    reference: None,
                    labels: c.labels.clone(),
                })
                .collect();
            crate::dockerfile::rewrite::apply(&file, &without_refs) != file.text
        };
        if let Some(l) = file.stages.last() {
            let has = !l.labels.is_empty();
            label_state = Some(
                match (&changes[last].labels, labels_changed, has) {
                    (_, false, _) => "ok",
                    (Labels::Remove, true, _) => "removed",
                    (_, true, false) => "added",
                    (_, true, true) => "updated",
                }
                .to_string(),
            );
        }
        let would_change = new_text != file.text;
        let mut changed = false;
        let mut error = (!errors.is_empty()).then(|| errors.join("; "));
        if error.is_none() && would_change && self.mode != Mode::Check && !dry_run {
            match crate::dockerfile::write::replace(&e.path, &new_text) {
                Ok(()) => changed = true,
                Err(err) => error = Some(format!("{path}: cannot rewrite: {err}")),
            }
        }
        FileReport {
            path,
            changed,
            would_change: would_change && error.is_none(),
            error,
            bases,
            labels: label_state,
        }
    }

    /// The report for one stage, the change to its reference, and the (name, digest) its
    /// image base records after this run.
    fn stage(
        &mut self,
        file: &Dockerfile,
        stage: &crate::dockerfile::Stage,
    ) -> (BaseReport, StageChange, Option<(String, String)>) {
        let mut report = BaseReport {
            line: stage.line,
            stage: stage.index,
            stage_name: stage.name.clone(),
            written: stage.image.clone(),
            kind: String::new(),
            reference: None,
            status: "-".into(),
            pinned: None,
            resolved: None,
            newer_tags: Vec::new(),
            action: None,
            refused: Vec::new(),
            note: None,
            error: None,
        };
        let mut change = StageChange::default();
        let (reference, via_arg, uses_args) = match &stage.base {
            Base::Scratch => {
                report.kind = "scratch".into();
                return (report, change, None);
            }
            Base::Stage(i) => {
                report.kind = "stage".into();
                report.note = Some(format!("builds on stage {i}"));
                return (report, change, None);
            }
            Base::Unresolved { reason } => {
                report.kind = "unresolved".into();
                report.status = "error".into();
                report.error = Some(reason.clone());
                return (report, change, None);
            }
            Base::Image {
                reference,
                via_arg,
                uses_args,
            } => (reference, via_arg, uses_args),
        };
        report.kind = "image".into();
        report.reference = Some(reference.clone());
        let r = match registry::parse_reference(reference) {
            Ok(r) => r,
            Err(e) => {
                report.status = "error".into();
                report.error = Some(e.to_string());
                return (report, change, None);
            }
        };
        report.pinned = r.digest().map(str::to_string);
        // Where the reference is written: the FROM image, or the ARG default it is.
        let site: Option<(std::ops::Range<usize>, String)> = match via_arg {
            Some(name) => file
                .global_args
                .iter()
                .rev()
                .find(|a| &a.name == name && a.value_span.is_some())
                .and_then(|a| a.value_span.clone())
                .map(|span| {
                    let text = file.text[span.clone()].to_string();
                    (span, text)
                }),
            None if uses_args.is_empty() => Some((stage.image_span.clone(), stage.image.clone())),
            None => None,
        };
        if r.tag().is_none() && r.digest().is_some() {
            report.status = "pinned".into();
            report.note =
                Some("pinned to a digest without a tag: nothing to compare it with".into());
            let name = format!("{}/{}", r.registry(), r.repository());
            return (report, change, r.digest().map(|d| (name, d.to_string())));
        }
        let key = tag_ref(&r);
        let current = match self.resolved.get(&key) {
            Some(Ok(res)) => res.clone(),
            Some(Err(e)) => {
                report.status = "error".into();
                report.error = Some(e.to_string());
                return (report, change, None);
            }
            None => {
                report.status = "error".into();
                report.error = Some(format!("{key}: not resolved"));
                return (report, change, None);
            }
        };
        report.resolved = Some(current.clone());
        report.newer_tags = self.newer_tags(&r);
        report.status = match &report.pinned {
            None => "unpinned",
            Some(d) if *d == current.digest => "current",
            Some(_) => "stale",
        }
        .into();
        if site.is_none() {
            report.note = Some(format!(
                "built from ARG {}: put the whole reference in one ARG default (or write it in \
                 the FROM line) so that it can be pinned",
                uses_args.join(", ")
            ));
            if report.status == "unpinned" {
                report.status = "unpinnable".into();
            }
        }
        let tag = r.tag().unwrap_or("latest").to_string();
        let name_of = |t: &str| format!("{}/{}:{t}", r.registry(), r.repository());
        // What this run leaves the stage on: (tag, digest).
        let mut target: (String, String) = match &report.pinned {
            Some(d) => (tag.clone(), d.clone()),
            None => (tag.clone(), current.digest.clone()),
        };
        if self.mode == Mode::Update {
            let mut candidates: Vec<(String, String)> = Vec::new();
            if self.to_newer_tags {
                for t in report.newer_tags.iter().rev().take(4) {
                    match self.resolved.get(&name_of(t)) {
                        Some(Ok(res)) => candidates.push((t.clone(), res.digest.clone())),
                        Some(Err(e)) => {
                            report.note = Some(format!("newer tag {t}: {e}"));
                        }
                        None => {}
                    }
                }
            }
            if report
                .pinned
                .as_deref()
                .is_some_and(|d| d != current.digest)
            {
                candidates.push((tag.clone(), current.digest.clone()));
            }
            for (t, digest) in candidates {
                let refused = self.refusals(&r, &report.pinned, &name_of(&t), &digest);
                if refused.is_empty() {
                    target = (t, digest);
                    break;
                }
                report.refused.extend(refused);
            }
        }
        let (new_tag, new_digest) = &target;
        let unchanged = report.pinned.as_deref() == Some(new_digest.as_str()) && *new_tag == tag;
        if self.mode != Mode::Check && !unchanged {
            if let Some((span, written)) = &site {
                let (quote, inner) = unquote(written);
                let w = Written::split(inner);
                let tag_arg = (*new_tag != tag).then_some(new_tag.as_str());
                let text = format!("{quote}{}{quote}", w.pinned(tag_arg, new_digest));
                change.reference = Some((span.clone(), text));
                report.action = Some(match (&report.pinned, *new_tag != tag) {
                    (None, _) => format!("pinned to {new_digest}"),
                    (Some(_), true) => format!("moved to tag {new_tag} ({new_digest})"),
                    (Some(_), false) => format!("moved to {new_digest}"),
                });
            }
        }
        if self.mode == Mode::Check && report.status == "unpinned" {
            report.action = Some(format!("would pin to {}", current.digest));
        }
        // The name and digest the base-image labels record after this run: what the
        // file pins then (for check, what `pin` would leave it on).
        let recorded = if change.reference.is_some() {
            Some((name_of(new_tag), new_digest.clone()))
        } else if let Some(d) = &report.pinned {
            Some((name_of(&tag), d.clone()))
        } else if self.mode == Mode::Check && site.is_some() {
            Some((name_of(&tag), current.digest.clone()))
        } else {
            None
        };
        (report, change, recorded)
    }

    /// Why moving `r` (now at `pinned`) to `candidate@digest` is refused: for each host,
    /// the new image's loader and libc fail where the current one's do not.
    fn refusals(
        &mut self,
        r: &oci_client::Reference,
        pinned: &Option<String>,
        candidate: &str,
        digest: &str,
    ) -> Vec<Refusal> {
        let mut out = Vec::new();
        let hosts = self.hosts;
        for (name, host) in hosts {
            let Some(platform) = host.platform() else {
                continue;
            };
            let new_ref = format!("{}/{}@{digest}", r.registry(), r.repository());
            let (findings, error) = self.judge(&new_ref, &platform, host);
            if error.is_none() && !fails(&findings) {
                continue;
            }
            let was_failing = match pinned {
                Some(d) => {
                    let old_ref = format!("{}/{}@{d}", r.registry(), r.repository());
                    let (old, old_error) = self.judge(&old_ref, &platform, host);
                    old_error.is_none() && fails(&old)
                }
                None => false,
            };
            if was_failing {
                continue;
            }
            out.push(Refusal {
                candidate: format!("{candidate}@{digest}"),
                host: name.clone(),
                findings,
                error,
            });
        }
        out
    }

    /// The findings for the base `reference` on `host`, or why its files could not be
    /// read (then nothing is verified, and the move is not made).
    fn judge(
        &mut self,
        reference: &str,
        platform: &str,
        host: &HostDescription,
    ) -> (Vec<Finding>, Option<String>) {
        let key = (reference.to_string(), platform.to_string());
        if !self.judged.contains_key(&key) {
            let read = read_base(self.client, reference, platform);
            self.judged.insert(key.clone(), read);
        }
        match self.judged.get(&key) {
            Some(Ok(inv)) => (judge_base(inv, host, self.inject_mpi), None),
            Some(Err(Unread::NoPlatform(message))) => (
                vec![
                    Finding::new(crate::engine::finding::Code::ArchMismatch, message.clone())
                        .hint("keep a base whose index has a manifest for every host's platform"),
                ],
                None,
            ),
            Some(Err(Unread::Other(message))) => (
                Vec::new(),
                Some(format!("the new base could not be read: {message}")),
            ),
            None => (Vec::new(), Some("not judged".into())),
        }
    }
}

/// Why a base's files were not read.
enum Unread {
    /// Its index has no manifest for the host's platform: a true reason to refuse.
    NoPlatform(String),
    Other(String),
}

/// A base is refused where its findings hold an error, or a warning (what could not be
/// verified is not passed).
fn fails(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| matches!(f.severity, Severity::Error | Severity::Warning))
}

/// Streams the image's layers for `platform` and reads its loader and libc.
fn read_base(
    client: &Client,
    reference: &str,
    platform: &str,
) -> Result<crate::inventory::model::Inventory, Unread> {
    let root = client.base_root(reference, platform).map_err(|e| match e {
        RegistryError::NotFound { message, .. } if message.starts_with("no manifest for") => {
            Unread::NoPlatform(format!("{reference}: {message}"))
        }
        other => Unread::Other(other.to_string()),
    })?;
    let fs =
        crate::input::rootfs::RootFs::open(&root.path).map_err(|e| Unread::Other(e.to_string()))?;
    let request = crate::inventory::gather::Request::default();
    Ok(crate::inventory::gather::gather(&fs, &request))
}

/// The first stage of the chain `i` builds on (itself when it starts from an image).
fn root_stage(file: &Dockerfile, mut i: usize) -> Option<usize> {
    for _ in 0..=file.stages.len() {
        match file.stages.get(i)?.base {
            Base::Stage(j) if j < i => i = j,
            Base::Stage(_) => return None,
            _ => return Some(i),
        }
    }
    None
}

fn unquote(text: &str) -> (&'static str, &str) {
    for q in ["\"", "'"] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return (if q == "\"" { "\"" } else { "'" }, inner);
        }
    }
    ("", text)
}

fn read_entry(path: PathBuf, build_args: &BTreeMap<String, String>) -> Entry {
    use std::io::Read;
    let shown = path.display().to_string();
    let text = (|| -> Result<String, String> {
        let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        f.take(crate::dockerfile::parse::MAX_SIZE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
    })();
    match text.and_then(|t| Dockerfile::parse(&t, build_args).map_err(|e| e.to_string())) {
        Ok(file) => Entry {
            path,
            file: Some(file),
            error: None,
        },
        Err(e) => {
            let error = match e.strip_prefix("line ") {
                Some(rest) => format!("{shown}:{rest}"),
                None => format!("{shown}: {e}"),
            };
            Entry {
                path,
                file: None,
                error: Some(error),
            }
        }
    }
}

fn parse_build_args(args: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(CliError::Action(format!(
                "--build-arg {a}: expected NAME=VALUE"
            )));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Files given, and Dockerfiles found under directories given (hidden directories and
/// symlinks are not followed; at most 100,000 entries looked at).
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    let mut budget = 100_000usize;
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| CliError::Target {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            walk(p, &mut out, &mut budget, 0)?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(CliError::Action(format!(
            "no Dockerfile or Containerfile under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    budget: &mut usize,
    depth: usize,
) -> Result<(), CliError> {
    if depth > 32 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CliError::Target {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    for entry in entries.flatten() {
        if *budget == 0 {
            return Ok(());
        }
        *budget -= 1;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && !name.starts_with('.') {
            walk(&entry.path(), out, budget, depth + 1)?;
        } else if kind.is_file() && is_dockerfile_name(&name) {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn summarize(files: &[FileReport]) -> Summary {
    let mut s = Summary {
        files: files.len(),
        ..Default::default()
    };
    for f in files {
        if f.error.is_some() {
            s.errors += 1;
        }
        if f.changed {
            s.changed_files += 1;
        }
        if f.labels.as_deref().is_some_and(|l| l != "ok") {
            s.labels_wrong += 1;
        }
        for b in &f.bases {
            if b.kind != "image" {
                continue;
            }
            s.bases += 1;
            match b.status.as_str() {
                "current" | "pinned" => s.current += 1,
                "unpinned" | "unpinnable" => s.unpinned += 1,
                "stale" => s.stale += 1,
                _ => {}
            }
            if !b.newer_tags.is_empty() {
                s.with_newer_tags += 1;
            }
            if !b.refused.is_empty() && b.action.is_none() {
                s.refused_moves += 1;
            }
        }
    }
    s
}

fn render(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for f in &report.files {
        let state = if f.error.is_some() {
            "unchanged (error)"
        } else if f.changed {
            "rewritten"
        } else if f.would_change {
            "would change"
        } else {
            "up to date"
        };
        let _ = writeln!(out, "{}: {state}", f.path);
        if let Some(e) = &f.error {
            let _ = writeln!(out, "  error: {e}");
        }
        for b in &f.bases {
            let name = b
                .stage_name
                .as_ref()
                .map(|n| format!(" AS {n}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  line {:<4} FROM {}{name}  [{}{}]",
                b.line,
                b.written,
                b.kind,
                if b.kind == "image" {
                    format!(", {}", b.status)
                } else {
                    String::new()
                }
            );
            if let Some(r) = &b.resolved {
                let _ = writeln!(out, "             {} -> {}", r.reference, r.digest);
                for p in &r.platforms {
                    let _ = writeln!(out, "               {:<16} {}", p.platform, p.digest);
                }
            }
            if let Some(p) = &b.pinned {
                if b.resolved.as_ref().is_some_and(|r| &r.digest != p) {
                    let _ = writeln!(out, "             pinned to {p}");
                }
            }
            if !b.newer_tags.is_empty() {
                let _ = writeln!(out, "             newer tags: {}", b.newer_tags.join(", "));
            }
            if let Some(a) = &b.action {
                let _ = writeln!(out, "             {a}");
            }
            for r in &b.refused {
                let _ = writeln!(
                    out,
                    "             refused {} for host {}:",
                    r.candidate, r.host
                );
                if let Some(e) = &r.error {
                    let _ = writeln!(out, "               {e}");
                }
                for finding in &r.findings {
                    let _ = writeln!(
                        out,
                        "               [{}] {}",
                        finding.code.as_str(),
                        finding.message
                    );
                }
            }
            if let Some(n) = &b.note {
                let _ = writeln!(out, "             note: {n}");
            }
            if let Some(e) = &b.error {
                let _ = writeln!(out, "             error: {e}");
            }
        }
        if let Some(l) = &f.labels {
            if l != "ok" {
                let _ = writeln!(out, "  base-image labels: {l}");
            }
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "{} file(s), {} base image(s): {} current, {} unpinned, {} stale, {} with newer tags, \
         {} with labels to fix, {} rewritten, {} move(s) refused, {} error(s)",
        s.files,
        s.bases,
        s.current,
        s.unpinned,
        s.stale,
        s.with_newer_tags,
        s.labels_wrong,
        s.changed_files,
        s.refused_moves,
        s.errors
    );
    out
}
