//! `modelcycle backtest`: what a RetrainPolicy (and the Model's gates) would have done over a past
//! period. The recorded readings become the simulator's live metrics and the same core decides,
//! so a backtest is exactly the controller's behaviour on that data, not a model of it.
//!
//! What history cannot say is assumed, and the report says so: every training the backtest starts
//! takes `trainingTime` and reports the metrics given (gates are not judged without them); a
//! retrained model's reference distribution is the live distribution when its training ends (it
//! learned the data of its day); the quality readings are those of the model that served then, so a
//! quality breach that lasted keeps firing after each cooldown.

pub mod chart;
pub mod history;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{CheckStatus, Model, RetrainPolicy};
use crate::sim::Simulation;
use crate::sim::scenario::{
    DriftAnswer, LiveMetrics, PerformanceAnswer, Scenario, ScenarioFile, SimDuration, Step, VersionScript,
};
use history::History;

/// What the backtest assumes where history is silent.
#[derive(Clone, Debug, PartialEq)]
pub struct Assumptions {
    /// How long each training takes.
    pub training_time: SignedDuration,
    /// The metrics each training reports; empty: the Model's gates are not judged.
    pub metrics: BTreeMap<String, f64>,
}

impl Default for Assumptions {
    fn default() -> Self {
        Self { training_time: SignedDuration::from_mins(30), metrics: BTreeMap::new() }
    }
}

/// One time the policy fired.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fired {
    /// When.
    pub time: Timestamp,
    /// The causes, e.g. `Drift` or `Schedule+Performance`.
    pub trigger: String,
    /// The evidence, as the controller records it.
    pub evidence: String,
    /// The version it would have trained; none when hygiene held it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Why it was held back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
    /// What became of the version: the controller's last word on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// One check's reading, for the table and the chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// When it was checked.
    pub time: Timestamp,
    /// The value, if there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold it was judged against (drift).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// Counts of one kind of check.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckCounts {
    /// Checks made.
    pub checks: usize,
    /// Checks that gave no verdict (no data, too few samples, no reference yet).
    pub no_verdict: usize,
    /// Checks whose value was out of bounds (over the drift threshold, outside the quality bounds).
    pub out_of_bounds: usize,
}

/// What the backtest found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backtest {
    /// `namespace/name` of the RetrainPolicy.
    pub policy: String,
    /// The Model.
    pub model: String,
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Where the readings came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Every firing in time order, held back or not (the first training of the Model, at the
    /// start, is not one: it stands for the version serving when the period began).
    pub fired: Vec<Fired>,
    /// Trainings the firings started.
    pub trainings: usize,
    /// Of those, the versions that went on to serve.
    pub served: usize,
    /// Drift checks.
    pub drift: CheckCounts,
    /// Performance checks.
    pub quality: CheckCounts,
    /// Every drift reading.
    pub drift_readings: Vec<Reading>,
    /// Every quality reading.
    pub quality_readings: Vec<Reading>,
    /// The quality bounds of the performance trigger.
    pub quality_bounds: (Option<f64>, Option<f64>),
    /// The drift method's short name, if the policy has drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_method: Option<String>,
    /// What the backtest assumed, in sentences.
    pub assumptions: Vec<String>,
}

/// Replays `history` through the core with `policy` driving `model`.
pub fn run(model: &Model, policy: &RetrainPolicy, history: &History, assume: &Assumptions) -> Result<Backtest, String> {
    if policy.spec.model_ref.name != model.name_any() {
        return Err(format!(
            "RetrainPolicy {} drives Model {:?}, not {:?}",
            policy.name_any(),
            policy.spec.model_ref.name,
            model.name_any()
        ));
    }
    let mut notes = vec![format!(
        "each training takes {:#}; a retrained model's reference distribution is the live one when its training ends",
        assume.training_time
    )];
    let mut model = model.clone();
    model.metadata.namespace = Some(model.namespace().unwrap_or_else(|| "default".into()));
    let mut policy = policy.clone();
    policy.metadata.namespace = model.metadata.namespace.clone();
    policy.status = None;
    model.status = None;
    // Retrain requests are a person's, not history's: a request standing on the objects as
    // stored would fire at the start of the replay.
    let requested = [model.annotations_mut(), policy.annotations_mut()]
        .into_iter()
        .filter_map(|a| a.remove(crate::lifecycle::triggers::RETRAIN_REQUEST))
        .count();
    if requested > 0 {
        notes.push("retrain requests (the modelcycle.io/retrain-request annotation) are not replayed".into());
    }
    if assume.metrics.is_empty() {
        if !model.spec.evaluation.gates.is_empty() {
            notes.push(format!(
                "gates not judged: no --metric said what a training would report, so every version passes ({} gate(s) left out)",
                model.spec.evaluation.gates.len()
            ));
            model.spec.evaluation.gates.clear();
        }
    } else {
        let metrics: Vec<String> = assume.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        notes.push(format!("every training reports {} to the gates", metrics.join(", ")));
    }
    if policy.spec.performance.is_some() {
        notes.push("quality readings are those of the model that served then: a breach that lasted fires again after each cooldown".into());
    }
    let scenario = scenario(&model, &policy, history, assume);
    let mut sim = Simulation::new(scenario);
    sim.policy_records = Some(BTreeMap::new());
    sim.run();
    let key = format!("{}/{}", policy.namespace().unwrap_or_default(), policy.name_any());
    let record = sim.policy_records.as_ref().and_then(|r| r.get(&key)).cloned().unwrap_or_default();
    let outcome = |version: u32| {
        sim.timeline
            .iter()
            .rev()
            .find(|e| e.version == Some(version) && e.model == model.name_any())
            .map(|e| format!("{}: {}", e.reason, e.message))
    };
    let fired: Vec<Fired> = record
        .firings
        .iter()
        .filter(|f| !f.trigger.causes.iter().any(|c| c.reason == "Initial"))
        .map(|f| Fired {
            time: f.trigger.time.0,
            trigger: f.trigger.reason.clone(),
            evidence: f
                .trigger
                .causes
                .iter()
                .map(|c| c.evidence.clone())
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            version: f.version.filter(|_| f.suppressed.is_none()),
            held_back: f.suppressed.clone(),
            outcome: f.version.filter(|_| f.suppressed.is_none()).and_then(outcome),
        })
        .collect();
    // From the timeline, not the versions left at the end: versionHistoryLimit prunes old ones.
    let served_versions: Vec<u32> = sim
        .timeline
        .iter()
        .filter(|e| e.reason == "VersionServing" && e.model == model.name_any())
        .filter_map(|e| e.version)
        .collect();
    let trainings = fired.iter().filter(|f| f.version.is_some()).count();
    let served = fired.iter().filter_map(|f| f.version).filter(|v| served_versions.contains(v)).count();
    let perf = policy.spec.performance.as_ref();
    let bounds = (perf.and_then(|p| p.min), perf.and_then(|p| p.max));
    let out_of_bounds = |v: f64| bounds.0.is_some_and(|min| v < min) || bounds.1.is_some_and(|max| v > max);
    Ok(Backtest {
        policy: key,
        model: model.name_any(),
        from: history.from,
        to: history.to,
        source: history.source.clone(),
        trainings,
        served,
        drift: counts(&record.drift, |c| c.value.zip(c.threshold).is_some_and(|(v, t)| v > t)),
        quality: counts(&record.performance, |c| c.value.is_some_and(out_of_bounds)),
        drift_readings: readings(&record.drift),
        quality_readings: readings(&record.performance),
        quality_bounds: bounds,
        drift_method: policy.spec.drift.as_ref().map(|d| d.method.short().to_string()),
        fired,
        assumptions: notes,
    })
}

fn counts(checks: &[CheckStatus], out: impl Fn(&CheckStatus) -> bool) -> CheckCounts {
    CheckCounts {
        checks: checks.len(),
        no_verdict: checks.iter().filter(|c| c.value.is_none()).count(),
        out_of_bounds: checks.iter().filter(|c| out(c)).count(),
    }
}

fn readings(checks: &[CheckStatus]) -> Vec<Reading> {
    checks
        .iter()
        .filter_map(|c| Some(Reading { time: c.checked_at.as_ref()?.0, value: c.value, threshold: c.threshold }))
        .collect()
}

/// The history as a scenario: its readings are the live metrics, the period its duration.
fn scenario(model: &Model, policy: &RetrainPolicy, history: &History, assume: &Assumptions) -> Scenario {
    let at = |t: Timestamp| SimDuration(t.duration_since(history.from));
    let within = |t: Timestamp| t >= history.from && t <= history.to;
    let live = LiveMetrics {
        drift: history
            .drift
            .iter()
            .filter(|p| within(p.at))
            .map(|p| Step { at: at(p.at), value: DriftAnswer { histogram: p.histogram.clone() } })
            .collect(),
        performance: history
            .quality
            .iter()
            .filter(|p| within(p.at))
            .map(|p| Step { at: at(p.at), value: PerformanceAnswer { value: p.value } })
            .collect(),
        ..Default::default()
    };
    let file = ScenarioFile {
        name: Some(format!("backtest of {}", policy.name_any())),
        start: Some(history.from),
        duration: SimDuration(history.length()),
        defaults: VersionScript {
            training_time: Some(SimDuration(assume.training_time)),
            metrics: Some(assume.metrics.clone()),
            reference_from_live: Some(true),
            ..Default::default()
        },
        versions: BTreeMap::new(),
        changes: vec![],
        live,
        controller_down: vec![],
        mlflow_down: vec![],
        mlflow_versions: vec![],
        expect: None,
    };
    Scenario { file, models: vec![model.clone()], policies: vec![policy.clone()] }
}

impl Backtest {
    /// The report a person reads.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let days = self.to.duration_since(self.from).as_secs_f64() / 86_400.0;
        let _ = writeln!(out, "Backtest of RetrainPolicy {} (Model {})", self.policy, self.model);
        let _ = writeln!(out, "period: {} .. {} ({days:.1} days)", self.from, self.to);
        if let Some(source) = &self.source {
            let _ = writeln!(out, "readings: {source}");
        }
        let held = self.fired.iter().filter(|f| f.held_back.is_some()).count();
        let _ = writeln!(
            out,
            "\nIt would have fired {} times: {} trainings ({:.1} a month), {} of them served; {} held back by hygiene.",
            self.fired.len(),
            self.trainings,
            self.trainings as f64 * 30.0 / days.max(1e-9),
            self.served,
            held
        );
        if !self.fired.is_empty() {
            let _ = writeln!(out, "\n{:<17} {:<20} {:<8} what happened", "time", "trigger", "version");
            for run in runs(&self.fired) {
                let (first, last) = (&run[0], &run[run.len() - 1]);
                let version = first.version.map_or("-".to_string(), |v| format!("v{v}"));
                let what = match (&first.held_back, &first.outcome) {
                    (Some(why), _) if run.len() > 1 => {
                        format!("held back {} times until {}: {why}", run.len(), short(last.time))
                    }
                    (Some(why), _) => format!("held back: {why}"),
                    (None, Some(outcome)) => outcome.clone(),
                    (None, None) => "training".to_string(),
                };
                let _ = writeln!(out, "{:<17} {:<20} {:<8} {what}", short(first.time), first.trigger, version);
                if !last.evidence.is_empty() {
                    let _ = writeln!(out, "{:<47}because {}", "", last.evidence);
                }
            }
        }
        let line = |name: &str, c: &CheckCounts| {
            format!(
                "{name}: {} checks, {} without a verdict, {} out of bounds ({:.1}%)",
                c.checks,
                c.no_verdict,
                c.out_of_bounds,
                100.0 * c.out_of_bounds as f64 / c.checks.max(1) as f64
            )
        };
        let _ = writeln!(out);
        if let Some(method) = &self.drift_method {
            let _ = writeln!(out, "{}", line(&format!("drift ({method})"), &self.drift));
        }
        if self.quality.checks > 0 {
            let _ = writeln!(out, "{}", line("quality", &self.quality));
        }
        let _ = writeln!(out, "\nassumed:");
        for a in &self.assumptions {
            let _ = writeln!(out, "- {a}");
        }
        out
    }
}

/// The firings with each run of firings held back for the same reason made one.
fn runs(fired: &[Fired]) -> Vec<&[Fired]> {
    fired
        .chunk_by(|a, b| {
            let held = |f: &Fired| f.held_back.as_deref().map(|w| w.split(" until ").next().unwrap_or(w).to_string());
            a.held_back.is_some() && held(a) == held(b) && a.trigger == b.trigger
        })
        .collect()
}

/// A time to the minute, in UTC.
fn short(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}
