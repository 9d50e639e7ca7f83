//! What the controller costs at N Models, on the real control plane: its memory, the time to
//! bring every Model to serving, the API requests per Model (first convergence, one retrain of
//! every Model, a steady window), the reconcile duration and CPU, and a restart.
//!
//! `e2e/scale.sh 100 1000 10000` runs it at those sizes (with enough pod capacity on the fake
//! nodes); the default suite runs it once at a smoke size. Each size gets its own namespace and
//! its own controller, started after the Models exist, so the figures are of that size alone.
//! The table is printed and written as JSON (`E2E_SCALE_OUT`, default `target/scale.json`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use modelcycle::api::Model;
use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditLog, Entry};
use crate::cluster::{Check, Cluster};
use crate::controller::{Controller, Install};
use crate::ensure;
use crate::report::{Report, Scene};
use crate::stories::{Behaviour, apply, kwok_model, new_data};

/// Requests the controller sent in a window, per Model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Requests {
    /// `get`.
    pub gets: f64,
    /// `list`.
    pub lists: f64,
    /// `watch`.
    pub watches: f64,
    /// `create`, `update`, `patch`, `delete`, leaving out the Lease's.
    pub writes: f64,
    /// Writes of the leader Lease (not per Model: the count in the window).
    pub lease_writes: usize,
}

impl Requests {
    fn of(entries: &[&Entry], models: usize) -> Self {
        let per = |n: usize| n as f64 / models.max(1) as f64;
        let count = |verb: &str| entries.iter().filter(|e| e.verb == verb).count();
        let lease_writes = entries.iter().filter(|e| e.is_write() && e.resource == "leases").count();
        let writes = entries.iter().filter(|e| e.is_write() && e.resource != "leases").count();
        Self {
            gets: per(count("get")),
            lists: per(count("list")),
            watches: per(count("watch")),
            writes: per(writes),
            lease_writes,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{:.2} gets, {:.2} lists, {:.2} watches, {:.2} writes per Model (+{} Lease writes)",
            self.gets, self.lists, self.watches, self.writes, self.lease_writes
        )
    }
}

/// The figures of one size.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// The controller binary measured (`E2E_MODELCYCLE_BIN`, else the test build).
    pub binary: String,
    /// Models.
    pub models: usize,
    /// RetrainPolicies (one for every second Model).
    pub policies: usize,
    /// The controller's peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Its resident memory once every Model was quiet, MiB.
    pub settled_rss_mib: f64,
    /// Of that, anonymous memory (RssAnon: the heap, what the allocator keeps, thread stacks),
    /// MiB: what grows with the Models.
    pub settled_anon_mib: f64,
    /// Of that, the pages of files (RssFile: the binary's own, shared libraries), MiB: the same
    /// at any size, and larger for a build with more code (the test build) than for the image's.
    pub settled_file_mib: f64,
    /// From the controller's start until every Model serves v1, s.
    pub to_serving_s: f64,
    /// The controller's CPU time (user + system) until then, s: far below `to_serving_s`, the
    /// convergence waits for the API server and the cluster's own controllers, not for us.
    pub to_serving_cpu_s: f64,
    /// A Model created once the controller is ready, while the others converge: until it has a
    /// version, s.
    pub late_model_s: f64,
    /// How many of the others served v1 by then.
    pub late_model_while_serving: usize,
    /// A Model created once every other Model acted on new data (they train and roll out):
    /// until it has a version, s.
    pub late_retrain_model_s: f64,
    /// How many of the others served v2 by then.
    pub late_retrain_while_serving: usize,
    /// A Model created right after every other one got new data, all of them equally new: until
    /// it has a version, s.
    pub late_burst_model_s: f64,
    /// From the start until the controller's last write of the first convergence, s.
    pub to_quiet_s: f64,
    /// From new data for every Model until every Model serves v2, s.
    pub retrain_s: f64,
    /// Requests of the first convergence.
    pub first: Requests,
    /// Requests of one retrain of every Model.
    pub retrain: Requests,
    /// Length of the steady window, s.
    pub steady_s: u64,
    /// Requests in the steady window.
    pub steady: Requests,
    /// Model reconcile duration, p50 and p99 over the whole run, ms (from `/metrics`).
    pub reconcile_p50_ms: f64,
    /// As above, p99.
    pub reconcile_p99_ms: f64,
    /// The part of a Model reconcile spent deciding (caches and plan, no request), p50, ms.
    pub decide_p50_ms: f64,
    /// As above, p99.
    pub decide_p99_ms: f64,
    /// The CPU time of a Model reconcile on the controller's threads, p50, ms
    /// (`modelcycle_reconcile_cpu_seconds`).
    pub reconcile_cpu_p50_ms: f64,
    /// As above, p99.
    pub reconcile_cpu_p99_ms: f64,
    /// Model reconciles over the run.
    pub reconciles: u64,
    /// The controller's CPU time (user + system) over the run divided by its reconciles, ms.
    pub cpu_ms_per_reconcile: f64,
    /// A restart with every Model settled: until `/readyz` answers 200, s.
    pub restart_ready_s: f64,
    /// Writes of that restart (leaving out the Lease).
    pub restart_writes: usize,
}

/// The sizes to run: `E2E_SCALE_MODELS` (comma-separated), else one smoke size.
pub fn sizes() -> Vec<usize> {
    std::env::var("E2E_SCALE_MODELS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|s: &Vec<usize>| !s.is_empty())
        .unwrap_or_else(|| vec![20])
}

/// Runs every size in turn, prints the table and writes it as JSON.
pub async fn run(cluster: &Cluster, report: &Report, install: &Install) {
    let steady = std::env::var("E2E_SCALE_STEADY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(35);
    let mut table = vec![];
    for n in sizes() {
        let ns = format!("e2e-scale-{n}");
        let scene = Scene {
            cluster,
            namespace: ns.clone(),
            log: Some(cluster.state(&format!("logs/controller-scale-{n}.log"))),
        };
        match size(cluster, install, n, steady, &ns).await {
            Ok(figures) => {
                report.pass(&format!(
                    "scale {n} Models: every Model serves v1 in {:.1}s ({}) and v2 after new data in {:.1}s; {:.1} MiB peak, {:.1} MiB settled; 0 writes in {steady}s steady and after a restart",
                    figures.to_serving_s,
                    figures.first.describe(),
                    figures.retrain_s,
                    figures.peak_rss_mib,
                    figures.settled_rss_mib
                ));
                table.push(figures);
            }
            Err(why) => report.fail(&format!("scale {n} Models"), &why, Some(&scene)),
        }
    }
    if table.is_empty() {
        return;
    }
    println!("{}", render(&table));
    let out =
        std::env::var("E2E_SCALE_OUT").unwrap_or_else(|_| cluster.path("target/scale.json").display().to_string());
    let written = serde_json::to_string_pretty(&table)
        .map_err(|e| e.to_string())
        .and_then(|text| std::fs::write(&out, text).map_err(|e| format!("{out}: {e}")));
    report.check(&format!("the scale table is written to {out}"), written, None);
}

/// The table, one row per size.
pub fn render(table: &[Figures]) -> String {
    let mut text = String::from(
        "| Models | peak MiB | settled MiB (anonymous + files) | to serving s (controller CPU s) | late Model s: converging, retraining, after a burst | to quiet s | retrain s | first: get/list/watch/write per Model | retrain: writes per Model | steady writes | reconcile p50/p99 ms | deciding p50/p99 ms | reconcile CPU p50/p99 ms | CPU ms/reconcile | restart ready s | restart writes |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for f in table {
        text += &format!(
            "| {} | {:.1} | {:.1} ({:.1} + {:.1}) | {:.1} ({:.1}) | {:.1} ({} serving), {:.1} ({} serving), {:.1} | {:.1} | {:.1} | {:.2}/{:.3}/{:.3}/{:.2} | {:.2} | {} in {}s | {:.1}/{:.1} | {:.3}/{:.3} | {:.3}/{:.3} | {:.2} | {:.1} | {} |\n",
            f.models,
            f.peak_rss_mib,
            f.settled_rss_mib,
            f.settled_anon_mib,
            f.settled_file_mib,
            f.to_serving_s,
            f.to_serving_cpu_s,
            f.late_model_s,
            f.late_model_while_serving,
            f.late_retrain_model_s,
            f.late_retrain_while_serving,
            f.late_burst_model_s,
            f.to_quiet_s,
            f.retrain_s,
            f.first.gets,
            f.first.lists,
            f.first.watches,
            f.first.writes,
            f.retrain.writes,
            (f.steady.writes * f.models as f64).round(),
            f.steady_s,
            f.reconcile_p50_ms,
            f.reconcile_p99_ms,
            f.decide_p50_ms,
            f.decide_p99_ms,
            f.reconcile_cpu_p50_ms,
            f.reconcile_cpu_p99_ms,
            f.cpu_ms_per_reconcile,
            f.restart_ready_s,
            f.restart_writes,
        );
    }
    text
}

/// One size: Models (and policies) first, then a controller of their namespace alone.
async fn size(cluster: &Cluster, install: &Install, n: usize, steady: u64, ns: &str) -> Check<Figures> {
    cluster.namespace(ns).await?;
    create(cluster, ns, n).await?;
    // The second chart pod's identity: the audit log tells this controller's requests apart.
    let name = format!("scale-{n}");
    let args = [format!("--namespaces={ns}"), format!("--lease-name={name}")];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Timestamp::now();
    let clock = Instant::now();
    let mut controller = Controller::spawn(cluster, install, 1, &name, &args)?;
    let pid = controller.pid().ok_or("the controller has no process")?;
    controller.wait_synced(Duration::from_secs(120)).await?;
    // A Model created while the fleet converges must not wait for the whole queue.
    let late = Instant::now();
    apply(cluster, ns, &scale_model("late")).await?;
    // On two cores the control plane's own controllers, not modelcycle, set the pace: rolling
    // 1,000 Deployments out at once kept kube-controller-manager at a whole core while modelcycle
    // used an eighth of one, and 208 were still rolling out after the 320 s an earlier bound
    // (120 + N/5) gave them. The bound only catches a run that hangs; the times are what the
    // table reports. E2E_SCALE_TIMEOUT_SECONDS sets another.
    let timeout = Duration::from_secs(
        std::env::var("E2E_SCALE_TIMEOUT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120 + n as u64 * 3 / 5),
    );
    let late_s = picked_up(cluster, ns, "late", timeout).await.map(|()| late.elapsed().as_secs_f64())?;
    let late_while = serving_count(cluster, ns, 1).await?;
    let in_time = late_s <= LATE_MODEL_BOUND_S;
    ensure!(
        in_time,
        "a Model created while {n} converge waited {late_s:.1}s for its first version ({late_while} serving by then)"
    );
    wait_serving(cluster, ns, n + 1, 1, timeout).await?;
    let served_at = clock.elapsed().as_secs_f64();
    let serving_cpu = cpu_seconds(pid)?;
    // Let the last status writes land before reading the audit log.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let pod = &controller.pod.clone();
    let user = install.user();
    let log = AuditLog::read(&cluster.env.audit_log)?;
    let first_window = mine(&log, &user, pod, started, Timestamp::now());
    let last_write = first_window.iter().filter(|e| e.is_write() && e.resource != "leases").map(|e| e.time).max();
    let to_quiet = last_write.map(|t| t.duration_since(started).as_secs_f64()).unwrap_or(0.0);
    let first = Requests::of(&first_window, n + 1);

    let retrain_from = Timestamp::now();
    let retrain_clock = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| async move { new_data(cluster, ns, &format!("m{i}"), "d2").await })
        .buffer_unordered(16)
        .collect::<Vec<Check>>()
        .await
        .into_iter()
        .collect::<Check>()?;
    // A Model created right after every other one changed: it takes its turn among the changed
    // ones (reported, not bounded: all of them are as new as it is).
    let late = Instant::now();
    apply(cluster, ns, &scale_model("late-burst")).await?;
    let late_burst_s = picked_up(cluster, ns, "late-burst", timeout).await.map(|()| late.elapsed().as_secs_f64())?;
    // Once every Model acted on its new data, they train and roll out: a Model created now must
    // not wait for that.
    wait_latest(cluster, ns, n, 2, timeout).await?;
    let late = Instant::now();
    apply(cluster, ns, &scale_model("late-retrain")).await?;
    let late_retrain_s =
        picked_up(cluster, ns, "late-retrain", timeout).await.map(|()| late.elapsed().as_secs_f64())?;
    let late_retrain_while = serving_count(cluster, ns, 2).await?;
    let in_time = late_retrain_s <= LATE_MODEL_BOUND_S;
    ensure!(
        in_time,
        "a Model created while {n} retrain waited {late_retrain_s:.1}s for its first version ({late_retrain_while} serving v2 by then)"
    );
    let retrain_s = wait_serving(cluster, ns, n, 2, timeout).await.map(|_| retrain_clock.elapsed().as_secs_f64())?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    // One reading of /proc, so that the parts and the whole are of the same moment.
    let [settled_rss, settled_anon, settled_file] = memory_mib(pid, ["VmRSS:", "RssAnon:", "RssFile:"]);
    ensure!(
        settled_anon > 0.0 && settled_file > 0.0 && settled_anon + settled_file <= settled_rss + 0.01,
        "resident memory {settled_rss:.1} MiB, of it {settled_anon:.1} anonymous and {settled_file:.1} of files"
    );
    if cfg!(feature = "heap-profile") {
        settled_heap_profile(pid).await?;
    }

    let steady_from = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let log = AuditLog::read(&cluster.env.audit_log)?;
    let retrain = Requests::of(&mine(&log, &user, pod, retrain_from, steady_from), n);
    let steady_window = mine(&log, &user, pod, steady_from, Timestamp::now());
    let steady_requests = Requests::of(&steady_window, n);
    let steady_writes: Vec<String> = steady_window
        .iter()
        .filter(|e| e.is_write() && e.resource != "leases")
        .take(10)
        .map(|e| format!("{} {}", e.verb, e.object))
        .collect();
    ensure!(steady_writes.is_empty(), "writes in the steady window: {steady_writes:#?}");

    let metrics = controller.metrics().await?;
    let (p50, p99, reconciles) = quantiles(&metrics, "modelcycle_reconcile_duration_seconds", "controller=\"model\"");
    let (decide_p50, decide_p99, _) = quantiles(&metrics, "modelcycle_model_decide_duration_seconds", "");
    let (cpu_p50, cpu_p99, cpu_counted) =
        quantiles(&metrics, "modelcycle_reconcile_cpu_seconds", "controller=\"model\"");
    // Every reconcile timed is one whose CPU is counted (give or take one ending between the two
    // families of one scrape).
    ensure!(
        reconciles > 0 && cpu_counted.abs_diff(reconciles) <= 1 + reconciles / 100,
        "{cpu_counted} reconciles with their CPU counted, {reconciles} timed"
    );
    let cpu = cpu_seconds(pid)?;
    let [peak_rss] = memory_mib(pid, ["VmHWM:"]);

    controller.stop().await;
    let restart_from = Timestamp::now();
    let restart_clock = Instant::now();
    controller.restart(cluster)?;
    controller.wait_synced(Duration::from_secs(120)).await?;
    let restart_ready = restart_clock.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let log = AuditLog::read(&cluster.env.audit_log)?;
    let restart_writes: Vec<String> = mine(&log, &user, pod, restart_from, Timestamp::now())
        .iter()
        .filter(|e| e.is_write() && e.resource != "leases")
        .map(|e| format!("{} {}", e.verb, e.object))
        .collect();
    controller.stop().await;
    ensure!(restart_writes.is_empty(), "a restart with nothing changed wrote: {restart_writes:#?}");
    // Leave the API server and the fake nodes to the next size.
    let _ =
        Api::<k8s_openapi::api::core::v1::Namespace>::all(cluster.client.clone()).delete(ns, &Default::default()).await;

    Ok(Figures {
        binary: crate::controller::binary().display().to_string(),
        models: n,
        policies: n / 2,
        peak_rss_mib: peak_rss,
        settled_rss_mib: settled_rss,
        settled_anon_mib: settled_anon,
        settled_file_mib: settled_file,
        to_serving_s: served_at,
        to_serving_cpu_s: serving_cpu,
        late_model_s: late_s,
        late_retrain_model_s: late_retrain_s,
        late_retrain_while_serving: late_retrain_while,
        late_burst_model_s: late_burst_s,
        late_model_while_serving: late_while,
        to_quiet_s: to_quiet,
        retrain_s,
        first,
        retrain,
        steady_s: steady,
        steady: steady_requests,
        reconcile_p50_ms: p50 * 1e3,
        reconcile_p99_ms: p99 * 1e3,
        decide_p50_ms: decide_p50 * 1e3,
        decide_p99_ms: decide_p99 * 1e3,
        reconcile_cpu_p50_ms: cpu_p50 * 1e3,
        reconcile_cpu_p99_ms: cpu_p99 * 1e3,
        reconciles,
        cpu_ms_per_reconcile: cpu * 1e3 / reconciles.max(1) as f64,
        restart_ready_s: restart_ready,
        restart_writes: 0,
    })
}

/// The longest a Model created during a fleet's convergence may wait for its first version: the
/// pickup lane (`src/kube/lanes.rs`) reaches it without waiting for the fleet's queue. Not
/// bounded in a heap-profiled build (`E2E_FEATURES=heap-profile`), whose every allocation records
/// a backtrace: there a Model created while 300 converged once waited 86 s (and 0.5 s in the next
/// profiled run, of a build that allocates less), and the run is for the profile, not the times
/// (the table still reports them).
const LATE_MODEL_BOUND_S: f64 = if cfg!(feature = "heap-profile") { f64::INFINITY } else { 10.0 };

/// A Model of the suite's kind with one replica and ten minutes for a rollout to progress: with
/// a thousand rollouts at once, the suite's 10 s deadline measures the fake nodes, not us.
fn scale_model(name: &str) -> serde_json::Value {
    let mut model = kwok_model(name, &Behaviour::default());
    model["spec"]["serving"]["replicas"] = json!(1);
    model["spec"]["serving"]["progressDeadlineSeconds"] = json!(600);
    // E2E_SCALE_RUN_HISTORY_LIMIT: the finished runs each Model keeps (the CRD's default else),
    // to measure what caching the Jobs and trainer pods of finished versions costs.
    if let Some(limit) = std::env::var("E2E_SCALE_RUN_HISTORY_LIMIT").ok().and_then(|s| s.parse::<u32>().ok()) {
        model["spec"]["runHistoryLimit"] = json!(limit);
    }
    model
}

/// Creates `n` Models (replicas 1, one-second training), and a RetrainPolicy for every second
/// one whose schedule fires twelve hours from now (so it holds nothing back during the run).
async fn create(cluster: &Cluster, ns: &str, n: usize) -> Check {
    let later = Timestamp::now() + jiff::SignedDuration::from_hours(12);
    let hour = later.to_zoned(jiff::tz::TimeZone::UTC).hour();
    futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("m{i}");
            apply(cluster, ns, &scale_model(&name)).await?;
            if i % 2 == 0 {
                let policy = json!({
                    "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
                    "metadata": {"name": name},
                    "spec": {"modelRef": {"name": name}, "schedule": {"cron": format!("0 {hour} * * *")}}
                });
                apply(cluster, ns, &policy).await?;
            }
            Ok(())
        })
        .buffer_unordered(16)
        .collect::<Vec<Check>>()
        .await
        .into_iter()
        .collect()
}

/// Waits until the Model `ns/name` has its first version.
async fn picked_up(cluster: &Cluster, ns: &str, name: &str, timeout: Duration) -> Check {
    let api = Api::<Model>::namespaced(cluster.client.clone(), ns);
    let start = Instant::now();
    loop {
        let model = api.get(name).await.map_err(|e| e.to_string())?;
        if model.status.and_then(|s| s.latest_version).is_some() {
            return Ok(());
        }
        ensure!(start.elapsed() < timeout, "{name} has no version after {}s", timeout.as_secs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until at least `n` Models of `ns` have `version` as their latest (acted on the change).
async fn wait_latest(cluster: &Cluster, ns: &str, n: usize, version: u32, timeout: Duration) -> Check {
    let api = Api::<Model>::namespaced(cluster.client.clone(), ns);
    let start = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let count = list.iter().filter(|m| m.status.as_ref().and_then(|s| s.latest_version) == Some(version)).count();
        if count >= n {
            return Ok(());
        }
        ensure!(start.elapsed() < timeout, "{count} of {n} Models have v{version} after {}s", timeout.as_secs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many Models of `ns` serve `version`.
async fn serving_count(cluster: &Cluster, ns: &str, version: u32) -> Check<usize> {
    let list = Api::<Model>::namespaced(cluster.client.clone(), ns).list(&ListParams::default()).await;
    let list = list.map_err(|e| e.to_string())?;
    Ok(list.iter().filter(|m| m.status.as_ref().and_then(|s| s.serving_version) == Some(version)).count())
}

/// Waits until all `n` Models of `ns` serve `version`; returns the seconds it took.
async fn wait_serving(cluster: &Cluster, ns: &str, n: usize, version: u32, timeout: Duration) -> Check<f64> {
    let api = Api::<Model>::namespaced(cluster.client.clone(), ns);
    let start = Instant::now();
    let mut last = BTreeMap::new();
    loop {
        let list = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let serving =
            list.iter().filter(|m| m.status.as_ref().and_then(|s| s.serving_version) == Some(version)).count();
        if serving == n {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > timeout {
            for m in &list {
                let phase = m.status.as_ref().and_then(|s| s.phase).map(|p| format!("{p:?}")).unwrap_or_default();
                *last.entry(phase).or_insert(0) += 1;
            }
            return Err(format!(
                "{serving} of {n} Models serve v{version} after {}s; phases {last:?}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(if n > 1000 { 5000 } else { 1000 })).await;
    }
}

/// The requests of the controller holding `pod`'s identity between `from` and `to`.
/// In a heap-profiled build: the profile of the settled controller, written on SIGUSR1, whose
/// `eb` ("at t-end") figures are what is live in the settled fleet, by allocation site.
async fn settled_heap_profile(pid: u32) -> Check {
    let file = std::path::PathBuf::from(format!("dhat-heap-{pid}.json"));
    let _ = std::fs::remove_file(&file);
    let sent = std::process::Command::new("kill").arg("-USR1").arg(pid.to_string()).status();
    ensure!(sent.is_ok_and(|s| s.success()), "could not signal the controller for its heap profile");
    let deadline = Instant::now() + Duration::from_secs(300);
    // dhat writes the file whole, then logs; a file that parses is finished.
    while Instant::now() < deadline {
        let parsed = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if let Some(profile) = parsed {
            let live: u64 =
                profile["pps"].as_array().map_or(0, |pps| pps.iter().filter_map(|p| p["eb"].as_u64()).sum());
            eprintln!(
                "scale: the settled heap profile is {} ({:.1} MiB live)",
                file.display(),
                live as f64 / 1048576.0
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("no heap profile {} within 300 s of SIGUSR1", file.display()))
}

fn mine<'a>(log: &'a AuditLog, user: &str, pod: &str, from: Timestamp, to: Timestamp) -> Vec<&'a Entry> {
    log.entries
        .iter()
        .filter(|e| e.user == user && e.pod.as_deref() == Some(pod) && e.time >= from && e.time <= to)
        .collect()
}

/// p50 and p99 of the histogram `name` (the series whose labels hold `label`), in seconds,
/// interpolated within buckets as Prometheus' `histogram_quantile` does; and its count.
pub fn quantiles(metrics: &str, name: &str, label: &str) -> (f64, f64, u64) {
    let bucket = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&bucket) && l.contains(label))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    let quantile = |q: f64| {
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &buckets {
            if count >= rank {
                if le.is_infinite() {
                    return lower.0;
                }
                let within = if count > lower.1 { (rank - lower.1) / (count - lower.1) } else { 0.0 };
                return lower.0 + (le - lower.0) * within;
            }
            lower = (le, count);
        }
        lower.0
    };
    (quantile(0.5), quantile(0.99), total as u64)
}

/// The CPU time (user + system) process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> Check<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).ok_or("cannot read /proc stat");
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Memory figures of process `pid` from one reading of `/proc/<pid>/status` (`VmRSS:` now,
/// `VmHWM:` the kernel's high-water mark, `RssAnon:` and `RssFile:` its parts), MiB; 0 for one
/// that cannot be read.
fn memory_mib<const N: usize>(pid: u32, fields: [&str; N]) -> [f64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    fields.map(|field| {
        let kib = status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
        kib.unwrap_or(0) as f64 / 1024.0
    })
}
