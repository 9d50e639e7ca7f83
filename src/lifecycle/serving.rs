//! Serving with the Rolling strategy: which version should serve, the Deployment and Service
//! that serve it, completing the rollout, and rolling back a version that never becomes healthy.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::api::{Model, VersionPhase};
use crate::objects::deployment::{Track, same_spec, serving_deployment};
use crate::objects::names::serving_name;
use crate::objects::service::{preview_service, serving_service};

use super::analysis::{
    ABORT_ANNOTATION, Gate, Guard, abort_requested, end_guard, guard, is_manual, manual_gate, start_guard,
};
use super::blue_green::{advance_blue_green, hand_off, preview_needed, preview_serves};
use super::canary::advance_canary;
use super::ledger::{Decision, Ledger};
use super::rollout::{RolloutState, rollout_state};
use super::transitions::{Action, Reason};
use super::triggers::Readings;
use super::validate::Problem;

/// What serving decided.
#[derive(Default)]
pub struct ServingSteps {
    /// Deployments to apply, if their spec must change.
    pub deployments: Vec<Deployment>,
    /// Deployments to delete (a canary or preview that is done or aborted).
    pub delete_deployments: Vec<String>,
    /// Wake up after this long (the end of a pause, the next measurement).
    pub requeue_after: Option<std::time::Duration>,
    /// Services to apply, when missing or their spec must change.
    pub services: Vec<Service>,
    /// Services to delete (a preview Service no longer needed).
    pub delete_services: Vec<String>,
    /// The version that should serve.
    pub wanted: Option<u32>,
    /// The rollout towards `wanted` is not complete.
    pub rolling_out: bool,
    /// The rollout is paused: (condition reason, message).
    pub paused: Option<(&'static str, String)>,
    /// The serving version's own Deployment fails to progress (no rollback target).
    pub unhealthy: Option<String>,
    /// `spec.pinnedVersion` cannot be served.
    pub pin_problem: Option<Problem>,
}

impl ServingSteps {
    fn wake(&mut self, after: Option<std::time::Duration>) {
        if let Some(after) = after {
            self.requeue_after = Some(self.requeue_after.map_or(after, |r| r.min(after)));
        }
    }
}

/// Decides which version serves and moves the serving objects towards it.
pub fn advance_serving(
    ledger: &mut Ledger,
    model: &Model,
    deployments: &[Deployment],
    services: &[Service],
    readings: &Readings,
) -> ServingSteps {
    let mut steps = ServingSteps::default();
    let name = serving_name(&model.name_any());
    let observed = deployments.iter().find(|d| d.name_any() == name);
    let strategy = &model.spec.serving.strategy;
    // A rollback changes what is wanted: decide again, at most a few times.
    for _ in 0..3 {
        let (wanted, pin_problem) = wanted_version(ledger, model);
        steps.pin_problem = pin_problem;
        steps.wanted = wanted;
        let Some(w) = wanted else { return steps };
        supersede_other_rollouts(ledger, w);
        // A promotion a restart interrupted can leave two versions Serving: the one to keep is
        // the wanted one when it is among them (a pin can want the older), else the newest.
        let serving = ledger.get(w).filter(|e| e.phase() == VersionPhase::Serving).map(|e| e.number());
        let serving = serving.or(ledger.serving());
        retire_other_serving(ledger, serving);
        let pinned = model.spec.pinned_version == Some(w);
        if serving != Some(w) && !pinned && abort_requested(model, w) {
            let d = Decision {
                action: Action::RollBack,
                reason: Reason::Aborted,
                message: format!(
                    "aborted by the annotation {ABORT_ANNOTATION}: \"{w}\"; {} keeps serving",
                    serving.map_or("nothing".into(), |s| format!("v{s}"))
                ),
                evidence: Some(serde_json::json!({"annotation": ABORT_ANNOTATION, "value": w.to_string()})),
            };
            ledger.transition(w, d);
            continue;
        }
        if let Some(s) = serving.filter(|s| *s != w) {
            end_guard(ledger, s, w);
        }
        if serving == Some(w) {
            match guard(ledger, model, readings, w) {
                Guard::Watching(wake) => steps.wake(wake.and_then(|t| ledger.until(t))),
                Guard::RollBack(back_to, message, evidence) => {
                    let restored = format!("serves again: v{w} failed its guard window");
                    ledger.transition(back_to, Decision::new(Action::Restore, Reason::GuardRollBack, restored));
                    let d = Decision {
                        action: Action::RollBack,
                        reason: Reason::GuardFailed,
                        message,
                        evidence: Some(evidence),
                    };
                    ledger.transition(w, d);
                    continue;
                }
            }
        }
        let progressive = serving.filter(|s| *s != w && !pinned);
        if let (Some(canary), Some(s)) = (&strategy.canary, progressive) {
            let c = advance_canary(ledger, model, canary, s, w, deployments, readings);
            steps.deployments = c.apply;
            if c.delete_canary {
                steps.delete_deployments.push(Track::Canary.name(&model.name_any()));
            }
            steps.wake(c.requeue_after);
            steps.rolling_out = c.rolling_out;
            steps.paused = c.paused;
            if ledger.get(w).map(|e| e.phase()) == Some(VersionPhase::RolledBack) {
                // Rolled back: serve the stable version again (already applied with all replicas).
                steps.wanted = Some(s);
            }
            break;
        }
        if let (Some(bg), Some(s)) = (&strategy.blue_green, progressive) {
            let b = advance_blue_green(ledger, model, bg, s, w, deployments, readings);
            steps.deployments = b.apply;
            steps.wake(b.requeue_after);
            steps.rolling_out = b.rolling_out;
            steps.paused = b.paused;
            if b.rolled_back {
                continue;
            }
            break;
        }
        if serving == Some(w) && preview_serves(ledger) {
            let b = hand_off(ledger, model, strategy.blue_green.as_ref(), w, deployments);
            steps.deployments = b.apply;
            steps.wake(b.requeue_after);
            break;
        }
        let Some(desired) = ledger.get(w).and_then(|e| serving_deployment(model, e.version)) else { return steps };
        let current = observed.filter(|d| same_spec(*d, &desired)).map(rollout_state);
        if current.is_none()
            && serving.is_some()
            && serving != Some(w)
            && !pinned
            && is_manual(model)
            && let Gate::Paused(reason, message, _) = manual_gate(model, w)
        {
            // The rolling update waits for its promotion before it starts.
            steps.rolling_out = true;
            steps.paused = Some((reason, message));
            break;
        }
        match current {
            None => {
                steps.deployments = vec![desired];
                steps.rolling_out = true;
                if serving != Some(w) {
                    let from = serving.map_or("nothing".to_string(), |s| format!("v{s}"));
                    let message = format!("rolling out v{w} in place of {from}");
                    ledger.transition(w, Decision::new(Action::Promote, promote_reason(model, w), message));
                }
            }
            Some(RolloutState::Progressing) => {
                steps.rolling_out = true;
                if serving != Some(w) {
                    let message = format!("Deployment {name} is rolling out v{w}");
                    ledger.transition(w, Decision::new(Action::Promote, promote_reason(model, w), message));
                }
            }
            Some(RolloutState::Complete) => {
                if serving != Some(w) {
                    let message = format!("Deployment {name} runs v{w} on every replica");
                    ledger.transition(w, Decision::new(Action::Serve, Reason::RolloutComplete, message));
                    if let Some(e) = ledger.get_mut(w) {
                        // A rollout a restart interrupted half-promoted ends here.
                        e.status.canary = None;
                        e.status.blue_green = None;
                    }
                    if let Some(previous) = serving {
                        let message = format!("replaced by v{w}");
                        ledger.transition(previous, Decision::new(Action::Retire, Reason::Replaced, message));
                        start_guard(ledger, model, w, previous);
                        // A guard window just started cannot have failed: only its first wake-up matters.
                        if let Guard::Watching(wake) = guard(ledger, model, readings, w) {
                            steps.wake(wake.and_then(|t| ledger.until(t)));
                        }
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
                        action: Action::RollBack,
                        reason: Reason::ProgressDeadlineExceeded,
                        message: format!("Deployment {name} did not become available with v{w} ({reason}); {back_to}"),
                        evidence: Some(
                            serde_json::json!({"deployment": name, "condition": "Progressing=False", "reason": "ProgressDeadlineExceeded", "message": reason}),
                        ),
                    };
                    ledger.transition(w, d);
                    continue;
                }
            }
        }
        break;
    }
    // A canary or preview left behind by a rollout that no longer is one (rolled back, its
    // strategy removed, its version pinned away from) goes once nothing needs it.
    let model_name = model.name_any();
    let in_canary = ledger.entries.iter().any(|e| e.status.canary.is_some() && e.phase() == VersionPhase::RollingOut);
    let leftovers = [(Track::Canary, in_canary), (Track::Preview, preview_needed(ledger))];
    for (track, needed) in leftovers {
        let left = track.name(&model_name);
        if !needed && deployments.iter().any(|d| d.name_any() == left) && !steps.delete_deployments.contains(&left) {
            steps.delete_deployments.push(left);
        }
    }
    if steps.wanted.is_some() || observed.is_some() {
        let active =
            strategy.blue_green.as_ref().map(|_| if preview_serves(ledger) { Track::Preview } else { Track::Stable });
        let mut desired: Vec<Service> = serving_service(model, active).into_iter().collect();
        let wants_preview = strategy.blue_green.as_ref().is_some_and(|bg| bg.preview_service) && preview_needed(ledger);
        if wants_preview {
            desired.extend(preview_service(model));
        }
        let preview_name = Track::Preview.name(&model_name);
        if !wants_preview && services.iter().any(|s| s.name_any() == preview_name) {
            steps.delete_services.push(preview_name);
        }
        steps.services = desired
            .into_iter()
            .filter(|d| !services.iter().any(|s| s.name_any() == d.name_any() && same_spec(s, d)))
            .collect();
    }
    steps
}

fn promote_reason(model: &Model, n: u32) -> Reason {
    if model.spec.pinned_version == Some(n) { Reason::Pinned } else { Reason::NewerVersionReady }
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

/// A promotion a restart interrupted can leave the replaced version Serving beside the one that
/// replaced it: it is retired, as the promotion would have.
fn retire_other_serving(ledger: &mut Ledger, serving: Option<u32>) {
    let Some(s) = serving else { return };
    let older: Vec<u32> = ledger.in_phase(VersionPhase::Serving).map(|e| e.number()).filter(|n| *n != s).collect();
    for n in older {
        ledger.transition(n, Decision::new(Action::Retire, Reason::Replaced, format!("replaced by v{s}")));
    }
}

/// A version still rolling out when a newer one is wanted will never finish: retire it.
fn supersede_other_rollouts(ledger: &mut Ledger, wanted: u32) {
    let others: Vec<u32> =
        ledger.in_phase(VersionPhase::RollingOut).map(|e| e.number()).filter(|n| *n != wanted).collect();
    for n in others {
        let message = format!("superseded by v{wanted} before its rollout completed");
        ledger.transition(n, Decision::new(Action::Retire, Reason::Superseded, message));
    }
}
