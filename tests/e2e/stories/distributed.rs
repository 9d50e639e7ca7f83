//! Training beyond one node on the real API server, with the engines' own CRDs: Kubeflow
//! Trainer's `TrainJob` (from the `github.com/kubeflow/trainer/v2` Go module) and KubeRay's
//! `RayJob` (from `github.com/ray-project/kuberay/ray-operator`). Neither engine's controller runs
//! here: the stories play them. For a TrainJob, Trainer's status (`trainerStatus` progress and
//! metrics, then the `Complete` condition); for a RayJob, KubeRay's submitter — a real Job made from
//! the RayJob's `submitterPodTemplate`, owned by the RayJob, which the real Job controller and kwok
//! run to a termination message — and the RayJob's status once it completes.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use modelcycle::api::engines::{RayJob, TrainJob};
use serde_json::{Value, json};

use super::{Behaviour, Steps, apply, kwok_model, new_data, versions, wait_phase};
use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;

/// The object `name` of kind `K` in `ns`, once it exists.
async fn wait_for<K>(cluster: &Cluster, ns: &str, name: &str) -> Check<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), ns);
    eventually(&format!("{} {name}", K::kind(&())), Duration::from_secs(60), || async {
        api.get_opt(name).await.map_err(|e| e.to_string())?.ok_or_else(|| "not there yet".to_string())
    })
    .await
}

/// Waits until the object `name` of kind `K` is gone.
async fn wait_gone<K>(cluster: &Cluster, ns: &str, name: &str) -> Check
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), ns);
    eventually(&format!("{} {name} to be deleted", K::kind(&())), Duration::from_secs(60), || async {
        let left = api.get_opt(name).await.map_err(|e| e.to_string())?;
        ensure!(left.is_none_or(|o| o.meta().deletion_timestamp.is_some()), "still there");
        Ok(())
    })
    .await
}

fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default()
}

/// Writes a TrainJob's status as Kubeflow Trainer v2.2 does.
pub async fn play_train_job(cluster: &Cluster, ns: &str, name: &str, status: Value) -> Check {
    Api::<TrainJob>::namespaced(cluster.client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({ "status": status })))
        .await
        .map(|_| ())
        .map_err(|e| format!("TrainJob {name}'s status: {e}"))
}

/// Plays KubeRay for the RayJob `name`: runs its submitter as a Job of the RayJob's name, owned
/// by it, from its `submitterPodTemplate` (the real Job controller and kwok run it), then writes
/// the RayJob's status as KubeRay does once the Ray job succeeded.
pub async fn play_ray_job(cluster: &Cluster, ns: &str, name: &str) -> Check {
    let ray_job: RayJob = wait_for(cluster, ns, name).await?;
    let template = ray_job.spec.submitter_pod_template.clone().ok_or("the RayJob has no submitter template")?;
    let owner = ray_job.controller_owner_ref(&()).ok_or("the RayJob has no uid")?;
    let submitter = Job {
        metadata: ObjectMeta { name: Some(name.into()), owner_references: Some(vec![owner]), ..Default::default() },
        spec: Some(JobSpec { template, backoff_limit: Some(0), ..Default::default() }),
        status: None,
    };
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), ns);
    jobs.create(&PostParams::default(), &submitter).await.map_err(|e| format!("the submitter Job: {e}"))?;
    eventually(&format!("the submitter Job {name} to complete"), Duration::from_secs(60), || async {
        let job = jobs.get(name).await.map_err(|e| e.to_string())?;
        let done = job.status.and_then(|s| s.succeeded).unwrap_or(0);
        ensure!(done >= 1, "not complete yet");
        Ok(())
    })
    .await?;
    let status = json!({"status": {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete",
                                   "startTime": now(), "endTime": now(), "message": "Job finished successfully."}});
    Api::<RayJob>::namespaced(cluster.client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
        .map_err(|e| format!("RayJob {name}'s status: {e}"))
}

/// A Model on a TrainJob: v1's TrainJob as the real CRD admits it, its progress on the version,
/// its metrics from `trainerStatus` gating it, and it serves.
pub async fn train_job(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "recommender";
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["training"]["backend"] = json!("TrainJob");
    model["spec"]["training"]["trainJob"] =
        json!({"runtimeRef": {"name": "torch-distributed"}, "numNodes": 2, "numProcPerNode": 4});
    model["spec"]["training"]["queueName"] = json!("team-ml");
    let train_job = "recommender-v1-train";
    steps
        .step(
            "v1 trains as a TrainJob the real Kubeflow Trainer CRD admits: the trainer, its nodes, the MODELCYCLE_* env, Kueue's queue, owned by its ModelVersion",
            async {
                apply(cluster, ns, &model).await?;
                let t: TrainJob = wait_for(cluster, ns, train_job).await?;
                let trainer = t.spec.trainer.clone().ok_or("no trainer")?;
                ensure!(trainer.image.as_deref() == Some("registry.example/e2e-trainer:1"), "trainer {trainer:?}");
                ensure!(trainer.num_nodes == Some(2) && trainer.num_proc_per_node == Some(json!(4)), "{trainer:?}");
                let version = trainer.env.iter().find(|e| e.name == "MODELCYCLE_VERSION");
                ensure!(version.and_then(|e| e.value.as_deref()) == Some("1"), "env {:?}", trainer.env);
                ensure!(t.labels().get("kueue.x-k8s.io/queue-name").map(String::as_str) == Some("team-ml"), "labels");
                let owner = t.owner_references().first().cloned().ok_or("no owner")?;
                ensure!(owner.kind == "ModelVersion" && owner.name == "recommender-v1", "owner {owner:?}");
                let runtime = t.spec.runtime_ref.clone().ok_or("no runtimeRef")?;
                ensure!(runtime.name == "torch-distributed", "runtimeRef {runtime:?}");
                wait_phase(cluster, ns, name, 1, "Training", 30).await.map(|_| ())
            },
        )
        .await;
    steps
        .step("the progress Trainer reports in trainerStatus shows on the version while it trains", async {
            let status = json!({"trainerStatus": {"progressPercentage": 40, "estimatedRemainingSeconds": 90,
                                                  "metrics": [{"name": "loss", "value": "0.42"}],
                                                  "lastUpdatedTime": now()}});
            play_train_job(cluster, ns, train_job, status).await?;
            eventually("v1's progress", Duration::from_secs(30), || async {
                let v1 = versions(cluster, ns, name).await?.remove(&1).ok_or("no v1")?;
                let progress = v1.status.and_then(|s| s.progress).ok_or("no progress yet")?;
                ensure!(progress.percent == Some(40) && progress.remaining_seconds == Some(90), "{progress:?}");
                ensure!(progress.metrics.get("loss").map(String::as_str) == Some("0.42"), "{progress:?}");
                Ok(())
            })
            .await
        })
        .await;
    steps
        .step("Trainer's Complete condition and trainerStatus metrics gate v1, and it serves", async {
            let status = json!({
                "conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted",
                                "message": "TrainJob is completed", "lastTransitionTime": now()}],
                "trainerStatus": {"progressPercentage": 100, "estimatedRemainingSeconds": 0,
                                  "metrics": [{"name": "auc", "value": "0.93"}], "lastUpdatedTime": now()}
            });
            play_train_job(cluster, ns, train_job, status).await?;
            let v1 = wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
            let auc = v1.status.as_ref().and_then(|s| s.metrics.get("auc").copied());
            ensure!(auc == Some(0.93), "metrics {:?}", v1.status.map(|s| s.metrics));
            Ok(())
        })
        .await;
}

/// A Model on a RayJob with `concurrencyPolicy: Replace`: v1's RayJob as the real CRD admits it,
/// judged by its submitter's report; new data while v2 trains deletes v2's RayJob, v3 serves.
pub async fn ray_job(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "forecast";
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["training"]["backend"] = json!("RayJob");
    let ray = json!({"rayStartParams": {}, "template": {"spec": {"containers": [{"name": "ray", "image": "rayproject/ray:2.41.0"}]}}});
    model["spec"]["training"]["rayJob"] = json!({
        "entrypoint": "python train.py",
        "rayClusterSpec": {"headGroupSpec": ray,
                           "workerGroupSpecs": [{"groupName": "workers", "replicas": 2, "minReplicas": 0, "maxReplicas": 4,
                                                 "rayStartParams": {}, "template": ray["template"].clone()}]}
    });
    let policy = json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": name},
        "spec": {"modelRef": {"name": name}, "dataChange": true, "concurrencyPolicy": "Replace"}
    });
    steps
        .step(
            "v1 trains as a RayJob the real KubeRay CRD admits: the entrypoint, the MODELCYCLE_* env in its runtime environment, the trainer template as its submitter",
            async {
                apply(cluster, ns, &model).await?;
                apply(cluster, ns, &policy).await?;
                let r: RayJob = wait_for(cluster, ns, "forecast-v1-train").await?;
                ensure!(r.spec.entrypoint.as_deref() == Some("python train.py"), "entrypoint {:?}", r.spec.entrypoint);
                let env = r.spec.runtime_env_yaml.clone().unwrap_or_default();
                ensure!(env.contains("MODELCYCLE_VERSION") && env.contains("s3://models/forecast/1"), "runtime env {env}");
                ensure!(r.spec.shutdown_after_job_finishes == Some(true), "the version's Ray cluster goes with it");
                let submitter = r.spec.submitter_pod_template.clone().ok_or("no submitter")?;
                let labels = submitter.metadata.and_then(|m| m.labels).unwrap_or_default();
                ensure!(labels.get("app.kubernetes.io/component").map(String::as_str) == Some("training"), "{labels:?}");
                wait_phase(cluster, ns, name, 1, "Training", 30).await.map(|_| ())
            },
        )
        .await;
    steps
        .step(
            "KubeRay's part played (its submitter Job runs, the Ray job SUCCEEDED): v1 is gated on the submitter's termination message and serves",
            async {
                play_ray_job(cluster, ns, "forecast-v1-train").await?;
                let v1 = wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
                let progress = v1.status.as_ref().and_then(|s| s.progress.clone()).ok_or("no progress")?;
                ensure!(progress.message.as_deref() == Some("RayJob Complete, Ray job SUCCEEDED"), "{progress:?}");
                ensure!(v1.status.and_then(|s| s.metrics.get("auc").copied()) == Some(0.9), "the submitter's report");
                Ok(())
            },
        )
        .await;
    steps
        .step(
            "new data while v2 trains (concurrencyPolicy Replace): v2's RayJob is deleted, v3's runs and serves",
            async {
                new_data(cluster, ns, name, "d2").await?;
                let _: RayJob = wait_for(cluster, ns, "forecast-v2-train").await?;
                wait_phase(cluster, ns, name, 2, "Training", 30).await?;
                new_data(cluster, ns, name, "d3").await?;
                wait_phase(cluster, ns, name, 2, "Failed", 30).await?;
                wait_gone::<RayJob>(cluster, ns, "forecast-v2-train").await?;
                play_ray_job(cluster, ns, "forecast-v3-train").await?;
                wait_phase(cluster, ns, name, 3, "Serving", 60).await?;
                wait_phase(cluster, ns, name, 1, "Retired", 30).await.map(|_| ())
            },
        )
        .await;
}
