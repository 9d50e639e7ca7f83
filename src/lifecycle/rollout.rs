//! What every rollout strategy shares: the one outcome type they return, the trait each
//! implements, and where a Deployment's rollout is, read from its status. A new strategy is one
//! new module implementing [`Strategy`]; `serving` picks it.

use std::sync::Arc;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use crate::api::kserve::InferenceService;
use crate::api::{Model, ModelVersion};
use crate::objects::deployment::{Track, track_deployment};
use crate::objects::desired::DesiredObjects;
use crate::objects::meta::same_name;
use crate::objects::route::Traffic;

use super::analysis::Gate;
use super::ledger::{Decision, Ledger};
use super::plan::sooner;
use super::transitions::{Action, Reason};
use super::triggers::Readings;

/// What one reconcile of a rollout decided, whatever the strategy.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Deployments to apply, in order (the side that grows first).
    pub apply: Vec<Deployment>,
    /// Deployments to delete, after those are applied.
    pub delete: Vec<String>,
    /// Wake up after this long (the end of a pause, the next measurement).
    pub requeue_after: Option<Duration>,
    /// The rollout towards the wanted version is not complete.
    pub rolling_out: bool,
    /// The rollout is paused: (condition reason, message).
    pub paused: Option<(&'static str, String)>,
    /// The serving version's own Deployment fails to progress (there is nothing to roll back to).
    pub unhealthy: Option<String>,
    /// Where a route sends requests (`None`: all to the stable track). Only a Model routed
    /// through Gateway API has a route; without one, traffic follows the pods.
    pub traffic: Option<Traffic>,
    /// The InferenceService to apply (target KServe), when it must change.
    pub inference_service: Option<InferenceService>,
}

impl Outcome {
    /// An outcome of a rollout still in progress.
    pub fn rolling() -> Self {
        Self { rolling_out: true, ..Self::default() }
    }

    /// Wakes up at the sooner of the current wake and `after`.
    pub fn wake(&mut self, after: Option<Duration>) {
        self.requeue_after = sooner(self.requeue_after, after);
    }
}

/// What a strategy reads and changes: the versions (whose phases it moves), the Model, its
/// observed Deployments and the live readings taken for this reconcile.
pub struct Rollout<'r, 'a> {
    /// The versions as decided so far.
    pub ledger: &'r mut Ledger<'a>,
    /// The Model.
    pub model: &'r Model,
    /// Its observed Deployments.
    pub deployments: &'r [Arc<Deployment>],
    /// Live readings.
    pub readings: &'r Readings,
    /// Its observed InferenceServices (target KServe).
    pub inference_services: &'r [Arc<InferenceService>],
    /// Where its desired Deployments come from.
    pub desired: DesiredObjects<'r>,
}

/// A way of moving traffic from the serving version to the wanted one.
pub trait Strategy {
    /// One reconcile's step of the rollout of `wanted` while `serving` serves (`None`: nothing
    /// serves yet; equal to `wanted`: keep it served). Moves version phases in the ledger and
    /// says which Deployments to apply and delete.
    fn advance(&self, rollout: &mut Rollout, serving: Option<u32>, wanted: u32) -> Outcome;
}

/// The state of a Deployment's current rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutState {
    /// The controller has not caught up or pods are still being replaced.
    Progressing,
    /// Every replica runs the current template and is available.
    Complete,
    /// The Deployment gave up: `ProgressDeadlineExceeded`, with its message.
    Failed(String),
}

/// Moves a Deployment towards `desired`: queued in `apply` if what runs differs (then it is
/// Progressing), else the state of its rollout.
pub fn converge(
    desired: Option<Arc<Deployment>>,
    deployments: &[Arc<Deployment>],
    apply: &mut Vec<Deployment>,
) -> RolloutState {
    use crate::objects::deployment::same_spec;
    let Some(desired) = desired else { return RolloutState::Progressing };
    let desired_ref = desired.as_ref();
    match deployments.iter().find(|d| same_name(desired_ref, d.as_ref())).filter(|d| same_spec(d.as_ref(), desired_ref))
    {
        Some(d) => rollout_state(d),
        None => {
            apply.push(Arc::unwrap_or_clone(desired));
            RolloutState::Progressing
        }
    }
}

/// Reads the rollout state; only trusts status the Deployment controller wrote for this generation.
pub fn rollout_state(deployment: &Deployment) -> RolloutState {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else { return RolloutState::Progressing };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::Progressing;
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let stuck = |c: &&k8s_openapi::api::apps::v1::DeploymentCondition| {
        c.type_ == "Progressing" && c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    };
    if let Some(c) = conditions.iter().find(stuck) {
        return RolloutState::Failed(c.message.clone().unwrap_or_else(|| "progress deadline exceeded".into()));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated >= wanted && available >= wanted && total == wanted {
        RolloutState::Complete
    } else {
        RolloutState::Progressing
    }
}

/// Canary and stable replicas for a step of `weight` percent when a route sets the share: the
/// stable side keeps every replica, the canary gets enough for its share (at least one).
pub fn routed_split(total: i32, weight: i32) -> (i32, i32) {
    if total <= 0 {
        return (0, 0);
    }
    let canary = ((i64::from(total) * i64::from(weight.clamp(0, 100)) + 99) / 100) as i32;
    (canary.clamp(1, total), total)
}

/// What a step's gate other than open does: waits, pauses (saying `where_`), or rolls `wanted`
/// back to `stable` with the failure `failed` words; true when it rolled back.
pub fn settle(
    out: &mut Outcome,
    ledger: &mut Ledger,
    (model, stable, wanted): (&Model, &ModelVersion, u32),
    gate: Gate,
    where_: &str,
    failed: impl FnOnce(String) -> String,
) -> bool {
    let Some(d) = hold(out, ledger, gate, where_, failed) else { return false };
    roll_back(out, ledger, model, stable, wanted, d);
    true
}

/// What a step's gate other than open does to the outcome, whatever the target: waits, or pauses
/// (saying `where_`). A failure is returned as the rollback decision (with the `failed` words)
/// for the strategy to carry out its own way.
pub fn hold(
    out: &mut Outcome,
    ledger: &Ledger,
    gate: Gate,
    where_: &str,
    failed: impl FnOnce(String) -> String,
) -> Option<Decision> {
    match gate {
        Gate::Open => None,
        Gate::Wait(wake) => {
            out.requeue_after = wake.and_then(|t| ledger.until(t));
            None
        }
        Gate::Paused(reason, message, wake) => {
            out.paused = Some((reason, format!("{message} ({where_})")));
            out.requeue_after = wake.and_then(|t| ledger.until(t));
            None
        }
        Gate::Failed(message, evidence) => Some(Decision {
            action: Action::RollBack,
            reason: Reason::AnalysisFailed,
            message: failed(message),
            evidence: Some(evidence),
        }),
    }
}

/// Rolls the canary of `wanted` back: the stable Deployment takes every replica again (applied
/// before the canary is deleted, so capacity never drops).
pub fn roll_back(
    out: &mut Outcome,
    ledger: &mut Ledger,
    model: &Model,
    stable: &crate::api::ModelVersion,
    wanted: u32,
    d: Decision,
) {
    let name = model.name_any();
    out.apply.retain(|a| a.name_any() != Track::Canary.name(&name) && a.name_any() != Track::Stable.name(&name));
    out.apply.extend(track_deployment(model, stable, Track::Stable, model.spec.serving.replicas));
    out.delete.push(Track::Canary.name(&name));
    out.rolling_out = false;
    out.requeue_after = None;
    out.traffic = None;
    ledger.transition(wanted, d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use kube::api::ObjectMeta;

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        available: i32,
        total: i32,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(generation), ..Default::default() },
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                replicas: Some(total),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn complete_only_when_every_replica_is_updated_and_available() {
        assert_eq!(rollout_state(&deployment(2, 2, 3, 3, 3, 3)), RolloutState::Complete);
        assert_eq!(rollout_state(&deployment(2, 2, 3, 3, 2, 3)), RolloutState::Progressing);
        assert_eq!(rollout_state(&deployment(2, 2, 3, 3, 3, 4)), RolloutState::Progressing, "old pods still there");
        assert_eq!(
            rollout_state(&deployment(3, 2, 3, 3, 3, 3)),
            RolloutState::Progressing,
            "status of an older generation"
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_a_failure() {
        let mut d = deployment(2, 2, 3, 1, 2, 4);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"churn-abc\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        assert!(matches!(rollout_state(&d), RolloutState::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn scaled_to_zero_is_complete() {
        assert_eq!(rollout_state(&deployment(1, 1, 0, 0, 0, 0)), RolloutState::Complete);
    }
}
