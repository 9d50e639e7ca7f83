//! The HTTP server: /healthz (alive), /readyz (caches synced, watches healthy), /metrics
//! (OpenMetrics), and /webhooks/mlflow (MLflow registry webhooks, when a secret is configured).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::sources::mlflow_webhook::{self, Delivery};

use super::metrics::Metrics;
use super::watch_health::WatchHealth;

/// What the probes report; flipped by the runtime as it starts.
#[derive(Default)]
pub struct Health {
    /// True once the API server answered and the CRDs were found.
    pub api_ok: AtomicBool,
    /// Where this replica is in its start (a [`Stage`]).
    stage: AtomicU8,
    /// The watches that fail now; any makes the replica unready, saying why.
    pub watches: WatchHealth,
}

/// Where a replica is in its start, as `/readyz` tells it. One value, not one flag for ready and
/// one for standby: a probe between two stores could otherwise read the leader as synced while
/// its caches are still listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not ready: reaching the API server, or (as the leader) listing the caches.
    Starting,
    /// Ready: a standby replica, waiting for the leader Lease; it reconciles nothing.
    Standby,
    /// Ready: the replica that reconciles, its caches listed.
    Synced,
}

impl Health {
    /// Moves this replica to `stage`.
    pub fn set_stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    /// Where this replica is.
    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Relaxed) {
            s if s == Stage::Standby as u8 => Stage::Standby,
            s if s == Stage::Synced as u8 => Stage::Synced,
            _ => Stage::Starting,
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// Probe state.
    pub health: Arc<Health>,
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
    /// Where MLflow registry webhooks go; `None` refuses them.
    pub webhook: Option<Webhook>,
}

/// What the MLflow webhook endpoint needs.
#[derive(Clone)]
pub struct Webhook {
    /// The secret MLflow signs deliveries with.
    pub secret: Arc<str>,
    /// The kept readings of the Models' registries, marked stale by a delivery.
    pub sources: Arc<super::reading_clients::SourceReadings>,
    /// Wakes the Models that follow a registered model, by its name.
    pub wake: tokio::sync::broadcast::Sender<String>,
}

/// The router, separate from the listener so tests can call it directly.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/mlflow", post(mlflow))
        .with_state(state)
}

/// An MLflow registry webhook delivery: checked against the secret, then the Models that follow
/// the registered model read their registry at once.
async fn mlflow(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let Some(webhook) = &state.webhook else {
        state.metrics.webhook("not_configured");
        let why = "MLflow webhooks are not enabled on this controller: set --mlflow-webhook-secret (chart: mlflow.webhook.secretName)";
        return (StatusCode::NOT_FOUND, why.into());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = Delivery {
        id: header(mlflow_webhook::DELIVERY_ID_HEADER),
        timestamp: header(mlflow_webhook::TIMESTAMP_HEADER),
        signature: header(mlflow_webhook::SIGNATURE_HEADER),
        body: &body,
    };
    let event = match mlflow_webhook::verify(&webhook.secret, &delivery, jiff::Timestamp::now().as_second()) {
        Ok(event) => event,
        Err(why) => {
            state.metrics.webhook("refused");
            tracing::warn!(%why, "refused an MLflow webhook delivery");
            return (StatusCode::UNAUTHORIZED, why.to_string());
        }
    };
    match event.name.clone().filter(|_| event.offers_a_version()) {
        Some(name) => {
            state.metrics.webhook("accepted");
            webhook.sources.stale(&name);
            // No receiver: no controller runs yet (a standby), and the stale mark is what counts.
            let _ = webhook.wake.send(name.clone());
            tracing::info!(registered_model = %name, entity = %event.entity, "MLflow webhook: reading the registry now");
            (StatusCode::OK, format!("reading {name:?} now"))
        }
        None => {
            state.metrics.webhook("ignored");
            (StatusCode::OK, format!("{}.{} offers no version; ignored", event.entity, event.action))
        }
    }
}

/// `/readyz` of the replica that reconciles, once its caches have listed.
pub const READY_SYNCED: &str = "ready: caches synced, reconciling";
/// `/readyz` of a standby replica: ready to take over, reconciling nothing yet. A client that
/// needs the reconciling replica (a script creating objects it expects picked up at once) tells
/// the two apart by this text.
pub const READY_STANDBY: &str = "ready: a standby, waiting for the leader Lease";

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if let Some(problem) = state.health.watches.problem() {
        (StatusCode::SERVICE_UNAVAILABLE, problem)
    } else if state.health.stage() == Stage::Synced {
        (StatusCode::OK, READY_SYNCED.to_string())
    } else if state.health.stage() == Stage::Standby {
        (StatusCode::OK, READY_STANDBY.to_string())
    } else if state.health.api_ok.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Kubernetes API not reachable yet".to_string())
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(router: Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let response =
            router.oneshot(axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_startup_and_metrics_are_openmetrics() {
        let state = HttpState { health: Arc::default(), metrics: Arc::default(), webhook: None };
        let app = router(state.clone());
        assert_eq!(get_text(app.clone(), "/healthz").await.0, StatusCode::OK);
        let (code, body) = get_text(app.clone(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not reachable"));
        state.health.api_ok.store(true, Ordering::Relaxed);
        assert_eq!(get_text(app.clone(), "/readyz").await.1, "caches not synced yet");
        state.health.set_stage(Stage::Standby);
        assert_eq!(get_text(app.clone(), "/readyz").await, (StatusCode::OK, READY_STANDBY.to_string()));
        state.health.set_stage(Stage::Starting);
        let (code, body) = get_text(app.clone(), "/readyz").await;
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet"),
            "a new leader lists"
        );
        state.health.set_stage(Stage::Synced);
        assert_eq!(get_text(app.clone(), "/readyz").await, (StatusCode::OK, READY_SYNCED.to_string()));
        let lost = kube::Error::Service("connection refused".into());
        state.health.watches.failed("Jobs", &kube::runtime::watcher::Error::WatchFailed(lost));
        let (code, body) = get_text(app.clone(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "a lost API server makes a synced replica unready");
        assert!(body.contains("cannot reach the Kubernetes API server") && body.contains("Jobs"), "{body}");
        state.health.watches.api_answered();
        assert_eq!(get_text(app.clone(), "/readyz").await.0, StatusCode::OK);
        let (code, body) = get_text(app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("# TYPE modelcycle_leader gauge"), "{body}");
    }

    #[tokio::test]
    async fn webhooks_are_refused_until_a_secret_is_configured_and_a_good_one_marks_and_wakes() {
        use tower::ServiceExt;
        let post = |body: &'static str, headers: Vec<(&'static str, String)>| {
            let mut request = axum::http::Request::post("/webhooks/mlflow");
            for (k, v) in headers {
                request = request.header(k, v);
            }
            request.body(axum::body::Body::from(body)).unwrap()
        };
        let off = HttpState { health: Arc::default(), metrics: Arc::default(), webhook: None };
        let answer = router(off).oneshot(post("{}", vec![])).await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "no secret, no webhooks");

        let (wake, mut woken) = tokio::sync::broadcast::channel(4);
        let webhook = Webhook { secret: "s".into(), sources: Arc::default(), wake };
        let on = HttpState { health: Arc::default(), metrics: Arc::default(), webhook: Some(webhook) };
        let body = r#"{"entity": "model_version_alias", "action": "created", "data": {"name": "fraud", "alias": "staging", "version": "2"}}"#;
        let now = jiff::Timestamp::now().as_second().to_string();
        let signed = |body: &str| {
            vec![
                ("X-MLflow-Delivery-Id", "d".to_string()),
                ("X-MLflow-Timestamp", now.clone()),
                ("X-MLflow-Signature", mlflow_webhook::sign("s", "d", &now, body.as_bytes())),
            ]
        };
        let answer = router(on.clone()).oneshot(post(body, signed(body))).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(woken.try_recv().ok().as_deref(), Some("fraud"));
        let tag = r#"{"entity": "model_version_tag", "action": "set", "data": {"name": "fraud"}}"#;
        let answer = router(on.clone()).oneshot(post(tag, signed(tag))).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "a signed event of another kind is taken and ignored");
        assert!(woken.try_recv().is_err(), "a tag wakes nothing");
        let mut forged = signed(body);
        forged[2].1 = mlflow_webhook::sign("guess", "d", &now, body.as_bytes());
        let answer = router(on).oneshot(post(body, forged)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert!(woken.try_recv().is_err());
    }
}
