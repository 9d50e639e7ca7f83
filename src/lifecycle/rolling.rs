//! The Rolling strategy: the serving Deployment `<model>` takes the wanted version's pod
//! template and Kubernetes replaces its pods; a version whose pods never become available is
//! rolled back by restoring the serving version's template. It also keeps the serving version
//! served (a first version, a pinned one, a changed serving spec), whatever the strategy.

use kube::ResourceExt;

use jiff::SignedDuration;

use crate::api::{Model, VersionPhase};
use crate::objects::deployment::{Track, same_spec};
use crate::objects::meta::is_named;
use crate::objects::names::serving_name;

use super::analysis::{Gate, Guard, guard, is_manual, manual_gate, start_guard};
use super::ledger::{Decision, Ledger};
use super::rollout::{Outcome, Rollout, RolloutState, Strategy, rollout_state};
use super::transitions::{Action, Reason};
use super::triggers::{after, span};

/// The Rolling strategy.
pub struct Rolling;

impl Strategy for Rolling {
    fn advance(&self, r: &mut Rollout, serving: Option<u32>, wanted: u32) -> Outcome {
        let mut out = Outcome::default();
        let (model, w) = (r.model, wanted);
        let name = serving_name(&model.name_any());
        let pinned = model.spec.pinned_version == Some(w);
        let replicas = model.spec.serving.replicas;
        let built = |v| r.desired.deployment(model, v, Track::Stable, replicas);
        let Some(desired) = r.ledger.get(w).and_then(|e| built(e.version)) else { return out };
        let observed = r.deployments.iter().map(AsRef::as_ref).find(|d| is_named(*d, &name));
        let current = observed.filter(|d| same_spec(*d, desired.as_ref())).map(rollout_state);
        let replaces = serving.is_some_and(|s| s != w);
        if current.is_none()
            && replaces
            && !pinned
            && is_manual(model)
            && let Gate::Paused(reason, message, _) = manual_gate(model, w)
        {
            // The rolling update waits for its promotion before it starts.
            out.rolling_out = true;
            out.paused = Some((reason, message));
            return out;
        }
        match current {
            None => {
                out.apply.push(std::sync::Arc::unwrap_or_clone(desired));
                out.rolling_out = true;
                if serving != Some(w) {
                    let from = serving.map_or("nothing".to_string(), |s| format!("v{s}"));
                    let message = format!("rolling out v{w} in place of {from}");
                    r.ledger.transition(w, Decision::new(Action::Promote, promote_reason(model, w), message));
                }
            }
            Some(RolloutState::Progressing) => {
                out.rolling_out = true;
                if serving != Some(w) {
                    let message = format!("Deployment {name} is rolling out v{w}");
                    r.ledger.transition(w, Decision::new(Action::Promote, promote_reason(model, w), message));
                }
            }
            Some(RolloutState::Complete) if serving != Some(w) => {
                let message = format!("Deployment {name} runs v{w} on every replica");
                r.ledger.transition(w, Decision::new(Action::Serve, Reason::RolloutComplete, message));
                if let Some(e) = r.ledger.get_mut(w) {
                    // A rollout a restart interrupted half-promoted ends here.
                    let status = e.status_mut();
                    status.canary = None;
                    status.blue_green = None;
                }
                if let Some(previous) = serving {
                    let message = format!("replaced by v{w}");
                    r.ledger.transition(previous, Decision::new(Action::Retire, Reason::Replaced, message));
                    start_guard(r.ledger, model, w, previous);
                    // A guard window just started cannot have failed: only its first wake-up matters.
                    if let Guard::Watching(wake) = guard(r.ledger, model, r.readings, w) {
                        out.wake(wake.and_then(|t| r.ledger.until(t)));
                    }
                }
            }
            Some(RolloutState::Complete) => {}
            Some(RolloutState::Failed(reason)) if serving == Some(w) => out.unhealthy = Some(reason),
            Some(RolloutState::Failed(reason)) => {
                // The serving version's template goes back in the same plan that records the rollback.
                let restored = serving.and_then(|s| r.ledger.get(s)).and_then(|e| built(e.version));
                let back_to = match serving {
                    Some(s) if restored.is_some() => format!("restored the pod template of v{s}"),
                    _ => "nothing served before; the Deployment is left as it is".into(),
                };
                // Restoring the template is a rollout of the serving version, until it completes.
                out.rolling_out = restored.is_some();
                out.apply.extend(restored.map(std::sync::Arc::unwrap_or_clone));
                let d = Decision::new(
                    Action::RollBack,
                    Reason::ProgressDeadlineExceeded,
                    format!("Deployment {name} did not become available with v{w} ({reason}); {back_to}"),
                )
                .with_evidence(serde_json::json!({
                    "deployment": name, "condition": "Progressing=False",
                    "reason": "ProgressDeadlineExceeded", "message": reason,
                }));
                r.ledger.transition(w, d);
            }
        }
        out
    }
}

fn promote_reason(model: &Model, n: u32) -> Reason {
    if model.spec.pinned_version == Some(n) { Reason::Pinned } else { Reason::NewerVersionReady }
}

/// True when `wanted` replaces a serving version by a progressive strategy: not by a pin, which
/// takes the plain rolling update, unless it pins a version that stopped serving longer ago than
/// `rollbackWindow` (that one is judged like a new version).
pub fn progressive(model: &Model, ledger: &Ledger, serving: Option<u32>, wanted: u32) -> bool {
    let replaces = serving.is_some_and(|s| s != wanted);
    let pinned = model.spec.pinned_version == Some(wanted);
    replaces && (!pinned || !within_rollback_window(ledger, model, wanted))
}

/// Whether version `n` may be returned to at once: it never served, serves, or stopped serving
/// within `spec.serving.rollbackWindow` (no window: always).
pub fn within_rollback_window(ledger: &Ledger, model: &Model, n: u32) -> bool {
    let Some(window) = model.spec.serving.rollback_window.as_ref() else { return true };
    let Some(entry) = ledger.get(n) else { return false };
    if entry.phase() != VersionPhase::Retired {
        return true;
    }
    let retired = entry.status.decisions.iter().rev().find(|d| d.action == Action::Retire.as_str()).map(|d| d.time.0);
    retired.is_some_and(|t| ledger.now() <= after(t, span(Some(window), SignedDuration::ZERO)))
}
