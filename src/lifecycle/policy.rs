//! Checks of a RetrainPolicy that only the controller can make: its Model, its uniqueness, its schedule.

use std::sync::Arc;

use std::str::FromStr;

use crate::api::{RetrainPolicy, RetrainPolicyStatus};

use super::conditions;
use super::plan::{Plan, health_conditions, stalled_events};
use super::validate::{POLICY_QUERY_PLACEHOLDERS, Problem, unknown_placeholder};

/// Decides the status and Events of a RetrainPolicy from the policy, what it depends on, and `now`.
pub fn plan_policy(policy: &RetrainPolicy, world: &PolicyWorld, now: jiff::Timestamp) -> Plan<RetrainPolicyStatus> {
    let old = policy.status.clone().unwrap_or_default();
    let problems = policy_problems(policy, world);
    let mut status = old.clone();
    let desired = health_conditions(&problems, (true, "Active", "the policy drives its Model"), None);
    status.observed_generation = policy.metadata.generation;
    conditions::set_all(&mut status.conditions, &desired, policy.metadata.generation, now);
    let events = stalled_events(&old.conditions, &status.conditions);
    Plan { status: (policy.status.as_ref() != Some(&status)).then_some(status), events, requeue_after: None }
}

/// What the controller knows about the other objects a policy depends on.
#[derive(Clone, Debug, Default)]
pub struct PolicyWorld<'a> {
    /// Whether the referenced Model exists.
    pub model_exists: bool,
    /// Names of the policies in the namespace that reference the same Model, this one included.
    pub policies_for_model: Vec<(&'a str, Option<jiff::Timestamp>)>,
    /// The registered model the Model takes its versions from, when it does (`spec.source`):
    /// nothing retrains it.
    pub model_source: Option<String>,
}

impl<'a> PolicyWorld<'a> {
    /// The world of policies that all name one Model, which exists.
    pub fn of_existing_model(policies: &'a [Arc<RetrainPolicy>], model_source: Option<String>) -> Self {
        let policies_for_model = policies
            .iter()
            .map(|p| {
                (p.metadata.name.as_deref().unwrap_or_default(), p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            })
            .collect();
        Self { model_exists: true, policies_for_model, model_source }
    }
}

/// Every problem of a RetrainPolicy; empty when it can be acted on.
pub fn policy_problems(policy: &RetrainPolicy, world: &PolicyWorld) -> Vec<Problem> {
    let mut problems = vec![];
    let model = &policy.spec.model_ref.name;
    if !world.model_exists {
        problems.push(Problem {
            reason: "ModelNotFound",
            message: format!("spec.modelRef names Model {model:?}, which does not exist in this namespace"),
        });
    }
    if let Some(name) = &world.model_source {
        problems.push(Problem {
            reason: "ModelNotTrained",
            message: format!(
                "Model {model:?} takes its versions from MLflow registered model {name:?} (spec.source), so nothing retrains it; a new version arrives when one is registered there. Delete this policy, or give the Model spec.training"
            ),
        });
    }
    if let Some(owner) = owning_policy(&world.policies_for_model)
        && Some(owner) != policy.metadata.name.as_deref()
    {
        problems.push(Problem {
            reason: "DuplicatePolicy",
            message: format!("RetrainPolicy {owner:?} already drives Model {model:?}; a Model has one RetrainPolicy"),
        });
    }
    let known = &POLICY_QUERY_PLACEHOLDERS;
    if let Some(drift) = &policy.spec.drift {
        problems.extend(unknown_placeholder("spec.drift.query", &drift.query, known, "InvalidDriftQuery"));
    }
    if let Some(perf) = &policy.spec.performance {
        problems.extend(unknown_placeholder("spec.performance.query", &perf.query, known, "InvalidPerformanceQuery"));
    }
    if let Some(schedule) = &policy.spec.schedule {
        if let Err(e) = croner::Cron::from_str(&schedule.cron) {
            problems.push(Problem {
                reason: "InvalidSchedule",
                message: format!("spec.schedule.cron {:?} is not a valid cron expression: {e}", schedule.cron),
            });
        }
        if jiff::tz::TimeZone::get(&schedule.time_zone).is_err() {
            problems.push(Problem {
                reason: "UnknownTimeZone",
                message: format!("spec.schedule.timeZone {:?} is not a known IANA time zone", schedule.time_zone),
            });
        }
    }
    problems
}

/// The policy that drives `model` among those that name it: the oldest that has no problem.
pub fn driving_policy(policies: &[Arc<RetrainPolicy>]) -> Option<&RetrainPolicy> {
    let world = PolicyWorld::of_existing_model(policies, None);
    policies.iter().map(AsRef::as_ref).find(|p| policy_problems(p, &world).is_empty())
}

/// The policy that drives a Model when several name it: the oldest, ties broken by name.
fn owning_policy<'a>(policies: &[(&'a str, Option<jiff::Timestamp>)]) -> Option<&'a str> {
    policies.iter().min_by_key(|(name, created)| (*created, *name)).map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::*;

    fn policy(name: &str, cron: &str, tz: &str) -> RetrainPolicy {
        let mut p = RetrainPolicy::new(
            name,
            RetrainPolicySpec {
                model_ref: ModelRef { name: "churn".into() },
                schedule: Some(ScheduleTrigger { cron: cron.into(), time_zone: tz.into(), starting_deadline: None }),
                data_change: false,
                manual: false,
                drift: None,
                performance: None,
                prometheus: None,
                cooldown: None,
                max_retrains_per_day: None,
                concurrency_policy: ConcurrencyPolicy::Forbid,
                suspend: false,
            },
        );
        p.metadata.namespace = Some("ml".into());
        p
    }

    fn ts(s: i64) -> Option<jiff::Timestamp> {
        Some(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn policy_for_existing_model_has_no_problem() {
        let world = PolicyWorld { model_exists: true, policies_for_model: vec![("a", ts(1))], model_source: None };
        assert!(policy_problems(&policy("a", "0 3 * * *", "Europe/Berlin"), &world).is_empty());
    }

    #[test]
    fn missing_model_is_named() {
        let world = PolicyWorld { model_exists: false, policies_for_model: vec![("a", ts(1))], model_source: None };
        let problems = policy_problems(&policy("a", "0 3 * * *", "UTC"), &world);
        assert_eq!(problems[0].reason, "ModelNotFound");
        assert!(problems[0].message.contains("\"churn\""));
    }

    #[test]
    fn the_younger_of_two_policies_for_one_model_is_the_duplicate() {
        let world = PolicyWorld {
            model_exists: true,
            policies_for_model: vec![("old", ts(1)), ("new", ts(2))],
            model_source: None,
        };
        assert!(policy_problems(&policy("old", "0 3 * * *", "UTC"), &world).is_empty());
        let problems = policy_problems(&policy("new", "0 3 * * *", "UTC"), &world);
        assert_eq!(problems[0].reason, "DuplicatePolicy");
        assert!(problems[0].message.contains("\"old\""));
    }

    #[test]
    fn cron_that_passed_admission_but_does_not_parse_is_a_problem() {
        let world = PolicyWorld { model_exists: true, policies_for_model: vec![("a", ts(1))], model_source: None };
        let problems = policy_problems(&policy("a", "61 3 * * *", "UTC"), &world);
        assert_eq!(problems[0].reason, "InvalidSchedule");
    }

    #[test]
    fn plan_stalls_a_policy_for_a_missing_model_once() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let world = PolicyWorld { model_exists: false, policies_for_model: vec![("a", ts(1))], model_source: None };
        let mut p = policy("a", "0 3 * * *", "UTC");
        let plan = plan_policy(&p, &world, now);
        let status = plan.status.unwrap();
        assert!(conditions::is_true(&status.conditions, conditions::STALLED));
        assert_eq!(plan.events[0].reason, "ModelNotFound");
        p.status = Some(status);
        let again = plan_policy(&p, &world, now);
        assert!(again.status.is_none() && again.events.is_empty());
        let healed = plan_policy(&p, &PolicyWorld { model_exists: true, ..world }, now);
        assert!(conditions::is_true(&healed.status.unwrap().conditions, conditions::READY));
    }

    #[test]
    fn unknown_time_zone_is_a_problem() {
        let world = PolicyWorld { model_exists: true, policies_for_model: vec![("a", ts(1))], model_source: None };
        let problems = policy_problems(&policy("a", "0 3 * * *", "Mars/Olympus_Mons"), &world);
        assert_eq!(problems[0].reason, "UnknownTimeZone");
    }
}
