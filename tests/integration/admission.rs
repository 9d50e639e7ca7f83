//! Admission validation: every case of the shared admission table (`tests/support/admission_cases.rs`,
//! also sent to a real kube-apiserver by the e2e suite) judged offline as the API server would:
//! the CEL rules by kube-cel, the schema's size bounds by the same wording the API server uses;
//! plus structural-schema checks.

use crate::support;

use kube_cel::Validator;
use modelcycle::api::crd;
use serde_json::{Value, json};
use support::admission_cases::{Case, Expect, cases, model, policy};

/// The OpenAPI schema of `kind`'s CRD, generated once for the whole test binary: the example
/// scenarios' writes alone ask for it thousands of times.
fn schema_of(kind: &str) -> &'static Value {
    static SCHEMAS: std::sync::OnceLock<Vec<(String, Value)>> = std::sync::OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        crd::all()
            .into_iter()
            .map(|crd| {
                let schema = crd.spec.versions[0].schema.clone().unwrap().open_api_v3_schema.unwrap();
                (crd.spec.names.kind, serde_json::to_value(schema).unwrap())
            })
            .collect()
    });
    schemas.iter().find(|(k, _)| k == kind).map(|(_, schema)| schema).expect("crd exists")
}

/// What the API server would say about `obj`: its CEL rules (kube-cel) and the size bounds of
/// the schema (`maxLength`, `maxItems`, `maxProperties`), which kube-cel does not check.
fn errors(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
    let schema = schema_of(kind);
    let mut errs = match Validator::new().validate(schema, obj, old) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    };
    size_bounds(schema, obj, "", &mut errs);
    errs
}

/// The size bounds of `schema` that `value` breaks, worded as the API server words them.
fn size_bounds(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::String(text) => {
            if let Some(max) = bound("maxLength").filter(|max| text.chars().count() as u64 > *max) {
                out.push(format!("{path}: Too long: may not be more than {max} bytes"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = bound("maxItems").filter(|max| items.len() as u64 > *max) {
                out.push(format!("{path}: Too many: {}: must have at most {max} items", items.len()));
            }
            for (i, item) in items.iter().enumerate() {
                size_bounds(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            if let Some(max) = bound("maxProperties").filter(|max| map.len() as u64 > *max) {
                out.push(format!("{path}: Too many: {}: must have at most {max} items", map.len()));
            }
            for (key, child) in map {
                let child_schema = schema["properties"].get(key).or_else(|| schema.get("additionalProperties"));
                if let Some(child_schema) = child_schema.filter(|s| s.is_object()) {
                    size_bounds(child_schema, child, &format!("{path}.{key}"), out);
                }
            }
        }
        _ => {}
    }
}

fn judge(case: &Case) -> Result<(), String> {
    let errs = errors(case.kind, &case.object, case.old.as_ref());
    match &case.expect {
        Expect::Accepted if errs.is_empty() => Ok(()),
        Expect::Accepted => Err(format!("expected it to be accepted, got {errs:?}")),
        Expect::Refused(message) if errs.iter().any(|e| e.contains(message)) => Ok(()),
        Expect::Refused(message) => Err(format!("expected a refusal with {message:?}, got {errs:?}")),
    }
}

#[test]
fn every_admission_case_is_judged_as_the_table_says() {
    let all = cases();
    let wrong: Vec<String> =
        all.iter().filter_map(|case| judge(case).err().map(|why| format!("{}: {why}", case.name))).collect();
    assert!(wrong.is_empty(), "{} of {} cases judged otherwise:\n{}", wrong.len(), all.len(), wrong.join("\n"));
    assert!(all.len() > 60, "the table shrank to {} cases", all.len());
}

#[test]
fn the_offline_judge_catches_a_broken_case() {
    let broken = Case {
        name: "a canary weight of 0 claimed to be accepted".into(),
        kind: "Model",
        object: support::admission_cases::with(&model(), "/spec/serving/strategy/canary/steps/0/weight", json!(0)),
        old: None,
        expect: Expect::Accepted,
    };
    assert!(judge(&broken).unwrap_err().contains("a canary step needs a weight from 1 to 100, or headers"));
    let too_long = support::admission_cases::with(&policy(), "/spec/cooldown", json!("1h".repeat(20)));
    assert!(errors("RetrainPolicy", &too_long, None).iter().any(|e| e.contains("Too long: may not be more than 32")));
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
        structural_violations(schema_of(kind), kind, &mut out);
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
        walk(schema_of(kind), "", &mut missing);
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

/// Where `value` breaks the types of `schema`, as the API server's typed server-side apply
/// refuses it (`expected map, got list`, `field not declared in schema`).
fn type_errors(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let open = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
    let Some(ty) = schema["type"].as_str() else { return };
    let fits = match (ty, value) {
        (_, Value::Null) => true,
        ("object", Value::Object(_)) | ("array", Value::Array(_)) | ("string", Value::String(_)) => true,
        ("boolean", Value::Bool(_)) | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    };
    if !fits {
        out.push(format!("{path}: the schema says {ty}, the controller wrote {value}"));
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match schema["properties"]
                    .get(key)
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
                {
                    Some(child_schema) => type_errors(child_schema, child, &child_path, out),
                    None if !open && !path.is_empty() => out.push(format!("{child_path}: not declared in the schema")),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                type_errors(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_type_check_catches_a_list_where_the_schema_says_object() {
    let schema = json!({"type": "object", "properties": {"evidence": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
    let mut out = vec![];
    type_errors(&schema, &json!({"evidence": [{"verdict": "Pass"}]}), "", &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let mut out = vec![];
    type_errors(&schema, &json!({"evidnce": {}}), "", &mut out);
    assert!(out.is_empty(), "unknown top-level fields are the object's own (apiVersion, kind, metadata)");
    type_errors(&schema, &json!({"evidence": {"x": 1}, "more": {"evidnce": 1}}), "status", &mut out);
    assert_eq!(out, vec!["status.more: not declared in the schema"]);
}

/// Every object and status the controller writes while it runs the example scenarios has the
/// types its CRD declares. The real API server refused a list of gate results where the schema
/// said `type: object` (decision evidence) before this check existed.
#[test]
fn every_write_of_the_example_scenarios_fits_the_crd_schemas() {
    use modelcycle::lifecycle::model::Write;
    use modelcycle::sim::Simulation;
    use modelcycle::sim::scenario::Scenario;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    let mut wrong = vec![];
    for example in ["quickstart", "canary", "progressive", "retraining", "gateway-canary", "shadow"] {
        let mut sim = Simulation::new(Scenario::load(&[root.join(example)]).unwrap());
        sim.plans = Some(vec![]);
        sim.run();
        for (_, plan) in sim.plans.take().unwrap() {
            let mut check = |kind: &str, what: String, value: Value| {
                let mut out = vec![];
                type_errors(schema_of(kind), &value, "", &mut out);
                wrong.extend(out.into_iter().map(|e| format!("{example}: {what}: {e}")));
                checked += 1;
            };
            for write in &plan.steps {
                match write {
                    Write::CreateVersion(version) => {
                        check("ModelVersion", "a created ModelVersion".into(), serde_json::to_value(version).unwrap())
                    }
                    Write::VersionStatus(w) => {
                        check("ModelVersion", format!("status of {}", w.name), json!({"status": w.status}))
                    }
                    Write::PolicyStatus(w) => {
                        check("RetrainPolicy", format!("status of {}", w.name), json!({"status": w.status}))
                    }
                    Write::ModelStatus(status) => check("Model", "a Model status".into(), json!({"status": status})),
                    Write::Apply(_) | Write::Delete(..) | Write::Event(..) => {}
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} writes do not fit their schema:\n{}", wrong.len(), wrong.join("\n"));
    assert!(checked > 100, "only {checked} writes checked");
}

/// Every field path (JSON pointer) of `value`'s `spec`, leaves and containers alike.
fn spec_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                spec_pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                spec_pointers(v, p, out);
            }
        }
        _ => {}
    }
}

/// Values a person might write anywhere, hostile ones included: durations at and past every
/// bound, numbers past int32 and uint32, negative, fractional and special strings.
fn hostile_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let durations = prop::sample::select(vec![
        "0s",
        "1ns",
        "5s",
        "10s",
        "30s",
        "1m",
        "1h",
        "24h",
        "168h",
        "720h",
        "2160h",
        "99999h",
        "100000000h",
        "99999999999999999999h",
        "1.5h30m",
        "-5m",
        "5d",
        "0",
        "",
    ])
    .prop_map(|s| json!(s));
    let numbers = prop::sample::select(vec![
        json!(0),
        json!(-1),
        json!(1),
        json!(11),
        json!(65536),
        json!(2_147_483_648u64),
        json!(3_000_000_000u64),
        json!(4_294_967_296u64),
        json!(i64::MAX),
        json!(-0.5),
        json!(1e308),
        json!(0.2),
    ]);
    let other = prop::sample::select(vec![
        json!(null),
        json!(true),
        json!("churn.v2"),
        json!("{model"),
        json!("{{ver}}"),
        json!("UTC"),
        json!("GMT"),
        json!("Mars/Olympus"),
        json!("61 3 * * *"),
        json!("0 0 31 2 *"),
        json!([]),
        json!({}),
        json!("http://169.254.169.254"),
    ]);
    prop_oneof![durations, numbers, other, "[ -~]{0,12}".prop_map(Value::from)]
}

/// The manifests of a small scenario: the Model, a policy with every trigger, and 6 hours.
fn scenario_texts(model: &Value, policy: &Value) -> Vec<(String, String)> {
    let reference = "{predictions: {bounds: [0.5, 1.0], counts: [5, 5]}}";
    vec![
        ("model.yaml".into(), serde_yaml::to_string(model).unwrap()),
        ("policy.yaml".into(), serde_yaml::to_string(policy).unwrap()),
        (
            "scenario.yaml".into(),
            format!(
                "duration: 6h\ndefaults: {{metrics: {{auc: 0.9, log_loss: 0.3}}, reference: {reference}}}\nlive:\n  drift:\n    - {{at: 0h, histogram: {{bounds: [0.5, 1.0], counts: [900, 100]}}}}\n  performance:\n    - {{at: 0h, value: 0.5}}\nchanges:\n    - {{at: 2h, set: {{spec.training.dataset.version: d2}}}}\n"
            ),
        ),
    ]
}

/// A policy with every trigger, for the property test.
fn live_policy() -> Value {
    let mut p = policy();
    p["spec"]["prometheus"] = json!({"address": "http://p:9090", "timeout": "5s"});
    p["spec"]["drift"] = json!({"query": "q", "method": "PSI", "threshold": 0.2, "window": "1h", "interval": "5m"});
    p["spec"]["performance"] = json!({"query": "acc", "min": 0.8, "for": "10m", "interval": "5m"});
    p["spec"]["manual"] = json!(true);
    p
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Whatever value lands in whatever field: admission refuses it, or decoding refuses it with
    /// an error (reported, never a panic), or the controller runs on it without panicking,
    /// without a wake at the current instant, without a reconcile that never settles, and with
    /// a bounded number of writes.
    #[test]
    fn any_value_in_any_field_is_refused_or_handled(
        pick in proptest::prelude::any::<proptest::sample::Index>(),
        value in hostile_value(),
        on_policy in proptest::prelude::any::<bool>(),
    ) {
        let (mut m, mut p) = (model(), live_policy());
        m["spec"]["serving"]["strategy"] = json!({"canary": {"steps": [{"weight": 50, "pause": "10m"}]}});
        m["spec"].as_object_mut().unwrap().remove("pinnedVersion");
        p["spec"]["cooldown"] = json!("1h");
        let (target, kind) = if on_policy { (&mut p, "RetrainPolicy") } else { (&mut m, "Model") };
        let mut pointers = vec![];
        spec_pointers(&target["spec"], "/spec".into(), &mut pointers);
        let pointer = pick.get(&pointers).clone();
        *target.pointer_mut(&pointer).unwrap() = value.clone();
        let admitted = errors(kind, target, None).is_empty();
        // Decoding must never panic, admitted or not (an older CRD may have let it in).
        let _ = serde_json::from_value::<modelcycle::kube::decoded::Decoded<modelcycle::api::Model>>(m.clone());
        let _ = serde_json::from_value::<modelcycle::kube::decoded::Decoded<modelcycle::api::RetrainPolicy>>(p.clone());
        if !admitted {
            return Ok(());
        }
        let Ok(scenario) = modelcycle::sim::scenario::Scenario::parse(&scenario_texts(&m, &p)) else {
            // Admitted but not decodable: the controller reports it with the field (tested above).
            return Ok(());
        };
        let mut sim = modelcycle::sim::Simulation::new(scenario);
        sim.run();
        let wakes_or_loops: Vec<_> = sim
            .cluster
            .violations
            .iter()
            .filter(|v| v.contains("woken again at once") || v.contains("still had writes"))
            .collect();
        proptest::prop_assert!(wakes_or_loops.is_empty(), "{pointer} = {value}: {wakes_or_loops:?}");
        // Each live check records its verdict: one status write per check, at least 30 s apart
        // for drift and performance (at most 720 each in 6 h) and at least 10 s apart for the
        // rollout analysis (at most 2160), plus the lifecycle's own writes.
        proptest::prop_assert!(
            sim.acting_reconciles < 720 * 2 + 2160 + 100,
            "{pointer} = {value}: {} acting reconciles in 6 simulated hours",
            sim.acting_reconciles
        );
    }
}
