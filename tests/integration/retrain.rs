//! RetrainPolicy triggers and hygiene over simulated time.

use modelcycle::api::VersionPhase;
use modelcycle::lifecycle::conditions;
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

const MODEL: &str = r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: churn, namespace: ml}
spec:
  training:
    template: {spec: {containers: [{name: trainer, image: "trainer:1"}]}}
    dataset: {uri: "s3://data/churn", version: "d1"}
    artifactUri: "s3://models/{model}/{version}"
  evaluation:
    gates: [{metric: auc, min: 0.8}]
  serving:
    template: {spec: {containers: [{name: server, image: "server:1"}]}}
"#;

const BASELINE: &str = "{bounds: [0.2, 0.4, 0.6, 0.8, 1.0], counts: [10, 20, 40, 20, 10]}";
const BASELINE_LIVE: &str = "{bounds: [0.2, 0.4, 0.6, 0.8, 1.0], counts: [1000, 2000, 4000, 2000, 1000]}";
const SHIFTED_LIVE: &str = "{bounds: [0.2, 0.4, 0.6, 0.8, 1.0], counts: [500, 1000, 3000, 3000, 2500]}";

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {{name: churn, namespace: ml}}\nspec:\n  modelRef: {{name: churn}}\n{spec}"
    )
}

fn run(policy_spec: &str, scenario: &str) -> Simulation {
    let texts = [
        ("model.yaml".to_string(), MODEL.to_string()),
        ("policy.yaml".to_string(), policy(policy_spec)),
        ("scenario.yaml".to_string(), scenario.to_string()),
    ];
    let mut sim = Simulation::new(Scenario::parse(&texts).expect("scenario parses"));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    sim
}

fn versions(sim: &Simulation) -> Vec<(u32, String)> {
    let mut v: Vec<_> =
        sim.cluster.versions.values().map(|v| (v.spec.version, v.spec.trigger.reason.clone())).collect();
    v.sort();
    v
}

fn policy_status(sim: &Simulation) -> modelcycle::api::RetrainPolicyStatus {
    sim.cluster.policies["ml/churn"].status.clone().unwrap_or_default()
}

/// When the controller's own schedule code retrains under `cron` in `tz`, over `days` from
/// `start`: the time each scheduled version was created, in UTC, and the local time of the
/// occurrence it names.
fn scheduled(cron: &str, tz: &str, start: &str, days: u32) -> Vec<String> {
    let spec = format!("  schedule: {{cron: \"{cron}\", timeZone: {tz}}}\n  cooldown: 0s\n");
    let scenario =
        format!("start: \"{start}\"\nduration: {days}d\ndefaults: {{metrics: {{auc: 0.9}}, trainingTime: 5m}}\n");
    let sim = run(&spec, &scenario);
    // From the timeline: old versions are pruned by the history limit, their Events stay.
    sim.timeline
        .iter()
        .filter(|e| e.reason == "VersionCreated" && e.message.contains(": Schedule ("))
        .map(|e| {
            let local: Vec<&str> = e.message.trim_end_matches(')').rsplitn(3, ' ').collect();
            format!("{} {} {}", e.time, local[1], local[0])
        })
        .collect()
}

// The cron semantics across daylight-saving changes (croner's, the same as Vixie cron's):
// - a daily job whose time falls in the spring-forward gap runs once, at the first valid time
//   after the gap (02:30 → 03:00);
// - a daily job whose time occurs twice in the fall-back overlap runs once, at the first;
// - an hourly job runs once per real hour: the repeated hour twice, the skipped hour not.

#[test]
fn berlin_daily_run_in_the_spring_gap_runs_once_after_it() {
    assert_eq!(
        scheduled("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
        ["2026-03-28T01:30:00Z 02:30 CET", "2026-03-29T01:00:00Z 03:00 CEST", "2026-03-30T00:30:00Z 02:30 CEST"]
    );
}

#[test]
fn berlin_daily_run_in_the_autumn_overlap_runs_once() {
    assert_eq!(
        scheduled("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 3),
        ["2026-10-24T00:30:00Z 02:30 CEST", "2026-10-25T00:30:00Z 02:30 CEST", "2026-10-26T01:30:00Z 02:30 CET"]
    );
}

#[test]
fn new_york_daily_runs_across_both_changes() {
    assert_eq!(
        scheduled("30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", 3),
        ["2026-03-07T07:30:00Z 02:30 EST", "2026-03-08T07:00:00Z 03:00 EDT", "2026-03-09T06:30:00Z 02:30 EDT"]
    );
    assert_eq!(
        scheduled("30 1 * * *", "America/New_York", "2026-10-30T12:00:00Z", 3),
        ["2026-10-31T05:30:00Z 01:30 EDT", "2026-11-01T05:30:00Z 01:30 EDT", "2026-11-02T06:30:00Z 01:30 EST"]
    );
}

#[test]
fn hourly_runs_follow_real_hours() {
    let new_york = scheduled("0 * * * *", "America/New_York", "2026-11-01T03:30:00Z", 1);
    assert_eq!(
        new_york[..4],
        [
            "2026-11-01T04:00:00Z 00:00 EDT",
            "2026-11-01T05:00:00Z 01:00 EDT",
            "2026-11-01T06:00:00Z 01:00 EST",
            "2026-11-01T07:00:00Z 02:00 EST"
        ]
    );
    let berlin = scheduled("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", 1);
    assert_eq!(
        berlin[..3],
        ["2026-03-29T00:00:00Z 01:00 CET", "2026-03-29T01:00:00Z 03:00 CEST", "2026-03-29T02:00:00Z 04:00 CEST"]
    );
    assert_eq!(berlin.len(), 24, "once per real hour over the 24 simulated hours");
    assert!(!berlin.iter().any(|f| f.contains(" 02:00 ")), "02:00 does not exist that night: {berlin:?}");
}

fn latest(sim: &Simulation) -> u32 {
    sim.cluster.models["ml/churn"].status.as_ref().unwrap().latest_version.unwrap()
}

#[test]
fn a_year_of_a_daily_schedule_with_a_36h_cooldown() {
    // By hand: v1 (Initial) starts at day 0 00:00, so the 03:00 runs of day 0 and day 1 fall in
    // its 36h cooldown. Day 2 03:00 fires (51h later); its own cooldown lasts until day 3 15:00,
    // so day 3 is held back and day 4 fires: every even day from 2 to 364 fires, 182 runs, plus
    // v1: 183 versions in 365 days.
    let sim = run(
        "  schedule: {cron: '0 3 * * *', timeZone: UTC}\n  cooldown: 36h\n",
        "duration: 365d\nstart: '2026-01-01T00:00:00Z'\ndefaults: {metrics: {auc: 0.9}}\n",
    );
    assert_eq!(latest(&sim), 183);
    let status = policy_status(&sim);
    assert_eq!(status.last_trigger.unwrap().reason, "Schedule");
    assert_eq!(status.next_schedule_time.unwrap().0, "2027-01-01T03:00:00Z".parse().unwrap());
    assert!(status.recent_firings.len() <= 10);
    let held = sim.timeline.iter().filter(|e| e.reason == "RetrainSuppressed").count();
    assert_eq!(held, 183, "day 0, then every odd day 1..=363 are held back: 1 + 182");
}

#[test]
fn drift_rising_on_day_40_retrains_once_then_cooldown_holds_it_back() {
    let policy = "  drift: {query: 'sum by (le) (model_prediction_bucket)', method: PSI, threshold: 0.2, window: 6h, interval: 1h}\n  prometheus: {address: 'http://prometheus:9090'}\n  cooldown: 168h\n";
    let scenario = format!(
        "duration: 45d\ndefaults: {{metrics: {{auc: 0.9}}, reference: {{predictions: {BASELINE}}}}}\nlive:\n  drift:\n    - {{at: 0d, histogram: {BASELINE_LIVE}}}\n    - {{at: 40d, histogram: {SHIFTED_LIVE}}}\n"
    );
    let sim = run(policy, &scenario);
    assert_eq!(versions(&sim), [(1, "Initial".to_string()), (2, "Drift".to_string())]);
    let v2 = &sim.cluster.versions["ml/churn-v2"];
    assert_eq!(
        v2.spec.trigger.time.0,
        "2026-02-10T00:32:00Z".parse().unwrap(),
        "the first hourly check on day 40 (checks run from when v1 served, 00:32)"
    );
    assert_eq!(v2.spec.trigger.causes[0].evidence, "PSI=0.311 > 0.20 over 6h, 10000 samples");
    let status = policy_status(&sim);
    let held: Vec<_> = status.recent_firings.iter().filter_map(|f| f.suppressed.as_deref()).collect();
    assert!(held.iter().any(|s| s.starts_with("cooldown until 2026-02-17T00:32:00Z")), "{held:?}");
    let drift = status.drift.unwrap();
    assert!((drift.value.unwrap() - 0.3107304049211096).abs() < 1e-9);
}

#[test]
fn too_few_samples_give_no_verdict() {
    let policy = "  drift: {query: q, method: KS, threshold: 0.1, window: 1h, minSamples: 1000}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = format!(
        "duration: 2d\ndefaults: {{metrics: {{auc: 0.9}}, reference: {{predictions: {BASELINE}}}}}\nlive:\n  drift:\n    - {{at: 0d, histogram: {{bounds: [0.2, 0.4, 0.6, 0.8, 1.0], counts: [90, 0, 0, 0, 0]}}}}\n"
    );
    let sim = run(policy, &scenario);
    assert_eq!(latest(&sim), 1);
    let message = policy_status(&sim).drift.unwrap().message;
    assert!(message.contains("no verdict") && message.contains("minSamples 1000"), "{message}");
}

#[test]
fn differing_bucket_layouts_stall_the_policy_and_retrain_nothing() {
    let policy = "  drift: {query: q, method: JensenShannon, threshold: 0.1, window: 1h}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = format!(
        "duration: 2d\ndefaults: {{metrics: {{auc: 0.9}}, reference: {{predictions: {BASELINE}}}}}\nlive:\n  drift:\n    - {{at: 0d, histogram: {{bounds: [0.5, 1.0], counts: [500, 500]}}}}\n"
    );
    let sim = run(policy, &scenario);
    assert_eq!(latest(&sim), 1);
    let status = policy_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "DriftBucketsDiffer"));
    assert!(sim.timeline.iter().any(|e| e.reason == "DriftBucketsDiffer" && e.warning));
}

#[test]
fn an_unreachable_prometheus_retrains_nothing_and_says_so() {
    let policy = "  performance: {query: acc, min: 0.85, interval: 30m}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = "duration: 2d\ndefaults: {metrics: {auc: 0.9}}\nlive:\n  performance:\n    - {at: 0d, value: 0.5}\n  unavailable:\n    - {from: 0d, to: 3d}\n";
    let sim = run(policy, scenario);
    assert_eq!(latest(&sim), 1);
    let message = policy_status(&sim).performance.unwrap().message;
    assert!(message.contains("unreachable"), "{message}");
}

#[test]
fn performance_below_its_bound_for_less_than_for_does_nothing_longer_retrains() {
    let policy =
        "  performance: {query: acc, min: 0.85, for: 2h, interval: 30m}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = "duration: 3d\ndefaults: {metrics: {auc: 0.9}}\nlive:\n  performance:\n    - {at: 0d, value: 0.93}\n    - {at: 1d, value: 0.80}\n    - {at: 1d 1h, value: 0.93}\n    - {at: 2d, value: 0.79}\n    - {at: 2d 3h, value: 0.93}\n";
    let sim = run(policy, scenario);
    assert_eq!(versions(&sim), [(1, "Initial".to_string()), (2, "Performance".to_string())]);
    let v2 = &sim.cluster.versions["ml/churn-v2"];
    assert_eq!(v2.spec.trigger.time.0, "2026-01-03T02:00:00Z".parse().unwrap(), "2h after the drop on day 2");
    assert!(v2.spec.trigger.causes[0].evidence.starts_with("0.79 < min 0.85 for 2h"), "{:?}", v2.spec.trigger);
}

fn two_requests(concurrency: &str) -> Simulation {
    let policy = format!("  manual: true\n  concurrencyPolicy: {concurrency}\n");
    let scenario = "duration: 2d\ndefaults: {metrics: {auc: 0.9}, trainingTime: 5h}\nchanges:\n  - {at: 1d, policy: churn, annotate: {modelcycle.io/retrain-request: first}}\n  - {at: 1d 1h, policy: churn, annotate: {modelcycle.io/retrain-request: second}}\n";
    run(&policy, scenario)
}

#[test]
fn replace_stops_the_running_training_and_starts_the_new_one() {
    let sim = two_requests("Replace");
    let v2 = sim.cluster.versions["ml/churn-v2"].status.clone().unwrap();
    assert_eq!(v2.phase, Some(VersionPhase::Failed));
    assert_eq!(v2.decisions.last().unwrap().reason, "Replaced");
    assert!(!sim.cluster.jobs.contains_key("ml/churn-v2-train"), "the superseded training Job is stopped");
    let v3 = &sim.cluster.versions["ml/churn-v3"];
    assert_eq!(v3.spec.trigger.time.0, "2026-01-02T01:00:00Z".parse().unwrap());
    assert_eq!(v3.status.as_ref().unwrap().phase, Some(VersionPhase::Serving));
}

#[test]
fn forbid_holds_a_request_until_the_running_training_ends() {
    let sim = two_requests("Forbid");
    let v2 = sim.cluster.versions["ml/churn-v2"].status.as_ref().unwrap().phase;
    assert_eq!(v2, Some(VersionPhase::Retired), "v2 trained to the end, served, then v3 replaced it");
    let v3 = &sim.cluster.versions["ml/churn-v3"];
    assert_eq!(v3.spec.trigger.time.0, "2026-01-02T05:00:00Z".parse().unwrap(), "when v2's training ended");
    let held = policy_status(&sim).recent_firings.iter().filter_map(|f| f.suppressed.clone()).collect::<Vec<_>>();
    assert_eq!(held, ["v2 is training (concurrencyPolicy Forbid)"]);
}

#[test]
fn a_request_value_retrains_once_and_never_again() {
    let scenario = "duration: 3d\ndefaults: {metrics: {auc: 0.9}}\nchanges:\n  - {at: 1d, annotate: {modelcycle.io/retrain-request: r1}}\n  - {at: 2d, set: {metadata.labels: {touched: 'yes'}}}\n";
    let sim = run("  manual: true\n", scenario);
    assert_eq!(versions(&sim), [(1, "Initial".to_string()), (2, "Manual".to_string())]);
    assert_eq!(sim.cluster.models["ml/churn"].status.as_ref().unwrap().last_retrain_request.as_deref(), Some("r1"));
}

#[test]
fn suspend_holds_everything_back_and_records_why() {
    let scenario = "duration: 3d\ndefaults: {metrics: {auc: 0.9}}\n";
    let sim = run("  schedule: {cron: '0 12 * * *'}\n  suspend: true\n", scenario);
    assert_eq!(latest(&sim), 1);
    let held = policy_status(&sim).recent_firings.iter().filter_map(|f| f.suppressed.clone()).collect::<Vec<_>>();
    assert!(held.iter().all(|h| h == "the policy is suspended") && !held.is_empty(), "{held:?}");
}

#[test]
fn a_dataset_bump_is_a_data_change_subject_to_the_daily_budget() {
    let scenario = "duration: 2d\ndefaults: {metrics: {auc: 0.9}}\nchanges:\n  - {at: 1h, set: {spec.training.dataset.version: d2}}\n  - {at: 2h, set: {spec.training.dataset.version: d3}}\n";
    let sim = run("  dataChange: true\n  maxRetrainsPerDay: 2\n", scenario);
    // v1 and v2 use the day's budget of 2; d3 waits for midnight UTC.
    assert_eq!(
        versions(&sim),
        [(1, "Initial".to_string()), (2, "DataChange".to_string()), (3, "DataChange".to_string())]
    );
    assert_eq!(sim.cluster.versions["ml/churn-v3"].spec.trigger.time.0, "2026-01-02T00:00:00Z".parse().unwrap());
    assert_eq!(sim.cluster.versions["ml/churn-v3"].spec.dataset().unwrap().version, "d3");
}

#[test]
fn a_schedule_missed_while_the_controller_was_down_fires_at_most_once_within_its_deadline() {
    let scenario = "duration: 6d\ndefaults: {metrics: {auc: 0.9}}\ncontrollerDown:\n  - {from: 1d 2h, to: 1d 3h 30m}\n  - {from: 2d 2h, to: 4d 6h}\n";
    let sim = run("  schedule: {cron: '0 3 * * *', startingDeadline: 1h}\n", scenario);
    let mut fired: Vec<_> = sim
        .cluster
        .versions
        .values()
        .filter(|v| v.spec.trigger.reason == "Schedule")
        .map(|v| v.spec.trigger.time.0.to_string())
        .collect();
    fired.sort();
    // Day 0 03:00 on time; day 1 03:00 caught up at 03:30 (30m late, within 1h); days 2-4 missed
    // while down, and on return at day 4 06:00 the latest (03:00) is 3h late: recorded as missed;
    // day 5 03:00 on time.
    assert_eq!(fired, ["2026-01-01T03:00:00Z", "2026-01-02T03:30:00Z", "2026-01-06T03:00:00Z"]);
    let missed = policy_status(&sim).recent_firings.iter().filter_map(|f| f.suppressed.clone()).collect::<Vec<_>>();
    assert_eq!(missed, ["missed by 3h (startingDeadline 1h)"]);
}

#[test]
fn a_second_policy_for_one_model_is_stalled_and_drives_nothing() {
    // Created at the same instant, the policies are ordered by name: "churn" drives, "zz-second" is the duplicate.
    let second = "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {name: zz-second, namespace: ml}\nspec:\n  modelRef: {name: churn}\n  schedule: {cron: '*/10 * * * *'}\n";
    let texts = [
        ("model.yaml".to_string(), MODEL.to_string()),
        ("policy.yaml".to_string(), policy("  manual: true\n")),
        ("second.yaml".to_string(), second.to_string()),
        ("scenario.yaml".to_string(), "duration: 1d\ndefaults: {metrics: {auc: 0.9}}\n".to_string()),
    ];
    let mut sim = Simulation::new(Scenario::parse(&texts).unwrap());
    sim.run();
    assert_eq!(latest(&sim), 1, "the second policy's schedule never fires");
    let status = sim.cluster.policies["ml/zz-second"].status.clone().unwrap();
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!(stalled.reason, "DuplicatePolicy");
}

#[test]
fn the_retraining_example_tells_its_story() {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retraining")]).unwrap();
    let mut sim = Simulation::new(scenario);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    let mut triggers: Vec<_> =
        sim.cluster.versions.values().map(|v| (v.spec.version, v.spec.trigger.reason.clone())).collect();
    triggers.sort();
    let reasons: Vec<&str> = triggers.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons, ["Initial", "Schedule", "Drift", "Schedule", "Schedule", "Performance", "Schedule+Manual"]);
    let status = sim.cluster.policies["ml/fraud"].status.clone().unwrap();
    assert!(status.drift.unwrap().value.unwrap() < 0.2, "v3 learned the new patterns: no drift against its reference");
}

#[test]
fn a_controller_restart_after_any_write_converges_with_a_policy_too() {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retraining")]).unwrap();
    let mut baseline = Simulation::new(scenario.clone());
    baseline.run();
    let outcome = |sim: &Simulation| {
        let mut v: Vec<_> = sim
            .cluster
            .versions
            .values()
            .map(|v| (v.spec.version, v.spec.trigger.reason.clone(), v.status.as_ref().and_then(|s| s.phase)))
            .collect();
        v.sort_by_key(|x| x.0);
        v
    };
    let expected = outcome(&baseline);
    // The run has over two thousand acting reconciles: every write of every 97th one (a prime,
    // so the sample does not fall in step with the hourly checks) crashes it.
    let crashes = Simulation::crash_points(&scenario);
    let sampled: Vec<_> = crashes.iter().filter(|c| c.at_reconcile % 97 == 0).collect();
    assert!(sampled.iter().any(|c| c.after_writes >= 3), "some sampled plan has four or more writes");
    for crash in sampled {
        let mut sim = Simulation::new(scenario.clone());
        sim.crash = Some(*crash);
        sim.run();
        let context = format!("crash at reconcile {} after {} writes", crash.at_reconcile, crash.after_writes);
        assert_eq!(outcome(&sim), expected, "{context}");
        assert!(sim.cluster.job_creations.values().all(|n| *n == 1), "{context}");
    }
}

#[test]
fn a_trainer_that_learns_the_live_data_ends_the_drift_it_was_retrained_for() {
    let policy = "  drift: {query: q, method: KS, threshold: 0.1, window: 6h, interval: 1h}\n  prometheus: {address: 'http://p:9090'}\n  cooldown: 24h\n";
    let scenario = format!(
        "duration: 20d\ndefaults: {{metrics: {{auc: 0.9}}, referenceFromLive: true}}\nlive:\n  drift:\n    - {{at: 0d, histogram: {BASELINE_LIVE}}}\n    - {{at: 5d, histogram: {SHIFTED_LIVE}}}\n"
    );
    let sim = run(policy, &scenario);
    assert_eq!(versions(&sim), [(1, "Initial".to_string()), (2, "Drift".to_string())], "one retrain, then no drift");
    assert_eq!(policy_status(&sim).drift.unwrap().value, Some(0.0));
}

#[test]
fn drift_that_retraining_cannot_remove_is_reported_and_retrains_back_off() {
    // No cooldown written: the default of 1h applies. The drift never goes away (each new
    // version reports the same reference), so retraining for it is futile.
    let policy = "  drift: {query: q, method: PSI, threshold: 0.2, window: 6h, interval: 30s}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = format!(
        "duration: 7d\ndefaults: {{metrics: {{auc: 0.9}}, reference: {{predictions: {BASELINE}}}}}\nlive:\n  drift:\n    - {{at: 0d, histogram: {SHIFTED_LIVE}}}\n"
    );
    let sim = run(policy, &scenario);
    let drift_versions = versions(&sim).iter().filter(|(_, why)| why == "Drift").count();
    // Without bounds: one retrain per 30 s check for a week. With them: one per hour for the
    // first three, then 2h, 4h, ... at most a week apart.
    assert!((3..=9).contains(&drift_versions), "{drift_versions} drift retrains in a week: {:?}", versions(&sim));
    let gaps: Vec<i64> = {
        let mut starts: Vec<_> = sim
            .cluster
            .versions
            .values()
            .filter(|v| v.spec.trigger.reason == "Drift")
            .map(|v| v.spec.trigger.time.0)
            .collect();
        starts.sort();
        starts.windows(2).map(|w| w[1].duration_since(w[0]).as_secs() / 60).collect()
    };
    assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "the gaps between drift retrains never shrink: {gaps:?} min");
    assert!(gaps.iter().all(|g| *g >= 60), "the default cooldown of 1h holds: {gaps:?} min");
    let status = policy_status(&sim);
    let degraded = conditions::find(&status.conditions, conditions::DEGRADED).expect("a Degraded condition");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "DriftRetrainsIneffective"));
    let warnings = sim.timeline.iter().filter(|e| e.reason == "DriftRetrainsIneffective" && e.warning).count();
    assert_eq!(warnings, 1, "one Warning Event when it starts, not one per check");
    let held: Vec<_> = status.recent_firings.iter().filter_map(|f| f.suppressed.as_deref()).collect();
    assert!(held.iter().any(|h| h.contains("drift retrains back off")), "{held:?}");
}

#[test]
fn the_default_cooldown_bounds_what_fires_by_itself_and_an_explicit_zero_turns_it_off() {
    let scenario = "duration: 3h\ndefaults: {metrics: {auc: 0.9}, trainingTime: 2m, rolloutTime: 1m}\n";
    let every_ten_minutes = "  schedule: {cron: '*/10 * * * *'}\n";
    let bounded = run(every_ten_minutes, scenario);
    // Every version after v1 is a scheduled one (older ones are pruned past the history limit).
    let scheduled = |sim: &Simulation| latest(sim) - 1;
    assert!((2..=3).contains(&scheduled(&bounded)), "one an hour by default: {:?}", versions(&bounded));
    let unbounded = run(&format!("{every_ten_minutes}  cooldown: 0s\n"), scenario);
    assert!(scheduled(&unbounded) >= 15, "every ten minutes without a cooldown: {:?}", versions(&unbounded));
}

#[test]
fn a_retrain_request_is_not_held_by_the_default_cooldown() {
    let request = |at: &str, value: &str| {
        format!("    - {{at: {at}, policy: churn, annotate: {{modelcycle.io/retrain-request: \"{value}\"}}}}\n")
    };
    let scenario = format!(
        "duration: 2h\ndefaults: {{metrics: {{auc: 0.9}}, trainingTime: 5m}}\nchanges:\n{}{}",
        request("40m", "a"),
        request("50m", "b")
    );
    let sim = run("  manual: true\n", &scenario);
    assert_eq!(latest(&sim), 3, "each request retrains at once: {:?}", versions(&sim));
    let held = run("  manual: true\n  cooldown: 1h\n", &scenario);
    assert_eq!(latest(&held), 2, "a cooldown the policy sets holds requests too: {:?}", versions(&held));
}

#[test]
fn a_drift_query_with_an_unknown_placeholder_stalls_the_policy_and_holds_retraining() {
    let policy = "  drift: {query: 'sum(x{v=\"{{ver}}\"})', method: PSI, threshold: 0.2, window: 6h}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = format!(
        "duration: 2d\ndefaults: {{metrics: {{auc: 0.9}}, reference: {{predictions: {BASELINE}}}}}\nlive:\n  drift:\n    - {{at: 0d, histogram: {SHIFTED_LIVE}}}\nchanges:\n    - {{at: 1d, set: {{spec.training.dataset.version: d2}}}}\n"
    );
    let sim = run(policy, &scenario);
    let status = policy_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "InvalidDriftQuery"));
    assert!(stalled.message.contains("spec.drift.query uses the unknown placeholder {{ver}}"), "{}", stalled.message);
    assert!(stalled.message.contains("{{window}}"), "the known ones are listed: {}", stalled.message);
    // Fail closed: the new dataset does not retrain while the policy cannot be acted on.
    assert_eq!(versions(&sim), [(1, "Initial".to_string())]);
}

#[test]
fn a_policy_whose_model_is_missing_is_stalled_in_the_simulator_too() {
    let other = policy("  manual: true\n")
        .replace("name: churn, namespace", "name: orphan, namespace")
        .replace("modelRef: {name: churn}", "modelRef: {name: gone}");
    let texts = [
        ("model.yaml".to_string(), MODEL.to_string()),
        ("orphan.yaml".to_string(), other),
        ("scenario.yaml".to_string(), "duration: 1h\ndefaults: {metrics: {auc: 0.9}}\n".to_string()),
    ];
    let mut sim = Simulation::new(Scenario::parse(&texts).unwrap());
    sim.run();
    let status = sim.cluster.policies["ml/orphan"].status.clone().expect("the orphan was judged");
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "ModelNotFound"));
    assert_eq!(sim.timeline.iter().filter(|e| e.reason == "ModelNotFound").count(), 1);
}

#[test]
fn a_performance_trigger_with_min_above_max_would_retrain_every_cycle_so_it_is_refused() {
    // Admission refuses it (tests/integration/admission.rs); a policy stored before the rule still cannot
    // retrain faster than the default cooldown.
    let policy =
        "  performance: {query: acc, min: 0.9, max: 0.5, interval: 30s}\n  prometheus: {address: 'http://p:9090'}\n";
    let scenario = "duration: 1d\ndefaults: {metrics: {auc: 0.9}}\nlive:\n  performance:\n    - {at: 0d, value: 0.7}\n";
    let sim = run(policy, scenario);
    assert!(latest(&sim) <= 25, "at most one retrain an hour: {:?}", versions(&sim));
}

#[test]
fn a_cron_that_can_never_fire_stalls_the_policy_naming_the_field() {
    let sim = run("  schedule: {cron: '0 0 31 2 *'}\n", "duration: 1d\ndefaults: {metrics: {auc: 0.9}}\n");
    let status = policy_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "InvalidSchedule"));
    assert!(stalled.message.starts_with("spec.schedule.cron \"0 0 31 2 *\""), "{}", stalled.message);
}

use crate::sampling;

/// `n` samples of the proportions `p` over the bounds 0.2 .. 1.0, as a scenario histogram.
fn sampled(rng: &mut proptest::test_runner::TestRng, p: &[f64; 5], n: usize) -> String {
    format!("{{bounds: [0.2, 0.4, 0.6, 0.8, 1.0], counts: {:?}}}", sampling::counts(rng, p, n))
}

/// A year of daily drift checks on 200 live samples a day, all drawn from the reference's own
/// distribution until day 300, then from a shifted one.
fn a_year_of_small_samples(method: &str, threshold: &str) -> Simulation {
    let mut rng = sampling::seeded();
    let (same, shifted) = ([0.1, 0.2, 0.4, 0.2, 0.1], [0.03, 0.1, 0.3, 0.3, 0.27]);
    let mut live = String::new();
    for day in 0..365 {
        let p = if day < 300 { &same } else { &shifted };
        live += &format!("    - {{at: {day}d, histogram: {}}}\n", sampled(&mut rng, p, 200));
    }
    let policy = format!(
        "  drift: {{query: q, method: {method}, {threshold}, window: 24h, interval: 24h, minSamples: 100}}\n  prometheus: {{address: 'http://p:9090'}}\n  cooldown: 0s\n"
    );
    // The reference: 1,000 samples in exactly the proportions of `same`.
    let reference = "{bounds: [0.2, 0.4, 0.6, 0.8, 1.0], counts: [100, 200, 400, 200, 100]}";
    let scenario = format!(
        "duration: 365d\ndefaults: {{metrics: {{auc: 0.9}}, reference: {{predictions: {reference}}}}}\nlive:\n  drift:\n{live}"
    );
    run(&policy, &scenario)
}

/// When drift retrained the Model (from the timeline: old versions are pruned over a year).
fn drift_retrains(sim: &Simulation) -> Vec<jiff::Timestamp> {
    let drift =
        |e: &&modelcycle::sim::report::TimelineEntry| e.reason == "RetrainTriggered" && e.message.starts_with("Drift");
    sim.timeline.iter().filter(drift).map(|e| e.time).collect()
}

#[test]
fn a_threshold_from_significance_stays_quiet_for_a_year_of_small_unchanged_samples_and_catches_the_shift() {
    let shift: jiff::Timestamp = "2026-10-28T00:00:00Z".parse().unwrap(); // day 300
    for method in ["PSI", "KS", "JensenShannon"] {
        let sim = a_year_of_small_samples(method, "significance: 0.001");
        let retrains = drift_retrains(&sim);
        let before = retrains.iter().filter(|t| **t < shift).count();
        assert!(before <= 1, "{method}: {before} drift retrains in 300 days of unchanged data: {retrains:?}");
        let caught = retrains.iter().find(|t| **t >= shift).copied();
        assert!(
            caught.is_some_and(|t| t.duration_since(shift) < jiff::SignedDuration::from_hours(49)),
            "{method}: the shift on day 300 was caught at {caught:?}"
        );
        let drift = policy_status(&sim).drift.unwrap();
        assert!(drift.message.contains("the critical value at significance 0.001"), "{}", drift.message);
        assert!(drift.threshold.is_some_and(|t| t > 0.0), "the threshold used is recorded");
    }
    // The same data against a fixed PSI threshold of 0.05 (twice PSI's mean on unchanged data at
    // these sizes): unchanged data retrains again and again (15 times, with drift's backoff).
    let fixed = drift_retrains(&a_year_of_small_samples("PSI", "threshold: 0.05"));
    let before = fixed.iter().filter(|t| **t < shift).count();
    assert!(before >= 10, "a fixed threshold of 0.05 retrained {before} times on unchanged data");
}
