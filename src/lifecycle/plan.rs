//! What the core decides for one object: status to write, Events to emit, when to wake.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::api::{ModelStatus, ModelVersion, ModelVersionStatus, RetrainPolicyStatus};

use super::conditions::{self, Desired};
use super::validate::Problem;

/// A child object to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Child {
    /// A training Job.
    Job(Box<Job>),
    /// A Kubeflow Trainer `TrainJob`.
    TrainJob(Box<TrainJob>),
    /// A KubeRay `RayJob`.
    RayJob(Box<RayJob>),
    /// A serving Deployment.
    Deployment(Box<Deployment>),
    /// A Service.
    Service(Box<Service>),
    /// A Gateway API `HTTPRoute`.
    Route(Box<HttpRoute>),
    /// A KServe `InferenceService`.
    InferenceService(Box<InferenceService>),
}

impl Child {
    /// The kind and name of the object, as a person reads them (`Deployment churn-canary`).
    pub fn describe(&self) -> String {
        format!("{:?} {}", self.kind(), self.name())
    }

    /// The kind of the object.
    pub fn kind(&self) -> Kind {
        match self {
            Child::Job(_) => Kind::Job,
            Child::TrainJob(_) => Kind::TrainJob,
            Child::RayJob(_) => Kind::RayJob,
            Child::Deployment(_) => Kind::Deployment,
            Child::Service(_) => Kind::Service,
            Child::Route(_) => Kind::HttpRoute,
            Child::InferenceService(_) => Kind::InferenceService,
        }
    }

    /// The name of the object.
    pub fn name(&self) -> String {
        match self {
            Child::Job(j) => j.name_any(),
            Child::TrainJob(t) => t.name_any(),
            Child::RayJob(r) => r.name_any(),
            Child::Deployment(d) => d.name_any(),
            Child::Service(s) => s.name_any(),
            Child::Route(r) => r.name_any(),
            Child::InferenceService(i) => i.name_any(),
        }
    }
}

/// The kinds of object a plan deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A ModelVersion (its Jobs go with it).
    ModelVersion,
    /// A training Job (its pods go with it).
    Job,
    /// A Kubeflow Trainer `TrainJob` (its JobSet, Jobs and pods go with it).
    TrainJob,
    /// A KubeRay `RayJob` (its Ray cluster and submitter go with it).
    RayJob,
    /// A Deployment.
    Deployment,
    /// A Service.
    Service,
    /// A Gateway API `HTTPRoute`.
    HttpRoute,
    /// A KServe `InferenceService`.
    InferenceService,
}

/// The object an Event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Regarding {
    /// The reconciled Model.
    Model,
    /// A RetrainPolicy of the Model, by name.
    Policy(String),
}

/// A status to write onto an object by name, and the resourceVersion of the object it was
/// decided from: the write's precondition, so a status decided from an object that changed since
/// is refused and decided again instead of writing an older status back (none for an object this
/// reconcile creates).
#[derive(Clone, Debug, PartialEq)]
pub struct StatusWrite<S> {
    /// The object's name.
    pub name: String,
    /// Its resourceVersion as read.
    pub read_at: Option<String>,
    /// The new status.
    pub status: S,
}

/// One write to the API server. A plan is a list of them in the order that keeps a crash after
/// any one of them recoverable; both shells apply it front to back and stop at the first error.
#[derive(Clone, Debug)]
pub enum Write {
    /// Create a ModelVersion (one that already exists is fine: an earlier reconcile made it).
    CreateVersion(Box<ModelVersion>),
    /// Replace a ModelVersion's status, onto the version as it was read.
    VersionStatus(Box<StatusWrite<ModelVersionStatus>>),
    /// Server-side apply a child.
    Apply(Child),
    /// Delete an object of the Model, by name (one already gone is fine).
    Delete(Kind, String),
    /// Replace a RetrainPolicy's status, onto the policy as it was read.
    PolicyStatus(Box<StatusWrite<RetrainPolicyStatus>>),
    /// Replace the reconciled Model's status.
    ModelStatus(Box<ModelStatus>),
    /// Emit an Event; a failure to do so is logged, never retried.
    Event(Regarding, EventRecord),
}

impl Write {
    /// True for a write that changes an object (every write but an Event).
    pub fn changes_state(&self) -> bool {
        !matches!(self, Write::Event(..))
    }
}

/// Severity of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Something expected happened.
    Normal,
    /// Something needs attention.
    Warning,
}

/// An Event to emit on the reconciled object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Normal or Warning.
    pub kind: EventKind,
    /// CamelCase reason (at most 128 characters).
    pub reason: String,
    /// What the controller did about it, CamelCase.
    pub action: String,
    /// A sentence for a person.
    pub note: String,
    /// The version the Event is about, if any.
    pub version: Option<u32>,
}

/// The decision of one reconcile of an object whose status is `S`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<S> {
    /// The status to write, or `None` when it would not change (no write, no self-wakeup).
    pub status: Option<S>,
    /// Events to emit, in order.
    pub events: Vec<EventRecord>,
    /// Wake again after this long even if nothing changes (a deadline the decision depends on).
    pub requeue_after: Option<Duration>,
}

/// The kstatus conditions for an object that cannot progress because of `problems`, or for one
/// that is fine and, if `working` says so, still reconciling.
pub fn health_conditions(
    problems: &[Problem],
    ready: (bool, &str, &str),
    working: Option<(&str, &str)>,
) -> Vec<Desired> {
    if let Some(first) = problems.first() {
        let message = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
        return vec![
            Desired::no(conditions::READY, first.reason, message.clone()),
            Desired::no(conditions::RECONCILING, first.reason, "waiting for the spec to be fixed"),
            Desired::yes(conditions::STALLED, first.reason, message),
        ];
    }
    let (is_ready, reason, message) = ready;
    let reconciling = match working {
        Some((reason, message)) => Desired::yes(conditions::RECONCILING, reason, message),
        None => Desired::no(conditions::RECONCILING, reason, message),
    };
    vec![
        Desired { type_: conditions::READY, status: is_ready, reason: reason.into(), message: message.into() },
        reconciling,
        Desired::no(conditions::STALLED, "SpecValid", "the spec can be acted on"),
    ]
}

/// Events for a change of the Stalled condition: a Warning when it starts or its reason
/// changes, a Normal one when it clears. Comparing old and new keeps a steady state silent.
pub fn stalled_events(
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    new: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Vec<EventRecord> {
    let before = conditions::find(old, conditions::STALLED).filter(|c| c.status == "True");
    let after = conditions::find(new, conditions::STALLED).filter(|c| c.status == "True");
    match (before, after) {
        (_, Some(a)) if before.is_none_or(|b| b.reason != a.reason || b.message != a.message) => vec![EventRecord {
            kind: EventKind::Warning,
            reason: a.reason.clone(),
            action: "Stall".into(),
            note: truncate(&a.message, 1024),
            version: None,
        }],
        (Some(b), None) => {
            // Named for what happened: a new generation fixed the spec, or the cause went away
            // by itself (a Prometheus that answers again, a child the API server now accepts).
            let now_generation = conditions::find(new, conditions::STALLED).and_then(|c| c.observed_generation);
            let (reason, note) = if now_generation != b.observed_generation {
                ("SpecFixed", "the spec can be acted on again".to_string())
            } else {
                ("Resumed", format!("no longer stalled: {} has cleared", b.reason))
            };
            vec![EventRecord {
                kind: EventKind::Normal,
                reason: reason.into(),
                action: "Resume".into(),
                note,
                version: None,
            }]
        }
        _ => vec![],
    }
}

/// An Event when a rollout starts waiting for a person: for promotion, or because the promote
/// annotation names another version.
pub fn waiting_events(
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    new: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Vec<EventRecord> {
    let reason = |c: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conditions::find(c, conditions::ROLLING_OUT).filter(|c| c.status == "True").map(|c| c.reason.clone())
    };
    let Some(after) = conditions::find(new, conditions::ROLLING_OUT).filter(|c| c.status == "True") else {
        return vec![];
    };
    let kind = match after.reason.as_str() {
        "WaitingForPromotion" => EventKind::Normal,
        "StalePromotion" => EventKind::Warning,
        _ => return vec![],
    };
    if reason(old).as_deref() == Some(after.reason.as_str()) {
        return vec![];
    }
    vec![EventRecord {
        kind,
        reason: after.reason.clone(),
        action: "Wait".into(),
        note: truncate(&after.message, 1024),
        version: None,
    }]
}

/// The sooner of two wake-ups, either of which may be absent.
pub fn sooner(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Cuts a note to at most `max` bytes on a character boundary (Events refuse longer notes).
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn stalled(status: &str, reason: &str, generation: i64) -> Vec<Condition> {
        vec![Condition {
            type_: conditions::STALLED.into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            observed_generation: Some(generation),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }]
    }

    #[test]
    fn a_stall_that_clears_is_named_for_what_cleared_it() {
        let old = stalled("True", "NoServableVersion", 3);
        let by_itself = stalled_events(&old, &stalled("False", "SpecValid", 3));
        assert_eq!(by_itself[0].reason, "Resumed", "a retrain request fixed nothing in the spec");
        assert!(by_itself[0].note.contains("NoServableVersion has cleared"), "{}", by_itself[0].note);
        let by_a_fix = stalled_events(&old, &stalled("False", "SpecValid", 4));
        assert_eq!(by_a_fix[0].reason, "SpecFixed");
    }
}
