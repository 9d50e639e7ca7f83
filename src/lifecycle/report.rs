//! What a finished training Job says: its outcome, and the metrics in its termination message.

use std::sync::Arc;

use super::backends::job_of;
use super::transitions::Reason;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::Value;

/// The most Kubernetes keeps of a termination message.
pub const TERMINATION_MESSAGE_MAX: usize = 4096;

/// Where a training Job is.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// Still running (or not started).
    Running,
    /// Finished well; the message of its succeeded pod, once that pod is observed.
    Succeeded {
        /// The termination message, if a succeeded pod with one was observed.
        message: Option<String>,
        /// When the Job completed.
        finished: Option<Timestamp>,
    },
    /// Failed for good.
    Failed {
        /// The Job's reason, e.g. `BackoffLimitExceeded` or `DeadlineExceeded`.
        reason: String,
        /// The Job's message.
        message: String,
        /// When it failed.
        finished: Option<Timestamp>,
    },
}

/// The outcome of `job`, reading the termination message from its pods.
pub fn job_outcome(job: &Job, pods: &[Arc<Pod>]) -> JobOutcome {
    let status = job.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let is_true = |type_: &str| conditions.iter().find(|c| c.type_ == type_ && c.status == "True");
    if let Some(failed) = is_true("Failed") {
        return JobOutcome::Failed {
            reason: failed.reason.clone().unwrap_or_else(|| "JobFailed".into()),
            message: failed.message.clone().unwrap_or_default(),
            finished: failed.last_transition_time.as_ref().map(|t| t.0),
        };
    }
    if is_true("Complete").is_none() {
        return JobOutcome::Running;
    }
    let job_name = job.name_any();
    let message = pods
        .iter()
        .filter(|p| job_of(p) == Some(job_name.as_str()))
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()))
        .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone());
    JobOutcome::Succeeded { message, finished: status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0) }
}

/// What the trainer reported.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TrainerReport {
    /// Metric name to value.
    pub metrics: BTreeMap<String, f64>,
    /// Reference distributions by feature, e.g. `predictions`.
    pub reference: BTreeMap<String, crate::stats::Histogram>,
    /// What it read, if it said.
    pub dataset: Option<crate::api::DatasetRead>,
}

/// The longest dataset digest kept.
pub const DIGEST_MAX: usize = 256;

/// A termination message that could not be read, with the reason for the ModelVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportError {
    /// CamelCase reason.
    pub reason: Reason,
    /// What was wrong, quoting the start of what was found.
    pub message: String,
}

/// Reads `{"metrics": {"name": number, ...}}` from a termination message.
pub fn parse_termination_message(message: Option<&str>) -> Result<TrainerReport, ReportError> {
    let text = message.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(ReportError {
            reason: Reason::NoTerminationMessage,
            message:
                "the trainer wrote no termination message; write {\"metrics\": {...}} as JSON to /dev/termination-log"
                    .into(),
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| ReportError {
        reason: Reason::InvalidTerminationMessage,
        message: format!("the termination message is not JSON ({e}); it starts with {:?}", quote_start(text)),
    })?;
    let Some(metrics) = value.get("metrics").and_then(Value::as_object) else {
        return Err(ReportError {
            reason: Reason::InvalidTerminationMessage,
            message: format!(
                "the termination message has no \"metrics\" object; it starts with {:?}",
                quote_start(text)
            ),
        });
    };
    let mut report = TrainerReport::default();
    for (name, value) in metrics {
        let Some(number) = value.as_f64().filter(|n| n.is_finite()) else {
            return Err(ReportError {
                reason: Reason::NonNumericMetric,
                message: format!("metric {name:?} is not a finite number: {}", quote_start(&value.to_string())),
            });
        };
        report.metrics.insert(name.clone(), number);
    }
    if let Some(reference) = value.get("reference") {
        report.reference = serde_json::from_value(reference.clone()).map_err(|e| ReportError {
            reason: Reason::InvalidTerminationMessage,
            message: format!("\"reference\" must map feature names to {{\"bounds\": [...], \"counts\": [...]}}: {e}"),
        })?;
    }
    if let Some(dataset) = value.get("dataset") {
        let read: crate::api::DatasetRead = serde_json::from_value(dataset.clone()).map_err(|e| ReportError {
            reason: Reason::InvalidTerminationMessage,
            message: format!("\"dataset\" must be {{\"digest\": \"sha256:...\", \"rows\": <count>}}: {e}"),
        })?;
        if read.digest.trim().is_empty() || read.digest.len() > DIGEST_MAX {
            return Err(ReportError {
                reason: Reason::InvalidTerminationMessage,
                message: format!(
                    "\"dataset\".\"digest\" must be 1 to {DIGEST_MAX} characters, got {:?}",
                    quote_start(&read.digest)
                ),
            });
        }
        report.dataset = Some(read);
    }
    Ok(report)
}

/// The report of a trainer whose engine holds its metrics (a TrainJob's `trainerStatus`, values
/// as text): each value must be a finite number.
pub fn engine_report(metrics: &BTreeMap<String, String>) -> Result<TrainerReport, ReportError> {
    let mut report = TrainerReport::default();
    for (name, text) in metrics {
        let Some(number) = text.trim().parse::<f64>().ok().filter(|n| n.is_finite()) else {
            return Err(ReportError {
                reason: Reason::NonNumericMetric,
                message: format!("the engine's metric {name:?} is not a finite number: {:?}", quote_start(text)),
            });
        };
        report.metrics.insert(name.clone(), number);
    }
    Ok(report)
}

fn quote_start(text: &str) -> String {
    text.chars().take(60).collect::<String>() + if text.chars().count() > 60 { "…" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus};
    use kube::api::ObjectMeta;

    fn job(condition: Option<(&str, &str)>) -> Job {
        Job {
            metadata: ObjectMeta { name: Some("churn-v1-train".into()), ..Default::default() },
            spec: None,
            status: Some(JobStatus {
                conditions: condition.map(|(type_, reason)| {
                    vec![JobCondition {
                        type_: type_.into(),
                        status: "True".into(),
                        reason: Some(reason.into()),
                        message: Some("Job has reached the specified backoff limit".into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn pod(job: &str, phase: &str, message: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some([("batch.kubernetes.io/job-name".to_string(), job.to_string())].into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            message: Some(message.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn running_job_has_no_outcome_yet() {
        assert_eq!(job_outcome(&job(None), &[]), JobOutcome::Running);
    }

    #[test]
    fn failed_job_keeps_its_own_reason() {
        let JobOutcome::Failed { reason, .. } = job_outcome(&job(Some(("Failed", "BackoffLimitExceeded"))), &[]) else {
            panic!("expected failure")
        };
        assert_eq!(reason, "BackoffLimitExceeded");
    }

    #[test]
    fn succeeded_job_reads_the_message_of_its_succeeded_pod_only() {
        let pods = [
            pod("churn-v1-train", "Failed", "oom"),
            pod("other-train", "Succeeded", "{}"),
            pod("churn-v1-train", "Succeeded", r#"{"metrics":{"auc":0.9}}"#),
        ]
        .map(Arc::new);
        let JobOutcome::Succeeded { message, .. } = job_outcome(&job(Some(("Complete", ""))), &pods) else { panic!() };
        assert_eq!(message.as_deref(), Some(r#"{"metrics":{"auc":0.9}}"#));
    }

    #[test]
    fn reads_metrics() {
        let report = parse_termination_message(Some(r#"{"metrics": {"auc": 0.93, "log_loss": 0.21}}"#)).unwrap();
        assert_eq!(report.metrics, BTreeMap::from([("auc".into(), 0.93), ("log_loss".into(), 0.21)]));
    }

    #[test]
    fn missing_message_says_what_to_write() {
        let err = parse_termination_message(None).unwrap_err();
        assert_eq!(err.reason, Reason::NoTerminationMessage);
        assert!(err.message.contains("/dev/termination-log"));
    }

    #[test]
    fn non_json_message_is_quoted() {
        let err = parse_termination_message(Some("Traceback (most recent call last): boom")).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidTerminationMessage);
        assert!(err.message.contains("\"Traceback (most recent call last): boom\""), "{}", err.message);
    }

    #[test]
    fn non_numeric_metric_is_named() {
        let err = parse_termination_message(Some(r#"{"metrics": {"auc": "high"}}"#)).unwrap_err();
        assert_eq!(err.reason, Reason::NonNumericMetric);
        assert!(err.message.contains("\"auc\"") && err.message.contains("high"), "{}", err.message);
    }

    #[test]
    fn reads_reference_distributions() {
        let message = r#"{"metrics":{"auc":0.9},"reference":{"predictions":{"bounds":[0.5,1.0],"counts":[3,7]}}}"#;
        let report = parse_termination_message(Some(message)).unwrap();
        assert_eq!(report.reference["predictions"].counts, [3.0, 7.0]);
        let bad = r#"{"metrics":{"auc":0.9},"reference":{"predictions":[1,2]}}"#;
        assert_eq!(parse_termination_message(Some(bad)).unwrap_err().reason, Reason::InvalidTerminationMessage);
    }

    #[test]
    fn json_without_metrics_is_refused() {
        assert_eq!(
            parse_termination_message(Some(r#"{"auc": 0.9}"#)).unwrap_err().reason,
            Reason::InvalidTerminationMessage
        );
    }

    #[test]
    fn the_data_a_trainer_read_is_read_with_its_metrics() {
        let report = parse_termination_message(Some(
            r#"{"metrics": {"auc": 0.9}, "dataset": {"digest": "sha256:ab12", "rows": 1200}}"#,
        ))
        .unwrap();
        assert_eq!(report.dataset, Some(crate::api::DatasetRead { digest: "sha256:ab12".into(), rows: Some(1200) }));
        let without = parse_termination_message(Some(r#"{"metrics": {"auc": 0.9}}"#)).unwrap();
        assert_eq!(without.dataset, None, "a trainer need not say");
        for bad in [r#"{"digest": ""}"#, r#"{"rows": 3}"#, r#"{"digest": "x", "rows": -1}"#, r#""sha256:ab""#] {
            let message = format!(r#"{{"metrics": {{"auc": 0.9}}, "dataset": {bad}}}"#);
            let e = parse_termination_message(Some(&message)).unwrap_err();
            assert_eq!(e.reason, Reason::InvalidTerminationMessage, "{bad}");
            assert!(e.message.contains("\"dataset\""), "{}", e.message);
        }
    }
}
