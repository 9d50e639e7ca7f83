//! The training engines modelcycle can drive besides a plain Job, as far as it writes and reads
//! them: Kubeflow Trainer's `TrainJob` (`trainer.kubeflow.org/v1alpha1`) and KubeRay's `RayJob`
//! (`ray.io/v1`), and what a user asks for in `spec.training.trainJob` / `spec.training.rayJob`.
//!
//! The engines' own schemas are large and theirs to keep: these types declare the fields
//! modelcycle sets or reads, and keep every other field as it is.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which engine trains a Model's versions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TrainingBackend {
    /// One Kubernetes Job, one pod (the default).
    #[default]
    Job,
    /// A Kubeflow Trainer v2 `TrainJob` on a (Cluster)TrainingRuntime: several nodes and
    /// processes per node, run by JobSet.
    TrainJob,
    /// A KubeRay `RayJob`: an entrypoint on a Ray cluster made for the version, or an existing one.
    RayJob,
}

impl TrainingBackend {
    /// Whether this is the default, `Job` (left out of the training inputs' hash, so that
    /// versions trained before backends existed keep their hash).
    pub fn is_job(&self) -> bool {
        *self == TrainingBackend::Job
    }
}

/// The kind of runtime a TrainJob runs on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RuntimeKind {
    /// A cluster-wide `ClusterTrainingRuntime` (Kubeflow Trainer's default).
    #[default]
    ClusterTrainingRuntime,
    /// A `TrainingRuntime` in the Model's namespace.
    TrainingRuntime,
}

/// How a version trains as a Kubeflow Trainer `TrainJob` (`spec.training.backend: TrainJob`). The
/// trainer is the first container of `spec.training.template`: its image, command, args,
/// environment (with the `MODELCYCLE_*` variables) and resources (per node) are the TrainJob's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobTraining {
    /// The runtime to run on, e.g. `torch-distributed`.
    pub runtime_ref: TrainingRuntimeRef,
    /// Nodes (pods) to train on; the runtime's own number when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1024").message("trainJob.numNodes must be between 1 and 1024"))]
    pub num_nodes: Option<i32>,
    /// Processes per node (e.g. one per GPU); the runtime's own number when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1024").message("trainJob.numProcPerNode must be between 1 and 1024"))]
    pub num_proc_per_node: Option<i32>,
}

/// A (Cluster)TrainingRuntime, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRuntimeRef {
    /// Its name.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 253").message("trainJob.runtimeRef.name must be 1 to 253 characters"))]
    pub name: String,
    /// `ClusterTrainingRuntime` (default) or `TrainingRuntime`.
    #[serde(default)]
    pub kind: RuntimeKind,
}

/// How a version trains as a KubeRay `RayJob` (`spec.training.backend: RayJob`). The submitter
/// is `spec.training.template`: the pod that runs `ray job submit` and reports the metrics in
/// its termination message; the `MODELCYCLE_*` variables reach it and, through the job's
/// runtime environment, the entrypoint on the Ray cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.rayClusterSpec) != has(self.clusterSelector)").message("rayJob needs exactly one of rayClusterSpec (a Ray cluster made for each version) and clusterSelector (an existing RayCluster)"))]
pub struct RayJobTraining {
    /// The command that runs the training on the Ray cluster, e.g. `python train.py`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("rayJob.entrypoint must not be empty"))]
    pub entrypoint: String,
    /// The Ray cluster made for each version (KubeRay's `RayClusterSpec`: head and worker groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub ray_cluster_spec: Option<Map<String, Value>>,
    /// Labels of an existing RayCluster to run on instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<BTreeMap<String, String>>,
    /// Delete the version's Ray cluster when its job finishes. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_after_job_finishes: Option<bool>,
}

fn open_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A Kubeflow Trainer `TrainJob`: the controller owns one per version (through its ModelVersion).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "trainer.kubeflow.org",
    version = "v1alpha1",
    kind = "TrainJob",
    namespaced,
    schema = "disabled",
    status = "TrainJobStatus",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobSpec {
    /// The runtime it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_ref: Option<RuntimeRef>,
    /// The trainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<Trainer>,
    /// Patches of the runtime, by manager: modelcycle's labels the trainer pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_patches: Vec<Value>,
    /// Seconds it may run before the engine stops it (`DeadlineExceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// `TrainJob.spec.runtimeRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRef {
    /// The runtime's name.
    pub name: String,
    /// `trainer.kubeflow.org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// `ClusterTrainingRuntime` or `TrainingRuntime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `TrainJob.spec.trainer`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trainer {
    /// The trainer's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_nodes: Option<i32>,
    /// Resources of each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_per_node: Option<ResourceRequirements>,
    /// Processes per node (an integer or a word such as `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_proc_per_node: Option<Value>,
}

/// What Kubeflow Trainer reports about a TrainJob, as far as modelcycle reads it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobStatus {
    /// `Complete`, `Failed`, `Suspended`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<EngineCondition>,
    /// The trainer's own progress and metrics (Trainer v2.2, feature gate `TrainJobStatus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer_status: Option<TrainerStatus>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// `TrainJob.status.trainerStatus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainerStatus {
    /// 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<i32>,
    /// Seconds left, as the trainer estimates them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_remaining_seconds: Option<i64>,
    /// The trainer's metrics, values as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<TrainerMetric>,
    /// When the trainer last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<Time>,
}

/// One metric of `trainerStatus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TrainerMetric {
    /// Its name, e.g. `eval_accuracy`.
    pub name: String,
    /// Its value, as text.
    pub value: String,
}

/// A condition as the engines write it (the Kubernetes `metav1.Condition` shape).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EngineCondition {
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
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A KubeRay `RayJob`: the controller owns one per version (through its ModelVersion).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ray.io",
    version = "v1",
    kind = "RayJob",
    namespaced,
    schema = "disabled",
    status = "RayJobStatus",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct RayJobSpec {
    /// The command run on the Ray cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The job's runtime environment, as YAML (`env_vars`: the `MODELCYCLE_*` variables).
    #[serde(default, rename = "runtimeEnvYAML", skip_serializing_if = "Option::is_none")]
    pub runtime_env_yaml: Option<String>,
    /// The Ray cluster made for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_cluster_spec: Option<Map<String, Value>>,
    /// An existing RayCluster to run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<BTreeMap<String, String>>,
    /// Delete the cluster when the job finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_after_job_finishes: Option<bool>,
    /// Seconds it may run before KubeRay stops it (`DeadlineExceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i32>,
    /// Retries of the submitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// The pod that submits the job and reports its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter_pod_template: Option<PodTemplateSpec>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// What KubeRay reports about a RayJob, as far as modelcycle reads it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RayJobStatus {
    /// The Ray job's state: `PENDING`, `RUNNING`, `STOPPED`, `SUCCEEDED`, `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    /// The RayJob's own state: `Initializing`, `Running`, `Complete`, `Failed`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_deployment_status: Option<String>,
    /// Why it failed, in one word (`DeadlineExceeded`, `AppFailed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}
