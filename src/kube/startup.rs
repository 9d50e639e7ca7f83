//! Startup checks: the API server answers and the three CRDs are installed (and Gateway API's
//! HTTPRoute CRD when the controller is to manage routes).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};

use crate::api::crd;

/// Why the controller cannot start at all.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// No usable kubeconfig or in-cluster config.
    #[error("cannot load a Kubernetes client configuration (kubeconfig or in-cluster): {0}")]
    Config(String),
    /// CRDs are not installed.
    #[error("the CustomResourceDefinition {} is not installed; install the CRDs with `kubectl apply -f crds/`", .0.join(", "))]
    MissingCrds(Vec<String>),
    /// `--gateway-api` was given but Gateway API's HTTPRoute CRD is not installed.
    #[error(
        "--gateway-api asks the controller to manage HTTPRoutes, but the CustomResourceDefinition {HTTPROUTE_CRD} is not installed; install Gateway API's CRDs (standard channel) or start without --gateway-api (chart: gatewayAPI.enabled=false)"
    )]
    MissingGatewayApi,
    /// The controller may not read CRDs or the API refused otherwise.
    #[error("the Kubernetes API refused to show CustomResourceDefinitions ({0}); check the controller's RBAC")]
    Refused(String),
    /// Leader election could not start.
    #[error("leader election failed: {0}")]
    Lease(String),
    /// The HTTP server could not bind.
    #[error("cannot serve HTTP on {addr}: {error}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        error: String,
    },
}

/// The outcome of one look at the installed CRDs.
#[derive(Debug)]
pub enum CrdCheck {
    /// All three are there.
    Installed,
    /// The API answered; these are missing or forbidden.
    Fatal(StartupError),
    /// The API did not answer; try again.
    Unreachable(String),
}

/// Gateway API's HTTPRoute CRD, needed with `--gateway-api`.
pub const HTTPROUTE_CRD: &str = "httproutes.gateway.networking.k8s.io";

/// Looks once for every CRD modelcycle needs.
pub async fn check_crds_once(client: &Client) -> CrdCheck {
    check_crds(client, false).await
}

/// Looks once for every CRD modelcycle needs, and for the HTTPRoute CRD with `gateway_api`.
pub async fn check_crds(client: &Client, gateway_api: bool) -> CrdCheck {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = vec![];
    let ours = crd::all().into_iter().map(|c| c.metadata.name.unwrap_or_default());
    let routes = gateway_api.then(|| HTTPROUTE_CRD.to_string());
    for name in ours.chain(routes) {
        match api.get_opt(&name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(name),
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 401 => {
                return CrdCheck::Fatal(StartupError::Refused(status.message.clone()));
            }
            Err(e) => return CrdCheck::Unreachable(e.to_string()),
        }
    }
    if missing.iter().any(|m| m == HTTPROUTE_CRD) {
        missing.retain(|m| m != HTTPROUTE_CRD);
        if missing.is_empty() {
            return CrdCheck::Fatal(StartupError::MissingGatewayApi);
        }
    }
    if missing.is_empty() { CrdCheck::Installed } else { CrdCheck::Fatal(StartupError::MissingCrds(missing)) }
}

/// Looks for the CRDs until the API answers, waiting 1s doubling to 30s between tries.
pub async fn wait_for_crds(client: &Client, api_url: &str, gateway_api: bool) -> Result<(), StartupError> {
    let mut wait = Duration::from_secs(1);
    loop {
        match check_crds(client, gateway_api).await {
            CrdCheck::Installed => return Ok(()),
            CrdCheck::Fatal(e) => return Err(e),
            CrdCheck::Unreachable(error) => {
                tracing::warn!(%error, api = api_url, retry_in = ?wait, "cannot reach the Kubernetes API server; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}
