//! The Prometheus client against a real Prometheus.

use crate::support;

use modelcycle::sources::prometheus::{Prometheus, ReadingError, render_query};
use modelcycle::stats::{Histogram, psi};
use support::prometheus::{TestPrometheus, prediction_histogram, scores_by_version};

#[tokio::test]
async fn a_templated_query_round_trips_through_a_real_prometheus() {
    let prom = TestPrometheus::start("model_accuracy{model=\"churn\",version=\"3\"} 0.91\n").await;
    let client = Prometheus::new(&prom.address, None, false, None).unwrap();
    let query = render_query(
        "model_accuracy{model=\"{{model}}\",version=\"{{version}}\"}",
        &[("model", "churn"), ("version", "3")],
    );
    assert_eq!(client.number(&query).await.unwrap(), 0.91);
    prom.exposition.set("model_accuracy{model=\"churn\",version=\"3\"} 0.72\n");
    prom.wait_until_scraped("model_accuracy < 0.8").await;
    assert_eq!(client.number(&query).await.unwrap(), 0.72, "the value follows the exporter");
}

#[tokio::test]
async fn histogram_buckets_come_back_as_a_histogram() {
    let prom = TestPrometheus::start(&prediction_histogram("churn", &[5, 10, 20, 30, 20, 10, 5, 0, 0, 0])).await;
    let client = Prometheus::new(&prom.address, None, false, None).unwrap();
    let live = client.histogram("sum by (le) (model_prediction_bucket{model=\"churn\"})").await.unwrap();
    assert_eq!(live.bounds.len(), 11, "ten bounds and +Inf");
    assert_eq!(live.bounds[10], f64::INFINITY);
    assert_eq!(&live.counts[..7], &[5.0, 10.0, 20.0, 30.0, 20.0, 10.0, 5.0]);
    assert_eq!(live.total(), 100.0);
    let same = Histogram { bounds: live.bounds.clone(), counts: live.counts.clone() };
    assert_eq!(psi(&same, &live).unwrap(), 0.0);
}

#[tokio::test]
async fn a_rejected_query_carries_prometheus_own_error_text() {
    let prom = TestPrometheus::start("x 1\n").await;
    let client = Prometheus::new(&prom.address, None, false, None).unwrap();
    let Err(ReadingError::Rejected { kind, message }) = client.number("sum(rate(x[5m]").await else {
        panic!("expected a rejection")
    };
    assert_eq!(kind, "bad_data");
    assert!(message.contains("parse error"), "{message}");
    assert_eq!(client.number("does_not_exist").await, Err(ReadingError::NoData));
    let not_histogram = client.histogram("x").await.unwrap_err();
    assert!(not_histogram.to_string().contains("`le`"), "{not_histogram}");
}

/// The whole drift path: the policy's due check, rendered, run by the kube shell's readings
/// against a real Prometheus, judged by the core, which starts a version with the evidence.
#[tokio::test]
async fn drift_in_a_real_prometheus_histogram_retrains() {
    use modelcycle::lifecycle::{ledger::Ledger, model::plan_model, triggers::due_checks};
    let prom = TestPrometheus::start(&prediction_histogram("churn", &[50, 100, 200, 300, 200, 100, 50, 0, 0, 0])).await;
    let (model, mut children) = serving_world(&prom.address);
    let policy = children.policies[0].clone();
    let client = offline_context(&[]);
    let now = jiff::Timestamp::now();

    // Live traffic still looks like the reference: no drift.
    let due = due_checks(&policy, &model, &Ledger::new(&children.versions, now), now);
    assert_eq!(due.drift.as_deref(), Some("sum by (le) (model_prediction_bucket{model=\"churn\"})"));
    children.readings = modelcycle::kube::readings::take(&client, &policy, &due).await;
    let plan = plan_model(children.observed(&model), now);
    assert!(plan.created_versions().is_empty());
    let checked = &plan.policy_statuses()[0].1;
    assert_eq!(checked.drift.as_ref().unwrap().value, Some(0.0));

    // The predictions shift: the next check retrains.
    prom.exposition.set(prediction_histogram("churn", &[0, 0, 50, 100, 200, 300, 200, 100, 50, 0]));
    prom.wait_until_scraped("model_prediction_bucket{le=\"0.3\"} == 50").await;
    std::sync::Arc::make_mut(&mut children.policies[0]).status = Some((*checked).clone());
    let later = now + jiff::SignedDuration::from_mins(6);
    let due = due_checks(&children.policies[0], &model, &Ledger::new(&children.versions, later), later);
    children.readings = modelcycle::kube::readings::take(&client, &children.policies[0], &due).await;
    let plan = plan_model(children.observed(&model), later);
    let version = &plan.created_versions()[0];
    assert_eq!(version.spec.trigger.reason, "Drift");
    let evidence = &version.spec.trigger.causes[0].evidence;
    assert!(evidence.starts_with("PSI=") && evidence.contains("> 0.20 over 6h, 1000 samples"), "{evidence}");
}

/// A controller context whose Kubernetes client answers nothing (the readings here need no
/// Secret), with `allowed` as its Prometheus allowlist.
fn offline_context(allowed: &[&str]) -> modelcycle::kube::context::Context {
    let client = kube::Client::new(
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>().0,
        "ml",
    );
    let mut ctx = modelcycle::kube::context::Context::new(client, Default::default());
    ctx.prometheus_allowed = allowed.iter().map(|a| a.to_string()).collect();
    ctx
}

/// A Model whose v1 serves with a reference equal to the first exposition, and its drift policy.
fn serving_world(prometheus: &str) -> (modelcycle::api::Model, modelcycle::lifecycle::model::Children) {
    let model_yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/model.yaml")).unwrap();
    let reference = "{predictions: {bounds: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], counts: [5, 10, 20, 30, 20, 10, 5, 0, 0, 0]}}";
    let scenario = format!("duration: 1h\ndefaults: {{metrics: {{auc: 0.9}}, reference: {reference}}}\n");
    let sim_scenario =
        modelcycle::sim::scenario::Scenario::parse(&[("m.yaml".into(), model_yaml), ("s.yaml".into(), scenario)])
            .unwrap();
    let mut sim = modelcycle::sim::Simulation::new(sim_scenario);
    sim.run();
    let model = (**sim.cluster.models.values().next().unwrap()).clone();
    let mut children = sim.cluster.children_of(&model);
    let policy = format!(
        "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {{name: churn, namespace: ml, creationTimestamp: '2026-01-01T00:00:00Z'}}\nspec:\n  modelRef: {{name: churn}}\n  prometheus: {{address: '{prometheus}'}}\n  drift: {{query: 'sum by (le) (model_prediction_bucket{{model=\"{{{{model}}}}\"}})', method: PSI, threshold: 0.2, window: 6h}}\n"
    );
    children.policies = vec![std::sync::Arc::new(serde_yaml::from_str(&policy).unwrap())];
    (model, children)
}

#[tokio::test]
async fn a_drift_query_that_returns_no_histogram_stalls_the_policy_and_retrains_nothing() {
    use modelcycle::lifecycle::{conditions, ledger::Ledger, model::plan_model, triggers::due_checks};
    let prom = TestPrometheus::start("model_prediction_count{model=\"churn\"} 1000\n").await;
    let (model, mut children) = serving_world(&prom.address);
    std::sync::Arc::make_mut(&mut children.policies[0]).spec.drift.as_mut().unwrap().query =
        "sum(model_prediction_count)".into();
    let client = offline_context(&[]);
    let now = jiff::Timestamp::now();
    let due = due_checks(&children.policies[0], &model, &Ledger::new(&children.versions, now), now);
    children.readings = modelcycle::kube::readings::take(&client, &children.policies[0], &due).await;
    let plan = plan_model(children.observed(&model), now);
    assert!(plan.created_versions().is_empty());
    let status = &plan.policy_statuses()[0].1;
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "DriftQueryNotHistogram"));
    assert!(stalled.message.contains("`le`"), "{}", stalled.message);
    assert_eq!(plan.policy_events()[0].1.reason, "DriftQueryNotHistogram");
}

/// A canary Model whose analysis queries the real Prometheus at `address`: the error ratio of
/// the version at most 5%, its latency at most 50% above the stable version's.
const CANARY_MODEL: &str = r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: churn, namespace: ml}
spec:
  training:
    template: {spec: {containers: [{name: trainer, image: "trainer:1"}]}}
    dataset: {uri: "s3://data/churn", version: "d1"}
    artifactUri: "s3://models/{model}/{version}"
  serving:
    template: {spec: {containers: [{name: server, image: "server:1"}]}}
    replicas: 4
    strategy:
      canary:
        steps: [{weight: 25, pause: 20m}, {weight: 50, pause: 20m}]
    analysis:
      prometheus: {address: "ADDRESS", timeout: 5s}
      interval: 5m
      metrics:
        - name: error-ratio
          query: 'max(model_error_ratio{model="{{model}}",namespace="{{namespace}}",version="{{version}}"})'
          max: 0.05
        - name: latency
          query: 'max(model_latency_seconds{model="{{model}}",version="{{version}}"})'
          goal: Minimize
          maxRegression: 0.5
"#;

fn exposition(v2_errors: f64) -> String {
    format!(
        "model_error_ratio{{model=\"churn\",namespace=\"ml\",version=\"1\"}} 0.01\nmodel_error_ratio{{model=\"churn\",namespace=\"ml\",version=\"2\"}} {v2_errors}\nmodel_latency_seconds{{model=\"churn\",version=\"1\"}} 0.20\nmodel_latency_seconds{{model=\"churn\",version=\"2\"}} 0.22\n"
    )
}

/// The simulated cluster rolls v2 out by canary while the kube shell's own reading code asks the
/// real Prometheus every analysis query the core finds due.
fn canary_through_real_prometheus(rt: &tokio::runtime::Runtime, prom: &TestPrometheus) -> modelcycle::sim::Simulation {
    canary_through(rt, &prom.address)
}

/// The same, with the analysis querying whatever server is at `address`.
fn canary_through(rt: &tokio::runtime::Runtime, address: &str) -> modelcycle::sim::Simulation {
    analysed_through(rt, CANARY_MODEL, address)
}

/// The Model `manifest` (its Prometheus address `ADDRESS` replaced by `address`) gets new data
/// at 1d while the kube shell's own reading code takes every analysis reading the core finds due.
fn analysed_through(rt: &tokio::runtime::Runtime, manifest: &str, address: &str) -> modelcycle::sim::Simulation {
    let scenario = "duration: 2d\ndefaults: {metrics: {auc: 0.9}}\nchanges:\n  - {at: 1d, set: {spec.training.dataset.version: d2}}\n";
    let texts = [
        ("model.yaml".to_string(), manifest.replace("ADDRESS", address)),
        ("scenario.yaml".to_string(), scenario.to_string()),
    ];
    let mut sim = modelcycle::sim::Simulation::new(modelcycle::sim::scenario::Scenario::parse(&texts).unwrap());
    let _runtime = rt.enter();
    let client = offline_context(&[]);
    let handle = rt.handle().clone();
    sim.analysis_source = Some(Box::new(move |model, queries| {
        handle.block_on(modelcycle::kube::readings::take_analysis(&client, model, queries))
    }));
    sim
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn a_canary_is_promoted_while_its_live_metrics_hold_in_a_real_prometheus() {
    use modelcycle::api::{AnalysisVerdict, VersionPhase};
    let rt = runtime();
    let prom = rt.block_on(TestPrometheus::start(&exposition(0.01)));
    let mut sim = canary_through_real_prometheus(&rt, &prom);
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    let v2 = sim.cluster.versions["ml/churn-v2"].status.clone().unwrap();
    assert_eq!(v2.phase, Some(VersionPhase::Serving), "{:?}", v2.decisions);
    let analysis = v2.analysis.unwrap();
    let errors = analysis.measurements.iter().find(|m| m.metric == "error-ratio").unwrap();
    assert_eq!(
        errors.query, r#"max(model_error_ratio{model="churn",namespace="ml",version="2"})"#,
        "templated with the Model, its namespace and the canary's version"
    );
    assert_eq!((errors.value, errors.verdict), (Some(0.01), AnalysisVerdict::Pass));
    let latency = analysis.measurements.iter().find(|m| m.metric == "latency").unwrap();
    assert_eq!(latency.value, Some(0.22));
    assert!((latency.threshold.unwrap() - 0.30).abs() < 1e-9, "the stable version's 0.20 + 50%: {latency:?}");
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
}

#[test]
fn a_canary_whose_error_rate_rises_in_a_real_prometheus_is_rolled_back() {
    use modelcycle::api::VersionPhase;
    let rt = runtime();
    let prom = rt.block_on(TestPrometheus::start(&exposition(0.01)));
    let mut sim = canary_through_real_prometheus(&rt, &prom);
    // Step 1 (one canary pod of four) starts at 1d 00:32 and holds 20 minutes.
    sim.run_until("2026-01-02T00:40:00Z".parse().unwrap());
    let v2 = sim.cluster.versions["ml/churn-v2"].status.clone().unwrap();
    assert_eq!(v2.phase, Some(VersionPhase::RollingOut));
    assert_eq!(sim.cluster.deployments["ml/churn-canary"].spec.as_ref().unwrap().replicas, Some(1));
    prom.exposition.set(exposition(0.31));
    rt.block_on(prom.wait_until_scraped("model_error_ratio{version=\"2\"} > 0.3"));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    let v2 = sim.cluster.versions["ml/churn-v2"].status.clone().unwrap();
    assert_eq!(v2.phase, Some(VersionPhase::RolledBack));
    let record = v2.decisions.last().unwrap();
    assert!(record.message.contains("error-ratio = 0.31 against max 0.05"), "{}", record.message);
    assert_eq!(record.evidence.as_ref().unwrap()[0]["value"], 0.31);
    assert!(!sim.cluster.deployments.contains_key("ml/churn-canary"));
    assert_eq!(sim.cluster.deployments["ml/churn"].spec.as_ref().unwrap().replicas, Some(4));
    let v1 = sim.cluster.versions["ml/churn-v1"].status.clone().unwrap();
    assert_eq!(v1.phase, Some(VersionPhase::Serving));
}

#[test]
fn an_unreachable_analysis_prometheus_pauses_the_canary_through_the_shell() {
    use modelcycle::api::VersionPhase;
    let rt = runtime();
    let mut prom = rt.block_on(TestPrometheus::start(&exposition(0.01)));
    let mut sim = canary_through_real_prometheus(&rt, &prom);
    sim.run_until("2026-01-02T00:33:00Z".parse().unwrap());
    prom.stop();
    sim.run_until("2026-01-02T03:00:00Z".parse().unwrap());
    let v2 = sim.cluster.versions["ml/churn-v2"].status.clone().unwrap();
    assert_eq!(v2.phase, Some(VersionPhase::RollingOut), "paused, not rolled back: {:?}", v2.decisions);
    let m = v2.analysis.unwrap().measurements.last().cloned().unwrap();
    assert_eq!(m.reason.as_deref(), Some("PrometheusUnreachable"));
    let status = sim.cluster.models["ml/churn"].status.clone().unwrap();
    let rolling = modelcycle::lifecycle::conditions::find(&status.conditions, "RollingOut").unwrap();
    assert_eq!(rolling.reason, "AnalysisInconclusive");
    assert!(rolling.message.contains(&prom.address), "{}", rolling.message);
}

/// A Model behind a Gateway API route whose new versions first answer a mirrored copy of the
/// requests (a shadow), judged by how far their predicted scores' histogram in the real
/// Prometheus at `ADDRESS` is from the stable version's (Jensen-Shannon, at most 0.1).
const SHADOW_MODEL: &str = r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: churn, namespace: ml}
spec:
  training:
    template: {spec: {containers: [{name: trainer, image: "trainer:1"}]}}
    dataset: {uri: "s3://data/churn", version: "d1"}
    artifactUri: "s3://models/{model}/{version}"
  serving:
    template: {spec: {containers: [{name: server, image: "server:1"}]}}
    replicas: 2
    trafficRouting: {gatewayAPI: {parentRefs: [{name: public}]}}
    strategy:
      canary:
        shadow: {duration: 30m}
        steps: [{weight: 50, pause: 20m}]
    analysis:
      prometheus: {address: "ADDRESS", timeout: 5s}
      interval: 10m
      metrics:
        - name: prediction-agreement
          query: 'sum by (le) (model_score_bucket{version="{{version}}"})'
          distribution: {method: JensenShannon, minSamples: 100}
          max: 0.1
"#;

#[test]
fn a_shadow_is_judged_on_prediction_histograms_from_a_real_prometheus() {
    use modelcycle::api::{AnalysisVerdict, VersionPhase};
    let rt = runtime();
    let v1: &[u64] = &[400, 300, 200, 100];
    for (v2, phase) in
        [(&[390u64, 310, 205, 95][..], VersionPhase::Serving), (&[100, 200, 300, 400][..], VersionPhase::RolledBack)]
    {
        let prom = rt.block_on(TestPrometheus::start(&scores_by_version(&[(1, v1), (2, v2)])));
        let mut sim = analysed_through(&rt, SHADOW_MODEL, &prom.address);
        sim.run();
        assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
        let status = sim.cluster.versions["ml/churn-v2"].status.clone().unwrap();
        assert_eq!(status.phase, Some(phase), "{:?}", status.decisions);
        let first = status.analysis.unwrap().measurements.first().cloned().unwrap();
        assert_eq!(first.query, r#"sum by (le) (model_score_bucket{version="2"})"#);
        let expected = modelcycle::stats::jensen_shannon(
            &Histogram {
                bounds: vec![0.25, 0.5, 0.75, 1.0, f64::INFINITY],
                counts: v1.iter().map(|c| *c as f64).chain([0.0]).collect(),
            },
            &Histogram {
                bounds: vec![0.25, 0.5, 0.75, 1.0, f64::INFINITY],
                counts: v2.iter().map(|c| *c as f64).chain([0.0]).collect(),
            },
        )
        .unwrap();
        let value = first.value.unwrap();
        assert!((value - expected).abs() < 1e-9, "measured {value}, computed {expected}");
        let verdict = if phase == VersionPhase::Serving { AnalysisVerdict::Pass } else { AnalysisVerdict::Fail };
        assert_eq!(first.verdict, verdict);
        let traffic = modelcycle::sim::report::Report::of(&sim).models[0].traffic.clone();
        let expected_traffic: &[&str] =
            if phase == VersionPhase::Serving { &["0", "0+mirror", "50", "0"] } else { &["0", "0+mirror", "0"] };
        assert_eq!(traffic, expected_traffic);
    }
}

/// Plans once with a drift check due, its reading taken by the kube shell with `ctx`.
async fn plan_with_drift_due(
    ctx: &modelcycle::kube::context::Context,
    model: &modelcycle::api::Model,
    children: &mut modelcycle::lifecycle::model::Children,
) -> modelcycle::lifecycle::model::ModelPlan {
    use modelcycle::lifecycle::{ledger::Ledger, model::plan_model, triggers::due_checks};
    let now = jiff::Timestamp::now();
    let due = due_checks(&children.policies[0], model, &Ledger::new(&children.versions, now), now);
    assert!(due.drift.is_some(), "the drift check is due");
    children.readings = modelcycle::kube::readings::take(ctx, &children.policies[0], &due).await;
    plan_model(children.observed(model), now)
}

fn stalled(plan: &modelcycle::lifecycle::model::ModelPlan) -> (String, String) {
    use modelcycle::lifecycle::conditions;
    let status = &plan.policy_statuses()[0].1;
    let c = conditions::find(&status.conditions, conditions::STALLED).expect("a Stalled condition");
    assert_eq!(c.status, "True", "{c:?}");
    (c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn a_drift_query_prometheus_refuses_stalls_the_policy_with_prometheus_words() {
    let prom = TestPrometheus::start(&prediction_histogram("churn", &[50, 100, 200, 300, 200, 100, 50, 0, 0, 0])).await;
    let (model, mut children) = serving_world(&prom.address);
    std::sync::Arc::make_mut(&mut children.policies[0]).spec.drift.as_mut().unwrap().query =
        "sum by (le) (rate(x[5m]".into();
    let plan = plan_with_drift_due(&offline_context(&[]), &model, &mut children).await;
    let (reason, message) = stalled(&plan);
    assert_eq!(reason, "DriftQueryRejected");
    assert!(message.starts_with("spec.drift.query: Prometheus rejected the query (bad_data)"), "{message}");
    assert!(plan.created_versions().is_empty());
    assert_eq!(plan.policy_events()[0].1.reason, "DriftQueryRejected");
}

#[tokio::test]
async fn a_server_that_is_not_prometheus_never_has_its_answer_copied_into_status() {
    // A loopback server standing in for a cloud metadata endpoint or an internal admin page.
    let secret = "AKIA-SECRET-CREDENTIALS-FROM-METADATA";
    let body = format!("{{\"AccessKeyId\": \"{secret}\"}} and more text that is not an API answer");
    let port = support::prometheus::serve_text("text/plain", move || body.clone()).await;
    let address = format!("http://127.0.0.1:{port}");
    let (model, mut children) = serving_world(&address);
    let plan = plan_with_drift_due(&offline_context(&[]), &model, &mut children).await;
    let (reason, message) = stalled(&plan);
    assert_eq!(reason, "NotPrometheus");
    assert!(message.contains("answered HTTP 200 with") && message.contains("text/plain"), "{message}");
    let everything = format!("{:?}{:?}", plan.policy_statuses(), plan.policy_events());
    assert!(!everything.contains("AKIA") && !everything.contains("AccessKeyId"), "the body leaked: {everything}");
}

#[tokio::test]
async fn an_address_outside_the_allowlist_is_never_queried_and_stalls_the_policy() {
    let prom = TestPrometheus::start(&prediction_histogram("churn", &[50, 100, 200, 300, 200, 100, 50, 0, 0, 0])).await;
    let (model, mut children) = serving_world(&prom.address);
    let ctx = offline_context(&["http://prometheus.monitoring:9090"]);
    let plan = plan_with_drift_due(&ctx, &model, &mut children).await;
    let (reason, message) = stalled(&plan);
    assert_eq!(reason, "PrometheusAddressNotAllowed");
    assert!(
        message.contains("outside --prometheus-allowed-addresses (http://prometheus.monitoring:9090)"),
        "{message}"
    );
    // The same address, allowed, is queried and judged.
    let plan = plan_with_drift_due(&offline_context(&[prom.address.as_str()]), &model, &mut children).await;
    assert_eq!(plan.policy_statuses()[0].1.drift.as_ref().unwrap().value, Some(0.0));
}

#[test]
fn a_model_whose_analysis_points_at_a_server_that_is_not_prometheus_reads_nothing_back() {
    use modelcycle::lifecycle::conditions;
    let rt = runtime();
    let admin_page = "<html>internal admin console: root password s3cr3t-value</html>";
    let port = rt.block_on(support::prometheus::serve_text("text/html", move || admin_page.to_string()));
    let mut sim = canary_through(&rt, &format!("http://127.0.0.1:{port}"));
    sim.run();
    let model = sim.cluster.models["ml/churn"].status.clone().unwrap();
    let stalled = conditions::find(&model.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "AnalysisQueryFailed"));
    assert!(
        stalled.message.contains("answered HTTP 200 with") && stalled.message.contains("text/html"),
        "{}",
        stalled.message
    );
    let everything = format!("{:?}{:?}{:?}", sim.cluster.models, sim.cluster.versions, sim.timeline);
    assert!(
        !everything.contains("s3cr3t") && !everything.contains("admin console"),
        "the page leaked into status or Events"
    );
}

/// The controller's own `/metrics`, with a Model recorded, passes `promtool check metrics` (the
/// exposition parses and every name follows Prometheus' conventions).
#[test]
fn the_controllers_metrics_pass_promtool_check_metrics() {
    use std::io::Write;
    let metrics = modelcycle::kube::metrics::Metrics::default();
    let mut sim = modelcycle::sim::Simulation::new(
        modelcycle::sim::scenario::Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shadow")]).unwrap(),
    );
    sim.run();
    let exported = sim.exported["ml/recommender"].clone();
    let counted = modelcycle::lifecycle::monitor::Counted {
        retrains: exported.retrains.iter().map(|(k, _)| k.to_string()).collect(),
        rollbacks: exported.rollbacks.iter().map(|(k, _)| k.to_string()).collect(),
    };
    metrics.models.record("ml", "recommender", exported.gauges, counted);
    metrics.reconciled("model", true);
    let text = metrics.render();
    assert!(text.contains("modelcycle_model_rollbacks_total"), "{text}");
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed with Prometheus");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // promtool reads the classic text format, where a counter's HELP names `x_total`; OpenMetrics
    // (what /metrics serves) names the family `x`. That one finding is the format, not a defect.
    let lints: Vec<&str> = said
        .lines()
        .filter(|l| {
            let family = l.strip_suffix("_total no help text");
            !family.is_some_and(|f| text.contains(&format!("# HELP {f} ")))
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lints.is_empty(), "promtool check metrics: {lints:?}");
}

/// The chart's alerts pass `promtool check rules` and their unit tests (`promtool test rules`:
/// each alert fires when it should and stays quiet when it should not).
#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for args in [
        vec!["check", "rules", "charts/modelcycle/files/alerts.yaml"],
        vec!["test", "rules", "tests/promtool/alerts_test.yaml"],
    ] {
        let out = std::process::Command::new("promtool").args(&args).current_dir(root).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}: {said}");
    }
}

/// What the controller exports about the Models of three moments of the examples: a canary
/// mid-rollout, a finished shadow with a rollback, a RetrainPolicy with drift and quality.
fn exported_metrics() -> String {
    let metrics = modelcycle::kube::metrics::Metrics::default();
    let load = |name: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
        modelcycle::sim::Simulation::new(modelcycle::sim::scenario::Scenario::load(&[dir]).unwrap())
    };
    let mut mid = load("shadow");
    mid.run_until("2026-11-03T02:00:00Z".parse().unwrap());
    let (mut done, mut retraining) = (load("shadow"), load("retraining"));
    done.run();
    retraining.run();
    for (namespace, sim, key) in
        [("mid", &mid, "ml/recommender"), ("ml", &done, "ml/recommender"), ("ml", &retraining, "ml/fraud")]
    {
        let exported = sim.exported[key].clone();
        let counted = modelcycle::lifecycle::monitor::Counted {
            retrains: exported.retrains.iter().map(|(k, _)| k.to_string()).collect(),
            rollbacks: exported.rollbacks.iter().map(|(k, _)| k.to_string()).collect(),
        };
        let model = key.rsplit('/').next().unwrap();
        metrics.models.record(namespace, model, exported.gauges, counted);
    }
    drop(metrics.reconcile_timer("model"));
    futures::executor::block_on(metrics.on_cpu("model", async {}));
    metrics.reconciled("model", true);
    metrics.render()
}

/// Every expression of the dashboard and of the alerts runs on a real Prometheus that scraped
/// the controller's own metrics; each dashboard panel shows data.
#[test]
fn every_dashboard_and_alert_expression_runs_on_the_controllers_own_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("charts/modelcycle/files/dashboard.json")).unwrap())
            .unwrap();
    let panels: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            p["targets"].as_array().cloned().unwrap_or_default().into_iter().map(move |t| {
                (
                    title.clone(),
                    t["expr"].as_str().unwrap_or_default().replace("$namespace", ".*").replace("$model", ".*"),
                )
            })
        })
        .collect();
    assert!(panels.len() >= 12, "{} panel queries", panels.len());
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("charts/modelcycle/files/alerts.yaml")).unwrap())
            .unwrap();
    let alerts: Vec<String> = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    let rt = runtime();
    let prom = rt.block_on(TestPrometheus::start(&exported_metrics()));
    rt.block_on(async {
        prom.wait_until_scraped("modelcycle_model_canary_weight_percent").await;
        // Rates and increases need two scrapes of a counter.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let mut showing = std::collections::BTreeMap::<&str, bool>::new();
        for (title, expr) in &panels {
            let result = prom.query(expr).await.unwrap_or_else(|e| panic!("{title}: {expr}: {e}"));
            *showing.entry(title).or_default() |= !result.is_empty();
        }
        let empty: Vec<_> = showing.iter().filter(|(_, shows)| !**shows).map(|(t, _)| *t).collect();
        assert!(empty.is_empty(), "panels that show nothing: {empty:?}");
        for expr in &alerts {
            prom.query(expr).await.unwrap_or_else(|e| panic!("alert {expr}: {e}"));
        }
    });
}
