//! The desired serving Deployments and Services, remembered between a Model's reconciles.
//!
//! Every reconcile decides whether the serving objects carry what it would apply, and so builds
//! them: a copy of the pod template with labels and environment, then a SHA-256 of the spec's
//! JSON for the spec-hash annotation. For a Model that did not change, that is the same object
//! every time, and in the simulator it was the largest part of a reconcile. A shell that keeps
//! a [`Remembered`] hands the core the object built last time, when the inputs it was built
//! from are equal to today's, compared field by field: a hit is right whatever the shell keeps,
//! whenever it forgets, and whatever the Model's generation says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::api::{Model, ModelVersion, ServingSpec};

use super::deployment::{Track, track_deployment};
use super::service::serving_service;

/// What a serving Deployment is built from.
#[derive(Debug, PartialEq)]
struct DeploymentInputs {
    namespace: Option<String>,
    name: String,
    serving: ServingSpec,
    version: u32,
    artifact_uri: String,
    replicas: i32,
}

impl DeploymentInputs {
    fn same(&self, model: &Model, version: &ModelVersion, replicas: i32) -> bool {
        self.version == version.spec.version
            && self.replicas == replicas
            && self.artifact_uri == version.spec.artifact_uri
            && self.namespace == model.metadata.namespace
            && model.metadata.name.as_ref() == Some(&self.name)
            && self.serving == model.spec.serving
    }
}

/// What a serving Service is built from.
#[derive(Debug, PartialEq)]
struct ServiceInputs {
    namespace: Option<String>,
    name: String,
    port: i32,
}

impl ServiceInputs {
    fn same(&self, model: &Model) -> bool {
        self.port == model.spec.serving.port
            && self.namespace == model.metadata.namespace
            && model.metadata.name.as_ref() == Some(&self.name)
    }
}

/// An object built last, with what it was built from.
type Slot<I, K> = Option<(I, Arc<K>)>;

/// The serving objects a shell keeps for the Models it reconciles: the last one built for each
/// Model (by uid) and track, with what it was built from. It holds one Deployment per track a
/// Model used and one Service per selector, for as long as the shell keeps it.
#[derive(Debug, Default)]
pub struct Remembered {
    /// By Model uid, then by track (`Track as usize`).
    deployments: Mutex<HashMap<String, [Slot<DeploymentInputs, Deployment>; 3]>>,
    /// By Model uid, then by the track the Service selects (0: every serving pod, else 1 + track).
    services: Mutex<HashMap<String, [Slot<ServiceInputs, Service>; 4]>>,
}

impl Remembered {
    /// How many objects are remembered (Deployments and Services).
    pub fn len(&self) -> usize {
        let deployments = self.deployments.lock().unwrap_or_else(PoisonError::into_inner);
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let deployments = deployments.values().flatten().flatten().count();
        deployments + services.values().flatten().flatten().count()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the core takes its desired serving objects from: built each time, or remembered by the
/// shell.
#[derive(Clone, Copy, Debug, Default)]
pub struct DesiredObjects<'a>(pub Option<&'a Remembered>);

impl DesiredObjects<'_> {
    /// The Deployment of `track` running `version` with `replicas` pods, as
    /// [`track_deployment`] builds it; `None` until the Model has a uid to own it.
    pub fn deployment(
        self,
        model: &Model,
        version: &ModelVersion,
        track: Track,
        replicas: i32,
    ) -> Option<Arc<Deployment>> {
        let (Some(remembered), Some(uid)) = (self.0, model.metadata.uid.as_deref()) else {
            return track_deployment(model, version, track, replicas).map(Arc::new);
        };
        let mut kept = remembered.deployments.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((inputs, built)) = kept.get(uid).and_then(|slots| slots[track as usize].as_ref())
            && inputs.same(model, version, replicas)
        {
            return Some(built.clone());
        }
        let built = Arc::new(track_deployment(model, version, track, replicas)?);
        let inputs = DeploymentInputs {
            namespace: model.metadata.namespace.clone(),
            name: model.name_any(),
            serving: model.spec.serving.clone(),
            version: version.spec.version,
            artifact_uri: version.spec.artifact_uri.clone(),
            replicas,
        };
        kept.entry(uid.to_string()).or_default()[track as usize] = Some((inputs, built.clone()));
        Some(built)
    }

    /// The Service `<model>` in front of the serving pods (of the `active` track with
    /// blue-green), as [`serving_service`] builds it; `None` until the Model has a uid.
    pub fn serving_service(self, model: &Model, active: Option<Track>) -> Option<Arc<Service>> {
        let (Some(remembered), Some(uid)) = (self.0, model.metadata.uid.as_deref()) else {
            return serving_service(model, active).map(Arc::new);
        };
        let slot = active.map_or(0, |t| 1 + t as usize);
        let mut kept = remembered.services.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((inputs, built)) = kept.get(uid).and_then(|slots| slots[slot].as_ref())
            && inputs.same(model)
        {
            return Some(built.clone());
        }
        let built = Arc::new(serving_service(model, active)?);
        let inputs = ServiceInputs {
            namespace: model.metadata.namespace.clone(),
            name: model.name_any(),
            port: model.spec.serving.port,
        };
        kept.entry(uid.to_string()).or_default()[slot] = Some((inputs, built.clone()));
        Some(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::inputs::new_version;

    fn model(name: &str, uid: &str) -> Model {
        let mut m = crate::lifecycle::testing::model(name);
        m.metadata.uid = Some(uid.into());
        m
    }

    fn version(m: &Model, n: u32) -> ModelVersion {
        new_version(m, n, vec![], jiff::Timestamp::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn a_remembered_deployment_is_what_building_it_gives_for_every_change_of_its_inputs() {
        let remembered = Remembered::default();
        let desired = DesiredObjects(Some(&remembered));
        let m = model("churn", "u1");
        let v3 = version(&m, 3);
        let first = desired.deployment(&m, &v3, Track::Stable, 2).unwrap();
        let again = desired.deployment(&m, &v3, Track::Stable, 2).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same inputs give the object built before");
        assert_eq!(*first, track_deployment(&m, &v3, Track::Stable, 2).unwrap());
        // Each input that changes the object is seen, whatever the Model's generation says (left at 1).
        let mut image = m.clone();
        image.spec.serving.template.spec.as_mut().unwrap().containers[0].image = Some("server:2".into());
        let mut deadline = m.clone();
        deadline.spec.serving.progress_deadline_seconds = Some(120);
        let mut elsewhere = m.clone();
        elsewhere.metadata.namespace = Some("other".into());
        let mut artifact = v3.clone();
        artifact.spec.artifact_uri = "s3://elsewhere".into();
        let v4 = version(&m, 4);
        let cases: [(&Model, &ModelVersion, Track, i32); 6] = [
            (&image, &v3, Track::Stable, 2),
            (&deadline, &v3, Track::Stable, 2),
            (&elsewhere, &v3, Track::Stable, 2),
            (&m, &artifact, Track::Stable, 2),
            (&m, &v4, Track::Stable, 2),
            (&m, &v3, Track::Stable, 3),
        ];
        for (model, version, track, replicas) in cases {
            let got = desired.deployment(model, version, track, replicas).unwrap();
            assert_eq!(*got, track_deployment(model, version, track, replicas).unwrap());
            assert_ne!(*got, *first);
        }
        // Tracks are kept apart, and Models by uid.
        let canary = desired.deployment(&m, &v3, Track::Canary, 1).unwrap();
        assert_eq!(*canary, track_deployment(&m, &v3, Track::Canary, 1).unwrap());
        let other = model("churn", "u2");
        let theirs = desired.deployment(&other, &v3, Track::Stable, 2).unwrap();
        assert_eq!(*theirs, track_deployment(&other, &v3, Track::Stable, 2).unwrap());
        // One object per Model and track: (u1, Stable), (u1, Canary), (u2, Stable).
        assert_eq!(remembered.len(), 3);
    }

    #[test]
    fn a_remembered_service_is_what_building_it_gives() {
        let remembered = Remembered::default();
        let desired = DesiredObjects(Some(&remembered));
        let m = model("churn", "u1");
        let first = desired.serving_service(&m, None).unwrap();
        assert!(Arc::ptr_eq(&first, &desired.serving_service(&m, None).unwrap()));
        let mut port = m.clone();
        port.spec.serving.port = 9090;
        for (model, active) in [(&port, None), (&m, Some(Track::Preview)), (&m, Some(Track::Stable))] {
            assert_eq!(*desired.serving_service(model, active).unwrap(), serving_service(model, active).unwrap());
        }
        assert_ne!(*desired.serving_service(&port, None).unwrap(), *first);
    }

    #[test]
    fn without_a_uid_or_a_shell_memory_nothing_is_kept() {
        let remembered = Remembered::default();
        let mut m = model("churn", "u1");
        let v = version(&m, 1);
        assert!(DesiredObjects(None).deployment(&m, &v, Track::Stable, 1).is_some());
        m.metadata.uid = None;
        assert!(DesiredObjects(Some(&remembered)).deployment(&m, &v, Track::Stable, 1).is_none());
        assert!(remembered.is_empty());
    }
}
