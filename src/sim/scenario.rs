//! The scenario format: how the simulated cluster behaves, and how the user changes Models over time.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};
use serde::Deserialize;

use crate::api::{Model, RetrainPolicy};

/// A length of simulated time, written like `30m`, `36h`, `2d` or `1d 6h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimDuration(pub SignedDuration);

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(SimDuration).map_err(serde::de::Error::custom)
    }
}

/// The longest simulated length: ten years of 366 days.
pub const LONGEST: SignedDuration = SignedDuration::from_hours(24 * 366 * 10);

/// Parses `30m`, `36h`, `2d`, `1d 6h` (a day is 24 hours): from zero to ten years.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let span: Span = text.parse().map_err(|e| format!("{text:?} is not a duration such as 30m, 36h or 2d: {e}"))?;
    let length = span.to_duration(SpanRelativeTo::days_are_24_hours()).map_err(|e| format!("{text:?}: {e}"))?;
    if length.is_negative() {
        return Err(format!("{text:?} is negative; simulated time only moves forward"));
    }
    if length > LONGEST {
        return Err(format!("{text:?} is longer than the simulator's limit of 3660d"));
    }
    Ok(length)
}

/// How the simulated kubelet treats one version: how training goes and whether serving works.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionScript {
    /// How long the training Job runs.
    pub training_time: Option<SimDuration>,
    /// Fail the Job with this reason (`BackoffLimitExceeded`, `DeadlineExceeded`).
    pub fail: Option<String>,
    /// Metrics the trainer reports.
    pub metrics: Option<BTreeMap<String, f64>>,
    /// The raw termination message, instead of one made from `metrics`.
    pub termination_message: Option<String>,
    /// Whether its serving pods become available. Default true.
    pub healthy: Option<bool>,
    /// How long its Deployment rollout takes when healthy.
    pub rollout_time: Option<SimDuration>,
    /// Reference distributions the trainer reports, by feature.
    pub reference: Option<BTreeMap<String, crate::stats::Histogram>>,
    /// Report the live drift histogram at the time training ends as the `predictions`
    /// reference, as a trainer that learned the current data would.
    pub reference_from_live: Option<bool>,
    /// What the trainer reports it read (`{digest, rows}`).
    pub dataset: Option<crate::api::DatasetRead>,
}

impl VersionScript {
    /// This script with the gaps filled from `defaults`.
    pub fn or(&self, defaults: &VersionScript) -> VersionScript {
        VersionScript {
            training_time: self.training_time.or(defaults.training_time),
            fail: self.fail.clone().or_else(|| defaults.fail.clone()),
            metrics: self.metrics.clone().or_else(|| defaults.metrics.clone()),
            termination_message: self.termination_message.clone().or_else(|| defaults.termination_message.clone()),
            healthy: self.healthy.or(defaults.healthy),
            rollout_time: self.rollout_time.or(defaults.rollout_time),
            reference: self.reference.clone().or_else(|| defaults.reference.clone()),
            reference_from_live: self.reference_from_live.or(defaults.reference_from_live),
            dataset: self.dataset.clone().or_else(|| defaults.dataset.clone()),
        }
    }
}

/// A change a person makes to a Model at some time.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    /// When, from the start.
    pub at: SimDuration,
    /// Which Model; may be left out when there is one.
    pub model: Option<String>,
    /// Change this RetrainPolicy instead of a Model.
    pub policy: Option<String>,
    /// Fields to set, by dotted path, e.g. `spec.training.dataset.version: "2026-12-01"`;
    /// a null value removes the field.
    #[serde(default)]
    pub set: BTreeMap<String, serde_json::Value>,
    /// Annotations to set on the Model.
    #[serde(default)]
    pub annotate: BTreeMap<String, String>,
}

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name shown in the report.
    #[serde(default)]
    pub name: Option<String>,
    /// When the simulation starts. Default 2026-01-01T00:00:00Z.
    #[serde(default)]
    pub start: Option<Timestamp>,
    /// How long to simulate.
    pub duration: SimDuration,
    /// Behaviour of versions without a script of their own.
    #[serde(default)]
    pub defaults: VersionScript,
    /// Behaviour per version number (for every Model).
    #[serde(default)]
    pub versions: BTreeMap<u32, VersionScript>,
    /// Changes to Models over time.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// What live queries return over time.
    #[serde(default)]
    pub live: LiveMetrics,
    /// Times the controller is not running: nothing is reconciled, the cluster goes on.
    #[serde(default)]
    pub controller_down: Vec<Outage>,
    /// Times every MLflow registry is unreachable: publishing fails and is retried.
    #[serde(default)]
    pub mlflow_down: Vec<Outage>,
    /// Model versions registered in MLflow over time, for Models with `spec.source.mlflow`.
    #[serde(default)]
    pub mlflow_versions: Vec<Registration>,
    /// The outcome the scenario states; a run that misses it fails.
    #[serde(default)]
    pub expect: Option<super::expect::Expect>,
}

/// A model version registered in MLflow by someone else (a notebook, a data platform), or an
/// alias moved, at a time of the scenario.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    /// When, from the start.
    pub at: SimDuration,
    /// The registered model.
    pub name: String,
    /// An existing version to point `aliases` at; without it, a new version is registered
    /// (numbered from 1 in order).
    #[serde(default)]
    pub version: Option<String>,
    /// Aliases set to this version.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The metrics its run logged.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// The parameters its run logged.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A value that holds from a time on.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step<T> {
    /// From when, since the start.
    pub at: SimDuration,
    /// The value from then on.
    #[serde(flatten)]
    pub value: T,
}

/// A drift query's answer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftAnswer {
    /// The live histogram over the window; left out: the query returns no data.
    #[serde(default)]
    pub histogram: Option<crate::stats::Histogram>,
}

/// A performance query's answer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceAnswer {
    /// The live metric; left out: the query returns no data.
    #[serde(default)]
    pub value: Option<f64>,
}

/// A time Prometheus cannot be reached.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outage {
    /// From when.
    pub from: SimDuration,
    /// Until when.
    pub to: SimDuration,
}

/// Live metrics over time: the answer at any moment is the last step at or before it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveMetrics {
    /// What the drift query returns.
    #[serde(default)]
    pub drift: Vec<Step<DriftAnswer>>,
    /// What the performance query returns.
    #[serde(default)]
    pub performance: Vec<Step<PerformanceAnswer>>,
    /// When Prometheus is unreachable.
    #[serde(default)]
    pub unavailable: Vec<Outage>,
    /// What the rollout analysis queries return, per metric and version.
    #[serde(default)]
    pub analysis: Vec<MetricStep>,
}

/// The live value of one analysis metric from a time on, for one version or all of them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricStep {
    /// From when, since the start.
    pub at: SimDuration,
    /// The analysis metric's name.
    pub metric: String,
    /// Only for this version's traffic; left out: every version (a version's own step wins).
    #[serde(default)]
    pub version: Option<u32>,
    /// The value; left out (and no `histogram`): the query returns no data.
    #[serde(default)]
    pub value: Option<f64>,
    /// For a distribution metric: the histogram the query returns.
    #[serde(default)]
    pub histogram: Option<crate::stats::Histogram>,
    /// Prometheus refuses the query with this error text.
    #[serde(default)]
    pub rejected: Option<String>,
}

/// Everything a simulation runs: the manifests and the scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The scenario file.
    pub file: ScenarioFile,
    /// Models to apply at the start.
    pub models: Vec<Model>,
    /// RetrainPolicies to apply at the start.
    pub policies: Vec<RetrainPolicy>,
}

impl Scenario {
    /// The script of version `n`, defaults filled in, and the built-in defaults under those.
    pub fn script(&self, n: u32) -> VersionScript {
        let builtin = VersionScript {
            training_time: Some(SimDuration(SignedDuration::from_mins(30))),
            healthy: Some(true),
            rollout_time: Some(SimDuration(SignedDuration::from_mins(2))),
            ..Default::default()
        };
        self.file.versions.get(&n).cloned().unwrap_or_default().or(&self.file.defaults).or(&builtin)
    }

    /// When the simulation starts.
    pub fn start(&self) -> Timestamp {
        // 2026-01-01T00:00:00Z
        self.file.start.unwrap_or(Timestamp::constant(1_767_225_600, 0))
    }

    /// Reads a scenario from a directory (every `*.yaml`) or from files: documents of kind
    /// Model and RetrainPolicy are manifests; a document with a `duration` is the scenario.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Scenario, String> {
        Self::parse(&read_texts(paths)?)
    }

    /// Parses named YAML texts (see [`Scenario::load`]).
    pub fn parse(texts: &[(String, String)]) -> Result<Scenario, String> {
        let Manifests { models, policies, scenario } = Manifests::parse(texts)?;
        let mut file = scenario.ok_or("no scenario document (one with `duration:`) was found")?;
        // Changes happen in time order whatever order the file lists them in (stable: two changes
        // at the same instant keep the file's order).
        file.changes.sort_by_key(|c| c.at);
        if models.is_empty() {
            return Err("no Model manifest was found".into());
        }
        for change in &file.changes {
            if change.model.is_none() && change.policy.is_none() && models.len() > 1 {
                return Err("a change names no model, and there are several".into());
            }
        }
        Ok(Scenario { file, models, policies })
    }
}

/// The documents of a directory or of files: Models, RetrainPolicies and at most one scenario.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// Documents of kind Model.
    pub models: Vec<Model>,
    /// Documents of kind RetrainPolicy.
    pub policies: Vec<RetrainPolicy>,
    /// The document with a `duration`, if any.
    pub scenario: Option<ScenarioFile>,
}

/// The texts of a directory's `*.yaml` files (in name order) or of the files named, with their names.
pub fn read_texts(paths: &[impl AsRef<Path>]) -> Result<Vec<(String, String)>, String> {
    let mut files = vec![];
    for path in paths {
        let path = path.as_ref();
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.to_path_buf());
        }
    }
    let mut texts = vec![];
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        texts.push((file.display().to_string(), text));
    }
    Ok(texts)
}

impl Manifests {
    /// Reads the documents of a directory or of files (see [`read_texts`]).
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Manifests, String> {
        Self::parse(&read_texts(paths)?)
    }

    /// Sorts named YAML texts into manifests and a scenario; any other document is an error.
    pub fn parse(texts: &[(String, String)]) -> Result<Manifests, String> {
        let (mut models, mut policies, mut scenario) = (vec![], vec![], None);
        for (name, text) in texts {
            for doc in serde_yaml::Deserializer::from_str(text) {
                let value = serde_yaml::Value::deserialize(doc).map_err(|e| format!("{name}: {e}"))?;
                if value.is_null() {
                    continue;
                }
                // `kubectl get mdl,rtp -o yaml` writes one List of both kinds.
                let listed = value.get("kind").and_then(|k| k.as_str()) == Some("List");
                let items = match value.get("items").and_then(|i| i.as_sequence()) {
                    Some(items) if listed => items.clone(),
                    _ if listed => vec![],
                    _ => vec![value.clone()],
                };
                for item in items {
                    match item.get("kind").and_then(|k| k.as_str()) {
                        Some("Model") => models.push(from_value(name, item)?),
                        Some("RetrainPolicy") => policies.push(from_value(name, item)?),
                        Some(other) if listed => {
                            return Err(format!(
                                "{name}: a List holding a {other}; the simulator reads Models and RetrainPolicies"
                            ));
                        }
                        _ => {}
                    }
                }
                match value.get("kind").and_then(|k| k.as_str()) {
                    Some("Model" | "RetrainPolicy" | "List") => {}
                    Some(other) => return Err(format!("{name}: the simulator does not know kind {other:?}")),
                    None if value.get("duration").is_some() => {
                        if scenario.is_some() {
                            return Err(format!("{name}: a second scenario document; give one"));
                        }
                        scenario = Some(from_value::<ScenarioFile>(name, value)?);
                    }
                    None => {
                        return Err(format!(
                            "{name}: a document that is neither a manifest (kind) nor a scenario (duration)"
                        ));
                    }
                }
            }
        }
        Ok(Manifests { models, policies, scenario })
    }
}

fn from_value<T: serde::de::DeserializeOwned>(name: &str, value: serde_yaml::Value) -> Result<T, String> {
    serde_yaml::from_value(value).map_err(|e| format!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_days() {
        assert_eq!(parse_duration("2d").unwrap(), SignedDuration::from_hours(48));
        assert_eq!(parse_duration("1d 6h").unwrap(), SignedDuration::from_hours(30));
        assert_eq!(parse_duration("90m").unwrap(), SignedDuration::from_mins(90));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        assert!(parse_duration("100000000h").unwrap_err().contains("limit of 3660d"));
        assert!(parse_duration("-5m").is_err());
    }

    #[test]
    fn scripts_fall_back_to_defaults_then_builtins() {
        let texts = [(
            "s.yaml".to_string(),
            r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: m, namespace: ml}
spec:
  training: {template: {}, dataset: {uri: u, version: "1"}, artifactUri: "a/{version}"}
  serving: {template: {}}
---
duration: 3d
defaults: {metrics: {auc: 0.8}}
versions:
  2: {trainingTime: 2h, healthy: false}
"#
            .to_string(),
        )];
        let s = Scenario::parse(&texts).unwrap();
        let v2 = s.script(2);
        assert_eq!(v2.training_time, Some(SimDuration(SignedDuration::from_hours(2))));
        assert_eq!(v2.healthy, Some(false));
        assert_eq!(v2.metrics.unwrap()["auc"], 0.8);
        assert_eq!(s.script(1).training_time, Some(SimDuration(SignedDuration::from_mins(30))));
    }

    #[test]
    fn a_list_as_kubectl_writes_it_holds_manifests() {
        let text = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: modelcycle.io/v1alpha1
    kind: Model
    metadata: {name: m, namespace: ml, resourceVersion: "42", managedFields: [{manager: modelcycle}]}
    spec:
      training: {template: {}, dataset: {uri: u, version: "1"}, artifactUri: "a/{version}"}
      serving: {template: {}}
    status: {servingVersion: 3}
  - apiVersion: modelcycle.io/v1alpha1
    kind: RetrainPolicy
    metadata: {name: m, namespace: ml}
    spec: {modelRef: {name: m}, manual: true}
"#;
        let m = Manifests::parse(&[("l.yaml".to_string(), text.to_string())]).unwrap();
        assert_eq!((m.models.len(), m.policies.len()), (1, 1));
        let odd = text.replace("kind: RetrainPolicy", "kind: ConfigMap");
        assert!(Manifests::parse(&[("l.yaml".to_string(), odd)]).unwrap_err().contains("ConfigMap"));
    }

    #[test]
    fn unknown_fields_and_missing_scenario_are_reported() {
        let bad = [("s.yaml".to_string(), "duration: 1d\nversoins: {}\n".to_string())];
        assert!(Scenario::parse(&bad).unwrap_err().contains("unknown field"));
        let none = [("s.yaml".to_string(), "kind: Model\n".to_string())];
        assert!(Scenario::parse(&none).is_err());
    }
}
