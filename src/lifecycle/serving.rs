//! Serving: which version should serve, the strategy that moves traffic to it, and the
//! Deployments and Services left to match. Rollbacks that a person (the abort annotation) or the
//! guard window asks for come first; then the wanted version is decided once and its strategy
//! takes one step.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::model::Observed;
use crate::api::gateway::HttpRoute;
use crate::api::{Model, VersionPhase};
use crate::objects::deployment::{Track, same_spec};
use crate::objects::desired::DesiredObjects;
use crate::objects::meta::{is_named, same_name};
use crate::objects::names::serving_name;
use crate::objects::route::{Traffic, backend_name, backend_services, desired_route, gateway_routing, route_current};
use crate::objects::service::preview_service;

use super::analysis::{ABORT_ANNOTATION, Guard, abort_requested, end_guard, guard};
use super::blue_green::{BlueGreen, HandOff, preview_needed, preview_serves};
use super::canary::Canary;
use super::kserve::KServe;
use super::ledger::{Decision, Ledger};
use super::rolling::{Rolling, progressive, within_rollback_window};
use super::rollout::{Outcome, Rollout, Strategy};
use super::transitions::{Action, Reason};
use super::triggers::Readings;
use super::validate::Problem;
use crate::objects::inference_service::kserve_serving;

/// What serving decided.
#[derive(Default)]
pub struct ServingSteps {
    /// What the strategy decided: Deployments to apply and delete, when to wake, and where
    /// the rollout is.
    pub rollout: Outcome,
    /// Services to apply, when missing or their spec must change.
    pub services: Vec<Service>,
    /// Services to delete (a preview Service no longer needed).
    pub delete_services: Vec<String>,
    /// The version that should serve.
    pub wanted: Option<u32>,
    /// `spec.pinnedVersion` cannot be served.
    pub pin_problem: Option<Problem>,
    /// The Model's `HTTPRoute` to apply, when missing or its weights must change.
    pub route: Option<HttpRoute>,
    /// Its route to delete (Gateway API routing was removed from the spec).
    pub delete_route: Option<String>,
    /// Its InferenceService to delete (the Model moved from target KServe to Deployments).
    pub delete_inference_service: Option<String>,
}

/// Decides which version serves and moves the serving objects towards it.
pub fn advance_serving(ledger: &mut Ledger, observed: Observed) -> ServingSteps {
    let Observed { model, deployments, services, readings, desired, .. } = observed;
    let routes = observed.routes.unwrap_or_default();
    let inference_services = observed.inference_services.unwrap_or_default();
    let mut steps = ServingSteps::default();
    rollbacks(ledger, model, readings, &mut steps);
    let (wanted, pin_problem) = wanted_version(ledger, model);
    steps.pin_problem = pin_problem.or(steps.pin_problem.take());
    steps.wanted = wanted;
    if let Some(w) = wanted {
        supersede_other_rollouts(ledger, w);
        let serving = ledger.serving();
        if let Some(s) = serving.filter(|s| *s != w) {
            end_guard(ledger, s, w);
        }
        let mut rollout = Rollout { ledger, model, deployments, readings, inference_services, desired };
        let outcome = strategy_for(model, rollout.ledger, serving, w).advance(&mut rollout, serving, w);
        let guard_wake = steps.rollout.requeue_after;
        steps.rollout = outcome;
        steps.rollout.wake(guard_wake);
        if ledger.get(w).is_some_and(|e| e.phase() == VersionPhase::RolledBack) {
            // Rolled back by its strategy: the serving version stays wanted.
            steps.wanted = ledger.serving();
        }
    }
    remove_leftovers(ledger, model, deployments, &mut steps);
    let name = serving_name(&model.name_any());
    let own_objects = kserve_serving(model).is_none();
    if own_objects && (steps.wanted.is_some() || deployments.iter().any(|d| is_named(d.as_ref(), &name))) {
        match_services(ledger, model, services, desired, &mut steps);
        match_route(ledger, model, routes, &mut steps);
    }
    let settled = steps.wanted.is_some() && steps.wanted == ledger.serving() && !steps.rollout.rolling_out;
    if settled && steps.rollout.apply.is_empty() && steps.rollout.inference_service.is_none() {
        if own_objects {
            steps.delete_inference_service = inference_services.first().map(|i| i.name_any());
        } else {
            remove_other_target(deployments, services, routes, &mut steps);
        }
    }
    steps
}

/// A Model that moved to another target keeps its old target's objects until the new one serves
/// the serving version fully; then they go: the Deployments, Services and route once KServe
/// serves it (and the InferenceService once its Deployment does, above).
fn remove_other_target(
    deployments: &[Arc<Deployment>],
    services: &[Arc<Service>],
    routes: &[Arc<HttpRoute>],
    steps: &mut ServingSteps,
) {
    for d in deployments.iter().map(|d| d.name_any()) {
        if !steps.rollout.delete.contains(&d) {
            steps.rollout.delete.push(d);
        }
    }
    for s in services.iter().map(|s| s.name_any()) {
        if !steps.delete_services.contains(&s) {
            steps.delete_services.push(s);
        }
    }
    steps.delete_route = routes.first().map(|r| r.name_any()).or(steps.delete_route.take());
}

/// The Model's `HTTPRoute`: the weights its strategy decided (a blue-green switch sends every
/// request to the preview), written only when they change; deleted when routing is removed.
fn match_route(ledger: &Ledger, model: &Model, routes: &[Arc<HttpRoute>], steps: &mut ServingSteps) {
    let name = serving_name(&model.name_any());
    let observed = routes.iter().find(|r| is_named(r.as_ref(), &name)).map(AsRef::as_ref);
    if gateway_routing(model).is_none() {
        steps.delete_route = observed.map(|_| name);
        return;
    }
    let traffic =
        steps.rollout.traffic.clone().or_else(|| preview_serves(ledger).then(|| Traffic::all_to(Track::Preview)));
    let Some(desired) = desired_route(model, traffic.as_ref(), observed) else { return };
    if !observed.is_some_and(|o| route_current(o, &desired)) {
        steps.route = Some(desired);
    }
}

/// The strategy that takes the next step towards `wanted`: the Model's own for a rollout that
/// replaces a serving version, the blue-green hand-off while a preview serves, else Rolling
/// (a first version, a pinned one, keeping the serving one served).
fn strategy_for<'m>(model: &'m Model, ledger: &Ledger, serving: Option<u32>, wanted: u32) -> Box<dyn Strategy + 'm> {
    let strategy = &model.spec.serving.strategy;
    if let Some(kserve) = kserve_serving(model) {
        let canary = strategy.canary.as_ref().filter(|_| progressive(model, ledger, serving, wanted));
        return Box::new(KServe { serving: kserve, canary });
    }
    if progressive(model, ledger, serving, wanted) {
        if let Some(canary) = &strategy.canary {
            return Box::new(Canary(canary));
        }
        if let Some(blue_green) = &strategy.blue_green {
            return Box::new(BlueGreen(blue_green));
        }
    }
    if serving == Some(wanted) && preview_serves(ledger) {
        return Box::new(HandOff(strategy.blue_green.as_ref()));
    }
    Box::new(Rolling)
}

/// The rollbacks that change what is wanted, before it is decided: two versions left Serving by
/// an interrupted promotion, the abort annotation, and the serving version's guard window.
fn rollbacks(ledger: &mut Ledger, model: &Model, readings: &Readings, steps: &mut ServingSteps) {
    let Some(w) = wanted_version(ledger, model).0 else { return };
    // A promotion a restart interrupted can leave two versions Serving: the one to keep is the
    // wanted one when it is among them (a pin can want the older), else the newest.
    let keep = ledger.get(w).filter(|e| e.phase() == VersionPhase::Serving).map(|e| e.number());
    retire_other_serving(ledger, keep.or(ledger.serving()));
    let serving = ledger.serving();
    if serving != Some(w) && model.spec.pinned_version != Some(w) && abort_requested(model, w) {
        let serves = serving.map_or("nothing".into(), |s| format!("v{s}"));
        let d = Decision::new(
            Action::RollBack,
            Reason::Aborted,
            format!("aborted by the annotation {ABORT_ANNOTATION}: \"{w}\"; {serves} keeps serving"),
        )
        .with_evidence(serde_json::json!({"annotation": ABORT_ANNOTATION, "value": w.to_string()}));
        ledger.transition(w, d);
    }
    if let Some(s) = serving.filter(|s| Some(*s) == wanted_version(ledger, model).0)
        && model.spec.pinned_version != Some(s)
        && abort_requested(model, s)
    {
        emergency_rollback(ledger, model, s, steps);
        if ledger.serving() != Some(s) {
            return;
        }
    }
    if serving.is_some() && wanted_version(ledger, model).0 == serving {
        let Some(s) = serving else { return };
        match guard(ledger, model, readings, s) {
            Guard::Watching(wake) => steps.rollout.wake(wake.and_then(|t| ledger.until(t))),
            Guard::RollBack(back_to, message, evidence) => {
                let restored = format!("serves again: v{s} failed its guard window");
                ledger.transition(back_to, Decision::new(Action::Restore, Reason::GuardRollBack, restored));
                let d = Decision::new(Action::RollBack, Reason::GuardFailed, message).with_evidence(evidence);
                ledger.transition(s, d);
            }
        }
    }
}

/// The abort annotation names the serving version `s`: the version it replaced serves again at
/// once (in place, without steps or analysis) if it stopped serving within `rollbackWindow`;
/// otherwise nothing changes and the Model says why.
fn emergency_rollback(ledger: &mut Ledger, model: &Model, s: u32, steps: &mut ServingSteps) {
    let back_to = ledger.in_phase(VersionPhase::Retired).map(|e| e.number()).filter(|n| *n < s).last();
    match back_to {
        Some(b) if within_rollback_window(ledger, model, b) => {
            let restored = format!("serves again at once: v{s} was aborted by the annotation {ABORT_ANNOTATION}");
            ledger.transition(b, Decision::new(Action::Restore, Reason::EmergencyRollBack, restored));
            let message = format!(
                "aborted by the annotation {ABORT_ANNOTATION}: \"{s}\" while serving; v{b} serves again at once, without steps or analysis"
            );
            let evidence = serde_json::json!({"annotation": ABORT_ANNOTATION, "value": s.to_string(), "restored": b});
            ledger.transition(s, Decision::new(Action::RollBack, Reason::Aborted, message).with_evidence(evidence));
        }
        found => {
            let why = match found {
                Some(b) => format!("v{b}, the version before it, stopped serving longer ago than rollbackWindow"),
                None => "no version before it is kept".to_string(),
            };
            steps.pin_problem = Some(Problem::new(
                "NothingToRollBackTo",
                format!(
                    "{ABORT_ANNOTATION}: \"{s}\" asks to roll back the serving version, but {why}; v{s} keeps serving. Pin a version with spec.pinnedVersion, or remove the annotation"
                ),
            ));
        }
    }
}

/// A canary or preview left behind by a rollout that no longer is one (rolled back, its
/// strategy removed, its version pinned away from) goes once nothing needs it.
fn remove_leftovers(ledger: &Ledger, model: &Model, deployments: &[Arc<Deployment>], steps: &mut ServingSteps) {
    let model_name = model.name_any();
    let in_canary = ledger.entries.iter().any(|e| e.status.canary.is_some() && e.phase() == VersionPhase::RollingOut);
    let leftovers = [(Track::Canary, in_canary), (Track::Preview, preview_needed(ledger))];
    for (track, needed) in leftovers {
        let left = track.name(&model_name);
        if !needed && deployments.iter().any(|d| is_named(d.as_ref(), &left)) && !steps.rollout.delete.contains(&left) {
            steps.rollout.delete.push(left);
        }
    }
}

/// The Services that select the serving pods (and a blue-green preview), applied when missing
/// or different, and a preview Service no longer needed deleted.
fn match_services(
    ledger: &Ledger,
    model: &Model,
    services: &[Arc<Service>],
    built: DesiredObjects,
    steps: &mut ServingSteps,
) {
    let strategy = &model.spec.serving.strategy;
    let active =
        strategy.blue_green.as_ref().map(|_| if preview_serves(ledger) { Track::Preview } else { Track::Stable });
    let mut desired: Vec<Arc<Service>> = built.serving_service(model, active).into_iter().collect();
    let routed = gateway_routing(model).is_some();
    if routed {
        // The route's backends, one per track, kept while the Model is routed.
        desired.extend(backend_services(model).into_iter().map(Arc::new));
    }
    let wants_preview =
        !routed && strategy.blue_green.as_ref().is_some_and(|bg| bg.preview_service) && preview_needed(ledger);
    if wants_preview {
        desired.extend(preview_service(model).map(Arc::new));
    }
    let name = model.name_any();
    let leftovers = [Track::Preview, Track::Stable, Track::Canary].map(|t| backend_name(&name, t));
    for left in leftovers {
        let observed = services.iter().any(|s| is_named(s.as_ref(), &left));
        if observed && !desired.iter().any(|d| is_named(d.as_ref(), &left)) && !steps.delete_services.contains(&left) {
            steps.delete_services.push(left);
        }
    }
    steps.services = desired
        .into_iter()
        .filter(|d| !services.iter().any(|s| same_name(d.as_ref(), s.as_ref()) && same_spec(s.as_ref(), d.as_ref())))
        .map(Arc::unwrap_or_clone)
        .collect();
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
