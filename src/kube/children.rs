//! Caches of the objects a Model owns, kept by reflectors and read on every reconcile.

use crate::kube::decoded::Decoded;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::lifecycle::model::Children;
use crate::objects::meta::MODEL_LABEL;
use crate::objects::names::{label_value, version_name};

/// The reflector stores of everything a Model owns.
#[derive(Clone)]
pub struct ChildStores {
    /// ModelVersions.
    pub versions: Store<Decoded<ModelVersion>>,
    /// Training Jobs.
    pub jobs: Store<Job>,
    /// Training pods.
    pub pods: Store<Pod>,
    /// Serving Deployments.
    pub deployments: Store<Deployment>,
    /// Services.
    pub services: Store<Service>,
    /// RetrainPolicies.
    pub policies: Store<Decoded<RetrainPolicy>>,
}

/// Whether `store` has listed its objects once (without waiting).
pub fn listed<K>(store: &Store<K>) -> bool
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
            unreadable_policies: self
                .policies
                .state()
                .iter()
                .filter_map(|g| g.0.as_ref().err())
                .filter(|p| p.metadata.namespace == ns && p.model.as_ref().is_none_or(|m| *m == name))
                .map(|p| p.metadata.name.clone().unwrap_or_default())
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

/// A watch can lag the API server (after an outage the ModelVersion watch was refused with 429
/// while the Model watch already delivered): when the Model's status names a newest version that
/// the cache does not hold, this reads it from the API server. Planning without it would number
/// another version for the same inputs on every reconcile; the real API server showed 43 of them
/// within a second. A version that is gone (deleted by a person) is simply not added.
pub async fn fill_latest_version(client: &Client, model: &Model, children: &mut Children) -> crate::error::Result<()> {
    let Some(latest) = model.status.as_ref().and_then(|s| s.latest_version) else { return Ok(()) };
    if children.versions.iter().any(|v| v.spec.version >= latest) {
        return Ok(());
    }
    let api: Api<ModelVersion> = Api::namespaced(client.clone(), &model.namespace().unwrap_or_default());
    if let Some(version) = api.get_opt(&version_name(&model.name_any(), latest)).await? {
        tracing::info!(version = latest, "the ModelVersion cache lags; read the newest version from the API server");
        children.versions.push(version);
    }
    Ok(())
}
