//! The real-cluster shell against a scripted API server: what it writes, where, and that a
//! steady state writes nothing.

use crate::support;

use std::sync::Arc;

use http::Method;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use kube::runtime::controller::Action;
use modelcycle::api::*;
use modelcycle::error::Error;
use modelcycle::kube::context::Context;
use modelcycle::kube::decoded::Decoded;
use modelcycle::kube::model_controller::ModelContext;
use modelcycle::kube::startup::{CrdCheck, StartupError, check_crds_once};
use modelcycle::kube::{model_controller, policy_controller};
use modelcycle::lifecycle::model::Children;
use support::{Expect, mock_api, shared, status};

const MODEL_STATUS: &str = "/apis/modelcycle.io/v1alpha1/namespaces/ml/models/churn/status?";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ml/events";

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn model() -> Model {
    let yaml = r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: churn, namespace: ml, uid: u-1, generation: 3, resourceVersion: "41"}
spec:
  training:
    template: {spec: {containers: [{name: train, image: "trainer:1"}]}}
    dataset: {uri: "s3://data/churn", version: "2026-11-01"}
    artifactUri: "s3://models/{model}/{version}"
  serving:
    template: {spec: {containers: [{name: serve, image: "server:1"}]}}
"#;
    let mut m: Model = serde_yaml::from_str(yaml).unwrap();
    m.spec.serving.template = template("server:1");
    m
}

fn ctx(client: kube::Client) -> Arc<ModelContext> {
    ctx_with(client, Children::default())
}

fn ctx_with(client: kube::Client, children: Children) -> Arc<ModelContext> {
    Arc::new(ModelContext::new(Context::new(client, Arc::default()), support::child_stores(children)))
}

fn condition(body: &serde_json::Value, type_: &str) -> serde_json::Value {
    body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap().clone()
}

#[tokio::test]
async fn first_reconcile_creates_v1_with_lineage_then_applies_status_as_modelcycle() {
    let (client, server) = mock_api(vec![
        Expect::echo(Method::POST, "/apis/modelcycle.io/v1alpha1/namespaces/ml/modelversions?"),
        Expect::status_apply(MODEL_STATUS, &model()),
        Expect::echo(Method::POST, EVENTS),
    ]);
    let action = model_controller::reconcile(Arc::new(Decoded::packed(model()).unwrap()), ctx(client)).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(modelcycle::kube::context::DEFAULT_RESYNC),
        "nothing to wait for: woken by watch events, or by the resync period at the latest"
    );
    let seen = server.await.unwrap();
    let (create, patch, event) = (&seen[0], &seen[1], &seen[2]);
    assert!(create.path.contains("fieldManager=modelcycle"), "{}", create.path);
    assert_eq!(create.body["kind"], "ModelVersion");
    assert_eq!(create.body["metadata"]["name"], "churn-v1");
    assert_eq!(create.body["spec"]["version"], 1);
    assert_eq!(create.body["spec"]["trigger"]["reason"], "Initial");
    assert_eq!(create.body["spec"]["artifactUri"], "s3://models/churn/1");
    assert_eq!(create.body["spec"]["training"]["dataset"]["version"], "2026-11-01");
    let owner = &create.body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["uid"].as_str(), owner["controller"].as_bool()),
        (Some("Model"), Some("u-1"), Some(true))
    );

    assert!(patch.path.contains("fieldManager=modelcycle") && patch.path.contains("force=true"), "{}", patch.path);
    assert_eq!(patch.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(patch.body["apiVersion"], "modelcycle.io/v1alpha1");
    assert_eq!(patch.body["kind"], "Model");
    assert_eq!(
        patch.body["metadata"]["resourceVersion"], "41",
        "the status lands only on the Model it was decided from, never over a newer status"
    );
    assert_eq!(patch.body["status"]["phase"], "Training");
    assert_eq!(patch.body["status"]["latestVersion"], 1);
    assert_eq!(patch.body["status"]["observedGeneration"], 3);
    assert_eq!(condition(&patch.body, "Ready")["status"], "False");
    assert_eq!(condition(&patch.body, "Reconciling")["status"], "True");
    assert!(patch.body.get("spec").is_none(), "the controller never writes a user's spec");
    assert_eq!(event.body["reason"], "VersionCreated");
}

fn observed_version(n: u32) -> ModelVersion {
    let mut v = modelcycle::lifecycle::inputs::new_version(&model(), n, vec![], jiff::Timestamp::now()).unwrap();
    v.metadata.uid = Some(format!("mv-{n}"));
    v.metadata.resource_version = Some(format!("{}", 100 + n));
    v
}

#[tokio::test]
async fn a_new_version_gets_its_training_job_by_server_side_apply() {
    let children = Children { versions: shared([observed_version(1)]), ..Default::default() };
    let (client, server) = mock_api(vec![
        Expect::status_apply(
            "/apis/modelcycle.io/v1alpha1/namespaces/ml/modelversions/churn-v1/status?",
            &observed_version(1),
        ),
        Expect::echo(Method::PATCH, "/apis/batch/v1/namespaces/ml/jobs/churn-v1-train?"),
        Expect::status_apply(MODEL_STATUS, &model()),
        Expect::echo(Method::POST, EVENTS),
    ]);
    model_controller::reconcile(Arc::new(Decoded::packed(model()).unwrap()), ctx_with(client, children)).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen[0].body["status"]["phase"], "Training");
    assert_eq!(seen[0].body["status"]["jobName"], "churn-v1-train");
    assert_eq!(
        seen[0].body["metadata"]["resourceVersion"], "101",
        "a version's status lands only on the version it was decided from, never over a newer one"
    );
    assert_eq!(seen[0].body["status"]["observedGeneration"], serde_json::Value::Null, "v1 has no generation here");
    let reconciling =
        seen[0].body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Reconciling");
    assert_eq!(reconciling.map(|c| c["status"].clone()), Some("True".into()), "kstatus: v1 is on its way");
    let job = &seen[1];
    assert!(job.path.contains("fieldManager=modelcycle") && job.path.contains("force=true"), "{}", job.path);
    assert_eq!(job.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!((job.body["apiVersion"].as_str(), job.body["kind"].as_str()), (Some("batch/v1"), Some("Job")));
    assert_eq!(job.body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "modelcycle");
    assert_eq!(job.body["metadata"]["labels"]["modelcycle.io/version"], "1");
    let owner = &job.body["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["uid"].as_str()), (Some("ModelVersion"), Some("mv-1")));
    let env = job.body["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let artifact = env.iter().find(|e| e["name"] == "MODELCYCLE_ARTIFACT_URI").unwrap();
    assert_eq!(artifact["value"], "s3://models/churn/1");
    assert_eq!(job.body["spec"]["backoffLimit"], 0);
    assert_eq!(seen[2].body["status"]["candidateVersion"], 1);
    assert_eq!(seen[3].body["reason"], "VersionTraining");
}

/// A world the simulator brought to rest: v1 serving, Deployment and Service in place.
fn converged_world() -> (Model, Children) {
    let yaml = format!(
        "{}\n---\nduration: 1d\ndefaults: {{metrics: {{auc: 0.9}}}}\n",
        serde_yaml::to_string(&model()).unwrap()
    );
    let scenario = modelcycle::sim::scenario::Scenario::parse(&[("s.yaml".into(), yaml)]).unwrap();
    let mut sim = modelcycle::sim::Simulation::new(scenario);
    sim.run();
    let model = (**sim.cluster.models.values().next().unwrap()).clone();
    assert_eq!(model.status.as_ref().unwrap().serving_version, Some(1), "the simulation converged with v1 serving");
    let children = sim.cluster.children_of(&model);
    (model, children)
}

#[tokio::test]
async fn reconciling_a_converged_model_sends_no_request() {
    let (model, children) = converged_world();
    let (client, server) = mock_api(vec![]);
    model_controller::reconcile(Arc::new(Decoded::packed(model).unwrap()), ctx_with(client, children)).await.unwrap();
    assert!(server.await.unwrap().is_empty());
}

/// The real API server showed this: a controller restarted during a training reconciled the
/// Model before its ModelVersion cache had listed, and numbered a second version.
#[tokio::test]
async fn a_model_is_not_planned_before_every_child_cache_has_listed() {
    let (model, children) = converged_world();
    let mut stores = support::child_stores(children);
    stores.versions = modelcycle::kube::index::Indexed::default();
    assert!(!stores.synced());
    let (client, server) = mock_api(vec![]);
    let context = Arc::new(ModelContext::new(Context::new(client, Arc::default()), stores));
    let action = model_controller::reconcile(Arc::new(Decoded::packed(model).unwrap()), context).await.unwrap();
    assert_eq!(action, Action::requeue(model_controller::CACHE_WAIT), "look again shortly");
    assert!(server.await.unwrap().is_empty(), "nothing is written from a cache that has not listed");
}

/// The real API server showed it: after an outage the ModelVersion watch was refused (429) while
/// the Model watch delivered, and every reconcile numbered one more version for the same inputs.
#[tokio::test]
async fn a_newest_version_missing_from_the_cache_is_read_and_not_made_again() {
    let (model, mut children) = converged_world();
    let newest = children.versions.pop().unwrap();
    assert_eq!(model.status.as_ref().unwrap().latest_version, Some(newest.spec.version));
    let path =
        format!("/apis/modelcycle.io/v1alpha1/namespaces/ml/modelversions/{}", newest.metadata.name.clone().unwrap());
    let (client, server) =
        mock_api(vec![Expect::answer(Method::GET, path, 200, serde_json::to_value(&*newest).unwrap())]);
    model_controller::reconcile(Arc::new(Decoded::packed(model).unwrap()), ctx_with(client, children)).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(
        seen.len(),
        1,
        "one read, and no version created: {:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_newest_version_that_is_gone_is_not_waited_for() {
    let (model, mut children) = converged_world();
    let newest = children.versions.pop().unwrap();
    let path =
        format!("/apis/modelcycle.io/v1alpha1/namespaces/ml/modelversions/{}", newest.metadata.name.clone().unwrap());
    let (client, server) =
        mock_api(vec![Expect::answer(Method::GET, path, 404, support::status(404, "NotFound", "gone"))]);
    modelcycle::kube::children::fill_latest_version(&client, &model, &mut children).await.unwrap();
    assert!(children.versions.iter().all(|v| v.spec.version != newest.spec.version), "a deleted version stays deleted");
    assert_eq!(server.await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_model_is_stalled_with_a_warning_event() {
    let mut m = model();
    m.spec.training.as_mut().unwrap().template.spec.as_mut().unwrap().containers.clear();
    let (client, server) = mock_api(vec![Expect::status_apply(MODEL_STATUS, &m), Expect::echo(Method::POST, EVENTS)]);
    model_controller::reconcile(Arc::new(Decoded::packed(m).unwrap()), ctx(client)).await.unwrap();
    // (nothing is created while the spec is invalid: the script above has no ModelVersion POST)
    let seen = server.await.unwrap();
    let stalled = seen[0].body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap()
        .clone();
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "InvalidTrainerTemplate");
    assert_eq!(seen[1].body["type"], "Warning");
    assert_eq!(seen[1].body["reason"], "InvalidTrainerTemplate");
    assert_eq!(seen[1].body["regarding"]["name"], "churn");
    assert_eq!(seen[1].body["reportingController"], "modelcycle");
}

#[tokio::test]
async fn undeserializable_model_is_reported_and_waits_for_a_change() {
    // Admitted by an older CRD without the bound; decoding names the field instead of panicking.
    let mut raw = serde_json::to_value(model()).unwrap();
    raw["spec"]["serving"]["replicas"] = serde_json::json!(3_000_000_000u64);
    raw["metadata"]["uid"] = serde_json::json!("u-1");
    let decoded: Decoded<modelcycle::api::Model> = serde_json::from_value(raw).unwrap();
    let invalid = decoded.0.unwrap_err();
    let (client, server) = mock_api(vec![Expect::echo(Method::POST, EVENTS)]);
    let context = ctx(client);
    let guard = Arc::new(Decoded(Err(invalid)));
    let error = model_controller::reconcile(guard.clone(), context.clone()).await.unwrap_err();
    assert!(matches!(error, Error::InvalidObject { .. }), "{error}");
    assert_eq!(model_controller::error_policy(guard, &error, context.clone()), Action::await_change());
    drop(context);
    let seen = server.await.unwrap();
    assert_eq!(seen[0].body["reason"], "InvalidObject");
    let note = seen[0].body["note"].as_str().unwrap();
    assert!(note.contains("spec.serving.replicas: invalid value: integer `3000000000`, expected i32"), "{note}");
}

#[tokio::test]
async fn transient_api_errors_back_off_and_are_counted() {
    let (client, server) = mock_api(vec![Expect::answer(
        Method::POST,
        "/apis/modelcycle.io/v1alpha1/namespaces/ml/modelversions?",
        500,
        status(500, "InternalError", "etcd is sad"),
    )]);
    let context = ctx(client);
    let guard = Arc::new(Decoded::packed(model()).unwrap());
    let error = model_controller::reconcile(guard.clone(), context.clone()).await.unwrap_err();
    assert_eq!(error.metric_label(), "api_error");
    let first = model_controller::error_policy(guard.clone(), &error, context.clone());
    let second = model_controller::error_policy(guard, &error, context.clone());
    assert_eq!(first, Action::requeue(std::time::Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(std::time::Duration::from_secs(10)));
    let metrics = context.shared.metrics.render();
    assert!(
        metrics.contains(r#"modelcycle_reconcile_failures_total{controller="model",error="api_error"} 2"#),
        "{metrics}"
    );
    drop(context);
    server.await.unwrap();
}

#[tokio::test]
async fn policy_for_a_missing_model_is_stalled() {
    let policy: RetrainPolicy = serde_yaml::from_str(
        r#"
apiVersion: modelcycle.io/v1alpha1
kind: RetrainPolicy
metadata: {name: nightly, namespace: ml, uid: p-1, generation: 1, resourceVersion: "12"}
spec: {modelRef: {name: ghost}, manual: true}
"#,
    )
    .unwrap();
    let (client, server) = mock_api(vec![
        Expect::status_apply("/apis/modelcycle.io/v1alpha1/namespaces/ml/retrainpolicies/nightly/status?", &policy),
        Expect::echo(Method::POST, EVENTS),
    ]);
    let stores = policy_controller::PolicyStores {
        models: support::listed_store(vec![]),
        policies: modelcycle::kube::index::StoreIndex::listed(vec![]),
    };
    let context = Arc::new((Context::new(client, Arc::default()), stores));
    policy_controller::reconcile(Arc::new(Decoded::packed(policy.clone()).unwrap()), context).await.unwrap();
    let seen = server.await.unwrap();
    assert!(seen[0].path.contains("fieldManager=modelcycle"));
    assert_eq!(seen[0].body["metadata"]["resourceVersion"], "12", "only onto the policy it was decided from");
    let conditions = seen[0].body["status"]["conditions"].as_array().unwrap();
    let stalled = conditions.iter().find(|c| c["type"] == "Stalled").unwrap();
    assert_eq!(stalled["reason"], "ModelNotFound");
    assert_eq!(seen[1].body["reason"], "ModelNotFound");
}

/// The e2e suite's restart showed it: before the Model cache had listed, every policy looked
/// orphaned and was stalled, then set right again, two status writes and two Events each.
#[tokio::test]
async fn a_policy_is_not_judged_before_the_model_cache_has_listed() {
    let policy: RetrainPolicy = serde_yaml::from_str(
        r#"
apiVersion: modelcycle.io/v1alpha1
kind: RetrainPolicy
metadata: {name: nightly, namespace: ml, uid: p-1, generation: 1}
spec: {modelRef: {name: churn}, manual: true}
"#,
    )
    .unwrap();
    let (client, server) = mock_api(vec![]);
    let (models, writer) = kube::runtime::reflector::store();
    let stores =
        policy_controller::PolicyStores { models, policies: modelcycle::kube::index::StoreIndex::listed(vec![]) };
    let context = Arc::new((Context::new(client, Arc::default()), stores));
    let action = policy_controller::reconcile(Arc::new(Decoded::packed(policy).unwrap()), context).await.unwrap();
    assert_eq!(action, Action::requeue(model_controller::CACHE_WAIT));
    assert!(server.await.unwrap().is_empty(), "nothing is written while the Model cache lists");
    drop(writer);
}

fn crd_body(name: &str) -> serde_json::Value {
    let crd = modelcycle::api::crd::all().into_iter().find(|c| c.metadata.name.as_deref() == Some(name)).unwrap();
    serde_json::to_value(crd).unwrap()
}

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/";

#[tokio::test]
async fn startup_finds_all_three_crds() {
    let script = ["models", "modelversions", "retrainpolicies"]
        .map(|p| {
            let name = format!("{p}.modelcycle.io");
            Expect::answer(Method::GET, format!("{CRDS}{name}"), 200, crd_body(&name))
        })
        .into();
    let (client, server) = mock_api(script);
    assert!(matches!(check_crds_once(&client).await, CrdCheck::Installed));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn startup_names_a_missing_crd_and_how_to_install_it() {
    let (client, server) = mock_api(vec![
        Expect::answer(Method::GET, format!("{CRDS}models.modelcycle.io"), 200, crd_body("models.modelcycle.io")),
        Expect::answer(
            Method::GET,
            format!("{CRDS}modelversions.modelcycle.io"),
            404,
            status(404, "NotFound", "not found"),
        ),
        Expect::answer(
            Method::GET,
            format!("{CRDS}retrainpolicies.modelcycle.io"),
            200,
            crd_body("retrainpolicies.modelcycle.io"),
        ),
    ]);
    let CrdCheck::Fatal(error) = check_crds_once(&client).await else { panic!("expected a fatal check") };
    assert!(matches!(error, StartupError::MissingCrds(_)));
    let message = error.to_string();
    assert!(message.contains("modelversions.modelcycle.io"), "{message}");
    assert!(message.contains("kubectl apply -f crds/"), "{message}");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn startup_with_an_optional_feature_needs_its_crd_and_says_how_to_get_it() {
    use modelcycle::kube::startup::Optional;
    let features = [
        (Optional { gateway_api: true, kserve: false }, "httproutes.gateway.networking.k8s.io", "--gateway-api"),
        (Optional { gateway_api: false, kserve: true }, "inferenceservices.serving.kserve.io", "--kserve"),
    ];
    for (optional, crd, flag) in features {
        let ours = ["models", "modelversions", "retrainpolicies"].map(|p| {
            let name = format!("{p}.modelcycle.io");
            Expect::answer(Method::GET, format!("{CRDS}{name}"), 200, crd_body(&name))
        });
        let missing = Expect::answer(Method::GET, format!("{CRDS}{crd}"), 404, status(404, "NotFound", "not found"));
        let (client, server) = mock_api(ours.into_iter().chain([missing]).collect());
        let CrdCheck::Fatal(error) = modelcycle::kube::startup::check_crds(&client, optional).await else {
            panic!("expected a fatal check for {crd}")
        };
        let expected = if optional.kserve { "MissingKServe" } else { "MissingGatewayApi" };
        assert_eq!(format!("{error:?}"), expected);
        let message = error.to_string();
        assert!(message.contains(crd) && message.contains(flag), "{message}");
        drop(client);
        server.await.unwrap();
    }
}

#[tokio::test]
async fn startup_without_rbac_for_crds_says_so() {
    let (client, server) = mock_api(vec![Expect::answer(
        Method::GET,
        format!("{CRDS}models.modelcycle.io"),
        403,
        status(403, "Forbidden", "customresourcedefinitions is forbidden"),
    )]);
    let CrdCheck::Fatal(error) = check_crds_once(&client).await else { panic!("expected a fatal check") };
    assert!(error.to_string().contains("RBAC"), "{error}");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn startup_retries_when_the_api_server_does_not_answer() {
    let (service, mut handle) =
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
    tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
    });
    let client = kube::Client::new(service, "default");
    let CrdCheck::Unreachable(reason) = check_crds_once(&client).await else {
        panic!("an unreachable API is not fatal")
    };
    assert!(!reason.is_empty());
}

/// A canary step holding with an analysis measurement due: the reconcile asks the Model's
/// analysis Prometheus (here a port that refuses connections), records the inconclusive
/// measurement on the candidate's status, and pauses the rollout in the Model's condition.
#[tokio::test]
async fn a_due_analysis_is_measured_through_the_models_prometheus_and_an_unreachable_one_pauses() {
    use modelcycle::objects::deployment::{Track, track_deployment};
    use modelcycle::objects::service::serving_service;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut m = model();
    m.spec.serving.replicas = 2;
    m.spec.serving.strategy.canary =
        Some(CanaryStrategy { steps: vec![CanaryStep { weight: 50, pause: None, headers: vec![] }], shadow: None });
    m.spec.serving.analysis = Some(
        serde_json::from_value(serde_json::json!({
            "prometheus": {"address": format!("http://127.0.0.1:{port}"), "timeout": "2s"},
            "metrics": [{"name": "errors", "query": "errors{version=\"{{version}}\"}", "max": 0.05}]
        }))
        .unwrap(),
    );
    let now = jiff::Timestamp::now();
    let started = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now - jiff::SignedDuration::from_mins(5));
    let mut v1 = observed_version(1);
    v1.status = Some(ModelVersionStatus { phase: Some(VersionPhase::Serving), ..Default::default() });
    let mut v2 = observed_version(2);
    v2.status = Some(ModelVersionStatus {
        phase: Some(VersionPhase::RollingOut),
        canary: Some(CanaryProgress {
            step: 0,
            step_started: Some(started.clone()),
            canary_replicas: 1,
            effective_weight: 50,
            shadow_passed: false,
        }),
        analysis: Some(AnalysisStatus::starting(AnalysisStage::Rollout, started, Some(1))),
        ..Default::default()
    });
    let available = |mut d: k8s_openapi::api::apps::v1::Deployment| {
        d.metadata.generation = Some(1);
        d.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(1),
            ..Default::default()
        });
        d
    };
    let deployments = vec![
        available(track_deployment(&m, &v1, Track::Stable, 1).unwrap()),
        available(track_deployment(&m, &v2, Track::Canary, 1).unwrap()),
    ];
    let children = Children {
        versions: shared([v1, v2.clone()]),
        deployments: shared(deployments),
        services: shared(serving_service(&m, None)),
        ..Default::default()
    };
    let (client, server) = mock_api(vec![
        Expect::status_apply("/apis/modelcycle.io/v1alpha1/namespaces/ml/modelversions/churn-v2/status?", &v2),
        Expect::status_apply(MODEL_STATUS, &m),
        Expect::echo(Method::POST, EVENTS),
    ]);
    let context = ctx_with(client, children);
    let action = model_controller::reconcile(Arc::new(Decoded::packed(m).unwrap()), context.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(60)), "measure again after the interval");
    let seen = server.await.unwrap();
    let measurement = &seen[0].body["status"]["analysis"]["measurements"][0];
    assert_eq!(measurement["query"], "errors{version=\"2\"}");
    assert_eq!(measurement["verdict"], "Inconclusive");
    assert_eq!(measurement["reason"], "PrometheusUnreachable");
    assert_eq!(seen[0].body["status"]["phase"], "RollingOut", "paused, not rolled back");
    let rolling = condition(&seen[1].body, "RollingOut");
    assert_eq!(rolling["reason"], "AnalysisInconclusive");
    assert!(rolling["message"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{rolling}");
    let metrics = context.shared.metrics.render();
    assert!(metrics.contains(r#"modelcycle_analysis_queries_total{result="unreachable"} 1"#), "{metrics}");
    assert_eq!(
        (seen[2].body["reason"].as_str(), seen[2].body["type"].as_str()),
        (Some("AnalysisInconclusive"), Some("Warning"))
    );
}

#[tokio::test]
async fn a_child_the_api_server_refuses_stalls_the_model_with_its_words_and_an_event() {
    use modelcycle::lifecycle::model::{Child, ModelPlan, Write};
    let deployment = k8s_openapi::api::apps::v1::Deployment {
        metadata: kube::api::ObjectMeta {
            name: Some("churn".into()),
            namespace: Some("ml".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let plan = ModelPlan { steps: vec![Write::Apply(Child::Deployment(Box::new(deployment)))], ..Default::default() };
    let refusal = status(
        422,
        "Invalid",
        "Deployment.apps \"churn\" is invalid: spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000",
    );
    let (client, server) = mock_api(vec![
        Expect::answer(Method::PATCH, "/apis/apps/v1/namespaces/ml/deployments/churn?", 422, refusal),
        Expect::status_apply(MODEL_STATUS, &model()),
        Expect::echo(Method::POST, EVENTS),
    ]);
    let events = Context::new(client.clone(), Arc::default()).events;
    let error = modelcycle::kube::apply::apply_model_plan(&client, &events, &model(), &plan).await.unwrap_err();
    assert!(error.to_string().contains("422") || error.to_string().contains("invalid"), "{error}");
    drop(events);
    let seen = server.await.unwrap();
    let stalled = condition(&seen[1].body, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "ChildRefused");
    let message = stalled["message"].as_str().unwrap();
    assert!(message.starts_with("the API server refused the Deployment churn: Deployment.apps"), "{message}");
    assert!(message.contains("containerPort: Invalid value: 70000"), "{message}");
    assert_eq!(seen[1].body["status"]["phase"], "Stalled");
    assert_eq!(
        (seen[2].body["type"].as_str(), seen[2].body["reason"].as_str()),
        (Some("Warning"), Some("ChildRefused"))
    );
}

#[tokio::test]
async fn a_secret_is_sent_as_a_bearer_token_only_when_it_opted_in() {
    use modelcycle::sources::prometheus::ReadingError;
    let source = PrometheusSource {
        address: "http://127.0.0.1:9".into(),
        bearer_token_secret: Some(SecretKeyRef { name: "db-password".into(), key: "password".into() }),
        timeout: None,
        insecure_skip_verify: false,
    };
    let secret = |labels: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db-password", "namespace": "ml", "labels": labels},
            "data": {"password": "aHVudGVyMg=="}
        })
    };
    const SECRET: &str = "/api/v1/namespaces/ml/secrets/db-password";
    let (client, server) = mock_api(vec![
        Expect::answer(Method::GET, SECRET, 200, secret(serde_json::json!({"app": "db"}))),
        Expect::answer(
            Method::GET,
            SECRET,
            200,
            secret(serde_json::json!({"modelcycle.io/secret-type": "prometheus-token"})),
        ),
        Expect::answer(Method::GET, SECRET, 403, status(403, "Forbidden", "secrets \"db-password\" is forbidden")),
    ]);
    let ctx = Context::new(client, Arc::default());
    let Err(ReadingError::TokenRefused(why)) = modelcycle::kube::readings::connect(&ctx, "ml", &source).await else {
        panic!("a Secret without the label is refused");
    };
    assert!(why.contains("not labelled modelcycle.io/secret-type=prometheus-token"), "{why}");
    assert!(!why.contains("hunter2"), "{why}");
    assert!(modelcycle::kube::readings::connect(&ctx, "ml", &source).await.is_ok(), "the labelled Secret is used");
    // The token and the client are kept: the next readings read no Secret and share one client.
    assert!(modelcycle::kube::readings::connect(&ctx, "ml", &source).await.is_ok());
    let elsewhere = PrometheusSource { address: "http://127.0.0.1:10".into(), ..source.clone() };
    assert!(modelcycle::kube::readings::connect(&ctx, "ml", &elsewhere).await.is_ok());
    assert_eq!(ctx.readings.clients(), 2, "one client per address");
    // A controller that has no token kept reads the Secret again (here: it may not).
    let fresh = Context::new(ctx.client.clone(), Arc::default());
    let Err(ReadingError::TokenRefused(why)) = modelcycle::kube::readings::connect(&fresh, "ml", &source).await else {
        panic!("a forbidden Secret read is refused with a reason");
    };
    assert!(why.contains("prometheus.bearerTokenSecrets=true"), "{why}");
    drop((ctx, fresh));
    server.await.unwrap();
}

/// Every Event is its own object with its own note: "v2 started training" soon after "v1
/// started training" is not folded into a repeat of the v1 Event, and a long note or an
/// oversized reason is cut to the API server's limits instead of being refused.
#[tokio::test]
async fn events_are_created_one_per_record_within_the_servers_limits() {
    use modelcycle::lifecycle::plan::{EventKind, EventRecord};
    let record = |note: String, reason: &str| EventRecord {
        kind: EventKind::Normal,
        reason: reason.into(),
        action: "Train".into(),
        note,
        version: None,
    };
    let (client, server) = mock_api(vec![
        Expect::echo(Method::POST, EVENTS),
        Expect::echo(Method::POST, EVENTS),
        Expect::echo(Method::POST, EVENTS),
    ]);
    let events = modelcycle::kube::events::Events::new(client, "modelcycle", "modelcycle-0");
    let regarding = kube::Resource::object_ref(&model(), &());
    events.publish(&regarding, &record("v1 started training".into(), "VersionTraining")).await;
    events.publish(&regarding, &record("v2 started training".into(), "VersionTraining")).await;
    events.publish(&regarding, &record("é".repeat(2000), &"R".repeat(300))).await;
    drop(events);
    let seen = server.await.unwrap();
    assert!(seen.iter().all(|s| s.method == Method::POST), "created, never patched into a series: {seen:?}");
    let notes: Vec<_> = seen.iter().map(|s| s.body["note"].as_str().unwrap().to_string()).collect();
    assert_eq!(notes[..2], ["v1 started training", "v2 started training"]);
    let names: std::collections::BTreeSet<_> = seen.iter().map(|s| s.body["metadata"]["name"].to_string()).collect();
    assert_eq!(names.len(), 3, "every Event has a name of its own: {names:?}");
    for s in &seen {
        // A DNS subdomain, as the API server checks it: lowercase, digits, '-' and '.', and
        // starting and ending with a letter or digit.
        let name = s.body["metadata"]["name"].as_str().unwrap();
        let (object, suffix) = name.split_once('.').unwrap();
        assert_eq!(object, "churn");
        assert!(
            !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{name}"
        );
        assert_eq!(s.body["regarding"]["name"], "churn");
        assert_eq!(s.body["reportingController"], "modelcycle");
        assert_eq!(s.body["reportingInstance"], "modelcycle-0");
        assert_eq!(s.body["type"], "Normal");
        assert!(s.body["eventTime"].is_string());
    }
    assert!(notes[2].len() <= 1024 && notes[2].ends_with("..."), "{} bytes", notes[2].len());
    assert!(seen[2].body["reason"].as_str().unwrap().len() <= 128);
}
