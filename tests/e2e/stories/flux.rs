//! A real Flux drives a Model through Git commits: Flux's own source-controller and
//! kustomize-controller (built from their Go modules by `e2e/flux/build.sh`, run as processes
//! against the control plane) sync a Git repository served on loopback (`git http-backend`) into
//! the story's namespace with `wait: true`. Its Kustomization must turn Ready at a commit only once
//! the version that commit asked for serves, and Flux must never undo what the controller wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::ResourceExt;
use serde_json::{Value, json};

use super::{Behaviour, Steps, deployment, kwok_model, model, versions, wait_phase};
use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;

const NAME: &str = "fraud";
const FLUX_NS: &str = "flux-system";

/// The Git server and Flux's two controllers, stopped when dropped.
pub struct Flux {
    children: Vec<Child>,
    dir: PathBuf,
    /// A clone of the repository that commits are made in and pushed from.
    work: PathBuf,
    /// `http://127.0.0.1:<port>/models.git`.
    url: String,
    /// What `e2e/flux/build.sh` built, one line per component.
    pub versions: String,
}

impl Drop for Flux {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Check<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn git(dir: &Path, args: &[&str]) -> Check<String> {
    let mut command = Command::new("git");
    command.args(["-c", "user.name=e2e", "-c", "user.email=e2e@modelcycle.io"]).args(args).current_dir(dir);
    crate::cluster::run(command, None)
}

fn spawn(dir: &Path, name: &str, command: &mut Command) -> Check<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    command.stdin(Stdio::null()).stdout(log).stderr(err).spawn().map_err(|e| format!("cannot start {name}: {e}"))
}

impl Flux {
    /// Installs Flux's CRDs, starts the Git server (an empty `models` repository) and Flux's
    /// controllers with the admin kubeconfig.
    pub async fn start(cluster: &Cluster) -> Check<Flux> {
        let bin = PathBuf::from(std::env::var("E2E_FLUX").map_err(|_| "E2E_FLUX is not set (e2e/run.sh sets it)")?);
        let gitserver = std::env::var("E2E_GITSERVER").map_err(|_| "E2E_GITSERVER is not set (e2e/run.sh sets it)")?;
        let crds = bin.join("crds");
        let crds = crds.to_string_lossy();
        cluster.kubectl(&["apply", "--server-side", "-f", &crds])?;
        cluster.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", &crds])?;
        cluster.namespace(FLUX_NS).await?;
        let dir = std::env::temp_dir().join(format!("modelcycle-e2e-flux-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repos = dir.join("repos");
        std::fs::create_dir_all(&repos).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.join("storage")).map_err(|e| e.to_string())?;
        git(&repos, &["init", "--quiet", "--bare", "--initial-branch=main", "models.git"])?;
        let work = dir.join("work");
        git(&dir, &["clone", "--quiet", &repos.join("models.git").to_string_lossy(), "work"])?;
        let mut flux = Flux {
            children: vec![],
            versions: std::fs::read_to_string(bin.join("VERSIONS")).unwrap_or_default(),
            dir: dir.clone(),
            work,
            url: String::new(),
        };
        let git_port = free_port()?;
        flux.children.push(spawn(
            &dir,
            "gitserver",
            Command::new(&gitserver).arg("--root").arg(&repos).arg(format!("--addr=127.0.0.1:{git_port}")),
        )?);
        flux.url = format!("http://127.0.0.1:{git_port}/models.git");
        let storage = free_port()?;
        let common = |command: &mut Command| -> Check {
            command
                .env("KUBECONFIG", &cluster.env.kubeconfig)
                .env("RUNTIME_NAMESPACE", FLUX_NS)
                .args(["--metrics-addr=0", "--log-level=info"])
                .arg(format!("--health-addr=127.0.0.1:{}", free_port()?));
            Ok(())
        };
        let mut source = Command::new(bin.join("source-controller"));
        common(&mut source)?;
        source
            .arg(format!("--storage-path={}", dir.join("storage").display()))
            .arg(format!("--storage-addr=127.0.0.1:{storage}"))
            .arg(format!("--storage-adv-addr=127.0.0.1:{storage}"));
        flux.children.push(spawn(&dir, "source-controller", &mut source)?);
        let mut kustomize = Command::new(bin.join("kustomize-controller"));
        common(&mut kustomize)?;
        kustomize.arg("--no-remote-bases=true");
        flux.children.push(spawn(&dir, "kustomize-controller", &mut kustomize)?);
        Ok(flux)
    }

    /// Writes `files` into the repository, commits and pushes them; the commit's hash.
    fn commit(&self, files: &[(&str, &Value)], message: &str) -> Check<String> {
        for (name, object) in files {
            let yaml = serde_yaml::to_string(object).map_err(|e| e.to_string())?;
            std::fs::write(self.work.join(name), yaml).map_err(|e| e.to_string())?;
        }
        git(&self.work, &["add", "--all"])?;
        git(&self.work, &["commit", "--quiet", "-m", message])?;
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"])?;
        Ok(git(&self.work, &["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// The last lines of a component's log, for a failure.
    fn tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// Flux's Kustomization `models`, as the API server returns it (read on a blocking thread: the
/// story polls it while the others run).
async fn kustomization_object(cluster: &Cluster) -> Check<Value> {
    let text = cluster
        .kubectl_beside(&["-n", FLUX_NS, "get", "kustomizations.kustomize.toolkit.fluxcd.io", "models", "-o", "json"])
        .await?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The Kustomization's Ready condition (status, reason, message, lastTransitionTime) and the
/// revision it last applied.
async fn kustomization(cluster: &Cluster) -> Check<(String, String, String, String, String)> {
    let k = kustomization_object(cluster).await?;
    let ready = k["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok((
        s(&ready["status"]),
        s(&ready["reason"]),
        s(&ready["message"]),
        s(&ready["lastTransitionTime"]),
        s(&k["status"]["lastAppliedRevision"]),
    ))
}

/// When version `n` of the story's Model last began serving (its Serve or Restore decision).
async fn serving_since(cluster: &Cluster, ns: &str, n: u32) -> Check<jiff::Timestamp> {
    let all = versions(cluster, ns, NAME).await?;
    let v = all.get(&n).ok_or_else(|| format!("no v{n}"))?;
    let decisions = v.status.as_ref().map(|s| s.decisions.clone()).unwrap_or_default();
    let serving = decisions.iter().rev().find(|d| d.action == "Serve" || d.action == "Restore");
    serving.map(|d| d.time.0).ok_or_else(|| format!("v{n} records no move to Serving: {decisions:?}"))
}

/// Waits until the Kustomization is Ready at `revision`, and asserts it turned Ready no earlier
/// than version `n` began serving (Flux's health check waited for the Model).
async fn ready_after_serving(cluster: &Cluster, ns: &str, revision: &str, n: u32) -> Check<String> {
    let (_, _, message, since, _) =
        eventually(&format!("Flux's Kustomization to be Ready at {revision}"), Duration::from_secs(120), || async {
            let k = kustomization(cluster).await?;
            ensure!(k.0 == "True" && k.4.ends_with(revision), "Ready {} ({}: {}), applied {:?}", k.0, k.1, k.2, k.4);
            Ok(k)
        })
        .await?;
    let ready: jiff::Timestamp = since.parse().map_err(|e| format!("lastTransitionTime {since:?}: {e}"))?;
    let serving = serving_since(cluster, ns, n).await?;
    // Condition times have whole seconds.
    ensure!(ready.as_second() >= serving.as_second(), "Flux turned Ready at {ready}, before v{n} served at {serving}");
    Ok(format!("Ready at {ready}, v{n} serving since {serving}: {message}"))
}

pub async fn flux(cluster: &Cluster, t: &mut Steps<'_>) {
    let ns = t.ns().to_string();
    let ns = ns.as_str();
    let mut running = None;
    t.measure("Flux's source-controller and kustomize-controller, built from their Go modules, start against the control plane", async {
        let flux = Flux::start(cluster).await?;
        let versions = flux.versions.lines().filter(|l| l.contains("controller")).collect::<Vec<_>>().join(", ");
        running = Some(flux);
        Ok(versions)
    })
    .await;
    let Some(flux) = running else { return };
    let behaviour = Behaviour { training_time: Some("12s".into()), ..Default::default() };
    let mut model_yaml = kwok_model(NAME, &behaviour);
    let policy = json!({
        "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
        "metadata": {"name": NAME},
        "spec": {"modelRef": {"name": NAME}, "schedule": {"cron": "0 4 * * 1"}}
    });
    let mut revisions = BTreeMap::new();
    t.step(
        "commit a Model and a RetrainPolicy: Flux applies them; its Kustomization is not Ready while v1 trains",
        async {
            revisions
                .insert(1, flux.commit(&[("model.yaml", &model_yaml), ("policy.yaml", &policy)], "a fraud model")?);
            let sync = json!([
                {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                 "metadata": {"name": "models", "namespace": FLUX_NS},
                 "spec": {"interval": "5s", "url": flux.url, "ref": {"branch": "main"}}},
                {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                 "metadata": {"name": "models", "namespace": FLUX_NS},
                 "spec": {"interval": "1m", "retryInterval": "5s", "timeout": "3m", "path": "./", "prune": true,
                          "wait": true, "targetNamespace": ns,
                          "sourceRef": {"kind": "GitRepository", "name": "models"}}}
            ]);
            for object in sync.as_array().into_iter().flatten() {
                cluster.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&object.to_string()))?;
            }
            let waited = wait_phase(cluster, ns, NAME, 1, "Training", 60).await;
            let waited = waited.map_err(|e| {
                format!(
                    "{e}\n--- source-controller\n{}\n--- kustomize-controller\n{}",
                    flux.tail("source-controller"),
                    flux.tail("kustomize-controller")
                )
            })?;
            let k = kustomization(cluster).await?;
            let still = versions(cluster, ns, NAME).await?;
            let training =
                still.get(&1).and_then(|v| v.status.as_ref()).and_then(|s| s.phase).map(|p| format!("{p:?}"));
            ensure!(
                k.0 != "True" || training.as_deref() != Some("Training"),
                "Flux's Kustomization is Ready ({}: {}) while v1 trains ({:?})",
                k.1,
                k.2,
                waited.status.as_ref().map(|s| s.phase)
            );
            Ok(())
        },
    )
    .await;
    t.measure("the Kustomization turns Ready at that commit only once v1 serves", async {
        ready_after_serving(cluster, ns, &revisions[&1], 1).await
    })
    .await;
    model_yaml["spec"]["training"]["dataset"]["version"] = json!("d2");
    t.measure(
        "a commit bumping the dataset version trains and rolls out v2; Ready at that commit once v2 serves",
        async {
            revisions.insert(2, flux.commit(&[("model.yaml", &model_yaml)], "new data: d2")?);
            wait_phase(cluster, ns, NAME, 2, "Serving", 120).await?;
            ready_after_serving(cluster, ns, &revisions[&2], 2).await
        },
    )
    .await;
    model_yaml["spec"]["pinnedVersion"] = json!(1);
    t.measure("a commit setting pinnedVersion: 1 rolls back to v1; Ready at that commit once v1 serves again", async {
        revisions.insert(3, flux.commit(&[("model.yaml", &model_yaml)], "pin v1")?);
        eventually("v1 to serve again", Duration::from_secs(90), || async {
            let all = versions(cluster, ns, NAME).await?;
            let phase =
                |n: u32| all.get(&n).and_then(|v| v.status.as_ref()).and_then(|s| s.phase).map(|p| format!("{p:?}"));
            ensure!(phase(1).as_deref() == Some("Serving"), "v1 is {:?}, v2 {:?}", phase(1), phase(2));
            let d = deployment(cluster, ns, NAME).await?;
            ensure!(d.as_ref().is_some_and(|d| d.0 == "1"), "the Deployment runs {d:?}");
            Ok(())
        })
        .await?;
        ready_after_serving(cluster, ns, &revisions[&3], 1).await
    })
    .await;
    t.step(
        "Flux never undoes the controller's writes: a forced resync changes no spec, status, version or child",
        async {
            let before = model(cluster, ns, NAME).await?;
            let before_versions: Vec<String> =
                versions(cluster, ns, NAME).await?.values().map(|v| v.name_any()).collect();
            let before_deployment = deployment(cluster, ns, NAME).await?;
            let asked = jiff::Timestamp::now().to_string();
            cluster.kubectl(&[
                "-n",
                FLUX_NS,
                "annotate",
                "--overwrite",
                "kustomizations.kustomize.toolkit.fluxcd.io/models",
                &format!("reconcile.fluxcd.io/requestedAt={asked}"),
            ])?;
            eventually("Flux to handle the resync", Duration::from_secs(60), || async {
                let k = kustomization_object(cluster).await?;
                ensure!(
                    k["status"]["lastHandledReconcileAt"] == asked.as_str(),
                    "handled {}",
                    k["status"]["lastHandledReconcileAt"]
                );
                let ready = kustomization(cluster).await?;
                ensure!(ready.0 == "True", "not Ready after the resync: {ready:?}");
                Ok(())
            })
            .await?;
            let after = model(cluster, ns, NAME).await?;
            ensure!(after.metadata.generation == before.metadata.generation, "the resync changed the spec");
            ensure!(
                after.status == before.status,
                "the resync changed the status:\n{:?}\n{:?}",
                before.status,
                after.status
            );
            let after_versions: Vec<String> =
                versions(cluster, ns, NAME).await?.values().map(|v| v.name_any()).collect();
            ensure!(after_versions == before_versions, "versions {before_versions:?} became {after_versions:?}");
            ensure!(deployment(cluster, ns, NAME).await? == before_deployment, "the Deployment changed");
            // Flux's inventory holds only what is in Git; pruning never touches the versions.
            let k = kustomization_object(cluster).await?;
            let inventory: Vec<String> = k["status"]["inventory"]["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["id"].as_str().map(str::to_string))
                .collect();
            let expected =
                [format!("{ns}_{NAME}_modelcycle.io_Model"), format!("{ns}_{NAME}_modelcycle.io_RetrainPolicy")];
            ensure!(inventory.len() == 2 && expected.iter().all(|e| inventory.contains(e)), "inventory {inventory:?}");
            // Who owns what: Flux the spec, modelcycle the status.
            let managers: Vec<(String, String)> = after
                .managed_fields()
                .iter()
                .map(|m| (m.manager.clone().unwrap_or_default(), m.subresource.clone().unwrap_or_default()))
                .collect();
            ensure!(managers.contains(&("kustomize-controller".into(), String::new())), "managers {managers:?}");
            ensure!(
                !managers.iter().any(|(m, s)| m == "kustomize-controller" && s == "status"),
                "Flux wrote status: {managers:?}"
            );
            Ok(())
        },
    )
    .await;
    t.step(
        "kubectl modelcycle pin refuses the Flux-managed Model without --force, naming Flux's field manager",
        async {
            let ran = super::plugin::plugin(cluster, ns, &["pin", NAME, "2"])?;
            ensure!(!ran.ok, "pin went through: {}", ran.stdout);
            ensure!(ran.stderr.contains("Flux (field manager kustomize-controller)"), "{}", ran.stderr);
            Ok(())
        },
    )
    .await;
    drop(flux);
}
