//! A RetrainPolicy's manual trigger, `pinnedVersion`, and pruning past `versionHistoryLimit`,
//! where the real garbage collector removes what a pruned version owned.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use modelcycle::api::RetrainPolicy;
use serde_json::json;

use super::{
    Behaviour, Steps, apply, deployment, jobs, kwok_model, new_data, patch_model, versions, wait_phase, wait_quiet,
};
use crate::cluster::{Cluster, eventually};
use crate::ensure;

/// `kubectl annotate rtp demand modelcycle.io/retrain-request=<value>` retrains once per value.
pub async fn policy(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "demand";
    // Daily, twelve hours from now: the schedule never fires while the suite runs, whatever the
    // time of day (a fixed 03:00 fired inside the steady-state window of a run at 03:00 UTC).
    let far = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12)).to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!("{} {} * * *", far.minute(), far.hour());
    let policy = json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": name},
        "spec": {"modelRef": {"name": name}, "manual": true, "schedule": {"cron": cron, "timeZone": "UTC"}}
    });
    // Every version trains on dataset version d1; v3's trainer reads other data under it.
    let reads = Behaviour {
        datasets: [(1, "sha256:aaa"), (2, "sha256:aaa"), (3, "sha256:bbb")].into_iter().collect(),
        ..Default::default()
    };
    steps
        .step("a Model with a manual RetrainPolicy serves v1; the policy shows its next scheduled run", async {
            apply(cluster, ns, &kwok_model(name, &reads)).await?;
            apply(cluster, ns, &policy).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
            eventually("the policy's status", Duration::from_secs(30), || async {
                let p = Api::<RetrainPolicy>::namespaced(cluster.client.clone(), ns)
                    .get(name)
                    .await
                    .map_err(|e| e.to_string())?;
                ensure!(
                    p.status.as_ref().and_then(|s| s.next_schedule_time.as_ref()).is_some(),
                    "status {:?}",
                    p.status
                );
                Ok(())
            })
            .await
        })
        .await;
    steps
        .step("annotating the policy with a retrain request trains v2 (trigger Manual), which serves", async {
            cluster.kubectl(&["-n", ns, "annotate", "rtp", name, "modelcycle.io/retrain-request=first"])?;
            let v2 = wait_phase(cluster, ns, name, 2, "Serving", 90).await?;
            ensure!(v2.spec.trigger.reason.contains("Manual"), "v2's trigger is {}", v2.spec.trigger.reason);
            let p = Api::<RetrainPolicy>::namespaced(cluster.client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| e.to_string())?;
            let last = p.status.and_then(|s| s.last_trigger).map(|t| t.reason);
            ensure!(last.as_deref().is_some_and(|r| r.contains("Manual")), "the policy's last trigger is {last:?}");
            Ok(())
        })
        .await;
    steps
        .step("the same request value again retrains nothing; a new value trains v3", async {
            patch_model(cluster, ns, name, json!({"metadata": {"labels": {"touched": "yes"}}})).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            let count = versions(cluster, ns, name).await?.len();
            ensure!(count == 2, "{count} versions after repeating the request");
            cluster.kubectl(&[
                "-n",
                ns,
                "annotate",
                "rtp",
                name,
                "modelcycle.io/retrain-request=second",
                "--overwrite",
            ])?;
            wait_phase(cluster, ns, name, 3, "Serving", 90).await.map(|_| ())
        })
        .await;
    steps
        .step(
            "the digests the trainers reported are recorded: v2 read what v1 read; v3 read other data under d1, flagged by DataStable=False and a Warning Event naming both",
            async {
                let all = versions(cluster, ns, name).await?;
                let condition = |n: u32| {
                    all.get(&n)
                        .and_then(|v| v.status.as_ref())
                        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "DataStable").cloned())
                        .map(|c| (c.status, c.reason))
                };
                ensure!(condition(2) == Some(("True".into(), "SameDigest".into())), "v2: {:?}", condition(2));
                ensure!(condition(3) == Some(("False".into(), "DatasetChanged".into())), "v3: {:?}", condition(3));
                let read = all.get(&3).and_then(|v| v.status.as_ref()?.dataset_read.clone());
                ensure!(read.as_ref().is_some_and(|r| r.digest == "sha256:bbb"), "v3 read {read:?}");
                let events = cluster.kubectl(&[
                    "-n",
                    ns,
                    "get",
                    "events.events.k8s.io",
                    "--field-selector",
                    "reason=DatasetChanged",
                    "-o",
                    "jsonpath={.items[*].type} {.items[*].note}",
                ])?;
                ensure!(
                    events.starts_with("Warning") && events.contains("sha256:aaa") && events.contains("sha256:bbb"),
                    "events: {events}"
                );
                Ok(())
            },
        )
        .await;
}

/// `spec.pinnedVersion` serves exactly that version; removing it holds what serves.
pub async fn pinned(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "eta";
    steps
        .step("v1 serves, then new data makes v2 serve", async {
            apply(cluster, ns, &kwok_model(name, &Behaviour::default())).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
            new_data(cluster, ns, name, "d2").await?;
            wait_phase(cluster, ns, name, 2, "Serving", 90).await.map(|_| ())
        })
        .await;
    steps
        .step("spec.pinnedVersion: 1 (a GitOps rollback) serves v1 again on its own Deployment", async {
            patch_model(cluster, ns, name, json!({"spec": {"pinnedVersion": 1}})).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
            wait_phase(cluster, ns, name, 2, "Retired", 30).await?;
            eventually("the Deployment back on v1", Duration::from_secs(30), || async {
                let d = deployment(cluster, ns, name).await?;
                ensure!(d.as_ref().is_some_and(|(v, r, ready)| v == "1" && r == ready), "Deployment: {d:?}");
                Ok(())
            })
            .await
        })
        .await;
    steps
        .step("removing the pin holds v1 (a Retired v2 is not promoted again); new data then serves v3", async {
            patch_model(cluster, ns, name, json!({"spec": {"pinnedVersion": null}})).await?;
            wait_quiet(cluster, ns, name, 30).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let phases = wait_quiet(cluster, ns, name, 30).await?;
            ensure!(phases.get(&1).map(String::as_str) == Some("Serving"), "after unpinning: {phases:?}");
            new_data(cluster, ns, name, "d3").await?;
            wait_phase(cluster, ns, name, 3, "Serving", 90).await.map(|_| ())
        })
        .await;
}

/// `versionHistoryLimit: 2` after five versions: the oldest are deleted, and the real garbage
/// collector deletes their Jobs and trainer pods through the owner references.
pub async fn pruning(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "churnlite";
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["versionHistoryLimit"] = json!(2);
    steps
        .step("five versions, one after the other, each serving in turn", async {
            apply(cluster, ns, &model_json).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
            for n in 2..=5u32 {
                new_data(cluster, ns, name, &format!("d{n}")).await?;
                wait_phase(cluster, ns, name, n, "Serving", 90).await?;
            }
            Ok(())
        })
        .await;
    steps
        .measure(
            "the versions past the limit are deleted, and the garbage collector removes their Jobs and pods",
            async {
                let kept = eventually("pruning", Duration::from_secs(60), || async {
                    let kept: Vec<u32> = versions(cluster, ns, name).await?.into_keys().collect();
                    ensure!(kept.len() <= 3 && kept.contains(&5), "versions kept: {kept:?}");
                    Ok(kept)
                })
                .await?;
                let collected = eventually("garbage collection", Duration::from_secs(60), || async {
                    let job_versions: Vec<String> =
                        jobs(cluster, ns, name).await?.into_iter().map(|(v, _)| v).collect();
                    let stray: Vec<_> =
                        job_versions.iter().filter(|v| !kept.iter().any(|k| k.to_string() == **v)).collect();
                    ensure!(stray.is_empty(), "Jobs of pruned versions remain: {stray:?} (kept {kept:?})");
                    let pods = trainer_pods(cluster, ns).await?;
                    let stray: Vec<_> = pods
                        .iter()
                        .filter(|p| {
                            !kept.iter().any(|k| Some(&k.to_string()) == p.labels().get("modelcycle.io/version"))
                        })
                        .map(|p| p.name_any())
                        .collect();
                    ensure!(stray.is_empty(), "trainer pods of pruned versions remain: {stray:?}");
                    Ok(job_versions)
                })
                .await?;
                Ok(format!("kept versions {kept:?}, Jobs of versions {collected:?}"))
            },
        )
        .await;
    steps
        .measure(
            "runHistoryLimit: 1 deletes every finished run but the newest, the garbage collector their pods; the versions keep their metrics",
            async {
                patch_model(cluster, ns, name, json!({"spec": {"runHistoryLimit": 1}})).await?;
                let left = eventually("the older runs deleted", Duration::from_secs(60), || async {
                    let job_versions: Vec<String> =
                        jobs(cluster, ns, name).await?.into_iter().map(|(v, _)| v).collect();
                    ensure!(job_versions == ["5"], "Jobs of versions {job_versions:?}, want only v5's");
                    let pods = trainer_pods(cluster, ns).await?;
                    let stray: Vec<_> = pods
                        .iter()
                        .filter(|p| p.labels().get("modelcycle.io/model").map(String::as_str) == Some(name))
                        .filter(|p| p.labels().get("modelcycle.io/version").map(String::as_str) != Some("5"))
                        .map(|p| p.name_any())
                        .collect();
                    ensure!(stray.is_empty(), "trainer pods of deleted runs remain: {stray:?}");
                    Ok(job_versions)
                })
                .await?;
                let all = versions(cluster, ns, name).await?;
                let without: Vec<_> = all
                    .iter()
                    .filter(|(_, v)| v.status.as_ref().is_none_or(|s| s.metrics.is_empty()))
                    .map(|(n, _)| *n)
                    .collect();
                ensure!(all.len() >= 2 && without.is_empty(), "versions without metrics: {without:?} of {:?}", all.keys());
                Ok(format!("Jobs of versions {left:?}; versions {:?} keep their metrics", all.keys().collect::<Vec<_>>()))
            },
        )
        .await;
}

/// The trainer pods in `ns`.
async fn trainer_pods(cluster: &Cluster, ns: &str) -> crate::cluster::Check<Vec<Pod>> {
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/component=training"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(pods.items)
}
