//! The lifecycle on the real control plane: each story in its own namespace, all at once, under
//! one controller. The real Job controller runs the trainers, the real Deployment controller
//! rolls out and reports progress, the real garbage collector removes what a pruned version owned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use modelcycle::api::{Model, ModelVersion, RetrainPolicy};
use serde_json::{Value, json};

use crate::cluster::{Check, Cluster, eventually};
use crate::controller::Controller;
use crate::ensure;
use crate::report::{Report, Scene};

/// How the fake kubelet treats a Model's versions (see e2e/kwok/stages.yaml).
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Metrics each version's trainer reports; versions without an entry report `auc: 0.9`.
    pub metrics: BTreeMap<u32, Value>,
    /// Versions whose serving pods never become Ready.
    pub never_ready: Vec<u32>,
    /// Versions whose trainer exits with an error.
    pub failing: Vec<u32>,
    /// How long a trainer runs, e.g. `20s`.
    pub training_time: Option<String>,
    /// The digest of what each version's trainer reports it read; none: it does not say.
    pub datasets: BTreeMap<u32, &'static str>,
}

fn list(versions: &[u32]) -> String {
    versions.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The annotations of the training and the serving pod templates that make kwok play `behaviour`.
pub fn annotations(behaviour: &Behaviour) -> (Value, Value) {
    let mut training = json!({
        "e2e.modelcycle.io/result": json!({"metrics": {"auc": 0.9}}).to_string(),
        "e2e.modelcycle.io/failing-versions": list(&behaviour.failing),
        "e2e.modelcycle.io/training-time": behaviour.training_time.clone().unwrap_or_else(|| "1s".into()),
    });
    let versions: std::collections::BTreeSet<u32> =
        behaviour.metrics.keys().chain(behaviour.datasets.keys()).copied().collect();
    for version in versions {
        let metrics = behaviour.metrics.get(&version).cloned().unwrap_or_else(|| json!({"auc": 0.9}));
        let mut result = json!({"metrics": metrics});
        if let Some(digest) = behaviour.datasets.get(&version) {
            result["dataset"] = json!({"digest": digest, "rows": 1000});
        }
        training[format!("e2e.modelcycle.io/result-v{version}")] = result.to_string().into();
    }
    let serving = json!({"e2e.modelcycle.io/never-ready-versions": list(&behaviour.never_ready)});
    (training, serving)
}

/// A Model whose pods kwok runs as `behaviour` says: two serving replicas, a 10 s progress
/// deadline, an AUC gate at 0.8.
pub fn kwok_model(name: &str, behaviour: &Behaviour) -> Value {
    let (training, serving) = annotations(behaviour);
    json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "training": {
                "template": {
                    "metadata": {"annotations": training},
                    "spec": {"containers": [{"name": "trainer", "image": "registry.example/e2e-trainer:1"}]}
                },
                "dataset": {"uri": format!("s3://data/{name}"), "version": "d1"},
                "artifactUri": "s3://models/{model}/{version}"
            },
            "evaluation": {"gates": [{"metric": "auc", "min": 0.8}]},
            "serving": {
                "template": {
                    "metadata": {"annotations": serving},
                    "spec": {"containers": [{"name": "server", "image": "registry.example/e2e-server:1"}]}
                },
                "replicas": 2,
                "progressDeadlineSeconds": 10
            }
        }
    })
}

/// Server-side applies `object` in `ns` as a GitOps tool would (field manager `e2e`).
pub async fn apply(cluster: &Cluster, ns: &str, object: &Value) -> Check {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams::apply("e2e").force();
    let result = match kind {
        "Model" => Api::<Model>::namespaced(cluster.client.clone(), ns)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map(|_| ()),
        "RetrainPolicy" => Api::<RetrainPolicy>::namespaced(cluster.client.clone(), ns)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map(|_| ()),
        other => return Err(format!("cannot apply a {other}")),
    };
    result.map_err(|e| format!("apply {kind} {ns}/{name}: {e}"))
}

/// Merges `patch` into the Model `ns/name` (as `kubectl patch --type merge` would).
pub async fn patch_model(cluster: &Cluster, ns: &str, name: &str, patch: Value) -> Check {
    Api::<Model>::namespaced(cluster.client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("patch Model {ns}/{name}: {e}"))
}

/// Sets the dataset version of `ns/name`, which trains a new version.
pub async fn new_data(cluster: &Cluster, ns: &str, name: &str, dataset: &str) -> Check {
    patch_model(cluster, ns, name, json!({"spec": {"training": {"dataset": {"version": dataset}}}})).await
}

/// The Model `ns/name`.
pub async fn model(cluster: &Cluster, ns: &str, name: &str) -> Check<Model> {
    Api::<Model>::namespaced(cluster.client.clone(), ns).get(name).await.map_err(|e| e.to_string())
}

/// Every ModelVersion of the Model, by number.
pub async fn versions(cluster: &Cluster, ns: &str, name: &str) -> Check<BTreeMap<u32, ModelVersion>> {
    let list = Api::<ModelVersion>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.items.into_iter().filter(|v| v.spec.model == name).map(|v| (v.spec.version, v)).collect())
}

/// Waits until version `n` of `ns/name` is in `phase`.
pub async fn wait_phase(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    n: u32,
    phase: &str,
    seconds: u64,
) -> Check<ModelVersion> {
    eventually(&format!("v{n} of {name} to be {phase}"), Duration::from_secs(seconds), || async {
        let mut all = versions(cluster, ns, name).await?;
        let version = all.remove(&n).ok_or_else(|| format!("no v{n}; phases {:?}", phases_of(&all)))?;
        let current = version.status.as_ref().and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or_default();
        ensure!(current == phase, "v{n} is {current:?}: {:?}", version.status.as_ref().and_then(|s| s.message.clone()));
        Ok(version)
    })
    .await
}

fn phases_of(all: &BTreeMap<u32, ModelVersion>) -> BTreeMap<u32, String> {
    all.iter()
        .map(|(n, v)| (*n, v.status.as_ref().and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or_default()))
        .collect()
}

/// The status of the Model's condition `type_`, and its reason.
pub fn condition(model: &Model, type_: &str) -> (String, String) {
    model
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default()
}

/// Waits until no version of the Model is in progress and the status describes the spec.
pub async fn wait_quiet(cluster: &Cluster, ns: &str, name: &str, seconds: u64) -> Check<BTreeMap<u32, String>> {
    eventually(&format!("{name} to settle"), Duration::from_secs(seconds), || async {
        let m = model(cluster, ns, name).await?;
        let observed = m.status.as_ref().and_then(|s| s.observed_generation);
        ensure!(
            observed == m.metadata.generation,
            "status describes generation {observed:?} of {:?}",
            m.metadata.generation
        );
        let all = versions(cluster, ns, name).await?;
        let phases = phases_of(&all);
        let busy = ["", "Pending", "Training", "Evaluating", "RollingOut"];
        ensure!(phases.values().all(|p| !busy.contains(&p.as_str())), "in progress: {phases:?}");
        ensure!(condition(&m, "Reconciling").0 != "True", "Reconciling is True: {phases:?}");
        Ok(phases)
    })
    .await
}

/// The version the Deployment `ns/name` runs (its `modelcycle.io/version` annotation) and its
/// replicas, or `None` when it does not exist.
pub async fn deployment(cluster: &Cluster, ns: &str, name: &str) -> Check<Option<(String, i32, i32)>> {
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), ns).get_opt(name).await.map_err(|e| e.to_string())?;
    Ok(d.map(|d| {
        let version = d.annotations().get("modelcycle.io/version").cloned().unwrap_or_default();
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        (version, replicas, ready)
    }))
}

/// The track the Service `ns/name` selects (`stable`, `preview`, or `any` when it selects every
/// serving pod); `None` without a Service.
pub async fn service_track(cluster: &Cluster, ns: &str, name: &str) -> Check<Option<String>> {
    let svc = Api::<Service>::namespaced(cluster.client.clone(), ns).get_opt(name).await.map_err(|e| e.to_string())?;
    Ok(svc.map(|svc| {
        let track = svc.spec.and_then(|s| s.selector).and_then(|s| s.get("modelcycle.io/track").cloned());
        track.unwrap_or_else(|| "any".into())
    }))
}

/// Waits until a blue-green rollout of `name` has tidied up: the Service on the stable track
/// again and the preview Deployment gone.
pub async fn wait_blue_green_done(cluster: &Cluster, ns: &str, name: &str) -> Check {
    eventually("the Service back on the stable track, the preview gone", Duration::from_secs(60), || async {
        let track = service_track(cluster, ns, name).await?;
        ensure!(track.as_deref() == Some("stable"), "the Service selects track {track:?}");
        let preview = deployment(cluster, ns, &format!("{name}-preview")).await?;
        ensure!(preview.is_none(), "the preview Deployment is still there: {preview:?}");
        Ok(())
    })
    .await
}

/// The ready endpoints behind the Service `ns/name`, and the versions of the pods they are.
pub async fn ready_endpoints(client: &Client, ns: &str, service: &str) -> Check<(usize, BTreeSet<String>)> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .map_err(|e| e.to_string())?;
    let pods: BTreeMap<String, Pod> = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| (p.name_any(), p))
        .collect();
    let mut ready = 0;
    let mut versions = BTreeSet::new();
    for endpoint in slices.iter().flat_map(|s| s.endpoints.iter()) {
        if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
            ready += 1;
            let pod = endpoint.target_ref.as_ref().and_then(|r| r.name.clone()).unwrap_or_default();
            if let Some(v) = pods.get(&pod).and_then(|p| p.labels().get("modelcycle.io/version").cloned()) {
                versions.insert(v);
            }
        }
    }
    Ok((ready, versions))
}

/// The training Jobs of `ns/name`, by the version label.
pub async fn jobs(cluster: &Cluster, ns: &str, name: &str) -> Check<Vec<(String, String)>> {
    let list = Api::<Job>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("modelcycle.io/model={name}")))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .iter()
        .map(|j| (j.labels().get("modelcycle.io/version").cloned().unwrap_or_default(), j.uid().unwrap_or_default()))
        .collect())
}

/// Runs every story at once; true when all passed.
pub async fn run(
    cluster: &Cluster,
    report: &Report,
    controller: &Controller,
    mlflow: &crate::stories::registry::Mlflow,
) -> bool {
    let log = Some(controller.log.clone());
    let scene = |ns: &str| Scene { cluster, namespace: ns.into(), log: log.clone() };
    let stories = [
        ("e2e-quickstart", "quickstart"),
        ("e2e-canary", "canary"),
        ("e2e-bluegreen", "bluegreen"),
        ("e2e-manual", "manual"),
        ("e2e-policy", "policy"),
        ("e2e-pinned", "pinned"),
        ("e2e-pruning", "pruning"),
        ("e2e-gateway", "gateway"),
        ("e2e-kserve", "kserve"),
        ("e2e-kserve-standard", "kserve-standard"),
        ("e2e-trainjob", "trainjob"),
        ("e2e-rayjob", "rayjob"),
        ("e2e-plugin", "plugin"),
        ("e2e-mlflow", "mlflow"),
        ("e2e-mlflow-source", "mlflow-source"),
        ("e2e-gitops", "gitops"),
        ("e2e-flux", "flux"),
    ];
    for (ns, _) in stories {
        if let Err(e) = cluster.namespace(ns).await {
            report.fail(&format!("create namespace {ns}"), &e, None);
            return false;
        }
    }
    let results = futures::future::join_all(stories.iter().map(|(ns, story)| {
        let scene = scene(ns);
        async move {
            let mut steps = Steps::new(report, scene);
            match *story {
                "quickstart" => crate::stories::quickstart::run(cluster, &mut steps).await,
                "canary" => crate::stories::progressive::canary(cluster, &mut steps).await,
                "bluegreen" => crate::stories::progressive::blue_green(cluster, &mut steps).await,
                "manual" => crate::stories::progressive::manual(cluster, &mut steps).await,
                "policy" => crate::stories::history::policy(cluster, &mut steps).await,
                "pinned" => crate::stories::history::pinned(cluster, &mut steps).await,
                "gateway" => crate::stories::traffic::gateway(cluster, &mut steps).await,
                "kserve" => crate::stories::kserve::kserve(cluster, &mut steps).await,
                "kserve-standard" => crate::stories::kserve::kserve_standard(cluster, &mut steps).await,
                "trainjob" => crate::stories::distributed::train_job(cluster, &mut steps).await,
                "rayjob" => crate::stories::distributed::ray_job(cluster, &mut steps).await,
                "plugin" => crate::stories::plugin::plugin_story(cluster, &mut steps).await,
                "mlflow" => crate::stories::registry::mlflow(cluster, &mut steps, mlflow).await,
                "gitops" => crate::stories::gitops::gitops(cluster, &mut steps).await,
                "flux" => crate::stories::flux::flux(cluster, &mut steps).await,
                "mlflow-source" => {
                    crate::stories::registry::mlflow_source(cluster, &mut steps, mlflow, &controller.http).await
                }
                _ => crate::stories::history::pruning(cluster, &mut steps).await,
            }
            steps.finish().await
        }
    }))
    .await;
    let all = results.iter().all(|ok| *ok);
    if all {
        report.check("kubectl get mdl,mv,rtp shows a value in every printer column", printer_columns(cluster), None);
        match crate::gitops::every_verdict_seen() {
            Ok(detail) => report.pass(&format!(
                "across the stories Flux's kstatus and Argo CD's Lua engine gave every verdict a GitOps user relies on ({detail})"
            )),
            Err(why) => report.fail("every GitOps verdict was seen", &why, None),
        }
        report.check(
            "/metrics carries each Model's state and counts its rollbacks once",
            model_series(controller).await,
            None,
        );
        report.check(
            "modelcycle backtest and advise read what kubectl gets from the real apiserver",
            offline_commands(cluster),
            None,
        );
    }
    all
}

/// `modelcycle backtest` on a story's Model and RetrainPolicy as `kubectl get -o yaml` lists
/// them (status, managedFields, a standing retrain request and all), and `modelcycle advise` on a
/// story's ModelVersions as kubectl lists them: both read them, and say what they found.
fn offline_commands(cluster: &Cluster) -> Check {
    let dir = std::env::temp_dir().join(format!("modelcycle-e2e-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).map_err(|e| e.to_string());
    let to = jiff::Timestamp::now();
    let from = to - jiff::SignedDuration::from_hours(2);
    write("history.yaml", &format!("from: \"{from}\"\nto: \"{to}\"\nquality: [{{at: \"{from}\", value: 0.9}}]\n"))?;
    let run = |args: &[&str]| -> Check<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelcycle"))
            .args(args)
            .current_dir(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        ensure!(out.status.success(), "modelcycle {args:?}: {}{text}", String::from_utf8_lossy(&out.stderr));
        Ok(text)
    };

    // The policy story's Model and policy, with the retrain request it was annotated with.
    write("demand.yaml", &cluster.kubectl(&["-n", "e2e-policy", "get", "mdl,rtp", "demand", "-o", "yaml"])?)?;
    let report = run(&["backtest", "demand.yaml", "--history", "history.yaml"])?;
    ensure!(report.contains("Backtest of RetrainPolicy e2e-policy/demand"), "{report}");
    ensure!(report.contains("It would have fired 0 times"), "the stored retrain request was replayed:\n{report}");
    ensure!(report.contains("retrain requests"), "{report}");

    // The canary story's versions: v1 served, v2 serves.
    let listed = cluster.kubectl(&[
        "-n",
        "e2e-canary",
        "get",
        "modelversions",
        "-l",
        "modelcycle.io/model=ranker",
        "-o",
        "yaml",
    ])?;
    write("versions.yaml", &listed)?;
    let to = to.to_string();
    let advice = run(&[
        "advise",
        "--versions",
        "versions.yaml",
        "--history",
        "history.yaml",
        "--to",
        &to,
        "--training-cost",
        "100",
        "--value-per-point",
        "1000",
    ])?;
    for version in ["v1", "v2"] {
        ensure!(advice.lines().any(|l| l.trim_start().starts_with(version)), "{version} missing:\n{advice}");
    }
    ensure!(advice.contains("No recommendation: 0 days of quality"), "{advice}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A step's GitOps verdicts on their way: judged beside the next steps, so the judging delays no
/// story (a canary's first step lasts seconds).
type Judging<'a> = futures::stream::FuturesUnordered<futures::future::BoxFuture<'a, (String, Check)>>;

/// A story's steps: each prints PASS or FAIL; after a failure the rest are skipped. After each
/// step that passed, what Flux's kstatus and Argo CD's Lua engine say of every object of the
/// namespace is checked (see `gitops.rs`), beside the steps that follow.
pub struct Steps<'a> {
    report: &'a Report,
    /// Where the story runs.
    pub scene: Scene<'a>,
    ok: bool,
    judging: Judging<'a>,
}

impl<'a> Steps<'a> {
    pub fn new(report: &'a Report, scene: Scene<'a>) -> Self {
        Steps { report, scene, ok: true, judging: Default::default() }
    }

    /// The story's namespace.
    pub fn ns(&self) -> &str {
        &self.scene.namespace
    }

    /// Runs a step unless an earlier one failed; true when it passed.
    pub async fn step(&mut self, what: &str, check: impl std::future::Future<Output = Check>) -> bool {
        if !self.ok {
            return false;
        }
        let what = format!("{}: {what}", self.scene.namespace);
        let result = self.beside_judging(check).await;
        self.ok = self.ok && self.report.check(&what, result, Some(&self.scene));
        self.judge_after(what);
        self.ok
    }

    /// Like [`Steps::step`], for a check that measured something worth printing on its PASS line.
    pub async fn measure(&mut self, what: &str, check: impl std::future::Future<Output = Check<String>>) -> bool {
        if !self.ok {
            return false;
        }
        let what = format!("{}: {what}", self.scene.namespace);
        match self.beside_judging(check).await {
            Ok(detail) => self.report.pass(&format!("{what} ({detail})")),
            Err(why) => {
                self.report.fail(&what, &why, Some(&self.scene));
                self.ok = false;
            }
        }
        self.judge_after(what);
        self.ok
    }

    /// Starts judging the namespace as the step `what` left it.
    fn judge_after(&mut self, what: String) {
        if self.ok {
            let cluster = self.scene.cluster;
            let ns = self.scene.namespace.clone();
            self.judging.push(Box::pin(async move {
                let result = crate::gitops::agree(cluster, &ns, 15).await.map(|_| ());
                (what, result)
            }));
        }
    }

    /// Runs `check` while the judging of earlier steps goes on; a judging that fails fails the story.
    async fn beside_judging<T>(&mut self, check: impl std::future::Future<Output = T>) -> T {
        use futures::StreamExt;
        let mut check = std::pin::pin!(check);
        loop {
            tokio::select! {
                out = &mut check => return out,
                Some((what, result)) = self.judging.next(), if !self.judging.is_empty() => self.judged(&what, result),
            }
        }
    }

    fn judged(&mut self, what: &str, result: Check) {
        if let Err(why) = result {
            self.report.fail(&format!("{what}: what Flux and Argo CD say"), &why, Some(&self.scene));
            self.ok = false;
        }
    }

    /// Waits for the judging of the last steps; true when the whole story passed.
    pub async fn finish(mut self) -> bool {
        use futures::StreamExt;
        while let Some((what, result)) = self.judging.next().await {
            self.judged(&what, result);
        }
        self.ok
    }
}

/// Every printer column of the three kinds, read by kubectl from the real apiserver, shows a value
/// for at least one object of the stories (a column no object fills is a typo or a dead field).
fn printer_columns(cluster: &Cluster) -> Check {
    for kind in ["mdl", "mv", "rtp"] {
        let text = cluster.kubectl(&["get", kind, "-A"])?;
        let mut lines = text.lines();
        let header = lines.next().ok_or("no header")?;
        let starts: Vec<usize> = header
            .match_indices(|c: char| c != ' ')
            .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
            .map(|(i, _)| i)
            .collect();
        let names: Vec<&str> = header.split_whitespace().collect();
        let rows: Vec<&str> = lines.collect();
        ensure!(!rows.is_empty(), "kubectl get {kind} -A lists nothing");
        for (i, name) in names.iter().enumerate() {
            let filled = rows.iter().any(|row| {
                let end = starts.get(i + 1).copied().unwrap_or(row.len()).min(row.len());
                let cell = row.get(starts[i].min(row.len())..end).unwrap_or("").trim();
                !cell.is_empty() && cell != "<none>"
            });
            ensure!(filled, "column {name} of kubectl get {kind} is empty in every row:\n{text}");
        }
    }
    Ok(())
}

pub mod distributed;
pub mod flux;
pub mod gitops;
pub mod history;
pub mod kserve;
pub mod plugin;
pub mod progressive;
pub mod quickstart;
pub mod registry;
pub mod traffic;

/// The per-Model series of the controller's `/metrics` after the stories: which version serves,
/// and the rollbacks by reason, counted once each.
async fn model_series(controller: &Controller) -> Check {
    let expected = [
        (r#"modelcycle_model_serving_version{namespace="e2e-canary",model="ranker"}"#, 2.0),
        (r#"modelcycle_model_rollbacks_total{namespace="e2e-canary",model="ranker",reason="AnalysisFailed"}"#, 1.0),
        (r#"modelcycle_model_serving_version{namespace="e2e-gateway",model="ranker"}"#, 1.0),
        (r#"modelcycle_model_rollbacks_total{namespace="e2e-gateway",model="ranker",reason="Aborted"}"#, 1.0),
        (r#"modelcycle_model_rollbacks_total{namespace="e2e-gateway",model="ranker",reason="AnalysisFailed"}"#, 1.0),
        (r#"modelcycle_model_retrains_total{namespace="e2e-canary",model="ranker",trigger="Initial"}"#, 1.0),
    ];
    for (series, value) in expected {
        let found = controller.metric(&format!("{series} ")).await?;
        crate::ensure!(found == value, "{series} is {found}, not {value}");
    }
    Ok(())
}
