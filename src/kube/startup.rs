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
    /// `--kserve` was given but KServe's InferenceService CRD is not installed.
    #[error(
        "--kserve asks the controller to manage InferenceServices, but the CustomResourceDefinition {INFERENCESERVICE_CRD} is not installed; install KServe or start without --kserve (chart: kserve.enabled=false)"
    )]
    MissingKServe,
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

/// KServe's InferenceService CRD, needed with `--kserve`.
pub const INFERENCESERVICE_CRD: &str = "inferenceservices.serving.kserve.io";

/// The CRDs of other projects that optional features need.
#[derive(Clone, Copy, Debug, Default)]
pub struct Optional {
    /// Gateway API's HTTPRoute (`--gateway-api`).
    pub gateway_api: bool,
    /// KServe's InferenceService (`--kserve`).
    pub kserve: bool,
}

/// Looks once for every CRD modelcycle needs.
pub async fn check_crds_once(client: &Client) -> CrdCheck {
    check_crds(client, Optional::default()).await
}

/// Looks once for every CRD modelcycle needs, and for those of the optional features asked for.
pub async fn check_crds(client: &Client, optional: Optional) -> CrdCheck {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = vec![];
    let ours = crd::all().into_iter().map(|c| c.metadata.name.unwrap_or_default());
    let routes = optional.gateway_api.then(|| HTTPROUTE_CRD.to_string());
    let kserve = optional.kserve.then(|| INFERENCESERVICE_CRD.to_string());
    for name in ours.chain(routes).chain(kserve) {
        match api.get_opt(&name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(name),
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 401 => {
                return CrdCheck::Fatal(StartupError::Refused(status.message.clone()));
            }
            Err(e) => return CrdCheck::Unreachable(e.to_string()),
        }
    }
    for (crd, error) in
        [(HTTPROUTE_CRD, StartupError::MissingGatewayApi), (INFERENCESERVICE_CRD, StartupError::MissingKServe)]
    {
        if missing.iter().any(|m| m == crd)
            && missing.iter().all(|m| m == crd || m == HTTPROUTE_CRD || m == INFERENCESERVICE_CRD)
        {
            return CrdCheck::Fatal(error);
        }
    }
    if missing.is_empty() { CrdCheck::Installed } else { CrdCheck::Fatal(StartupError::MissingCrds(missing)) }
}

/// Whether an engine's objects can be watched: `NotEnabled` unless `enabled`, else whether its
/// CRD is installed (an API server that cannot answer counts as not installed, and says so).
pub async fn engine_crd(client: &Client, enabled: bool, crd: &str) -> crate::lifecycle::model::Engine<()> {
    use crate::lifecycle::model::Engine;
    if !enabled {
        return Engine::NotEnabled;
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.get_opt(crd).await {
        Ok(Some(_)) => Engine::Watched(()),
        Ok(None) => {
            tracing::warn!(
                crd,
                "the engine's CustomResourceDefinition is not installed: Models that train on it are Stalled until it is and the controller restarts"
            );
            Engine::NotInstalled
        }
        Err(error) => {
            tracing::warn!(crd, %error, "cannot read the engine's CustomResourceDefinition: Models that train on it are Stalled");
            Engine::NotInstalled
        }
    }
}

/// Looks for the CRDs until the API answers, waiting 1s doubling to 30s between tries.
pub async fn wait_for_crds(client: &Client, api_url: &str, optional: Optional) -> Result<(), StartupError> {
    let mut wait = Duration::from_secs(1);
    loop {
        match check_crds(client, optional).await {
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
