//! `modelcycle run`: wires the HTTP server, leader election and the controllers together.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::kube::decoded::Decoded;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, controller, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::api::ModelVersion;
use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::cli::{LogFormat, RunArgs};

use super::children::ChildStores;
use super::context::{Context, Settings};
use super::http::{self, Health, HttpState, Stage};
use super::index::{ByModel, Indexed, Owned, StoreIndex};
use super::lanes::{FirstList, newly_changed, pickup_concurrency};
use super::metrics::Metrics;
use super::model_controller::{CachedModel, ModelContext};
use super::packed::Packed;
use super::policy_controller::{self, CachedPolicy, PolicyStores};
use super::startup::{Optional, StartupError, engine_crd, wait_for_crds};
use super::watches::{self, cached_by_model, probe_while_unreachable, shared, watch_name};
use super::{MANAGED_BY_SELECTOR, TRAINER_POD_SELECTOR, model_controller};
use crate::lifecycle::backends::{RAYJOB_CRD, TRAINJOB_CRD};
use crate::lifecycle::model::Engine;
use crate::objects::names::{LABEL_VALUE_MAX, label_value};

/// Runs the controller until SIGTERM/SIGINT; the process exit code.
pub fn main(args: RunArgs) -> ExitCode {
    init_tracing(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("modelcycle: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "modelcycle cannot run");
            eprintln!("modelcycle: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// A signal every part of the runtime can wait on; set once by SIGTERM or SIGINT.
fn shutdown_channel() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

/// The Models that follow each registered model a webhook names, as they come.
fn woken_by_webhooks(
    wake: tokio::sync::broadcast::Receiver<String>,
    models: kube::runtime::reflector::Store<CachedModel>,
) -> impl futures::Stream<Item = ObjectRef<CachedModel>> + Send + 'static {
    let names = futures::stream::unfold(wake, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(name) => return Some((name, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    names.flat_map(move |name| {
        // Unpacks every Model: a webhook is rare, and a Model that does not read back is left
        // to its own reconcile to report.
        let follow = |m: &CachedModel| {
            let model = m.0.as_ref().ok().and_then(|p| p.unpack().ok());
            model.is_some_and(|m| crate::lifecycle::source::sourced(&m).is_some_and(|s| s.name == name))
        };
        let refs: Vec<_> = models.state().iter().filter(|m| follow(m)).map(|m| ObjectRef::from(m.as_ref())).collect();
        futures::stream::iter(refs)
    })
}

/// Resolves once shutdown was asked for.
async fn on(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn run(args: RunArgs) -> Result<(), StartupError> {
    let shutdown = shutdown_channel();
    #[cfg(feature = "heap-profile")]
    crate::heap_profile::on_signal();
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let sources = Arc::new(super::reading_clients::SourceReadings::default());
    let (wake, _) = tokio::sync::broadcast::channel(super::context::WAKE_CAPACITY);
    let webhook = args.mlflow_webhook_secret.clone().filter(|s| !s.is_empty()).map(|secret| http::Webhook {
        secret: secret.into(),
        sources: sources.clone(),
        wake: wake.clone(),
    });
    let state = HttpState { health: health.clone(), metrics: metrics.clone(), webhook };
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|e| StartupError::Http { addr: args.http_addr, error: e.to_string() })?;
    tracing::info!(addr = %args.http_addr, "serving /healthz, /readyz and /metrics");
    let server = axum::serve(listener, http::router(state)).with_graceful_shutdown(on(shutdown.clone()));
    let server = tokio::spawn(async move { server.await });

    let config = kube::Config::infer().await.map_err(|e| StartupError::Config(e.to_string()))?;
    let api_url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| StartupError::Config(e.to_string()))?;
    tokio::select! {
        checked = wait_for_crds(&client, &api_url, Optional { gateway_api: args.gateway_api, kserve: args.kserve }) => checked?,
        _ = on(shutdown.clone()) => return Ok(()),
    }
    health.api_ok.store(true, Ordering::Relaxed);
    tracing::info!("CRDs are installed");
    let train_jobs = engine_crd(&client, args.trainjob, TRAINJOB_CRD).await;
    let ray_jobs = engine_crd(&client, args.rayjob, RAYJOB_CRD).await;

    let mut leader = None;
    if args.leader_election {
        let namespace = args.lease_namespace.clone().unwrap_or_else(own_namespace);
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("modelcycle-{}", std::process::id()));
        let (mut rx, task) = start_lease(&client, &args.lease_name, &namespace, &identity).await?;
        health.set_stage(Stage::Standby);
        tracing::info!(lease = %args.lease_name, %namespace, %identity, "waiting to become the leader");
        let mut stop = shutdown.clone();
        loop {
            if *rx.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    return Err(StartupError::Lease("the lease manager stopped".into()));
                },
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
        health.set_stage(Stage::Starting);
        tracing::info!("became the leader");
        leader = Some((rx, task));
    }
    metrics.leader.set(1);

    let lost_leadership = {
        let rx = leader.as_ref().map(|(rx, _)| rx.clone());
        async move {
            match rx {
                Some(mut rx) => {
                    let _ = rx.wait_for(|is_leader| !*is_leader).await;
                }
                None => std::future::pending().await,
            }
        }
    };
    tokio::spawn(probe_while_unreachable(client.clone(), health.clone(), shutdown.clone()));
    let scopes: Vec<Option<String>> = match args.namespaces.as_slice() {
        [] => vec![None],
        namespaces => namespaces.iter().cloned().map(Some).collect(),
    };
    let pending = Arc::new(std::sync::atomic::AtomicUsize::new(scopes.len()));
    let controllers = futures::future::join_all(scopes.into_iter().map(|scope| {
        let ready = Readiness { health: health.clone(), pending: pending.clone() };
        let settings = Settings {
            resync: args.resync_period,
            prometheus_allowed: args.prometheus_allowed_addresses.clone(),
            mlflow_allowed: args.mlflow_allowed_uris.clone(),
            concurrency: args.concurrency,
            gateway_api: args.gateway_api,
            kserve: args.kserve,
            train_jobs,
            ray_jobs,
            sources: sources.clone(),
            wake: wake.clone(),
        };
        run_controllers(client.clone(), scope, metrics.clone(), ready, settings, shutdown.clone())
    }));
    let controllers = async move {
        controllers.await;
    };
    let outcome = tokio::select! {
        () = controllers => Ok(()),
        () = lost_leadership => Err(StartupError::Lease("lost the leader Lease; exiting so a fresh start can compete again".into())),
    };
    metrics.leader.set(0);
    drop(leader);
    let _ = server.await;
    outcome
}

/// Competes for the leader Lease; the channel says whether this replica holds it.
pub async fn start_lease(
    client: &Client,
    lease_name: &str,
    namespace: &str,
    identity: &str,
) -> Result<
    (watch::Receiver<bool>, tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>),
    StartupError,
> {
    let manager = LeaseManagerBuilder::new(client.clone(), lease_name)
        .with_namespace(namespace)
        .with_identity(identity)
        .build()
        .await
        .map_err(|e| StartupError::Lease(e.to_string()))?;
    Ok(manager.watch().await)
}

/// Marks the controller ready once every scope's caches have synced.
#[derive(Clone)]
pub struct Readiness {
    /// The probe state to flip.
    pub health: Arc<Health>,
    /// Scopes whose caches have not synced yet.
    pub pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl Readiness {
    fn synced(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.health.set_stage(Stage::Synced);
            tracing::info!("caches synced; reconciling");
        }
    }
}

/// An Api over every namespace (`None`) or one.
fn scoped<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match scope {
        None => Api::all(client.clone()),
        Some(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// Objects per page of a watch's list: what is decoded at once before the caches trim it.
pub const LIST_PAGE: u32 = 250;

/// Runs the Model and RetrainPolicy controllers over one namespace, or all, until shutdown. One
/// watch per kind: Models and RetrainPolicies feed both controllers through shared stores.
pub async fn run_controllers(
    client: Client,
    scope: Option<String>,
    metrics: Arc<Metrics>,
    ready: Readiness,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) {
    let health = ready.health.clone();
    // Lists come in pages of at most LIST_PAGE objects (the newest state, read in pages), not
    // as one answer from the API server's watch cache (`resourceVersion=0` ignores the page
    // size): at 10,000 Models one answer for the Jobs alone was hundreds of megabytes to hold
    // and decode at once, however little of each Job the caches keep.
    let paged = || watcher::Config::default().page_size(LIST_PAGE);
    let all = paged();
    let owned = paged().labels(MANAGED_BY_SELECTOR);
    let trainer_pods = paged().labels(TRAINER_POD_SELECTOR);
    let owned_engine = owned.clone();
    let named = |kind: &str| (health.clone(), watch_name(kind, &scope));
    let (h, w) = named("ModelVersions");
    let (versions, versions_stream) =
        cached_by_model(scoped::<Decoded<Packed<ModelVersion>>>(&client, &scope), owned.clone(), h, w);
    let (h, w) = named("Jobs");
    let (jobs, jobs_stream) = cached_by_model(scoped::<Packed<Job>>(&client, &scope), owned.clone(), h, w);
    let (h, w) = named("Pods");
    let (pods, pods_stream) = cached_by_model(scoped::<Packed<Pod>>(&client, &scope), trainer_pods, h, w);
    let (h, w) = named("Deployments");
    let (deployments, deployments_stream) =
        cached_by_model(scoped::<Packed<Deployment>>(&client, &scope), owned.clone(), h, w);
    let (h, w) = named("Services");
    let (services, services_stream) = cached_by_model(scoped::<Packed<Service>>(&client, &scope), owned.clone(), h, w);
    // HTTPRoutes only when asked for: without Gateway API's CRDs their watch could never list.
    let (routes, routes_stream) = if settings.gateway_api {
        let (h, w) = named("HTTPRoutes");
        let (routes, stream) = cached_by_model(scoped::<Packed<HttpRoute>>(&client, &scope), owned.clone(), h, w);
        (Some(routes), stream.boxed())
    } else {
        (None, futures::stream::empty().boxed())
    };
    // InferenceServices likewise, only with KServe.
    let (inference_services, inference_services_stream) = if settings.kserve {
        let (h, w) = named("InferenceServices");
        let (isvcs, stream) = cached_by_model(scoped::<Packed<InferenceService>>(&client, &scope), owned, h, w);
        (Some(isvcs), stream.boxed())
    } else {
        (None, futures::stream::empty().boxed())
    };
    // TrainJobs and RayJobs only when enabled and installed.
    let (train_jobs, train_jobs_stream) = engine_watch(settings.train_jobs, || {
        let (h, w) = named("TrainJobs");
        cached_by_model(scoped::<Packed<TrainJob>>(&client, &scope), owned_engine.clone(), h, w)
    });
    let (ray_jobs, ray_jobs_stream) = engine_watch(settings.ray_jobs, || {
        let (h, w) = named("RayJobs");
        cached_by_model(scoped::<Packed<RayJob>>(&client, &scope), owned_engine.clone(), h, w)
    });
    let (h, w) = named("Models");
    let models = shared(watches::watch(scoped::<CachedModel>(&client, &scope), all.clone(), h, w), 3);
    let (h, w) = named("RetrainPolicies");
    let policies_by_model = ByModel::default();
    let policies =
        shared(policies_by_model.follow(watches::watch(scoped::<CachedPolicy>(&client, &scope), all, h, w)), 2);
    let (Some((models, models_feed)), Some((policies, policies_feed))) = (models, policies) else {
        tracing::error!("cannot share the watches of Models and RetrainPolicies; not reconciling");
        return;
    };
    let (models_store, policies_store) = (models.store, policies.store);
    let (Ok([models_main, models_to_policies, models_pickup]), Ok([policies_to_models, policies_to_policies])) =
        (<[_; 3]>::try_from(models.readers), <[_; 2]>::try_from(policies.readers))
    else {
        tracing::error!("cannot share the watches of Models and RetrainPolicies; not reconciling");
        return;
    };

    let policies_indexed = StoreIndex { store: policies_store.clone(), by_model: policies_by_model };
    let children = ChildStores {
        versions,
        jobs,
        pods,
        deployments,
        services,
        routes,
        inference_services,
        train_jobs,
        ray_jobs,
        policies: policies_indexed.clone(),
    };
    let config = || controller::Config::default().concurrency(settings.concurrency);
    let model_controller = Controller::for_shared_stream(models_main, models_store.clone())
        .with_config(config())
        .watches_stream(versions_stream, waking(&models_store))
        .watches_stream(deployments_stream, waking(&models_store))
        .watches_stream(services_stream, waking(&models_store))
        .watches_stream(routes_stream, waking(&models_store))
        .watches_stream(inference_services_stream, waking(&models_store))
        .watches_stream(jobs_stream, waking(&models_store))
        .watches_stream(train_jobs_stream, waking(&models_store))
        .watches_stream(ray_jobs_stream, waking(&models_store))
        .watches_stream(pods_stream, waking(&models_store))
        .watches_shared_stream(policies_to_models, |guard| {
            let ns = guard.namespace();
            guard
                .0
                .as_ref()
                .ok()
                .and_then(|p| p.owner())
                .map(|model| ObjectRef::new(model).within(&ns.unwrap_or_default()))
        })
        .reconcile_on(woken_by_webhooks(settings.wake.subscribe(), models_store.clone()))
        .trigger_backoff(super::watches::backoff())
        .graceful_shutdown_on(on(shutdown.clone()));

    let naming = policies_indexed.clone();
    // The pickup lane (see `lanes`): Models changed after the first list that the controller
    // has not acted on yet, in a queue of their own.
    let first_list = Arc::new(FirstList::default());
    let changed = {
        let first_list = first_list.clone();
        models_pickup.filter(move |model| {
            let changed = || model.0.as_ref().is_ok_and(|p| p.unpack().is_ok_and(|m| newly_changed(&m)));
            futures::future::ready(first_list.after(&**model) && changed())
        })
    };
    let pickup = Controller::for_shared_stream(changed, models_store.clone())
        .with_config(controller::Config::default().concurrency(pickup_concurrency(settings.concurrency)))
        .graceful_shutdown_on(on(shutdown.clone()));

    let policy_controller = Controller::for_shared_stream(policies_to_policies, policies_store.clone())
        .with_config(config())
        .watches_shared_stream(models_to_policies, move |model| {
            let (name, ns) = (model.name_any(), model.namespace().unwrap_or_default());
            naming
                .of(&ns, Some(&name))
                .into_iter()
                .filter(|p| p.0.is_ok())
                .map(|p| ObjectRef::from(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .trigger_backoff(super::watches::backoff())
        .graceful_shutdown_on(on(shutdown.clone()));

    let mut context = Context::new(client.clone(), metrics.clone());
    context.resync = settings.resync;
    // A quiet Model is reconciled once a resync period: its series must outlive that.
    metrics.models.expire_after_resyncs(settings.resync);
    context.prometheus_allowed = settings.prometheus_allowed;
    context.mlflow_allowed = settings.mlflow_allowed;
    context.sources = settings.sources;
    let ctx = Arc::new(ModelContext::new(context, children));
    let policy_ctx = Arc::new((
        Context::new(client, metrics),
        PolicyStores { models: models_store.clone(), policies: policies_indexed.clone() },
    ));
    let (model_store, children_synced) = (models_store.clone(), ctx.children.clone());
    let ready = async move {
        if model_store.wait_until_ready().await.is_ok() {
            first_list.record(model_store.state().iter().map(|m| &**m));
            if children_synced.wait_until_synced().await {
                ready.synced();
            }
        }
    };
    let pickup_loop = pickup
        .run(model_controller::pick_up, model_controller::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let model_loop =
        model_controller.run(model_controller::reconcile, model_controller::error_policy, ctx).for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "model controller");
            }
            futures::future::ready(())
        });
    let policy_loop = policy_controller
        .run(policy_controller::reconcile, policy_controller::error_policy, policy_ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "retrainpolicy controller");
            }
            futures::future::ready(())
        });
    // The shared watches feed both controllers; they end when the controllers stop reading.
    let feeds = async move {
        tokio::select! {
            _ = futures::future::join(models_feed, policies_feed) => {}
            () = on(shutdown) => {}
        }
    };
    futures::join!(ready, model_loop, pickup_loop, policy_loop, feeds);
}

/// An engine's cache and changes when the controller watches it (`watch` starts the watch), or
/// why it does not and no changes.
fn engine_watch<K, S>(
    engine: Engine<()>,
    watch: impl FnOnce() -> (Indexed<K>, S),
) -> (Engine<Indexed<K>>, futures::stream::BoxStream<'static, Result<K, watcher::Error>>)
where
    K: super::index::Keep + Send,
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
{
    match engine {
        Engine::Watched(()) => {
            let (indexed, stream) = watch();
            (Engine::Watched(indexed), stream.boxed())
        }
        Engine::NotEnabled => (Engine::NotEnabled, futures::stream::empty().boxed()),
        Engine::NotInstalled => (Engine::NotInstalled, futures::stream::empty().boxed()),
    }
}

/// The Model an object belongs to, by what it names ([`Owned`]: a version its `spec.model`, the
/// others their Model label). Not by owner references: the caches do not keep them, and a Job's
/// or a pod's owner chain does not lead to the Model directly. A label holds the Model's name
/// unless the name is longer than a label value may be; then it holds the name shortened with a
/// hash ([`label_value`]), and the Model is the one in the namespace whose name shortens to it.
fn model_of<K: Owned>(models: &Store<CachedModel>, object: &K) -> Option<ObjectRef<CachedModel>> {
    let ns = object.meta().namespace.as_deref()?;
    let named = ObjectRef::new(object.owner()?).within(ns);
    if named.name.len() < LABEL_VALUE_MAX || models.get(&named).is_some() {
        return Some(named);
    }
    let shortened_to =
        |m: &Arc<CachedModel>| m.namespace().as_deref() == Some(ns) && label_value(&m.name_any()) == named.name;
    Some(models.state().iter().find(|m| shortened_to(m)).map_or(named, |m| ObjectRef::from_obj(&**m)))
}

/// [`model_of`] as a watch's mapper.
fn waking<K: Owned>(
    models: &Store<CachedModel>,
) -> impl Fn(K) -> Option<ObjectRef<CachedModel>> + Send + Sync + 'static {
    let models = models.clone();
    move |object| model_of(&models, &object)
}

/// The namespace this pod runs in, or `default` outside a cluster.
fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    /// The Model (name, namespace) an event of `object` wakes.
    fn wakes<K: Owned>(models: &Store<CachedModel>, object: K) -> Option<(String, Option<String>)> {
        waking(models)(object).map(|r| (r.name, r.namespace))
    }

    #[test]
    fn an_event_of_an_object_wakes_the_model_it_names_not_the_owner_it_references() {
        let model = testing::model("churn");
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let version = crate::lifecycle::inputs::new_version(&model, 1, vec![], now).unwrap();
        let models = StoreIndex::listed(vec![Decoded::packed(model.clone()).unwrap()]).store;
        let churn = Some(("churn".to_string(), Some("ml".to_string())));

        let mut deployment = crate::objects::deployment::serving_deployment(&model, &version).unwrap();
        // An owner reference naming another Model changes nothing: the label decides.
        deployment.metadata.owner_references =
            Some(vec![OwnerReference { kind: "Model".into(), name: "fraud".into(), ..Default::default() }]);
        assert_eq!(wakes(&models, Packed::pack(deployment).unwrap()), churn);
        let service = crate::objects::service::serving_service(&model, None).unwrap();
        assert_eq!(wakes(&models, Packed::pack(service).unwrap()), churn);
        assert_eq!(wakes(&models, Decoded::packed(version.clone()).unwrap()), churn);

        // A version that does not decode still wakes its Model, which reports it.
        let mut broken = serde_json::to_value(&version).unwrap();
        broken["spec"]["version"] = serde_json::json!("one");
        let broken: Decoded<Packed<ModelVersion>> = serde_json::from_value(broken).unwrap();
        assert!(broken.0.is_err());
        assert_eq!(wakes(&models, broken), churn);
    }

    #[test]
    fn a_model_whose_name_is_longer_than_a_label_is_woken_by_its_shortened_label() {
        let long = format!("churn-{}", "x".repeat(90));
        let model = testing::model(&long);
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let version = crate::lifecycle::inputs::new_version(&model, 1, vec![], now).unwrap();
        let deployment = crate::objects::deployment::serving_deployment(&model, &version).unwrap();
        assert_ne!(deployment.labels().get(crate::objects::meta::MODEL_LABEL), Some(&long), "the label is shortened");
        let mut other = testing::model(&format!("churn-{}", "y".repeat(90)));
        other.metadata.uid = Some("uid-other".into());
        let models = StoreIndex::listed(vec![Decoded::packed(other).unwrap(), Decoded::packed(model).unwrap()]).store;
        let expected = Some((long, Some("ml".to_string())));
        assert_eq!(wakes(&models, Packed::pack(deployment).unwrap()), expected);
        assert_eq!(wakes(&models, Decoded::packed(version).unwrap()), expected, "a version names its Model in full");
    }
}
