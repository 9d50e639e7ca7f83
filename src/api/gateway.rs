//! Gateway API's `HTTPRoute` (`gateway.networking.k8s.io/v1`), as far as modelcycle writes and
//! reads it, and the routing a user asks for in `spec.serving.trafficRouting`.
//!
//! The route type keeps every field it does not model (`rest`), so a rule, filter or backend
//! that someone else added to a Model's route is written back unchanged (`objects::route`).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An `HTTPRoute`: the controller owns one per Model whose traffic goes through Gateway API.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    root = "HttpRoute",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (or their listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<Value>,
    /// Host names the route answers for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules, matched in Gateway API's order of precedence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// One rule of an `HTTPRoute`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The rule's name: modelcycle's rules are named, which is how it tells them from others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which requests the rule takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Value>,
    /// Filters applied to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
    /// Where they go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    /// Every other field, kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A backend of a rule: a Service, weighted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// API group of the backend (`""`: core, a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the backend (`Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    pub name: String,
    /// Namespace of the backend (the route's when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Share of the rule's requests, relative to the other backends' weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Every other field (filters), kept as it is.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// How requests reach the serving versions. Empty: through the Service `<model>` alone, where a
/// canary's share is its share of the pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.gatewayAPI)").message("trafficRouting needs gatewayAPI"))]
pub struct TrafficRouting {
    /// Route through Gateway API: modelcycle owns the `HTTPRoute` `<model>` and sets its
    /// backends' weights, so a canary's share of requests is its weight, whatever its replicas.
    #[serde(default, rename = "gatewayAPI", skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiRouting>,
}

/// The `HTTPRoute` modelcycle writes for a Model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    /// The Gateways (or their listeners) the route attaches to.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("gatewayAPI.parentRefs needs at least one Gateway for the route to attach to"))]
    pub parent_refs: Vec<GatewayRef>,
    /// Host names the route answers for (Gateway API's `hostnames`). Empty: every host the
    /// Gateway's listeners accept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(inner(length(max = 253)))]
    #[x_kube(validation = Rule::new(r"self.all(h, h.matches('^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))").message("gatewayAPI.hostnames must be lowercase DNS names, optionally starting with '*.'"))]
    pub hostnames: Vec<String>,
    /// Which requests are the Model's (any of these). Empty: every request (path prefix `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<RouteMatch>,
}

/// A Gateway (or one of its listeners) the route attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace. Empty: the Model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// One listener of the Gateway, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
    /// One listener of the Gateway, by port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: Option<i32>,
}

/// Which requests a rule takes: all of the given conditions hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// The request's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Headers the request carries (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatch>,
    /// The request's HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
}

/// A condition on the request's path.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.value.startsWith('/') || has(self.type) && self.type == 'RegularExpression'").message("a path match's value must start with '/'"))]
pub struct PathMatch {
    /// Exact, PathPrefix (the default) or RegularExpression.
    #[serde(default, rename = "type")]
    pub type_: PathMatchType,
    /// The path, or the expression.
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}

/// How a path is compared.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PathMatchType {
    /// The whole path.
    Exact,
    /// Path segments from the start.
    #[default]
    PathPrefix,
    /// A regular expression (support depends on the Gateway's implementation).
    RegularExpression,
}

/// A condition on one request header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Exact (the default) or RegularExpression.
    #[serde(default, rename = "type")]
    pub type_: HeaderMatchType,
    /// The header's name (case-insensitive).
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(r"self.matches('^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$')").message("a header name holds only the characters HTTP allows in one (no spaces or ':')"))]
    pub name: String,
    /// The value it must have, or the expression it must match.
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// How a header's value is compared.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum HeaderMatchType {
    /// The whole value.
    #[default]
    Exact,
    /// A regular expression (support depends on the Gateway's implementation).
    RegularExpression,
}

/// An HTTP method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(missing_docs, clippy::upper_case_acronyms)]
pub enum HttpMethod {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    CONNECT,
    OPTIONS,
    TRACE,
    PATCH,
}
