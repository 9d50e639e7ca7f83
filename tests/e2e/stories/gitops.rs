//! What a GitOps user sees when a commit carries input only the controller can judge: Flux's
//! kstatus says Failed and Argo CD Degraded (with the reason), and the next commit that fixes it
//! brings the Model through InProgress/Progressing to Current/Healthy. Every other story's steps
//! are judged too (see `gitops.rs`); this one holds the verdicts no other story reaches.

use std::time::Duration;

use serde_json::json;

use super::{Behaviour, Steps, apply, kwok_model, wait_phase};
use crate::cluster::{Cluster, eventually};
use crate::ensure;
use crate::gitops::verdict;

const NAME: &str = "churn";

/// Waits until kstatus and Argo CD say `kstatus` and `health` of `kind/name`, and the messages
/// both carry `says`.
async fn says(
    cluster: &Cluster,
    ns: &str,
    object: (&str, &str),
    verdicts: (&str, &str),
    says: &str,
) -> crate::cluster::Check {
    let (kind, name) = object;
    let (kstatus, health) = verdicts;
    eventually(&format!("{kind} {name} to be {kstatus} and {health}"), Duration::from_secs(30), || async {
        let v = verdict(cluster, ns, kind, name).await?;
        ensure!(v.kstatus == kstatus && v.health == health, "{v:?}");
        ensure!(v.kstatus_message.contains(says) && v.health_message.contains(says), "{v:?}");
        Ok(())
    })
    .await
}

pub async fn gitops(cluster: &Cluster, t: &mut Steps<'_>) {
    let ns = t.ns().to_string();
    let ns = ns.as_str();
    let behaviour = Behaviour { training_time: Some("6s".into()), failing: vec![2], ..Default::default() };
    let mut model = kwok_model(NAME, &behaviour);
    model["spec"]["training"]["template"]["spec"]["restartPolicy"] = json!("Always");
    t.step("a trainer with restartPolicy Always is Stalled: kstatus Failed, Argo CD Degraded, saying why", async {
        apply(cluster, ns, &model).await?;
        says(cluster, ns, ("Model", NAME), ("Failed", "Degraded"), "restartPolicy").await
    })
    .await;
    let policy = json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": "weekly"},
        "spec": {"modelRef": {"name": "chrun"}, "schedule": {"cron": "0 4 * * 1"}}
    });
    t.step("a RetrainPolicy naming a Model that does not exist: Failed and Degraded (ModelNotFound)", async {
        apply(cluster, ns, &policy).await?;
        says(cluster, ns, ("RetrainPolicy", "weekly"), ("Failed", "Degraded"), "chrun").await
    })
    .await;
    model["spec"]["training"]["template"]["spec"]["restartPolicy"] = json!("Never");
    t.step("the next commit fixes the trainer: InProgress and Progressing while v1 trains", async {
        apply(cluster, ns, &model).await?;
        wait_phase(cluster, ns, NAME, 1, "Training", 30).await?;
        let v = verdict(cluster, ns, "Model", NAME).await?;
        ensure!(v.kstatus == "InProgress" && v.health == "Progressing", "while v1 trains: {v:?}");
        let v = verdict(cluster, ns, "ModelVersion", &format!("{NAME}-v1")).await?;
        ensure!(v.kstatus == "InProgress" && v.health == "Progressing", "v1 while it trains: {v:?}");
        Ok(())
    })
    .await;
    t.step("v1 serves: the Model Current and Healthy, v1 Current and Healthy", async {
        wait_phase(cluster, ns, NAME, 1, "Serving", 60).await?;
        says(cluster, ns, ("Model", NAME), ("Current", "Healthy"), "").await?;
        says(cluster, ns, ("ModelVersion", &format!("{NAME}-v1")), ("Current", "Healthy"), "").await
    })
    .await;
    let mut fixed = policy.clone();
    fixed["spec"]["modelRef"]["name"] = json!(NAME);
    t.step("the policy's typo fixed: Current and Healthy", async {
        apply(cluster, ns, &fixed).await?;
        says(cluster, ns, ("RetrainPolicy", "weekly"), ("Current", "Healthy"), "").await
    })
    .await;
    t.step("a commit with new data trains v2, whose trainer fails: v2 Failed and Degraded, the Model (v1 serves) Current and Healthy", async {
        super::new_data(cluster, ns, NAME, "d2").await?;
        wait_phase(cluster, ns, NAME, 2, "Failed", 60).await?;
        says(cluster, ns, ("ModelVersion", &format!("{NAME}-v2")), ("Failed", "Degraded"), "").await?;
        says(cluster, ns, ("Model", NAME), ("Current", "Healthy"), "").await
    })
    .await;
}
