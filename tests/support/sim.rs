//! Helpers shared by the simulation tests: a complete Model, running a scenario, and reading
//! the simulated cluster.
#![allow(dead_code)]

use modelcycle::api::{ModelPhase, VersionPhase};
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

pub const MODEL: &str = r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: churn, namespace: ml}
spec:
  training:
    template: {spec: {containers: [{name: trainer, image: "trainer:1"}]}}
    dataset: {uri: "s3://data/churn", version: "d1"}
    artifactUri: "s3://models/{model}/{version}"
  evaluation:
    gates:
      - {metric: auc, min: 0.8}
      - {metric: auc, maxRegression: 0.01}
  serving:
    template: {spec: {containers: [{name: server, image: "server:1"}]}}
    replicas: 3
"#;

/// A simulation of MODEL (with `model_patch` lines appended under `spec:`) and `scenario`.
pub fn simulate(model_extra: &str, scenario: &str) -> Simulation {
    let model = format!("{MODEL}{model_extra}");
    let texts = [("model.yaml".to_string(), model), ("scenario.yaml".to_string(), scenario.to_string())];
    Simulation::new(Scenario::parse(&texts).expect("scenario parses"))
}

pub fn run(model_extra: &str, scenario: &str) -> Simulation {
    let mut sim = simulate(model_extra, scenario);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "violations: {:?}", sim.cluster.violations);
    sim
}

pub fn phase(sim: &Simulation, n: u32) -> Option<VersionPhase> {
    sim.cluster.versions.get(&format!("ml/churn-v{n}")).and_then(|v| v.status.as_ref()?.phase)
}

pub fn version_status(sim: &Simulation, n: u32) -> modelcycle::api::ModelVersionStatus {
    sim.cluster.versions[&format!("ml/churn-v{n}")].status.clone().unwrap_or_default()
}

pub fn model_status(sim: &Simulation) -> modelcycle::api::ModelStatus {
    sim.cluster.models["ml/churn"].status.clone().unwrap_or_default()
}

pub fn deployed(sim: &Simulation) -> Option<u32> {
    sim.cluster.deployments.get("ml/churn").and_then(|d| modelcycle::objects::deployment::deployed_version(d))
}

pub fn dataset_change(at: &str, version: &str) -> String {
    format!("  - {{at: {at}, set: {{spec.training.dataset.version: \"{version}\"}}}}\n")
}

/// The final state that matters.
#[derive(Debug, PartialEq)]
pub struct FinalState {
    /// Every version's phase.
    pub versions: Vec<(u32, Option<VersionPhase>)>,
    /// The version the serving Deployment runs.
    pub deployed: Option<u32>,
    /// The Model's serving version and phase.
    pub serving: Option<u32>,
    pub phase: Option<ModelPhase>,
}

pub fn final_state(sim: &Simulation) -> FinalState {
    let mut versions: Vec<_> =
        sim.cluster.versions.values().map(|v| (v.spec.version, v.status.as_ref().and_then(|s| s.phase))).collect();
    versions.sort();
    let status = model_status(sim);
    FinalState { versions, deployed: deployed(sim), serving: status.serving_version, phase: status.phase }
}

/// Runs `scenario` once, then again crashing after every prefix of every acting reconcile's
/// writes, and checks that every run ends where the first did.
pub fn converges_after_any_crash(model_extra: &str, scenario: &str) {
    let texts = [
        ("model.yaml".to_string(), format!("{MODEL}{model_extra}")),
        ("scenario.yaml".to_string(), scenario.to_string()),
    ];
    let parsed = Scenario::parse(&texts).unwrap();
    let mut baseline = Simulation::new(parsed.clone());
    baseline.run();
    let expected = final_state(&baseline);
    for crash in Simulation::crash_points(&parsed) {
        let mut sim = Simulation::new(parsed.clone());
        sim.crash = Some(crash);
        sim.run();
        let context = format!("crash at reconcile {} after {} writes", crash.at_reconcile, crash.after_writes);
        assert_eq!(final_state(&sim), expected, "{context}");
        assert!(sim.cluster.violations.is_empty(), "{context}: {:?}", sim.cluster.violations);
        assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"), "{context}");
        assert!(!sim.cluster.deployments.contains_key("ml/churn-preview"), "{context}");
    }
}
