//! `modelcycle backtest` against a real Prometheus holding four weeks of history, backfilled with
//! `promtool tsdb create-blocks-from openmetrics`: the live inputs shift on day 14 and live quality
//! dips on days 21-23, and the backtest must say when the policy fires, what it holds back and what
//! it costs, the same from Prometheus and from the recording it wrote.

use crate::support;

use std::path::Path;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use support::prometheus::{TestPrometheus, openmetrics};

const STEP: i64 = 300;
const BEFORE: [f64; 10] = [5.0, 10.0, 15.0, 20.0, 15.0, 12.0, 9.0, 7.0, 4.0, 3.0];
const AFTER: [f64; 10] = [2.0, 4.0, 7.0, 10.0, 14.0, 18.0, 17.0, 13.0, 9.0, 6.0];

const MANIFESTS: &str = r#"
apiVersion: modelcycle.io/v1alpha1
kind: Model
metadata: {name: churn, namespace: ml}
spec:
  training:
    template: {spec: {containers: [{name: trainer, image: trainer:1}]}}
    dataset: {uri: s3://data/churn, version: "1"}
    artifactUri: s3://models/{model}/{version}
  evaluation:
    gates: [{metric: auc, min: 0.85}]
  serving:
    template: {spec: {containers: [{name: server, image: server:1}]}}
---
apiVersion: modelcycle.io/v1alpha1
kind: RetrainPolicy
metadata: {name: churn, namespace: ml}
spec:
  modelRef: {name: churn}
  drift:
    query: sum by (le) (increase(model_input_total{model="{{model}}"}[{{window}}]))
    method: JensenShannon
    significance: 0.001
    window: 6h
  performance:
    query: model_live_accuracy{model="{{model}}"}
    min: 0.88
    for: 1h
  cooldown: 12h
  prometheus: {address: "http://127.0.0.1:1"}
"#;

/// The period: 28 days ending two hours before the current hour.
fn period() -> (Timestamp, Timestamp) {
    let hour = Timestamp::now().as_second() / 3600 * 3600;
    let to = Timestamp::from_second(hour - 2 * 3600).unwrap();
    (to.checked_sub(SignedDuration::from_hours(28 * 24)).unwrap(), to)
}

fn day(from: Timestamp, d: f64) -> Timestamp {
    from.checked_add(SignedDuration::from_secs_f64(d * 86_400.0)).unwrap()
}

/// Four weeks of an input histogram (100 samples every 5 minutes, shifted from day 14) and of
/// live accuracy (0.92, 0.84 from day 21 to day 23), from six hours before the period on.
fn history(from: Timestamp, to: Timestamp) -> String {
    let shift = day(from, 14.0).as_second();
    let (dip, back) = (day(from, 21.0).as_second(), day(from, 23.0).as_second());
    let times: Vec<i64> = (from.as_second() - 6 * 3600..=to.as_second()).step_by(STEP as usize).collect();
    let mut buckets: Vec<support::prometheus::Samples> = vec![];
    for le in 0..=BEFORE.len() {
        let label = if le == BEFORE.len() { "+Inf".to_string() } else { format!("{:.1}", (le + 1) as f64 / 10.0) };
        let mut total = 0.0;
        let samples = times
            .iter()
            .map(|t| {
                let shares = if *t >= shift { AFTER } else { BEFORE };
                total += shares[..(le + 1).min(shares.len())].iter().sum::<f64>();
                (*t, total)
            })
            .collect();
        buckets.push((format!("model=\"churn\",le=\"{label}\""), samples));
    }
    let accuracy = times.iter().map(|t| (*t, if (dip..back).contains(t) { 0.84 } else { 0.92 })).collect();
    openmetrics(&[
        ("model_input", "counter", buckets),
        ("model_live_accuracy", "gauge", vec![("model=\"churn\"".to_string(), accuracy)]),
    ])
}

fn backtest(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_modelcycle"))
        .arg("backtest")
        .arg(dir.join("churn.yaml"))
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "backtest failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn time(v: &serde_json::Value) -> Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backtest_on_four_weeks_of_real_prometheus_history_finds_the_shift_and_the_dip() {
    let (from, to) = period();
    let prometheus = TestPrometheus::backfilled(&history(from, to)).await;
    let dir = tempdir();
    std::fs::write(dir.join("churn.yaml"), MANIFESTS).unwrap();
    let (chart, recording) = (dir.join("churn.svg"), dir.join("churn-history.yaml"));
    let from_text = from.to_string();
    let to_text = to.to_string();
    let report = backtest(
        &dir,
        &[
            "--prometheus",
            &prometheus.address,
            "--from",
            &from_text,
            "--to",
            &to_text,
            "--chart",
            chart.to_str().unwrap(),
            "--record",
            recording.to_str().unwrap(),
            "--metric",
            "auc=0.9",
        ],
    );
    let fired = report["fired"].as_array().unwrap();
    let trained: Vec<&serde_json::Value> = fired.iter().filter(|f| f["version"].is_u64()).collect();

    // Nothing fires on the unchanged inputs and good quality of the first two weeks.
    let shift = day(from, 14.0);
    assert!(fired.iter().all(|f| time(&f["time"]) > shift), "fired before the shift: {fired:#?}");
    // The shift is caught while the 6h window still holds mostly the old inputs.
    let first = &fired[0];
    assert_eq!(first["trigger"], "Drift", "{first:#}");
    assert!(time(&first["time"]) <= day(from, 14.0 + 3.0 / 24.0), "caught late: {first:#}");
    assert!(first["evidence"].as_str().unwrap().contains("critical value"), "{first:#}");
    // The retrain learned a window only partly shifted; once the window holds the new inputs alone,
    // drift fires again, and the cooldown holds it back until 12h after the first training.
    let held: Vec<_> = fired.iter().filter(|f| f["heldBack"].is_string()).collect();
    assert!(held.iter().any(|f| f["heldBack"].as_str().unwrap().contains("cooldown")), "{fired:#?}");
    let second_drift = trained.iter().filter(|f| f["trigger"] == "Drift").nth(1).expect("a second drift retrain");
    assert!(time(&second_drift["time"]) >= day(from, 14.5), "{second_drift:#}");
    // The quality dip fires once it has lasted the policy's hour.
    let dip = trained.iter().find(|f| f["trigger"].as_str().unwrap().contains("Performance")).expect("the dip");
    let at = time(&dip["time"]);
    assert!(at >= day(from, 21.0 + 1.0 / 24.0) && at <= day(from, 21.0 + 1.25 / 24.0), "{dip:#}");
    // Everything trained passed its gate with auc 0.9 and served.
    assert_eq!(report["trainings"].as_u64().unwrap() as usize, trained.len());
    assert_eq!(report["served"], report["trainings"], "{report:#}");
    // Every 5-minute check of 28 days, most with a verdict; two days of quality out of bounds.
    let drift_checks = report["drift"]["checks"].as_u64().unwrap();
    assert!((7_900..=8_070).contains(&drift_checks), "{drift_checks}");
    let low = report["quality"]["outOfBounds"].as_u64().unwrap();
    assert!((570..=580).contains(&low), "{low}");

    // The recording replays to the same report without Prometheus.
    drop(prometheus);
    let replayed = backtest(&dir, &["--history", recording.to_str().unwrap(), "--metric", "auc=0.9"]);
    assert_eq!(replayed, report);

    // The chart draws both panels, the thresholds and one red line per training.
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("drift (JS)") && svg.contains("live quality"), "{svg:.300}");
    let retrain_lines = svg.matches("stroke=\"#FF0000\"").count();
    assert!(retrain_lines >= 2 * trained.len(), "{retrain_lines} red strokes for {} trainings", trained.len());
    // `MODELCYCLE_DOCS=docs` keeps the chart and the text report for the README.
    if let Ok(docs) = std::env::var("MODELCYCLE_DOCS") {
        std::fs::copy(&chart, Path::new(&docs).join("backtest.svg")).unwrap();
        let text = Command::new(env!("CARGO_BIN_EXE_modelcycle"))
            .arg("backtest")
            .arg(dir.join("churn.yaml"))
            .args(["--history", recording.to_str().unwrap(), "--metric", "auc=0.9"])
            .output()
            .unwrap();
        std::fs::write(Path::new(&docs).join("backtest.txt"), text.stdout).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gates_judge_what_each_backtest_training_reports() {
    let (from, to) =
        (Timestamp::from_second(1_767_225_600).unwrap(), Timestamp::from_second(1_767_225_600 + 3 * 86_400).unwrap());
    let quality: Vec<String> = (0..=3 * 288)
        .map(|i| {
            let at = from.checked_add(SignedDuration::from_secs(i * STEP)).unwrap();
            let value = if i >= 288 { 0.8 } else { 0.95 };
            format!("  - {{at: \"{at}\", value: {value}}}")
        })
        .collect();
    let dir = tempdir();
    std::fs::write(dir.join("churn.yaml"), MANIFESTS).unwrap();
    let recording = dir.join("history.yaml");
    std::fs::write(&recording, format!("from: \"{from}\"\nto: \"{to}\"\nquality:\n{}\n", quality.join("\n"))).unwrap();
    let report = backtest(&dir, &["--history", recording.to_str().unwrap(), "--metric", "auc=0.8"]);
    let trained: Vec<_> = report["fired"].as_array().unwrap().iter().filter(|f| f["version"].is_u64()).collect();
    assert!(trained.len() >= 2, "{report:#}");
    for f in &trained {
        let outcome = f["outcome"].as_str().unwrap();
        assert!(outcome.contains("auc"), "{outcome}");
    }
    assert_eq!(report["served"], 0, "{report:#}");
    // Without --metric the gates are left out and said to be.
    let report = backtest(&dir, &["--history", recording.to_str().unwrap()]);
    assert!(report["assumptions"].to_string().contains("gates not judged"), "{report:#}");
    assert_eq!(report["served"], report["trainings"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_standing_retrain_request_is_not_replayed() {
    let dir = tempdir();
    let annotated = MANIFESTS.replace(
        "metadata: {name: churn, namespace: ml}\nspec:\n  modelRef",
        "metadata: {name: churn, namespace: ml, annotations: {modelcycle.io/retrain-request: \"now\"}}\nspec:\n  manual: true\n  modelRef",
    );
    assert_ne!(annotated, MANIFESTS);
    std::fs::write(dir.join("churn.yaml"), annotated).unwrap();
    let recording = dir.join("history.yaml");
    std::fs::write(&recording, "from: \"2026-01-01T00:00:00Z\"\nto: \"2026-01-02T00:00:00Z\"\n").unwrap();
    let report = backtest(&dir, &["--history", recording.to_str().unwrap()]);
    assert_eq!(report["fired"], serde_json::json!([]), "{report:#}");
    assert!(report["assumptions"].to_string().contains("retrain requests"), "{report:#}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_query_naming_the_version_needs_the_serving_version() {
    let dir = tempdir();
    let manifests = MANIFESTS.replace("{model=\"{{model}}\"}[{{window}}]", "{version=\"{{version}}\"}[{{window}}]");
    std::fs::write(dir.join("churn.yaml"), manifests).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelcycle"))
        .args(["backtest", dir.join("churn.yaml").to_str().unwrap(), "--prometheus", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--serving-version"), "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "modelcycle-backtest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
