//! Versions that arrive in a registry instead of being trained here (`spec.source.mlflow`).
//!
//! The shell reads what the registry offers now — the MLflow model version an alias points to,
//! or the newest one — with its run's parameters and metrics ([`Offered`]). When it is not the
//! version the Model's newest ModelVersion was taken from, a new ModelVersion records it
//! ([`new_version`]: the run's lineage, its metrics as reported), and the next reconcile judges
//! it by the same gates as a trained version, from `Pending`, since nothing trains. The outcome
//! of each reading is the Model's `SourceSynced` condition, with an Event when it fails or
//! recovers; a registry that cannot be reached holds nothing else up.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::{
    MlflowOrigin, MlflowSource, Model, ModelVersion, ModelVersionSpec, TriggerCause, TriggerRecord, VersionSource,
};
use crate::objects::names::json_hash;

use super::conditions::Desired;
use super::inputs::version_object;
use super::ledger::Ledger;
use super::plan::{EventKind, EventRecord};
use super::validate::Problem;

/// The condition that says whether the registry could be read.
pub const SOURCE_SYNCED: &str = "SourceSynced";
/// The trigger reason of a version taken from a registry.
pub const REGISTRY_VERSION: &str = "RegistryVersion";
/// How often the registry is read when the Model does not say.
pub const DEFAULT_POLL_INTERVAL: SignedDuration = SignedDuration::from_mins(1);
/// The shortest poll interval (the admission minimum, for objects stored before it).
pub const MIN_POLL_INTERVAL: SignedDuration = SignedDuration::from_secs(10);
/// The longest poll interval (the admission maximum, for objects stored before it).
pub const MAX_POLL_INTERVAL: SignedDuration = SignedDuration::from_hours(24);
/// The longest wait before reading a registry that did not answer again: an outage ends without
/// a webhook to say so.
pub const OUTAGE_RETRY: Duration = Duration::from_secs(30);

/// How long a reading holds: its poll interval, shorter after an outage.
pub fn reading_holds(source: &MlflowSource, reading: &Result<Offered, SourceError>) -> Duration {
    match reading {
        Err(SourceError::Unreachable(_)) => poll_interval(source).min(OUTAGE_RETRY),
        _ => poll_interval(source),
    }
}

/// One model version as the registry offers it now, with what its run recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Offered {
    /// Its version number in the registry.
    pub version: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// The model version's `source`, as the registry records it.
    pub source: String,
    /// Where its files are (the registry's download URI), which the serving pods load.
    pub artifact_uri: String,
    /// The run's parameters.
    pub params: BTreeMap<String, String>,
    /// The run's metrics (the latest value of each).
    pub metrics: BTreeMap<String, f64>,
}

/// Why the registry offered nothing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// No answer: the registry is down or unreachable; the controller keeps asking.
    #[error("{0}")]
    Unreachable(String),
    /// The registered model, the alias or its version does not exist (yet); the controller
    /// keeps asking.
    #[error("{0}")]
    Missing(String),
    /// The controller may not read it (its allowlist, a token Secret it may not use, or the
    /// registry refusing the credentials): only a change of the Model or the controller fixes it.
    #[error("{0}")]
    Refused(String),
}

/// The registry of a Model that takes its versions from one.
pub fn sourced(model: &Model) -> Option<&MlflowSource> {
    model.spec.source.as_ref().map(|s| &s.mlflow)
}

/// How often the Model's registry is read.
pub fn poll_interval(source: &MlflowSource) -> Duration {
    let d = source.poll_interval.as_ref().map_or(DEFAULT_POLL_INTERVAL, |d| d.as_signed());
    Duration::try_from(d.clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)).unwrap_or(Duration::from_secs(60))
}

/// Why a new version should be taken, if one should: the registry offers a version other than
/// the one the newest ModelVersion was taken from, and no version taken earlier waits to be
/// judged.
pub fn cause(ledger: &Ledger, source: &MlflowSource, offered: &Offered) -> Option<TriggerCause> {
    if ledger.entries.iter().any(|e| e.phase() == crate::api::VersionPhase::Pending) {
        return None;
    }
    let newest = ledger.latest().and_then(|e| e.version.spec.source.as_ref()).map(|s| &s.mlflow);
    if newest.is_some_and(|o| o.name == source.name && o.version == offered.version) {
        return None;
    }
    let how = match (&source.alias, newest.filter(|o| o.name == source.name)) {
        (Some(alias), Some(before)) => {
            format!("alias {alias} moved from version {} to {}", before.version, offered.version)
        }
        (Some(alias), None) => format!("alias {alias} points to version {}", offered.version),
        (None, Some(before)) => format!("version {} is newer than version {}", offered.version, before.version),
        (None, None) => format!("version {} is its newest", offered.version),
    };
    let run = offered.run_id.as_deref().map_or(String::new(), |r| format!(", run {r}"));
    Some(TriggerCause {
        reason: REGISTRY_VERSION.into(),
        evidence: format!("MLflow registered model {:?}: {how}{run}", source.name),
    })
}

/// The ModelVersion for version `n`, taken from what the registry offers.
pub fn new_version(
    model: &Model,
    n: u32,
    source: &MlflowSource,
    offered: &Offered,
    causes: Vec<TriggerCause>,
    now: Timestamp,
) -> ModelVersion {
    let origin = MlflowOrigin {
        tracking_uri: source.tracking_uri.clone(),
        name: source.name.clone(),
        version: offered.version.clone(),
        alias: source.alias.clone(),
        run_id: offered.run_id.clone(),
        source: offered.source.clone(),
        params: offered.params.clone(),
        metrics: offered.metrics.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k.clone(), *v)).collect(),
    };
    let spec = ModelVersionSpec {
        model: model.name_any(),
        version: n,
        trigger: TriggerRecord::new(causes, now),
        training: None,
        trainer_images: vec![],
        artifact_uri: if offered.artifact_uri.is_empty() {
            offered.source.clone()
        } else {
            offered.artifact_uri.clone()
        },
        inputs_hash: json_hash(&(&origin.tracking_uri, &origin.name, &origin.version, &origin.run_id, &origin.source)),
        source: Some(VersionSource { mlflow: origin }),
    };
    version_object(model, spec)
}

/// What a reading of the registry means for the Model.
#[derive(Debug, Default)]
pub struct Judged {
    /// The `SourceSynced` condition.
    pub condition: Option<Desired>,
    /// What stalls the Model: a registry it may not read.
    pub problem: Option<Problem>,
    /// An Event when the reading starts failing, fails otherwise, or recovers.
    pub event: Option<EventRecord>,
    /// When to read again.
    pub wake: Option<Duration>,
}

/// The Model's condition, Event and next reading after `reading` (`None`: not read).
pub fn judge(model: &Model, reading: Option<&Result<Offered, SourceError>>, serving: Option<u32>) -> Judged {
    let Some(source) = sourced(model) else { return Judged::default() };
    let mut judged = Judged { wake: Some(poll_interval(source)), ..Judged::default() };
    let Some(reading) = reading else { return judged };
    judged.wake = Some(reading_holds(source, reading));
    let place = format!("MLflow registered model {:?} at {}", source.name, source.tracking_uri);
    let old = model.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == SOURCE_SYNCED));
    let desired = match reading {
        Ok(offered) => {
            let which = source.alias.as_ref().map_or("its newest version".to_string(), |a| format!("alias {a}"));
            Desired::yes(SOURCE_SYNCED, "Synced", format!("{place}: {which} is version {}", offered.version))
        }
        Err(SourceError::Unreachable(why)) => {
            let on = if serving.is_some() { "the serving version serves on" } else { "nothing serves yet" };
            Desired::no(SOURCE_SYNCED, "SourceUnavailable", format!("cannot read {place}: {why}; retrying, {on}"))
        }
        Err(SourceError::Missing(why)) => {
            Desired::no(SOURCE_SYNCED, "NoRegistryVersion", format!("{place} offers no version yet: {why}"))
        }
        Err(SourceError::Refused(why)) => {
            judged.problem = Some(Problem::new("SourceRefused", format!("cannot read {place}: {why}")));
            Desired::no(SOURCE_SYNCED, "SourceRefused", format!("cannot read {place}: {why}"))
        }
    };
    let was = old.map(|c| (c.status == "True", c.reason.as_str()));
    judged.event = match (was, desired.status) {
        (Some((true, _)) | None, false) if desired.reason != "NoRegistryVersion" => {
            Some(event(EventKind::Warning, &desired.reason, desired.message.clone()))
        }
        (Some((false, reason)), false) if reason != desired.reason => {
            Some(event(EventKind::Warning, &desired.reason, desired.message.clone()))
        }
        (Some((false, _)), true) => Some(event(EventKind::Normal, "SourceSynced", desired.message.clone())),
        _ => None,
    };
    judged.condition = Some(desired);
    judged
}

fn event(kind: EventKind, reason: &str, note: String) -> EventRecord {
    EventRecord { kind, reason: reason.to_string(), action: "ReadRegistry".into(), note, version: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ModelVersionStatus, SourceSpec, VersionPhase};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn sourced_model(alias: Option<&str>) -> Model {
        let mut m = crate::lifecycle::testing::model("fraud");
        m.spec.training = None;
        let mlflow = serde_json::json!({"trackingUri": "http://mlflow:5000", "name": "fraud-detector", "alias": alias});
        m.spec.source = Some(SourceSpec { mlflow: serde_json::from_value(mlflow).unwrap() });
        m
    }

    fn offered(version: &str) -> Offered {
        Offered { version: version.into(), run_id: Some(format!("r{version}")), ..Offered::default() }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_version_is_taken_once_and_not_while_another_waits_to_be_judged() {
        let m = sourced_model(Some("staging"));
        let source = sourced(&m).unwrap();
        let none: Vec<ModelVersion> = vec![];
        let first = cause(&Ledger::new(&none, now()), source, &offered("4")).expect("nothing taken yet");
        assert_eq!(first.reason, REGISTRY_VERSION);
        assert!(first.evidence.contains("alias staging points to version 4, run r4"), "{}", first.evidence);
        let mut v1 = new_version(&m, 1, source, &offered("4"), vec![first], now());
        assert_eq!(v1.spec.source.as_ref().unwrap().mlflow.version, "4");
        assert!(v1.spec.training.is_none());
        let pending = vec![v1.clone()];
        assert_eq!(cause(&Ledger::new(&pending, now()), source, &offered("5")), None, "v1 waits to be judged");
        v1.status = Some(ModelVersionStatus { phase: Some(VersionPhase::Serving), ..Default::default() });
        let serving = vec![v1];
        assert_eq!(cause(&Ledger::new(&serving, now()), source, &offered("4")), None, "the same version again");
        let moved = cause(&Ledger::new(&serving, now()), source, &offered("3")).expect("the alias moved back");
        assert!(moved.evidence.contains("moved from version 4 to 3"), "{}", moved.evidence);
    }

    #[test]
    fn each_reading_sets_the_condition_and_an_event_only_when_it_changes() {
        let mut m = sourced_model(None);
        let at = |m: &Model, r: Result<Offered, SourceError>| judge(m, Some(&r), Some(1));
        let ok = at(&m, Ok(offered("2")));
        let c = ok.condition.clone().unwrap();
        assert!(c.status && c.reason == "Synced" && c.message.contains("its newest version is version 2"), "{c:?}");
        assert!(ok.event.is_none(), "the first good reading is no news");
        assert_eq!(ok.wake, Some(Duration::from_secs(60)), "the default poll");
        let set = |m: &mut Model, status: &str, reason: &str| {
            let condition = Condition {
                type_: SOURCE_SYNCED.into(),
                status: status.into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()),
                observed_generation: None,
            };
            m.status = Some(crate::api::ModelStatus { conditions: vec![condition], ..Default::default() });
        };
        set(&mut m, "True", "Synced");
        let down = at(&m, Err(SourceError::Unreachable("connection refused".into())));
        assert_eq!(
            down.event.as_ref().map(|e| (e.kind, e.reason.as_str())),
            Some((EventKind::Warning, "SourceUnavailable"))
        );
        assert_eq!(down.wake, Some(OUTAGE_RETRY), "an outage is read again sooner than the poll");
        assert!(down.problem.is_none(), "an outage stalls nothing");
        set(&mut m, "False", "SourceUnavailable");
        assert!(at(&m, Err(SourceError::Unreachable("again".into()))).event.is_none(), "one Warning an outage");
        let back = at(&m, Ok(offered("2")));
        assert_eq!(back.event.map(|e| (e.kind, e.reason)), Some((EventKind::Normal, "SourceSynced".to_string())));
        set(&mut m, "True", "Synced");
        let refused = at(&m, Err(SourceError::Refused("HTTP 403".into())));
        assert_eq!(refused.problem.map(|p| p.reason), Some("SourceRefused"), "a refusal needs a fix: Stalled");
        let missing = at(&m, Err(SourceError::Missing("no alias".into())));
        assert!(missing.event.is_none() && missing.problem.is_none(), "waiting for a registration is quiet");
        assert_eq!(judge(&crate::lifecycle::testing::model("churn"), None, None).condition, None);
    }
}
