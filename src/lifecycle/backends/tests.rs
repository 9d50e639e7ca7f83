//! Each backend from plain values: what it creates, how it reads progress and outcome, what
//! stops it, and the Model it stalls when its engine is not there.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;

use crate::api::engines::{
    EngineCondition, RayJob, RayJobStatus, RayJobTraining, RuntimeKind, TrainJob, TrainJobStatus, TrainJobTraining,
    TrainerMetric, TrainerStatus, TrainingBackend, TrainingRuntimeRef,
};
use crate::api::{Model, ModelPhase, ModelVersion, ModelVersionStatus, VersionPhase};
use crate::lifecycle::inputs::{inputs_hash, new_version};
use crate::lifecycle::model::{Children, Engine, plan_model};
use crate::lifecycle::plan::{Child, Kind, Write};
use crate::lifecycle::testing::{model, shared, succeeded_pod as pod};

fn now() -> Timestamp {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

fn on_train_job(mut m: Model) -> Model {
    let training = m.spec.training.as_mut().unwrap();
    training.template.metadata = Some(ObjectMeta {
        annotations: Some([("sidecar.istio.io/inject".into(), "false".into())].into()),
        ..Default::default()
    });
    training.backend = TrainingBackend::TrainJob;
    training.train_job = Some(TrainJobTraining {
        runtime_ref: TrainingRuntimeRef { name: "torch-distributed".into(), kind: RuntimeKind::ClusterTrainingRuntime },
        num_nodes: Some(4),
        num_proc_per_node: Some(2),
    });
    training.queue_name = Some("team-a".into());
    m
}

fn on_ray_job(mut m: Model) -> Model {
    let training = m.spec.training.as_mut().unwrap();
    training.backend = TrainingBackend::RayJob;
    training.ray_job = Some(RayJobTraining {
        entrypoint: "python train.py".into(),
        ray_cluster_spec: Some(serde_json::json!({"headGroupSpec": {}}).as_object().unwrap().clone()),
        cluster_selector: None,
        shutdown_after_job_finishes: None,
    });
    m
}

fn version(m: &Model, n: u32, phase: Option<VersionPhase>) -> ModelVersion {
    let mut v = new_version(m, n, vec![], now()).unwrap();
    v.metadata.uid = Some(format!("mv-{n}"));
    v.status = phase.map(|p| ModelVersionStatus { phase: Some(p), ..Default::default() });
    v
}

fn train_job(m: &Model, n: u32, status: Option<TrainJobStatus>) -> TrainJob {
    let Some(Child::TrainJob(t)) = super::backend(TrainingBackend::TrainJob).build(&version(m, n, None)) else {
        panic!("a TrainJob is built")
    };
    TrainJob { status, ..*t }
}

fn condition(type_: &str, reason: &str) -> EngineCondition {
    EngineCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(format!("{type_} ({reason})")),
        last_transition_time: Some(Time(now() - jiff::SignedDuration::from_mins(1))),
        ..Default::default()
    }
}

fn children(versions: Vec<ModelVersion>) -> Children {
    Children {
        versions: shared(versions),
        train_jobs: Engine::Watched(vec![]),
        ray_jobs: Engine::Watched(vec![]),
        ..Children::default()
    }
}

/// What a plan deletes: kind and name, in order.
fn deletes(plan: &crate::lifecycle::model::ModelPlan) -> Vec<(Kind, &str)> {
    plan.steps.iter().filter_map(|w| if let Write::Delete(k, n) = w { Some((*k, n.as_str())) } else { None }).collect()
}

fn version_status(plan: &crate::lifecycle::model::ModelPlan, n: u32) -> Option<ModelVersionStatus> {
    let name = format!("churn-v{n}");
    plan.version_statuses().into_iter().find(|(v, _)| *v == name).map(|(_, s)| s.clone())
}

#[test]
fn a_train_job_carries_the_trainer_the_nodes_the_env_the_queue_and_the_version_s_labels() {
    let m = on_train_job(model("churn"));
    let t = train_job(&m, 3, None);
    assert_eq!(t.metadata.name.as_deref(), Some("churn-v3-train"));
    let labels = t.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kueue.x-k8s.io/queue-name"], "team-a");
    assert_eq!(labels["modelcycle.io/version"], "3");
    assert_eq!(t.metadata.owner_references.as_ref().unwrap()[0].uid, "mv-3");
    let runtime = t.spec.runtime_ref.as_ref().unwrap();
    assert_eq!((runtime.name.as_str(), runtime.kind.as_deref()), ("torch-distributed", Some("ClusterTrainingRuntime")));
    let trainer = t.spec.trainer.as_ref().unwrap();
    assert_eq!(trainer.image.as_deref(), Some("trainer:1"));
    assert_eq!((trainer.num_nodes, trainer.num_proc_per_node.clone()), (Some(4), Some(serde_json::json!(2))));
    let env: BTreeMap<_, _> = trainer.env.iter().map(|e| (e.name.as_str(), e.value.as_deref().unwrap())).collect();
    assert_eq!((env["MODELCYCLE_VERSION"], env["MODELCYCLE_PARAM_LEARNING_RATE"]), ("3", "0.1"));
    assert_eq!(t.spec.active_deadline_seconds, Some(3600));
    // The trainer nodes' pods carry the labels the controller watches trainer pods by.
    let patch = &t.spec.runtime_patches[0];
    let node = &patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0];
    assert_eq!(node["name"], "node");
    let pod_labels = &node["template"]["spec"]["template"]["metadata"]["labels"];
    let pod_annotations = &node["template"]["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        pod_annotations["sidecar.istio.io/inject"], "false",
        "the template's annotations reach the trainer pods"
    );
    assert_eq!(
        (pod_labels["app.kubernetes.io/component"].as_str(), pod_labels["modelcycle.io/version"].as_str()),
        (Some("training"), Some("3"))
    );
}

#[test]
fn a_ray_job_runs_the_entrypoint_with_the_env_and_its_submitter_reports() {
    let m = on_ray_job(model("churn"));
    let Some(Child::RayJob(r)) = super::backend(TrainingBackend::RayJob).build(&version(&m, 2, None)) else {
        panic!("a RayJob is built")
    };
    assert_eq!(r.metadata.name.as_deref(), Some("churn-v2-train"));
    assert_eq!(r.spec.entrypoint.as_deref(), Some("python train.py"));
    assert_eq!(r.spec.shutdown_after_job_finishes, Some(true), "a cluster made for one version goes with it");
    let env: serde_yaml::Value = serde_yaml::from_str(r.spec.runtime_env_yaml.as_deref().unwrap()).unwrap();
    assert_eq!(env["env_vars"]["MODELCYCLE_VERSION"].as_str(), Some("2"));
    assert_eq!(env["env_vars"]["MODELCYCLE_ARTIFACT_URI"].as_str(), Some("s3://models/churn/2"));
    let submitter = r.spec.submitter_pod_template.as_ref().unwrap();
    let labels = submitter.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/component"], "training");
    assert_eq!(submitter.spec.as_ref().unwrap().restart_policy.as_deref(), Some("Never"));
}

#[test]
fn a_model_on_an_engine_the_controller_does_not_manage_is_stalled_naming_the_flag_or_the_crd() {
    let m = on_train_job(model("churn"));
    let cases = [
        (Engine::NotEnabled, "TrainJobNotEnabled", "--trainjob"),
        (Engine::NotInstalled, "TrainJobCRDMissing", "trainjobs.trainer.kubeflow.org"),
    ];
    for (engine, reason, says) in cases {
        let c = Children { train_jobs: engine, ..Children::default() };
        let p = plan_model(c.observed(&m), now());
        let status = p.status().unwrap();
        assert_eq!(status.phase, Some(ModelPhase::Stalled));
        let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(stalled.reason, reason);
        assert!(stalled.message.contains(says), "{}", stalled.message);
        assert!(p.created_versions().is_empty() && p.children().is_empty(), "nothing trains");
    }
    // A RayJob Model is not held by the TrainJob engine's absence.
    let m = on_ray_job(model("churn"));
    let c = Children { train_jobs: Engine::NotInstalled, ray_jobs: Engine::Watched(vec![]), ..Children::default() };
    assert_eq!(plan_model(c.observed(&m), now()).created_versions().len(), 1);
}

#[test]
fn a_pending_version_on_a_train_job_gets_one_and_starts_training() {
    let m = on_train_job(model("churn"));
    let c = children(vec![version(&m, 1, None)]);
    let p = plan_model(c.observed(&m), now());
    let kinds: Vec<Kind> = p.children().iter().map(|c| c.kind()).collect();
    assert_eq!(kinds, [Kind::TrainJob], "a TrainJob, no Job");
    let status = version_status(&p, 1).unwrap();
    assert_eq!(status.phase, Some(VersionPhase::Training));
    assert_eq!(status.job_name.as_deref(), Some("churn-v1-train"));
    assert!(status.decisions[0].message.contains("training TrainJob churn-v1-train started"), "{:?}", status.decisions);
}

#[test]
fn a_running_train_job_s_progress_is_on_its_version() {
    let m = on_train_job(model("churn"));
    let running = TrainJobStatus {
        trainer_status: Some(TrainerStatus {
            progress_percentage: Some(40),
            estimated_remaining_seconds: Some(900),
            metrics: vec![TrainerMetric { name: "loss".into(), value: "0.31".into() }],
            last_updated_time: Some(Time(now())),
        }),
        ..Default::default()
    };
    let mut c = children(vec![version(&m, 1, Some(VersionPhase::Training))]);
    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, Some(running))]));
    let p = plan_model(c.observed(&m), now());
    let progress = version_status(&p, 1).unwrap().progress.unwrap();
    assert_eq!((progress.percent, progress.remaining_seconds), (Some(40), Some(900)));
    assert_eq!(progress.metrics["loss"], "0.31");
    assert!(p.children().is_empty(), "the TrainJob is there: not applied again");
}

#[test]
fn a_completed_train_job_is_judged_by_its_rank_zero_pod_s_report() {
    let m = on_train_job(model("churn"));
    let done = TrainJobStatus { conditions: vec![condition("Complete", "JobsCompleted")], ..Default::default() };
    let mut c = children(vec![version(&m, 1, Some(VersionPhase::Training))]);
    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, Some(done))]));
    let node = |index: &'static str| {
        [
            ("jobset.sigs.k8s.io/jobset-name", "churn-v1-train"),
            ("jobset.sigs.k8s.io/replicatedjob-name", "node"),
            ("jobset.sigs.k8s.io/job-index", index),
        ]
    };
    c.pods = shared([
        pod(&node("1"), r#"{"metrics": {"auc": 0.5}}"#),
        pod(&node("0"), r#"{"metrics": {"auc": 0.91}}"#),
        pod(&[("jobset.sigs.k8s.io/jobset-name", "other-v1-train")], r#"{"metrics": {"auc": 0.1}}"#),
    ]);
    let p = plan_model(c.observed(&m), now());
    let status = version_status(&p, 1).unwrap();
    assert_eq!(
        status.metrics["auc"], 0.91,
        "judged on rank 0's report (and accepted), not rank 1's nor another TrainJob's"
    );
    assert_eq!(status.phase, Some(VersionPhase::RollingOut));
}

#[test]
fn a_completed_train_job_without_a_message_is_judged_by_its_trainer_status_metrics() {
    let m = on_train_job(model("churn"));
    let metrics = |auc: &str| TrainJobStatus {
        conditions: vec![condition("Complete", "JobsCompleted")],
        trainer_status: Some(TrainerStatus {
            progress_percentage: Some(100),
            metrics: vec![TrainerMetric { name: "auc".into(), value: auc.into() }],
            last_updated_time: Some(Time(now())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut c = children(vec![version(&m, 1, Some(VersionPhase::Training))]);
    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, Some(metrics("0.93")))]));
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!((status.phase, status.metrics["auc"]), (Some(VersionPhase::RollingOut), 0.93));

    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, Some(metrics("high")))]));
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!(status.phase, Some(VersionPhase::Failed));
    assert!(status.message.as_deref().unwrap().contains("not a finite number"), "{:?}", status.message);
}

#[test]
fn a_failed_train_job_fails_its_version_with_the_engine_s_reason() {
    let m = on_train_job(model("churn"));
    let failed = TrainJobStatus { conditions: vec![condition("Failed", "DeadlineExceeded")], ..Default::default() };
    let mut c = children(vec![version(&m, 1, Some(VersionPhase::Training))]);
    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, Some(failed))]));
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!(status.phase, Some(VersionPhase::Failed));
    let decision = status.decisions.last().unwrap();
    assert_eq!(decision.reason, "DeadlineExceeded");
    assert!(decision.message.contains("training TrainJob churn-v1-train failed"), "{}", decision.message);
}

#[test]
fn a_ray_job_is_read_from_its_deployment_and_job_statuses_and_its_submitter_s_message() {
    let m = on_ray_job(model("churn"));
    let ray_job = |deployment: &str, job: &str| {
        let Some(Child::RayJob(r)) = super::backend(TrainingBackend::RayJob).build(&version(&m, 1, None)) else {
            panic!("a RayJob is built")
        };
        let status = RayJobStatus {
            job_deployment_status: Some(deployment.into()),
            job_status: Some(job.into()),
            reason: (deployment == "Failed").then(|| "DeadlineExceeded".into()),
            message: Some("the job ran too long".into()),
            end_time: Some(Time(now())),
            ..Default::default()
        };
        Arc::new(RayJob { status: Some(status), ..*r })
    };
    let mut c = children(vec![version(&m, 1, Some(VersionPhase::Training))]);
    c.pods = shared([pod(&[("batch.kubernetes.io/job-name", "churn-v1-train")], r#"{"metrics": {"auc": 0.9}}"#)]);

    c.ray_jobs = Engine::Watched(vec![ray_job("Running", "RUNNING")]);
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!(status.progress.unwrap().message.as_deref(), Some("RayJob Running, Ray job RUNNING"));

    c.ray_jobs = Engine::Watched(vec![ray_job("Complete", "SUCCEEDED")]);
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!((status.phase, status.metrics["auc"]), (Some(VersionPhase::RollingOut), 0.9));

    c.ray_jobs = Engine::Watched(vec![ray_job("Failed", "FAILED")]);
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!(status.phase, Some(VersionPhase::Failed));
    assert_eq!(status.decisions.last().unwrap().reason, "DeadlineExceeded");

    c.ray_jobs = Engine::Watched(vec![ray_job("Complete", "FAILED")]);
    let status = version_status(&plan_model(c.observed(&m), now()), 1).unwrap();
    assert_eq!(status.phase, Some(VersionPhase::Failed), "a Ray job that failed fails the version");
}

#[test]
fn replace_stops_the_run_of_the_replaced_version_s_own_backend() {
    use crate::api::{ConcurrencyPolicy, RetrainPolicy, RetrainPolicySpec};
    let m = on_train_job(model("churn"));
    let mut c = children(vec![version(&m, 1, Some(VersionPhase::Training))]);
    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, None)]));
    let mut changed = m.clone();
    changed.spec.training.as_mut().unwrap().dataset.version = "2026-11-02".into();
    let mut policy = RetrainPolicy::new(
        "nightly",
        serde_json::from_value::<RetrainPolicySpec>(serde_json::json!({
            "modelRef": {"name": "churn"}, "dataChange": true, "concurrencyPolicy": "Replace"
        }))
        .unwrap(),
    );
    policy.metadata.namespace = Some("ml".into());
    assert_eq!(policy.spec.concurrency_policy, ConcurrencyPolicy::Replace);
    c.policies = shared([policy]);
    let p = plan_model(c.observed(&changed), now());
    assert_eq!(deletes(&p), [(Kind::TrainJob, "churn-v1-train")], "the TrainJob goes, not a Job of its name");
    assert_eq!(version_status(&p, 1).unwrap().phase, Some(VersionPhase::Failed));
}

#[test]
fn the_default_backend_leaves_the_inputs_hash_of_existing_versions_as_it_was() {
    let m = model("churn");
    let training = m.spec.training.as_ref().unwrap();
    let text = serde_json::to_string(training).unwrap();
    assert!(!text.contains("backend") && !text.contains("queueName"), "{text}");
    let on_engine = on_train_job(m.clone());
    assert_ne!(
        inputs_hash(training),
        inputs_hash(on_engine.spec.training.as_ref().unwrap()),
        "a new backend trains anew"
    );
}

#[test]
fn a_ray_job_submitter_restarted_on_failure_or_a_trainer_without_an_image_stalls_the_model() {
    let mut m = on_train_job(model("churn"));
    let training = m.spec.training.as_mut().unwrap();
    training.template.spec.as_mut().unwrap().containers[0].image = None;
    let c = children(vec![]);
    let p = plan_model(c.observed(&m), now());
    let stalled = p.status().unwrap().conditions.iter().find(|c| c.type_ == "Stalled").cloned().unwrap();
    assert_eq!(stalled.reason, "InvalidTrainerTemplate");
    assert!(stalled.message.contains("image"), "{}", stalled.message);
    assert!(p.created_versions().is_empty());

    let mut m = on_ray_job(model("churn"));
    m.spec.training.as_mut().unwrap().template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
    let p = plan_model(c.observed(&m), now());
    let stalled = p.status().unwrap().conditions.iter().find(|c| c.type_ == "Stalled").cloned().unwrap();
    assert!(stalled.message.contains("RayJob's submitter"), "{}", stalled.message);
}

#[test]
fn an_engine_s_run_is_named_short_enough_for_the_names_the_engine_derives_from_it() {
    let long = "a-model-name-that-is-long-enough-to-need-cutting";
    for (backend, max) in [(TrainingBackend::Job, 63), (TrainingBackend::TrainJob, 44), (TrainingBackend::RayJob, 47)] {
        let name = crate::objects::names::run_name(backend, long, 12);
        assert!(name.len() <= max && name.ends_with("-v12-train"), "{backend:?}: {name}");
    }
    assert_eq!(crate::objects::names::run_name(TrainingBackend::TrainJob, "churn", 3), "churn-v3-train");
    // What is built is what is looked for.
    let mut m = on_train_job(model("churn"));
    m.metadata.name = Some(long.into());
    let v = version(&m, 1, None);
    let Some(Child::TrainJob(t)) = super::backend(TrainingBackend::TrainJob).build(&v) else { panic!("built") };
    assert_eq!(t.metadata.name, Some(super::run_name(&v)));
    assert!(super::run_name(&v).len() <= 44);
}

#[test]
fn run_history_limit_deletes_an_old_run_of_its_own_backend() {
    let mut m = on_train_job(model("churn"));
    m.spec.run_history_limit = 1;
    let mut c =
        children(vec![version(&m, 1, Some(VersionPhase::Retired)), version(&m, 2, Some(VersionPhase::Serving))]);
    c.train_jobs = Engine::Watched(shared([train_job(&m, 1, None), train_job(&m, 2, None)]));
    let p = plan_model(c.observed(&m), now());
    assert_eq!(deletes(&p), [(Kind::TrainJob, "churn-v1-train")], "v1's TrainJob goes, v2's (the newest) stays");
}

#[test]
fn a_backend_says_a_run_exists_exactly_when_it_can_read_what_became_of_it() {
    use super::{Run, Runs, backend};
    let built = |m: &Model| backend(m.spec.training.as_ref().unwrap().backend).build(&version(m, 1, None));
    let (job_model, train_model, ray_model) =
        (model("churn"), on_train_job(model("churn")), on_ray_job(model("churn")));
    let Some(Child::Job(job)) = built(&job_model) else { panic!("a Job is built") };
    let Some(Child::TrainJob(train)) = built(&train_model) else { panic!("a TrainJob is built") };
    let Some(Child::RayJob(ray)) = built(&ray_model) else { panic!("a RayJob is built") };
    let (jobs, trains, rays) = (shared([*job]), shared([*train]), shared([*ray]));
    let present = Runs {
        jobs: &jobs,
        pods: &[],
        train_jobs: Engine::Watched(trains.as_slice()),
        ray_jobs: Engine::Watched(rays.as_slice()),
    };
    let absent = Runs { jobs: &[], pods: &[], train_jobs: Engine::Watched(&[]), ray_jobs: Engine::Watched(&[]) };
    let unwatched = Runs { jobs: &[], pods: &[], train_jobs: Engine::NotInstalled, ray_jobs: Engine::NotEnabled };
    for m in [&job_model, &train_model, &ray_model] {
        let b = backend(m.spec.training.as_ref().unwrap().backend);
        let name = super::run_name(&version(m, 1, None));
        for (runs, expected) in [(&present, true), (&absent, false), (&unwatched, false)] {
            assert_eq!(b.exists(&name, runs), expected, "{:?} {name} in {runs:?}", b.kind());
            assert_eq!(b.run(&name, runs) != Run::Missing, expected, "exists agrees with run for {name}");
        }
        assert!(!b.exists(&super::run_name(&version(m, 2, None)), &present), "another version's run is not this one");
    }
}
