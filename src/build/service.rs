//! The Service `<model>` in front of every serving pod of a Model.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::Model;

use super::deployment::serving_selector;
use super::meta::{SPEC_HASH_ANNOTATION, controller_ref, labels};
use super::names::{serving_name, short_hash};

/// The Service of `model`; `None` until the Model has a uid to own it.
pub fn serving_service(model: &Model) -> Option<Service> {
    let owner = controller_ref(model)?;
    let name = model.name_any();
    let spec = ServiceSpec {
        selector: Some(serving_selector(&name)),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: model.spec.serving.port,
            target_port: Some(IntOrString::Int(model.spec.serving.port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let hash = short_hash(&serde_json::to_string(&spec).expect("a ServiceSpec serializes"))[..16].to_string();
    Some(Service {
        metadata: ObjectMeta {
            name: Some(serving_name(&name)),
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
        let svc = serving_service(&model("churn")).unwrap();
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector.unwrap()["modelcycle.io/serving"], "true");
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.port, port.target_port.clone()), (8080, Some(IntOrString::Int(8080))));
    }
}
