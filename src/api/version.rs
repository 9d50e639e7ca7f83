//! The `ModelVersion` resource: the immutable lineage record of one training run.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{TriggerRecord, free_form_schema};
use super::model::TrainingSpec;

/// One trained version of a Model: which data, code and parameters made it, why, and what became of it.
/// Created by the controller and owned by its Model; its spec never changes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "modelcycle.io",
    version = "v1alpha1",
    kind = "ModelVersion",
    namespaced,
    status = "ModelVersionStatus",
    shortname = "mv",
    category = "modelcycle",
    doc = "One trained version of a Model: the immutable lineage record of a training run and what became of it.",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"Version","type":"integer","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Analysis","type":"string","jsonPath":".status.analysis.lastVerdict","description":"The last live-metric measurement: Pass, Fail or Inconclusive"}"#,
    printcolumn = r#"{"name":"Trigger","type":"string","jsonPath":".spec.trigger.reason"}"#,
    printcolumn = r#"{"name":"Dataset","type":"string","jsonPath":".spec.training.dataset.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("ModelVersion spec is immutable: it is the lineage record of a training run"))]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionSpec {
    /// Name of the Model this version belongs to.
    pub model: String,
    /// Version number, starting at 1; never reused within a Model.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000").message("version must be between 1 and 1000000"))]
    pub version: u32,
    /// Why this version was trained.
    pub trigger: TriggerRecord,
    /// The training inputs exactly as they were when this version was created; absent for a
    /// version taken from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSpec>,
    /// The registry version it was taken from, for a Model with `spec.source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::source::VersionSource>,
    /// Images of the trainer's containers, for lineage at a glance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trainer_images: Vec<String>,
    /// The artifact URI with its placeholders filled in.
    pub artifact_uri: String,
    /// SHA-256 of the training inputs (dataset, parameters, trainer template, artifact URI template).
    pub inputs_hash: String,
}

impl ModelVersionSpec {
    /// The dataset it was trained on; `None` for a version taken from a registry.
    pub fn dataset(&self) -> Option<&super::model::DatasetRef> {
        self.training.as_ref().map(|t| &t.dataset)
    }

    /// Its parameters: the training parameters, or the registry run's.
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match (&self.training, &self.source) {
            (Some(t), _) => &t.parameters,
            (None, Some(s)) => &s.mlflow.params,
            (None, None) => &NONE,
        }
    }

    /// Where it came from, in a few words: `trained` or the registry version.
    pub fn origin(&self) -> String {
        match &self.source {
            Some(s) => format!(
                "MLflow {} version {}{}",
                s.mlflow.name,
                s.mlflow.version,
                s.mlflow.run_id.as_deref().map_or(String::new(), |r| format!(" (run {r})"))
            ),
            None => "trained".into(),
        }
    }
}

/// What became of a version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VersionPhase>,
    /// Name of the training Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When training started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When training finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// How far its training is, as the engine reports it while it trains (a TrainJob's
    /// `trainerStatus`, a RayJob's state); the last report is kept once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<TrainingProgress>,
    /// Metrics the trainer reported.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Reference distributions of live inputs or predictions, by feature name: reported by the
    /// trainer, or captured from live traffic after the version started serving. Drift is
    /// measured against these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reference: BTreeMap<String, crate::stats::Histogram>,
    /// What the trainer read, as it reported it (`{"dataset": {"digest", "rows"}}` in its
    /// termination message): a dataset `version` is often a mutable path, the digest is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_read: Option<DatasetRead>,
    /// The verdict of every evaluation gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gate_results: Vec<GateResult>,
    /// Every promotion, rollback and other decision taken about this version, oldest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<DecisionRecord>,
    /// Why the version is in its phase, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where its canary rollout is, while it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryProgress>,
    /// Where its blue-green rollout is, from the preview's start until the previous version's
    /// Deployment has been handed the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenProgress>,
    /// Which KServe revision runs it (target KServe), from when it was written to the
    /// InferenceService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kserve: Option<KServeRevision>,
    /// Its analysis on live metrics: during its rollout and its guard window after promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStatus>,
    /// kstatus conditions: `Reconciling` while the version trains, is judged or rolls out;
    /// `Stalled` when its training failed (it never serves; a new version is needed). A judged
    /// version (Ready, Serving, Retired, Rejected, RolledBack) has neither True.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation this status describes: 0 (the CRD's default) until the controller first
    /// writes it, so that kstatus readers see a version nobody has looked at yet as in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Where a canary rollout is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryProgress {
    /// The step (0-based) being rolled out; the number of steps once promoting.
    pub step: u32,
    /// When the step's pods became available (its pause counts from then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started: Option<Time>,
    /// Canary replicas of the step.
    pub canary_replicas: i32,
    /// The share of replicas (percent) that runs the new version: the weight asked for,
    /// rounded to whole pods.
    pub effective_weight: i32,
    /// The shadow stage before the steps passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow_passed: bool,
}

/// The data a trainer reports it read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRead {
    /// A digest of the content read, e.g. `sha256:…` (at most 256 characters).
    pub digest: String,
    /// How many rows (records) it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// Which revision of the InferenceService runs a version. KServe's `status.observedGeneration`
/// is its child's, not the InferenceService's, so a version is told from the revisions created
/// after it was written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KServeRevision {
    /// The InferenceService's newest revision when the version was written to it (empty: none):
    /// the version runs in the first revision KServe creates after it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_after: String,
    /// The InferenceService's `status.observedGeneration` then (Standard mode has no revisions:
    /// a larger one says KServe's Deployment took the version).
    #[serde(default)]
    pub observed_after: i64,
    /// The revision that runs the version, once KServe created it (Knative mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Where a blue-green rollout is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenProgress {
    /// When every preview pod became available (analysis and promotion count from then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_ready: Option<Time>,
    /// When the Service switched to the new version; the previous version's Deployment is kept
    /// for `scaleDownDelay` from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched: Option<Time>,
}

/// The part of a version's life its analysis covers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AnalysisStage {
    /// While the version rolls out (canary steps, blue-green preview).
    Rollout,
    /// After promotion, for `analysis.guard`.
    Guard,
    /// The guard window passed.
    Passed,
}

/// The outcome of one measurement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AnalysisVerdict {
    /// Every metric held.
    Pass,
    /// A metric did not hold.
    Fail,
    /// A metric could not be judged (no data, Prometheus unreachable, query refused): the
    /// rollout neither promotes nor rolls back.
    Inconclusive,
}

/// Live-metric analysis of a version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// Rollout, Guard or Passed.
    pub stage: AnalysisStage,
    /// When the current step (or the guard window) began; `initialDelay` counts from then.
    pub started: Time,
    /// The version compared with (`maxRegression`) and rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<u32>,
    /// Failed measurements in this stage; more than `failureLimit` rolls back.
    #[serde(default)]
    pub failures: u32,
    /// When the last measurement was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_measured: Option<Time>,
    /// The outcome of the last measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verdict: Option<AnalysisVerdict>,
    /// The most recent measurements, oldest first (bounded): one per metric and bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

impl AnalysisStatus {
    /// A stage of analysis starting at `since`, comparing with and rolling back to `baseline`.
    pub fn starting(stage: AnalysisStage, since: Time, baseline: Option<u32>) -> Self {
        Self {
            stage,
            started: since,
            baseline,
            failures: 0,
            last_measured: None,
            last_verdict: None,
            measurements: vec![],
        }
    }
}

/// One metric judged against one bound at one time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When it was taken.
    pub time: Time,
    /// The analysis metric's name.
    pub metric: String,
    /// The query as sent to Prometheus.
    pub query: String,
    /// Which bound: `min`, `max` or `maxRegression`.
    pub bound: String,
    /// The value the query returned; for a distribution metric, the divergence of the version's
    /// distribution from the stable version's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold it was compared with (for `maxRegression`, from the stable version's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Pass, Fail or Inconclusive.
    pub verdict: AnalysisVerdict,
    /// Why there is no value, CamelCase: `NoData`, `PrometheusUnreachable`, `QueryRejected`,
    /// `UnexpectedResult`, `NoStableTraffic`; for a distribution metric also `TooFewSamples`,
    /// `DistributionsNotComparable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error text behind `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The lifecycle of a version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum VersionPhase {
    /// Created; its training Job is not running yet.
    Pending,
    /// The training Job runs.
    Training,
    /// Training finished; the metrics are being judged.
    Evaluating,
    /// A gate failed; the version never serves.
    Rejected,
    /// Training or metric handoff failed.
    Failed,
    /// Passed every gate; may serve.
    Ready,
    /// Rolling out.
    RollingOut,
    /// Serves traffic.
    Serving,
    /// Served, then replaced by a newer version.
    Retired,
    /// Rolled out and rolled back; never promoted again automatically.
    RolledBack,
}

impl VersionPhase {
    /// True for phases a version never leaves on its own.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Rejected | Self::Failed | Self::Retired | Self::RolledBack)
    }
}

/// The verdict of one gate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Verdict {
    /// The gate held.
    Pass,
    /// The gate did not hold.
    Fail,
    /// The gate could not be judged (e.g. no serving version to compare with).
    Skipped,
}

/// One gate's result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// The metric judged.
    pub metric: String,
    /// Which bound: `min`, `max`, `minImprovement` or `maxRegression`.
    pub bound: String,
    /// The value the version reported, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold it was compared with (for relative bounds, the serving version's value adjusted by the bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Pass, Fail or Skipped.
    pub verdict: Verdict,
    /// Why, in a few words (e.g. `MetricMissing`, `NoServingVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A decision about a version: what was observed, when, and what was done.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// When the decision was taken.
    pub time: Time,
    /// What was done: `Promote`, `Reject`, `RollBack`, `Retire`, `Fail`, ...
    pub action: String,
    /// Why, as a CamelCase reason.
    pub reason: String,
    /// What was observed, in a sentence.
    pub message: String,
    /// Measurements behind the decision, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_schema")]
    pub evidence: Option<serde_json::Value>,
}

/// How far a version's training is, as its engine says.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingProgress {
    /// Percent done, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// Seconds left, as the trainer estimates them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<i64>,
    /// The trainer's metrics so far (e.g. `epoch`, `loss`), as it reported them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, String>,
    /// The engine's own words about the run (`RayJob RUNNING`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the engine last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
}
