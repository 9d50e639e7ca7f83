//! Training on the real engines: JobSet's and Kubeflow Trainer's own controllers (built from their
//! Go modules by e2e/engines/build.sh) run against the control plane, so a TrainJob modelcycle
//! writes really becomes a JobSet, a Job of several nodes and their pods, which kwok runs to the
//! trainer's termination message. The controllers run with the admin's kubeconfig and without
//! their certificate management; JobSet's defaulting webhook (which its controller relies on) is
//! served on loopback with a certificate made here, and registered by URL.
//!
//! A phase of its own, after the stories: Trainer reconciles every TrainJob of the cluster, and the
//! stories' TrainJobs are played by hand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{ResourceExt, core::DynamicObject, discovery::ApiResource};
use serde_json::json;

use crate::cluster::{Check, Cluster, eventually};
use crate::controller::{Controller, Install};
use crate::ensure;
use crate::report::{Report, Scene};
use crate::stories::{Behaviour, Steps, apply, kwok_model, new_data, versions, wait_phase};

const NAMESPACE: &str = "e2e-trainer";

/// The engines' processes; stopped when dropped.
struct Engines {
    children: Vec<Child>,
    dir: PathBuf,
    versions: String,
}

impl Drop for Engines {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Check<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn spawn(dir: &Path, name: &str, command: &mut Command) -> Check<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    command.stdin(Stdio::null()).stdout(log).stderr(err).spawn().map_err(|e| format!("cannot start {name}: {e}"))
}

/// Waits until `http://127.0.0.1:<port>/readyz` answers 200.
async fn ready(name: &str, port: u16) -> Check {
    let url = format!("http://127.0.0.1:{port}/readyz");
    eventually(&format!("{name} to be ready"), Duration::from_secs(60), || async {
        let answer = reqwest::get(&url).await.map_err(|e| e.to_string())?;
        ensure!(answer.status().is_success(), "/readyz is {}", answer.status());
        Ok(())
    })
    .await
}

impl Engines {
    /// Installs JobSet's and Trainer's CRDs and the torch-distributed runtime, makes a serving
    /// certificate, registers JobSet's defaulting webhook and starts both controllers.
    async fn start(cluster: &Cluster) -> Check<Engines> {
        let bin =
            PathBuf::from(std::env::var("E2E_ENGINES").map_err(|_| "E2E_ENGINES is not set (e2e/run.sh sets it)")?);
        let crds = bin.join("crds");
        let crds = crds.to_string_lossy();
        cluster.kubectl(&["apply", "--server-side", "-f", &crds])?;
        cluster.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", &crds])?;
        let dir = cluster.state("engines");
        let certs = dir.join("k8s-webhook-server/serving-certs");
        std::fs::create_dir_all(&certs).map_err(|e| e.to_string())?;
        let mut openssl = Command::new("openssl");
        openssl.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]);
        openssl.args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"]).arg(certs.join("tls.key"));
        openssl.arg("-out").arg(certs.join("tls.crt"));
        crate::cluster::run(openssl, None)?;
        let ca = std::fs::read(certs.join("tls.crt")).map_err(|e| e.to_string())?;
        let mut engines = Engines {
            children: vec![],
            versions: std::fs::read_to_string(bin.join("VERSIONS")).unwrap_or_default(),
            dir: dir.clone(),
        };

        let (jobset_webhook, jobset_health) = (free_port()?, free_port()?);
        let config = format!(
            "apiVersion: config.jobset.x-k8s.io/v1alpha1\nkind: Configuration\nleaderElection: {{leaderElect: false}}\n\
             internalCertManagement: {{enable: false}}\nhealth: {{healthProbeBindAddress: \"127.0.0.1:{jobset_health}\"}}\n\
             metrics: {{bindAddress: \"0\"}}\nwebhook: {{port: {jobset_webhook}, host: 127.0.0.1, certDir: {}}}\n",
            certs.display()
        );
        std::fs::write(dir.join("jobset.yaml"), config).map_err(|e| e.to_string())?;
        let mut jobset = Command::new(bin.join("jobset-controller"));
        jobset.arg(format!("--config={}", dir.join("jobset.yaml").display()));
        jobset.arg(format!("--kubeconfig={}", cluster.env.kubeconfig.display()));
        engines.children.push(spawn(&dir, "jobset-controller", &mut jobset)?);
        ready("the JobSet controller", jobset_health).await?;
        // JobSet's controller expects the fields its defaulting webhook fills in.
        use base64::Engine as _;
        let webhook = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "e2e-jobset-defaulter"},
            "webhooks": [{
                "name": "mjobset.kb.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": {"url": format!("https://127.0.0.1:{jobset_webhook}/mutate-jobset-x-k8s-io-v1alpha2-jobset"),
                                 "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca)},
                "rules": [{"apiGroups": ["jobset.x-k8s.io"], "apiVersions": ["v1alpha2"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["jobsets"]}]
            }]
        });
        cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&webhook.to_string()))?;

        let trainer_health = free_port()?;
        let config = format!(
            "apiVersion: config.trainer.kubeflow.org/v1alpha1\nkind: Configuration\n\
             health: {{healthProbeBindAddress: \"127.0.0.1:{trainer_health}\"}}\nmetrics: {{bindAddress: \"0\"}}\n\
             webhook: {{port: {}, host: 127.0.0.1}}\nleaderElection: {{leaderElect: false}}\ncertManagement: {{enable: false}}\n",
            free_port()?
        );
        std::fs::write(dir.join("trainer.yaml"), config).map_err(|e| e.to_string())?;
        let mut trainer = Command::new(bin.join("trainer-controller-manager"));
        trainer.arg(format!("--config={}", dir.join("trainer.yaml").display()));
        trainer.arg(format!("--kubeconfig={}", cluster.env.kubeconfig.display()));
        // Its webhook server reads its certificate from the temporary folder's k8s-webhook-server.
        trainer.env("TMPDIR", &dir);
        engines.children.push(spawn(&dir, "trainer-controller-manager", &mut trainer)?);
        ready("Kubeflow Trainer's controller manager", trainer_health).await?;
        // Trainer's torch-distributed runtime, its trainer nodes not retried (the runtime's
        // Jobs retry 6 times with a backoff of minutes): a failing trainer fails at once.
        let text = std::fs::read_to_string(bin.join("torch_distributed.yaml")).map_err(|e| e.to_string())?;
        let mut runtime: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
        runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["backoffLimit"] = json!(0);
        cluster.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&runtime.to_string()))?;
        Ok(engines)
    }

    /// The last lines of an engine's log, for a failure.
    fn tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }
}

/// The JobSet `name` in `ns`, as the real JobSet controller keeps it.
async fn jobset(cluster: &Cluster, ns: &str, name: &str) -> Check<DynamicObject> {
    let resource = ApiResource {
        group: "jobset.x-k8s.io".into(),
        version: "v1alpha2".into(),
        api_version: "jobset.x-k8s.io/v1alpha2".into(),
        kind: "JobSet".into(),
        plural: "jobsets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), ns, &resource);
    api.get(name).await.map_err(|e| format!("JobSet {name}: {e}"))
}

/// Runs the phase: the engines, a controller enabled for TrainJobs, and a Model trained by them.
pub async fn run(cluster: &Cluster, report: &Report, install: &Install) {
    let engines = match Engines::start(cluster).await {
        Ok(engines) => {
            report.pass(&format!(
                "JobSet's and Kubeflow Trainer's own controllers (from their Go modules: {}) run against the control plane",
                engines.versions.lines().filter(|l| !l.starts_with("build")).collect::<Vec<_>>().join(", ")
            ));
            engines
        }
        Err(why) => {
            report.fail("JobSet's and Kubeflow Trainer's own controllers run against the control plane", &why, None);
            return;
        }
    };
    if let Err(e) = cluster.namespace(NAMESPACE).await {
        report.fail(&format!("create namespace {NAMESPACE}"), &e, None);
        return;
    }
    let Some(mut controller) = Controller::start(cluster, report, install, 0, "engines", &["--trainjob=true"]).await
    else {
        return;
    };
    let scene = Scene { cluster, namespace: NAMESPACE.into(), log: Some(controller.log.clone()) };
    let mut steps = Steps::new(report, scene);
    let name = "ranker";
    let behaviour = Behaviour {
        metrics: [(1, json!({"auc": 0.91})), (2, json!({"auc": 0.95}))].into(),
        failing: vec![2],
        training_time: Some("8s".into()),
        ..Default::default()
    };
    let mut model = kwok_model(name, &behaviour);
    model["spec"]["training"]["backend"] = json!("TrainJob");
    model["spec"]["training"]["trainJob"] = json!({"runtimeRef": {"name": "torch-distributed"}, "numNodes": 2});
    let ns = NAMESPACE;
    let passed = steps
        .step(
            "v1's TrainJob becomes, through the real Trainer and JobSet controllers, a JobSet, a Job of 2 nodes and their pods carrying the version's labels; v1 is judged on rank 0's termination message and serves",
            async {
                apply(cluster, ns, &model).await?;
                wait_phase(cluster, ns, name, 1, "Serving", 120).await?;
                let set = jobset(cluster, ns, "ranker-v1-train").await?;
                let owner = set.owner_references().first().map(|o| (o.kind.clone(), o.name.clone()));
                ensure!(owner == Some(("TrainJob".into(), "ranker-v1-train".into())), "the JobSet's owner: {owner:?}");
                let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), ns);
                let job = jobs.get("ranker-v1-train-node-0").await.map_err(|e| e.to_string())?;
                ensure!(job.spec.as_ref().and_then(|s| s.completions) == Some(2), "the node Job runs 2 nodes");
                let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
                let selector = "jobset.sigs.k8s.io/jobset-name=ranker-v1-train,modelcycle.io/version=1,app.kubernetes.io/component=training";
                let nodes = pods.list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
                ensure!(nodes.items.len() == 2, "{} trainer pods carry the version's labels", nodes.items.len());
                let v1 = versions(cluster, ns, name).await?.remove(&1).ok_or("no v1")?;
                let auc = v1.status.as_ref().and_then(|s| s.metrics.get("auc").copied());
                ensure!(auc == Some(0.91), "v1's metrics {:?}", v1.status.map(|s| s.metrics));
                Ok(())
            },
        )
        .await;
    let passed = passed
        && steps
            .step(
                "v2's trainer nodes fail: JobSet and Trainer report the TrainJob Failed, v2 fails with the engine's reason, v1 keeps serving",
                async {
                    new_data(cluster, ns, name, "d2").await?;
                    let v2 = wait_phase(cluster, ns, name, 2, "Failed", 120).await?;
                    let message = v2.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
                    ensure!(message.contains("training TrainJob ranker-v2-train failed"), "v2: {message}");
                    wait_phase(cluster, ns, name, 1, "Serving", 10).await.map(|_| ())
                },
            )
            .await;
    let policy = json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": name},
        "spec": {"modelRef": {"name": name}, "dataChange": true, "concurrencyPolicy": "Replace"}
    });
    let passed = passed
        && steps
            .step(
                "new data while v3 trains (concurrencyPolicy Replace): v3's TrainJob is deleted and the garbage collector takes its JobSet; v4 trains on the engines and serves",
                async {
                    apply(cluster, ns, &policy).await?;
                    new_data(cluster, ns, name, "d3").await?;
                    eventually("v3's JobSet", Duration::from_secs(60), || jobset(cluster, ns, "ranker-v3-train")).await?;
                    new_data(cluster, ns, name, "d4").await?;
                    let v3 = wait_phase(cluster, ns, name, 3, "Failed", 30).await?;
                    let message = v3.status.and_then(|s| s.message).unwrap_or_default();
                    ensure!(message.contains("replaces it"), "v3: {message}");
                    eventually("v3's TrainJob and JobSet to be gone", Duration::from_secs(60), || async {
                        let left = jobset(cluster, ns, "ranker-v3-train").await;
                        ensure!(left.is_err_and(|e| e.contains("NotFound") || e.contains("not found")), "the JobSet is still there");
                        Ok(())
                    })
                    .await?;
                    wait_phase(cluster, ns, name, 4, "Serving", 120).await?;
                    wait_phase(cluster, ns, name, 1, "Retired", 30).await.map(|_| ())
                },
            )
            .await;
    if !steps.finish().await || !passed {
        for component in ["jobset-controller", "trainer-controller-manager"] {
            eprintln!("--- the end of {component}'s log\n{}", engines.tail(component));
        }
    }
    controller.stop().await;
    // Trainer and JobSet reconcile every TrainJob of the cluster: stopped before the faults phase
    // plays one by hand.
    drop(engines);
}
