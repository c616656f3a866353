//! `containerspec select IMAGE`: the manifest of a multi-platform image that runs best on
//! this host or on the hosts described (docs/select.md). The candidates come from an OCI
//! image layout's index (each variant's files read to check its claim) or from a
//! registry's (its entries' platforms and annotations); the choice is the engine's
//! ([`crate::engine::variant`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::{CliError, print_json, print_text};
use crate::engine::hostdesc::HostDescription;
use crate::engine::variant::{self, Candidate, Choice};
use crate::input::layout;
use crate::input::target::Target;
use crate::registry::{AuthFiles, Client, Descriptor, Options, Platform, parse_reference};

/// The files of at most this many variants of a layout are read (each is unpacked whole).
const MAX_READ: usize = 8;

#[derive(Debug, Args)]
#[command(
    after_help = "IMAGE is an OCI image layout (DIR, or DIR:TAG when it holds several images) or \
a registry reference (registry/repository:tag). Each manifest of its index is judged for each \
host: its platform (os and architecture), its amd64 variant (v1 to v4; none is the baseline) \
and the archspec CPU target a label names (io.archspec.cpu.target, \
org.supercontainers.cpu.target) against the host CPU's usable features. The files of a layout's \
variants for the hosts' platforms are read as inspect reads them (at most 8 variants): a \
variant whose files need more than it claims is reported and judged by its files. A registry \
variant's claim is not checked against its files.\n\n\
The best is the runnable variant with the highest x86-64 level, then the most specific target; \
ties go to the first in the index. Its digest is printed on stdout (one `NAME DIGEST` line per \
host when several are judged), the reasons for every variant on stderr, or all with --json.\n\n\
Exit status: 0 a variant was chosen for every host; 1 some host has none (the index has no \
manifest for its platform, or none it runs); 2 an error in the input (an unreadable layout or \
index, a host description of another schema version, a registry that cannot answer).\n\n\
Examples:\n  containerspec select ./layout\n  \
containerspec select ./layout:app --hosts nodes/\n  \
podman pull \"registry.example/app@$(containerspec select registry.example/app:1.2)\"\n  \
containerspec select ./layout --json | jq '.hosts[].candidates[] | {platform, notes}'"
)]
pub struct SelectArgs {
    /// An OCI image layout (DIR or DIR:TAG) or a registry reference
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Host descriptions (`containerspec host --json` output): a file holding one or an
    /// array, or a directory of *.json files; without it (and --host-root), this host
    #[arg(long, value_name = "FILE|DIR")]
    pub hosts: Vec<PathBuf>,
    /// A host root to describe and judge for, like --hosts (this machine's CPU)
    #[arg(long, value_name = "DIR")]
    pub host_root: Vec<PathBuf>,
    /// Print the choice for each host, with every variant and why, as JSON (schema:
    /// docs/schema/select.json)
    #[arg(long)]
    pub json: bool,
    /// Examine every ELF file of a layout's variants, not only what the entrypoint loads
    #[arg(long)]
    pub all: bool,
    /// Read registry credentials from this file only (Podman's auth.json or Docker's config.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Speak plain HTTP to this registry (host[:port]); loopback registries always are
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Seconds to wait for one registry answer
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

/// `select --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SelectJson {
    /// The image as named.
    pub image: String,
    /// `OCI image layout` or `registry`.
    pub source: String,
    /// One choice per host, in the order given.
    pub hosts: Vec<HostChoice>,
    /// What was not read or could not be (variants beyond the bound, auth files).
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HostChoice {
    /// The host description's name (its file's stem), or `this host`.
    pub host: String,
    #[serde(flatten)]
    pub choice: Choice,
}

pub fn run(args: &SelectArgs) -> Result<u8, CliError> {
    let hosts: Vec<(String, HostDescription)> =
        if args.hosts.is_empty() && args.host_root.is_empty() {
            vec![(
                "this host".into(),
                super::host::describe(Path::new("/"), None, true)?,
            )]
        } else {
            super::hosts::load(&args.hosts, &args.host_root)?
        };
    let platforms: Vec<String> = hosts.iter().filter_map(|(_, h)| h.platform()).collect();
    let mut notes = Vec::new();
    let (source, candidates) = match local_layout(&args.image)? {
        Some((dir, tag)) => (
            "OCI image layout",
            from_layout(args, &dir, tag.as_deref(), &platforms, &mut notes)?,
        ),
        None => ("registry", from_registry(args, &mut notes)?),
    };
    let report = SelectJson {
        image: args.image.clone(),
        source: source.into(),
        hosts: hosts
            .iter()
            .map(|(name, host)| HostChoice {
                host: name.clone(),
                choice: variant::choose(&candidates, host),
            })
            .collect(),
        notes,
    };
    let status = u8::from(report.hosts.iter().any(|h| h.choice.digest.is_none()));
    if args.json {
        print_json(&report)?;
        return Ok(status);
    }
    let several = report.hosts.len() > 1;
    let mut out = String::new();
    for h in &report.hosts {
        match (&h.choice.digest, several) {
            (Some(d), true) => out.push_str(&format!("{} {d}\n", h.host)),
            (Some(d), false) => out.push_str(&format!("{d}\n")),
            (None, _) => {}
        }
    }
    eprint!("{}", explain(&report));
    print_text(&out)?;
    Ok(status)
}

/// `IMAGE` as a local layout (`DIR`, `DIR:TAG`), None for a registry reference. A path
/// that exists but is no layout is an error, not a reference.
fn local_layout(image: &str) -> Result<Option<(PathBuf, Option<String>)>, CliError> {
    let path = Path::new(image);
    if let Some((dir, tag)) = layout::split_ref(path) {
        return Ok(Some((dir, Some(tag))));
    }
    if layout::is_layout(path) {
        return Ok(Some((path.to_path_buf(), None)));
    }
    let dir_part = image.rsplit_once(':').map_or(image, |(d, _)| d);
    if path.exists() || (image.contains(':') && Path::new(dir_part).is_dir()) {
        return Err(CliError::Target {
            path: image.to_string(),
            message: "not an OCI image layout (it needs oci-layout and index.json) nor a \
                      registry reference"
                .into(),
        });
    }
    Ok(None)
}

/// The layout's manifests, with the files of those for the hosts' platforms read.
fn from_layout(
    args: &SelectArgs,
    dir: &Path,
    tag: Option<&str>,
    platforms: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<Candidate>, CliError> {
    let shown = Path::new(&args.image);
    let err = |message: String| CliError::Target {
        path: args.image.clone(),
        message,
    };
    let mut candidates = Vec::new();
    let mut unread = 0;
    for d in layout::manifests(dir, tag).map_err(err)? {
        let mut c = candidate(&d);
        let for_a_host = c.platform.as_deref().is_none_or(|p| {
            platforms
                .iter()
                .any(|h| crate::registry::platform_matches(p, h))
        });
        if for_a_host && candidates_read(&candidates) >= MAX_READ {
            unread += 1;
        } else if for_a_host {
            let unpacked = layout::unpack_manifest(dir, &d.digest).map_err(err)?;
            if c.platform.is_none() {
                c.platform = unpacked.platform.as_ref().map(Platform::text);
            }
            for (k, v) in &unpacked.labels {
                c.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let target = Target::unpacked(shown, unpacked)?;
            let (inventory, _) = super::inspect::inventory_of(&target, args.all, false)?;
            c.files = Some(inventory.microarch);
        }
        candidates.push(c);
    }
    if unread > 0 {
        notes.push(format!(
            "the files of {unread} more variants were not read (at most {MAX_READ} are): their claims are not checked"
        ));
    }
    Ok(candidates)
}

fn candidates_read(candidates: &[Candidate]) -> usize {
    candidates.iter().filter(|c| c.files.is_some()).count()
}

/// An index entry as a candidate: its platform and annotations.
fn candidate(d: &Descriptor) -> Candidate {
    Candidate {
        digest: d.digest.clone(),
        platform: d.platform.as_ref().map(Platform::text),
        labels: d.annotations.clone(),
        files: None,
    }
}

/// The registry index's entries (a lone manifest is the one candidate).
fn from_registry(args: &SelectArgs, notes: &mut Vec<String>) -> Result<Vec<Candidate>, CliError> {
    let reference = parse_reference(&args.image).map_err(|e| CliError::Action(e.to_string()))?;
    let options = Options {
        insecure: args.insecure_registries.clone(),
        auth: AuthFiles::load(args.authfile.as_deref()),
        timeout: Duration::from_secs(args.timeout.max(1)),
        concurrency: 1,
    };
    let client = Client::new(options, &[reference]).map_err(CliError::Action)?;
    let (digest, index) = client
        .index(&args.image)
        .map_err(|e| CliError::Action(e.to_string()))?;
    if let Ok(n) = client.notes.lock() {
        notes.extend(n.iter().cloned());
    }
    if index.manifests.is_empty() {
        return Ok(vec![Candidate {
            digest,
            ..Default::default()
        }]);
    }
    Ok(index.manifests.iter().map(candidate).collect())
}

/// The reasons, per host and per variant, for stderr.
fn explain(report: &SelectJson) -> String {
    let mut out = String::new();
    for h in &report.hosts {
        let c = &h.choice;
        let cpu = c
            .host_level
            .map(|l| format!(", CPU x86-64-v{l}"))
            .unwrap_or_default();
        let verdict = match (&c.digest, &c.none) {
            (Some(d), _) => d.clone(),
            (None, Some(why)) => format!("none: {why}"),
            (None, None) => "none".into(),
        };
        out.push_str(&format!(
            "{} ({}{cpu}): {verdict}\n",
            h.host, c.host_platform
        ));
        for j in &c.candidates {
            let word = if j.chosen {
                "taken"
            } else if j.runs {
                "runs"
            } else {
                "passed"
            };
            out.push_str(&format!(
                "  {word:<6} {} {}{}\n",
                j.digest,
                j.platform.as_deref().unwrap_or("(platform unstated)"),
                if j.claim.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", j.claim)
                }
            ));
            for n in &j.notes {
                let code = serde_json::to_value(n.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                out.push_str(&format!("         {code}: {}\n", n.message));
            }
        }
    }
    for n in &report.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
