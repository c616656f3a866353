//! The report: the verdict, the findings and the plan, as one value that prints both as
//! JSON (the stable `check-bundle --json` schema) and for a person.

use std::fmt::Write;

use serde::Serialize;

use super::compat;
use super::facts::{Facts, TargetSource};
use super::finding::{Finding, Severity};
use super::plan::{self, Plan};
use super::policy::Policy;
use super::request::Inject;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Compatible,
    Incompatible,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub verdict: Verdict,
    /// The bundle and host root the verdict is about.
    pub bundle: String,
    pub host_root: String,
    /// The CPU target the host was taken to be, and where that came from, in one
    /// string for people (`"zen4 (detected)"`); programs read `host_cpu`.
    pub host_target: Option<String>,
    /// The CPU target the host was taken to be, and where that came from.
    pub host_cpu: Option<HostCpu>,
    pub inject: Vec<&'static str>,
    /// Most severe first.
    pub findings: Vec<Finding>,
    /// Annotations that tried to change the policy and were ignored.
    pub policy_notes: Vec<String>,
    /// What injection would do. Carried out only when the verdict is compatible.
    pub plan: Plan,
    /// The host MPI installation judged for MPI injection, and why (null without one).
    pub host_mpi: Option<super::choose::MpiChoice>,
    /// Single files of the container that could not be read (a malformed library, an
    /// unreadable file, a broken loader cache): what the verdict could not look at.
    pub container_files: Vec<crate::inventory::model::FileFinding>,
}

/// The host CPU a verdict is for.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HostCpu {
    /// The archspec target name (`zen4`, `haswell`, `x86_64_v3`).
    pub target: String,
    pub source: TargetSource,
    /// The config file that named it (with `source: config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
}

/// Runs the rules and builds the report.
pub fn evaluate(
    facts: &Facts,
    inject: &Inject,
    policy: &Policy,
    policy_notes: Vec<String>,
    bundle: &str,
) -> Report {
    let selection = plan::select(facts, inject);
    let mut findings = policy.apply(compat::check(facts, inject, &selection));
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
    let verdict = if findings.iter().any(|f| f.severity == Severity::Error) {
        Verdict::Incompatible
    } else {
        Verdict::Compatible
    };
    let plan = plan::build(facts, &selection);
    Report {
        schema_version: SCHEMA_VERSION,
        verdict,
        bundle: bundle.to_string(),
        host_root: facts.host.root.display().to_string(),
        host_target: facts
            .host
            .target
            .as_ref()
            .map(|t| format!("{} ({})", t.name, t.source_text())),
        host_cpu: facts.host.target.as_ref().map(|t| HostCpu {
            target: t.name.clone(),
            source: t.source,
            config_file: t.config_file.clone(),
        }),
        inject: inject.items(),
        findings,
        policy_notes,
        plan,
        host_mpi: facts.host.mpi_choice.clone(),
        container_files: facts
            .container
            .inventory
            .as_ref()
            .map(|i| i.findings.clone())
            .unwrap_or_default(),
    }
}

impl Report {
    /// The human form: the verdict in one line, then the findings, then the plan.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let count = |s: Severity| self.findings.iter().filter(|f| f.severity == s).count();
        let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
        let verdict = match self.verdict {
            Verdict::Compatible => "compatible",
            Verdict::Incompatible => "INCOMPATIBLE",
        };
        let _ = writeln!(
            out,
            "{verdict}: {} on host {} ({errors} errors, {warnings} warnings)",
            self.bundle, self.host_root
        );
        for f in &self.findings {
            let _ = writeln!(
                out,
                "  {:<7} {}: {}",
                severity_word(f.severity),
                f.code,
                f.message
            );
            if let Some(h) = &f.hint {
                let _ = writeln!(out, "          hint: {h}");
            }
        }
        for n in &self.policy_notes {
            let _ = writeln!(out, "  note    {n}");
        }
        for f in &self.container_files {
            let _ = writeln!(
                out,
                "  file    {}: {} (unread: the verdict does not cover it)",
                f.code, f.message
            );
        }
        if let Some(m) = &self.host_mpi {
            let _ = writeln!(out, "host MPI: {} ({})", m.chosen, m.reason);
            for other in &m.others {
                let _ = writeln!(out, "  also found: {other}");
            }
        }
        self.render_plan(&mut out);
        out
    }

    fn render_plan(&self, out: &mut String) {
        if self.inject.is_empty() {
            let _ = writeln!(out, "plan: nothing to inject (none requested)");
            return;
        }
        if self.verdict == Verdict::Incompatible {
            let _ = writeln!(
                out,
                "plan: inject {}: not carried out (incompatible); it would make {} mounts (see --json)",
                self.inject.join(", "),
                self.plan.mounts.len()
            );
            return;
        }
        let _ = writeln!(out, "plan: inject {}", self.inject.join(", "));
        for m in &self.plan.mounts {
            let _ = writeln!(
                out,
                "  mount {} -> {} ({})",
                m.source,
                m.destination,
                m.options.join(",")
            );
        }
        if let Some(c) = &self.plan.ld_cache {
            let _ = writeln!(
                out,
                "  loader cache {} with {} entries (injected libraries first)",
                c.destination,
                c.entries.len()
            );
        }
        for e in &self.plan.env {
            let _ = writeln!(out, "  env {}={} ({})", e.name, e.value, e.reason);
        }
    }
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}
