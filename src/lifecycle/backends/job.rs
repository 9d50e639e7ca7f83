//! The default backend: one Kubernetes Job, one trainer pod.

use crate::api::ModelVersion;
use crate::objects::job::training_job;

use super::super::plan::{Child, Kind};
use super::super::report::{JobOutcome, job_outcome};
use super::super::validate::Problem;
use super::{Backend, Finished, Run, Runs, named};

/// Trains a version as a Kubernetes Job.
pub struct JobBackend;

impl Backend for JobBackend {
    fn kind(&self) -> Kind {
        Kind::Job
    }

    fn unavailable(&self, _: &Runs) -> Option<Problem> {
        None
    }

    fn build(&self, version: &ModelVersion) -> Option<Child> {
        training_job(version).map(|j| Child::Job(Box::new(j)))
    }

    fn run(&self, name: &str, runs: &Runs) -> Run {
        let Some(job) = named(runs.jobs, name) else { return Run::Missing };
        match job_outcome(job, runs.pods) {
            JobOutcome::Running => Run::Running(None),
            JobOutcome::Failed { reason, message, finished } => Run::Failed { reason, message, finished },
            JobOutcome::Succeeded { message, finished } => {
                Run::Succeeded(Finished { message, finished, ..Finished::default() })
            }
        }
    }

    fn exists(&self, name: &str, runs: &Runs) -> bool {
        named(runs.jobs, name).is_some()
    }
}
