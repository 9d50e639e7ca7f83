//! Publishes the core's Events as `events.k8s.io/v1` Events, one new Event per record.
//!
//! kube's `Recorder` is not used: it keeps every Event it published in one map for six minutes
//! to count repeats into a series, which at thousands of Models held most of the controller's
//! heap (every Event of a fleet's convergence, dropped only on a later publish), scanned the
//! whole map under one write lock on every publish, and — its key leaves out the note — turned
//! "v2 started training" within six minutes of "v1 started training" into a repeat of the v1
//! Event. The core already emits an Event only when something changed, so there are no repeats
//! to fold, and publishing holds nothing.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

use crate::lifecycle::plan::{EventKind, EventRecord, truncate};

/// The API server's limits on an Event's fields (events.k8s.io/v1 validation).
const NOTE_LIMIT: usize = 1024;
const SHORT_LIMIT: usize = 128;

/// Who publishes, and where.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    controller: String,
    instance: String,
}

impl Events {
    /// Events reported by `controller` from `instance` (the pod's name).
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Self {
        Self { client, controller: controller.into(), instance: truncate(instance, SHORT_LIMIT) }
    }

    /// Publishes one Event about `regarding`; a failure is logged, never fails the reconcile.
    pub async fn publish(&self, regarding: &ObjectReference, record: &EventRecord) {
        let event = self.event(regarding, record, jiff::Timestamp::now());
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        if let Err(err) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(reason = %record.reason, error = %err, "could not publish an Event");
        }
    }

    /// The Event object, named as client-go names Events: the regarded object's name and the
    /// time in hex nanoseconds. (`generateName` cannot be used: the API server checks the
    /// prefix itself as a DNS subdomain, and `name.` ends in a dot.)
    pub fn event(&self, regarding: &ObjectReference, record: &EventRecord, now: jiff::Timestamp) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", regarding.name.as_deref().unwrap_or("object"), now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            action: Some(truncate(&record.action, SHORT_LIMIT)),
            reason: Some(truncate(&record.reason, SHORT_LIMIT)),
            note: Some(truncate(&record.note, NOTE_LIMIT)),
            type_: Some(
                match record.kind {
                    EventKind::Normal => "Normal",
                    EventKind::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}
