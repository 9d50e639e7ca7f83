//! What a simulation tells: the timeline of every decision and a summary of where each Model ended.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{ModelPhase, VersionPhase};

use super::Simulation;

/// One line of the timeline: an Event the controller emitted, or a change the scenario made.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When.
    pub time: Timestamp,
    /// Which Model.
    pub model: String,
    /// Which version, if about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The Event's reason, e.g. `VersionServing`.
    pub reason: String,
    /// The Event's note: what happened and why.
    pub message: String,
    /// A Warning Event.
    pub warning: bool,
}

/// Where one version ended.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// Version number.
    pub version: u32,
    /// Final phase.
    pub phase: Option<VersionPhase>,
    /// Why it was trained.
    pub trigger: String,
    /// Dataset version it was trained on.
    pub dataset: String,
    /// The registry version it was taken from, when it was not trained here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Reported metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The last word on it.
    pub message: Option<String>,
}

/// Where one Model ended.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    /// Name.
    pub name: String,
    /// Final phase.
    pub phase: Option<ModelPhase>,
    /// Serving version.
    pub serving_version: Option<u32>,
    /// The versions still kept, oldest first.
    pub versions: Vec<VersionSummary>,
    /// The RetrainPolicies that name it.
    pub policies: Vec<PolicySummary>,
    /// With Gateway API routing: what its route sent to the version rolling out, each time
    /// that changed (`10` percent, `0+cohort`: only a header cohort).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<String>,
}

/// Where one RetrainPolicy ended.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    /// Name.
    pub name: String,
    /// The last trigger that retrained.
    pub last_trigger: Option<String>,
    /// When the schedule fires next.
    pub next_schedule_time: Option<Timestamp>,
    /// The last drift verdict.
    pub drift: Option<String>,
    /// The last performance verdict.
    pub performance: Option<String>,
    /// Why the policy is stalled, if it is.
    pub stalled: Option<String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Scenario name.
    pub scenario: Option<String>,
    /// Simulated start.
    pub start: Timestamp,
    /// Simulated end.
    pub end: Timestamp,
    /// Every decision, in order.
    pub timeline: Vec<TimelineEntry>,
    /// Where each Model ended.
    pub models: Vec<ModelSummary>,
    /// Reconciles that wrote something.
    pub acting_reconciles: u64,
    /// API writes (creates, applies, status patches, deletes).
    pub writes: u64,
    /// Broken invariants; empty in a healthy run.
    pub violations: Vec<String>,
    /// Training Jobs created.
    pub jobs: u64,
    /// How the run missed the scenario's `expect:` block; empty when it met it (or has none).
    pub misses: Vec<String>,
}

impl Report {
    /// The report of a finished simulation.
    pub fn of(sim: &Simulation) -> Report {
        let models = sim
            .cluster
            .models
            .values()
            .map(|m| {
                let status = m.status.clone().unwrap_or_default();
                let mut versions: Vec<_> = sim
                    .cluster
                    .versions
                    .values()
                    .filter(|v| v.spec.model == m.name_any() && v.namespace() == m.namespace())
                    .map(|v| {
                        let s = v.status.clone().unwrap_or_default();
                        VersionSummary {
                            version: v.spec.version,
                            phase: s.phase,
                            trigger: v.spec.trigger.reason.clone(),
                            dataset: v.spec.dataset().map(|d| d.version.clone()).unwrap_or_default(),
                            source: v.spec.source.as_ref().map(|s| format!("{} v{}", s.mlflow.name, s.mlflow.version)),
                            metrics: s.metrics,
                            message: s.message,
                        }
                    })
                    .collect();
                versions.sort_by_key(|v| v.version);
                let policies = sim
                    .cluster
                    .policies
                    .values()
                    .filter(|p| p.spec.model_ref.name == m.name_any() && p.namespace() == m.namespace())
                    .map(|p| policy_summary(p))
                    .collect();
                ModelSummary {
                    name: m.name_any(),
                    phase: status.phase,
                    serving_version: status.serving_version,
                    versions,
                    policies,
                    traffic: sim
                        .cluster
                        .traffic
                        .get(&crate::sim::cluster::key(m.as_ref()))
                        .cloned()
                        .unwrap_or_default(),
                }
            })
            .collect();
        let mut report = Report {
            scenario: sim.scenario.file.name.clone(),
            start: sim.scenario.start(),
            end: sim.end(),
            timeline: sim.timeline.clone(),
            models,
            acting_reconciles: sim.acting_reconciles,
            writes: sim.cluster.writes,
            violations: sim.cluster.violations.clone(),
            jobs: sim.cluster.job_creations.values().map(|n| u64::from(*n)).sum(),
            misses: vec![],
        };
        report.misses = sim.scenario.file.expect.as_ref().map_or(vec![], |e| e.misses(&report, report.jobs));
        report
    }

    /// True when no invariant broke and the scenario's `expect:` block was met.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.misses.is_empty()
    }

    /// The report for a person.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let name = self.scenario.as_deref().unwrap_or("scenario");
        let _ = writeln!(out, "{name}: {} → {}\n", self.start, self.end);
        for e in &self.timeline {
            let offset = e.time.duration_since(self.start);
            let version = e.version.map_or(String::new(), |v| format!("v{v}"));
            let mark = if e.warning { "!" } else { " " };
            let _ = writeln!(
                out,
                "{:>10} {mark} {:<10} {:<4} {:<22} {}",
                elapsed(offset),
                e.model,
                version,
                e.reason,
                e.message
            );
        }
        let _ = writeln!(out, "\nSummary");
        for m in &self.models {
            let serving = m.serving_version.map_or("none".to_string(), |v| format!("v{v}"));
            let _ = writeln!(out, "  {}: {:?}, serving {serving}", m.name, m.phase.unwrap_or(ModelPhase::Pending));
            for v in &m.versions {
                let metrics = v.metrics.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(" ");
                let phase = v.phase.map_or("Pending".to_string(), |p| format!("{p:?}"));
                let _ = writeln!(
                    out,
                    "    v{:<3} {:<10} {:<22} {:<20} {metrics}",
                    v.version,
                    phase,
                    v.trigger,
                    v.source.as_ref().map_or_else(|| format!("dataset {}", v.dataset), |s| format!("from {s}"))
                );
            }
            for p in &m.policies {
                let _ = writeln!(
                    out,
                    "    policy {}: last trigger {}",
                    p.name,
                    p.last_trigger.as_deref().unwrap_or("none")
                );
                if let Some(next) = p.next_schedule_time {
                    let _ = writeln!(out, "      next scheduled run {next}");
                }
                for (what, verdict) in [("drift", &p.drift), ("performance", &p.performance), ("STALLED", &p.stalled)] {
                    if let Some(v) = verdict {
                        let _ = writeln!(out, "      {what}: {v}");
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{} reconciles acted, {} API writes, {} training Jobs",
            self.acting_reconciles, self.writes, self.jobs
        );
        for v in &self.violations {
            let _ = writeln!(out, "VIOLATION: {v}");
        }
        for m in &self.misses {
            let _ = writeln!(out, "NOT AS EXPECTED: {m}");
        }
        out
    }
}

fn policy_summary(p: &crate::api::RetrainPolicy) -> PolicySummary {
    use crate::lifecycle::conditions::{STALLED, find};
    let s = p.status.clone().unwrap_or_default();
    let stalled =
        find(&s.conditions, STALLED).filter(|c| c.status == "True").map(|c| format!("{}: {}", c.reason, c.message));
    PolicySummary {
        name: p.name_any(),
        last_trigger: s.last_trigger.map(|t| format!("{} at {}", t.reason, t.time.0)),
        next_schedule_time: s.next_schedule_time.map(|t| t.0),
        drift: s.drift.map(|d| d.message),
        performance: s.performance.map(|d| d.message),
        stalled,
    }
}

/// `+2d 03:15` style offset from the start.
fn elapsed(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    format!("+{days}d {:02}:{:02}", rest / 3600, (rest % 3600) / 60)
}
