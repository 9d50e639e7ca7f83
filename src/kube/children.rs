//! Caches of the objects a Model owns, kept by reflectors and read on every reconcile.

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::build::meta::MODEL_LABEL;
use crate::build::names::label_value;
use crate::lifecycle::model::Children;

/// The reflector stores of everything a Model owns.
#[derive(Clone)]
pub struct ChildStores {
    /// ModelVersions.
    pub versions: Store<DeserializeGuard<ModelVersion>>,
    /// Training Jobs.
    pub jobs: Store<Job>,
    /// Training pods.
    pub pods: Store<Pod>,
    /// Serving Deployments.
    pub deployments: Store<Deployment>,
    /// Services.
    pub services: Store<Service>,
    /// RetrainPolicies.
    pub policies: Store<DeserializeGuard<RetrainPolicy>>,
}

/// Whether `store` has listed its objects once (without waiting).
fn listed<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
}

impl ChildStores {
    /// Whether every cache has listed its objects once. Before that a reconcile would see a
    /// Model without its versions and number a new one as if none existed (the real API server
    /// showed it: a restart during training made a second version).
    pub fn synced(&self) -> bool {
        listed(&self.versions)
            && listed(&self.jobs)
            && listed(&self.pods)
            && listed(&self.deployments)
            && listed(&self.services)
            && listed(&self.policies)
    }

    /// Waits until every cache has listed its objects once; false if a cache's writer is gone.
    pub async fn wait_until_synced(&self) -> bool {
        self.versions.wait_until_ready().await.is_ok()
            && self.jobs.wait_until_ready().await.is_ok()
            && self.pods.wait_until_ready().await.is_ok()
            && self.deployments.wait_until_ready().await.is_ok()
            && self.services.wait_until_ready().await.is_ok()
            && self.policies.wait_until_ready().await.is_ok()
    }

    /// Everything the caches hold for `model`.
    pub fn observe(&self, model: &Model) -> Children {
        let ns = model.namespace();
        let name = model.name_any();
        let label = label_value(&name);
        let versions = self
            .versions
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok())
            .filter(|v| v.namespace() == ns && v.spec.model == name)
            .cloned()
            .collect();
        Children {
            versions,
            jobs: of_model(&self.jobs, &ns, &label),
            pods: of_model(&self.pods, &ns, &label),
            deployments: of_model(&self.deployments, &ns, &label),
            services: of_model(&self.services, &ns, &label),
            policies: self
                .policies
                .state()
                .iter()
                .filter_map(|g| g.0.as_ref().ok())
                .filter(|p| p.namespace() == ns && p.spec.model_ref.name == name)
                .cloned()
                .collect(),
            readings: Default::default(),
        }
    }
}

fn of_model<K>(store: &Store<K>, ns: &Option<String>, label: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| &o.namespace() == ns && o.labels().get(MODEL_LABEL).map(String::as_str) == Some(label))
        .map(|o| (**o).clone())
        .collect()
}
