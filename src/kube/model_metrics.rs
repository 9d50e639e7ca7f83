//! The per-Model series of `/metrics`: what the core's `monitor` says about each Model after its
//! last reconcile, labelled by `namespace` and `model` (and a bounded second label: a gate or
//! analysis metric named in the spec, a drift method, a trigger or rollback reason). Encoded at
//! scrape time from the last state of each Model; a Model not reconciled for three resync
//! periods (deleted, or this replica lost the lead) drops out.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::lifecycle::monitor::{Counted, Exported, ModelGauges};

/// A Model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    namespace: String,
    model: String,
}

macro_rules! labels {
    ($($(#[$doc:meta])* $name:ident { $($field:ident),* })*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct $name {
            namespace: String,
            model: String,
            $($field: String),*
        }
    )*};
}

labels! {
    /// A Model and a gate or analysis metric.
    MetricLabels { metric }
    /// A Model, an analysis metric and its bound.
    BoundLabels { metric, bound }
    /// A Model and a drift method.
    MethodLabels { method }
    /// A Model and a trigger.
    TriggerLabels { trigger }
    /// A Model and a rollback reason.
    ReasonLabels { reason }
}

#[derive(Debug)]
struct Entry {
    seen: Instant,
    exported: Exported,
}

/// The last state of every Model this replica reconciles.
#[derive(Debug, Default)]
pub struct ModelSeries {
    models: Mutex<BTreeMap<(String, String), Entry>>,
    /// Unset until the controller knows its resync period: nothing expires.
    expiry: Mutex<Option<Duration>>,
}

/// How many resync periods without a reconcile make a Model's series drop out: every Model is
/// reconciled at least once a resync period, so three without one means it is gone.
pub const EXPIRY_RESYNCS: u32 = 3;

impl ModelSeries {
    /// Series of Models not reconciled within `expiry` are dropped.
    pub fn new(expiry: Duration) -> Self {
        Self { models: Mutex::default(), expiry: Mutex::new(Some(expiry)) }
    }

    /// Drops the series of Models not reconciled within [`EXPIRY_RESYNCS`] of `resync` from now on
    /// (the controller's resync period, known once its flags are read).
    pub fn expire_after_resyncs(&self, resync: Duration) {
        *self.expiry.lock().unwrap_or_else(PoisonError::into_inner) = Some(resync * EXPIRY_RESYNCS);
    }

    /// Records a Model's state after a reconcile and counts what it did.
    pub fn record(&self, namespace: &str, model: &str, gauges: ModelGauges, counted: Counted) {
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = models
            .entry((namespace.to_string(), model.to_string()))
            .or_insert_with(|| Entry { seen: Instant::now(), exported: Exported::default() });
        entry.seen = Instant::now();
        entry.exported.record(gauges, counted);
    }
}

fn seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Encodes one metric family, if it has a series.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    series: impl ExactSizeIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    if series.len() == 0 {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one gauge family, if it has a series.
fn gauges<L: EncodeLabelSet + Clone>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    family(encoder, (name, help, MetricType::Gauge), series.iter().map(|(l, v)| (l.clone(), ConstGauge::new(*v))))
}

/// Encodes one counter family, if it has a series.
fn counters<L: EncodeLabelSet + Clone>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(L, u64)],
) -> Result<(), std::fmt::Error> {
    family(encoder, (name, help, MetricType::Counter), series.iter().map(|(l, v)| (l.clone(), ConstCounter::new(*v))))
}

type Series<L> = Vec<(L, f64)>;

impl Collector for ModelSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(expiry) = *self.expiry.lock().unwrap_or_else(PoisonError::into_inner) {
            models.retain(|_, e| e.seen.elapsed() <= expiry);
        }
        let mut serving: Series<ModelLabels> = vec![];
        let mut since: Series<ModelLabels> = vec![];
        let mut started: Series<ModelLabels> = vec![];
        let mut took: Series<ModelLabels> = vec![];
        let mut succeeded: Series<ModelLabels> = vec![];
        let mut weight: Series<ModelLabels> = vec![];
        let mut gate: Series<MetricLabels> = vec![];
        let mut value: Series<BoundLabels> = vec![];
        let mut threshold: Series<BoundLabels> = vec![];
        let mut passed: Series<BoundLabels> = vec![];
        let mut drift: Series<MethodLabels> = vec![];
        let mut drift_threshold: Series<MethodLabels> = vec![];
        let mut quality: Series<ModelLabels> = vec![];
        let mut quality_min: Series<ModelLabels> = vec![];
        let mut quality_max: Series<ModelLabels> = vec![];
        let mut failed: Series<ModelLabels> = vec![];
        let mut next: Series<ModelLabels> = vec![];
        let mut last_rollback: Series<ReasonLabels> = vec![];
        let mut retrains: Vec<(TriggerLabels, u64)> = vec![];
        let mut rollbacks: Vec<(ReasonLabels, u64)> = vec![];
        for ((namespace, model), e) in models.iter() {
            let g = &e.exported.gauges;
            let (ns, m) = (|| namespace.clone(), || model.clone());
            let of = || ModelLabels { namespace: ns(), model: m() };
            serving.push((of(), g.serving_version.map_or(0.0, f64::from)));
            since.extend(g.serving_since.map(|t| (of(), seconds(t))));
            if let Some(t) = &g.training {
                started.push((of(), seconds(t.started)));
                took.extend(t.seconds.map(|s| (of(), s)));
                succeeded.extend(t.succeeded.map(|s| (of(), bool_value(s))));
            }
            weight.extend(g.canary_weight.map(|w| (of(), f64::from(w))));
            failed.push((of(), f64::from(g.failed_trainings)));
            next.extend(g.next_scheduled.map(|t| (of(), seconds(t))));
            if let Some((t, reason)) = &g.last_rollback {
                last_rollback.push((ReasonLabels { namespace: ns(), model: m(), reason: reason.clone() }, seconds(*t)));
            }
            for (metric, held) in &g.gates {
                gate.push((MetricLabels { namespace: ns(), model: m(), metric: metric.clone() }, bool_value(*held)));
            }
            for a in &g.analysis {
                let labels =
                    BoundLabels { namespace: ns(), model: m(), metric: a.metric.clone(), bound: a.bound.clone() };
                value.extend(a.value.map(|v| (labels.clone(), v)));
                threshold.extend(a.threshold.map(|t| (labels.clone(), t)));
                passed.push((labels, bool_value(a.passed)));
            }
            if let Some(d) = &g.drift {
                let labels = MethodLabels { namespace: ns(), model: m(), method: d.method.to_string() };
                drift.push((labels.clone(), d.value));
                drift_threshold.extend(d.threshold.map(|t| (labels, t)));
            }
            if let Some(q) = &g.quality {
                quality.push((of(), q.value));
                quality_min.extend(q.min.map(|v| (of(), v)));
                quality_max.extend(q.max.map(|v| (of(), v)));
            }
            for (trigger, n) in e.exported.retrains.iter() {
                retrains.push((TriggerLabels { namespace: ns(), model: m(), trigger: trigger.to_string() }, n));
            }
            for (reason, n) in e.exported.rollbacks.iter() {
                rollbacks.push((ReasonLabels { namespace: ns(), model: m(), reason: reason.to_string() }, n));
            }
        }
        let e = &mut encoder;
        gauges(e, "model_serving_version", "The version that serves (0: none)", &serving)?;
        gauges(e, "model_serving_since_timestamp_seconds", "When the serving version started serving", &since)?;
        gauges(e, "model_last_training_start_timestamp_seconds", "When the newest training started", &started)?;
        gauges(e, "model_last_training_duration_seconds", "How long the newest finished training took", &took)?;
        gauges(e, "model_last_training_succeeded", "1 if the newest finished training produced a version", &succeeded)?;
        gauges(e, "model_trainings_failed_in_a_row", "How many of the newest trainings in a row failed", &failed)?;
        gauges(
            e,
            "model_next_scheduled_retrain_timestamp_seconds",
            "When the RetrainPolicy's schedule retrains next",
            &next,
        )?;
        gauges(e, "model_canary_weight_percent", "The share of requests the canary gets", &weight)?;
        gauges(
            e,
            "model_gate_passed",
            "1 if every bound of the gate metric held for the newest judged version",
            &gate,
        )?;
        gauges(e, "model_analysis_value", "The latest analysis measurement of the version under analysis", &value)?;
        gauges(e, "model_analysis_threshold", "The threshold of that measurement", &threshold)?;
        gauges(e, "model_analysis_passed", "1 if that measurement held", &passed)?;
        gauges(e, "model_drift_score", "The last drift measured by the RetrainPolicy", &drift)?;
        gauges(e, "model_drift_threshold", "The threshold the last drift was judged against", &drift_threshold)?;
        gauges(e, "model_quality", "The last live-quality reading of the RetrainPolicy", &quality)?;
        gauges(e, "model_quality_min", "The lower bound of live quality", &quality_min)?;
        gauges(e, "model_quality_max", "The upper bound of live quality", &quality_max)?;
        gauges(
            e,
            "model_last_rollback_timestamp_seconds",
            "When the newest rollback happened, and why",
            &last_rollback,
        )?;
        counters(e, "model_retrains", "Versions created, by trigger, since the controller started", &retrains)?;
        counters(e, "model_rollbacks", "Rollbacks, by reason, since the controller started", &rollbacks)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::monitor::{AnalysisGauge, DriftGauge, LastTraining};

    fn state() -> ModelGauges {
        ModelGauges {
            serving_version: Some(3),
            serving_since: Some("2026-11-02T00:00:00Z".parse().unwrap()),
            training: Some(LastTraining {
                started: "2026-11-01T23:00:00Z".parse().unwrap(),
                seconds: Some(1800.0),
                succeeded: Some(true),
            }),
            canary_weight: Some(25),
            gates: vec![("auc".to_string(), true)],
            analysis: vec![AnalysisGauge {
                metric: "error-rate".into(),
                bound: "max".into(),
                value: Some(0.01),
                threshold: Some(0.05),
                passed: true,
            }],
            drift: Some(DriftGauge { method: "PSI", value: 0.31, threshold: Some(0.2) }),
            quality: None,
            failed_trainings: 2,
            next_scheduled: Some("2026-11-09T04:00:00Z".parse().unwrap()),
            last_rollback: Some(("2026-11-09T04:00:00Z".parse().unwrap(), "AnalysisFailed".into())),
        }
    }

    fn render(series: ModelSeries) -> String {
        let mut registry = prometheus_client::registry::Registry::with_prefix("modelcycle");
        registry.register_collector(Box::new(series));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn every_series_is_labelled_by_namespace_and_model_and_counters_add_up() {
        let series = ModelSeries::new(Duration::from_secs(60));
        let counted = |r: &[&str], b: &[&str]| Counted {
            retrains: r.iter().map(|s| s.to_string()).collect(),
            rollbacks: b.iter().map(|s| s.to_string()).collect(),
        };
        series.record("ml", "churn", state(), counted(&["Initial"], &[]));
        series.record("ml", "churn", state(), counted(&["Drift", "Drift"], &["AnalysisFailed"]));
        series.record("ml", "empty", ModelGauges::default(), counted(&[], &[]));
        let text = render(series);
        for line in [
            r#"modelcycle_model_serving_version{namespace="ml",model="churn"} 3.0"#,
            r#"modelcycle_model_serving_version{namespace="ml",model="empty"} 0.0"#,
            r#"modelcycle_model_serving_since_timestamp_seconds{namespace="ml",model="churn"} 1793577600.0"#,
            r#"modelcycle_model_last_training_duration_seconds{namespace="ml",model="churn"} 1800.0"#,
            r#"modelcycle_model_canary_weight_percent{namespace="ml",model="churn"} 25.0"#,
            r#"modelcycle_model_trainings_failed_in_a_row{namespace="ml",model="churn"} 2.0"#,
            r#"modelcycle_model_next_scheduled_retrain_timestamp_seconds{namespace="ml",model="churn"} 1794196800.0"#,
            r#"modelcycle_model_gate_passed{namespace="ml",model="churn",metric="auc"} 1.0"#,
            r#"modelcycle_model_analysis_threshold{namespace="ml",model="churn",metric="error-rate",bound="max"} 0.05"#,
            r#"modelcycle_model_drift_score{namespace="ml",model="churn",method="PSI"} 0.31"#,
            r#"modelcycle_model_drift_threshold{namespace="ml",model="churn",method="PSI"} 0.2"#,
            r#"modelcycle_model_retrains_total{namespace="ml",model="churn",trigger="Drift"} 2"#,
            r#"modelcycle_model_retrains_total{namespace="ml",model="churn",trigger="Initial"} 1"#,
            r#"modelcycle_model_rollbacks_total{namespace="ml",model="churn",reason="AnalysisFailed"} 1"#,
            r#"modelcycle_model_last_rollback_timestamp_seconds{namespace="ml",model="churn",reason="AnalysisFailed"} 1794196800.0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("version=\""), "no series carries a version label");
        assert!(!text.contains("modelcycle_model_quality"), "no quality reading, no series");
    }

    #[test]
    fn a_model_not_reconciled_within_three_resync_periods_drops_out() {
        let series = ModelSeries::new(Duration::from_secs(3600));
        series.record("ml", "gone", state(), Counted::default());
        std::thread::sleep(Duration::from_millis(500));
        series.expire_after_resyncs(Duration::from_millis(100)); // 300 ms
        series.record("ml", "kept", state(), Counted::default());
        let text = render(series);
        assert!(!text.contains("gone") && text.contains("kept"), "{text}");
    }
}
