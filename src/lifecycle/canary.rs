//! The Canary strategy: the new version runs in `<model>-canary` beside the stable `<model>`,
//! both behind one Service, with a share of the replicas that grows step by step; after the
//! last step the stable Deployment takes the new version and then the canary is removed, in
//! that order, so capacity never drops. A canary that cannot become available is rolled back.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::{CanaryProgress, CanaryStep, CanaryStrategy, ShadowStage, VersionPhase};
use crate::objects::deployment::Track;
use crate::objects::meta::is_named;
use crate::objects::route::{Traffic, gateway_routing};

use super::analysis::{Gate, Step, is_manual, start_guard, step_gate};
use super::ledger::Decision;
use super::rollout::{Outcome, Rollout, RolloutState, Strategy, converge, roll_back, routed_split, settle};
use super::shadow::{Shadowed, advance_shadow};
use super::transitions::{Action, Reason};
use super::triggers::span;

/// The Canary strategy of a Model.
pub struct Canary<'s>(pub &'s CanaryStrategy);

impl Strategy for Canary<'_> {
    fn advance(&self, r: &mut Rollout, serving: Option<u32>, wanted: u32) -> Outcome {
        let Some(stable) = serving.filter(|s| *s != wanted) else { return Outcome::default() };
        advance_canary(r, self.0, stable, wanted)
    }
}

/// Canary and stable replicas for a step of `weight` percent of `total`: at least one canary
/// pod, the total kept.
pub fn split(total: i32, weight: i32) -> (i32, i32) {
    if total <= 0 {
        return (0, 0);
    }
    let canary = ((f64::from(total) * f64::from(weight) / 100.0).round() as i32).clamp(1, total);
    (canary, total - canary)
}

/// A step as a decision names it: `weight 10%`, `requests with x-cohort=beta and weight 10%`.
fn describe(step: &CanaryStep) -> String {
    let weight = format!("weight {}%", step.weight);
    if step.headers.is_empty() {
        return weight;
    }
    let cohort: Vec<String> = step.headers.iter().map(|h| format!("{}={}", h.name, h.value)).collect();
    format!("requests with {} and {weight}", cohort.join(", "))
}

/// What the route carries at canary step `step`: that step's weight and cohort once its canary
/// pods are available, the step before's until then (nothing before the first).
/// Before the first step's pods are available after a shadow stage, the shadow's mirror stays.
fn step_traffic(
    steps: &[CanaryStep],
    step: usize,
    canary_available: bool,
    shadow: Option<&ShadowStage>,
) -> Option<Traffic> {
    let shown = if canary_available { Some(step) } else { step.checked_sub(1) };
    let Some(shown) = shown else {
        let percent = shadow?.percent;
        return Some(Traffic { candidate: Track::Canary, weight: 0, cohort: vec![], mirror: Some(percent) });
    };
    let s = steps.get(shown)?;
    Some(Traffic { candidate: Track::Canary, weight: s.weight, cohort: s.headers.clone(), mirror: None })
}

/// Moves the canary rollout of `wanted` (replacing `stable`) one step on, if it can.
fn advance_canary(r: &mut Rollout, strategy: &CanaryStrategy, stable: u32, wanted: u32) -> Outcome {
    let (model, deployments, readings, built) = (r.model, r.deployments, r.readings, r.desired);
    let ledger = &mut *r.ledger;
    let mut out = Outcome::rolling();
    let now = ledger.now();
    let name = model.name_any();
    let total = model.spec.serving.replicas;
    let observed = |track: Track| {
        let track_name = track.name(&name);
        deployments.iter().find(|d| is_named(d.as_ref(), &track_name))
    };
    let (Some(new), Some(old)) = (ledger.get(wanted).map(|e| e.version), ledger.get(stable).map(|e| e.version)) else {
        return out;
    };
    let progress = ledger.get(wanted).and_then(|e| e.status.canary.clone()).unwrap_or_default();
    let steps = &strategy.steps;
    let step = progress.step as usize;
    if let Some(shadow) = strategy.shadow.as_ref().filter(|_| step == 0 && !progress.shadow_passed) {
        let first = steps.first().map(describe).unwrap_or_default();
        let ctx = Shadowed { ledger, model, stable, wanted, steps: steps.len(), first, deployments, readings, built };
        return advance_shadow(ctx, shadow, progress);
    }

    if step >= steps.len() {
        // Promotion: the stable Deployment takes the new version, then the canary goes.
        let state = converge(built.deployment(model, new, Track::Stable, total), deployments, &mut out.apply);
        out.traffic = step_traffic(steps, steps.len().saturating_sub(1), true, None);
        if state == RolloutState::Complete {
            out.traffic = None;
            if observed(Track::Canary).is_some() {
                out.delete.push(Track::Canary.name(&name));
            }
            out.rolling_out = false;
            if let Some(e) = ledger.get_mut(wanted) {
                e.status_mut().canary = None;
            }
            let message =
                format!("after {} canary steps, Deployment {name} runs v{wanted} on every replica", steps.len());
            ledger.transition(wanted, Decision::new(Action::Serve, Reason::CanaryPromoted, message));
            ledger
                .transition(stable, Decision::new(Action::Retire, Reason::Replaced, format!("replaced by v{wanted}")));
            start_guard(ledger, model, wanted, stable);
        }
        return out;
    }

    let weight = steps[step].weight;
    let routed = gateway_routing(model).is_some();
    let (canary_n, stable_n) = if routed { routed_split(total, weight) } else { split(total, weight) };
    let effective = if routed {
        weight
    } else if total > 0 {
        canary_n * 100 / total
    } else {
        0
    };
    // The side that grows is applied first, so a crash between the two writes never leaves
    // fewer pods than `replicas` asked for (a new canary may start smaller than the one it
    // replaces, beside a stable side that has to grow back).
    let canary_shrinks = observed(Track::Canary).and_then(|d| d.spec.as_ref()?.replicas).is_some_and(|r| r > canary_n);
    let mut converge_track = |track: Track, version, replicas| {
        converge(built.deployment(model, version, track, replicas), deployments, &mut out.apply)
    };
    let (canary_state, stable_state) = if canary_shrinks {
        let stable_state = converge_track(Track::Stable, old, stable_n);
        (converge_track(Track::Canary, new, canary_n), stable_state)
    } else {
        let canary_state = converge_track(Track::Canary, new, canary_n);
        (canary_state, converge_track(Track::Stable, old, stable_n))
    };
    let mut progress =
        CanaryProgress { step: step as u32, canary_replicas: canary_n, effective_weight: effective, ..progress };
    if ledger.get(wanted).is_some_and(|e| e.phase() != VersionPhase::RollingOut) {
        let note = if effective != weight {
            format!(" ({canary_n} of {total} replicas: {effective}% effective, since replicas are whole pods)")
        } else {
            String::new()
        };
        let message =
            format!("canary step 1/{} of v{wanted} beside v{stable}: {}{note}", steps.len(), describe(&steps[0]));
        ledger.transition(wanted, Decision::new(Action::Promote, Reason::CanaryStarted, message));
    }
    out.traffic = step_traffic(steps, step, canary_state == RolloutState::Complete, strategy.shadow.as_ref());
    if let RolloutState::Failed(reason) = canary_state {
        let d = Decision {
            action: Action::RollBack,
            reason: Reason::ProgressDeadlineExceeded,
            message: format!(
                "the canary of v{wanted} did not become available at step {}/{} ({reason}); removed it, v{stable} takes all replicas again",
                step + 1,
                steps.len()
            ),
            evidence: Some(
                serde_json::json!({"deployment": Track::Canary.name(&name), "step": step + 1, "reason": "ProgressDeadlineExceeded", "message": reason}),
            ),
        };
        roll_back(&mut out, ledger, model, old, wanted, d);
        return out;
    }
    if canary_state == RolloutState::Complete && stable_state == RolloutState::Complete {
        let started = progress.step_started.as_ref().map_or(now, |t| t.0);
        progress.step_started = Some(Time(started));
        let pause = steps[step].pause.as_ref().map(|p| span(Some(p), SignedDuration::ZERO));
        let manual = is_manual(model) && pause.is_none();
        let at = format!("canary step {}/{}", step + 1, steps.len());
        match step_gate(
            ledger,
            model,
            readings,
            Step { n: wanted, baseline: stable, since: started, hold: pause, manual },
        ) {
            Gate::Open => {
                let next = step + 1;
                progress = CanaryProgress { step: next as u32, step_started: None, ..progress };
                let message = if next < steps.len() {
                    format!("canary step {}/{} of v{wanted}: {}", next + 1, steps.len(), describe(&steps[next]))
                } else {
                    format!("canary steps of v{wanted} done; promoting it to every replica")
                };
                ledger.push_decision(wanted, Decision::new(Action::Step, Reason::CanaryStepDone, message));
            }
            held => {
                let failed = |m: String| {
                    format!("v{wanted} at {at}: {m}; removed the canary, v{stable} takes all replicas again")
                };
                if settle(&mut out, ledger, (model, old, wanted), held, &format!("at {at}"), failed) {
                    return out;
                }
            }
        }
    }
    if let Some(e) = ledger.get_mut(wanted) {
        e.status_mut().canary = Some(progress);
    }
    out
}
