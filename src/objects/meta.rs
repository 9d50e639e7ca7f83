//! Labels and owner references shared by every built object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::names::label_value;

/// Label naming the Model an object belongs to.
pub const MODEL_LABEL: &str = "modelcycle.io/model";
/// Label naming the version an object belongs to.
pub const VERSION_LABEL: &str = "modelcycle.io/version";
/// Label saying what an object does: `training` or `serving`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Annotation holding the hash of the spec modelcycle applied, to skip writes that change nothing.
pub const SPEC_HASH_ANNOTATION: &str = "modelcycle.io/spec-hash";
/// Annotation on the serving Deployment naming the version it runs.
pub const VERSION_ANNOTATION: &str = "modelcycle.io/version";

/// Whether `object` is named `name` (without copying its name, as `name_any` would).
pub fn is_named(object: &impl Resource, name: &str) -> bool {
    object.meta().name.as_deref() == Some(name)
}

/// Whether `a` and `b` have the same name (a desired object and the observed one it would be).
pub fn same_name(a: &impl Resource, b: &impl Resource) -> bool {
    a.meta().name.as_deref().is_some_and(|name| is_named(b, name))
}

/// The labels of an object of `model`, for `component`, optionally of one version.
pub fn labels(model: &str, component: &str, version: Option<u32>) -> BTreeMap<String, String> {
    let value = label_value(model);
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), value.clone()),
        ("app.kubernetes.io/managed-by".to_string(), "modelcycle".to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
        (MODEL_LABEL.to_string(), value),
    ]);
    if let Some(v) = version {
        labels.insert(VERSION_LABEL.to_string(), v.to_string());
    }
    labels
}

/// A controller owner reference to `owner`; `None` until the owner has a uid.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}
