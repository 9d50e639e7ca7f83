//! The apiserver's audit log: who sent which request, and what the server answered.

use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use crate::cluster::{Check, read};

/// One request, as the audit log records it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The authenticated user, e.g. `system:serviceaccount:modelcycle-system:modelcycle`.
    pub user: String,
    /// The pod a bound ServiceAccount token names (`authentication.kubernetes.io/pod-name`).
    pub pod: Option<String>,
    /// `get`, `list`, `watch`, `create`, `patch`, `update`, `delete`, ...
    pub verb: String,
    /// `resource[/subresource] namespace/name`.
    pub object: String,
    /// The plural resource.
    pub resource: String,
    /// The answer's status code.
    pub code: u16,
    /// Whether the authorizer refused it (`authorization.k8s.io/decision` is not `allow`): a
    /// 403 of admission, e.g. a create in a namespace being deleted, is authorized first.
    pub authorizer_refused: bool,
    /// When the answer was complete.
    pub time: Timestamp,
}

impl Entry {
    /// Whether the request changes something.
    pub fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection")
    }
}

/// Every recorded request.
pub struct AuditLog {
    /// In the order they were recorded.
    pub entries: Vec<Entry>,
}

impl AuditLog {
    /// Reads the log (a JSON object a line).
    pub fn read(path: &Path) -> Check<AuditLog> {
        let text = read(path)?;
        let entries = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|e| entry(&e))
            .collect();
        Ok(AuditLog { entries })
    }

    /// The writes `user` made after `since`.
    pub fn writes_by(&self, user: &str, since: Timestamp) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.user == user && e.time > since && e.is_write()).collect()
    }

    /// `user`'s requests the authorizer refused (403 with its decision `forbid`; not admission's
    /// 403s, such as a create in a namespace being deleted), one line each, leaving out those
    /// answered within `grace` of the end of one of `outages` (a restarted API server refuses
    /// requests until its authorizer's caches are warm).
    pub fn forbidden(
        &self,
        user: &str,
        outages: &[(Timestamp, Timestamp)],
        grace: jiff::SignedDuration,
    ) -> Vec<String> {
        let restarting = |t: Timestamp| outages.iter().any(|(from, to)| t >= *from && t <= *to + grace);
        self.entries
            .iter()
            .filter(|e| e.user == user && e.code == 403 && e.authorizer_refused && !restarting(e.time))
            .map(|e| format!("{} {} ({})", e.verb, e.object, e.pod.as_deref().unwrap_or("?")))
            .collect()
    }
}

/// One entry per request: a watch when its answer starts (it completes only when the watch
/// ends, minutes later), or when it is refused; everything else when its answer is complete.
fn entry(event: &Value) -> Option<Entry> {
    let watch = event["verb"] == "watch";
    let refused = event["responseStatus"]["code"].as_u64().is_some_and(|c| c >= 300);
    let counted = match event["stage"].as_str() {
        Some("ResponseStarted") => watch,
        Some("ResponseComplete") => !watch || refused,
        _ => false,
    };
    if !counted {
        return None;
    }
    let object = &event["objectRef"];
    let resource = object["resource"].as_str().unwrap_or_default().to_string();
    let subresource = object["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
    let namespace = object["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
    let name = object["name"].as_str().unwrap_or_default();
    Some(Entry {
        user: event["user"]["username"].as_str()?.to_string(),
        pod: event["user"]["extra"]["authentication.kubernetes.io/pod-name"][0].as_str().map(str::to_string),
        verb: event["verb"].as_str()?.to_string(),
        object: format!("{resource}{subresource} {namespace}{name}"),
        resource,
        code: event["responseStatus"]["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
        authorizer_refused: event["annotations"]["authorization.k8s.io/decision"] != "allow",
        time: event["stageTimestamp"].as_str()?.parse().ok()?,
    })
}
