//! The working copy of a Model's versions during one decision: phase changes, decision records and Events.

use std::borrow::{Borrow, Cow};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::{DecisionRecord, ModelVersion, ModelVersionStatus, VersionPhase};

use super::conditions::{self, Desired};
use super::plan::{EventKind, EventRecord, StatusWrite, truncate};
use super::transitions::{Action, Reason, allowed};

/// How many decision records a version keeps (oldest dropped first).
pub const DECISIONS_MAX: usize = 20;

/// One version and the status it will have after this decision.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// The observed ModelVersion.
    pub version: &'a ModelVersion,
    /// Its status as decided so far: the observed one until a decision changes it, so that a
    /// long history costs no copies (most versions are done and never change again).
    pub status: Cow<'a, ModelVersionStatus>,
}

impl Entry<'_> {
    /// The status, to change (copied from the observed one on the first change).
    pub fn status_mut(&mut self) -> &mut ModelVersionStatus {
        self.status.to_mut()
    }

    /// Version number.
    pub fn number(&self) -> u32 {
        self.version.spec.version
    }

    /// Phase as decided so far; a version without status is Pending.
    pub fn phase(&self) -> VersionPhase {
        self.status.phase.unwrap_or(VersionPhase::Pending)
    }
}

/// The versions of one Model, oldest first, with the Events their changes produce.
pub struct Ledger<'a> {
    /// Every observed version, by ascending number.
    pub entries: Vec<Entry<'a>>,
    /// Events produced by phase changes, in order.
    pub events: Vec<EventRecord>,
    now: Timestamp,
    /// Versions in the order of their last phase change.
    moved: Vec<u32>,
}

/// What was decided about a version, for its decision record and Event.
#[derive(Clone, Debug)]
pub struct Decision {
    /// What was done; for a phase change, it names the new phase.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// What was observed, in a sentence.
    pub message: String,
    /// Measurements behind it.
    pub evidence: Option<serde_json::Value>,
}

impl Decision {
    /// A decision without evidence.
    pub fn new(action: Action, reason: Reason, message: impl Into<String>) -> Self {
        Self { action, reason, message: message.into(), evidence: None }
    }

    /// The same decision with the measurements behind it.
    pub fn with_evidence(self, evidence: serde_json::Value) -> Self {
        Self { evidence: Some(evidence), ..self }
    }
}

/// The reason of the Warning Event a refused phase change makes (a defect of the controller).
pub const TRANSITION_REFUSED: &str = "TransitionRefused";

impl<'a> Ledger<'a> {
    /// A ledger of `versions` (any order) at `now`.
    pub fn new<V: Borrow<ModelVersion>>(versions: &'a [V], now: Timestamp) -> Self {
        let mut entries: Vec<_> = versions
            .iter()
            .map(Borrow::borrow)
            .map(|v| Entry {
                version: v,
                status: v.status.as_ref().map_or_else(|| Cow::Owned(ModelVersionStatus::default()), Cow::Borrowed),
            })
            .collect();
        entries.sort_by_key(|e| e.number());
        Self { entries, events: vec![], now, moved: vec![] }
    }

    /// The decision time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// How long from the decision time until `t`; `None` when `t` has passed.
    pub fn until(&self, t: Timestamp) -> Option<std::time::Duration> {
        std::time::Duration::try_from(t.duration_since(self.now)).ok()
    }

    /// The entry of version `n`.
    pub fn get(&self, n: u32) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.number() == n)
    }

    /// The entry of version `n`, to change.
    pub fn get_mut(&mut self, n: u32) -> Option<&mut Entry<'a>> {
        self.entries.iter_mut().find(|e| e.number() == n)
    }

    /// The newest version.
    pub fn latest(&self) -> Option<&Entry<'a>> {
        self.entries.last()
    }

    /// The versions in a phase, oldest first.
    pub fn in_phase(&self, phase: VersionPhase) -> impl Iterator<Item = &Entry<'a>> {
        self.entries.iter().filter(move |e| e.phase() == phase)
    }

    /// The version that serves, if any (the newest, should a crash have left two).
    pub fn serving(&self) -> Option<u32> {
        self.in_phase(VersionPhase::Serving).last().map(Entry::number)
    }

    /// Moves version `n` to the phase of the decision's action, recording the decision and an
    /// Event; no-op if already there. A move the table of [`transitions`](super::transitions)
    /// does not allow is not made: a Warning Event names it instead (a defect, never a panic).
    pub fn transition(&mut self, n: u32, decision: Decision) {
        let Some(entry) = self.get_mut(n) else { return };
        let from = entry.phase();
        let Some(phase) = decision.action.phase() else {
            return self.refuse(n, from, None, &decision);
        };
        if from == phase && entry.status.phase.is_some() {
            return;
        }
        if !allowed(from, decision.action) {
            return self.refuse(n, from, Some(phase), &decision);
        }
        let status = entry.status_mut();
        status.phase = Some(phase);
        status.message = Some(decision.message.clone());
        if phase.is_terminal() {
            // A version that is done has no rollout in progress, however it ended.
            status.canary = None;
            status.blue_green = None;
        }
        self.moved.retain(|m| *m != n);
        self.moved.push(n);
        let kind = match phase {
            VersionPhase::Failed | VersionPhase::Rejected | VersionPhase::RolledBack => EventKind::Warning,
            _ => EventKind::Normal,
        };
        let note = format!("(v{n}) {from:?} → {phase:?}: {}", decision.message);
        self.record(n, decision, kind, format!("Version{phase:?}"), note);
    }

    /// Records a decision about version `n` that does not change its phase, with an Event.
    pub fn push_decision(&mut self, n: u32, decision: Decision) {
        self.push_decision_as(n, decision, EventKind::Normal);
    }

    /// Records a decision about version `n` that does not change its phase, with an Event of
    /// `kind`. An action that would change the phase is refused (see [`Ledger::transition`]).
    pub fn push_decision_as(&mut self, n: u32, decision: Decision, kind: EventKind) {
        if let Some(to) = decision.action.phase() {
            let from = self.get(n).map_or(VersionPhase::Pending, Entry::phase);
            return self.refuse(n, from, Some(to), &decision);
        }
        let (reason, note) = (decision.reason.to_string(), format!("(v{n}): {}", decision.message));
        self.record(n, decision, kind, reason, note);
    }

    /// Reports a phase change that is not in the table; the version keeps its phase.
    fn refuse(&mut self, n: u32, from: VersionPhase, to: Option<VersionPhase>, decision: &Decision) {
        let to = to.map_or("no phase change".to_string(), |p| format!("{p:?}"));
        self.events.push(EventRecord {
            kind: EventKind::Warning,
            reason: TRANSITION_REFUSED.into(),
            action: decision.action.to_string(),
            note: truncate(
                &format!(
                    "(v{n}) {from:?} → {to} by {} ({}) is not an allowed transition; v{n} stays {from:?}. This is a defect of modelcycle: {}",
                    decision.action, decision.reason, decision.message
                ),
                1024,
            ),
            version: Some(n),
        });
    }

    /// Appends the decision record (bounded) and the Event `reason` with `note` after the name.
    fn record(&mut self, n: u32, decision: Decision, kind: EventKind, reason: String, note: String) {
        let now = self.now;
        let Some(entry) = self.get_mut(n) else { return };
        let decisions = &mut entry.status_mut().decisions;
        decisions.push(DecisionRecord {
            time: Time(now),
            action: decision.action.to_string(),
            reason: decision.reason.to_string(),
            message: decision.message,
            evidence: decision.evidence,
        });
        let overflow = decisions.len().saturating_sub(DECISIONS_MAX);
        decisions.drain(..overflow);
        let name = entry.version.name_any();
        self.events.push(EventRecord {
            kind,
            reason,
            action: decision.action.to_string(),
            note: truncate(&format!("{name} {note}"), 1024),
            version: Some(n),
        });
    }

    /// The statuses that differ from what was observed, by ModelVersion name: those without a
    /// phase change first, then in the order of their phase changes. A promotion writes the new version's Serving before the
    /// old one's Retired, a rollback the restored version's Serving before the RolledBack, so a
    /// crash between the two never leaves nothing serving.
    ///
    /// This uses the ledger up: the changed statuses move into the writes without a copy.
    pub fn changed_statuses(self) -> Vec<StatusWrite<ModelVersionStatus>> {
        let Ledger { mut entries, now, moved, .. } = self;
        // Taken out of the entries where they lie: a status is large, and most entries (a
        // status still borrowed from the observed version is unchanged by construction) are
        // not written at all.
        let mut changed: Vec<(usize, StatusWrite<ModelVersionStatus>)> = entries
            .iter_mut()
            .filter(|e| matches!(e.status, Cow::Owned(_)) && e.version.status.as_ref() != Some(&*e.status))
            .map(|e| {
                let phase = e.phase();
                let mut status = std::mem::take(e.status.to_mut());
                let generation = e.version.metadata.generation;
                let desired = kstatus(phase, &status);
                conditions::set_all(&mut status.conditions, &desired, generation, now);
                status.observed_generation = generation;
                let rank = moved.iter().position(|n| *n == e.number()).map_or(0, |p| p + 1);
                (rank, StatusWrite { name: e.version.name_any(), read_at: e.version.resource_version(), status })
            })
            .collect();
        changed.sort_by_key(|(rank, _)| *rank);
        changed.into_iter().map(|(_, write)| write).collect()
    }
}

/// A version's kstatus conditions, from its phase: `Reconciling` while it is on its way,
/// `Stalled` once its training failed, neither when it is judged — so Flux's and kpt's kstatus
/// read it as InProgress, Failed or Current.
fn kstatus(phase: VersionPhase, status: &ModelVersionStatus) -> [Desired; 2] {
    let reason = format!("{phase:?}");
    let message = status.message.clone().unwrap_or_else(|| format!("the version is {reason}"));
    match phase {
        VersionPhase::Pending | VersionPhase::Training | VersionPhase::Evaluating | VersionPhase::RollingOut => [
            Desired::yes(conditions::RECONCILING, reason.clone(), message),
            Desired::no(conditions::STALLED, reason, "on its way"),
        ],
        VersionPhase::Failed => [
            Desired::no(conditions::RECONCILING, reason.clone(), "training ended"),
            Desired::yes(conditions::STALLED, "TrainingFailed", message),
        ],
        _ => [
            Desired::no(conditions::RECONCILING, reason.clone(), message),
            Desired::no(conditions::STALLED, reason, "judged"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::conditions::{RECONCILING, STALLED, find};
    use crate::lifecycle::transitions::{Action, Reason};

    fn version(n: u32, phase: VersionPhase) -> ModelVersion {
        let model = crate::lifecycle::testing::model("churn");
        let mut v = crate::lifecycle::inputs::new_version(&model, n, vec![], Timestamp::UNIX_EPOCH).expect("trained");
        v.metadata.generation = Some(1);
        v.status = Some(ModelVersionStatus { phase: Some(phase), ..Default::default() });
        v
    }

    fn kstatus_of(status: &ModelVersionStatus) -> (String, String, Option<i64>) {
        let of = |t| find(&status.conditions, t).map(|c| c.status.clone()).unwrap_or_default();
        (of(RECONCILING), of(STALLED), status.observed_generation)
    }

    #[test]
    fn a_written_version_status_carries_kstatus_conditions_of_its_phase() {
        let versions =
            [version(1, VersionPhase::Serving), version(2, VersionPhase::Pending), version(3, VersionPhase::Training)];
        let mut ledger = Ledger::new(&versions, Timestamp::UNIX_EPOCH);
        ledger.transition(2, Decision::new(Action::Train, Reason::JobCreated, "trains"));
        ledger.transition(3, Decision::new(Action::Fail, Reason::BackoffLimitExceeded, "the trainer failed"));
        let written: std::collections::BTreeMap<_, _> =
            ledger.changed_statuses().into_iter().map(|w| (w.name, w.status)).collect();
        // v1 did not change: not written, so an upgrade writes nothing to versions that are done.
        assert!(!written.contains_key("churn-v1"));
        assert_eq!(kstatus_of(&written["churn-v2"]), ("True".into(), "False".into(), Some(1)));
        let failed = &written["churn-v3"];
        assert_eq!(kstatus_of(failed), ("False".into(), "True".into(), Some(1)));
        assert_eq!(find(&failed.conditions, STALLED).map(|c| c.reason.as_str()), Some("TrainingFailed"));
    }

    #[test]
    fn judged_versions_are_neither_reconciling_nor_stalled() {
        for phase in [
            VersionPhase::Ready,
            VersionPhase::Serving,
            VersionPhase::Retired,
            VersionPhase::Rejected,
            VersionPhase::RolledBack,
        ] {
            let status = ModelVersionStatus { phase: Some(phase), ..Default::default() };
            let [reconciling, stalled] = kstatus(phase, &status);
            assert!(!reconciling.status && !stalled.status, "{phase:?}");
        }
    }
}
