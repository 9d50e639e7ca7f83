//! Writing what the core decided: status with server-side apply, and Events.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
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
