//! A scripted Kubernetes API server for tests of the kube shell: each expected request is

//! asserted (method, path and query) and answered; any request beyond the script fails the test.

#![allow(dead_code)]

pub mod admission_cases;
pub mod chart;
pub mod prometheus;

use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

/// One expected request and the answer to give.
pub struct Expect {
    /// HTTP method.
    pub method: Method,
    /// Path and query the request must start with.
    pub path: String,
    /// Status code of the answer.
    pub code: u16,
    /// Body of the answer.
    pub answer: Answer,
}

/// How the scripted server answers.
pub enum Answer {
    /// The request body back (what a create returns).
    Echo,
    /// This body.
    Fixed(Value),
    /// This object with the request's top-level fields laid over it (what a status apply returns).
    Merged(Value),
}

impl Expect {
    /// Expects `method` on `path`, answered 200 with the request body echoed.
    pub fn echo(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), code: 200, answer: Answer::Echo }
    }

    /// Expects a server-side apply of status on `path`, answered with `object` carrying that status.
    pub fn status_apply(path: impl Into<String>, object: &impl serde::Serialize) -> Self {
        let object = serde_json::to_value(object).unwrap();
        Self { method: Method::PATCH, path: path.into(), code: 200, answer: Answer::Merged(object) }
    }

    /// Expects `method` on `path`, answered with `code` and `body`.
    pub fn answer(method: Method, path: impl Into<String>, code: u16, body: Value) -> Self {
        Self { method, path: path.into(), code, answer: Answer::Fixed(body) }
    }
}

/// What the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Content type header.
    pub content_type: Option<String>,
    /// Parsed JSON body (Null when empty).
    pub body: Value,
}

/// A client whose requests go to a scripted server; await the handle for what it saw.
pub fn mock_api(script: Vec<Expect>) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut seen = vec![];
        for expect in script {
            let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
            let (request, send) = next
                .unwrap_or_else(|_| panic!("timed out waiting for {} {}", expect.method, expect.path))
                .unwrap_or_else(|| panic!("client went away before {} {}", expect.method, expect.path));
            let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            assert_eq!(request.method(), expect.method, "method of {path}");
            assert!(path.starts_with(&expect.path), "expected a request to {}, got {path}", expect.path);
            let content_type =
                request.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_string());
            let method = request.method().clone();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
            let answer = match expect.answer {
                Answer::Echo => body.clone(),
                Answer::Fixed(v) => v,
                Answer::Merged(mut object) => {
                    for (k, v) in body.as_object().into_iter().flatten() {
                        object[k] = v.clone();
                    }
                    object
                }
            };
            let response =
                Response::builder().status(expect.code).body(Body::from(serde_json::to_vec(&answer).unwrap())).unwrap();
            send.send_response(response);
            seen.push(Seen { method, path, content_type, body });
        }
        if let Ok(Some((request, _))) = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await {
            panic!("unexpected request beyond the script: {} {}", request.method(), request.uri());
        }
        seen
    });
    (Client::new(service, "default"), server)
}

/// A Kubernetes Status object for an error answer.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
}

/// Objects shared as a shell's cache shares them.
pub fn shared<T>(objects: impl IntoIterator<Item = T>) -> Vec<std::sync::Arc<T>> {
    objects.into_iter().map(std::sync::Arc::new).collect()
}

/// Caches holding the given children as the kube shell's watches cache them: each object's
/// JSON decoded as the cache's type (trimmed and packed).
pub fn child_stores(children: modelcycle::lifecycle::model::Children) -> modelcycle::kube::children::ChildStores {
    use modelcycle::kube::index::{Indexed, Keep, StoreIndex};
    fn watched<C: serde::de::DeserializeOwned, K: serde::Serialize>(objects: Vec<std::sync::Arc<K>>) -> Vec<C> {
        let watched = |o: std::sync::Arc<K>| {
            let json = serde_json::to_value(&*o).expect("an object serializes");
            serde_json::from_value(json).expect("a watched object decodes as the cache's type")
        };
        objects.into_iter().map(watched).collect()
    }
    fn cached<C: Keep + serde::de::DeserializeOwned, K: serde::Serialize>(
        objects: Vec<std::sync::Arc<K>>,
    ) -> Indexed<C> {
        Indexed::listed(watched(objects))
    }
    modelcycle::kube::children::ChildStores {
        versions: cached(children.versions),
        jobs: cached(children.jobs),
        pods: cached(children.pods),
        deployments: cached(children.deployments),
        services: cached(children.services),
        routes: children.routes.map(cached),
        inference_services: children.inference_services.map(cached),
        train_jobs: children.train_jobs.map(cached),
        ray_jobs: children.ray_jobs.map(cached),
        policies: StoreIndex::listed(watched(children.policies)),
    }
}

/// A reflector store that has listed `objects`, as a watch's first list leaves it.
pub fn listed_store<K>(objects: Vec<K>) -> kube::runtime::reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::{reflector, watcher};
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

/// An API server that answers every request plausibly and records it: lists are empty,
/// watches never end, writes succeed and are kept (merged), reads return what was written
/// (the CRDs are there from the start).
/// `seed` holds objects that exist before the controller starts, as (API path of the object, object).
pub fn recording_api(seed: Vec<(String, Value)>) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut held = vec![];
        let mut objects: std::collections::HashMap<(String, Option<String>, String, String), Value> =
            Default::default();
        for crd in modelcycle::api::crd::all() {
            let name = crd.metadata.name.clone().unwrap();
            let key = ("apiextensions.k8s.io".to_string(), None, "customresourcedefinitions".to_string(), name);
            objects.insert(key, serde_json::to_value(crd).unwrap());
        }
        for (path, object) in seed {
            let r = Route::of(&path);
            objects.insert((r.group, r.namespace, r.resource, r.name.unwrap_or_default()), object);
        }
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            let method = request.method().clone();
            let content_type =
                request.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_string());
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
            log.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                content_type,
                body: body.clone(),
            });
            let route = Route::of(&path);
            let base = route.resource.split('/').next().unwrap().to_string();
            let name = route.name.clone().or_else(|| body["metadata"]["name"].as_str().map(str::to_string));
            let key = (route.group.clone(), route.namespace.clone(), base, name.unwrap_or_default());
            let (code, answer) = match method {
                Method::GET if path.contains("watch=true") => {
                    held.push(send);
                    continue;
                }
                Method::GET if route.name.is_none() => (
                    200,
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []}),
                ),
                Method::GET => match objects.get(&key) {
                    Some(object) => (200, object.clone()),
                    None => (404, status(404, "NotFound", "not found")),
                },
                Method::DELETE => {
                    objects.remove(&key);
                    (
                        200,
                        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                    )
                }
                _ => {
                    let stored = objects.entry(key).or_insert(Value::Null);
                    merge(stored, route.stamp(body));
                    (if method == Method::POST { 201 } else { 200 }, stored.clone())
                }
            };
            let response =
                Response::builder().status(code).body(Body::from(serde_json::to_vec(&answer).unwrap())).unwrap();
            send.send_response(response);
        }
    });
    (Client::new(service, "default"), seen)
}

/// What an API path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// API group; empty for the core group.
    pub group: String,
    /// Namespace, if namespaced.
    pub namespace: Option<String>,
    /// Resource (plural), with `/status` for the status subresource.
    pub resource: String,
    /// Object name; `None` for a collection.
    pub name: Option<String>,
}

impl Route {
    /// Parses `/api/v1/...` and `/apis/<group>/<version>/...` paths.
    pub fn of(path_and_query: &str) -> Route {
        let path = path_and_query.split('?').next().unwrap();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match parts[0] {
            "api" => (String::new(), &parts[2..]),
            _ => (parts[1].to_string(), &parts[3..]),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
            other => (None, other),
        };
        let resource = match rest {
            [resource, _, sub] => format!("{resource}/{sub}"),
            [resource, ..] => resource.to_string(),
            [] => String::new(),
        };
        Route { group, namespace, resource, name: rest.get(1).map(|n| n.to_string()) }
    }

    /// A written object as the API server returns it: with a uid and resource version.
    fn stamp(&self, mut body: Value) -> Value {
        if let Some(object) = body.as_object_mut() {
            object.entry("metadata").or_insert_with(|| serde_json::json!({}));
        }
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.entry("uid").or_insert_with(|| "uid-recorded".into());
            meta.insert("resourceVersion".into(), "2".into());
            if let Some(name) = &self.name {
                meta.entry("name").or_insert_with(|| name.clone().into());
            }
            if let Some(ns) = &self.namespace {
                meta.entry("namespace").or_insert_with(|| ns.clone().into());
            }
        }
        body
    }
}

/// Lays `patch` over `target`, objects key by key (what a merge patch does).
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}
