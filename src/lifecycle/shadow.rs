//! The shadow stage of a canary, before its first step: the new version runs in
//! `<model>-canary` with pods for its share of mirrored requests, the Model's route copies that
//! share of requests to it (Gateway API's `RequestMirror`; its answers are discarded), and
//! analysis judges it for `duration`. It passes into the canary's first step, or fails and is
//! rolled back — before any user saw one of its answers.

use std::sync::Arc;

use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{CanaryProgress, Model, ShadowStage, VersionPhase};
use crate::objects::deployment::Track;
use crate::objects::desired::DesiredObjects;
use crate::objects::route::Traffic;

use super::analysis::{Gate, Step, step_gate};
use super::ledger::{Decision, Ledger};
use super::rollout::{Outcome, RolloutState, converge, roll_back, routed_split, settle};
use super::transitions::{Action, Reason};
use super::triggers::{Readings, span};

/// What the shadow stage of `wanted` (replacing `stable`) reads and changes.
pub struct Shadowed<'r, 'a> {
    /// The versions.
    pub ledger: &'r mut Ledger<'a>,
    /// The Model.
    pub model: &'r Model,
    /// The serving version.
    pub stable: u32,
    /// The version in its shadow stage.
    pub wanted: u32,
    /// How many canary steps follow.
    pub steps: usize,
    /// The first of them, as a decision names it.
    pub first: String,
    /// The Model's Deployments.
    pub deployments: &'r [Arc<Deployment>],
    /// Live readings.
    pub readings: &'r Readings,
    /// Where its desired Deployments come from.
    pub built: DesiredObjects<'r>,
}

/// One reconcile of the shadow stage.
pub fn advance_shadow(ctx: Shadowed, shadow: &ShadowStage, progress: CanaryProgress) -> Outcome {
    let Shadowed { ledger, model, stable, wanted, steps, first, deployments, readings, built } = ctx;
    let mut out = Outcome::rolling();
    let (Some(new), Some(old)) = (ledger.get(wanted).map(|e| e.version), ledger.get(stable).map(|e| e.version)) else {
        return out;
    };
    let total = model.spec.serving.replicas;
    let (canary_n, stable_n) = routed_split(total, shadow.percent);
    let canary_state = converge(built.deployment(model, new, Track::Canary, canary_n), deployments, &mut out.apply);
    let stable_state = converge(built.deployment(model, old, Track::Stable, stable_n), deployments, &mut out.apply);
    let percent = shadow.percent;
    if ledger.get(wanted).is_some_and(|e| e.phase() != VersionPhase::RollingOut) {
        let message = format!(
            "shadow of v{wanted} beside v{stable}: a copy of {percent}% of requests goes to it and its answers are discarded, for {:#} once its pods are available; then {steps} canary steps",
            span(Some(&shadow.duration), SignedDuration::ZERO)
        );
        ledger.transition(wanted, Decision::new(Action::Promote, Reason::CanaryStarted, message));
    }
    let mut progress = CanaryProgress { step: 0, canary_replicas: canary_n, effective_weight: 0, ..progress };
    if let RolloutState::Failed(reason) = canary_state {
        let d = Decision {
            action: Action::RollBack,
            reason: Reason::ProgressDeadlineExceeded,
            message: format!(
                "the shadow of v{wanted} did not become available ({reason}); removed it, no request was ever answered by it"
            ),
            evidence: Some(
                serde_json::json!({"deployment": Track::Canary.name(&model.metadata.name.clone().unwrap_or_default()), "stage": "shadow", "reason": "ProgressDeadlineExceeded", "message": reason}),
            ),
        };
        roll_back(&mut out, ledger, model, old, wanted, d);
        return out;
    }
    if canary_state == RolloutState::Complete {
        out.traffic = Some(Traffic { candidate: Track::Canary, weight: 0, cohort: vec![], mirror: Some(percent) });
    }
    if canary_state == RolloutState::Complete && stable_state == RolloutState::Complete {
        let now = ledger.now();
        let started = progress.step_started.as_ref().map_or(now, |t| t.0);
        progress.step_started = Some(Time(started));
        let hold = Some(span(Some(&shadow.duration), SignedDuration::ZERO));
        match step_gate(
            ledger,
            model,
            readings,
            Step { n: wanted, baseline: stable, since: started, hold, manual: false },
        ) {
            Gate::Open => {
                progress = CanaryProgress { shadow_passed: true, step_started: None, ..progress };
                let message = format!("shadow of v{wanted} passed; canary step 1/{steps}: {first}");
                ledger.push_decision(wanted, Decision::new(Action::Step, Reason::ShadowPassed, message));
            }
            held => {
                let failed = |m: String| {
                    format!(
                        "v{wanted} in its shadow stage: {m}; removed it before any request was shifted to it, v{stable} answered every request"
                    )
                };
                if settle(&mut out, ledger, (model, old, wanted), held, "in its shadow stage", failed) {
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
