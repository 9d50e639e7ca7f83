//! `kubectl modelcycle`: the kubectl plugin for operating Models day to day. It reads the
//! objects from the API server and renders them ([`view`]), and acts only through what the
//! controller already reads ([`act`]): the promote, abort and retrain annotations, and
//! `spec.pinnedVersion`.

pub mod act;
pub mod view;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::api::{Model, ModelVersion};
use crate::objects::meta::MODEL_LABEL;
use crate::objects::names::label_value;
use view::Style;

/// The field manager of every write the plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-modelcycle";

/// Operate modelcycle Models: see versions, rollouts and analysis as a tree, compare versions,
/// promote, abort, retrain and pin.
#[derive(Parser, Debug)]
#[command(name = "kubectl modelcycle", bin_name = "kubectl modelcycle", version, about)]
pub struct PluginCli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Output format of the reading commands.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// `get models` lists Models; `get model NAME` shows one as a tree with its versions.
    Get(GetArgs),
    /// Every training and decision of a Model's versions, oldest first: what served when, and why.
    History(NameArgs),
    /// Two versions' lineage, training, metrics and verdicts side by side.
    Diff(DiffArgs),
    /// Approve the manual gates of the version on its way (annotation modelcycle.io/promote).
    Promote(VersionArgs),
    /// Roll back the version on its way, or the serving one (annotation modelcycle.io/abort).
    Abort(VersionArgs),
    /// Train a new version once (annotation modelcycle.io/retrain-request).
    Retrain(RetrainArgs),
    /// Serve one version and no other (edits spec.pinnedVersion, which GitOps owns).
    Pin(PinArgs),
    /// Remove the pin (edits spec.pinnedVersion, which GitOps owns).
    Unpin(UnpinArgs),
}

/// What `get` shows.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every Model of the namespace.
    #[value(alias = "mdl")]
    Models,
    /// One Model and its versions.
    Model,
}

/// Arguments of `get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// `models` or `model`.
    pub kind: Kind,
    /// The Model (with `model`).
    pub name: Option<String>,
    /// Every namespace (with `models`).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Keep watching and show each change (with `model`).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print the objects instead of a table or tree.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// A Model, and an output format.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The Model.
    pub name: String,
    /// Print JSON or YAML instead of a table.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// Arguments of `diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The Model.
    pub name: String,
    /// The first version (a number, `v3` works too).
    #[arg(value_parser = parse_version)]
    pub a: u32,
    /// The second version.
    #[arg(value_parser = parse_version)]
    pub b: u32,
    /// Print JSON or YAML instead of a table.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// A Model and optionally one of its versions.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// The Model.
    pub name: String,
    /// The version (default: the one on its way; for abort, else the serving one).
    #[arg(value_parser = parse_version)]
    pub version: Option<u32>,
}

/// Arguments of `retrain`.
#[derive(Args, Debug)]
pub struct RetrainArgs {
    /// The Model.
    pub name: String,
    /// Why: recorded in the new version's trigger evidence.
    #[arg(long)]
    pub reason: Option<String>,
}

/// Arguments of `pin`.
#[derive(Args, Debug)]
pub struct PinArgs {
    /// The Model.
    pub name: String,
    /// The version to serve.
    #[arg(value_parser = parse_version)]
    pub version: u32,
    /// Edit the spec even when a GitOps tool manages the Model.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `unpin`.
#[derive(Args, Debug)]
pub struct UnpinArgs {
    /// The Model.
    pub name: String,
    /// Edit the spec even when a GitOps tool manages the Model.
    #[arg(long)]
    pub force: bool,
}

fn parse_version(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    digits.parse::<u32>().map_err(|_| format!("{text:?} is not a version number (e.g. 3 or v3)"))
}

/// Why a command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be read or has no such context.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The API server refused or could not be reached.
    #[error("{0}")]
    Api(String),
    /// The request cannot be done as asked (nothing to promote, no such version, ...).
    #[error("{0}")]
    Refused(String),
    /// The output could not be written.
    #[error("output: {0}")]
    Output(String),
}

fn api_error(what: &str, e: kube::Error) -> PluginError {
    match e {
        kube::Error::Api(status) if status.code == 404 => PluginError::Refused(format!("{what}: not found")),
        other => PluginError::Api(format!("{what}: {other}")),
    }
}

/// The client and namespace the global flags and the kubeconfig name.
async fn connect(cli: &PluginCli) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions { context: cli.context.clone(), ..Default::default() };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| PluginError::Config(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| PluginError::Config(e.to_string()))?;
    let namespace = cli.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| PluginError::Config(e.to_string()))?;
    Ok((client, namespace))
}

/// The Model `name` and its versions.
async fn read_model(client: &Client, ns: &str, name: &str) -> Result<(Model, Vec<ModelVersion>), PluginError> {
    let model = Api::<Model>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| api_error(&format!("model {ns}/{name}"), e))?;
    let versions = read_versions(client, ns, name).await?;
    Ok((model, versions))
}

async fn read_versions(client: &Client, ns: &str, name: &str) -> Result<Vec<ModelVersion>, PluginError> {
    let selector = format!("{MODEL_LABEL}={}", label_value(name));
    let list = Api::<ModelVersion>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(&format!("modelversions of {ns}/{name}"), e))?;
    Ok(list.items.into_iter().filter(|v| v.spec.model == name).collect())
}

fn style() -> Style {
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style { colour: std::io::stdout().is_terminal() && !no_colour }
}

fn print(text: &str) -> Result<(), PluginError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|_| out.flush()).map_err(|e| PluginError::Output(e.to_string()))
}

fn print_as<T: Serialize>(value: &T, format: Format) -> Result<(), PluginError> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value).map(|t| t + "\n").map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml::to_string(value).map_err(|e| e.to_string()),
    }
    .map_err(PluginError::Output)?;
    print(&text)
}

/// A Model and its versions, as `get model -o json|yaml` prints them.
#[derive(Serialize)]
struct ModelWithVersions<'a> {
    model: &'a Model,
    versions: Vec<&'a ModelVersion>,
}

fn with_versions<'a>(model: &'a Model, versions: &'a [ModelVersion]) -> ModelWithVersions<'a> {
    let mut sorted: Vec<&ModelVersion> = versions.iter().collect();
    sorted.sort_by_key(|v| v.spec.version);
    ModelWithVersions { model, versions: sorted }
}

/// Runs the plugin; the exit code kubectl users expect (0, or 1 with the reason on stderr).
pub fn main() -> ExitCode {
    let cli = PluginCli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &PluginCli) -> Result<(), PluginError> {
    // Refuse a malformed `get` before reaching for the cluster.
    if let PluginCommand::Get(args) = &cli.command {
        match (args.kind, &args.name) {
            (Kind::Model, None) => return Err(PluginError::Refused("get model needs a NAME".into())),
            (Kind::Models, Some(_)) => {
                return Err(PluginError::Refused("get models takes no NAME: use get model NAME".into()));
            }
            _ => {}
        }
    }
    let (client, ns) = connect(cli).await?;
    let now = jiff::Timestamp::now();
    match &cli.command {
        PluginCommand::Get(args) => match (args.kind, args.name.as_deref()) {
            (Kind::Models, _) => {
                let api: Api<Model> = if args.all_namespaces { Api::all(client) } else { Api::namespaced(client, &ns) };
                let models = api.list(&ListParams::default()).await.map_err(|e| api_error("models", e))?.items;
                match args.output {
                    Some(format) => {
                        print_as(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": models}), format)
                    }
                    None if models.is_empty() && !args.all_namespaces => {
                        eprintln!("No Models found in {ns} namespace.");
                        Ok(())
                    }
                    None => print(&view::models_table(&view::model_rows(&models, now), args.all_namespaces)),
                }
            }
            (Kind::Model, name) => {
                let name = name.unwrap_or_default();
                if args.watch {
                    return watch(&client, &ns, name, args.output).await;
                }
                let (model, versions) = read_model(&client, &ns, name).await?;
                match args.output {
                    Some(format) => print_as(&with_versions(&model, &versions), format),
                    None => print(&view::tree(&model, &versions, now, style())),
                }
            }
        },
        PluginCommand::History(args) => {
            let (_, versions) = read_model(&client, &ns, &args.name).await?;
            let entries = view::history(&versions);
            match args.output {
                Some(format) => print_as(&entries, format),
                None => print(&view::history_table(&entries, style())),
            }
        }
        PluginCommand::Diff(args) => {
            let (_, versions) = read_model(&client, &ns, &args.name).await?;
            let find = |n: u32| {
                versions.iter().find(|v| v.spec.version == n).ok_or_else(|| {
                    let known: Vec<String> = versions.iter().map(|v| format!("v{}", v.spec.version)).collect();
                    PluginError::Refused(format!("{} has no v{n} (it has {})", args.name, known.join(", ")))
                })
            };
            let rows = view::diff(find(args.a)?, find(args.b)?);
            match args.output {
                Some(format) => print_as(&rows, format),
                None => print(&view::diff_table(&rows, args.a, args.b, style())),
            }
        }
        PluginCommand::Promote(args) => {
            let (model, versions) = read_model(&client, &ns, &args.name).await?;
            let edit = act::promote(&model, &versions, args.version).map_err(PluginError::Refused)?;
            write(&client, &ns, &model, edit).await
        }
        PluginCommand::Abort(args) => {
            let (model, versions) = read_model(&client, &ns, &args.name).await?;
            let edit = act::abort(&model, &versions, args.version).map_err(PluginError::Refused)?;
            write(&client, &ns, &model, edit).await
        }
        PluginCommand::Retrain(args) => {
            let (model, _) = read_model(&client, &ns, &args.name).await?;
            let edit = act::retrain(&model, args.reason.as_deref(), now).map_err(PluginError::Refused)?;
            write(&client, &ns, &model, edit).await
        }
        PluginCommand::Pin(args) => {
            let (model, versions) = read_model(&client, &ns, &args.name).await?;
            let edit = act::pin(&model, &versions, args.version).map_err(PluginError::Refused)?;
            edit_spec(&client, &ns, &model, edit, args.force).await
        }
        PluginCommand::Unpin(args) => {
            let (model, _) = read_model(&client, &ns, &args.name).await?;
            let edit = act::unpin(&model).map_err(PluginError::Refused)?;
            edit_spec(&client, &ns, &model, edit, args.force).await
        }
    }
}

/// Edits the spec after the warning; refuses without `--force` when a GitOps tool manages it.
async fn edit_spec(client: &Client, ns: &str, model: &Model, edit: act::Edit, force: bool) -> Result<(), PluginError> {
    eprintln!("{}", act::spec_warning(model));
    if let Some(owner) = act::gitops_owner(model).filter(|_| !force) {
        return Err(PluginError::Refused(format!(
            "not edited: {} is managed by {owner}; change it in its repository, or pass --force",
            model.name_any()
        )));
    }
    write(client, ns, model, edit).await
}

async fn write(client: &Client, ns: &str, model: &Model, edit: act::Edit) -> Result<(), PluginError> {
    let name = model.name_any();
    Api::<Model>::namespaced(client.clone(), ns)
        .patch(
            &name,
            &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
            &Patch::Merge(&edit.patch),
        )
        .await
        .map_err(|e| api_error(&format!("model {ns}/{name}"), e))?;
    print(&format!("{}\n", edit.done))
}

/// `get model NAME --watch`: the tree again after every change of the Model or its versions
/// (on a terminal the screen is redrawn, and ages move every second; otherwise each changed
/// tree is printed after a blank line). Runs until interrupted, or the Model is deleted, or the
/// API server cannot be reached several times in a row.
async fn watch(client: &Client, ns: &str, name: &str, output: Option<Format>) -> Result<(), PluginError> {
    let (mut model, mut versions) = read_model(client, ns, name).await?;
    let models = watcher(
        Api::<Model>::namespaced(client.clone(), ns),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff();
    let selector = format!("{MODEL_LABEL}={}", label_value(name));
    let version_events =
        watcher(Api::<ModelVersion>::namespaced(client.clone(), ns), watcher::Config::default().labels(&selector))
            .default_backoff();
    enum Changed {
        Model(Box<watcher::Event<Model>>),
        Version(Box<watcher::Event<ModelVersion>>),
        Tick,
    }
    let ticks = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some((Changed::Tick, ()))
    });
    let mut events = std::pin::pin!(futures::stream::select(
        futures::stream::select(
            models.map(|e| e.map(|e| Changed::Model(Box::new(e)))),
            version_events.map(|e| e.map(|e| Changed::Version(Box::new(e)))),
        ),
        ticks.map(Ok),
    ));
    let terminal = std::io::stdout().is_terminal();
    let style = style();
    let mut shown = String::new();
    let mut pending: Vec<ModelVersion> = vec![];
    let mut failures = 0u32;
    loop {
        let text = match output {
            Some(Format::Json) => serde_json::to_string(&with_versions(&model, &versions)).unwrap_or_default() + "\n",
            Some(Format::Yaml) => {
                format!("---\n{}", serde_yaml::to_string(&with_versions(&model, &versions)).unwrap_or_default())
            }
            None => view::tree(&model, &versions, jiff::Timestamp::now(), style),
        };
        if text != shown {
            if terminal && output.is_none() {
                print(&format!("\x1b[H\x1b[2J{text}"))?;
            } else if output.is_none() && !shown.is_empty() {
                print(&format!("\n{text}"))?;
            } else {
                print(&text)?;
            }
            shown = text;
        }
        let Some(event) = events.next().await else { return Ok(()) };
        if matches!(event, Ok(Changed::Model(_) | Changed::Version(_))) {
            failures = 0;
        }
        match event {
            Ok(Changed::Tick) => {}
            Ok(Changed::Model(event)) => match *event {
                watcher::Event::Apply(m) | watcher::Event::InitApply(m) => model = m,
                watcher::Event::Delete(_) => {
                    return Err(PluginError::Refused(format!("model {ns}/{name} was deleted")));
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            },
            Ok(Changed::Version(event)) => match *event {
                watcher::Event::Apply(v) if v.spec.model == name => {
                    versions.retain(|o| o.spec.version != v.spec.version);
                    versions.push(v);
                }
                watcher::Event::Delete(v) => versions.retain(|o| o.uid() != v.uid()),
                // A relist replaces the whole set once it is done.
                watcher::Event::Init => pending.clear(),
                watcher::Event::InitApply(v) if v.spec.model == name => pending.push(v),
                watcher::Event::InitDone => versions = std::mem::take(&mut pending),
                _ => {}
            },
            Err(e) => {
                failures += 1;
                eprintln!("watch: {e}");
                if failures > 5 {
                    return Err(PluginError::Api(format!("watching {ns}/{name}: {e}")));
                }
            }
        }
    }
}
