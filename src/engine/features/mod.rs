//! Node features and image needs: what a host offers as names a scheduler can match
//! (Slurm node features, Kubernetes node labels through Node Feature Discovery), and
//! the names an image needs, so that a scheduler's own matching places a job exactly
//! where `check-bundle` would say compatible. Pure: the host is its description
//! (`host --json`), the image its container facts, already read.
//!
//! Schedulers match names, not versions, so every "at least" relation is a ladder: the
//! node offers each rung it satisfies, the image needs one. A node whose MPICH needs
//! `GLIBC_2.34` offers `mpi_mpich_glibc_2.34` up to `mpi_mpich_glibc_2.50` (it loads
//! into a container that ships any of those); an image shipping glibc 2.36 needs
//! `mpi_mpich_glibc_2.36`. An `x86_64_v4` node offers `x86_64_v1`..`x86_64_v4`, and every
//! code-generation feature it has as `isa_<flag>`; an image needs its level and the
//! flags beyond it. A driver offers every `cuda_X.Y` it runs, natively or through
//! minor-version compatibility (the same function `check-bundle` asks).
//!
//! [`node`] computes a node's features, [`need`] an image's needs, [`fits`] compares
//! them and says why not, [`render`] writes them for Slurm and Kubernetes, and
//! [`slurmconf`] reads them back from a `slurm.conf`.

pub mod catalog;
pub mod need;
pub mod node;
pub mod render;
pub mod slurmconf;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use catalog::{Kind, parse};
pub use need::{Need, NeedItem, need};
pub use node::{Offer, offer};

/// One name an image needs that a node does not offer, and what the node has instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Miss {
    pub feature: String,
    /// Why the image needs it.
    pub why: String,
    /// What the node offers instead, from its features.
    pub node: String,
}

/// The needs `features` lacks, each explained; empty when the node fits.
pub fn fits(need: &Need, features: &BTreeSet<String>) -> Vec<Miss> {
    need.all
        .iter()
        .filter(|n| !features.contains(&n.feature))
        .map(|n| Miss {
            feature: n.feature.clone(),
            why: n.why.clone(),
            node: catalog::instead(&n.feature, features),
        })
        .collect()
}

#[cfg(test)]
mod tests;
