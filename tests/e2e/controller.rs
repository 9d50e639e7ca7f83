//! The controller as it runs in a cluster: the chart installed with Helm, and the real
//! `modelcycle run` process holding a token of the chart's ServiceAccount bound to one of the
//! chart's pods, so the real RBAC authorizer judges every request and the audit log names the pod.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::cluster::{Check, Cluster, eventually, read};
use crate::ensure;
use crate::report::{Report, Scene};

/// The `modelcycle` binary the controllers run: the test build, or `E2E_MODELCYCLE_BIN` (e.g. a
/// release build for the shipped image's target, to measure what users run with `e2e/scale.sh`).
pub fn binary() -> PathBuf {
    std::env::var_os("E2E_MODELCYCLE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_modelcycle")), PathBuf::from)
}

/// A Helm release of the chart.
#[derive(Clone, Debug)]
pub struct Install {
    /// The release's namespace (where the Lease lives too).
    pub namespace: String,
    /// The chart's ServiceAccount.
    pub service_account: String,
    /// The chart's controller pods (kwok pods: scheduled and Ready, no container runs).
    pub pods: Vec<String>,
}

impl Install {
    /// The audit log's name of the ServiceAccount.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.service_account)
    }
}

/// Installs (or upgrades) the chart as `release` in `<release>-system` with two replicas, and
/// waits for its pods; `None` after reporting a failure.
pub async fn install_chart(cluster: &Cluster, report: &Report, release: &str, set: &[&str]) -> Option<Install> {
    let namespace = format!("{release}-system");
    let what =
        format!("helm install {release} charts/modelcycle -n {namespace} {} (real RBAC from here on)", set.join(" "));
    let result: Check<Install> = async {
        let mut args =
            vec!["upgrade", "--install", release, "charts/modelcycle", "-n", &namespace, "--create-namespace"];
        args.extend(["--set", "replicas=2", "--set", "image.tag=e2e", "--wait", "--timeout", "180s"]);
        for s in set {
            args.extend(["--set", s]);
        }
        cluster.helm(&args)?;
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
        let selector = format!("app.kubernetes.io/instance={release}");
        let pods = eventually("the chart's two pods", Duration::from_secs(60), || {
            let pods = pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(|e| e.to_string())?;
                let mut names: Vec<_> =
                    list.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| p.name_any()).collect();
                names.sort();
                ensure!(names.len() == 2, "{} pods: {names:?}", names.len());
                Ok(names)
            }
        })
        .await?;
        let service_account =
            if release.contains("modelcycle") { release.to_string() } else { format!("{release}-modelcycle") };
        Ok(Install { namespace: namespace.clone(), service_account, pods })
    }
    .await;
    let scene = Scene { cluster, namespace: namespace.clone(), log: None };
    match result {
        Ok(install) => {
            report.pass(&what);
            Some(install)
        }
        Err(why) => {
            report.fail(&what, &why, Some(&scene));
            None
        }
    }
}

/// A kubeconfig holding a token of the install's ServiceAccount bound to its pod `pod`.
fn token_kubeconfig(cluster: &Cluster, install: &Install, pod: &str) -> Check<PathBuf> {
    let token = cluster.kubectl(&[
        "create",
        "token",
        &install.service_account,
        "-n",
        &install.namespace,
        "--duration",
        "6h",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        pod,
    ])?;
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": cluster.env.server,
            "certificate-authority": cluster.state("pki/ca.crt"),
        }}],
        "users": [{"name": pod, "user": {"token": token.trim()}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": pod}}],
        "current-context": "e2e",
    });
    let path = cluster.state(&format!("{pod}.kubeconfig"));
    std::fs::write(&path, kubeconfig.to_string()).map_err(|e| e.to_string())?;
    Ok(path)
}

/// One `modelcycle run` process.
pub struct Controller {
    /// Its name in logs and PID files.
    pub name: String,
    /// The chart pod whose identity it holds.
    pub pod: String,
    /// Its log file.
    pub log: PathBuf,
    /// Where it serves /readyz and /metrics.
    pub http: String,
    args: Vec<String>,
    kubeconfig: PathBuf,
    namespace: String,
    child: Option<Child>,
}

impl Controller {
    /// Starts a controller with the identity of the install's pod `pod_index` and waits until it
    /// reports ready; `None` after reporting a failure.
    pub async fn start(
        cluster: &Cluster,
        report: &Report,
        install: &Install,
        pod_index: usize,
        name: &str,
        extra: &[&str],
    ) -> Option<Controller> {
        let what = format!(
            "the real modelcycle binary starts as {} with the chart's ServiceAccount ({name})",
            install.pods[pod_index]
        );
        let started = Self::spawn(cluster, install, pod_index, name, extra);
        let result = match started {
            Ok(mut controller) => controller.wait_ready(Duration::from_secs(60)).await.map(|()| controller),
            Err(e) => Err(e),
        };
        match result {
            Ok(controller) => {
                report.pass(&what);
                Some(controller)
            }
            Err(why) => {
                let log = cluster.state(&format!("logs/controller-{name}.log"));
                report.fail(
                    &what,
                    &why,
                    Some(&Scene { cluster, namespace: install.namespace.clone(), log: Some(log) }),
                );
                None
            }
        }
    }

    /// Starts the process without waiting for it.
    pub fn spawn(
        cluster: &Cluster,
        install: &Install,
        pod_index: usize,
        name: &str,
        extra: &[&str],
    ) -> Check<Controller> {
        let pod = install.pods.get(pod_index).ok_or("no such chart pod")?.clone();
        let kubeconfig = token_kubeconfig(cluster, install, &pod)?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let mut args = vec![
            "run".to_string(),
            format!("--http-addr=127.0.0.1:{port}"),
            format!("--lease-namespace={}", install.namespace),
            "--resync-period=15s".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut controller = Controller {
            name: name.to_string(),
            pod,
            log: cluster.state(&format!("logs/controller-{name}.log")),
            http: format!("http://127.0.0.1:{port}"),
            args,
            kubeconfig,
            namespace: install.namespace.clone(),
            child: None,
        };
        controller.launch(cluster)?;
        Ok(controller)
    }

    fn launch(&mut self, cluster: &Cluster) -> Check {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(binary())
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAME", &self.pod)
            .env("POD_NAMESPACE", &self.namespace)
            .env("RUST_LOG", std::env::var("E2E_CONTROLLER_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start modelcycle: {e}"))?;
        // e2e/cluster.sh down stops it even if the suite dies first.
        let _ = std::fs::write(cluster.state(&format!("pids/controller-{}", self.name)), child.id().to_string());
        self.child = Some(child);
        Ok(())
    }

    /// Starts the same process again after a kill or stop.
    pub fn restart(&mut self, cluster: &Cluster) -> Check {
        self.launch(cluster)
    }

    /// `kill -9`: no shutdown, no Lease release.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process's ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `/readyz`: the status code and body.
    pub async fn readyz(&self) -> Check<(u16, String)> {
        let response = reqwest::get(format!("{}/readyz", self.http)).await.map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        Ok((code, response.text().await.unwrap_or_default()))
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> Check<String> {
        let response = reqwest::get(format!("{}/metrics", self.http)).await.map_err(|e| e.to_string())?;
        response.text().await.map_err(|e| e.to_string())
    }

    /// The value of a sample of `/metrics` whose name and labels start with `prefix`, summed.
    pub async fn metric(&self, prefix: &str) -> Check<f64> {
        let text = self.metrics().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Whether this replica holds the leader Lease.
    pub async fn is_leader(&self) -> bool {
        self.metric("modelcycle_leader").await.is_ok_and(|v| v == 1.0)
    }

    /// Waits until `/readyz` answers 200: a standby or the replica that reconciles.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Check {
        self.wait_readyz(timeout, false).await
    }

    /// Waits until this replica reconciles with its caches listed. Not "ready" alone: a replica
    /// that starts is ready as a standby until it holds the Lease, then unready while it lists,
    /// and a poll in that first moment once let a scale run create its "late" Model before the
    /// first list (so the Model was one of the fleet, not a change after it).
    pub async fn wait_synced(&mut self, timeout: Duration) -> Check {
        self.wait_readyz(timeout, true).await
    }

    async fn wait_readyz(&mut self, timeout: Duration, synced: bool) -> Check {
        let start = Instant::now();
        loop {
            if !self.running() {
                let log = read(&self.log).unwrap_or_default();
                let tail: Vec<_> = log.lines().rev().take(5).collect();
                return Err(format!("modelcycle exited: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")));
            }
            match self.readyz().await {
                Ok((200, body)) if !synced || body == modelcycle::kube::http::READY_SYNCED => return Ok(()),
                Ok((code, body)) if start.elapsed() > timeout => return Err(format!("/readyz is {code}: {body}")),
                Err(e) if start.elapsed() > timeout => return Err(format!("/readyz: {e}")),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The chart with `watchNamespaces`: Roles in the listed namespaces instead of a ClusterRole. A
/// controller with that identity, watching only `e2e-team-a`, serves a Model there, leaves one in
/// `e2e-team-b` alone, and the real authorizer refuses none of its requests.
pub async fn watch_namespaces(cluster: &Cluster, report: &Report) {
    for ns in ["e2e-team-a", "e2e-team-b"] {
        if let Err(e) = cluster.namespace(ns).await {
            report.fail("create the team namespaces", &e, None);
            return;
        }
    }
    let set = ["watchNamespaces={e2e-team-a}", "leaderElection.enabled=true"];
    let Some(install) = install_chart(cluster, report, "scoped-modelcycle", &set).await else { return };
    let Some(controller) =
        Controller::start(cluster, report, &install, 0, "scoped", &["--namespaces=e2e-team-a", "--lease-name=scoped"])
            .await
    else {
        return;
    };
    let scene = Scene { cluster, namespace: "e2e-team-a".into(), log: Some(controller.log.clone()) };
    let result: Check = async {
        let model = crate::stories::kwok_model("fraud", &crate::stories::Behaviour::default());
        crate::stories::apply(cluster, "e2e-team-a", &model).await?;
        crate::stories::apply(cluster, "e2e-team-b", &model).await?;
        crate::stories::wait_phase(cluster, "e2e-team-a", "fraud", 1, "Serving", 90).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let other = crate::stories::versions(cluster, "e2e-team-b", "fraud").await?;
        ensure!(other.is_empty(), "the Model in e2e-team-b, which is not watched, got versions {other:?}");
        Ok(())
    }
    .await;
    report.check(
        "with watchNamespaces (Roles, no ClusterRole) the controller serves v1 in e2e-team-a and leaves e2e-team-b alone",
        result,
        Some(&scene),
    );
    let audit = crate::audit::AuditLog::read(&cluster.env.audit_log)
        .map(|log| log.forbidden(&install.user(), &[], jiff::SignedDuration::ZERO));
    report.check(
        "the real RBAC authorizer refused none of the scoped controller's requests",
        audit.and_then(|denied| {
            ensure!(denied.is_empty(), "refused: {denied:#?}");
            Ok(())
        }),
        Some(&scene),
    );
}
