//! Command-line arguments of `modelcycle` and the small subcommands that need no cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::crd;

/// modelcycle keeps machine-learning models good in production: it retrains, evaluates,
/// versions, rolls out and rolls back models on Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "modelcycle", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller against the cluster of the current kubeconfig or the in-cluster config.
    Run(RunArgs),
    /// Print every CRD as one YAML stream, or write one file per CRD into a directory.
    Crd(CrdArgs),
    /// Simulate Models in an in-memory cluster with a virtual clock; no cluster needed.
    Simulate(SimulateArgs),
    /// Replay a RetrainPolicy (and its Model's gates) over a past period of live readings: when it
    /// would have fired and why, what hygiene held back, what it would have cost; with a chart.
    Backtest(BacktestArgs),
    /// Measure how fast a Model's live quality falls with its age and recommend a retraining
    /// interval from the cost of a training and the value of quality; with a chart.
    Advise(AdviseArgs),
    /// Print the version.
    Version,
}

/// Output format of `modelcycle simulate`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A readable timeline and summary.
    Text,
    /// One JSON document.
    Json,
}

/// Arguments of `modelcycle simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// A directory, or files, holding Model (and RetrainPolicy) manifests and one scenario document.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Where a command's past comes from and where its results go: shared by `backtest` and `advise`.
#[derive(Args, Debug)]
pub struct PastArgs {
    /// Read the readings from this Prometheus (default: the policy's `spec.prometheus.address`).
    #[arg(long, conflicts_with = "history")]
    pub prometheus: Option<String>,
    /// A bearer token for Prometheus, read from this file.
    #[arg(long)]
    pub bearer_token_file: Option<PathBuf>,
    /// Use readings recorded by an earlier `--record` instead of asking Prometheus.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Write the readings read from Prometheus to this file (YAML), to run again with `--history`.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Start of the period (RFC 3339, e.g. 2026-10-01T00:00:00Z). Default: for a backtest `--to`
    /// minus 28 days, for advice when the oldest version started training.
    #[arg(long)]
    pub from: Option<jiff::Timestamp>,
    /// End of the period (RFC 3339); default: now.
    #[arg(long)]
    pub to: Option<jiff::Timestamp>,
    /// Write the chart (SVG) to this file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `modelcycle backtest`.
#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// A directory, or files, holding the Model and its RetrainPolicy (the manifests as applied).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The RetrainPolicy to replay, when the files hold several.
    #[arg(long)]
    pub policy: Option<String>,
    /// The version that served during the period, for queries with a `{{version}}` placeholder.
    #[arg(long)]
    pub serving_version: Option<u32>,
    /// How long each training takes in the replay.
    #[arg(long, default_value = "30m")]
    pub training_time: jiff::SignedDuration,
    /// A metric every training reports to the gates, `name=value`; repeat for more. Without any,
    /// the gates are not judged.
    #[arg(long = "metric", value_parser = parse_metric)]
    pub metrics: Vec<(String, f64)>,
    /// The period, where it comes from, and the outputs.
    #[command(flatten)]
    pub past: PastArgs,
}

/// Arguments of `modelcycle advise`.
#[derive(Args, Debug)]
pub struct AdviseArgs {
    /// The Model's ModelVersions as YAML, e.g. `kubectl get modelversions -l modelcycle.io/model=NAME -o yaml > versions.yaml`.
    #[arg(long)]
    pub versions: PathBuf,
    /// PromQL returning the live quality of whatever version serves (one series), e.g. accuracy
    /// against delayed labels. Default: the performance query of the RetrainPolicy in `--policy`.
    #[arg(long)]
    pub quality_query: Option<String>,
    /// A file holding the Model's RetrainPolicy, for its performance query and its Prometheus.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Time between two quality readings.
    #[arg(long, default_value = "1h")]
    pub step: jiff::SignedDuration,
    /// What one training costs (compute, people, review), in any currency.
    #[arg(long)]
    pub training_cost: f64,
    /// What one point of the quality metric is worth a month, in the same currency.
    #[arg(long)]
    pub value_per_point: f64,
    /// How much of the metric one point is: 0.01 for a percentage point of accuracy.
    #[arg(long, default_value_t = 0.01)]
    pub point: f64,
    /// Whether higher quality is better (maximize) or lower (minimize, for a loss).
    #[arg(long, value_enum, default_value_t = GoalArg::Maximize)]
    pub goal: GoalArg,
    /// The period, where it comes from, and the outputs.
    #[command(flatten)]
    pub past: PastArgs,
}

/// Which way quality is better.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoalArg {
    /// Higher is better.
    Maximize,
    /// Lower is better.
    Minimize,
}

/// `name=value` with a finite number.
pub fn parse_metric(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not name=value"))?;
    let value: f64 = value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?;
    if name.trim().is_empty() || !value.is_finite() {
        return Err(format!("{text:?} needs a name and a finite number"));
    }
    Ok((name.trim().to_string(), value))
}

/// Arguments of `modelcycle crd`.
#[derive(Args, Debug)]
pub struct CrdArgs {
    /// Write `<group>_<plural>.yaml` files into this directory instead of printing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Log line format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `modelcycle run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the HTTP server for /healthz, /readyz and /metrics.
    #[arg(long, env = "MODELCYCLE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Elect a leader through a Lease so that only one replica reconciles.
    #[arg(long, env = "MODELCYCLE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "MODELCYCLE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "MODELCYCLE_LEASE_NAME", default_value = "modelcycle-leader")]
    pub lease_name: String,
    /// Watch only these namespaces (comma-separated); empty watches every namespace.
    #[arg(long, env = "MODELCYCLE_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "MODELCYCLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Reconcile every Model at least this often, even when nothing changed (between 1s and 24h).
    #[arg(long, env = "MODELCYCLE_RESYNC_PERIOD", default_value = "10m", value_parser = parse_resync_period)]
    pub resync_period: std::time::Duration,
    /// Models reconciled at the same time (1 to 1024); more brings a fleet to serving sooner, at
    /// the cost of more concurrent requests to the API server. A Model created or changed after
    /// the start has a lane of its own besides (a quarter of this, at least one).
    #[arg(long, env = "MODELCYCLE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// URL prefixes of the Prometheus servers that Models and RetrainPolicies may name
    /// (comma-separated); empty allows any. An address outside them stalls the object.
    #[arg(long, env = "MODELCYCLE_PROMETHEUS_ALLOWED_ADDRESSES", value_delimiter = ',')]
    pub prometheus_allowed_addresses: Vec<String>,
    /// URL prefixes of the MLflow tracking servers Models may publish their versions to
    /// (comma-separated); empty allows any. A Model naming another one is not published
    /// (`RegistrySynced=False`, saying why); its rollouts go on.
    #[arg(long, env = "MODELCYCLE_MLFLOW_ALLOWED_URIS", value_delimiter = ',')]
    pub mlflow_allowed_uris: Vec<String>,
    /// The secret MLflow signs its registry webhooks with; set, `POST /webhooks/mlflow` on the
    /// HTTP port takes them, and a Model that follows the registered model reads it at once
    /// instead of at its next poll. Give it through the environment (the chart reads it from a
    /// Secret), not on the command line.
    #[arg(long, env = "MODELCYCLE_MLFLOW_WEBHOOK_SECRET", hide_env_values = true)]
    pub mlflow_webhook_secret: Option<String>,
    /// Manage Gateway API `HTTPRoute`s for Models that set `spec.serving.trafficRouting.gatewayAPI`
    /// (needs Gateway API's CRDs and access to HTTPRoutes). Without it such a Model is Stalled.
    #[arg(long, env = "MODELCYCLE_GATEWAY_API", default_value_t = false, action = clap::ArgAction::Set)]
    pub gateway_api: bool,
    /// Manage KServe `InferenceService`s for Models with `spec.serving.target: KServe` (needs
    /// KServe's CRDs and access to InferenceServices). Without it such a Model is Stalled.
    #[arg(long, env = "MODELCYCLE_KSERVE", default_value_t = false, action = clap::ArgAction::Set)]
    pub kserve: bool,
    /// Train Models with `spec.training.backend: TrainJob` as Kubeflow Trainer `TrainJob`s (needs
    /// access to TrainJobs). Without it such a Model is Stalled; with it and without Kubeflow
    /// Trainer's CRD, such a Model is Stalled naming the CRD.
    #[arg(long, env = "MODELCYCLE_TRAINJOB", default_value_t = false, action = clap::ArgAction::Set)]
    pub trainjob: bool,
    /// Train Models with `spec.training.backend: RayJob` as KubeRay `RayJob`s (needs access to
    /// RayJobs). Without it such a Model is Stalled; with it and without KubeRay's CRD, such a
    /// Model is Stalled naming the CRD.
    #[arg(long, env = "MODELCYCLE_RAYJOB", default_value_t = false, action = clap::ArgAction::Set)]
    pub rayjob: bool,
}

/// A resync period: a duration such as `10m` or `30s`, at least a second (a shorter one would
/// spin) and at most a day.
pub fn parse_resync_period(text: &str) -> Result<std::time::Duration, String> {
    let parsed: jiff::SignedDuration =
        text.parse().map_err(|e| format!("{text:?} is not a duration such as 10m or 30s: {e}"))?;
    let period = std::time::Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative"))?;
    if period < std::time::Duration::from_secs(1) || period > std::time::Duration::from_secs(86_400) {
        return Err(format!("{text:?} is outside 1s..24h"));
    }
    Ok(period)
}

/// `modelcycle crd`: print or write the CRDs.
pub fn crd(args: &CrdArgs) -> ExitCode {
    let result = match &args.dir {
        None => crd::stream().map(|yaml| print!("{yaml}")).map_err(|e| e.to_string()),
        Some(dir) => write_crds(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelcycle crd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_crds(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for c in crd::all() {
        let path = dir.join(crd::file_name(&c));
        let yaml = crd::to_yaml(&c).map_err(|e| e.to_string())?;
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `modelcycle simulate`: run a scenario and print its report; non-zero if an invariant broke or
/// the run missed the scenario's `expect:` block.
pub fn simulate(args: &SimulateArgs) -> ExitCode {
    let scenario = match crate::sim::scenario::Scenario::load(&args.paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modelcycle simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sim = crate::sim::Simulation::new(scenario);
    sim.run();
    let report = crate::sim::report::Report::of(&sim);
    match args.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("modelcycle simulate: cannot write the report as JSON: {e}");
                return ExitCode::from(2);
            }
        },
    }
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

#[cfg(test)]
mod tests {
    use super::parse_resync_period;
    use super::{Cli, Command};
    use clap::Parser;

    #[test]
    fn concurrency_defaults_to_16_and_is_bounded() {
        let concurrency = |extra: &[&str]| {
            let args = ["modelcycle", "run"].iter().chain(extra).copied();
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Run(run) => run.concurrency,
                _ => 0,
            })
        };
        assert_eq!(concurrency(&[]).unwrap(), 16);
        assert_eq!(concurrency(&["--concurrency=64"]).unwrap(), 64);
        for refused in ["--concurrency=0", "--concurrency=1025", "--concurrency=many"] {
            let error = concurrency(&[refused]).unwrap_err().to_string();
            assert!(error.contains("--concurrency"), "{error}");
        }
    }
    use std::time::Duration;

    #[test]
    fn resync_period_is_a_bounded_duration() {
        assert_eq!(parse_resync_period("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_resync_period("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_resync_period("0s").unwrap_err().contains("outside 1s..24h"));
        assert!(parse_resync_period("500ms").unwrap_err().contains("outside"));
        assert!(parse_resync_period("48h").unwrap_err().contains("outside"));
        assert!(parse_resync_period("-5m").is_err());
        assert!(parse_resync_period("often").unwrap_err().contains("not a duration"));
    }
}
