//! Publishing to a real MLflow from the real controller on the real control plane: versions show
//! up with their lineage, `champion` follows the serving version, and an MLflow outage holds no
//! rollout up, is reported on the Model and with a Warning Event, and is caught up after.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::{Behaviour, Steps, apply, condition, kwok_model, model, new_data, wait_phase};
use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;

#[path = "../../support/mlflow.rs"]
mod mlflow_server;

/// A real MLflow, shared by the stories; each story reaches it through a loopback proxy of its
/// own that it can cut: an outage without stopping and starting MLflow again (its start takes
/// seconds of both cores, which starved the other stories), and without one story's outage
/// reaching another's.
pub struct Mlflow {
    _server: mlflow_server::TestMlflow,
    /// The server's own URI, for reading what it holds.
    pub direct: String,
}

/// A cuttable way to the shared MLflow.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`: the tracking URI a Model names.
    pub uri: String,
    up: Arc<AtomicBool>,
}

impl Mlflow {
    /// Starts MLflow.
    pub async fn start() -> Mlflow {
        let server = tokio::task::block_in_place(mlflow_server::TestMlflow::start);
        Mlflow { direct: server.uri.clone(), _server: server }
    }

    /// A proxy of its own to the server.
    async fn proxy(&self) -> Proxy {
        let target = self.direct.trim_start_matches("http://").to_string();
        let up = Arc::new(AtomicBool::new(true));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let uri = format!("http://{}", listener.local_addr().expect("an address"));
        let open = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !open.load(Ordering::SeqCst) {
                    // Down: the connection is closed before a byte is answered.
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { uri, up }
    }
}

impl Proxy {
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// `GET /api/2.0/mlflow/<path>` of the server at `uri`.
async fn get(uri: &str, path: &str, query: &[(&str, &str)]) -> Check<Value> {
    let http =
        modelcycle::sources::prometheus::http_client(Duration::from_secs(10), false).map_err(|e| e.to_string())?;
    let answer = http
        .get(format!("{uri}/api/2.0/mlflow/{path}"))
        .query(query)
        .send()
        .await
        .map_err(|e| format!("MLflow: {e}"))?;
    answer.json::<Value>().await.map_err(|e| e.to_string())
}

/// modelcycle version → its MLflow tags, for every version of `name`.
async fn registered(uri: &str, name: &str) -> Check<BTreeMap<String, BTreeMap<String, String>>> {
    let found = get(uri, "model-versions/search", &[("filter", &format!("name='{name}'"))]).await?;
    let mut all = BTreeMap::new();
    for v in found["model_versions"].as_array().cloned().unwrap_or_default() {
        let tags: BTreeMap<String, String> = v["tags"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| (t["key"].as_str().unwrap_or_default().into(), t["value"].as_str().unwrap_or_default().into()))
            .collect();
        let version = tags.get("modelcycle.io/version").cloned().unwrap_or_default();
        ensure!(all.insert(version.clone(), tags).is_none(), "v{version} registered twice");
    }
    Ok(all)
}

/// The modelcycle version the alias `alias` of `name` points at.
async fn alias(uri: &str, name: &str, alias: &str) -> Check<Option<String>> {
    let answer = get(uri, "registered-models/alias", &[("name", name), ("alias", alias)]).await?;
    Ok(answer["model_version"]["tags"].as_array().and_then(|tags| {
        tags.iter().find(|t| t["key"] == "modelcycle.io/version").and_then(|t| t["value"].as_str().map(String::from))
    }))
}

/// The Events in `ns` with `reason`.
async fn events_with_reason(cluster: &Cluster, ns: &str, reason: &str) -> Check<Vec<Event>> {
    let events = Api::<Event>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(events.items.into_iter().filter(|e| e.reason.as_deref() == Some(reason)).collect())
}

/// The one Event in `ns` with `reason`. The controller writes an Event after the status it
/// explains (the plan's order), so it may land a moment after the condition is seen: wait for
/// it, then make sure a few seconds more bring no second one.
async fn one_event_with_reason(cluster: &Cluster, ns: &str, reason: &str) -> Check<Event> {
    eventually(&format!("a {reason} Event"), Duration::from_secs(15), || async {
        let found = events_with_reason(cluster, ns, reason).await?;
        ensure!(!found.is_empty(), "no {reason} Event yet");
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut found = events_with_reason(cluster, ns, reason).await?;
    ensure!(found.len() == 1, "{} {reason} Events", found.len());
    Ok(found.remove(0))
}

/// A Model publishing to a real MLflow, through an outage.
pub async fn mlflow(cluster: &Cluster, steps: &mut Steps<'_>, server: &Mlflow) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "scoring";
    let registered_name = "e2e-scoring";
    let proxy = server.proxy().await;
    let uri = proxy.uri.clone();
    let direct = server.direct.as_str();
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["registry"] = json!({"mlflow": {"trackingUri": uri, "name": registered_name}});
    model_json["spec"]["training"]["parameters"] = json!({"optimizer": "adam", "lr": "0.1"});

    steps
        .step(
            "v1 serves and shows up in MLflow with its lineage and parameters, as champion; RegistrySynced is True",
            async {
                apply(cluster, ns, &model_json).await?;
                wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
                eventually("MLflow to hold v1 as champion", Duration::from_secs(30), || async {
                    let all = registered(direct, registered_name).await?;
                    let v1 = all.get("1").ok_or(format!("no v1 in {all:?}"))?;
                    ensure!(v1.get("modelcycle.io/phase").map(String::as_str) == Some("Serving"), "{v1:?}");
                    ensure!(v1.get("modelcycle.io/model") == Some(&format!("{ns}/{name}")), "{v1:?}");
                    ensure!(v1.get("modelcycle.io/dataset-uri") == Some(&format!("s3://data/{name}")), "{v1:?}");
                    ensure!(v1.get("modelcycle.io/gate.auc.min").map(String::as_str) == Some("Pass (0.9)"), "{v1:?}");
                    ensure!(v1.get("modelcycle.io/param.optimizer").map(String::as_str) == Some("adam"), "{v1:?}");
                    ensure!(v1.get("modelcycle.io/param.lr").map(String::as_str) == Some("0.1"), "{v1:?}");
                    ensure!(
                        alias(direct, registered_name, "champion").await?.as_deref() == Some("1"),
                        "champion not v1"
                    );
                    let m = model(cluster, ns, name).await?;
                    ensure!(condition(&m, "RegistrySynced") == ("True".into(), "Synced".into()), "{:?}", m.status);
                    Ok(())
                })
                .await
            },
        )
        .await;
    steps
        .step(
            "MLflow stops: v2 still rolls out and serves; RegistrySynced=False and one Warning Event say why",
            async {
                proxy.set_up(false);
                new_data(cluster, ns, name, "d2").await?;
                wait_phase(cluster, ns, name, 2, "Serving", 90).await?;
                eventually("RegistrySynced to be False", Duration::from_secs(30), || async {
                    let m = model(cluster, ns, name).await?;
                    let (status, reason) = condition(&m, "RegistrySynced");
                    ensure!(status == "False" && reason == "RegistryUnavailable", "{status} {reason}");
                    Ok(())
                })
                .await?;
                let warning = one_event_with_reason(cluster, ns, "RegistryUnavailable").await?;
                let note = warning.note.clone().unwrap_or_default();
                ensure!(note.contains(&uri) && note.contains("rollouts go on"), "{note}");
                Ok(())
            },
        )
        .await;
    steps
        .step(
            "MLflow is back: the controller catches up, v2 is champion, v1 Retired, nothing registered twice",
            async {
                proxy.set_up(true);
                eventually("MLflow to hold v2 as champion", Duration::from_secs(90), || async {
                    let all = registered(direct, registered_name).await?;
                    ensure!(all.len() == 2, "versions {:?}", all.keys().collect::<Vec<_>>());
                    ensure!(
                        all["1"].get("modelcycle.io/phase").map(String::as_str) == Some("Retired"),
                        "{:?}",
                        all["1"]
                    );
                    ensure!(
                        all["2"].get("modelcycle.io/dataset-version").map(String::as_str) == Some("d2"),
                        "{:?}",
                        all["2"]
                    );
                    ensure!(
                        alias(direct, registered_name, "champion").await?.as_deref() == Some("2"),
                        "champion not v2"
                    );
                    let m = model(cluster, ns, name).await?;
                    ensure!(condition(&m, "RegistrySynced") == ("True".into(), "Synced".into()), "{:?}", m.status);
                    Ok(())
                })
                .await
            },
        )
        .await;
}

/// The secret the main controller and MLflow's webhook share in the e2e suite.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

/// A Model that takes its versions from a real MLflow: registered there by "someone else" (this
/// story, over MLflow's REST API), picked up at once through MLflow's signed webhook (the poll
/// interval is an hour), judged by the run's metrics, rolled out; a forged delivery changes
/// nothing; an MLflow outage is reported and waited out.
pub async fn mlflow_source(cluster: &Cluster, steps: &mut Steps<'_>, server: &Mlflow, controller_http: &str) {
    use mlflow_server::client;
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "fraud";
    let registered_name = "e2e-fraud";
    let proxy = server.proxy().await;
    let uri = proxy.uri.clone();
    let direct = server.direct.as_str();
    let webhook_url = format!("{controller_http}/webhooks/mlflow");
    let mut model_json = kwok_model(name, &Behaviour::default());
    let spec = model_json["spec"].as_object_mut().expect("a spec");
    spec.remove("training");
    spec.insert(
        "source".into(),
        json!({"mlflow": {"trackingUri": uri, "name": registered_name, "alias": "staging", "pollInterval": "1h"}}),
    );

    steps
        .step(
            "a Model following alias staging waits quietly (SourceSynced=False NoRegistryVersion) until the alias exists",
            async {
                client::webhook(direct, &webhook_url, WEBHOOK_SECRET).await;
                apply(cluster, ns, &model_json).await?;
                eventually("SourceSynced to say the alias is missing", Duration::from_secs(30), || async {
                    let m = model(cluster, ns, name).await?;
                    let c = condition(&m, "SourceSynced");
                    ensure!(c == ("False".into(), "NoRegistryVersion".into()), "{c:?} {:?}", m.status);
                    ensure!(condition(&m, "Stalled").0 != "True", "waiting is not stalled: {:?}", m.status);
                    Ok(())
                })
                .await
            },
        )
        .await;
    steps
        .step(
            "a version registered and staged in MLflow becomes v1 within seconds (webhook; the poll is 1h), with its run's lineage, and serves",
            async {
                let run = client::run(direct, &[("max_depth", "6")], &[("auc", 0.9), ("f1", 0.6)]).await;
                let number = client::register(direct, registered_name, &run).await;
                client::set_alias(direct, registered_name, "staging", &number).await;
                let v1 = wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
                let origin = &v1.spec.source.as_ref().ok_or("v1 records no source")?.mlflow;
                ensure!(origin.version == number && origin.run_id.as_deref() == Some(run.as_str()), "{origin:?}");
                ensure!(origin.params.get("max_depth").map(String::as_str) == Some("6"), "{origin:?}");
                ensure!(origin.metrics.get("auc") == Some(&0.9), "{origin:?}");
                ensure!(v1.spec.training.is_none() && !v1.spec.artifact_uri.is_empty(), "{:?}", v1.spec);
                ensure!(v1.spec.trigger.reason == "RegistryVersion", "{:?}", v1.spec.trigger);
                let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(cluster.client.clone(), ns)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                ensure!(jobs.items.is_empty(), "{} training Jobs for a Model that trains nothing", jobs.items.len());
                let m = model(cluster, ns, name).await?;
                ensure!(condition(&m, "SourceSynced") == ("True".into(), "Synced".into()), "{:?}", m.status);
                Ok(())
            },
        )
        .await;
    steps
        .step("a staged version whose run misses the gate is v2 Rejected; v1 serves on", async {
            let run = client::run(direct, &[("max_depth", "12")], &[("auc", 0.7)]).await;
            let number = client::register(direct, registered_name, &run).await;
            client::set_alias(direct, registered_name, "staging", &number).await;
            let v2 = wait_phase(cluster, ns, name, 2, "Rejected", 60).await?;
            let message = v2.status.and_then(|s| s.message).unwrap_or_default();
            ensure!(message.contains("auc"), "{message}");
            wait_phase(cluster, ns, name, 1, "Serving", 5).await?;
            Ok(())
        })
        .await;
    steps
        .step("a forged webhook delivery is refused with 401 and makes no version", async {
            let (status, answer) = client::deliver(&webhook_url, "not-the-secret", registered_name).await;
            ensure!(status == 401, "answered {status} {answer}");
            tokio::time::sleep(Duration::from_secs(3)).await;
            let all = super::versions(cluster, ns, name).await?;
            ensure!(all.len() == 2, "versions {:?}", all.keys().collect::<Vec<_>>());
            Ok(())
        })
        .await;
    steps
        .step(
            "MLflow unreachable while the alias moves: SourceSynced=False and one Warning; back, the version is taken and rolls out",
            async {
                proxy.set_up(false);
                let run = client::run(direct, &[], &[("auc", 0.93)]).await;
                let number = client::register(direct, registered_name, &run).await;
                client::set_alias(direct, registered_name, "staging", &number).await;
                eventually("SourceSynced to be False", Duration::from_secs(30), || async {
                    let m = model(cluster, ns, name).await?;
                    let c = condition(&m, "SourceSynced");
                    ensure!(c == ("False".into(), "SourceUnavailable".into()), "{c:?}");
                    ensure!(m.status.as_ref().and_then(|s| s.serving_version) == Some(1), "{:?}", m.status);
                    Ok(())
                })
                .await?;
                one_event_with_reason(cluster, ns, "SourceUnavailable").await?;
                proxy.set_up(true);
                wait_phase(cluster, ns, name, 3, "Serving", 90).await?;
                wait_phase(cluster, ns, name, 1, "Retired", 10).await?;
                let m = model(cluster, ns, name).await?;
                ensure!(condition(&m, "SourceSynced") == ("True".into(), "Synced".into()), "{:?}", m.status);
                Ok(())
            },
        )
        .await;
}
