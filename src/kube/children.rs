//! Caches of the objects a Model owns, kept by reflectors and read on every reconcile.

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

impl ChildStores {
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
