//! The Prometheus client against a real Prometheus.

mod support;

use modelcycle::sources::prometheus::{Prometheus, ReadingError, render_query};
use modelcycle::stats::{Histogram, psi};
use support::prometheus::{TestPrometheus, prediction_histogram};

#[tokio::test]
async fn a_templated_query_round_trips_through_a_real_prometheus() {
    let prom = TestPrometheus::start("model_accuracy{model=\"churn\",version=\"3\"} 0.91\n").await;
    let client = Prometheus::new(&prom.address, None, false, None);
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
    let client = Prometheus::new(&prom.address, None, false, None);
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
    let client = Prometheus::new(&prom.address, None, false, None);
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
    let client = kube::Client::new(
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>().0,
        "ml",
    );
    let now = jiff::Timestamp::now();

    // Live traffic still looks like the reference: no drift.
    let due = due_checks(&policy, &model, &Ledger::new(&children.versions, now), now);
    assert_eq!(due.drift.as_deref(), Some("sum by (le) (model_prediction_bucket{model=\"churn\"})"));
    children.readings = modelcycle::kube::readings::take(&client, &policy, &due).await;
    let plan = plan_model(children.observed(&model), now);
    assert!(plan.create_versions.is_empty());
    let checked = &plan.policy_statuses[0].1;
    assert_eq!(checked.drift.as_ref().unwrap().value, Some(0.0));

    // The predictions shift: the next check retrains.
    prom.exposition.set(prediction_histogram("churn", &[0, 0, 50, 100, 200, 300, 200, 100, 50, 0]));
    prom.wait_until_scraped("model_prediction_bucket{le=\"0.3\"} == 50").await;
    children.policies[0].status = Some(checked.clone());
    let later = now + jiff::SignedDuration::from_mins(6);
    let due = due_checks(&children.policies[0], &model, &Ledger::new(&children.versions, later), later);
    children.readings = modelcycle::kube::readings::take(&client, &children.policies[0], &due).await;
    let plan = plan_model(children.observed(&model), later);
    let version = &plan.create_versions[0];
    assert_eq!(version.spec.trigger.reason, "Drift");
    let evidence = &version.spec.trigger.causes[0].evidence;
    assert!(evidence.starts_with("PSI=") && evidence.contains("> 0.20 over 6h, 1000 samples"), "{evidence}");
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
    let model = sim.cluster.models.values().next().unwrap().clone();
    let mut children = sim.cluster.children_of(&model);
    let policy = format!(
        "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {{name: churn, namespace: ml, creationTimestamp: '2026-01-01T00:00:00Z'}}\nspec:\n  modelRef: {{name: churn}}\n  prometheus: {{address: '{prometheus}'}}\n  drift: {{query: 'sum by (le) (model_prediction_bucket{{model=\"{{{{model}}}}\"}})', method: PSI, threshold: 0.2, window: 6h}}\n"
    );
    children.policies = vec![serde_yaml::from_str(&policy).unwrap()];
    (model, children)
}

#[tokio::test]
async fn a_drift_query_that_returns_no_histogram_stalls_the_policy_and_retrains_nothing() {
    use modelcycle::lifecycle::{conditions, ledger::Ledger, model::plan_model, triggers::due_checks};
    let prom = TestPrometheus::start("model_prediction_count{model=\"churn\"} 1000\n").await;
    let (model, mut children) = serving_world(&prom.address);
    children.policies[0].spec.drift.as_mut().unwrap().query = "sum(model_prediction_count)".into();
    let client = kube::Client::new(
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>().0,
        "ml",
    );
    let now = jiff::Timestamp::now();
    let due = due_checks(&children.policies[0], &model, &Ledger::new(&children.versions, now), now);
    children.readings = modelcycle::kube::readings::take(&client, &children.policies[0], &due).await;
    let plan = plan_model(children.observed(&model), now);
    assert!(plan.create_versions.is_empty());
    let status = &plan.policy_statuses[0].1;
    let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "DriftQueryNotHistogram"));
    assert!(stalled.message.contains("`le`"), "{}", stalled.message);
    assert_eq!(plan.policy_events[0].1.reason, "DriftQueryNotHistogram");
}
