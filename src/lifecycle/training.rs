//! Training: starting one version's run at a time on its backend, reading its outcome, judging
//! it, and deciding when the Model's inputs call for a new version.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Model, TrainingSpec, TriggerCause, VersionPhase};

use super::backends::{self, Finished, Run, Runs};
use super::conditions::{self, Desired};
use super::evaluate::{failures, judge, passed, skipped};
use super::inputs::InputsHash;
use super::ledger::{Decision, Ledger};
use super::plan::{Child, EventKind};
use super::report::{ReportError, TrainerReport, engine_report, parse_termination_message};
use super::transitions::{Action, Reason};
use super::triggers::after;

/// How long to wait for the succeeded pod of a completed run before failing the version.
pub const TERMINATION_MESSAGE_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// What training decided: the objects that train to apply, and when to look again.
#[derive(Default)]
pub struct TrainingSteps {
    /// Jobs, TrainJobs or RayJobs to create.
    pub runs: Vec<Child>,
    /// Wake up after this long.
    pub requeue_after: Option<Duration>,
}

/// Advances the version that trains: starts its run on its backend, or reads and judges its
/// outcome.
pub fn advance_training(ledger: &mut Ledger, model: &Model, runs: &Runs) -> TrainingSteps {
    let mut steps = TrainingSteps::default();
    let now = ledger.now();
    let training: Vec<u32> = ledger
        .entries
        .iter()
        .filter(|e| matches!(e.phase(), VersionPhase::Pending | VersionPhase::Training))
        .map(|e| e.number())
        .collect();
    for n in training {
        let Some(version) = ledger.get(n).map(|e| e.version) else { continue };
        if let Some(source) = &version.spec.source {
            // Nothing trains: the run's metrics, recorded when the version was taken, are judged.
            let metrics = source.mlflow.metrics.clone();
            evaluate(ledger, model, n, metrics, None);
            continue;
        }
        let backend = backends::of_version(version);
        let name = backends::run_name(version);
        let kind = format!("{:?}", backend.kind());
        match backend.run(&name, runs) {
            Run::Missing => {
                // Not there yet (or deleted by a person while training): apply it; applying the
                // same object twice is a no-op, and its name is the version's, so a restart never
                // makes a second one.
                if let Some(child) = backend.build(version) {
                    steps.runs.push(child);
                    start(ledger, n, &kind, &name);
                }
            }
            Run::Running(progress) => {
                start(ledger, n, &kind, &name);
                record_progress(ledger, n, progress);
            }
            Run::Failed { reason, message, finished } => {
                start(ledger, n, &kind, &name);
                if let Some(entry) = ledger.get_mut(n) {
                    entry.status_mut().finished_at = Some(Time(finished.unwrap_or(now)));
                }
                let message = format!("training {kind} {name} failed: {reason}: {message}");
                ledger.transition(n, Decision::new(Action::Fail, Reason::of_job(&reason), message));
            }
            Run::Succeeded(Finished { message, engine_metrics, progress, finished }) => {
                start(ledger, n, &kind, &name);
                record_progress(ledger, n, progress);
                let finished = finished.unwrap_or(now);
                let report = match message {
                    Some(message) => parse_termination_message(Some(&message)),
                    // The engine holds the metrics: nothing to wait for.
                    None if !engine_metrics.is_empty() => engine_report(&engine_metrics),
                    None if now < after(finished, TERMINATION_MESSAGE_GRACE) => {
                        let wait = after(finished, TERMINATION_MESSAGE_GRACE).duration_since(now);
                        steps.requeue_after = wait.try_into().ok();
                        continue;
                    }
                    None => parse_termination_message(None),
                };
                if let Some(entry) = ledger.get_mut(n) {
                    entry.status_mut().finished_at = Some(Time(finished));
                }
                judge_report(ledger, model, n, report);
            }
        }
    }
    steps
}

fn judge_report(ledger: &mut Ledger, model: &Model, n: u32, report: Result<TrainerReport, ReportError>) {
    match report {
        Err(e) => ledger.transition(n, Decision::new(Action::Fail, e.reason, e.message)),
        Ok(report) => {
            if let Some(entry) = ledger.get_mut(n) {
                entry.status_mut().reference = report.reference;
                entry.status_mut().dataset_read = report.dataset;
            }
            let changed = judge_data(ledger, n);
            evaluate(ledger, model, n, report.metrics, changed)
        }
    }
}

/// Keeps the engine's latest progress report on the version, when it changed.
fn record_progress(ledger: &mut Ledger, n: u32, progress: Option<crate::api::TrainingProgress>) {
    let Some(progress) = progress else { return };
    let Some(entry) = ledger.get(n) else { return };
    if entry.status.progress.as_ref() != Some(&progress)
        && let Some(entry) = ledger.get_mut(n)
    {
        entry.status_mut().progress = Some(progress);
    }
}

fn start(ledger: &mut Ledger, n: u32, kind: &str, job: &str) {
    let now = ledger.now();
    let Some(entry) = ledger.get_mut(n) else { return };
    if entry.phase() == VersionPhase::Pending {
        entry.status_mut().job_name = Some(job.to_string());
        entry.status_mut().started_at = Some(Time(now));
        let message = format!("training {kind} {job} started");
        ledger.transition(n, Decision::new(Action::Train, Reason::JobCreated, message));
    }
}

/// Whether version `n`'s trainer read the same data as every earlier version that recorded a
/// digest for the same dataset `uri` and `version`: the version's `DataStable` condition says
/// so; a different digest is flagged with a Warning Event (naming the newest earlier version that
/// read otherwise) and returned as the decision that rejects it under `requireStableData`.
fn judge_data(ledger: &mut Ledger, n: u32) -> Option<Decision> {
    let now = ledger.now();
    let entry = ledger.get(n)?;
    let read = entry.status.dataset_read.clone()?;
    let dataset = entry.version.spec.training.as_ref()?.dataset.clone();
    // Every earlier read of the same dataset version counts (newest first): a digest that differs
    // from any of them means the data under that version changed since.
    let reads: Vec<(u32, crate::api::DatasetRead)> = ledger
        .entries
        .iter()
        .rev()
        .filter(|e| e.number() < n && e.version.spec.training.as_ref().is_some_and(|t| t.dataset == dataset))
        .filter_map(|e| Some((e.number(), e.status.dataset_read.clone()?)))
        .collect();
    let differing = reads.iter().find(|(_, r)| r.digest != read.digest).cloned();
    let (condition, flag) = match differing.or_else(|| reads.first().cloned()) {
        Some((m, before)) if before.digest != read.digest => {
            let message = format!(
                "dataset {} version {} read as {} by v{n}, but as {} by v{m}: the data under this version changed",
                dataset.uri, dataset.version, read.digest, before.digest
            );
            let evidence = serde_json::json!({
                "uri": dataset.uri, "version": dataset.version,
                "digest": read.digest, "rows": read.rows,
                "earlier": {"modelVersion": m, "digest": before.digest, "rows": before.rows},
            });
            let flag = Decision::new(Action::Flag, Reason::DatasetChanged, message.clone()).with_evidence(evidence);
            (Desired { type_: DATA_STABLE, status: false, reason: "DatasetChanged".into(), message }, Some(flag))
        }
        Some((m, _)) => {
            let message =
                format!("read the same data as v{m} under dataset version {} ({})", dataset.version, read.digest);
            (Desired { type_: DATA_STABLE, status: true, reason: "SameDigest".into(), message }, None)
        }
        None => {
            let message =
                format!("the first digest recorded for dataset version {} ({})", dataset.version, read.digest);
            (Desired { type_: DATA_STABLE, status: true, reason: "FirstRecord".into(), message }, None)
        }
    };
    if let Some(entry) = ledger.get_mut(n) {
        conditions::set_all(&mut entry.status_mut().conditions, &[condition], None, now);
    }
    if let Some(flag) = &flag {
        ledger.push_decision_as(n, flag.clone(), EventKind::Warning);
    }
    flag
}

/// The version condition that says whether its data matched earlier reads of the same version.
pub const DATA_STABLE: &str = "DataStable";

fn evaluate(
    ledger: &mut Ledger,
    model: &Model,
    n: u32,
    metrics: std::collections::BTreeMap<String, f64>,
    data_changed: Option<Decision>,
) {
    let champion = ledger.serving().and_then(|s| ledger.get(s)).map(|e| e.status.metrics.clone());
    let results = judge(&model.spec.evaluation.gates, &metrics, champion.as_ref());
    let evidence = serde_json::to_value(&results).ok();
    let Some(entry) = ledger.get_mut(n) else { return };
    entry.status_mut().metrics = metrics;
    entry.status_mut().gate_results = results.clone();
    let metrics_text = entry.status.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    if let Some(changed) = data_changed.filter(|_| model.spec.evaluation.require_stable_data) {
        let message = format!("{}; evaluation.requireStableData rejects it", changed.message);
        ledger.transition(n, Decision { action: Action::Reject, message, ..changed });
        return;
    }
    if passed(&results) {
        let skipped = skipped(&results);
        let message = if skipped.is_empty() {
            format!("every gate passed ({metrics_text})")
        } else {
            format!("the gates passed, {} skipped: {} ({metrics_text})", skipped.len(), skipped.join(", "))
        };
        let d = Decision { action: Action::Accept, reason: Reason::GatesPassed, message, evidence };
        ledger.transition(n, d);
    } else {
        let d = Decision { action: Action::Reject, reason: Reason::GateFailed, message: failures(&results), evidence };
        ledger.transition(n, d);
    }
}

/// Why the Model's own inputs call for a new version, if they do: `Initial` for a new Model,
/// `TrainingInputsChanged` when they differ from the newest version's. Whether one may start now
/// (one training at a time, the policy's hygiene) is decided by the triggers.
pub fn inputs_cause<'a>(
    ledger: &Ledger,
    model: &'a Model,
    latest_number: u32,
    hash: &InputsHash<'a>,
) -> Option<TriggerCause> {
    // A Model that takes its versions from a registry has no inputs of its own (`source::cause`).
    let training = model.spec.training.as_ref()?;
    match ledger.latest() {
        None if latest_number == 0 => {
            Some(TriggerCause { reason: "Initial".into(), evidence: "first version of the Model".into() })
        }
        None => {
            Some(TriggerCause { reason: "TrainingInputsChanged".into(), evidence: "no earlier version is kept".into() })
        }
        // The newest version keeps the inputs it was trained from: when they are the Model's, so
        // is their hash, and the JSON need not be hashed again on every reconcile.
        Some(latest) if latest.version.spec.training.as_ref() == Some(training) => None,
        Some(latest) if latest.version.spec.inputs_hash == hash.of(training) => None,
        Some(latest) => Some(TriggerCause {
            reason: "TrainingInputsChanged".into(),
            evidence: match &latest.version.spec.training {
                Some(before) => describe_change(before, training),
                None => "the Model trains its versions now instead of taking them from a registry".into(),
            },
        }),
    }
}

/// What differs between two sets of training inputs, for the trigger's evidence.
pub fn describe_change(before: &TrainingSpec, after: &TrainingSpec) -> String {
    let mut changes = vec![];
    if before.dataset.uri != after.dataset.uri {
        changes.push(format!("dataset.uri {} → {}", before.dataset.uri, after.dataset.uri));
    }
    if before.dataset.version != after.dataset.version {
        changes.push(format!("dataset.version {} → {}", before.dataset.version, after.dataset.version));
    }
    if before.parameters != after.parameters {
        let changed: Vec<_> = after
            .parameters
            .iter()
            .filter(|(k, v)| before.parameters.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .chain(before.parameters.keys().filter(|k| !after.parameters.contains_key(*k)).map(|k| format!("-{k}")))
            .collect();
        changes.push(format!("parameters {}", changed.join(", ")));
    }
    if before.template != after.template {
        changes.push("trainer template".into());
    }
    if before.artifact_uri != after.artifact_uri {
        changes.push(format!("artifactUri {} → {}", before.artifact_uri, after.artifact_uri));
    }
    if before.active_deadline_seconds != after.active_deadline_seconds || before.backoff_limit != after.backoff_limit {
        changes.push("training limits".into());
    }
    changes.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::inputs::new_version;
    use crate::lifecycle::testing::model;

    #[test]
    fn the_newest_version_s_recorded_inputs_decide_before_their_hash() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let m = model("churn");
        let mut v1 = new_version(&m, 1, vec![], now).unwrap();
        let cause = |v: &crate::api::ModelVersion, m: &Model| {
            inputs_cause(&Ledger::new(std::slice::from_ref(v), now), m, 1, &InputsHash::default())
        };
        assert_eq!(cause(&v1, &m), None, "the Model's inputs are the version's");
        // A hash written by another release (its JSON of the same inputs differed): the inputs
        // themselves are equal, so nothing changed and nothing retrains.
        v1.spec.inputs_hash = "written-by-an-older-release".into();
        assert_eq!(cause(&v1, &m), None);
        // Inputs that differ still call for a version, whatever hash the version carries.
        let mut changed = m.clone();
        changed.spec.training.as_mut().unwrap().dataset.version = "2026-12".into();
        let c = cause(&v1, &changed).expect("a changed dataset version trains a new version");
        assert_eq!(c.reason, "TrainingInputsChanged");
        assert!(c.evidence.contains("dataset.version"), "{}", c.evidence);
        // A version recorded without its inputs (from a registry) is judged by the hash alone.
        v1.spec.training = None;
        v1.spec.inputs_hash = crate::lifecycle::inputs::inputs_hash(m.spec.training.as_ref().unwrap());
        assert_eq!(cause(&v1, &m), None, "equal hashes, as before");
    }
}
