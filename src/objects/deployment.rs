//! The serving Deployments: `<model>` (stable) and, during a canary rollout, `<model>-canary`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::{Model, ModelVersion};

use super::job::{env_var, inject_env};
use super::meta::{MODEL_LABEL, SPEC_HASH_ANNOTATION, VERSION_ANNOTATION, controller_ref, labels};
use super::names::{JOB_NAME_MAX, bounded, json_hash, label_value, serving_name};

/// Label the Service selects on, so every serving pod of a Model (stable or canary) gets traffic.
pub const SERVING_LABEL: &str = "modelcycle.io/serving";

/// Label telling the stable Deployment's pods from the canary's, so their selectors never overlap.
pub const TRACK_LABEL: &str = "modelcycle.io/track";

/// Which of a Model's serving Deployments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// `<model>`: the version that serves, or the one it is being promoted to.
    Stable,
    /// `<model>-canary`: the new version during a canary rollout.
    Canary,
    /// `<model>-preview`: the new version during a blue-green rollout, until the previous
    /// version's Deployment has been handed the new version.
    Preview,
}

impl Track {
    fn label(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
            Track::Preview => "preview",
        }
    }

    /// The Deployment's name for `model`.
    pub fn name(self, model: &str) -> String {
        match self {
            Track::Stable => serving_name(model),
            Track::Canary => bounded(model, "-canary", JOB_NAME_MAX),
            Track::Preview => bounded(model, "-preview", JOB_NAME_MAX),
        }
    }

    /// The selector of this track's pods (`serving` narrows it to pods the Service may select).
    pub fn selector(self, model: &str) -> BTreeMap<String, String> {
        track_selector(model, self)
    }
}

/// The Service's selector: every serving pod of `model`, stable or canary.
pub fn serving_selector(model: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(MODEL_LABEL.to_string(), label_value(model)), (SERVING_LABEL.to_string(), "true".to_string())])
}

/// A Deployment's selector (immutable, so it names the track, never a version).
fn track_selector(model: &str, track: Track) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MODEL_LABEL.to_string(), label_value(model)),
        (TRACK_LABEL.to_string(), track.label().to_string()),
    ])
}

/// The Deployment serving `version` of `model` with all its replicas; `None` until the Model has
/// a uid to own it.
pub fn serving_deployment(model: &Model, version: &ModelVersion) -> Option<Deployment> {
    track_deployment(model, version, Track::Stable, model.spec.serving.replicas)
}

/// The Deployment of one track running `version` with `replicas` pods.
pub fn track_deployment(model: &Model, version: &ModelVersion, track: Track, replicas: i32) -> Option<Deployment> {
    let owner = controller_ref(model)?;
    let name = model.name_any();
    let serving = &model.spec.serving;
    let n = version.spec.version;
    let mut pod_labels = labels(&name, "serving", Some(n));
    pod_labels.extend(serving_selector(&name));
    pod_labels.extend(track_selector(&name, track));
    let mut template = serving.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels.get_or_insert_with(Default::default).extend(pod_labels);
    let env =
        [env_var("MODELCYCLE_MODEL_URI", &version.spec.artifact_uri), env_var("MODELCYCLE_VERSION", &n.to_string())];
    let pod = template.spec.get_or_insert_with(Default::default);
    for container in &mut pod.containers {
        inject_env(container, &env);
    }
    let spec = DeploymentSpec {
        replicas: Some(replicas),
        progress_deadline_seconds: serving.progress_deadline_seconds,
        selector: LabelSelector { match_labels: Some(track_selector(&name, track)), match_expressions: None },
        template,
        ..Default::default()
    };
    let hash = json_hash(&spec)[..16].to_string();
    Some(Deployment {
        metadata: ObjectMeta {
            name: Some(track.name(&name)),
            namespace: model.namespace(),
            labels: Some(labels(&name, "serving", None)),
            annotations: Some(BTreeMap::from([
                (VERSION_ANNOTATION.to_string(), n.to_string()),
                (SPEC_HASH_ANNOTATION.to_string(), hash),
            ])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The version a serving Deployment runs, from its annotation.
pub fn deployed_version(deployment: &Deployment) -> Option<u32> {
    deployment.annotations().get(VERSION_ANNOTATION)?.parse().ok()
}

/// True when `observed` already carries what `desired` would apply.
pub fn same_spec(observed: &impl ResourceExt, desired: &impl ResourceExt) -> bool {
    let hash = observed.annotations().get(SPEC_HASH_ANNOTATION);
    hash.is_some() && hash == desired.annotations().get(SPEC_HASH_ANNOTATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::inputs::new_version;
    use crate::lifecycle::testing::model;

    #[test]
    fn deployment_runs_the_version_with_its_artifact_and_a_stable_selector() {
        let m = model("churn");
        let v3 = new_version(&m, 3, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap();
        let d = serving_deployment(&m, &v3).unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("churn"));
        assert_eq!(deployed_version(&d), Some(3));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert!(!selector.contains_key("modelcycle.io/version"), "a selector is immutable: it must not name a version");
        let pod_labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "the template matches the selector");
        assert_eq!(pod_labels["modelcycle.io/version"], "3");
        let env = spec.template.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        assert_eq!(env[0].value.as_deref(), Some("s3://models/churn/3"));
        assert_eq!(d.metadata.owner_references.as_ref().unwrap()[0].kind, "Model");
    }

    #[test]
    fn spec_hash_tells_versions_apart_and_is_stable() {
        let m = model("churn");
        let d3 = serving_deployment(&m, &new_version(&m, 3, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap()).unwrap();
        let again = serving_deployment(&m, &new_version(&m, 3, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap()).unwrap();
        let d4 = serving_deployment(&m, &new_version(&m, 4, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap()).unwrap();
        assert!(same_spec(&d3, &again));
        assert!(!same_spec(&d3, &d4));
    }
}
