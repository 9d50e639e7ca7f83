//! Reading watched objects so that one that does not decode is reported with the field at fault
//! instead of stopping the watch (kube's `DeserializeGuard` does the first; this also names the
//! field, e.g. `spec.serving.replicas: invalid value: integer 3000000000, expected i32`, and keeps
//! the Model a broken RetrainPolicy names, so retraining of that Model can fail closed).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};

/// An object as watched: decoded, or why not. A decoded object is shared: a reconcile reads
/// it from the cache without copying it. Why not is boxed: it is rare, and inline its metadata
/// would make every cached Model and RetrainPolicy about 400 bytes larger.
#[derive(Clone, Debug)]
pub struct Decoded<K>(pub Result<Arc<K>, Box<InvalidObject>>);

impl<K> From<K> for Decoded<K> {
    fn from(object: K) -> Self {
        Decoded(Ok(Arc::new(object)))
    }
}

/// An object that does not decode as its type.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{error}")]
pub struct InvalidObject {
    /// The error, beginning with the path of the field at fault.
    pub error: String,
    /// The object's metadata (it decodes even when the rest does not).
    pub metadata: ObjectMeta,
    /// `spec.modelRef.name` or `spec.model`, when present as text: the Model it belongs to.
    pub model: Option<String>,
}

impl<'de, K> Deserialize<'de> for Decoded<K>
where
    K: serde::de::DeserializeOwned + Resource,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(object) => Ok(Decoded::from(object)),
            Err(e) => {
                let metadata = value
                    .get("metadata")
                    .map(ObjectMeta::deserialize)
                    .transpose()
                    .map_err(serde::de::Error::custom)?
                    .unwrap_or_default();
                let spec = value.get("spec");
                let model = spec
                    .and_then(|s| s.pointer("/modelRef/name").or_else(|| s.get("model")))
                    .and_then(|m| m.as_str())
                    .map(str::to_string);
                let error = format!("{}: {}", e.path(), e.inner());
                Ok(Decoded(Err(Box::new(InvalidObject { error, metadata, model }))))
            }
        }
    }
}

/// The associated items of `Resource` for a wrapper of the kind `$k`: the wrapper is watched and
/// cached as that kind (its API group, version, kind and plural).
macro_rules! resource_of {
    ($k:ident) => {
        type DynamicType = $k::DynamicType;
        type Scope = $k::Scope;

        fn kind(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
            $k::kind(dt)
        }

        fn group(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
            $k::group(dt)
        }

        fn version(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
            $k::version(dt)
        }

        fn plural(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
            $k::plural(dt)
        }
    };
}
pub(crate) use resource_of;

impl<K: Resource + Clone> Resource for Decoded<K> {
    resource_of!(K);

    fn meta(&self) -> &ObjectMeta {
        self.0.as_ref().map_or_else(|e| &e.metadata, |k| k.meta())
    }

    /// Copies a shared object before changing it (the watch never does).
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.as_mut().map_or_else(|e| &mut e.metadata, |k| Arc::make_mut(k).meta_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RetrainPolicy;
    use crate::kube::model_controller::CachedModel;
    use serde_json::json;

    #[test]
    fn a_value_beyond_int32_names_its_field() {
        let mut model = serde_json::to_value(crate::lifecycle::testing::model("churn")).unwrap();
        model["spec"]["serving"]["replicas"] = json!(3_000_000_000u64);
        // As the Model cache decodes it: packed when it decodes.
        let decoded: CachedModel = serde_json::from_value(model).unwrap();
        let invalid = decoded.0.unwrap_err();
        assert!(invalid.error.starts_with("spec.serving.replicas: "), "{}", invalid.error);
        assert_eq!(invalid.metadata.name.as_deref(), Some("churn"));
    }

    #[test]
    fn a_broken_policy_still_says_which_model_it_drives() {
        let policy = json!({
            "apiVersion": "modelcycle.io/v1alpha1", "kind": "RetrainPolicy",
            "metadata": {"name": "p", "namespace": "ml"},
            "spec": {"modelRef": {"name": "churn"}, "manual": true, "cooldown": "99999999999999999999h"}
        });
        let decoded: Decoded<RetrainPolicy> = serde_json::from_value(policy).unwrap();
        let invalid = decoded.0.unwrap_err();
        assert_eq!(invalid.model.as_deref(), Some("churn"));
        assert!(invalid.error.starts_with("spec.cooldown: "), "{}", invalid.error);
        assert!(invalid.error.contains("longest duration"), "{}", invalid.error);
    }

    #[test]
    fn a_valid_object_decodes() {
        let model = serde_json::to_value(crate::lifecycle::testing::model("churn")).unwrap();
        let decoded: CachedModel = serde_json::from_value(model.clone()).unwrap();
        let unpacked = serde_json::to_value(decoded.0.unwrap().unpack().unwrap()).unwrap();
        assert_eq!(unpacked, model);
    }

    #[test]
    fn a_cached_object_is_two_words_whether_or_not_it_decoded() {
        // What the Model and policy stores hold per object, beside the object itself.
        assert_eq!(std::mem::size_of::<CachedModel>(), 2 * std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Decoded<RetrainPolicy>>(), 2 * std::mem::size_of::<usize>());
    }
}
