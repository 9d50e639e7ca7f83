//! The training Job of a ModelVersion.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec};
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::{ModelVersion, TrainingSpec};

use super::meta::{controller_ref, labels};
use super::names::job_name;

/// Environment every trainer container receives.
pub fn trainer_env(version: &ModelVersion, training: &TrainingSpec) -> Vec<EnvVar> {
    let spec = &version.spec;
    let mut env = vec![
        env_var("MODELCYCLE_MODEL", &spec.model),
        env_var("MODELCYCLE_VERSION", &spec.version.to_string()),
        env_var("MODELCYCLE_DATASET_URI", &training.dataset.uri),
        env_var("MODELCYCLE_DATASET_VERSION", &training.dataset.version),
        env_var("MODELCYCLE_ARTIFACT_URI", &spec.artifact_uri),
    ];
    for (name, value) in &training.parameters {
        env.push(env_var(&format!("MODELCYCLE_PARAM_{}", name.to_uppercase()), value));
    }
    env
}

/// An environment variable.
pub fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// Sets `env` on a container, replacing variables of the same name the user set.
pub fn inject_env(container: &mut Container, env: &[EnvVar]) {
    let existing = container.env.get_or_insert_with(Vec::new);
    existing.retain(|e| !env.iter().any(|new| new.name == e.name));
    existing.extend(env.iter().cloned());
}

/// The Job that trains `version`; `None` until the ModelVersion has a uid to own it, and for a
/// version taken from a registry.
pub fn training_job(version: &ModelVersion) -> Option<Job> {
    let owner = controller_ref(version)?;
    let spec = &version.spec;
    let training = spec.training.as_ref()?;
    let labels = labels(&spec.model, "training", Some(spec.version));
    let template = trainer_template(version, training);
    Some(Job {
        metadata: ObjectMeta {
            name: Some(job_name(&spec.model, spec.version)),
            namespace: version.namespace(),
            labels: Some(queued(labels, training)),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            template,
            backoff_limit: Some(training.backoff_limit.unwrap_or(0)),
            active_deadline_seconds: training.active_deadline_seconds,
            ..Default::default()
        }),
        status: None,
    })
}

/// Kueue's label naming the queue a workload waits in.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// `labels` with Kueue's queue label when the training names a queue.
pub fn queued(mut labels: BTreeMap<String, String>, training: &TrainingSpec) -> BTreeMap<String, String> {
    if let Some(queue) = &training.queue_name {
        labels.insert(QUEUE_LABEL.into(), queue.clone());
    }
    labels
}

/// The trainer's pod template as every backend runs it: the user's, with the version's labels
/// (the controller watches trainer pods by them), `restartPolicy: Never` unless set, the
/// `MODELCYCLE_*` environment in every container, and the log tail as the termination message
/// of a container that failed without one.
pub fn trainer_template(version: &ModelVersion, training: &TrainingSpec) -> PodTemplateSpec {
    let spec = &version.spec;
    let labels = labels(&spec.model, "training", Some(spec.version));
    let mut template = training.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels.get_or_insert_with(Default::default).extend(labels.clone());
    let pod = template.spec.get_or_insert_with(Default::default);
    pod.restart_policy.get_or_insert_with(|| "Never".into());
    let env = trainer_env(version, training);
    for container in pod.containers.iter_mut().chain(pod.init_containers.iter_mut().flatten()) {
        inject_env(container, &env);
        // The trainer's log tail becomes the message when it wrote none: a clearer failure reason.
        container.termination_message_policy.get_or_insert_with(|| "FallbackToLogsOnError".into());
    }
    template
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::inputs::new_version;
    use crate::lifecycle::testing::model;

    fn version() -> ModelVersion {
        let mut m = model("churn");
        m.spec.training.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].env =
            Some(vec![env_var("MODELCYCLE_VERSION", "user")]);
        let mut v = new_version(&m, 3, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap();
        v.metadata.uid = Some("mv-uid".into());
        v
    }

    #[test]
    fn job_is_not_built_before_its_version_has_a_uid() {
        let mut v = version();
        v.metadata.uid = None;
        assert!(training_job(&v).is_none());
    }

    #[test]
    fn job_carries_labels_owner_limits_and_the_injected_env() {
        let job = training_job(&version()).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("churn-v3-train"));
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "modelcycle");
        assert_eq!(labels["modelcycle.io/model"], "churn");
        assert_eq!(labels["modelcycle.io/version"], "3");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("ModelVersion", "mv-uid"));
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(1));
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let env: Vec<_> = pod.containers[0]
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("MODELCYCLE_MODEL", "churn"),
                ("MODELCYCLE_VERSION", "3"),
                ("MODELCYCLE_DATASET_URI", "s3://data/churn"),
                ("MODELCYCLE_DATASET_VERSION", "2026-11-01"),
                ("MODELCYCLE_ARTIFACT_URI", "s3://models/churn/3"),
                ("MODELCYCLE_PARAM_LEARNING_RATE", "0.1"),
            ],
            "the controller's MODELCYCLE_VERSION replaces the user's"
        );
        assert_eq!(spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap()["modelcycle.io/version"], "3");
    }
}
