//! The `Model` resource: what a user writes to have a model trained, judged and served.

use std::collections::BTreeMap;

use super::Duration;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DURATION_MAX_LENGTH, Goal, PrometheusSource, duration_rule, pod_template_schema};
use super::engines::{RayJobTraining, TrainJobTraining, TrainingBackend};
use super::gateway::{HeaderMatch, TrafficRouting};
use super::kserve::{KServeServing, ServingTarget};
use super::policy::DriftMethod;

/// CEL rule on a Model's name: it names the Model's Service, which must be a DNS-1035 label
/// (`churn.v2` and `2fa-risk` are valid object names but not Service names). Length needs no
/// rule: child names longer than 63 characters are cut with a hash (`objects::names`).
pub const MODEL_NAME_RULE: &str = "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')";
/// The refusal message of [`MODEL_NAME_RULE`].
pub const MODEL_NAME_MESSAGE: &str = "a Model's name becomes its Service's name, so it must start with a lowercase letter, hold only lowercase letters, digits and '-' (no dots) and end with a letter or digit";

/// A machine-learning model that modelcycle trains, evaluates, versions and serves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "modelcycle.io",
    version = "v1alpha1",
    kind = "Model",
    namespaced,
    status = "ModelStatus",
    shortname = "mdl",
    category = "modelcycle",
    doc = "A machine-learning model that modelcycle trains, evaluates, versions and serves.",
    printcolumn = r#"{"name":"Serving","type":"integer","jsonPath":".status.servingVersion","description":"Version that serves traffic"}"#,
    printcolumn = r#"{"name":"Candidate","type":"integer","jsonPath":".status.candidateVersion","description":"Version being trained, evaluated or rolled out"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Rollout","type":"string","jsonPath":".status.conditions[?(@.type==\"RollingOut\")].reason","description":"Where the rollout is: RollingOut, WaitingForPromotion, AnalysisInconclusive, Idle, ..."}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new(MODEL_NAME_RULE).message(MODEL_NAME_MESSAGE)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.training) != has(self.source)").message("a Model either trains its versions (spec.training) or takes them from a registry (spec.source): set exactly one"))]
#[x_kube(validation = Rule::new("!has(self.source) || !has(self.registry)").message("a Model that takes its versions from MLflow (spec.source) cannot also publish them to a registry (spec.registry): they are there already"))]
pub struct ModelSpec {
    /// How to train the model: the trainer pod, its data, parameters and where it writes the
    /// artifact. Either this or `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSpec>,
    /// Where the versions come from when they are trained elsewhere and registered: each new
    /// MLflow model version becomes a version of the Model, judged by its run's metrics. Either
    /// this or `training`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::source::SourceSpec>,
    /// The gates a newly trained version must pass before it may serve.
    #[serde(default)]
    pub evaluation: EvaluationSpec,
    /// How to serve the model and how to roll a new version out.
    pub serving: ServingSpec,
    /// Serve exactly this version (a Ready, Serving or Retired one). The declarative way to roll
    /// back or hold a version; remove it to let modelcycle promote new versions again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000").message("pinnedVersion must be between 1 and 1000000"))]
    pub pinned_version: Option<u32>,
    /// How many finished versions (Rejected, Failed, Retired, RolledBack) to keep. The serving
    /// version and the one a rollback would return to are never pruned. Default 10.
    #[serde(default = "default_version_history_limit")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("versionHistoryLimit must be between 1 and 100"))]
    pub version_history_limit: u32,
    /// How many finished training runs (Jobs, TrainJobs, RayJobs, with their pods) to keep,
    /// newest first, as a CronJob keeps its Jobs. Older runs are deleted once their version has
    /// left training: the version keeps what they reported (metrics, failure reason). Their logs
    /// go with them; 0 keeps none. Default 3.
    #[serde(default = "default_run_history_limit")]
    #[x_kube(validation = Rule::new("self <= 100").message("runHistoryLimit must be between 0 and 100"))]
    pub run_history_limit: u32,
    /// Model registries each version is published to as it is judged, rolls out and rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<super::registry::RegistrySpec>,
}

fn default_version_history_limit() -> u32 {
    10
}

fn default_run_history_limit() -> u32 {
    3
}

/// How a version is trained.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.backend) && self.backend == 'TrainJob') == has(self.trainJob)").message("training.trainJob is set exactly when training.backend is TrainJob: it names the TrainingRuntime the version trains on"))]
#[x_kube(validation = Rule::new("(has(self.backend) && self.backend == 'RayJob') == has(self.rayJob)").message("training.rayJob is set exactly when training.backend is RayJob: it holds the entrypoint and the Ray cluster"))]
pub struct TrainingSpec {
    /// What runs the training: `Job` (one pod, the default), `TrainJob` (Kubeflow Trainer v2,
    /// several nodes, with `trainJob`) or `RayJob` (KubeRay, with `rayJob`). The version, its
    /// gates and its rollout are the same whichever engine trains it.
    #[serde(default, skip_serializing_if = "TrainingBackend::is_job")]
    pub backend: TrainingBackend,
    /// The TrainJob to run (`backend: TrainJob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_job: Option<TrainJobTraining>,
    /// The RayJob to run (`backend: RayJob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_job: Option<RayJobTraining>,
    /// Kueue's queue for the training (the label `kueue.x-k8s.io/queue-name` on the Job,
    /// TrainJob or RayJob): Kueue admits it when the queue has room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$') && size(self) <= 63").message("training.queueName must be a label value naming a Kueue LocalQueue: lowercase letters, digits, '-' and '.', at most 63"))]
    pub queue_name: Option<String>,
    /// Pod template of the trainer. modelcycle injects `MODELCYCLE_MODEL`, `MODELCYCLE_VERSION`,
    /// `MODELCYCLE_DATASET_URI`, `MODELCYCLE_DATASET_VERSION`, `MODELCYCLE_ARTIFACT_URI` and each
    /// parameter as `MODELCYCLE_PARAM_<NAME>` into every container. The trainer reports its
    /// metrics as JSON in its termination message, e.g. `{"metrics": {"auc": 0.93}}`.
    #[schemars(schema_with = "pod_template_schema")]
    pub template: PodTemplateSpec,
    /// The data to train on. Changing `version` trains a new model version.
    pub dataset: DatasetRef,
    /// Free-form training parameters, passed as `MODELCYCLE_PARAM_<NAME>` (names upper-cased); at most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))").message("parameter names must be letters, digits and underscores, not starting with a digit, so they can become environment variables"))]
    pub parameters: BTreeMap<String, String>,
    /// Seconds a training Job may run before it is stopped and the version fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 2592000").message("activeDeadlineSeconds must be between 1 and 2592000 (30 days)"))]
    pub active_deadline_seconds: Option<i64>,
    /// How many times a failed trainer pod is retried before the version fails. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10").message("backoffLimit must be between 0 and 10"))]
    pub backoff_limit: Option<i32>,
    /// Where the trainer writes the model, as a template. Placeholders: `{model}`, `{namespace}`,
    /// `{version}`, `{datasetVersion}`. Example: `s3://models/{model}/{version}`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("artifactUri must not be empty"))]
    pub artifact_uri: String,
}

/// A versioned dataset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRef {
    /// Location of the data, e.g. `s3://data/churn`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("dataset.uri must not be empty"))]
    pub uri: String,
    /// Version of the data, e.g. a date or a snapshot id. Changing it trains a new model version.
    #[x_kube(validation = Rule::new("size(self) > 0").message("dataset.version must not be empty"))]
    pub version: String,
}

/// The gates of an evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationSpec {
    /// Every gate must pass for a version to become Ready. No gates: every trained version passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub gates: Vec<Gate>,
    /// Reject a version whose trainer read different data than an earlier version under the same
    /// dataset `uri` and `version` (by the digest trainers report in their termination message:
    /// `{"dataset": {"digest": "sha256:…"}}`). Off: such a version is only flagged (its condition
    /// `DataStable` is False and a Warning Event names both versions and digests).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_stable_data: bool,
}

/// One gate on a metric the trainer reports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max) || has(self.minImprovement) || has(self.maxRegression)").message("a gate needs at least one of min, max, minImprovement, maxRegression"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("gate min must not be greater than max"))]
pub struct Gate {
    /// Name of the metric, as the trainer reports it (e.g. `auc`).
    #[x_kube(validation = Rule::new("size(self) > 0").message("a gate must name a metric"))]
    pub metric: String,
    /// Whether higher (Maximize, the default) or lower (Minimize) values are better; used by
    /// `minImprovement` and `maxRegression`.
    #[serde(default)]
    pub goal: Goal,
    /// The value must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The value must be at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The value must beat the serving version's by at least this much (in the metric's units,
    /// in the direction of `goal`). Skipped while nothing serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_improvement: Option<f64>,
    /// The value may be worse than the serving version's by at most this much (in the metric's
    /// units, in the direction of `goal`). Skipped while nothing serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("maxRegression must not be negative"))]
    pub max_regression: Option<f64>,
    /// Fail `minImprovement` and `maxRegression` when a version serves but has not reported this
    /// metric, instead of skipping them (a skipped gate is listed as skipped in the decision).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_baseline: bool,
}

/// How versions are served.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.strategy) || !has(self.strategy.canary) || self.strategy.canary.steps.all(s, !has(s.headers) || size(s.headers) == 0) || has(self.trafficRouting)").message("canary steps with headers need trafficRouting.gatewayAPI: only a route can send a cohort to the new version"))]
#[x_kube(validation = Rule::new("!has(self.strategy) || !has(self.strategy.canary) || !has(self.strategy.canary.shadow) || has(self.trafficRouting)").message("a shadow stage needs trafficRouting.gatewayAPI: only a route can mirror requests to the new version"))]
#[x_kube(validation = Rule::new(format!("{KSERVE} || has(self.template)")).message("spec.serving.template is required: the model server's pod template (or set target: KServe and kserve.predictor)"))]
#[x_kube(validation = Rule::new(format!("!({KSERVE}) || has(self.kserve)")).message("target KServe needs spec.serving.kserve with the InferenceService's predictor"))]
#[x_kube(validation = Rule::new(format!("{KSERVE} || !has(self.kserve)")).message("spec.serving.kserve is read only with target: KServe"))]
#[x_kube(validation = Rule::new(format!("!({KSERVE}) || !has(self.trafficRouting)")).message("trafficRouting does not apply with target KServe: KServe routes the InferenceService's requests itself"))]
#[x_kube(validation = Rule::new(format!("!({KSERVE}) || !has(self.strategy) || !has(self.strategy.blueGreen)")).message("blueGreen is not available with target KServe: KServe shifts requests with canaryTrafficPercent, so use canary steps"))]
#[x_kube(validation = Rule::new(format!("!({KSERVE}) || !has(self.strategy) || !has(self.strategy.canary) || (has(self.kserve) && has(self.kserve.deploymentMode) && self.kserve.deploymentMode == 'Knative')")).message("a canary with target KServe needs kserve.deploymentMode: Knative; in Standard (RawDeployment) mode KServe ignores canaryTrafficPercent (KServe #5335) and the new version would take every request at once"))]
pub struct ServingSpec {
    /// Where versions serve: `Deployment` (the default: modelcycle's own Deployments and
    /// Services, from `template`) or `KServe` (an InferenceService `<model>` from `kserve`).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: ServingTarget,
    /// With target KServe: the InferenceService's deployment mode and predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kserve: Option<KServeServing>,
    /// Pod template of the model server (target Deployment). modelcycle injects
    /// `MODELCYCLE_MODEL_URI` and `MODELCYCLE_VERSION` into every container.
    #[serde(default, skip_serializing_if = "is_empty_template")]
    #[schemars(schema_with = "pod_template_schema")]
    pub template: PodTemplateSpec,
    /// Number of serving pods. Default 1.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("replicas must be between 0 and 1000"))]
    pub replicas: i32,
    /// Container port the model server listens on; the Service `<model>` targets it. Default 8080.
    #[serde(default = "default_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,
    /// How a new version replaces the serving one. Empty: Rolling.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Automatic: promote as soon as the rollout's checks pass. Manual: wait for the annotation
    /// `modelcycle.io/promote: "<version>"` on the Model.
    #[serde(default)]
    pub promotion: Promotion,
    /// Checks on live metrics during and after a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// Seconds a rollout may make no progress before the new version is rolled back (the
    /// Deployment's `progressDeadlineSeconds`). Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 86400").message("progressDeadlineSeconds must be between 10 and 86400 (a day)"))]
    pub progress_deadline_seconds: Option<i32>,
    /// How requests reach the versions. Empty: through the Service `<model>`, where a canary's
    /// share of requests is its share of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// How long after a version stopped serving it can be returned to at once, skipping the
    /// strategy's steps and analysis: by the abort annotation on the serving version (an
    /// emergency rollback) or by `pinnedVersion`. A pin to a version that stopped serving longer
    /// ago rolls out by the strategy, judged like a new version. Empty: no limit. At most 2160h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "2160h"))]
    pub rollback_window: Option<Duration>,
}

/// CEL: the Model is served by KServe.
const KSERVE: &str = "(has(self.target) && self.target == 'KServe')";

fn is_empty_template(template: &PodTemplateSpec) -> bool {
    *template == PodTemplateSpec::default()
}

fn is_default_target(target: &ServingTarget) -> bool {
    *target == ServingTarget::Deployment
}

fn default_replicas() -> i32 {
    1
}

fn default_port() -> i32 {
    8080
}

/// The rollout strategy: Rolling when neither `canary` nor `blueGreen` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.canary) && has(self.blueGreen))").message("choose at most one of canary and blueGreen"))]
pub struct RolloutStrategy {
    /// Shift traffic to the new version step by step, by replica ratio behind one Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Start the new version beside the old one and switch the Service when it is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// The steps of a canary rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Steps with strictly increasing weights; after the last step the new version takes all traffic.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.weight == a.weight)) && self.map(s, s.weight).isSorted()").message("canary step weights must be strictly increasing"))]
    pub steps: Vec<CanaryStep>,
    /// A shadow stage before the first step (needs `trafficRouting.gatewayAPI`): the route
    /// mirrors a copy of requests to the new version, whose answers are discarded, while
    /// analysis judges it; no user sees its answers, and a failure rolls it back before any
    /// request was shifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStage>,
}

/// The shadow stage of a canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStage {
    /// How long the stage holds (from when the new version's pods are available) while analysis
    /// runs; from 10s to 168h.
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("10s", "168h"))]
    pub duration: Duration,
    /// The share (percent) of requests copied to the new version; its pods are sized for it.
    /// Default 100.
    #[serde(default = "default_shadow_percent")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("shadow percent must be between 1 and 100"))]
    pub percent: i32,
}

fn default_shadow_percent() -> i32 {
    100
}

/// One canary step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.weight >= 1 || has(self.headers) && size(self.headers) > 0").message("a canary step needs a weight from 1 to 100, or headers (a weight of 0 sends only that cohort to the new version)"))]
pub struct CanaryStep {
    /// Share (percent) of requests sent to the new version during this step: through Gateway
    /// API its route weight, else its share of the replicas. 0 only with `headers`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("canary weight must be between 0 and 100"))]
    pub weight: i32,
    /// A cohort (needs `trafficRouting.gatewayAPI`): requests carrying all of these headers go to
    /// the new version during this step, whatever the weight; the others are split by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatch>,
    /// How long to hold this step (from when its pods are available) while analysis runs.
    /// Empty: with promotion Manual, wait for the promote annotation; otherwise hold one
    /// analysis interval, or move on at once without analysis. At most 168h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "168h"))]
    pub pause: Option<Duration>,
}

/// Blue-green settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// How long the previous version's Deployment is kept after the switch, so a rollback is one
    /// selector change. Default 30s, at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "24h"))]
    pub scale_down_delay: Option<Duration>,
    /// Also create a Service `<model>-preview` that selects the new version before promotion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview_service: bool,
}

/// Who promotes a version that passed its checks. With Manual, a rollout waits at each canary
/// step without a pause, before a blue-green switch, and before a rolling update, until the
/// Model carries `modelcycle.io/promote: "<version>"`; that annotation approves every remaining
/// gate of that version (analysis still runs). `modelcycle.io/abort: "<version>"` rolls it back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Promotion {
    /// modelcycle promotes on its own.
    #[default]
    Automatic,
    /// A person promotes with the annotation `modelcycle.io/promote: "<version>"`.
    Manual,
}

/// Checks on live metrics while a version rolls out, and for `guard` after it is promoted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// The Prometheus to query.
    pub prometheus: PrometheusSource,
    /// The metrics to check; every one must hold.
    #[schemars(length(min = 1, max = 16))]
    pub metrics: Vec<AnalysisMetric>,
    /// Time between measurements. Default 1m; from 10s to 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("10s", "24h"))]
    pub interval: Option<Duration>,
    /// Failed measurements tolerated before the rollout is rolled back. Default 0 (the first failure rolls back).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("failureLimit must be between 0 and 100"))]
    pub failure_limit: i32,
    /// Wait this long after a step starts before the first measurement. Default none; at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "24h"))]
    pub initial_delay: Option<Duration>,
    /// Keep analysing the new version this long after promotion, and roll back if it fails. At most 168h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "168h"))]
    pub guard: Option<Duration>,
    /// What a query with no data means: Inconclusive (the default) pauses the rollout, Fail counts a failure.
    #[serde(default)]
    pub on_no_data: NoDataPolicy,
}

/// What a query that returns no data means.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NoDataPolicy {
    /// Neither promote nor roll back; say so in a condition.
    #[default]
    Inconclusive,
    /// Count the measurement as failed.
    Fail,
}

/// One live metric checked during a rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max) || has(self.maxRegression)").message("an analysis metric needs at least one of min, max, maxRegression"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("analysis metric min must not be greater than max"))]
#[x_kube(validation = Rule::new("!has(self.distribution) || has(self.max) && !has(self.min) && !has(self.maxRegression)").message("a distribution metric is bounded by max alone: the largest divergence allowed from the stable version's distribution"))]
pub struct AnalysisMetric {
    /// Name of the check, shown in status and decision records.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$')").message("metric name must be lower-case letters, digits, '-' or '_'"))]
    #[schemars(length(max = 63))]
    pub name: String,
    /// PromQL returning one number (a histogram with `distribution`). Placeholders: `{{model}}`,
    /// `{{namespace}}`, `{{version}}`, `{{stableVersion}}`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("query must not be empty"))]
    pub query: String,
    /// Whether higher (Maximize, the default) or lower (Minimize) values are better; used by `maxRegression`.
    #[serde(default)]
    pub goal: Goal,
    /// The value must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The value must be at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Compare with the same query run for the stable version: the new version may be worse by at
    /// most this fraction of the stable value (0.1 = 10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("maxRegression must not be negative"))]
    pub max_regression: Option<f64>,
    /// The query returns a histogram (series with an `le` label), e.g. of the predictions, and
    /// the value checked is how far the new version's distribution is from the same query's for
    /// the stable version, bounded by `max`. Compared while the stable version answers the same
    /// requests beside it: in the shadow stage (the mirrored copy) and in canary steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionComparison>,
}

/// How a distribution metric compares the new version's histogram with the stable version's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributionComparison {
    /// PSI, KS or JensenShannon (the stable version's histogram is the reference).
    pub method: DriftMethod,
    /// Fewer samples than this in either histogram gives no verdict (see `onNoData`). Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000000").message("minSamples must be between 1 and 1000000000"))]
    pub min_samples: Option<u64>,
}

/// What modelcycle observed and decided about a Model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// The version that serves traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<u32>,
    /// The version being trained, evaluated or rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_version: Option<u32>,
    /// The newest version number given out; numbers are never reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<u32>,
    /// One word for where the Model is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ModelPhase>,
    /// kstatus conditions: Ready, Reconciling, Stalled, plus Training, RollingOut, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The value of the `modelcycle.io/retrain-request` annotation last acted on; a new value retrains once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retrain_request: Option<String>,
    /// Publishing to the registries of `spec.registry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<super::registry::RegistryStatus>,
}

/// Where a Model is, in one word.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ModelPhase {
    /// Nothing trained yet.
    Pending,
    /// A version is training.
    Training,
    /// A version's metrics are being judged.
    Evaluating,
    /// A version is rolling out.
    RollingOut,
    /// The wanted version serves.
    Serving,
    /// A rollout failed and was rolled back, or serving is unhealthy.
    Degraded,
    /// The spec cannot be acted on; see the Stalled condition.
    Stalled,
}
