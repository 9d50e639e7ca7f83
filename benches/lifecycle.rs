//! Benchmarks of the lifecycle core in the simulator: the quickstart, a simulated year of daily
//! retraining for one Model and for a fleet of 1,000, a year of hourly drift checks, and a year of weekly canaries judged
//! on live metrics every minute; and the kube shell's selection of one Model's children from
//! caches that hold those of many Models, and the memory the per-Model `/metrics` series hold.
//! `cargo bench --bench lifecycle` prints the figures;
//! under `cargo test` it runs each once as a smoke test.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

/// The binary's allocator (jemalloc), counting the bytes it hands out (to report what a step
/// allocates).
struct Counting;

static INNER: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
/// Bytes handed out and not yet given back.
static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which is passed on unchanged.
        unsafe { INNER.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { INNER.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new size handed out and the old given back, as `alloc` and `dealloc`
        // would count it; the allocator may grow in place, as the binary's does.
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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

/// `models` copies of the daily retraining year, each Model in a namespace of its own with its
/// own dataset changes: a fleet's year, in one simulated cluster.
fn fleet_year_of_daily_retraining(models: u32) -> Scenario {
    let one = year_of_daily_retraining();
    let mut fleet = Scenario { models: vec![], file: one.file.clone(), ..one.clone() };
    fleet.file.changes.clear();
    for i in 0..models {
        let name = format!("churn-{i:04}");
        let mut model = one.models[0].clone();
        model.metadata.name = Some(name.clone());
        model.metadata.namespace = Some(format!("team-{i:04}"));
        fleet.models.push(model);
        fleet.file.changes.extend(one.file.changes.iter().map(|c| {
            let mut c = c.clone();
            c.model = Some(name.clone());
            c
        }));
    }
    fleet.file.changes.sort_by_key(|c| c.at);
    fleet
}

/// One Model under a drift policy checked hourly for a year; the live distribution shifts
/// every 30 days, and each retrain learns the shift.
fn year_of_hourly_drift_checks() -> Scenario {
    let model =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/model.yaml")).unwrap();
    let policy = "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {name: churn, namespace: ml}\nspec:\n  modelRef: {name: churn}\n  drift: {query: q, method: PSI, threshold: 0.2, window: 6h, interval: 1h}\n  prometheus: {address: 'http://p:9090'}\n  cooldown: 24h\n";
    let hist = |shift: f64| {
        let counts: Vec<String> = (0..100)
            .map(|i| format!("{:.0}", 1000.0 * (-((i as f64 - 50.0 - shift) / 15.0).powi(2)).exp() + 1.0))
            .collect();
        let bounds: Vec<String> = (1..=100).map(|i| format!("{:.2}", i as f64 / 100.0)).collect();
        format!("{{bounds: [{}], counts: [{}]}}", bounds.join(", "), counts.join(", "))
    };
    let mut scenario = String::from(
        "duration: 365d\ndefaults: {trainingTime: 40m, metrics: {auc: 0.9}, referenceFromLive: true}\nlive:\n  drift:\n",
    );
    for month in 0..12 {
        scenario += &format!("    - {{at: {}d, histogram: {}}}\n", month * 30, hist(f64::from(month) * 10.0));
    }
    Scenario::parse(&[
        ("model.yaml".into(), model),
        ("policy.yaml".into(), policy.into()),
        ("scenario.yaml".into(), scenario),
    ])
    .unwrap()
}

/// `weeks` of weekly retraining, each version rolled out by a three-step canary judged on two
/// live metrics every minute, then guarded for six hours: about 550 measurements per version.
fn weeks_of_analysed_canaries(weeks: u32) -> Scenario {
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/model.yaml"))
        .unwrap()
        .replace("    port: 8080\n", concat!("    port: 8080\n", "    strategy:\n      canary:\n        steps: [{weight: 10, pause: 1h}, {weight: 30, pause: 1h}, {weight: 60, pause: 1h}]\n    analysis:\n      prometheus: {address: 'http://p:9090'}\n      interval: 1m\n      guard: 6h\n      metrics:\n        - {name: errors, query: 'errors{version=\"{{version}}\"}', max: 0.05}\n        - {name: latency, query: 'latency{version=\"{{version}}\"}', goal: Minimize, maxRegression: 0.2}\n"));
    let mut scenario =
        format!("duration: {}d\ndefaults: {{trainingTime: 40m, rolloutTime: 3m}}\nversions:\n", weeks * 7 + 1);
    for n in 1..=weeks + 1 {
        scenario += &format!("  {n}: {{metrics: {{auc: {}}}}}\n", 0.85 + f64::from(n) * 0.0001);
    }
    scenario += "changes:\n";
    for week in 1..=weeks {
        scenario += &format!("  - {{at: {}d, set: {{spec.training.dataset.version: \"week-{week}\"}}}}\n", week * 7);
    }
    scenario += "live:\n  analysis:\n    - {at: 0s, metric: errors, value: 0.01}\n    - {at: 0s, metric: latency, value: 0.2}\n";
    Scenario::parse(&[("model.yaml".into(), model), ("scenario.yaml".into(), scenario)]).unwrap()
}

/// One PSI, KS and Jensen-Shannon evaluation over 100 buckets.
fn drift_check(runs: u32) {
    use modelcycle::stats::{Histogram, jensen_shannon, ks, psi};
    let bounds: Vec<f64> = (1..=100).map(|i| f64::from(i) / 100.0).collect();
    let reference = Histogram { bounds: bounds.clone(), counts: (0..100).map(|i| f64::from(i % 17 + 1)).collect() };
    let live = Histogram { bounds, counts: (0..100).map(|i| f64::from(i % 13 + 1)).collect() };
    let iterations = if runs > 1 { 100_000 } else { 10 };
    for (name, f) in [("psi", psi as fn(&Histogram, &Histogram) -> _), ("ks", ks), ("jensen-shannon", jensen_shannon)] {
        let start = Instant::now();
        let mut sum = 0.0;
        for _ in 0..iterations {
            sum += f(std::hint::black_box(&reference), std::hint::black_box(&live)).unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e9 / f64::from(iterations);
        println!("{:<26} {per:>9.0} ns per check over 100 buckets (checksum {sum:.3})", format!("drift check, {name}"));
    }
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

/// The kube shell's caches holding the children of `models` Models (each a copy of the
/// quickstart's after it converged, in a namespace of its own), and one of those Models.
fn caches_of(models: usize) -> (modelcycle::kube::children::ChildStores, modelcycle::api::Model) {
    use modelcycle::kube::decoded::Decoded;
    use modelcycle::kube::index::{Indexed, Keep, Owned, StoreIndex};
    use modelcycle::kube::packed::Packed;
    use modelcycle::kube::trim::Trim;
    // Trimmed (and the children packed) as the controller's watches cache them.
    fn trimmed<K: Trim>(mut object: K) -> K {
        object.trim();
        object
    }
    fn store<K: Keep + Trim>(objects: impl Iterator<Item = K>) -> Indexed<K> {
        Indexed::listed(objects.map(trimmed).collect())
    }
    fn packed<K>(object: K) -> Packed<K>
    where
        K: Owned + Trim + serde::Serialize + serde::de::DeserializeOwned,
    {
        Packed::pack(object).expect("a simulated object packs")
    }
    fn copies<K: kube::Resource + Clone>(of: &[std::sync::Arc<K>], models: usize) -> impl Iterator<Item = K> {
        (0..models).flat_map(move |i| {
            of.iter().map(move |o| {
                let mut o = (**o).clone();
                o.meta_mut().namespace = Some(format!("team-{i}"));
                o
            })
        })
    }
    let mut sim = Simulation::new(quickstart());
    sim.run();
    let model = (**sim.cluster.models.values().next().expect("the quickstart has a Model")).clone();
    let c = sim.cluster.children_of(&model);
    // What each kind's cache holds, in bytes per Model.
    let mut held = vec![];
    let mut measured = |kind: &'static str, before: i64| {
        held.push((kind, (LIVE.load(Ordering::Relaxed) - before) / models as i64));
        LIVE.load(Ordering::Relaxed)
    };
    let mut before = LIVE.load(Ordering::Relaxed);
    let versions = store(copies(&c.versions, models).map(packed).map(Decoded::from));
    before = measured("versions", before);
    let jobs = store(copies(&c.jobs, models).map(packed));
    before = measured("Jobs", before);
    let pods = store(copies(&c.pods, models).map(packed));
    before = measured("pods", before);
    let deployments = store(copies(&c.deployments, models).map(packed));
    before = measured("Deployments", before);
    let services = store(copies(&c.services, models).map(packed));
    measured("Services", before);
    let stores = modelcycle::kube::children::ChildStores {
        versions,
        jobs,
        pods,
        deployments,
        services,
        routes: None,
        inference_services: None,
        train_jobs: modelcycle::lifecycle::model::Engine::NotEnabled,
        ray_jobs: modelcycle::lifecycle::model::Engine::NotEnabled,
        policies: StoreIndex::listed(copies(&c.policies, models).map(packed).map(Decoded::from).collect()),
    };
    let counts = [c.versions.len(), c.jobs.len(), c.pods.len(), c.deployments.len(), c.services.len()];
    let kinds: Vec<String> = held.iter().zip(counts).map(|((kind, bytes), n)| format!("{n} {kind} {bytes}")).collect();
    println!("{:<26} bytes per Model: {}", format!("caches of {models} Models"), kinds.join(", "));
    // The Model cache, as it was (decoded) and as the controller keeps it (packed).
    let the_model = [std::sync::Arc::new(model.clone())];
    let start = LIVE.load(Ordering::Relaxed);
    let decoded: Vec<Decoded<modelcycle::api::Model>> =
        copies(&the_model, models).map(trimmed).map(Decoded::from).collect();
    let decoded_bytes = (LIVE.load(Ordering::Relaxed) - start) / models as i64;
    drop(decoded);
    let start = LIVE.load(Ordering::Relaxed);
    let cached: Vec<modelcycle::kube::model_controller::CachedModel> =
        copies(&the_model, models).map(|m| Decoded::packed(m).expect("a simulated Model packs")).collect();
    let packed_bytes = (LIVE.load(Ordering::Relaxed) - start) / models as i64;
    drop(cached);
    println!(
        "{:<26} bytes per Model: decoded {decoded_bytes}, packed {packed_bytes}",
        format!("Model cache of {models}")
    );
    let mut one = model;
    one.metadata.namespace = Some(format!("team-{}", models / 2));
    (stores, one)
}

/// What selecting one Model's children from the caches costs, with the caches holding those of
/// `models` Models: time per selection and bytes allocated by it.
fn select_children(models: usize, runs: u32) {
    let before = LIVE.load(Ordering::Relaxed);
    let (stores, model) = caches_of(models);
    // What the caches hold for the Models' children (and the one Model kept), as the
    // controller's reflectors would hold it.
    let held = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{:<26} {:>9.1} KiB held, {:>6} bytes per Model",
        format!("caches of {models} Models"),
        held as f64 / 1024.0,
        held / models as i64
    );
    let iterations = if runs > 1 { 2_000_000 / models as u32 } else { 2 };
    let before = ALLOCATED.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut held = 0;
    for _ in 0..iterations {
        let children = stores.observe(std::hint::black_box(&model)).expect("the caches unpack");
        held += children.versions.len() + children.jobs.len() + children.deployments.len();
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    let bytes = (ALLOCATED.load(Ordering::Relaxed) - before) / u64::from(iterations);
    assert!(held > 0, "the Model's children were found");
    println!(
        "{:<26} {per:>9.1} µs and {bytes:>8} bytes allocated per reconcile's selection",
        format!("children of 1 in {models}")
    );
    // Before that, a reconcile unpacks its Model from the Model cache.
    let cached = modelcycle::kube::decoded::Decoded::packed(model).expect("the Model packs");
    let packed = cached.0.as_ref().expect("the Model decodes");
    let before = ALLOCATED.load(Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(packed.unpacked().expect("the Model unpacks"));
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    let bytes = (ALLOCATED.load(Ordering::Relaxed) - before) / u64::from(iterations);
    println!("{:<26} {per:>9.1} µs and {bytes:>8} bytes allocated per reconcile", "its Model unpacked");
}

/// The memory the per-Model series of `/metrics` hold for `models` Models, each in the state of
/// the shadow example's canary mid-rollout (serving version, training, gates, two analysis
/// measurements, canary weight) with its retrains and rollback counted.
fn model_series(models: usize) {
    let mut sim = Simulation::new(
        Scenario::load(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shadow")]).expect("the shadow example loads"),
    );
    sim.run_until("2026-11-03T02:00:00Z".parse().expect("a time"));
    let exported = sim.exported["ml/recommender"].clone();
    let counted = modelcycle::lifecycle::monitor::Counted {
        retrains: exported.retrains.iter().map(|(k, _)| k.to_string()).collect(),
        rollbacks: vec!["AnalysisFailed".into()],
    };
    let before = LIVE.load(Ordering::Relaxed);
    let series = modelcycle::kube::model_metrics::ModelSeries::new(Duration::from_secs(3600));
    for i in 0..models {
        series.record("ml", &format!("model-{i:05}"), exported.gauges.clone(), counted.clone());
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{:<26} {:>9.1} KiB held, {:>6} bytes per Model",
        format!("metrics of {models} Models"),
        held as f64 / 1024.0,
        held / models as i64
    );
    drop(series);
}

/// A benchmark: its name, its scenario (given the weeks to simulate where that applies), its runs.
type Bench = (String, fn(u32) -> Scenario, u32);

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench lifecycle -- daily` runs only the benchmarks whose name contains "daily".
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let runs = if benchmarking { 10 } else { 1 };
    // Under `cargo test` a month is enough to smoke-test the analysed canaries.
    let weeks = if benchmarking { 52 } else { 4 };
    let scenarios: [Bench; 3] = [
        ("quickstart (8 days)".into(), |_| quickstart(), runs),
        ("daily retraining, 1 year".into(), |_| year_of_daily_retraining(), runs),
        ("hourly drift checks, 1 year".into(), |_| year_of_hourly_drift_checks(), runs.min(3)),
    ];
    for (name, scenario, n) in scenarios {
        if wanted(&name) {
            measure(&name, &scenario(weeks), n);
        }
    }
    // The cost of a reconcile should not grow with the history: the same canaries over a month,
    // half a year and a year.
    let histories: &[u32] = if benchmarking { &[4, 26, weeks] } else { &[weeks] };
    for &weeks in histories {
        let name = format!("analysed canaries, {weeks} weeks");
        if wanted(&name) {
            measure(&name, &weeks_of_analysed_canaries(weeks), runs.min(3));
        }
    }
    // A fleet's year in one simulated cluster: 1,000 Models (2 under `cargo test`).
    let fleet = if benchmarking { 1_000 } else { 2 };
    let name = format!("fleet of {fleet}, daily, 1 year");
    if wanted(&name) {
        measure(&name, &fleet_year_of_daily_retraining(fleet), 1);
    }
    if wanted("drift check") {
        drift_check(runs);
    }
    for models in [100, 1_000, 10_000] {
        if wanted("children") && (benchmarking || models == 100) {
            select_children(models, runs);
        }
    }
    for models in [1_000, 10_000] {
        if wanted("metrics") && (benchmarking || models == 1_000) {
            model_series(models);
        }
    }
}
