//! The README's quickstart on the real control plane: the Model and the versions' behaviour come
//! from `examples/quickstart` (its scenario's metrics and `healthy: false` become kwok
//! annotations), the scenario's changes are applied in order once the Model has settled, and the
//! cluster must end where `modelcycle simulate examples/quickstart` ends.

use std::collections::BTreeMap;

use modelcycle::sim::Simulation;
use modelcycle::sim::report::Report as SimReport;
use modelcycle::sim::scenario::{Change, Scenario};
use serde_json::{Value, json};

use super::{
    Behaviour, Steps, annotations, apply, condition, deployment, model, patch_model, ready_endpoints, wait_quiet,
};
use crate::cluster::{Check, Cluster};
use crate::ensure;

const NAME: &str = "churn";

/// What kwok must do for the scenario's versions.
fn behaviour(scenario: &Scenario) -> Behaviour {
    let mut behaviour = Behaviour::default();
    for (n, script) in &scenario.file.versions {
        if let Some(metrics) = &script.metrics {
            behaviour.metrics.insert(*n, json!(metrics));
        }
        if script.healthy == Some(false) {
            behaviour.never_ready.push(*n);
        }
        if script.fail.is_some() {
            behaviour.failing.push(*n);
        }
    }
    behaviour
}

/// The scenario's Model with kwok's annotations and a 10 s progress deadline (the cluster's time
/// is not compressed the way the simulator's is).
fn real_model(scenario: &Scenario) -> Check<Value> {
    let mut model = serde_json::to_value(scenario.models.first().ok_or("the quickstart has no Model")?)
        .map_err(|e| e.to_string())?;
    let (training, serving) = annotations(&behaviour(scenario));
    model["metadata"] = json!({"name": NAME});
    model["spec"]["training"]["template"]["metadata"] = json!({"annotations": training});
    model["spec"]["serving"]["template"]["metadata"] = json!({"annotations": serving});
    model["spec"]["serving"]["progressDeadlineSeconds"] = json!(10);
    Ok(model)
}

/// A scenario change as a JSON merge patch.
fn merge_patch(change: &Change) -> Value {
    let mut patch = json!({});
    for (path, value) in &change.set {
        let nested = path.rsplit('.').fold(value.clone(), |inner, part| json!({ part: inner }));
        merge(&mut patch, nested);
    }
    if !change.annotate.is_empty() {
        merge(&mut patch, json!({"metadata": {"annotations": change.annotate}}));
    }
    patch
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

/// The story.
pub async fn run(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let scenario = match Scenario::load(&[cluster.path("examples/quickstart")]) {
        Ok(s) => s,
        Err(e) => {
            steps.step("load examples/quickstart", async { Err(e) }).await;
            return;
        }
    };
    let mut sim = Simulation::new(scenario.clone());
    sim.run();
    let expected = SimReport::of(&sim);

    steps
        .step("v1 trains (the real Job controller runs kwok's trainer pod) and serves on 3 ready pods", async {
            apply(cluster, ns, &real_model(&scenario)?).await?;
            let phases = wait_quiet(cluster, ns, NAME, 120).await?;
            ensure!(phases.get(&1).map(String::as_str) == Some("Serving"), "phases {phases:?}");
            serving_on(cluster, ns, "1", 3).await?;
            let m = model(cluster, ns, NAME).await?;
            ensure!(condition(&m, "Ready").0 == "True", "Ready is {:?}", condition(&m, "Ready"));
            // What a GitOps pipeline does after a commit.
            cluster.kubectl(&["-n", ns, "wait", "--for=condition=Ready", &format!("model/{NAME}"), "--timeout=30s"])?;
            Ok(())
        })
        .await;

    let mut changes = scenario.file.changes.clone();
    changes.sort_by_key(|c| c.at);
    let told = [
        "new data trains v2, which beats v1 and rolls forward; v1 is Retired",
        "v3 regresses the AUC gate and is Rejected; v2 keeps serving, its Deployment untouched",
        "v4 passes its gates but its pods never become ready: the real Deployment controller reports \
         ProgressDeadlineExceeded, v4 is RolledBack to v2 and the Model is Degraded",
    ];
    for (i, change) in changes.iter().enumerate() {
        let what = told.get(i).copied().unwrap_or("a change of the scenario settles");
        steps
            .step(what, async {
                let before = deployment(cluster, ns, NAME).await?;
                patch_model(cluster, ns, NAME, merge_patch(change)).await?;
                let phases = wait_quiet(cluster, ns, NAME, 120).await?;
                let m = model(cluster, ns, NAME).await?;
                let want: BTreeMap<u32, &str> = match i {
                    0 => [(1, "Retired"), (2, "Serving")].into(),
                    1 => [(2, "Serving"), (3, "Rejected")].into(),
                    _ => [(2, "Serving"), (3, "Rejected"), (4, "RolledBack")].into(),
                };
                for (n, phase) in &want {
                    ensure!(phases.get(n).map(String::as_str) == Some(*phase), "v{n} should be {phase}: {phases:?}");
                }
                match i {
                    0 => serving_on(cluster, ns, "2", 3).await?,
                    1 => {
                        let after = deployment(cluster, ns, NAME).await?;
                        ensure!(before == after, "the Deployment changed: {before:?} -> {after:?}");
                    }
                    _ => {
                        let v4 = super::versions(cluster, ns, NAME).await?.remove(&4).ok_or("no v4")?;
                        let said = serde_json::to_string(&v4.status).unwrap_or_default();
                        ensure!(
                            said.contains("ProgressDeadlineExceeded"),
                            "v4's record does not name the deadline: {said}"
                        );
                        ensure!(condition(&m, "Degraded").0 == "True", "Degraded is {:?}", condition(&m, "Degraded"));
                        serving_on(cluster, ns, "2", 3).await?;
                    }
                }
                Ok(())
            })
            .await;
    }

    steps
        .step("the real cluster ends where `modelcycle simulate examples/quickstart` ends", async {
            let expected = expected.models.first().ok_or("the simulation has no Model")?;
            let m = model(cluster, ns, NAME).await?;
            let status = m.status.clone().unwrap_or_default();
            ensure!(
                status.serving_version == expected.serving_version && status.phase == expected.phase,
                "cluster: v{:?} serving, phase {:?}; simulator: v{:?}, {:?}",
                status.serving_version,
                status.phase,
                expected.serving_version,
                expected.phase
            );
            let real = super::versions(cluster, ns, NAME).await?;
            for v in &expected.versions {
                let on_cluster = real.get(&v.version).ok_or(format!("v{} is missing on the cluster", v.version))?;
                let phase = on_cluster.status.as_ref().and_then(|s| s.phase);
                ensure!(phase == v.phase, "v{}: cluster {phase:?}, simulator {:?}", v.version, v.phase);
                ensure!(
                    on_cluster.spec.trigger.reason == v.trigger,
                    "v{} trigger: cluster {}, simulator {}",
                    v.version,
                    on_cluster.spec.trigger.reason,
                    v.trigger
                );
            }
            ensure!(
                real.len() == expected.versions.len(),
                "cluster has {} versions, simulator {}",
                real.len(),
                expected.versions.len()
            );
            Ok(())
        })
        .await;

    steps
        .step(
            "the Service deleted by hand is made again within 5 s: its deletion wakes the Model",
            deleted_by_hand_comes_back(cluster, ns),
        )
        .await;
}

/// A child deleted by hand wakes its Model, which makes it again at once, not at its next look
/// (the suite's controller looks at every Model each 15 s; a real one each 10 minutes).
async fn deleted_by_hand_comes_back(cluster: &Cluster, ns: &str) -> Check {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, DeleteParams};
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let uid = |s: &Service| s.metadata.uid.clone();
    let before = services.get(NAME).await.map_err(|e| e.to_string())?;
    services.delete(NAME, &DeleteParams::default()).await.map_err(|e| e.to_string())?;
    crate::cluster::eventually(
        "the Service deleted by hand to be made again",
        std::time::Duration::from_secs(5),
        || async {
            let now = services.get_opt(NAME).await.map_err(|e| e.to_string())?;
            ensure!(
                now.as_ref().is_some_and(|s| uid(s) != uid(&before)),
                "Service {NAME}: {:?}",
                now.as_ref().map(uid)
            );
            Ok(())
        },
    )
    .await?;
    // And it sends traffic to the serving version's pods again.
    serving_on(cluster, ns, "2", 3).await
}

/// The Deployment runs `version` on `replicas` ready pods and the Service sends traffic only there.
async fn serving_on(cluster: &Cluster, ns: &str, version: &str, replicas: usize) -> Check {
    crate::cluster::eventually(
        "the Service to select the serving version",
        std::time::Duration::from_secs(30),
        || async {
            let d = deployment(cluster, ns, NAME).await?;
            ensure!(
                d.as_ref().is_some_and(|(v, r, ready)| v == version
                    && *r as usize == replicas
                    && *ready as usize == replicas),
                "Deployment {NAME} (version, replicas, ready) = {d:?}"
            );
            let (ready, versions) = ready_endpoints(&cluster.client, ns, NAME).await?;
            ensure!(
                ready == replicas && versions.iter().all(|v| v == version),
                "Service {NAME}: {ready} ready endpoints of versions {versions:?}"
            );
            Ok(())
        },
    )
    .await
}
