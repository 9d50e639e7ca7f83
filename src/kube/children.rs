//! Caches of the objects a Model owns, kept by their watches and read on every reconcile.

use crate::error::Result;
use crate::kube::decoded::Decoded;
use crate::kube::index::{Indexed, Keep, StoreIndex};
use crate::kube::packed::{Packed, unpacked, unpacked_decoded};
use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::api::{Model, ModelVersion};
use crate::kube::policy_controller::CachedPolicy;
use crate::lifecycle::model::{Cached, Children, Engine};
use crate::objects::names::{label_value, version_name};

/// The caches of everything a Model owns, by Model.
#[derive(Clone)]
pub struct ChildStores {
    /// ModelVersions.
    pub versions: Indexed<Decoded<Packed<ModelVersion>>>,
    /// Training Jobs.
    pub jobs: Indexed<Packed<Job>>,
    /// Training pods.
    pub pods: Indexed<Packed<Pod>>,
    /// Serving Deployments.
    pub deployments: Indexed<Packed<Deployment>>,
    /// Services.
    pub services: Indexed<Packed<Service>>,
    /// Gateway API `HTTPRoute`s, when the controller manages them.
    pub routes: Option<Indexed<Packed<HttpRoute>>>,
    /// KServe `InferenceService`s, when the controller manages them.
    pub inference_services: Option<Indexed<Packed<InferenceService>>>,
    /// Kubeflow Trainer `TrainJob`s, when the controller manages them and they are installed.
    pub train_jobs: Engine<Indexed<Packed<TrainJob>>>,
    /// KubeRay `RayJob`s, likewise.
    pub ray_jobs: Engine<Indexed<Packed<RayJob>>>,
    /// RetrainPolicies (their store is the policy controller's too).
    pub policies: StoreIndex<CachedPolicy>,
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
        self.versions.is_listed()
            && self.jobs.is_listed()
            && self.pods.is_listed()
            && self.deployments.is_listed()
            && self.services.is_listed()
            && self.routes.as_ref().is_none_or(Indexed::is_listed)
            && self.inference_services.as_ref().is_none_or(Indexed::is_listed)
            && engine_cache(&self.train_jobs).is_none_or(Indexed::is_listed)
            && engine_cache(&self.ray_jobs).is_none_or(Indexed::is_listed)
            && listed(&self.policies.store)
    }

    /// Waits until every cache has listed its objects once; false if the policies' store's
    /// writer is gone.
    pub async fn wait_until_synced(&self) -> bool {
        self.versions.wait_until_listed().await;
        self.jobs.wait_until_listed().await;
        self.pods.wait_until_listed().await;
        self.deployments.wait_until_listed().await;
        self.services.wait_until_listed().await;
        if let Some(routes) = &self.routes {
            routes.wait_until_listed().await;
        }
        if let Some(isvcs) = &self.inference_services {
            isvcs.wait_until_listed().await;
        }
        if let Some(train_jobs) = engine_cache(&self.train_jobs) {
            train_jobs.wait_until_listed().await;
        }
        if let Some(ray_jobs) = engine_cache(&self.ray_jobs) {
            ray_jobs.wait_until_listed().await;
        }
        self.policies.store.wait_until_ready().await.is_ok()
    }

    /// Everything the caches hold for `model`, found through the indexes (without looking at
    /// other Models' objects) and unpacked: only this Model's objects are decoded. An object
    /// that does not unpack (it was packed from what decoded, so this would be a defect) fails
    /// the reconcile rather than let it decide without that object.
    pub fn observe(&self, model: &Model) -> Result<Children> {
        let (ns, name) = (model.namespace().unwrap_or_default(), model.name_any());
        let label = label_value(&name);
        let policies = self.policies.of(&ns, Some(&name));
        // A version that does not decode is not selected.
        let versions = self.versions.of(&ns, Some(&name)).into_iter().filter_map(|(n, v)| Some((n, v?)));
        let versions = unpacked(&ns, versions)?;
        let mut children = Children::select(
            model,
            Cached {
                versions,
                jobs: self.jobs.unpacked(&ns, &label)?,
                pods: self.pods.unpacked(&ns, &label)?,
                train_jobs: self.train_jobs.as_ref().map(|t| t.unpacked(&ns, &label)).transpose()?,
                ray_jobs: self.ray_jobs.as_ref().map(|r| r.unpacked(&ns, &label)).transpose()?,
                deployments: self.deployments.unpacked(&ns, &label)?,
                services: self.services.unpacked(&ns, &label)?,
                routes: self.routes.as_ref().map(|r| r.unpacked(&ns, &label)).transpose()?,
                inference_services: self.inference_services.as_ref().map(|r| r.unpacked(&ns, &label)).transpose()?,
                policies: unpacked_decoded(&policies)?,
            },
        );
        // A policy that does not decode may name this Model, or say nothing readable about its
        // Model at all: either holds this Model's retraining.
        children.unreadable_policies = policies
            .iter()
            .chain(&self.policies.of(&ns, None))
            .filter_map(|g| g.0.as_ref().err())
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        Ok(children)
    }
}

/// The cache of an engine's objects, when the controller watches them.
fn engine_cache<K: Keep>(engine: &Engine<Indexed<K>>) -> Option<&Indexed<K>> {
    match engine {
        Engine::Watched(cache) => Some(cache),
        Engine::NotEnabled | Engine::NotInstalled => None,
    }
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
        children.versions.push(Arc::new(version));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::meta::MODEL_LABEL;
    use serde_json::json;

    fn decoded<K: kube::Resource + serde::de::DeserializeOwned>(value: serde_json::Value) -> Decoded<K> {
        serde_json::from_value(value).unwrap()
    }

    fn version(ns: &str, model: &str, n: u32) -> Decoded<Packed<ModelVersion>> {
        decoded(json!({
            "apiVersion": "modelcycle.io/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": format!("{model}-v{n}"), "namespace": ns},
            "spec": {"model": model, "version": n, "trigger": {"reason": "Initial", "message": "", "time": "2026-01-01T00:00:00Z"},
                     "training": crate::lifecycle::testing::model(model).spec.training,
                     "inputsHash": "h", "artifactUri": "s3://m"}
        }))
    }

    fn policy(ns: &str, name: &str, spec: serde_json::Value) -> CachedPolicy {
        decoded(json!({
            "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec
        }))
    }

    fn key_of(o: &impl ResourceExt) -> String {
        format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
    }

    fn job(ns: &str, name: &str, model: &str) -> Packed<Job> {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {MODEL_LABEL: model}}
        }))
        .unwrap()
    }

    #[test]
    fn a_model_sees_its_own_children_and_the_unreadable_policies_that_may_name_it() {
        let model: Model = crate::lifecycle::testing::model("churn");
        assert!(version("ml", "churn", 1).0.is_ok(), "the versions here decode");
        assert_eq!(model.namespace().as_deref(), Some("ml"));
        let stores = ChildStores {
            versions: Indexed::listed(vec![
                version("ml", "churn", 1),
                version("ml", "fraud", 1),
                version("other", "churn", 1),
            ]),
            jobs: Indexed::listed(vec![job("ml", "churn-v1-train", "churn"), job("ml", "fraud-v1-train", "fraud")]),
            pods: Indexed::listed(vec![]),
            deployments: Indexed::listed(vec![]),
            services: Indexed::listed(vec![]),
            routes: None,
            inference_services: None,
            train_jobs: Engine::Watched(Indexed::listed(vec![
                serde_json::from_value(json!({
                    "metadata": {"name": "churn-v1-train", "namespace": "ml", "labels": {MODEL_LABEL: "churn"}},
                    "spec": {}
                }))
                .unwrap(),
                serde_json::from_value(json!({
                    "metadata": {"name": "churn-v1-train", "namespace": "other", "labels": {MODEL_LABEL: "churn"}},
                    "spec": {}
                }))
                .unwrap(),
            ])),
            ray_jobs: Engine::NotInstalled,
            policies: StoreIndex::listed(vec![
                policy("ml", "nightly", json!({"modelRef": {"name": "churn"}})),
                policy("ml", "fraud-nightly", json!({"modelRef": {"name": "fraud"}})),
                policy("ml", "broken-churn", json!({"modelRef": {"name": "churn"}, "cooldown": 3})),
                policy("ml", "broken-fraud", json!({"modelRef": {"name": "fraud"}, "cooldown": 3})),
                policy("ml", "broken-anything", json!({"modelRef": 7})),
                policy("other", "broken-anything", json!({"modelRef": 7})),
            ]),
        };
        let children = stores.observe(&model).unwrap();
        assert_eq!(children.versions.iter().map(|v| v.name_any()).collect::<Vec<_>>(), ["churn-v1"]);
        assert_eq!(children.versions[0].namespace().as_deref(), Some("ml"));
        assert_eq!(children.jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>(), ["churn-v1-train"]);
        let Engine::Watched(train_jobs) = &children.train_jobs else { panic!("TrainJobs are watched") };
        assert_eq!(train_jobs.iter().map(|t| key_of(t.as_ref())).collect::<Vec<_>>(), ["ml/churn-v1-train"]);
        assert_eq!(children.ray_jobs, Engine::NotInstalled, "an engine not installed stays so for the core");
        assert_eq!(children.policies.iter().map(|p| p.name_any()).collect::<Vec<_>>(), ["nightly"]);
        let mut unreadable = children.unreadable_policies.clone();
        unreadable.sort();
        assert_eq!(unreadable, ["broken-anything", "broken-churn"], "not the other Model's, not the other namespace's");
    }

    #[test]
    fn a_cached_object_that_does_not_read_back_fails_the_reconcile_naming_it() {
        let model: Model = crate::lifecycle::testing::model("churn");
        let stores = ChildStores {
            versions: Indexed::listed(vec![version("ml", "churn", 1)]),
            jobs: Indexed::listed(vec![job("ml", "churn-v1-train", "churn").damaged()]),
            pods: Indexed::listed(vec![]),
            deployments: Indexed::listed(vec![]),
            services: Indexed::listed(vec![]),
            routes: None,
            inference_services: None,
            train_jobs: Engine::NotEnabled,
            ray_jobs: Engine::NotEnabled,
            policies: StoreIndex::listed(vec![]),
        };
        match stores.observe(&model) {
            Err(crate::error::Error::Cache { kind, namespace, name, .. }) => {
                assert_eq!((kind.as_str(), namespace.as_str(), name.as_str()), ("Job", "ml", "churn-v1-train"))
            }
            other => panic!("expected the Job not to read back, got {other:?}"),
        }
        // Another Model's damaged object is not this Model's concern.
        let fraud = crate::lifecycle::testing::model("fraud");
        assert!(stores.observe(&fraud).is_ok());
    }
}
