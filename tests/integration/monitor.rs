//! What the controller exports about each Model (`/metrics`), as the simulator computes it with
//! the same code after every reconcile that acted: the state a dashboard shows and alerts fire
//! on, and the retrains and rollbacks counted once each.

use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

use crate::sim_support;

fn example(name: &str) -> Simulation {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    Simulation::new(Scenario::load(&[dir]).unwrap())
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_shadowed_canary_exports_its_weight_and_measurements_and_counts_its_rollback_once() {
    let mut sim = example("shadow");
    // v2's 10% step: from 1d 01:32 for an hour.
    sim.run_until(at("2026-11-03T02:00:00Z"));
    let during = sim.exported["ml/recommender"].gauges.clone();
    assert_eq!(during.serving_version, Some(1));
    assert_eq!(during.canary_weight, Some(10));
    let agreement: Vec<_> = during.analysis.iter().filter(|a| a.metric == "prediction-agreement").collect();
    assert_eq!(agreement.len(), 1, "{:?}", during.analysis);
    assert_eq!((agreement[0].bound.as_str(), agreement[0].threshold, agreement[0].passed), ("max", Some(0.1), true));
    assert!(agreement[0].value.is_some_and(|v| v < 0.1));
    assert_eq!(during.gates, [("ndcg".to_string(), true)]);
    let training = during.training.clone().unwrap();
    assert_eq!((training.seconds, training.succeeded), (Some(1800.0), Some(true)), "30 minutes, then Ready");

    sim.run();
    let end = &sim.exported["ml/recommender"];
    assert_eq!(end.gauges.serving_version, Some(2));
    assert_eq!(end.gauges.canary_weight, None, "no canary at the end");
    assert_eq!(end.gauges.serving_since, Some(at("2026-11-03T03:38:00Z")), "v2 took every replica at 1d 03:38");
    let retrains: Vec<_> = end.retrains.iter().collect();
    assert_eq!(retrains, [("Initial", 1), ("TrainingInputsChanged", 2)]);
    let rollbacks: Vec<_> = end.rollbacks.iter().collect();
    assert_eq!(rollbacks, [("AnalysisFailed", 1)], "v3's rollback, counted once over its later status writes");
    assert_eq!(end.gauges.last_rollback, Some((at("2026-11-04T00:32:00Z"), "AnalysisFailed".to_string())));
}

#[test]
fn a_retrain_policys_drift_and_quality_are_exported_with_their_thresholds() {
    let mut sim = example("retraining");
    sim.run();
    let exported = &sim.exported["ml/fraud"];
    let status = sim.cluster.policies["ml/fraud"].status.clone().unwrap();
    let drift = exported.gauges.drift.clone().unwrap();
    assert_eq!(
        (drift.method, Some(drift.value), drift.threshold),
        ("PSI", status.drift.as_ref().unwrap().value, Some(0.2))
    );
    let quality = exported.gauges.quality.clone().unwrap();
    assert_eq!((Some(quality.value), quality.min, quality.max), (status.performance.unwrap().value, Some(0.85), None));
    let versions = sim.cluster.versions.values().filter(|v| v.spec.model == "fraud").count() as u64;
    let counted: u64 = exported.retrains.iter().map(|(_, n)| n).sum();
    assert!(counted >= versions, "every version kept was counted ({counted} counted, {versions} kept)");
    assert_eq!(exported.retrains.get("Drift"), Some(1));
    assert_eq!(exported.retrains.get("Performance"), Some(1));
}

#[test]
fn failed_trainings_in_a_row_are_counted_until_one_succeeds() {
    let changes: String =
        (1..=4).map(|d| format!("  - {{at: {d}d, set: {{spec.training.dataset.version: e{d}}}}}\n")).collect();
    let scenario = format!(
        "duration: 5d 12h\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions:\n  2: {{fail: OOMKilled}}\n  3: {{fail: OOMKilled}}\nchanges:\n{changes}"
    );
    let mut sim = sim_support::simulate("", &scenario);
    sim.run_until(at("2026-01-03T12:00:00Z"));
    assert_eq!(sim.exported["ml/churn"].gauges.failed_trainings, 2, "v2 and v3 failed");
    assert_eq!(sim.exported["ml/churn"].gauges.serving_version, Some(1));
    sim.run();
    let end = &sim.exported["ml/churn"].gauges;
    assert_eq!((end.failed_trainings, end.serving_version), (0, Some(5)), "v4 and v5 trained");
    assert_eq!(end.training.as_ref().and_then(|t| t.succeeded), Some(true));
}

#[test]
fn the_next_scheduled_retrain_is_exported_from_the_policy() {
    let mut sim = example("retraining");
    sim.run();
    let status = sim.cluster.policies["ml/fraud"].status.clone().unwrap();
    assert_eq!(sim.exported["ml/fraud"].gauges.next_scheduled, status.next_schedule_time.map(|t| t.0));
    assert!(sim.exported["ml/fraud"].gauges.next_scheduled.is_some());
}
