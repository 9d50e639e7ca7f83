//! The HTTP server: /healthz (alive), /readyz (caches synced, watches healthy), /metrics (OpenMetrics).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;
use super::watch_health::WatchHealth;

/// What the probes report; flipped by the runtime as it starts.
#[derive(Default)]
pub struct Health {
    /// True once the API server answered and the CRDs were found.
    pub api_ok: AtomicBool,
    /// True once this replica is a standby, or the leader with synced caches.
    pub ready: AtomicBool,
    /// The watches that fail now; any makes the replica unready, saying why.
    pub watches: WatchHealth,
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// Probe state.
    pub health: Arc<Health>,
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
}

/// The router, separate from the listener so tests can call it directly.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if let Some(problem) = state.health.watches.problem() {
        (StatusCode::SERVICE_UNAVAILABLE, problem)
    } else if state.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready".to_string())
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
        let state = HttpState { health: Arc::default(), metrics: Arc::default() };
        let app = router(state.clone());
        assert_eq!(get_text(app.clone(), "/healthz").await.0, StatusCode::OK);
        let (code, body) = get_text(app.clone(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not reachable"));
        state.health.api_ok.store(true, Ordering::Relaxed);
        assert_eq!(get_text(app.clone(), "/readyz").await.1, "caches not synced yet");
        state.health.ready.store(true, Ordering::Relaxed);
        assert_eq!(get_text(app.clone(), "/readyz").await.0, StatusCode::OK);
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
}
