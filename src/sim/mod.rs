//! The in-memory shell: the same core against a simulated cluster with a virtual clock. It
//! powers `modelcycle simulate` and the end-to-end scenario tests.

pub mod cluster;
pub mod engines;
pub mod expect;
pub mod kserve;
pub mod kubelet;
pub mod mlflow;
pub mod report;
pub mod scenario;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use std::sync::Arc;

use crate::api::Model;
use crate::lifecycle::model::{Regarding, plan_model};
use crate::lifecycle::plan::EventKind;
use crate::lifecycle::policy::{PolicyWorld, plan_policy};

use crate::lifecycle::analysis::{AnalysisAnswers, AnalysisQuery, Shape};
use crate::lifecycle::reading::ReadingError;
use crate::lifecycle::triggers::{DueChecks, Readings, after};
use crate::stats::Histogram;

use cluster::{Cluster, key};
use report::TimelineEntry;
use scenario::Scenario;

/// Reconciles of one Model at one instant before the simulation calls it a loop.
pub const CONVERGENCE_LIMIT: usize = 50;

/// A controller crash injected into a run: at the given reconcile, only the first
/// `after_writes` writes of its plan land; the next reconcile is a fresh controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// Which reconcile of a Model that acted (counted from 0 over the whole run, as
    /// [`Simulation::acting_reconciles`] counts them).
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
    /// What the controller would export about each Model (its `/metrics` series), by key.
    pub exported: std::collections::BTreeMap<String, crate::lifecycle::monitor::Exported>,
    /// When set, what each RetrainPolicy checked and fired, by key, recorded as it happens
    /// (its status keeps only the last check and the last few firings).
    pub policy_records: Option<std::collections::BTreeMap<String, PolicyRecord>>,
    /// When set, answers the due analysis queries instead of the scripted metric timelines
    /// (a test plugs a real Prometheus in here).
    pub analysis_source: Option<Box<AnalysisSource>>,
    /// When set, publishes to registries instead of the simulated MLflow (a test plugs a real
    /// MLflow in here).
    pub registry_sink: Option<Box<RegistrySink>>,
    /// The simulated MLflow registries.
    pub mlflow: mlflow::SimMlflow,
    wake_at: std::collections::BTreeMap<String, Timestamp>,
    changes_done: usize,
    /// The serving objects last built for each Model, handed back while their inputs are the
    /// same (the kube shell builds them each time: kept for every Model they would cost it more
    /// memory than the reconciles they save).
    remembered: Arc<crate::objects::desired::Remembered>,
}

/// Everything one RetrainPolicy checked and fired during a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyRecord {
    /// Every drift check, in time order.
    pub drift: Vec<crate::api::CheckStatus>,
    /// Every performance check, in time order.
    pub performance: Vec<crate::api::CheckStatus>,
    /// Every firing, held back or not, in time order (a repeat of the same hold is recorded once,
    /// as the status records it).
    pub firings: Vec<crate::api::Firing>,
}

impl PolicyRecord {
    /// Adds what `status` holds that is newer than what is recorded.
    fn note(&mut self, status: &crate::api::RetrainPolicyStatus) {
        for (kept, check) in [(&mut self.drift, &status.drift), (&mut self.performance, &status.performance)] {
            if let Some(check) = check
                && check.checked_at.is_some()
                && kept.last().is_none_or(|last| last.checked_at != check.checked_at)
            {
                kept.push(check.clone());
            }
        }
        let known = self.firings.last().and_then(|last| status.recent_firings.iter().rposition(|f| f == last));
        let new = known.map_or(0, |i| i + 1);
        self.firings.extend(status.recent_firings[new..].iter().cloned());
    }
}

/// Answers analysis queries for a Model.
pub type AnalysisSource = dyn FnMut(&Model, &[AnalysisQuery]) -> AnalysisAnswers;

/// Publishes what a Model's registry should hold: the number of writes, or why it failed.
pub type RegistrySink = dyn FnMut(&Model, &crate::lifecycle::registry::Intent) -> Result<usize, String>;

impl Simulation {
    /// A simulation of `scenario` with its Models applied at the start.
    pub fn new(scenario: Scenario) -> Self {
        let mut cluster = Cluster::starting_at(scenario.start());
        for model in &scenario.models {
            let mut m = model.clone();
            m.metadata.namespace.get_or_insert_with(|| "default".into());
            cluster.admit(&mut m.metadata);
            cluster.models.insert(key(&m), Arc::new(m));
        }
        for policy in &scenario.policies {
            let mut p = policy.clone();
            p.metadata.namespace.get_or_insert_with(|| "default".into());
            cluster.admit(&mut p.metadata);
            cluster.policies.insert(key(&p), Arc::new(p));
        }
        Self {
            scenario,
            cluster,
            timeline: vec![],
            reconciles: 0,
            acting_reconciles: 0,
            crash: None,
            plans: None,
            analysis_source: None,
            registry_sink: None,
            mlflow: Default::default(),
            policy_records: None,
            exported: Default::default(),
            wake_at: Default::default(),
            changes_done: 0,
            remembered: Default::default(),
        }
    }

    /// When the simulation ends.
    pub fn end(&self) -> Timestamp {
        after(self.scenario.start(), self.scenario.file.duration.0)
    }

    /// Runs to the end of the scenario.
    pub fn run(&mut self) {
        self.run_until(self.end());
    }

    /// Runs every step up to and including `until`.
    pub fn run_until(&mut self, until: Timestamp) {
        loop {
            kubelet::advance(&mut self.cluster, &self.scenario);
            engines::advance(&mut self.cluster, &self.scenario);
            kserve::advance(&mut self.cluster, &self.scenario);
            self.apply_changes();
            if !self.controller_down() {
                self.reconcile_all();
            }
            engines::start(&mut self.cluster);
            let Some(next) = self.next_wake() else { break };
            if next > until {
                break;
            }
            self.cluster.now = next;
        }
    }

    fn next_wake(&self) -> Option<Timestamp> {
        let change = self.scenario.file.changes.get(self.changes_done).map(|c| after(self.scenario.start(), c.at.0));
        let down = &self.scenario.file.controller_down;
        let restart = down.iter().map(|d| after(self.scenario.start(), d.to.0)).filter(|t| *t > self.cluster.now).min();
        let candidates =
            [kubelet::next_event(&self.cluster, &self.scenario), change, self.wake_at.values().min().copied(), restart]
                .into_iter()
                .chain([kserve::next_event(&self.cluster, &self.scenario)]);
        candidates.into_iter().flatten().filter(|t| *t > self.cluster.now).min()
    }

    /// Publishes to the plugged-in registry, or the simulated MLflow unless it is scripted down.
    fn publish(
        &mut self,
        model: &Model,
        intent: &crate::lifecycle::registry::Intent,
    ) -> crate::lifecycle::registry::Synced {
        let down = self.mlflow_down();
        let result = match self.registry_sink.as_mut() {
            Some(sink) => sink(model, intent),
            None if down => Err(format!("MLflow at {} did not answer: connection refused", intent.tracking_uri)),
            None => Ok(self.mlflow.publish(intent)),
        };
        crate::lifecycle::registry::Synced { hash: intent.hash.clone(), result }
    }

    /// What the registry a Model takes its versions from offers now, from the scenario.
    fn registry_offer(
        &self,
        model: &Model,
    ) -> Option<Result<crate::lifecycle::source::Offered, crate::lifecycle::source::SourceError>> {
        let source = crate::lifecycle::source::sourced(model)?;
        let elapsed = self.cluster.now.duration_since(self.scenario.start());
        if self.mlflow_down() {
            let why = format!("MLflow at {} did not answer: connection refused", source.tracking_uri);
            return Some(Err(crate::lifecycle::source::SourceError::Unreachable(why)));
        }
        Some(mlflow::offered(&self.scenario.file.mlflow_versions, source, elapsed))
    }

    /// True while the scenario's `mlflowDown` makes every MLflow unreachable.
    fn mlflow_down(&self) -> bool {
        let elapsed = self.cluster.now.duration_since(self.scenario.start());
        self.scenario.file.mlflow_down.iter().any(|o| o.from.0 <= elapsed && elapsed < o.to.0)
    }

    fn controller_down(&self) -> bool {
        let elapsed = self.cluster.now.duration_since(self.scenario.start());
        self.scenario.file.controller_down.iter().any(|d| d.from.0 <= elapsed && elapsed < d.to.0)
    }

    fn apply_changes(&mut self) {
        let start = self.scenario.start();
        // Only the change due now is copied out of the scenario (it is applied to `self`).
        while let Some(change) = self
            .scenario
            .file
            .changes
            .get(self.changes_done)
            .filter(|c| after(start, c.at.0) <= self.cluster.now)
            .cloned()
        {
            let change = &change;
            if let Some(name) = &change.policy {
                self.change_policy(name, change);
                self.changes_done += 1;
                continue;
            }
            let target = self
                .cluster
                .models
                .values()
                .find(|m| change.model.as_ref().is_none_or(|n| m.metadata.name.as_ref() == Some(n)));
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
                self.cluster.models.insert(key(&updated), Arc::new(updated));
            }
            self.changes_done += 1;
        }
    }

    fn change_policy(&mut self, name: &str, change: &scenario::Change) {
        let Some((k, policy)) =
            self.cluster.policies.iter().find(|(_, p)| p.name_any() == name).map(|(k, p)| (k.clone(), p.clone()))
        else {
            self.cluster.violations.push(format!("change at {}: no RetrainPolicy {name}", change.at.0));
            return;
        };
        let mut value = serde_json::to_value(&*policy).unwrap_or_default();
        for (path, new) in &change.set {
            set_path(&mut value, path, new);
        }
        match serde_json::from_value::<crate::api::RetrainPolicy>(value) {
            Ok(mut updated) => {
                for (k, v) in &change.annotate {
                    updated.annotations_mut().insert(k.clone(), v.clone());
                }
                if updated.spec != policy.spec {
                    updated.metadata.generation = Some(policy.metadata.generation.unwrap_or(1) + 1);
                }
                self.timeline.push(TimelineEntry {
                    time: self.cluster.now,
                    model: format!("{}/{name}", policy.spec.model_ref.name),
                    version: None,
                    reason: "UserChange".into(),
                    message: describe_change(change),
                    warning: false,
                });
                self.cluster.policies.insert(k, Arc::new(updated));
            }
            Err(e) => self
                .cluster
                .violations
                .push(format!("change at {}: the changed RetrainPolicy is invalid: {e}", change.at.0)),
        }
    }

    /// Every crash a run of this scenario can meet: after each write (Events included) of each
    /// plan it applies, short of the whole plan. A run with one of these crashes takes the same
    /// path as this one up to the crash, so each names a real point of a real plan.
    pub fn crash_points(scenario: &Scenario) -> Vec<Crash> {
        let mut baseline = Simulation::new(scenario.clone());
        baseline.plans = Some(vec![]);
        baseline.run();
        let plans = baseline.plans.unwrap_or_default();
        plans
            .iter()
            .enumerate()
            .flat_map(|(n, (_, plan))| {
                (0..plan.steps.len()).map(move |after_writes| Crash { at_reconcile: n as u64, after_writes })
            })
            .collect()
    }

    /// Reconciles every Model until it has nothing left to do at this instant.
    pub fn reconcile_all(&mut self) {
        let keys: Vec<String> = self.cluster.models.keys().cloned().collect();
        for k in keys {
            self.wake_at.remove(&k);
            let mut settled = false;
            for _ in 0..CONVERGENCE_LIMIT {
                let Some(model) = self.cluster.models.get(&k).cloned() else {
                    settled = true;
                    break;
                };
                let mut children = self.cluster.children_of(&model);
                let due = children.due(&model, self.cluster.now);
                let mut readings =
                    due.checks.as_ref().map(|(_, checks)| self.live_readings(checks)).unwrap_or_default();
                if !due.analysis.is_empty() {
                    readings.analysis = match self.analysis_source.as_mut() {
                        Some(source) => source(&model, &due.analysis),
                        None => self.analysis_readings(&due.analysis),
                    };
                }
                if let Some(intent) = &due.registry {
                    readings.registry = Some(self.publish(&model, intent));
                }
                readings.source = self.registry_offer(&model);
                children.readings = readings;
                children.remembered = Some(self.remembered.clone());
                let plan = plan_model(children.observed(&model), self.cluster.now);
                if !plan.steps.is_empty() {
                    let (gauges, counted) = crate::lifecycle::monitor::after(&children, &plan);
                    self.exported.entry(k.clone()).or_default().record(gauges, counted);
                }
                // Let go of the shared objects so that applying the plan changes them in place.
                drop(children);
                if let Some(wait) = plan.requeue_after {
                    if wait.is_zero() {
                        // On a cluster this is a reconcile loop with no pause: a defect, never a plan.
                        self.violate(format!("{k} asked to be woken again at once at {}", self.cluster.now));
                    }
                    let at = after(self.cluster.now, SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX));
                    self.wake_at.insert(k.clone(), at);
                }
                if plan.steps.is_empty() {
                    settled = true;
                    break;
                }
                let mut budget =
                    self.crash.filter(|c| c.at_reconcile == self.acting_reconciles).map(|c| c.after_writes);
                self.reconciles += 1;
                self.acting_reconciles += 1;
                if let Some(plans) = self.plans.as_mut() {
                    plans.push(((*model).clone(), plan.clone()));
                }
                let (namespace, name) = (model.namespace(), model.name_any());
                // The cluster's copy is then the only one: writing its status changes it in
                // place instead of copying the whole Model.
                drop(model);
                let events = self.cluster.apply(&k, plan, &mut budget);
                self.record_policies(namespace, &name);
                for (regarding, e) in events {
                    self.timeline.push(TimelineEntry {
                        time: self.cluster.now,
                        model: match regarding {
                            Regarding::Model => name.clone(),
                            Regarding::Policy(policy) => format!("{name}/{policy}"),
                        },
                        version: e.version,
                        reason: e.reason,
                        message: e.note,
                        warning: e.kind == EventKind::Warning,
                    });
                }
            }
            if !settled {
                self.violate(format!(
                    "{k} still had writes to make after {CONVERGENCE_LIMIT} reconciles at {}",
                    self.cluster.now
                ));
            }
        }
        self.reconcile_orphan_policies();
    }

    /// Judges the RetrainPolicies whose Model does not exist, as the policy controller does on a
    /// cluster (a Model's own reconciles judge the others).
    fn reconcile_orphan_policies(&mut self) {
        let orphans: Vec<(String, Arc<crate::api::RetrainPolicy>)> = self
            .cluster
            .policies
            .iter()
            .filter(|(_, p)| {
                !self
                    .cluster
                    .models
                    .values()
                    .any(|m| m.namespace() == p.namespace() && m.name_any() == p.spec.model_ref.name)
            })
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (k, policy) in orphans {
            let name = policy.name_any();
            let world = PolicyWorld {
                model_exists: false,
                policies_for_model: vec![(name.as_str(), None)],
                model_source: None,
            };
            let plan = plan_policy(&policy, &world, self.cluster.now);
            if let (Some(status), Some(p)) = (plan.status, self.cluster.policies.get_mut(&k)) {
                Arc::make_mut(p).status = Some(status);
                self.reconciles += 1;
            }
            for e in plan.events {
                self.timeline.push(TimelineEntry {
                    time: self.cluster.now,
                    model: format!("{}/{name}", policy.spec.model_ref.name),
                    version: None,
                    reason: e.reason,
                    message: e.note,
                    warning: e.kind == EventKind::Warning,
                });
            }
        }
    }

    /// Notes what the Model's RetrainPolicies checked and fired, when records are kept.
    fn record_policies(&mut self, namespace: Option<String>, name: &str) {
        let Some(records) = self.policy_records.as_mut() else { return };
        for (k, policy) in &self.cluster.policies {
            if policy.namespace() == namespace
                && policy.spec.model_ref.name == name
                && let Some(status) = &policy.status
            {
                records.entry(k.clone()).or_default().note(status);
            }
        }
    }

    /// Records a broken rule once.
    fn violate(&mut self, violation: String) {
        self.cluster.violate(violation);
    }
}

impl Simulation {
    /// What the scripted live metrics answer to the due checks now.
    fn live_readings(&self, due: &DueChecks) -> Readings {
        let live = &self.scenario.file.live;
        let elapsed = self.cluster.now.duration_since(self.scenario.start());
        let outage = self.outage();
        let answer = |found: Option<Result<Histogram, ReadingError>>| {
            if let Some(e) = &outage {
                return Err(e.clone());
            }
            found.unwrap_or(Err(ReadingError::NoData))
        };
        let drift_now = live
            .drift
            .iter()
            .rev()
            .find(|s| s.at.0 <= elapsed)
            .map(|s| s.value.histogram.clone().ok_or(ReadingError::NoData));
        let performance_now = live.performance.iter().rev().find(|s| s.at.0 <= elapsed).and_then(|s| s.value.value);
        Readings {
            drift: due.drift.as_ref().map(|_| answer(drift_now.clone())),
            reference: due.reference.as_ref().map(|_| answer(drift_now.clone())),
            performance: due.performance.as_ref().map(|_| match &outage {
                Some(e) => Err(e.clone()),
                None => performance_now.ok_or(ReadingError::NoData),
            }),
            ..Default::default()
        }
    }

    /// The error every query gets now, if the scenario has Prometheus unreachable.
    fn outage(&self) -> Option<ReadingError> {
        let elapsed = self.cluster.now.duration_since(self.scenario.start());
        let down = self.scenario.file.live.unavailable.iter().any(|o| o.from.0 <= elapsed && elapsed < o.to.0);
        down.then(|| ReadingError::Unreachable {
            address: "sim://prometheus".into(),
            message: "connection refused".into(),
        })
    }

    /// What the scripted metric timelines answer to the due analysis queries now.
    fn analysis_readings(&self, queries: &[AnalysisQuery]) -> AnalysisAnswers {
        let live = &self.scenario.file.live;
        let elapsed = self.cluster.now.duration_since(self.scenario.start());
        let outage = self.outage();
        let step = |q: &AnalysisQuery| {
            if let Some(e) = &outage {
                return Err(e.clone());
            }
            let step = live
                .analysis
                .iter()
                .filter(|s| s.metric == q.metric && s.version.is_none_or(|v| v == q.version) && s.at.0 <= elapsed)
                .max_by_key(|s| (s.at, s.version.is_some()));
            match step {
                Some(s) if s.rejected.is_some() => Err(ReadingError::Rejected {
                    kind: "bad_data".into(),
                    message: s.rejected.clone().unwrap_or_default(),
                }),
                Some(s) => Ok(s),
                None => Err(ReadingError::NoData),
            }
        };
        let mut answers = AnalysisAnswers::default();
        for q in queries {
            let step = step(q);
            match q.shape {
                Shape::Number => {
                    let answer = step.and_then(|s| match (s.value, &s.histogram) {
                        (Some(v), _) => Ok(v),
                        (None, Some(h)) => Err(ReadingError::Unexpected(format!(
                            "{} series; the query must return one number (aggregate it, e.g. with sum)",
                            h.bounds.len()
                        ))),
                        (None, None) => Err(ReadingError::NoData),
                    });
                    answers.numbers.insert(q.query.clone(), answer);
                }
                Shape::Histogram => {
                    let answer = step.and_then(|s| match (&s.histogram, s.value) {
                        (Some(h), _) => Ok(h.clone()),
                        (None, Some(_)) => Err(ReadingError::Unexpected(
                            "a series without an `le` label; the query must return histogram buckets".into(),
                        )),
                        (None, None) => Err(ReadingError::NoData),
                    });
                    answers.histograms.insert(q.query.clone(), answer);
                }
            }
        }
        answers
    }
}

/// The Model with a scenario change applied.
pub fn apply_change(model: &Model, change: &scenario::Change) -> Result<Model, String> {
    // A change sets fields of the spec or metadata: the status (the controller's, and the
    // largest part of a Model with a history) goes through JSON only when a change names it.
    let keeps_status = !change.set.keys().any(|path| path == "status" || path.starts_with("status."));
    let mut value = if keeps_status {
        serde_json::to_value(Model { metadata: model.metadata.clone(), spec: model.spec.clone(), status: None })
    } else {
        serde_json::to_value(model)
    }
    .map_err(|e| e.to_string())?;
    for (path, new) in &change.set {
        set_path(&mut value, path, new);
    }
    let mut updated: Model = serde_json::from_value(value).map_err(|e| format!("the changed Model is invalid: {e}"))?;
    if keeps_status {
        updated.status = model.status.clone();
    }
    for (k, v) in &change.annotate {
        updated.annotations_mut().insert(k.clone(), v.clone());
    }
    Ok(updated)
}

/// Sets a dotted path in a JSON object, creating objects on the way; null removes the field.
fn set_path(value: &mut serde_json::Value, path: &str, new: &serde_json::Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut target = value;
    for part in &parts[..parts.len() - 1] {
        if !target[*part].is_object() {
            target[*part] = serde_json::json!({});
        }
        target = &mut target[*part];
    }
    let last = parts[parts.len() - 1];
    match (target.as_object_mut(), new.is_null()) {
        (Some(map), true) => {
            map.remove(last);
        }
        (Some(map), false) => {
            map.insert(last.to_string(), new.clone());
        }
        (None, _) => {}
    }
}

fn describe_change(change: &scenario::Change) -> String {
    let sets = change.set.iter().map(|(k, v)| format!("{k} = {v}"));
    let notes = change.annotate.iter().map(|(k, v)| format!("annotation {k} = {v:?}"));
    format!("user set {}", sets.chain(notes).collect::<Vec<_>>().join(", "))
}
