//! Publishing to a real MLflow (`mlflow server`, SQLite, loopback): the simulator runs a Model
//! whose registry is that server, and every publish goes through the real client. What MLflow
//! holds is read back over its REST API: versions with lineage tags, `challenger` during a
//! rollout, `champion` moving back on a rollback, the server stopped and started again without a
//! version registered twice.

use jiff::SignedDuration;
use modelcycle::api::VersionPhase;
use modelcycle::lifecycle::registry;
use modelcycle::sources::mlflow::{Mlflow, MlflowError};
use serde_json::Value;

use crate::mlflow_support;
use crate::sim_support;
use mlflow_support::TestMlflow;
use sim_support::{dataset_change, model_status, phase, simulate};

fn get(runtime: &tokio::runtime::Runtime, uri: &str, path: &str, query: &[(&str, &str)]) -> Value {
    runtime.block_on(async {
        let http =
            modelcycle::sources::prometheus::http_client(std::time::Duration::from_secs(10), false).expect("a client");
        let answer =
            http.get(format!("{uri}/api/2.0/mlflow/{path}")).query(query).send().await.expect("MLflow answers");
        answer.json::<Value>().await.expect("JSON")
    })
}

/// Our versions of `churn-model` in MLflow, by MLflow number: (modelcycle version, phase tag).
fn registered(runtime: &tokio::runtime::Runtime, uri: &str) -> Vec<(String, String, String)> {
    let found = get(runtime, uri, "model-versions/search", &[("filter", "name='churn-model'")]);
    let mut rows: Vec<(String, String, String)> = found["model_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let tag = |k: &str| {
                v["tags"]
                    .as_array()
                    .and_then(|t| t.iter().find(|t| t["key"] == k))
                    .map_or(String::new(), |t| t["value"].as_str().unwrap_or_default().to_string())
            };
            (
                v["version"].as_str().unwrap_or_default().to_string(),
                tag("modelcycle.io/version"),
                tag("modelcycle.io/phase"),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The modelcycle version an alias points at.
fn alias(runtime: &tokio::runtime::Runtime, uri: &str, name: &str) -> Option<String> {
    let answer = get(runtime, uri, "registered-models/alias", &[("name", "churn-model"), ("alias", name)]);
    let tags = answer["model_version"]["tags"].as_array()?.clone();
    tags.iter().find(|t| t["key"] == "modelcycle.io/version").and_then(|t| t["value"].as_str().map(String::from))
}

#[test]
fn a_real_mlflow_holds_the_versions_their_lineage_and_aliases_through_an_outage() {
    let mut server = TestMlflow::start();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let uri = server.uri.clone();
    let extra = format!("  registry:\n    mlflow: {{trackingUri: \"{uri}\", name: churn-model}}\n");
    // v1; new data on day 1 trains v2; on day 2, v3, whose pods never become ready.
    let scenario = format!(
        "start: \"2026-01-01T00:00:00Z\"\nduration: 3d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions:\n  2: {{dataset: {{digest: 'sha256:d2d2', rows: 1200}}}}\n  3: {{healthy: false}}\nchanges:\n{}{}",
        dataset_change("1d", "d2"),
        dataset_change("2d", "d3")
    );
    let mut sim = simulate(&extra, &scenario);
    let handle = runtime.handle().clone();
    sim.registry_sink = Some(Box::new(move |_, intent| {
        let client = Mlflow::new(&intent.tracking_uri, None).map_err(|e| e.to_string())?;
        handle.block_on(client.publish(intent)).map_err(|e| e.to_string())
    }));
    let start = sim.cluster.now;
    let at = |h: i64, m: i64| start + SignedDuration::from_hours(h) + SignedDuration::from_mins(m);

    // v1 serves: registered, champion.
    sim.run_until(at(12, 0));
    assert_eq!(registered(&runtime, &uri), vec![("1".into(), "1".into(), "Serving".into())]);
    assert_eq!(alias(&runtime, &uri, "champion").as_deref(), Some("1"));

    // MLflow goes down before v2 passes its gates; v2 still rolls out and serves.
    server.stop();
    sim.run_until(at(25, 30));
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Serving), "the outage held the rollout up");
    let c = model_status(&sim).conditions.into_iter().find(|c| c.type_ == "RegistrySynced").expect("condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "RegistryUnavailable"), "{}", c.message);
    assert!(c.message.contains(&format!("MLflow at {uri} did not answer")), "{}", c.message);

    // Back: caught up within the retry's backoff (at most 10 minutes).
    server.resume();
    sim.run_until(at(25, 45));
    let c = model_status(&sim).conditions.into_iter().find(|c| c.type_ == "RegistrySynced").expect("condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Synced"), "{}", c.message);
    assert_eq!(
        registered(&runtime, &uri),
        vec![("1".into(), "1".into(), "Retired".into()), ("2".into(), "2".into(), "Serving".into())]
    );
    assert_eq!(alias(&runtime, &uri, "champion").as_deref(), Some("2"));

    // v3 rolls out: it is the challenger while it does; then it is rolled back.
    sim.run_until(at(48, 33));
    assert_eq!(phase(&sim, 3), Some(VersionPhase::RollingOut));
    assert_eq!(alias(&runtime, &uri, "challenger").as_deref(), Some("3"));
    sim.run();
    assert_eq!(phase(&sim, 3), Some(VersionPhase::RolledBack));
    assert_eq!(alias(&runtime, &uri, "champion").as_deref(), Some("2"), "champion moved back to v2");
    assert_eq!(alias(&runtime, &uri, "challenger"), None, "the challenger alias outlived v3's rollout");
    let rows = registered(&runtime, &uri);
    assert_eq!(rows.len(), 3, "each version registered once: {rows:?}");
    assert_eq!(rows[2].2, "RolledBack");

    // The lineage of v2 as MLflow has it.
    let v2 = get(&runtime, &uri, "model-versions/get", &[("name", "churn-model"), ("version", "2")]);
    assert_eq!(v2["model_version"]["source"], "s3://models/churn/2");
    let tags: std::collections::BTreeMap<String, String> = v2["model_version"]["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| (t["key"].as_str().unwrap_or_default().into(), t["value"].as_str().unwrap_or_default().into()))
        .collect();
    for (key, value) in [
        ("modelcycle.io/dataset-uri", "s3://data/churn"),
        ("modelcycle.io/dataset-version", "d2"),
        ("modelcycle.io/dataset-digest", "sha256:d2d2"),
        ("modelcycle.io/dataset-rows", "1200"),
        ("modelcycle.io/trainer-images", "trainer:1"),
        ("modelcycle.io/trigger", "TrainingInputsChanged"),
        ("modelcycle.io/metric.auc", "0.9"),
        ("modelcycle.io/gate.auc.min", "Pass (0.9)"),
        ("modelcycle.io/model", "ml/churn"),
    ] {
        assert_eq!(tags.get(key).map(String::as_str), Some(value), "{key} in {tags:?}");
    }
    assert!(tags.get("modelcycle.io/inputs-hash").is_some_and(|h| !h.is_empty()));
    let v3 = get(&runtime, &uri, "model-versions/get", &[("name", "churn-model"), ("version", "3")]);
    let rolled_back = v3["model_version"]["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["key"] == "modelcycle.io/rolled-back").cloned())
        .expect("v3 carries why it was rolled back");
    assert!(rolled_back["value"].as_str().is_some_and(|v| v.starts_with("ProgressDeadlineExceeded")), "{rolled_back}");

    // A restart that lost the Model's status publishes again from nothing known: nothing new.
    let model = sim.cluster.models["ml/churn"].clone();
    let versions: Vec<_> = sim.cluster.versions.values().cloned().collect();
    let intent = registry::intent(&model, &versions).expect("the Model publishes");
    let client = Mlflow::new(&uri, None).expect("a client");
    assert_eq!(runtime.block_on(client.publish(&intent)).expect("published"), 0, "nothing to write");
    assert_eq!(registered(&runtime, &uri).len(), 3);

    // A refusal is MLflow's own words: a version of a registered model that does not exist.
    server.stop();
    let refused = runtime.block_on(client.aliases("churn-model")).expect_err("down");
    assert!(matches!(refused, MlflowError::Unreachable { .. }), "{refused}");
    server.resume();
    let refused = runtime.block_on(client.aliases("no-such-model")).expect_err("no such model");
    assert!(
        matches!(&refused, MlflowError::Refused { status: 404, code, .. } if code == "RESOURCE_DOES_NOT_EXIST"),
        "{refused}"
    );
}

/// The controller's HTTP server with webhooks enabled, on a free loopback port: its address,
/// the wake-ups it sends, the readings it marks, and its metrics.
async fn webhook_server(
    secret: &str,
) -> (String, tokio::sync::broadcast::Receiver<String>, std::sync::Arc<modelcycle::kube::metrics::Metrics>) {
    use modelcycle::kube::http::{HttpState, Webhook, router};
    let (wake, woken) = tokio::sync::broadcast::channel(16);
    let metrics = std::sync::Arc::new(modelcycle::kube::metrics::Metrics::default());
    let webhook = Webhook { secret: secret.into(), sources: Default::default(), wake };
    let state = HttpState { health: Default::default(), metrics: metrics.clone(), webhook: Some(webhook) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    (format!("http://{addr}/webhooks/mlflow"), woken, metrics)
}

async fn next_wake(woken: &mut tokio::sync::broadcast::Receiver<String>, within: u64) -> Option<String> {
    tokio::time::timeout(std::time::Duration::from_secs(within), woken.recv()).await.ok().and_then(Result::ok)
}

#[test]
fn a_version_registered_in_a_real_mlflow_is_offered_with_its_run_and_its_webhooks_are_checked() {
    use mlflow_support::client;
    use modelcycle::kube::source::classify;
    use modelcycle::lifecycle::source::SourceError;
    let mut server = TestMlflow::start();
    let uri = server.uri.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mlflow = Mlflow::new(&uri, None).unwrap();
        // Nothing registered yet: the Model waits, quietly.
        let missing = mlflow.offered("fraud-detector", None, None).await.map_err(classify);
        assert!(matches!(missing, Err(SourceError::Missing(_))), "{missing:?}");

        let (url, mut woken, metrics) = webhook_server("s3cret").await;
        client::webhook(&uri, &url, "s3cret").await;

        let run1 = client::run(&uri, &[("max_depth", "6")], &[("auc", 0.88), ("f1", 0.61)]).await;
        let v1 = client::register(&uri, "fraud-detector", &run1).await;
        assert_eq!(v1, "1");
        assert_eq!(
            next_wake(&mut woken, 30).await.as_deref(),
            Some("fraud-detector"),
            "MLflow's signed delivery woke it"
        );

        let offered = mlflow.offered("fraud-detector", None, None).await.expect("version 1 is offered");
        assert_eq!(offered.version, "1");
        assert_eq!(offered.run_id.as_deref(), Some(run1.as_str()));
        assert_eq!(offered.source, format!("runs:/{run1}/model"));
        assert_eq!(offered.params.get("max_depth").map(String::as_str), Some("6"));
        assert_eq!((offered.metrics.get("auc"), offered.metrics.get("f1")), (Some(&0.88), Some(&0.61)));
        assert!(!offered.artifact_uri.is_empty(), "MLflow says where the files are");

        // An alias: missing until it is set, then the version it points to, moving with it.
        let staged = mlflow.offered("fraud-detector", Some("staging"), None).await.map_err(classify);
        assert!(matches!(staged, Err(SourceError::Missing(_))), "{staged:?}");
        let run2 = client::run(&uri, &[("max_depth", "8")], &[("auc", 0.91)]).await;
        assert_eq!(client::register(&uri, "fraud-detector", &run2).await, "2");
        assert_eq!(next_wake(&mut woken, 30).await.as_deref(), Some("fraud-detector"));
        client::set_alias(&uri, "fraud-detector", "staging", "1").await;
        assert_eq!(next_wake(&mut woken, 30).await.as_deref(), Some("fraud-detector"), "an alias set wakes it too");
        let staged = mlflow.offered("fraud-detector", Some("staging"), None).await.unwrap();
        assert_eq!((staged.version.as_str(), staged.metrics.get("auc")), ("1", Some(&0.88)));
        let newest = mlflow.offered("fraud-detector", None, Some(&staged)).await.unwrap();
        assert_eq!(
            (newest.version.as_str(), newest.run_id.as_deref()),
            ("2", Some(run2.as_str())),
            "newest, not the known one"
        );
        client::set_alias(&uri, "fraud-detector", "staging", "2").await;
        let _ = next_wake(&mut woken, 30).await;
        let moved = mlflow.offered("fraud-detector", Some("staging"), Some(&staged)).await.unwrap();
        assert_eq!((moved.version.as_str(), moved.metrics.get("auc")), ("2", Some(&0.91)));

        // A forged delivery, and one signed with another secret, are refused and wake nothing.
        let (status, answer) = client::deliver(&url, "guess", "fraud-detector").await;
        assert_eq!(status, 401, "{answer}");
        assert!(answer.contains("signature does not match"), "{answer}");
        let http = modelcycle::sources::prometheus::http_client(std::time::Duration::from_secs(10), false).unwrap();
        let unsigned = http.post(&url).body("{}").send().await.unwrap();
        assert_eq!(unsigned.status().as_u16(), 401);
        client::post(
            &uri,
            "webhooks",
            serde_json::json!({"name": "impostor", "url": url, "secret": "other",
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]}),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let run3 = client::run(&uri, &[], &[("auc", 0.5)]).await;
        client::register(&uri, "fraud-detector", &run3).await;
        // The real webhook wakes once; the impostor's delivery is refused.
        assert_eq!(next_wake(&mut woken, 30).await.as_deref(), Some("fraud-detector"));
        let mut refused = 0;
        for _ in 0..100 {
            refused = metrics
                .render()
                .lines()
                .find(|l| l.starts_with("modelcycle_registry_webhooks_total{result=\"refused\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u32>().ok())
                .unwrap_or(0);
            if refused >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(refused >= 3, "forged, unsigned and the impostor's: {}", metrics.render());
        assert_eq!(next_wake(&mut woken, 2).await, None, "nothing refused woke a Model");
    });

    // MLflow down: an outage, which the controller waits out.
    server.stop();
    let down =
        runtime.block_on(Mlflow::new(&uri, None).unwrap().offered("fraud-detector", None, None)).map_err(classify);
    assert!(matches!(down, Err(SourceError::Unreachable(_))), "{down:?}");
}
