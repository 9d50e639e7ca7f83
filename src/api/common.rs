//! Types and schema pieces shared by the three custom resources.

use super::Duration;
use kube::core::Rule;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The API group of every modelcycle resource.
pub const GROUP: &str = "modelcycle.io";

/// The longest duration string admitted: bounds what the duration rule's regular expression reads,
/// which the API server's CEL cost estimator needs (`2h45m30s` is 8 characters).
pub const DURATION_MAX_LENGTH: u32 = 32;

/// CEL rule that keeps a duration string in the Go `time.ParseDuration` form the controller reads
/// and between `min` and `max` (both in that form). A number of 6 or more digits is refused
/// before CEL's `duration()` reads it, so no admitted string can overflow (32 characters of at
/// most 5-digit hours stay far below Go's 2562047h) and the message always names the bounds.
pub fn duration_rule(min: &str, max: &str) -> Rule {
    Rule::new(format!(
        r"self.matches('^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && !self.matches('[0-9]{{6}}') && duration(self) >= duration('{min}') && duration(self) <= duration('{max}')"
    ))
    .message(kube::core::Message::Message(format!(
        "must be a duration from {min} to {max}, such as 30s, 5m or 1h30m (units ns, us, ms, s, m, h; at most 5 digits in a number)"
    )))
}

/// Schema of an embedded pod template.
///
/// Kept open (`x-kubernetes-preserve-unknown-fields`) on purpose: inlining the full
/// PodTemplateSpec schema twice makes the Model CRD larger than the 256 KiB that
/// `kubectl apply` can store in its last-applied annotation. The controller checks what it
/// needs (at least one container, each with a name and an image) and reports a `Stalled`
/// condition otherwise.
pub fn pod_template_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of free-form JSON kept verbatim (decision evidence and similar): any JSON value, an
/// object or a list (gate results are a list). A structural schema may leave out `type` only
/// here, under `x-kubernetes-preserve-unknown-fields`; with `type: object` the API server refuses
/// a status apply that carries a list.
pub fn free_form_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Whether a higher or a lower value of a metric is better.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Goal {
    /// Higher is better (accuracy, AUC, F1). The default.
    #[default]
    Maximize,
    /// Lower is better (loss, error rate, latency).
    Minimize,
}

/// A reference to one key of a Secret in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret whose value is used.
    pub key: String,
}

/// Where to read live metrics from: a Prometheus-compatible HTTP API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`.
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s]+$')").message("must be an http:// or https:// URL"))]
    pub address: String,
    /// Optional bearer token sent as `Authorization: Bearer <token>`, read from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeyRef>,
    /// How long one query may take before it counts as failed. Default 10s; from 100ms to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("100ms", "5m"))]
    pub timeout: Option<Duration>,
    /// Skip TLS certificate verification (testing only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// The evidence that made modelcycle start a training run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerCause {
    /// What fired: `Initial`, `TrainingInputsChanged`, `Schedule`, `Manual`, `DataChange`,
    /// `Drift` or `Performance`.
    pub reason: String,
    /// Human-readable evidence, e.g. `PSI=0.31 > 0.20 over 6h, 48210 samples`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

/// Why a training run happened: every cause that fired together, and when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerRecord {
    /// The causes joined with `+`, e.g. `Schedule+Drift`; shown in `kubectl get`.
    pub reason: String,
    /// Each cause with its evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<TriggerCause>,
    /// When the trigger fired.
    pub time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

impl TriggerRecord {
    /// A record of the given causes at `time`, its reason the causes joined with `+`.
    pub fn new(causes: Vec<TriggerCause>, time: jiff::Timestamp) -> Self {
        let reason = causes.iter().map(|c| c.reason.as_str()).collect::<Vec<_>>().join("+");
        Self { reason, causes, time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(time) }
    }
}
