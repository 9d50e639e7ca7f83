//! The BlueGreen strategy: the new version starts with every replica in `<model>-preview` while
//! the Service `<model>` keeps selecting the serving version's pods; on promotion the Service
//! switches its selector to the preview's pods. The previous version's Deployment `<model>` is
//! kept for `scaleDownDelay`, so a rollback in that window is one selector switch; then
//! `<model>` is handed the new version and, once it runs it on every replica, the Service
//! selects `<model>` again and the preview goes.

use std::sync::Arc;

use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::{BlueGreenStrategy, Model, VersionPhase};
use crate::objects::deployment::Track;
use crate::objects::desired::DesiredObjects;

use super::analysis::{Gate, Step, is_manual, start_guard, step_gate};
use super::ledger::{Decision, Ledger};
use super::rollout::{Outcome, Rollout, RolloutState, Strategy, converge};
use super::transitions::{Action, Reason};
use super::triggers::{after, span};

/// Default time the previous version's Deployment is kept after the switch.
pub const DEFAULT_SCALE_DOWN_DELAY: SignedDuration = SignedDuration::from_secs(30);

/// The BlueGreen strategy of a Model, before the switch.
pub struct BlueGreen<'s>(pub &'s BlueGreenStrategy);

impl Strategy for BlueGreen<'_> {
    fn advance(&self, r: &mut Rollout, serving: Option<u32>, wanted: u32) -> Outcome {
        let Some(stable) = serving.filter(|s| *s != wanted) else { return Outcome::default() };
        advance_blue_green(r, self.0, stable, wanted)
    }
}

/// After a blue-green switch, while the preview serves: the hand-off to `<model>`.
pub struct HandOff<'s>(pub Option<&'s BlueGreenStrategy>);

impl Strategy for HandOff<'_> {
    fn advance(&self, r: &mut Rollout, _serving: Option<u32>, wanted: u32) -> Outcome {
        hand_off(r.ledger, r.model, self.0, wanted, r.deployments, r.desired)
    }
}

/// Before the switch: runs `wanted` in the preview beside `stable` and promotes it when its
/// checks (analysis, manual gate) hold.
fn advance_blue_green(r: &mut Rollout, strategy: &BlueGreenStrategy, stable: u32, wanted: u32) -> Outcome {
    let (model, deployments, readings, built) = (r.model, r.deployments, r.readings, r.desired);
    let ledger = &mut *r.ledger;
    let mut out = Outcome::rolling();
    let now = ledger.now();
    let name = model.name_any();
    let preview = Track::Preview.name(&name);
    let Some(new) = ledger.get(wanted).map(|e| e.version) else { return out };
    let desired = built.deployment(model, new, Track::Preview, model.spec.serving.replicas);
    let state = converge(desired, deployments, &mut out.apply);
    if ledger.get(wanted).is_some_and(|e| e.phase() != VersionPhase::RollingOut) {
        let message = format!(
            "v{wanted} starts in Deployment {preview} beside v{stable}; the Service {name} keeps sending traffic to v{stable}"
        );
        ledger.transition(wanted, Decision::new(Action::Promote, Reason::BlueGreenStarted, message));
    }
    let mut progress = ledger.get(wanted).and_then(|e| e.status.blue_green.clone()).unwrap_or_default();
    match state {
        RolloutState::Progressing => {}
        RolloutState::Failed(reason) => {
            let d = Decision {
                action: Action::RollBack,
                reason: Reason::ProgressDeadlineExceeded,
                message: format!(
                    "the preview of v{wanted} did not become available ({reason}); removed it, v{stable} kept serving throughout"
                ),
                evidence: Some(
                    serde_json::json!({"deployment": preview, "reason": "ProgressDeadlineExceeded", "message": reason}),
                ),
            };
            ledger.transition(wanted, d);
            out.rolling_out = false;
            return out;
        }
        RolloutState::Complete => {
            let since = progress.preview_ready.as_ref().map_or(now, |t| t.0);
            progress.preview_ready = Some(Time(since));
            match step_gate(
                ledger,
                model,
                readings,
                Step { n: wanted, baseline: stable, since, hold: None, manual: is_manual(model) },
            ) {
                Gate::Open => {
                    progress.switched = Some(Time(now));
                    let delay = span(strategy.scale_down_delay.as_ref(), DEFAULT_SCALE_DOWN_DELAY);
                    let message = format!(
                        "the Service {name} switched to v{wanted} in Deployment {preview}; v{stable} stays in Deployment {name} for {delay:#}, so a rollback is one selector switch"
                    );
                    ledger.transition(wanted, Decision::new(Action::Serve, Reason::BlueGreenPromoted, message));
                    let retired = Decision::new(Action::Retire, Reason::Replaced, format!("replaced by v{wanted}"));
                    ledger.transition(stable, retired);
                    start_guard(ledger, model, wanted, stable);
                    out.rolling_out = false;
                    out.requeue_after = ledger.until(after(now, delay));
                }
                Gate::Wait(wake) => out.requeue_after = wake.and_then(|t| ledger.until(t)),
                Gate::Paused(reason, message, wake) => {
                    out.paused = Some((reason, format!("{message} (preview of v{wanted})")));
                    out.requeue_after = wake.and_then(|t| ledger.until(t));
                }
                Gate::Failed(message, evidence) => {
                    let message = format!(
                        "v{wanted} in preview: {message}; removed the preview, v{stable} kept serving throughout"
                    );
                    ledger.transition(
                        wanted,
                        Decision {
                            action: Action::RollBack,
                            reason: Reason::AnalysisFailed,
                            message,
                            evidence: Some(evidence),
                        },
                    );
                    out.rolling_out = false;
                    return out;
                }
            }
        }
    }
    if let Some(e) = ledger.get_mut(wanted) {
        e.status_mut().blue_green = Some(progress);
    }
    out
}

/// After the switch: keeps the previous version's Deployment for `scaleDownDelay`, then hands
/// `<model>` the serving version; once it runs on every replica the preview is no longer needed.
fn hand_off(
    ledger: &mut Ledger,
    model: &Model,
    strategy: Option<&BlueGreenStrategy>,
    serving: u32,
    deployments: &[Arc<Deployment>],
    built: DesiredObjects,
) -> Outcome {
    let mut out = Outcome::default();
    let Some(entry) = ledger.get(serving) else { return out };
    let Some(switched) = entry.status.blue_green.as_ref().and_then(|p| p.switched.clone()) else { return out };
    let delay = span(strategy.and_then(|s| s.scale_down_delay.as_ref()), DEFAULT_SCALE_DOWN_DELAY);
    if ledger.now() < after(switched.0, delay) {
        out.requeue_after = ledger.until(after(switched.0, delay));
        return out;
    }
    let desired = built.deployment(model, entry.version, Track::Stable, model.spec.serving.replicas);
    if converge(desired, deployments, &mut out.apply) == RolloutState::Complete {
        if let Some(e) = ledger.get_mut(serving) {
            e.status_mut().blue_green = None;
        }
        let name = model.name_any();
        let message = format!(
            "Deployment {name} runs v{serving} on every replica after the scale-down delay; the Service selects it again and {} goes",
            Track::Preview.name(&name)
        );
        ledger.push_decision(serving, Decision::new(Action::ScaleDown, Reason::BlueGreenHandedOff, message));
    }
    out
}

/// True while the serving version's traffic goes to the preview Deployment.
pub fn preview_serves(ledger: &Ledger) -> bool {
    ledger.in_phase(VersionPhase::Serving).any(|e| e.status.blue_green.as_ref().is_some_and(|p| p.switched.is_some()))
}

/// True while a blue-green rollout needs the preview Deployment.
pub fn preview_needed(ledger: &Ledger) -> bool {
    ledger.entries.iter().any(|e| match (&e.status.blue_green, e.phase()) {
        (Some(_), VersionPhase::RollingOut) => true,
        (Some(p), VersionPhase::Serving) => p.switched.is_some(),
        _ => false,
    })
}
