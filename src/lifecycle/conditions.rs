//! kstatus-style conditions, set without moving `lastTransitionTime` unless the status flips.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The wanted state is reached (for a Model: the wanted version serves).
pub const READY: &str = "Ready";
/// The controller is working towards the wanted state.
pub const RECONCILING: &str = "Reconciling";
/// The controller cannot make progress without a change from the user.
pub const STALLED: &str = "Stalled";
/// A version is training.
pub const TRAINING: &str = "Training";
/// A version is rolling out.
pub const ROLLING_OUT: &str = "RollingOut";
/// A rollout was rolled back or serving is unhealthy.
pub const DEGRADED: &str = "Degraded";

/// What a condition should say; `set` turns it into a `Condition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Sentence for a person.
    pub message: String,
}

impl Desired {
    /// A condition that is True.
    pub fn yes(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { type_, status: true, reason: reason.into(), message: message.into() }
    }

    /// A condition that is False.
    pub fn no(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { type_, status: false, reason: reason.into(), message: message.into() }
    }
}

/// Sets every desired condition in `conditions`, keeping `lastTransitionTime` of those whose
/// status did not change, and keeping the order stable so equal inputs give equal output.
pub fn set_all(conditions: &mut Vec<Condition>, desired: &[Desired], generation: Option<i64>, now: Timestamp) {
    for d in desired {
        let status = if d.status { "True" } else { "False" };
        match conditions.iter_mut().find(|c| c.type_ == d.type_) {
            // Most reconciles say what the last one said: a field is copied only when it differs.
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = Time(now);
                    existing.status = status.to_string();
                }
                if existing.reason != d.reason {
                    existing.reason.clone_from(&d.reason);
                }
                if existing.message != d.message {
                    existing.message.clone_from(&d.message);
                }
                existing.observed_generation = generation;
            }
            None => conditions.push(Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time: Time(now),
            }),
        }
    }
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conds = vec![];
        set_all(&mut conds, &[Desired::no(READY, "Training", "v1 trains")], Some(1), at(10));
        set_all(&mut conds, &[Desired::no(READY, "Evaluating", "v1 is judged")], Some(1), at(20));
        assert_eq!(conds[0].last_transition_time, Time(at(10)));
        assert_eq!(conds[0].reason, "Evaluating");
        set_all(&mut conds, &[Desired::yes(READY, "Serving", "v1 serves")], Some(2), at(30));
        assert_eq!(conds[0].last_transition_time, Time(at(30)));
        assert_eq!(conds[0].observed_generation, Some(2));
        assert!(is_true(&conds, READY));
    }

    #[test]
    fn setting_the_same_conditions_twice_changes_nothing() {
        let desired = [Desired::yes(READY, "Serving", "ok"), Desired::no(STALLED, "Reconciled", "")];
        let mut once = vec![];
        set_all(&mut once, &desired, Some(3), at(1));
        let mut twice = once.clone();
        set_all(&mut twice, &desired, Some(3), at(99));
        assert_eq!(once, twice);
    }
}
