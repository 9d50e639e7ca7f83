//! The generated CustomResourceDefinitions, as objects and as the YAML checked in under `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{CustomResourceDefinition, JSON};
use kube::CustomResourceExt;

use super::{Model, ModelVersion, RetrainPolicy};

/// Every CRD modelcycle needs, in the order `crds/` lists them.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Model::crd(), ModelVersion::crd(), RetrainPolicy::crd()];
    crds.iter_mut().for_each(unobserved_until_written);
    crds
}

/// Gives `status` the default `{observedGeneration: 0}`. The API server fills it in whenever it
/// returns an object without a status, so an object the controller has not written yet reads as
/// generation 1 of which 0 is observed: kstatus (Flux's `wait`, `kubectl wait`-style tools)
/// calls it InProgress instead of Current — a new Model applied while the controller is down or
/// busy must not make a Flux Kustomization Ready.
fn unobserved_until_written(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let root = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut());
        let status = root.and_then(|r| r.properties.as_mut()).and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            status.default = Some(JSON(serde_json::json!({"observedGeneration": 0})));
        }
    }
}

/// The file under `crds/` a CRD is written to, e.g. `modelcycle.io_models.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// One CRD as a YAML document (without the `---` separator).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// Every CRD as one multi-document YAML stream, as `modelcycle crd` prints it.
pub fn stream() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_defaults_to_an_unobserved_generation() {
        for crd in all() {
            let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
            let status = schema.and_then(|s| s.properties.as_ref()).and_then(|p| p.get("status"));
            let default = status.and_then(|s| s.default.as_ref()).map(|d| d.0.clone());
            assert_eq!(default, Some(serde_json::json!({"observedGeneration": 0})), "{}", crd.spec.names.kind);
        }
    }
}
