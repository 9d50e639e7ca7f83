//! When to retrain: the triggers of a RetrainPolicy (schedule, manual request, data change,
//! drift, live performance), the hygiene that holds them back (suspend, concurrency, cooldown,
//! a daily budget), and the policy's status. Live readings are handed in by the shell.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::reading::{QueryVars, ReadingError};
use crate::api::{
    CheckStatus, ConcurrencyPolicy, Firing, Model, RetrainPolicy, RetrainPolicyStatus, TriggerCause, TriggerRecord,
};
use crate::stats::{self, Histogram};

use super::ledger::Ledger;
use super::plan::{EventKind, EventRecord};
use super::validate::Problem;

/// Annotation whose new value requests one retrain (on the Model or its RetrainPolicy).
pub const RETRAIN_REQUEST: &str = "modelcycle.io/retrain-request";
/// How many firings a policy's status keeps.
pub const FIRINGS_KEPT: usize = 10;
const DEFAULT_CHECK_INTERVAL: SignedDuration = SignedDuration::from_mins(5);
/// The shortest drift or performance check interval (the admission minimum).
const MIN_CHECK_INTERVAL: SignedDuration = SignedDuration::from_secs(30);
const DEFAULT_REFERENCE_WINDOW: SignedDuration = SignedDuration::from_hours(1);
const DEFAULT_STARTING_DEADLINE: SignedDuration = SignedDuration::from_hours(1);
/// The cooldown of a policy that sets none, for what fires by itself (schedule, drift,
/// performance): none of them retrains more than once an hour unless the policy says `cooldown: 0s`.
pub const DEFAULT_COOLDOWN: SignedDuration = SignedDuration::from_hours(1);
const DEFAULT_MIN_SAMPLES: u64 = 100;
const DEFAULT_FEATURE: &str = "predictions";

/// The longest length the core reckons with: admission bounds every duration far below it, and
/// holding older or unchecked objects to it keeps every `Timestamp` sum in range.
pub const LONGEST_SPAN: SignedDuration = SignedDuration::from_hours(24 * 366 * 10);

/// A length from the API as a signed duration, at most [`LONGEST_SPAN`].
pub fn span(d: Option<&crate::api::Duration>, default: SignedDuration) -> SignedDuration {
    d.map_or(default, |d| d.as_signed()).min(LONGEST_SPAN)
}

/// A check interval from the API, held between `floor` (the admission minimum, for objects
/// stored before it existed: a zero interval would wake the controller at once, forever) and
/// [`LONGEST_SPAN`].
pub fn interval_span(
    d: Option<&crate::api::Duration>,
    default: SignedDuration,
    floor: SignedDuration,
) -> SignedDuration {
    span(d, default).max(floor)
}

/// `t + d`, held at the last instant a timestamp can name instead of panicking on overflow
/// (timestamps come from the cluster, where anybody allowed to write status can set them).
pub fn after(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// `t - d`, held at the first instant a timestamp can name.
pub fn before(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_sub(d).unwrap_or(Timestamp::MIN)
}

/// Live readings the shell took for the checks that were due; `Err` carries the reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    /// The live histogram of the drift query over its window.
    pub drift: Option<Result<Histogram, ReadingError>>,
    /// The live histogram over the reference window, to keep as the serving version's reference.
    pub reference: Option<Result<Histogram, ReadingError>>,
    /// The value of the performance query.
    pub performance: Option<Result<f64, ReadingError>>,
    /// Answers to the rollout analysis queries that were due.
    pub analysis: super::reading::AnalysisAnswers,
    /// The outcome of publishing to the Model's registry, when it was due.
    pub registry: Option<super::registry::Synced>,
    /// What the registry a Model takes its versions from offers now (`spec.source`).
    pub source: Option<Result<super::source::Offered, super::source::SourceError>>,
}

/// The queries due now, rendered; the shell runs them and returns [`Readings`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DueChecks {
    /// Drift histogram query.
    pub drift: Option<String>,
    /// Reference capture query (the drift query over the reference window).
    pub reference: Option<String>,
    /// Performance query.
    pub performance: Option<String>,
}

impl DueChecks {
    /// True when nothing is due.
    pub fn is_empty(&self) -> bool {
        self.drift.is_none() && self.reference.is_none() && self.performance.is_none()
    }
}

fn due(last: Option<&CheckStatus>, interval: SignedDuration, now: Timestamp) -> bool {
    last.and_then(|c| c.checked_at.as_ref()).is_none_or(|t| after(t.0, interval) <= now)
}

/// Which live checks of `policy` are due at `now`.
pub fn due_checks(policy: &RetrainPolicy, model: &Model, ledger: &Ledger, now: Timestamp) -> DueChecks {
    let mut checks = DueChecks::default();
    let status = policy.status.clone().unwrap_or_default();
    let serving = ledger.serving();
    let vars = |window: SignedDuration, version: Option<u32>| {
        let v = version.map(|v| v.to_string()).unwrap_or_default();
        let vars = QueryVars {
            model: model.name_any(),
            namespace: model.namespace().unwrap_or_default(),
            version: v.clone(),
            stable_version: v,
            window: Some(prom_duration(window)),
        };
        move |q: &str| vars.render(q)
    };
    if let Some(drift) = &policy.spec.drift
        && let Some(s) = serving
    {
        let feature = drift.feature.as_deref().unwrap_or(DEFAULT_FEATURE);
        let has_reference = ledger.get(s).is_some_and(|e| e.status.reference.contains_key(feature));
        if !has_reference {
            let reference_window = span(drift.reference_window.as_ref(), DEFAULT_REFERENCE_WINDOW);
            if serving_since(ledger, s).is_some_and(|t| after(t, reference_window) <= now) {
                checks.reference = Some(vars(reference_window, Some(s))(&drift.query));
            }
        } else if let (Some(q), _) = check_queries(policy, model, &s.to_string())
            && due(status.drift.as_ref(), q.interval, now)
        {
            checks.drift = Some(q.query);
        }
    }
    let serving = serving.map(|s| s.to_string()).unwrap_or_default();
    if let (_, Some(q)) = check_queries(policy, model, &serving)
        && due(status.performance.as_ref(), q.interval, now)
    {
        checks.performance = Some(q.query);
    }
    checks
}

/// A live check's query as it is sent while `version` serves, and how often it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckQuery {
    /// The PromQL, placeholders filled in.
    pub query: String,
    /// Time between two checks.
    pub interval: SignedDuration,
}

/// The drift and the performance query of `policy` as its checks send them while `version`
/// serves (the same rendering as [`due_checks`]): what a backtest reads over a past period.
pub fn check_queries(policy: &RetrainPolicy, model: &Model, version: &str) -> (Option<CheckQuery>, Option<CheckQuery>) {
    let render = |window: SignedDuration, q: &str| {
        QueryVars {
            model: model.name_any(),
            namespace: model.namespace().unwrap_or_default(),
            version: version.to_string(),
            stable_version: version.to_string(),
            window: Some(prom_duration(window)),
        }
        .render(q)
    };
    let drift = policy.spec.drift.as_ref().map(|d| CheckQuery {
        query: render(span(Some(&d.window), DEFAULT_CHECK_INTERVAL), &d.query),
        interval: interval_span(d.interval.as_ref(), DEFAULT_CHECK_INTERVAL, MIN_CHECK_INTERVAL),
    });
    let performance = policy.spec.performance.as_ref().map(|p| CheckQuery {
        query: render(DEFAULT_CHECK_INTERVAL, &p.query),
        interval: interval_span(p.interval.as_ref(), DEFAULT_CHECK_INTERVAL, MIN_CHECK_INTERVAL),
    });
    (drift, performance)
}

/// When version `n` started serving: the time of its last `Serve` decision.
pub fn serving_since(ledger: &Ledger, n: u32) -> Option<Timestamp> {
    ledger.get(n)?.status.decisions.iter().rev().find(|d| d.action == "Serve").map(|d| d.time.0)
}

/// A duration as PromQL writes it (`90s`, `6h`).
fn prom_duration(d: SignedDuration) -> String {
    let secs = d.as_secs().max(1);
    if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// What the triggers decided.
#[derive(Clone, Debug, Default)]
pub struct TriggerDecision {
    /// Start a new version for these causes now (empty: do not).
    pub causes: Vec<TriggerCause>,
    /// The training version to stop first (concurrencyPolicy Replace).
    pub replace: Option<u32>,
    /// The policy's new status, if there is a policy.
    pub status: Option<RetrainPolicyStatus>,
    /// Problems with live data that stall the policy (not the Model).
    pub problems: Vec<Problem>,
    /// The Model's retrain request value now acted on.
    pub model_request: Option<String>,
    /// Wake up at this time.
    pub wake_at: Option<Timestamp>,
    /// Events on the Model: a retrain triggered, or held back.
    pub events: Vec<crate::lifecycle::plan::EventRecord>,
    /// Why retraining for drift does not help, when it does not.
    pub ineffective: Option<String>,
}

/// Everything the triggers read besides the policy.
pub struct TriggerInputs<'a> {
    /// The Model.
    pub model: &'a Model,
    /// Its versions.
    pub ledger: &'a Ledger<'a>,
    /// Why the Model's own inputs call for a version (Initial, TrainingInputsChanged), if they do.
    pub inputs_cause: Option<TriggerCause>,
    /// The readings of the checks that were due.
    pub readings: &'a Readings,
    /// Now.
    pub now: Timestamp,
    /// A RetrainPolicy that may drive the Model but cannot be read (its name).
    pub unreadable_policy: Option<String>,
}

/// Decides whether to start a version, from the Model's inputs and, if it has one, its policy.
pub fn decide(policy: Option<&RetrainPolicy>, inputs: &TriggerInputs) -> TriggerDecision {
    let model = inputs.model;
    let training = inputs
        .ledger
        .entries
        .iter()
        .find(|e| matches!(e.phase(), crate::api::VersionPhase::Pending | crate::api::VersionPhase::Training))
        .map(|e| e.number());
    let model_request = model.annotations().get(RETRAIN_REQUEST).cloned();
    let old_model_request = model.status.as_ref().and_then(|s| s.last_retrain_request.clone());
    let new_model_request = model_request.filter(|v| Some(v) != old_model_request.as_ref());
    if policy.is_none() && inputs.unreadable_policy.is_some() {
        // Fail closed: the policy's suspend, cooldown and limits cannot be read, so nothing but
        // the first version trains until it is fixed (its own Warning Event names the field).
        let initial = inputs.inputs_cause.clone().filter(|c| c.reason == "Initial");
        return TriggerDecision { causes: initial.into_iter().collect(), ..Default::default() };
    }
    let Some(policy) = policy else {
        // No policy: the Model's inputs and its retrain request, one training at a time.
        let mut causes: Vec<TriggerCause> = inputs.inputs_cause.clone().into_iter().collect();
        if let Some(value) = &new_model_request {
            causes.push(TriggerCause {
                reason: "Manual".into(),
                evidence: format!("Model annotation {RETRAIN_REQUEST}={value}"),
            });
        }
        if training.is_some() || causes.is_empty() {
            return TriggerDecision::default();
        }
        return TriggerDecision { causes, model_request: new_model_request, ..Default::default() };
    };

    let now = inputs.now;
    let spec = &policy.spec;
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = policy.metadata.generation;
    let mut causes = vec![];
    let mut wake: Vec<Timestamp> = vec![];
    let mut problems = vec![];

    if let Some(cause) = inputs.inputs_cause.clone() {
        let only_dataset =
            inputs.ledger.latest().is_some_and(|l| match (&l.version.spec.training, &model.spec.training) {
                (Some(a), Some(b)) => a.dataset.version != b.dataset.version && same_but_dataset_version(a, b),
                _ => false,
            });
        let reason = if spec.data_change && only_dataset && cause.reason == "TrainingInputsChanged" {
            "DataChange"
        } else {
            &cause.reason
        };
        causes.push(TriggerCause { reason: reason.into(), evidence: cause.evidence });
    }
    schedule(policy, &mut status, now, &mut causes, &mut wake, &mut problems);
    let policy_request =
        policy.annotations().get(RETRAIN_REQUEST).cloned().filter(|v| Some(v) != status.last_retrain_request.as_ref());
    if spec.manual
        && let Some(value) = &policy_request
    {
        causes.push(TriggerCause {
            reason: "Manual".into(),
            evidence: format!("RetrainPolicy annotation {RETRAIN_REQUEST}={value}"),
        });
    }
    if let Some(value) = &new_model_request {
        causes.push(TriggerCause {
            reason: "Manual".into(),
            evidence: format!("Model annotation {RETRAIN_REQUEST}={value}"),
        });
    }
    drift(policy, inputs, &mut status, &mut causes, &mut problems, &mut wake);
    performance(policy, inputs, &mut status, &mut causes, &mut problems, &mut wake);

    let mut decision = TriggerDecision::default();
    let streak = drift_streak(inputs.ledger);
    let drifting = causes.iter().any(|c| c.reason == "Drift")
        || status.drift.as_ref().and_then(|d| d.value.zip(d.threshold)).is_some_and(|(v, t)| v > t);
    if streak >= INEFFECTIVE_DRIFT_RETRAINS && drifting {
        decision.ineffective = Some(format!(
            "drift is still over its threshold after the last {streak} versions were trained for it; retraining does not remove it (look at the data or the feature), and drift retrains back off"
        ));
    }
    if !causes.is_empty() {
        let initial = causes.iter().any(|c| c.reason == "Initial");
        let held = if initial { None } else { hygiene(policy, inputs.ledger, training, &causes, now) };
        let record = TriggerRecord::new(causes.clone(), now);
        match held {
            Some(Hold { why, until }) => {
                let note = format!("{} ({}) held back: {why}", record.reason, evidence_of(&causes));
                if push_firing(&mut status, Firing { trigger: record, version: None, suppressed: Some(why) }) {
                    decision.events.push(event(EventKind::Normal, "RetrainSuppressed", "HoldBack", note, None));
                }
                // Level-triggered causes (inputs, requests) stay pending: look again when the hold ends.
                let pending = causes
                    .iter()
                    .any(|c| matches!(c.reason.as_str(), "TrainingInputsChanged" | "DataChange" | "Manual"));
                if pending {
                    wake.extend(until);
                }
            }
            None => {
                decision.replace = training.filter(|_| spec.concurrency_policy == ConcurrencyPolicy::Replace);
                if training.is_some() && decision.replace.is_none() {
                    // Without a policy-level hold, a running training still goes first.
                    decision.status = Some(status);
                    decision.problems = problems;
                    decision.wake_at = wake.into_iter().filter(|t| *t > now).min();
                    return decision;
                }
                let next = inputs
                    .ledger
                    .latest()
                    .map_or(0, |e| e.number())
                    .max(model.status.as_ref().and_then(|s| s.latest_version).unwrap_or(0))
                    + 1;
                push_firing(&mut status, Firing { trigger: record.clone(), version: Some(next), suppressed: None });
                let note = format!("{} ({}): training v{next}", record.reason, evidence_of(&causes));
                decision.events.push(event(EventKind::Normal, "RetrainTriggered", "Retrain", note, Some(next)));
                status.last_trigger = Some(record);
                if spec.manual && policy_request.is_some() {
                    status.last_retrain_request = policy_request;
                }
                decision.model_request = new_model_request;
                decision.causes = causes;
            }
        }
    }
    decision.status = Some(status);
    decision.problems = problems;
    decision.wake_at = wake.into_iter().filter(|t| *t > now).min();
    decision
}

/// True when two training specs differ at most in the dataset version.
fn same_but_dataset_version(a: &crate::api::TrainingSpec, b: &crate::api::TrainingSpec) -> bool {
    let mut a = a.clone();
    a.dataset.version = b.dataset.version.clone();
    &a == b
}

struct Hold {
    why: String,
    until: Option<Timestamp>,
}

/// How many retrains in a row for drift, the drift still there, before they count as
/// ineffective: a condition and an Event say so, and drift retrains back off.
pub const INEFFECTIVE_DRIFT_RETRAINS: u32 = 3;
/// The longest wait between drift retrains that fix nothing.
const LONGEST_DRIFT_BACKOFF: SignedDuration = SignedDuration::from_hours(168);

/// How many of the newest versions in a row were trained because of drift.
pub fn drift_streak(ledger: &Ledger) -> u32 {
    let mut numbers: Vec<&super::ledger::Entry> = ledger.entries.iter().collect();
    numbers.sort_by_key(|e| std::cmp::Reverse(e.number()));
    numbers.iter().take_while(|e| e.version.spec.trigger.causes.iter().any(|c| c.reason == "Drift")).count() as u32
}

/// The wait between drift retrains after `streak` of them in a row: the cooldown (at least an
/// hour), doubled for each retrain past [`INEFFECTIVE_DRIFT_RETRAINS`] - 1, at most a week.
fn drift_backoff(cooldown: SignedDuration, streak: u32) -> SignedDuration {
    let doublings = streak.saturating_sub(INEFFECTIVE_DRIFT_RETRAINS - 1).min(16);
    let base = cooldown.max(SignedDuration::from_hours(1));
    base.checked_mul(1 << doublings).unwrap_or(LONGEST_DRIFT_BACKOFF).min(LONGEST_DRIFT_BACKOFF)
}

/// Why hygiene holds a firing back, if it does.
fn hygiene(
    policy: &RetrainPolicy,
    ledger: &Ledger,
    training: Option<u32>,
    causes: &[TriggerCause],
    now: Timestamp,
) -> Option<Hold> {
    let spec = &policy.spec;
    if spec.suspend {
        return Some(Hold { why: "the policy is suspended".into(), until: None });
    }
    if let (Some(t), ConcurrencyPolicy::Forbid) = (training, spec.concurrency_policy) {
        return Some(Hold { why: format!("v{t} is training (concurrencyPolicy Forbid)"), until: None });
    }
    let last_start = ledger
        .entries
        .iter()
        .map(|e| e.status.started_at.as_ref().map_or(e.version.spec.trigger.time.0, |t| t.0))
        .max();
    // The default bounds what fires by itself (a schedule, drift, quality); a person's request
    // or new data is one act each, so only a cooldown the policy sets holds those back.
    let by_a_person =
        causes.iter().any(|c| matches!(c.reason.as_str(), "Manual" | "DataChange" | "TrainingInputsChanged"));
    let default = if by_a_person { SignedDuration::ZERO } else { DEFAULT_COOLDOWN };
    let cooldown = span(spec.cooldown.as_ref(), default);
    if let Some(started) = last_start {
        let until = after(started, cooldown);
        if until > now {
            let default = if spec.cooldown.is_none() { " (the default cooldown)" } else { "" };
            return Some(Hold { why: format!("cooldown{default} until {until}"), until: Some(until) });
        }
    }
    let streak = drift_streak(ledger);
    if causes.iter().all(|c| c.reason == "Drift") && streak >= INEFFECTIVE_DRIFT_RETRAINS {
        let backoff = drift_backoff(cooldown, streak);
        if let Some(started) = last_start {
            let until = after(started, backoff);
            if until > now {
                return Some(Hold {
                    why: format!(
                        "drift persisted through the last {streak} retrains, so drift retrains back off to one per {backoff:#} (until {until})"
                    ),
                    until: Some(until),
                });
            }
        }
    }
    if let Some(max) = spec.max_retrains_per_day {
        let today = now.to_zoned(TimeZone::UTC).date();
        let started_today = ledger
            .entries
            .iter()
            .filter(|e| e.version.spec.trigger.time.0.to_zoned(TimeZone::UTC).date() == today)
            .count();
        if started_today >= max as usize {
            let midnight = today.tomorrow().ok().and_then(|d| d.to_zoned(TimeZone::UTC).ok()).map(|z| z.timestamp());
            let when = midnight.map_or("tomorrow".to_string(), |m| m.to_string());
            return Some(Hold {
                why: format!("maxRetrainsPerDay {max} reached; next retrain from {when}"),
                until: midnight,
            });
        }
    }
    None
}

/// Records a firing; a held-back firing that repeats the last one exactly (same causes with
/// the same evidence, same hold) is not recorded again. True when recorded.
fn push_firing(status: &mut RetrainPolicyStatus, firing: Firing) -> bool {
    let same = status.recent_firings.last().is_some_and(|last| {
        firing.suppressed.is_some()
            && last.suppressed == firing.suppressed
            && last.trigger.causes == firing.trigger.causes
    });
    if same {
        return false;
    }
    status.recent_firings.push(firing);
    let overflow = status.recent_firings.len().saturating_sub(FIRINGS_KEPT);
    status.recent_firings.drain(..overflow);
    true
}

fn evidence_of(causes: &[TriggerCause]) -> String {
    causes
        .iter()
        .map(|c| if c.evidence.is_empty() { c.reason.clone() } else { c.evidence.clone() })
        .collect::<Vec<_>>()
        .join("; ")
}

fn event(kind: EventKind, reason: &str, action: &str, note: String, version: Option<u32>) -> EventRecord {
    EventRecord {
        kind,
        reason: reason.into(),
        action: action.into(),
        note: crate::lifecycle::plan::truncate(&note, 1024),
        version,
    }
}

/// The schedule: fires for the latest occurrence since the last one acted on, if it is not
/// later than the starting deadline; a run missed for longer is recorded as missed.
fn schedule(
    policy: &RetrainPolicy,
    status: &mut RetrainPolicyStatus,
    now: Timestamp,
    causes: &mut Vec<TriggerCause>,
    wake: &mut Vec<Timestamp>,
    problems: &mut Vec<Problem>,
) {
    let Some(schedule) = &policy.spec.schedule else { return };
    let Ok(cron) = schedule.cron.parse::<croner::Cron>() else { return };
    let Ok(tz) = TimeZone::get(&schedule.time_zone) else { return };
    let created = policy.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let since = status.last_schedule_time.as_ref().map_or(created, |t| t.0);
    let here = now.to_zoned(tz.clone());
    match cron.find_previous_occurrence(&here, true) {
        Ok(last) if last.timestamp() > since => {
            let late = now.duration_since(last.timestamp());
            let deadline = span(
                schedule.starting_deadline.as_ref(),
                span(policy.spec.cooldown.as_ref(), DEFAULT_STARTING_DEADLINE),
            );
            let local = last.strftime("%Y-%m-%d %H:%M %Z");
            if late <= deadline {
                causes.push(TriggerCause {
                    reason: "Schedule".into(),
                    evidence: format!("{} at {local}", schedule.cron),
                });
            } else {
                let record = TriggerRecord::new(
                    vec![TriggerCause { reason: "Schedule".into(), evidence: format!("{} at {local}", schedule.cron) }],
                    now,
                );
                push_firing(
                    status,
                    Firing {
                        trigger: record,
                        version: None,
                        suppressed: Some(format!("missed by {late:#} (startingDeadline {deadline:#})")),
                    },
                );
                status.last_schedule_time = Some(Time(last.timestamp()));
                return schedule_next(&cron, &here, status, wake);
            }
            status.last_schedule_time = Some(Time(last.timestamp()));
        }
        Ok(_) => {}
        Err(e) => problems.push(Problem {
            reason: "InvalidSchedule",
            message: format!(
                "spec.schedule.cron {:?} cannot be evaluated (a date that never comes?): {e}",
                schedule.cron
            ),
        }),
    }
    schedule_next(&cron, &here, status, wake);
}

fn schedule_next(cron: &croner::Cron, here: &Zoned, status: &mut RetrainPolicyStatus, wake: &mut Vec<Timestamp>) {
    match cron.find_next_occurrence(here, false) {
        Ok(next) => {
            status.next_schedule_time = Some(Time(next.timestamp()));
            wake.push(next.timestamp());
        }
        Err(_) => status.next_schedule_time = None,
    }
}

fn drift(
    policy: &RetrainPolicy,
    inputs: &TriggerInputs,
    status: &mut RetrainPolicyStatus,
    causes: &mut Vec<TriggerCause>,
    problems: &mut Vec<Problem>,
    wake: &mut Vec<Timestamp>,
) {
    let Some(spec) = &policy.spec.drift else { return };
    let now = inputs.now;
    let interval = interval_span(spec.interval.as_ref(), DEFAULT_CHECK_INTERVAL, MIN_CHECK_INTERVAL);
    let feature = spec.feature.as_deref().unwrap_or(DEFAULT_FEATURE);
    let Some(serving) = inputs.ledger.serving() else {
        status.drift = Some(CheckStatus {
            checked_at: None,
            message: "no version serves yet; nothing to compare with".into(),
            ..Default::default()
        });
        return;
    };
    let reference = inputs.ledger.get(serving).and_then(|e| e.status.reference.get(feature)).cloned();
    let reference = reference.or_else(|| inputs.readings.reference.clone().and_then(Result::ok));
    let Some(reference) = reference else {
        let window = span(spec.reference_window.as_ref(), DEFAULT_REFERENCE_WINDOW);
        let at = serving_since(inputs.ledger, serving).map(|t| after(t, window));
        if let Some(Err(e)) = &inputs.readings.reference {
            status.drift = Some(CheckStatus {
                checked_at: Some(Time(now)),
                message: format!("capturing the reference failed: {e}"),
                ..Default::default()
            });
            wake.push(after(now, interval));
        } else {
            let when = at.map_or("once it has served".to_string(), |t| format!("at {t}"));
            status.drift = Some(CheckStatus {
                checked_at: None,
                message: format!("v{serving} has no {feature:?} reference; capturing it from live traffic {when}"),
                ..Default::default()
            });
            wake.extend(at);
        }
        return;
    };
    let last = status.drift.as_ref().and_then(|c| c.checked_at.as_ref()).map(|t| t.0);
    let Some(reading) = &inputs.readings.drift else {
        // Between checks, the last check's verdict stands, a stalled one included.
        if let Some(check) = &status.drift
            && let Some(reason) = check.stalled_reason.as_deref().and_then(stalled_reason)
        {
            problems.push(Problem { reason, message: check.message.clone() });
        }
        wake.push(after(last.unwrap_or(now), interval));
        return;
    };
    wake.push(after(now, interval));
    let window = prom_duration(span(Some(&spec.window), DEFAULT_CHECK_INTERVAL));
    let check = |value: Option<f64>, samples: Option<f64>, message: String| CheckStatus {
        checked_at: Some(Time(now)),
        value,
        samples,
        message,
        ..Default::default()
    };
    let stall =
        |status: &mut RetrainPolicyStatus, problems: &mut Vec<Problem>, reason: &'static str, message: String| {
            status.drift =
                Some(CheckStatus { stalled_reason: Some(reason.into()), ..check(None, None, message.clone()) });
            problems.push(Problem { reason, message });
        };
    let live = match reading {
        Ok(live) => live,
        Err(e @ ReadingError::Unexpected(_)) => {
            return stall(status, problems, "DriftQueryNotHistogram", format!("spec.drift.query: {e}"));
        }
        Err(e) if e.needs_a_fix() => {
            let (reason, message) = check_refused("drift", e);
            return stall(status, problems, reason, message);
        }
        Err(e) => {
            status.drift = Some(check(None, None, format!("no verdict: {e}")));
            return;
        }
    };
    let samples = live.total();
    let min = spec.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES) as f64;
    if samples < min {
        status.drift = Some(check(
            None,
            Some(samples),
            format!("no verdict: {samples} samples over {window}, fewer than minSamples {min}"),
        ));
        return;
    }
    let (name, value) = (spec.method.short(), spec.method.compare(&reference, live));
    let v = match value {
        Err(e) => {
            let message = format!("the drift query and v{serving}'s {feature:?} reference cannot be compared: {e}");
            return stall(status, problems, "DriftBucketsDiffer", message);
        }
        Ok(v) => v,
    };
    let (threshold, how) = match (spec.threshold, spec.significance) {
        (Some(t), _) => (t, String::new()),
        (None, Some(alpha)) => {
            let sizes = stats::Sizes::of(&reference, live);
            if sizes.reference < min {
                let message = format!(
                    "no verdict: v{serving}'s {feature:?} reference holds {} samples, fewer than minSamples {min}; a threshold from significance needs the reference's counts, not proportions",
                    sizes.reference
                );
                status.drift = Some(check(Some(v), Some(samples), message));
                return;
            }
            match spec.method.critical_value(alpha, &reference, live) {
                Ok(t) => (
                    t,
                    format!(
                        " (the critical value at significance {alpha} for {} reference and {samples} live samples in {} bins)",
                        sizes.reference, sizes.bins
                    ),
                ),
                Err(e) => {
                    status.drift = Some(check(Some(v), Some(samples), format!("no verdict: {e}")));
                    return;
                }
            }
        }
        (None, None) => {
            let message = "spec.drift sets neither threshold nor significance".to_string();
            return stall(status, problems, "DriftThresholdMissing", message);
        }
    };
    let drifted = v > threshold;
    // A threshold written in the spec reads as written; a computed one with three decimals.
    let shown = if spec.threshold.is_some() { format!("{threshold:.2}") } else { format!("{threshold:.3}") };
    let evidence =
        format!("{name}={v:.3} {} {shown}{how} over {window}, {samples} samples", if drifted { ">" } else { "<=" });
    if drifted {
        causes.push(TriggerCause { reason: "Drift".into(), evidence: evidence.clone() });
    }
    status.drift = Some(CheckStatus { threshold: Some(threshold), ..check(Some(v), Some(samples), evidence) });
}

/// The reasons a live check stalls its policy with.
const CHECK_STALL_REASONS: [&str; 9] = [
    "DriftQueryNotHistogram",
    "DriftThresholdMissing",
    "DriftBucketsDiffer",
    "DriftQueryRejected",
    "PerformanceQueryRejected",
    "PerformanceQueryUnexpected",
    "NotPrometheus",
    "PrometheusAddressNotAllowed",
    "BearerTokenRefused",
];

/// The static reason of a stalled check, from what the status stored.
fn stalled_reason(stored: &str) -> Option<&'static str> {
    CHECK_STALL_REASONS.into_iter().find(|r| *r == stored)
}

/// The stall reason and message of a `check` (drift or performance) whose reading only a change
/// can fix: Prometheus refused the query (its own words), the address is not a Prometheus or not
/// allowed, or the token's Secret cannot be used.
fn check_refused(check: &str, error: &ReadingError) -> (&'static str, String) {
    match (check, error) {
        ("drift", ReadingError::Rejected { .. }) => ("DriftQueryRejected", format!("spec.drift.query: {error}")),
        (_, ReadingError::Rejected { .. }) => ("PerformanceQueryRejected", format!("spec.performance.query: {error}")),
        (_, ReadingError::Unexpected(_)) => ("PerformanceQueryUnexpected", format!("spec.performance.query: {error}")),
        (_, ReadingError::NotPrometheus { .. }) => ("NotPrometheus", format!("spec.prometheus.address: {error}")),
        (_, ReadingError::NotAllowed { .. }) => {
            ("PrometheusAddressNotAllowed", format!("spec.prometheus.address: {error}"))
        }
        (_, ReadingError::TokenRefused(_)) => ("BearerTokenRefused", format!("spec.prometheus.{error}")),
        (_, e) => ("PerformanceQueryUnexpected", e.to_string()),
    }
}

fn performance(
    policy: &RetrainPolicy,
    inputs: &TriggerInputs,
    status: &mut RetrainPolicyStatus,
    causes: &mut Vec<TriggerCause>,
    problems: &mut Vec<Problem>,
    wake: &mut Vec<Timestamp>,
) {
    let Some(spec) = &policy.spec.performance else { return };
    let now = inputs.now;
    let interval = interval_span(spec.interval.as_ref(), DEFAULT_CHECK_INTERVAL, MIN_CHECK_INTERVAL);
    let last = status.performance.clone().unwrap_or_default();
    let Some(reading) = &inputs.readings.performance else {
        // Between checks, the last check's verdict stands, a stalled one included.
        if let Some(reason) = last.stalled_reason.as_deref().and_then(stalled_reason) {
            problems.push(Problem { reason, message: last.message.clone() });
        }
        wake.push(after(last.checked_at.as_ref().map_or(now, |t| t.0), interval));
        return;
    };
    wake.push(after(now, interval));
    let value = match reading {
        Ok(v) => *v,
        Err(e) if e.needs_a_fix() => {
            let (reason, message) = check_refused("performance", e);
            status.performance = Some(CheckStatus {
                checked_at: Some(Time(now)),
                message: message.clone(),
                breach_since: last.breach_since,
                stalled_reason: Some(reason.into()),
                ..Default::default()
            });
            problems.push(Problem { reason, message });
            return;
        }
        Err(e) => {
            status.performance = Some(CheckStatus {
                checked_at: Some(Time(now)),
                message: format!("no verdict: {e}"),
                breach_since: last.breach_since,
                ..Default::default()
            });
            return;
        }
    };
    let breach = match (spec.min, spec.max) {
        (Some(min), _) if value < min => Some(format!("{value} < min {min}")),
        (_, Some(max)) if value > max => Some(format!("{value} > max {max}")),
        _ => None,
    };
    let hold_for = span(spec.for_.as_ref(), SignedDuration::ZERO);
    let (breach_since, message) = match breach {
        None => (None, format!("{value} is within bounds")),
        Some(what) => {
            let since = last.breach_since.as_ref().map_or(now, |t| t.0);
            let lasted = now.duration_since(since);
            if lasted >= hold_for {
                causes.push(TriggerCause { reason: "Performance".into(), evidence: format!("{what} for {lasted:#}") });
                (None, format!("{what} for {lasted:#}: retrain"))
            } else {
                (Some(since), format!("{what} since {since}, for {lasted:#} of {hold_for:#}"))
            }
        }
    };
    status.performance = Some(CheckStatus {
        checked_at: Some(Time(now)),
        value: Some(value),
        breach_since: breach_since.map(Time),
        message,
        ..Default::default()
    });
}

#[cfg(test)]
#[path = "triggers_tests.rs"]
mod tests;
