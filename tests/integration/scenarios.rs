//! Whole lifecycles in the simulated cluster: the same core the controller runs, against a
//! scripted kubelet and a virtual clock.

use kube::ResourceExt;
use modelcycle::api::{ModelPhase, VersionPhase};
use modelcycle::lifecycle::conditions;
use modelcycle::sim::Simulation;
use modelcycle::sim::report::Report;
use modelcycle::sim::scenario::Scenario;

use crate::sim_support;
use sim_support::*;

#[test]
fn first_version_trains_and_serves() {
    let sim = run("", "duration: 1d\ndefaults: {metrics: {auc: 0.86}}\n");
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    let status = model_status(&sim);
    assert_eq!((status.serving_version, status.latest_version, status.candidate_version), (Some(1), Some(1), None));
    assert_eq!(status.phase, Some(ModelPhase::Serving));
    assert!(conditions::is_true(&status.conditions, conditions::READY));
    assert!(!conditions::is_true(&status.conditions, conditions::RECONCILING));
    assert_eq!(deployed(&sim), Some(1));
    assert!(sim.cluster.services.contains_key("ml/churn"));
    let v1 = version_status(&sim, 1);
    assert_eq!(v1.metrics["auc"], 0.86);
    assert!(v1.decisions.iter().any(|d| d.action == "Serve"));
}

#[test]
fn better_version_rolls_forward_and_retires_the_old_one() {
    let scenario = format!(
        "duration: 3d\nversions: {{1: {{metrics: {{auc: 0.86}}}}, 2: {{metrics: {{auc: 0.89}}}}}}\nchanges:\n{}",
        dataset_change("1d", "d2")
    );
    let sim = run("", &scenario);
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Retired));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(2));
    let v2 = &sim.cluster.versions["ml/churn-v2"];
    assert_eq!(v2.spec.trigger.reason, "TrainingInputsChanged");
    assert!(v2.spec.trigger.causes[0].evidence.contains("d1 → d2"), "{:?}", v2.spec.trigger);
    assert_eq!(v2.spec.dataset().unwrap().version, "d2");
}

#[test]
fn gate_rejection_leaves_the_champion_serving() {
    let scenario = format!(
        "duration: 3d\nversions: {{1: {{metrics: {{auc: 0.90}}}}, 2: {{metrics: {{auc: 0.85}}}}}}\nchanges:\n{}",
        dataset_change("1d", "d2")
    );
    let sim = run("", &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Rejected));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1));
    let gates = version_status(&sim, 2).gate_results;
    let regression = gates.iter().find(|g| g.bound == "maxRegression").unwrap();
    assert_eq!(regression.verdict, modelcycle::api::Verdict::Fail);
    assert!((regression.threshold.unwrap() - 0.89).abs() < 1e-9);
    assert!(conditions::is_true(&model_status(&sim).conditions, conditions::READY), "v1 still serves");
}

#[test]
fn failed_training_leaves_the_champion_serving() {
    let scenario = format!(
        "duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{2: {{fail: BackoffLimitExceeded}}}}\nchanges:\n{}",
        dataset_change("1d", "d2")
    );
    let sim = run("", &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Failed));
    let v2 = version_status(&sim, 2);
    assert!(v2.message.unwrap().contains("BackoffLimitExceeded"));
    assert_eq!(v2.decisions.last().unwrap().reason, "BackoffLimitExceeded");
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1));
    let failed = sim.timeline.iter().find(|e| e.reason == "VersionFailed").unwrap();
    assert!(failed.warning);
}

#[test]
fn unhealthy_deployment_is_rolled_back_and_the_model_degraded() {
    let scenario = format!(
        "duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{2: {{metrics: {{auc: 0.95}}, healthy: false}}}}\nchanges:\n{}",
        dataset_change("1d", "d2")
    );
    let sim = run("", &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1), "the previous pod template is restored");
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!((record.action.as_str(), record.reason.as_str()), ("RollBack", "ProgressDeadlineExceeded"));
    assert!(record.message.contains("restored the pod template of v1"), "{}", record.message);
    assert!(record.evidence.is_some());
    let status = model_status(&sim);
    assert_eq!(status.phase, Some(ModelPhase::Degraded));
    let degraded = conditions::find(&status.conditions, conditions::DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RolledBack"));
}

#[test]
fn a_later_version_that_serves_clears_degraded_and_rolled_back_is_never_retried() {
    let scenario = format!(
        "duration: 5d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{2: {{healthy: false}}}}\nchanges:\n{}{}",
        dataset_change("1d", "d2"),
        dataset_change("3d", "d3")
    );
    let sim = run("", &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 3), Some(VersionPhase::Serving));
    assert!(!conditions::is_true(&model_status(&sim).conditions, conditions::DEGRADED));
    let rollouts_of_v2 =
        sim.timeline.iter().filter(|e| e.version == Some(2) && e.reason == "VersionRollingOut").count();
    assert_eq!(rollouts_of_v2, 1);
}

#[test]
fn inputs_changed_twice_during_one_training_make_exactly_one_more_version_with_the_newest_inputs() {
    let scenario = format!(
        "duration: 2d\ndefaults: {{metrics: {{auc: 0.9}}, trainingTime: 2h}}\nchanges:\n{}{}",
        dataset_change("30m", "d2"),
        dataset_change("1h", "d3")
    );
    let sim = run("", &scenario);
    assert_eq!(sim.cluster.versions.len(), 2, "v1 and one more");
    assert_eq!(sim.cluster.versions["ml/churn-v2"].spec.dataset().unwrap().version, "d3");
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    let v2_created = sim.timeline.iter().find(|e| e.version == Some(2) && e.reason == "VersionCreated").unwrap();
    assert_eq!(v2_created.time, "2026-01-01T02:00:00Z".parse().unwrap(), "v2 starts when v1's training ends");
}

#[test]
fn pinned_version_rolls_back_declaratively_and_unpinning_holds() {
    let scenario = format!(
        "duration: 4d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}  - {{at: 2d, set: {{spec.pinnedVersion: 1}}}}\n  - {{at: 3d, set: {{spec.pinnedVersion: null}}}}\n",
        dataset_change("1d", "d2")
    );
    let mut sim = simulate("", &scenario);
    sim.run_until("2026-01-02T12:00:00Z".parse().unwrap());
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    sim.run_until("2026-01-03T12:00:00Z".parse().unwrap());
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving), "pinning v1 serves v1 again");
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Retired));
    assert_eq!(deployed(&sim), Some(1));
    sim.run();
    assert_eq!(deployed(&sim), Some(1), "removing the pin does not bring back a retired version");
    assert!(sim.cluster.violations.is_empty());
}

#[test]
fn pinning_a_version_that_does_not_exist_stalls_and_touches_nothing() {
    let scenario =
        "duration: 2d\ndefaults: {metrics: {auc: 0.9}}\nchanges:\n  - {at: 1d, set: {spec.pinnedVersion: 7}}\n";
    let sim = run("", scenario);
    let status = model_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "PinnedVersionUnavailable"));
    assert!(stalled.message.contains("v1 keeps serving"), "{}", stalled.message);
    assert_eq!(deployed(&sim), Some(1));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert!(sim.timeline.iter().any(|e| e.reason == "PinnedVersionUnavailable" && e.warning));
}

#[test]
fn history_is_pruned_but_never_the_serving_the_rollback_target_or_the_newest() {
    let mut changes = String::new();
    for day in 1..=8 {
        changes += &dataset_change(&format!("{day}d"), &format!("d{}", day + 1));
    }
    // Every even version is rejected (auc too low), so finished versions pile up.
    let scenario = format!(
        "duration: 10d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{2: {{metrics: {{auc: 0.5}}}}, 4: {{metrics: {{auc: 0.5}}}}, 6: {{metrics: {{auc: 0.5}}}}, 8: {{metrics: {{auc: 0.5}}}}}}\nchanges:\n{changes}"
    );
    let sim = run("  versionHistoryLimit: 2\n", &scenario);
    let mut kept: Vec<u32> = sim.cluster.versions.values().map(|v| v.spec.version).collect();
    kept.sort();
    // Finished: v1..v8. v7 is the rollback target (newest Retired) and counts towards the
    // limit of 2, so one other finished version stays: the newest, v8. v9 serves.
    assert_eq!(kept, [7, 8, 9]);
    assert_eq!(phase(&sim, 9), Some(VersionPhase::Serving));
    assert_eq!(model_status(&sim).latest_version, Some(9));
    assert!(!sim.cluster.jobs.contains_key("ml/churn-v1-train"), "a pruned version's Job goes with it");
}

#[test]
fn run_history_limit_keeps_the_newest_runs_and_every_version_keeps_what_its_run_reported() {
    let mut changes = String::new();
    for day in 1..=4 {
        changes += &dataset_change(&format!("{day}d"), &format!("d{}", day + 1));
    }
    // v3 is rejected: a rejected version's run counts like any other.
    let scenario = format!(
        "duration: 6d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{3: {{metrics: {{auc: 0.5}}}}}}\nchanges:\n{changes}"
    );
    let sim = run("  runHistoryLimit: 2\n", &scenario);
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    let mut jobs: Vec<&str> = sim.cluster.jobs.keys().map(String::as_str).collect();
    jobs.sort();
    assert_eq!(jobs, ["ml/churn-v4-train", "ml/churn-v5-train"], "the two newest runs stay");
    assert!(sim.cluster.pods.keys().all(|p| p.starts_with("ml/churn-v4-train") || p.starts_with("ml/churn-v5-train")));
    assert_eq!(sim.cluster.versions.len(), 5, "versionHistoryLimit alone prunes versions");
    assert_eq!(version_status(&sim, 1).metrics["auc"], 0.9, "v1 keeps the metrics its deleted run reported");
    assert_eq!(phase(&sim, 3), Some(VersionPhase::Rejected));
    assert_eq!(phase(&sim, 5), Some(VersionPhase::Serving));
}

#[test]
fn pruning_takes_only_its_own_namespace_s_jobs_and_pods() {
    // Two Models named churn, in ml and in ml2; only the one in ml retrains (the first Model a
    // change names), and its history limit of 1 prunes its v1. The same-named Job of ml2 and
    // its pods stay: the garbage collector follows owners, not names.
    let other = MODEL.replace("namespace: ml}", "namespace: ml2}");
    let mut changes = String::new();
    for day in 1..=2 {
        changes += &dataset_change(&format!("{day}d"), &format!("d{}", day + 1));
    }
    let scenario = format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{changes}");
    let texts = [
        ("model.yaml".to_string(), format!("{MODEL}  versionHistoryLimit: 1\n")),
        ("other.yaml".to_string(), format!("{other}  versionHistoryLimit: 1\n")),
        ("scenario.yaml".to_string(), scenario.replace("{at:", "{model: churn, at:")),
    ];
    let mut sim = Simulation::new(Scenario::parse(&texts).expect("scenario parses"));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert!(!sim.cluster.jobs.contains_key("ml/churn-v1-train"), "ml's v1 was pruned with its Job");
    assert!(sim.cluster.jobs.contains_key("ml2/churn-v1-train"), "ml2's v1 keeps its Job");
    let pods_of = |ns: &str| sim.cluster.pods.keys().filter(|k| k.starts_with(&format!("{ns}/churn-v1-train"))).count();
    assert_eq!(pods_of("ml"), 0);
    assert!(pods_of("ml2") > 0, "ml2's training pod stays");
}

#[test]
fn a_termination_message_that_is_not_json_fails_the_version_with_the_start_of_it() {
    let scenario = "duration: 1d\nversions: {1: {terminationMessage: 'Traceback (most recent call last): KeyError'}}\n";
    let sim = run("", scenario);
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Failed));
    let message = version_status(&sim, 1).message.unwrap();
    assert!(message.contains("not JSON") && message.contains("Traceback"), "{message}");
    let status = model_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!(stalled.reason, "NoServableVersion", "nothing serves and nothing will until the inputs change");
}

#[test]
fn a_gate_on_a_metric_the_trainer_did_not_report_fails_with_metric_missing() {
    let scenario = "duration: 1d\ndefaults: {metrics: {accuracy: 0.9}}\n";
    let sim = run("", scenario);
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Rejected));
    let gates = version_status(&sim, 1).gate_results;
    assert_eq!(gates[0].reason.as_deref(), Some("MetricMissing"));
}

#[test]
fn an_unknown_artifact_placeholder_stalls_without_touching_what_serves() {
    let scenario = "duration: 2d\ndefaults: {metrics: {auc: 0.9}}\nchanges:\n  - {at: 1d, set: {spec.training.artifactUri: 's3://m/{model}/{run}'}}\n";
    let sim = run("", scenario);
    let status = model_status(&sim);
    assert_eq!(status.phase, Some(ModelPhase::Stalled));
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!(stalled.reason, "InvalidArtifactUri");
    assert_eq!(sim.cluster.versions.len(), 1, "no version is trained from a spec that cannot be acted on");
    assert_eq!(deployed(&sim), Some(1));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
}

#[test]
fn a_controller_restart_after_any_write_converges_to_the_same_outcome() {
    let quickstart =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/scenario.yaml")).unwrap();
    let model =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/model.yaml")).unwrap();
    let texts = [("model.yaml".to_string(), model), ("scenario.yaml".to_string(), quickstart)];
    let scenario = Scenario::parse(&texts).unwrap();
    let mut baseline = Simulation::new(scenario.clone());
    baseline.run();
    let expected = final_state(&baseline);
    assert_eq!(expected.deployed, Some(2));
    let crashes = Simulation::crash_points(&scenario);
    for crash in &crashes {
        let mut sim = Simulation::new(scenario.clone());
        sim.crash = Some(*crash);
        sim.run();
        let context = format!("crash at reconcile {} after {} writes", crash.at_reconcile, crash.after_writes);
        assert_eq!(final_state(&sim), expected, "{context}");
        assert!(sim.cluster.violations.is_empty(), "{context}: {:?}", sim.cluster.violations);
        let twice: Vec<_> = sim.cluster.job_creations.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{context}: Jobs created twice: {twice:?}");
    }
    assert!(crashes.len() > 50, "the restart test covers every reconcile ({} runs)", crashes.len());
}

#[test]
fn quickstart_tells_its_story() {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")]).unwrap();
    let mut sim = Simulation::new(scenario);
    sim.run();
    let report = Report::of(&sim);
    assert!(report.violations.is_empty());
    let phases: Vec<_> = report.models[0].versions.iter().map(|v| v.phase.unwrap()).collect();
    use VersionPhase::*;
    assert_eq!(phases, [Retired, Serving, Rejected, RolledBack]);
    assert_eq!(report.models[0].serving_version, Some(2));
    let text = report.to_text();
    assert!(text.contains("VersionRolledBack") && text.contains("restored the pod template of v2"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(json["models"][0]["servingVersion"], 2);
}

#[test]
fn a_short_progress_deadline_rolls_back_sooner() {
    let scenario = format!(
        "duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{2: {{healthy: false}}}}\nchanges:\n{}",
        dataset_change("1d", "d2")
    );
    let sim = run("    progressDeadlineSeconds: 120\n", &scenario);
    let rolled_back = sim.timeline.iter().find(|e| e.reason == "VersionRolledBack").unwrap();
    let started = sim.timeline.iter().find(|e| e.reason == "VersionRollingOut" && e.version == Some(2)).unwrap();
    assert_eq!(rolled_back.time.duration_since(started.time), jiff::SignedDuration::from_secs(120));
}

const CANARY: &str =
    "    strategy:\n      canary:\n        steps: [{weight: 25, pause: 1h}, {weight: 50, pause: 2h}]\n";

#[test]
fn a_canary_goes_through_every_step_then_promotes_without_dropping_capacity() {
    let scenario =
        format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}", dataset_change("1d", "d2"));
    let mut sim = simulate(CANARY, &scenario);
    sim.run_until("2026-01-02T01:00:00Z".parse().unwrap());
    // v2 trained 00:00-00:30; step 1 (25% of 3 replicas = 1 pod, 33% effective) from 00:32.
    let canary = &sim.cluster.deployments["ml/churn-canary"];
    assert_eq!(modelcycle::objects::deployment::deployed_version(canary), Some(2));
    assert_eq!(canary.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(deployed(&sim), Some(1), "the stable Deployment still runs v1");
    let progress = sim.cluster.versions["ml/churn-v2"].status.as_ref().unwrap().canary.clone().unwrap();
    assert_eq!((progress.step, progress.canary_replicas, progress.effective_weight), (0, 1, 33));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Retired));
    assert_eq!(deployed(&sim), Some(2));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"), "the canary is removed after promotion");
    let reasons: Vec<_> = version_status(&sim, 2).decisions.iter().map(|d| d.reason.clone()).collect();
    assert_eq!(
        reasons,
        ["JobCreated", "GatesPassed", "CanaryStarted", "CanaryStepDone", "CanaryStepDone", "CanaryPromoted"]
    );
    let times: Vec<_> = version_status(&sim, 2).decisions.iter().map(|d| d.time.0.to_string()).collect();
    // Ready 00:30; canary pods up 00:32, held 1h → 01:32; 50% pods up 01:34, held 2h → 03:34;
    // the stable Deployment takes v2 and is done 03:36.
    assert_eq!(
        times[2..],
        ["2026-01-02T00:30:00Z", "2026-01-02T01:32:00Z", "2026-01-02T03:34:00Z", "2026-01-02T03:36:00Z"]
    );
}

#[test]
fn a_canary_that_never_becomes_available_is_removed_and_the_stable_version_keeps_all_replicas() {
    let scenario = format!(
        "duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions: {{2: {{healthy: false}}}}\nchanges:\n{}",
        dataset_change("1d", "d2")
    );
    let sim = run(CANARY, &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(deployed(&sim), Some(1));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert!(record.message.contains("the canary of v2 did not become available at step 1/2"), "{}", record.message);
    assert!(conditions::is_true(&model_status(&sim).conditions, conditions::DEGRADED));
}

#[test]
fn a_single_replica_canary_says_what_weight_it_really_has() {
    let scenario =
        format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}", dataset_change("1d", "d2"));
    let model = "    strategy:\n      canary:\n        steps: [{weight: 10}]\n";
    let texts = [
        ("model.yaml".to_string(), format!("{}{model}", MODEL.replace("replicas: 3", "replicas: 1"))),
        ("scenario.yaml".to_string(), scenario),
    ];
    let mut sim = Simulation::new(Scenario::parse(&texts).unwrap());
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    let started = version_status(&sim, 2).decisions.iter().find(|d| d.reason == "CanaryStarted").cloned().unwrap();
    assert!(started.message.contains("1 of 1 replicas: 100% effective"), "{}", started.message);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
}

#[test]
fn a_controller_restart_after_any_write_of_a_canary_converges_to_the_same_outcome() {
    let scenario =
        format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}", dataset_change("1d", "d2"));
    converges_after_any_crash(CANARY, &scenario);
}

#[test]
fn a_canary_step_costs_a_handful_of_writes_and_a_pause_none() {
    let scenario =
        format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}", dataset_change("1d", "d2"));
    let mut sim = simulate(CANARY, &scenario);
    let mut writes_at = |t: &str| {
        sim.run_until(t.parse().unwrap());
        sim.cluster.writes
    };
    let before = writes_at("2026-01-02T00:29:00Z");
    let step1_up = writes_at("2026-01-02T00:33:00Z");
    let step1_end = writes_at("2026-01-02T01:31:00Z");
    let step2_up = writes_at("2026-01-02T01:35:00Z");
    let step2_end = writes_at("2026-01-02T03:33:00Z");
    let promoted = writes_at("2026-01-02T03:37:00Z");
    let counts =
        [step1_up - before, step1_end - step1_up, step2_up - step1_end, step2_end - step2_up, promoted - step2_end];
    println!(
        "writes: into step 1 {}, pause 1 {}, into step 2 {}, pause 2 {}, promotion {}",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
    assert_eq!(counts[1], 0, "nothing is written while a step holds");
    assert_eq!(counts[3], 0, "nothing is written while a step holds");
    assert!(counts.iter().all(|c| *c <= 8), "{counts:?}");
}

#[test]
fn the_canary_example_tells_its_story() {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/canary")]).unwrap();
    let mut sim = Simulation::new(scenario);
    sim.run();
    let report = Report::of(&sim);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let phases: Vec<_> = report.models[0].versions.iter().map(|v| v.phase.unwrap()).collect();
    use VersionPhase::*;
    assert_eq!(phases, [Retired, Serving, RolledBack], "v2 rolled out step by step, v3 never became ready");
    assert_eq!(report.models[0].serving_version, Some(2));
    let steps: Vec<_> =
        sim.timeline.iter().filter(|e| e.version == Some(2) && e.message.contains("canary step")).collect();
    assert!(steps.len() >= 2, "v2 went through its canary steps: {steps:?}");
    let v2 = sim.cluster.deployments.values().find(|d| d.metadata.name.as_deref() == Some("ranker")).unwrap();
    assert_eq!(v2.spec.as_ref().unwrap().replicas, Some(4), "v2 keeps every replica after v3's canary is removed");
    assert!(!sim.cluster.deployments.keys().any(|k| k.ends_with("-canary")), "the canary Deployment is gone");
}

#[test]
fn engines_train_with_progress_and_a_replaced_ray_job_goes_with_its_submitter() {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/distributed")]).unwrap();
    let mut sim = Simulation::new(scenario);
    sim.run();
    let c = &sim.cluster;
    assert!(c.job_creations.values().all(|n| *n == 1), "never a second run of a version: {:?}", c.job_creations);
    assert!(c.job_creations.contains_key("ml/recommender-v2-train"), "the recommender trained v2 across the restart");
    assert!(!c.ray_jobs.contains_key("ml/forecast-v2-train"), "the replaced version's RayJob is deleted");
    assert!(!c.jobs.contains_key("ml/forecast-v2-train"), "and its submitter Job with it");
    assert!(!c.pods.keys().any(|k| k.starts_with("ml/forecast-v2-train")), "and the submitter's pods");
    let t = &c.train_jobs["ml/recommender-v2-train"];
    assert_eq!(t.spec.trainer.as_ref().unwrap().num_nodes, Some(4));
    assert!(t.labels().get("kueue.x-k8s.io/queue-name").is_some_and(|q| q == "team-ml"));
    let v2 = &c.versions["ml/recommender-v2"];
    let progress = v2.status.as_ref().unwrap().progress.as_ref().expect("the TrainJob's progress is on its version");
    assert_eq!(progress.percent, Some(100));
    assert_eq!(progress.metrics.get("ndcg").map(String::as_str), Some("0.43"));
    let forecast_v3 = c.versions["ml/forecast-v3"].status.as_ref().unwrap();
    assert_eq!(forecast_v3.progress.as_ref().unwrap().message.as_deref(), Some("RayJob Complete, Ray job SUCCEEDED"));
}

#[test]
fn every_example_scenario_states_its_outcome_and_meets_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut run = vec![];
    for dir in std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()) {
        if !dir.join("scenario.yaml").exists() {
            continue;
        }
        let scenario = Scenario::load(&[&dir]).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert!(scenario.file.expect.is_some(), "examples/{name} states no `expect:` block");
        let mut sim = Simulation::new(scenario);
        sim.run();
        let report = Report::of(&sim);
        assert!(report.passed(), "examples/{name}: {:?} {:?}", report.violations, report.misses);
        run.push(name);
    }
    run.sort();
    assert_eq!(
        run,
        [
            "canary",
            "distributed",
            "gateway-canary",
            "kserve",
            "mlflow-source",
            "progressive",
            "quickstart",
            "retraining",
            "shadow"
        ]
    );
}

#[test]
fn simulate_exits_non_zero_when_a_run_misses_its_expected_outcome() {
    let dir = std::env::temp_dir().join(format!("modelcycle-expect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let quickstart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    std::fs::copy(quickstart.join("model.yaml"), dir.join("model.yaml")).unwrap();
    let scenario = std::fs::read_to_string(quickstart.join("scenario.yaml")).unwrap();
    let simulate = |scenario: &str| {
        std::fs::write(dir.join("scenario.yaml"), scenario).unwrap();
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_modelcycle")).arg("simulate").arg(&dir).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    assert_eq!(simulate(&scenario).0, Some(0), "the quickstart as shipped meets its outcome");
    let (code, out) = simulate(&scenario.replace("      serving: 2\n", "      serving: 4\n"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOT AS EXPECTED: Model churn: expected serving v4, got v2"), "{out}");
    let (code, out) = simulate(&scenario.replace("4: RolledBack}", "4: RolledBack, 5: Serving}"));
    assert_eq!(code, Some(1), "a version that never existed is a miss: {out}");
    let (code, out) = simulate(&scenario.replace("  jobs: 4 ", "  jobs: 5 "));
    assert_eq!(code, Some(1));
    assert!(out.contains("expected 5 training Jobs, got 4"), "{out}");
    let (code, out) = simulate(&scenario.replace("  maxWrites: 40 ", "  maxWrites: 10 "));
    assert_eq!(code, Some(1));
    assert!(out.contains("expected at most 10 API writes, got 38"), "{out}");
    let (code, _) = simulate(&scenario.replace("  jobs: 4 ", "  jbos: 4 "));
    assert_eq!(code, Some(2), "a misspelt expectation is refused, not ignored");
    let _ = std::fs::remove_dir_all(&dir);
}

const ROUTED: &str = "    trafficRouting:\n      gatewayAPI:\n        parentRefs: [{name: public}]\n";

#[test]
fn a_routed_canary_keeps_every_stable_replica_and_gets_pods_for_its_share() {
    let scenario =
        format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}", dataset_change("1d", "d2"));
    let mut sim = simulate(&format!("{ROUTED}{CANARY}"), &scenario);
    sim.run_until("2026-01-02T01:00:00Z".parse().unwrap());
    // 25% of 3 replicas by route weight: one canary pod, the stable side keeps all three.
    assert_eq!(sim.cluster.deployments["ml/churn-canary"].spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(3));
    let progress = sim.cluster.versions["ml/churn-v2"].status.as_ref().unwrap().canary.clone().unwrap();
    assert_eq!(
        (progress.canary_replicas, progress.effective_weight),
        (1, 25),
        "the weight is the route's, not the pods'"
    );
    let route = &sim.cluster.routes["ml/churn"];
    let weights: Vec<_> = route.spec.rules[0].backend_refs.iter().map(|b| (b.name.as_str(), b.weight)).collect();
    assert_eq!(weights, [("churn-stable", Some(75)), ("churn-canary", Some(25))]);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    let report = Report::of(&sim);
    assert_eq!(report.models[0].traffic, ["0", "25", "50", "0"]);
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    assert!(
        sim.cluster.services.contains_key("ml/churn-canary"),
        "the backend Service stays while the Model is routed"
    );
}

#[test]
fn a_routed_blue_green_switches_the_route_to_the_preview_and_back_after_the_hand_off() {
    let scenario =
        format!("duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}", dataset_change("1d", "d2"));
    let blue_green = "    strategy:\n      blueGreen: {scaleDownDelay: 10m}\n";
    let sim = run(&format!("{ROUTED}{blue_green}"), &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(Report::of(&sim).models[0].traffic, ["0", "100", "0"]);
    assert!(sim.cluster.services.contains_key("ml/churn-preview"), "the preview backend stays while routed");
    let route = &sim.cluster.routes["ml/churn"];
    let backends: Vec<_> = route.spec.rules[0].backend_refs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(backends, ["churn-stable", "churn-preview"]);
}

#[test]
fn removing_gateway_api_routing_deletes_the_route_and_its_backend_services() {
    let scenario = "duration: 2d\ndefaults: {metrics: {auc: 0.9}}\nchanges:\n  - {at: 1d, set: {spec.serving.trafficRouting: null}}\n";
    let mut sim = simulate(&format!("{ROUTED}{CANARY}"), scenario);
    sim.run_until("2026-01-01T12:00:00Z".parse().unwrap());
    assert!(sim.cluster.routes.contains_key("ml/churn"));
    assert!(sim.cluster.services.contains_key("ml/churn-stable"));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert!(!sim.cluster.routes.contains_key("ml/churn"), "the route goes with the routing");
    assert!(
        !sim.cluster.services.contains_key("ml/churn-stable") && !sim.cluster.services.contains_key("ml/churn-canary")
    );
    assert!(sim.cluster.services.contains_key("ml/churn"), "the Model's own Service stays");
}
