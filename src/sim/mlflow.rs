//! A simulated MLflow model registry: versions with tags and aliases, written by the same
//! [`operations`] the real client runs, so the simulator shows what a registry would hold.

use std::collections::BTreeMap;

use crate::api::MlflowSource;
use crate::lifecycle::registry::{Held, Intent, MODEL_TAG, Op, operations};
use crate::lifecycle::source::{Offered, SourceError};

use super::scenario::Registration;

/// What the registry of `source` offers at `elapsed`, from the scenario's registrations.
pub fn offered(
    registrations: &[Registration],
    source: &MlflowSource,
    elapsed: jiff::SignedDuration,
) -> Result<Offered, SourceError> {
    let mut versions: Vec<&Registration> = vec![];
    let mut aliases: BTreeMap<&str, String> = BTreeMap::new();
    let mut done: Vec<&Registration> =
        registrations.iter().filter(|r| r.name == source.name && r.at.0 <= elapsed).collect();
    done.sort_by_key(|r| r.at.0);
    for r in done {
        let number = match &r.version {
            Some(v) => v.clone(),
            None => {
                versions.push(r);
                versions.len().to_string()
            }
        };
        for alias in &r.aliases {
            aliases.insert(alias, number.clone());
        }
    }
    let number = match &source.alias {
        Some(alias) => aliases.get(alias.as_str()).cloned().ok_or_else(|| {
            SourceError::Missing(format!("RESOURCE_DOES_NOT_EXIST: registered model alias {alias} not found"))
        })?,
        None if versions.is_empty() => {
            return Err(SourceError::Missing(format!("registered model {:?} has no version", source.name)));
        }
        None => versions.len().to_string(),
    };
    let run = number
        .parse::<usize>()
        .ok()
        .and_then(|n| versions.get(n.wrapping_sub(1)))
        .ok_or_else(|| SourceError::Missing(format!("version {number} of {:?} does not exist", source.name)))?;
    Ok(Offered {
        version: number.clone(),
        run_id: Some(format!("run-{}-{number}", source.name)),
        source: format!("models:/m-{}-{number}", source.name),
        artifact_uri: format!("mlflow-artifacts:/{}/{number}/artifacts", source.name),
        params: run.params.clone(),
        metrics: run.metrics.clone(),
    })
}

/// One registered model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registered {
    /// Its versions, numbered from 1 in order of registration.
    pub versions: Vec<RegisteredVersion>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, String>,
}

/// One registered version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegisteredVersion {
    /// MLflow's number.
    pub number: String,
    /// Its source.
    pub source: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// Every registered model, by tracking URI and name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimMlflow {
    /// `(tracking URI, name)` → the registered model.
    pub models: BTreeMap<(String, String), Registered>,
    /// Writes made so far.
    pub writes: usize,
}

impl SimMlflow {
    /// Brings the registered model of `intent` to it, as the real client does.
    pub fn publish(&mut self, intent: &Intent) -> usize {
        let registered = self.models.entry((intent.tracking_uri.clone(), intent.name.clone())).or_default();
        let held: Vec<Held> = registered
            .versions
            .iter()
            .filter(|v| v.tags.get(MODEL_TAG) == Some(&intent.model))
            .map(|v| Held { number: v.number.clone(), tags: v.tags.clone() })
            .collect();
        let ops = operations(intent, &held, &registered.aliases);
        let mut created: BTreeMap<String, String> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Create { uid, source, tags } => {
                    let number = (registered.versions.len() + 1).to_string();
                    registered.versions.push(RegisteredVersion {
                        number: number.clone(),
                        source: source.clone(),
                        tags: tags.clone(),
                    });
                    created.insert(uid.clone(), number);
                }
                Op::SetTag { number, key, value } => {
                    if let Some(v) = registered.versions.iter_mut().find(|v| &v.number == number) {
                        v.tags.insert(key.clone(), value.clone());
                    }
                }
                Op::SetAlias { alias, target } => {
                    if let Some(number) = target.number(&created) {
                        registered.aliases.insert(alias.to_string(), number);
                    }
                }
                Op::DeleteAlias { alias } => {
                    registered.aliases.remove(*alias);
                }
            }
        }
        self.writes += ops.len();
        ops.len()
    }

    /// The registered model `name` (at any tracking URI).
    pub fn model(&self, name: &str) -> Option<&Registered> {
        self.models.iter().find(|((_, n), _)| n == name).map(|(_, r)| r)
    }
}

impl Registered {
    /// The modelcycle version number that an alias points at.
    pub fn alias_version(&self, alias: &str) -> Option<u32> {
        let number = self.aliases.get(alias)?;
        let v = self.versions.iter().find(|v| &v.number == number)?;
        v.tags.get("modelcycle.io/version")?.parse().ok()
    }
}
