//! Training backends: what runs a version's training. Each is one module behind [`Backend`]:
//! the object it creates, what it reads of progress and outcome, and the kind that stops it when
//! deleted. The version, its gates and its rollout are the same whichever backend trains it.

mod job;
mod ray_job;
mod train_job;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::api::engines::{RayJob, TrainJob, TrainingBackend};
use crate::api::{ModelVersion, TrainingProgress};

use super::plan::{Child, Kind};
use super::validate::Problem;

pub use job::JobBackend;
pub use ray_job::{RAYJOB_CRD, RayJobBackend};
pub use train_job::{TRAINJOB_CRD, TrainJobBackend};

/// The label the Job controller puts on a Job's pods: the Job's name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The same before Kubernetes 1.27, still set beside it.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// An indexed Job's pod's index.
pub const COMPLETION_INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";
/// The JobSet a pod belongs to (a TrainJob's nodes).
pub const JOBSET_NAME_LABEL: &str = "jobset.sigs.k8s.io/jobset-name";
/// The replicated Job of a JobSet a pod belongs to.
pub const REPLICATED_JOB_LABEL: &str = "jobset.sigs.k8s.io/replicatedjob-name";
/// The index of a pod's Job within its replicated Job.
pub const JOB_INDEX_LABEL: &str = "jobset.sigs.k8s.io/job-index";

/// Every label of a trainer pod that a decision reads: which Model it trains, which Job,
/// JobSet and rank it is. Nothing else of a pod's metadata is read but its name and namespace,
/// so a cache of trainer pods may keep only these.
pub const POD_LABELS_READ: [&str; 7] = [
    crate::objects::meta::MODEL_LABEL,
    JOB_NAME_LABEL,
    LEGACY_JOB_NAME_LABEL,
    COMPLETION_INDEX_LABEL,
    JOBSET_NAME_LABEL,
    REPLICATED_JOB_LABEL,
    JOB_INDEX_LABEL,
];

/// What a shell knows of an engine's objects: their cache, or why it has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine<T> {
    /// It watches them: these are the Model's.
    Watched(T),
    /// It was not started with the engine enabled (`--trainjob`, `--rayjob`).
    #[default]
    NotEnabled,
    /// It was, but the engine's CustomResourceDefinition is not installed.
    NotInstalled,
}

impl<T> Engine<T> {
    /// The same answer over other objects.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Engine<U> {
        match self {
            Engine::Watched(t) => Engine::Watched(f(t)),
            Engine::NotEnabled => Engine::NotEnabled,
            Engine::NotInstalled => Engine::NotInstalled,
        }
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> Engine<&T> {
        match self {
            Engine::Watched(t) => Engine::Watched(t),
            Engine::NotEnabled => Engine::NotEnabled,
            Engine::NotInstalled => Engine::NotInstalled,
        }
    }
}

impl<T, E> Engine<Result<T, E>> {
    /// The watched objects' error, or the answer over the objects (as `Option::transpose`).
    pub fn transpose(self) -> Result<Engine<T>, E> {
        match self {
            Engine::Watched(t) => t.map(Engine::Watched),
            Engine::NotEnabled => Ok(Engine::NotEnabled),
            Engine::NotInstalled => Ok(Engine::NotInstalled),
        }
    }
}

/// What the backends read: the Model's training objects of every kind, and its trainer pods.
#[derive(Clone, Copy, Debug)]
pub struct Runs<'a> {
    /// Its training Jobs.
    pub jobs: &'a [Arc<Job>],
    /// Its trainer pods (of Jobs, of a TrainJob's nodes, a RayJob's submitter).
    pub pods: &'a [Arc<Pod>],
    /// Its TrainJobs.
    pub train_jobs: Engine<&'a [Arc<TrainJob>]>,
    /// Its RayJobs.
    pub ray_jobs: Engine<&'a [Arc<RayJob>]>,
}

/// What became of a version's training run.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// There is none: not created yet, or deleted by someone.
    Missing,
    /// It runs (or waits to), with the engine's progress when it reports one.
    Running(Option<TrainingProgress>),
    /// It failed.
    Failed {
        /// The engine's reason, e.g. `BackoffLimitExceeded`, `DeadlineExceeded`.
        reason: String,
        /// The engine's message.
        message: String,
        /// When.
        finished: Option<Timestamp>,
    },
    /// It succeeded.
    Succeeded(Finished),
}

/// A run that succeeded: where its report is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finished {
    /// The termination message of the trainer pod that reports (rank 0, the submitter).
    pub message: Option<String>,
    /// The metrics the engine itself holds (a TrainJob's `trainerStatus`), values as text.
    pub engine_metrics: BTreeMap<String, String>,
    /// The engine's last progress report.
    pub progress: Option<TrainingProgress>,
    /// When.
    pub finished: Option<Timestamp>,
}

/// One way to run a version's training.
pub trait Backend: Sync {
    /// The kind of object it creates, which deleting stops the run.
    fn kind(&self) -> Kind;
    /// Why it cannot train here, when it cannot (the engine is not enabled or not installed).
    fn unavailable(&self, runs: &Runs) -> Option<Problem>;
    /// The object that trains `version`; `None` until the version has a uid to own it.
    fn build(&self, version: &ModelVersion) -> Option<Child>;
    /// What became of the run named `name`.
    fn run(&self, name: &str, runs: &Runs) -> Run;
    /// Whether the run named `name` is there, without reading what became of it (pruning asks
    /// this of every finished version on every reconcile).
    fn exists(&self, name: &str, runs: &Runs) -> bool;
}

/// The object of `objects` named `name`.
fn named<'a, K: kube::Resource>(objects: &'a [Arc<K>], name: &str) -> Option<&'a K> {
    objects.iter().map(AsRef::as_ref).find(|o| crate::objects::meta::is_named(*o, name))
}

/// The engine's object named `name`, when the engine is watched.
fn engine_named<'a, K: kube::Resource>(objects: Engine<&'a [Arc<K>]>, name: &str) -> Option<&'a K> {
    match objects {
        Engine::Watched(objects) => named(objects, name),
        Engine::NotEnabled | Engine::NotInstalled => None,
    }
}

/// The backend of `backend`.
pub fn backend(backend: TrainingBackend) -> &'static dyn Backend {
    match backend {
        TrainingBackend::Job => &JobBackend,
        TrainingBackend::TrainJob => &TrainJobBackend,
        TrainingBackend::RayJob => &RayJobBackend,
    }
}

/// The backend that trains `version` (a version taken from a registry has none: Job).
pub fn of_version(version: &ModelVersion) -> &'static dyn Backend {
    backend(backend_of(version))
}

/// Which backend trains `version`.
pub fn backend_of(version: &ModelVersion) -> TrainingBackend {
    version.spec.training.as_ref().map_or(TrainingBackend::Job, |t| t.backend)
}

/// The name of what trains `version`.
pub fn run_name(version: &ModelVersion) -> String {
    crate::objects::names::run_name(backend_of(version), &version.spec.model, version.spec.version)
}

/// The problem of an engine the shell does not watch, naming its CRD and how to enable it.
fn engine_problem<T>(engine: Engine<T>, kind: &str, crd: &str, flag: &str, chart: &str) -> Option<Problem> {
    match engine {
        Engine::Watched(_) => None,
        Engine::NotEnabled => Some(Problem::new(
            not_enabled_reason(kind),
            format!(
                "spec.training.backend {kind} asks for a {kind}, but this controller does not manage {kind}s; start it with {flag} (chart: {chart}=true, which also grants it access to {kind}s), or train with backend Job"
            ),
        )),
        Engine::NotInstalled => Some(Problem::new(
            not_installed_reason(kind),
            format!(
                "spec.training.backend {kind} asks for a {kind}, but the CustomResourceDefinition {crd} is not installed; install the engine that provides it and restart the controller, or train with backend Job"
            ),
        )),
    }
}

fn not_enabled_reason(kind: &str) -> &'static str {
    if kind == "TrainJob" { "TrainJobNotEnabled" } else { "RayJobNotEnabled" }
}

fn not_installed_reason(kind: &str) -> &'static str {
    if kind == "TrainJob" { "TrainJobCRDMissing" } else { "RayJobCRDMissing" }
}

/// The termination message of a succeeded trainer pod among `pods` that `belongs` picks,
/// preferring the one `first` says reports (rank 0).
fn termination_message(
    pods: &[Arc<Pod>],
    belongs: impl Fn(&Pod) -> bool,
    first: impl Fn(&Pod) -> bool,
) -> Option<String> {
    let succeeded =
        |p: &&Arc<Pod>| belongs(p) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
    let message = |p: &Arc<Pod>| {
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone().filter(|m| !m.trim().is_empty()))
    };
    let mut candidates: Vec<&Arc<Pod>> = pods.iter().filter(succeeded).collect();
    // Rank 0 first; the rest keep their order.
    candidates.sort_by_key(|p| !first(p));
    candidates.into_iter().find_map(message)
}

/// The name of the Job whose pod `pod` is, from either of the Job controller's labels.
pub fn job_of(pod: &Pod) -> Option<&str> {
    label(pod, JOB_NAME_LABEL).or(label(pod, LEGACY_JOB_NAME_LABEL))
}

/// The label of a pod, if it has it.
fn label<'p>(pod: &'p Pod, key: &str) -> Option<&'p str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests;
