//! Judging a version's metrics against the gates and against the serving version.

use std::collections::BTreeMap;

use crate::api::{Gate, GateResult, Goal, Verdict};

/// Every gate's result for `metrics`, compared with the serving version's `champion` metrics.
pub fn judge(
    gates: &[Gate],
    metrics: &BTreeMap<String, f64>,
    champion: Option<&BTreeMap<String, f64>>,
) -> Vec<GateResult> {
    let mut results = vec![];
    for gate in gates {
        let value = metrics.get(&gate.metric).copied();
        let result = |bound: &str, threshold: Option<f64>, verdict: Verdict, reason: Option<&str>| GateResult {
            metric: gate.metric.clone(),
            bound: bound.into(),
            value,
            threshold,
            verdict,
            reason: reason.map(str::to_string),
        };
        let absolute = [("min", gate.min), ("max", gate.max)];
        for (bound, threshold) in absolute.into_iter().filter_map(|(b, t)| t.map(|t| (b, t))) {
            results.push(match value {
                None => result(bound, Some(threshold), Verdict::Fail, Some("MetricMissing")),
                Some(v) => {
                    let holds = if bound == "min" { v >= threshold } else { v <= threshold };
                    result(bound, Some(threshold), if holds { Verdict::Pass } else { Verdict::Fail }, None)
                }
            });
        }
        // Both relative bounds become a floor (Maximize) or ceiling (Minimize) around the champion.
        let sign = if gate.goal == Goal::Maximize { 1.0 } else { -1.0 };
        let relative = [("minImprovement", gate.min_improvement), ("maxRegression", gate.max_regression.map(|d| -d))];
        for (bound, offset) in relative.into_iter().filter_map(|(b, o)| o.map(|o| (b, o))) {
            let champ = champion.map(|c| c.get(&gate.metric).copied());
            results.push(match (value, champ) {
                (None, _) => result(bound, None, Verdict::Fail, Some("MetricMissing")),
                (Some(_), None) => result(bound, None, Verdict::Skipped, Some("NoServingVersion")),
                (Some(_), Some(None)) if gate.require_baseline => {
                    result(bound, None, Verdict::Fail, Some("ServingVersionLacksMetric"))
                }
                (Some(_), Some(None)) => result(bound, None, Verdict::Skipped, Some("ServingVersionLacksMetric")),
                (Some(v), Some(Some(c))) => {
                    let threshold = c + sign * offset;
                    let holds = sign * (v - threshold) >= -1e-12;
                    result(bound, Some(threshold), if holds { Verdict::Pass } else { Verdict::Fail }, None)
                }
            });
        }
    }
    results
}

/// True when no gate failed.
pub fn passed(results: &[GateResult]) -> bool {
    results.iter().all(|r| r.verdict != Verdict::Fail)
}

/// A one-line account of the failed gates, e.g. `auc 0.71 < min 0.8`.
pub fn failures(results: &[GateResult]) -> String {
    let describe = |r: &GateResult| match (r.value, r.threshold) {
        (None, _) => format!("{} was not reported (MetricMissing)", r.metric),
        (Some(_), None) if r.reason.as_deref() == Some("ServingVersionLacksMetric") => {
            format!(
                "{} {} cannot be judged: the serving version has no {} (requireBaseline)",
                r.metric, r.bound, r.metric
            )
        }
        (Some(v), Some(t)) => format!("{} {v} fails {} {t}", r.metric, r.bound),
        (Some(v), None) => format!("{} {v} fails {}", r.metric, r.bound),
    };
    results.iter().filter(|r| r.verdict == Verdict::Fail).map(describe).collect::<Vec<_>>().join("; ")
}

/// The gates that were skipped, for a person: `auc maxRegression (ServingVersionLacksMetric)`.
pub fn skipped(results: &[GateResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| r.verdict == Verdict::Skipped)
        .map(|r| format!("{} {} ({})", r.metric, r.bound, r.reason.as_deref().unwrap_or("Skipped")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(metric: &str, goal: Goal) -> Gate {
        Gate {
            metric: metric.into(),
            goal,
            min: None,
            max: None,
            min_improvement: None,
            max_regression: None,
            require_baseline: false,
        }
    }

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn absolute_bounds_pass_and_fail() {
        let g = Gate { min: Some(0.8), max: Some(0.99), ..gate("auc", Goal::Maximize) };
        let ok = judge(std::slice::from_ref(&g), &metrics(&[("auc", 0.85)]), None);
        assert!(passed(&ok));
        assert_eq!(ok.len(), 2);
        let low = judge(&[g], &metrics(&[("auc", 0.71)]), None);
        assert!(!passed(&low));
        assert_eq!(low[0].verdict, Verdict::Fail);
        assert_eq!(failures(&low), "auc 0.71 fails min 0.8");
    }

    #[test]
    fn rejects_version_that_regresses_auc_beyond_budget() {
        let g = Gate { max_regression: Some(0.01), ..gate("auc", Goal::Maximize) };
        let champion = metrics(&[("auc", 0.90)]);
        let within = judge(std::slice::from_ref(&g), &metrics(&[("auc", 0.895)]), Some(&champion));
        assert!(passed(&within));
        let beyond = judge(&[g], &metrics(&[("auc", 0.88)]), Some(&champion));
        assert_eq!(beyond[0].verdict, Verdict::Fail);
        assert!((beyond[0].threshold.unwrap() - 0.89).abs() < 1e-9);
    }

    #[test]
    fn a_loss_that_rises_is_a_regression_when_minimizing() {
        let g = Gate { max_regression: Some(0.02), ..gate("log_loss", Goal::Minimize) };
        let champion = metrics(&[("log_loss", 0.20)]);
        assert!(passed(&judge(std::slice::from_ref(&g), &metrics(&[("log_loss", 0.215)]), Some(&champion))));
        assert!(!passed(&judge(&[g], &metrics(&[("log_loss", 0.23)]), Some(&champion))));
    }

    #[test]
    fn min_improvement_needs_a_real_gain() {
        let g = Gate { min_improvement: Some(0.01), ..gate("auc", Goal::Maximize) };
        let champion = metrics(&[("auc", 0.90)]);
        assert!(!passed(&judge(std::slice::from_ref(&g), &metrics(&[("auc", 0.905)]), Some(&champion))));
        assert!(passed(&judge(&[g], &metrics(&[("auc", 0.92)]), Some(&champion))));
    }

    #[test]
    fn a_gate_skipped_for_a_serving_version_without_the_metric_is_listed_or_fails_when_required() {
        // The serving version never reported auc: a 0.55-AUC candidate must not pass unnoticed.
        let g = Gate { max_regression: Some(0.01), ..gate("auc", Goal::Maximize) };
        let champion = metrics(&[("log_loss", 0.3)]);
        let results = judge(std::slice::from_ref(&g), &metrics(&[("auc", 0.55)]), Some(&champion));
        assert!(passed(&results));
        assert_eq!(skipped(&results), ["auc maxRegression (ServingVersionLacksMetric)"]);
        let required = Gate { require_baseline: true, ..g };
        let results = judge(&[required], &metrics(&[("auc", 0.55)]), Some(&champion));
        assert!(!passed(&results));
        assert_eq!(
            failures(&results),
            "auc maxRegression cannot be judged: the serving version has no auc (requireBaseline)"
        );
    }

    #[test]
    fn relative_gates_are_skipped_and_recorded_while_nothing_serves() {
        let g = Gate { max_regression: Some(0.01), ..gate("auc", Goal::Maximize) };
        let results = judge(&[g], &metrics(&[("auc", 0.5)]), None);
        assert_eq!(results[0].verdict, Verdict::Skipped);
        assert_eq!(results[0].reason.as_deref(), Some("NoServingVersion"));
        assert!(passed(&results));
    }

    #[test]
    fn a_metric_the_trainer_did_not_report_fails_its_gate() {
        let g = Gate { min: Some(0.8), ..gate("f1", Goal::Maximize) };
        let results = judge(&[g], &metrics(&[("auc", 0.9)]), None);
        assert_eq!(results[0].reason.as_deref(), Some("MetricMissing"));
        assert!(!passed(&results));
    }
}
