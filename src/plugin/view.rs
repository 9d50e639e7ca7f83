//! What `kubectl modelcycle` shows, built from the objects alone: the tree of a Model and its
//! versions, the table of Models, a Model's history and the difference between two versions.
//! Pure: the caller reads the objects and passes the time, so every rendering is testable.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{AnalysisVerdict, GateResult, Model, ModelVersion, Verdict, VersionPhase};
use crate::lifecycle::analysis::short as number;

/// How text is decorated: ANSI colours only when the output is a terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Colour the phases and verdicts.
    pub colour: bool,
}

#[derive(Clone, Copy)]
enum Tone {
    Good,
    Busy,
    Bad,
    Dim,
    Plain,
}

impl Style {
    fn paint(self, tone: Tone, text: &str) -> String {
        let code = match tone {
            Tone::Good => "32",
            Tone::Busy => "33",
            Tone::Bad => "31",
            Tone::Dim => "2",
            Tone::Plain => return text.to_string(),
        };
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}

fn phase_tone(phase: Option<VersionPhase>) -> Tone {
    match phase {
        Some(VersionPhase::Serving) => Tone::Good,
        Some(VersionPhase::Rejected | VersionPhase::Failed | VersionPhase::RolledBack) => Tone::Bad,
        Some(VersionPhase::Retired) => Tone::Dim,
        Some(_) => Tone::Busy,
        None => Tone::Plain,
    }
}

fn phase_of(version: &ModelVersion) -> Option<VersionPhase> {
    version.status.as_ref().and_then(|s| s.phase)
}

fn phase_text(phase: Option<VersionPhase>) -> String {
    phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "-".into())
}

/// "3m", "2h", "5d": the age of `then` at `now`, as kubectl prints ages.
pub fn age(then: Option<&Time>, now: Timestamp) -> String {
    let Some(then) = then else { return "-".into() };
    let seconds = now.as_second().saturating_sub(then.0.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn metrics_text(metrics: &BTreeMap<String, f64>) -> String {
    metrics.iter().map(|(k, v)| format!("{k}={}", number(*v))).collect::<Vec<_>>().join(" ")
}

fn gate_text(gate: &GateResult, style: Style) -> String {
    let (tone, word) = match gate.verdict {
        Verdict::Pass => (Tone::Good, "Pass"),
        Verdict::Fail => (Tone::Bad, "Fail"),
        Verdict::Skipped => (Tone::Dim, "Skipped"),
    };
    let mut text = format!("{} {}", gate.metric, gate.bound);
    if let Some(threshold) = gate.threshold {
        let _ = write!(text, " {}", number(threshold));
    }
    let _ = write!(text, ": {}", style.paint(tone, word));
    if let Some(value) = gate.value {
        let _ = write!(text, " ({})", number(value));
    }
    if let Some(reason) = &gate.reason {
        let _ = write!(text, " {reason}");
    }
    text
}

fn condition_text(c: &Condition, style: Style) -> String {
    let tone = match (c.type_.as_str(), c.status.as_str()) {
        ("Ready", "True") => Tone::Good,
        ("Stalled" | "Degraded", "True") => Tone::Bad,
        (_, "True") => Tone::Busy,
        _ => Tone::Dim,
    };
    let mut text = style.paint(tone, &format!("{}={}", c.type_, c.status));
    if !c.reason.is_empty() {
        let _ = write!(text, " {}", c.reason);
    }
    text
}

/// The rollout of `version` in words: canary step and weight, blue-green preview and switch,
/// KServe revision; `None` when it has none.
pub fn rollout_text(model: &Model, version: &ModelVersion) -> Option<String> {
    let status = version.status.as_ref()?;
    if let Some(canary) = &status.canary {
        let steps = model.spec.serving.strategy.canary.as_ref().map(|c| c.steps.len()).unwrap_or(0);
        let step = (canary.step as usize + 1).min(steps.max(1));
        return Some(format!(
            "canary step {step} of {steps}, weight {}%, {} canary pod(s)",
            canary.effective_weight, canary.canary_replicas
        ));
    }
    if let Some(bg) = &status.blue_green {
        return Some(match (&bg.preview_ready, &bg.switched) {
            (_, Some(_)) => "blue-green: switched to the new version".into(),
            (Some(_), None) => "blue-green: preview ready, not switched".into(),
            (None, None) => "blue-green: preview starting".into(),
        });
    }
    if let Some(kserve) = &status.kserve {
        return Some(match &kserve.revision {
            Some(revision) => format!("KServe revision {revision}"),
            None => "KServe: waiting for its revision".into(),
        });
    }
    None
}

fn analysis_lines(version: &ModelVersion, style: Style) -> Vec<String> {
    let Some(analysis) = version.status.as_ref().and_then(|s| s.analysis.as_ref()) else { return vec![] };
    let verdict = |v: AnalysisVerdict| match v {
        AnalysisVerdict::Pass => style.paint(Tone::Good, "Pass"),
        AnalysisVerdict::Fail => style.paint(Tone::Bad, "Fail"),
        AnalysisVerdict::Inconclusive => style.paint(Tone::Busy, "Inconclusive"),
    };
    let mut head = format!("analysis  {:?}, {} failure(s)", analysis.stage, analysis.failures);
    if let Some(last) = analysis.last_verdict {
        let _ = write!(head, ", last {}", verdict(last));
    }
    if let Some(baseline) = analysis.baseline {
        let _ = write!(head, ", against v{baseline}");
    }
    let mut lines = vec![head];
    // The latest measurement of each metric.
    let mut latest: BTreeMap<&str, &crate::api::Measurement> = BTreeMap::new();
    for m in &analysis.measurements {
        latest.insert(m.metric.as_str(), m);
    }
    for m in latest.values() {
        let mut line = format!("  {} {}", m.metric, m.bound);
        if let Some(t) = m.threshold {
            let _ = write!(line, " {}", number(t));
        }
        let _ = write!(line, ": {}", verdict(m.verdict));
        if let Some(v) = m.value {
            let _ = write!(line, " ({})", number(v));
        }
        if let Some(reason) = &m.reason {
            let _ = write!(line, " {reason}");
        }
        lines.push(line);
    }
    lines
}

/// Versions newest first.
fn newest_first(versions: &[ModelVersion]) -> Vec<&ModelVersion> {
    let mut sorted: Vec<&ModelVersion> = versions.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.spec.version));
    sorted
}

/// `kubectl modelcycle get model NAME`: the Model, then each version newest first with its
/// phase, trigger, metrics, gate verdicts, rollout and analysis.
pub fn tree(model: &Model, versions: &[ModelVersion], now: Timestamp, style: Style) -> String {
    let mut out = String::new();
    let status = model.status.clone().unwrap_or_default();
    let show = |n: Option<u32>| n.map(|n| format!("v{n}")).unwrap_or_else(|| "-".into());
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "Model {}/{}  {}  serving {}  candidate {}  {}",
        model.namespace().unwrap_or_default(),
        model.name_any(),
        style.paint(Tone::Plain, &phase),
        show(status.serving_version),
        show(status.candidate_version),
        age(model.metadata.creation_timestamp.as_ref(), now),
    );
    let _ = writeln!(out, "│ strategy  {}", strategy_text(model));
    if let Some(pinned) = model.spec.pinned_version {
        let _ = writeln!(out, "│ pinned    v{pinned} (spec.pinnedVersion)");
    }
    if !status.conditions.is_empty() {
        let shown: Vec<String> = status.conditions.iter().map(|c| condition_text(c, style)).collect();
        let _ = writeln!(out, "│ {}", shown.join("  "));
        for c in &status.conditions {
            let worth = matches!((c.type_.as_str(), c.status.as_str()), ("Stalled" | "Degraded", "True"))
                || (c.type_ == "RollingOut" && c.status == "True");
            if worth && !c.message.is_empty() {
                let _ = writeln!(out, "│   {}: {}", c.type_, c.message);
            }
        }
    }
    let sorted = newest_first(versions);
    if sorted.is_empty() {
        let _ = writeln!(out, "└── no versions yet");
    }
    for (i, version) in sorted.iter().enumerate() {
        let last = i + 1 == sorted.len();
        let (branch, indent) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
        let phase = phase_of(version);
        let vstatus = version.status.clone().unwrap_or_default();
        let mark = if status.serving_version == Some(version.spec.version) { " ★" } else { "" };
        let _ = writeln!(
            out,
            "{branch}v{}{mark}  {}  trigger {}  {}",
            version.spec.version,
            style.paint(phase_tone(phase), &phase_text(phase)),
            version.spec.trigger.reason,
            age(version.metadata.creation_timestamp.as_ref().or(Some(&version.spec.trigger.time)), now),
        );
        let mut lines = vec![];
        if !vstatus.metrics.is_empty() {
            lines.push(format!("metrics   {}", metrics_text(&vstatus.metrics)));
        }
        for gate in &vstatus.gate_results {
            lines.push(format!("gate      {}", gate_text(gate, style)));
        }
        if let Some(rollout) = rollout_text(model, version) {
            lines.push(format!("rollout   {rollout}"));
        } else if phase == Some(VersionPhase::Ready) && status.candidate_version == Some(version.spec.version) {
            let waiting = status.conditions.iter().find(|c| c.type_ == "RollingOut").map(|c| c.reason.clone());
            lines.push(format!("rollout   {}", waiting.unwrap_or_else(|| "not started".into())));
        }
        lines.extend(analysis_lines(version, style));
        if let Some(message) = vstatus.message.filter(|_| phase.is_some_and(VersionPhase::is_terminal)) {
            lines.push(format!("message   {message}"));
        }
        for (j, line) in lines.iter().enumerate() {
            let twig = if j + 1 == lines.len() { "└── " } else { "├── " };
            let _ = writeln!(out, "{indent}{twig}{line}");
        }
    }
    out
}

fn strategy_text(model: &Model) -> String {
    let serving = &model.spec.serving;
    let mut text = if let Some(canary) = &serving.strategy.canary {
        let weights: Vec<String> = canary.steps.iter().map(|s| format!("{}%", s.weight)).collect();
        format!("Canary {}", weights.join(" → "))
    } else if serving.strategy.blue_green.is_some() {
        "BlueGreen".into()
    } else {
        "Rolling".into()
    };
    let _ = write!(text, ", promotion {:?}", serving.promotion);
    if serving.analysis.is_some() {
        text.push_str(", analysed on live metrics");
    }
    let _ = write!(text, ", target {:?}", serving.target);
    text
}

/// One row of `kubectl modelcycle get models`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// The namespace.
    pub namespace: String,
    /// The Model.
    pub name: String,
    /// The version that serves.
    pub serving: Option<u32>,
    /// The version on its way.
    pub candidate: Option<u32>,
    /// The Model's phase.
    pub phase: String,
    /// Where the rollout is (the RollingOut condition's reason).
    pub rollout: String,
    /// The Ready condition's status.
    pub ready: String,
    /// Its age.
    pub age: String,
}

/// The rows of `get models`, sorted by namespace and name.
pub fn model_rows(models: &[Model], now: Timestamp) -> Vec<ModelRow> {
    let mut rows: Vec<ModelRow> = models
        .iter()
        .map(|m| {
            let status = m.status.clone().unwrap_or_default();
            let condition =
                |t: &str, f: fn(&Condition) -> String| status.conditions.iter().find(|c| c.type_ == t).map(f);
            ModelRow {
                namespace: m.namespace().unwrap_or_default(),
                name: m.name_any(),
                serving: status.serving_version,
                candidate: status.candidate_version,
                phase: status.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
                rollout: condition("RollingOut", |c| c.reason.clone()).unwrap_or_default(),
                ready: condition("Ready", |c| c.status.clone()).unwrap_or_default(),
                age: age(m.metadata.creation_timestamp.as_ref(), now),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

/// The characters of `text` a terminal shows: colour codes take no room.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_code = false;
    for c in text.chars() {
        match (in_code, c) {
            (false, '\x1b') => in_code = true,
            (true, 'm') => in_code = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// Lays out `rows` under `header` in columns three spaces apart, as kubectl does.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| visible_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(visible_width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i] - visible_width(cell) + 3;
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `get models` as text; with `all_namespaces` a NAMESPACE column first.
pub fn models_table(rows: &[ModelRow], all_namespaces: bool) -> String {
    let dash = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    let mut header = vec!["NAME", "SERVING", "CANDIDATE", "PHASE", "ROLLOUT", "READY", "AGE"];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.name.clone(),
                dash(r.serving),
                dash(r.candidate),
                or_dash(&r.phase),
                or_dash(&r.rollout),
                or_dash(&r.ready),
                r.age.clone(),
            ];
            if all_namespaces {
                row.insert(0, r.namespace.clone());
            }
            row
        })
        .collect();
    columns(&header, &cells)
}

/// One entry of a Model's history: a training started or a decision about a version.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// When.
    pub time: Timestamp,
    /// The version.
    pub version: u32,
    /// What happened (`Trigger`, or a decision's action: `Serve`, `RollBack`, ...).
    pub action: String,
    /// Why, in one word.
    pub reason: String,
    /// Why, in words.
    pub message: String,
}

/// Every trigger and decision of the Model's versions, oldest first (what served when, and why).
pub fn history(versions: &[ModelVersion]) -> Vec<HistoryEntry> {
    let mut entries = vec![];
    for v in versions {
        let trigger = &v.spec.trigger;
        let evidence: Vec<String> = trigger.causes.iter().map(|c| c.evidence.clone()).collect();
        entries.push(HistoryEntry {
            time: trigger.time.0,
            version: v.spec.version,
            action: "Trigger".into(),
            reason: trigger.reason.clone(),
            message: evidence.join("; "),
        });
        for d in v.status.iter().flat_map(|s| s.decisions.iter()) {
            entries.push(HistoryEntry {
                time: d.time.0,
                version: v.spec.version,
                action: d.action.clone(),
                reason: d.reason.clone(),
                message: d.message.clone(),
            });
        }
    }
    // Stable: a version's trigger comes before its decisions at the same second.
    entries.sort_by_key(|e| (e.time, e.version));
    entries
}

/// The history as text.
pub fn history_table(entries: &[HistoryEntry], style: Style) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let tone = match e.action.as_str() {
                "Serve" | "Restore" => Tone::Good,
                "RollBack" | "Reject" | "Fail" => Tone::Bad,
                "Retire" | "Replace" => Tone::Dim,
                _ => Tone::Plain,
            };
            vec![
                e.time.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                format!("v{}", e.version),
                style.paint(tone, &e.action),
                e.reason.clone(),
                e.message.clone(),
            ]
        })
        .collect();
    columns(&["TIME", "VERSION", "ACTION", "REASON", "MESSAGE"], &rows)
}

/// One line of `diff`: a field, its value in each version, and whether they differ.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DiffRow {
    /// What is compared.
    pub field: String,
    /// Its value in the first version.
    pub a: String,
    /// Its value in the second version.
    pub b: String,
    /// Whether the two differ.
    pub differs: bool,
}

fn row(field: impl Into<String>, a: impl Into<String>, b: impl Into<String>) -> DiffRow {
    let (a, b) = (a.into(), b.into());
    DiffRow { field: field.into(), differs: a != b, a, b }
}

fn time_text(t: Option<&Time>) -> String {
    t.map(|t| t.0.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
}

fn union<'a, V>(a: &'a BTreeMap<String, V>, b: &'a BTreeMap<String, V>) -> Vec<&'a String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The lineage, training, metrics and verdicts of two versions side by side.
pub fn diff(a: &ModelVersion, b: &ModelVersion) -> Vec<DiffRow> {
    let (sa, sb) = (a.status.clone().unwrap_or_default(), b.status.clone().unwrap_or_default());
    let dataset = |v: &ModelVersion| v.spec.dataset().cloned().map_or(("-".into(), "-".into()), |d| (d.uri, d.version));
    let ((ua, va), (ub, vb)) = (dataset(a), dataset(b));
    let (pa, pb) = (a.spec.parameters(), b.spec.parameters());
    let causes =
        |v: &ModelVersion| v.spec.trigger.causes.iter().map(|c| c.evidence.clone()).collect::<Vec<_>>().join("; ");
    let read = |s: &crate::api::ModelVersionStatus| {
        s.dataset_read
            .as_ref()
            .map(|d| match d.rows {
                Some(rows) => format!("{} ({rows} rows)", d.digest),
                None => d.digest.clone(),
            })
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = vec![
        row("phase", phase_text(sa.phase), phase_text(sb.phase)),
        row("trigger", &a.spec.trigger.reason, &b.spec.trigger.reason),
        row("trigger evidence", causes(a), causes(b)),
        row("triggered at", time_text(Some(&a.spec.trigger.time)), time_text(Some(&b.spec.trigger.time))),
        row("origin", a.spec.origin(), b.spec.origin()),
        row("dataset uri", ua, ub),
        row("dataset version", va, vb),
        row("dataset read", read(&sa), read(&sb)),
        row("trainer images", a.spec.trainer_images.join(", "), b.spec.trainer_images.join(", ")),
        row("artifact", &a.spec.artifact_uri, &b.spec.artifact_uri),
        row("inputs hash", &a.spec.inputs_hash, &b.spec.inputs_hash),
    ];
    for key in union(pa, pb) {
        let get = |p: &BTreeMap<String, String>| p.get(key).cloned().unwrap_or_else(|| "-".into());
        rows.push(row(format!("parameter {key}"), get(pa), get(pb)));
    }
    rows.push(row("training started", time_text(sa.started_at.as_ref()), time_text(sb.started_at.as_ref())));
    rows.push(row("training finished", time_text(sa.finished_at.as_ref()), time_text(sb.finished_at.as_ref())));
    for key in union(&sa.metrics, &sb.metrics) {
        let get = |m: &BTreeMap<String, f64>| m.get(key).map(|v| number(*v)).unwrap_or_else(|| "-".into());
        rows.push(row(format!("metric {key}"), get(&sa.metrics), get(&sb.metrics)));
    }
    let gates = |s: &crate::api::ModelVersionStatus| -> BTreeMap<String, String> {
        s.gate_results.iter().map(|g| (format!("{} {}", g.metric, g.bound), gate_text(g, Style::default()))).collect()
    };
    let (ga, gb) = (gates(&sa), gates(&sb));
    for key in union(&ga, &gb) {
        let get = |g: &BTreeMap<String, String>| g.get(key).cloned().unwrap_or_else(|| "-".into());
        rows.push(row(format!("gate {key}"), get(&ga), get(&gb)));
    }
    let verdict = |s: &crate::api::ModelVersionStatus| {
        s.analysis.as_ref().and_then(|a| a.last_verdict).map(|v| format!("{v:?}")).unwrap_or_else(|| "-".into())
    };
    rows.push(row("analysis", verdict(&sa), verdict(&sb)));
    let last = |s: &crate::api::ModelVersionStatus| {
        s.decisions.last().map(|d| format!("{} {}", d.action, d.reason)).unwrap_or_else(|| "-".into())
    };
    rows.push(row("last decision", last(&sa), last(&sb)));
    rows
}

/// The diff as text: one row per field, `*` where the versions differ.
pub fn diff_table(rows: &[DiffRow], a: u32, b: u32, style: Style) -> String {
    let (ha, hb) = (format!("v{a}"), format!("v{b}"));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| vec![if r.differs { "*".into() } else { " ".into() }, r.field.clone(), r.a.clone(), r.b.clone()])
        .collect();
    let text = columns(&["", "FIELD", &ha, &hb], &cells);
    if !style.colour {
        return text;
    }
    text.lines()
        .map(|line| if line.starts_with('*') { style.paint(Tone::Busy, line) } else { line.to_string() })
        .map(|line| line + "\n")
        .collect()
}
