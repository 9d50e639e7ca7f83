//! Versions that arrive in MLflow (`spec.source.mlflow`), in the simulator: each new version (or
//! each move of the followed alias) becomes one ModelVersion with its run's lineage, judged by
//! its run's metrics through the same gates, rolled out as usual; nothing trains; a registry
//! that cannot be read is a condition and one Warning, and what serves serves on.

use jiff::SignedDuration;
use modelcycle::api::{ModelPhase, VersionPhase};
use modelcycle::lifecycle::source::{REGISTRY_VERSION, SOURCE_SYNCED};
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

fn phase(sim: &Simulation, n: u32) -> Option<VersionPhase> {
    sim.cluster.versions.get(&format!("ml/fraud-v{n}")).and_then(|v| v.status.as_ref()?.phase)
}

fn model_status(sim: &Simulation) -> modelcycle::api::ModelStatus {
    sim.cluster.models["ml/fraud"].status.clone().unwrap_or_default()
}

fn model(source: &str) -> String {
    format!(
        r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: ml, uid: uid-fraud}}
spec:
  source:
    mlflow: {{trackingUri: "http://mlflow.mlops:5000", name: fraud-detector{source}}}
  evaluation:
    gates:
      - {{metric: auc, min: 0.8}}
      - {{metric: auc, maxRegression: 0.01}}
  serving:
    template: {{spec: {{containers: [{{name: server, image: "server:1"}}]}}}}
    replicas: 2
"#
    )
}

fn parsed(source: &str, scenario: &str, extra: &str) -> Scenario {
    let texts = [
        ("model.yaml".to_string(), format!("{}{extra}", model(source))),
        ("scenario.yaml".to_string(), scenario.to_string()),
    ];
    Scenario::parse(&texts).expect("scenario parses")
}

fn run(source: &str, scenario: &str) -> Simulation {
    let mut sim = Simulation::new(parsed(source, scenario, ""));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "violations: {:?}", sim.cluster.violations);
    sim
}

const STAGED: &str = r#"
start: "2026-01-01T00:00:00Z"
duration: 3d
defaults: {rolloutTime: 3m}
mlflowVersions:
  - {at: 0s, name: fraud-detector, aliases: [staging], metrics: {auc: 0.88, f1: 0.61}, params: {max_depth: "6"}}
  - {at: 1d, name: fraud-detector, metrics: {auc: 0.91}, params: {max_depth: "8"}}
  - {at: 1d 6h, name: fraud-detector, version: "2", aliases: [staging]}
  - {at: 2d, name: fraud-detector, aliases: [staging], metrics: {auc: 0.84}}
  - {at: 2d, name: other-model, aliases: [staging], metrics: {auc: 0.99}}
"#;

#[test]
fn each_move_of_the_alias_is_one_version_with_its_run_lineage_judged_by_its_run_metrics() {
    let sim = run(", alias: staging", STAGED);
    let mut numbers: Vec<u32> = sim.cluster.versions.values().map(|v| v.spec.version).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3], "one version per alias move; a registration without the alias is none");
    assert!(sim.cluster.jobs.is_empty(), "nothing trains: {:?}", sim.cluster.jobs.keys().collect::<Vec<_>>());

    let v1 = &sim.cluster.versions["ml/fraud-v1"];
    let origin = &v1.spec.source.as_ref().expect("v1 records where it came from").mlflow;
    assert_eq!((origin.name.as_str(), origin.version.as_str()), ("fraud-detector", "1"));
    assert_eq!(origin.alias.as_deref(), Some("staging"));
    assert_eq!(origin.run_id.as_deref(), Some("run-fraud-detector-1"));
    assert_eq!(origin.params.get("max_depth").map(String::as_str), Some("6"));
    assert_eq!(origin.metrics.get("f1"), Some(&0.61));
    assert_eq!(v1.spec.artifact_uri, "mlflow-artifacts:/fraud-detector/1/artifacts", "serving loads the files");
    assert!(v1.spec.training.is_none() && v1.spec.trainer_images.is_empty());
    assert_eq!(v1.spec.trigger.reason, REGISTRY_VERSION);
    assert!(v1.spec.trigger.causes[0].evidence.contains("alias staging points to version 1"));

    let v2 = &sim.cluster.versions["ml/fraud-v2"];
    assert_eq!(v2.spec.trigger.time.0, "2026-01-02T06:00:00Z".parse().unwrap(), "taken when the alias moved");
    assert!(v2.spec.trigger.causes[0].evidence.contains("alias staging moved from version 1 to 2"));
    let s2 = v2.status.clone().unwrap_or_default();
    assert_eq!(s2.metrics.get("auc"), Some(&0.91), "the run's metrics are the version's metrics");

    let s3 = sim.cluster.versions["ml/fraud-v3"].status.clone().unwrap_or_default();
    assert_eq!(s3.phase, Some(VersionPhase::Rejected));
    assert!(s3.message.unwrap_or_default().contains("maxRegression"), "v3 is 0.07 AUC worse than v2");
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    let status = model_status(&sim);
    assert_eq!((status.serving_version, status.phase), (Some(2), Some(ModelPhase::Serving)));
    let synced = status.conditions.iter().find(|c| c.type_ == SOURCE_SYNCED).expect("SourceSynced");
    assert_eq!((synced.status.as_str(), synced.reason.as_str()), ("True", "Synced"));
    assert!(synced.message.contains("alias staging is version 3"), "{}", synced.message);
}

#[test]
fn without_an_alias_every_newly_registered_version_is_taken_once_and_judged_from_pending() {
    let scenario = r#"
start: "2026-01-01T00:00:00Z"
duration: 2d
defaults: {rolloutTime: 3m}
mlflowVersions:
  - {at: 1h, name: fraud-detector, metrics: {auc: 0.88}}
  - {at: 1d, name: fraud-detector, metrics: {auc: 0.9}}
  - {at: 1d, name: fraud-detector, version: "1", aliases: [champion]}
"#;
    let sim = run("", scenario);
    assert_eq!(sim.cluster.versions.len(), 2, "two registrations, two versions; an alias set changes nothing");
    let v1 = &sim.cluster.versions["ml/fraud-v1"];
    assert_eq!(v1.spec.trigger.time.0, "2026-01-01T01:00:00Z".parse().unwrap(), "read within the poll interval");
    let decisions = &v1.status.as_ref().unwrap().decisions;
    assert_eq!(decisions[0].action, "Accept", "judged from Pending, without a Training phase: {decisions:?}");
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Retired));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
}

#[test]
fn a_registry_outage_is_one_warning_and_a_condition_and_what_serves_serves_on() {
    let scenario = format!("{STAGED}mlflowDown: [{{from: 1d 5h, to: 1d 8h}}]\n");
    let mut sim = Simulation::new(parsed(", alias: staging", &scenario, ""));
    let start = sim.cluster.now;
    sim.run_until(start + SignedDuration::from_hours(31));
    let status = model_status(&sim);
    let c = status.conditions.iter().find(|c| c.type_ == SOURCE_SYNCED).expect("SourceSynced");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "SourceUnavailable"), "{}", c.message);
    assert!(c.message.contains("connection refused") && c.message.contains("serves on"), "{}", c.message);
    assert_eq!(status.serving_version, Some(1), "the outage touched nothing that serves");
    assert_eq!(sim.cluster.versions.len(), 1, "the alias moved during the outage: not seen yet");
    sim.run();
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving), "v2 was taken once MLflow answered again");
    let v2 = &sim.cluster.versions["ml/fraud-v2"];
    let after = v2.spec.trigger.time.0.duration_since(start + SignedDuration::from_hours(32));
    assert!(after <= SignedDuration::from_mins(1), "taken {after:?} after MLflow came back");
    let warnings: Vec<_> = sim.timeline.iter().filter(|e| e.reason == "SourceUnavailable").collect();
    assert_eq!(warnings.len(), 1, "one Warning for the outage, not one per poll: {warnings:?}");
    assert!(warnings[0].warning);
    assert_eq!(sim.timeline.iter().filter(|e| e.reason == "SourceSynced").count(), 1);
}

#[test]
fn an_alias_that_does_not_exist_yet_waits_quietly() {
    let scenario = "start: \"2026-01-01T00:00:00Z\"\nduration: 1d\nmlflowVersions:\n  - {at: 0s, name: fraud-detector, metrics: {auc: 0.9}}\n";
    let sim = run(", alias: production", scenario);
    assert!(sim.cluster.versions.is_empty());
    let status = model_status(&sim);
    let c = status.conditions.iter().find(|c| c.type_ == SOURCE_SYNCED).expect("SourceSynced");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "NoRegistryVersion"), "{}", c.message);
    assert!(c.message.contains("alias production not found"), "{}", c.message);
    assert_ne!(status.phase, Some(ModelPhase::Stalled), "waiting for a registration is not a broken spec");
    assert!(sim.timeline.iter().all(|e| !e.warning), "no Warning for waiting: {:?}", sim.timeline);
    // Polled, not busy-waited: a day at the default interval of 1m is at most ~1,440 looks.
    assert!(sim.cluster.writes < 10, "{} writes while waiting", sim.cluster.writes);
}

#[test]
fn a_retrain_policy_naming_a_model_from_mlflow_is_stalled_and_retrains_nothing() {
    let policy = "---\napiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {name: nightly, namespace: ml}\nspec:\n  modelRef: {name: fraud}\n  schedule: {cron: \"0 2 * * *\", timeZone: UTC}\n";
    let mut sim = Simulation::new(parsed(", alias: staging", STAGED, policy));
    sim.run();
    assert_eq!(sim.cluster.versions.len(), 3, "the schedule made no version");
    let p = sim.cluster.policies["ml/nightly"].status.clone().unwrap_or_default();
    let stalled = p.conditions.iter().find(|c| c.type_ == "Stalled").expect("Stalled");
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "ModelNotTrained"));
    assert!(stalled.message.contains("fraud-detector"), "{}", stalled.message);
}

#[test]
fn a_crash_after_any_write_never_takes_a_registry_version_twice() {
    let scenario = parsed(", alias: staging", STAGED, "");
    let mut baseline = Simulation::new(scenario.clone());
    baseline.run();
    let versions = |sim: &Simulation| {
        let mut v: Vec<_> = sim
            .cluster
            .versions
            .values()
            .map(|v| {
                (v.spec.version, v.spec.source.as_ref().map(|s| s.mlflow.version.clone()), phase(sim, v.spec.version))
            })
            .collect();
        v.sort();
        v
    };
    let expected = versions(&baseline);
    let points = Simulation::crash_points(&scenario);
    assert!(points.len() > 10, "{} crash points", points.len());
    for crash in points {
        let mut sim = Simulation::new(scenario.clone());
        sim.crash = Some(crash);
        sim.run();
        let context = format!("crash at reconcile {} after {} writes", crash.at_reconcile, crash.after_writes);
        assert_eq!(versions(&sim), expected, "{context}");
        assert!(sim.cluster.violations.is_empty(), "{context}: {:?}", sim.cluster.violations);
    }
}

#[test]
fn after_an_outage_the_registry_is_read_again_within_30s_even_with_an_hourly_poll() {
    let scenario = format!("{STAGED}mlflowDown: [{{from: 1d 5h 59m, to: 1d 6h 10m}}]\n");
    let sim = run(", alias: staging, pollInterval: 1h", &scenario);
    let v2 = &sim.cluster.versions["ml/fraud-v2"];
    let back = "2026-01-02T06:10:00Z".parse::<jiff::Timestamp>().unwrap();
    let after = v2.spec.trigger.time.0.duration_since(back);
    assert!(
        after >= SignedDuration::ZERO && after <= SignedDuration::from_secs(30),
        "the alias moved during the outage; taken {after:?} after it ended, not at the next hourly poll"
    );
    let v1 = &sim.cluster.versions["ml/fraud-v1"];
    assert_eq!(v1.spec.trigger.time.0, "2026-01-01T00:00:00Z".parse().unwrap());
}

#[test]
fn a_model_from_mlflow_never_says_it_trains() {
    let mut sim = Simulation::new(parsed(", alias: staging", STAGED, ""));
    sim.plans = Some(vec![]);
    sim.run();
    let statuses: Vec<_> = sim
        .plans
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(_, plan)| plan.steps)
        .filter_map(|w| if let modelcycle::lifecycle::plan::Write::ModelStatus(s) = w { Some(*s) } else { None })
        .collect();
    assert!(statuses.len() > 3, "{} status writes", statuses.len());
    for s in &statuses {
        assert_ne!(s.phase, Some(ModelPhase::Training), "{s:?}");
        let training = s.conditions.iter().find(|c| c.type_ == "Training");
        assert!(training.is_none_or(|c| c.status == "False"), "{training:?}");
    }
}

#[test]
fn a_model_whose_only_version_from_mlflow_is_rejected_says_to_register_another() {
    let scenario = "start: \"2026-01-01T00:00:00Z\"\nduration: 1d\nmlflowVersions:\n  - {at: 0s, name: fraud-detector, metrics: {auc: 0.5}}\n";
    let sim = run("", scenario);
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Rejected));
    let status = model_status(&sim);
    let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "NoServableVersion");
    assert!(stalled.message.contains("register a new version of \"fraud-detector\" in MLflow"), "{}", stalled.message);
    assert!(!stalled.message.contains("training inputs"), "{}", stalled.message);
}
