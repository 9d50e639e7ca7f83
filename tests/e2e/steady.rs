//! Steady state is silent: once every Model has settled, the controller keeps reconciling (it
//! resyncs every 15 s in the suite, and a restart reconciles everything) and writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::audit::AuditLog;
use crate::cluster::{Check, Cluster};
use crate::controller::Controller;
use crate::ensure;
use crate::report::{Report, Scene};

/// The resync period the suite gives the controller (`--resync-period`).
const RESYNC: Duration = Duration::from_secs(15);

/// The controller's writes in the window, leaving out its Lease renewals, by `verb object`.
fn writes(cluster: &Cluster, user: &str, since: Timestamp) -> Check<(Vec<String>, usize)> {
    let log = AuditLog::read(&cluster.env.audit_log)?;
    let all = log.writes_by(user, since);
    let lease = all.iter().filter(|e| e.resource == "leases").count();
    let other = all
        .iter()
        .filter(|e| e.resource != "leases")
        .map(|e| format!("{} {} ({})", e.verb, e.object, e.code))
        .collect();
    Ok((other, lease))
}

/// Watches the settled cluster for two resync periods and over a controller restart.
pub async fn run(cluster: &Cluster, report: &Report, main: &mut Controller) {
    let user = "system:serviceaccount:modelcycle-system:modelcycle";
    let scene = Scene { cluster, namespace: "e2e-quickstart".into(), log: Some(main.log.clone()) };
    // Let the last writes of the stories land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = RESYNC * 2 + Duration::from_secs(5);
    let result: Check<String> = async {
        let reconciles = |c: &Controller| {
            let c = c.http.clone();
            async move {
                let text = reqwest::get(format!("{c}/metrics"))
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<f64, String>(
                    text.lines()
                        .filter(|l| l.starts_with("modelcycle_reconciles_total{") && l.contains("controller=\"model\""))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum(),
                )
            }
        };
        let before = reconciles(main).await?;
        let since = Timestamp::now();
        tokio::time::sleep(window).await;
        let after = reconciles(main).await?;
        let (other, lease) = writes(cluster, user, since)?;
        let models = cluster.kubectl(&["get", "mdl", "-A", "--no-headers"])?.lines().count();
        ensure!(other.is_empty(), "{} writes in steady state: {other:#?}", other.len());
        let ran = (after - before).max(0.0) as usize;
        ensure!(
            ran >= 2 * models,
            "only {ran} Model reconciles in {}s for {models} Models: the resync did not run",
            window.as_secs()
        );
        Ok(format!(
            "0 writes in {}s while {ran} reconciles of {models} Models ran; {lease} Lease renewals not counted",
            window.as_secs()
        ))
    }
    .await;
    match result {
        Ok(detail) => report.pass(&format!("steady state is silent: {detail}")),
        Err(why) => report.fail("steady state is silent", &why, Some(&scene)),
    }

    let restart = async {
        main.stop().await;
        let since = Timestamp::now();
        main.restart(cluster)?;
        main.wait_synced(Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (other, lease) = writes(cluster, user, since)?;
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for w in &other {
            *by_kind.entry(w.split(' ').nth(1).unwrap_or("?")).or_default() += 1;
        }
        ensure!(other.is_empty(), "a restart with nothing changed wrote {} times: {other:#?}", other.len());
        Ok(format!("{lease} Lease writes to take the lead again"))
    };
    match restart.await {
        Ok(detail) => report.pass(&format!("a controller restart with every Model settled writes nothing ({detail})")),
        Err(why) => report.fail("a controller restart with every Model settled writes nothing", &why, Some(&scene)),
    }
}
