//! The InferenceService of a Model served by KServe, and what its status says about a version:
//! pure functions of the Model, the version and KServe's status.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde_json::{Map, Value};

use crate::api::kserve::{
    ComponentStatus, DEPLOYMENT_MODE_ANNOTATION, InferenceService, InferenceServiceSpec, KServeMode, KServeServing,
    ServingTarget,
};
use crate::api::{KServeRevision, Model, ModelVersion};

use super::meta::{MODEL_LABEL, SPEC_HASH_ANNOTATION, VERSION_ANNOTATION, VERSION_LABEL, controller_ref, labels};
use super::names::{json_hash, label_value, serving_name};

/// Knative's per-revision progress deadline, set from `spec.serving.progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_ANNOTATION: &str = "serving.knative.dev/progress-deadline";

/// The predictor component, the one modelcycle sets.
pub const PREDICTOR: &str = "predictor";

/// What the Model asks of KServe, when it is served by KServe.
pub fn kserve_serving(model: &Model) -> Option<&KServeServing> {
    let serving = &model.spec.serving;
    (serving.target == ServingTarget::KServe).then_some(serving.kserve.as_ref()).flatten()
}

/// The InferenceService `<model>` serving `version`, with `percent` of requests for it during a
/// canary (KServe sends the rest to the last revision that took all of them); `None` without
/// KServe serving or until the Model has a uid.
pub fn desired_inference_service(
    model: &Model,
    version: &ModelVersion,
    percent: Option<i32>,
) -> Option<InferenceService> {
    let kserve = kserve_serving(model)?;
    let owner = controller_ref(model)?;
    let name = model.name_any();
    let mut predictor = kserve.predictor.clone();
    set_in(&mut predictor, "model", [("storageUri", version.spec.artifact_uri.clone())]);
    // KServe puts the predictor's labels on its pods: a version's metrics carry its number, so
    // analysis queries can select `{{version}}`.
    let pod_labels = [(MODEL_LABEL, label_value(&name)), (VERSION_LABEL, version.spec.version.to_string())];
    set_in(&mut predictor, "labels", pod_labels);
    // Knative gives up on a revision after its progress deadline: the Model's, when it sets one.
    if let Some(seconds) =
        model.spec.serving.progress_deadline_seconds.filter(|_| kserve.deployment_mode == KServeMode::Knative)
    {
        set_in(&mut predictor, "annotations", [(PROGRESS_DEADLINE_ANNOTATION, format!("{seconds}s"))]);
    }
    if let Some(p) = percent {
        predictor.insert("canaryTrafficPercent".into(), Value::from(p.clamp(0, 100)));
    }
    let spec = InferenceServiceSpec { predictor, rest: BTreeMap::new() };
    let n = version.spec.version;
    let hash = json_hash(&(&spec, kserve.deployment_mode.as_str()))[..16].to_string();
    Some(InferenceService {
        metadata: ObjectMeta {
            name: Some(serving_name(&name)),
            namespace: model.namespace(),
            labels: Some(labels(&name, "serving", None)),
            annotations: Some(BTreeMap::from([
                (VERSION_ANNOTATION.to_string(), n.to_string()),
                (SPEC_HASH_ANNOTATION.to_string(), hash),
                (DEPLOYMENT_MODE_ANNOTATION.to_string(), kserve.deployment_mode.as_str().to_string()),
            ])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec,
        status: None,
    })
}

/// Sets string `fields` in the object under `key` of `map` (made if missing; the user's other
/// fields there stay).
fn set_in<const N: usize>(map: &mut Map<String, Value>, key: &str, fields: [(&str, String); N]) {
    if let Value::Object(inner) = map.entry(key).or_insert_with(|| Value::Object(Map::new())) {
        inner.extend(fields.map(|(k, v)| (k.to_string(), Value::String(v))));
    }
}

/// The version the InferenceService's spec serves, from its annotation.
pub fn written_version(isvc: &InferenceService) -> Option<u32> {
    isvc.annotations().get(VERSION_ANNOTATION)?.parse().ok()
}

/// The `canaryTrafficPercent` the InferenceService's spec carries.
pub fn written_percent(isvc: &InferenceService) -> Option<i64> {
    isvc.spec.predictor.get("canaryTrafficPercent")?.as_i64()
}

/// The predictor's status, once KServe wrote one.
pub fn predictor(isvc: &InferenceService) -> Option<&ComponentStatus> {
    isvc.status.as_ref()?.components.get(PREDICTOR)
}

/// Where a version written to an InferenceService is, as KServe's status says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KServeState {
    /// KServe has not taken it yet, or its revision is starting.
    Progressing,
    /// It runs and answers `percent` of the predictor's requests.
    Serving {
        /// Its share of requests.
        percent: i64,
    },
    /// Its revision cannot become ready: KServe's words.
    Failed(String),
}

/// What KServe reports about the version whose revision `rev` records, in `mode`.
pub fn kserve_state(isvc: &InferenceService, rev: &KServeRevision, mode: KServeMode) -> KServeState {
    let Some(status) = isvc.status.as_ref() else { return KServeState::Progressing };
    let condition = |type_: &str| status.conditions.iter().find(|c| c.type_ == type_);
    let failed = |c: &crate::api::kserve::KServeCondition| {
        let why = c.message.clone().or(c.reason.clone()).unwrap_or_else(|| format!("{} is False", c.type_));
        KServeState::Failed(why)
    };
    match mode {
        KServeMode::Standard => {
            // No revisions: KServe's Deployment took the version once its observed generation
            // moved past the one recorded when the version was written.
            if status.observed_generation.unwrap_or(0) <= rev.observed_after {
                return KServeState::Progressing;
            }
            // KServe's Ready follows the Deployment's Available condition, which stays True
            // while old pods serve, so a version that never starts is never reported: it waits.
            match condition("PredictorReady").or(condition("Ready")) {
                Some(c) if c.status == "True" => KServeState::Serving { percent: 100 },
                _ => KServeState::Progressing,
            }
        }
        KServeMode::Knative => {
            let Some(p) = status.components.get(PREDICTOR) else { return KServeState::Progressing };
            let Some(revision) = rev.revision.as_deref() else { return KServeState::Progressing };
            if p.latest_ready_revision.as_deref() == Some(revision) {
                let percent = p
                    .traffic
                    .iter()
                    .filter(|t| t.revision_name.as_deref() == Some(revision))
                    .filter_map(|t| t.percent)
                    .sum();
                return KServeState::Serving { percent };
            }
            let newest = p.latest_created_revision.as_deref() == Some(revision);
            match condition("PredictorConfigurationReady").or(condition("LatestDeploymentReady")) {
                Some(c) if newest && c.status == "False" => failed(c),
                _ => KServeState::Progressing,
            }
        }
    }
}

/// The revision KServe created for the version recorded in `rev`, if it created one since.
pub fn revision_created(isvc: &InferenceService, rev: &KServeRevision) -> Option<String> {
    let created = predictor(isvc)?.latest_created_revision.clone()?;
    (created != rev.created_after).then_some(created)
}

/// The record of a version being written now to `observed` (none: being created).
pub fn written_now(observed: Option<&InferenceService>) -> KServeRevision {
    let status = observed.and_then(|o| o.status.as_ref());
    KServeRevision {
        created_after: observed.and_then(predictor).and_then(|p| p.latest_created_revision.clone()).unwrap_or_default(),
        observed_after: status.and_then(|s| s.observed_generation).unwrap_or(0),
        revision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kserve::{InferenceServiceStatus, KServeCondition, TrafficTarget};
    use crate::lifecycle::inputs::new_version;
    use crate::lifecycle::testing::model;

    pub fn kserve_model(mode: KServeMode) -> Model {
        let mut m = model("churn");
        m.spec.serving.target = ServingTarget::KServe;
        let predictor = serde_json::json!({"model": {"modelFormat": {"name": "sklearn"}}, "minReplicas": 1});
        let Value::Object(predictor) = predictor else { unreachable!() };
        m.spec.serving.kserve = Some(KServeServing { deployment_mode: mode, predictor });
        m
    }

    fn status(created: &str, ready: &str, traffic: &[(&str, i64)]) -> InferenceServiceStatus {
        let traffic = traffic
            .iter()
            .map(|(r, p)| TrafficTarget { revision_name: Some(r.to_string()), percent: Some(*p), ..Default::default() })
            .collect();
        let predictor = ComponentStatus {
            latest_created_revision: Some(created.into()),
            latest_ready_revision: Some(ready.into()),
            traffic,
            ..Default::default()
        };
        InferenceServiceStatus {
            observed_generation: Some(3),
            components: BTreeMap::from([(PREDICTOR.to_string(), predictor)]),
            ..Default::default()
        }
    }

    #[test]
    fn the_inference_service_carries_the_versions_artifact_and_the_canary_share() {
        let m = kserve_model(KServeMode::Knative);
        let v2 = new_version(&m, 2, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap();
        let isvc = desired_inference_service(&m, &v2, Some(10)).unwrap();
        assert_eq!(isvc.spec.predictor["model"]["storageUri"], v2.spec.artifact_uri.as_str());
        assert_eq!(isvc.spec.predictor["model"]["modelFormat"]["name"], "sklearn", "the user's predictor is kept");
        assert_eq!(written_percent(&isvc), Some(10));
        assert_eq!(written_version(&isvc), Some(2));
        assert_eq!(isvc.annotations()[DEPLOYMENT_MODE_ANNOTATION], "Knative");
        assert_eq!(isvc.spec.predictor["labels"][VERSION_LABEL], "2", "KServe's pods say which version they run");
        let promoted = desired_inference_service(&m, &v2, None).unwrap();
        assert_eq!(written_percent(&promoted), None);
        assert_ne!(isvc.annotations()[SPEC_HASH_ANNOTATION], promoted.annotations()[SPEC_HASH_ANNOTATION]);
        assert!(
            desired_inference_service(&model("plain"), &v2, None).is_none(),
            "target Deployment: no InferenceService"
        );
    }

    #[test]
    fn a_version_serves_only_in_the_revision_created_after_it_was_written() {
        let first = status("churn-predictor-00001", "churn-predictor-00001", &[("churn-predictor-00001", 100)]);
        let mut isvc = InferenceService { status: Some(first), ..Default::default() };
        let rev = written_now(Some(&isvc));
        assert_eq!(rev.created_after, "churn-predictor-00001");
        assert_eq!(revision_created(&isvc, &rev), None, "KServe has not taken the new spec yet");
        assert_eq!(kserve_state(&isvc, &rev, KServeMode::Knative), KServeState::Progressing);

        isvc.status = Some(status("churn-predictor-00002", "churn-predictor-00001", &[("churn-predictor-00001", 100)]));
        let rev = KServeRevision { revision: revision_created(&isvc, &rev), ..rev };
        assert_eq!(rev.revision.as_deref(), Some("churn-predictor-00002"));
        assert_eq!(kserve_state(&isvc, &rev, KServeMode::Knative), KServeState::Progressing, "not ready yet");

        let split = [("churn-predictor-00002", 10), ("churn-predictor-00001", 90)];
        isvc.status = Some(status("churn-predictor-00002", "churn-predictor-00002", &split));
        assert_eq!(kserve_state(&isvc, &rev, KServeMode::Knative), KServeState::Serving { percent: 10 });
    }

    #[test]
    fn a_failed_revision_is_reported_with_kserves_words() {
        let mut st = status("churn-predictor-00002", "churn-predictor-00001", &[("churn-predictor-00001", 100)]);
        st.conditions.push(KServeCondition {
            type_: "PredictorConfigurationReady".into(),
            status: "False".into(),
            reason: Some("RevisionFailed".into()),
            message: Some("Revision \"churn-predictor-00002\" failed with message: image pull back-off".into()),
            ..Default::default()
        });
        let isvc = InferenceService { status: Some(st), ..Default::default() };
        let rev = KServeRevision { revision: Some("churn-predictor-00002".into()), ..Default::default() };
        assert!(
            matches!(kserve_state(&isvc, &rev, KServeMode::Knative), KServeState::Failed(m) if m.contains("back-off"))
        );
    }

    #[test]
    fn standard_mode_waits_for_the_deployment_to_observe_the_change() {
        let mut st = InferenceServiceStatus { observed_generation: Some(4), ..Default::default() };
        st.conditions.push(KServeCondition {
            type_: "PredictorReady".into(),
            status: "True".into(),
            ..Default::default()
        });
        let isvc = InferenceService { status: Some(st), ..Default::default() };
        let rev = KServeRevision { observed_after: 4, ..Default::default() };
        assert_eq!(kserve_state(&isvc, &rev, KServeMode::Standard), KServeState::Progressing);
        let rev = KServeRevision { observed_after: 3, ..Default::default() };
        assert_eq!(kserve_state(&isvc, &rev, KServeMode::Standard), KServeState::Serving { percent: 100 });
    }
}
