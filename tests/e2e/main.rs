//! The e2e suite: the real `modelcycle` binary and Helm chart against a real kube-apiserver,
//! kube-controller-manager and kube-scheduler, with kwok nodes (`e2e/run.sh` brings them up).
//!
//! Each step prints one `PASS` or `FAIL` line saying what it checked; a failure also prints the
//! objects of its namespace, their Events and the controller's log tail. Without a control plane
//! (no `E2E_CLUSTER_DIR`) it prints one line saying it skipped, so `cargo test` stays offline.

mod admission;
#[path = "../support/admission_cases.rs"]
mod admission_cases;
mod audit;
mod cluster;
mod controller;
mod engines;
mod faults;
mod gitops;
mod report;
mod scale;
mod steady;
mod stories;

use std::process::ExitCode;

use cluster::Cluster;
use report::Report;

fn main() -> ExitCode {
    let Some(env) = cluster::Env::from_process() else {
        println!("e2e: SKIPPED, no control plane (E2E_CLUSTER_DIR is not set); e2e/run.sh brings one up and runs this");
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("e2e: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = Report::default();
    runtime.block_on(async {
        match Cluster::connect(env).await {
            Ok(cluster) => run(&cluster, &report).await,
            Err(e) => report.fail("connect to the control plane", &e, None),
        }
    });
    report.summary()
}

/// The suite, in phases: what the API server accepts, the stories on one controller, the steady
/// state, then the faults, each of which restarts what it breaks.
async fn run(cluster: &Cluster, report: &Report) {
    let only = std::env::var("E2E_ONLY").unwrap_or_default();
    let wanted = |phase: &str| only.is_empty() || only.split(',').any(|p| p == phase);
    if !admission::install_crds(cluster, report) {
        return;
    }
    if wanted("admission") {
        admission::run(cluster, report).await;
    }
    let Some(install) = controller::install_chart(
        cluster,
        report,
        "modelcycle",
        &["gatewayAPI.enabled=true", "kserve.enabled=true", "trainJob.enabled=true", "rayJob.enabled=true"],
    )
    .await
    else {
        return;
    };
    if wanted("stories") || wanted("steady") {
        let webhook = format!("--mlflow-webhook-secret={}", stories::registry::WEBHOOK_SECRET);
        let gateway = ["--gateway-api=true", "--kserve=true", "--trainjob=true", "--rayjob=true", webhook.as_str()];
        let Some(mut main) = controller::Controller::start(cluster, report, &install, 0, "main", &gateway).await else {
            return;
        };
        // Started before the stories (its start takes seconds of both cores) and kept through the
        // steady phase: a Model that takes its versions from it reads it again after a restart.
        let mlflow = stories::registry::Mlflow::start().await;
        let stories = stories::run(cluster, report, &main, &mlflow).await;
        if wanted("steady") && stories {
            steady::run(cluster, report, &mut main).await;
        }
        main.stop().await;
    }
    if wanted("engines") {
        engines::run(cluster, report, &install).await;
    }
    if wanted("scale") {
        scale::run(cluster, report, &install).await;
    }
    if wanted("faults") {
        faults::run(cluster, report, &install).await;
    }
    let what = "the real RBAC authorizer refused none of the chart's controller's requests";
    let ran_the_controller =
        wanted("stories") || wanted("steady") || wanted("engines") || wanted("scale") || wanted("faults");
    match audit::AuditLog::read(&cluster.env.audit_log) {
        Ok(_) if !ran_the_controller => {}
        Ok(log) => {
            let sent = log.entries.iter().filter(|e| e.user == install.user()).count();
            let outages = cluster.outages.lock().map(|o| o.clone()).unwrap_or_default();
            match log.forbidden(&install.user(), &outages, jiff::SignedDuration::from_secs(20)).as_slice() {
                [] if sent > 0 => {
                    report.pass(&format!("{what} ({sent} requests; none counted within 20 s of an API server restart)"))
                }
                [] => report.fail(what, "the audit log holds no request of the controller", None),
                refused => report.fail(what, &format!("refused: {refused:#?}"), None),
            }
        }
        Err(e) => report.fail(what, &e, None),
    }
    if wanted("rbac") {
        controller::watch_namespaces(cluster, report).await;
    }
}
