//! Progressive delivery in the simulated cluster: canary and blue-green rollouts judged on
//! scripted live metrics, manual gates, the guard window, and restarts at every write.
//!
//! Timeline of every scenario here: v1 trains 00:00-00:30 on day 0 and serves at 00:32; the
//! dataset changes at 1d, so v2 trains 1d 00:00-00:30 and its rollout starts at 1d 00:30
//! (Deployments take 2 minutes to become available).

use modelcycle::api::{AnalysisStage, AnalysisVerdict, ModelPhase, VersionPhase};
use modelcycle::lifecycle::conditions;
use modelcycle::objects::deployment::deployed_version;
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

use crate::sim_support;
use sim_support::*;

/// Analysis every 10 minutes: the error rate at most 5%, the p99 latency at most 20% worse than
/// the stable version's.
const ANALYSIS: &str = r#"    analysis:
      prometheus: {address: "http://prometheus.monitoring:9090"}
      interval: 10m
      metrics:
        - name: error-rate
          query: 'sum(rate(http_errors_total{model="{{model}}",namespace="{{namespace}}",version="{{version}}"}[5m])) / sum(rate(http_requests_total{model="{{model}}",version="{{version}}"}[5m]))'
          max: 0.05
        - name: latency-p99
          query: 'histogram_quantile(0.99, sum by (le) (rate(latency_bucket{model="{{model}}",version="{{version}}"}[5m])))'
          goal: Minimize
          maxRegression: 0.2
"#;

const CANARY: &str =
    "    strategy:\n      canary:\n        steps: [{weight: 25, pause: 30m}, {weight: 50, pause: 30m}]\n";

const BLUE_GREEN: &str = "    strategy:\n      blueGreen: {scaleDownDelay: 1h, previewService: true}\n";

/// Healthy metrics for every version, then `extra` lines.
fn scenario(extra: &str) -> String {
    format!(
        "duration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nchanges:\n{}{extra}live:\n  analysis:\n    - {{at: 0s, metric: error-rate, value: 0.01}}\n    - {{at: 0s, metric: latency-p99, value: 0.2}}\n",
        dataset_change("1d", "d2")
    )
}

/// `scenario` with more metric steps appended under `live.analysis`.
fn with_metrics(extra_changes: &str, steps: &[&str]) -> String {
    let mut s = scenario(extra_changes);
    for step in steps {
        s.push_str(&format!("    - {step}\n"));
    }
    s
}

fn at(day_time: &str) -> jiff::Timestamp {
    format!("2026-01-0{day_time}Z").parse().unwrap()
}

fn reasons(sim: &Simulation, n: u32) -> Vec<String> {
    version_status(sim, n).decisions.iter().map(|d| d.reason.clone()).collect()
}

fn rollout_condition(sim: &Simulation) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    conditions::find(&model_status(sim).conditions, conditions::ROLLING_OUT).cloned().unwrap()
}

fn service_track(sim: &Simulation) -> Option<String> {
    let selector = sim.cluster.services["ml/churn"].spec.as_ref()?.selector.clone()?;
    selector.get("modelcycle.io/track").cloned()
}

#[test]
fn a_canary_whose_metrics_hold_is_promoted_through_every_step() {
    let sim = run(&format!("{CANARY}{ANALYSIS}"), &scenario(""));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Retired));
    assert_eq!(deployed(&sim), Some(2));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    assert_eq!(
        reasons(&sim, 2),
        ["JobCreated", "GatesPassed", "CanaryStarted", "CanaryStepDone", "CanaryStepDone", "CanaryPromoted"]
    );
    let analysis = version_status(&sim, 2).analysis.unwrap();
    assert_eq!(analysis.failures, 0);
    assert_eq!(analysis.stage, AnalysisStage::Passed, "no guard window: analysis ends with the promotion");
    let m = analysis.measurements.iter().find(|m| m.metric == "error-rate").unwrap();
    assert!(m.query.contains(r#"model="churn",namespace="ml",version="2""#), "templated: {}", m.query);
    assert_eq!((m.value, m.threshold, m.verdict), (Some(0.01), Some(0.05), AnalysisVerdict::Pass));
    let latency = analysis.measurements.iter().find(|m| m.metric == "latency-p99").unwrap();
    assert_eq!(latency.bound, "maxRegression");
    assert!((latency.threshold.unwrap() - 0.24).abs() < 1e-9, "20% above the stable 0.2: {latency:?}");
    // Step 1 pods up at 00:32, measured 00:32..01:02 every 10 minutes; held 30m → 01:02.
    let times: Vec<_> = version_status(&sim, 2).decisions.iter().map(|d| d.time.0.to_string()).collect();
    assert_eq!(times[3], "2026-01-02T01:02:00Z");
}

#[test]
fn a_canary_whose_error_rate_rises_at_step_2_is_rolled_back_with_the_evidence() {
    let s = with_metrics("", &["{at: 1d 1h 10m, metric: error-rate, version: 2, value: 0.2}"]);
    let sim = run(&format!("{CANARY}{ANALYSIS}"), &s);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(deployed(&sim), Some(1));
    assert_eq!(reasons(&sim, 2)[3..], ["CanaryStepDone", "AnalysisFailed", "AnalysisFailed"]);
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(record.action, "RollBack");
    assert_eq!(record.time.0, at("2T01:12:00"), "the first measurement after the rise");
    assert!(record.message.contains("at canary step 2/2"), "{}", record.message);
    assert!(record.message.contains("error-rate = 0.2 against max 0.05"), "{}", record.message);
    let evidence = record.evidence.unwrap();
    assert_eq!(evidence[0]["metric"], "error-rate");
    assert_eq!(evidence[0]["value"], 0.2);
    let status = model_status(&sim);
    assert_eq!(status.phase, Some(ModelPhase::Degraded));
    assert!(conditions::is_true(&status.conditions, conditions::DEGRADED));
    let warned = sim.timeline.iter().filter(|e| e.warning && e.reason == "VersionRolledBack").count();
    assert_eq!(warned, 1);
}

#[test]
fn a_latency_regression_against_the_stable_version_counts_towards_the_failure_limit() {
    let model = format!("{CANARY}{}", ANALYSIS.replace("interval: 10m", "interval: 10m\n      failureLimit: 1"));
    let s = with_metrics("", &["{at: 1d 50m, metric: latency-p99, version: 2, value: 0.25}"]);
    let sim = run(&model, &s);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    // 0.25 > 0.2 × 1.2 at 00:52 (failure 1, tolerated) and 01:02 (failure 2).
    assert_eq!(record.time.0, at("2T01:02:00"));
    assert!(record.message.contains("analysis failed 2 times (failureLimit 1)"), "{}", record.message);
    assert!(record.message.contains("latency-p99 = 0.25 against maxRegression 0.24"), "{}", record.message);
}

#[test]
fn an_unreachable_prometheus_pauses_the_rollout_and_it_resumes_afterwards() {
    let s = format!("{}  unavailable: [{{from: 1d 40m, to: 1d 3h}}]\n", scenario(""));
    let mut sim = simulate(&format!("{CANARY}{ANALYSIS}"), &s);
    sim.run_until(at("2T02:30:00"));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut), "paused, not rolled back");
    assert!(sim.cluster.deployments.contains_key("ml/churn-canary"));
    let condition = rollout_condition(&sim);
    assert_eq!(condition.reason, "AnalysisInconclusive");
    assert!(condition.message.contains("PrometheusUnreachable") || condition.message.contains("unreachable"));
    assert!(condition.message.contains("(at canary step 1/2)"), "{}", condition.message);
    assert_eq!(model_status(&sim).phase, Some(ModelPhase::RollingOut));
    let inconclusive = sim.timeline.iter().filter(|e| e.reason == "AnalysisInconclusive").count();
    assert_eq!(inconclusive, 1, "one Event when the pause starts, not one per interval");
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert!(reasons(&sim, 2).contains(&"AnalysisResumed".to_string()));
    let record = version_status(&sim, 2).decisions.iter().find(|d| d.reason == "CanaryStepDone").cloned().unwrap();
    assert!(record.time.0 >= at("2T03:00:00"), "step 1 ended only after Prometheus was back");
}

#[test]
fn no_data_pauses_by_default_and_fails_when_asked_to() {
    let s = with_metrics("", &["{at: 1d, metric: error-rate, version: 2}"]);
    let mut sim = simulate(&format!("{CANARY}{ANALYSIS}"), &s);
    sim.run();
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut), "no data: inconclusive, the rollout waits");
    assert_eq!(rollout_condition(&sim).reason, "AnalysisInconclusive");
    assert!(rollout_condition(&sim).message.contains("the query returned no data"));

    let model = format!("{CANARY}{}", ANALYSIS.replace("interval: 10m", "interval: 10m\n      onNoData: Fail"));
    let sim = run(&model, &s);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
}

#[test]
fn a_query_prometheus_rejects_stalls_with_its_error_and_harms_nothing() {
    let s = with_metrics(
        "",
        &[
            "{at: 1d, metric: latency-p99, version: 2, rejected: 'parse error: unexpected character: ''}''', value: 0.2}",
            "{at: 1d 2h, metric: latency-p99, version: 2, value: 0.2}",
        ],
    );
    let mut sim = simulate(&format!("{CANARY}{ANALYSIS}"), &s);
    sim.run_until(at("2T01:00:00"));
    let status = model_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "AnalysisQueryFailed"));
    assert!(stalled.message.contains("parse error: unexpected character"), "{}", stalled.message);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert!(sim.timeline.iter().any(|e| e.warning && e.reason == "AnalysisQueryFailed"));
    sim.run();
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving), "the query works again: the rollout goes on");
    assert!(!conditions::is_true(&model_status(&sim).conditions, conditions::STALLED));
}

#[test]
fn blue_green_switches_the_service_then_hands_the_deployment_over_after_the_delay() {
    let mut sim = simulate(&format!("{BLUE_GREEN}{ANALYSIS}"), &scenario(""));
    sim.run_until(at("2T00:35:00"));
    // The preview runs v2 on every replica beside v1; the Service still selects v1's pods.
    let preview = &sim.cluster.deployments["ml/churn-preview"];
    assert_eq!((deployed_version(preview), preview.spec.as_ref().unwrap().replicas), (Some(2), Some(3)));
    assert_eq!(deployed(&sim), Some(1));
    assert_eq!(service_track(&sim).as_deref(), Some("stable"));
    assert!(sim.cluster.services.contains_key("ml/churn-preview"), "previewService: true");
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut));
    sim.run_until(at("2T00:43:00"));
    // Preview up at 00:32, measured 00:32 and 00:42: promoted by switching the selector.
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(service_track(&sim).as_deref(), Some("preview"));
    assert_eq!(deployed(&sim), Some(1), "v1 is kept for the scale-down delay");
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(deployed(&sim), Some(2), "after the delay the Deployment churn runs v2");
    assert_eq!(service_track(&sim).as_deref(), Some("stable"));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-preview"));
    assert!(!sim.cluster.services.contains_key("ml/churn-preview"));
    assert_eq!(reasons(&sim, 2)[2..], ["BlueGreenStarted", "BlueGreenPromoted", "BlueGreenHandedOff"]);
    let handed = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(handed.time.0, at("2T01:44:00"), "1h after the switch, plus the 2 minute rollout");
}

#[test]
fn blue_green_rolled_back_inside_its_guard_window_is_one_selector_switch() {
    let model = format!("{BLUE_GREEN}{}", ANALYSIS.replace("interval: 10m", "interval: 10m\n      guard: 2h"));
    let s = with_metrics("", &["{at: 1d 50m, metric: error-rate, version: 2, value: 0.3}"]);
    let mut sim = simulate(&model, &s);
    sim.run_until(at("2T00:45:00"));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(version_status(&sim, 2).analysis.unwrap().stage, AnalysisStage::Guard);
    let writes_before = sim.cluster.writes;
    let stable_generation = sim.cluster.deployments["ml/churn"].metadata.generation;
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1));
    assert_eq!(
        sim.cluster.deployments["ml/churn"].metadata.generation, stable_generation,
        "v1's Deployment was never touched: the rollback only switched the selector"
    );
    assert_eq!(service_track(&sim).as_deref(), Some("stable"));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-preview"));
    assert!(!sim.cluster.services.contains_key("ml/churn-preview"));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!((record.reason.as_str(), record.time.0), ("GuardFailed", at("2T00:52:00")));
    assert!(record.message.contains("failed its guard window"), "{}", record.message);
    assert_eq!(version_status(&sim, 1).decisions.last().unwrap().reason, "GuardRollBack");
    assert!(conditions::is_true(&model_status(&sim).conditions, conditions::DEGRADED));
    // Two version statuses, the Service, the preview Deployment and Service, the Model status.
    println!("writes for a blue-green guard rollback: {}", sim.cluster.writes - writes_before);
}

#[test]
fn a_rolling_update_that_fails_its_guard_window_rolls_back_to_the_previous_version() {
    let model = ANALYSIS.replace("interval: 10m", "interval: 10m\n      guard: 1h");
    let s = with_metrics("", &["{at: 1d 1h, metric: error-rate, version: 2, value: 0.5}"]);
    let sim = run(&model, &s);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1), "the Deployment runs v1 again");
    let v2 = version_status(&sim, 2);
    assert_eq!(v2.decisions.last().unwrap().reason, "GuardFailed");
    assert!(v2.analysis.unwrap().measurements.iter().any(|m| m.verdict == AnalysisVerdict::Fail));
    assert_eq!(model_status(&sim).phase, Some(ModelPhase::Degraded));
}

#[test]
fn a_guard_window_that_holds_ends_with_a_record() {
    let model = ANALYSIS.replace("interval: 10m", "interval: 10m\n      guard: 1h");
    let sim = run(&model, &scenario(""));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    let v2 = version_status(&sim, 2);
    assert_eq!(v2.analysis.as_ref().unwrap().stage, AnalysisStage::Passed);
    let passed = v2.decisions.iter().find(|d| d.reason == "GuardPassed").unwrap();
    assert_eq!(passed.time.0, at("2T01:32:00"), "one hour after v2 served at 00:32");
    let measured = v2.analysis.unwrap().measurements.iter().filter(|m| m.metric == "error-rate").count();
    assert_eq!(measured, 6, "every 10 minutes in the hour");
}

const MANUAL: &str = "    promotion: Manual\n    strategy:\n      canary:\n        steps: [{weight: 50}]\n";

#[test]
fn a_manual_gate_waits_reports_a_stale_annotation_and_promotes_on_the_right_one() {
    let changes = "  - {at: 1d 2h, annotate: {modelcycle.io/promote: \"1\"}}\n  - {at: 1d 5h, annotate: {modelcycle.io/promote: \"2\"}}\n";
    let mut sim = simulate(MANUAL, &scenario(changes));
    sim.run_until(at("2T01:00:00"));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut));
    let condition = rollout_condition(&sim);
    assert_eq!(condition.reason, "WaitingForPromotion");
    assert!(condition.message.contains(r#"modelcycle.io/promote="2""#), "{}", condition.message);
    assert_eq!(model_status(&sim).phase, Some(ModelPhase::RollingOut));
    assert_eq!(sim.cluster.deployments["ml/churn-canary"].spec.as_ref().unwrap().replicas, Some(2));
    sim.run_until(at("2T03:00:00"));
    let condition = rollout_condition(&sim);
    assert_eq!(condition.reason, "StalePromotion");
    assert!(condition.message.contains(r#"modelcycle.io/promote: "1" names another version"#), "{}", condition.message);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut), "a stale value is ignored");
    let stale = sim.timeline.iter().filter(|e| e.reason == "StalePromotion").collect::<Vec<_>>();
    assert_eq!(stale.len(), 1, "reported once");
    assert!(stale[0].warning);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    let promoted = version_status(&sim, 2).decisions.iter().find(|d| d.reason == "CanaryStepDone").cloned().unwrap();
    assert_eq!(promoted.time.0, at("2T05:00:00"));
    assert!(
        !sim.cluster.models["ml/churn"].metadata.annotations.as_ref().unwrap().is_empty(),
        "the controller never removes the annotation"
    );
}

#[test]
fn an_abort_annotation_rolls_the_canary_back() {
    let changes = "  - {at: 1d 2h, annotate: {modelcycle.io/abort: \"2\"}}\n";
    let sim = run(MANUAL, &scenario(changes));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(3));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!((record.reason.as_str(), record.time.0), ("Aborted", at("2T02:00:00")));
}

#[test]
fn a_manual_rolling_update_waits_before_it_starts() {
    let changes = "  - {at: 1d 3h, annotate: {modelcycle.io/promote: \"2\"}}\n";
    let mut sim = simulate("    promotion: Manual\n", &scenario(changes));
    sim.run_until(at("2T02:00:00"));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Ready));
    assert_eq!(deployed(&sim), Some(1), "nothing rolls until it is promoted");
    assert_eq!(rollout_condition(&sim).reason, "WaitingForPromotion");
    sim.run();
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(2));
}

#[test]
fn a_controller_restart_at_any_write_of_an_analysed_canary_converges() {
    let s = with_metrics("", &["{at: 1d 1h 10m, metric: error-rate, version: 2, value: 0.2}"]);
    converges_after_any_crash(&format!("{CANARY}{ANALYSIS}"), &s);
    converges_after_any_crash(&format!("{CANARY}{ANALYSIS}"), &scenario(""));
}

#[test]
fn a_controller_restart_at_any_write_of_a_blue_green_rollout_converges() {
    let model = format!("{BLUE_GREEN}{}", ANALYSIS.replace("interval: 10m", "interval: 10m\n      guard: 2h"));
    converges_after_any_crash(&model, &scenario(""));
    let s = with_metrics("", &["{at: 1d 50m, metric: error-rate, version: 2, value: 0.3}"]);
    converges_after_any_crash(&model, &s);
}

#[test]
fn an_analysis_interval_costs_one_write() {
    let mut sim = simulate(&format!("{CANARY}{ANALYSIS}"), &scenario(""));
    sim.run_until(at("2T00:33:00"));
    let before = sim.cluster.writes;
    // 00:42, 00:52: two measurements while step 1 holds; nothing else changes.
    sim.run_until(at("2T00:59:00"));
    let per_interval = (sim.cluster.writes - before) as f64 / 2.0;
    println!("API writes per analysis interval: {per_interval}");
    assert_eq!(sim.cluster.writes - before, 2, "one ModelVersion status write per measurement");
}

#[test]
fn the_progressive_example_tells_its_story() {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/progressive")]).unwrap();
    let mut sim = Simulation::new(scenario);
    sim.run();
    let report = modelcycle::sim::report::Report::of(&sim);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let phases: Vec<_> = report.models[0].versions.iter().map(|v| v.phase.unwrap()).collect();
    assert_eq!(phases, [VersionPhase::Retired, VersionPhase::Serving, VersionPhase::RolledBack]);
    let text = report.to_text();
    for line in
        ["WaitingForPromotion", "StalePromotion", "BlueGreenHandedOff", "GuardPassed", "failed its guard window"]
    {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(!sim.cluster.deployments.contains_key("ml/fraud-preview"));
}

#[test]
fn a_blue_green_preview_that_never_becomes_available_is_removed_and_nothing_serving_is_touched() {
    let s = scenario("")
        .replace("defaults: {metrics: {auc: 0.9}}", "defaults: {metrics: {auc: 0.9}}\nversions: {2: {healthy: false}}");
    let sim = run(&format!("{BLUE_GREEN}{ANALYSIS}"), &s);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1));
    assert_eq!(service_track(&sim).as_deref(), Some("stable"));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-preview"));
    assert!(!sim.cluster.services.contains_key("ml/churn-preview"));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(record.reason, "ProgressDeadlineExceeded");
    assert!(record.message.contains("v1 kept serving throughout"), "{}", record.message);
}

#[test]
fn a_newer_rollout_ends_the_guard_window_of_the_version_it_replaces() {
    let model = format!("{CANARY}{}", ANALYSIS.replace("interval: 10m", "interval: 10m\n      guard: 24h"));
    let s = scenario(&dataset_change("1d 6h", "d3"));
    let sim = run(&model, &s);
    assert_eq!(phase(&sim, 3), Some(VersionPhase::Serving));
    let v2 = version_status(&sim, 2);
    assert_eq!(v2.phase, Some(VersionPhase::Retired));
    let ended = v2.decisions.iter().find(|d| d.reason == "GuardEnded").unwrap();
    assert!(ended.message.contains("v3 is rolling out"), "{}", ended.message);
    assert_eq!(v2.analysis.unwrap().stage, AnalysisStage::Passed);
}

#[test]
fn a_canary_that_replaces_a_larger_canary_grows_the_stable_side_first() {
    // v2's canary is at its 50% step (2 of 3 pods) when v3 is ready and supersedes it: v3's
    // canary starts at 25% (1 pod), so the stable side grows from 1 to 2 pods. Applying the
    // smaller canary first would leave 2 pods serving between the two writes.
    let changes = format!("{}{}", dataset_change("1d", "d2"), dataset_change("1d 1h", "d3"));
    let scenario = format!(
        "duration: 2d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions:\n  2: {{trainingTime: 30m, rolloutTime: 1m}}\n  3: {{trainingTime: 5m, rolloutTime: 1m}}\nchanges:\n{changes}"
    );
    let sim = run(CANARY, &scenario);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Retired), "superseded during its canary");
    assert_eq!(phase(&sim, 3), Some(VersionPhase::Serving));
    let superseded = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(superseded.reason, "Superseded");
    let v3 = version_status(&sim, 3);
    assert!(v3.decisions.iter().any(|d| d.reason == "CanaryStarted"), "{:?}", v3.decisions);
}

mod any_lifecycle {
    use super::*;
    use proptest::prelude::*;

    /// One version as the simulated trainer and kubelet treat it.
    fn version() -> impl Strategy<Value = String> {
        (prop::sample::select(vec![0.7, 0.85, 0.9, 0.95]), 0..10u8, 1..180u32, any::<bool>()).prop_map(
            |(auc, fate, minutes, faster)| {
                let fail = if fate == 0 { ", fail: BackoffLimitExceeded" } else { "" };
                let healthy = if fate == 1 { ", healthy: false" } else { "" };
                let rollout = if faster { "1m" } else { "20m" };
                format!("{{metrics: {{auc: {auc}}}, trainingTime: {minutes}m, rolloutTime: {rollout}{fail}{healthy}}}")
            },
        )
    }

    /// A change a person makes, at some hour of the five days.
    fn change() -> impl Strategy<Value = String> {
        (1..118u32, 0..8u8, 1..6u32).prop_map(|(hour, kind, n)| match kind {
            0 => format!("  - {{at: {hour}h, set: {{spec.pinnedVersion: {n}}}}}\n"),
            1 => format!("  - {{at: {hour}h, set: {{spec.pinnedVersion: null}}}}\n"),
            2 => format!("  - {{at: {hour}h, annotate: {{modelcycle.io/abort: \"{n}\"}}}}\n"),
            3 => format!("  - {{at: {hour}h, annotate: {{modelcycle.io/promote: \"{n}\"}}}}\n"),
            _ => dataset_change(&format!("{hour}h"), &format!("d{hour}")),
        })
    }

    /// The error rate from some hour on: good or bad.
    fn error_rate() -> impl Strategy<Value = String> {
        (0..118u32, any::<bool>()).prop_map(|(hour, bad)| {
            format!("    - {{at: {hour}h, metric: error-rate, value: {}}}\n", if bad { 0.2 } else { 0.01 })
        })
    }

    fn lifecycle() -> impl Strategy<Value = (String, String)> {
        (
            0..3u8,
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(version(), 1..7),
            prop::collection::vec(change(), 0..8),
            prop::collection::vec(error_rate(), 0..4),
        )
            .prop_map(|(strategy, analysed, manual, versions, changes, rates)| {
                let mut model = match strategy {
                    0 => String::new(),
                    1 => CANARY.to_string(),
                    _ => BLUE_GREEN.to_string(),
                };
                if manual {
                    model += "    promotion: Manual\n";
                }
                if analysed {
                    model += ANALYSIS;
                    model += "      guard: 2h\n";
                }
                let mut scenario = "duration: 5d\nversions:\n".to_string();
                for (n, v) in versions.iter().enumerate() {
                    scenario += &format!("  {}: {v}\n", n + 1);
                }
                scenario += &format!("changes:\n{}", changes.concat());
                scenario += "live:\n  analysis:\n    - {at: 0s, metric: error-rate, value: 0.01}\n    - {at: 0s, metric: latency-p99, value: 0.2}\n";
                scenario += &rates.concat();
                (model, scenario)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Whatever the trainer, the kubelet, the live metrics and the person do, every version
        /// moves only along the transition table (the simulator checks each status it writes
        /// against it), nothing is left without its serving Deployment, and no reconcile loops.
        #[test]
        fn versions_move_only_along_the_transition_table((model, scenario) in lifecycle()) {
            let mut sim = simulate(&model, &scenario);
            sim.run();
            prop_assert!(sim.cluster.violations.is_empty(), "{:?}\n{model}\n{scenario}", sim.cluster.violations);
            prop_assert!(sim.cluster.versions.values().any(|v| v.status.is_some()), "something happened");
        }

        /// A controller that stops after any write of any plan of such a lifecycle ends where
        /// one that never stopped does.
        #[test]
        fn a_crash_anywhere_in_any_lifecycle_changes_nothing((model, scenario) in lifecycle(), at in any::<prop::sample::Index>()) {
            let parsed = simulate(&model, &scenario).scenario;
            let mut baseline = Simulation::new(parsed.clone());
            baseline.run();
            let crashes = Simulation::crash_points(&parsed);
            let crash = crashes[at.index(crashes.len())];
            let mut sim = Simulation::new(parsed);
            sim.crash = Some(crash);
            sim.run();
            prop_assert!(sim.cluster.violations.is_empty(), "{crash:?}: {:?}", sim.cluster.violations);
            prop_assert_eq!(final_state(&sim), final_state(&baseline), "{:?}\n{}\n{}", crash, model, scenario);
        }
    }
}

#[test]
fn aborting_the_serving_version_brings_back_the_one_it_replaced_at_once_without_steps_or_analysis() {
    // v2 is promoted through the canary by 1d 01:36; at 2d it is aborted while it serves.
    let changes = "  - {at: 2d, annotate: {modelcycle.io/abort: \"2\"}}\n";
    let extra = format!("{ANALYSIS}{CANARY}    rollbackWindow: 48h\n");
    let sim = run(&extra, &scenario(changes));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"), "no canary: it goes back in place");
    let aborted = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(
        (aborted.action.as_str(), aborted.reason.as_str(), aborted.time.0),
        ("RollBack", "Aborted", at("3T00:00:00"))
    );
    assert!(aborted.message.contains("v1 serves again at once"), "{}", aborted.message);
    let restored = version_status(&sim, 1).decisions.last().cloned().unwrap();
    assert_eq!((restored.action.as_str(), restored.reason.as_str()), ("Restore", "EmergencyRollBack"));
    // Both at the moment of the annotation; the Deployment runs v1 again in place.
    let after: Vec<_> =
        sim.timeline.iter().filter(|e| e.time >= at("3T00:00:00")).map(|e| (e.reason.as_str(), e.version)).collect();
    assert_eq!(after, [("UserChange", None), ("VersionServing", Some(1)), ("VersionRolledBack", Some(2))]);
    assert!(
        version_status(&sim, 1).analysis.is_none_or(|a| a.measurements.iter().all(|m| m.time.0 < at("3T00:00:00")))
    );
    assert!(conditions::is_true(&model_status(&sim).conditions, conditions::DEGRADED));
}

#[test]
fn an_emergency_rollback_outside_the_rollback_window_changes_nothing_and_says_why() {
    let changes = "  - {at: 2d 12h, annotate: {modelcycle.io/abort: \"2\"}}\n";
    let extra = format!("{CANARY}    rollbackWindow: 12h\n");
    let sim = run(&extra, &scenario(changes));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving), "v1 stopped serving 1d 01:36, over 12h before");
    assert_eq!(deployed(&sim), Some(2));
    let status = model_status(&sim);
    let stalled = conditions::find(&status.conditions, conditions::STALLED).cloned().unwrap();
    assert_eq!(stalled.reason, "NothingToRollBackTo");
    assert!(stalled.message.contains("longer ago than rollbackWindow"), "{}", stalled.message);
}

#[test]
fn a_pin_back_within_the_rollback_window_is_direct_and_outside_it_goes_through_the_canary() {
    for (window, canary) in [("48h", false), ("6h", true)] {
        let changes = "  - {at: 2d, set: {spec.pinnedVersion: 1}}\n";
        let extra = format!("{CANARY}    rollbackWindow: {window}\n");
        let sim = run(&extra, &scenario(changes));
        assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving), "window {window}");
        assert_eq!(deployed(&sim), Some(1));
        let reasons = reasons(&sim, 1);
        assert_eq!(reasons.contains(&"CanaryStarted".to_string()), canary, "window {window}: {reasons:?}");
    }
}

const ROUTED: &str = "    trafficRouting:\n      gatewayAPI:\n        parentRefs: [{name: public}]\n";
const SHADOWED: &str = "    strategy:\n      canary:\n        shadow: {duration: 30m, percent: 50}\n        steps: [{weight: 25, pause: 30m}, {weight: 50, pause: 30m}]\n";

#[test]
fn a_shadow_whose_metrics_hold_mirrors_requests_then_hands_over_to_the_canary_steps() {
    let mut sim = simulate(&format!("{ROUTED}{SHADOWED}{ANALYSIS}"), &scenario(""));
    sim.run_until(at("2T00:40:00"));
    // A copy of 50% of requests: 2 of 3 pods, no weight, the stable side keeps every replica.
    assert_eq!(sim.cluster.deployments["ml/churn-canary"].spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(3));
    let rule = &sim.cluster.routes["ml/churn"].spec.rules[0];
    assert_eq!(rule.backend_refs.iter().map(|b| b.weight).collect::<Vec<_>>(), [Some(100), Some(0)]);
    assert_eq!(rule.filters[0]["requestMirror"]["backendRef"]["name"], "churn-canary");
    assert_eq!(rule.filters[0]["requestMirror"]["percent"], 50);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving));
    assert_eq!(
        reasons(&sim, 2),
        [
            "JobCreated",
            "GatesPassed",
            "CanaryStarted",
            "ShadowPassed",
            "CanaryStepDone",
            "CanaryStepDone",
            "CanaryPromoted"
        ]
    );
    assert_eq!(modelcycle::sim::report::Report::of(&sim).models[0].traffic, ["0", "0+mirror", "25", "50", "0"]);
    let shadow_measured =
        version_status(&sim, 2).analysis.unwrap().measurements.iter().any(|m| m.time.0 < at("2T01:02:00"));
    assert!(shadow_measured, "the shadow was judged by analysis");
}

#[test]
fn a_shadow_that_fails_its_analysis_is_rolled_back_before_any_request_was_shifted() {
    let s = with_metrics("", &["{at: 1d, metric: error-rate, version: 2, value: 0.3}"]);
    let sim = run(&format!("{ROUTED}{SHADOWED}{ANALYSIS}"), &s);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Serving));
    assert_eq!(deployed(&sim), Some(1));
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!((record.action.as_str(), record.reason.as_str()), ("RollBack", "AnalysisFailed"));
    assert!(
        record.message.contains("in its shadow stage") && record.message.contains("before any request was shifted"),
        "{}",
        record.message
    );
    assert_eq!(record.evidence.unwrap()[0]["metric"], "error-rate");
    let traffic = modelcycle::sim::report::Report::of(&sim).models[0].traffic.clone();
    assert_eq!(traffic, ["0", "0+mirror", "0"], "no weight was ever given to v2");
}

/// `ANALYSIS` plus a distribution metric: the predicted scores' histogram of the new version
/// at most 0.1 (Jensen-Shannon) from the stable version's, with at least 500 samples a side.
fn with_agreement(min_samples: u32) -> String {
    format!(
        "{ANALYSIS}        - name: prediction-agreement\n          query: 'sum by (le) (increase(scores_bucket{{version=\"{{{{version}}}}\"}}[30m]))'\n          distribution: {{method: JensenShannon, minSamples: {min_samples}}}\n          max: 0.1\n"
    )
}

/// A histogram step for `version` under `live.analysis`.
fn scores(at: &str, version: u32, counts: &str) -> String {
    format!(
        "{{at: {at}, metric: prediction-agreement, version: {version}, histogram: {{bounds: [0.25, 0.5, 0.75, 1.0], counts: [{counts}]}}}}"
    )
}

#[test]
fn a_shadow_whose_predictions_disagree_with_the_champions_is_rolled_back_with_the_divergence_as_evidence() {
    let (v1, v2) = (scores("0s", 1, "400, 300, 200, 100"), scores("0s", 2, "100, 200, 300, 400"));
    let sim = run(&format!("{ROUTED}{SHADOWED}{}", with_agreement(500)), &with_metrics("", &[&v1, &v2]));
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(deployed(&sim), Some(1));
    let record = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!((record.action.as_str(), record.reason.as_str()), ("RollBack", "AnalysisFailed"));
    assert!(record.message.contains("prediction-agreement = 0.3"), "{}", record.message);
    assert!(record.message.contains("before any request was shifted"), "{}", record.message);
    let evidence = record.evidence.unwrap();
    assert_eq!(evidence.as_array().map(Vec::len), Some(1), "only the distribution failed: {evidence}");
    assert_eq!(
        (evidence[0]["metric"].as_str(), evidence[0]["threshold"].as_f64()),
        (Some("prediction-agreement"), Some(0.1))
    );
    assert!(evidence[0]["value"].as_f64().is_some_and(|v| v > 0.1), "{evidence}");
    assert_eq!(modelcycle::sim::report::Report::of(&sim).models[0].traffic, ["0", "0+mirror", "0"]);
}

#[test]
fn a_shadow_whose_predictions_agree_goes_on_through_canary_steps_judged_the_same_way() {
    let (v1, v2) = (scores("0s", 1, "400, 300, 200, 100"), scores("0s", 2, "390, 310, 205, 95"));
    // Halfway through the 50% step, v2's scores drift away from v1's: the canary is rolled back.
    let drifted = scores("26h", 2, "100, 200, 300, 400");
    let sim = run(&format!("{ROUTED}{SHADOWED}{}", with_agreement(500)), &with_metrics("", &[&v1, &v2, &drifted]));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RolledBack));
    assert_eq!(
        reasons(&sim, 2),
        [
            "JobCreated",
            "GatesPassed",
            "CanaryStarted",
            "ShadowPassed",
            "CanaryStepDone",
            "AnalysisFailed",
            "AnalysisFailed"
        ],
        "the failed measurement, then the rollback"
    );
    let analysis = version_status(&sim, 2).analysis.unwrap();
    let agreed = analysis
        .measurements
        .iter()
        .filter(|m| m.metric == "prediction-agreement" && m.verdict == AnalysisVerdict::Pass);
    assert!(agreed.count() >= 3, "the shadow and the first step compared the distributions");
    assert_eq!(modelcycle::sim::report::Report::of(&sim).models[0].traffic, ["0", "0+mirror", "25", "50", "0"]);
}

#[test]
fn a_shadow_with_too_few_predictions_to_compare_waits_and_says_so() {
    let (v1, v2) = (scores("0s", 1, "40, 30, 20, 10"), scores("0s", 2, "40, 30, 20, 10"));
    let mut sim = simulate(&format!("{ROUTED}{SHADOWED}{}", with_agreement(500)), &with_metrics("", &[&v1, &v2]));
    sim.run_until(at("2T03:00:00"));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::RollingOut), "neither promoted nor rolled back");
    let condition = rollout_condition(&sim);
    assert_eq!(condition.reason, "AnalysisInconclusive");
    assert!(
        condition.message.contains("v2 has 100 samples, v1 100, fewer than minSamples 500"),
        "{}",
        condition.message
    );
    let route = &sim.cluster.routes["ml/churn"].spec.rules[0];
    assert_eq!(
        route.backend_refs.iter().map(|b| b.weight).collect::<Vec<_>>(),
        [Some(100), Some(0)],
        "still only mirrored"
    );
}
