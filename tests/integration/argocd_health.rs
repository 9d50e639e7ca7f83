//! The Argo CD health checks in docs/argocd, run by a real Lua 5.1 against status samples: quick,
//! offline feedback. The verdict that counts is the e2e suite's, where the checks run in the Lua
//! engine Argo CD embeds (gopher-lua, opened as Argo CD opens it) on objects from a real API
//! server at every step of every story (`tests/e2e/gitops.rs`).

use std::process::Command;

use serde_json::{Value, json};

/// A JSON value as a Lua table constructor.
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let fields: Vec<_> = map.iter().map(|(k, v)| format!("[{k:?}] = {}", lua(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Runs a health script on `obj` and returns (status, message).
fn health(script: &str, obj: &Value) -> (String, String) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/argocd/");
    let program = format!(
        "obj = {}\nlocal hs = dofile({:?})\nio.write(hs.status, '\\n', hs.message)",
        lua(obj),
        format!("{path}{script}")
    );
    let out =
        Command::new("lua5.1").args(["-e", &program]).output().expect("lua5.1 is installed (scripts/install-tools.sh)");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap();
    (status.to_string(), message.to_string())
}

fn model(generation: i64, observed: Option<i64>, conditions: Value) -> Value {
    let mut m = json!({"apiVersion": "modelcycle.io/v1alpha1", "kind": "Model", "metadata": {"name": "churn", "generation": generation}});
    if let Some(o) = observed {
        m["status"] = json!({"observedGeneration": o, "conditions": conditions});
    }
    m
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message})
}

#[test]
fn a_model_that_serves_with_nothing_in_progress_is_healthy() {
    let conditions = json!([
        cond("Ready", "True", "Serving", "v2 serves"),
        cond("Reconciling", "False", "Serving", ""),
        cond("Stalled", "False", "SpecValid", "")
    ]);
    assert_eq!(health("model-health.lua", &model(3, Some(3), conditions)), ("Healthy".into(), "v2 serves".into()));
}

#[test]
fn a_model_that_trains_or_has_not_been_seen_is_progressing() {
    let training = json!([
        cond("Ready", "False", "Training", "v1 serves"),
        cond("Reconciling", "True", "Training", "v3 is training")
    ]);
    assert_eq!(
        health("model-health.lua", &model(3, Some(3), training)),
        ("Progressing".into(), "v3 is training".into())
    );
    let stale = json!([cond("Ready", "True", "Serving", "v2 serves")]);
    assert_eq!(
        health("model-health.lua", &model(4, Some(3), stale)).0,
        "Progressing",
        "a spec the controller has not seen"
    );
    assert_eq!(health("model-health.lua", &model(1, None, json!([]))).0, "Progressing");
}

#[test]
fn a_rollout_waiting_for_promotion_or_paused_by_analysis_is_suspended() {
    for reason in ["WaitingForPromotion", "AnalysisInconclusive"] {
        let conditions = json!([
            cond("Ready", "False", "RollingOut", "v2 serves"),
            cond("Reconciling", "True", "RollingOut", "rolling out v3"),
            cond("RollingOut", "True", reason, "v3 waits"),
            cond("Degraded", "True", "RolledBack", "v2 was rolled back")
        ]);
        let (status, message) = health("model-health.lua", &model(3, Some(3), conditions));
        assert_eq!((status.as_str(), message), ("Suspended", format!("{reason}: v3 waits")));
    }
    let rolling = json!([
        cond("Ready", "False", "RollingOut", "v2 serves"),
        cond("Reconciling", "True", "RollingOut", "rolling out v3"),
        cond("RollingOut", "True", "RollingOut", "rolling out v3")
    ]);
    assert_eq!(health("model-health.lua", &model(3, Some(3), rolling)).0, "Progressing");
}

#[test]
fn a_stalled_or_rolled_back_model_is_degraded() {
    let stalled = json!([
        cond("Ready", "False", "InvalidArtifactUri", "x"),
        cond("Stalled", "True", "InvalidArtifactUri", "unknown placeholder {run}")
    ]);
    assert_eq!(
        health("model-health.lua", &model(2, Some(2), stalled)),
        ("Degraded".into(), "InvalidArtifactUri: unknown placeholder {run}".into())
    );
    let rolled_back = json!([
        cond("Ready", "True", "Serving", "v2 serves"),
        cond("Degraded", "True", "RolledBack", "v4 was rolled back")
    ]);
    assert_eq!(health("model-health.lua", &model(2, Some(2), rolled_back)).0, "Degraded");
}

#[test]
fn model_versions_follow_their_phase() {
    let version = |phase: Option<&str>| match phase {
        Some(p) => {
            json!({"kind": "ModelVersion", "metadata": {"name": "churn-v1"}, "status": {"phase": p, "message": "why"}})
        }
        None => json!({"kind": "ModelVersion", "metadata": {"name": "churn-v1"}}),
    };
    for (phase, expected) in [
        (Some("Serving"), "Healthy"),
        (Some("Retired"), "Healthy"),
        (Some("Training"), "Progressing"),
        (Some("RollingOut"), "Progressing"),
        (None, "Progressing"),
        (Some("Rejected"), "Degraded"),
        (Some("RolledBack"), "Degraded"),
        (Some("Failed"), "Degraded"),
    ] {
        assert_eq!(health("modelversion-health.lua", &version(phase)).0, expected, "{phase:?}");
    }
    assert_eq!(health("modelversion-health.lua", &version(Some("Failed"))).1, "Failed: why");
}

#[test]
fn the_controllers_own_status_reads_healthy_once_it_serves() {
    let scenario =
        modelcycle::sim::scenario::Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")])
            .unwrap();
    let mut sim = modelcycle::sim::Simulation::new(scenario);
    sim.run_until("2026-11-01T00:10:00Z".parse().unwrap());
    let training = serde_json::to_value(&**sim.cluster.models.values().next().unwrap()).unwrap();
    assert_eq!(health("model-health.lua", &training).0, "Progressing");
    sim.run_until("2026-11-02T00:00:00Z".parse().unwrap());
    let serving = serde_json::to_value(&**sim.cluster.models.values().next().unwrap()).unwrap();
    assert_eq!(health("model-health.lua", &serving), ("Healthy".into(), "v1 serves".into()));
    sim.run();
    let degraded = serde_json::to_value(&**sim.cluster.models.values().next().unwrap()).unwrap();
    assert_eq!(health("model-health.lua", &degraded).0, "Degraded", "v4 was rolled back");
}

#[test]
fn retrain_policies_are_degraded_when_stalled_and_healthy_once_observed() {
    let policy = |generation: i64, observed: Option<i64>, conditions: Value| {
        let mut p = model(generation, observed, conditions);
        p["kind"] = json!("RetrainPolicy");
        p
    };
    let active = json!([
        cond("Ready", "True", "Active", "the policy drives its Model"),
        cond("Stalled", "False", "SpecValid", "")
    ]);
    assert_eq!(
        health("retrainpolicy-health.lua", &policy(2, Some(2), active.clone())),
        ("Healthy".into(), "the policy drives its Model".into())
    );
    assert_eq!(health("retrainpolicy-health.lua", &policy(3, Some(2), active)).0, "Progressing");
    assert_eq!(health("retrainpolicy-health.lua", &policy(1, None, json!([]))).0, "Progressing");
    // The CRD's default status of an object the controller has not seen yet.
    assert_eq!(health("retrainpolicy-health.lua", &policy(1, Some(0), json!([]))).0, "Progressing");
    let stalled = json!([cond("Stalled", "True", "ModelNotFound", "no Model chrun")]);
    assert_eq!(
        health("retrainpolicy-health.lua", &policy(1, Some(1), stalled)),
        ("Degraded".into(), "ModelNotFound: no Model chrun".into())
    );
    let ineffective = json!([cond("Degraded", "True", "DriftRetrainsIneffective", "drift stays")]);
    assert_eq!(health("retrainpolicy-health.lua", &policy(1, Some(1), ineffective)).0, "Degraded");
}
