//! The KServe target in the simulated cluster: the InferenceService modelcycle writes at each
//! step, what the simulated KServe does with it, and restarts after any write.

use modelcycle::api::VersionPhase;
use modelcycle::api::kserve::InferenceService;
use modelcycle::objects::inference_service::{PREDICTOR, written_percent, written_version};
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

use crate::sim_support;
use sim_support::{FinalState, dataset_change, model_status, phase, version_status};

/// A Model served by KServe in `mode`, with `strategy` and `analysis` lines under `serving:`.
fn model(mode: &str, serving_extra: &str) -> String {
    format!(
        r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {{name: churn, namespace: ml}}
spec:
  training:
    template: {{spec: {{containers: [{{name: trainer, image: "trainer:1"}}]}}}}
    dataset: {{uri: "s3://data/churn", version: "d1"}}
    artifactUri: "s3://models/{{model}}/{{version}}"
  evaluation:
    gates: [{{metric: auc, min: 0.8}}]
  serving:
    target: KServe
    kserve:
      deploymentMode: {mode}
      predictor: {{model: {{modelFormat: {{name: sklearn}}}}, minReplicas: 2}}
{serving_extra}"#
    )
}

const CANARY: &str = "    strategy: {canary: {steps: [{weight: 20, pause: 30m}, {weight: 60, pause: 30m}]}}\n";

fn simulation(model: &str, scenario: &str) -> Simulation {
    let texts = [("model.yaml".to_string(), model.to_string()), ("scenario.yaml".to_string(), scenario.to_string())];
    Simulation::new(Scenario::parse(&texts).expect("scenario parses"))
}

fn isvc(sim: &Simulation) -> &InferenceService {
    &sim.cluster.inference_services["ml/churn"]
}

/// The share of requests each revision has, from KServe's status.
fn traffic(sim: &Simulation) -> Vec<(String, i64)> {
    let status = isvc(sim).status.as_ref().and_then(|s| s.components.get(PREDICTOR).cloned()).unwrap_or_default();
    status.traffic.iter().map(|t| (t.revision_name.clone().unwrap_or_default(), t.percent.unwrap_or(0))).collect()
}

fn storage_uri(sim: &Simulation) -> String {
    isvc(sim).spec.predictor["model"]["storageUri"].as_str().unwrap_or_default().to_string()
}

/// A scenario from 2026-01-01 with a new dataset version each day after the first (`days` in
/// all), rollouts taking `rollout`, and `extra` YAML (versions, live readings) appended.
fn scenario(days: u32, rollout: &str, extra: &str) -> String {
    let changes: String = (1..days).map(|d| dataset_change(&format!("{d}d"), &format!("d{}", d + 1))).collect();
    format!(
        "start: \"2026-01-01T00:00:00Z\"\nduration: {days}d\ndefaults: {{metrics: {{auc: 0.9}}, trainingTime: 30m, rolloutTime: {rollout}}}\nchanges:\n{changes}{extra}"
    )
}

const FAILING_V2: &str = "live:\n  analysis:\n    - {at: 0s, metric: error-ratio, value: 0.01}\n    - {at: 0s, metric: error-ratio, version: 2, value: 0.2}\n";

#[test]
fn a_kserve_canary_moves_canary_traffic_percent_step_by_step_then_promotes() {
    let scenario = scenario(2, "2m", "");
    let mut sim = simulation(&model("Knative", CANARY), &scenario);
    sim.run_until("2026-01-01T12:00:00Z".parse().unwrap());
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(storage_uri(&sim), "s3://models/churn/1");
    assert_eq!(written_percent(isvc(&sim)), None, "a first version takes every request");
    assert_eq!(traffic(&sim), vec![("churn-predictor-00001".to_string(), 100)]);
    assert_eq!(version_status(&sim, 1).kserve.and_then(|k| k.revision).as_deref(), Some("churn-predictor-00001"));

    // Step 1: the new revision is created and, once ready, takes 20%.
    sim.run_until("2026-01-02T00:40:00Z".parse().unwrap());
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut));
    assert_eq!((written_version(isvc(&sim)), written_percent(isvc(&sim))), (Some(2), Some(20)));
    assert_eq!(
        traffic(&sim),
        vec![("churn-predictor-00002".to_string(), 20), ("churn-predictor-00001".to_string(), 80)],
        "20% to v2's revision, the rest to the last one that took everything"
    );
    let kserve = version_status(&sim, 2).kserve.unwrap();
    assert_eq!(
        (kserve.created_after.as_str(), kserve.revision.as_deref()),
        ("churn-predictor-00001", Some("churn-predictor-00002"))
    );
    // Step 2, then promotion: the percent goes and v2 takes every request.
    sim.run_until("2026-01-02T01:20:00Z".parse().unwrap());
    assert_eq!(written_percent(isvc(&sim)), Some(60));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Retired));
    assert_eq!(written_percent(isvc(&sim)), None);
    assert_eq!(traffic(&sim), vec![("churn-predictor-00002".to_string(), 100)]);
    assert_eq!(sim.cluster.traffic["ml/churn"], ["100", "20", "60", "100"]);
    assert!(
        sim.cluster.deployments.is_empty() && sim.cluster.services.is_empty(),
        "KServe serves; no Deployment or Service of our own"
    );
    let decisions: Vec<String> = version_status(&sim, 2).decisions.iter().map(|d| d.reason.clone()).collect();
    assert_eq!(decisions.last().map(String::as_str), Some("CanaryPromoted"), "{decisions:?}");
}

const ANALYSED: &str = r#"    strategy: {canary: {steps: [{weight: 20, pause: 30m}]}}
    analysis:
      prometheus: {address: "http://prometheus:9090"}
      interval: 5m
      metrics:
        - {name: error-ratio, query: "errors{version=\"{{version}}\"}", max: 0.05}
"#;

#[test]
fn a_kserve_canary_that_fails_its_analysis_sends_every_request_back_to_the_stable_revision_at_once() {
    let scenario = scenario(2, "2m", FAILING_V2);
    let mut sim = simulation(&model("Knative", ANALYSED), &scenario);
    sim.run_until("2026-01-02T00:45:00Z".parse().unwrap());
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    let back = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(back.reason, "AnalysisFailed", "{}", back.message);
    assert!(back.message.contains("v1 takes every request again"), "{}", back.message);
    // The stable version is written again with canaryTrafficPercent 0: KServe sends every
    // request to v1's old revision while v1's new one starts.
    assert_eq!((written_version(isvc(&sim)), storage_uri(&sim)), (Some(1), "s3://models/churn/1".to_string()));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    let shares = &sim.cluster.traffic["ml/churn"];
    assert_eq!(shares, &["100", "20", "0", "100"], "rolled back through canaryTrafficPercent 0");
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(traffic(&sim), vec![("churn-predictor-00003".to_string(), 100)], "v1's new revision takes over");
    assert_eq!(model_status(&sim).serving_version, Some(1));
}

#[test]
fn a_kserve_rollback_never_leaves_a_request_on_the_failed_revision() {
    // Between the rollback and v1's new revision being ready, KServe's split must send nothing
    // to v2: checked at every minute of the run.
    let scenario = scenario(2, "10m", FAILING_V2);
    let mut sim = simulation(&model("Knative", ANALYSED), &scenario);
    let mut t: jiff::Timestamp = "2026-01-02T00:30:00Z".parse().unwrap();
    let mut rolled_back_at = None;
    while t < "2026-01-02T02:00:00Z".parse().unwrap() {
        sim.run_until(t);
        if phase(&sim, 2) == Some(VersionPhase::RolledBack) {
            rolled_back_at.get_or_insert(t);
            let to_v2: i64 = traffic(&sim).iter().filter(|(r, _)| r == "churn-predictor-00002").map(|(_, p)| p).sum();
            // KServe acts a second after the write; the controller's own write is what counts.
            if t > rolled_back_at.unwrap() + jiff::SignedDuration::from_mins(1) {
                assert_eq!(to_v2, 0, "at {t}: {:?}", traffic(&sim));
            }
        }
        t += jiff::SignedDuration::from_mins(1);
    }
    assert!(rolled_back_at.is_some(), "v2 was rolled back");
}

#[test]
fn a_revision_that_never_becomes_ready_is_rolled_back_with_kserves_words() {
    let scenario = scenario(2, "2m", "versions:\n  2: {healthy: false}\n");
    let mut sim = simulation(&model("Knative", CANARY), &scenario);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    let back = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(back.reason, "RevisionFailed");
    assert!(back.message.contains("never became ready"), "{}", back.message);
    let evidence = back.evidence.unwrap();
    assert_eq!(evidence["inferenceService"], "churn");
    assert_eq!(model_status(&sim).phase, Some(modelcycle::api::ModelPhase::Degraded));
    assert_eq!(written_version(isvc(&sim)), Some(1));
    assert_eq!(written_percent(isvc(&sim)), None, "v1's new revision took over and the percent went");
}

#[test]
fn standard_mode_replaces_the_version_without_a_canary_percent() {
    let scenario = scenario(2, "5m", "");
    let mut sim = simulation(&model("Standard", ""), &scenario);
    sim.run_until("2026-01-02T00:32:00Z".parse().unwrap());
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut), "KServe's Deployment is still rolling out");
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(storage_uri(&sim), "s3://models/churn/2");
    assert_eq!(isvc(&sim).metadata.annotations.as_ref().unwrap()["serving.kserve.io/deploymentMode"], "Standard");
    assert_eq!(sim.cluster.traffic["ml/churn"], ["100"], "no canaryTrafficPercent is ever written");
}

#[test]
fn a_controller_restart_after_any_write_of_a_kserve_canary_converges_to_the_same_outcome() {
    let scenario = scenario(3, "2m", "versions:\n  3: {healthy: false}\n");
    let texts = [("model.yaml".to_string(), model("Knative", CANARY)), ("scenario.yaml".to_string(), scenario)];
    let parsed = Scenario::parse(&texts).unwrap();
    let state = |sim: &Simulation| {
        let status = model_status(sim);
        let mut versions: Vec<_> =
            sim.cluster.versions.values().map(|v| (v.spec.version, v.status.as_ref().and_then(|s| s.phase))).collect();
        versions.sort();
        let isvc = isvc(sim);
        let held = (written_version(isvc), written_percent(isvc));
        (FinalState { versions, deployed: None, serving: status.serving_version, phase: status.phase }, held)
    };
    let mut baseline = Simulation::new(parsed.clone());
    baseline.run();
    let expected = state(&baseline);
    assert_eq!(expected.1, (Some(2), None));
    let crashes = Simulation::crash_points(&parsed);
    for crash in &crashes {
        let mut sim = Simulation::new(parsed.clone());
        sim.crash = Some(*crash);
        sim.run();
        let context = format!("crash at reconcile {} after {} writes", crash.at_reconcile, crash.after_writes);
        assert_eq!(state(&sim), expected, "{context}");
        assert!(sim.cluster.violations.is_empty(), "{context}: {:?}", sim.cluster.violations);
    }
    assert!(crashes.len() > 30, "{} crash points", crashes.len());
}

#[test]
fn moving_a_model_to_kserve_and_back_removes_the_old_targets_objects_once_the_new_one_serves() {
    // A Model served by its own Deployment moves to KServe on day 1 and back on day 2.
    let deployment_model = model("Knative", "")
        .replace("    target: KServe\n", "")
        .replace(
            "    kserve:\n      deploymentMode: Knative\n      predictor: {model: {modelFormat: {name: sklearn}}, minReplicas: 2}\n",
            "    template: {spec: {containers: [{name: server, image: \"server:1\"}]}}\n",
        );
    let to_kserve = "  - {at: 1d, set: {spec.serving.target: KServe, spec.serving.template: null, spec.serving.kserve: {deploymentMode: Knative, predictor: {model: {modelFormat: {name: sklearn}}}}}}\n";
    let back = "  - {at: 2d, set: {spec.serving.target: Deployment, spec.serving.kserve: null, spec.serving.template: {spec: {containers: [{name: server, image: \"server:1\"}]}}}}\n";
    let scenario = format!(
        "start: \"2026-01-01T00:00:00Z\"\nduration: 3d\ndefaults: {{metrics: {{auc: 0.9}}, trainingTime: 30m, rolloutTime: 5m}}\nchanges:\n{to_kserve}{back}"
    );
    let mut sim = simulation(&deployment_model, &scenario);
    sim.run_until("2026-01-01T12:00:00Z".parse().unwrap());
    assert!(sim.cluster.deployments.contains_key("ml/churn") && sim.cluster.services.contains_key("ml/churn"));
    assert!(sim.cluster.inference_services.is_empty());

    sim.run_until("2026-01-02T00:02:00Z".parse().unwrap());
    assert!(sim.cluster.inference_services.contains_key("ml/churn"), "KServe takes v1");
    assert!(sim.cluster.deployments.contains_key("ml/churn"), "the Deployment serves until KServe's revision is ready");
    sim.run_until("2026-01-02T00:10:00Z".parse().unwrap());
    assert!(
        sim.cluster.deployments.is_empty() && sim.cluster.services.is_empty(),
        "KServe serves v1: the old objects go"
    );
    assert_eq!(written_version(isvc(&sim)), Some(1));

    sim.run_until("2026-01-03T00:02:00Z".parse().unwrap());
    assert!(sim.cluster.deployments.contains_key("ml/churn"));
    assert!(sim.cluster.inference_services.contains_key("ml/churn"), "KServe serves until the Deployment is available");
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert!(sim.cluster.inference_services.is_empty(), "the Deployment serves v1: the InferenceService goes");
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(sim.cluster.versions.len(), 1, "moving between targets trains nothing");
}
