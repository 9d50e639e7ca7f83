//! Where a serving Deployment's rollout is, read from its status.

use k8s_openapi::api::apps::v1::Deployment;

/// The state of a Deployment's current rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutState {
    /// The controller has not caught up or pods are still being replaced.
    Progressing,
    /// Every replica runs the current template and is available.
    Complete,
    /// The Deployment gave up: `ProgressDeadlineExceeded`, with its message.
    Failed(String),
}

/// Moves a Deployment towards `desired`: queued in `apply` if what runs differs (then it is
/// Progressing), else the state of its rollout.
pub fn converge(desired: Option<Deployment>, deployments: &[Deployment], apply: &mut Vec<Deployment>) -> RolloutState {
    use crate::objects::deployment::same_spec;
    use kube::ResourceExt;
    let Some(desired) = desired else { return RolloutState::Progressing };
    match deployments.iter().find(|d| d.name_any() == desired.name_any()).filter(|d| same_spec(*d, &desired)) {
        Some(d) => rollout_state(d),
        None => {
            apply.push(desired);
            RolloutState::Progressing
        }
    }
}

/// Reads the rollout state; only trusts status the Deployment controller wrote for this generation.
pub fn rollout_state(deployment: &Deployment) -> RolloutState {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else { return RolloutState::Progressing };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::Progressing;
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let stuck = |c: &&k8s_openapi::api::apps::v1::DeploymentCondition| {
        c.type_ == "Progressing" && c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    };
    if let Some(c) = conditions.iter().find(stuck) {
        return RolloutState::Failed(c.message.clone().unwrap_or_else(|| "progress deadline exceeded".into()));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated >= wanted && available >= wanted && total == wanted {
        RolloutState::Complete
    } else {
        RolloutState::Progressing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use kube::api::ObjectMeta;

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        available: i32,
        total: i32,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(generation), ..Default::default() },
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                replicas: Some(total),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn complete_only_when_every_replica_is_updated_and_available() {
        assert_eq!(rollout_state(&deployment(2, 2, 3, 3, 3, 3)), RolloutState::Complete);
        assert_eq!(rollout_state(&deployment(2, 2, 3, 3, 2, 3)), RolloutState::Progressing);
        assert_eq!(rollout_state(&deployment(2, 2, 3, 3, 3, 4)), RolloutState::Progressing, "old pods still there");
        assert_eq!(
            rollout_state(&deployment(3, 2, 3, 3, 3, 3)),
            RolloutState::Progressing,
            "status of an older generation"
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_a_failure() {
        let mut d = deployment(2, 2, 3, 1, 2, 4);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"churn-abc\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        assert!(matches!(rollout_state(&d), RolloutState::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn scaled_to_zero_is_complete() {
        assert_eq!(rollout_state(&deployment(1, 1, 0, 0, 0, 0)), RolloutState::Complete);
    }
}
