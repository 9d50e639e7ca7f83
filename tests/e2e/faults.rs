//! Faults on the real thing: `kill -9` of the controller in the middle of a training, a canary
//! step and a blue-green switch; two replicas with leader election and the leader killed; the
//! API server stopped for 30 s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use serde_json::json;

use crate::audit::AuditLog;
use crate::cluster::{Check, Cluster, eventually};
use crate::controller::{Controller, Install};
use crate::ensure;
use crate::report::{Report, Scene};
use crate::stories::{
    Behaviour, apply, deployment, jobs, kwok_model, new_data, ready_endpoints, service_track, versions,
    wait_blue_green_done, wait_phase, wait_quiet,
};

/// Counts, until stopped, how often the Service had no ready endpoint.
struct EndpointWatch {
    stop: Arc<AtomicBool>,
    empty: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl EndpointWatch {
    fn start(client: Client, ns: &str, service: &str) -> EndpointWatch {
        let (stop, empty, samples) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (ns, service) = (ns.to_string(), service.to_string());
        let task = tokio::spawn({
            let (stop, empty, samples) = (stop.clone(), empty.clone(), samples.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((ready, _)) = ready_endpoints(&client, &ns, &service).await {
                        samples.fetch_add(1, Ordering::Relaxed);
                        if ready == 0 {
                            empty.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        EndpointWatch { stop, empty, samples, task }
    }

    /// Stops and says how many of how many samples found no ready endpoint.
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (self.empty.load(Ordering::Relaxed), self.samples.load(Ordering::Relaxed))
    }
}

/// Every fault, one after the other.
pub async fn run(cluster: &Cluster, report: &Report, install: &Install) {
    let namespaces =
        ["e2e-kill-training", "e2e-kill-trainjob", "e2e-kill-rayjob", "e2e-kill-canary", "e2e-kill-bluegreen"];
    for ns in namespaces.into_iter().chain(["e2e-leader"]) {
        if let Err(e) = cluster.namespace(ns).await {
            report.fail(&format!("create {ns}"), &e, None);
            return;
        }
    }
    let engines = ["--trainjob=true", "--rayjob=true"];
    let Some(mut controller) = Controller::start(cluster, report, install, 0, "faults", &engines).await else {
        return;
    };
    kill_during_training(cluster, report, &mut controller).await;
    kill_during_train_job(cluster, report, &mut controller).await;
    kill_during_ray_job(cluster, report, &mut controller).await;
    kill_during_canary(cluster, report, &mut controller).await;
    kill_during_blue_green(cluster, report, &mut controller).await;
    controller.stop().await;
    drop(controller);
    leader_election(cluster, report, install).await;
}

fn scene<'a>(cluster: &'a Cluster, ns: &str, controller: &Controller) -> Scene<'a> {
    Scene { cluster, namespace: ns.into(), log: Some(controller.log.clone()) }
}

/// Kills the controller, waits a moment, starts it again and waits until it is ready.
async fn kill_and_restart(cluster: &Cluster, controller: &mut Controller) -> Check {
    controller.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    controller.restart(cluster)?;
    controller.wait_synced(Duration::from_secs(60)).await
}

/// The objects of `resource` in `ns` that the audit log saw created (by a create, or by an
/// apply that created), one entry per creation.
fn creates(cluster: &Cluster, ns: &str, resource: &str) -> Check<Vec<String>> {
    let log = AuditLog::read(&cluster.env.audit_log)?;
    Ok(log
        .entries
        .iter()
        .filter(|e| e.resource == resource && e.object.contains(&format!(" {ns}/")) && e.code < 300)
        .filter(|e| e.verb == "create" || (e.verb == "patch" && e.code == 201))
        .map(|e| e.object.clone())
        .collect())
}

/// One Job per version, each created once (the audit log counts the creates).
fn one_job_per_version(cluster: &Cluster, ns: &str, jobs: &[(String, String)]) -> Check {
    let mut per_version: BTreeMap<&str, usize> = BTreeMap::new();
    for (version, _) in jobs {
        *per_version.entry(version.as_str()).or_default() += 1;
    }
    ensure!(per_version.values().all(|n| *n == 1), "Jobs per version: {per_version:?}");
    let creates = creates(cluster, ns, "jobs")?;
    let mut unique = creates.clone();
    unique.sort();
    unique.dedup();
    ensure!(unique.len() == creates.len(), "a Job was created twice: {creates:?}");
    Ok(())
}

async fn kill_during_training(cluster: &Cluster, report: &Report, controller: &mut Controller) {
    let ns = "e2e-kill-training";
    let name = "slowtrain";
    let behaviour = Behaviour { training_time: Some("15s".into()), ..Default::default() };
    let result: Check<_> = async {
        apply(cluster, ns, &kwok_model(name, &behaviour)).await?;
        wait_phase(cluster, ns, name, 1, "Training", 60).await?;
        let before = eventually("v1's Job", Duration::from_secs(30), || async {
            let j = jobs(cluster, ns, name).await?;
            ensure!(!j.is_empty(), "no Job yet");
            Ok(j)
        })
        .await?;
        kill_and_restart(cluster, controller).await?;
        wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
        let after = jobs(cluster, ns, name).await?;
        ensure!(before == after, "the Jobs changed across the restart: {before:?} -> {after:?}");
        one_job_per_version(cluster, ns, &after)
    }
    .await;
    report.check(
        "kill -9 during training: the restarted controller finds the running Job (same uid, no second Job) and v1 serves",
        result,
        Some(&scene(cluster, ns, controller)),
    );
}

/// Applies `model`, waits until v1 trains on its `K` named `run`, kills the controller with -9
/// and restarts it, then checks that v1 still trains on the same object (same uid) and that the
/// audit log counts exactly one create of `plural` in `ns`.
async fn trains_on_across_a_kill<K>(
    cluster: &Cluster,
    controller: &mut Controller,
    ns: &str,
    model: &serde_json::Value,
    run: &str,
    plural: &str,
) -> Check
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = model["metadata"]["name"].as_str().ok_or("the Model has no name")?;
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(cluster.client.clone(), ns);
    let uid = || async {
        let object = api.get_opt(run).await.map_err(|e| e.to_string())?;
        object.and_then(|o| o.meta().uid.clone()).ok_or_else(|| format!("no {kind} yet"))
    };
    apply(cluster, ns, model).await?;
    wait_phase(cluster, ns, name, 1, "Training", 60).await?;
    let before = eventually(&format!("v1's {kind}"), Duration::from_secs(30), uid).await?;
    kill_and_restart(cluster, controller).await?;
    // Reconciled after the restart: the version still trains on the same object.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_phase(cluster, ns, name, 1, "Training", 30).await?;
    let after = uid().await?;
    ensure!(before == after, "the {kind} changed across the restart: {before} -> {after}");
    let creates = creates(cluster, ns, plural)?.len();
    ensure!(creates == 1, "the {kind} was created {creates} times");
    Ok(())
}

/// A TrainJob that trains across a kill -9: the restarted controller finds it (same uid), the
/// audit log counts one create, and v1 serves once the played Trainer reports it complete.
async fn kill_during_train_job(cluster: &Cluster, report: &Report, controller: &mut Controller) {
    use modelcycle::api::engines::TrainJob;
    let ns = "e2e-kill-trainjob";
    let name = "bigtrain";
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["training"]["backend"] = json!("TrainJob");
    model["spec"]["training"]["trainJob"] = json!({"runtimeRef": {"name": "torch-distributed"}, "numNodes": 4});
    let result: Check<_> = async {
        trains_on_across_a_kill::<TrainJob>(cluster, controller, ns, &model, "bigtrain-v1-train", "trainjobs").await?;
        let now = Timestamp::now().round(jiff::Unit::Second).map_err(|e| e.to_string())?.to_string();
        let status = json!({
            "conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted",
                            "message": "TrainJob is completed", "lastTransitionTime": now}],
            "trainerStatus": {"metrics": [{"name": "auc", "value": "0.91"}], "lastUpdatedTime": now}
        });
        crate::stories::distributed::play_train_job(cluster, ns, "bigtrain-v1-train", status).await?;
        wait_phase(cluster, ns, name, 1, "Serving", 60).await.map(|_| ())
    }
    .await;
    report.check(
        "kill -9 while a TrainJob trains: the restarted controller finds it (same uid, one create in the audit log) and v1 serves",
        result,
        Some(&scene(cluster, ns, controller)),
    );
}

/// A RayJob that trains across a kill -9: the restarted controller finds it (same uid, one create
/// in the audit log), and v1 serves once the played KubeRay reports it succeeded.
async fn kill_during_ray_job(cluster: &Cluster, report: &Report, controller: &mut Controller) {
    use modelcycle::api::engines::RayJob;
    let ns = "e2e-kill-rayjob";
    let name = "raytrain";
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["training"]["backend"] = json!("RayJob");
    model["spec"]["training"]["rayJob"] =
        json!({"entrypoint": "python train.py", "clusterSelector": {"ray.io/cluster": "shared"}});
    let result: Check<_> = async {
        trains_on_across_a_kill::<RayJob>(cluster, controller, ns, &model, "raytrain-v1-train", "rayjobs").await?;
        crate::stories::distributed::play_ray_job(cluster, ns, "raytrain-v1-train").await?;
        wait_phase(cluster, ns, name, 1, "Serving", 60).await.map(|_| ())
    }
    .await;
    report.check(
        "kill -9 while a RayJob trains: the restarted controller finds it (same uid, one create in the audit log) and v1 serves",
        result,
        Some(&scene(cluster, ns, controller)),
    );
}

async fn kill_during_canary(cluster: &Cluster, report: &Report, controller: &mut Controller) {
    let ns = "e2e-kill-canary";
    let name = "canary";
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["serving"]["replicas"] = json!(3);
    model["spec"]["serving"]["strategy"] =
        json!({"canary": {"steps": [{"weight": 34, "pause": "10s"}, {"weight": 67, "pause": "2s"}]}});
    let result: Check<_> = async {
        apply(cluster, ns, &model).await?;
        wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
        let watch = EndpointWatch::start(cluster.client.clone(), ns, name);
        new_data(cluster, ns, name, "d2").await?;
        eventually("the canary's first step", Duration::from_secs(60), || async {
            let d = deployment(cluster, ns, &format!("{name}-canary")).await?;
            ensure!(d.as_ref().is_some_and(|(_, r, ready)| *r == 1 && *ready == 1), "canary Deployment: {d:?}");
            Ok(())
        })
        .await?;
        kill_and_restart(cluster, controller).await?;
        wait_phase(cluster, ns, name, 2, "Serving", 90).await?;
        wait_quiet(cluster, ns, name, 30).await?;
        let (empty, samples) = watch.finish().await;
        ensure!(empty == 0, "the Service had no ready endpoint in {empty} of {samples} samples");
        ensure!(
            deployment(cluster, ns, &format!("{name}-canary")).await?.is_none(),
            "the canary Deployment is left over"
        );
        let d = deployment(cluster, ns, name).await?;
        ensure!(d.as_ref().is_some_and(|(v, r, _)| v == "2" && *r == 3), "stable Deployment: {d:?}");
        one_job_per_version(cluster, ns, &jobs(cluster, ns, name).await?)
    }
    .await;
    report.check(
        "kill -9 during a canary step: the restart resumes the step, v2 is promoted, the Service never lacked a ready pod",
        result,
        Some(&scene(cluster, ns, controller)),
    );
}

async fn kill_during_blue_green(cluster: &Cluster, report: &Report, controller: &mut Controller) {
    let ns = "e2e-kill-bluegreen";
    let name = "bluegreen";
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["serving"]["strategy"] = json!({"blueGreen": {"scaleDownDelay": "8s"}});
    let result: Check<_> = async {
        apply(cluster, ns, &model).await?;
        wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
        let watch = EndpointWatch::start(cluster.client.clone(), ns, name);
        new_data(cluster, ns, name, "d2").await?;
        eventually("the switch to the preview", Duration::from_secs(60), || async {
            let track = service_track(cluster, ns, name).await?;
            ensure!(track.as_deref() == Some("preview"), "the Service selects {track:?}");
            Ok(())
        })
        .await?;
        kill_and_restart(cluster, controller).await?;
        wait_phase(cluster, ns, name, 2, "Serving", 90).await?;
        wait_quiet(cluster, ns, name, 30).await?;
        wait_blue_green_done(cluster, ns, name).await?;
        let (empty, samples) = watch.finish().await;
        ensure!(empty == 0, "the Service had no ready endpoint in {empty} of {samples} samples");
        one_job_per_version(cluster, ns, &jobs(cluster, ns, name).await?)
    }
    .await;
    report.check(
        "kill -9 right after a blue-green switch: the restart completes it, the Service never lacked a ready pod",
        result,
        Some(&scene(cluster, ns, controller)),
    );
}

/// Two replicas: only the leader writes, and killing it hands over within the Lease's 30 s.
async fn leader_election(cluster: &Cluster, report: &Report, install: &Install) {
    let ns = "e2e-leader";
    let name = "leader";
    let Some(mut a) = Controller::start(cluster, report, install, 0, "replica-a", &[]).await else { return };
    let Some(mut b) = Controller::start(cluster, report, install, 1, "replica-b", &[]).await else { return };
    let scene = Scene { cluster, namespace: ns.into(), log: Some(a.log.clone()) };
    let since = Timestamp::now();
    let first: Check<String> = async {
        let leaders = eventually("one leader", Duration::from_secs(60), || async {
            let (la, lb) = (a.is_leader().await, b.is_leader().await);
            ensure!(la != lb, "replica-a leads: {la}, replica-b leads: {lb}");
            Ok(la)
        })
        .await?;
        // Both replicas are ready (a standby is, to take over); only /readyz's text tells the one
        // that reconciles from the one that waits.
        let (leading, waiting) = if leaders { (&a, &b) } else { (&b, &a) };
        eventually(
            "the leader's /readyz to say it reconciles, the standby's that it waits",
            Duration::from_secs(60),
            || async {
                let (l, w) = (leading.readyz().await?, waiting.readyz().await?);
                let (synced, standby) = (modelcycle::kube::http::READY_SYNCED, modelcycle::kube::http::READY_STANDBY);
                ensure!(l == (200, synced.into()) && w == (200, standby.into()), "leader: {l:?}; standby: {w:?}");
                Ok(())
            },
        )
        .await?;
        let mut model = kwok_model(name, &Behaviour::default());
        // The API server's outage later in this story pauses the cluster's own controllers and
        // kwok as well; the rollout right after it may need longer than the suite's usual 10 s
        // progress deadline (a cold CI run showed v3 rolled back for it).
        model["spec"]["serving"]["progressDeadlineSeconds"] = json!(120);
        apply(cluster, ns, &model).await?;
        wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
        let log = AuditLog::read(&cluster.env.audit_log)?;
        let mut writers: BTreeMap<String, usize> = BTreeMap::new();
        for e in log.writes_by(&install.user(), since).into_iter().filter(|e| e.resource != "leases") {
            *writers.entry(e.pod.clone().unwrap_or_default()).or_default() += 1;
        }
        let leader = if leaders { &a.pod } else { &b.pod };
        ensure!(
            writers.len() == 1 && writers.contains_key(leader),
            "writers by pod: {writers:?}; the leader is {leader}"
        );
        Ok(format!("{leader} made all {} writes", writers.values().sum::<usize>()))
    }
    .await;
    let a_leads = a.is_leader().await;
    match first {
        Ok(detail) => report.pass(&format!("two replicas with leader election: /readyz tells the leader from the standby, only the leader writes ({detail})")),
        Err(why) => {
            report.fail("two replicas with leader election: /readyz tells the leader from the standby, only the leader writes", &why, Some(&scene));
            return;
        }
    }
    let (leader, standby) = if a_leads { (&mut a, &mut b) } else { (&mut b, &mut a) };
    let handover = async {
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &install.namespace);
        let lease = leases.get("modelcycle-leader").await.map_err(|e| e.to_string())?;
        let spec = lease.spec.unwrap_or_default();
        let renewed = spec.renew_time.map(|t| t.0).ok_or("the Lease has no renewTime")?;
        let duration = spec.lease_duration_seconds.unwrap_or(30);
        let killed = Instant::now();
        let killed_at = Timestamp::now();
        leader.kill();
        eventually("the standby to take the Lease", Duration::from_secs(90), || async {
            ensure!(standby.is_leader().await, "not the leader yet");
            Ok(())
        })
        .await?;
        let took = killed.elapsed();
        // The Lease can be taken once it expires: `leaseDurationSeconds` after its last renewal,
        // which came up to that long before the kill.
        let expired = renewed + jiff::SignedDuration::from_secs(duration.into());
        let after_expiry = Timestamp::now().duration_since(expired);
        ensure!(
            after_expiry <= jiff::SignedDuration::from_secs(5),
            "taken {:.1}s after the Lease expired (renewed {:.1}s before the kill, {duration}s Lease)",
            after_expiry.as_secs_f64(),
            killed_at.duration_since(renewed).as_secs_f64()
        );
        let since = Timestamp::now();
        new_data(cluster, ns, name, "d2").await?;
        wait_phase(cluster, ns, name, 2, "Serving", 90).await?;
        let log = AuditLog::read(&cluster.env.audit_log)?;
        let pods: Vec<_> = log.writes_by(&install.user(), since).into_iter().filter_map(|e| e.pod.clone()).collect();
        ensure!(pods.iter().all(|p| *p == standby.pod), "writes after the handover came from {pods:?}");
        Ok(format!(
            "handed over {:.1}s after the kill, {:.1}s after the {duration}s Lease expired",
            took.as_secs_f64(),
            after_expiry.as_secs_f64().max(0.0)
        ))
    };
    match handover.await {
        Ok(detail) => {
            report.pass(&format!("kill -9 of the leader: the standby takes the Lease and serves v2 ({detail})"))
        }
        Err(why) => report.fail("kill -9 of the leader: the standby takes the Lease and serves v2", &why, Some(&scene)),
    }
    let survivor = standby;
    api_server_outage(cluster, report, survivor, ns, name).await;
    leader.stop().await;
    survivor.stop().await;
}

/// The API server stopped for 30 s: /readyz says why meanwhile; the controller recovers alone.
async fn api_server_outage(cluster: &Cluster, report: &Report, controller: &mut Controller, ns: &str, name: &str) {
    let scene = scene(cluster, ns, controller);
    let script = cluster.path("e2e/cluster.sh");
    let cluster_sh = |verb: &str| {
        std::process::Command::new(&script)
            .args([verb, "apiserver"])
            .env("E2E_CLUSTER_DIR", &cluster.env.dir)
            .status()
            .map_err(|e| e.to_string())
            .and_then(|s| if s.success() { Ok(()) } else { Err(format!("cluster.sh {verb} apiserver failed")) })
    };
    let result: Check<_> = async {
        let stopped = Instant::now();
        let stopped_at = Timestamp::now();
        cluster_sh("stop")?;
        let why = eventually("/readyz to turn unready", Duration::from_secs(25), || async {
            let (code, body) = controller.readyz().await?;
            ensure!(code == 503, "/readyz is still {code}");
            Ok(body)
        })
        .await?;
        ensure!(why.contains("API server"), "/readyz does not say why: {why:?}");
        tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
        cluster_sh("start")?;
        eventually("the API server back", Duration::from_secs(90), || async {
            cluster.kubectl(&["get", "--raw", "/readyz"]).map(|_| ())
        })
        .await?;
        let back = Instant::now();
        if let Ok(mut outages) = cluster.outages.lock() {
            outages.push((stopped_at, Timestamp::now()));
        }
        eventually("/readyz to turn ready", Duration::from_secs(60), || async {
            let (code, body) = controller.readyz().await?;
            ensure!(code == 200, "/readyz is {code}: {body}");
            Ok(())
        })
        .await?;
        let ready_after = back.elapsed();
        ensure!(controller.running(), "the controller exited");
        let changed = Instant::now();
        new_data(cluster, ns, name, "d3").await?;
        eventually("v3 to be created", Duration::from_secs(60), || async {
            ensure!(versions(cluster, ns, name).await?.contains_key(&3), "no v3 yet");
            Ok(())
        })
        .await?;
        let noticed = changed.elapsed();
        // The control plane's own controllers (Job, scheduler, kwok) recover at their own pace.
        wait_phase(cluster, ns, name, 3, "Serving", 180).await?;
        let numbers: Vec<u32> = versions(cluster, ns, name).await?.into_keys().collect();
        ensure!(numbers == [1, 2, 3], "one change made one version, not {numbers:?}");
        Ok(format!(
            "/readyz said {why:?}; ready {:.1}s after the API server; v3 created {:.1}s after the change and served {:.0}s after it",
            ready_after.as_secs_f64(),
            noticed.as_secs_f64(),
            changed.elapsed().as_secs_f64()
        ))
    }
    .await;
    match result {
        Ok(detail) => {
            report.pass(&format!("the API server stopped for 30 s: the controller recovers by itself ({detail})"))
        }
        Err(why) => {
            let _ = cluster_sh("start");
            report.fail("the API server stopped for 30 s: the controller recovers by itself", &why, Some(&scene));
        }
    }
}
