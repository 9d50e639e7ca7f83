use super::*;
use crate::api::ModelVersion;
use crate::lifecycle::inputs::new_version;
use crate::lifecycle::testing::model;

fn analysed_model() -> Model {
    let mut m = model("churn");
    m.spec.serving.analysis = Some(
        serde_json::from_value(serde_json::json!({
            "prometheus": {"address": "http://prometheus:9090"},
            "interval": "5m",
            "initialDelay": "2m",
            "metrics": [
                {"name": "errors", "query": "errors{m=\"{{model}}\",ns=\"{{namespace}}\",v=\"{{version}}\",s=\"{{stableVersion}}\"}", "max": 0.05},
                {"name": "latency", "query": "latency{v=\"{{version}}\"}", "goal": "Minimize", "maxRegression": 0.5}
            ]
        }))
        .unwrap(),
    );
    m
}

fn t(s: &str) -> Timestamp {
    format!("2026-11-02T{s}Z").parse().unwrap()
}

/// v1 serving, v2 rolling out with its analysis started at 10:00.
fn versions(m: &Model) -> Vec<ModelVersion> {
    let mut v1 = new_version(m, 1, vec![], t("00:00:00")).unwrap();
    v1.status = Some(crate::api::ModelVersionStatus { phase: Some(VersionPhase::Serving), ..Default::default() });
    let mut v2 = new_version(m, 2, vec![], t("09:00:00")).unwrap();
    v2.status = Some(crate::api::ModelVersionStatus {
        phase: Some(VersionPhase::RollingOut),
        analysis: Some(AnalysisStatus::starting(AnalysisStage::Rollout, Time(t("10:00:00")), Some(1))),
        ..Default::default()
    });
    vec![v1, v2]
}

#[test]
fn queries_are_due_after_the_initial_delay_with_placeholders_filled_and_the_stable_comparison() {
    let m = analysed_model();
    let vs = versions(&m);
    assert!(due_queries(&m, &Ledger::new(&vs, t("10:01:59")), t("10:01:59")).is_empty(), "initialDelay 2m");
    let due = due_queries(&m, &Ledger::new(&vs, t("10:02:00")), t("10:02:00"));
    let texts: Vec<_> = due.iter().map(|q| (q.metric.as_str(), q.version, q.query.as_str())).collect();
    assert_eq!(
        texts,
        [
            ("errors", 2, r#"errors{m="churn",ns="ml",v="2",s="1"}"#),
            ("latency", 2, r#"latency{v="2"}"#),
            ("latency", 1, r#"latency{v="1"}"#),
        ]
    );
}

fn readings(answers: &[(&str, Result<f64, ReadingError>)]) -> Readings {
    let numbers = answers.iter().map(|(q, a)| (q.to_string(), a.clone())).collect();
    Readings { analysis: AnalysisAnswers { numbers, ..Default::default() }, ..Default::default() }
}

fn gate_at(m: &Model, vs: &[ModelVersion], now: &str, r: &Readings) -> (Gate, Option<AnalysisStatus>) {
    let mut ledger = Ledger::new(vs, t(now));
    let gate =
        step_gate(&mut ledger, m, r, Step { n: 2, baseline: 1, since: t("10:00:00"), hold: None, manual: false });
    (gate, ledger.get(2).unwrap().status.analysis.clone())
}

const ERRORS: &str = r#"errors{m="churn",ns="ml",v="2",s="1"}"#;

#[test]
fn a_passing_measurement_is_recorded_and_the_step_holds_one_interval() {
    let m = analysed_model();
    let vs = versions(&m);
    let r = readings(&[(ERRORS, Ok(0.01)), (r#"latency{v="2"}"#, Ok(0.3)), (r#"latency{v="1"}"#, Ok(0.25))]);
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &r);
    assert_eq!(gate, Gate::Wait(Some(t("10:05:00"))), "held for one interval from the step's start");
    let status = status.unwrap();
    assert_eq!(status.last_verdict, Some(AnalysisVerdict::Pass));
    let latency = status.measurements.iter().find(|m| m.metric == "latency").unwrap();
    assert_eq!(latency.threshold, Some(0.375), "0.25 + 50%");
    assert_eq!(status.measurements.len(), 2);
}

#[test]
fn a_failure_beyond_the_limit_fails_the_gate_with_the_measurement_as_evidence() {
    let m = analysed_model();
    let vs = versions(&m);
    let r = readings(&[(ERRORS, Ok(0.2)), (r#"latency{v="2"}"#, Ok(0.3)), (r#"latency{v="1"}"#, Ok(0.25))]);
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &r);
    let Gate::Failed(message, evidence) = gate else { panic!("{gate:?}") };
    assert!(message.contains("errors = 0.2 against max 0.05"), "{message}");
    assert_eq!(evidence[0]["verdict"], "Fail");
    assert_eq!(status.unwrap().failures, 1);
}

#[test]
fn what_cannot_be_measured_pauses_and_says_why() {
    let m = analysed_model();
    let vs = versions(&m);
    let unreachable = ReadingError::Unreachable { address: "http://p".into(), message: "refused".into() };
    let r = readings(&[
        (ERRORS, Err(unreachable)),
        (r#"latency{v="2"}"#, Ok(0.3)),
        (r#"latency{v="1"}"#, Err(ReadingError::NoData)),
    ]);
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &r);
    let Gate::Paused(reason, message, wake) = gate else { panic!("{gate:?}") };
    assert_eq!(reason, "AnalysisInconclusive");
    assert!(message.contains("refused") && message.contains("the stable version's value"), "{message}");
    assert_eq!(wake, Some(t("10:07:00")), "measure again after an interval");
    assert_eq!(status.unwrap().failures, 0, "inconclusive is not a failure");

    let rejected = ReadingError::Rejected { kind: "bad_data".into(), message: "parse error at char 7".into() };
    let r = readings(&[(ERRORS, Err(rejected)), (r#"latency{v="2"}"#, Ok(0.3)), (r#"latency{v="1"}"#, Ok(0.3))]);
    let (gate, _) = gate_at(&m, &vs, "10:02:00", &r);
    assert!(matches!(gate, Gate::Paused("AnalysisQueryFailed", ref m, _) if m.contains("parse error at char 7")));
}

#[test]
fn answers_the_shell_did_not_take_are_not_a_measurement() {
    let m = analysed_model();
    let vs = versions(&m);
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &Readings::default());
    assert_eq!(gate, Gate::Wait(Some(t("10:02:00"))));
    assert!(status.unwrap().last_measured.is_none());
}

#[test]
fn regression_thresholds_follow_the_goal() {
    assert!((regression_threshold(0.9, 0.1, Goal::Maximize) - 0.81).abs() < 1e-12);
    assert!((regression_threshold(0.2, 0.5, Goal::Minimize) - 0.3).abs() < 1e-12);
    assert!((regression_threshold(-2.0, 0.5, Goal::Maximize) - -3.0).abs() < 1e-12, "negative values too");
}

#[test]
fn the_manual_gate_opens_only_for_its_own_version() {
    let mut m = model("churn");
    assert!(matches!(manual_gate(&m, 3), Gate::Paused("WaitingForPromotion", _, None)));
    m.metadata.annotations = Some([(PROMOTE_ANNOTATION.to_string(), "2".to_string())].into());
    assert!(matches!(manual_gate(&m, 3), Gate::Paused("StalePromotion", ref s, None) if s.contains("\"2\"")));
    m.metadata.annotations = Some([(PROMOTE_ANNOTATION.to_string(), " 3 ".to_string())].into());
    assert_eq!(manual_gate(&m, 3), Gate::Open);
    assert!(!abort_requested(&m, 3));
    m.metadata.annotations = Some([(ABORT_ANNOTATION.to_string(), "3".to_string())].into());
    assert!(abort_requested(&m, 3) && !abort_requested(&m, 2));
}

#[test]
fn measurements_are_bounded_but_the_latest_is_kept_whole() {
    let mut m = analysed_model();
    let spec = m.spec.serving.analysis.as_mut().unwrap();
    spec.metrics = (0..16)
        .map(|i| {
            serde_json::from_value(
                serde_json::json!({"name": format!("m{i}"), "query": format!("q{i}"), "min": 0.0, "max": 1.0}),
            )
            .unwrap()
        })
        .collect();
    let mut vs = versions(&m);
    let old = |i: usize| Measurement {
        time: Time(t("09:00:00")),
        metric: format!("old{i}"),
        query: "old".into(),
        bound: "max".into(),
        value: Some(0.0),
        threshold: Some(1.0),
        verdict: AnalysisVerdict::Pass,
        reason: None,
        message: None,
    };
    let status = vs[1].status.as_mut().unwrap().analysis.as_mut().unwrap();
    status.measurements = (0..MEASUREMENTS_MAX).map(old).collect();
    let answers: Vec<(String, Result<f64, ReadingError>)> = (0..16).map(|i| (format!("q{i}"), Ok(0.5))).collect();
    let numbers = answers.into_iter().collect();
    let r = Readings { analysis: AnalysisAnswers { numbers, ..Default::default() }, ..Default::default() };
    let (_, status) = gate_at(&m, &vs, "10:02:00", &r);
    let kept = status.unwrap().measurements;
    assert_eq!(kept.len(), 32, "16 metrics × 2 bounds: more than {MEASUREMENTS_MAX}, none of them cut");
    assert!(kept.iter().all(|m| m.time.0 == t("10:02:00")), "the older ones made room");
}

/// A Model whose analysis compares v2's prediction histogram with v1's by Jensen-Shannon.
fn distribution_model(min_samples: u64) -> Model {
    let mut m = analysed_model();
    m.spec.serving.analysis.as_mut().unwrap().metrics = vec![
        serde_json::from_value(serde_json::json!({
            "name": "predictions",
            "query": "sum by (le) (predictions_bucket{v=\"{{version}}\"})",
            "distribution": {"method": "JensenShannon", "minSamples": min_samples},
            "max": 0.1
        }))
        .unwrap(),
    ];
    m
}

fn histogram(counts: &[f64]) -> crate::stats::Histogram {
    crate::stats::Histogram { bounds: vec![0.25, 0.5, 0.75, 1.0], counts: counts.to_vec() }
}

fn distributions(new: Result<crate::stats::Histogram, ReadingError>, old: crate::stats::Histogram) -> Readings {
    let histograms = [
        (r#"sum by (le) (predictions_bucket{v="2"})"#.to_string(), new),
        (r#"sum by (le) (predictions_bucket{v="1"})"#.to_string(), Ok(old)),
    ]
    .into();
    Readings { analysis: AnalysisAnswers { histograms, ..Default::default() }, ..Default::default() }
}

#[test]
fn a_distribution_metric_asks_for_both_versions_histograms_only_while_the_stable_one_serves_beside_it() {
    let m = distribution_model(100);
    let vs = versions(&m);
    let due = due_queries(&m, &Ledger::new(&vs, t("10:02:00")), t("10:02:00"));
    let texts: Vec<_> = due.iter().map(|q| (q.version, q.shape, q.query.as_str())).collect();
    assert_eq!(
        texts,
        [
            (2, Shape::Histogram, r#"sum by (le) (predictions_bucket{v="2"})"#),
            (1, Shape::Histogram, r#"sum by (le) (predictions_bucket{v="1"})"#),
        ]
    );
    // In a guard window after promotion nothing serves beside it: nothing to compare, no query.
    let mut guarded = versions(&m);
    guarded[1].status.as_mut().unwrap().phase = Some(VersionPhase::Serving);
    guarded[1].status.as_mut().unwrap().analysis =
        Some(AnalysisStatus::starting(AnalysisStage::Guard, Time(t("10:00:00")), None));
    assert!(due_queries(&m, &Ledger::new(&guarded, t("10:02:00")), t("10:02:00")).is_empty());
}

#[test]
fn a_distribution_metric_passes_when_the_predictions_agree_and_fails_with_the_divergence_when_they_do_not() {
    let m = distribution_model(100);
    let vs = versions(&m);
    let same = distributions(Ok(histogram(&[100.0, 200.0, 300.0, 400.0])), histogram(&[98.0, 205.0, 290.0, 407.0]));
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &same);
    assert!(!matches!(gate, Gate::Failed(..)), "{gate:?}");
    let taken = status.unwrap().measurements;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].verdict, AnalysisVerdict::Pass);
    assert!(taken[0].value.is_some_and(|v| v < 0.02), "{:?}", taken[0].value);

    let shifted = distributions(Ok(histogram(&[400.0, 300.0, 200.0, 100.0])), histogram(&[100.0, 200.0, 300.0, 400.0]));
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &shifted);
    let Gate::Failed(message, _) = gate else { panic!("{gate:?}") };
    let m0 = status.unwrap().measurements.last().cloned().unwrap();
    assert_eq!((m0.verdict, m0.bound.as_str(), m0.threshold), (AnalysisVerdict::Fail, "max", Some(0.1)));
    let js = m0.value.unwrap();
    let expected = crate::stats::jensen_shannon(
        &histogram(&[100.0, 200.0, 300.0, 400.0]),
        &histogram(&[400.0, 300.0, 200.0, 100.0]),
    )
    .unwrap();
    assert!((js - expected).abs() < 1e-12 && js > 0.1, "{js} vs {expected}");
    assert!(message.contains("predictions"), "{message}");
}

#[test]
fn too_few_samples_or_different_buckets_give_no_verdict_and_say_why() {
    let m = distribution_model(500);
    let vs = versions(&m);
    let few = distributions(Ok(histogram(&[10.0, 20.0, 30.0, 40.0])), histogram(&[100.0, 200.0, 300.0, 400.0]));
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &few);
    assert!(matches!(gate, Gate::Paused("AnalysisInconclusive", ..)), "{gate:?}");
    let m0 = status.unwrap().measurements.last().cloned().unwrap();
    assert_eq!((m0.verdict, m0.reason.as_deref()), (AnalysisVerdict::Inconclusive, Some("TooFewSamples")));
    assert!(m0.message.as_deref().is_some_and(|t| t.contains("v2 has 100 samples")), "{:?}", m0.message);

    let mut other = histogram(&[100.0, 200.0, 300.0, 400.0]);
    other.bounds = vec![0.1, 0.2, 0.3, 1.0];
    let unlike = distributions(Ok(other), histogram(&[100.0, 200.0, 300.0, 400.0]));
    let (gate, status) = gate_at(&m, &vs, "10:02:00", &unlike);
    assert!(matches!(gate, Gate::Paused("AnalysisInconclusive", ..)), "{gate:?}");
    let m0 = status.unwrap().measurements.last().cloned().unwrap();
    assert_eq!(m0.reason.as_deref(), Some("DistributionsNotComparable"));

    let missing = distributions(Err(ReadingError::NoData), histogram(&[100.0, 200.0, 300.0, 400.0]));
    let (gate, _) = gate_at(&m, &vs, "10:02:00", &missing);
    assert!(matches!(gate, Gate::Paused("AnalysisInconclusive", ..)), "{gate:?}");
}

#[test]
fn values_in_messages_keep_four_significant_digits() {
    let cases = [
        (0.24000000000000002, "0.24"),
        (0.5549981873282945, "0.555"),
        (0.00012346, "0.0001235"),
        (12345.6, "12346"),
        (0.05, "0.05"),
        (2.0, "2"),
        (-0.31, "-0.31"),
    ];
    for (v, text) in cases {
        assert_eq!(short(v), text, "{v}");
    }
}
