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
