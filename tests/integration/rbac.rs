//! Least privilege, proven: the (group, resource, verb) triples the kube shell sends while it
//! starts, watches and applies a whole simulated lifecycle, against what the chart grants.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use modelcycle::kube::apply::{apply_model_plan, publish_events};
use modelcycle::kube::context::Context;
use modelcycle::kube::decoded::Decoded;
use modelcycle::kube::http::Health;
use modelcycle::kube::policy_controller;
use modelcycle::kube::run::{Readiness, run_controllers, start_lease};
use modelcycle::kube::startup::check_crds_once;
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;
use support::chart::{documents, template};
use support::{Route, Seen, recording_api};

type Grant = (String, String, String);

/// The RBAC verbs a request needs. A server-side apply that creates its object also needs
/// `create` (the API server checks it when an apply patch creates), so every apply of a whole
/// object counts as both.
fn needs(seen: &Seen) -> Vec<Grant> {
    let route = Route::of(&seen.path);
    let grant = |verb: &str| (route.group.clone(), route.resource.clone(), verb.to_string());
    match seen.method {
        Method::GET if seen.path.contains("watch=true") => vec![grant("watch")],
        Method::GET if route.name.is_none() => vec![grant("list")],
        Method::GET => vec![grant("get")],
        Method::POST => vec![grant("create")],
        Method::PUT => vec![grant("update")],
        Method::DELETE => vec![grant("delete")],
        Method::PATCH
            if seen.content_type.as_deref() == Some("application/apply-patch+yaml")
                && !route.resource.contains('/') =>
        {
            vec![grant("patch"), grant("create")]
        }
        Method::PATCH => vec![grant("patch")],
        _ => panic!("unexpected method {}", seen.method),
    }
}

fn scenario_model() -> modelcycle::api::Model {
    Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")]).unwrap().models.remove(0)
}

/// Runs everything the controller does against a recording API server.
async fn everything_the_controller_sends() -> BTreeSet<Grant> {
    let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")]).unwrap();
    let model = serde_json::to_value(&scenario.models[0]).unwrap();
    let policy: modelcycle::api::RetrainPolicy = serde_yaml::from_str(
        "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {name: p, namespace: ml}\nspec: {modelRef: {name: ghost}, manual: true}\n",
    )
    .unwrap();
    let routed = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway-canary")]).unwrap();
    let distributed = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/distributed")]).unwrap();
    let mut objects: Vec<(String, serde_json::Value)> = distributed
        .models
        .iter()
        .map(|m| {
            let path =
                format!("/apis/modelcycle.io/v1alpha1/namespaces/ml/models/{}", m.metadata.name.as_deref().unwrap());
            (path, serde_json::to_value(m).unwrap())
        })
        .collect();
    objects.extend([
        ("/apis/modelcycle.io/v1alpha1/namespaces/ml/models/churn".into(), model),
        (
            "/apis/modelcycle.io/v1alpha1/namespaces/ml/models/ranker".into(),
            serde_json::to_value(&routed.models[0]).unwrap(),
        ),
        ("/apis/modelcycle.io/v1alpha1/namespaces/ml/retrainpolicies/p".into(), serde_json::to_value(&policy).unwrap()),
        (
            "/apis/modelcycle.io/v1alpha1/namespaces/ml/retrainpolicies/forecast".into(),
            serde_json::to_value(&distributed.policies[0]).unwrap(),
        ),
    ]);
    let (client, seen) = recording_api(objects);
    // Startup: the CRD check and leader election.
    assert!(matches!(check_crds_once(&client).await, modelcycle::kube::startup::CrdCheck::Installed));
    let _ = modelcycle::kube::startup::check_crds(
        &client,
        modelcycle::kube::startup::Optional { gateway_api: true, kserve: true },
    )
    .await;
    let _ = modelcycle::kube::startup::engine_crd(&client, true, modelcycle::lifecycle::backends::TRAINJOB_CRD).await;
    let _ = modelcycle::kube::startup::engine_crd(&client, true, modelcycle::lifecycle::backends::RAYJOB_CRD).await;
    let (mut leader, _lease) =
        start_lease(&client, "modelcycle-leader", "modelcycle-system", "rbac-test").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), leader.wait_for(|l| *l)).await.expect("becomes leader").unwrap();

    // Every watch of both controllers, over all namespaces and over one.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    for scope in [None, Some("ml".to_string())] {
        let ready = Readiness { health: Arc::new(Health::default()), pending: Arc::default() };
        // With Gateway API, KServe and both training engines enabled: the HTTPRoute,
        // InferenceService, TrainJob and RayJob watches as well.
        use modelcycle::lifecycle::model::Engine;
        let settings = modelcycle::kube::context::Settings {
            gateway_api: true,
            kserve: true,
            train_jobs: Engine::Watched(()),
            ray_jobs: Engine::Watched(()),
            ..Default::default()
        };
        let controllers = run_controllers(client.clone(), scope, Arc::default(), ready, settings, shutdown.clone());
        let _ = tokio::time::timeout(Duration::from_millis(1500), controllers).await;
    }
    let _ = stop.send(true);

    // Every write of a whole simulated lifecycle, through the kube shell.
    let mut sim = Simulation::new(scenario);
    sim.plans = Some(vec![]);
    sim.run();
    let ctx = Context::new(client.clone(), Arc::default());
    for (model, plan) in sim.plans.take().unwrap() {
        apply_model_plan(&client, &ctx.events, &model, &plan).await.unwrap();
    }
    // A canary through Gateway API writes the Model's HTTPRoute.
    let mut sim = Simulation::new(routed);
    sim.plans = Some(vec![]);
    sim.run();
    let plans = sim.plans.take().unwrap();
    assert!(
        plans
            .iter()
            .any(|(_, p)| p.children().iter().any(|c| c.kind() == modelcycle::lifecycle::model::Kind::HttpRoute))
    );
    for (model, plan) in plans {
        apply_model_plan(&client, &ctx.events, &model, &plan).await.unwrap();
    }
    // A Model served by KServe writes its InferenceService.
    let mut sim = Simulation::new(Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kserve")]).unwrap());
    sim.plans = Some(vec![]);
    sim.run();
    let plans = sim.plans.take().unwrap();
    let writes_isvc = |p: &modelcycle::lifecycle::model::ModelPlan| {
        p.children().iter().any(|c| c.kind() == modelcycle::lifecycle::model::Kind::InferenceService)
    };
    assert!(plans.iter().any(|(_, p)| writes_isvc(p)));
    for (model, plan) in plans {
        apply_model_plan(&client, &ctx.events, &model, &plan).await.unwrap();
    }
    // Models trained by a TrainJob and by a RayJob write them.
    let mut sim = Simulation::new(distributed);
    sim.plans = Some(vec![]);
    sim.run();
    let plans = sim.plans.take().unwrap();
    for kind in [modelcycle::lifecycle::model::Kind::TrainJob, modelcycle::lifecycle::model::Kind::RayJob] {
        assert!(plans.iter().any(|(_, p)| p.children().iter().any(|c| c.kind() == kind)), "{kind:?} applied");
    }
    for (model, plan) in plans {
        apply_model_plan(&client, &ctx.events, &model, &plan).await.unwrap();
    }
    // Pruning history deletes ModelVersions (the quickstart keeps all four); a training replaced
    // by a newer trigger (concurrencyPolicy Replace) has its Job deleted; a canary, a blue-green
    // preview Deployment and its preview Service are deleted; a Model moved from KServe back to
    // Deployments has its InferenceService deleted.
    use modelcycle::lifecycle::model::{Kind, Write};
    let deletes = [
        (Kind::ModelVersion, "churn-v1"),
        (Kind::Job, "churn-v2-train"),
        (Kind::Deployment, "churn-canary"),
        (Kind::Service, "churn-preview"),
        (Kind::HttpRoute, "churn"),
        (Kind::InferenceService, "churn"),
        (Kind::TrainJob, "churn-v2-train"),
        (Kind::RayJob, "churn-v2-train"),
    ];
    let pruning = modelcycle::lifecycle::model::ModelPlan {
        steps: deletes.into_iter().map(|(kind, name)| Write::Delete(kind, name.into())).collect(),
        ..Default::default()
    };
    apply_model_plan(&client, &ctx.events, &scenario_model(), &pruning).await.unwrap();
    // Events: each one is created (never patched into a series).
    let (model, plan) = {
        let scenario = Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")]).unwrap();
        let mut sim = Simulation::new(scenario);
        sim.plans = Some(vec![]);
        sim.run();
        sim.plans.unwrap().remove(0)
    };
    let events: Vec<_> = plan.events().into_iter().cloned().collect();
    publish_events(&ctx.events, &kube::Resource::object_ref(&model, &()), &events).await;
    // The newest version, read from the API server when the cache lags behind the Model's status.
    let mut ahead = scenario_model();
    ahead.status = Some(modelcycle::api::ModelStatus { latest_version: Some(9), ..Default::default() });
    let mut children = modelcycle::lifecycle::model::Children::default();
    let _ = modelcycle::kube::children::fill_latest_version(&client, &ahead, &mut children).await;

    // A Prometheus bearer token is read from a Secret.
    let source = modelcycle::api::PrometheusSource {
        address: "http://127.0.0.1:9".into(),
        bearer_token_secret: Some(modelcycle::api::SecretKeyRef { name: "prom-token".into(), key: "token".into() }),
        timeout: None,
        insecure_skip_verify: false,
    };
    let reading_ctx = Context::new(client.clone(), Arc::default());
    let _ = modelcycle::kube::readings::connect(&reading_ctx, "ml", &source).await;
    // A RetrainPolicy's status.
    let stores = policy_controller::PolicyStores {
        models: support::listed_store(vec![]),
        policies: modelcycle::kube::index::StoreIndex::listed(vec![]),
    };
    let policy_ctx = Arc::new((Context::new(client.clone(), Arc::default()), stores));
    policy_controller::reconcile(Arc::new(Decoded::packed(policy).unwrap()), policy_ctx).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    seen.iter().flat_map(needs).collect()
}

/// The rules of every ClusterRole and Role in a rendered chart, expanded to triples.
fn granted(rendered: &str) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    for doc in documents(rendered) {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "ClusterRole" && kind != "Role" {
            continue;
        }
        for rule in doc["rules"].as_sequence().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key].as_sequence().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()).collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        grants.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    grants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_grants_exactly_what_the_controller_uses() {
    let used_with_tokens = everything_the_controller_sends().await;
    let read_secret = (String::new(), "secrets".to_string(), "get".to_string());
    assert!(used_with_tokens.contains(&read_secret), "the run reads a bearer token Secret");
    let routes = |g: &Grant| g.0 == "gateway.networking.k8s.io" && g.1 == "httproutes";
    assert_eq!(used_with_tokens.iter().filter(|g| routes(g)).count(), 5, "list, watch, create, patch, delete");
    let isvcs = |g: &Grant| g.0 == "serving.kserve.io" && g.1 == "inferenceservices";
    assert_eq!(used_with_tokens.iter().filter(|g| isvcs(g)).count(), 5, "list, watch, create, patch, delete");
    let trainjobs = |g: &Grant| g.0 == "trainer.kubeflow.org" && g.1 == "trainjobs";
    assert_eq!(used_with_tokens.iter().filter(|g| trainjobs(g)).count(), 5, "list, watch, create, patch, delete");
    let rayjobs = |g: &Grant| g.0 == "ray.io" && g.1 == "rayjobs";
    assert_eq!(used_with_tokens.iter().filter(|g| rayjobs(g)).count(), 5, "list, watch, create, patch, delete");
    // What the controller uses with some options on: every other option's grants left out.
    let with = |secret: bool, options: &[&dyn Fn(&Grant) -> bool]| -> BTreeSet<Grant> {
        let optional: [&dyn Fn(&Grant) -> bool; 4] = [&routes, &isvcs, &trainjobs, &rayjobs];
        used_with_tokens
            .iter()
            .filter(|g| secret || **g != read_secret)
            .filter(|g| optional.iter().all(|o| !o(g)) || options.iter().any(|o| o(g)))
            .cloned()
            .collect()
    };
    let tokens = "prometheus.bearerTokenSecrets=true";
    let gateway = "gatewayAPI.enabled=true";
    let kserve = "kserve.enabled=true";
    let (trainjob, rayjob) = ("trainJob.enabled=true", "rayJob.enabled=true");
    for (values, used) in [
        (vec![], with(false, &[])),
        (vec!["--set", "watchNamespaces={ml,fraud}"], with(false, &[])),
        (vec!["--set", tokens], with(true, &[])),
        (vec!["--set", tokens, "--set", "watchNamespaces={ml,fraud}"], with(true, &[])),
        (vec!["--set", "mlflow.tokenSecrets=true"], with(true, &[])),
        (vec!["--set", gateway], with(false, &[&routes])),
        (vec!["--set", gateway, "--set", tokens, "--set", "watchNamespaces={ml,fraud}"], with(true, &[&routes])),
        (vec!["--set", kserve], with(false, &[&isvcs])),
        (vec!["--set", trainjob], with(false, &[&trainjobs])),
        (vec!["--set", rayjob, "--set", "watchNamespaces={ml,fraud}"], with(false, &[&rayjobs])),
        (
            vec![
                "--set",
                gateway,
                "--set",
                kserve,
                "--set",
                trainjob,
                "--set",
                rayjob,
                "--set",
                tokens,
                "--set",
                "watchNamespaces={ml,fraud}",
            ],
            with(true, &[&routes, &isvcs, &trainjobs, &rayjobs]),
        ),
    ] {
        let used = &used;
        let rendered = template(&values).unwrap();
        let granted = granted(&rendered);
        assert_eq!(granted.contains(&read_secret), used.contains(&read_secret), "values {values:?}");
        let missing: Vec<_> = used.difference(&granted).collect();
        let unused: Vec<_> = granted.difference(used).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "values {values:?}\nmissing grants: {missing:#?}\nunused grants: {unused:#?}\nused: {used:#?}"
        );
    }
}

#[test]
fn routes_are_read_from_api_paths() {
    let r = Route::of("/apis/modelcycle.io/v1alpha1/namespaces/ml/models/churn/status?fieldManager=x");
    assert_eq!(
        (r.group.as_str(), r.namespace.as_deref(), r.resource.as_str(), r.name.as_deref()),
        ("modelcycle.io", Some("ml"), "models/status", Some("churn"))
    );
    let r = Route::of("/api/v1/pods?labelSelector=a&watch=true");
    assert_eq!((r.group.as_str(), r.resource.as_str(), r.name), ("", "pods", None));
    let r = Route::of("/api/v1/namespaces/ml/services");
    assert_eq!((r.namespace.as_deref(), r.resource.as_str(), r.name), (Some("ml"), "services", None));
    let r = Route::of("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/models.modelcycle.io");
    assert_eq!((r.resource.as_str(), r.name.as_deref()), ("customresourcedefinitions", Some("models.modelcycle.io")));
}
