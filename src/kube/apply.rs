//! Writing what the core decided: status with server-side apply, and Events.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::error::Result;
use crate::lifecycle::model::{Child, ModelPlan, child_refused};
use crate::lifecycle::plan::{EventKind, EventRecord};

/// The one field manager every write of the controller uses.
pub const FIELD_MANAGER: &str = "modelcycle";

/// Writes `status` on `/status` with server-side apply under [`FIELD_MANAGER`].
pub async fn apply_status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// Publishes Events about an object; a failure is logged, never fails the reconcile.
pub async fn publish_events(recorder: &Recorder, regarding: &ObjectReference, events: &[EventRecord]) {
    for e in events {
        let event = Event {
            type_: match e.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: e.reason.clone(),
            note: Some(e.note.clone()),
            action: e.action.clone(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, regarding).await {
            tracing::warn!(reason = %e.reason, error = %err, "could not publish an Event");
        }
    }
}

/// Applies a Model's plan in the order that keeps a crash at any point recoverable: versions
/// first, then their statuses, then children, then pruning, then the Model's status, then Events.
pub async fn apply_model_plan(
    client: &kube::Client,
    recorder: &Recorder,
    model: &Model,
    plan: &ModelPlan,
) -> Result<()> {
    let ns = model.namespace().unwrap_or_default();
    let versions: Api<ModelVersion> = Api::namespaced(client.clone(), &ns);
    for version in &plan.create_versions {
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        match versions.create(&params, version).await {
            Ok(_) => {}
            // Created by an earlier reconcile whose write the cache has not shown yet.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (name, status) in &plan.version_statuses {
        apply_status(&versions, name, status).await?;
    }
    for child in &plan.apply {
        let applied = match child {
            Child::Job(job) => apply_object::<Job>(client, &ns, job).await,
            Child::Deployment(d) => apply_object::<Deployment>(client, &ns, d).await,
            Child::Service(s) => apply_object::<Service>(client, &ns, s).await,
        };
        if let Err(error) = applied {
            if let Some(why) = refusal(&error) {
                // Without this the user would see no condition and no Event, only retries.
                let (status, events) = child_refused(model, child, &why, jiff::Timestamp::now());
                if let Some(status) = status {
                    apply_status(&Api::<Model>::namespaced(client.clone(), &ns), &model.name_any(), &status).await?;
                }
                publish_events(recorder, &model.object_ref(&()), &events).await;
            }
            return Err(error);
        }
    }
    delete_all(&Api::<Job>::namespaced(client.clone(), &ns), &plan.delete_jobs).await?;
    delete_all(&Api::<Deployment>::namespaced(client.clone(), &ns), &plan.delete_deployments).await?;
    delete_all(&Api::<Service>::namespaced(client.clone(), &ns), &plan.delete_services).await?;
    delete_all(&versions, &plan.delete_versions).await?;
    let policies: Api<RetrainPolicy> = Api::namespaced(client.clone(), &ns);
    for (name, status) in &plan.policy_statuses {
        apply_status(&policies, name, status).await?;
    }
    if let Some(status) = &plan.status {
        let models: Api<Model> = Api::namespaced(client.clone(), &ns);
        apply_status(&models, &model.name_any(), status).await?;
    }
    publish_events(recorder, &model.object_ref(&()), &plan.events).await;
    for (name, event) in &plan.policy_events {
        let regarding = ObjectReference {
            api_version: Some(RetrainPolicy::api_version(&()).into_owned()),
            kind: Some("RetrainPolicy".into()),
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..Default::default()
        };
        publish_events(recorder, &regarding, std::slice::from_ref(event)).await;
    }
    Ok(())
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

/// Deletes the named objects (their dependents in the background); one already gone is fine.
async fn delete_all<K>(api: &Api<K>, names: &[String]) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    for name in names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Server-side applies a whole object under [`FIELD_MANAGER`].
async fn apply_object<K>(client: &kube::Client, ns: &str, object: &K) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await?;
    Ok(())
}
