//! Canary (judged on live metrics from a real Prometheus), blue-green and a manual promote gate,
//! watched as they happen on the real cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use super::{
    Behaviour, Steps, apply, condition, deployment, kwok_model, model, new_data, patch_model, ready_endpoints,
    service_track, versions, wait_phase, wait_quiet,
};
use crate::cluster::{Check, Cluster};
use crate::ensure;

#[path = "../../support/prometheus.rs"]
pub mod prometheus;

/// What a rollout looked like while it ran, sampled every 100 ms.
#[derive(Debug, Default)]
struct Watched {
    /// Replica counts of the canary Deployment seen.
    canary_replicas: BTreeSet<i32>,
    /// The `modelcycle.io/track` the Service selected, in the order seen.
    tracks: Vec<String>,
    /// Whether a preview Service existed at some point.
    preview_service: bool,
    /// The fewest ready endpoints behind the Service.
    fewest_ready: usize,
}

/// Samples the rollout of `name` in `ns` until version `n` reaches `phase` and neither a canary
/// nor a preview Deployment is left (a version may serve before its rollout has tidied up).
async fn watch_until(cluster: &Cluster, ns: &str, name: &str, n: u32, phase: &str, seconds: u64) -> Check<Watched> {
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let mut seen = Watched { fewest_ready: usize::MAX, ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        // The version first: a phase read after the objects could be newer than them (the real
        // API server showed it: the preview Deployment read as absent just before it was made,
        // then v2 read as Serving just after the switch, and the switch went unseen).
        let all = versions(cluster, ns, name).await?;
        let current = all.get(&n).and_then(|v| v.status.as_ref()?.phase).map(|p| format!("{p:?}"));
        let canary = deployment(cluster, ns, &format!("{name}-canary")).await?;
        if let Some((_, replicas, _)) = canary {
            seen.canary_replicas.insert(replicas);
        }
        let preview = deployment(cluster, ns, &format!("{name}-preview")).await?;
        if let Some(track) = service_track(cluster, ns, name).await?
            && seen.tracks.last() != Some(&track)
        {
            seen.tracks.push(track);
        }
        seen.preview_service |=
            services.get_opt(&format!("{name}-preview")).await.map_err(|e| e.to_string())?.is_some();
        seen.fewest_ready = seen.fewest_ready.min(ready_endpoints(&cluster.client, ns, name).await?.0);
        if current.as_deref() == Some(phase) && canary.is_none() && preview.is_none() {
            return Ok(seen);
        }
        ensure!(Instant::now() < deadline, "v{n} is {current:?}, not {phase}, after {seconds}s; saw {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A canary in two steps (34%, 67% of 3 replicas) judged on an error ratio that a real Prometheus
/// scrapes: v2's is low and it is promoted, v3's is high and it is rolled back.
pub async fn canary(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "ranker";
    let exposition = format!(
        "# TYPE e2e_error_ratio gauge\ne2e_error_ratio{{namespace=\"{ns}\",version=\"2\"}} 0.01\ne2e_error_ratio{{namespace=\"{ns}\",version=\"3\"}} 0.5\n"
    );
    let prometheus = prometheus::TestPrometheus::start(&exposition).await;
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["serving"]["replicas"] = json!(3);
    model_json["spec"]["serving"]["strategy"] =
        json!({"canary": {"steps": [{"weight": 34, "pause": "3s"}, {"weight": 67, "pause": "3s"}]}});
    model_json["spec"]["serving"]["analysis"] = json!({
        "prometheus": {"address": prometheus.address},
        "interval": "10s",
        "metrics": [{"name": "error-ratio", "max": 0.05,
            "query": "max(e2e_error_ratio{namespace=\"{{namespace}}\",version=\"{{version}}\"})"}]
    });
    steps
        .step("v1 serves (nothing served before it, so no canary)", async {
            apply(cluster, ns, &model_json).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await.map(|_| ())
        })
        .await;
    steps
        .measure(
            "v2 runs as a canary on 1, then 2 of 3 pods, passes its analysis on live metrics and is promoted",
            async {
                new_data(cluster, ns, name, "d2").await?;
                let seen = watch_until(cluster, ns, name, 2, "Serving", 120).await?;
                ensure!(
                    seen.canary_replicas.contains(&1) && seen.canary_replicas.contains(&2),
                    "canary replicas seen: {:?}",
                    seen.canary_replicas
                );
                ensure!(seen.fewest_ready >= 1, "the Service had no ready endpoint at some point: {seen:?}");
                wait_quiet(cluster, ns, name, 30).await?;
                let d = deployment(cluster, ns, name).await?;
                ensure!(d.as_ref().is_some_and(|(v, r, _)| v == "2" && *r == 3), "stable Deployment: {d:?}");
                ensure!(
                    deployment(cluster, ns, &format!("{name}-canary")).await?.is_none(),
                    "the canary Deployment is left over"
                );
                let v2 = versions(cluster, ns, name).await?.remove(&2).ok_or("no v2")?;
                let analysis = v2.status.and_then(|s| s.analysis).ok_or("v2 has no analysis status")?;
                ensure!(!analysis.measurements.is_empty(), "v2 was promoted without a measurement");
                Ok(format!(
                    "{} measurements; at least {} ready endpoints throughout",
                    analysis.measurements.len(),
                    seen.fewest_ready
                ))
            },
        )
        .await;
    steps
        .step(
            "v3's error ratio fails its analysis: the canary is removed, v3 RolledBack, v2 keeps serving, Degraded",
            async {
                new_data(cluster, ns, name, "d3").await?;
                let seen = watch_until(cluster, ns, name, 3, "RolledBack", 120).await?;
                ensure!(seen.fewest_ready >= 1, "the Service had no ready endpoint at some point: {seen:?}");
                wait_quiet(cluster, ns, name, 30).await?;
                let all = versions(cluster, ns, name).await?;
                ensure!(
                    all.get(&2).and_then(|v| v.status.as_ref()?.phase).map(|p| format!("{p:?}")).as_deref()
                        == Some("Serving"),
                    "v2 no longer serves"
                );
                let d = deployment(cluster, ns, name).await?;
                ensure!(d.as_ref().is_some_and(|(v, r, _)| v == "2" && *r == 3), "stable Deployment: {d:?}");
                ensure!(
                    deployment(cluster, ns, &format!("{name}-canary")).await?.is_none(),
                    "the canary Deployment is left over"
                );
                let m = model(cluster, ns, name).await?;
                ensure!(condition(&m, "Degraded").0 == "True", "Degraded is {:?}", condition(&m, "Degraded"));
                Ok(())
            },
        )
        .await;
    drop(prometheus);
}

/// Blue-green: v2 runs in the preview Deployment (with a preview Service), the Service switches to
/// it, and after the scale-down delay the stable Deployment runs v2 and the preview goes.
pub async fn blue_green(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "scorer";
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["serving"]["strategy"] = json!({"blueGreen": {"scaleDownDelay": "5s", "previewService": true}});
    steps
        .step("v1 serves behind the Service, which selects the stable track", async {
            apply(cluster, ns, &model_json).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
            super::eventually("two ready endpoints", Duration::from_secs(30), || async {
                let (ready, _) = ready_endpoints(&cluster.client, ns, name).await?;
                ensure!(ready == 2, "{ready} ready endpoints");
                ensure!(service_track(cluster, ns, name).await?.as_deref() == Some("stable"), "not the stable track");
                Ok(())
            })
            .await
        })
        .await;
    steps
        .measure("v2 starts in the preview, the Service switches to it, then the stable Deployment takes v2 and the preview goes", async {
            new_data(cluster, ns, name, "d2").await?;
            let seen = watch_until(cluster, ns, name, 2, "Serving", 120).await?;
            wait_quiet(cluster, ns, name, 60).await?;
            super::wait_blue_green_done(cluster, ns, name).await?;
            ensure!(seen.tracks.iter().any(|t| t == "preview"), "the Service never selected the preview: {:?}", seen.tracks);
            ensure!(seen.preview_service, "no preview Service was made");
            ensure!(seen.fewest_ready >= 1, "the Service had no ready endpoint at some point: {seen:?}");
            super::eventually("v2 on every ready endpoint", Duration::from_secs(30), || async {
                let d = deployment(cluster, ns, name).await?;
                ensure!(d.as_ref().is_some_and(|(v, r, ready)| v == "2" && *r == 2 && *ready == 2), "stable Deployment: {d:?}");
                let (ready, running) = ready_endpoints(&cluster.client, ns, name).await?;
                ensure!(ready == 2 && running.iter().all(|v| v == "2"), "{ready} ready endpoints of {running:?}");
                Ok(())
            })
            .await?;
            Ok(format!("the Service selected the tracks {:?}", seen.tracks))
        })
        .await;
}

/// `promotion: Manual`: v2 waits, shown in `kubectl get mdl`, until `modelcycle.io/promote: "2"`;
/// the annotation left behind is stale for v3, which is reported with an Event.
pub async fn manual(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "pricing";
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["serving"]["promotion"] = json!("Manual");
    steps
        .step("v1 serves at once (nothing served before it)", async {
            apply(cluster, ns, &model_json).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await.map(|_| ())
        })
        .await;
    steps
        .step("v2 passes its gates and waits: kubectl get mdl shows WaitingForPromotion, v1 keeps serving", async {
            new_data(cluster, ns, name, "d2").await?;
            wait_phase(cluster, ns, name, 2, "Ready", 60).await?;
            super::eventually("kubectl get mdl to show WaitingForPromotion", Duration::from_secs(20), || async {
                let row = cluster.kubectl(&["-n", ns, "get", "mdl", name, "--no-headers"])?;
                ensure!(row.contains("WaitingForPromotion"), "kubectl get mdl: {row}");
                Ok(())
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let d = deployment(cluster, ns, name).await?;
            ensure!(d.as_ref().is_some_and(|(v, _, _)| v == "1"), "the Deployment moved without approval: {d:?}");
            Ok(())
        })
        .await;
    steps
        .step("kubectl annotate model pricing modelcycle.io/promote=2 rolls v2 out; v1 is Retired", async {
            cluster.kubectl(&["-n", ns, "annotate", "model", name, "modelcycle.io/promote=2", "--overwrite"])?;
            wait_phase(cluster, ns, name, 2, "Serving", 60).await?;
            wait_phase(cluster, ns, name, 1, "Retired", 30).await.map(|_| ())
        })
        .await;
    steps
        .step(
            "v3 waits in turn; the promote annotation still naming v2 is reported StalePromotion with an Event",
            async {
                new_data(cluster, ns, name, "d3").await?;
                wait_phase(cluster, ns, name, 3, "Ready", 60).await?;
                super::eventually("a StalePromotion Event", Duration::from_secs(30), || async {
                    let events = Api::<Event>::namespaced(cluster.client.clone(), ns)
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.clone()).collect();
                    ensure!(reasons.iter().any(|r| r == "StalePromotion"), "Event reasons: {reasons:?}");
                    Ok(())
                })
                .await?;
                let m = model(cluster, ns, name).await?;
                ensure!(m.status.as_ref().and_then(|s| s.candidate_version) == Some(3), "candidate: {:?}", m.status);
                // Left waiting: `kubectl get mdl` then shows a candidate.
                patch_model(cluster, ns, name, json!({"metadata": {"labels": {"e2e.modelcycle.io/left": "waiting"}}}))
                    .await
            },
        )
        .await;
}
