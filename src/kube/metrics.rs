//! Controller metrics in OpenMetrics: reconciles by result, durations, failures by kind, leadership.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicI64;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one reconcile outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `model` or `retrainpolicy`.
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

/// Labels of a failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `model` or `retrainpolicy`.
    pub controller: String,
    /// The error's `metric_label()`.
    pub error: String,
}

/// Labels naming a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `model` or `retrainpolicy`.
    pub controller: String,
}

/// Labels of an analysis query's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `ok`, `no_data`, `unreachable`, `rejected` or `unexpected`.
    pub result: String,
}

/// Every metric the controller exports, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    cpu: Family<ControllerLabels, Histogram>,
    decide: Histogram,
    analysis_queries: Family<QueryLabels, Counter>,
    registry_publishes: Family<QueryLabels, Counter>,
    registry_reads: Family<QueryLabels, Counter>,
    webhooks: Family<QueryLabels, Counter>,
    /// 1 while this replica holds the leader Lease (or runs without leader election).
    pub leader: Gauge<i64, AtomicI64>,
    /// The per-Model series.
    pub models: std::sync::Arc<super::model_metrics::ModelSeries>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("modelcycle");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        // 10 µs to 0.23 s in steps of √2, fine enough to read a p99 against a few milliseconds.
        let cpu = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_01, std::f64::consts::SQRT_2, 30))
        });
        // 10 µs to 0.33 s: the decision alone is CPU time, far below a reconcile's requests.
        let decide = Histogram::new(exponential_buckets(0.000_01, 2.0, 16));
        let leader = Gauge::<i64, AtomicI64>::default();
        let analysis_queries = Family::<QueryLabels, Counter>::default();
        let registry_publishes = Family::<QueryLabels, Counter>::default();
        let registry_reads = Family::<QueryLabels, Counter>::default();
        let webhooks = Family::<QueryLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by controller and result", reconciles.clone());
        registry.register("reconcile_failures", "Failed reconciles by controller and error kind", failures.clone());
        registry.register("reconcile_duration_seconds", "Time one reconcile takes", duration.clone());
        registry.register(
            "reconcile_cpu_seconds",
            "CPU time one reconcile takes on the controller's threads: reading the caches, deciding, writing its requests and reading their answers (not the watches' decoding, nor waiting)",
            cpu.clone(),
        );
        registry.register(
            "model_decide_duration_seconds",
            "Time a Model reconcile spends deciding: reading its objects from the caches and planning, no request",
            decide.clone(),
        );
        registry.register("leader", "1 while this replica is the leader", leader.clone());
        registry.register(
            "analysis_queries",
            "Rollout analysis queries sent to Prometheus, by outcome",
            analysis_queries.clone(),
        );
        registry.register(
            "registry_publishes",
            "Attempts to bring a Model's MLflow registry in step with its versions, by result (ok, failed)",
            registry_publishes.clone(),
        );
        registry.register(
            "registry_reads",
            "Readings of the MLflow registry Models take their versions from, by result (ok, unreachable, missing, refused)",
            registry_reads.clone(),
        );
        registry.register(
            "registry_webhooks",
            "MLflow registry webhook deliveries, by result (accepted, ignored, refused, not_configured)",
            webhooks.clone(),
        );
        // The controller sets the expiry from its resync period once its flags are read.
        let models = std::sync::Arc::new(super::model_metrics::ModelSeries::default());
        registry.register_collector(Box::new(models.clone()));
        Self {
            registry,
            reconciles,
            failures,
            duration,
            cpu,
            decide,
            analysis_queries,
            registry_publishes,
            registry_reads,
            webhooks,
            leader,
            models,
        }
    }
}

impl Metrics {
    /// Starts timing a reconcile; the time is recorded when the guard drops.
    pub fn reconcile_timer(&self, controller: &str) -> ReconcileTimer {
        ReconcileTimer {
            start: Instant::now(),
            histogram: self.duration.get_or_create(&ControllerLabels { controller: controller.into() }).clone(),
        }
    }

    /// Runs `reconcile`, recording the CPU time its polls take on whichever threads poll it
    /// (`modelcycle_reconcile_cpu_seconds`): what a reconcile costs the controller, which its
    /// duration does not say while it waits for the API server or for a busy machine's cores.
    pub fn on_cpu<F: Future>(&self, controller: &str, reconcile: F) -> OnCpu<F> {
        OnCpu {
            inner: Box::pin(reconcile),
            spent: Duration::ZERO,
            histogram: self.cpu.get_or_create(&ControllerLabels { controller: controller.into() }).clone(),
        }
    }

    /// Records how long a Model reconcile spent deciding.
    pub fn decided(&self, took: std::time::Duration) {
        self.decide.observe(took.as_secs_f64());
    }

    /// Counts one reconcile outcome.
    pub fn reconciled(&self, controller: &str, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&ReconcileLabels { controller: controller.into(), result: result.into() }).inc();
    }

    /// Counts one failure by its kind.
    pub fn failed(&self, controller: &str, error: &crate::error::Error) {
        self.failures
            .get_or_create(&FailureLabels { controller: controller.into(), error: error.metric_label().into() })
            .inc();
    }

    /// Counts the outcome of one rollout analysis query.
    pub fn analysis_query(&self, answer: Result<(), &crate::sources::prometheus::ReadingError>) {
        use crate::sources::prometheus::ReadingError;
        let result = match answer {
            Ok(_) => "ok",
            Err(ReadingError::NoData) => "no_data",
            Err(ReadingError::Unreachable { .. }) => "unreachable",
            Err(ReadingError::Rejected { .. }) => "rejected",
            Err(ReadingError::Unexpected(_)) => "unexpected",
            Err(ReadingError::NotPrometheus { .. }) => "not_prometheus",
            Err(ReadingError::NotAllowed { .. }) => "not_allowed",
            Err(ReadingError::TokenRefused(_)) => "token_refused",
        };
        self.analysis_queries.get_or_create(&QueryLabels { result: result.into() }).inc();
    }

    /// Counts one attempt to publish to a Model's registry.
    pub fn registry_publish(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.registry_publishes.get_or_create(&QueryLabels { result: result.into() }).inc();
    }

    /// Counts one reading of a Model's source registry.
    pub fn registry_read(&self, result: &str) {
        self.registry_reads.get_or_create(&QueryLabels { result: result.into() }).inc();
    }

    /// Counts one registry webhook delivery.
    pub fn webhook(&self, result: &str) {
        self.webhooks.get_or_create(&QueryLabels { result: result.into() }).inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; a metric that could not be encoded is left out.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records the duration of a reconcile when dropped, whichever way the reconcile ends.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// The CPU time the calling thread has used, or `None` where it cannot be read.
pub fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec through the valid pointer it is given.
        let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        let secs = u64::try_from(now.tv_sec).ok()?;
        let nanos = u32::try_from(now.tv_nsec).ok()?;
        (read == 0).then(|| Duration::new(secs, nanos))
    }
    #[cfg(not(unix))]
    None
}

/// A reconcile whose CPU time is recorded when it finishes (see [`Metrics::on_cpu`]). Each poll
/// runs on one thread, so the thread's CPU clock before and after it is what that poll cost;
/// the time between polls, waiting, costs nothing.
pub struct OnCpu<F> {
    inner: Pin<Box<F>>,
    spent: Duration,
    histogram: Histogram,
}

impl<F: Future> Future for OnCpu<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = thread_cpu();
        let polled = self.inner.as_mut().poll(cx);
        if let (Some(before), Some(after)) = (before, thread_cpu()) {
            self.spent += after.saturating_sub(before);
        }
        if polled.is_ready() {
            self.histogram.observe(self.spent.as_secs_f64());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until the thread has used `cpu` more CPU time.
    fn spin(cpu: Duration) {
        let until = thread_cpu().unwrap() + cpu;
        let mut x = 0u64;
        while thread_cpu().unwrap() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[tokio::test]
    async fn a_reconcile_s_cpu_is_its_polls_not_its_waits() {
        let m = Metrics::default();
        // 30 ms of work in two polls with 300 ms of waiting between them.
        let reconcile = async {
            spin(Duration::from_millis(15));
            tokio::time::sleep(Duration::from_millis(300)).await;
            spin(Duration::from_millis(15));
            7
        };
        assert_eq!(m.on_cpu("model", reconcile).await, 7);
        let text = m.render();
        assert!(text.contains(r#"modelcycle_reconcile_cpu_seconds_count{controller="model"} 1"#), "{text}");
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(r#"modelcycle_reconcile_cpu_seconds_sum{controller="model"} "#))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((0.030..0.200).contains(&sum), "the CPU of the two polls, not the wait between them: {sum} s");
    }

    #[test]
    fn the_thread_cpu_clock_moves_with_work_only() {
        let start = thread_cpu().expect("the thread CPU clock reads on Linux");
        std::thread::sleep(Duration::from_millis(100));
        let slept = thread_cpu().unwrap() - start;
        assert!(slept < Duration::from_millis(50), "sleeping used {slept:?} of CPU");
        // 100 ms of a busy loop by the wall clock: however busy the machine, some of it is CPU.
        let wall = Instant::now();
        let mut x = 0u64;
        while wall.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu().unwrap() - start - slept;
        assert!(worked >= Duration::from_millis(10), "a busy loop used {worked:?} of CPU");
    }

    #[test]
    fn renders_openmetrics_with_every_family() {
        let m = Metrics::default();
        m.reconciled("model", true);
        m.failed(
            "model",
            &crate::error::Error::InvalidObject {
                kind: "Model".into(),
                namespace: "ml".into(),
                name: "x".into(),
                message: "y".into(),
            },
        );
        drop(m.reconcile_timer("model"));
        futures::executor::block_on(m.on_cpu("model", async {}));
        m.decided(std::time::Duration::from_micros(30));
        m.leader.set(1);
        m.analysis_query(Ok(()));
        m.analysis_query(Err(&crate::sources::prometheus::ReadingError::NoData));
        m.analysis_query(Err(&crate::sources::prometheus::ReadingError::NoData));
        m.registry_publish(false);
        let text = m.render();
        assert!(text.contains(r#"modelcycle_registry_publishes_total{result="failed"} 1"#), "{text}");
        assert!(text.contains(r#"modelcycle_analysis_queries_total{result="ok"} 1"#), "{text}");
        assert!(text.contains(r#"modelcycle_analysis_queries_total{result="no_data"} 2"#), "{text}");
        assert!(text.contains(r#"modelcycle_reconciles_total{controller="model",result="success"} 1"#), "{text}");
        assert!(text.contains(r#"modelcycle_reconcile_failures_total{controller="model",error="invalid_object"} 1"#));
        assert!(text.contains(r#"modelcycle_reconcile_duration_seconds_count{controller="model"} 1"#));
        assert!(text.contains(r#"modelcycle_reconcile_cpu_seconds_count{controller="model"} 1"#), "{text}");
        assert!(text.contains("modelcycle_model_decide_duration_seconds_count 1"), "{text}");
        assert!(text.contains("modelcycle_model_decide_duration_seconds_sum 0.00003"), "{text}");
        assert!(text.contains("modelcycle_leader 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
