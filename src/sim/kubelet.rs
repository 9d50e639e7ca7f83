//! The simulated kubelet and controllers: Jobs finish as scripted, Deployments become available
//! (or never do), at the times the scenario gives.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use std::sync::Arc;

use crate::lifecycle::triggers::after;
use crate::objects::deployment::deployed_version;
use crate::objects::meta::VERSION_LABEL;

use super::cluster::Cluster;
use super::scenario::Scenario;

/// How long a Deployment that never becomes available takes to report ProgressDeadlineExceeded
/// when its spec sets no `progressDeadlineSeconds` (Kubernetes' default).
pub const PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_secs(600);

fn job_version(labels: &std::collections::BTreeMap<String, String>) -> u32 {
    labels.get(VERSION_LABEL).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// When each unfinished Job finishes, by key.
fn job_deadlines(cluster: &Cluster, scenario: &Scenario) -> Vec<(String, Timestamp)> {
    cluster
        .jobs
        .iter()
        .filter(|(_, j)| j.status.as_ref().is_none_or(|s| s.conditions.is_none()))
        .map(|(k, j)| {
            let started = j.metadata.creation_timestamp.as_ref().map_or(cluster.now, |t| t.0);
            let took = scenario.script(job_version(j.labels())).training_time.map_or(SignedDuration::ZERO, |d| d.0);
            (k.clone(), after(started, took))
        })
        .collect()
}

/// When each Deployment's current rollout ends, by key, and whether it ends well.
fn rollout_deadlines(cluster: &Cluster, scenario: &Scenario) -> Vec<(String, Timestamp, bool)> {
    cluster
        .deployments
        .iter()
        .filter(|(_, d)| d.status.as_ref().and_then(|s| s.observed_generation) != d.metadata.generation)
        .map(|(k, d)| {
            let script = scenario.script(deployed_version(d).unwrap_or(0));
            let started = cluster.rollout_started.get(k).copied().unwrap_or(cluster.now);
            let healthy = script.healthy.unwrap_or(true);
            let deadline =
                d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).map(|s| SignedDuration::from_secs(s.into()));
            let took = if healthy {
                script.rollout_time.map_or(SignedDuration::ZERO, |d| d.0)
            } else {
                deadline.unwrap_or(PROGRESS_DEADLINE)
            };
            (k.clone(), after(started, took), healthy)
        })
        .collect()
}

/// The next time anything in the cluster changes by itself.
pub fn next_event(cluster: &Cluster, scenario: &Scenario) -> Option<Timestamp> {
    let jobs = job_deadlines(cluster, scenario).into_iter().map(|(_, t)| t);
    let rollouts = rollout_deadlines(cluster, scenario).into_iter().map(|(_, t, _)| t);
    jobs.chain(rollouts).min()
}

/// Finishes every Job and rollout due by `cluster.now`.
pub fn advance(cluster: &mut Cluster, scenario: &Scenario) {
    let now = cluster.now;
    for (k, due) in job_deadlines(cluster, scenario) {
        if due > now {
            continue;
        }
        let Some(job) = cluster.jobs.get_mut(&k).map(Arc::make_mut) else { continue };
        let script = scenario.script(job_version(job.labels()));
        let status = job.status.get_or_insert_with(JobStatus::default);
        let condition = |type_: &str, reason: &str, message: &str| JobCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(due)),
            ..Default::default()
        };
        if let Some(reason) = &script.fail {
            status.failed = Some(1);
            status.conditions = Some(vec![condition("Failed", reason, "the trainer failed (scripted)")]);
            continue;
        }
        status.succeeded = Some(1);
        status.completion_time = Some(Time(due));
        status.conditions = Some(vec![condition("Complete", "CompletionsReached", "")]);
        let message = script.termination_message.clone().unwrap_or_else(|| {
            let mut report = serde_json::json!({"metrics": script.metrics.clone().unwrap_or_default()});
            let mut reference = script.reference.clone().unwrap_or_default();
            if script.reference_from_live == Some(true) {
                let elapsed = due.duration_since(scenario.start());
                let step = scenario.file.live.drift.iter().rev().find(|s| s.at.0 <= elapsed);
                if let Some(mut histogram) = step.and_then(|s| s.value.histogram.clone()) {
                    // JSON has no infinity: a trainer reports the finite buckets, and the
                    // comparison with live histograms lines Prometheus' `+Inf` bucket up again.
                    if histogram.bounds.last().is_some_and(|b| b.is_infinite()) {
                        histogram.bounds.pop();
                        histogram.counts.pop();
                    }
                    reference.insert("predictions".into(), histogram);
                }
            }
            if !reference.is_empty() {
                report["reference"] = serde_json::to_value(&reference).unwrap_or_default();
            }
            if let Some(dataset) = &script.dataset {
                report["dataset"] = serde_json::to_value(dataset).unwrap_or_default();
            }
            report.to_string()
        });
        let job_name = job.name_any();
        let mut labels =
            job.spec.as_ref().and_then(|s| s.template.metadata.as_ref()?.labels.clone()).unwrap_or_default();
        labels.insert("batch.kubernetes.io/job-name".into(), job_name.clone());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(format!("{job_name}-pod")),
                namespace: job.namespace(),
                labels: Some(labels),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Succeeded".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "trainer".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            message: Some(message),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let pod_key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        cluster.pods.insert(pod_key, Arc::new(pod));
    }
    for (k, due, healthy) in rollout_deadlines(cluster, scenario) {
        if due > now {
            continue;
        }
        let Some(d) = cluster.deployments.get_mut(&k).map(Arc::make_mut) else { continue };
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let (available, total, condition) = if healthy {
            (replicas, replicas, ("True", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed."))
        } else {
            let old = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            (old, old + 1, ("False", "ProgressDeadlineExceeded", "ReplicaSet has timed out progressing."))
        };
        d.status = Some(DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(total),
            updated_replicas: Some(if healthy { replicas } else { 1 }),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: condition.0.into(),
                reason: Some(condition.1.into()),
                message: Some(condition.2.into()),
                last_update_time: Some(Time(due)),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }
}
