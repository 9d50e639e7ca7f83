//! KServe as the serving target on the real API server with KServe's own InferenceService CRD
//! (from the `github.com/kserve/kserve` Go module). No KServe or Knative controller runs here:
//! the story plays KServe's part by writing the InferenceService's status as KServe 0.16 does
//! (revisions, traffic split, conditions) and checks what modelcycle writes at each step.

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};
use modelcycle::api::kserve::InferenceService;
use modelcycle::objects::inference_service::{written_percent, written_version};
use serde_json::{Value, json};

use super::{Behaviour, Steps, apply, kwok_model, new_data, versions, wait_phase};
use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;

fn isvcs(cluster: &Cluster, ns: &str) -> Api<InferenceService> {
    Api::namespaced(cluster.client.clone(), ns)
}

/// The InferenceService once it holds version `n` with `percent` (`None`: no canaryTrafficPercent).
async fn wait_isvc(cluster: &Cluster, ns: &str, name: &str, n: u32, percent: Option<i64>) -> Check<InferenceService> {
    eventually(&format!("InferenceService {name} to hold v{n} at {percent:?}"), Duration::from_secs(90), || async {
        let isvc = isvcs(cluster, ns).get_opt(name).await.map_err(|e| e.to_string())?.ok_or("no InferenceService")?;
        let held = (written_version(&isvc), written_percent(&isvc));
        ensure!(held == (Some(n), percent), "it holds {held:?}");
        Ok(isvc)
    })
    .await
}

/// Writes the predictor's status as KServe does: revisions, the traffic split and conditions.
async fn play(cluster: &Cluster, ns: &str, name: &str, predictor: Value, failed: Option<&str>) -> Check {
    let mut conditions = vec![
        json!({"type": "PredictorReady", "status": if failed.is_some() { "False" } else { "True" }}),
        json!({"type": "Ready", "status": if failed.is_some() { "False" } else { "True" }}),
    ];
    if let Some(message) = failed {
        conditions.push(
            json!({"type": "PredictorConfigurationReady", "status": "False", "reason": "RevisionFailed", "message": message}),
        );
    }
    let generation = isvcs(cluster, ns).get(name).await.map_err(|e| e.to_string())?.metadata.generation;
    let status = json!({"status": {"observedGeneration": generation, "conditions": conditions,
                                   "components": {"predictor": predictor}}});
    isvcs(cluster, ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn split(created: &str, ready: &str, rolled_out: &str, traffic: &[(&str, i64)]) -> Value {
    let traffic: Vec<Value> = traffic
        .iter()
        .enumerate()
        .map(|(i, (r, p))| json!({"revisionName": r, "percent": p, "latestRevision": i == 0}))
        .collect();
    json!({"latestCreatedRevision": created, "latestReadyRevision": ready,
           "latestRolledoutRevision": rolled_out, "traffic": traffic})
}

/// A Model served by KServe in Knative mode with a two-step canary: v1 serves, v2 moves through
/// canaryTrafficPercent 10 and 50 to all requests, v3's revision fails and is rolled back.
pub async fn kserve(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "scorer";
    let mut model_json = kwok_model(name, &Behaviour::default());
    let own_serving = model_json["spec"]["serving"].clone();
    let serving = &mut model_json["spec"]["serving"];
    *serving = json!({
        "target": "KServe",
        "kserve": {"deploymentMode": "Knative",
                   "predictor": {"minReplicas": 1, "model": {"modelFormat": {"name": "sklearn"}}}},
        "strategy": {"canary": {"steps": [{"weight": 10, "pause": "4s"}, {"weight": 50, "pause": "4s"}]}}
    });
    let r = |n: u32| format!("{name}-predictor-{n:05}");
    steps
        .step(
            "v1 is written to an InferenceService the real KServe CRD admits, and serves once KServe reports its revision ready",
            async {
                apply(cluster, ns, &model_json).await?;
                let isvc = wait_isvc(cluster, ns, name, 1, None).await?;
                let uri = isvc.spec.predictor["model"]["storageUri"].as_str().unwrap_or_default().to_string();
                ensure!(uri == "s3://models/scorer/1", "storageUri {uri}");
                ensure!(isvc.spec.predictor["model"]["modelFormat"]["name"] == "sklearn", "the user's predictor is kept");
                let annotations = isvc.metadata.annotations.clone().unwrap_or_default();
                ensure!(
                    annotations.get("serving.kserve.io/deploymentMode").map(String::as_str) == Some("Knative"),
                    "annotations {annotations:?}"
                );
                let owner = isvc.metadata.owner_references.clone().unwrap_or_default();
                ensure!(owner.first().is_some_and(|o| o.kind == "Model" && o.name == name), "owner: {owner:?}");
                play(cluster, ns, name, split(&r(1), &r(1), &r(1), &[(&r(1), 100)]), None).await?;
                wait_phase(cluster, ns, name, 1, "Serving", 30).await.map(|_| ())
            },
        )
        .await;
    steps
        .measure(
            "v2: canaryTrafficPercent 10, then 50, then removed, each as KServe reports the split before; v1 retired",
            async {
                new_data(cluster, ns, name, "d2").await?;
                let started = Instant::now();
                let mut seen = vec![];
                for percent in [Some(10), Some(50), None] {
                    wait_isvc(cluster, ns, name, 2, percent).await?;
                    seen.push(percent.map_or("all".to_string(), |p| p.to_string()));
                    let predictor = match percent {
                        Some(p) => split(&r(2), &r(2), &r(1), &[(&r(2), p), (&r(1), 100 - p)]),
                        None => split(&r(2), &r(2), &r(2), &[(&r(2), 100)]),
                    };
                    play(cluster, ns, name, predictor, None).await?;
                }
                wait_phase(cluster, ns, name, 2, "Serving", 30).await?;
                wait_phase(cluster, ns, name, 1, "Retired", 10).await?;
                let v2 = versions(cluster, ns, name).await?.remove(&2).ok_or("no v2")?;
                let revision = v2.status.and_then(|s| s.kserve).and_then(|k| k.revision);
                ensure!(revision.as_deref() == Some(r(2).as_str()), "v2 records revision {revision:?}");
                Ok(format!("canaryTrafficPercent {} in {:.0?}", seen.join(" → "), started.elapsed()))
            },
        )
        .await;
    steps
        .step(
            "v3: KServe reports its revision failed; v3 is RolledBack with KServe's words, v2 is written again with canaryTrafficPercent 0, then takes all requests in its new revision",
            async {
                new_data(cluster, ns, name, "d3").await?;
                wait_isvc(cluster, ns, name, 3, Some(10)).await?;
                let failed = split(&r(3), &r(2), &r(2), &[(&r(2), 100)]);
                play(cluster, ns, name, failed, Some("Revision \"scorer-predictor-00003\" failed: image pull back-off"))
                    .await?;
                wait_phase(cluster, ns, name, 3, "RolledBack", 30).await?;
                let v3 = versions(cluster, ns, name).await?.remove(&3).ok_or("no v3")?;
                let back = v3.status.and_then(|s| s.decisions.last().cloned()).ok_or("no decision")?;
                ensure!(back.reason == "RevisionFailed" && back.message.contains("image pull back-off"), "{back:?}");
                wait_isvc(cluster, ns, name, 2, Some(0)).await?;
                play(cluster, ns, name, split(&r(4), &r(4), &r(2), &[(&r(4), 0), (&r(2), 100)]), None).await?;
                wait_isvc(cluster, ns, name, 2, None).await?;
                play(cluster, ns, name, split(&r(4), &r(4), &r(4), &[(&r(4), 100)]), None).await?;
                wait_phase(cluster, ns, name, 2, "Serving", 10).await.map(|_| ())
            },
        )
        .await;
    steps
        .step(
            "moved back to target Deployment: v2 rolls out in the Model's own Deployment, then the InferenceService is deleted (the real RBAC authorizer allows it)",
            async {
                let mut back = model_json.clone();
                back["spec"]["serving"] = own_serving.clone();
                // Only the serving target changes: the dataset stays where the steps above left
                // it (d3), or the apply would be new training inputs and train a v4 from d1.
                back["spec"]["training"]["dataset"]["version"] = json!("d3");
                apply(cluster, ns, &back).await?;
                eventually("the InferenceService to be deleted", Duration::from_secs(90), || async {
                    let left = isvcs(cluster, ns).get_opt(name).await.map_err(|e| e.to_string())?;
                    ensure!(left.is_none(), "InferenceService {name} is still there");
                    Ok(())
                })
                .await?;
                let deployment = super::deployment(cluster, ns, name).await?.ok_or("no Deployment")?;
                ensure!(deployment.2 >= 1, "the Deployment has {} available pods", deployment.2);
                wait_phase(cluster, ns, name, 2, "Serving", 10).await.map(|_| ())
            },
        )
        .await;
}

/// A Model served by KServe in Standard mode (KServe's default): no revisions and no canary; a
/// new version is taken once KServe's Deployment observed the change and reports Ready.
pub async fn kserve_standard(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "ranker";
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["serving"] = json!({
        "target": "KServe",
        "kserve": {"predictor": {"model": {"modelFormat": {"name": "xgboost"}}}}
    });
    // KServe's status in Standard mode: the Deployment's observed generation, Ready from it.
    let report = |ready: bool| async move {
        let isvc = isvcs(cluster, ns).get(name).await.map_err(|e| e.to_string())?;
        let value = if ready { "True" } else { "False" };
        let status = json!({"status": {"observedGeneration": isvc.metadata.generation,
            "conditions": [{"type": "PredictorReady", "status": value}, {"type": "Ready", "status": value}]}});
        isvcs(cluster, ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    steps
        .step("Standard mode: v1 serves once KServe reports Ready, then v2 replaces it in place, never with a canaryTrafficPercent", async {
            apply(cluster, ns, &model_json).await?;
            let isvc = wait_isvc(cluster, ns, name, 1, None).await?;
            let mode = isvc.metadata.annotations.clone().unwrap_or_default().get("serving.kserve.io/deploymentMode").cloned();
            ensure!(mode.as_deref() == Some("Standard"), "deploymentMode {mode:?}");
            report(true).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 30).await?;
            new_data(cluster, ns, name, "d2").await?;
            wait_isvc(cluster, ns, name, 2, None).await?;
            // KServe's old status (v1's Deployment, Ready) must not promote v2: nothing changes
            // until its Deployment observed the new generation.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let v2 = versions(cluster, ns, name).await?.remove(&2).and_then(|v| v.status?.phase);
            ensure!(v2 == Some(modelcycle::api::VersionPhase::RollingOut), "v2 is {v2:?} before KServe took it");
            report(true).await?;
            wait_phase(cluster, ns, name, 2, "Serving", 30).await?;
            wait_phase(cluster, ns, name, 1, "Retired", 10).await.map(|_| ())
        })
        .await;
}
