//! The `HTTPRoute` `<model>` of a Model routed through Gateway API, and the Services it sends
//! requests to: `<model>-stable` (the stable track's pods) and the candidate's, `<model>-canary`
//! or `<model>-preview`.
//!
//! The route is the controller's, but Gateway API makes a route's rules one atomic list: a
//! server-side apply of the rules alone would remove whatever anyone else added. So the route is
//! always written as the observed one with the controller's parts replaced — its named rules,
//! and in them its own backends and matches. Rules, filters and backends someone else added stay
//! as they are, where they are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use crate::api::Model;
use crate::api::gateway::{BackendRef, GatewayApiRouting, HeaderMatch, HttpRoute, HttpRouteRule, HttpRouteSpec};

use super::deployment::Track;
use super::meta::{SPEC_HASH_ANNOTATION, controller_ref, labels};
use super::names::{JOB_NAME_MAX, bounded, json_hash, serving_name};
use super::service::track_service;

/// The name of the route's rule that splits the Model's requests by weight.
pub const WEIGHTED_RULE: &str = "modelcycle";
/// The name of the rule that sends a header cohort to the candidate.
pub const COHORT_RULE: &str = "modelcycle-cohort";

/// Where the Model's requests go while a version rolls out: `weight` percent of them, and every
/// request of the `cohort` (all of its headers), to the `candidate` track; the rest to stable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// The track of the version rolling out.
    pub candidate: Track,
    /// Its share of requests, in percent.
    pub weight: i32,
    /// Requests with all of these headers go to it.
    pub cohort: Vec<HeaderMatch>,
    /// A copy of this percent of requests goes to it, its answers discarded (a shadow).
    pub mirror: Option<i32>,
}

impl Traffic {
    /// Every request to `candidate`.
    pub fn all_to(candidate: Track) -> Self {
        Self { candidate, weight: 100, cohort: vec![], mirror: None }
    }
}

/// The Model's Gateway API routing, if it asks for one.
pub fn gateway_routing(model: &Model) -> Option<&GatewayApiRouting> {
    model.spec.serving.traffic_routing.as_ref()?.gateway_api.as_ref()
}

/// The Service a track's requests reach the route through: `<model>-stable`, `<model>-canary`,
/// `<model>-preview`.
pub fn backend_name(model: &str, track: Track) -> String {
    match track {
        Track::Stable => bounded(model, "-stable", JOB_NAME_MAX),
        other => other.name(model),
    }
}

/// The track a rollout of `model` brings a new version up on, beside stable (`None`: Rolling,
/// which replaces the stable pods in place).
pub fn candidate_track(model: &Model) -> Option<Track> {
    let strategy = &model.spec.serving.strategy;
    if strategy.canary.is_some() {
        Some(Track::Canary)
    } else if strategy.blue_green.is_some() {
        Some(Track::Preview)
    } else {
        None
    }
}

/// The Services the route sends requests to: one per track, each selecting that track's pods.
/// They stay while the Model is routed, so the route never names a missing Service.
pub fn backend_services(model: &Model) -> Vec<Service> {
    let name = model.name_any();
    [Some(Track::Stable), candidate_track(model)]
        .into_iter()
        .flatten()
        .filter_map(|track| track_service(model, backend_name(&name, track), track))
        .collect()
}

/// The route `<model>` for `traffic` (`None`: every request to stable), built on the `observed`
/// route so that what others added survives. `None` without Gateway API routing or a uid.
pub fn desired_route(model: &Model, traffic: Option<&Traffic>, observed: Option<&HttpRoute>) -> Option<HttpRoute> {
    let routing = gateway_routing(model)?;
    let owner = controller_ref(model)?;
    let name = model.name_any();
    let ours = our_rules(model, routing, traffic);
    let parent_refs: Vec<Value> = routing.parent_refs.iter().map(parent_ref).collect();
    let hash = json_hash(&(&parent_refs, &routing.hostnames, &ours))[..16].to_string();
    let base = observed.map(|o| o.spec.clone()).unwrap_or_default();
    let mut rules = vec![];
    for mut rule in ours {
        if let Some(theirs) = base.rules.iter().find(|r| r.name == rule.name) {
            keep_what_others_added(&mut rule, theirs, &name);
        }
        rules.push(rule);
    }
    let ours_named = |r: &HttpRouteRule| matches!(r.name.as_deref(), Some(WEIGHTED_RULE | COHORT_RULE));
    rules.extend(base.rules.iter().filter(|r| !ours_named(r)).cloned());
    let spec = HttpRouteSpec { parent_refs, hostnames: routing.hostnames.clone(), rules, rest: base.rest };
    Some(HttpRoute {
        metadata: ObjectMeta {
            name: Some(serving_name(&name)),
            namespace: model.namespace(),
            labels: Some(labels(&name, "serving", None)),
            annotations: Some(BTreeMap::from([(SPEC_HASH_ANNOTATION.to_string(), hash)])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec,
    })
}

/// Whether the `observed` route already carries what `desired` would write: the same hash of
/// the controller's parts, and its rules still there.
pub fn route_current(observed: &HttpRoute, desired: &HttpRoute) -> bool {
    super::deployment::same_spec(observed, desired)
        && desired
            .spec
            .rules
            .iter()
            .filter(|r| r.name.is_some())
            .all(|r| observed.spec.rules.iter().any(|o| o.name == r.name))
}

/// The controller's rules: a cohort rule while one is asked for, and the weighted rule.
fn our_rules(model: &Model, routing: &GatewayApiRouting, traffic: Option<&Traffic>) -> Vec<HttpRouteRule> {
    let name = model.name_any();
    let port = model.spec.serving.port;
    let matches: Vec<Value> = if routing.matches.is_empty() {
        vec![json!({"path": {"type": "PathPrefix", "value": "/"}})]
    } else {
        routing.matches.iter().map(|m| serde_json::to_value(m).unwrap_or(Value::Null)).collect()
    };
    let stable_share = 100 - traffic.map_or(0, |t| t.weight.clamp(0, 100));
    let mut backends = vec![backend(&backend_name(&name, Track::Stable), port, stable_share)];
    if let Some(track) = candidate_track(model) {
        backends.push(backend(&backend_name(&name, track), port, 100 - stable_share));
    }
    let mirrors = traffic.and_then(|t| Some((t.candidate, t.mirror?)));
    let filters = mirrors.map(|(track, percent)| mirror_filter(&backend_name(&name, track), port, percent));
    let weighted = HttpRouteRule {
        name: Some(WEIGHTED_RULE.into()),
        matches: matches.clone(),
        filters: filters.into_iter().collect(),
        backend_refs: backends,
        ..Default::default()
    };
    let mut rules = vec![];
    if let Some(t) = traffic.filter(|t| !t.cohort.is_empty()) {
        let cohort: Vec<Value> = t.cohort.iter().map(|h| serde_json::to_value(h).unwrap_or(Value::Null)).collect();
        let with_cohort = matches
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if let Some(object) = m.as_object_mut() {
                    let headers = object.entry("headers").or_insert_with(|| json!([]));
                    if let Some(list) = headers.as_array_mut() {
                        list.extend(cohort.iter().cloned());
                    }
                }
                m
            })
            .collect();
        rules.push(HttpRouteRule {
            name: Some(COHORT_RULE.into()),
            matches: with_cohort,
            backend_refs: vec![backend(&backend_name(&name, t.candidate), port, 100)],
            ..Default::default()
        });
    }
    rules.push(weighted);
    rules
}

/// Keeps in `ours` what others added to the observed rule of the same name: its filters, its
/// other fields (timeouts, …) and the backends that are not the Model's.
fn keep_what_others_added(ours: &mut HttpRouteRule, theirs: &HttpRouteRule, model: &str) {
    let mine = [Track::Stable, Track::Canary, Track::Preview].map(|t| backend_name(model, t));
    let own_mirror = |f: &Value| mirrored_to(f).is_some_and(|to| mine.iter().any(|m| m == to));
    let others: Vec<Value> = theirs.filters.iter().filter(|f| !own_mirror(f)).cloned().collect();
    ours.filters = others.into_iter().chain(ours.filters.drain(..)).collect();
    ours.rest = theirs.rest.clone();
    for b in &theirs.backend_refs {
        let is_service =
            b.group.as_deref().unwrap_or("").is_empty() && b.kind.as_deref().unwrap_or("Service") == "Service";
        if !(is_service && b.namespace.is_none() && mine.contains(&b.name)) {
            ours.backend_refs.push(b.clone());
        }
    }
    // Filters a backend of the Model's was given are kept too.
    for b in &mut ours.backend_refs {
        if let Some(old) = theirs.backend_refs.iter().find(|o| o.name == b.name && o.namespace == b.namespace) {
            for (k, v) in &old.rest {
                b.rest.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

/// Gateway API's `RequestMirror` filter: a copy of `percent` of the rule's requests to `service`.
fn mirror_filter(service: &str, port: i32, percent: i32) -> Value {
    json!({"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": service, "port": port},
        "percent": percent
    }})
}

/// The Service a `RequestMirror` filter copies requests to, if `filter` is one.
pub fn mirrored_to(filter: &Value) -> Option<&str> {
    if filter["type"] != "RequestMirror" {
        return None;
    }
    filter["requestMirror"]["backendRef"]["name"].as_str()
}

/// What a route sends to the version rolling out, as the report shows it: the candidate
/// backend's weight in the weighted rule (`0` while nothing rolls out), `+cohort` while a header
/// cohort goes to it.
pub fn route_share(route: &HttpRoute) -> String {
    let rule = |name: &str| route.spec.rules.iter().find(|r| r.name.as_deref() == Some(name));
    let weight = rule(WEIGHTED_RULE).and_then(|r| r.backend_refs.get(1)).and_then(|b| b.weight).unwrap_or(0);
    let cohort = if rule(COHORT_RULE).is_some() { "+cohort" } else { "" };
    let mirror = if rule(WEIGHTED_RULE).is_some_and(|r| r.filters.iter().any(|f| mirrored_to(f).is_some())) {
        "+mirror"
    } else {
        ""
    };
    format!("{weight}{cohort}{mirror}")
}

fn backend(service: &str, port: i32, weight: i32) -> BackendRef {
    BackendRef {
        group: Some(String::new()),
        kind: Some("Service".into()),
        name: service.into(),
        namespace: None,
        port: Some(port),
        weight: Some(weight),
        rest: BTreeMap::new(),
    }
}

fn parent_ref(g: &crate::api::gateway::GatewayRef) -> Value {
    let mut v = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": g.name});
    if let Some(object) = v.as_object_mut() {
        if let Some(ns) = &g.namespace {
            object.insert("namespace".into(), json!(ns));
        }
        if let Some(section) = &g.section_name {
            object.insert("sectionName".into(), json!(section));
        }
        if let Some(port) = g.port {
            object.insert("port".into(), json!(port));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::gateway::{GatewayRef, HeaderMatchType, TrafficRouting};
    use crate::api::{CanaryStep, CanaryStrategy};
    use crate::lifecycle::testing::model;

    fn routed(name: &str) -> Model {
        let mut m = model(name);
        m.spec.serving.strategy.canary =
            Some(CanaryStrategy { steps: vec![CanaryStep { weight: 10, pause: None, headers: vec![] }], shadow: None });
        m.spec.serving.traffic_routing = Some(TrafficRouting {
            gateway_api: Some(GatewayApiRouting {
                parent_refs: vec![GatewayRef {
                    name: "public".into(),
                    namespace: Some("gateways".into()),
                    ..Default::default()
                }],
                hostnames: vec!["churn.example.com".into()],
                matches: vec![],
            }),
        });
        m
    }

    fn weights(route: &HttpRoute, rule: &str) -> Vec<(String, Option<i32>)> {
        let rule = route.spec.rules.iter().find(|r| r.name.as_deref() == Some(rule)).unwrap();
        rule.backend_refs.iter().map(|b| (b.name.clone(), b.weight)).collect()
    }

    fn beta() -> HeaderMatch {
        HeaderMatch { type_: HeaderMatchType::Exact, name: "x-cohort".into(), value: "beta".into() }
    }

    #[test]
    fn the_route_weights_stable_and_canary_backends_by_the_step() {
        let m = routed("churn");
        let idle = desired_route(&m, None, None).unwrap();
        assert_eq!(idle.metadata.name.as_deref(), Some("churn"));
        assert_eq!(idle.metadata.owner_references.as_ref().unwrap()[0].kind, "Model");
        assert_eq!(
            weights(&idle, WEIGHTED_RULE),
            [("churn-stable".into(), Some(100)), ("churn-canary".into(), Some(0))]
        );
        let parent = &idle.spec.parent_refs[0];
        assert_eq!(parent["name"], "public");
        assert_eq!(parent["namespace"], "gateways");
        assert_eq!(idle.spec.hostnames, ["churn.example.com"]);
        let rule = &idle.spec.rules[0];
        assert_eq!(rule.matches, [json!({"path": {"type": "PathPrefix", "value": "/"}})]);
        let ten = Traffic { candidate: Track::Canary, weight: 10, cohort: vec![], mirror: None };
        let stepped = desired_route(&m, Some(&ten), Some(&idle)).unwrap();
        assert_eq!(
            weights(&stepped, WEIGHTED_RULE),
            [("churn-stable".into(), Some(90)), ("churn-canary".into(), Some(10))]
        );
        assert!(!route_current(&idle, &stepped), "a new weight is written");
        assert!(
            route_current(&stepped, &desired_route(&m, Some(&ten), Some(&stepped)).unwrap()),
            "the same weight is not"
        );
        let json = serde_json::to_value(&stepped).unwrap();
        assert_eq!(json["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(json["kind"], "HTTPRoute");
    }

    #[test]
    fn a_cohort_gets_a_rule_of_its_own_that_sends_it_to_the_candidate() {
        let mut m = routed("churn");
        if let Some(r) = m.spec.serving.traffic_routing.as_mut().and_then(|t| t.gateway_api.as_mut()) {
            r.matches = vec![serde_json::from_value(json!({"path": {"value": "/predict"}})).unwrap()];
        }
        let cohort = Traffic { candidate: Track::Canary, weight: 0, cohort: vec![beta()], mirror: None };
        let route = desired_route(&m, Some(&cohort), None).unwrap();
        assert_eq!(route.spec.rules.len(), 2);
        assert_eq!(route.spec.rules[0].name.as_deref(), Some(COHORT_RULE));
        assert_eq!(
            route.spec.rules[0].matches,
            [
                json!({"path": {"type": "PathPrefix", "value": "/predict"}, "headers": [{"type": "Exact", "name": "x-cohort", "value": "beta"}]})
            ]
        );
        assert_eq!(weights(&route, COHORT_RULE), [("churn-canary".into(), Some(100))]);
        assert_eq!(
            weights(&route, WEIGHTED_RULE),
            [("churn-stable".into(), Some(100)), ("churn-canary".into(), Some(0))]
        );
        let after = desired_route(&m, None, Some(&route)).unwrap();
        assert_eq!(after.spec.rules.len(), 1, "the cohort rule goes with the cohort");
    }

    #[test]
    fn rules_filters_and_backends_others_added_survive_every_write() {
        let m = routed("churn");
        let mut observed = desired_route(&m, None, None).unwrap();
        // Someone else adds a rule, a filter and a backend on the controller's rule, and a timeout.
        observed.spec.rules[0].filters.push(json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-team", "value": "ml"}]}}));
        observed.spec.rules[0].backend_refs.push(BackendRef {
            name: "shadow-logger".into(),
            port: Some(80),
            weight: Some(0),
            ..Default::default()
        });
        observed.spec.rules[0].rest.insert("timeouts".into(), json!({"request": "10s"}));
        let theirs = HttpRouteRule {
            name: Some("docs".into()),
            matches: vec![json!({"path": {"type": "PathPrefix", "value": "/docs"}})],
            backend_refs: vec![BackendRef { name: "docs".into(), port: Some(80), ..Default::default() }],
            ..Default::default()
        };
        observed.spec.rules.push(theirs.clone());
        let ten = Traffic { candidate: Track::Canary, weight: 10, cohort: vec![beta()], mirror: None };
        let route = desired_route(&m, Some(&ten), Some(&observed)).unwrap();
        let names: Vec<_> = route.spec.rules.iter().map(|r| r.name.clone().unwrap_or_default()).collect();
        assert_eq!(names, [COHORT_RULE, WEIGHTED_RULE, "docs"]);
        assert_eq!(route.spec.rules[2], theirs, "their rule is written back as it was");
        let ours = &route.spec.rules[1];
        assert_eq!(ours.filters, observed.spec.rules[0].filters);
        assert_eq!(ours.rest["timeouts"], json!({"request": "10s"}));
        assert_eq!(
            weights(&route, WEIGHTED_RULE),
            [("churn-stable".into(), Some(90)), ("churn-canary".into(), Some(10)), ("shadow-logger".into(), Some(0))]
        );
    }

    #[test]
    fn backends_are_services_of_one_track_each() {
        let m = routed("churn");
        let services = backend_services(&m);
        let names: Vec<_> = services.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["churn-stable", "churn-canary"]);
        let selector = services[1].spec.as_ref().unwrap().selector.clone().unwrap();
        assert_eq!(selector["modelcycle.io/track"], "canary");
        assert_eq!(selector["modelcycle.io/serving"], "true");
        let mut plain = model("churn");
        plain.spec.serving.strategy.blue_green = Some(Default::default());
        assert_eq!(candidate_track(&plain), Some(Track::Preview));
        assert_eq!(desired_route(&plain, None, None), None, "no routing asked for, no route");
    }
}
