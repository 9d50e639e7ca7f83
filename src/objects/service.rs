//! The Service `<model>` in front of every serving pod of a Model.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::Model;

use super::deployment::{Track, serving_selector};
use super::meta::{SPEC_HASH_ANNOTATION, controller_ref, labels};
use super::names::{json_hash, serving_name};

/// The Service `<model>`: every serving pod (Rolling, Canary), or with blue-green only the
/// pods of the `active` track. `None` until the Model has a uid to own it.
pub fn serving_service(model: &Model, active: Option<Track>) -> Option<Service> {
    let name = model.name_any();
    let mut selector = serving_selector(&name);
    if let Some(track) = active {
        selector.extend(track.selector(&name));
    }
    service(model, serving_name(&name), selector)
}

/// The Service `<model>-preview` in front of the blue-green preview pods.
pub fn preview_service(model: &Model) -> Option<Service> {
    let name = model.name_any();
    service(model, Track::Preview.name(&name), Track::Preview.selector(&name))
}

/// A Service `service_name` selecting the serving pods of one track (a Gateway API backend).
pub fn track_service(model: &Model, service_name: String, track: Track) -> Option<Service> {
    let name = model.name_any();
    let mut selector = serving_selector(&name);
    selector.extend(track.selector(&name));
    service(model, service_name, selector)
}

fn service(model: &Model, service_name: String, selector: BTreeMap<String, String>) -> Option<Service> {
    let owner = controller_ref(model)?;
    let name = model.name_any();
    let spec = ServiceSpec {
        selector: Some(selector),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: model.spec.serving.port,
            target_port: Some(IntOrString::Int(model.spec.serving.port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let hash = json_hash(&spec)[..16].to_string();
    Some(Service {
        metadata: ObjectMeta {
            name: Some(service_name),
            namespace: model.namespace(),
            labels: Some(labels(&name, "serving", None)),
            annotations: Some(BTreeMap::from([(SPEC_HASH_ANNOTATION.to_string(), hash)])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::model;

    #[test]
    fn service_selects_every_serving_pod_on_the_serving_port() {
        let svc = serving_service(&model("churn"), None).unwrap();
        let spec = svc.spec.unwrap();
        let selector = spec.selector.unwrap();
        assert_eq!(selector["modelcycle.io/serving"], "true");
        assert!(!selector.contains_key("modelcycle.io/track"), "stable and canary pods both get traffic");
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.port, port.target_port.clone()), (8080, Some(IntOrString::Int(8080))));
    }

    #[test]
    fn blue_green_services_select_one_track() {
        let m = model("churn");
        let active = serving_service(&m, Some(Track::Preview)).unwrap();
        let selector = active.spec.unwrap().selector.unwrap();
        assert_eq!(selector["modelcycle.io/track"], "preview");
        assert_eq!(selector["modelcycle.io/serving"], "true");
        let preview = preview_service(&m).unwrap();
        assert_eq!(preview.metadata.name.as_deref(), Some("churn-preview"));
        assert_eq!(preview.spec.unwrap().selector.unwrap()["modelcycle.io/track"], "preview");
    }
}
