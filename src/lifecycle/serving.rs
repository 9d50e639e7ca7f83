//! Serving with the Rolling strategy: which version should serve, the Deployment and Service
//! that serve it, completing the rollout, and rolling back a version that never becomes healthy.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::api::{Model, VersionPhase};
use crate::build::deployment::{Track, same_spec, serving_deployment};
use crate::build::names::serving_name;
use crate::build::service::serving_service;

use super::canary::advance_canary;
use super::ledger::{Decision, Ledger};
use super::rollout::{RolloutState, rollout_state};
use super::validate::Problem;

/// What serving decided.
#[derive(Default)]
pub struct ServingSteps {
    /// Deployments to apply, if their spec must change.
    pub deployments: Vec<Deployment>,
    /// Deployments to delete (a canary that is done or aborted).
    pub delete_deployments: Vec<String>,
    /// Wake up after this long (the end of a canary pause).
    pub requeue_after: Option<std::time::Duration>,
    /// Service to apply, if it is missing or its spec must change.
    pub service: Option<Service>,
    /// The version that should serve.
    pub wanted: Option<u32>,
    /// The rollout towards `wanted` is not complete.
    pub rolling_out: bool,
    /// The serving version's own Deployment fails to progress (no rollback target).
    pub unhealthy: Option<String>,
    /// `spec.pinnedVersion` cannot be served.
    pub pin_problem: Option<Problem>,
}

/// Decides which version serves and moves the serving objects towards it.
pub fn advance_serving(
    ledger: &mut Ledger,
    model: &Model,
    deployments: &[Deployment],
    services: &[Service],
) -> ServingSteps {
    let mut steps = ServingSteps::default();
    let name = serving_name(&model.name_any());
    let observed = deployments.iter().find(|d| d.name_any() == name);
    // A failed rollout rolls back, which changes what is wanted: decide at most twice.
    for _ in 0..2 {
        let (wanted, pin_problem) = wanted_version(ledger, model);
        steps.pin_problem = pin_problem;
        steps.wanted = wanted;
        let Some(w) = wanted else { return steps };
        supersede_other_rollouts(ledger, w);
        let serving = ledger.serving();
        if let (Some(canary), Some(s)) = (&model.spec.serving.strategy.canary, serving)
            && s != w
            && model.spec.pinned_version != Some(w)
        {
            let was = ledger.get(w).map(|e| e.phase());
            let c = advance_canary(ledger, model, canary, s, w, deployments);
            steps.deployments = c.apply;
            if c.delete_canary {
                steps.delete_deployments.push(Track::Canary.name(&model.name_any()));
            }
            steps.requeue_after = c.requeue_after;
            steps.rolling_out = c.rolling_out;
            if ledger.get(w).map(|e| e.phase()) == Some(VersionPhase::RolledBack)
                && was != Some(VersionPhase::RolledBack)
            {
                // Rolled back: serve the stable version again (already applied with all replicas).
                steps.wanted = Some(s);
            }
            break;
        }
        let entry = ledger.get(w).expect("wanted exists");
        let Some(desired) = serving_deployment(model, entry.version) else { return steps };
        match observed.filter(|d| same_spec(*d, &desired)).map(rollout_state) {
            None => {
                steps.deployments = vec![desired];
                steps.rolling_out = true;
                if serving != Some(w) {
                    let from = serving.map_or("nothing".to_string(), |s| format!("v{s}"));
                    let message = format!("rolling out v{w} in place of {from}");
                    ledger.transition(
                        w,
                        VersionPhase::RollingOut,
                        decision("Promote", promote_reason(model, w), message),
                    );
                }
            }
            Some(RolloutState::Progressing) => {
                steps.rolling_out = true;
                if serving != Some(w) {
                    let message = format!("Deployment {name} is rolling out v{w}");
                    ledger.transition(
                        w,
                        VersionPhase::RollingOut,
                        decision("Promote", promote_reason(model, w), message),
                    );
                }
            }
            Some(RolloutState::Complete) => {
                if serving != Some(w) {
                    let message = format!("Deployment {name} runs v{w} on every replica");
                    ledger.transition(w, VersionPhase::Serving, decision("Serve", "RolloutComplete", message));
                    if let Some(previous) = serving {
                        let message = format!("replaced by v{w}");
                        ledger.transition(previous, VersionPhase::Retired, decision("Retire", "Replaced", message));
                    }
                }
            }
            Some(RolloutState::Failed(reason)) => {
                if serving == Some(w) {
                    steps.unhealthy = Some(reason);
                } else {
                    let back_to = serving
                        .map_or("nothing served before; the Deployment is left as it is".into(), |s| {
                            format!("restored the pod template of v{s}")
                        });
                    let d = Decision {
                        action: "RollBack",
                        reason: "ProgressDeadlineExceeded",
                        message: format!("Deployment {name} did not become available with v{w} ({reason}); {back_to}"),
                        evidence: Some(
                            serde_json::json!({"deployment": name, "condition": "Progressing=False", "reason": "ProgressDeadlineExceeded", "message": reason}),
                        ),
                    };
                    ledger.transition(w, VersionPhase::RolledBack, d);
                    continue;
                }
            }
        }
        break;
    }
    // A canary left behind by a rollout that no longer is one (its strategy removed, its
    // version pinned away from) goes once nothing canary-shaped is wanted.
    let canary_name = Track::Canary.name(&model.name_any());
    let in_canary = ledger.entries.iter().any(|e| e.status.canary.is_some() && e.phase() == VersionPhase::RollingOut);
    if !in_canary
        && deployments.iter().any(|d| d.name_any() == canary_name)
        && !steps.delete_deployments.contains(&canary_name)
    {
        steps.delete_deployments.push(canary_name);
    }
    if steps.wanted.is_some() || observed.is_some() {
        let service = serving_service(model)
            .filter(|desired| !services.iter().any(|s| s.name_any() == name && same_spec(s, desired)));
        steps.service = service;
    }
    steps
}

fn promote_reason(model: &Model, n: u32) -> &'static str {
    if model.spec.pinned_version == Some(n) { "Pinned" } else { "NewerVersionReady" }
}

fn decision<'s>(action: &'s str, reason: &'s str, message: String) -> Decision<'s> {
    Decision { action, reason, message, evidence: None }
}

/// The version that should serve: the pinned one, else the newest Ready or rolling-out version
/// newer than the serving one, else the serving one. Rolled-back versions are never chosen.
pub fn wanted_version(ledger: &Ledger, model: &Model) -> (Option<u32>, Option<Problem>) {
    let serving = ledger.serving();
    if let Some(pin) = model.spec.pinned_version {
        let servable = [VersionPhase::Ready, VersionPhase::RollingOut, VersionPhase::Serving, VersionPhase::Retired];
        return match ledger.get(pin) {
            Some(e) if servable.contains(&e.phase()) => (Some(pin), None),
            found => {
                let what = found.map_or("does not exist".to_string(), |e| format!("is {:?}", e.phase()));
                let problem = Problem {
                    reason: "PinnedVersionUnavailable",
                    message: format!(
                        "spec.pinnedVersion {pin} {what}; only a Ready, Serving or Retired version can be pinned. {} keeps serving",
                        serving.map_or("nothing".to_string(), |s| format!("v{s}"))
                    ),
                };
                (serving, Some(problem))
            }
        };
    }
    let newest_ready = ledger
        .entries
        .iter()
        .rev()
        .filter(|e| matches!(e.phase(), VersionPhase::Ready | VersionPhase::RollingOut))
        .filter(|e| serving.is_none_or(|s| e.number() > s))
        .map(|e| e.number())
        .next();
    (newest_ready.or(serving), None)
}

/// A version still rolling out when a newer one is wanted will never finish: retire it.
fn supersede_other_rollouts(ledger: &mut Ledger, wanted: u32) {
    let others: Vec<u32> =
        ledger.in_phase(VersionPhase::RollingOut).map(|e| e.number()).filter(|n| *n != wanted).collect();
    for n in others {
        let message = format!("superseded by v{wanted} before its rollout completed");
        ledger.transition(n, VersionPhase::Retired, decision("Retire", "Superseded", message));
    }
}
