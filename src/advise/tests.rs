use jiff::{SignedDuration, Timestamp};

use super::*;

fn at(days: f64) -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap().checked_add(SignedDuration::from_secs_f64(days * 86_400.0)).unwrap()
}

fn economics() -> Economics {
    Economics { training_cost: 100.0, value_per_point: 1000.0, point: 0.01, goal: Goal::Maximize }
}

/// Versions trained every `every` days over `days`, each serving from an hour after its training
/// started until the next; hourly quality `level(v) − rate × age` (+ `noise(hour)`).
fn history(
    days: f64,
    every: f64,
    rate: f64,
    noise: impl Fn(usize) -> f64,
) -> (Vec<VersionLife>, Vec<(Timestamp, f64)>) {
    let count = (days / every).ceil() as u32;
    let lives: Vec<VersionLife> = (0..count)
        .map(|i| {
            let trained = at(i as f64 * every);
            let from = trained.checked_add(SignedDuration::from_hours(1)).unwrap();
            let to = at(((i + 1) as f64 * every).min(days)).checked_add(SignedDuration::from_hours(1)).unwrap();
            VersionLife {
                version: i + 1,
                trained,
                dataset: format!("w{i}"),
                metrics: Default::default(),
                served: vec![(from, to)],
            }
        })
        .collect();
    let level = |v: u32| 0.90 + 0.004 * (v % 3) as f64;
    let quality = (0..(days * 24.0) as usize)
        .filter_map(|h| {
            let t = at(h as f64 / 24.0);
            let life = lives.iter().find(|l| l.served.iter().any(|(a, b)| *a <= t && t < *b))?;
            let age = t.duration_since(life.trained).as_secs_f64() / 86_400.0;
            Some((t, level(life.version) - rate * age + noise(h)))
        })
        .collect();
    (lives, quality)
}

#[test]
fn an_exact_linear_decay_is_measured_exactly_and_the_optimum_follows_the_formula() {
    let (lives, quality) = history(90.0, 14.0, 0.002, |_| 0.0);
    let advice = advise(lives, &quality, economics());
    let decay = advice.decay.clone().unwrap();
    assert!((decay.rate - 0.002).abs() < 1e-9, "{decay:?}");
    assert!(decay.r_squared > 0.999999, "{decay:?}");
    // Versions at different levels are not read as decay: the fresh level is their mean.
    let mean_level = (1..=7u32).map(|v| 0.90 + 0.004 * (v % 3) as f64).sum::<f64>() / 7.0;
    assert!((decay.fresh - mean_level).abs() < 1e-9, "{decay:?}");
    // sqrt(2 × 30 × 100 × 0.01 / (1000 × 0.002)) = sqrt(30) days.
    match advice.verdict {
        Verdict::Retrain { interval_days, .. } => assert!((interval_days - 30f64.sqrt()).abs() < 1e-9),
        other => panic!("{other:?}"),
    }
    // The table's net value is highest at the recommendation.
    let best = advice.table.iter().max_by(|a, b| a.net_value.total_cmp(&b.net_value)).unwrap();
    assert!((best.interval_days - 5.5).abs() < 1e-9, "{:?}", advice.table);
    assert!(advice.to_text().contains("retrain every 5.5 days"), "{}", advice.to_text());
}

#[test]
fn the_recommendation_balances_trainings_and_lost_quality() {
    // Doubling the training cost moves the optimum out by sqrt(2); doubling the value of a point
    // moves it in by as much.
    let rate = 0.003;
    let base = optimum(rate, &economics());
    let dearer = optimum(rate, &Economics { training_cost: 200.0, ..economics() });
    let valued = optimum(rate, &Economics { value_per_point: 2000.0, ..economics() });
    assert!((dearer / base - 2f64.sqrt()).abs() < 1e-12 && (base / valued - 2f64.sqrt()).abs() < 1e-12);
}

#[test]
fn no_decay_in_noise_recommends_retraining_rarely_or_says_it_cannot_tell() {
    let noise = |h: usize| ((h as f64 * 12.9898).sin() * 43_758.545).fract() * 0.01;
    let (lives, quality) = history(90.0, 14.0, 0.0, noise);
    let advice = advise(lives, &quality, economics());
    assert!(
        matches!(advice.verdict, Verdict::NoMeasurableDecay | Verdict::CannotTell { .. }),
        "{:?} {:?}",
        advice.verdict,
        advice.decay
    );
    assert!(!advice.to_text().contains("Recommendation: retrain every"));
}

#[test]
fn a_short_history_says_so_instead_of_guessing() {
    let (lives, quality) = history(6.0, 3.0, 0.01, |_| 0.0);
    let advice = advise(lives, &quality, economics());
    assert!(
        matches!(&advice.verdict, Verdict::CannotTell { why } if why.contains("at least 10")),
        "{:?}",
        advice.verdict
    );
    assert!(advice.table.is_empty());
    assert!(advice.to_text().contains("No recommendation"));
}

#[test]
fn a_loss_that_grows_with_age_is_decay_for_a_metric_to_minimise() {
    let (lives, quality) = history(60.0, 10.0, -0.001, |_| 0.0);
    let advice = advise(lives, &quality, Economics { goal: Goal::Minimize, ..economics() });
    let decay = advice.decay.unwrap();
    assert!((decay.rate - 0.001).abs() < 1e-9, "{decay:?}");
    assert!(matches!(advice.verdict, Verdict::Retrain { .. }));
}

#[test]
fn lives_come_from_serve_decisions_and_end_at_the_next_version() {
    let version = |n: u32, started: f64, serves: &[f64]| {
        let decisions: Vec<serde_json::Value> = serves
            .iter()
            .map(|d| serde_json::json!({"time": at(*d).to_string(), "action": "Serve", "reason": "Promoted", "message": ""}))
            .collect();
        serde_json::from_value::<ModelVersion>(serde_json::json!({
            "apiVersion": "modelcycle.io/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": format!("m-v{n}")},
            "spec": {"model": "m", "version": n, "trigger": {"reason": "Schedule", "time": at(started).to_string()},
                     "training": {"template": {}, "dataset": {"uri": "u", "version": "1"}, "artifactUri": "a"},
                     "artifactUri": "a", "inputsHash": "h"},
            "status": {"startedAt": at(started).to_string(), "metrics": {"auc": 0.9}, "decisions": decisions}
        }))
        .unwrap()
    };
    // v2 served from day 7, was rolled back to v1 on day 8, v3 serves from day 14.
    let versions = [version(1, 0.0, &[0.1, 8.0]), version(2, 6.9, &[7.0]), version(3, 13.9, &[14.0])];
    let lives = lives(&versions, at(20.0));
    assert_eq!(lives[0].served, vec![(at(0.1), at(7.0)), (at(8.0), at(14.0))]);
    assert_eq!(lives[1].served, vec![(at(7.0), at(8.0))]);
    assert_eq!(lives[2].served, vec![(at(14.0), at(20.0))]);
    assert_eq!(lives[2].trained, at(13.9));
    assert_eq!(lives[2].dataset, "1");
}
