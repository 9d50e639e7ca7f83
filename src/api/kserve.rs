//! KServe's `InferenceService` (`serving.kserve.io/v1beta1`), as far as modelcycle writes and
//! reads it, and what a user asks for in `spec.serving.kserve`.
//!
//! The InferenceService's spec is the user's predictor with two fields set by the controller
//! (`model.storageUri`, `canaryTrafficPercent`); its status is read for the revisions KServe
//! created and where its traffic goes. Fields modelcycle does not read are kept as they are.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use schemars::{Schema, SchemaGenerator, json_schema};

/// The annotation that picks KServe's deployment mode for one InferenceService.
pub const DEPLOYMENT_MODE_ANNOTATION: &str = "serving.kserve.io/deploymentMode";

/// An `InferenceService`: the controller owns one per Model served by KServe, named as the Model.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serving.kserve.io",
    version = "v1beta1",
    kind = "InferenceService",
    namespaced,
    schema = "disabled",
    status = "InferenceServiceStatus",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceSpec {
    /// The predictor: the user's `spec.serving.kserve.predictor` with the version's model.
    #[serde(default)]
    pub predictor: Map<String, Value>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// What KServe reports about an InferenceService, as far as modelcycle reads it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceStatus {
    /// The generation its child (Knative Service or Deployment) observed — not the
    /// InferenceService's own, which is why versions record revisions instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Knative-style conditions: `Ready`, `PredictorReady`, `PredictorConfigurationReady`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KServeCondition>,
    /// Per component (`predictor`, ...): revisions and traffic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentStatus>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A condition as KServe (Knative) writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KServeCondition {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// Revisions and traffic of one component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The newest revision, ready or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision: Option<String>,
    /// The newest ready revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision: Option<String>,
    /// The last revision that took all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_rolledout_revision: Option<String>,
    /// The one before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_rolledout_revision: Option<String>,
    /// Where requests go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A share of a component's requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// The revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// Its percent of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// The target follows the newest ready revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Its tag (`latest`, `prev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Where a Model's versions serve.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServingTarget {
    /// Deployments and Services that modelcycle manages (the default).
    #[default]
    Deployment,
    /// A KServe `InferenceService` `<model>` that modelcycle writes (`spec.serving.kserve`).
    KServe,
}

/// KServe's deployment modes, as the annotation `serving.kserve.io/deploymentMode` names them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KServeMode {
    /// Plain Deployments (KServe's default; once called RawDeployment): a new version replaces
    /// the pods by a rolling update. KServe ignores `canaryTrafficPercent` here, so a canary is
    /// refused.
    #[default]
    Standard,
    /// Knative Services (once called Serverless): each version is a revision, and a canary's
    /// share of requests is set with `canaryTrafficPercent`.
    Knative,
}

impl KServeMode {
    /// The value of the deployment-mode annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            KServeMode::Standard => "Standard",
            KServeMode::Knative => "Knative",
        }
    }
}

/// How a Model is served by KServe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KServeServing {
    /// KServe's deployment mode for the InferenceService. Default Standard.
    #[serde(default)]
    pub deployment_mode: KServeMode,
    /// The InferenceService's predictor, as KServe reads it (`model.modelFormat`, `runtime`,
    /// resources, `minReplicas`, ...). modelcycle sets `model.storageUri` to the version's
    /// artifact and `canaryTrafficPercent` during a canary.
    #[schemars(schema_with = "predictor_schema")]
    #[x_kube(validation = Rule::new("has(self.model) && has(self.model.modelFormat) && has(self.model.modelFormat.name)").message("kserve.predictor needs model.modelFormat.name (sklearn, xgboost, ...): modelcycle sets model.storageUri to each version's artifact"))]
    #[x_kube(validation = Rule::new("!has(self.canaryTrafficPercent)").message("kserve.predictor.canaryTrafficPercent is set by modelcycle from the canary steps; remove it"))]
    pub predictor: Map<String, Value>,
}

/// Schema of the predictor: open (KServe's own schema is over a megabyte), with the fields that
/// admission rules read declared, since CEL on the API server cannot name an undeclared field.
fn predictor_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "canaryTrafficPercent": {
                "type": "integer",
                "description": "Set by modelcycle from the canary steps; refused here."
            },
            "model": {
                "type": "object",
                "description": "The model: its format, runtime and resources; modelcycle sets storageUri.",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "modelFormat": {
                        "type": "object",
                        "description": "The model's format, as KServe picks a runtime by it.",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {
                            "name": {"type": "string", "description": "sklearn, xgboost, pytorch, ..."}
                        }
                    }
                }
            }
        }
    })
}
