//! Reporting an object that does not deserialize, so one bad object never stalls the rest.

use crate::kube::decoded::InvalidObject;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use crate::error::Error;
use crate::lifecycle::plan::{EventKind, EventRecord, truncate};

use super::context::Context;

/// What the Event on an unreadable object says: the field at fault, and for a RetrainPolicy that
/// its Model does not retrain meanwhile (fail closed: its suspend and limits cannot be read).
pub fn invalid_note(kind: &str, invalid: &InvalidObject) -> String {
    let held = match (kind, invalid.model.as_deref()) {
        ("RetrainPolicy", Some(model)) => format!("; Model {model} does not retrain until this policy can be read"),
        ("RetrainPolicy", None) => {
            "; the Models of this namespace without a readable policy do not retrain until it can be read".to_string()
        }
        _ => String::new(),
    };
    format!("cannot read this object, fix it to resume: {}{held}", invalid.error)
}

/// Logs the object, emits a Warning Event on it and returns the error that makes the
/// controller wait for the object to change.
pub async fn report_invalid<K: Resource<DynamicType = ()>>(invalid: &InvalidObject, ctx: &Context) -> Error {
    let meta = &invalid.metadata;
    let error = Error::InvalidObject {
        kind: K::kind(&()).into_owned(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        message: invalid.error.clone(),
    };
    tracing::error!(%error, "skipping an object that cannot be read");
    let regarding = ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    };
    let event = EventRecord {
        kind: EventKind::Warning,
        reason: "InvalidObject".into(),
        action: "Skip".into(),
        note: truncate(&invalid_note(K::kind(&()).as_ref(), invalid), 1024),
        version: None,
    };
    ctx.events.publish(&regarding, &event).await;
    error
}
