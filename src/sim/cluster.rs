//! The in-memory cluster: the same objects the builders make, and the plan applied to them the
//! way the kube shell applies it, write by write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::{DEPLOYMENT_MODE_ANNOTATION, InferenceService};
use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::lifecycle::ledger::TRANSITION_REFUSED;
use crate::lifecycle::model::{Cached, Child, Children, Engine, Kind, ModelPlan, Regarding, Write, child_refused};
use crate::lifecycle::plan::{EventRecord, StatusWrite};
use crate::lifecycle::transitions;
use crate::objects::deployment::Track;
use crate::objects::inference_service::written_percent;
use crate::objects::meta::MODEL_LABEL;
use crate::objects::names::{dns_label_problem, dns_subdomain_problem, serving_name};
use crate::objects::route::{backend_name, mirrored_to, route_share};

/// Objects by `namespace/name`, shared with the reconciles that read them (a write copies an
/// object only while a reader still holds it).
pub type Objects<K> = BTreeMap<String, Arc<K>>;

/// Everything in the simulated cluster, and what the simulation watches for.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// The virtual clock.
    pub now: Timestamp,
    /// Models.
    pub models: Objects<Model>,
    /// ModelVersions.
    pub versions: Objects<ModelVersion>,
    /// Jobs.
    pub jobs: Objects<Job>,
    /// Pods (of Jobs).
    pub pods: Objects<Pod>,
    /// Kubeflow Trainer `TrainJob`s.
    pub train_jobs: Objects<TrainJob>,
    /// KubeRay `RayJob`s.
    pub ray_jobs: Objects<RayJob>,
    /// Deployments.
    pub deployments: Objects<Deployment>,
    /// Services.
    pub services: Objects<Service>,
    /// Gateway API `HTTPRoute`s.
    pub routes: Objects<HttpRoute>,
    /// KServe `InferenceService`s.
    pub inference_services: Objects<InferenceService>,
    /// What the simulated KServe keeps about each InferenceService.
    pub kserve: BTreeMap<String, KServeState>,
    /// RetrainPolicies.
    pub policies: Objects<RetrainPolicy>,
    /// When each Deployment's current generation was applied.
    pub rollout_started: BTreeMap<String, Timestamp>,
    /// How often each training run (Job, TrainJob, RayJob) was created, by key (a second
    /// creation is a bug).
    pub job_creations: BTreeMap<String, u32>,
    /// What each Model's route sent to the version rolling out, each time that changed
    /// ([`route_share`]), by `namespace/model`.
    pub traffic: BTreeMap<String, Vec<String>>,
    /// Writes applied so far.
    pub writes: u64,
    /// Broken invariants, each said once when first seen.
    pub violations: Vec<String>,
    served: BTreeSet<String>,
    capacity: BTreeMap<String, i32>,
    next_uid: u64,
}

/// The `namespace/name` key of an object.
pub fn key(o: &impl ResourceExt) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// The range of the keys of namespace `ns`: keys sort by namespace first, so its objects are
/// one range of each map. ('0' is the character after '/'.)
fn namespace_keys(ns: &str) -> (String, String) {
    (format!("{ns}/"), format!("{ns}0"))
}

/// The objects whose keys are in `[from, to)`, shared.
fn in_range<'a, K>(objects: &'a Objects<K>, (from, to): &(String, String)) -> impl Iterator<Item = Arc<K>> + 'a {
    use std::ops::Bound::{Excluded, Included};
    objects.range::<str, _>((Included(from.as_str()), Excluded(to.as_str()))).map(|(_, o)| o.clone())
}

impl Cluster {
    /// An empty cluster whose clock reads `now`.
    pub fn starting_at(now: Timestamp) -> Self {
        Self { now, ..Self::default() }
    }

    /// Gives an object the metadata the API server would on creation.
    pub fn admit(&mut self, meta: &mut ObjectMeta) {
        self.next_uid += 1;
        meta.uid = Some(format!("sim-{:06}", self.next_uid));
        meta.creation_timestamp = Some(Time(self.now));
        meta.generation = Some(1);
        meta.resource_version = Some(self.next_uid.to_string());
    }

    /// Everything of `model` in its namespace, selected as the kube shell selects it and shared
    /// with the cluster. (A scenario's policies are typed: one that does not decode fails the
    /// scenario's load, so none is unreadable.)
    pub fn children_of(&self, model: &Model) -> Children {
        let ns = model.namespace().unwrap_or_default();
        // A namespace's objects only, as the kube shell's caches index them by namespace.
        let range = &namespace_keys(&ns);
        Children::select(
            model,
            Cached {
                versions: in_range(&self.versions, range),
                jobs: in_range(&self.jobs, range),
                pods: in_range(&self.pods, range),
                train_jobs: Engine::Watched(in_range(&self.train_jobs, range)),
                ray_jobs: Engine::Watched(in_range(&self.ray_jobs, range)),
                deployments: in_range(&self.deployments, range),
                services: in_range(&self.services, range),
                routes: Some(in_range(&self.routes, range)),
                inference_services: Some(in_range(&self.inference_services, range)),
                policies: in_range(&self.policies, range),
            },
        )
    }

    /// Applies `plan` for the Model at `model_key` write by write, as the kube shell does. With a
    /// `budget`, stops after that many writes (Events included), as a controller that crashed
    /// mid-way would. Returns the Events that were emitted.
    pub fn apply(
        &mut self,
        model_key: &str,
        plan: ModelPlan,
        budget: &mut Option<usize>,
    ) -> Vec<(Regarding, EventRecord)> {
        let mut emitted = vec![];
        let watched = self.models.get(model_key).map(|m| Watched::of(m));
        let watched = watched.as_ref();
        for write in plan.steps {
            if !spend(budget) {
                break;
            }
            if let Write::Apply(child) = &write
                && let Some(why) = refused_name(child)
            {
                // As the API server would: refuse the child; the kube shell then stalls the Model.
                let Some(model) = self.models.get(model_key) else { break };
                for write in child_refused(model, child, &why, self.now) {
                    self.write(model_key, watched, write, &mut emitted);
                }
                break;
            }
            self.write(model_key, watched, write, &mut emitted);
        }
        emitted
    }

    /// Makes one write of the Model at `model_key`; an Event goes to `emitted`.
    fn write(
        &mut self,
        model_key: &str,
        watched: Option<&Watched>,
        write: Write,
        emitted: &mut Vec<(Regarding, EventRecord)>,
    ) {
        let ns = model_key.split('/').next().unwrap_or_default();
        match write {
            Write::CreateVersion(version) => {
                let k = key(version.as_ref());
                if !self.versions.contains_key(&k) {
                    let mut v = *version;
                    self.admit(&mut v.metadata);
                    self.versions.insert(k, Arc::new(v));
                }
            }
            Write::VersionStatus(w) => {
                let StatusWrite { name, status, .. } = *w;
                if let Some(v) = self.versions.get_mut(&format!("{ns}/{name}")) {
                    // Every phase change must follow the table, whatever the core's path to it.
                    let moved = transitions::check(v.status.as_ref(), &status);
                    Arc::make_mut(v).status = Some(status);
                    if let Err(why) = moved {
                        self.violate(format!("{ns}/{name} at {}: {why}", self.now));
                    }
                }
            }
            Write::Apply(Child::Job(job)) => {
                let k = key(job.as_ref());
                if !self.jobs.contains_key(&k) {
                    let mut j = *job;
                    self.admit(&mut j.metadata);
                    *self.job_creations.entry(k.clone()).or_default() += 1;
                    self.jobs.insert(k, Arc::new(j));
                }
            }
            Write::Apply(Child::TrainJob(t)) => {
                let k = key(t.as_ref());
                if !self.train_jobs.contains_key(&k) {
                    let mut t = *t;
                    self.admit(&mut t.metadata);
                    *self.job_creations.entry(k.clone()).or_default() += 1;
                    self.train_jobs.insert(k, Arc::new(t));
                }
            }
            Write::Apply(Child::RayJob(r)) => {
                let k = key(r.as_ref());
                if !self.ray_jobs.contains_key(&k) {
                    let mut r = *r;
                    self.admit(&mut r.metadata);
                    *self.job_creations.entry(k.clone()).or_default() += 1;
                    self.ray_jobs.insert(k, Arc::new(r));
                }
            }
            Write::Apply(Child::Deployment(d)) => self.apply_deployment(*d),
            Write::Apply(Child::Service(s)) => {
                let svc = self.applied(self.services.get(&key(s.as_ref())).cloned(), *s);
                self.services.insert(key(&svc), Arc::new(svc));
            }
            Write::Apply(Child::Route(r)) => {
                let route = self.applied(self.routes.get(&key(r.as_ref())).cloned(), *r);
                let k = key(&route);
                let share = route_share(&route);
                let seen = self.traffic.entry(model_key.to_string()).or_default();
                if seen.last() != Some(&share) {
                    seen.push(share);
                }
                self.routes.insert(k, Arc::new(route));
            }
            Write::Apply(Child::InferenceService(i)) => self.apply_inference_service(&i),
            Write::Delete(Kind::InferenceService, name) => {
                self.inference_services.remove(&format!("{ns}/{name}"));
            }
            Write::Delete(Kind::HttpRoute, name) => {
                self.routes.remove(&format!("{ns}/{name}"));
            }
            Write::Delete(Kind::Job, name) => {
                if self.jobs.remove(&format!("{ns}/{name}")).is_some() {
                    self.delete_pods_of(ns, &name);
                }
            }
            Write::Delete(Kind::TrainJob, name) => {
                if let Some(t) = self.train_jobs.remove(&format!("{ns}/{name}")) {
                    self.delete_owned_jobs(ns, t.uid());
                }
            }
            Write::Delete(Kind::RayJob, name) => {
                if let Some(r) = self.ray_jobs.remove(&format!("{ns}/{name}")) {
                    self.delete_owned_jobs(ns, r.uid());
                }
            }
            Write::Delete(Kind::Deployment, name) => {
                let k = format!("{ns}/{name}");
                self.deployments.remove(&k);
                self.rollout_started.remove(&k);
            }
            Write::Delete(Kind::Service, name) => {
                self.services.remove(&format!("{ns}/{name}"));
            }
            Write::Delete(Kind::ModelVersion, name) => self.delete_version(&format!("{ns}/{name}")),
            Write::PolicyStatus(w) => {
                let StatusWrite { name, status, .. } = *w;
                if let Some(p) = self.policies.get_mut(&format!("{ns}/{name}")) {
                    Arc::make_mut(p).status = Some(status);
                }
            }
            Write::ModelStatus(status) => {
                if let Some(m) = self.models.get_mut(model_key) {
                    Arc::make_mut(m).status = Some(*status);
                }
            }
            Write::Event(regarding, event) => {
                if event.reason == TRANSITION_REFUSED {
                    self.violate(format!("{model_key} at {}: {}", self.now, event.note));
                }
                emitted.push((regarding, event));
                return;
            }
        }
        self.wrote(model_key, watched);
    }
}

/// The API server's refusal of a child's name, if it would refuse it: a Service name must be a
/// DNS-1035 label, a Deployment's or Job's a DNS-1123 subdomain.
fn refused_name(child: &Child) -> Option<String> {
    match child {
        Child::Service(s) => dns_label_problem(&s.name_any()),
        Child::Deployment(d) => dns_subdomain_problem(&d.name_any()),
        Child::Job(j) => dns_subdomain_problem(&j.name_any()),
        // Both engines ask for a DNS-1035 label (their Jobs and pods are named after it).
        Child::TrainJob(t) => dns_label_problem(&t.name_any()),
        Child::RayJob(r) => dns_label_problem(&r.name_any()),
        Child::Route(r) => dns_subdomain_problem(&r.name_any()),
        Child::InferenceService(i) => dns_label_problem(&i.name_any()),
    }
    .map(|why| format!("metadata.name: Invalid value: {why}"))
}

impl Cluster {
    fn apply_deployment(&mut self, desired: Deployment) {
        let k = key(&desired);
        let mut d = desired;
        match self.deployments.get(&k) {
            Some(old) => {
                d.metadata = merged_meta(&old.metadata, &d.metadata);
                d.status = old.status.clone();
                if old.spec != d.spec {
                    d.metadata.generation = Some(old.metadata.generation.unwrap_or(1) + 1);
                    self.rollout_started.insert(k.clone(), self.now);
                }
            }
            None => {
                self.admit(&mut d.metadata);
                self.rollout_started.insert(k.clone(), self.now);
            }
        }
        self.deployments.insert(k, Arc::new(d));
    }

    /// Deletes a ModelVersion and, as the garbage collector would, what trains it (Jobs,
    /// TrainJobs, RayJobs), their Jobs and the pods.
    fn delete_version(&mut self, k: &str) {
        let Some(version) = self.versions.remove(k) else { return };
        let uid = version.uid();
        let ns = version.namespace().unwrap_or_default();
        let range = namespace_keys(&ns);
        let owned = |meta: &ObjectMeta| meta.owner_references.iter().flatten().any(|o| Some(&o.uid) == uid.as_ref());
        let engines: Vec<(String, Option<String>)> = in_range(&self.train_jobs, &range)
            .filter(|t| owned(&t.metadata))
            .map(|t| (key(t.as_ref()), t.uid()))
            .collect();
        for (k, engine_uid) in engines {
            self.train_jobs.remove(&k);
            self.delete_owned_jobs(&ns, engine_uid);
        }
        let engines: Vec<(String, Option<String>)> = in_range(&self.ray_jobs, &range)
            .filter(|r| owned(&r.metadata))
            .map(|r| (key(r.as_ref()), r.uid()))
            .collect();
        for (k, engine_uid) in engines {
            self.ray_jobs.remove(&k);
            self.delete_owned_jobs(&ns, engine_uid);
        }
        self.delete_owned_jobs(&ns, uid);
    }

    /// Deletes the Jobs in `ns` owned by `owner`, and their pods, as the garbage collector would.
    fn delete_owned_jobs(&mut self, ns: &str, owner: Option<String>) {
        let owned = |meta: &ObjectMeta| meta.owner_references.iter().flatten().any(|o| Some(&o.uid) == owner.as_ref());
        let jobs: Vec<(String, String)> = in_range(&self.jobs, &namespace_keys(ns))
            .filter(|j| owned(&j.metadata))
            .map(|j| (key(j.as_ref()), j.name_any()))
            .collect();
        for (job, name) in jobs {
            self.jobs.remove(&job);
            self.delete_pods_of(ns, &name);
        }
    }

    /// Deletes the pods of Job `job` in namespace `ns`, as the garbage collector would.
    fn delete_pods_of(&mut self, ns: &str, job: &str) {
        let pods: Vec<String> = in_range(&self.pods, &namespace_keys(ns))
            .filter(|p| p.labels().get("batch.kubernetes.io/job-name").map(String::as_str) == Some(job))
            .map(|p| key(p.as_ref()))
            .collect();
        for pod in pods {
            self.pods.remove(&pod);
        }
    }

    /// `desired` as a server-side apply leaves it over `old`: created (admitted) if there was
    /// none, else with the metadata the API server keeps.
    fn applied<K: kube::Resource + Clone>(&mut self, old: Option<Arc<K>>, desired: K) -> K {
        let mut object = desired;
        match old {
            Some(old) => *object.meta_mut() = merged_meta(old.meta(), object.meta()),
            None => self.admit(object.meta_mut()),
        }
        object
    }

    /// Records a broken rule once.
    pub fn violate(&mut self, violation: String) {
        once(&mut self.violations, violation);
    }

    /// Counts a write and checks that a Model that served still has its serving Deployment.
    fn wrote(&mut self, model_key: &str, watched: Option<&Watched>) {
        self.writes += 1;
        let (Some(model), Some(watched)) = (self.models.get(model_key), watched) else { return };
        let ns = model.metadata.namespace.as_deref().unwrap_or_default();
        let name = model.metadata.name.as_deref().unwrap_or_default();
        let serving = &watched.serving;
        let keys = namespace_keys(ns);
        let serves = || {
            in_range(&self.versions, &keys).any(|v| {
                v.spec.model == name
                    && v.status.as_ref().and_then(|s| s.phase) == Some(crate::api::VersionPhase::Serving)
            })
        };
        if !self.served.contains(model_key) && serves() {
            self.served.insert(model_key.to_string());
        }
        let kserve = crate::objects::inference_service::kserve_serving(model).is_some();
        let serves_there =
            if kserve { self.inference_services.contains_key(serving) } else { self.deployments.contains_key(serving) };
        // Moving between targets, the old target's objects serve until the new one does.
        let serves_elsewhere =
            if kserve { self.deployments.contains_key(serving) } else { self.inference_services.contains_key(serving) };
        if self.served.contains(model_key) && !serves_there && !serves_elsewhere {
            let what = if kserve { "InferenceService" } else { "Deployment" };
            let v = format!("{model_key}: no serving {what} at {} although a version served", self.now);
            once(&mut self.violations, v);
        }
        // Capacity (KServe keeps its own): once a version served, the serving Deployments together never ask for
        // fewer pods than the Model's replicas (a canary shifts pods, it does not remove them).
        let wanted = model.spec.serving.replicas;
        let capacity: i32 = in_range(&self.deployments, &keys)
            .filter(|d| d.labels().get(MODEL_LABEL) == Some(&watched.label))
            .filter_map(|d| d.spec.as_ref()?.replicas)
            .sum();
        let before = match self.capacity.get_mut(model_key) {
            Some(seen) => std::mem::replace(seen, capacity),
            None => {
                self.capacity.insert(model_key.to_string(), capacity);
                capacity
            }
        };
        if !kserve && self.served.contains(model_key) && capacity < wanted && capacity < before {
            let v = format!("{model_key}: serving capacity {capacity} < {wanted} replicas at {}", self.now);
            once(&mut self.violations, v);
        }
        // A route never sends requests to a new version before its pods are available.
        let Some(route) = self.routes.get(serving) else { return };
        for track in [Track::Canary, Track::Preview] {
            let backend = backend_name(name, track);
            let rules = || route.spec.rules.iter();
            let weighted =
                rules().flat_map(|rule| &rule.backend_refs).any(|b| b.name == backend && b.weight != Some(0));
            let mirrored = rules().flat_map(|rule| &rule.filters).any(|f| mirrored_to(f) == Some(backend.as_str()));
            let sent = weighted || mirrored;
            let deployment = self.deployments.get(&format!("{ns}/{}", track.name(name)));
            let available = deployment.and_then(|d| d.status.as_ref()?.available_replicas).unwrap_or(0);
            if sent && available == 0 {
                let v = format!(
                    "{model_key}: the route sends requests to {backend} at {}, which has no available pod",
                    self.now
                );
                once(&mut self.violations, v);
            }
        }
    }
}

/// The names the checks after each write of a Model look up, made once per plan (those of a
/// route's backends only when it has a route).
struct Watched {
    /// The key of its serving objects (Deployment, Service, route, InferenceService).
    serving: String,
    /// Its value of the Model label, which its serving Deployments carry.
    label: String,
}

impl Watched {
    fn of(model: &Model) -> Self {
        let ns = model.metadata.namespace.as_deref().unwrap_or_default();
        let name = model.metadata.name.as_deref().unwrap_or_default();
        Watched { serving: format!("{ns}/{}", serving_name(name)), label: crate::objects::names::label_value(name) }
    }
}

fn once(violations: &mut Vec<String>, violation: String) {
    if !violations.contains(&violation) {
        violations.push(violation);
    }
}

fn spend(budget: &mut Option<usize>) -> bool {
    match budget {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

fn merged_meta(old: &ObjectMeta, new: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        uid: old.uid.clone(),
        creation_timestamp: old.creation_timestamp.clone(),
        generation: old.generation,
        resource_version: old.resource_version.clone(),
        ..new.clone()
    }
}

/// What the simulated KServe keeps per InferenceService besides its status.
#[derive(Clone, Debug, Default)]
pub struct KServeState {
    /// Revisions created so far.
    pub revisions: u32,
    /// When the spec last changed.
    pub changed: Option<Timestamp>,
    /// The change made a new revision (Knative) or Deployment rollout (Standard) necessary.
    pub pending: bool,
    /// When the newest revision was created (Knative) or the Deployment changed (Standard).
    pub created: Option<Timestamp>,
}

pub fn knative(isvc: &InferenceService) -> bool {
    isvc.annotations().get(DEPLOYMENT_MODE_ANNOTATION).is_some_and(|m| m == "Knative" || m == "Serverless")
}

/// The predictor without `canaryTrafficPercent`: what a revision is made of.
fn template(isvc: &InferenceService) -> serde_json::Map<String, serde_json::Value> {
    let mut p = isvc.spec.predictor.clone();
    p.remove("canaryTrafficPercent");
    p
}

impl Cluster {
    /// Server-side applies an InferenceService, as the API server would (a new generation on a
    /// spec change; the status is KServe's), and notes the change for the simulated KServe.
    pub fn apply_inference_service(&mut self, desired: &InferenceService) {
        let k = key(desired);
        let mut isvc = desired.clone();
        let old = self.inference_services.get(&k).cloned();
        let state = self.kserve.entry(k.clone()).or_default();
        match &old {
            Some(old) => {
                isvc.metadata = merged_meta(&old.metadata, &isvc.metadata);
                isvc.status = old.status.clone();
                if old.spec != isvc.spec {
                    isvc.metadata.generation = Some(old.metadata.generation.unwrap_or(1) + 1);
                    state.changed = Some(self.now);
                    state.pending |= template(old) != template(&isvc);
                }
            }
            None => {
                state.changed = Some(self.now);
                state.pending = true;
                self.admit(&mut isvc.metadata);
            }
        }
        // What the InferenceService gives the version it holds, each time that changes (all
        // requests without canaryTrafficPercent), beside the routes' shares.
        let model_key = format!(
            "{}/{}",
            isvc.namespace().unwrap_or_default(),
            isvc.labels().get(crate::objects::meta::MODEL_LABEL).cloned().unwrap_or_default()
        );
        let share = written_percent(&isvc).map_or("100".to_string(), |p| p.to_string());
        let seen = self.traffic.entry(model_key).or_default();
        if seen.last() != Some(&share) {
            seen.push(share);
        }
        self.inference_services.insert(k, Arc::new(isvc));
    }
}
