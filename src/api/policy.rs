//! The `RetrainPolicy` resource: when a Model is retrained, and the hygiene around it.

use super::Duration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DURATION_MAX_LENGTH, PrometheusSource, TriggerRecord, duration_rule};
use crate::stats::{self, Histogram, StatsError};

/// When to retrain a Model: on a schedule, on request, on drift in live inputs or on falling live quality.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "modelcycle.io",
    version = "v1alpha1",
    kind = "RetrainPolicy",
    namespaced,
    status = "RetrainPolicyStatus",
    shortname = "rtp",
    category = "modelcycle",
    doc = "When to retrain a Model, and the hygiene that keeps retraining sane.",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.modelRef.name"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule.cron"}"#,
    printcolumn = r#"{"name":"Last Trigger","type":"string","jsonPath":".status.lastTrigger.reason"}"#,
    printcolumn = r#"{"name":"Next","type":"date","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.schedule) || self.dataChange || has(self.drift) || has(self.performance) || self.manual").message("a RetrainPolicy needs at least one trigger: schedule, dataChange, drift, performance or manual"))]
#[x_kube(validation = Rule::new("!(has(self.drift) || has(self.performance)) || has(self.prometheus)").message("drift and performance triggers need spec.prometheus"))]
#[serde(rename_all = "camelCase")]
pub struct RetrainPolicySpec {
    /// The Model in this namespace to retrain. One RetrainPolicy per Model.
    pub model_ref: ModelRef,
    /// Retrain on a cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleTrigger>,
    /// Record a retrain caused by a change of the Model's `spec.training.dataset.version` as a
    /// `DataChange` trigger subject to this policy's hygiene.
    #[serde(default)]
    pub data_change: bool,
    /// Retrain once for each new value of the annotation `modelcycle.io/retrain-request` on this
    /// policy or on the Model.
    #[serde(default)]
    pub manual: bool,
    /// Retrain when the live distribution of an input or of the predictions drifts from the
    /// serving version's reference distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftTrigger>,
    /// Retrain when a live quality metric stays outside its bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceTrigger>,
    /// The Prometheus that drift and performance queries go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
    /// Minimum time between the start of one training and the next trigger taking effect.
    /// Default 1h for the triggers that fire by themselves (schedule, drift, performance), so none
    /// retrains without pause; a retrain request or new data is not held by the default. `0s` turns
    /// it off. At most 720h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "720h"))]
    pub cooldown: Option<Duration>,
    /// At most this many retrains started per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("maxRetrainsPerDay must be between 1 and 100"))]
    pub max_retrains_per_day: Option<u32>,
    /// What to do when a trigger fires while a version trains: Forbid (the default) holds the
    /// trigger back; Replace stops the running training and starts a new one.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Stop firing triggers; firings are still recorded as suppressed.
    #[serde(default)]
    pub suspend: bool,
}

/// A reference to a Model in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRef {
    /// Name of the Model.
    #[x_kube(validation = Rule::new("size(self) > 0").message("modelRef.name must not be empty"))]
    pub name: String,
}

/// A cron schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleTrigger {
    /// Standard 5-field cron expression (minute hour day-of-month month day-of-week).
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\s*\\\\S+(\\\\s+\\\\S+){4}\\\\s*$')").message("cron must have exactly 5 fields: minute hour day-of-month month day-of-week"))]
    pub cron: String,
    /// IANA time zone the schedule is evaluated in, e.g. `Europe/Berlin`. Default UTC.
    #[serde(default = "default_time_zone")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')").message("timeZone must be an IANA time zone name such as UTC, GMT, Etc/UTC or Europe/Berlin"))]
    pub time_zone: String,
    /// A run missed while the controller was down fires once on return if it is at most this late.
    /// Default: the cooldown, or 1h. At most 720h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "720h"))]
    pub starting_deadline: Option<Duration>,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// How two distributions are compared.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DriftMethod {
    /// Population Stability Index.
    #[serde(rename = "PSI")]
    Psi,
    /// Kolmogorov–Smirnov statistic on the binned CDFs.
    #[serde(rename = "KS")]
    Ks,
    /// Jensen–Shannon distance (base 2, in 0..=1).
    JensenShannon,
}

impl DriftMethod {
    /// The short name shown beside a value (`PSI`, `KS`, `JS`).
    pub fn short(self) -> &'static str {
        match self {
            DriftMethod::Psi => "PSI",
            DriftMethod::Ks => "KS",
            DriftMethod::JensenShannon => "JS",
        }
    }

    /// The value this method's statistic exceeds with probability `significance` when `live`
    /// and `reference` are samples of the same distribution (see `stats::psi_critical`, ...).
    pub fn critical_value(self, significance: f64, reference: &Histogram, live: &Histogram) -> Result<f64, StatsError> {
        let sizes = stats::Sizes::of(reference, live);
        match self {
            DriftMethod::Psi => stats::psi_critical(significance, sizes),
            DriftMethod::Ks => stats::ks_critical(significance, sizes),
            DriftMethod::JensenShannon => stats::js_critical(significance, sizes),
        }
    }

    /// How far `live` is from `reference` by this method.
    pub fn compare(self, reference: &Histogram, live: &Histogram) -> Result<f64, StatsError> {
        match self {
            DriftMethod::Psi => stats::psi(reference, live),
            DriftMethod::Ks => stats::ks(reference, live),
            DriftMethod::JensenShannon => stats::jensen_shannon(reference, live),
        }
    }
}

/// Drift in live data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.threshold) != has(self.significance)").message("set drift threshold, or significance for a threshold computed from the sample sizes, not both"))]
pub struct DriftTrigger {
    /// PromQL returning a histogram (series with an `le` label) of a live input feature or of the
    /// predictions over `window`. Placeholders as in analysis queries, plus `{{window}}`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("drift query must not be empty"))]
    pub query: String,
    /// The feature's name in the reference distribution the trainer reports. Default `predictions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// PSI, KS or JensenShannon.
    pub method: DriftMethod,
    /// Drift above this retrains. Set this or `significance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("drift threshold must be positive"))]
    pub threshold: Option<f64>,
    /// Instead of a fixed `threshold`: the chance (e.g. 0.01) that unchanged data would retrain.
    /// The threshold is then the method's critical value for the reference's and the live
    /// sample's sizes and the number of bins at each check, so a small sample does not fire by
    /// chance and a large one is not blind. The reference must hold counts, not proportions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 0.2").message("significance must be above 0 and at most 0.2"))]
    pub significance: Option<f64>,
    /// The window of live data compared, e.g. 6h; from 1m to 2160h (90 days).
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("1m", "2160h"))]
    pub window: Duration,
    /// Fewer live samples than this gives no verdict. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000000").message("minSamples must be between 1 and 1000000000"))]
    pub min_samples: Option<u64>,
    /// How often drift is checked. Default 5m; from 30s to 168h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("30s", "168h"))]
    pub interval: Option<Duration>,
    /// When the trainer reports no reference distribution, capture one from live traffic during
    /// this long after the version starts serving. Default 1h; from 1m to 2160h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("1m", "2160h"))]
    pub reference_window: Option<Duration>,
}

/// Falling live quality.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max)").message("a performance trigger needs min or max"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("performance min must not be greater than max"))]
pub struct PerformanceTrigger {
    /// PromQL returning one number, e.g. accuracy against delayed labels.
    #[x_kube(validation = Rule::new("size(self) > 0").message("performance query must not be empty"))]
    pub query: String,
    /// Retrain when the value stays below this for `for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Retrain when the value stays above this for `for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// How long the value must stay out of bounds. Default 0s (the first reading); at most 720h.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("0s", "720h"))]
    pub for_: Option<Duration>,
    /// How often the query runs. Default 5m; from 30s to 168h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DURATION_MAX_LENGTH))]
    #[x_kube(validation = duration_rule("30s", "168h"))]
    pub interval: Option<Duration>,
}

/// What a trigger does while a version trains.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Hold the trigger back until the training finishes.
    #[default]
    Forbid,
    /// Stop the running training and start a new one.
    Replace,
}

/// What the policy observed and fired.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrainPolicyStatus {
    /// The last trigger that caused a retrain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<TriggerRecord>,
    /// When the schedule fires next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The last firings, newest last, including those held back (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_firings: Vec<Firing>,
    /// The last scheduled time acted on (fired, held back or missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The last drift check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<CheckStatus>,
    /// The last performance check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<CheckStatus>,
    /// The value of `modelcycle.io/retrain-request` on this policy last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retrain_request: Option<String>,
    /// kstatus conditions: Ready, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The outcome of the last check of a live-metric trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    /// When it was checked.
    pub checked_at: Option<Time>,
    /// The measured value (drift statistic or live metric), if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The drift threshold the value was judged against: `threshold`, or the critical value
    /// computed for `significance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Samples behind a drift value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<f64>,
    /// Since when a performance metric has been out of bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_since: Option<Time>,
    /// What the check concluded, in a sentence.
    pub message: String,
    /// Set when the check cannot work until the policy or the query changes (it stalls the
    /// policy until the next check): `DriftQueryNotHistogram`, `DriftBucketsDiffer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_reason: Option<String>,
}

/// One firing of the policy's triggers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Firing {
    /// What fired, with evidence.
    pub trigger: TriggerRecord,
    /// The version it started, if it started one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Why it was held back, e.g. `cooldown until 2026-11-27T14:05:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}
