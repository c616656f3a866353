//! `containerspec match IMAGE...`: the constraint that selects the nodes where an image
//! runs (a Slurm `--constraint`, a Kubernetes `nodeAffinity`, Node Feature Discovery's
//! image-compatibility artifact), and, given the nodes' descriptions, which of them fit
//! and why the others do not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::{CliError, print_json};
use crate::engine::features::{self, Miss, Need, render};
use crate::engine::request::Inject;
use crate::input::target::Target;

#[derive(Debug, Args)]
#[command(
    after_help = "The image's needs are names the nodes publish with `containerspec host \
--format slurm|nfd` (docs/clusters.md): a node fits exactly when it offers every one, which is \
when check-bundle says compatible there, but for what no name can carry (the MPI symbols the \
image imports, checked when it starts; see the notes on stderr). An image no node can run \
needs `runs_nowhere`, which no node offers: the scheduler refuses the job.\n\n\
Exit status: 0 the image can run (with --hosts: on at least one node), 1 it cannot, 2 an error \
in the input.\n\n\
Examples:\n  sbatch --constraint \"$(containerspec match app.sif --inject mpi)\" job.sh\n  \
containerspec match ./bundle --for k8s            (a pod's affinity, YAML)\n  \
containerspec match ./rootfs --for nfd > compat.yaml   (the image-compatibility artifact)\n  \
containerspec match app.sif --inject mpi --hosts nodes/        (which nodes fit, and why not)\n  \
containerspec match app.sif --slurm-conf /etc/slurm/slurm.conf"
)]
pub struct MatchArgs {
    /// Images: a rootfs directory, an OCI bundle, an Apptainer SIF or squashfs file, an
    /// OCI image layout (DIR or DIR:TAG)
    #[arg(value_name = "IMAGE", required = true)]
    pub targets: Vec<PathBuf>,
    /// The scheduler to write for: slurm (a --constraint expression), k8s (a pod's
    /// nodeAffinity), nfd (Node Feature Discovery's image-compatibility specification)
    #[arg(long = "for", value_enum, default_value_t = Scheduler::Slurm)]
    pub scheduler: Scheduler,
    /// What will be injected: mpi, gpu, mpi,gpu or none (default: the image's
    /// org.supercontainers.inject annotation or label)
    #[arg(long, value_name = "LIST")]
    pub inject: Option<String>,
    /// Judge against these nodes: host --json descriptions (files, or directories of
    /// *.json named after their nodes)
    #[arg(long, value_name = "PATH")]
    pub hosts: Vec<PathBuf>,
    /// Judge against the nodes a slurm.conf declares, by their Features=
    #[arg(long, value_name = "FILE")]
    pub slurm_conf: Option<PathBuf>,
    /// Print the report as JSON (schema: docs/schema/match.json)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    Slurm,
    K8s,
    Nfd,
}

/// `match --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MatchReport {
    pub images: Vec<ImageMatch>,
}

/// One image's needs and, with nodes given, how each node meets them.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ImageMatch {
    pub image: String,
    /// `mpi`, `gpu`, `mpi,gpu` or `none`.
    pub inject: String,
    /// The Slurm `--constraint` expression.
    pub constraint: String,
    /// A pod's `affinity` (its `nodeAffinity`); null when the image needs nothing.
    pub affinity: Option<render::Affinity>,
    #[serde(flatten)]
    pub need: Need,
    /// The nodes judged (with --hosts or --slurm-conf), in the order given.
    pub nodes: Vec<NodeMatch>,
    /// How many of them fit.
    pub fitting: usize,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NodeMatch {
    pub name: String,
    pub fits: bool,
    /// The needs it lacks, each with what it offers instead.
    pub missing: Vec<Miss>,
}

/// A node as the features it offers.
struct Node {
    name: String,
    features: BTreeSet<String>,
}

pub fn run(args: &MatchArgs) -> Result<u8, CliError> {
    let nodes = load_nodes(args)?;
    let mut images = Vec::new();
    for path in &args.targets {
        let target = Target::open(path)?;
        let (need, inject) = crate::verdict::needs(&target, args.inject.as_deref())?;
        images.push(judge(path, &inject, need, &nodes));
    }
    let status = u8::from(
        images
            .iter()
            .any(|m| !m.need.nowhere.is_empty() || (!nodes.is_empty() && m.fitting == 0)),
    );
    if args.json {
        print_json(&MatchReport { images })?;
        return Ok(status);
    }
    let several = images.len() > 1;
    let mut out = String::new();
    for m in &images {
        notes(m);
        if !nodes.is_empty() {
            out.push_str(&node_table(m));
            continue;
        }
        match args.scheduler {
            Scheduler::Slurm if several => {
                out.push_str(&format!("{}\t{}\n", m.image, m.constraint));
            }
            Scheduler::Slurm => {
                out.push_str(&m.constraint);
                out.push('\n');
            }
            Scheduler::K8s => {
                if several {
                    out.push_str(&format!("# {}\n", m.image));
                }
                out.push_str(&render::k8s_affinity_yaml(&m.need));
            }
            Scheduler::Nfd => {
                if several {
                    out.push_str("---\n");
                }
                out.push_str(&render::nfd_compatibility_yaml(&m.need, &m.image));
            }
        }
    }
    super::print_text(&out)?;
    Ok(status)
}

fn judge(path: &Path, inject: &Inject, need: Need, nodes: &[Node]) -> ImageMatch {
    let judged: Vec<NodeMatch> = nodes
        .iter()
        .map(|n| {
            let missing = features::fits(&need, &n.features);
            NodeMatch {
                name: n.name.clone(),
                fits: missing.is_empty(),
                missing,
            }
        })
        .collect();
    ImageMatch {
        image: path.display().to_string(),
        inject: match inject.items().join(",") {
            s if s.is_empty() => "none".into(),
            s => s,
        },
        constraint: render::slurm_constraint(&need),
        affinity: render::k8s_affinity(&need),
        fitting: judged.iter().filter(|n| n.fits).count(),
        nodes: judged,
        need,
    }
}

/// The needs and what they cannot say, on stderr (stdout carries the constraint).
fn notes(m: &ImageMatch) {
    for n in &m.need.all {
        log::info!("{}: needs {}: {}", m.image, n.feature, n.why);
    }
    for w in &m.need.nowhere {
        eprintln!("{}: runs on no node: {w}", m.image);
    }
    for u in &m.need.unverified {
        log::warn!("{}: not placed by features: {u}", m.image);
    }
}

fn node_table(m: &ImageMatch) -> String {
    let mut out = format!(
        "{}: needs {}\n",
        m.image,
        if m.constraint.is_empty() {
            "nothing"
        } else {
            &m.constraint
        }
    );
    for n in &m.nodes {
        if n.fits {
            out.push_str(&format!("  fits  {}\n", n.name));
            continue;
        }
        out.push_str(&format!("  no    {}\n", n.name));
        for miss in &n.missing {
            out.push_str(&format!(
                "          lacks {}: {}; needed because {}\n",
                render::slurm_name(&miss.feature),
                miss.node,
                miss.why
            ));
        }
    }
    out.push_str(&format!("  {} of {} nodes fit\n", m.fitting, m.nodes.len()));
    out
}

fn load_nodes(args: &MatchArgs) -> Result<Vec<Node>, CliError> {
    let mut nodes: Vec<Node> = super::hosts::load(&args.hosts, &[])?
        .into_iter()
        .map(|(name, host)| Node {
            name,
            features: features::offer(&host).features,
        })
        .collect();
    if let Some(conf) = &args.slurm_conf {
        nodes.extend(slurm_nodes(conf)?);
    }
    Ok(nodes)
}

/// slurm.conf larger than this is refused.
const MAX_SLURM_CONF: u64 = 16 << 20;

/// The nodes a slurm.conf declares, by the features of containerspec's namespace.
fn slurm_nodes(path: &Path) -> Result<Vec<Node>, CliError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let err = |message: String| CliError::Target {
        path: shown.clone(),
        message,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| err(e.to_string()))?
        .take(MAX_SLURM_CONF + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_SLURM_CONF {
        return Err(err(format!("larger than {MAX_SLURM_CONF} bytes")));
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(features::slurmconf::nodes(&text)
        .map_err(err)?
        .into_iter()
        .map(|n| Node {
            name: n.name,
            features: n.features,
        })
        .collect())
}
