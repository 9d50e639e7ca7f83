//! Where a Model's versions come from when modelcycle does not train them: an MLflow registry.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::Duration;
use super::common::{DURATION_MAX_LENGTH, SecretKeyRef, duration_rule};

/// A registry the Model's versions arrive in, instead of `spec.training`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Take each new version of an MLflow registered model (or each move of one of its aliases).
    pub mlflow: MlflowSource,
}

/// An MLflow registered model whose versions become the Model's versions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MlflowSource {
    /// Base URL of the MLflow tracking server, e.g. `http://mlflow.mlops:5000`.
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^\\\\s]+$')").message("must be an http:// or https:// URL"))]
    #[schemars(length(max = 2048))]
    pub tracking_uri: String,
    /// The registered model's name in MLflow.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Follow this alias (e.g. `staging`): each time it moves, the version it points to becomes a
    /// new version of the Model. Without it, each newly registered version does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9_-]{1,255}$') && self != 'latest' && !self.matches('^[vV][0-9]+$')").message("an MLflow alias is letters, digits, '_' and '-', and neither 'latest' nor 'v<number>' (MLflow reserves those)"))]
    pub alias: Option<String>,
    /// How often to ask MLflow for a new version. Default 1m; 10s to 24h. A registry webhook
    /// (see the README) makes the controller ask at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("10s", "24h"))]
    pub poll_interval: Option<Duration>,
    /// Optional bearer token sent as `Authorization: Bearer <token>`, read from a Secret labelled
    /// `modelcycle.io/secret-type: mlflow-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<SecretKeyRef>,
}

/// Where a version came from, when it was not trained by modelcycle: the lineage record of an
/// MLflow model version as it was when the version was taken.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionSource {
    /// The MLflow model version.
    pub mlflow: MlflowOrigin,
}

/// One MLflow model version and the run that made it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MlflowOrigin {
    /// The tracking server it was read from.
    pub tracking_uri: String,
    /// The registered model.
    pub name: String,
    /// Its version number in MLflow.
    pub version: String,
    /// The alias that pointed to it, when the Model follows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The MLflow run that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The model version's `source` as MLflow records it (e.g. `models:/m-…` or `runs:/…`).
    pub source: String,
    /// The run's parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The run's metrics (the latest value of each), which go through the gates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}
