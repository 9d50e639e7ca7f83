//! The decision for one Model: today its validation and health; the lifecycle plugs in here.

use jiff::Timestamp;

use crate::api::{Model, ModelPhase, ModelStatus};

use super::conditions;
use super::plan::{Plan, health_conditions, stalled_events};
use super::validate::model_problems;

/// Decides the status and Events of a Model from the Model alone and `now`.
pub fn plan_model(model: &Model, now: Timestamp) -> Plan<ModelStatus> {
    let old = model.status.clone().unwrap_or_default();
    let problems = model_problems(model);
    let mut status = old.clone();
    let desired = if problems.is_empty() {
        status.phase = Some(status.phase.filter(|p| *p != ModelPhase::Stalled).unwrap_or(ModelPhase::Pending));
        health_conditions(
            &[],
            (false, "NotServing", "no version serves yet"),
            Some(("Pending", "waiting to train the first version")),
        )
    } else {
        status.phase = Some(ModelPhase::Stalled);
        health_conditions(&problems, (false, "", ""), None)
    };
    status.observed_generation = model.metadata.generation;
    conditions::set_all(&mut status.conditions, &desired, model.metadata.generation, now);
    let events = stalled_events(&old.conditions, &status.conditions);
    Plan { status: (model.status.as_ref() != Some(&status)).then_some(status), events, requeue_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::plan::EventKind;
    use crate::lifecycle::testing::model;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_valid_new_model_is_pending_and_reconciling() {
        let plan = plan_model(&model("churn"), now());
        let status = plan.status.expect("first reconcile writes status");
        assert_eq!(status.phase, Some(ModelPhase::Pending));
        assert_eq!(status.observed_generation, Some(1));
        assert!(conditions::is_true(&status.conditions, conditions::RECONCILING));
        assert!(!conditions::is_true(&status.conditions, conditions::STALLED));
        assert!(plan.events.is_empty());
    }

    #[test]
    fn reconciling_an_unchanged_model_writes_nothing() {
        let mut m = model("churn");
        m.status = plan_model(&m, now()).status;
        let later = Timestamp::from_second(1_800_000_600).unwrap();
        let plan = plan_model(&m, later);
        assert_eq!(plan.status, None);
        assert!(plan.events.is_empty());
    }

    #[test]
    fn an_invalid_model_stalls_with_reason_and_one_warning() {
        let mut m = model("churn");
        m.spec.serving.template.spec.as_mut().unwrap().containers.clear();
        let plan = plan_model(&m, now());
        let status = plan.status.unwrap();
        let stalled = conditions::find(&status.conditions, conditions::STALLED).unwrap();
        assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "InvalidServingTemplate"));
        assert_eq!(status.phase, Some(ModelPhase::Stalled));
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.events[0].kind, EventKind::Warning);
        assert_eq!(plan.events[0].reason, "InvalidServingTemplate");

        m.status = Some(status);
        let again = plan_model(&m, now());
        assert_eq!(again.status, None, "a stalled model that did not change writes nothing");
        assert!(again.events.is_empty(), "and emits no second event");
    }

    #[test]
    fn fixing_the_spec_clears_stalled_with_a_normal_event() {
        let mut m = model("churn");
        m.spec.serving.template.spec.as_mut().unwrap().containers.clear();
        m.status = plan_model(&m, now()).status;
        let fixed = {
            let mut f = model("churn");
            f.metadata.generation = Some(2);
            f.status = m.status.clone();
            f
        };
        let plan = plan_model(&fixed, now());
        let status = plan.status.unwrap();
        assert!(!conditions::is_true(&status.conditions, conditions::STALLED));
        assert_eq!(status.phase, Some(ModelPhase::Pending));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(plan.events[0].reason, "SpecFixed");
    }
}
