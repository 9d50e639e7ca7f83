//! A simulated MLflow model registry: versions with tags and aliases, written by the same
//! [`operations`] the real client runs, so the simulator shows what a registry would hold.

use std::collections::BTreeMap;

use crate::lifecycle::registry::{Held, Intent, MODEL_TAG, Op, operations};

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
