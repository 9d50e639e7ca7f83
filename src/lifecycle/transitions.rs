//! The phases a version may move between, and the typed actions and reasons that move it.
//!
//! Every phase change goes through [`Ledger::transition`](super::ledger::Ledger::transition),
//! which asks [`allowed`]; a move the table does not list is refused there (the version keeps
//! its phase and a Warning Event names the defect), and the simulator checks every status it
//! writes against the same table.

use crate::api::{DecisionRecord, ModelVersionStatus, VersionPhase};

names! {
    /// What the controller does to a version. An action either moves the version to one phase
    /// ([`Action::phase`]) or records a decision that keeps its phase.
    pub enum Action {
        /// Its training Job started.
        Train,
        /// Every gate passed.
        Accept,
        /// A gate failed.
        Reject,
        /// Training failed.
        Fail,
        /// Its training was stopped for a newer version (`concurrencyPolicy: Replace`).
        Replace,
        /// Its rollout started.
        Promote,
        /// It serves.
        Serve,
        /// A newer version replaced it, or superseded its rollout.
        Retire,
        /// It was rolled back.
        RollBack,
        /// It serves again after the version that replaced it was rolled back.
        Restore,
        /// A canary step passed.
        Step,
        /// The old side of a blue-green was handed the new version.
        ScaleDown,
        /// An analysis verdict that changes no phase.
        Analyse,
        /// Something about it that a person should know, without a phase change.
        Flag,
    }
}

impl Action {
    /// The phase this action moves a version to; `None` for a decision that keeps the phase.
    pub fn phase(self) -> Option<VersionPhase> {
        use VersionPhase::*;
        match self {
            Action::Train => Some(Training),
            Action::Accept => Some(Ready),
            Action::Reject => Some(Rejected),
            Action::Fail | Action::Replace => Some(Failed),
            Action::Promote => Some(RollingOut),
            Action::Serve | Action::Restore => Some(Serving),
            Action::Retire => Some(Retired),
            Action::RollBack => Some(RolledBack),
            Action::Step | Action::ScaleDown | Action::Analyse | Action::Flag => None,
        }
    }
}

names! {
    /// Why the controller decided what it did about a version.
    pub enum Reason {
        /// Its training Job was created.
        JobCreated,
        /// The Job ran out of retries.
        BackoffLimitExceeded,
        /// The Job ran longer than `activeDeadlineSeconds`.
        DeadlineExceeded,
        /// A pod failure policy failed the Job.
        PodFailurePolicy,
        /// The Job failed without a reason the controller knows.
        JobFailed,
        /// The succeeded pod left no termination message.
        NoTerminationMessage,
        /// The termination message is not the metrics object the trainer contract asks for.
        InvalidTerminationMessage,
        /// A metric in the termination message is not a finite number.
        NonNumericMetric,
        /// Every gate passed.
        GatesPassed,
        /// A gate failed.
        GateFailed,
        /// Its trainer read other data than an earlier version under the same dataset version.
        DatasetChanged,
        /// A newer version replaced it (in serving, or in training by `concurrencyPolicy: Replace`).
        Replaced,
        /// A newer version was wanted before its rollout completed.
        Superseded,
        /// It is newer than the serving version and passed its gates.
        NewerVersionReady,
        /// `spec.pinnedVersion` names it.
        Pinned,
        /// Its Deployment runs it on every replica.
        RolloutComplete,
        /// Its Deployment did not become available in time.
        ProgressDeadlineExceeded,
        /// KServe could not make its revision ready.
        RevisionFailed,
        /// The abort annotation names it.
        Aborted,
        /// It failed its guard window after promotion.
        GuardFailed,
        /// It serves again because the version after it failed its guard window.
        GuardRollBack,
        /// The serving version was aborted by the annotation: the version it replaced serves
        /// again at once, without steps or analysis.
        EmergencyRollBack,
        /// Its guard window passed.
        GuardPassed,
        /// Its guard window ended because a newer rollout started.
        GuardEnded,
        /// Its canary started.
        CanaryStarted,
        /// Its shadow stage passed: the canary steps begin.
        ShadowPassed,
        /// A canary step passed.
        CanaryStepDone,
        /// Its canary completed.
        CanaryPromoted,
        /// Its blue-green preview started.
        BlueGreenStarted,
        /// The Service switched to it.
        BlueGreenPromoted,
        /// The serving Deployment was handed the new version after a blue-green.
        BlueGreenHandedOff,
        /// Its rollout analysis failed.
        AnalysisFailed,
        /// Its rollout analysis could not decide.
        AnalysisInconclusive,
        /// Its rollout analysis reads values again.
        AnalysisResumed,
    }
}

impl Reason {
    /// The reason for a failed Job, from the reason in its `Failed` condition.
    pub fn of_job(reason: &str) -> Self {
        match Self::parse(reason) {
            Some(r @ (Self::BackoffLimitExceeded | Self::DeadlineExceeded | Self::PodFailurePolicy)) => r,
            _ => Self::JobFailed,
        }
    }
}

/// Every phase change the controller makes: from which phase each action may move a version.
/// A version in no phase yet is `Pending`. `Evaluating` is in the API but never entered:
/// judging happens in the same reconcile that reads the Job's outcome.
pub const TRANSITIONS: &[(Action, &[VersionPhase])] = {
    use VersionPhase::*;
    &[
        (Action::Train, &[Pending]),
        // Pending: a version taken from a registry is judged without training.
        (Action::Accept, &[Training, Pending]),
        (Action::Reject, &[Training, Pending]),
        (Action::Fail, &[Training]),
        (Action::Replace, &[Pending, Training]),
        // A pinned Retired version rolls out again.
        (Action::Promote, &[Ready, Retired]),
        // Ready when its Deployment already runs it: a cache that shows the Deployment's rollout
        // before the version's own RollingOut write. Retired when pinned while its Deployment
        // still runs it (the old side of a blue-green during `scaleDownDelay`).
        (Action::Serve, &[RollingOut, Ready, Retired]),
        (Action::Restore, &[Retired]),
        // RollingOut when superseded; Serving when replaced.
        (Action::Retire, &[RollingOut, Serving]),
        // Ready: aborted before it started; Serving: failed its guard window.
        (Action::RollBack, &[Ready, RollingOut, Serving]),
    ]
};

/// True when `action` may move a version that is in `from` (actions that keep the phase are
/// never a move).
pub fn allowed(from: VersionPhase, action: Action) -> bool {
    TRANSITIONS.iter().any(|(a, froms)| *a == action && froms.contains(&from))
}

/// Checks a written status against the one before it: the decision records added since walk
/// from the old phase to the new one along [`TRANSITIONS`], each naming a known action and
/// reason. The simulator runs this on every status write.
pub fn check(old: Option<&ModelVersionStatus>, new: &ModelVersionStatus) -> Result<(), String> {
    let old_records: &[DecisionRecord] = old.map_or(&[], |s| &s.decisions);
    let added = match old_records.last() {
        None => &new.decisions[..],
        Some(last) => match new.decisions.iter().rposition(|r| r == last) {
            Some(at) => &new.decisions[at + 1..],
            None => &new.decisions[..],
        },
    };
    let mut phase = old.and_then(|s| s.phase).unwrap_or(VersionPhase::Pending);
    for record in added {
        let action = Action::parse(&record.action).ok_or_else(|| format!("unknown action {:?}", record.action))?;
        if Reason::parse(&record.reason).is_none() {
            return Err(format!("unknown reason {:?}", record.reason));
        }
        if let Some(to) = action.phase() {
            if !allowed(phase, action) {
                return Err(format!("{phase:?} → {to:?} by {action} ({}) is not in the table", record.reason));
            }
            phase = to;
        }
    }
    let written = new.phase.unwrap_or(VersionPhase::Pending);
    if written != phase {
        return Err(format!("phase {written:?} written, but its decision records lead to {phase:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn record(action: Action, reason: Reason) -> DecisionRecord {
        DecisionRecord {
            time: Time(Timestamp::UNIX_EPOCH),
            action: action.as_str().into(),
            reason: reason.as_str().into(),
            message: String::new(),
            evidence: None,
        }
    }

    fn status(phase: Option<VersionPhase>, decisions: Vec<DecisionRecord>) -> ModelVersionStatus {
        ModelVersionStatus { phase, decisions, ..Default::default() }
    }

    #[test]
    fn names_read_back() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::of_job("DeadlineExceeded"), Reason::DeadlineExceeded);
        assert_eq!(Reason::of_job("GatesPassed"), Reason::JobFailed, "only a Job's own reasons are kept");
    }

    #[test]
    fn terminal_phases_are_never_left_but_retired_serves_again() {
        for phase in [VersionPhase::Rejected, VersionPhase::Failed, VersionPhase::RolledBack] {
            assert!(Action::ALL.iter().all(|a| !allowed(phase, *a)), "{phase:?} is never left");
        }
        let out_of_retired: Vec<_> = Action::ALL.iter().filter(|a| allowed(VersionPhase::Retired, **a)).collect();
        assert_eq!(out_of_retired, [&Action::Promote, &Action::Serve, &Action::Restore]);
    }

    #[test]
    fn a_written_status_must_follow_the_table() {
        use VersionPhase::*;
        let trained = status(
            Some(Ready),
            vec![record(Action::Train, Reason::JobCreated), record(Action::Accept, Reason::GatesPassed)],
        );
        assert_eq!(check(None, &trained), Ok(()));
        let skipped = status(Some(Serving), vec![record(Action::Serve, Reason::RolloutComplete)]);
        assert!(check(None, &skipped).unwrap_err().contains("Pending → Serving"));
        let unrecorded = status(Some(Serving), trained.decisions.clone());
        assert!(check(Some(&trained), &unrecorded).unwrap_err().contains("lead to Ready"));
        let mut promoted = trained.clone();
        promoted.phase = Some(RollingOut);
        promoted.decisions.push(record(Action::Promote, Reason::NewerVersionReady));
        assert_eq!(check(Some(&trained), &promoted), Ok(()));
        let mut rejected_then_served = status(Some(Rejected), vec![record(Action::Reject, Reason::GateFailed)]);
        let before = rejected_then_served.clone();
        rejected_then_served.phase = Some(RollingOut);
        rejected_then_served.decisions.push(record(Action::Promote, Reason::Pinned));
        assert!(check(Some(&before), &rejected_then_served).is_err(), "a rejected version never rolls out");
    }
}
