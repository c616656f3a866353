//! The verdict engine: facts about a container and a host in, a report out. Pure: it
//! reads no file (the facts floor, [`crate::facts`], reads them into [`facts`]), and
//! `tests/integration/layout.rs` checks that it imports no module that does.
//! [`choose`] picks the host MPI installation that serves the container, [`plan::select`]
//! decides who provides each library once host libraries are injected, [`compat`]
//! checks every rule against that choice, [`policy`] weighs the findings, and
//! [`plan::build`] turns the choice into mounts and a loader cache. [`report`] puts the
//! verdict, the findings and the plan together.

pub mod choose;
pub mod compat;
pub mod cuda;
pub mod facts;
pub mod features;
pub mod finding;
pub mod hostdesc;
pub mod labels;
pub mod nvidia;
pub mod plan;
pub mod policy;
pub mod report;
pub mod request;
pub mod variant;
