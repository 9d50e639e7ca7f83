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
#[derive(Debug)]
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
#[derive(Debug)]
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

/// Each Model's (by uid) objects of one kind, in `N` slots.
type Slots<I, K, const N: usize> = Mutex<HashMap<String, [Slot<I, K>; N]>>;

/// The serving objects a shell keeps for the Models it reconciles: the last one built for each
/// Model (by uid) and track, with what it was built from. It holds one Deployment per track a
/// Model used and one Service per selector, for as long as the shell keeps it.
#[derive(Debug, Default)]
pub struct Remembered {
    /// By Model uid, then by track (`Track as usize`).
    deployments: Slots<DeploymentInputs, Deployment, 3>,
    /// By Model uid, then by the track the Service selects (0: every serving pod, else 1 + track).
    services: Slots<ServiceInputs, Service, 4>,
}

/// The object in the Model's `slot` when `same` holds for what it was built from; else the one
/// `build` makes (with its inputs), kept in that slot. A lock poisoned by a panic elsewhere is
/// taken as it is: the slots only ever hold whole, finished objects.
fn recall<I, K, const N: usize>(
    kept: &Slots<I, K, N>,
    uid: &str,
    slot: usize,
    same: impl FnOnce(&I) -> bool,
    build: impl FnOnce() -> Option<(I, K)>,
) -> Option<Arc<K>> {
    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((inputs, built)) = kept.get(uid).and_then(|slots| slots[slot].as_ref())
        && same(inputs)
    {
        return Some(built.clone());
    }
    let (inputs, built) = build()?;
    let built = Arc::new(built);
    kept.entry(uid.to_string()).or_insert_with(|| std::array::from_fn(|_| None))[slot] = Some((inputs, built.clone()));
    Some(built)
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
        let build = || track_deployment(model, version, track, replicas);
        let (Some(remembered), Some(uid)) = (self.0, model.metadata.uid.as_deref()) else {
            return build().map(Arc::new);
        };
        let same = |inputs: &DeploymentInputs| inputs.same(model, version, replicas);
        recall(&remembered.deployments, uid, track as usize, same, || {
            let inputs = DeploymentInputs {
                namespace: model.metadata.namespace.clone(),
                name: model.name_any(),
                serving: model.spec.serving.clone(),
                version: version.spec.version,
                artifact_uri: version.spec.artifact_uri.clone(),
                replicas,
            };
            Some((inputs, build()?))
        })
    }

    /// The Service `<model>` in front of the serving pods (of the `active` track with
    /// blue-green), as [`serving_service`] builds it; `None` until the Model has a uid.
    pub fn serving_service(self, model: &Model, active: Option<Track>) -> Option<Arc<Service>> {
        let build = || serving_service(model, active);
        let (Some(remembered), Some(uid)) = (self.0, model.metadata.uid.as_deref()) else {
            return build().map(Arc::new);
        };
        let slot = active.map_or(0, |t| 1 + t as usize);
        recall(
            &remembered.services,
            uid,
            slot,
            |inputs| inputs.same(model),
            || {
                let inputs = ServiceInputs {
                    namespace: model.metadata.namespace.clone(),
                    name: model.name_any(),
                    port: model.spec.serving.port,
                };
                Some((inputs, build()?))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::inputs::new_version;

    /// How many objects are remembered (Deployments and Services).
    fn count(remembered: &Remembered) -> usize {
        let deployments = remembered.deployments.lock().unwrap().values().flatten().flatten().count();
        deployments + remembered.services.lock().unwrap().values().flatten().flatten().count()
    }

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
        assert_eq!(count(&remembered), 3);
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
        assert_eq!(count(&remembered), 0);
    }
}
