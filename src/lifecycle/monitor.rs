//! What the controller exports about each Model, as numbers a Prometheus can alert on: the
//! state after a reconcile (which version serves and since when, the last training, the
//! candidate's gates, the analysis measurements, the canary's weight, drift and live quality),
//! and what the reconcile did (retrains by trigger, rollbacks by reason). Pure: the shell turns
//! these into metric series labelled by namespace and Model — never by version, whose values
//! grow without bound.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::{
    AnalysisVerdict, ModelVersion, ModelVersionStatus, RetrainPolicy, RetrainPolicyStatus, Verdict, VersionPhase,
};

use super::model::ModelPlan;
use super::transitions::Action;

/// One Model's state, as numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelGauges {
    /// The serving version.
    pub serving_version: Option<u32>,
    /// When it started serving (its last Serve or Restore decision).
    pub serving_since: Option<Timestamp>,
    /// The newest training.
    pub training: Option<LastTraining>,
    /// The share (percent) of requests the version rolling out gets, while it is a canary.
    pub canary_weight: Option<i32>,
    /// Per gate metric of the newest version judged by its gates: whether every bound held,
    /// by metric name.
    pub gates: Vec<(String, bool)>,
    /// The latest measurement of each analysis metric and bound of the version under analysis.
    pub analysis: Vec<AnalysisGauge>,
    /// The last drift check of the Model's RetrainPolicy.
    pub drift: Option<DriftGauge>,
    /// The last live-quality reading of the Model's RetrainPolicy, and its bounds.
    pub quality: Option<QualityGauge>,
    /// How many of the newest trainings in a row failed.
    pub failed_trainings: u32,
    /// When the RetrainPolicy's schedule retrains next.
    pub next_scheduled: Option<Timestamp>,
    /// The newest rollback among the kept versions: when, and why.
    pub last_rollback: Option<(Timestamp, String)>,
}

/// The newest training.
#[derive(Clone, Debug, PartialEq)]
pub struct LastTraining {
    /// When it started.
    pub started: Timestamp,
    /// How long it took, once it finished.
    pub seconds: Option<f64>,
    /// Whether it produced a version (its gates aside), once it finished.
    pub succeeded: Option<bool>,
}

/// One analysis measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisGauge {
    /// The analysis metric.
    pub metric: String,
    /// `min`, `max` or `maxRegression`.
    pub bound: String,
    /// What it measured, if it measured.
    pub value: Option<f64>,
    /// What it was held to.
    pub threshold: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// The last drift check.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftGauge {
    /// `PSI`, `KS` or `JS`.
    pub method: &'static str,
    /// The drift measured.
    pub value: f64,
    /// The threshold it was judged against (written, or computed from a significance).
    pub threshold: Option<f64>,
}

/// The last live-quality reading.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityGauge {
    /// The value.
    pub value: f64,
    /// Its lower bound.
    pub min: Option<f64>,
    /// Its upper bound.
    pub max: Option<f64>,
}

/// What one reconcile did that is counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counted {
    /// The trigger reason of each version it created.
    pub retrains: Vec<String>,
    /// The reason of each rollback it decided.
    pub rollbacks: Vec<String>,
}

/// What is exported about one Model: its last state and what its reconciles counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exported {
    /// The state after the last reconcile.
    pub gauges: ModelGauges,
    /// Versions created, by trigger reason.
    pub retrains: Tally,
    /// Rollbacks, by reason.
    pub rollbacks: Tally,
}

impl Exported {
    /// Takes the state after a reconcile and counts what it did.
    pub fn record(&mut self, gauges: ModelGauges, counted: Counted) {
        self.gauges = gauges;
        counted.retrains.into_iter().for_each(|t| self.retrains.add(t));
        counted.rollbacks.into_iter().for_each(|r| self.rollbacks.add(r));
    }
}

/// Counts by name, in name order. A Model has a handful of names at most; a sorted `Vec` holds
/// them in a tenth of a `BTreeMap`'s memory (whose first node has room for eleven), which
/// matters when the controller keeps one per Model (measured: `cargo bench --bench lifecycle`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(Vec<(String, u64)>);

impl Tally {
    /// Counts `name` once more.
    pub fn add(&mut self, name: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => {
                self.0.insert(i, (name, 1));
                self.0.shrink_to_fit(); // a new name is rare; the room a push leaves is not
            }
        }
    }

    /// How often `name` was counted.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, c)| *c)
    }

    /// Every name and its count, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(n, c)| (n.as_str(), *c))
    }
}

/// The state of a Model whose versions are `versions` (after the reconcile's writes) and whose
/// RetrainPolicy is `policy` with the status `policy_status`.
pub fn gauges(
    versions: &[(&ModelVersion, &ModelVersionStatus)],
    policy: Option<(&RetrainPolicy, &RetrainPolicyStatus)>,
) -> ModelGauges {
    let mut out = ModelGauges::default();
    let mut sorted: Vec<_> = versions.to_vec();
    sorted.sort_by_key(|(v, _)| v.spec.version);
    let newest_serving = sorted.iter().rev().find(|(_, s)| s.phase == Some(VersionPhase::Serving));
    if let Some((v, s)) = newest_serving {
        out.serving_version = Some(v.spec.version);
        let served = |action: &str| action == Action::Serve.as_str() || action == Action::Restore.as_str();
        out.serving_since = s.decisions.iter().rev().find(|d| served(&d.action)).map(|d| d.time.0);
    }
    if let Some((_, s)) = sorted.iter().rev().find(|(_, s)| s.started_at.is_some()) {
        let started = s.started_at.as_ref().map(|t| t.0).unwrap_or_default();
        let finished = s.finished_at.as_ref().map(|t| t.0);
        out.training = Some(LastTraining {
            started,
            seconds: finished.map(|f| f.duration_since(started).as_secs_f64()),
            succeeded: finished.map(|_| s.phase != Some(VersionPhase::Failed)),
        });
    }
    let trained = sorted.iter().rev().filter(|(_, s)| s.finished_at.is_some() || s.phase == Some(VersionPhase::Failed));
    out.failed_trainings = trained.take_while(|(_, s)| s.phase == Some(VersionPhase::Failed)).count() as u32;
    out.last_rollback = sorted
        .iter()
        .filter(|(_, s)| s.phase == Some(VersionPhase::RolledBack))
        .filter_map(|(_, s)| s.decisions.iter().rev().find(|d| d.action == Action::RollBack.as_str()))
        .map(|d| (d.time.0, d.reason.clone()))
        .max_by_key(|(t, _)| *t);
    let rolling_out = sorted.iter().rev().find(|(_, s)| s.phase == Some(VersionPhase::RollingOut));
    out.canary_weight = rolling_out.and_then(|(_, s)| s.canary.as_ref()).map(|c| c.effective_weight);
    if let Some((_, s)) = sorted.iter().rev().find(|(_, s)| !s.gate_results.is_empty()) {
        for g in &s.gate_results {
            let held = g.verdict != Verdict::Fail;
            match out.gates.iter_mut().find(|(m, _)| *m == g.metric) {
                Some((_, all)) => *all &= held,
                None => out.gates.push((g.metric.clone(), held)),
            }
        }
        out.gates.sort();
        out.gates.shrink_to_fit();
    }
    let analysed = sorted.iter().rev().find(|(_, s)| {
        s.analysis.is_some() && matches!(s.phase, Some(VersionPhase::RollingOut | VersionPhase::Serving))
    });
    if let Some(a) = analysed.and_then(|(_, s)| s.analysis.as_ref()) {
        let mut latest: BTreeMap<(&str, &str), &crate::api::Measurement> = BTreeMap::new();
        for m in &a.measurements {
            latest.insert((m.metric.as_str(), m.bound.as_str()), m);
        }
        out.analysis = latest
            .into_values()
            .map(|m| AnalysisGauge {
                metric: m.metric.clone(),
                bound: m.bound.clone(),
                value: m.value,
                threshold: m.threshold,
                passed: m.verdict == AnalysisVerdict::Pass,
            })
            .collect();
    }
    if let Some((policy, status)) = policy {
        out.next_scheduled = status.next_schedule_time.as_ref().map(|t| t.0);
        if let (Some(spec), Some(value)) = (&policy.spec.drift, status.drift.as_ref().and_then(|d| d.value)) {
            let threshold = status.drift.as_ref().and_then(|d| d.threshold).or(spec.threshold);
            out.drift = Some(DriftGauge { method: spec.method.short(), value, threshold });
        }
        if let (Some(spec), Some(value)) = (&policy.spec.performance, status.performance.as_ref().and_then(|p| p.value))
        {
            out.quality = Some(QualityGauge { value, min: spec.min, max: spec.max });
        }
    }
    out
}

/// The retrains and rollbacks `plan` decides about the versions `observed` before it.
pub fn counted(plan: &ModelPlan, observed: &[std::sync::Arc<ModelVersion>]) -> Counted {
    let retrains = plan.created_versions().iter().map(|v| v.spec.trigger.reason.clone()).collect();
    let was_rolled_back = |name: &str| {
        observed.iter().any(|v| {
            v.metadata.name.as_deref() == Some(name)
                && v.status.as_ref().and_then(|s| s.phase) == Some(VersionPhase::RolledBack)
        })
    };
    let rollbacks = plan
        .version_statuses()
        .iter()
        .filter(|(name, s)| s.phase == Some(VersionPhase::RolledBack) && !was_rolled_back(name))
        .filter_map(|(_, s)| {
            let last = s.decisions.iter().rev().find(|d| d.action == Action::RollBack.as_str())?;
            Some(last.reason.clone())
        })
        .collect();
    Counted { retrains, rollbacks }
}

/// The Model's state once `plan` is applied to `children` (its versions with the statuses the
/// plan writes, the RetrainPolicy with its new status), and what the plan counts.
pub fn after(children: &super::model::Children, plan: &ModelPlan) -> (ModelGauges, Counted) {
    let written: BTreeMap<&str, &ModelVersionStatus> = plan.version_statuses().into_iter().collect();
    let empty = ModelVersionStatus::default();
    let created = plan.created_versions();
    let observed = children.versions.iter().map(AsRef::as_ref);
    let versions: Vec<(&ModelVersion, &ModelVersionStatus)> = observed
        .chain(
            created.iter().copied().filter(|c| !children.versions.iter().any(|v| v.metadata.name == c.metadata.name)),
        )
        .map(|v| {
            let name = v.metadata.name.as_deref().unwrap_or_default();
            (v, written.get(name).copied().or(v.status.as_ref()).unwrap_or(&empty))
        })
        .collect();
    let policy = children.policies.first().map(|p| {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let written = plan.policy_statuses().into_iter().find(|(n, _)| *n == name).map(|(_, s)| s);
        (p.as_ref(), written.or(p.status.as_ref()))
    });
    let default_status = RetrainPolicyStatus::default();
    let policy = policy.map(|(p, s)| (p, s.unwrap_or(&default_status)));
    (gauges(&versions, policy), counted(plan, &children.versions))
}
