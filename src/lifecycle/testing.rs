//! Values for tests of the pure core: a complete Model and friends.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use kube::api::ObjectMeta;

use crate::api::*;

/// Objects shared as a shell's cache shares them.
pub fn shared<T>(objects: impl IntoIterator<Item = T>) -> Vec<Arc<T>> {
    objects.into_iter().map(Arc::new).collect()
}

/// A succeeded trainer pod with `labels` whose container left `message` as its termination message.
pub fn succeeded_pod(labels: &[(&str, &str)], message: &str) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus};
    Pod {
        metadata: ObjectMeta {
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Succeeded".into()),
            container_statuses: Some(vec![ContainerStatus {
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated { message: Some(message.into()), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// A pod template with one container of the given image.
pub fn template(name: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container { name: name.into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

/// A complete, valid Model in namespace `ml` with generation 1.
pub fn model(name: &str) -> Model {
    let mut m = Model::new(
        name,
        ModelSpec {
            source: None,
            training: Some(TrainingSpec {
                template: template("train", "trainer:1"),
                dataset: DatasetRef { uri: "s3://data/churn".into(), version: "2026-11-01".into() },
                parameters: [("learning_rate".to_string(), "0.1".to_string())].into(),
                active_deadline_seconds: Some(3600),
                backoff_limit: Some(1),
                artifact_uri: "s3://models/{model}/{version}".into(),
                backend: Default::default(),
                train_job: None,
                ray_job: None,
                queue_name: None,
            }),
            evaluation: EvaluationSpec {
                require_stable_data: false,
                gates: vec![Gate {
                    metric: "auc".into(),
                    goal: Goal::Maximize,
                    min: Some(0.8),
                    max: None,
                    min_improvement: None,
                    max_regression: Some(0.01),
                    require_baseline: false,
                }],
            },
            serving: ServingSpec {
                target: Default::default(),
                kserve: None,
                template: template("serve", "server:1"),
                replicas: 2,
                port: 8080,
                strategy: RolloutStrategy::default(),
                promotion: Promotion::Automatic,
                analysis: None,
                progress_deadline_seconds: None,
                traffic_routing: None,
                rollback_window: None,
            },
            pinned_version: None,
            registry: None,
            version_history_limit: 10,
            run_history_limit: 3,
        },
    );
    m.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ml".into()),
        uid: Some(format!("uid-{name}")),
        generation: Some(1),
        ..Default::default()
    };
    m
}
