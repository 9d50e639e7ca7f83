//! What the real API server accepts and refuses: the CRDs themselves (its CEL cost estimator is
//! the judge), every example manifest, and every case of the offline admission table.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;

use crate::admission_cases::{Case, Expect, cases};
use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;
use crate::report::{Report, Scene};

const NAMESPACE: &str = "e2e-admission";

/// Installs the CRDs as the README says; false when the API server refused them (nothing else
/// can run then).
pub fn install_crds(cluster: &Cluster, report: &Report) -> bool {
    let crds = cluster.kubectl(&["apply", "--server-side", "-f", "crds/"]).and_then(|_| {
        cluster.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", "crds/"]).map(|_| ())
    });
    if !report.check("kubectl apply --server-side -f crds/ is accepted and every CRD is Established", crds, None) {
        return false;
    }
    // Gateway API's own CRDs (standard channel), from its Go module: e2e/run.sh names the folder.
    let what = "Gateway API's CRDs (from the sigs.k8s.io/gateway-api Go module) are installed and Established";
    let gateway = match std::env::var("E2E_GATEWAY_API_CRDS") {
        Ok(dir) => cluster.kubectl(&["apply", "--server-side", "-f", &dir]).and_then(|_| {
            cluster.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", &dir]).map(|_| ())
        }),
        Err(_) => Err("E2E_GATEWAY_API_CRDS is not set (e2e/run.sh sets it)".into()),
    };
    if !report.check(what, gateway, None) {
        return false;
    }
    // KServe's InferenceService CRD, from its Go module (over 1 MB: server-side apply only).
    let what =
        "KServe's InferenceService CRD (from the github.com/kserve/kserve Go module) is installed and Established";
    if !report.check(what, install_crd_file(cluster, "E2E_KSERVE_CRD", "inferenceservices.serving.kserve.io"), None) {
        return false;
    }
    // The training engines' CRDs, from their Go modules.
    let what = "Kubeflow Trainer's TrainJob CRD (from the github.com/kubeflow/trainer/v2 Go module) is installed and Established";
    if !report.check(what, install_crd_file(cluster, "E2E_TRAINJOB_CRD", "trainjobs.trainer.kubeflow.org"), None) {
        return false;
    }
    let what = "KubeRay's RayJob CRD (from the github.com/ray-project/kuberay/ray-operator Go module) is installed and Established";
    report.check(what, install_crd_file(cluster, "E2E_RAYJOB_CRD", "rayjobs.ray.io"), None)
}

/// Installs the CRD in the file the environment variable `var` names (e2e/run.sh sets it) and
/// waits until `crd` is Established.
fn install_crd_file(cluster: &Cluster, var: &str, crd: &str) -> Check {
    let Ok(file) = std::env::var(var) else { return Err(format!("{var} is not set (e2e/run.sh sets it)")) };
    cluster.kubectl(&["apply", "--server-side", "-f", &file])?;
    // Until the API server has written the CRD's first condition, kubectl wait fails rather than
    // waits ("status.conditions accessor error"): try again for a while.
    let crd = format!("crd/{crd}");
    let wait = || cluster.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &crd]);
    (0..20)
        .find_map(|_| {
            wait().ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(500));
                None
            })
        })
        .map(|_| ())
        .ok_or_else(|| wait().err().unwrap_or_default())
}

/// Sends the examples and every admission case to the API server.
pub async fn run(cluster: &Cluster, report: &Report) {
    let scene = Scene { cluster, namespace: NAMESPACE.into(), log: None };
    if let Err(e) = cluster.namespace(NAMESPACE).await {
        report.fail("create the admission namespace", &e, None);
        return;
    }
    report.check(
        "every Model and RetrainPolicy under examples/ is accepted (server-side dry run)",
        examples(cluster).await,
        Some(&scene),
    );
    for case in cases() {
        let what = match &case.expect {
            Expect::Accepted => format!("admission: {} (the real apiserver agrees)", case.name),
            Expect::Refused(message) => {
                format!("admission: {} with {message:?} (the real apiserver agrees)", case.name)
            }
        };
        report.check(&what, judge(cluster, &case).await, None);
    }
    match unobserved(cluster).await {
        Ok(detail) => report.pass(&format!(
            "a Model and a RetrainPolicy no controller has seen read back with status.observedGeneration 0 \
             (the CRD's default): kstatus says InProgress, not Current, and Argo CD Progressing ({detail})"
        )),
        Err(why) => report.fail("objects no controller has seen are InProgress for kstatus", &why, Some(&scene)),
    }
    report.check(
        "kubectl explain model.spec.serving.strategy describes canary and blueGreen",
        explain(cluster).await,
        None,
    );
}

fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "Model" => "models",
        "ModelVersion" => "modelversions",
        _ => "retrainpolicies",
    };
    ApiResource {
        group: "modelcycle.io".into(),
        version: "v1alpha1".into(),
        api_version: "modelcycle.io/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn object(value: &Value, name: &str) -> Check<DynamicObject> {
    let mut value = value.clone();
    value["metadata"]["namespace"] = NAMESPACE.into();
    value["metadata"]["name"] = name.into();
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Sends the case's object as a server-side dry run (an update of a stored old object for the
/// update cases) and compares the answer with what the table expects.
async fn judge(cluster: &Cluster, case: &Case) -> Check {
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), NAMESPACE, &resource(case.kind));
    let dry_run = PostParams { dry_run: true, field_manager: Some("e2e".into()) };
    let answer = match &case.old {
        // The case's own name: some cases are about the name (a Model's name names its Service).
        None => {
            let name = case.object["metadata"]["name"].as_str().unwrap_or("case");
            api.create(&dry_run, &object(&case.object, name)?).await
        }
        Some(old) => {
            let name = format!("update-{}", case.name.len());
            let _ = api.delete(&name, &Default::default()).await;
            let stored = api.create(&PostParams::default(), &object(old, &name)?).await.map_err(|e| e.to_string())?;
            let mut new = object(&case.object, &name)?;
            new.metadata.resource_version = stored.metadata.resource_version.clone();
            let answer = api.replace(&name, &dry_run, &new).await;
            let _ = api.delete(&name, &Default::default()).await;
            answer
        }
    };
    match (&case.expect, answer) {
        (Expect::Accepted, Ok(_)) => Ok(()),
        (Expect::Accepted, Err(e)) => Err(format!("refused: {e}")),
        (Expect::Refused(message), Err(kube::Error::Api(status))) => {
            ensure!(status.message.contains(message), "refused, but with {:?}, not {message:?}", status.message);
            Ok(())
        }
        (Expect::Refused(_), Err(e)) => Err(format!("failed other than by refusing: {e}")),
        (Expect::Refused(message), Ok(_)) => Err(format!("accepted; expected a refusal with {message:?}")),
    }
}

/// Dry-runs every Model and RetrainPolicy of `examples/` in the admission namespace.
async fn examples(cluster: &Cluster) -> Check {
    let mut checked = vec![];
    let root = cluster.path("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root).map_err(|e| e.to_string())?.flatten().map(|d| d.path()).collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<_> =
            std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten().map(|f| f.path()).collect();
        files.sort();
        for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value =
                    serde::Deserialize::deserialize(doc).map_err(|e| format!("{}: {e}", path.display()))?;
                let Some(kind @ ("Model" | "RetrainPolicy")) = value["kind"].as_str() else { continue };
                let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), NAMESPACE, &resource(kind));
                let name = value["metadata"]["name"].as_str().unwrap_or("example").to_string();
                let params = PostParams { dry_run: true, field_manager: Some("e2e".into()) };
                api.create(&params, &object(&value, &name)?)
                    .await
                    .map_err(|e| format!("{} ({kind} {name}) refused: {e}", path.display()))?;
                checked.push(format!("{}", path.strip_prefix(&root).unwrap_or(&path).display()));
            }
        }
    }
    ensure!(checked.len() >= 5, "only {} manifests found: {checked:?}", checked.len());
    Ok(())
}

async fn explain(cluster: &Cluster) -> Check {
    // Discovery can lag the CRD by a moment.
    let text = eventually("kubectl explain", Duration::from_secs(20), || async {
        cluster.kubectl(&["explain", "model.spec.serving.strategy"])
    })
    .await?;
    for wanted in ["canary", "blueGreen", "Rolling"] {
        ensure!(text.contains(wanted), "kubectl explain does not mention {wanted}:\n{text}");
    }
    Ok(())
}

/// Before any controller runs (a Flux sync while the controller is down or busy): a Model and a
/// RetrainPolicy just applied read back with `status: {observedGeneration: 0}`, and Flux's kstatus
/// and Argo CD call them in progress. Without the CRD's status default kstatus calls an object
/// without status Current, and a Flux Kustomization would turn Ready on a Model nothing trains.
async fn unobserved(cluster: &Cluster) -> Check<String> {
    let model = crate::stories::kwok_model("unseen", &crate::stories::Behaviour::default());
    let policy = serde_json::json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": "unseen"},
        "spec": {"modelRef": {"name": "unseen"}, "schedule": {"cron": "0 4 * * 1"}}
    });
    crate::stories::apply(cluster, NAMESPACE, &model).await?;
    crate::stories::apply(cluster, NAMESPACE, &policy).await?;
    let result = async {
        let list: Value =
            serde_json::from_str(&crate::gitops::objects(cluster, NAMESPACE).await?).map_err(|e| e.to_string())?;
        for item in list["items"].as_array().into_iter().flatten() {
            ensure!(
                item["status"] == serde_json::json!({"observedGeneration": 0}),
                "{} {} reads back with status {}",
                item["kind"],
                item["metadata"]["name"],
                item["status"]
            );
        }
        let verdicts = crate::gitops::agree(cluster, NAMESPACE, 5).await?;
        ensure!(verdicts.len() == 2, "judged {verdicts:?}");
        for v in &verdicts {
            ensure!(v.kstatus == "InProgress" && v.health == "Progressing", "{v:?}");
        }
        Ok(verdicts.iter().map(|v| format!("{}: {:?}", v.kind, v.kstatus_message)).collect::<Vec<_>>().join("; "))
    }
    .await;
    for kind in ["models", "retrainpolicies"] {
        let _ = cluster.kubectl(&["-n", NAMESPACE, "delete", kind, "unseen", "--wait=true"]);
    }
    result
}
