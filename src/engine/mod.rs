//! The verdict engine: facts about a container and a host in, a report out.
//!
//! [`prepare`] reads the files ([`facts`]); everything after is pure: [`plan::select`]
//! decides who provides each library once host libraries are injected, [`compat`]
//! checks every rule against that choice, [`policy`] weighs the findings, and
//! [`plan::build`] turns the choice into mounts and a loader cache. [`report`] puts the
//! verdict, the findings and the plan together.

pub mod choose;
pub mod compat;
pub mod cuda;
pub mod factcache;
pub mod facts;
pub mod finding;
pub mod plan;
pub mod policy;
pub mod prepare;
pub mod report;
pub mod request;
