//! What the caches keep of each watched object: only what a decision reads.
//!
//! A watched object arrives whole, with its `managedFields` (the server-side apply bookkeeping,
//! often larger than the object) and, for pods, Jobs and Deployments, a pod spec the controller
//! wrote itself and never reads back. The scale benchmark (`e2e/scale.sh`) showed the caches
//! growing by about 150 KiB per Model; the controller keeps these instead:
//!
//! - every kind: everything but `metadata.managedFields`;
//! - every child of a Model (all but Models and RetrainPolicies): no owner references either. The
//!   controller finds an object's Model by its Model label or `spec.model`, and writes owner
//!   references whole with every apply, from the Model; it never reads them back;
//! - pods (of training Jobs): name, namespace, the labels a backend reads
//!   ([`POD_LABELS_READ`]: Model, Job, JobSet, rank), the phase and each container's termination
//!   (the trainer's report);
//! - Jobs: metadata and status (the outcome);
//! - TrainJobs and RayJobs: metadata and status (the outcome and the trainer's progress);
//! - Deployments: metadata, `spec.replicas` and status (the rollout's progress; which spec is
//!   deployed is the spec-hash annotation);
//! - Services: metadata alone (which spec is applied is the spec-hash annotation; the cluster IP,
//!   ports and selector are never read back).
//!
//! The core never reads what is dropped; `tests/integration/kube_shell.rs` runs whole reconciles on
//! objects cached as the watches cache them (trimmed, then packed: `kube/packed.rs`).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod, PodStatus, Service};
use kube::Resource;

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::kube::decoded::Decoded;
use crate::lifecycle::backends::POD_LABELS_READ;

/// Drops what the controller never reads from a watched object, before it is cached.
pub trait Trim {
    /// Trims `self` in place.
    fn trim(&mut self);
}

fn no_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A child of a Model loses its field managers and its owner references (read never; written
/// whole from the Model by every apply).
fn as_child<K: Resource>(object: &mut K) {
    no_managed_fields(object);
    object.meta_mut().owner_references = None;
}

impl Trim for Pod {
    fn trim(&mut self) {
        as_child(self);
        // The Job controller's and the template's labels, annotations, owner and finalizers are
        // never read: only which Model, Job, JobSet and rank the pod is.
        let meta = &mut self.metadata;
        if let Some(labels) = meta.labels.as_mut() {
            labels.retain(|key, _| POD_LABELS_READ.contains(&key.as_str()));
        }
        meta.annotations = None;
        meta.finalizers = None;
        meta.generate_name = None;
        self.spec = None;
        // Of the status, only the phase and each container's termination (the trainer's report)
        // are read: conditions, addresses, images and the rest go.
        if let Some(status) = self.status.take() {
            let terminated = |c: ContainerStatus| ContainerStatus {
                name: c.name,
                state: c
                    .state
                    .and_then(|s| s.terminated)
                    .map(|t| ContainerState { terminated: Some(t), ..ContainerState::default() }),
                ..ContainerStatus::default()
            };
            self.status = Some(PodStatus {
                phase: status.phase,
                container_statuses: status.container_statuses.map(|all| all.into_iter().map(terminated).collect()),
                ..PodStatus::default()
            });
        }
    }
}

impl Trim for Job {
    fn trim(&mut self) {
        as_child(self);
        self.spec = None;
    }
}

impl Trim for Deployment {
    fn trim(&mut self) {
        as_child(self);
        let replicas = self.spec.as_ref().and_then(|s| s.replicas);
        self.spec = Some(DeploymentSpec { replicas, ..DeploymentSpec::default() });
    }
}

impl Trim for Service {
    fn trim(&mut self) {
        as_child(self);
        self.spec = None;
        self.status = None;
    }
}

impl Trim for HttpRoute {
    fn trim(&mut self) {
        // Its spec is read back: rules others added to it are written back unchanged.
        as_child(self);
    }
}

impl Trim for InferenceService {
    fn trim(&mut self) {
        // Its spec is small and its status is read: only the field managers and owners go.
        as_child(self);
    }
}

impl Trim for TrainJob {
    fn trim(&mut self) {
        // Only its status is read (and its name and labels): the trainer's spec goes.
        as_child(self);
        self.spec = Default::default();
    }
}

impl Trim for RayJob {
    fn trim(&mut self) {
        // Only its status is read: the Ray cluster's spec and the submitter's template go.
        as_child(self);
        self.spec = Default::default();
    }
}

macro_rules! without_field_managers {
    ($($kind:ty),*) => {$(
        impl Trim for $kind {
            fn trim(&mut self) {
                no_managed_fields(self);
            }
        }
    )*};
}
// A Model and a RetrainPolicy are read whole, their owners too (they are not ours).
without_field_managers!(Model, RetrainPolicy);

impl Trim for ModelVersion {
    fn trim(&mut self) {
        // Its spec and status are the version's record, read whole.
        as_child(self);
    }
}

impl<K: Trim + Resource + Clone> Trim for Decoded<K> {
    fn trim(&mut self) {
        // A watched object is owned by the watch alone here, so this copies nothing.
        match &mut self.0 {
            Ok(object) => std::sync::Arc::make_mut(object).trim(),
            Err(invalid) => invalid.metadata.managed_fields = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;

    fn managed() -> Option<Vec<ManagedFieldsEntry>> {
        Some(vec![ManagedFieldsEntry { manager: Some("modelcycle".into()), ..Default::default() }])
    }

    #[test]
    fn a_deployment_keeps_its_replicas_status_and_spec_hash_and_loses_its_pod_spec() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "churn", "annotations": {"modelcycle.io/spec-hash": "abc"}, "labels": {"modelcycle.io/model": "churn"}},
            "spec": {"replicas": 3, "selector": {}, "template": {"spec": {"containers": [{"name": "server", "image": "i"}]}}},
            "status": {"availableReplicas": 2}
        }))
        .unwrap();
        d.metadata.managed_fields = managed();
        d.trim();
        assert_eq!(d.metadata.managed_fields, None);
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
        assert_eq!(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()), None);
        assert_eq!(d.status.and_then(|s| s.available_replicas), Some(2));
        assert_eq!(d.metadata.annotations.unwrap()["modelcycle.io/spec-hash"], "abc");
        assert_eq!(d.metadata.labels.unwrap()["modelcycle.io/model"], "churn");
    }

    #[test]
    fn a_training_pod_keeps_its_termination_message_and_the_labels_a_backend_reads() {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "churn-v1-train-x", "namespace": "ml", "generateName": "churn-v1-train-",
                         "labels": {"job-name": "churn-v1-train", "batch.kubernetes.io/job-name": "churn-v1-train",
                                    "controller-uid": "u", "batch.kubernetes.io/controller-uid": "u",
                                    "modelcycle.io/model": "churn", "modelcycle.io/version": "1",
                                    "jobset.sigs.k8s.io/jobset-name": "churn-v1", "jobset.sigs.k8s.io/job-index": "0",
                                    "jobset.sigs.k8s.io/replicatedjob-name": "node",
                                    "batch.kubernetes.io/job-completion-index": "0", "team": "a"},
                         "annotations": {"sidecar.istio.io/inject": "false"},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "churn-v1-train", "uid": "u"}],
                         "finalizers": ["batch.kubernetes.io/job-tracking"]},
            "spec": {"containers": [{"name": "trainer", "image": "i"}]},
            "status": {"phase": "Succeeded", "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "trainer", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                       "state": {"terminated": {"exitCode": 0, "message": "{\"metrics\":{\"auc\":0.9}}"}}}]}
        }))
        .unwrap();
        p.metadata.managed_fields = managed();
        p.trim();
        assert_eq!(p.spec, None);
        assert_eq!(p.metadata.managed_fields, None);
        assert_eq!(
            (p.metadata.name.as_deref(), p.metadata.namespace.as_deref()),
            (Some("churn-v1-train-x"), Some("ml"))
        );
        let kept: Vec<&str> = p.metadata.labels.as_ref().unwrap().keys().map(String::as_str).collect();
        let mut read = POD_LABELS_READ.to_vec();
        read.sort();
        assert_eq!(kept, read, "every label a backend reads, and only those");
        assert_eq!(
            (&p.metadata.annotations, &p.metadata.owner_references, &p.metadata.finalizers, &p.metadata.generate_name),
            (&None, &None, &None, &None)
        );
        let status = p.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(status.conditions, None, "conditions are never read");
        assert_eq!(status.pod_ip, None, "addresses are never read");
        let container = &status.container_statuses.unwrap()[0];
        assert_eq!((container.name.as_str(), container.image.as_str()), ("trainer", ""));
        let terminated = container.state.clone().unwrap().terminated.unwrap();
        assert_eq!(terminated.message.as_deref(), Some("{\"metrics\":{\"auc\":0.9}}"));
    }

    #[test]
    fn a_service_keeps_its_metadata_only_and_no_child_keeps_its_owners() {
        let owners = json!([{"apiVersion": "modelcycle.io/v1alpha1", "kind": "Model", "name": "churn", "uid": "u", "controller": true}]);
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": "churn", "annotations": {"modelcycle.io/spec-hash": "abc"},
                         "labels": {"modelcycle.io/model": "churn"}, "ownerReferences": owners},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "selector": {"modelcycle.io/model": "churn"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        s.metadata.managed_fields = managed();
        s.trim();
        assert_eq!((&s.spec, &s.status), (&None, &None), "which spec is applied is the spec-hash annotation");
        assert_eq!((&s.metadata.managed_fields, &s.metadata.owner_references), (&None, &None));
        assert_eq!(s.metadata.annotations.unwrap()["modelcycle.io/spec-hash"], "abc");
        assert_eq!(s.metadata.labels.unwrap()["modelcycle.io/model"], "churn");

        let owned = json!({"metadata": {"name": "churn-v1", "ownerReferences": owners}, "spec": {}});
        let mut job: Job = serde_json::from_value(owned.clone()).unwrap();
        job.trim();
        let mut deployment: Deployment = serde_json::from_value(owned.clone()).unwrap();
        deployment.trim();
        let mut version = crate::lifecycle::inputs::new_version(
            &crate::lifecycle::testing::model("churn"),
            1,
            vec![],
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert!(version.metadata.owner_references.is_some(), "a new version names its Model as owner");
        version.trim();
        assert_eq!(job.metadata.owner_references, None);
        assert_eq!(deployment.metadata.owner_references, None);
        assert_eq!(version.metadata.owner_references, None);
        assert_eq!(version.metadata.name.as_deref(), Some("churn-v1"));
    }

    #[test]
    fn a_model_keeps_its_owners() {
        let mut m = crate::lifecycle::testing::model("churn");
        m.metadata.owner_references = serde_json::from_value(
            json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "name": "ml", "uid": "a"}]),
        )
        .unwrap();
        let before = m.metadata.owner_references.clone();
        m.trim();
        assert_eq!(m.metadata.owner_references, before, "a Model is not ours: it is cached as it is");
    }

    #[test]
    fn a_decoded_object_loses_only_its_managed_fields() {
        let mut m = crate::lifecycle::testing::model("churn");
        m.metadata.managed_fields = managed();
        let mut decoded = Decoded::from(m.clone());
        decoded.trim();
        m.metadata.managed_fields = None;
        let json = |m: &Model| serde_json::to_value(m).unwrap();
        assert_eq!(decoded.0.ok().map(|d| json(&d)), Some(json(&m)));
    }
}
