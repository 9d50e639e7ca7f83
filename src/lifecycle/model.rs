//! The decision for one Model: validate, train, judge, serve, prune, and report — from the
//! Model, its observed versions and children, and `now`.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::api::{
    Model, ModelPhase, ModelStatus, ModelVersion, ModelVersionStatus, RetrainPolicy, RetrainPolicyStatus, VersionPhase,
};
use crate::objects::desired::{DesiredObjects, Remembered};
use crate::objects::inference_service::kserve_serving;
use crate::objects::meta::MODEL_LABEL;
use crate::objects::names::{job_name, label_value};
use crate::objects::route::gateway_routing;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

pub use super::backends::Engine;
use super::backends::Runs;
use super::conditions::{self, Desired};
use super::history::{runs_to_delete, versions_to_prune};
use super::inputs::{InputsHash, new_version_hashed};
use super::ledger::Decision;
use super::ledger::Ledger;
pub use super::plan::{Child, Kind, Regarding, StatusWrite, Write};
use super::plan::{EventKind, EventRecord, health_conditions, sooner, stalled_events, waiting_events};
use super::policy::{PolicyWorld, driving_policy, policy_problems};
use super::serving::{ServingSteps, advance_serving};
use super::training::{advance_training, inputs_cause};
use super::transitions::{Action, Reason};
use super::triggers::{Readings, TriggerDecision, TriggerInputs, decide};
use super::validate::{Problem, model_problems};

/// Everything the core reads about one Model. The shells fill it from their caches.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The Model.
    pub model: &'a Model,
    /// Its ModelVersions.
    pub versions: &'a [Arc<ModelVersion>],
    /// Its training Jobs.
    pub jobs: &'a [Arc<Job>],
    /// The pods of its training Jobs (for termination messages).
    pub pods: &'a [Arc<Pod>],
    /// Its TrainJobs, or why the shell does not watch them.
    pub train_jobs: Engine<&'a [Arc<TrainJob>]>,
    /// Its RayJobs, or why the shell does not watch them.
    pub ray_jobs: Engine<&'a [Arc<RayJob>]>,
    /// Its Deployments.
    pub deployments: &'a [Arc<Deployment>],
    /// Its Services.
    pub services: &'a [Arc<Service>],
    /// Its `HTTPRoute`s; `None` when the shell does not watch them (Gateway API not enabled).
    pub routes: Option<&'a [Arc<HttpRoute>]>,
    /// Its InferenceServices; `None` when the shell does not watch them (KServe not enabled).
    pub inference_services: Option<&'a [Arc<InferenceService>]>,
    /// The RetrainPolicies that name it.
    pub policies: &'a [Arc<RetrainPolicy>],
    /// RetrainPolicies that may name the Model but cannot be read: retraining fails closed.
    pub unreadable_policies: &'a [String],
    /// Live readings for the policy's checks that were due.
    pub readings: &'a Readings,
    /// Where the desired serving objects come from: built, or remembered by the shell.
    pub desired: DesiredObjects<'a>,
}

impl<'a> Observed<'a> {
    /// What the training backends read.
    pub fn runs(&self) -> Runs<'a> {
        Runs { jobs: self.jobs, pods: self.pods, train_jobs: self.train_jobs, ray_jobs: self.ray_jobs }
    }
}

/// The live readings a reconcile needs before it can plan.
#[derive(Debug, Default)]
pub struct Due<'a> {
    /// The policy that drives the Model and its checks due now.
    pub checks: Option<(&'a RetrainPolicy, super::triggers::DueChecks)>,
    /// The rollout analysis queries due now.
    pub analysis: Vec<super::analysis::AnalysisQuery>,
    /// What to publish to the Model's registry now.
    pub registry: Option<super::registry::Intent>,
}

/// One Model's children, as a shell selects them from its caches with [`Children::select`]
/// (the simulator's shared with its cluster; the kube shell's unpacked for this reconcile).
#[derive(Clone, Debug, Default)]
pub struct Children {
    /// ModelVersions of the Model.
    pub versions: Vec<Arc<ModelVersion>>,
    /// Its training Jobs.
    pub jobs: Vec<Arc<Job>>,
    /// Its training pods.
    pub pods: Vec<Arc<Pod>>,
    /// Its TrainJobs, or why the shell does not watch them.
    pub train_jobs: Engine<Vec<Arc<TrainJob>>>,
    /// Its RayJobs, or why the shell does not watch them.
    pub ray_jobs: Engine<Vec<Arc<RayJob>>>,
    /// Its Deployments.
    pub deployments: Vec<Arc<Deployment>>,
    /// Its Services.
    pub services: Vec<Arc<Service>>,
    /// Its `HTTPRoute`s; `None` when the shell does not watch them (Gateway API not enabled).
    pub routes: Option<Vec<Arc<HttpRoute>>>,
    /// Its InferenceServices; `None` when the shell does not watch them (KServe not enabled).
    pub inference_services: Option<Vec<Arc<InferenceService>>>,
    /// The RetrainPolicies that name it.
    pub policies: Vec<Arc<RetrainPolicy>>,
    /// RetrainPolicies in the namespace that name this Model (or whose Model cannot be read)
    /// and do not decode.
    pub unreadable_policies: Vec<String>,
    /// Live readings taken for this reconcile.
    pub readings: Readings,
    /// The serving objects the shell remembers between reconciles, if it keeps them.
    pub remembered: Option<Arc<Remembered>>,
}

/// The objects of each kind a shell holds, from which [`Children::select`] picks a Model's.
pub struct Cached<V, J, P, D, S, R, T, I, TJ, RJ> {
    /// ModelVersions.
    pub versions: V,
    /// Jobs.
    pub jobs: J,
    /// Pods.
    pub pods: P,
    /// TrainJobs, if the shell watches them.
    pub train_jobs: Engine<TJ>,
    /// RayJobs, if the shell watches them.
    pub ray_jobs: Engine<RJ>,
    /// Deployments.
    pub deployments: D,
    /// Services.
    pub services: S,
    /// `HTTPRoute`s, if the shell watches them.
    pub routes: Option<T>,
    /// InferenceServices, if the shell watches them.
    pub inference_services: Option<I>,
    /// RetrainPolicies.
    pub policies: R,
}

impl Children {
    /// What of `cached` belongs to `model`, the one selection both shells make: versions and
    /// policies by the Model they name, children by the Model's label, all in its namespace.
    pub fn select<V, J, P, D, S, R, T, I, TJ, RJ>(model: &Model, cached: Cached<V, J, P, D, S, R, T, I, TJ, RJ>) -> Self
    where
        V: IntoIterator<Item = Arc<ModelVersion>>,
        J: IntoIterator<Item = Arc<Job>>,
        P: IntoIterator<Item = Arc<Pod>>,
        D: IntoIterator<Item = Arc<Deployment>>,
        S: IntoIterator<Item = Arc<Service>>,
        R: IntoIterator<Item = Arc<RetrainPolicy>>,
        T: IntoIterator<Item = Arc<HttpRoute>>,
        I: IntoIterator<Item = Arc<InferenceService>>,
        TJ: IntoIterator<Item = Arc<TrainJob>>,
        RJ: IntoIterator<Item = Arc<RayJob>>,
    {
        let (ns, name) = (model.metadata.namespace.as_deref(), model.name_any());
        let label = label_value(&name);
        let in_ns = |meta: &ObjectMeta| meta.namespace.as_deref() == ns;
        let labelled =
            |meta: &ObjectMeta| in_ns(meta) && meta.labels.as_ref().and_then(|l| l.get(MODEL_LABEL)) == Some(&label);
        Children {
            versions: cached.versions.into_iter().filter(|v| in_ns(&v.metadata) && v.spec.model == name).collect(),
            jobs: cached.jobs.into_iter().filter(|o| labelled(&o.metadata)).collect(),
            pods: cached.pods.into_iter().filter(|o| labelled(&o.metadata)).collect(),
            train_jobs: cached.train_jobs.map(|t| t.into_iter().filter(|o| labelled(&o.metadata)).collect()),
            ray_jobs: cached.ray_jobs.map(|r| r.into_iter().filter(|o| labelled(&o.metadata)).collect()),
            deployments: cached.deployments.into_iter().filter(|o| labelled(&o.metadata)).collect(),
            services: cached.services.into_iter().filter(|o| labelled(&o.metadata)).collect(),
            routes: cached.routes.map(|r| r.into_iter().filter(|o| labelled(&o.metadata)).collect()),
            inference_services: cached
                .inference_services
                .map(|r| r.into_iter().filter(|o| labelled(&o.metadata)).collect()),
            policies: cached
                .policies
                .into_iter()
                .filter(|p| in_ns(&p.metadata) && p.spec.model_ref.name == name)
                .collect(),
            unreadable_policies: vec![],
            readings: Readings::default(),
            remembered: None,
        }
    }

    /// The live readings due now, which the shell takes and puts in `readings` before asking
    /// for a plan: the checks of the policy that drives the Model, and the rollout analysis
    /// queries. One look at the versions serves both (and none is taken without either).
    pub fn due(&self, model: &Model, now: Timestamp) -> Due<'_> {
        let policy = driving_policy(&self.policies);
        let registry = super::registry::due(model, &self.versions, now);
        if policy.is_none() && model.spec.serving.analysis.is_none() {
            return Due { registry, ..Due::default() };
        }
        let ledger = Ledger::new(&self.versions, now);
        Due {
            checks: policy.map(|p| (p, super::triggers::due_checks(p, model, &ledger, now))),
            analysis: super::analysis::due_queries(model, &ledger, now),
            registry,
        }
    }

    /// The view the core decides from.
    pub fn observed<'a>(&'a self, model: &'a Model) -> Observed<'a> {
        Observed {
            model,
            versions: &self.versions,
            jobs: &self.jobs,
            pods: &self.pods,
            train_jobs: self.train_jobs.as_ref().map(Vec::as_slice),
            ray_jobs: self.ray_jobs.as_ref().map(Vec::as_slice),
            deployments: &self.deployments,
            services: &self.services,
            routes: self.routes.as_deref(),
            inference_services: self.inference_services.as_deref(),
            policies: &self.policies,
            unreadable_policies: &self.unreadable_policies,
            readings: &self.readings,
            desired: DesiredObjects(self.remembered.as_deref()),
        }
    }
}

/// The writes to make when the API server refuses a child of the plan for good (an invalid
/// field of a pod template it rejects, a name it does not allow, a forbidden write): the Model
/// stalls with the server's own words, and a Warning Event says so once. The rest of the plan is
/// not applied (its status assumed the child exists); the next plan that applies all its
/// children clears the stall.
pub fn child_refused(model: &Model, child: &Child, why: &str, now: Timestamp) -> Vec<Write> {
    let none = ModelStatus::default();
    let old = model.status.as_ref().unwrap_or(&none);
    let mut status = old.clone();
    status.phase = Some(ModelPhase::Stalled);
    let problem =
        Problem { reason: "ChildRefused", message: format!("the API server refused the {}: {why}", child.describe()) };
    let desired = health_conditions(&[problem], (false, "", ""), None);
    conditions::set_all(&mut status.conditions, &desired, model.metadata.generation, now);
    let events = stalled_events(&old.conditions, &status.conditions);
    let status = (status != *old).then(|| Write::ModelStatus(Box::new(status)));
    status.into_iter().chain(events.into_iter().map(|e| Write::Event(Regarding::Model, e))).collect()
}

/// Everything one reconcile of a Model decided: its writes in the crash-safe order, and when to
/// look again.
#[derive(Clone, Debug, Default)]
pub struct ModelPlan {
    /// The writes, in the order to make them (`Decided::into_plan` says why it is crash-safe).
    pub steps: Vec<Write>,
    /// Wake up after this long even if nothing changes; never sooner than [`SOONEST_WAKE`].
    pub requeue_after: Option<Duration>,
}

/// What one reconcile decided, by kind of write, before it is put in order.
#[derive(Default)]
struct Decided {
    create_versions: Vec<ModelVersion>,
    version_statuses: Vec<StatusWrite<ModelVersionStatus>>,
    apply: Vec<Child>,
    delete_runs: Vec<(Kind, String)>,
    delete_routes: Vec<String>,
    delete_inference_services: Vec<String>,
    delete_deployments: Vec<String>,
    delete_services: Vec<String>,
    delete_versions: Vec<String>,
    policy_statuses: Vec<StatusWrite<RetrainPolicyStatus>>,
    policy_events: Vec<(String, EventRecord)>,
    status: Option<ModelStatus>,
    events: Vec<EventRecord>,
    requeue_after: Option<Duration>,
}

impl Decided {
    /// The one place that says in which order a plan is written, so that a controller that
    /// stops after any write converges on its next reconcile:
    /// 1. new ModelVersions, so that what is done next for a version has a record to hang on;
    /// 2. their statuses — a new serving version before the one it retires, a restored version
    ///    before the one rolled back (see [`Ledger::changed_statuses`]), so nothing is ever left
    ///    without a serving version;
    /// 3. children (Jobs, Deployments, Services), whose names derive from the versions;
    /// 4. deletions (Jobs, Deployments, Services, then pruned ModelVersions), once what replaces
    ///    them is applied;
    /// 5. RetrainPolicy statuses, then the Model's status, which summarises all of the above —
    ///    its `latestVersion` is written after the version exists, so a number is never reused;
    /// 6. Events last: they report what was written.
    fn into_plan(self) -> ModelPlan {
        let mut steps = vec![];
        steps.extend(self.create_versions.into_iter().map(|v| Write::CreateVersion(Box::new(v))));
        steps.extend(self.version_statuses.into_iter().map(|w| Write::VersionStatus(Box::new(w))));
        steps.extend(self.apply.into_iter().map(Write::Apply));
        steps.extend(self.delete_runs.into_iter().map(|(kind, name)| Write::Delete(kind, name)));
        let deletes = [
            (Kind::HttpRoute, self.delete_routes),
            (Kind::InferenceService, self.delete_inference_services),
            (Kind::Deployment, self.delete_deployments),
            (Kind::Service, self.delete_services),
            (Kind::ModelVersion, self.delete_versions),
        ];
        for (kind, names) in deletes {
            steps.extend(names.into_iter().map(|n| Write::Delete(kind, n)));
        }
        steps.extend(self.policy_statuses.into_iter().map(|w| Write::PolicyStatus(Box::new(w))));
        steps.extend(self.status.map(|s| Write::ModelStatus(Box::new(s))));
        steps.extend(self.events.into_iter().map(|e| Write::Event(Regarding::Model, e)));
        steps.extend(self.policy_events.into_iter().map(|(n, e)| Write::Event(Regarding::Policy(n), e)));
        ModelPlan { steps, requeue_after: self.requeue_after }
    }
}

/// The soonest a plan asks to be woken. Something due at this very instant (a measurement of a
/// step that started in this reconcile) is read on the next reconcile, which this wake or the
/// plan's own writes bring; a zero wake would be a reconcile loop without pause on a cluster.
pub const SOONEST_WAKE: Duration = Duration::from_secs(1);

impl ModelPlan {
    /// How many writes applying this plan takes, Events excluded.
    pub fn writes(&self) -> usize {
        self.steps.iter().filter(|w| w.changes_state()).count()
    }

    /// ModelVersions the plan creates.
    pub fn created_versions(&self) -> Vec<&ModelVersion> {
        self.steps.iter().filter_map(|w| if let Write::CreateVersion(v) = w { Some(&**v) } else { None }).collect()
    }

    /// ModelVersion statuses the plan writes, by name.
    pub fn version_statuses(&self) -> Vec<(&str, &ModelVersionStatus)> {
        self.steps
            .iter()
            .filter_map(|w| if let Write::VersionStatus(w) = w { Some((w.name.as_str(), &w.status)) } else { None })
            .collect()
    }

    /// Children the plan applies.
    pub fn children(&self) -> Vec<&Child> {
        self.steps.iter().filter_map(|w| if let Write::Apply(c) = w { Some(c) } else { None }).collect()
    }

    /// RetrainPolicy statuses the plan writes, by name.
    pub fn policy_statuses(&self) -> Vec<(&str, &RetrainPolicyStatus)> {
        self.steps
            .iter()
            .filter_map(|w| if let Write::PolicyStatus(w) = w { Some((w.name.as_str(), &w.status)) } else { None })
            .collect()
    }

    /// The Model status the plan writes, if it changed.
    pub fn status(&self) -> Option<&ModelStatus> {
        self.steps.iter().find_map(|w| if let Write::ModelStatus(s) = w { Some(&**s) } else { None })
    }

    /// Events on the Model.
    pub fn events(&self) -> Vec<&EventRecord> {
        self.steps
            .iter()
            .filter_map(|w| if let Write::Event(Regarding::Model, e) = w { Some(e) } else { None })
            .collect()
    }

    /// Events on RetrainPolicies, by name.
    pub fn policy_events(&self) -> Vec<(&str, &EventRecord)> {
        self.steps
            .iter()
            .filter_map(|w| if let Write::Event(Regarding::Policy(n), e) = w { Some((n.as_str(), e)) } else { None })
            .collect()
    }
}

/// Decides everything about one Model.
pub fn plan_model(observed: Observed, now: Timestamp) -> ModelPlan {
    let model = observed.model;
    let none = ModelStatus::default();
    let old = model.status.as_ref().unwrap_or(&none);
    let mut status = old.clone();
    status.observed_generation = model.metadata.generation;
    let mut problems = model_problems(model);
    if gateway_routing(model).is_some() && observed.routes.is_none() {
        problems.push(Problem::new(
            "GatewayAPINotEnabled",
            "spec.serving.trafficRouting.gatewayAPI asks for an HTTPRoute, but this controller does not manage HTTPRoutes; start it with --gateway-api (chart: gatewayAPI.enabled=true, which also grants it access to HTTPRoutes), or remove trafficRouting".to_string(),
        ));
    }
    if kserve_serving(model).is_some() && observed.inference_services.is_none() {
        problems.push(Problem::new(
            "KServeNotEnabled",
            "spec.serving.target KServe asks for an InferenceService, but this controller does not manage InferenceServices; start it with --kserve (chart: kserve.enabled=true, which also grants it access to InferenceServices), or serve with target Deployment".to_string(),
        ));
    }
    let runs = observed.runs();
    if let Some(training) = &model.spec.training {
        problems.extend(super::backends::backend(training.backend).unavailable(&runs));
    }
    if !problems.is_empty() {
        // Nothing that trains or serves is touched until the spec is fixed.
        status.phase = Some(ModelPhase::Stalled);
        let desired = health_conditions(&problems, (false, "", ""), None);
        return finish(model, old, status, &desired, Decided::default(), now);
    }

    let mut ledger = Ledger::new(observed.versions, now);
    let training = advance_training(&mut ledger, model, &runs);
    let mut serving = advance_serving(&mut ledger, observed);

    let observed_latest = ledger.latest().map_or(0, |e| e.number());
    let latest = old.latest_version.unwrap_or(0).max(observed_latest);
    let mut plan = Decided { requeue_after: training.requeue_after, ..Decided::default() };
    let source = super::source::sourced(model);
    let offered = observed.readings.source.as_ref().and_then(|r| r.as_ref().ok());
    let (policy, mut policy_statuses) = policies_of(model, observed.policies, now);
    let inputs_hash = InputsHash::default();
    let decision = match (source, offered) {
        // A Model whose versions come from a registry takes the one it offers, nothing else.
        (Some(source), Some(offered)) => TriggerDecision {
            causes: super::source::cause(&ledger, source, offered).into_iter().collect(),
            ..TriggerDecision::default()
        },
        (Some(_), None) => TriggerDecision::default(),
        (None, _) => decide(
            policy,
            &TriggerInputs {
                model,
                ledger: &ledger,
                inputs_cause: inputs_cause(&ledger, model, latest, &inputs_hash),
                // Fail closed: a policy that names the Model but cannot be read or acted on holds
                // retraining, rather than leaving the Model to retrain as if it had none.
                unreadable_policy: observed.unreadable_policies.first().cloned().or_else(|| {
                    policy.is_none().then(|| policy_statuses.first().map(|(name, ..)| name.clone())).flatten()
                }),
                readings: observed.readings,
                now,
            },
        ),
    };
    let policy_wake = decision.wake_at.map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default());
    plan.requeue_after = sooner(plan.requeue_after, policy_wake);
    plan.events.extend(decision.events.iter().cloned());
    if let Some(value) = &decision.model_request {
        status.last_retrain_request = Some(value.clone());
    }
    if let Some(policy) = policy {
        policy_statuses.extend(judged_policy(policy, &decision, now, &mut plan.policy_events));
    }
    if let Some(replaced) = decision.replace {
        let by = latest + 1;
        let d = Decision {
            action: Action::Replace,
            reason: Reason::Replaced,
            message: format!("training stopped: v{by} replaces it (concurrencyPolicy Replace)"),
            evidence: None,
        };
        // Deleting the run stops it: the kind its own backend made.
        let run = ledger
            .get(replaced)
            .map(|e| (super::backends::of_version(e.version).kind(), super::backends::run_name(e.version)));
        let (kind, name) = run.unwrap_or_else(|| (Kind::Job, job_name(&model.name_any(), replaced)));
        ledger.transition(replaced, d);
        plan.delete_runs.push((kind, name));
    }
    let version = match (decision.causes.is_empty(), source.zip(offered)) {
        (true, _) => None,
        (false, Some((source, offered))) => {
            Some(super::source::new_version(model, latest + 1, source, offered, decision.causes.clone(), now))
        }
        (false, None) => new_version_hashed(model, latest + 1, decision.causes.clone(), now, &inputs_hash),
    };
    if let Some(version) = version {
        plan.events.push(EventRecord {
            kind: EventKind::Normal,
            reason: "VersionCreated".into(),
            action: "Create".into(),
            note: format!(
                "v{} created: {} ({})",
                version.spec.version, version.spec.trigger.reason, version.spec.trigger.causes[0].evidence
            ),
            version: Some(version.spec.version),
        });
        status.latest_version = Some(version.spec.version);
        plan.create_versions.push(version);
    } else {
        status.latest_version = (latest > 0).then_some(latest);
    }
    plan.delete_versions = versions_to_prune(&ledger, model.spec.version_history_limit, serving.wanted);
    plan.delete_runs.extend(runs_to_delete(&ledger, &runs, model.spec.run_history_limit, &plan.delete_versions));
    plan.apply.extend(training.runs);
    plan.apply.extend(serving.rollout.apply.drain(..).map(|d| Child::Deployment(Box::new(d))));
    plan.delete_deployments = serving.rollout.delete.clone();
    plan.requeue_after = sooner(plan.requeue_after, serving.rollout.requeue_after);
    plan.requeue_after = plan.requeue_after.map(|d| d.max(SOONEST_WAKE));
    plan.apply.extend(serving.services.drain(..).map(|s| Child::Service(Box::new(s))));
    plan.delete_services = serving.delete_services.clone();
    plan.apply.extend(serving.route.take().map(|r| Child::Route(Box::new(r))));
    plan.apply.extend(serving.rollout.inference_service.take().map(|i| Child::InferenceService(Box::new(i))));
    plan.delete_routes.extend(serving.delete_route.clone());
    plan.delete_inference_services.extend(serving.delete_inference_service.clone());
    plan.events.splice(0..0, ledger.events.drain(..));
    for (name, old_status, new_status) in policy_statuses {
        plan.policy_events.extend(
            stalled_events(&old_status.conditions, &new_status.conditions).into_iter().map(|e| (name.clone(), e)),
        );
        if old_status != new_status {
            let read_at = observed.policies.iter().find(|p| p.name_any() == name).and_then(|p| p.resource_version());
            plan.policy_statuses.push(StatusWrite { name, read_at, status: new_status });
        }
    }

    let trains = ledger.entries.iter().find(|e| matches!(e.phase(), VersionPhase::Pending | VersionPhase::Training));
    let trains = trains.filter(|e| Some(e.number()) != decision.replace);
    let trains = trains.map(|e| e.number()).or(plan.create_versions.first().map(|v| v.spec.version));
    // A version taken from a registry is judged as it arrives: nothing trains.
    let trains = trains.filter(|_| source.is_none());
    let source_judged = super::source::judge(model, observed.readings.source.as_ref(), ledger.serving());
    let mut desired = summarise(&mut status, &ledger, &serving, trains, source_judged.problem.clone());
    plan.version_statuses = ledger.changed_statuses();
    match source_judged.condition {
        Some(condition) => desired.push(condition),
        // Not read this time: the last reading's condition stands.
        None if source.is_some() => {}
        None => status.conditions.retain(|c| c.type_ != super::source::SOURCE_SYNCED),
    }
    plan.events.extend(source_judged.event);
    plan.requeue_after = sooner(plan.requeue_after, source_judged.wake);
    let registry = super::registry::judge(model, observed.versions, observed.readings.registry.as_ref(), now);
    status.registry = registry.status;
    match registry.condition {
        Some(condition) => desired.push(condition),
        None => status.conditions.retain(|c| c.type_ != super::registry::REGISTRY_SYNCED),
    }
    plan.events.extend(registry.event);
    plan.requeue_after = sooner(plan.requeue_after, registry.wake);
    finish(model, old, status, &desired, plan, now)
}

/// The Model's serving and candidate versions, phase and conditions, from where its versions
/// are (`trains`: the version training or about to) and what serving decided.
fn summarise(
    status: &mut ModelStatus,
    ledger: &Ledger,
    serving: &ServingSteps,
    trains: Option<u32>,
    source_problem: Option<Problem>,
) -> Vec<Desired> {
    let serving_version = ledger.serving();
    let rolling = serving.rollout.rolling_out.then_some(serving.wanted).flatten();
    let degraded_by = ledger
        .in_phase(VersionPhase::RolledBack)
        .map(|e| e.number())
        .filter(|n| serving_version.is_none_or(|s| *n > s))
        .last();
    status.serving_version = serving_version;
    status.candidate_version = rolling.filter(|w| Some(*w) != serving_version).or(trains);

    let mut desired = vec![];
    let query_problem = serving
        .rollout
        .paused
        .as_ref()
        .filter(|(reason, _)| *reason == "AnalysisQueryFailed")
        .map(|(_, message)| Problem { reason: "AnalysisQueryFailed", message: message.clone() });
    let stall: Option<Problem> = serving.pin_problem.clone().or(query_problem).or(source_problem).or_else(|| {
        (serving_version.is_none() && trains.is_none() && rolling.is_none()).then(|| nothing_to_serve(ledger)).flatten()
    });
    let (phase, working) = match (rolling, trains) {
        (Some(w), _) => (ModelPhase::RollingOut, Some(("RollingOut", format!("rolling out v{w}")))),
        (None, Some(t)) => (ModelPhase::Training, Some(("Training", format!("v{t} is training")))),
        (None, None) if degraded_by.is_some() || serving.rollout.unhealthy.is_some() => (ModelPhase::Degraded, None),
        (None, None) if serving_version.is_some() => (ModelPhase::Serving, None),
        (None, None) => (ModelPhase::Pending, None),
    };
    status.phase = Some(if stall.is_some() { ModelPhase::Stalled } else { phase });
    let ready_message = serving_version.map_or("no version serves".to_string(), |s| format!("v{s} serves"));
    let is_ready = serving_version.is_some() && working.is_none();
    let ready_reason = if is_ready { "Serving" } else { working.as_ref().map_or("NotServing", |w| w.0) };
    let stalls: Vec<Problem> = stall.into_iter().collect();
    desired.extend(health_conditions(
        &stalls,
        (is_ready, ready_reason, &ready_message),
        working.as_ref().map(|(r, m)| (*r, m.as_str())),
    ));
    let training_condition = match trains {
        Some(t) => Desired::yes(conditions::TRAINING, "JobRunning", format!("v{t} is training")),
        None => Desired::no(conditions::TRAINING, "Idle", "no version is training"),
    };
    let rollout_condition = match (rolling, &serving.rollout.paused) {
        (Some(_), Some((reason, message))) => Desired::yes(conditions::ROLLING_OUT, *reason, message.clone()),
        (Some(w), None) => Desired::yes(conditions::ROLLING_OUT, "RollingOut", format!("rolling out v{w}")),
        (None, _) => Desired::no(conditions::ROLLING_OUT, "Idle", "no rollout in progress"),
    };
    let degraded_condition = match (degraded_by, &serving.rollout.unhealthy) {
        (_, Some(reason)) => Desired::yes(conditions::DEGRADED, "ServingUnhealthy", reason.clone()),
        (Some(n), None) => Desired::yes(
            conditions::DEGRADED,
            "RolledBack",
            format!("v{n} was rolled back; {ready_message} until a later version serves"),
        ),
        (None, None) => Desired::no(conditions::DEGRADED, "Healthy", "no rollback since the serving version"),
    };
    desired.extend([training_condition, rollout_condition, degraded_condition]);
    desired
}
/// The status of the policy that drives the Model after its triggers were decided, with its
/// Degraded condition (drift retrains that do not help) and a Warning Event when that starts.
fn judged_policy(
    policy: &RetrainPolicy,
    decision: &TriggerDecision,
    now: Timestamp,
    events: &mut Vec<(String, EventRecord)>,
) -> Option<(String, RetrainPolicyStatus, RetrainPolicyStatus)> {
    let (name, old, mut new) = policy_status(policy, decision.status.clone()?, &decision.problems, now);
    let degraded = match &decision.ineffective {
        Some(why) => Desired::yes(conditions::DEGRADED, "DriftRetrainsIneffective", why.clone()),
        None => Desired::no(conditions::DEGRADED, "RetrainsEffective", "retraining removes what triggers it"),
    };
    conditions::set_all(&mut new.conditions, &[degraded], policy.metadata.generation, now);
    if !conditions::is_true(&old.conditions, conditions::DEGRADED)
        && let Some(why) = &decision.ineffective
    {
        let event = EventRecord {
            kind: EventKind::Warning,
            reason: "DriftRetrainsIneffective".into(),
            action: "BackOff".into(),
            note: why.clone(),
            version: None,
        };
        events.push((name.clone(), event));
    }
    Some((name, old, new))
}

/// The policy that drives the Model (if any can), and the statuses of the policies that cannot:
/// a second policy for the Model, or one whose schedule cannot be read.
fn policies_of<'a>(
    model: &Model,
    policies: &'a [Arc<RetrainPolicy>],
    now: Timestamp,
) -> (Option<&'a RetrainPolicy>, Vec<(String, RetrainPolicyStatus, RetrainPolicyStatus)>) {
    let source = super::source::sourced(model).map(|s| s.name.clone());
    let sourced = source.is_some();
    let world = PolicyWorld::of_existing_model(policies, source);
    let stalled = policies
        .iter()
        .filter(|p| p.spec.model_ref.name == model.name_any())
        .filter_map(|p| {
            let problems = policy_problems(p, &world);
            (!problems.is_empty()).then(|| policy_status(p, p.status.clone().unwrap_or_default(), &problems, now))
        })
        .collect();
    (driving_policy(policies).filter(|_| !sourced), stalled)
}

/// A policy's status with its kstatus conditions set from `problems`.
fn policy_status(
    policy: &RetrainPolicy,
    mut status: RetrainPolicyStatus,
    problems: &[Problem],
    now: Timestamp,
) -> (String, RetrainPolicyStatus, RetrainPolicyStatus) {
    let old = policy.status.clone().unwrap_or_default();
    status.observed_generation = policy.metadata.generation;
    let desired = health_conditions(problems, (true, "Active", "the policy drives its Model"), None);
    conditions::set_all(&mut status.conditions, &desired, policy.metadata.generation, now);
    (policy.metadata.name.clone().unwrap_or_default(), old, status)
}

fn nothing_to_serve(ledger: &Ledger) -> Option<Problem> {
    let latest = ledger.latest()?;
    let next = match latest.version.spec.source.as_ref() {
        Some(s) => format!("register a new version of {:?} in MLflow to try again", s.mlflow.name),
        None => "change the training inputs to train again".into(),
    };
    Some(Problem {
        reason: "NoServableVersion",
        message: format!(
            "v{} is {:?} ({}) and no version serves; {next}",
            latest.number(),
            latest.phase(),
            latest.status.message.clone().unwrap_or_default()
        ),
    })
}

fn finish(
    model: &Model,
    old: &ModelStatus,
    mut status: ModelStatus,
    desired: &[Desired],
    mut plan: Decided,
    now: Timestamp,
) -> ModelPlan {
    conditions::set_all(&mut status.conditions, desired, model.metadata.generation, now);
    plan.events.extend(stalled_events(&old.conditions, &status.conditions));
    plan.events.extend(waiting_events(&old.conditions, &status.conditions));
    plan.status = (model.status.as_ref() != Some(&status)).then_some(status);
    plan.into_plan()
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
