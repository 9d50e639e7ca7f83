//! Publishing to an MLflow registry, in the simulator: each version that passed its gates is
//! registered once with its lineage and verdicts; `challenger` follows the rollout, `champion`
//! the serving version and moves back on a rollback; an MLflow outage never holds a rollout up,
//! is shown in `RegistrySynced` and one Warning Event, and is caught up after.

use jiff::SignedDuration;
use modelcycle::api::VersionPhase;
use modelcycle::lifecycle::registry;
use modelcycle::sim::Simulation;

use crate::sim_support;
use sim_support::{dataset_change, model_status, phase, simulate};

const REGISTRY: &str = "  registry:\n    mlflow: {trackingUri: \"http://mlflow.mlops:5000/\", name: churn-model}\n";

/// v1; new data on day 1 trains v2 (while MLflow is down from 1d to 1d 2h); new data on day 2
/// trains v3, whose pods never become ready: it is rolled back.
fn scenario() -> String {
    format!(
        "start: \"2026-01-01T00:00:00Z\"\nduration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions:\n  3: {{healthy: false}}\nmlflowDown: [{{from: 1d, to: 1d 2h}}]\nchanges:\n{}{}",
        dataset_change("1d", "d2"),
        dataset_change("2d", "d3")
    )
}

fn condition(sim: &Simulation) -> (String, String, String) {
    model_status(sim)
        .conditions
        .iter()
        .find(|c| c.type_ == registry::REGISTRY_SYNCED)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

#[test]
fn versions_are_registered_once_and_the_aliases_follow_rollout_and_rollback() {
    let mut sim = simulate(REGISTRY, &scenario());
    let start = sim.cluster.now;
    let mut challengers = std::collections::BTreeSet::new();
    let mut while_down = None;
    // Every simulated minute: what the registry says, and how the Model reports it.
    for minute in 1..=(3 * 24 * 60) {
        sim.run_until(start + SignedDuration::from_mins(minute));
        if let Some(model) = sim.mlflow.model("churn-model")
            && let Some(v) = model.alias_version(registry::CHALLENGER)
        {
            challengers.insert(v);
            assert_eq!(phase(&sim, v), Some(VersionPhase::RollingOut), "challenger v{v} is not rolling out");
        }
        if minute == 24 * 60 + 90 {
            while_down = Some((condition(&sim), phase(&sim, 2)));
        }
    }
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);

    // The outage: the rollout went on, the condition said why.
    let ((status, reason, message), v2) = while_down.expect("sampled");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "RegistryUnavailable"), "{message}");
    assert!(message.contains("connection refused") && message.contains("http://mlflow.mlops:5000"), "{message}");
    assert_eq!(v2, Some(VersionPhase::Serving), "MLflow being down held v2's rollout up");
    let warnings: Vec<_> = sim.timeline.iter().filter(|e| e.reason == "RegistryUnavailable").collect();
    assert_eq!(warnings.len(), 1, "one Warning for the whole outage, not one per retry: {warnings:?}");
    assert!(warnings[0].warning);
    let recovered: Vec<_> = sim.timeline.iter().filter(|e| e.reason == "RegistrySynced").collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let back = recovered[0].time.duration_since(start + SignedDuration::from_hours(26));
    assert!(back <= SignedDuration::from_mins(10), "caught up {back:?} after MLflow came back");

    // The end: three versions registered once each, v2 champion again after v3's rollback.
    let model = sim.mlflow.model("churn-model").expect("registered").clone();
    assert_eq!(model.versions.len(), 3, "{:?}", model.versions);
    assert_eq!(model.alias_version(registry::CHAMPION), Some(2));
    assert_eq!(model.aliases.get(registry::CHALLENGER), None, "the challenger alias outlived v3's rollout");
    assert_eq!(challengers, [1, 3].into(), "v1 rolled out first; v2 while MLflow was down; then v3");
    let tag = |v: usize, key: &str| model.versions[v].tags.get(key).cloned().unwrap_or_default();
    assert_eq!(model.versions[0].source, "s3://models/churn/1");
    assert_eq!(tag(0, "modelcycle.io/phase"), "Retired");
    assert_eq!(tag(1, "modelcycle.io/dataset-version"), "d2");
    assert_eq!(tag(1, "modelcycle.io/trigger"), "TrainingInputsChanged");
    assert_eq!(tag(1, "modelcycle.io/metric.auc"), "0.9");
    assert_eq!(tag(1, "modelcycle.io/gate.auc.min"), "Pass (0.9)");
    assert_eq!(tag(1, "modelcycle.io/model"), "ml/churn");
    assert_eq!(tag(2, "modelcycle.io/phase"), "RolledBack");
    assert!(
        tag(2, "modelcycle.io/rolled-back").starts_with("ProgressDeadlineExceeded"),
        "{}",
        tag(2, "modelcycle.io/rolled-back")
    );
    let (status, reason, message) = condition(&sim);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Synced"));
    assert!(message.contains("holds 3 version(s); champion v2"), "{message}");

    // Quiet once in step: another simulated day writes nothing more to MLflow or the Model.
    let (writes, cluster_writes) = (sim.mlflow.writes, sim.cluster.writes);
    sim.run_until(start + SignedDuration::from_hours(96));
    assert_eq!((sim.mlflow.writes, sim.cluster.writes), (writes, cluster_writes));
}

#[test]
fn a_restart_that_lost_the_status_registers_nothing_twice() {
    let mut sim = simulate(REGISTRY, &scenario());
    sim.run();
    let before = sim.mlflow.clone();
    let model = sim.cluster.models["ml/churn"].clone();
    let versions: Vec<_> = sim.cluster.versions.values().cloned().collect();
    let intent = registry::intent(&model, &versions).expect("the Model publishes");
    // Published again from nothing known: every version is found by its uid tag.
    assert_eq!(sim.mlflow.publish(&intent), 0);
    assert_eq!(sim.mlflow, before);
}

#[test]
fn without_a_registry_nothing_is_published_and_no_condition_is_shown() {
    let mut sim = simulate("", &scenario());
    sim.run();
    assert!(sim.mlflow.models.is_empty());
    assert_eq!(condition(&sim), Default::default());
    assert_eq!(model_status(&sim).registry, None);
}
