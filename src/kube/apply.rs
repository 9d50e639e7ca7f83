//! Writing what the core decided: status with server-side apply, and Events.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::error::Result;
use crate::lifecycle::model::{Child, Kind, ModelPlan, Regarding, Write, child_refused};
use crate::lifecycle::plan::EventRecord;

use super::events::Events;

/// The one field manager every write of the controller uses.
pub const FIELD_MANAGER: &str = "modelcycle";

/// Writes `status` on `/status` with server-side apply under [`FIELD_MANAGER`]; with `read_at`,
/// only onto the object as it was read (its resourceVersion is the write's precondition): a
/// status decided from a cached object that has changed since is refused with a conflict, and
/// the reconcile decides again. Without it a reconcile that ran on a cache still missing its own
/// last status write would write the older status back (a retrain request the status had
/// recorded looked new again, and trained twice; a version's phase could step back). Every
/// status the controller writes carries it; only a version this reconcile created has none.
pub async fn apply_status_of<K>(api: &Api<K>, name: &str, read_at: Option<&str>, status: &impl Serialize) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(version) = read_at {
        body["metadata"] = serde_json::json!({"resourceVersion": version});
    }
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// Publishes Events about an object; a failure is logged, never fails the reconcile.
pub async fn publish_events(events: &Events, regarding: &ObjectReference, records: &[EventRecord]) {
    for record in records {
        events.publish(regarding, record).await;
    }
}

/// Applies a Model's plan write by write, in the plan's order, stopping at the first error (the
/// next reconcile decides again from what landed). A child the API server refuses for good
/// stalls the Model with the server's own words instead.
pub async fn apply_model_plan(client: &kube::Client, events: &Events, model: &Model, plan: &ModelPlan) -> Result<()> {
    let target = Target::of(client, events, model);
    for write in &plan.steps {
        if let Err(error) = target.write(write).await {
            if let (Write::Apply(child), Some(why)) = (write, refusal(&error)) {
                // Without this the user would see no condition and no Event, only retries.
                for write in child_refused(model, child, &why, jiff::Timestamp::now()) {
                    target.write(&write).await?;
                }
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Where a Model's writes go: its namespace, its client and Event publisher.
struct Target<'a> {
    client: &'a kube::Client,
    events: &'a Events,
    model: &'a Model,
    ns: String,
}

impl<'a> Target<'a> {
    fn of(client: &'a kube::Client, events: &'a Events, model: &'a Model) -> Self {
        Self { client, events, model, ns: model.namespace().unwrap_or_default() }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Makes one write.
    async fn write(&self, write: &Write) -> Result<()> {
        match write {
            Write::CreateVersion(version) => {
                let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                match self.api::<ModelVersion>().create(&params, version).await {
                    // Created by an earlier reconcile whose write the cache has not shown yet.
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Write::VersionStatus(w) => {
                apply_status_of(&self.api::<ModelVersion>(), &w.name, w.read_at.as_deref(), &w.status).await
            }
            Write::Apply(Child::Job(job)) => apply_object(&self.api::<Job>(), job).await,
            Write::Apply(Child::Deployment(d)) => apply_object(&self.api::<Deployment>(), d).await,
            Write::Apply(Child::Service(s)) => apply_object(&self.api::<Service>(), s).await,
            Write::Apply(Child::Route(r)) => apply_object(&self.api::<HttpRoute>(), r).await,
            Write::Delete(Kind::HttpRoute, name) => delete(&self.api::<HttpRoute>(), name).await,
            Write::Apply(Child::InferenceService(i)) => apply_object(&self.api::<InferenceService>(), i).await,
            Write::Delete(Kind::InferenceService, name) => delete(&self.api::<InferenceService>(), name).await,
            Write::Delete(Kind::Job, name) => delete(&self.api::<Job>(), name).await,
            Write::Apply(Child::TrainJob(t)) => apply_object(&self.api::<TrainJob>(), t).await,
            Write::Delete(Kind::TrainJob, name) => delete(&self.api::<TrainJob>(), name).await,
            Write::Apply(Child::RayJob(r)) => apply_object(&self.api::<RayJob>(), r).await,
            Write::Delete(Kind::RayJob, name) => delete(&self.api::<RayJob>(), name).await,
            Write::Delete(Kind::Deployment, name) => delete(&self.api::<Deployment>(), name).await,
            Write::Delete(Kind::Service, name) => delete(&self.api::<Service>(), name).await,
            Write::Delete(Kind::ModelVersion, name) => delete(&self.api::<ModelVersion>(), name).await,
            Write::PolicyStatus(w) => {
                apply_status_of(&self.api::<RetrainPolicy>(), &w.name, w.read_at.as_deref(), &w.status).await
            }
            Write::ModelStatus(status) => {
                let read_at = self.model.resource_version();
                apply_status_of(&self.api::<Model>(), &self.model.name_any(), read_at.as_deref(), status).await
            }
            Write::Event(Regarding::Model, event) => {
                self.events.publish(&self.model.object_ref(&()), event).await;
                Ok(())
            }
            Write::Event(Regarding::Policy(name), event) => {
                let regarding = ObjectReference {
                    api_version: Some(RetrainPolicy::api_version(&()).into_owned()),
                    kind: Some(RetrainPolicy::kind(&()).into_owned()),
                    name: Some(name.clone()),
                    namespace: Some(self.ns.clone()),
                    ..Default::default()
                };
                self.events.publish(&regarding, event).await;
                Ok(())
            }
        }
    }
}

/// The API server's words when it refused a write for good (invalid, forbidden, bad request),
/// as opposed to a conflict, a timeout or an outage that a retry may get past.
fn refusal(error: &crate::error::Error) -> Option<String> {
    match error {
        crate::error::Error::Kube(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
            Some(format!("{} ({})", s.message, s.reason))
        }
        _ => None,
    }
}

/// Deletes an object (its dependents in the background); one already gone is fine.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Server-side applies a whole object under [`FIELD_MANAGER`].
async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await?;
    Ok(())
}
