//! KubeRay: a `RayJob` that runs the entrypoint on a Ray cluster made for the version (or an
//! existing one). Its outcome is the RayJob's deployment status and the Ray job's status; its
//! report is the termination message of the submitter pod.

use crate::api::ModelVersion;
use crate::api::TrainingProgress;
use crate::api::engines::RayJob;
use crate::objects::engines::ray_job;

use super::super::plan::{Child, Kind};
use super::super::validate::Problem;
use super::{Backend, Finished, Run, Runs, engine_named, engine_problem, job_of, termination_message};

/// The CustomResourceDefinition of RayJobs.
pub const RAYJOB_CRD: &str = "rayjobs.ray.io";

/// Trains a version as a KubeRay `RayJob`.
pub struct RayJobBackend;

impl Backend for RayJobBackend {
    fn kind(&self) -> Kind {
        Kind::RayJob
    }

    fn unavailable(&self, runs: &Runs) -> Option<Problem> {
        engine_problem(runs.ray_jobs, "RayJob", RAYJOB_CRD, "--rayjob", "rayJob.enabled")
    }

    fn build(&self, version: &ModelVersion) -> Option<Child> {
        ray_job(version).map(|r| Child::RayJob(Box::new(r)))
    }

    fn run(&self, name: &str, runs: &Runs) -> Run {
        let Some(ray_job) = engine_named(runs.ray_jobs, name) else { return Run::Missing };
        outcome(ray_job, name, runs)
    }

    fn exists(&self, name: &str, runs: &Runs) -> bool {
        engine_named(runs.ray_jobs, name).is_some()
    }
}

fn outcome(ray_job: &RayJob, name: &str, runs: &Runs) -> Run {
    let Some(status) = ray_job.status.as_ref() else { return Run::Running(None) };
    let deployment = status.job_deployment_status.as_deref().unwrap_or_default();
    let job = status.job_status.as_deref().unwrap_or_default();
    let progress = TrainingProgress {
        message: Some(format!(
            "RayJob {}, Ray job {}",
            if deployment.is_empty() { "New" } else { deployment },
            if job.is_empty() { "not submitted" } else { job }
        )),
        ..TrainingProgress::default()
    };
    let finished = status.end_time.as_ref().map(|t| t.0);
    let failed = |reason: &str| Run::Failed {
        reason: status.reason.clone().unwrap_or_else(|| reason.into()),
        message: status.message.clone().unwrap_or_default(),
        finished,
    };
    match (deployment, job) {
        ("Failed" | "ValidationFailed", _) => failed("RayJobFailed"),
        ("Complete", "SUCCEEDED") => {
            // KubeRay's submitter Job carries the RayJob's name, and so do its pods' labels.
            let belongs = |p: &k8s_openapi::api::core::v1::Pod| job_of(p) == Some(name);
            Run::Succeeded(Finished {
                message: termination_message(runs.pods, belongs, |_| true),
                progress: Some(progress),
                finished,
                ..Finished::default()
            })
        }
        ("Complete", "FAILED" | "STOPPED") => failed(if job == "FAILED" { "AppFailed" } else { "JobStopped" }),
        _ => Run::Running(Some(progress)),
    }
}
