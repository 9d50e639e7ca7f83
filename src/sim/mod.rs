//! The in-memory shell: the same core against a simulated cluster with a virtual clock. It
//! powers `modelcycle simulate` and the end-to-end scenario tests.

pub mod cluster;
pub mod kubelet;
pub mod report;
pub mod scenario;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::Model;
use crate::lifecycle::model::plan_model;
use crate::lifecycle::plan::EventKind;

use cluster::{Cluster, key};
use report::TimelineEntry;
use scenario::Scenario;

/// Reconciles of one Model at one instant before the simulation calls it a loop.
pub const CONVERGENCE_LIMIT: usize = 50;

/// A controller crash injected into a run: at the given reconcile, only the first
/// `after_writes` writes of its plan land; the next reconcile is a fresh controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// Which reconcile (counted from 0 over the whole run).
    pub at_reconcile: u64,
    /// How many of its writes land.
    pub after_writes: usize,
}

/// A running simulation.
pub struct Simulation {
    /// What is simulated.
    pub scenario: Scenario,
    /// The simulated cluster.
    pub cluster: Cluster,
    /// Every Event the controller emitted, with its time.
    pub timeline: Vec<TimelineEntry>,
    /// Reconciles run so far.
    pub reconciles: u64,
    /// Reconciles that changed something (wrote or emitted).
    pub acting_reconciles: u64,
    /// A crash to inject.
    pub crash: Option<Crash>,
    /// When set, every plan that acted is kept here with its Model, for replaying through a shell.
    pub plans: Option<Vec<(crate::api::Model, crate::lifecycle::model::ModelPlan)>>,
    wake_at: std::collections::BTreeMap<String, Timestamp>,
    changes_done: usize,
}

impl Simulation {
    /// A simulation of `scenario` with its Models applied at the start.
    pub fn new(scenario: Scenario) -> Self {
        let mut cluster = Cluster::starting_at(scenario.start());
        for model in &scenario.models {
            let mut m = model.clone();
            m.metadata.namespace.get_or_insert_with(|| "default".into());
            cluster.admit(&mut m.metadata);
            cluster.models.insert(key(&m), m);
        }
        Self {
            scenario,
            cluster,
            timeline: vec![],
            reconciles: 0,
            acting_reconciles: 0,
            crash: None,
            plans: None,
            wake_at: Default::default(),
            changes_done: 0,
        }
    }

    /// When the simulation ends.
    pub fn end(&self) -> Timestamp {
        self.scenario.start() + self.scenario.file.duration.0
    }

    /// Runs to the end of the scenario.
    pub fn run(&mut self) {
        self.run_until(self.end());
    }

    /// Runs every step up to and including `until`.
    pub fn run_until(&mut self, until: Timestamp) {
        loop {
            kubelet::advance(&mut self.cluster, &self.scenario);
            self.apply_changes();
            self.reconcile_all();
            let Some(next) = self.next_wake() else { break };
            if next > until {
                break;
            }
            self.cluster.now = next;
        }
    }

    fn next_wake(&self) -> Option<Timestamp> {
        let change = self.scenario.file.changes.get(self.changes_done).map(|c| self.scenario.start() + c.at.0);
        let candidates =
            [kubelet::next_event(&self.cluster, &self.scenario), change, self.wake_at.values().min().copied()];
        candidates.into_iter().flatten().filter(|t| *t > self.cluster.now).min()
    }

    fn apply_changes(&mut self) {
        let start = self.scenario.start();
        let mut changes: Vec<_> = self.scenario.file.changes.clone();
        changes.sort_by_key(|c| c.at);
        while let Some(change) = changes.get(self.changes_done).filter(|c| start + c.at.0 <= self.cluster.now) {
            let target =
                self.cluster.models.values().find(|m| change.model.as_ref().is_none_or(|n| *n == m.name_any()));
            if let Some(model) = target.cloned() {
                let updated = apply_change(&model, change);
                let mut updated = match updated {
                    Ok(m) => m,
                    Err(e) => {
                        self.cluster.violations.push(format!("change at {}: {e}", change.at.0));
                        self.changes_done += 1;
                        continue;
                    }
                };
                if updated.spec != model.spec {
                    updated.metadata.generation = Some(model.metadata.generation.unwrap_or(1) + 1);
                }
                self.timeline.push(TimelineEntry {
                    time: self.cluster.now,
                    model: model.name_any(),
                    version: None,
                    reason: "UserChange".into(),
                    message: describe_change(change),
                    warning: false,
                });
                self.cluster.models.insert(key(&updated), updated);
            }
            self.changes_done += 1;
        }
    }

    /// Reconciles every Model until it has nothing left to do at this instant.
    pub fn reconcile_all(&mut self) {
        let keys: Vec<String> = self.cluster.models.keys().cloned().collect();
        for k in keys {
            self.wake_at.remove(&k);
            for _ in 0..CONVERGENCE_LIMIT {
                let Some(model) = self.cluster.models.get(&k).cloned() else { break };
                let children = self.cluster.children_of(&model);
                let plan = plan_model(children.observed(&model), self.cluster.now);
                if let Some(after) = plan.requeue_after {
                    let at = self.cluster.now + SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX);
                    self.wake_at.insert(k.clone(), at);
                }
                if plan.writes() == 0 && plan.events.is_empty() {
                    break;
                }
                let mut budget = self.crash.filter(|c| c.at_reconcile == self.reconciles).map(|c| c.after_writes);
                self.reconciles += 1;
                self.acting_reconciles += 1;
                let events = self.cluster.apply(&k, &plan, &mut budget);
                if let Some(plans) = self.plans.as_mut() {
                    plans.push((model.clone(), plan.clone()));
                }
                for e in events.into_iter().flatten() {
                    self.timeline.push(TimelineEntry {
                        time: self.cluster.now,
                        model: model.name_any(),
                        version: e.version,
                        reason: e.reason,
                        message: e.note,
                        warning: e.kind == EventKind::Warning,
                    });
                }
            }
        }
    }
}

/// The Model with a scenario change applied.
pub fn apply_change(model: &Model, change: &scenario::Change) -> Result<Model, String> {
    let mut value = serde_json::to_value(model).map_err(|e| e.to_string())?;
    for (path, new) in &change.set {
        let mut target = &mut value;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = target
                .as_object_mut()
                .ok_or_else(|| format!("{path}: {part} is not an object"))?
                .entry(part.to_string())
                .or_insert_with(|| serde_json::json!({}));
        }
        let map = target.as_object_mut().ok_or_else(|| format!("{path} is not inside an object"))?;
        let last = parts[parts.len() - 1].to_string();
        if new.is_null() {
            map.remove(&last);
        } else {
            map.insert(last, new.clone());
        }
    }
    let mut updated: Model = serde_json::from_value(value).map_err(|e| format!("the changed Model is invalid: {e}"))?;
    for (k, v) in &change.annotate {
        updated.annotations_mut().insert(k.clone(), v.clone());
    }
    Ok(updated)
}

fn describe_change(change: &scenario::Change) -> String {
    let sets = change.set.iter().map(|(k, v)| format!("{k} = {v}"));
    let notes = change.annotate.iter().map(|(k, v)| format!("annotation {k} = {v:?}"));
    format!("user set {}", sets.chain(notes).collect::<Vec<_>>().join(", "))
}
