//! Analysis on live metrics: which queries are due, what a measurement says, and whether a
//! rollout step may end, must wait, is paused, or has failed. The shell runs the queries this
//! module asks for and hands their answers back in [`Readings::analysis`]; both sides compute
//! what is due from the same observed state, so they always agree.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

pub use super::reading::{AnalysisAnswers, AnalysisQuery, Shape};
use super::reading::{QueryVars, ReadingError, ReadingReason};
use crate::api::{
    AnalysisMetric, AnalysisSpec, AnalysisStage, AnalysisStatus, AnalysisVerdict, DistributionComparison, Goal,
    Measurement, Model, NoDataPolicy, Promotion, VersionPhase,
};
use crate::stats::Histogram;

use super::ledger::{Decision, Ledger};
use super::plan::EventKind;
use super::transitions::{Action, Reason};
use super::triggers::{Readings, after, interval_span, span};

/// How many measurements a version keeps (oldest dropped first; the latest tick is kept whole).
pub const MEASUREMENTS_MAX: usize = 30;

/// The annotation that promotes a version waiting at a manual gate.
pub const PROMOTE_ANNOTATION: &str = "modelcycle.io/promote";
/// The annotation that aborts a version's rollout.
pub const ABORT_ANNOTATION: &str = "modelcycle.io/abort";

/// Default time between measurements.
pub const DEFAULT_INTERVAL: SignedDuration = SignedDuration::from_secs(60);
/// The shortest interval between measurements (the admission minimum of `analysis.interval`).
pub const MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(10);

/// Samples a distribution metric needs on each side by default.
pub const DEFAULT_MIN_SAMPLES: u64 = 100;

/// The time between measurements.
pub fn interval(spec: &AnalysisSpec) -> SignedDuration {
    interval_span(spec.interval.as_ref(), DEFAULT_INTERVAL, MIN_INTERVAL)
}

/// When the next measurement of `status` is due.
fn next_due(spec: &AnalysisSpec, status: &AnalysisStatus) -> Timestamp {
    let first = after(status.started.0, span(spec.initial_delay.as_ref(), SignedDuration::ZERO));
    status.last_measured.as_ref().map_or(first, |t| after(t.0, interval(spec)).max(first))
}

/// The end of a guard window.
fn guard_end(spec: &AnalysisSpec, status: &AnalysisStatus) -> Timestamp {
    after(status.started.0, span(spec.guard.as_ref(), SignedDuration::ZERO))
}

/// The versions under analysis: rolling out with a Rollout stage, or serving inside a guard window.
fn subjects<'l>(ledger: &'l Ledger) -> impl Iterator<Item = (u32, &'l AnalysisStatus)> {
    ledger.entries.iter().filter_map(|e| {
        let a = e.status.analysis.as_ref()?;
        let live = matches!(
            (a.stage, e.phase()),
            (AnalysisStage::Rollout, VersionPhase::RollingOut) | (AnalysisStage::Guard, VersionPhase::Serving)
        );
        live.then_some((e.number(), a))
    })
}

/// The queries of one measurement of version `n`: each metric for `n`, and for `maxRegression`
/// during the rollout the same query for the baseline. Paired with the metric and whether it is
/// the baseline's.
fn queries_of(
    model: &Model,
    spec: &AnalysisSpec,
    n: u32,
    status: &AnalysisStatus,
) -> Vec<(usize, bool, AnalysisQuery)> {
    let name = model.name_any();
    let namespace = model.namespace().unwrap_or_default();
    let stable = status.baseline.map(|b| b.to_string()).unwrap_or_default();
    let render = |m: &AnalysisMetric, version: u32| {
        let vars = QueryVars {
            model: name.clone(),
            namespace: namespace.clone(),
            version: version.to_string(),
            stable_version: stable.clone(),
            window: None,
        };
        let shape = if m.distribution.is_some() { Shape::Histogram } else { Shape::Number };
        AnalysisQuery { metric: m.name.clone(), version, query: vars.render(&m.query), shape }
    };
    let mut out = vec![];
    for (i, m) in spec.metrics.iter().enumerate() {
        let compared = status.baseline.filter(|_| status.stage == AnalysisStage::Rollout);
        if m.distribution.is_some() && compared.is_none() {
            continue; // a distribution needs the stable version's beside it
        }
        out.push((i, false, render(m, n)));
        if let (Some(b), true) = (compared, m.max_regression.is_some() || m.distribution.is_some()) {
            out.push((i, true, render(m, b)));
        }
    }
    out
}

/// The analysis queries due at `now`, for the shell to run before asking for a plan.
pub fn due_queries(model: &Model, ledger: &Ledger, now: Timestamp) -> Vec<AnalysisQuery> {
    let Some(spec) = &model.spec.serving.analysis else { return vec![] };
    let mut out: Vec<AnalysisQuery> = vec![];
    for (n, status) in subjects(ledger) {
        if is_due(spec, status, now) {
            for (_, _, q) in queries_of(model, spec, n, status) {
                if !out.contains(&q) {
                    out.push(q);
                }
            }
        }
    }
    out
}

/// The analysis status without its measurements: all that deciding the next one needs, and
/// cheap to hold beside the ledger (the measurements are most of a version's status).
fn without_measurements(a: &AnalysisStatus) -> AnalysisStatus {
    AnalysisStatus {
        stage: a.stage,
        started: a.started.clone(),
        baseline: a.baseline,
        failures: a.failures,
        last_measured: a.last_measured.clone(),
        last_verdict: a.last_verdict,
        measurements: vec![],
    }
}

fn is_due(spec: &AnalysisSpec, status: &AnalysisStatus, now: Timestamp) -> bool {
    let due = next_due(spec, status);
    due <= now && (status.stage != AnalysisStage::Guard || due < guard_end(spec, status))
}

/// Takes the measurement of version `n` if one is due and its answers are in `readings`:
/// records it in the version's analysis status and returns its verdict.
fn measure(ledger: &mut Ledger, model: &Model, n: u32, readings: &Readings) -> Option<AnalysisVerdict> {
    let spec = model.spec.serving.analysis.as_ref()?;
    let now = ledger.now();
    let status = without_measurements(ledger.get(n)?.status.analysis.as_ref()?);
    if !is_due(spec, &status, now) {
        return None;
    }
    let queries = queries_of(model, spec, n, &status);
    if !queries.iter().all(|(_, _, q)| readings.analysis.answered(q)) {
        return None; // not taken by the shell: measure on the next reconcile
    }
    let query_of = |metric: usize, baseline: bool| {
        queries.iter().find(|(i, b, _)| *i == metric && *b == baseline).map(|(_, _, q)| q.query.as_str())
    };
    let answer =
        |metric: usize, baseline: bool| query_of(metric, baseline).and_then(|q| readings.analysis.numbers.get(q));
    let histogram =
        |metric: usize, baseline: bool| query_of(metric, baseline).and_then(|q| readings.analysis.histograms.get(q));
    let mut taken = vec![];
    for (i, m) in spec.metrics.iter().enumerate() {
        let query = query_of(i, false).unwrap_or_default().to_string();
        let record = |bound: &str, value: Option<f64>, threshold: Option<f64>, verdict, why: Option<(&str, String)>| {
            Measurement {
                time: Time(now),
                metric: m.name.clone(),
                query: query.clone(),
                bound: bound.into(),
                value,
                threshold,
                verdict,
                reason: why.as_ref().map(|w| w.0.to_string()),
                message: why.map(|w| w.1),
            }
        };
        if let Some(d) = &m.distribution {
            let (Some(new), Some(old), Some(max)) = (histogram(i, false), histogram(i, true), m.max) else { continue };
            let Some(baseline) = status.baseline else { continue };
            let compared = compare_distributions(d, (n, new), (baseline, old), spec.on_no_data);
            taken.push(match compared {
                Ok(v) => {
                    let verdict = if v <= max { AnalysisVerdict::Pass } else { AnalysisVerdict::Fail };
                    record("max", Some(v), Some(max), verdict, None)
                }
                Err((verdict, why)) => record("max", None, Some(max), verdict, Some(why)),
            });
            continue;
        }
        let Some(value) = answer(i, false) else { continue };
        let bounds = [("min", m.min), ("max", m.max), ("maxRegression", m.max_regression)];
        for (bound, limit) in bounds.into_iter().filter_map(|(b, l)| l.map(|l| (b, l))) {
            let v = match value {
                Ok(v) => *v,
                Err(e) => {
                    let (verdict, why) = failure(e, spec.on_no_data);
                    taken.push(record(bound, None, None, verdict, Some(why)));
                    continue;
                }
            };
            let threshold = match bound {
                "maxRegression" => match (status.stage, answer(i, true)) {
                    (AnalysisStage::Rollout, Some(Ok(stable))) => Some(regression_threshold(*stable, limit, m.goal)),
                    (AnalysisStage::Rollout, Some(Err(e))) => {
                        let (verdict, (reason, message)) = failure(e, spec.on_no_data);
                        let message = format!("the stable version's value: {message}");
                        taken.push(record(bound, Some(v), None, verdict, Some((reason, message))));
                        continue;
                    }
                    _ => {
                        let why = ("NoStableTraffic", "no stable version takes traffic to compare with".to_string());
                        taken.push(record(bound, Some(v), None, AnalysisVerdict::Pass, Some(why)));
                        continue;
                    }
                },
                _ => Some(limit),
            };
            let holds = match (bound, m.goal) {
                ("min", _) | ("maxRegression", Goal::Maximize) => threshold.is_none_or(|t| v >= t),
                _ => threshold.is_none_or(|t| v <= t),
            };
            let verdict = if holds { AnalysisVerdict::Pass } else { AnalysisVerdict::Fail };
            taken.push(record(bound, Some(v), threshold, verdict, None));
        }
    }
    let verdict = if taken.iter().any(|m| m.verdict == AnalysisVerdict::Fail) {
        AnalysisVerdict::Fail
    } else if taken.iter().any(|m| m.verdict == AnalysisVerdict::Inconclusive) {
        AnalysisVerdict::Inconclusive
    } else {
        AnalysisVerdict::Pass
    };
    let previous = status.last_verdict;
    let entry = ledger.get_mut(n)?;
    let a = entry.status_mut().analysis.as_mut()?;
    a.last_measured = Some(Time(now));
    a.last_verdict = Some(verdict);
    a.failures += u32::from(verdict == AnalysisVerdict::Fail);
    let failures = a.failures;
    a.measurements.extend(taken.iter().cloned());
    // Bounded, but the latest measurement is always kept whole (16 metrics may take 48 entries).
    let overflow = a.measurements.len().saturating_sub(MEASUREMENTS_MAX.max(taken.len()));
    a.measurements.drain(..overflow);
    let not_holding: Vec<&Measurement> = taken.iter().filter(|m| m.verdict != AnalysisVerdict::Pass).collect();
    let evidence = serde_json::to_value(&not_holding).ok();
    match verdict {
        AnalysisVerdict::Fail => {
            let d = Decision {
                action: Action::Analyse,
                reason: Reason::AnalysisFailed,
                message: format!(
                    "failed measurement {failures} (failureLimit {}): {}",
                    spec.failure_limit,
                    describe(&not_holding)
                ),
                evidence,
            };
            ledger.push_decision_as(n, d, EventKind::Warning);
        }
        AnalysisVerdict::Inconclusive if previous != Some(AnalysisVerdict::Inconclusive) => {
            let d = Decision {
                action: Action::Analyse,
                reason: Reason::AnalysisInconclusive,
                message: format!("inconclusive, neither promoting nor rolling back: {}", describe(&not_holding)),
                evidence,
            };
            ledger.push_decision_as(n, d, EventKind::Warning);
        }
        AnalysisVerdict::Pass if previous == Some(AnalysisVerdict::Inconclusive) => {
            let d = Decision {
                action: Action::Analyse,
                reason: Reason::AnalysisResumed,
                message: "every metric holds again; the rollout goes on".into(),
                evidence: None,
            };
            ledger.push_decision(n, d);
        }
        _ => {}
    }
    Some(verdict)
}

/// Whether a measurement's recorded reason is one that only a change of the object (or of the
/// controller's settings) can clear: the rollout then stalls instead of waiting.
fn needs_a_fix(reason: &str) -> bool {
    ReadingReason::parse(reason).is_some_and(ReadingReason::needs_a_fix)
}

/// The verdict and reason of a query that gave no value.
fn failure(error: &ReadingError, on_no_data: NoDataPolicy) -> (AnalysisVerdict, (&'static str, String)) {
    let reason = error.reason();
    let verdict = match (error, on_no_data) {
        (ReadingError::NoData, NoDataPolicy::Fail) => AnalysisVerdict::Fail,
        _ => AnalysisVerdict::Inconclusive,
    };
    (verdict, (reason.as_str(), error.to_string()))
}

/// How far version `new`'s histogram is from the stable version's (`old`'s, the reference), or
/// why there is no value: a reading that failed, too few samples on a side, or two bucket
/// layouts that cannot be compared (a person must look: neither promoted nor rolled back).
fn compare_distributions(
    d: &DistributionComparison,
    (n, new): (u32, &Result<Histogram, ReadingError>),
    (baseline, old): (u32, &Result<Histogram, ReadingError>),
    on_no_data: NoDataPolicy,
) -> Result<f64, (AnalysisVerdict, (&'static str, String))> {
    let new = new.as_ref().map_err(|e| failure(e, on_no_data))?;
    let old = old.as_ref().map_err(|e| {
        let (verdict, (reason, message)) = failure(e, on_no_data);
        (verdict, (reason, format!("the stable version's distribution: {message}")))
    })?;
    let min = d.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES) as f64;
    if new.total() < min || old.total() < min {
        let verdict = match on_no_data {
            NoDataPolicy::Fail => AnalysisVerdict::Fail,
            NoDataPolicy::Inconclusive => AnalysisVerdict::Inconclusive,
        };
        let message = format!(
            "v{n} has {} samples, v{baseline} {}, fewer than minSamples {min} on a side",
            new.total(),
            old.total()
        );
        return Err((verdict, ("TooFewSamples", message)));
    }
    d.method.compare(old, new).map_err(|e| {
        let message = format!("v{n}'s and v{baseline}'s distributions cannot be compared: {e}");
        (AnalysisVerdict::Inconclusive, ("DistributionsNotComparable", message))
    })
}

/// The worst value allowed when the stable version measures `stable`.
pub fn regression_threshold(stable: f64, max_regression: f64, goal: Goal) -> f64 {
    match goal {
        Goal::Maximize => stable - stable.abs() * max_regression,
        Goal::Minimize => stable + stable.abs() * max_regression,
    }
}

/// `v` with four significant digits, trailing zeros dropped (a computed threshold such as
/// `0.24000000000000002` reads `0.24`).
pub fn short(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return v.to_string();
    }
    let decimals = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

/// One line about measurements that did not hold.
fn describe(measurements: &[&Measurement]) -> String {
    let parts: Vec<String> = measurements
        .iter()
        .map(|m| match (m.value, m.threshold, &m.message) {
            (_, _, Some(message)) => format!("{} ({}): {message}", m.metric, m.bound),
            (Some(v), Some(t), None) => format!("{} = {} against {} {}", m.metric, short(v), m.bound, short(t)),
            _ => format!("{} ({})", m.metric, m.bound),
        })
        .collect();
    parts.join("; ")
}

/// What a rollout step may do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// Every check of the step holds: move on.
    Open,
    /// Not yet: wake up at this time (if any) to check again.
    Wait(Option<Timestamp>),
    /// Paused until a person or the metrics say more: (condition reason, message), and when to
    /// measure again.
    Paused(&'static str, String, Option<Timestamp>),
    /// Analysis failed more than `failureLimit` times: roll back with this evidence.
    Failed(String, serde_json::Value),
}

/// A rollout step of version `n` replacing `baseline`, running since `since`.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The version rolling out.
    pub n: u32,
    /// The version it replaces.
    pub baseline: u32,
    /// When the step's pods became available.
    pub since: Timestamp,
    /// How long the step holds; none given: one analysis interval with analysis, else none.
    pub hold: Option<SignedDuration>,
    /// The step ends only through a manual gate.
    pub manual: bool,
}

/// The gate of a rollout step: a measurement if one is due, the step's hold time, and a
/// manual gate.
pub fn step_gate(ledger: &mut Ledger, model: &Model, readings: &Readings, step: Step) -> Gate {
    let Step { n, baseline, since, hold, manual } = step;
    let now = ledger.now();
    let spec = model.spec.serving.analysis.as_ref();
    let hold = hold.unwrap_or_else(|| spec.map_or(SignedDuration::ZERO, interval));
    let mut wake = [after(since, hold)].into_iter().filter(|t| *t > now).min();
    if let Some(spec) = spec {
        let fresh = |a: &AnalysisStatus| a.stage == AnalysisStage::Rollout;
        if !ledger.get(n).and_then(|e| e.status.analysis.as_ref()).is_some_and(fresh) {
            set_analysis(ledger, n, AnalysisStage::Rollout, baseline, since);
        }
        measure(ledger, model, n, readings);
        let new_step = ledger.get(n).and_then(|e| e.status.analysis.as_ref()).is_some_and(|a| a.started.0 < since);
        if new_step && let Some(a) = ledger.get_mut(n).and_then(|e| e.status_mut().analysis.as_mut()) {
            a.started = Time(since); // a new step: initialDelay counts again
        }
        let Some(a) = ledger.get(n).and_then(|e| e.status.analysis.as_ref()) else {
            return Gate::Wait(wake); // the version left the ledger: nothing to judge
        };
        let next = next_due(spec, a).max(now);
        wake = wake.into_iter().chain([next]).min();
        if let Some((message, evidence)) = failed_beyond_limit(spec, a) {
            return Gate::Failed(message, evidence);
        }
        if a.last_verdict == Some(AnalysisVerdict::Inconclusive) {
            let last: Vec<&Measurement> = a
                .measurements
                .iter()
                .filter(|m| Some(&m.time) == a.last_measured.as_ref() && m.verdict == AnalysisVerdict::Inconclusive)
                .collect();
            let refused = last.iter().any(|m| m.reason.as_deref().is_some_and(needs_a_fix));
            let reason = if refused { "AnalysisQueryFailed" } else { "AnalysisInconclusive" };
            let message = format!(
                "analysis of v{n} is inconclusive, so the rollout is paused (neither promoted nor rolled back): {}",
                describe(&last)
            );
            return Gate::Paused(reason, message, Some(next));
        }
        let passed_in_step =
            a.last_verdict == Some(AnalysisVerdict::Pass) && a.last_measured.as_ref().is_some_and(|t| t.0 >= since);
        if !passed_in_step || after(since, hold) > now {
            return Gate::Wait(wake);
        }
    } else if wake.is_some() {
        return Gate::Wait(wake);
    }
    if manual {
        return manual_gate(model, n);
    }
    Gate::Open
}

/// A manual gate of version `n`: open when the Model carries `modelcycle.io/promote: "<n>"`.
pub fn manual_gate(model: &Model, n: u32) -> Gate {
    match model.annotations().get(PROMOTE_ANNOTATION).map(|v| v.trim()) {
        Some(v) if v == n.to_string() => Gate::Open,
        Some(other) => Gate::Paused(
            "StalePromotion",
            format!(
                "v{n} waits for promotion; the annotation {PROMOTE_ANNOTATION}: {other:?} names another version and is ignored. Set it to \"{n}\" to promote v{n}"
            ),
            None,
        ),
        None => Gate::Paused(
            "WaitingForPromotion",
            format!(
                "v{n} waits for promotion: annotate the Model with {PROMOTE_ANNOTATION}=\"{n}\" to promote it, or {ABORT_ANNOTATION}=\"{n}\" to abort"
            ),
            None,
        ),
    }
}

/// True when the Model carries `modelcycle.io/abort: "<n>"`.
pub fn abort_requested(model: &Model, n: u32) -> bool {
    model.annotations().get(ABORT_ANNOTATION).is_some_and(|v| v.trim() == n.to_string())
}

/// True when promotion is manual.
pub fn is_manual(model: &Model) -> bool {
    model.spec.serving.promotion == Promotion::Manual
}

fn set_analysis(ledger: &mut Ledger, n: u32, stage: AnalysisStage, baseline: u32, since: Timestamp) {
    if let Some(e) = ledger.get_mut(n) {
        let measurements = e.status_mut().analysis.take().map(|a| a.measurements).unwrap_or_default();
        e.status_mut().analysis =
            Some(AnalysisStatus { measurements, ..AnalysisStatus::starting(stage, Time(since), Some(baseline)) });
    }
}

/// Starts the guard window of `n`, just promoted over `previous`, if the Model has one.
pub fn start_guard(ledger: &mut Ledger, model: &Model, n: u32, previous: u32) {
    let guarded = model.spec.serving.analysis.as_ref().is_some_and(|a| a.guard.is_some());
    if guarded {
        let now = ledger.now();
        set_analysis(ledger, n, AnalysisStage::Guard, previous, now);
    } else if let Some(a) = ledger.get_mut(n).and_then(|e| e.status_mut().analysis.as_mut()) {
        a.stage = AnalysisStage::Passed;
    }
}

/// Ends the guard window of the serving version `n` early: version `by` is rolling out to
/// replace it, and a rollback of `n` would now undo that rollout too.
pub fn end_guard(ledger: &mut Ledger, n: u32, by: u32) {
    let Some(a) = ledger.get(n).and_then(|e| e.status.analysis.as_ref()) else { return };
    if a.stage == AnalysisStage::Guard {
        let message =
            format!("guard window ended early after {} failed measurements: v{by} is rolling out", a.failures);
        close_guard(ledger, n, Reason::GuardEnded, message);
    }
}

/// Marks the guard window of `n` over, with a decision record saying why.
fn close_guard(ledger: &mut Ledger, n: u32, reason: Reason, message: String) {
    if let Some(a) = ledger.get_mut(n).and_then(|e| e.status_mut().analysis.as_mut()) {
        a.stage = AnalysisStage::Passed;
    }
    ledger.push_decision(n, Decision { action: Action::Analyse, reason, message, evidence: None });
}

/// When more measurements failed than `failureLimit` allows: what to say (with the latest
/// failing values) and the failed measurements as evidence.
fn failed_beyond_limit(spec: &AnalysisSpec, a: &AnalysisStatus) -> Option<(String, serde_json::Value)> {
    if a.failures <= u32::try_from(spec.failure_limit).unwrap_or(0) {
        return None;
    }
    let failed: Vec<&Measurement> = a.measurements.iter().filter(|m| m.verdict == AnalysisVerdict::Fail).collect();
    let latest: Vec<&Measurement> = failed.iter().rev().take(spec.metrics.len()).rev().copied().collect();
    let message = format!(
        "analysis failed {} (failureLimit {}): {}",
        if a.failures == 1 { "once".to_string() } else { format!("{} times", a.failures) },
        spec.failure_limit,
        describe(&latest)
    );
    Some((message, serde_json::to_value(&failed).unwrap_or_default()))
}

/// What the guard window of the serving version decided.
pub enum Guard {
    /// Nothing to do, or wake up at this time.
    Watching(Option<Timestamp>),
    /// The serving version failed its guard: roll back to this version, with this message and evidence.
    RollBack(u32, String, serde_json::Value),
}

/// Measures the serving version `n` inside its guard window and says whether to roll back.
pub fn guard(ledger: &mut Ledger, model: &Model, readings: &Readings, n: u32) -> Guard {
    let Some(spec) = model.spec.serving.analysis.as_ref() else { return Guard::Watching(None) };
    let now = ledger.now();
    let active = |a: &AnalysisStatus| a.stage == AnalysisStage::Guard;
    if !ledger.get(n).and_then(|e| e.status.analysis.as_ref()).is_some_and(active) {
        return Guard::Watching(None);
    }
    measure(ledger, model, n, readings);
    let Some(a) = ledger.get(n).and_then(|e| e.status.analysis.as_ref()) else { return Guard::Watching(None) };
    let baseline = a.baseline.filter(|b| ledger.get(*b).is_some());
    if let Some(b) = baseline
        && let Some((message, evidence)) = failed_beyond_limit(spec, a)
    {
        return Guard::RollBack(b, format!("failed its guard window: {message}"), evidence);
    }
    let end = guard_end(spec, a);
    if now >= end {
        let message = format!("held through its guard window ({} failed measurements)", a.failures);
        close_guard(ledger, n, Reason::GuardPassed, message);
        return Guard::Watching(None);
    }
    Guard::Watching(Some(next_due(spec, a).max(now).min(end)))
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
