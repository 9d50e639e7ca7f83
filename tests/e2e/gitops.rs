//! What GitOps tools say about modelcycle's objects, computed by the tools' own code: the judge
//! under `e2e/gitops` runs Flux's kstatus (`github.com/fluxcd/cli-utils`, what Flux's `wait`
//! uses), upstream kstatus (`sigs.k8s.io/cli-utils`) and the checks of `docs/argocd` in the Lua
//! engine Argo CD embeds, on the objects exactly as `kubectl get -o json` reads them from the API
//! server. After every step of every story the suite asserts the verdicts a GitOps user must see,
//! stated from what the versions are doing (not from the conditions the tools read):
//!
//! | Model                                   | kstatus    | Argo CD     |
//! |-----------------------------------------|------------|-------------|
//! | Stalled (bad input)                     | Failed     | Degraded    |
//! | spec not yet observed                   | InProgress | Progressing |
//! | rollout waiting for a person / analysis | InProgress | Suspended   |
//! | a version training, judged, rolling out | InProgress | Progressing |
//! | a rollback since the version serving    | Current    | Degraded    |
//! | nothing serves yet                      | InProgress | Progressing |
//! | a version serves, nothing on its way    | Current    | Healthy     |
//!
//! A ModelVersion: InProgress/Progressing on its way, Failed/Degraded when its training failed,
//! Current/Degraded when Rejected or RolledBack, Current/Healthy when Ready, Serving or Retired.
//! A RetrainPolicy: Failed/Degraded when Stalled, InProgress/Progressing until its spec is
//! observed, else Current (Healthy, or Degraded when its retrains stopped helping).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;

/// The tools' verdicts on one object, as the judge prints them.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub kind: String,
    pub name: String,
    /// Flux's kstatus.
    pub kstatus: String,
    pub kstatus_message: String,
    /// Upstream kstatus.
    pub kstatus_upstream: String,
    /// Argo CD's health; empty without a check for the kind.
    pub health: String,
    pub health_message: String,
}

/// What the suite expects of one object, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub kstatus: &'static str,
    pub health: &'static str,
    pub because: String,
}

/// Every (kind, tool, verdict) the stories met, for the closing check that each was seen.
static SEEN: Mutex<BTreeSet<(String, &'static str, String)>> = Mutex::new(BTreeSet::new());

/// Runs the judge on a `kubectl get -o json` list.
pub async fn judge(cluster: &Cluster, list: &str) -> Check<Vec<Verdict>> {
    let judge = std::env::var("E2E_JUDGE").map_err(|_| "E2E_JUDGE is not set (e2e/run.sh builds the judge)")?;
    let mut command = Command::new(judge);
    command.arg("--health-dir").arg(cluster.root.join("docs/argocd"));
    let out = crate::cluster::run_beside(command, Some(list.to_string())).await?;
    serde_json::from_str(&out).map_err(|e| format!("the judge printed {out}: {e}"))
}

/// The Models, ModelVersions and RetrainPolicies of `ns` as the API server returns them.
pub async fn objects(cluster: &Cluster, ns: &str) -> Check<String> {
    cluster.kubectl_beside(&["-n", ns, "get", "models,modelversions,retrainpolicies", "-o", "json"]).await
}

/// Asserts, within `seconds` (the objects are read one kind after another, so a read can catch a
/// Model and its versions between two writes), that every object of `ns` gets the expected
/// verdicts; returns the verdicts.
pub async fn agree(cluster: &Cluster, ns: &str, seconds: u64) -> Check<Vec<Verdict>> {
    eventually(&format!("GitOps verdicts in {ns} to be as expected"), Duration::from_secs(seconds), || async {
        let list = objects(cluster, ns).await?;
        let items: Value = serde_json::from_str(&list).map_err(|e| e.to_string())?;
        let expected = expectations(&items);
        let verdicts = judge(cluster, &list).await?;
        let mut wrong = vec![];
        for v in &verdicts {
            let Some(want) = expected.get(&(v.kind.clone(), v.name.clone())) else { continue };
            if v.kstatus != v.kstatus_upstream {
                wrong.push(format!(
                    "{} {}: Flux's kstatus says {} but upstream kstatus {}",
                    v.kind, v.name, v.kstatus, v.kstatus_upstream
                ));
            }
            if v.kstatus != want.kstatus || v.health != want.health {
                wrong.push(format!(
                    "{} {} ({}): kstatus {} ({:?}), Argo CD {} ({:?}); expected {} and {}",
                    v.kind,
                    v.name,
                    want.because,
                    v.kstatus,
                    v.kstatus_message,
                    v.health,
                    v.health_message,
                    want.kstatus,
                    want.health
                ));
            }
        }
        ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
        if let Ok(mut seen) = SEEN.lock() {
            for v in &verdicts {
                seen.insert((v.kind.clone(), "kstatus", v.kstatus.clone()));
                seen.insert((v.kind.clone(), "Argo CD", v.health.clone()));
            }
        }
        Ok(verdicts)
    })
    .await
}

/// The verdict of one object in `ns`, without expectations (for a story's own assertions).
pub async fn verdict(cluster: &Cluster, ns: &str, kind: &str, name: &str) -> Check<Verdict> {
    let verdicts = judge(cluster, &objects(cluster, ns).await?).await?;
    verdicts.into_iter().find(|v| v.kind == kind && v.name == name).ok_or_else(|| format!("no {kind} {name} in {ns}"))
}

/// The closing check: across the stories each tool gave every verdict a user relies on, so the
/// per-step assertions above were not vacuous.
pub fn every_verdict_seen() -> Check<String> {
    let seen = SEEN.lock().map_err(|e| e.to_string())?.clone();
    let wanted = [
        ("Model", "kstatus", ["InProgress", "Current", "Failed"].as_slice()),
        ("Model", "Argo CD", &["Progressing", "Suspended", "Healthy", "Degraded"]),
        ("ModelVersion", "kstatus", &["InProgress", "Current", "Failed"]),
        ("ModelVersion", "Argo CD", &["Progressing", "Healthy", "Degraded"]),
        ("RetrainPolicy", "kstatus", &["Current", "Failed"]),
        ("RetrainPolicy", "Argo CD", &["Healthy", "Degraded"]),
    ];
    let mut missing = vec![];
    for (kind, tool, verdicts) in wanted {
        for verdict in verdicts {
            if !seen.contains(&(kind.to_string(), tool, verdict.to_string())) {
                missing.push(format!("{tool} never said {verdict} of a {kind}"));
            }
        }
    }
    ensure!(missing.is_empty(), "{}", missing.join("; "));
    Ok(format!("{} distinct verdicts", seen.len()))
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn is_true(object: &Value, type_: &str) -> bool {
    condition(object, type_).is_some_and(|c| c["status"] == "True")
}

fn observed(object: &Value) -> bool {
    object["status"]["observedGeneration"] == object["metadata"]["generation"]
}

fn phase(version: &Value) -> &str {
    version["status"]["phase"].as_str().unwrap_or("")
}

fn expect(kstatus: &'static str, health: &'static str, because: impl Into<String>) -> Expected {
    Expected { kstatus, health, because: because.into() }
}

/// The verdict each object of a `kubectl get -o json` list should get, by (kind, name).
pub fn expectations(list: &Value) -> BTreeMap<(String, String), Expected> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let of_kind = |kind: &'static str| items.iter().filter(move |i| i["kind"] == kind);
    let mut expected = BTreeMap::new();
    for version in of_kind("ModelVersion") {
        let name = version["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let p = phase(version);
        let want = match p {
            "" | "Pending" | "Training" | "Evaluating" | "RollingOut" => {
                expect("InProgress", "Progressing", format!("on its way ({p:?})"))
            }
            "Failed" => expect("Failed", "Degraded", "its training failed"),
            "Rejected" | "RolledBack" => expect("Current", "Degraded", format!("judged: {p}")),
            _ => expect("Current", "Healthy", format!("judged: {p}")),
        };
        expected.insert(("ModelVersion".to_string(), name), want);
    }
    for model in of_kind("Model") {
        let name = model["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let versions: BTreeMap<u64, &Value> = of_kind("ModelVersion")
            .filter(|v| v["spec"]["model"] == name.as_str())
            .filter_map(|v| Some((v["spec"]["version"].as_u64()?, v)))
            .collect();
        let busy =
            versions.iter().find(|(_, v)| ["", "Pending", "Training", "Evaluating", "RollingOut"].contains(&phase(v)));
        let serving = versions.iter().rev().find(|(_, v)| phase(v) == "Serving").map(|(n, _)| *n);
        let rolled_back = versions.iter().rev().find(|(n, v)| phase(v) == "RolledBack" && Some(**n) > serving);
        let rolling = condition(model, "RollingOut");
        let paused = rolling.filter(|c| {
            c["status"] == "True"
                && ["WaitingForPromotion", "StalePromotion", "AnalysisInconclusive"]
                    .contains(&c["reason"].as_str().unwrap_or(""))
        });
        let unhealthy =
            condition(model, "Degraded").filter(|c| c["status"] == "True" && c["reason"] == "ServingUnhealthy");
        let want = if is_true(model, "Stalled") {
            expect("Failed", "Degraded", "Stalled")
        } else if !observed(model) {
            expect("InProgress", "Progressing", "its spec is not observed yet")
        } else if let Some(paused) = paused {
            expect("InProgress", "Suspended", format!("its rollout is paused: {}", paused["reason"]))
        } else if let Some((n, v)) = busy {
            let health = if unhealthy.is_some() || rolled_back.is_some() { "Degraded" } else { "Progressing" };
            expect("InProgress", health, format!("v{n} is {:?}", phase(v)))
        } else if let Some((n, _)) = rolled_back {
            expect("Current", "Degraded", format!("v{n} was rolled back"))
        } else if unhealthy.is_some() {
            expect("Current", "Degraded", "its serving pods are unhealthy")
        } else if let Some(n) = serving {
            expect("Current", "Healthy", format!("v{n} serves, nothing on its way"))
        } else {
            expect("InProgress", "Progressing", "nothing serves yet")
        };
        expected.insert(("Model".to_string(), name), want);
    }
    for policy in of_kind("RetrainPolicy") {
        let name = policy["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let want = if is_true(policy, "Stalled") {
            expect("Failed", "Degraded", "Stalled")
        } else if !observed(policy) {
            expect("InProgress", "Progressing", "its spec is not observed yet")
        } else if is_true(policy, "Degraded") {
            expect("Current", "Degraded", "its retrains stopped helping")
        } else {
            expect("Current", "Healthy", "observed, acting")
        };
        expected.insert(("RetrainPolicy".to_string(), name), want);
    }
    expected
}
