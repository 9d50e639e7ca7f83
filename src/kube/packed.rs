//! What a cache holds of each Model and each object a Model owns: the object as its trimmed JSON,
//! compressed ([`Pack`]). The watch decodes each object with the few fields it, the index and the
//! controller's mapping to a Model read beside its pack ([`Packed`]); the children's caches keep
//! the pack alone, filed by namespace, Model and name ([`Indexed`]), and the Model cache the
//! whole `Packed`.
//!
//! A decoded Kubernetes object takes several times its JSON in memory: its types hold every
//! field inline whether it is set or not (a `Job` is 2,592 bytes before any of its strings, a
//! `ModelVersion` 3,392), each string and list is an allocation of its own and each map a B-tree
//! node. A ModelVersion whose JSON is 2.7 KB held 11.5 KiB decoded. The `caches of N Models`
//! benchmark (`cargo bench --bench lifecycle -- children`) measures what the caches hold per
//! Model; the README's Scale section has the figures before and after packing.
//!
//! The JSON is held compressed (LZ4, against [`DICTIONARY`]): most of an object's JSON is what
//! every object of its kind repeats (keys, label names, the kind and API version, condition
//! types and messages), and those are found in the dictionary, so a ModelVersion of 2.8 to
//! 3.1 KB is held in about 700 bytes.
//!
//! A reconcile unpacks its own Model and that Model's objects only (a dozen or so), so packing
//! costs each reconcile the decoding of those and nothing per Model in the cluster; the
//! benchmark's `children of 1 in N` and `its Model unpacked` rows measure it.

use std::marker::PhantomData;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::decoded::{Decoded, resource_of};
use super::index::{Indexed, Keep, Owned};
use super::trim::Trim;
use crate::error::Error;

/// What packing compresses an object's JSON against: one object of each kind the caches pack
/// (a Model, two ModelVersions, a Job, its pod, a Deployment and a Service), trimmed, as a
/// simulated run of `examples/canary` leaves them, and a RetrainPolicy as `examples/retraining`
/// leaves it. It only has to resemble what is packed: an
/// object unlike it packs and unpacks the same, in more bytes. `cargo test --lib
/// packing_dictionary -- --ignored` writes it again from the simulator.
pub const DICTIONARY: &[u8] = include_bytes!("packing-dictionary.jsonl");

/// The lines of [`DICTIONARY`] that are objects of `kind` (the whole of it for a kind it has no
/// sample of). Compressing hashes its dictionary first, so each kind is compressed against its
/// own samples only: a Job against one Job, not against every kind.
fn dictionary_of(kind: &str) -> &'static [u8] {
    static BY_KIND: LazyLock<HashMap<String, &'static [u8]>> = LazyLock::new(|| {
        let mut spans: HashMap<String, (usize, usize)> = HashMap::new();
        let mut start = 0;
        for line in DICTIONARY.split_inclusive(|b| *b == b'\n') {
            let end = start + line.len();
            let kind = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|sample| sample["kind"].as_str().map(str::to_string));
            if let Some(kind) = kind {
                let span = spans.entry(kind).or_insert((start, end));
                *span = (span.0.min(start), span.1.max(end));
            }
            start = end;
        }
        spans.into_iter().map(|(kind, (start, end))| (kind, &DICTIONARY[start..end])).collect()
    });
    BY_KIND.get(kind).copied().unwrap_or(DICTIONARY)
}

/// An object's JSON once trimmed ([`Trim`]), LZ4-compressed against its kind's part of
/// [`DICTIONARY`], its length first: what a cache keeps of an object ([`Keep`]). Shared: a
/// reconcile is handed the cache's bytes, not a copy.
pub struct Pack<K> {
    lz4: Arc<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource<DynamicType = ()> + DeserializeOwned> Pack<K> {
    /// The object as it was packed.
    pub fn unpack(&self) -> Result<K, serde_json::Error> {
        use serde::de::Error as _;
        let json = lz4_flex::block::decompress_size_prepended_with_dict(&self.lz4, dictionary_of(&K::kind(&())))
            .map_err(serde_json::Error::custom)?;
        // Validated as UTF-8 at once, which is cheaper than string by string as they are read.
        serde_json::from_str(std::str::from_utf8(&json).map_err(serde_json::Error::custom)?)
    }

    /// [`Pack::unpack`] for a reconcile: shared with it only, and an object that does not read
    /// back is the reconcile's [`Error::Cache`], naming the object.
    pub fn unpacked(&self, namespace: &str, name: &str) -> crate::error::Result<Arc<K>> {
        self.unpack().map(Arc::new).map_err(|e| Error::Cache {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: e.to_string(),
        })
    }
}

impl<K> Pack<K> {
    /// How many bytes the object's JSON takes packed.
    pub fn bytes(&self) -> usize {
        self.lz4.len()
    }
}

impl<K> Clone for Pack<K> {
    fn clone(&self) -> Self {
        Self { lz4: self.lz4.clone(), kind: PhantomData }
    }
}

impl<K> std::fmt::Debug for Pack<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pack({} bytes)", self.lz4.len())
    }
}

/// An object as its watch decodes it: its [`Pack`], and decoded beside it only what the watch,
/// the index and the controller's mapping to a Model read without unpacking (name, namespace,
/// uid, resource version, deletion) and the Model it belongs to ([`Owned`]). A cache keeps the
/// pack alone ([`Keep`]); the Model cache, a reflector store, keeps it whole.
pub struct Packed<K> {
    metadata: ObjectMeta,
    owner: Option<String>,
    pack: Pack<K>,
}

impl<K> Packed<K>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    /// Trims `object` and packs what is left.
    pub fn pack(mut object: K) -> Result<Self, serde_json::Error> {
        object.trim();
        let json = serde_json::to_vec(&object)?;
        let lz4 = lz4_flex::block::compress_prepend_size_with_dict(&json, dictionary_of(&K::kind(&())));
        let owner = object.owner().map(str::to_string);
        let meta = object.meta();
        let metadata = ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            // The watch resumes from the resource version of the last object it saw. (Not the
            // owner references: the controller maps an object to its Model by `owner`.)
            resource_version: meta.resource_version.clone(),
            deletion_timestamp: meta.deletion_timestamp.clone(),
            ..ObjectMeta::default()
        };
        Ok(Self { metadata, owner, pack: Pack { lz4: lz4.into(), kind: PhantomData } })
    }

    /// The object as it was packed.
    pub fn unpack(&self) -> Result<K, serde_json::Error> {
        self.pack.unpack()
    }

    /// [`Packed::unpack`] for a reconcile ([`Pack::unpacked`]).
    pub fn unpacked(&self) -> crate::error::Result<Arc<K>> {
        self.pack.unpacked(self.metadata.namespace.as_deref().unwrap_or_default(), &self.name_any())
    }
}

/// The caches keep an object's pack.
impl<K> Keep for Packed<K>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    type Kept = Pack<K>;

    fn kept(&self) -> Pack<K> {
        self.pack.clone()
    }
}

/// And of an object that does not decode, that it is there.
impl<K> Keep for Decoded<Packed<K>>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    type Kept = Option<Pack<K>>;

    fn kept(&self) -> Option<Pack<K>> {
        self.0.as_ref().ok().map(|packed| packed.pack.clone())
    }
}

/// `found` ([`Indexed::of`]) unpacked, each object that does not read back an error naming it.
pub fn unpacked<K>(ns: &str, found: impl IntoIterator<Item = (Box<str>, Pack<K>)>) -> crate::error::Result<Vec<Arc<K>>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    found.into_iter().map(|(name, pack)| pack.unpacked(ns, &name)).collect()
}

/// Those of `found` that decoded, unpacked ([`Packed::unpacked`]).
pub fn unpacked_decoded<K>(found: &[Arc<Decoded<Packed<K>>>]) -> crate::error::Result<Vec<Arc<K>>>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    found.iter().filter_map(|g| g.0.as_ref().ok()).map(|p| p.unpacked()).collect()
}

impl<K> Indexed<Packed<K>>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    /// The objects of `ns` filed under `owner`, unpacked ([`Pack::unpacked`]).
    pub fn unpacked(&self, ns: &str, owner: &str) -> crate::error::Result<Vec<Arc<K>>> {
        unpacked(ns, self.of(ns, Some(owner)))
    }
}

impl<K> Decoded<Packed<K>>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    /// `object` as its watch caches it when it decodes.
    pub fn packed(object: K) -> Result<Self, serde_json::Error> {
        Packed::pack(object).map(Decoded::from)
    }
}

#[cfg(test)]
impl<K> Packed<K> {
    /// The same object with JSON that does not read back, as a defect would leave it.
    pub(crate) fn damaged(mut self) -> Self {
        self.pack.lz4 = lz4_flex::block::compress_prepend_size(b"{\"metadata\":").into();
        self
    }

    /// How many bytes the object's JSON takes packed.
    pub(crate) fn packed_len(&self) -> usize {
        self.pack.bytes()
    }
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self { metadata: self.metadata.clone(), owner: self.owner.clone(), pack: self.pack.clone() }
    }
}

impl<K> std::fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("owner", &self.owner)
            .field("packed_bytes", &self.pack.bytes())
            .finish()
    }
}

/// A watched object is decoded as its kind (so an object that does not decode is reported as
/// the kind's error, with the field at fault), then packed.
impl<'de, K> Deserialize<'de> for Packed<K>
where
    K: Owned + Trim + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = K::deserialize(deserializer)?;
        Packed::pack(object).map_err(serde::de::Error::custom)
    }
}

impl<K: Resource> Resource for Packed<K> {
    resource_of!(K);

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<K: Owned> Owned for Packed<K> {
    fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
}

/// Packing trimmed the object already.
impl<K> Trim for Packed<K> {
    fn trim(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Model, ModelVersion, RetrainPolicy};
    use crate::sim::{Simulation, scenario::Scenario};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Pod, Service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    /// `object` as the cache unpacks it equals `object` trimmed, and what is kept decoded is
    /// what the watch and the controller read.
    fn round_trip<K>(object: &K)
    where
        K: Owned + Trim + Serialize + DeserializeOwned,
    {
        let mut with_managed = object.clone();
        with_managed.meta_mut().managed_fields =
            Some(vec![ManagedFieldsEntry { manager: Some("modelcycle".into()), ..Default::default() }]);
        let packed = Packed::pack(with_managed).unwrap();
        let mut trimmed = object.clone();
        trimmed.trim();
        // Compared as JSON: every field, every number to the last bit of its shortest form.
        let json = |k: &K| serde_json::to_value(k).unwrap();
        assert_eq!(json(&packed.unpack().unwrap()), json(&trimmed));
        assert_eq!(packed.meta().name, object.meta().name);
        assert_eq!(packed.meta().namespace, object.meta().namespace);
        assert_eq!(packed.meta().resource_version, object.meta().resource_version);
        assert_eq!(packed.meta().owner_references, None, "the owner references are read unpacked only");
        assert_eq!(packed.owner(), object.owner());
        assert_eq!(packed.meta().labels, None, "labels are read from the unpacked object");
    }

    #[test]
    fn every_object_of_a_simulated_canary_comes_back_from_its_pack_as_trimmed() {
        // The analysed canary example makes every kind a Model owns by default, with statuses
        // full of what a decision reads (conditions, metrics, decisions, rollout progress).
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut sim = Simulation::new(Scenario::load(&[&format!("{examples}/shadow")]).unwrap());
        sim.run_until("2026-11-03T02:00:00Z".parse().unwrap());
        let c = &sim.cluster;
        assert!(!c.models.is_empty() && !c.versions.is_empty() && !c.jobs.is_empty() && !c.pods.is_empty());
        assert!(!c.deployments.is_empty() && !c.services.is_empty());
        c.models.values().for_each(|m| round_trip::<Model>(m));
        c.versions.values().for_each(|v| round_trip::<ModelVersion>(v));
        c.jobs.values().for_each(|j| round_trip::<Job>(j));
        c.pods.values().for_each(|p| round_trip::<Pod>(p));
        c.deployments.values().for_each(|d| round_trip::<Deployment>(d));
        c.services.values().for_each(|s| round_trip::<Service>(s));
    }

    #[test]
    fn a_retrain_policy_comes_back_from_its_pack_as_trimmed_in_a_third_of_its_json() {
        // The retraining example's policy fires on schedule, drift, performance and a request:
        // its status holds verdicts, firings and conditions. Its month is the dictionary's
        // sample; twelve days of it, renamed, are not.
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut sim = Simulation::new(Scenario::load(&[&format!("{examples}/retraining")]).unwrap());
        sim.run_until("2026-11-14T00:00:00Z".parse().unwrap());
        let mut policy = (**sim.cluster.policies.values().next().unwrap()).clone();
        assert!(policy.status.as_ref().is_some_and(|s| !s.recent_firings.is_empty()), "{policy:?}");
        policy.metadata.name = Some("weekly-retrain-of-the-ranking-model".into());
        policy.metadata.namespace = Some("search-ranking".into());
        policy.spec.model_ref.name = "ranker".into();
        round_trip::<RetrainPolicy>(&policy);
        let packed = Packed::pack(policy.clone()).unwrap();
        let json = serde_json::to_vec(&policy).unwrap().len();
        assert!(packed.packed_len() * 3 <= json, "{json} bytes of JSON packed to {}", packed.packed_len());
    }

    /// One trimmed object of each kind the caches pack, from a simulated run of `example`,
    /// one JSON per line: the ModelVersions the two with the most to say.
    fn samples(example: &str) -> Vec<Vec<u8>> {
        fn json<K: Trim + Serialize + Clone>(object: &K) -> Vec<u8> {
            let mut object = object.clone();
            object.trim();
            serde_json::to_vec(&object).unwrap()
        }
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut sim = Simulation::new(Scenario::load(&[&format!("{examples}/{example}")]).unwrap());
        sim.run();
        let c = &sim.cluster;
        let mut versions: Vec<Vec<u8>> = c.versions.values().map(|v| json(&**v)).collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut samples: Vec<Vec<u8>> = c.models.values().take(1).map(|m| json(&**m)).collect();
        samples.extend(versions.into_iter().take(2));
        samples.extend(c.jobs.values().take(1).map(|j| json(&**j)));
        samples.extend(c.pods.values().take(1).map(|p| json(&**p)));
        samples.extend(c.deployments.values().take(1).map(|d| json(&**d)));
        samples.extend(c.services.values().take(1).map(|s| json(&**s)));
        samples
    }

    /// The first RetrainPolicy of `example` after its simulated run, trimmed, as JSON.
    fn policy_sample(example: &str) -> Option<Vec<u8>> {
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut sim = Simulation::new(Scenario::load(&[&format!("{examples}/{example}")]).unwrap());
        sim.run();
        let mut policy = (**sim.cluster.policies.values().next()?).clone();
        policy.trim();
        Some(serde_json::to_vec(&policy).unwrap())
    }

    /// Writes [`DICTIONARY`] again (run it when the objects' shape has moved far from it).
    #[test]
    #[ignore = "writes src/kube/packing-dictionary.jsonl"]
    fn packing_dictionary() {
        let lines: Vec<u8> = samples("canary")
            .into_iter()
            .chain(policy_sample("retraining"))
            .flat_map(|mut s| {
                s.push(b'\n');
                s
            })
            .collect();
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/src/kube/packing-dictionary.jsonl"), lines).unwrap();
    }

    /// How many bytes `object`, read as a `K`, takes packed.
    fn packs_to<K>(object: serde_json::Value) -> usize
    where
        K: Owned + Trim + Serialize + DeserializeOwned,
    {
        Packed::pack(serde_json::from_value::<K>(object).unwrap()).unwrap().packed_len()
    }

    #[test]
    fn objects_the_dictionary_was_not_made_from_pack_to_a_third_of_their_json_or_less() {
        for kind in ["Model", "ModelVersion", "Job", "Pod", "Deployment", "Service", "RetrainPolicy"] {
            let samples = std::str::from_utf8(dictionary_of(kind)).unwrap();
            assert!(samples.lines().all(|l| l.contains(&format!("\"kind\":\"{kind}\""))), "{kind}: {samples}");
        }
        assert_eq!(dictionary_of("ModelVersion").iter().filter(|b| **b == b'\n').count(), 2);
        assert_eq!(dictionary_of("HTTPRoute"), DICTIONARY, "a kind without samples has them all");
        // The quickstart's objects: another Model, other names, images, metrics and decisions.
        for json in samples("quickstart") {
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let packed_len = match value["kind"].as_str().unwrap() {
                "Model" => packs_to::<Model>(value),
                "ModelVersion" => packs_to::<ModelVersion>(value),
                "Job" => packs_to::<Job>(value),
                "Pod" => packs_to::<Pod>(value),
                "Deployment" => packs_to::<Deployment>(value),
                "Service" => packs_to::<Service>(value),
                kind => panic!("no sample of {kind} expected"),
            };
            assert!(packed_len * 3 <= json.len(), "{} bytes of JSON packed to {packed_len}", json.len());
        }
    }

    #[test]
    fn an_object_unlike_the_dictionary_packs_and_unpacks_the_same_and_damage_is_an_error() {
        let mut job = Job::default();
        job.metadata.name = Some("x".repeat(5000));
        job.metadata.labels = Some((0..50).map(|i| (format!("k{i}"), "\u{1F600}".repeat(i))).collect());
        let packed = Packed::pack(job.clone()).unwrap();
        assert_eq!(packed.unpack().unwrap(), job);
        assert!(packed.damaged().unpack().is_err());
        let mut truncated = Packed::pack(job).unwrap();
        truncated.pack.lz4 = truncated.pack.lz4[..truncated.pack.bytes() / 2].into();
        assert!(truncated.unpack().is_err(), "a truncated pack is an error, not a panic");
    }

    #[test]
    fn an_object_is_packed_as_it_is_decoded_and_one_that_does_not_decode_names_its_field() {
        let job = serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "churn-v1-train", "namespace": "ml", "resourceVersion": "7",
                         "labels": {"modelcycle.io/model": "churn"}},
            "spec": {"template": {"spec": {"containers": [{"name": "trainer", "image": "i"}]}}},
            "status": {"succeeded": 1}
        });
        let packed: Packed<Job> = serde_json::from_value(job).unwrap();
        assert_eq!(packed.owner(), Some("churn"));
        assert_eq!(packed.meta().resource_version.as_deref(), Some("7"));
        let unpacked = packed.unpack().unwrap();
        assert_eq!(unpacked.spec, None, "trimmed before packing");
        assert_eq!(unpacked.status.and_then(|s| s.succeeded), Some(1));

        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let v1 = crate::lifecycle::inputs::new_version(&crate::lifecycle::testing::model("churn"), 1, vec![], now);
        let mut version = serde_json::to_value(v1.unwrap()).unwrap();
        version["spec"]["version"] = serde_json::json!("one");
        let decoded: Decoded<Packed<ModelVersion>> = serde_json::from_value(version).unwrap();
        let invalid = decoded.0.unwrap_err();
        assert!(invalid.error.starts_with("spec.version: "), "{}", invalid.error);
        assert_eq!(invalid.model.as_deref(), Some("churn"));
    }
}
