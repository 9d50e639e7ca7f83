//! `modelcycle advise` against a real Prometheus backfilled with ten weeks of live quality (with
//! `promtool tsdb create-blocks-from openmetrics`) and the ModelVersions of the same period: with
//! a known decay it recommends the analytic optimum, without decay it does not pretend to.

use crate::sampling;
use crate::support;

use std::path::Path;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::Rng;
use support::prometheus::{TestPrometheus, openmetrics};

const DAYS: i64 = 70;
const EVERY: i64 = 7;

/// The period: ten weeks ending two hours before the current hour.
fn period() -> (Timestamp, Timestamp) {
    let hour = Timestamp::now().as_second() / 3600 * 3600;
    let to = Timestamp::from_second(hour - 2 * 3600).unwrap();
    (to.checked_sub(SignedDuration::from_hours(DAYS * 24)).unwrap(), to)
}

/// ModelVersions trained weekly from `from`, each serving an hour after its training started,
/// as `kubectl get modelversions -o yaml` lists them.
fn versions(from: Timestamp) -> String {
    let at = |hours: i64| from.checked_add(SignedDuration::from_hours(hours)).unwrap().to_string();
    let items: Vec<serde_json::Value> = (0..DAYS / EVERY)
        .map(|i| {
            let started = i * EVERY * 24;
            serde_json::json!({
                "apiVersion": "modelcycle.io/v1alpha1", "kind": "ModelVersion",
                "metadata": {"name": format!("churn-v{}", i + 1), "namespace": "ml"},
                "spec": {"model": "churn", "version": i + 1,
                         "trigger": {"reason": "Schedule", "time": at(started)},
                         "training": {"template": {}, "dataset": {"uri": "s3://data/churn", "version": format!("w{i}")},
                                      "artifactUri": "s3://models/{model}/{version}"},
                         "artifactUri": format!("s3://models/churn/{}", i + 1), "inputsHash": "h"},
                "status": {"phase": if i + 1 == DAYS / EVERY { "Serving" } else { "Retired" },
                           "startedAt": at(started), "finishedAt": at(started + 1),
                           "metrics": {"auc": 0.9},
                           "decisions": [{"time": at(started + 1), "action": "Serve", "reason": "Promoted", "message": "serves"}]}
            })
        })
        .collect();
    serde_yaml::to_string(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})).unwrap()
}

/// Hourly live accuracy: each version's level (0.90 to 0.91) minus `rate` a day of its age, plus
/// noise of ±0.003.
fn quality(from: Timestamp, to: Timestamp, rate: f64, seed: u64) -> Vec<(i64, f64)> {
    let mut rng = sampling::seeded();
    for _ in 0..seed {
        rng.next_u64();
    }
    (from.as_second()..=to.as_second())
        .step_by(3600)
        .map(|t| {
            let hours = (t - from.as_second()) / 3600;
            // Each version serves from an hour after its training started.
            let version = (hours - 1).max(0) / (EVERY * 24);
            let age_days = (hours - version * EVERY * 24) as f64 / 24.0;
            let level = 0.90 + 0.005 * (version % 3) as f64;
            (t, level - rate * age_days + ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.006)
        })
        .collect()
}

/// Advice from the live quality `query`.
fn advise(
    dir: &Path,
    prometheus: &str,
    query: &str,
    from: Timestamp,
    to: Timestamp,
    extra: &[&str],
) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_modelcycle"))
        .args(["advise", "--versions"])
        .arg(dir.join("versions.yaml"))
        .args(["--quality-query", query, "--prometheus", prometheus])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .args(["--training-cost", "100", "--value-per-point", "1000", "--output", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "advise failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_decay_gives_the_analytic_optimum_and_no_decay_gives_no_schedule() {
    let (from, to) = period();
    let dir = std::env::temp_dir().join(format!("modelcycle-advise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("versions.yaml"), versions(from)).unwrap();

    // One backfill holds both histories (promtool writes a block per two hours, most of this
    // test's time): the series of model "churn" decays 0.002 a day, that of "steady" has the same
    // noise and no decay.
    let prometheus = TestPrometheus::backfilled(&openmetrics(&[(
        "churn_live_accuracy",
        "gauge",
        vec![
            ("model=\"churn\"".to_string(), quality(from, to, 0.002, 7)),
            ("model=\"steady\"".to_string(), quality(from, to, 0.0, 7)),
        ],
    )]))
    .await;
    let decaying = "avg(churn_live_accuracy{model=\"churn\"})";

    // 0.002 a day: the optimum is sqrt(2 × 30 × 100 × 0.01 / (1000 × 0.002)) = sqrt(30) = 5.48 days.
    let chart = dir.join("advise.svg");
    let advice = advise(&dir, &prometheus.address, decaying, from, to, &["--chart", chart.to_str().unwrap()]);
    let rate = advice["decay"]["rate"].as_f64().unwrap();
    assert!(
        (rate - 0.002).abs() < 0.0002,
        "measured {rate} a day, made with 0.002: {}",
        serde_json::to_string(&advice["points"]).unwrap()
    );
    let (low, high) =
        (advice["decay"]["interval"][0].as_f64().unwrap(), advice["decay"]["interval"][1].as_f64().unwrap());
    // The true rate lies within twice the 95% half-width (about four standard errors) of the estimate.
    assert!((rate - 0.002).abs() < (high - low), "the 95% interval {low}..{high} is far from the true rate");
    let recommended = advice["verdict"]["retrain"]["intervalDays"].as_f64().expect("a recommendation");
    let optimum = 30f64.sqrt();
    assert!((recommended / optimum - 1.0).abs() < 0.05, "recommended {recommended} days, optimum {optimum}");
    assert_eq!(advice["versions"].as_array().unwrap().len(), (DAYS / EVERY) as usize);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("daily live quality by age") && svg.contains("recommended: every 5.5 d"), "{svg:.400}");
    if let Ok(docs) = std::env::var("MODELCYCLE_DOCS") {
        std::fs::copy(&chart, Path::new(&docs).join("advise.svg")).unwrap();
        let text = Command::new(env!("CARGO_BIN_EXE_modelcycle"))
            .args(["advise", "--versions"])
            .arg(dir.join("versions.yaml"))
            .args(["--quality-query", decaying, "--prometheus", &prometheus.address])
            .args(["--from", &from.to_string(), "--to", &to.to_string()])
            .args(["--training-cost", "100", "--value-per-point", "1000"])
            .output()
            .unwrap();
        std::fs::write(Path::new(&docs).join("advise.txt"), text.stdout).unwrap();
    }

    // No decay, the same noise: it must not recommend a schedule from noise.
    let advice = advise(&dir, &prometheus.address, "avg(churn_live_accuracy{model=\"steady\"})", from, to, &[]);
    let verdict = &advice["verdict"];
    assert!(verdict == "noMeasurableDecay" || verdict["cannotTell"].is_object(), "{verdict}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_week_of_history_is_too_short_to_advise() {
    let dir = std::env::temp_dir().join(format!("modelcycle-advise-short-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let from = Timestamp::from_second(1_767_225_600).unwrap();
    std::fs::write(dir.join("versions.yaml"), versions(from)).unwrap();
    let points: Vec<String> = (0..7 * 24)
        .map(|h| format!("  - {{at: \"{}\", value: 0.9}}", from.checked_add(SignedDuration::from_hours(h)).unwrap()))
        .collect();
    let to = from.checked_add(SignedDuration::from_hours(7 * 24)).unwrap();
    std::fs::write(
        dir.join("history.yaml"),
        format!("from: \"{from}\"\nto: \"{to}\"\nquality:\n{}\n", points.join("\n")),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelcycle"))
        .args(["advise", "--versions"])
        .arg(dir.join("versions.yaml"))
        .arg("--history")
        .arg(dir.join("history.yaml"))
        .args(["--to", &to.to_string(), "--training-cost", "100", "--value-per-point", "1000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No recommendation: 7 days of quality"), "{text}");
    // The versions are listed with their training time, dataset and offline metrics.
    assert!(text.lines().any(|l| l.contains("v2") && l.contains("w1") && l.contains("auc=0.9")), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
