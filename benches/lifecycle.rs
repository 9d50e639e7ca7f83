//! Benchmarks of the lifecycle core in the simulator: the quickstart, and a simulated year of
//! daily retraining for one Model. `cargo bench --bench lifecycle` prints the figures;
//! under `cargo test` it runs each once as a smoke test.

use std::time::{Duration, Instant};

use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

fn quickstart() -> Scenario {
    Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")]).expect("quickstart loads")
}

/// One Model whose dataset version changes every day for a year; every version is a little
/// better, so each one trains, passes its gates, rolls out and retires the one before.
fn year_of_daily_retraining() -> Scenario {
    let model =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/model.yaml")).unwrap();
    let mut scenario =
        String::from("name: daily-year\nduration: 365d\ndefaults: {trainingTime: 40m, rolloutTime: 3m}\nversions:\n");
    for n in 1..=366 {
        scenario += &format!("  {n}: {{metrics: {{auc: {}}}}}\n", 0.85 + f64::from(n) * 0.0001);
    }
    scenario += "changes:\n";
    for day in 1..=365 {
        scenario += &format!("  - {{at: {day}d, set: {{spec.training.dataset.version: \"day-{day}\"}}}}\n");
    }
    Scenario::parse(&[("model.yaml".into(), model), ("scenario.yaml".into(), scenario)]).unwrap()
}

fn measure(name: &str, scenario: &Scenario, runs: u32) {
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let mut sim = Simulation::new(scenario.clone());
        sim.run();
        let took = start.elapsed();
        best = best.min(took);
        total += took;
        assert!(sim.cluster.violations.is_empty(), "{name}: {:?}", sim.cluster.violations);
        last = Some(sim);
    }
    let sim = last.expect("at least one run");
    let reconciles = sim.acting_reconciles;
    println!(
        "{name:<26} best {:>9.3} ms  mean {:>9.3} ms  over {runs} runs; {} versions, {reconciles} acting reconciles, {} writes, {:.1} µs per reconcile",
        best.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / f64::from(runs),
        sim.cluster.models.values().next().and_then(|m| m.status.as_ref()?.latest_version).unwrap_or(0),
        sim.cluster.writes,
        best.as_secs_f64() * 1e6 / reconciles.max(1) as f64,
    );
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let runs = if benchmarking { 10 } else { 1 };
    measure("quickstart (8 days)", &quickstart(), runs);
    measure("daily retraining, 1 year", &year_of_daily_retraining(), runs);
}
