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

/// A real MLflow behind a loopback proxy that the story can cut: an outage without stopping and
/// starting MLflow again (its start takes seconds of both cores, which starved the other stories).
pub struct Mlflow {
    _server: mlflow_server::TestMlflow,
    /// The proxy's `http://127.0.0.1:<port>`: the tracking URI the Model names.
    pub uri: String,
    /// The server's own URI, for reading what it holds.
    pub direct: String,
    up: Arc<AtomicBool>,
}

impl Mlflow {
    /// Starts MLflow and the proxy in front of it.
    pub async fn start() -> Mlflow {
        let server = tokio::task::block_in_place(mlflow_server::TestMlflow::start);
        let direct = server.uri.clone();
        let target = direct.trim_start_matches("http://").to_string();
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
        Mlflow { _server: server, uri, direct, up }
    }

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

/// A Model publishing to a real MLflow, through an outage.
pub async fn mlflow(cluster: &Cluster, steps: &mut Steps<'_>, server: &Mlflow) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "scoring";
    let registered_name = "e2e-scoring";
    let uri = server.uri.clone();
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
                server.set_up(false);
                new_data(cluster, ns, name, "d2").await?;
                wait_phase(cluster, ns, name, 2, "Serving", 90).await?;
                eventually("RegistrySynced to be False", Duration::from_secs(30), || async {
                    let m = model(cluster, ns, name).await?;
                    let (status, reason) = condition(&m, "RegistrySynced");
                    ensure!(status == "False" && reason == "RegistryUnavailable", "{status} {reason}");
                    Ok(())
                })
                .await?;
                let events = Api::<Event>::namespaced(cluster.client.clone(), ns)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let warnings: Vec<_> =
                    events.iter().filter(|e| e.reason.as_deref() == Some("RegistryUnavailable")).collect();
                ensure!(warnings.len() == 1, "{} RegistryUnavailable Events", warnings.len());
                let note = warnings[0].note.clone().unwrap_or_default();
                ensure!(note.contains(&uri) && note.contains("rollouts go on"), "{note}");
                Ok(())
            },
        )
        .await;
    steps
        .step(
            "MLflow is back: the controller catches up, v2 is champion, v1 Retired, nothing registered twice",
            async {
                server.set_up(true);
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
