//! The generated CustomResourceDefinitions, as objects and as the YAML checked in under `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{Model, ModelVersion, RetrainPolicy};

/// Every CRD modelcycle needs, in the order `crds/` lists them.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![Model::crd(), ModelVersion::crd(), RetrainPolicy::crd()]
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
