//! Every admission case of the CRDs in one table: an object, and whether the API server accepts it
//! or refuses it with a message. `tests/integration/admission.rs` judges the table offline (kube-cel, as the
//! API server would) and the e2e suite sends the same objects to a real kube-apiserver as
//! server-side dry runs, so the offline checks and the real server can never drift apart.

#![allow(dead_code)]

use serde_json::{Value, json};

/// What the API server must do with a case's object.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Admit it.
    Accepted,
    /// Refuse it with a message containing this text.
    Refused(&'static str),
}

/// One object and what admission must say about it.
#[derive(Clone, Debug)]
pub struct Case {
    /// What the case shows, as a sentence.
    pub name: String,
    /// `Model`, `RetrainPolicy` or `ModelVersion`.
    pub kind: &'static str,
    /// The object sent.
    pub object: Value,
    /// For an update: the object as it was before.
    pub old: Option<Value>,
    /// What admission must say.
    pub expect: Expect,
}

/// A valid Model with every optional part set.
pub fn model() -> Value {
    json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "Model",
        "metadata": {"name": "churn", "namespace": "ml"},
        "spec": {
            "training": {
                "template": {"spec": {"containers": [{"name": "train", "image": "trainer:1"}], "restartPolicy": "Never"}},
                "dataset": {"uri": "s3://data/churn", "version": "2026-11-01"},
                "parameters": {"learning_rate": "0.1", "MAX_DEPTH": "6"},
                "artifactUri": "s3://models/{model}/{version}"
            },
            "evaluation": {"gates": [
                {"metric": "auc", "min": 0.8, "max": 1.0},
                {"metric": "log_loss", "goal": "Minimize", "maxRegression": 0.02}
            ], "requireStableData": true},
            "serving": {
                "template": {"spec": {"containers": [{"name": "serve", "image": "server:1"}]}},
                "replicas": 4,
                "strategy": {"canary": {"steps": [{"weight": 10, "pause": "5m"}, {"weight": 50, "pause": "1h30m"}]}},
                "analysis": {
                    "prometheus": {"address": "http://prometheus:9090", "timeout": "5s"},
                    "metrics": [{"name": "error-rate", "query": "sum(rate(x[5m]))", "goal": "Minimize", "max": 0.01}],
                    "interval": "1m", "guard": "30m"
                }
            },
            "pinnedVersion": 3,
            "versionHistoryLimit": 20,
            "runHistoryLimit": 5
        }
    })
}

/// A valid RetrainPolicy on a schedule.
pub fn policy() -> Value {
    json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": "churn", "namespace": "ml"},
        "spec": {
            "modelRef": {"name": "churn"},
            "schedule": {"cron": "0 3 * * *", "timeZone": "Europe/Berlin"},
            "cooldown": "36h",
            "maxRetrainsPerDay": 2
        }
    })
}

/// A valid ModelVersion.
pub fn model_version() -> Value {
    json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "ModelVersion",
        "metadata": {"name": "churn-v1", "namespace": "ml"},
        "spec": {
            "model": "churn", "version": 1,
            "trigger": {"reason": "Initial", "causes": [{"reason": "Initial"}], "time": "2026-11-27T00:00:00Z"},
            "training": model()["spec"]["training"].clone(),
            "trainerImages": ["trainer:1"],
            "artifactUri": "s3://models/churn/1",
            "inputsHash": "abc"
        }
    })
}

/// A copy of `base` with `value` at the JSON pointer `pointer` (its parent must exist).
pub fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut obj = base.clone();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer has a parent");
    let target = obj.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("an index")] = value,
        _ => panic!("{parent} is not a container"),
    }
    obj
}

/// A copy of `base` without the field at `pointer`.
pub fn without(base: &Value, pointer: &str) -> Value {
    let mut obj = base.clone();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer has a parent");
    obj.pointer_mut(parent).and_then(Value::as_object_mut).expect("an object").remove(key);
    obj
}

/// Collects the cases of one table.
#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn accepts(&mut self, name: &str, kind: &'static str, object: Value) {
        self.0.push(Case { name: name.into(), kind, object, old: None, expect: Expect::Accepted });
    }

    fn refuses(&mut self, name: &str, kind: &'static str, object: Value, message: &'static str) {
        self.0.push(Case { name: name.into(), kind, object, old: None, expect: Expect::Refused(message) });
    }

    fn update(&mut self, name: &str, kind: &'static str, old: Value, new: Value, expect: Expect) {
        self.0.push(Case { name: name.into(), kind, object: new, old: Some(old), expect });
    }
}

/// Every case, valid and invalid, of the three CRDs.
pub fn cases() -> Vec<Case> {
    let mut t = Table::default();
    let m = model();
    let p = policy();
    t.accepts("a Model with every optional part is accepted", "Model", m.clone());
    t.accepts("a RetrainPolicy on a schedule is accepted", "RetrainPolicy", p.clone());
    t.accepts("a ModelVersion is accepted", "ModelVersion", model_version());
    let minimal = ["/spec/evaluation", "/spec/pinnedVersion", "/spec/versionHistoryLimit", "/spec/serving/strategy"]
        .into_iter()
        .chain(["/spec/serving/analysis", "/spec/runHistoryLimit"])
        .fold(m.clone(), |obj, field| without(&obj, field));
    t.accepts("a minimal Model is accepted with defaults", "Model", minimal);

    let steps = "/spec/serving/strategy/canary/steps";
    let weight_range = "canary weight must be between 0 and 100";
    t.refuses(
        "a canary weight of 0 without a header cohort is refused",
        "Model",
        with(&m, &format!("{steps}/0/weight"), json!(0)),
        "a canary step needs a weight from 1 to 100, or headers",
    );
    t.accepts("a rollbackWindow of 24h is accepted", "Model", with(&m, "/spec/serving/rollbackWindow", json!("24h")));
    t.refuses(
        "a rollbackWindow over 2160h is refused",
        "Model",
        with(&m, "/spec/serving/rollbackWindow", json!("2161h")),
        "must be a duration from 0s to 2160h",
    );
    let gateway = json!({"gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                                         "hostnames": ["churn.example.com", "*.models.example.com"],
                                         "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}, "headers": [{"name": "x-tenant", "value": "a"}], "method": "POST"}]}});
    let routed = with(&m, "/spec/serving/trafficRouting", gateway.clone());
    let beta = json!([{"name": "x-cohort", "value": "beta"}]);
    t.accepts("a Model routed through Gateway API is accepted", "Model", routed.clone());
    t.accepts(
        "a canary step of weight 0 for a header cohort is accepted with Gateway API routing",
        "Model",
        with(&with(&routed, &format!("{steps}/0/weight"), json!(0)), &format!("{steps}/0/headers"), beta.clone()),
    );
    t.refuses(
        "a header cohort without Gateway API routing is refused",
        "Model",
        with(&m, &format!("{steps}/0/headers"), beta),
        "canary steps with headers need trafficRouting.gatewayAPI",
    );
    // Publishing to an MLflow registry.
    let mlflow = json!({"mlflow": {"trackingUri": "http://mlflow.mlops:5000", "name": "churn",
                                   "tokenSecret": {"name": "mlflow", "key": "token"}}});
    t.accepts("a Model publishing to MLflow is accepted", "Model", with(&m, "/spec/registry", mlflow.clone()));
    t.refuses(
        "an MLflow trackingUri that is not an http(s) URL is refused",
        "Model",
        with(&m, "/spec/registry", json!({"mlflow": {"trackingUri": "mlflow.mlops:5000", "name": "churn"}})),
        "must be an http:// or https:// URL",
    );
    // Taking versions from an MLflow registry instead of training them.
    let source = json!({"mlflow": {"trackingUri": "http://mlflow.mlops:5000", "name": "fraud-detector",
                                   "alias": "staging", "pollInterval": "30s",
                                   "tokenSecret": {"name": "mlflow", "key": "token"}}});
    let sourced = with(&without(&m, "/spec/training"), "/spec/source", source.clone());
    t.accepts("a Model taking its versions from MLflow is accepted", "Model", sourced.clone());
    t.refuses(
        "a Model with both training and source is refused",
        "Model",
        with(&m, "/spec/source", source.clone()),
        "set exactly one",
    );
    t.refuses(
        "a Model with neither training nor source is refused",
        "Model",
        without(&m, "/spec/training"),
        "set exactly one",
    );
    t.refuses(
        "a Model from MLflow that also publishes to a registry is refused",
        "Model",
        with(&sourced, "/spec/registry", mlflow.clone()),
        "cannot also publish them",
    );
    for alias in ["latest", "v3", "stag ing"] {
        t.refuses(
            &format!("the MLflow alias {alias:?} is refused"),
            "Model",
            with(&sourced, "/spec/source/mlflow/alias", json!(alias)),
            "an MLflow alias is letters",
        );
    }
    t.refuses(
        "a poll interval under 10s is refused",
        "Model",
        with(&sourced, "/spec/source/mlflow/pollInterval", json!("1s")),
        "must be a duration from 10s to 24h",
    );
    t.refuses(
        "a source tracking URI that is not http(s) is refused",
        "Model",
        with(&sourced, "/spec/source/mlflow/trackingUri", json!("file:///tmp/mlruns")),
        "must be an http:// or https:// URL",
    );
    // Training backends: Kubeflow Trainer's TrainJob and KubeRay's RayJob.
    let on_train_job = with(
        &with(&m, "/spec/training/backend", json!("TrainJob")),
        "/spec/training/trainJob",
        json!({"runtimeRef": {"name": "torch-distributed"}, "numNodes": 4, "numProcPerNode": 8}),
    );
    t.accepts("a Model trained by a TrainJob is accepted", "Model", on_train_job.clone());
    t.accepts(
        "a Model queued by Kueue is accepted",
        "Model",
        with(&on_train_job, "/spec/training/queueName", json!("team-ml")),
    );
    t.refuses(
        "backend TrainJob without trainJob is refused",
        "Model",
        without(&on_train_job, "/spec/training/trainJob"),
        "training.trainJob is set exactly when training.backend is TrainJob",
    );
    t.refuses(
        "trainJob on the default backend is refused",
        "Model",
        without(&on_train_job, "/spec/training/backend"),
        "training.trainJob is set exactly when training.backend is TrainJob",
    );
    t.refuses(
        "a TrainJob on no nodes is refused",
        "Model",
        with(&on_train_job, "/spec/training/trainJob/numNodes", json!(0)),
        "trainJob.numNodes must be between 1 and 1024",
    );
    t.refuses(
        "a queue name that is not a label value is refused",
        "Model",
        with(&on_train_job, "/spec/training/queueName", json!("Team ML")),
        "training.queueName must be a label value",
    );
    let on_ray_job = with(
        &with(&m, "/spec/training/backend", json!("RayJob")),
        "/spec/training/rayJob",
        json!({"entrypoint": "python train.py", "rayClusterSpec": {"headGroupSpec": {"rayStartParams": {}}}}),
    );
    t.accepts("a Model trained by a RayJob on its own Ray cluster is accepted", "Model", on_ray_job.clone());
    t.accepts(
        "a Model trained by a RayJob on an existing Ray cluster is accepted",
        "Model",
        with(
            &without(&on_ray_job, "/spec/training/rayJob/rayClusterSpec"),
            "/spec/training/rayJob/clusterSelector",
            json!({"ray.io/cluster": "shared"}),
        ),
    );
    t.refuses(
        "a RayJob with both a cluster spec and a selector is refused",
        "Model",
        with(&on_ray_job, "/spec/training/rayJob/clusterSelector", json!({"ray.io/cluster": "shared"})),
        "rayJob needs exactly one of rayClusterSpec",
    );
    t.refuses(
        "a RayJob without an entrypoint is refused",
        "Model",
        with(&on_ray_job, "/spec/training/rayJob/entrypoint", json!("")),
        "rayJob.entrypoint must not be empty",
    );
    t.refuses(
        "backend RayJob with trainJob instead of rayJob is refused",
        "Model",
        with(
            &without(&on_ray_job, "/spec/training/rayJob"),
            "/spec/training/trainJob",
            json!({"runtimeRef": {"name": "torch-distributed"}}),
        ),
        "training.rayJob is set exactly when training.backend is RayJob",
    );
    // KServe as the serving target.
    let predictor = json!({"model": {"modelFormat": {"name": "sklearn"}}, "minReplicas": 1});
    let served_by_kserve = |mode: &str| {
        let mut obj = without(&m, "/spec/serving/template");
        obj = with(&obj, "/spec/serving/target", json!("KServe"));
        with(&obj, "/spec/serving/kserve", json!({"deploymentMode": mode, "predictor": predictor.clone()}))
    };
    let kserve = served_by_kserve("Knative");
    t.accepts("a Model served by KServe in Knative mode with a canary is accepted", "Model", kserve.clone());
    t.accepts(
        "a Model served by KServe in Standard mode without a canary is accepted",
        "Model",
        without(&served_by_kserve("Standard"), "/spec/serving/strategy"),
    );
    t.refuses(
        "a KServe canary in Standard mode is refused: KServe ignores canaryTrafficPercent there",
        "Model",
        served_by_kserve("Standard"),
        "a canary with target KServe needs kserve.deploymentMode: Knative",
    );
    t.refuses(
        "a KServe canary without a deployment mode (Standard by default) is refused",
        "Model",
        without(&kserve, "/spec/serving/kserve/deploymentMode"),
        "a canary with target KServe needs kserve.deploymentMode: Knative",
    );
    t.refuses(
        "target KServe without kserve is refused",
        "Model",
        without(&kserve, "/spec/serving/kserve"),
        "target KServe needs spec.serving.kserve",
    );
    t.refuses(
        "a Model served by Deployments without a pod template is refused",
        "Model",
        without(&m, "/spec/serving/template"),
        "spec.serving.template is required",
    );
    t.refuses(
        "kserve without target KServe is refused",
        "Model",
        with(&m, "/spec/serving/kserve", json!({"predictor": predictor.clone()})),
        "spec.serving.kserve is read only with target: KServe",
    );
    t.refuses(
        "a KServe predictor without a model format is refused",
        "Model",
        with(&kserve, "/spec/serving/kserve/predictor", json!({"minReplicas": 1})),
        "kserve.predictor needs model.modelFormat.name",
    );
    t.refuses(
        "a KServe predictor that sets canaryTrafficPercent itself is refused",
        "Model",
        with(&kserve, "/spec/serving/kserve/predictor/canaryTrafficPercent", json!(10)),
        "canaryTrafficPercent is set by modelcycle",
    );
    t.refuses(
        "Gateway API routing with target KServe is refused",
        "Model",
        with(&kserve, "/spec/serving/trafficRouting", gateway.clone()),
        "trafficRouting does not apply with target KServe",
    );
    t.refuses(
        "blue-green with target KServe is refused",
        "Model",
        with(&kserve, "/spec/serving/strategy", json!({"blueGreen": {}})),
        "blueGreen is not available with target KServe",
    );
    let shadow = json!({"duration": "10m", "percent": 50});
    t.accepts(
        "a shadow stage is accepted with Gateway API routing",
        "Model",
        with(&routed, "/spec/serving/strategy/canary/shadow", shadow.clone()),
    );
    t.refuses(
        "a shadow stage without Gateway API routing is refused",
        "Model",
        with(&m, "/spec/serving/strategy/canary/shadow", shadow),
        "a shadow stage needs trafficRouting.gatewayAPI",
    );
    t.refuses(
        "a shadow stage mirroring 0% is refused",
        "Model",
        with(&routed, "/spec/serving/strategy/canary/shadow", json!({"duration": "10m", "percent": 0})),
        "shadow percent must be between 1 and 100",
    );
    t.refuses(
        "trafficRouting without gatewayAPI is refused",
        "Model",
        with(&m, "/spec/serving/trafficRouting", json!({})),
        "trafficRouting needs gatewayAPI",
    );
    t.refuses(
        "Gateway API routing without a parent Gateway is refused",
        "Model",
        with(&routed, "/spec/serving/trafficRouting/gatewayAPI/parentRefs", json!([])),
        "gatewayAPI.parentRefs needs at least one Gateway",
    );
    t.refuses(
        "a hostname that is no DNS name is refused",
        "Model",
        with(&routed, "/spec/serving/trafficRouting/gatewayAPI/hostnames/0", json!("Churn_Model")),
        "gatewayAPI.hostnames must be lowercase DNS names",
    );
    t.refuses(
        "a header match with a space in its name is refused",
        "Model",
        with(&routed, "/spec/serving/trafficRouting/gatewayAPI/matches/0/headers/0/name", json!("x cohort")),
        "a header name holds only the characters HTTP allows",
    );
    t.refuses(
        "a canary weight of 101 is refused",
        "Model",
        with(&m, &format!("{steps}/1/weight"), json!(101)),
        weight_range,
    );
    t.accepts("a canary weight of 100 is accepted", "Model", with(&m, &format!("{steps}/1/weight"), json!(100)));
    t.accepts("a canary weight of 1 is accepted", "Model", with(&m, &format!("{steps}/0/weight"), json!(1)));
    t.refuses(
        "decreasing canary weights are refused",
        "Model",
        with(&m, &format!("{steps}/1/weight"), json!(5)),
        "strictly increasing",
    );
    t.refuses(
        "a repeated canary weight is refused",
        "Model",
        with(&m, &format!("{steps}/1/weight"), json!(10)),
        "strictly increasing",
    );
    t.accepts(
        "three increasing canary steps are accepted",
        "Model",
        with(&m, steps, json!([{"weight": 10}, {"weight": 20}, {"weight": 40}])),
    );
    t.refuses("more than 20 canary steps are refused", "Model", with(&m, steps, steps_of(21)), "must have at most 20");
    t.accepts("20 canary steps are accepted", "Model", with(&m, steps, steps_of(20)));
    let pause = "/spec/serving/strategy/canary/steps/0/pause";
    let duration = "must be a duration";
    t.refuses("a canary pause in words is refused", "Model", with(&m, pause, json!("five minutes")), duration);
    t.refuses("a canary pause without a unit is refused", "Model", with(&m, pause, json!("5")), duration);
    t.accepts("a canary pause of 2h45m30s is accepted", "Model", with(&m, pause, json!("2h45m30s")));
    t.refuses(
        "a canary pause longer than 32 characters is refused",
        "Model",
        with(&m, pause, json!("1h".repeat(17))),
        "may not be more than 32",
    );

    let both = with(&m, "/spec/serving/strategy/blueGreen", json!({"scaleDownDelay": "30s"}));
    t.refuses("canary and blueGreen together are refused", "Model", both, "choose at most one of canary and blueGreen");
    t.accepts(
        "blueGreen alone is accepted",
        "Model",
        with(&m, "/spec/serving/strategy", json!({"blueGreen": {"scaleDownDelay": "30s", "previewService": true}})),
    );

    let gate = "/spec/evaluation/gates/0";
    t.refuses(
        "a gate without a bound is refused",
        "Model",
        with(&m, gate, json!({"metric": "auc"})),
        "a gate needs at least one of",
    );
    t.refuses(
        "a gate without a metric name is refused",
        "Model",
        with(&m, gate, json!({"metric": "", "min": 0.5})),
        "a gate must name a metric",
    );
    t.accepts(
        "a gate with only minImprovement is accepted",
        "Model",
        with(&m, gate, json!({"metric": "auc", "minImprovement": 0.01})),
    );
    t.refuses(
        "a gate whose min exceeds its max is refused",
        "Model",
        with(&m, gate, json!({"metric": "auc", "min": 0.9, "max": 0.8})),
        "gate min must not be greater than max",
    );
    t.accepts(
        "a gate with min equal to max is accepted",
        "Model",
        with(&m, gate, json!({"metric": "auc", "min": 0.8, "max": 0.8})),
    );
    t.refuses(
        "a negative regression budget is refused",
        "Model",
        with(&m, "/spec/evaluation/gates/1/maxRegression", json!(-0.1)),
        "maxRegression must not be negative",
    );
    t.accepts(
        "a regression budget of 0 is accepted",
        "Model",
        with(&m, "/spec/evaluation/gates/1/maxRegression", json!(0.0)),
    );

    t.refuses(
        "negative replicas are refused",
        "Model",
        with(&m, "/spec/serving/replicas", json!(-1)),
        "replicas must be between 0 and 1000",
    );
    t.accepts("zero replicas are accepted", "Model", with(&m, "/spec/serving/replicas", json!(0)));
    let port = "port must be between 1 and 65535";
    t.refuses("port 0 is refused", "Model", with(&m, "/spec/serving/port", json!(0)), port);
    t.refuses("port 70000 is refused", "Model", with(&m, "/spec/serving/port", json!(70000)), port);
    t.accepts("port 9000 is accepted", "Model", with(&m, "/spec/serving/port", json!(9000)));
    t.refuses(
        "a progress deadline under ten seconds is refused",
        "Model",
        with(&m, "/spec/serving/progressDeadlineSeconds", json!(5)),
        "progressDeadlineSeconds must be between 10 and 86400 (a day)",
    );
    t.accepts(
        "a progress deadline of 120s is accepted",
        "Model",
        with(&m, "/spec/serving/progressDeadlineSeconds", json!(120)),
    );

    t.refuses(
        "pinnedVersion 0 is refused",
        "Model",
        with(&m, "/spec/pinnedVersion", json!(0)),
        "pinnedVersion must be between 1 and 1000000",
    );
    t.accepts("pinnedVersion 1 is accepted", "Model", with(&m, "/spec/pinnedVersion", json!(1)));
    let history = "versionHistoryLimit must be between 1 and 100";
    t.refuses("versionHistoryLimit 0 is refused", "Model", with(&m, "/spec/versionHistoryLimit", json!(0)), history);
    t.refuses(
        "versionHistoryLimit 101 is refused",
        "Model",
        with(&m, "/spec/versionHistoryLimit", json!(101)),
        history,
    );
    t.accepts(
        "runHistoryLimit 0 (keep no finished run) is accepted",
        "Model",
        with(&m, "/spec/runHistoryLimit", json!(0)),
    );
    t.refuses(
        "runHistoryLimit 101 is refused",
        "Model",
        with(&m, "/spec/runHistoryLimit", json!(101)),
        "runHistoryLimit must be between 0 and 100",
    );
    t.accepts("versionHistoryLimit 100 is accepted", "Model", with(&m, "/spec/versionHistoryLimit", json!(100)));

    let params = "/spec/training/parameters";
    let param_names = "parameter names must be";
    t.refuses(
        "a parameter name with a dash is refused",
        "Model",
        with(&m, params, json!({"learning-rate": "0.1"})),
        param_names,
    );
    t.refuses(
        "a parameter name starting with a digit is refused",
        "Model",
        with(&m, params, json!({"1st": "x"})),
        param_names,
    );
    t.accepts(
        "parameter names with underscores and digits are accepted",
        "Model",
        with(&m, params, json!({"_seed": "42", "epochs2": "3"})),
    );
    let many: serde_json::Map<String, Value> = (0..65).map(|i| (format!("p{i}"), json!("1"))).collect();
    t.refuses(
        "more than 64 parameters are refused",
        "Model",
        with(&m, params, Value::Object(many)),
        "must have at most 64",
    );

    t.refuses(
        "an empty dataset version is refused",
        "Model",
        with(&m, "/spec/training/dataset/version", json!("")),
        "dataset.version must not be empty",
    );
    t.refuses(
        "an empty dataset uri is refused",
        "Model",
        with(&m, "/spec/training/dataset/uri", json!("")),
        "dataset.uri must not be empty",
    );
    t.refuses(
        "an empty artifact URI is refused",
        "Model",
        with(&m, "/spec/training/artifactUri", json!("")),
        "artifactUri must not be empty",
    );
    t.refuses(
        "a training deadline of 0 is refused",
        "Model",
        with(&m, "/spec/training/activeDeadlineSeconds", json!(0)),
        "activeDeadlineSeconds must be between 1 and 2592000 (30 days)",
    );
    t.accepts(
        "a training deadline of an hour is accepted",
        "Model",
        with(&m, "/spec/training/activeDeadlineSeconds", json!(3600)),
    );
    t.refuses(
        "a negative backoff limit is refused",
        "Model",
        with(&m, "/spec/training/backoffLimit", json!(-1)),
        "backoffLimit must be between 0 and 10",
    );
    t.accepts("a backoff limit of 2 is accepted", "Model", with(&m, "/spec/training/backoffLimit", json!(2)));

    let metric = "/spec/serving/analysis/metrics/0";
    t.refuses(
        "an analysis metric without a bound is refused",
        "Model",
        with(&m, metric, json!({"name": "err", "query": "up"})),
        "an analysis metric needs at least one of",
    );
    t.refuses(
        "an analysis metric name with spaces is refused",
        "Model",
        with(&m, metric, json!({"name": "Error Rate", "query": "up", "max": 1})),
        "metric name must be",
    );
    t.refuses(
        "an analysis metric whose min exceeds its max is refused",
        "Model",
        with(&m, metric, json!({"name": "err", "query": "up", "min": 2, "max": 1})),
        "analysis metric min must not be greater than max",
    );
    t.refuses(
        "a Prometheus address without a scheme is refused",
        "Model",
        with(&m, "/spec/serving/analysis/prometheus/address", json!("prometheus:9090")),
        "must be an http:// or https:// URL",
    );
    t.refuses(
        "an analysis interval in words is refused",
        "Model",
        with(&m, "/spec/serving/analysis/interval", json!("1 minute")),
        duration,
    );
    t.accepts(
        "an analysis metric with only maxRegression is accepted",
        "Model",
        with(&m, metric, json!({"name": "latency_p99", "query": "up", "maxRegression": 0.1})),
    );
    let agreement = json!({"name": "agreement", "query": "sum by (le) (scores_bucket)",
        "distribution": {"method": "JensenShannon", "minSamples": 500}, "max": 0.1});
    t.accepts("a distribution metric bounded by max is accepted", "Model", with(&m, metric, agreement.clone()));
    let alone = "a distribution metric is bounded by max alone";
    for (what, field, value) in [("min", "/min", json!(0.0)), ("maxRegression", "/maxRegression", json!(0.1))] {
        t.refuses(
            &format!("a distribution metric with {what} is refused"),
            "Model",
            with(&with(&m, metric, agreement.clone()), &format!("{metric}{field}"), value),
            alone,
        );
    }
    t.refuses(
        "a distribution metric without max is refused",
        "Model",
        with(&m, metric, json!({"name": "agreement", "query": "q", "distribution": {"method": "KS"}, "min": 0.0})),
        alone,
    );
    t.refuses(
        "a distribution metric with minSamples 0 is refused",
        "Model",
        with(&with(&m, metric, agreement), &format!("{metric}/distribution/minSamples"), json!(0)),
        "minSamples must be between 1 and 1000000000",
    );

    let none = without(&p, "/spec/schedule");
    let a_trigger = "a RetrainPolicy needs at least one trigger";
    t.refuses("a RetrainPolicy without a trigger is refused", "RetrainPolicy", none.clone(), a_trigger);
    t.refuses(
        "a RetrainPolicy with manual: false only is refused",
        "RetrainPolicy",
        with(&none, "/spec/manual", json!(false)),
        a_trigger,
    );
    t.accepts("a manual RetrainPolicy is accepted", "RetrainPolicy", with(&none, "/spec/manual", json!(true)));
    t.accepts("a dataChange RetrainPolicy is accepted", "RetrainPolicy", with(&none, "/spec/dataChange", json!(true)));
    let drift = with(&p, "/spec/drift", json!({"query": "h", "method": "PSI", "threshold": 0.2, "window": "6h"}));
    t.refuses(
        "a drift trigger without Prometheus is refused",
        "RetrainPolicy",
        drift.clone(),
        "drift and performance triggers need spec.prometheus",
    );
    t.accepts(
        "a drift trigger with Prometheus is accepted",
        "RetrainPolicy",
        with(&drift, "/spec/prometheus", json!({"address": "http://p:9090"})),
    );
    let perf = with(&p, "/spec/performance", json!({"query": "acc"}));
    let perf = with(&perf, "/spec/prometheus", json!({"address": "http://p:9090"}));
    t.refuses(
        "a performance trigger without bounds is refused",
        "RetrainPolicy",
        perf.clone(),
        "a performance trigger needs min or max",
    );
    t.accepts(
        "a performance trigger with a min is accepted",
        "RetrainPolicy",
        with(&perf, "/spec/performance/min", json!(0.9)),
    );

    let cron = "/spec/schedule/cron";
    let five = "cron must have exactly 5 fields";
    t.refuses("a 4-field cron is refused", "RetrainPolicy", with(&p, cron, json!("0 3 * *")), five);
    t.refuses("a 6-field cron is refused", "RetrainPolicy", with(&p, cron, json!("0 0 3 * * *")), five);
    t.refuses("a cron macro is refused", "RetrainPolicy", with(&p, cron, json!("@daily")), five);
    t.accepts(
        "a cron with ranges and names is accepted",
        "RetrainPolicy",
        with(&p, cron, json!("*/15 9-17 * * MON-FRI")),
    );
    t.refuses("a cooldown of 1d is refused", "RetrainPolicy", with(&p, "/spec/cooldown", json!("1d")), duration);
    t.refuses("a cooldown in words is refused", "RetrainPolicy", with(&p, "/spec/cooldown", json!("soon")), duration);
    t.accepts("a cooldown of 90m is accepted", "RetrainPolicy", with(&p, "/spec/cooldown", json!("90m")));
    let tz = "/spec/schedule/timeZone";
    let iana = "timeZone must be an IANA time zone name";
    t.refuses("a time zone offset is refused", "RetrainPolicy", with(&p, tz, json!("+01:00")), iana);
    t.refuses("a time zone with a space is refused", "RetrainPolicy", with(&p, tz, json!("Europe/New York")), iana);
    for zone in ["GMT", "Etc/UTC", "Etc/GMT+1", "Japan"] {
        t.accepts(&format!("the IANA zone {zone} is accepted"), "RetrainPolicy", with(&p, tz, json!(zone)));
    }
    t.accepts(
        "a three-part IANA zone is accepted",
        "RetrainPolicy",
        with(&p, tz, json!("America/Argentina/Buenos_Aires")),
    );
    t.accepts("UTC is accepted", "RetrainPolicy", with(&p, tz, json!("UTC")));
    t.refuses(
        "maxRetrainsPerDay 0 is refused",
        "RetrainPolicy",
        with(&p, "/spec/maxRetrainsPerDay", json!(0)),
        "maxRetrainsPerDay must be between 1 and 100",
    );

    hostile(&mut t, &m, &p);

    let old = model_version();
    t.update(
        "a ModelVersion's spec cannot change",
        "ModelVersion",
        old.clone(),
        with(&old, "/spec/training/dataset/version", json!("2026-12-01")),
        Expect::Refused("ModelVersion spec is immutable"),
    );
    t.update("a ModelVersion may be written unchanged", "ModelVersion", old.clone(), old.clone(), Expect::Accepted);
    t.0
}

/// Hostile but plausible input: values the types can hold and a person might write, each of
/// which crashed, hot-looped or misled the controller before admission bounded it.
fn hostile(t: &mut Table, m: &Value, p: &Value) {
    // Every duration field has both bounds, and no number long enough to overflow.
    let model_durations = [
        ("/spec/serving/strategy/canary/steps/0/pause", "0s", "168h", "169h"),
        ("/spec/serving/analysis/interval", "10s", "24h", "5s"),
        ("/spec/serving/analysis/initialDelay", "0s", "24h", "25h"),
        ("/spec/serving/analysis/guard", "0s", "168h", "100000000h"),
        ("/spec/serving/analysis/prometheus/timeout", "100ms", "5m", "0s"),
    ];
    for (field, min, max, out) in model_durations {
        let bound: &'static str = Box::leak(format!("must be a duration from {min} to {max}").into_boxed_str());
        t.refuses(&format!("{field} of {out} is refused"), "Model", with(m, field, json!(out)), bound);
        t.refuses(
            &format!("{field} of 99999999999999999999h is refused, not decoded"),
            "Model",
            with(m, field, json!("99999999999999999999h")),
            bound,
        );
        t.accepts(&format!("{field} of {min} is accepted"), "Model", with(m, field, json!(min)));
        t.accepts(&format!("{field} of {max} is accepted"), "Model", with(m, field, json!(max)));
    }
    let blue_green = with(m, "/spec/serving/strategy", json!({"blueGreen": {"scaleDownDelay": "25h"}}));
    t.refuses("a scaleDownDelay of 25h is refused", "Model", blue_green, "must be a duration from 0s to 24h");
    t.refuses(
        "a number of six digits is refused even when short",
        "Model",
        with(m, "/spec/serving/analysis/interval", json!("100000ms")),
        "at most 5 digits in a number",
    );
    let prom = json!({"address": "http://p:9090"});
    let drift = json!({"query": "h", "method": "PSI", "threshold": 0.2, "window": "6h"});
    let perf = json!({"query": "acc", "min": 0.8});
    let live = with(&with(&with(p, "/spec/prometheus", prom), "/spec/drift", drift), "/spec/performance", perf);
    t.accepts("a policy with drift and performance triggers is accepted", "RetrainPolicy", live.clone());
    let policy_durations = [
        ("/spec/cooldown", "0s", "720h", "100000000h"),
        ("/spec/schedule/startingDeadline", "0s", "720h", "721h"),
        ("/spec/drift/window", "1m", "2160h", "30s"),
        ("/spec/drift/interval", "30s", "168h", "0s"),
        ("/spec/drift/referenceWindow", "1m", "2160h", "99999h"),
        ("/spec/performance/for", "0s", "720h", "721h"),
        ("/spec/performance/interval", "30s", "168h", "0s"),
    ];
    for (field, min, max, out) in policy_durations {
        let bound: &'static str = Box::leak(format!("must be a duration from {min} to {max}").into_boxed_str());
        t.refuses(&format!("{field} of {out} is refused"), "RetrainPolicy", with(&live, field, json!(out)), bound);
        t.accepts(&format!("{field} of {max} is accepted"), "RetrainPolicy", with(&live, field, json!(max)));
    }
    t.refuses(
        "a performance trigger whose min exceeds its max is refused",
        "RetrainPolicy",
        with(&live, "/spec/performance/max", json!(0.5)),
        "performance min must not be greater than max",
    );
    t.refuses(
        "minSamples 0 is refused",
        "RetrainPolicy",
        with(&live, "/spec/drift/minSamples", json!(0)),
        "minSamples must be between 1 and 1000000000",
    );
    let automatic = with(&without(&live, "/spec/drift/threshold"), "/spec/drift/significance", json!(0.01));
    t.accepts("a drift threshold from significance is accepted", "RetrainPolicy", automatic.clone());
    let one_of = "set drift threshold, or significance for a threshold computed from the sample sizes, not both";
    t.refuses(
        "a drift trigger with threshold and significance is refused",
        "RetrainPolicy",
        with(&live, "/spec/drift/significance", json!(0.01)),
        one_of,
    );
    t.refuses(
        "a drift trigger with neither threshold nor significance is refused",
        "RetrainPolicy",
        without(&live, "/spec/drift/threshold"),
        one_of,
    );
    for wrong in [0.0, 0.5] {
        t.refuses(
            &format!("a drift significance of {wrong} is refused"),
            "RetrainPolicy",
            with(&automatic, "/spec/drift/significance", json!(wrong)),
            "significance must be above 0 and at most 0.2",
        );
    }
    t.refuses(
        "maxRetrainsPerDay 101 is refused",
        "RetrainPolicy",
        with(p, "/spec/maxRetrainsPerDay", json!(101)),
        "maxRetrainsPerDay must be between 1 and 100",
    );

    // Every integer field has both bounds: a value beyond int32 is refused, not left to decoding.
    let integers = [
        ("/spec/serving/replicas", json!(3_000_000_000u64), "replicas must be between 0 and 1000"),
        ("/spec/serving/replicas", json!(1001), "replicas must be between 0 and 1000"),
        ("/spec/serving/progressDeadlineSeconds", json!(86401), "progressDeadlineSeconds must be between 10 and 86400"),
        ("/spec/serving/analysis/failureLimit", json!(101), "failureLimit must be between 0 and 100"),
        ("/spec/pinnedVersion", json!(4_294_967_296u64), "pinnedVersion must be between 1 and 1000000"),
        (
            "/spec/training/activeDeadlineSeconds",
            json!(2_592_001),
            "activeDeadlineSeconds must be between 1 and 2592000",
        ),
        ("/spec/training/backoffLimit", json!(11), "backoffLimit must be between 0 and 10"),
    ];
    for (field, value, message) in integers {
        t.refuses(&format!("{field} of {value} is refused"), "Model", with(m, field, value), message);
    }
    t.accepts("1000 replicas are accepted", "Model", with(m, "/spec/serving/replicas", json!(1000)));

    // A Model's name names its Service: valid object names that are not DNS-1035 labels are refused.
    let name_rule = "a Model's name becomes its Service's name";
    for name in ["churn.v2", "2fa-risk"] {
        t.refuses(
            &format!("the Model name {name} is refused"),
            "Model",
            with(m, "/metadata/name", json!(name)),
            name_rule,
        );
    }
    t.accepts("the Model name churn-v2 is accepted", "Model", with(m, "/metadata/name", json!("churn-v2")));
    t.accepts(
        "a gate may require the serving version to have its metric",
        "Model",
        with(m, "/spec/evaluation/gates/1/requireBaseline", json!(true)),
    );
}

/// `n` canary steps with strictly increasing weights.
fn steps_of(n: i64) -> Value {
    Value::Array((1..=n).map(|i| json!({"weight": i * 100 / n})).collect())
}
