//! Traffic through Gateway API on the real API server with Gateway API's own CRDs: the Model's
//! `HTTPRoute` carries a header cohort, then real weights, then all to the new version; a rule a
//! person added to that route and a route of their own on the same Gateway survive every write.
//! (No gateway data plane runs here: the routes themselves are what is checked.)

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use modelcycle::api::gateway::HttpRoute;
use serde_json::json;

use super::{Behaviour, Steps, apply, deployment, kwok_model, new_data, versions, wait_phase, wait_quiet};
use crate::cluster::{Check, Cluster};
use crate::ensure;

fn gateways(cluster: &Cluster, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway");
    Api::namespaced_with(cluster.client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn routes(cluster: &Cluster, ns: &str) -> Api<HttpRoute> {
    Api::namespaced(cluster.client.clone(), ns)
}

/// The share the route `name` sends to the canary (`None` without a route), `+cohort` while a
/// cohort rule exists, and whether the rule named `docs` (a person's) is still there.
async fn route_state(cluster: &Cluster, ns: &str, name: &str) -> Check<Option<(String, bool, String)>> {
    let Some(route) = routes(cluster, ns).get_opt(name).await.map_err(|e| e.to_string())? else { return Ok(None) };
    let share = modelcycle::objects::route::route_share(&route);
    let docs = route.spec.rules.iter().any(|r| r.name.as_deref() == Some("docs"));
    let stable = route
        .spec
        .rules
        .iter()
        .find(|r| r.name.as_deref() == Some("modelcycle"))
        .and_then(|r| r.backend_refs.first())
        .map(|b| format!("{}={}", b.name, b.weight.unwrap_or(1)))
        .unwrap_or_default();
    Ok(Some((share, docs, stable)))
}

/// A two-step canary through the route: the `x-cohort: beta` cohort alone, then 20% of requests.
pub async fn gateway(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "ranker";
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["serving"]["trafficRouting"] = json!({"gatewayAPI": {
        "parentRefs": [{"name": "public"}],
        "hostnames": ["ranker.example.com"],
        "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}]
    }});
    model_json["spec"]["serving"]["strategy"] = json!({"canary": {"shadow": {"duration": "10s", "percent": 50}, "steps": [
        {"weight": 0, "headers": [{"name": "x-cohort", "value": "beta"}], "pause": "6s"},
        {"weight": 20, "pause": "6s"}
    ]}});
    let theirs = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "team-docs"},
        "spec": {"parentRefs": [{"name": "public"}], "hostnames": ["docs.example.com"],
                 "rules": [{"backendRefs": [{"name": "docs", "port": 80}]}]}
    });
    let mut their_version = String::new();
    steps
        .step(
            "a Gateway and a person's own HTTPRoute on it; v1 serves behind the Model's HTTPRoute, all to stable",
            async {
                let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "public"},
                "spec": {"gatewayClassName": "e2e", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
                let obj: DynamicObject = serde_json::from_value(gateway).map_err(|e| e.to_string())?;
                gateways(cluster, ns)
                    .patch("public", &PatchParams::apply("team").force(), &Patch::Apply(&obj))
                    .await
                    .map_err(|e| e.to_string())?;
                let route: HttpRoute = serde_json::from_value(theirs.clone()).map_err(|e| e.to_string())?;
                let created = routes(cluster, ns)
                    .patch("team-docs", &PatchParams::apply("team").force(), &Patch::Apply(&route))
                    .await
                    .map_err(|e| e.to_string())?;
                their_version = created.metadata.resource_version.unwrap_or_default();
                apply(cluster, ns, &model_json).await?;
                wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
                let state = wait_route(cluster, ns, name, |s| s.0 == "0", 30).await?;
                ensure!(state.2 == "ranker-stable=100", "the weighted rule sends {}", state.2);
                let route = routes(cluster, ns).get(name).await.map_err(|e| e.to_string())?;
                let owner = route.metadata.owner_references.clone().unwrap_or_default();
                ensure!(owner.first().is_some_and(|o| o.kind == "Model" && o.name == name), "owner: {owner:?}");
                ensure!(
                    route.spec.parent_refs.first().is_some_and(|p| p["name"] == "public"),
                    "parentRefs: {:?}",
                    route.spec.parent_refs
                );
                for svc in ["ranker-stable", "ranker-canary"] {
                    let found = Api::<k8s_openapi::api::core::v1::Service>::namespaced(cluster.client.clone(), ns)
                        .get_opt(svc)
                        .await
                        .map_err(|e| e.to_string())?;
                    ensure!(found.is_some(), "no backend Service {svc}");
                }
                Ok(())
            },
        )
        .await;
    steps
        .step("a person adds a rule of their own to the Model's HTTPRoute", async {
            let mut route = routes(cluster, ns).get(name).await.map_err(|e| e.to_string())?;
            route.metadata.managed_fields = None;
            route.spec.rules.push(
                serde_json::from_value(json!({"name": "docs",
                "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
                "backendRefs": [{"name": "docs", "port": 80}]}))
                .map_err(|e| e.to_string())?,
            );
            let params = PostParams { field_manager: Some("team".into()), ..Default::default() };
            routes(cluster, ns).replace(name, &params, &route).await.map_err(|e| e.to_string())?;
            Ok(())
        })
        .await;
    steps
        .measure("v2: the route mirrors half the requests to v2 (shadow), then sends it the beta cohort, then 20% by weight, then nothing; only to available canary pods; the person's rule and route survive", async {
            new_data(cluster, ns, name, "d2").await?;
            let mut shares: Vec<String> = vec![];
            let mut canary_replicas = std::collections::BTreeSet::new();
            let mut fewest_stable = i32::MAX;
            let deadline = Instant::now() + Duration::from_secs(150);
            loop {
                let all = versions(cluster, ns, name).await?;
                let v2 = all.get(&2).and_then(|v| v.status.as_ref()?.phase).map(|p| format!("{p:?}"));
                // The canary is read before and after the route: the route may change between
                // two reads, so only a route that sent requests while the canary had no ready pod
                // at either read (before and after) breaks the rule.
                let canary = deployment(cluster, ns, "ranker-canary").await?;
                let stable = deployment(cluster, ns, name).await?;
                let (share, docs, _) = route_state(cluster, ns, name).await?.ok_or("the Model's HTTPRoute is gone")?;
                ensure!(docs, "the person's rule was removed from the route; shares so far {shares:?}");
                if share != "0" {
                    let before = canary.as_ref().map_or(0, |c| c.2);
                    let after = deployment(cluster, ns, "ranker-canary").await?.map_or(0, |c| c.2);
                    ensure!(before.max(after) >= 1, "the route sends {share} to the canary, which has no ready pod (read before and after the route)");
                }
                if let Some((_, replicas, _)) = canary {
                    canary_replicas.insert(replicas);
                }
                fewest_stable = fewest_stable.min(stable.map_or(0, |s| s.1));
                if shares.last() != Some(&share) {
                    shares.push(share);
                }
                if v2.as_deref() == Some("Serving") && canary.is_none() {
                    break;
                }
                ensure!(Instant::now() < deadline, "v2 is {v2:?} after 150 s; route shares seen {shares:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let order: Vec<&str> = shares.iter().map(String::as_str).filter(|s| ["0+mirror", "0+cohort", "20"].contains(s)).collect();
            ensure!(order == ["0+mirror", "0+cohort", "20"], "route shares seen: {shares:?}");
            ensure!(shares.last().map(String::as_str) == Some("0"), "after promotion the route still sends {shares:?}");
            ensure!(canary_replicas == [1].into(), "canary replicas seen: {canary_replicas:?} (20% of 2 is one pod)");
            ensure!(fewest_stable == 2, "the stable side dropped to {fewest_stable} replicas during the canary");
            wait_quiet(cluster, ns, name, 30).await?;
            let after = routes(cluster, ns).get("team-docs").await.map_err(|e| e.to_string())?;
            ensure!(after.metadata.resource_version.as_deref() == Some(their_version.as_str()), "the person's own HTTPRoute was written to");
            let d = deployment(cluster, ns, name).await?;
            ensure!(d.as_ref().is_some_and(|(v, r, _)| v == "2" && *r == 2), "stable Deployment: {d:?}");
            Ok(format!("route shares {}", shares.join(" → ")))
        })
        .await;
    steps
        .step("the abort annotation on the serving v2 brings v1 back at once, in place, and the route keeps everything on stable", async {
            let patch = json!({"metadata": {"annotations": {"modelcycle.io/abort": "2"}}});
            super::patch_model(cluster, ns, name, patch).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
            wait_phase(cluster, ns, name, 2, "RolledBack", 30).await?;
            wait_quiet(cluster, ns, name, 30).await?;
            // v1 is Serving from the moment of the decision; the Deployment is written after
            // the versions' statuses (a run read it in between).
            crate::cluster::eventually("the stable Deployment back on v1", std::time::Duration::from_secs(30), || async {
                let d = deployment(cluster, ns, name).await?;
                ensure!(d.as_ref().is_some_and(|(v, r, _)| v == "1" && *r == 2), "stable Deployment: {d:?}");
                Ok(())
            })
            .await?;
            ensure!(deployment(cluster, ns, "ranker-canary").await?.is_none(), "a canary was started for the rollback");
            let v2 = versions(cluster, ns, name).await?.remove(&2).ok_or("no v2")?;
            let last = v2.status.and_then(|s| s.decisions.last().cloned()).ok_or("v2 has no decision")?;
            ensure!(last.reason == "Aborted", "v2's last decision: {last:?}");
            let (share, docs, stable) = route_state(cluster, ns, name).await?.ok_or("the route is gone")?;
            ensure!(share == "0" && docs && stable == "ranker-stable=100", "route: {share} {docs} {stable}");
            Ok(())
        })
        .await;
    let v1: &[u64] = &[400, 300, 200, 100];
    let v3: &[u64] = &[100, 200, 300, 400];
    let prometheus =
        super::progressive::prometheus::TestPrometheus::start(&super::progressive::prometheus::scores_by_version(&[
            (1, v1),
            (3, v3),
        ]))
        .await;
    steps
        .measure("v3 answers a mirrored copy of the requests, but its predicted scores in a real Prometheus are far from v1's: it is rolled back in its shadow, never sent a request", async {
            let analysis = json!({"spec": {"serving": {"analysis": {
                "prometheus": {"address": prometheus.address},
                "interval": "10s",
                "metrics": [{"name": "prediction-agreement", "max": 0.1,
                    "query": "sum by (le) (model_score_bucket{version=\"{{version}}\"})",
                    "distribution": {"method": "JensenShannon", "minSamples": 100}}]
            }}}});
            super::patch_model(cluster, ns, name, analysis).await?;
            new_data(cluster, ns, name, "d3").await?;
            let mut shares: Vec<String> = vec![];
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let all = versions(cluster, ns, name).await?;
                let v3 = all.get(&3).and_then(|v| v.status.as_ref()?.phase).map(|p| format!("{p:?}"));
                let (share, docs, _) = route_state(cluster, ns, name).await?.ok_or("the Model's HTTPRoute is gone")?;
                ensure!(docs, "the person's rule was removed from the route");
                ensure!(["0", "0+mirror"].contains(&share.as_str()), "the route gave v3 {share}; shares so far {shares:?}");
                if shares.last() != Some(&share) {
                    shares.push(share);
                }
                if v3.as_deref() == Some("RolledBack") {
                    break;
                }
                ensure!(Instant::now() < deadline, "v3 is {v3:?} after 120 s; route shares seen {shares:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            wait_quiet(cluster, ns, name, 30).await?;
            ensure!(deployment(cluster, ns, "ranker-canary").await?.is_none(), "v3's shadow Deployment is left over");
            let d = deployment(cluster, ns, name).await?;
            ensure!(d.as_ref().is_some_and(|(v, r, _)| v == "1" && *r == 2), "stable Deployment: {d:?}");
            let v3 = versions(cluster, ns, name).await?.remove(&3).ok_or("no v3")?;
            let last = v3.status.and_then(|s| s.decisions.last().cloned()).ok_or("v3 has no decision")?;
            ensure!(last.reason == "AnalysisFailed" && last.message.contains("in its shadow stage"), "v3's last decision: {last:?}");
            let evidence = last.evidence.unwrap_or_default();
            let value = evidence[0]["value"].as_f64().unwrap_or_default();
            ensure!(evidence[0]["metric"] == "prediction-agreement" && value > 0.1, "evidence: {evidence}");
            let (share, docs, stable) = route_state(cluster, ns, name).await?.ok_or("the route is gone")?;
            ensure!(share == "0" && docs && stable == "ranker-stable=100", "route: {share} {docs} {stable}");
            Ok(format!("Jensen-Shannon distance {value:.3} > 0.1; route shares {}", shares.join(" → ")))
        })
        .await;
    drop(prometheus);
}

/// Waits until the Model's route satisfies `ok`.
async fn wait_route(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    ok: impl Fn(&(String, bool, String)) -> bool,
    seconds: u64,
) -> Check<(String, bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let state = route_state(cluster, ns, name).await?;
        if let Some(s) = state.as_ref().filter(|s| ok(s)) {
            return Ok(s.clone());
        }
        ensure!(Instant::now() < deadline, "the route of {ns}/{name} is {state:?} after {seconds} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
