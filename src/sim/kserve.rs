//! The simulated KServe controller: what KServe (and Knative under it) does with an
//! InferenceService that modelcycle writes, as KServe 0.16's own code does it. In Knative mode a
//! change of the predictor (other than `canaryTrafficPercent`) creates a revision, which becomes
//! ready after the version's scripted rollout time (or fails after the progress deadline when
//! the version is scripted unhealthy); traffic goes `canaryTrafficPercent` to the newest ready
//! revision and the rest to the last one that took all of it. In Standard mode the change is a
//! Deployment rollout. Status is written after the change, never in the same instant, so the
//! controller sees KServe lag behind its writes as it does on a cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::kserve::{ComponentStatus, InferenceService, InferenceServiceStatus, KServeCondition, TrafficTarget};
use crate::lifecycle::triggers::after;
use crate::objects::inference_service::{PREDICTOR, written_percent, written_version};

use super::cluster::{Cluster, knative};
use super::kubelet::PROGRESS_DEADLINE;
use super::scenario::Scenario;

/// How long KServe takes to act on a change of the spec.
pub const KSERVE_LAG: SignedDuration = SignedDuration::from_secs(1);

/// When each InferenceService next changes by itself, by key.
fn due(cluster: &Cluster, scenario: &Scenario) -> Vec<(String, Timestamp)> {
    let mut due = vec![];
    for (k, isvc) in &cluster.inference_services {
        let Some(state) = cluster.kserve.get(k) else { continue };
        if let Some(changed) = state.changed {
            // KServe takes the change: a new revision or a new traffic split.
            due.push((k.clone(), after(changed, KSERVE_LAG)));
        }
        if let Some(created) = state.created.filter(|_| !state.pending)
            && !settled(isvc)
        {
            due.push((k.clone(), after(created, outcome(scenario, isvc).0)));
        }
    }
    due
}

/// How long the version the InferenceService holds takes to become ready, or to be reported
/// failed (after the progress deadline), as scripted; and whether it becomes ready.
fn outcome(scenario: &Scenario, isvc: &InferenceService) -> (SignedDuration, bool) {
    let script = scenario.script(written_version(isvc).unwrap_or(0));
    match script.healthy.unwrap_or(true) {
        true => (script.rollout_time.map_or(SignedDuration::ZERO, |d| d.0), true),
        false => (PROGRESS_DEADLINE, false),
    }
}

/// The newest revision is ready or has failed (or, in Standard mode, the rollout is over).
fn settled(isvc: &InferenceService) -> bool {
    let Some(status) = isvc.status.as_ref() else { return false };
    let failed = status.conditions.iter().any(|c| c.type_ == "PredictorConfigurationReady" && c.status == "False");
    let p = status.components.get(PREDICTOR);
    failed
        || p.is_some_and(|p| {
            p.latest_created_revision.is_some() && p.latest_created_revision == p.latest_ready_revision
        })
}

/// The next time the simulated KServe changes anything.
pub fn next_event(cluster: &Cluster, scenario: &Scenario) -> Option<Timestamp> {
    due(cluster, scenario).into_iter().map(|(_, t)| t).min()
}

/// Does what KServe does by `cluster.now`.
pub fn advance(cluster: &mut Cluster, scenario: &Scenario) {
    let now = cluster.now;
    for (k, at) in due(cluster, scenario) {
        if at > now {
            continue;
        }
        let (Some(state), Some(isvc)) =
            (cluster.kserve.get_mut(&k), cluster.inference_services.get_mut(&k).map(Arc::make_mut))
        else {
            continue;
        };
        let name = isvc.name_any();
        let knative = knative(isvc);
        if state.changed.take().is_some() && std::mem::take(&mut state.pending) {
            // KServe takes the change: a new revision (or Deployment rollout) starts.
            state.created = Some(now);
            state.revisions += 1;
            let status = isvc.status.get_or_insert_with(InferenceServiceStatus::default);
            let p = status.components.entry(PREDICTOR.to_string()).or_default();
            p.latest_created_revision = Some(format!("{name}-predictor-{:05}", state.revisions));
            set(status, "PredictorConfigurationReady", "Unknown", None);
            if !knative {
                set(status, "PredictorReady", "Unknown", None);
            }
        } else if !settled(isvc) {
            let (took, healthy) = outcome(scenario, isvc);
            if state.created.is_some_and(|c| after(c, took) <= now) {
                let status = isvc.status.get_or_insert_with(InferenceServiceStatus::default);
                if healthy {
                    let p = status.components.entry(PREDICTOR.to_string()).or_default();
                    p.latest_ready_revision = p.latest_created_revision.clone();
                    set(status, "PredictorConfigurationReady", "True", None);
                    set(status, "PredictorReady", "True", None);
                } else {
                    let message = "Revision failed with message: the container never became ready (scripted)";
                    set(status, "PredictorConfigurationReady", "False", Some(("RevisionFailed", message)));
                }
            }
        }
        if knative {
            route(isvc);
        }
        let generation = isvc.metadata.generation;
        let status = isvc.status.get_or_insert_with(InferenceServiceStatus::default);
        // Its child observed the change (a Knative Service, or KServe's Deployment).
        status.observed_generation = generation;
        let ready = status.conditions.iter().any(|c| c.type_ == "PredictorReady" && c.status == "True");
        set(status, "Ready", if ready { "True" } else { "Unknown" }, None);
    }
}

/// KServe's traffic split and its record of the last revision that took every request.
fn route(isvc: &mut InferenceService) {
    let percent = written_percent(isvc);
    let Some(status) = isvc.status.as_mut() else { return };
    let p: &mut ComponentStatus = status.components.entry(PREDICTOR.to_string()).or_default();
    let Some(latest) = p.latest_ready_revision.clone() else { return };
    let target = |revision: &str, percent: i64, latest: bool| TrafficTarget {
        revision_name: Some(revision.to_string()),
        percent: Some(percent),
        latest_revision: Some(latest),
        tag: None,
    };
    let rolled_out = p.latest_rolledout_revision.clone().filter(|r| !r.is_empty());
    p.traffic = match (percent, rolled_out) {
        (Some(c), Some(stable)) if c < 100 => vec![target(&latest, c, true), target(&stable, 100 - c, false)],
        (Some(c), Some(_)) => vec![target(&latest, c, true)],
        _ => vec![target(&latest, 100, true)],
    };
    if p.traffic.first().and_then(|t| t.percent) == Some(100) && p.latest_rolledout_revision.as_ref() != Some(&latest) {
        p.previous_rolledout_revision = p.latest_rolledout_revision.take();
        p.latest_rolledout_revision = Some(latest);
    }
}

fn set(status: &mut InferenceServiceStatus, type_: &str, value: &str, why: Option<(&str, &str)>) {
    let condition = KServeCondition {
        type_: type_.into(),
        status: value.into(),
        reason: why.map(|w| w.0.to_string()),
        message: why.map(|w| w.1.to_string()),
        rest: BTreeMap::new(),
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => status.conditions.push(condition),
    }
}
