//! The KServe target: versions serve from one InferenceService `<model>`, whose predictor's
//! `storageUri` is the version's artifact. KServe (Knative mode) makes each version a revision
//! and splits requests by `canaryTrafficPercent` between the newest revision and the last one
//! that took all of them; modelcycle sets that percent step by step, judges each step with the
//! same analysis as a Deployment canary, promotes by removing it, and rolls back by writing the
//! serving version again with `canaryTrafficPercent: 0` (every request goes back to its
//! revision at once) until its new revision is ready. In Standard mode a new version replaces
//! the pods by KServe's rolling update, without a canary.

use std::sync::Arc;

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::kserve::{InferenceService, KServeMode, KServeServing};
use crate::api::{CanaryProgress, CanaryStrategy, Model, VersionPhase};
use crate::objects::deployment::same_spec;
use crate::objects::inference_service::{
    KServeState, desired_inference_service, kserve_state, revision_created, written_now, written_percent,
    written_version,
};
use crate::objects::meta::is_named;
use crate::objects::names::serving_name;

use super::analysis::{Gate, Guard, Step, guard, is_manual, manual_gate, start_guard, step_gate};
use super::ledger::{Decision, Ledger};
use super::rollout::{Outcome, Rollout, Strategy, hold};
use super::transitions::{Action, Reason};
use super::triggers::span;

/// The KServe target of a Model, with its canary when this rollout is progressive.
pub struct KServe<'s> {
    /// What the Model asks of KServe.
    pub serving: &'s KServeServing,
    /// The canary steps, for a rollout that replaces a serving version.
    pub canary: Option<&'s CanaryStrategy>,
}

impl Strategy for KServe<'_> {
    fn advance(&self, r: &mut Rollout, serving: Option<u32>, wanted: u32) -> Outcome {
        let name = serving_name(&r.model.name_any());
        let observed = r.inference_services.iter().map(AsRef::as_ref).find(|i| is_named(*i, &name));
        let mut target = Target { ledger: r.ledger, model: r.model, observed, mode: self.serving.deployment_mode };
        match (serving, self.canary) {
            (Some(s), _) if s == wanted => target.keep(s),
            (Some(s), Some(canary)) => target.canary(canary, s, wanted, r.readings),
            _ => target.replace(serving, wanted, r.readings),
        }
    }
}

/// One reconcile's view of the InferenceService and the versions it serves.
struct Target<'r, 'a> {
    ledger: &'r mut Ledger<'a>,
    model: &'r Model,
    observed: Option<&'r InferenceService>,
    mode: KServeMode,
}

impl Target<'_, '_> {
    /// Where KServe is with version `n`: Progressing unless the InferenceService holds it. The
    /// revision KServe created for it is recorded once seen.
    fn state(&mut self, n: u32) -> KServeState {
        let Some(o) = self.observed.filter(|o| written_version(o) == Some(n)) else { return KServeState::Progressing };
        let mut record = self.ledger.get(n).and_then(|e| e.status.kserve.clone()).unwrap_or_default();
        if record.revision.is_none() {
            record.revision = revision_created(o, &record);
        }
        if let Some(e) = self.ledger.get_mut(n)
            && e.status.kserve.as_ref() != Some(&record)
        {
            e.status_mut().kserve = Some(record.clone());
        }
        kserve_state(o, &record, self.mode)
    }

    /// Puts version `n` in the InferenceService with `percent` of requests, queued in `out` when
    /// what is there differs. A version written now (or again, after another) records the
    /// revision it comes after, so that its own is told apart.
    fn put(&mut self, out: &mut Outcome, n: u32, percent: Option<i32>) {
        let Some(desired) = self.ledger.get(n).and_then(|e| desired_inference_service(self.model, e.version, percent))
        else {
            return;
        };
        if self.observed.is_none_or(|o| written_version(o) != Some(n))
            && let Some(e) = self.ledger.get_mut(n)
        {
            e.status_mut().kserve = Some(written_now(self.observed));
        }
        if !self.observed.is_some_and(|o| same_spec(o, &desired)) {
            out.inference_service = Some(desired);
        }
    }

    /// Keeps the serving version `s` served. After a rollback its InferenceService holds
    /// `canaryTrafficPercent: 0` (every request on its old revision) until its new revision is
    /// ready; then the percent goes and the new revision takes every request.
    fn keep(&mut self, s: u32) -> Outcome {
        let mut out = Outcome::default();
        let state = self.state(s);
        let pinned = self.observed.is_some_and(|o| written_percent(o).is_some());
        let ready = matches!(state, KServeState::Serving { .. });
        self.put(&mut out, s, (pinned && !ready).then_some(0));
        match state {
            KServeState::Serving { percent: 100 } => {}
            KServeState::Failed(reason) => out.unhealthy = Some(reason),
            _ => out.rolling_out = true,
        }
        out
    }

    /// Replaces `serving` by `wanted` in one go (a first version, Standard mode, a pin): KServe
    /// moves every request to the new revision once it is ready.
    fn replace(&mut self, serving: Option<u32>, w: u32, readings: &super::triggers::Readings) -> Outcome {
        let mut out = Outcome::default();
        let replaces = serving.is_some_and(|s| s != w);
        let started = self.observed.is_some_and(|o| written_version(o) == Some(w));
        if replaces
            && !started
            && self.model.spec.pinned_version != Some(w)
            && is_manual(self.model)
            && let Gate::Paused(reason, message, _) = manual_gate(self.model, w)
        {
            out.rolling_out = true;
            out.paused = Some((reason, message));
            return out;
        }
        let name = serving_name(&self.model.name_any());
        let state = self.state(w);
        self.put(&mut out, w, None);
        match state {
            KServeState::Serving { percent: 100 } => {
                let message = format!("InferenceService {name} sends every request to v{w}");
                self.ledger.transition(w, Decision::new(Action::Serve, Reason::RolloutComplete, message));
                if let Some(previous) = serving {
                    let message = format!("replaced by v{w}");
                    self.ledger.transition(previous, Decision::new(Action::Retire, Reason::Replaced, message));
                    start_guard(self.ledger, self.model, w, previous);
                    if let Guard::Watching(wake) = guard(self.ledger, self.model, readings, w) {
                        out.wake(wake.and_then(|t| self.ledger.until(t)));
                    }
                }
            }
            KServeState::Failed(reason) => {
                let back = serving.map_or("nothing served before".to_string(), |s| format!("v{s} serves again"));
                let message = format!("KServe could not make v{w} ready in InferenceService {name} ({reason}); {back}");
                self.roll_back(&mut out, serving, w, failed(message, &name, &reason));
            }
            _ => {
                out.rolling_out = true;
                let from = serving.map_or("nothing".to_string(), |s| format!("v{s}"));
                let message = format!("InferenceService {name} is rolling out v{w} in place of {from}");
                let reason =
                    if self.model.spec.pinned_version == Some(w) { Reason::Pinned } else { Reason::NewerVersionReady };
                self.ledger.transition(w, Decision::new(Action::Promote, reason, message));
            }
        }
        out
    }

    /// A canary through `canaryTrafficPercent`: each step's percent once the new revision is
    /// ready, judged by the steps' analysis; then the percent goes and the new version takes
    /// every request.
    fn canary(&mut self, strategy: &CanaryStrategy, s: u32, w: u32, readings: &super::triggers::Readings) -> Outcome {
        let mut out = Outcome::rolling();
        let name = serving_name(&self.model.name_any());
        let steps = &strategy.steps;
        let progress = self.ledger.get(w).and_then(|e| e.status.canary.clone()).unwrap_or_default();
        let step = progress.step as usize;
        if step >= steps.len() {
            let state = self.state(w);
            self.put(&mut out, w, None);
            if state == (KServeState::Serving { percent: 100 }) {
                out.rolling_out = false;
                if let Some(e) = self.ledger.get_mut(w) {
                    e.status_mut().canary = None;
                }
                let message =
                    format!("after {} canary steps, InferenceService {name} sends every request to v{w}", steps.len());
                self.ledger.transition(w, Decision::new(Action::Serve, Reason::CanaryPromoted, message));
                let retired = Decision::new(Action::Retire, Reason::Replaced, format!("replaced by v{w}"));
                self.ledger.transition(s, retired);
                start_guard(self.ledger, self.model, w, s);
            }
            return out;
        }
        let weight = steps[step].weight;
        if self.ledger.get(w).is_some_and(|e| e.phase() != VersionPhase::RollingOut) {
            let message = format!(
                "canary step 1/{} of v{w} beside v{s}: canaryTrafficPercent {weight} on InferenceService {name}",
                steps.len()
            );
            self.ledger.transition(w, Decision::new(Action::Promote, Reason::CanaryStarted, message));
        }
        let state = self.state(w);
        self.put(&mut out, w, Some(weight));
        let mut progress =
            CanaryProgress { step: step as u32, canary_replicas: 0, effective_weight: weight, ..progress };
        match state {
            KServeState::Failed(reason) => {
                let message = format!(
                    "KServe could not make the canary of v{w} ready at step {}/{} ({reason}); v{s} takes every request again",
                    step + 1,
                    steps.len()
                );
                self.roll_back(&mut out, Some(s), w, failed(message, &name, &reason));
                return out;
            }
            KServeState::Serving { percent } if percent == i64::from(weight) => {
                let started = progress.step_started.as_ref().map_or(self.ledger.now(), |t| t.0);
                progress.step_started = Some(Time(started));
                let pause = steps[step].pause.as_ref().map(|p| span(Some(p), SignedDuration::ZERO));
                let manual = is_manual(self.model) && pause.is_none();
                let at = format!("canary step {}/{}", step + 1, steps.len());
                let gate = step_gate(
                    self.ledger,
                    self.model,
                    readings,
                    Step { n: w, baseline: s, since: started, hold: pause, manual },
                );
                match gate {
                    Gate::Open => {
                        let next = step + 1;
                        progress = CanaryProgress { step: next as u32, step_started: None, ..progress };
                        let message = match steps.get(next) {
                            Some(n) => format!(
                                "canary step {}/{} of v{w}: canaryTrafficPercent {}",
                                next + 1,
                                steps.len(),
                                n.weight
                            ),
                            None => format!("canary steps of v{w} done; promoting it to every request"),
                        };
                        self.ledger.push_decision(w, Decision::new(Action::Step, Reason::CanaryStepDone, message));
                    }
                    held => {
                        let failed = |m: String| format!("v{w} at {at}: {m}; v{s} takes every request again");
                        if let Some(d) = hold(&mut out, self.ledger, held, &format!("at {at}"), failed) {
                            self.roll_back(&mut out, Some(s), w, d);
                            return out;
                        }
                    }
                }
            }
            // KServe is creating the revision or moving the traffic.
            _ => {}
        }
        if let Some(e) = self.ledger.get_mut(w) {
            e.status_mut().canary = Some(progress);
        }
        out
    }

    /// Rolls `w` back: the serving version `s` is written again with `canaryTrafficPercent: 0`,
    /// which sends every request back to its last revision at once (Knative mode), until its new
    /// revision is ready and `keep` lets it take them.
    fn roll_back(&mut self, out: &mut Outcome, serving: Option<u32>, w: u32, d: Decision) {
        out.inference_service = None;
        out.rolling_out = false;
        out.requeue_after = None;
        if let Some(s) = serving {
            let percent = (self.mode == KServeMode::Knative).then_some(0);
            self.put(out, s, percent);
        }
        self.ledger.transition(w, d);
    }
}

/// The decision that rolls a version back because KServe could not make it ready.
fn failed(message: String, isvc: &str, reason: &str) -> Decision {
    Decision::new(Action::RollBack, Reason::RevisionFailed, message)
        .with_evidence(serde_json::json!({"inferenceService": isvc, "message": reason}))
}

/// The observed InferenceServices a Model's reconcile passes on.
pub type InferenceServices<'a> = &'a [Arc<InferenceService>];
