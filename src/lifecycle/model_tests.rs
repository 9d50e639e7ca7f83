//! Every transition of the core, from plain values.

use super::*;
use crate::api::{ModelVersionStatus, VersionPhase};
use crate::lifecycle::inputs::new_version;
use crate::lifecycle::testing::{model, shared};
use crate::objects::deployment::{deployed_version, serving_deployment};
use crate::objects::job::training_job;
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn now() -> Timestamp {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

fn version(n: u32, phase: Option<VersionPhase>) -> ModelVersion {
    let mut v = new_version(&model("churn"), n, vec![], now()).unwrap();
    v.metadata.uid = Some(format!("mv-{n}"));
    v.status = phase.map(|p| ModelVersionStatus { phase: Some(p), ..Default::default() });
    v
}

fn with_metrics(mut v: ModelVersion, auc: f64) -> ModelVersion {
    v.status.get_or_insert_with(Default::default).metrics.insert("auc".into(), auc);
    v
}

fn job(v: &ModelVersion, condition: Option<&str>) -> Job {
    let mut job = training_job(v).unwrap();
    job.status = Some(JobStatus {
        conditions: condition.map(|c| {
            vec![JobCondition {
                type_: c.into(),
                status: "True".into(),
                reason: Some(if c == "Failed" { "DeadlineExceeded" } else { "CompletionsReached" }.into()),
                message: Some("Job was active longer than specified deadline".into()),
                ..Default::default()
            }]
        }),
        completion_time: (condition == Some("Complete")).then(|| Time(now() - jiff::SignedDuration::from_mins(1))),
        ..Default::default()
    });
    job
}

fn pod(job: &Job, message: &str) -> Pod {
    let name = job.metadata.name.clone().unwrap();
    crate::lifecycle::testing::succeeded_pod(&[("batch.kubernetes.io/job-name", &name)], message)
}

/// The serving Deployment of `n`, with a finished (or failed) rollout.
fn deployment(n: u32, healthy: bool) -> Deployment {
    let mut d = serving_deployment(&model("churn"), &version(n, None)).unwrap();
    d.metadata.generation = Some(2);
    d.status = Some(DeploymentStatus {
        observed_generation: Some(2),
        replicas: Some(if healthy { 2 } else { 3 }),
        updated_replicas: Some(if healthy { 2 } else { 1 }),
        available_replicas: Some(2),
        conditions: (!healthy).then(|| {
            vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet has timed out progressing.".into()),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    d
}

fn plan(m: &Model, children: &Children) -> ModelPlan {
    plan_model(children.observed(m), now())
}

fn new_phase(plan: &ModelPlan, n: u32) -> Option<VersionPhase> {
    let name = format!("churn-v{n}");
    plan.version_statuses().iter().find(|(v, _)| *v == name).and_then(|(_, s)| s.phase)
}

fn applied_jobs(plan: &ModelPlan) -> usize {
    plan.children().iter().filter(|c| matches!(c, Child::Job(_))).count()
}

fn applied_deployment(plan: &ModelPlan) -> Option<u32> {
    plan.children().iter().find_map(|c| match c {
        Child::Deployment(d) => deployed_version(d),
        _ => None,
    })
}

#[test]
fn a_new_model_gets_v1_with_an_initial_trigger() {
    let p = plan(&model("churn"), &Children::default());
    assert_eq!(p.created_versions().len(), 1);
    let v1 = &p.created_versions()[0];
    assert_eq!((v1.spec.version, v1.spec.trigger.reason.as_str()), (1, "Initial"));
    let status = p.status().cloned().unwrap();
    assert_eq!(
        (status.latest_version, status.candidate_version, status.phase),
        (Some(1), Some(1), Some(ModelPhase::Training))
    );
    assert_eq!(p.events()[0].reason, "VersionCreated");
}

#[test]
fn pending_version_gets_its_job_and_starts_training() {
    let children = Children { versions: shared([version(1, None)]), ..Default::default() };
    let p = plan(&model("churn"), &children);
    assert_eq!(applied_jobs(&p), 1);
    assert_eq!(new_phase(&p, 1), Some(VersionPhase::Training));
    assert!(p.created_versions().is_empty(), "no second version while one trains");
}

#[test]
fn training_version_whose_job_vanished_gets_the_same_job_again() {
    let children = Children { versions: shared([version(1, Some(VersionPhase::Training))]), ..Default::default() };
    let p = plan(&model("churn"), &children);
    assert_eq!(applied_jobs(&p), 1);
    assert_eq!(new_phase(&p, 1), None, "the phase does not change");
}

#[test]
fn a_running_job_changes_nothing() {
    let v1 = version(1, Some(VersionPhase::Training));
    let children = Children { jobs: shared([job(&v1, None)]), versions: shared([v1]), ..Default::default() };
    let mut m = model("churn");
    m.status = plan(&m, &children).status().cloned();
    let p = plan(&m, &children);
    assert_eq!(p.writes(), 0);
    assert!(p.events().is_empty());
}

#[test]
fn a_failed_job_fails_the_version_with_the_jobs_reason() {
    let v1 = version(1, Some(VersionPhase::Training));
    let children = Children { jobs: shared([job(&v1, Some("Failed"))]), versions: shared([v1]), ..Default::default() };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 1), Some(VersionPhase::Failed));
    let (_, status) = &p.version_statuses()[0];
    assert_eq!(status.decisions.last().unwrap().reason, "DeadlineExceeded");
    assert!(status.finished_at.is_some());
}

#[test]
fn a_succeeded_job_with_passing_metrics_is_ready_and_rolls_out_at_once() {
    let v1 = version(1, Some(VersionPhase::Training));
    let j = job(&v1, Some("Complete"));
    let children = Children {
        pods: shared([pod(&j, r#"{"metrics":{"auc":0.9}}"#)]),
        jobs: shared([j]),
        versions: shared([v1]),
        ..Default::default()
    };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 1), Some(VersionPhase::RollingOut));
    let (_, status) = &p.version_statuses()[0];
    let actions: Vec<_> = status.decisions.iter().map(|d| d.action.as_str()).collect();
    assert_eq!(actions, ["Accept", "Promote"], "judged Ready, then promoted");
    assert_eq!(applied_deployment(&p), Some(1));
    assert!(p.children().iter().any(|c| matches!(c, Child::Service(_))));
}

#[test]
fn a_succeeded_job_with_failing_metrics_is_rejected() {
    let v1 = version(1, Some(VersionPhase::Training));
    let j = job(&v1, Some("Complete"));
    let children = Children {
        pods: shared([pod(&j, r#"{"metrics":{"auc":0.5}}"#)]),
        jobs: shared([j]),
        versions: shared([v1]),
        ..Default::default()
    };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 1), Some(VersionPhase::Rejected));
    assert_eq!(applied_deployment(&p), None);
}

#[test]
fn a_completed_job_without_its_pod_is_waited_for_then_failed() {
    let v1 = version(1, Some(VersionPhase::Training));
    let j = job(&v1, Some("Complete"));
    let children = Children { jobs: shared([j]), versions: shared([v1]), ..Default::default() };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 1), None);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(240)), "wake when the grace ends, not before");
    let later = plan_model(children.observed(&model("churn")), now() + jiff::SignedDuration::from_mins(10));
    let (_, status) = &later.version_statuses()[0];
    assert_eq!(status.phase, Some(VersionPhase::Failed));
    assert_eq!(status.decisions.last().unwrap().reason, "NoTerminationMessage");
}

#[test]
fn a_complete_rollout_serves_the_new_version_and_retires_the_old() {
    let children = Children {
        versions: shared([version(1, Some(VersionPhase::Serving)), version(2, Some(VersionPhase::RollingOut))]),
        deployments: shared([deployment(2, true)]),
        ..Default::default()
    };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 2), Some(VersionPhase::Serving));
    assert_eq!(new_phase(&p, 1), Some(VersionPhase::Retired));
    let status = p.status().cloned().unwrap();
    assert_eq!(status.serving_version, Some(2));
    assert!(conditions::is_true(&status.conditions, conditions::READY));
}

#[test]
fn a_rollout_past_its_deadline_is_rolled_back_to_the_serving_template() {
    let children = Children {
        versions: shared([version(1, Some(VersionPhase::Serving)), version(2, Some(VersionPhase::RollingOut))]),
        deployments: shared([deployment(2, false)]),
        ..Default::default()
    };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 2), Some(VersionPhase::RolledBack));
    assert_eq!(new_phase(&p, 1), None, "v1 keeps serving");
    assert_eq!(applied_deployment(&p), Some(1), "v1's pod template is applied again");
    let status = p.status().cloned().unwrap();
    assert!(conditions::is_true(&status.conditions, conditions::DEGRADED));
}

#[test]
fn a_version_still_rolling_out_is_superseded_by_a_newer_ready_one() {
    let children = Children {
        versions: shared([
            version(1, Some(VersionPhase::Serving)),
            version(2, Some(VersionPhase::RollingOut)),
            version(3, Some(VersionPhase::Ready)),
        ]),
        deployments: shared([deployment(2, true)]),
        ..Default::default()
    };
    let mut d2 = (*children.deployments[0]).clone();
    d2.status.as_mut().unwrap().updated_replicas = Some(1);
    let children = Children { deployments: shared([d2]), ..children };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 2), Some(VersionPhase::Retired));
    assert_eq!(new_phase(&p, 3), Some(VersionPhase::RollingOut));
    assert_eq!(applied_deployment(&p), Some(3));
}

#[test]
fn unchanged_inputs_after_a_rejection_do_not_retrain() {
    let children = Children {
        versions: shared([
            with_metrics(version(1, Some(VersionPhase::Serving)), 0.9),
            version(2, Some(VersionPhase::Rejected)),
        ]),
        deployments: shared([deployment(1, true)]),
        ..Default::default()
    };
    let p = plan(&model("churn"), &children);
    assert!(p.created_versions().is_empty());
}

#[test]
fn changed_inputs_train_the_next_number_never_a_reused_one() {
    let mut m = model("churn");
    m.spec.training.as_mut().unwrap().dataset.version = "2026-12-01".into();
    m.status = Some(ModelStatus { latest_version: Some(5), ..Default::default() });
    let children = Children {
        versions: shared([version(2, Some(VersionPhase::Serving))]),
        deployments: shared([deployment(2, true)]),
        ..Default::default()
    };
    let p = plan(&m, &children);
    assert_eq!(p.created_versions()[0].spec.version, 6, "v3..v5 were pruned but their numbers stay used");
    assert_eq!(p.created_versions()[0].spec.trigger.causes[0].evidence, "dataset.version 2026-11-01 → 2026-12-01");
}

#[test]
fn a_retrain_policy_that_cannot_be_read_holds_retraining_instead_of_dropping_its_limits() {
    let mut m = model("churn");
    m.spec.training.as_mut().unwrap().dataset.version = "2026-12-01".into();
    let serving = Children {
        versions: shared([with_metrics(version(1, Some(VersionPhase::Serving)), 0.9)]),
        deployments: shared([deployment(1, true)]),
        ..Default::default()
    };
    assert_eq!(plan(&m, &serving).created_versions().len(), 1, "without any policy the new dataset trains");
    let held = Children { unreadable_policies: vec!["nightly".into()], ..serving };
    assert!(plan(&m, &held).created_versions().is_empty(), "fail closed: its suspend and cooldown may forbid it");
    let first = Children { unreadable_policies: vec!["nightly".into()], ..Default::default() };
    assert_eq!(plan(&m, &first).created_versions()[0].spec.trigger.reason, "Initial", "the first version still trains");
}

#[test]
fn the_serving_version_whose_deployment_fails_is_degraded_not_rolled_back() {
    let children = Children {
        versions: shared([version(1, Some(VersionPhase::Serving))]),
        deployments: shared([deployment(1, false)]),
        ..Default::default()
    };
    let p = plan(&model("churn"), &children);
    assert_eq!(new_phase(&p, 1), None);
    let status = p.status().cloned().unwrap();
    let degraded = conditions::find(&status.conditions, conditions::DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "ServingUnhealthy"));
}

#[test]
fn a_stalled_model_plans_no_writes_but_its_status() {
    let mut m = model("churn");
    m.spec.training.as_mut().unwrap().artifact_uri = "s3://{bucket}/x".into();
    let children = Children { versions: shared([version(1, None)]), ..Default::default() };
    let p = plan(&m, &children);
    assert_eq!(p.writes(), 1, "only the Model status");
    assert!(p.created_versions().is_empty() && p.children().is_empty());
}

#[test]
fn a_finished_version_whose_job_was_deleted_never_gets_it_again() {
    for phase in [
        VersionPhase::Failed,
        VersionPhase::Rejected,
        VersionPhase::Ready,
        VersionPhase::Retired,
        VersionPhase::RolledBack,
    ] {
        let children = Children {
            versions: shared([version(1, Some(VersionPhase::Serving)), version(2, Some(phase))]),
            deployments: shared([deployment(1, true)]),
            ..Default::default()
        };
        let p = plan(&model("churn"), &children);
        assert_eq!(applied_jobs(&p), 0, "{phase:?}: no Job for a version past training");
    }
}

#[test]
fn a_model_routed_through_gateway_api_is_stalled_by_a_controller_that_does_not_manage_routes() {
    use crate::api::gateway::{GatewayApiRouting, GatewayRef, TrafficRouting};
    let mut m = model("churn");
    m.spec.serving.traffic_routing = Some(TrafficRouting {
        gateway_api: Some(GatewayApiRouting {
            parent_refs: vec![GatewayRef { name: "public".into(), ..Default::default() }],
            ..Default::default()
        }),
    });
    let without_routes = Children { routes: None, ..Default::default() };
    let p = plan(&m, &without_routes);
    assert!(p.created_versions().is_empty() && p.children().is_empty(), "nothing is trained or served");
    let status = p.status().cloned().unwrap();
    assert_eq!(status.phase, Some(ModelPhase::Stalled));
    let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.reason, "GatewayAPINotEnabled");
    assert!(stalled.message.contains("--gateway-api"), "{}", stalled.message);
    assert!(p.events().iter().any(|e| e.reason == "GatewayAPINotEnabled"), "{:?}", p.events());
    let with_routes = Children { routes: Some(vec![]), ..Default::default() };
    assert_eq!(plan(&m, &with_routes).created_versions().len(), 1, "a controller that manages routes starts training");
}

#[test]
fn a_model_served_by_kserve_is_stalled_by_a_controller_that_does_not_manage_inference_services() {
    use crate::api::kserve::{KServeMode, KServeServing, ServingTarget};
    let mut m = model("churn");
    m.spec.serving.target = ServingTarget::KServe;
    let predictor = serde_json::json!({"model": {"modelFormat": {"name": "sklearn"}}});
    let serde_json::Value::Object(predictor) = predictor else { unreachable!() };
    m.spec.serving.kserve = Some(KServeServing { deployment_mode: KServeMode::Knative, predictor });
    let without = Children { inference_services: None, ..Default::default() };
    let p = plan(&m, &without);
    assert!(p.created_versions().is_empty() && p.children().is_empty(), "nothing is trained or served");
    let status = p.status().cloned().unwrap();
    let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.reason, "KServeNotEnabled");
    assert!(stalled.message.contains("--kserve"), "{}", stalled.message);
    let with = Children { inference_services: Some(vec![]), ..Default::default() };
    assert_eq!(plan(&m, &with).created_versions().len(), 1, "a controller that manages InferenceServices trains");

    // A canary in Standard mode that got past admission (stored before the rule) stalls too.
    if let Some(k) = m.spec.serving.kserve.as_mut() {
        k.deployment_mode = KServeMode::Standard;
    }
    m.spec.serving.strategy.canary = Some(crate::api::CanaryStrategy {
        steps: vec![crate::api::CanaryStep { weight: 10, pause: None, headers: vec![] }],
        shadow: None,
    });
    let stalled = plan(&m, &with).status().cloned().unwrap();
    let c = stalled.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(c.reason, "InvalidKServe");
    assert!(c.message.contains("ignores canaryTrafficPercent"), "{}", c.message);
}

#[test]
fn status_writes_carry_the_resource_version_they_were_decided_from() {
    let policy: RetrainPolicy = serde_yaml::from_str(
        "metadata: {name: nightly, namespace: ml, generation: 2, resourceVersion: \"77\"}\nspec: {modelRef: {name: churn}, manual: true}",
    )
    .unwrap();
    let mut v1 = version(1, Some(VersionPhase::Pending));
    v1.metadata.resource_version = Some("55".into());
    let children = Children { versions: shared([v1]), policies: shared([policy]), ..Default::default() };
    let p = plan(&model("churn"), &children);
    let read_at = |wanted: &str| {
        p.steps.iter().find_map(|w| match w {
            Write::VersionStatus(w) if w.name == wanted => Some(w.read_at.clone()),
            Write::PolicyStatus(w) if w.name == wanted => Some(w.read_at.clone()),
            _ => None,
        })
    };
    assert_eq!(read_at("churn-v1"), Some(Some("55".into())), "v1 starts training: written onto v1 as read");
    assert_eq!(read_at("nightly"), Some(Some("77".into())), "the policy's first status: onto the policy as read");
}

/// The objects of `kind` a plan deletes, by name.
fn deleted(plan: &ModelPlan, kind: Kind) -> Vec<&str> {
    plan.steps
        .iter()
        .filter_map(|w| match w {
            Write::Delete(k, name) if *k == kind => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// The training Jobs a plan deletes, by name.
fn deleted_runs(plan: &ModelPlan) -> Vec<&str> {
    deleted(plan, Kind::Job)
}

/// v1..v5 finished (v5 serving, v4 the rollback target) with their finished Jobs, and v6 training.
fn five_finished_runs_and_one_training() -> Children {
    let finished = [
        (1, VersionPhase::Retired),
        (2, VersionPhase::Rejected),
        (3, VersionPhase::Failed),
        (4, VersionPhase::Retired),
        (5, VersionPhase::Serving),
    ];
    let mut versions: Vec<ModelVersion> =
        finished.iter().map(|&(n, phase)| with_metrics(version(n, Some(phase)), 0.9)).collect();
    let mut jobs: Vec<Job> = versions.iter().map(|v| job(v, Some("Complete"))).collect();
    let training = version(6, Some(VersionPhase::Training));
    jobs.push(job(&training, None));
    versions.push(training);
    Children {
        versions: shared(versions),
        jobs: shared(jobs),
        deployments: shared([deployment(5, true)]),
        ..Default::default()
    }
}

#[test]
fn finished_runs_past_run_history_limit_are_deleted_oldest_first_and_a_training_one_never() {
    let children = five_finished_runs_and_one_training();
    let p = plan(&model("churn"), &children);
    assert_eq!(deleted_runs(&p), ["churn-v1-train", "churn-v2-train"], "the newest three finished runs stay");
    assert!(deleted(&p, Kind::ModelVersion).is_empty(), "the versions all stay");

    let mut none_kept = model("churn");
    none_kept.spec.run_history_limit = 0;
    let p = plan(&none_kept, &children);
    assert_eq!(
        deleted_runs(&p),
        ["churn-v1-train", "churn-v2-train", "churn-v3-train", "churn-v4-train", "churn-v5-train"]
    );

    // Once they are gone, nothing more is deleted: the plan names only runs that exist.
    let gone = Children { jobs: children.jobs[2..].to_vec(), ..children.clone() };
    assert!(deleted_runs(&plan(&model("churn"), &gone)).is_empty());
}

#[test]
fn a_run_whose_outcome_this_plan_records_stays_until_the_record_is_written() {
    // v1's Job completed and its pod reported: this plan records the outcome, so the version
    // leaves training only once that is written; deleting its Job now could lose the report.
    let v1 = version(1, Some(VersionPhase::Training));
    let j = job(&v1, Some("Complete"));
    let children = Children {
        pods: shared([pod(&j, r#"{"metrics": {"auc": 0.93}}"#)]),
        versions: shared([v1]),
        jobs: shared([j]),
        ..Default::default()
    };
    let mut m = model("churn");
    m.spec.run_history_limit = 0;
    let p = plan(&m, &children);
    assert_ne!(new_phase(&p, 1), None, "the outcome is recorded");
    assert!(deleted_runs(&p).is_empty(), "deleted: {:?}", deleted_runs(&p));
}

#[test]
fn a_pruned_version_s_run_is_left_to_the_garbage_collector() {
    let mut m = model("churn");
    m.spec.version_history_limit = 2;
    m.spec.run_history_limit = 0;
    let p = plan(&m, &five_finished_runs_and_one_training());
    assert_eq!(deleted(&p, Kind::ModelVersion), ["churn-v1", "churn-v2"]);
    assert_eq!(deleted_runs(&p), ["churn-v3-train", "churn-v4-train", "churn-v5-train"]);
}
