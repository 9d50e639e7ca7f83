//! Where a Model's versions are published: an MLflow model registry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretKeyRef;

/// The model registries a Model's versions are published to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Register each version that passed its gates as an MLflow model version, with its lineage
    /// and gate results as tags; the serving version carries the alias `champion`, a version
    /// rolling out `challenger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow: Option<MlflowRegistry>,
}

/// An MLflow tracking server and the registered model the versions go to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MlflowRegistry {
    /// Base URL of the MLflow tracking server, e.g. `http://mlflow.mlops:5000`.
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^\\\\s]+$')").message("must be an http:// or https:// URL"))]
    #[schemars(length(max = 2048))]
    pub tracking_uri: String,
    /// The registered model's name in MLflow (created if missing).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Optional bearer token sent as `Authorization: Bearer <token>` (MLflow's
    /// `MLFLOW_TRACKING_TOKEN`), read from a Secret labelled `modelcycle.io/secret-type: mlflow-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<SecretKeyRef>,
}

/// How far the registry is in step with the Model's versions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// A hash of everything last published in full (versions, tags, aliases); publishing again
    /// waits until it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced: Option<String>,
    /// Failed attempts in a row; the next waits 5s, doubling up to 10m.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Time>,
    /// Why the last attempt failed, while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
