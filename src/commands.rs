//! The commands that read a Model's past and say what to do: `backtest` and `advise`. They
//! read files and Prometheus, hand what they read to the core, and print or write what it says.

use std::path::Path;
use std::process::ExitCode;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::advise::{self, Economics};
use crate::api::{Goal, ModelVersion};
use crate::api::{Model, RetrainPolicy};
use crate::backtest::history::History;
use crate::backtest::{self, Assumptions};
use crate::cli::{AdviseArgs, BacktestArgs, GoalArg, Output, PastArgs};
use crate::lifecycle::triggers::check_queries;
use crate::sim::scenario::Manifests;
use crate::sources::history::{HistoryQuery, fetch};
use crate::sources::prometheus::Prometheus;

/// The period a backtest covers when `--from` is not given.
const DEFAULT_PERIOD: SignedDuration = SignedDuration::from_hours(28 * 24);

/// `modelcycle backtest`: exit 0 with the report, 2 when it cannot run.
pub fn backtest(args: &BacktestArgs) -> ExitCode {
    match run_backtest(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelcycle backtest: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_backtest(args: &BacktestArgs) -> Result<(), String> {
    let manifests = Manifests::load(&args.paths)?;
    let (model, policy) = pick(&manifests, args.policy.as_deref())?;
    let history = match &args.past.history {
        Some(path) => read_history(path)?,
        None => {
            let history = read_prometheus(args, &model, &policy)?;
            if let Some(path) = &args.past.record {
                write_yaml(path, &history)?;
            }
            history
        }
    };
    let assume = Assumptions { training_time: args.training_time, metrics: args.metrics.iter().cloned().collect() };
    if assume.training_time <= SignedDuration::ZERO {
        return Err("--training-time must be positive".into());
    }
    let report = backtest::run(&model, &policy, &history, &assume)?;
    let chart = args.past.chart.as_ref().map(|_| backtest::chart::svg(&report)).transpose()?;
    emit(&args.past, &report.to_text(), &report, chart)
}

/// Writes the chart, then prints the text or the JSON.
fn emit(past: &PastArgs, text: &str, value: &impl serde::Serialize, chart: Option<String>) -> Result<(), String> {
    if let (Some(path), Some(svg)) = (&past.chart, chart) {
        std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    match past.output {
        Output::Text => {
            print!("{text}");
            if let Some(path) = &past.chart {
                println!("\nchart: {}", path.display());
            }
        }
        Output::Json => {
            let json = serde_json::to_string_pretty(value).map_err(|e| format!("cannot write JSON: {e}"))?;
            println!("{json}");
        }
    }
    Ok(())
}

/// The RetrainPolicy to replay (the only one, or the one named) and its Model.
fn pick(manifests: &Manifests, policy: Option<&str>) -> Result<(Model, RetrainPolicy), String> {
    let policies: Vec<&RetrainPolicy> =
        manifests.policies.iter().filter(|p| policy.is_none_or(|name| p.name_any() == name)).collect();
    let policy = match (policies.as_slice(), policy) {
        ([one], _) => *one,
        ([], Some(name)) => return Err(format!("no RetrainPolicy named {name:?} in the files")),
        ([], None) => return Err("no RetrainPolicy in the files; a backtest replays one".into()),
        (_, _) => return Err("the files hold several RetrainPolicies; name one with --policy".into()),
    };
    let model =
        manifests.models.iter().find(|m| m.name_any() == policy.spec.model_ref.name).ok_or_else(|| {
            format!("the files hold no Model {:?}, which the policy drives", policy.spec.model_ref.name)
        })?;
    Ok((model.clone(), policy.clone()))
}

fn read_history(path: &Path) -> Result<History, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let history: History = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    history.validated()
}

fn read_prometheus(args: &BacktestArgs, model: &Model, policy: &RetrainPolicy) -> Result<History, String> {
    let address = args
        .past
        .prometheus
        .clone()
        .or_else(|| policy.spec.prometheus.as_ref().map(|p| p.address.clone()))
        .ok_or("no Prometheus: give --prometheus, --history, or spec.prometheus in the policy")?;
    let version = args.serving_version.map(|v| v.to_string());
    let (drift, quality) = check_queries(policy, model, version.as_deref().unwrap_or_default());
    let templates = [policy.spec.drift.as_ref().map(|d| &d.query), policy.spec.performance.as_ref().map(|p| &p.query)];
    if version.is_none()
        && templates.iter().flatten().any(|q| q.contains("{{version}}") || q.contains("{{stableVersion}}"))
    {
        return Err(
            "the policy's queries name {{version}}: give --serving-version, the version that served in the period"
                .into(),
        );
    }
    if drift.is_none() && quality.is_none() {
        return Err("the policy has neither a drift nor a performance trigger: there is no history to read".into());
    }
    let to = args.past.to.unwrap_or_else(Timestamp::now);
    let from = match args.past.from {
        Some(from) => from,
        None => to.checked_sub(DEFAULT_PERIOD).map_err(|e| format!("--to {to}: {e}"))?,
    };
    if from >= to {
        return Err(format!("--from {from} is not before --to {to}"));
    }
    let insecure = policy.spec.prometheus.as_ref().is_some_and(|p| p.insecure_skip_verify);
    let prometheus = connect(&address, args.past.bearer_token_file.as_deref(), insecure)?;
    let step = |q: &Option<crate::lifecycle::triggers::CheckQuery>| q.as_ref().map_or(DEFAULT_PERIOD, |q| q.interval);
    let query = HistoryQuery {
        drift_step: step(&drift),
        quality_step: step(&quality),
        drift: drift.map(|q| q.query),
        quality: quality.map(|q| q.query),
        from,
        to,
    };
    let history = read(&prometheus, &query)?;
    let marked = history.with_gaps_marked(query.drift_step, query.quality_step);
    marked.validated()
}

/// A Prometheus client for a command: a minute per query (a range query over weeks takes time).
fn connect(address: &str, token_file: Option<&Path>, insecure: bool) -> Result<Prometheus, String> {
    let token = match token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    Prometheus::new(address, Some(std::time::Duration::from_secs(60)), insecure, token).map_err(|e| e.to_string())
}

/// Runs the range queries.
fn read(prometheus: &Prometheus, query: &HistoryQuery) -> Result<History, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    runtime.block_on(fetch(prometheus, query)).map_err(|e| e.to_string())
}

fn write_yaml(path: &Path, value: &impl serde::Serialize) -> Result<(), String> {
    let yaml = serde_yaml::to_string(value).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::write(path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `modelcycle advise`: exit 0 with the advice (whatever it concludes), 2 when it cannot run.
pub fn advise(args: &AdviseArgs) -> ExitCode {
    match run_advise(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelcycle advise: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_advise(args: &AdviseArgs) -> Result<(), String> {
    for (flag, value) in
        [("--training-cost", args.training_cost), ("--value-per-point", args.value_per_point), ("--point", args.point)]
    {
        if !(value.is_finite() && value > 0.0) {
            return Err(format!("{flag} must be a positive number"));
        }
    }
    let versions = read_versions(&args.versions)?;
    if versions.is_empty() {
        return Err(format!("{} holds no ModelVersion", args.versions.display()));
    }
    let to = args.past.to.unwrap_or_else(Timestamp::now);
    let lives = advise::lives(&versions, to);
    let history = match &args.past.history {
        Some(path) => read_history(path)?,
        None => {
            let history = read_quality(args, &lives, to)?;
            if let Some(path) = &args.past.record {
                write_yaml(path, &history)?;
            }
            history
        }
    };
    let quality: Vec<(Timestamp, f64)> =
        history.quality.iter().filter_map(|p| Some((p.at, p.value?))).filter(|(t, _)| *t <= to).collect();
    let economics = Economics {
        training_cost: args.training_cost,
        value_per_point: args.value_per_point,
        point: args.point,
        goal: match args.goal {
            GoalArg::Maximize => Goal::Maximize,
            GoalArg::Minimize => Goal::Minimize,
        },
    };
    let advice = advise::advise(lives, &quality, economics);
    let chart = args.past.chart.as_ref().map(|_| advise::chart::svg(&advice)).transpose()?;
    emit(&args.past, &advice.to_text(), &advice, chart)
}

/// ModelVersions from YAML: a `List` (as `kubectl get -o yaml` writes it) or documents.
fn read_versions(path: &Path) -> Result<Vec<ModelVersion>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut versions = vec![];
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let items = match value.get("kind").and_then(|k| k.as_str()) {
            Some("List" | "ModelVersionList") => {
                value.get("items").and_then(|i| i.as_sequence()).cloned().unwrap_or_default()
            }
            Some("ModelVersion") => vec![value],
            _ if value.is_null() => vec![],
            other => return Err(format!("{}: a document of kind {other:?}; expected ModelVersions", path.display())),
        };
        for item in items {
            versions
                .push(serde_yaml::from_value(item).map_err(|e| format!("{}: a ModelVersion: {e}", path.display()))?);
        }
    }
    Ok(versions)
}

fn read_quality(args: &AdviseArgs, lives: &[advise::VersionLife], to: Timestamp) -> Result<History, String> {
    let policy: Option<RetrainPolicy> = match &args.policy {
        Some(path) => Manifests::load(&[path])?.policies.into_iter().next(),
        None => None,
    };
    let query = args
        .quality_query
        .clone()
        .or_else(|| policy.as_ref().and_then(|p| p.spec.performance.as_ref()).map(|p| p.query.clone()))
        .ok_or("no quality query: give --quality-query, or --policy with a performance trigger")?;
    if query.contains("{{") {
        return Err("advise reads the quality of whatever version served: write the query without placeholders".into());
    }
    let address = args
        .past
        .prometheus
        .clone()
        .or_else(|| policy.as_ref().and_then(|p| p.spec.prometheus.as_ref()).map(|p| p.address.clone()))
        .ok_or("no Prometheus: give --prometheus, --history, or --policy with spec.prometheus")?;
    let from = match args.past.from {
        Some(from) => from,
        None => lives.iter().map(|l| l.trained).min().ok_or("no version has a training start time")?,
    };
    if from >= to {
        return Err(format!("the period starts ({from}) after it ends ({to})"));
    }
    if args.step < SignedDuration::from_secs(1) {
        return Err("--step must be at least a second".into());
    }
    let insecure = policy.as_ref().and_then(|p| p.spec.prometheus.as_ref()).is_some_and(|p| p.insecure_skip_verify);
    let prometheus = connect(&address, args.past.bearer_token_file.as_deref(), insecure)?;
    let query =
        HistoryQuery { drift: None, quality: Some(query), from, to, drift_step: args.step, quality_step: args.step };
    read(&prometheus, &query)?.validated()
}
