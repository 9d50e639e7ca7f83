//! The simulated training engines. As the real ones do, a TrainJob runs its trainer as a Job (the
//! node job of its JobSet) and a RayJob as a submitter Job of its own name; the simulated kubelet
//! finishes that Job as the scenario scripts it, and the engine copies the outcome back to its own
//! status: a TrainJob's `Complete`/`Failed` condition and `trainerStatus`, a RayJob's deployment
//! and job statuses.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::engines::{
    EngineCondition, RayJob, RayJobStatus, TrainJob, TrainJobStatus, TrainerMetric, TrainerStatus,
};
use crate::objects::engines::TRAINER_NODES;
use crate::objects::meta::VERSION_LABEL;

use super::cluster::{Cluster, key};
use super::scenario::Scenario;

/// JobSet's label naming a pod's JobSet.
const JOBSET_NAME: &str = "jobset.sigs.k8s.io/jobset-name";

/// The Job a TrainJob's JobSet runs its trainer nodes as: `<name>-node-0`, its pods labelled
/// with the runtime patch's labels and JobSet's.
pub fn train_job_runner(train_job: &TrainJob) -> Job {
    let name = train_job.name_any();
    let mut labels = runtime_patch_labels(train_job);
    labels.insert(JOBSET_NAME.into(), name.clone());
    labels.insert("jobset.sigs.k8s.io/replicatedjob-name".into(), TRAINER_NODES.into());
    labels.insert("jobset.sigs.k8s.io/job-index".into(), "0".into());
    let template =
        PodTemplateSpec { metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }), spec: None };
    runner(train_job, format!("{name}-{TRAINER_NODES}-0"), template)
}

/// The submitter Job KubeRay runs for a RayJob, of the RayJob's name.
pub fn ray_job_runner(ray_job: &RayJob) -> Job {
    let template = ray_job.spec.submitter_pod_template.clone().unwrap_or_default();
    runner(ray_job, ray_job.name_any(), template)
}

/// A Job owned by `engine`. It carries the version's label, by which the simulated kubelet finds
/// its script, but not the Model's: the engine's Jobs are not the Model's children, its pods are.
fn runner<K: Resource<DynamicType = ()>>(engine: &K, name: String, template: PodTemplateSpec) -> Job {
    let version = engine.meta().labels.as_ref().and_then(|l| l.get(VERSION_LABEL).cloned()).unwrap_or_default();
    let owner = OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: engine.name_any(),
        uid: engine.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: engine.meta().namespace.clone(),
            labels: Some(BTreeMap::from([(VERSION_LABEL.to_string(), version)])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec { template, ..Default::default() }),
        status: None,
    }
}

/// The pod labels of modelcycle's runtime patch of a TrainJob (its trainer nodes').
fn runtime_patch_labels(train_job: &TrainJob) -> BTreeMap<String, String> {
    let patches = train_job.spec.runtime_patches.iter();
    let labels = patches.flat_map(|p| {
        let jobs = p.pointer("/trainingRuntimeSpec/template/spec/replicatedJobs").and_then(|j| j.as_array());
        jobs.into_iter().flatten().filter(|j| j.get("name").and_then(|n| n.as_str()) == Some(TRAINER_NODES))
    });
    labels
        .filter_map(|j| j.pointer("/template/spec/template/metadata/labels")?.as_object().cloned())
        .flat_map(|m| m.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_string()))))
        .collect()
}

/// Starts the Job of every TrainJob and RayJob that has none, as the engines' controllers do
/// when one is created (at the time it was created), unless it already finished.
pub fn start(cluster: &mut Cluster) {
    let train_jobs = cluster.train_jobs.values().filter(|t| t.status.as_ref().is_none_or(|s| s.conditions.is_empty()));
    let ray_jobs = cluster.ray_jobs.values().filter(|r| r.status.as_ref().and_then(|s| s.end_time.as_ref()).is_none());
    let runners: Vec<(Job, Option<Time>)> = train_jobs
        .map(|t| (train_job_runner(t), t.metadata.creation_timestamp.clone()))
        .chain(ray_jobs.map(|r| (ray_job_runner(r), r.metadata.creation_timestamp.clone())))
        .filter(|(job, _)| !cluster.jobs.contains_key(&key(job)))
        .collect();
    for (mut job, created) in runners {
        cluster.admit(&mut job.metadata);
        job.metadata.creation_timestamp = created.or(job.metadata.creation_timestamp);
        cluster.jobs.insert(key(&job), Arc::new(job));
    }
}

/// Copies the outcome of every engine's finished Job into the engine's status.
pub fn advance(cluster: &mut Cluster, scenario: &Scenario) {
    let now = cluster.now;
    // The finishing condition of a runner Job, once it has one.
    let finished = |cluster: &Cluster, job: &str| -> Option<JobCondition> {
        let job = cluster.jobs.get(job)?;
        let conditions = job.status.as_ref()?.conditions.as_ref()?;
        conditions.iter().find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed")).cloned()
    };
    let train_jobs: Vec<String> = cluster
        .train_jobs
        .iter()
        .filter(|(_, t)| t.status.as_ref().is_none_or(|s| s.conditions.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    for k in train_jobs {
        let Some(t) = cluster.train_jobs.get(&k) else { continue };
        let runner = key(&train_job_runner(t));
        let Some(c) = finished(cluster, &runner) else { continue };
        let (ok, at, reason, message) = (c.type_ == "Complete", c.last_transition_time, c.reason, c.message);
        let version = t.labels().get(VERSION_LABEL).and_then(|v| v.parse().ok()).unwrap_or(0);
        let metrics = scenario.script(version).metrics.clone().unwrap_or_default();
        let Some(t) = cluster.train_jobs.get_mut(&k).map(Arc::make_mut) else { continue };
        t.status = Some(TrainJobStatus {
            conditions: vec![EngineCondition {
                type_: if ok { "Complete" } else { "Failed" }.into(),
                status: "True".into(),
                reason: reason.or(Some(if ok { "JobsCompleted" } else { "JobsFailed" }.into())),
                message,
                last_transition_time: at,
                ..Default::default()
            }],
            trainer_status: ok.then(|| TrainerStatus {
                progress_percentage: Some(100),
                estimated_remaining_seconds: Some(0),
                metrics: metrics
                    .into_iter()
                    .map(|(name, value)| TrainerMetric { name, value: value.to_string() })
                    .collect(),
                last_updated_time: Some(Time(now)),
            }),
            ..Default::default()
        });
    }
    let ray_jobs: Vec<String> = cluster
        .ray_jobs
        .iter()
        .filter(|(_, r)| r.status.as_ref().and_then(|s| s.end_time.as_ref()).is_none())
        .map(|(k, _)| k.clone())
        .collect();
    for k in ray_jobs {
        let Some(c) = finished(cluster, &k) else {
            if let Some(r) = cluster.ray_jobs.get_mut(&k).map(Arc::make_mut)
                && r.status.is_none()
            {
                r.status = Some(RayJobStatus {
                    job_status: Some("RUNNING".into()),
                    job_deployment_status: Some("Running".into()),
                    ..Default::default()
                });
            }
            continue;
        };
        let (ok, at, reason, message) = (c.type_ == "Complete", c.last_transition_time, c.reason, c.message);
        let Some(r) = cluster.ray_jobs.get_mut(&k).map(Arc::make_mut) else { continue };
        r.status = Some(RayJobStatus {
            job_status: Some(if ok { "SUCCEEDED" } else { "FAILED" }.into()),
            job_deployment_status: Some(if ok { "Complete" } else { "Failed" }.into()),
            reason: (!ok).then(|| reason.unwrap_or_else(|| "AppFailed".into())),
            message,
            end_time: at,
            ..Default::default()
        });
    }
}
