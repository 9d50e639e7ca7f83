//! What a scenario says it should end with (its `expect:` block), and the check of a run
//! against it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::api::{ModelPhase, VersionPhase};

use super::report::Report;

/// The outcome a scenario states: `modelcycle simulate` exits non-zero when a run misses it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Where each Model ends, by name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelExpect>,
    /// Training Jobs created over the whole run.
    pub jobs: Option<u64>,
    /// At most this many API writes over the whole run.
    pub max_writes: Option<u64>,
}

/// Where one Model ends.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelExpect {
    /// Its phase.
    pub phase: Option<ModelPhase>,
    /// The version that serves (`null`: none).
    #[serde(default, deserialize_with = "some")]
    pub serving: Option<Option<u32>>,
    /// Every version kept at the end, with its phase; a version not listed is a miss.
    pub versions: Option<BTreeMap<u32, VersionPhase>>,
    /// The trigger reason of some versions, e.g. `3: Drift`.
    #[serde(default)]
    pub triggers: BTreeMap<u32, String>,
    /// With Gateway API routing: every share its route sent to new versions, in order, each
    /// time it changed (e.g. `["0", "10", "50", "0"]`; `0+cohort`: only a header cohort).
    pub traffic: Option<Vec<String>>,
}

/// Tells a field written as `null` from one left out.
fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl Expect {
    /// Every way `report` (of a run that created `jobs` training Jobs) misses this outcome.
    pub fn misses(&self, report: &Report, jobs: u64) -> Vec<String> {
        let mut out = vec![];
        for (name, want) in &self.models {
            let Some(got) = report.models.iter().find(|m| &m.name == name) else {
                out.push(format!("Model {name}: expected, but the scenario has no such Model"));
                continue;
            };
            if let Some(phase) = want.phase
                && got.phase != Some(phase)
            {
                out.push(format!("Model {name}: expected phase {phase:?}, got {:?}", got.phase));
            }
            if let Some(serving) = want.serving
                && got.serving_version != serving
            {
                out.push(format!(
                    "Model {name}: expected serving {}, got {}",
                    show(serving),
                    show(got.serving_version)
                ));
            }
            let phases: BTreeMap<u32, Option<VersionPhase>> =
                got.versions.iter().map(|v| (v.version, v.phase)).collect();
            if let Some(versions) = &want.versions {
                let wanted: BTreeMap<u32, Option<VersionPhase>> =
                    versions.iter().map(|(n, p)| (*n, Some(*p))).collect();
                if wanted != phases {
                    out.push(format!("Model {name}: expected versions {wanted:?}, got {phases:?}"));
                }
            }
            if let Some(traffic) = &want.traffic
                && traffic != &got.traffic
            {
                out.push(format!(
                    "Model {name}: expected its route to send {traffic:?} to new versions, got {:?}",
                    got.traffic
                ));
            }
            for (n, trigger) in &want.triggers {
                let got = got.versions.iter().find(|v| v.version == *n).map(|v| v.trigger.as_str());
                if got != Some(trigger.as_str()) {
                    out.push(format!("Model {name}: expected v{n} trained for {trigger}, got {got:?}"));
                }
            }
        }
        if let Some(want) = self.jobs
            && want != jobs
        {
            out.push(format!("expected {want} training Jobs, got {jobs}"));
        }
        if let Some(max) = self.max_writes
            && report.writes > max
        {
            out.push(format!("expected at most {max} API writes, got {}", report.writes));
        }
        out
    }
}

fn show(version: Option<u32>) -> String {
    version.map_or("nothing".into(), |v| format!("v{v}"))
}
