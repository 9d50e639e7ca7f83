//! Publishing a Model's versions to an MLflow model registry, decided here and done by a shell.
//!
//! What the registry should hold is a pure function of the Model's versions ([`intent`]): every
//! version that passed its gates, as an MLflow model version whose source is its artifact, with
//! its lineage and verdicts as tags; the alias `champion` on the serving version, `challenger` on
//! one rolling out. The shell reads what the registry holds of this Model, turns the difference
//! into [`operations`] and runs them; each version is found by its uid tag first, so a retry or a
//! restart never registers a version twice. The outcome comes back as a reading ([`Synced`]):
//! the Model's `RegistrySynced` condition, an Event when it fails or recovers, and a retry with
//! backoff. The registry never holds a rollout up: a failure only delays the publishing.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{Model, ModelVersion, RegistryStatus, Verdict, VersionPhase};

use super::conditions::Desired;
use super::plan::{EventKind, EventRecord};

/// The condition that says whether the registry holds what the versions say.
pub const REGISTRY_SYNCED: &str = "RegistrySynced";
/// The alias of the serving version.
pub const CHAMPION: &str = "champion";
/// The alias of a version rolling out.
pub const CHALLENGER: &str = "challenger";
/// The tag that finds a version in the registry: its ModelVersion's uid.
pub const UID_TAG: &str = "modelcycle.io/uid";
/// The tag naming the Model (`namespace/name`) a version belongs to.
pub const MODEL_TAG: &str = "modelcycle.io/model";
/// modelcycle keeps tag values this short (MLflow takes 100,000 characters in a registry tag).
pub const TAG_VALUE_MAX: usize = 5000;
/// MLflow refuses longer registry tag keys.
pub const TAG_KEY_MAX: usize = 250;

/// A tag key from a fixed prefix and a chosen name (a metric a trainer reports, a gate; parameter
/// names are already restricted at admission): MLflow
/// takes only alphanumerics, `_ - . : /` and spaces, and no path tricks, so every other
/// character and every `/` of the name becomes `_`; at most [`TAG_KEY_MAX`] characters.
pub fn tag_key(prefix: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' ') { c } else { '_' })
        .collect();
    format!("{prefix}{name}").chars().take(TAG_KEY_MAX).collect()
}

/// One version as the registry should hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The ModelVersion's uid (the tag it is found by).
    pub uid: String,
    /// modelcycle's version number.
    pub number: u32,
    /// Its artifact URI: the MLflow model version's source.
    pub source: String,
    /// Lineage, metrics, verdicts and phase.
    pub tags: BTreeMap<String, String>,
}

/// What the registry should hold of a Model.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    /// The MLflow tracking server.
    pub tracking_uri: String,
    /// The registered model.
    pub name: String,
    /// `namespace/name` of the Model.
    pub model: String,
    /// Every version that passed its gates, oldest first.
    pub versions: Vec<Published>,
    /// The uid of the version that serves.
    pub champion: Option<String>,
    /// The uid of the version rolling out.
    pub challenger: Option<String>,
    /// A hash of all of the above.
    pub hash: String,
}

/// One version as the registry holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// MLflow's version number (a string in its API).
    pub number: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// Which version an alias is to be set on.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// One the registry holds already (MLflow's number).
    Held(String),
    /// One created by an earlier operation of the same run (its uid).
    Created(String),
}

impl Target {
    /// MLflow's number of the version, given the numbers (by uid) of those this run created.
    pub fn number(&self, created: &BTreeMap<String, String>) -> Option<String> {
        match self {
            Target::Held(n) => Some(n.clone()),
            Target::Created(uid) => created.get(uid).cloned(),
        }
    }
}

/// One registry write.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Register a new model version.
    Create {
        /// Its uid (to resolve aliases set later in the same run).
        uid: String,
        /// Its source.
        source: String,
        /// All its tags.
        tags: BTreeMap<String, String>,
    },
    /// Set one tag of a version the registry holds.
    SetTag {
        /// MLflow's version number.
        number: String,
        /// The tag.
        key: String,
        /// Its value.
        value: String,
    },
    /// Point an alias at a version.
    SetAlias {
        /// `champion` or `challenger`.
        alias: &'static str,
        /// The version.
        target: Target,
    },
    /// Remove an alias.
    DeleteAlias {
        /// `champion` or `challenger`.
        alias: &'static str,
    },
}

/// What an attempt to publish came to, as the shell reports it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Synced {
    /// The hash of the intent it published.
    pub hash: String,
    /// `Ok` with the number of writes made, or why it failed.
    pub result: Result<usize, String>,
}

fn passed_gates(phase: Option<VersionPhase>) -> bool {
    matches!(
        phase,
        Some(
            VersionPhase::Ready
                | VersionPhase::RollingOut
                | VersionPhase::Serving
                | VersionPhase::Retired
                | VersionPhase::RolledBack
        )
    )
}

fn clip(value: String) -> String {
    if value.len() <= TAG_VALUE_MAX {
        return value;
    }
    let mut end = TAG_VALUE_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

/// The tags of one version: who it is, what made it, how it was judged and where it is.
pub fn tags(model: &str, version: &ModelVersion) -> BTreeMap<String, String> {
    let status = version.status.clone().unwrap_or_default();
    let mut tags = BTreeMap::from([
        (UID_TAG.to_string(), version.uid().unwrap_or_default()),
        (MODEL_TAG.to_string(), model.to_string()),
        ("modelcycle.io/version".to_string(), version.spec.version.to_string()),
        ("modelcycle.io/phase".to_string(), status.phase.map(|p| format!("{p:?}")).unwrap_or_default()),
        ("modelcycle.io/trigger".to_string(), version.spec.trigger.reason.clone()),
        (
            "modelcycle.io/trigger-evidence".to_string(),
            version.spec.trigger.causes.iter().map(|c| c.evidence.clone()).collect::<Vec<_>>().join("; "),
        ),
        ("modelcycle.io/trainer-images".to_string(), version.spec.trainer_images.join(", ")),
        ("modelcycle.io/inputs-hash".to_string(), version.spec.inputs_hash.clone()),
    ]);
    if let Some(read) = &status.dataset_read {
        tags.insert("modelcycle.io/dataset-digest".into(), read.digest.clone());
        if let Some(rows) = read.rows {
            tags.insert("modelcycle.io/dataset-rows".into(), rows.to_string());
        }
    }
    // Registry versions are never published (admission refuses `source` with `registry`).
    if let Some(training) = &version.spec.training {
        tags.insert("modelcycle.io/dataset-uri".into(), training.dataset.uri.clone());
        tags.insert("modelcycle.io/dataset-version".into(), training.dataset.version.clone());
        for (k, v) in &training.parameters {
            tags.insert(tag_key("modelcycle.io/param.", k), v.clone());
        }
    }
    for (k, v) in &status.metrics {
        tags.insert(tag_key("modelcycle.io/metric.", k), v.to_string());
    }
    for gate in &status.gate_results {
        let verdict = match gate.verdict {
            Verdict::Pass => "Pass",
            Verdict::Fail => "Fail",
            Verdict::Skipped => "Skipped",
        };
        let value = gate.value.map(|v| format!(" ({v})")).unwrap_or_default();
        let key = tag_key("modelcycle.io/gate.", &format!("{}.{}", gate.metric, gate.bound));
        tags.insert(key, format!("{verdict}{value}"));
    }
    if status.phase == Some(VersionPhase::RolledBack)
        && let Some(d) = status.decisions.iter().rev().find(|d| d.action == "RollBack")
    {
        tags.insert("modelcycle.io/rolled-back".into(), format!("{}: {}", d.reason, d.message));
    }
    tags.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k, clip(v))).collect()
}

/// What the registry should hold of `model`, from its versions; `None` without `spec.registry`.
pub fn intent<V: AsRef<ModelVersion>>(model: &Model, versions: &[V]) -> Option<Intent> {
    let mlflow = model.spec.registry.as_ref()?.mlflow.as_ref()?;
    let key = format!("{}/{}", model.namespace().unwrap_or_default(), model.name_any());
    let mut ours: Vec<&ModelVersion> = versions
        .iter()
        .map(AsRef::as_ref)
        .filter(|v| v.spec.model == model.name_any() && v.uid().is_some())
        .filter(|v| passed_gates(v.status.as_ref().and_then(|s| s.phase)))
        .collect();
    ours.sort_by_key(|v| v.spec.version);
    let phase = |v: &&ModelVersion| v.status.as_ref().and_then(|s| s.phase);
    let newest_in = |p: VersionPhase| ours.iter().rev().find(|v| phase(v) == Some(p)).and_then(|v| v.uid());
    let published: Vec<Published> = ours
        .iter()
        .map(|v| Published {
            uid: v.uid().unwrap_or_default(),
            number: v.spec.version,
            source: v.spec.artifact_uri.clone(),
            tags: tags(&key, v),
        })
        .collect();
    let mut intent = Intent {
        tracking_uri: mlflow.tracking_uri.trim_end_matches('/').to_string(),
        name: mlflow.name.clone(),
        model: key,
        versions: published,
        champion: newest_in(VersionPhase::Serving),
        challenger: newest_in(VersionPhase::RollingOut),
        hash: String::new(),
    };
    intent.hash = hash(&intent);
    Some(intent)
}

fn hash(intent: &Intent) -> String {
    let mut h = Sha256::new();
    for part in [&intent.tracking_uri, &intent.name, &intent.model] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for v in &intent.versions {
        h.update(v.uid.as_bytes());
        h.update([0]);
        h.update(v.source.as_bytes());
        for (k, value) in &v.tags {
            h.update(k.as_bytes());
            h.update([1]);
            h.update(value.as_bytes());
            h.update([0]);
        }
    }
    for alias in [&intent.champion, &intent.challenger] {
        h.update(alias.as_deref().unwrap_or("-").as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The writes that bring the registry from what it holds (`held`: this Model's versions, and
/// `aliases`: alias → MLflow number) to `intent`, in order: creations, tags, then aliases.
pub fn operations(intent: &Intent, held: &[Held], aliases: &BTreeMap<String, String>) -> Vec<Op> {
    let by_uid: BTreeMap<&str, &Held> = held.iter().filter_map(|h| Some((h.tags.get(UID_TAG)?.as_str(), h))).collect();
    let mut ops = vec![];
    for v in &intent.versions {
        match by_uid.get(v.uid.as_str()) {
            None => ops.push(Op::Create { uid: v.uid.clone(), source: v.source.clone(), tags: v.tags.clone() }),
            Some(h) => {
                for (key, value) in &v.tags {
                    if h.tags.get(key) != Some(value) {
                        ops.push(Op::SetTag { number: h.number.clone(), key: key.clone(), value: value.clone() });
                    }
                }
            }
        }
    }
    for (alias, uid) in [(CHAMPION, &intent.champion), (CHALLENGER, &intent.challenger)] {
        let current = aliases.get(alias);
        match uid {
            Some(uid) => match by_uid.get(uid.as_str()) {
                Some(h) if current == Some(&h.number) => {}
                Some(h) => ops.push(Op::SetAlias { alias, target: Target::Held(h.number.clone()) }),
                None => ops.push(Op::SetAlias { alias, target: Target::Created(uid.clone()) }),
            },
            None if current.is_some() => ops.push(Op::DeleteAlias { alias }),
            None => {}
        }
    }
    ops
}

/// The wait before attempt `failures + 1` after that many failures: 5s, doubling, at most 10m.
pub fn backoff(failures: u32) -> Duration {
    let seconds = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(8));
    Duration::from_secs(seconds.min(600))
}

fn next_attempt(status: &RegistryStatus) -> Option<Timestamp> {
    let last = status.last_attempt.as_ref()?.0;
    (status.failures > 0).then(|| last + backoff(status.failures))
}

/// What to publish now, if anything: the intent when the registry is behind it and no failure's
/// backoff is running.
pub fn due<V: AsRef<ModelVersion>>(model: &Model, versions: &[V], now: Timestamp) -> Option<Intent> {
    let intent = intent(model, versions)?;
    let status = model.status.as_ref().and_then(|s| s.registry.clone()).unwrap_or_default();
    if status.synced.as_deref() == Some(intent.hash.as_str()) {
        return None;
    }
    match next_attempt(&status) {
        Some(at) if at > now => None,
        _ => Some(intent),
    }
}

/// What the Model's status, conditions and Events say about the registry after this reconcile.
#[derive(Debug, Default)]
pub struct Judged {
    /// The registry status to keep (`None`: the Model publishes nowhere).
    pub status: Option<RegistryStatus>,
    /// The `RegistrySynced` condition (`None`: remove it).
    pub condition: Option<Desired>,
    /// An Event for a failure that starts, or a recovery.
    pub event: Option<EventRecord>,
    /// When to look again (a retry after a failure).
    pub wake: Option<Duration>,
}

/// Judges the registry from the last status, the outcome of this reconcile's attempt (if one was
/// due) and the intent now.
pub fn judge<V: AsRef<ModelVersion>>(
    model: &Model,
    versions: &[V],
    outcome: Option<&Synced>,
    now: Timestamp,
) -> Judged {
    let Some(intent) = intent(model, versions) else { return Judged::default() };
    let old = model.status.as_ref().and_then(|s| s.registry.clone()).unwrap_or_default();
    let was_failing = old.failures > 0;
    let mut status = old.clone();
    let place = format!("MLflow registered model {:?} at {}", intent.name, intent.tracking_uri);
    let mut judged = Judged::default();
    match outcome {
        Some(Synced { hash, result: Ok(_) }) => {
            status.synced = Some(hash.clone());
            status.failures = 0;
            status.last_failure = None;
            status.last_attempt = Some(Time(now));
            if was_failing {
                judged.event = Some(EventRecord {
                    kind: EventKind::Normal,
                    reason: "RegistrySynced".into(),
                    action: "Publish".into(),
                    note: format!("{place} is in step again after {} failed attempt(s)", old.failures),
                    version: None,
                });
            }
        }
        Some(Synced { result: Err(why), .. }) => {
            status.failures = old.failures.saturating_add(1);
            status.last_attempt = Some(Time(now));
            status.last_failure = Some(why.clone());
            if !was_failing {
                judged.event = Some(EventRecord {
                    kind: EventKind::Warning,
                    reason: "RegistryUnavailable".into(),
                    action: "Publish".into(),
                    note: format!("cannot publish to {place}: {why}; retrying, rollouts go on"),
                    version: None,
                });
            }
        }
        None => {}
    }
    let in_step = status.synced.as_deref() == Some(intent.hash.as_str());
    let champion = intent.versions.iter().find(|v| Some(&v.uid) == intent.champion.as_ref()).map(|v| v.number);
    let failure = outcome.and_then(|o| o.result.as_ref().err()).or(status.last_failure.as_ref());
    judged.condition = Some(match (in_step, failure) {
        (false, Some(why)) => Desired::no(
            REGISTRY_SYNCED,
            "RegistryUnavailable",
            format!("cannot publish to {place}: {why} ({} failed attempt(s); retrying)", status.failures),
        ),
        (true, _) => Desired::yes(
            REGISTRY_SYNCED,
            "Synced",
            format!(
                "{place} holds {} version(s); champion {}",
                intent.versions.len(),
                champion.map_or("none".to_string(), |n| format!("v{n}"))
            ),
        ),
        (false, None) => Desired::no(REGISTRY_SYNCED, "Publishing", format!("publishing to {place}")),
    });
    if !in_step {
        judged.wake = Some(match next_attempt(&status) {
            Some(at) => Duration::try_from(at.duration_since(now)).unwrap_or_default().max(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        });
    }
    judged.status = Some(status);
    judged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(number: &str, uid: &str, tags: &[(&str, &str)]) -> Held {
        let mut all: BTreeMap<String, String> = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.insert(UID_TAG.into(), uid.into());
        Held { number: number.into(), tags: all }
    }

    fn intent_of(versions: &[(&str, &[(&str, &str)])], champion: Option<&str>, challenger: Option<&str>) -> Intent {
        let versions = versions
            .iter()
            .enumerate()
            .map(|(i, (uid, tags))| {
                let mut all: BTreeMap<String, String> =
                    tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                all.insert(UID_TAG.into(), uid.to_string());
                Published { uid: uid.to_string(), number: i as u32 + 1, source: format!("s3://m/{i}"), tags: all }
            })
            .collect();
        Intent {
            tracking_uri: "http://mlflow".into(),
            name: "churn".into(),
            model: "ml/churn".into(),
            versions,
            champion: champion.map(String::from),
            challenger: challenger.map(String::from),
            hash: "h".into(),
        }
    }

    #[test]
    fn only_what_differs_is_written_and_a_held_version_is_never_created_again() {
        let intent = intent_of(&[("a", &[("p", "Retired")]), ("b", &[("p", "Serving")])], Some("b"), None);
        let before = [held("7", "a", &[("p", "Serving")])];
        let aliases = BTreeMap::from([(CHAMPION.to_string(), "7".to_string())]);
        let ops = operations(&intent, &before, &aliases);
        assert_eq!(ops.len(), 3, "{ops:?}");
        assert_eq!(ops[0], Op::SetTag { number: "7".into(), key: "p".into(), value: "Retired".into() });
        assert!(matches!(&ops[1], Op::Create { uid, .. } if uid == "b"));
        assert_eq!(ops[2], Op::SetAlias { alias: CHAMPION, target: Target::Created("b".into()) });

        // Once the registry holds it all, nothing is written.
        let after = [held("7", "a", &[("p", "Retired")]), held("8", "b", &[("p", "Serving")])];
        let aliases = BTreeMap::from([(CHAMPION.to_string(), "8".to_string())]);
        assert!(operations(&intent, &after, &aliases).is_empty());
    }

    #[test]
    fn a_challenger_that_is_gone_loses_its_alias_and_champion_moves_back() {
        let intent = intent_of(&[("a", &[]), ("b", &[])], Some("a"), None);
        let both = [held("1", "a", &[]), held("2", "b", &[])];
        let aliases =
            BTreeMap::from([(CHAMPION.to_string(), "2".to_string()), (CHALLENGER.to_string(), "2".to_string())]);
        let ops = operations(&intent, &both, &aliases);
        assert_eq!(
            ops,
            vec![
                Op::SetAlias { alias: CHAMPION, target: Target::Held("1".into()) },
                Op::DeleteAlias { alias: CHALLENGER }
            ]
        );
    }

    #[test]
    fn tag_keys_from_user_names_keep_to_what_mlflow_takes() {
        assert_eq!(tag_key("modelcycle.io/param.", "learning_rate"), "modelcycle.io/param.learning_rate");
        assert_eq!(tag_key("modelcycle.io/metric.", "f1:macro"), "modelcycle.io/metric.f1:macro");
        assert_eq!(tag_key("modelcycle.io/param.", "a/../b=c"), "modelcycle.io/param.a_.._b_c");
        assert_eq!(tag_key("modelcycle.io/param.", "ünï"), "modelcycle.io/param._n_");
        assert_eq!(tag_key("modelcycle.io/param.", &"x".repeat(400)).len(), TAG_KEY_MAX);
    }

    #[test]
    fn backoff_doubles_from_five_seconds_to_ten_minutes() {
        let waits: Vec<u64> = (1..=10).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(backoff(u32::MAX).as_secs(), 600);
    }
}
