//! What every reconcile shares: the client, the Event publisher, metrics and per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;

use crate::lifecycle::model::Engine;

use super::events::Events;
use super::metrics::Metrics;

/// The resync period unless `--resync-period` says otherwise.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);

/// What `modelcycle run` was told, as the controllers need it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest a Model goes without a reconcile, even when nothing changed.
    pub resync: Duration,
    /// URL prefixes of the Prometheus servers objects may name; empty allows any.
    pub prometheus_allowed: Vec<String>,
    /// URL prefixes of the MLflow servers Models may publish to; empty allows any.
    pub mlflow_allowed: Vec<String>,
    /// Reconciles of each controller in progress at once.
    pub concurrency: u16,
    /// Watch and write Gateway API `HTTPRoute`s.
    pub gateway_api: bool,
    /// Watch and write KServe `InferenceService`s.
    pub kserve: bool,
    /// Whether to watch and write Kubeflow Trainer `TrainJob`s, and whether they are installed.
    pub train_jobs: Engine<()>,
    /// Likewise KubeRay `RayJob`s.
    pub ray_jobs: Engine<()>,
    /// The last reading of each Model's source registry (shared with the webhook endpoint).
    pub sources: Arc<super::reading_clients::SourceReadings>,
    /// Registered model names a webhook asked to read now.
    pub wake: tokio::sync::broadcast::Sender<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: DEFAULT_RESYNC,
            prometheus_allowed: vec![],
            mlflow_allowed: vec![],
            concurrency: 16,
            gateway_api: false,
            kserve: false,
            train_jobs: Engine::NotEnabled,
            ray_jobs: Engine::NotEnabled,
            sources: Arc::default(),
            wake: tokio::sync::broadcast::channel(WAKE_CAPACITY).0,
        }
    }
}

/// Webhook wake-ups a controller may fall behind by before it skips some (each only reads a
/// registry sooner than its poll would).
pub const WAKE_CAPACITY: usize = 256;

/// Shared state of the controllers.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Publishes Events as `modelcycle`.
    pub events: Events,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    /// The longest a Model goes without a reconcile, even when nothing changed.
    pub resync: Duration,
    /// URL prefixes of the Prometheus servers objects may name; empty allows any.
    pub prometheus_allowed: Vec<String>,
    /// URL prefixes of the MLflow servers Models may publish to; empty allows any.
    pub mlflow_allowed: Vec<String>,
    /// Prometheus clients and bearer tokens kept between reconciles.
    pub readings: super::reading_clients::ReadingClients,
    /// The last reading of each Model's source registry, shared with the webhook endpoint.
    pub sources: Arc<super::reading_clients::SourceReadings>,
    backoff: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for `client`, reporting Events as this pod.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let instance = std::env::var("POD_NAME").unwrap_or_else(|_| "modelcycle".into());
        Self {
            events: Events::new(client.clone(), "modelcycle", &instance),
            client,
            metrics,
            resync: DEFAULT_RESYNC,
            prometheus_allowed: vec![],
            mlflow_allowed: vec![],
            readings: Default::default(),
            sources: Arc::default(),
            backoff: Mutex::default(),
        }
    }

    /// The wait before retrying an object after its `n`-th failure in a row: 5s doubling to 5m.
    pub fn next_backoff(&self, key: &str) -> Duration {
        // A panic elsewhere while holding the lock leaves counts that are still good counts.
        let mut map = self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let failures = map.entry(key.to_string()).or_insert(0);
        *failures = failures.saturating_add(1);
        backoff_after(*failures)
    }

    /// Forgets the failures of an object after it reconciled fine.
    pub fn reset_backoff(&self, key: &str) {
        self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

/// 5s after the first failure, doubling, at most 5 minutes.
pub fn backoff_after(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_secs(secs.min(300))
}

#[cfg(test)]
mod tests {
    use super::backoff_after;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<_> = (1..=8).map(|n| backoff_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff_after(u32::MAX), Duration::from_secs(300));
    }
}
