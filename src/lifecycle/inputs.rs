//! Training inputs: their hash, the rendered artifact URI, and a new version's lineage record.

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Model, ModelVersion, ModelVersionSpec, TrainingSpec, TriggerCause, TriggerRecord};
use crate::objects::meta::{controller_ref, labels};
use crate::objects::names::{json_hash, version_name};

/// SHA-256 of the training inputs: dataset, parameters, trainer template, artifact URI
/// template, deadline and retries. A change of any of them trains a new version.
pub fn inputs_hash(training: &TrainingSpec) -> String {
    json_hash(training)
}

/// The artifact URI template with its placeholders filled in.
pub fn render_artifact_uri(
    template: &str,
    model: &str,
    namespace: &str,
    version: u32,
    dataset_version: &str,
) -> String {
    template
        .replace("{model}", model)
        .replace("{namespace}", namespace)
        .replace("{version}", &version.to_string())
        .replace("{datasetVersion}", dataset_version)
}

/// Images of every container of the trainer, for lineage.
pub fn trainer_images(training: &TrainingSpec) -> Vec<String> {
    let Some(spec) = training.template.spec.as_ref() else { return vec![] };
    let init = spec.init_containers.iter().flatten();
    init.chain(&spec.containers).filter_map(|c| c.image.clone()).collect()
}

/// The ModelVersion for version `n` of `model`, trained from the model's current inputs; `None`
/// for a Model that takes its versions from a registry (`source::new_version` makes those).
pub fn new_version(model: &Model, n: u32, causes: Vec<TriggerCause>, now: Timestamp) -> Option<ModelVersion> {
    new_version_hashed(model, n, causes, now, &InputsHash::default())
}

/// The hash of a Model's training inputs, made at most once per plan: deciding whether the
/// inputs changed and recording them in the new version both need it.
#[derive(Debug, Default)]
pub struct InputsHash<'a>(std::cell::OnceCell<(&'a TrainingSpec, String)>);

impl<'a> InputsHash<'a> {
    /// The hash of `training`: made once for the spec first asked about (the borrow keeps that
    /// spec alive and unchanged), made anew for any other.
    pub fn of(&self, training: &'a TrainingSpec) -> std::borrow::Cow<'_, str> {
        let (made_for, hash) = self.0.get_or_init(|| (training, inputs_hash(training)));
        if std::ptr::eq(*made_for, training) { hash.into() } else { inputs_hash(training).into() }
    }
}

/// [`new_version`], taking the inputs' hash from `hash` if this plan already made it.
pub fn new_version_hashed<'a>(
    model: &'a Model,
    n: u32,
    causes: Vec<TriggerCause>,
    now: Timestamp,
    hash: &InputsHash<'a>,
) -> Option<ModelVersion> {
    let name = model.name_any();
    let namespace = model.namespace().unwrap_or_default();
    let inputs_hash = hash.of(model.spec.training.as_ref()?).into_owned();
    let training = model.spec.training.clone()?;
    let spec = ModelVersionSpec {
        model: name.clone(),
        version: n,
        trigger: TriggerRecord::new(causes, now),
        artifact_uri: render_artifact_uri(&training.artifact_uri, &name, &namespace, n, &training.dataset.version),
        trainer_images: trainer_images(&training),
        inputs_hash,
        training: Some(training),
        source: None,
    };
    Some(version_object(model, spec))
}

/// The ModelVersion object of `spec`: its name, namespace, labels and owner.
pub fn version_object(model: &Model, spec: ModelVersionSpec) -> ModelVersion {
    let name = model.name_any();
    let n = spec.version;
    let mut version = ModelVersion::new(&version_name(&name, n), spec);
    version.metadata.namespace = model.namespace();
    version.metadata.labels = Some(labels(&name, "version", Some(n)));
    version.metadata.owner_references = controller_ref(model).map(|r| vec![r]);
    version
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::model;

    #[test]
    fn an_inputs_hash_is_made_once_for_its_spec_only() {
        let (m, mut other) = (model("churn"), model("churn"));
        other.spec.training.as_mut().unwrap().dataset.version = "2026-12".into();
        let (ours, theirs) = (m.spec.training.as_ref().unwrap(), other.spec.training.as_ref().unwrap());
        let hash = InputsHash::default();
        assert_eq!(hash.of(ours), inputs_hash(ours));
        assert_eq!(hash.of(ours), inputs_hash(ours), "asked again");
        assert_eq!(hash.of(theirs), inputs_hash(theirs), "another spec is hashed for itself");
        assert_ne!(inputs_hash(ours), inputs_hash(theirs));
        let v = new_version_hashed(&m, 2, vec![], Timestamp::UNIX_EPOCH, &hash).unwrap();
        assert_eq!(v.spec, new_version(&m, 2, vec![], Timestamp::UNIX_EPOCH).unwrap().spec);
    }

    #[test]
    fn renders_every_placeholder() {
        let uri =
            render_artifact_uri("s3://m/{namespace}/{model}/{version}-{datasetVersion}", "churn", "ml", 4, "2026-12");
        assert_eq!(uri, "s3://m/ml/churn/4-2026-12");
    }

    #[test]
    fn hash_changes_with_dataset_version_and_parameters_only_when_they_change() {
        let m = model("churn");
        let base = inputs_hash(m.spec.training.as_ref().unwrap());
        assert_eq!(base, inputs_hash(&m.spec.training.clone().unwrap()));
        let mut t = m.spec.training.clone().unwrap();
        t.dataset.version = "2026-12-01".into();
        assert_ne!(inputs_hash(&t), base);
        let mut t = m.spec.training.clone().unwrap();
        t.parameters.insert("epochs".into(), "3".into());
        assert_ne!(inputs_hash(&t), base);
    }

    #[test]
    fn a_new_version_records_its_lineage_and_is_owned_by_the_model() {
        let m = model("churn");
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let v = new_version(
            &m,
            2,
            vec![TriggerCause { reason: "TrainingInputsChanged".into(), evidence: "x".into() }],
            now,
        )
        .unwrap();
        assert_eq!(v.metadata.name.as_deref(), Some("churn-v2"));
        assert_eq!(v.spec.artifact_uri, "s3://models/churn/2");
        assert_eq!(v.spec.trainer_images, ["trainer:1"]);
        assert_eq!(v.spec.trigger.reason, "TrainingInputsChanged");
        assert_eq!(v.spec.inputs_hash, inputs_hash(m.spec.training.as_ref().unwrap()));
        let owner = &v.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Model", "uid-churn", Some(true)));
    }
}
