//! The objects that train a version on an engine: a Kubeflow Trainer `TrainJob` or a KubeRay
//! `RayJob`, named, labelled and owned as a training Job is.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use crate::api::ModelVersion;
use crate::api::engines::{RayJob, RayJobSpec, RuntimeRef, TrainJob, TrainJobSpec, Trainer};

use super::job::{queued, trainer_env, trainer_template};
use super::meta::{controller_ref, labels};
use super::names::run_name;

/// The name Kubeflow Trainer's runtimes give the replicated job of the trainer nodes, whose pods
/// modelcycle labels (through a runtime patch) to read the rank-0 pod's termination message.
pub const TRAINER_NODES: &str = "node";

/// Who owns modelcycle's runtime patch of a TrainJob.
pub const PATCH_MANAGER: &str = "modelcycle.io/controller";

/// The TrainJob that trains `version`: the trainer is the first container of the version's
/// trainer template (image, command, args, environment with the `MODELCYCLE_*` variables, and
/// its resources as each node's); the trainer pods carry the version's labels. `None` until the
/// ModelVersion has a uid, and for a version that does not train on a TrainJob.
///
/// The trainer pods' labels and annotations come through a runtime patch of the runtime's
/// `node` replicated job, the name Kubeflow Trainer's runtimes give the trainer nodes.
pub fn train_job(version: &ModelVersion) -> Option<TrainJob> {
    let owner = controller_ref(version)?;
    let spec = &version.spec;
    let training = spec.training.as_ref()?;
    let settings = training.train_job.as_ref()?;
    let template = trainer_template(version, training);
    let container = template.spec.as_ref()?.containers.first()?.clone();
    // The trainer pods carry the template's labels (the version's among them) and annotations.
    let mut pod_meta = serde_json::Map::new();
    if let Some(meta) = template.metadata.as_ref() {
        pod_meta.insert("labels".into(), json!(meta.labels.clone().unwrap_or_default()));
        if let Some(annotations) = meta.annotations.as_ref().filter(|a| !a.is_empty()) {
            pod_meta.insert("annotations".into(), json!(annotations));
        }
    }
    let patch = json!({
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
            "name": TRAINER_NODES,
            "template": {"spec": {"template": {"metadata": pod_meta}}},
        }]}}},
    });
    let kind = match settings.runtime_ref.kind {
        crate::api::engines::RuntimeKind::ClusterTrainingRuntime => "ClusterTrainingRuntime",
        crate::api::engines::RuntimeKind::TrainingRuntime => "TrainingRuntime",
    };
    Some(TrainJob {
        metadata: owned_meta(version, owner, training),
        spec: TrainJobSpec {
            runtime_ref: Some(RuntimeRef {
                name: settings.runtime_ref.name.clone(),
                api_group: Some("trainer.kubeflow.org".into()),
                kind: Some(kind.into()),
            }),
            trainer: Some(Trainer {
                image: container.image,
                command: container.command,
                args: container.args,
                env: container.env.unwrap_or_default(),
                num_nodes: settings.num_nodes,
                resources_per_node: container.resources,
                num_proc_per_node: settings.num_proc_per_node.map(Value::from),
            }),
            runtime_patches: vec![patch],
            active_deadline_seconds: training.active_deadline_seconds,
            rest: BTreeMap::new(),
        },
        status: None,
    })
}

/// The RayJob that trains `version`: the entrypoint on a Ray cluster made for it (or an existing
/// one), the `MODELCYCLE_*` variables in its runtime environment, and the version's trainer
/// template as the submitter pod, labelled as a trainer pod. `None` until the ModelVersion has a
/// uid, and for a version that does not train on a RayJob.
pub fn ray_job(version: &ModelVersion) -> Option<RayJob> {
    let owner = controller_ref(version)?;
    let spec = &version.spec;
    let training = spec.training.as_ref()?;
    let settings = training.ray_job.as_ref()?;
    let env: BTreeMap<String, String> =
        trainer_env(version, training).into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect();
    let runtime_env = serde_yaml::to_string(&json!({ "env_vars": env })).ok();
    Some(RayJob {
        metadata: owned_meta(version, owner, training),
        spec: RayJobSpec {
            entrypoint: Some(settings.entrypoint.clone()),
            runtime_env_yaml: runtime_env,
            ray_cluster_spec: settings.ray_cluster_spec.clone(),
            cluster_selector: settings.cluster_selector.clone(),
            // A cluster made for one version goes with it, unless asked to stay.
            shutdown_after_job_finishes: settings
                .shutdown_after_job_finishes
                .or(settings.ray_cluster_spec.is_some().then_some(true)),
            active_deadline_seconds: training.active_deadline_seconds.and_then(|s| i32::try_from(s).ok()),
            backoff_limit: training.backoff_limit,
            submitter_pod_template: Some(trainer_template(version, training)),
            rest: BTreeMap::new(),
        },
        status: None,
    })
}

fn owned_meta(
    version: &ModelVersion,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    training: &crate::api::TrainingSpec,
) -> ObjectMeta {
    let spec = &version.spec;
    ObjectMeta {
        name: Some(run_name(training.backend, &spec.model, spec.version)),
        namespace: version.namespace(),
        labels: Some(queued(labels(&spec.model, "training", Some(spec.version)), training)),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}
