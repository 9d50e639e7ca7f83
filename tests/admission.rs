//! Admission validation: every CEL rule of the generated CRDs, tried with a valid and an invalid
//! object, evaluated offline by kube-cel as the API server would; plus structural-schema checks.

use kube_cel::Validator;
use modelcycle::api::crd;
use serde_json::{Value, json};

fn schema_of(kind: &str) -> Value {
    let crd = crd::all().into_iter().find(|c| c.spec.names.kind == kind).expect("crd exists");
    let schema = crd.spec.versions[0].schema.clone().unwrap().open_api_v3_schema.unwrap();
    serde_json::to_value(schema).unwrap()
}

fn errors(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema_of(kind), obj, old) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

#[track_caller]
fn accepted(kind: &str, obj: &Value) {
    let errs = errors(kind, obj, None);
    assert!(errs.is_empty(), "expected {kind} to be accepted, got {errs:?}");
}

#[track_caller]
fn rejected(kind: &str, obj: &Value, message: &str) {
    let errs = errors(kind, obj, None);
    assert!(errs.iter().any(|e| e.contains(message)), "expected {kind} to be rejected with {message:?}, got {errs:?}");
}

/// Applies `edit` to a copy of `base` at a JSON pointer.
fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut obj = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = obj.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{parent} is not a container"),
    }
    obj
}

fn without(base: &Value, pointer: &str) -> Value {
    let mut obj = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    obj.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
    obj
}

fn model() -> Value {
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
            ]},
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
            "versionHistoryLimit": 20
        }
    })
}

fn policy() -> Value {
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

fn model_version() -> Value {
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

#[test]
fn valid_objects_are_accepted() {
    accepted("Model", &model());
    accepted("RetrainPolicy", &policy());
    accepted("ModelVersion", &model_version());
}

#[test]
fn minimal_model_is_accepted_with_defaults() {
    let m =
        without(&without(&without(&model(), "/spec/evaluation"), "/spec/pinnedVersion"), "/spec/versionHistoryLimit");
    let m = without(&without(&m, "/spec/serving/strategy"), "/spec/serving/analysis");
    accepted("Model", &m);
}

#[test]
fn canary_weight_must_be_between_1_and_100() {
    let steps = "/spec/serving/strategy/canary/steps";
    rejected(
        "Model",
        &with(&model(), &format!("{steps}/0/weight"), json!(0)),
        "canary weight must be between 1 and 100",
    );
    rejected(
        "Model",
        &with(&model(), &format!("{steps}/1/weight"), json!(101)),
        "canary weight must be between 1 and 100",
    );
    accepted("Model", &with(&model(), &format!("{steps}/1/weight"), json!(100)));
    accepted("Model", &with(&model(), &format!("{steps}/0/weight"), json!(1)));
}

#[test]
fn canary_weights_must_strictly_increase() {
    let steps = "/spec/serving/strategy/canary/steps";
    rejected("Model", &with(&model(), &format!("{steps}/1/weight"), json!(5)), "strictly increasing");
    rejected("Model", &with(&model(), &format!("{steps}/1/weight"), json!(10)), "strictly increasing");
    let three = with(&model(), steps, json!([{"weight": 10}, {"weight": 20}, {"weight": 40}]));
    accepted("Model", &three);
}

#[test]
fn canary_pause_must_be_a_duration() {
    let pause = "/spec/serving/strategy/canary/steps/0/pause";
    rejected("Model", &with(&model(), pause, json!("five minutes")), "must be a duration");
    rejected("Model", &with(&model(), pause, json!("5")), "must be a duration");
    accepted("Model", &with(&model(), pause, json!("2h45m30s")));
}

#[test]
fn strategy_is_canary_or_blue_green_not_both() {
    let both = with(&model(), "/spec/serving/strategy/blueGreen", json!({"scaleDownDelay": "30s"}));
    rejected("Model", &both, "choose at most one of canary and blueGreen");
    let blue_green = with(
        &model(),
        "/spec/serving/strategy",
        json!({"blueGreen": {"scaleDownDelay": "30s", "previewService": true}}),
    );
    accepted("Model", &blue_green);
}

#[test]
fn gate_needs_a_metric_and_a_bound() {
    let gate = "/spec/evaluation/gates/0";
    rejected("Model", &with(&model(), gate, json!({"metric": "auc"})), "a gate needs at least one of");
    rejected("Model", &with(&model(), gate, json!({"metric": "", "min": 0.5})), "a gate must name a metric");
    accepted("Model", &with(&model(), gate, json!({"metric": "auc", "minImprovement": 0.01})));
}

#[test]
fn gate_min_must_not_exceed_max() {
    let gate = "/spec/evaluation/gates/0";
    rejected(
        "Model",
        &with(&model(), gate, json!({"metric": "auc", "min": 0.9, "max": 0.8})),
        "gate min must not be greater than max",
    );
    accepted("Model", &with(&model(), gate, json!({"metric": "auc", "min": 0.8, "max": 0.8})));
}

#[test]
fn gate_regression_budget_is_not_negative() {
    let gate = "/spec/evaluation/gates/1/maxRegression";
    rejected("Model", &with(&model(), gate, json!(-0.1)), "maxRegression must not be negative");
    accepted("Model", &with(&model(), gate, json!(0.0)));
}

#[test]
fn replicas_must_not_be_negative() {
    rejected("Model", &with(&model(), "/spec/serving/replicas", json!(-1)), "replicas must not be negative");
    accepted("Model", &with(&model(), "/spec/serving/replicas", json!(0)));
}

#[test]
fn port_is_a_valid_port() {
    rejected("Model", &with(&model(), "/spec/serving/port", json!(0)), "port must be between 1 and 65535");
    rejected("Model", &with(&model(), "/spec/serving/port", json!(70000)), "port must be between 1 and 65535");
    accepted("Model", &with(&model(), "/spec/serving/port", json!(9000)));
}

#[test]
fn progress_deadline_is_at_least_ten_seconds() {
    rejected(
        "Model",
        &with(&model(), "/spec/serving/progressDeadlineSeconds", json!(5)),
        "progressDeadlineSeconds must be at least 10",
    );
    accepted("Model", &with(&model(), "/spec/serving/progressDeadlineSeconds", json!(120)));
}

#[test]
fn every_example_manifest_passes_admission() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc).unwrap();
                if let Some(kind @ ("Model" | "RetrainPolicy")) = value["kind"].as_str() {
                    let errs = errors(kind, &value, None);
                    assert!(errs.is_empty(), "{}: {errs:?}", path.display());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 3, "checked {checked} manifests");
}

#[test]
fn pinned_version_is_at_least_one() {
    rejected("Model", &with(&model(), "/spec/pinnedVersion", json!(0)), "pinnedVersion must be 1 or more");
    accepted("Model", &with(&model(), "/spec/pinnedVersion", json!(1)));
}

#[test]
fn version_history_limit_is_between_1_and_100() {
    rejected(
        "Model",
        &with(&model(), "/spec/versionHistoryLimit", json!(0)),
        "versionHistoryLimit must be between 1 and 100",
    );
    rejected(
        "Model",
        &with(&model(), "/spec/versionHistoryLimit", json!(101)),
        "versionHistoryLimit must be between 1 and 100",
    );
    accepted("Model", &with(&model(), "/spec/versionHistoryLimit", json!(100)));
}

#[test]
fn parameter_names_can_become_environment_variables() {
    let params = "/spec/training/parameters";
    rejected("Model", &with(&model(), params, json!({"learning-rate": "0.1"})), "parameter names must be");
    rejected("Model", &with(&model(), params, json!({"1st": "x"})), "parameter names must be");
    accepted("Model", &with(&model(), params, json!({"_seed": "42", "epochs2": "3"})));
}

#[test]
fn dataset_and_artifact_uri_are_not_empty() {
    rejected(
        "Model",
        &with(&model(), "/spec/training/dataset/version", json!("")),
        "dataset.version must not be empty",
    );
    rejected("Model", &with(&model(), "/spec/training/dataset/uri", json!("")), "dataset.uri must not be empty");
    rejected("Model", &with(&model(), "/spec/training/artifactUri", json!("")), "artifactUri must not be empty");
}

#[test]
fn training_deadline_and_backoff_are_bounded() {
    rejected(
        "Model",
        &with(&model(), "/spec/training/activeDeadlineSeconds", json!(0)),
        "activeDeadlineSeconds must be at least 1",
    );
    accepted("Model", &with(&model(), "/spec/training/activeDeadlineSeconds", json!(3600)));
    rejected(
        "Model",
        &with(&model(), "/spec/training/backoffLimit", json!(-1)),
        "backoffLimit must be between 0 and 10",
    );
    accepted("Model", &with(&model(), "/spec/training/backoffLimit", json!(2)));
}

#[test]
fn analysis_metrics_are_well_formed() {
    let metric = "/spec/serving/analysis/metrics/0";
    rejected(
        "Model",
        &with(&model(), metric, json!({"name": "err", "query": "up"})),
        "an analysis metric needs at least one of",
    );
    rejected(
        "Model",
        &with(&model(), metric, json!({"name": "Error Rate", "query": "up", "max": 1})),
        "metric name must be",
    );
    rejected(
        "Model",
        &with(&model(), metric, json!({"name": "err", "query": "up", "min": 2, "max": 1})),
        "analysis metric min must not be greater than max",
    );
    rejected(
        "Model",
        &with(&model(), "/spec/serving/analysis/prometheus/address", json!("prometheus:9090")),
        "must be an http:// or https:// URL",
    );
    rejected("Model", &with(&model(), "/spec/serving/analysis/interval", json!("1 minute")), "must be a duration");
    accepted("Model", &with(&model(), metric, json!({"name": "latency_p99", "query": "up", "maxRegression": 0.1})));
}

#[test]
fn retrain_policy_needs_a_trigger() {
    let none = without(&policy(), "/spec/schedule");
    rejected("RetrainPolicy", &none, "a RetrainPolicy needs at least one trigger");
    rejected("RetrainPolicy", &with(&none, "/spec/manual", json!(false)), "a RetrainPolicy needs at least one trigger");
    accepted("RetrainPolicy", &with(&none, "/spec/manual", json!(true)));
    accepted("RetrainPolicy", &with(&none, "/spec/dataChange", json!(true)));
}

#[test]
fn drift_and_performance_need_prometheus() {
    let drift =
        with(&policy(), "/spec/drift", json!({"query": "h", "method": "PSI", "threshold": 0.2, "window": "6h"}));
    rejected("RetrainPolicy", &drift, "drift and performance triggers need spec.prometheus");
    accepted("RetrainPolicy", &with(&drift, "/spec/prometheus", json!({"address": "http://p:9090"})));
    let perf = with(&policy(), "/spec/performance", json!({"query": "acc"}));
    let perf = with(&perf, "/spec/prometheus", json!({"address": "http://p:9090"}));
    rejected("RetrainPolicy", &perf, "a performance trigger needs min or max");
    accepted("RetrainPolicy", &with(&perf, "/spec/performance/min", json!(0.9)));
}

#[test]
fn cron_has_five_fields() {
    let cron = "/spec/schedule/cron";
    rejected("RetrainPolicy", &with(&policy(), cron, json!("0 3 * *")), "cron must have exactly 5 fields");
    rejected("RetrainPolicy", &with(&policy(), cron, json!("0 0 3 * * *")), "cron must have exactly 5 fields");
    rejected("RetrainPolicy", &with(&policy(), cron, json!("@daily")), "cron must have exactly 5 fields");
    accepted("RetrainPolicy", &with(&policy(), cron, json!("*/15 9-17 * * MON-FRI")));
}

#[test]
fn cooldown_is_a_duration() {
    rejected("RetrainPolicy", &with(&policy(), "/spec/cooldown", json!("1d")), "must be a duration");
    rejected("RetrainPolicy", &with(&policy(), "/spec/cooldown", json!("soon")), "must be a duration");
    accepted("RetrainPolicy", &with(&policy(), "/spec/cooldown", json!("90m")));
}

#[test]
fn time_zone_looks_like_an_iana_name() {
    let tz = "/spec/schedule/timeZone";
    rejected("RetrainPolicy", &with(&policy(), tz, json!("CET+1")), "timeZone must be an IANA time zone name");
    rejected("RetrainPolicy", &with(&policy(), tz, json!("Berlin")), "timeZone must be an IANA time zone name");
    accepted("RetrainPolicy", &with(&policy(), tz, json!("America/Argentina/Buenos_Aires")));
    accepted("RetrainPolicy", &with(&policy(), tz, json!("UTC")));
}

#[test]
fn max_retrains_per_day_is_positive() {
    rejected(
        "RetrainPolicy",
        &with(&policy(), "/spec/maxRetrainsPerDay", json!(0)),
        "maxRetrainsPerDay must be at least 1",
    );
}

#[test]
fn model_version_spec_is_immutable() {
    let old = model_version();
    let changed = with(&old, "/spec/training/dataset/version", json!("2026-12-01"));
    let errs = errors("ModelVersion", &changed, Some(&old));
    assert!(errs.iter().any(|e| e.contains("ModelVersion spec is immutable")), "{errs:?}");
    assert!(errors("ModelVersion", &old, Some(&old)).is_empty());
    // status may change freely
    let with_status = with(&old, "/status", json!({"phase": "Training"}));
    assert!(errors("ModelVersion", &with_status, Some(&old)).is_empty());
}

/// Walks a schema and returns every place that breaks the rules of a structural schema.
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    let open = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || map.get("x-kubernetes-int-or-string") == Some(&json!(true));
    if !map.contains_key("type") && !open {
        out.push(format!("{path}: no type"));
    }
    for banned in ["$ref", "definitions", "$defs", "oneOf", "allOf", "not"] {
        if map.contains_key(banned) {
            out.push(format!("{path}: has {banned}"));
        }
    }
    if let Some(any_of) = map.get("anyOf") {
        if !map.contains_key("x-kubernetes-int-or-string") {
            out.push(format!("{path}: anyOf outside int-or-string"));
        }
        for alt in any_of.as_array().unwrap() {
            for field in ["type", "description", "default", "nullable", "additionalProperties"] {
                if alt.get(field).is_some() {
                    out.push(format!("{path}: anyOf branch sets {field}"));
                }
            }
        }
    }
    if map.contains_key("properties") && map.get("additionalProperties").is_some_and(|a| a.is_object()) {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural_violations(child, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = map.get("items") {
        structural_violations(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = map.get("additionalProperties").filter(|a| a.is_object()) {
        structural_violations(extra, &format!("{path}{{}}"), out);
    }
}

#[test]
fn generated_schemas_are_structural() {
    for kind in ["Model", "ModelVersion", "RetrainPolicy"] {
        let mut out = vec![];
        structural_violations(&schema_of(kind), kind, &mut out);
        assert!(out.is_empty(), "{kind} schema is not structural: {out:#?}");
    }
}

#[test]
fn structural_check_catches_an_untyped_node() {
    let mut out = vec![];
    structural_violations(&json!({"type": "object", "properties": {"x": {"description": "no type"}}}), "t", &mut out);
    assert_eq!(out, vec!["t.x: no type"]);
}

#[test]
fn conditions_are_a_list_map_keyed_on_type() {
    for (kind, pointer) in [
        ("Model", "/properties/status/properties/conditions"),
        ("ModelVersion", "/properties/status/properties/conditions"),
        ("RetrainPolicy", "/properties/status/properties/conditions"),
    ] {
        let schema = schema_of(kind);
        let conditions = schema.pointer(pointer).unwrap();
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]), "{kind}");
        let required = conditions["items"]["required"].as_array().unwrap();
        assert!(required.contains(&json!("type")), "{kind}: a list-map key must be required");
    }
}

#[test]
fn every_crd_is_namespaced_has_status_and_short_names() {
    for crd in crd::all() {
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.group, "modelcycle.io");
        assert_eq!(crd.spec.names.categories, Some(vec!["modelcycle".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().unwrap().status.is_some(), "{} has a status subresource", crd.spec.names.kind);
    }
    let short: Vec<_> = crd::all().iter().map(|c| c.spec.names.short_names.clone().unwrap()[0].clone()).collect();
    assert_eq!(short, ["mdl", "mv", "rtp"]);
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let p = format!("{path}.{name}");
                let top_level = matches!(p.as_str(), ".apiVersion" | ".kind" | ".metadata");
                if child.get("description").is_none() && !top_level && !p.contains(".conditions") {
                    out.push(p.clone());
                }
                walk(child, &p, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, path, out);
        }
    }
    for kind in ["Model", "ModelVersion", "RetrainPolicy"] {
        let mut missing = vec![];
        walk(&schema_of(kind), "", &mut missing);
        assert!(missing.is_empty(), "{kind} fields without a description: {missing:#?}");
    }
}

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for crd in crd::all() {
        let path = dir.join(crd::file_name(&crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == crd::to_yaml(&crd).unwrap(),
            "{} is stale: run `cargo run -- crd --dir crds`",
            path.display()
        );
    }
}

/// Every `kubectl get` column points at a field the schema has (a typo would show an empty column).
#[test]
fn every_printer_column_points_at_a_field_of_the_schema() {
    let mut checked = vec![];
    for crd in crd::all() {
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(version.schema.clone().unwrap().open_api_v3_schema.unwrap()).unwrap();
        for column in version.additional_printer_columns.iter().flatten() {
            // `.status.conditions[?(@.type=="Ready")].status`: the filter selects list items.
            let path = column.json_path.split("[?").next().unwrap().to_string()
                + column.json_path.split_once(")]").map_or("", |(_, rest)| rest);
            let mut node = &schema;
            for part in path.trim_start_matches('.').split('.') {
                if part == "metadata" {
                    break; // ObjectMeta is not in the CRD schema
                }
                if node["type"] == "array" {
                    node = &node["items"];
                }
                node = &node["properties"][part];
                assert!(
                    !node.is_null(),
                    "{} column {:?}: {} has no {part}",
                    crd.spec.names.kind,
                    column.name,
                    column.json_path
                );
            }
            checked.push(format!("{}/{}", crd.spec.names.kind, column.name));
        }
    }
    assert!(checked.contains(&"Model/Rollout".to_string()) && checked.contains(&"ModelVersion/Analysis".to_string()));
}
