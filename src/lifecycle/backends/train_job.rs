//! Kubeflow Trainer v2: a `TrainJob` on a (Cluster)TrainingRuntime, run by JobSet over several
//! nodes. Its outcome is the TrainJob's `Complete` or `Failed` condition; its report is the
//! termination message of the rank-0 trainer pod, or else the metrics of `trainerStatus`.

use crate::api::ModelVersion;
use crate::api::TrainingProgress;
use crate::api::engines::{TrainJob, TrainerStatus};
use crate::objects::engines::{TRAINER_NODES, train_job};

use super::super::plan::{Child, Kind};
use super::super::validate::Problem;
use super::{
    Backend, COMPLETION_INDEX_LABEL, Finished, JOB_INDEX_LABEL, JOBSET_NAME_LABEL, REPLICATED_JOB_LABEL, Run, Runs,
    engine_named, engine_problem, label, termination_message,
};

/// The CustomResourceDefinition of TrainJobs.
pub const TRAINJOB_CRD: &str = "trainjobs.trainer.kubeflow.org";

/// Trains a version as a Kubeflow Trainer `TrainJob`.
pub struct TrainJobBackend;

impl Backend for TrainJobBackend {
    fn kind(&self) -> Kind {
        Kind::TrainJob
    }

    fn unavailable(&self, runs: &Runs) -> Option<Problem> {
        engine_problem(runs.train_jobs, "TrainJob", TRAINJOB_CRD, "--trainjob", "trainJob.enabled")
    }

    fn build(&self, version: &ModelVersion) -> Option<Child> {
        train_job(version).map(|t| Child::TrainJob(Box::new(t)))
    }

    fn run(&self, name: &str, runs: &Runs) -> Run {
        let Some(train_job) = engine_named(runs.train_jobs, name) else { return Run::Missing };
        outcome(train_job, name, runs)
    }

    fn exists(&self, name: &str, runs: &Runs) -> bool {
        engine_named(runs.train_jobs, name).is_some()
    }
}

fn outcome(train_job: &TrainJob, name: &str, runs: &Runs) -> Run {
    let status = train_job.status.as_ref();
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let is_true = |type_: &str| conditions.iter().find(|c| c.type_ == type_ && c.status == "True");
    let trainer = status.and_then(|s| s.trainer_status.as_ref());
    let progress = trainer.map(progress);
    if let Some(failed) = is_true("Failed") {
        return Run::Failed {
            reason: failed.reason.clone().unwrap_or_else(|| "TrainJobFailed".into()),
            message: failed.message.clone().unwrap_or_default(),
            finished: failed.last_transition_time.as_ref().map(|t| t.0),
        };
    }
    let Some(complete) = is_true("Complete") else { return Run::Running(progress) };
    let belongs = |p: &k8s_openapi::api::core::v1::Pod| label(p, JOBSET_NAME_LABEL) == Some(name);
    let rank_zero = |p: &k8s_openapi::api::core::v1::Pod| {
        label(p, REPLICATED_JOB_LABEL).is_none_or(|r| r == TRAINER_NODES)
            && label(p, JOB_INDEX_LABEL).is_none_or(|i| i == "0")
            && label(p, COMPLETION_INDEX_LABEL).is_none_or(|i| i == "0")
    };
    Run::Succeeded(Finished {
        message: termination_message(runs.pods, belongs, rank_zero),
        engine_metrics: trainer
            .map(|t| t.metrics.iter().map(|m| (m.name.clone(), m.value.clone())).collect())
            .unwrap_or_default(),
        progress,
        finished: complete.last_transition_time.as_ref().map(|t| t.0),
    })
}

fn progress(trainer: &TrainerStatus) -> TrainingProgress {
    TrainingProgress {
        percent: trainer.progress_percentage,
        remaining_seconds: trainer.estimated_remaining_seconds,
        metrics: trainer.metrics.iter().map(|m| (m.name.clone(), m.value.clone())).collect(),
        message: None,
        updated_at: trainer.last_updated_time.clone(),
    }
}
