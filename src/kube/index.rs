//! The objects of each Model, found without looking at those of every other Model.
//!
//! A reflector store answers by name only; selecting one Model's children by scanning the whole
//! store made every reconcile cost as much as the number of Models in the cluster (the
//! `children of 1 in N` benchmark: 12.5 ms per reconcile at 10,000 Models, before this index).
//! `ByModel` files a kind's objects under the Model they belong to, fed by the kind's watch
//! events. For a Model's children the filing is the cache itself ([`Indexed`]: each object
//! under its Model, no reflector store beside it); for RetrainPolicies, whose store the policy
//! controller shares, it files names and the store holds the objects ([`StoreIndex`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::api::engines::{RayJob, TrainJob};
use crate::api::gateway::HttpRoute;
use crate::api::kserve::InferenceService;
use crate::api::{Model, ModelVersion, RetrainPolicy};
use crate::kube::decoded::Decoded;
use crate::objects::meta::MODEL_LABEL;

/// A kind whose objects each name the Model they belong to.
pub trait Owned: Resource<DynamicType = ()> + Clone + 'static {
    /// The Model this object belongs to (for labelled children, the Model's label value), if it
    /// says; an object that does not is filed under no Model.
    fn owner(&self) -> Option<&str>;
}

/// A Model belongs to itself (what its packed form in the Model cache records).
impl Owned for Model {
    fn owner(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }
}

impl Owned for ModelVersion {
    fn owner(&self) -> Option<&str> {
        Some(self.spec.model.as_str())
    }
}

impl Owned for RetrainPolicy {
    fn owner(&self) -> Option<&str> {
        Some(self.spec.model_ref.name.as_str())
    }
}

/// An object that does not decode is filed under the Model it names, when that can be read.
impl<K: Owned> Owned for Decoded<K> {
    fn owner(&self) -> Option<&str> {
        self.0.as_ref().map_or_else(|e| e.model.as_deref(), |k| k.owner())
    }
}

macro_rules! labelled {
    ($($kind:ty),*) => {$(
        impl Owned for $kind {
            fn owner(&self) -> Option<&str> {
                self.labels().get(MODEL_LABEL).map(String::as_str)
            }
        }
    )*};
}
labelled!(Job, Pod, Deployment, Service, HttpRoute, InferenceService, TrainJob, RayJob);

/// The Model an object is filed under (`None`: it names none), shared by that Model's objects.
type Owner = Option<Arc<str>>;

/// One namespace's objects of a kind, each name with what is kept of its object: `()` where a
/// store beside the filing holds the objects ([`StoreIndex`]), the cached form of the object
/// where the filing is the cache ([`Indexed`]).
///
/// Filed under (Model, name), so one Model's objects are one range of one map, and with the
/// Model of each name beside it, to move an object whose Model label changes. Per object that is
/// two map entries, its name twice and a share of its Model's name, where a map of names per
/// (namespace, Model) took a B-tree node with room for eleven per Model and kind, and a map from
/// (namespace, name) to Model three strings per object.
#[derive(Debug)]
struct Space<V> {
    objects: BTreeMap<(Owner, Box<str>), V>,
    owner_of: HashMap<Box<str>, Owner>,
}

impl<V> Default for Space<V> {
    fn default() -> Self {
        Self { objects: BTreeMap::new(), owner_of: HashMap::new() }
    }
}

impl<V> Space<V> {
    /// `owner` as this namespace holds it already, if one of its objects is filed under it: a
    /// Model's name is held once for all its objects.
    fn shared(&self, owner: Option<&str>) -> Owner {
        let owner: Owner = owner.map(Arc::from);
        match self.objects.range((owner.clone(), Box::<str>::from(""))..).next() {
            Some(((held, _), _)) if *held == owner => held.clone(),
            _ => owner,
        }
    }

    /// The objects filed under `owner`, in the order of their names.
    fn shelf(&self, owner: Option<&str>) -> impl Iterator<Item = (&str, &V)> {
        let owner: Owner = owner.map(Arc::from);
        self.objects
            .range((owner.clone(), Box::<str>::from(""))..)
            .take_while(move |((held, _), _)| *held == owner)
            .map(|((_, name), kept)| (&**name, kept))
    }
}

/// One kind's objects, by namespace.
#[derive(Debug)]
struct Filing<V> {
    spaces: HashMap<Box<str>, Space<V>>,
}

impl<V> Default for Filing<V> {
    fn default() -> Self {
        Self { spaces: HashMap::new() }
    }
}

/// An object's namespace and name, as its watch delivers it.
fn place<K: Resource>(object: &K) -> (&str, &str) {
    let meta = object.meta();
    (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

impl<V> Filing<V> {
    fn file<K: Owned>(&mut self, object: &K, kept: V) {
        let (ns, name) = place(object);
        let space = match self.spaces.get_mut(ns) {
            Some(space) => space,
            None => self.spaces.entry(ns.into()).or_default(),
        };
        let owner = object.owner();
        let owner = match space.owner_of.get(name) {
            Some(held) if held.as_deref() == owner => held.clone(),
            moved => {
                if let Some(moved) = moved.cloned() {
                    space.objects.remove(&(moved, name.into()));
                }
                let owner = space.shared(owner);
                space.owner_of.insert(name.into(), owner.clone());
                owner
            }
        };
        space.objects.insert((owner, name.into()), kept);
    }

    fn remove<K: Owned>(&mut self, object: &K) {
        let (ns, name) = place(object);
        let Some(space) = self.spaces.get_mut(ns) else { return };
        if let Some(owner) = space.owner_of.remove(name) {
            space.objects.remove(&(owner, name.into()));
        }
        if space.owner_of.is_empty() {
            self.spaces.remove(ns);
        }
    }
}

/// The live filing, and the one a relist is building (it replaces the live one when the list
/// is complete, as kube's store does with its buffer).
#[derive(Debug)]
struct Filings<V> {
    live: Filing<V>,
    relisting: Option<Filing<V>>,
}

/// An index of one kind's objects by the Model they belong to, fed by its watch's events.
#[derive(Clone, Debug)]
pub struct ByModel<V = ()> {
    filings: Arc<RwLock<Filings<V>>>,
}

impl<V> Default for ByModel<V> {
    fn default() -> Self {
        Self { filings: Arc::new(RwLock::new(Filings { live: Filing::default(), relisting: None })) }
    }
}

impl<V> ByModel<V> {
    /// Files what a watch event says, keeping `kept(object)` of each object. A panic elsewhere
    /// while the lock was held leaves the filing as consistent as any single event leaves it,
    /// so a poisoned lock is used as is.
    fn apply_with<K: Owned>(&self, event: &watcher::Event<K>, kept: impl Fn(&K) -> V) {
        let mut filings = self.filings.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => filings.relisting = Some(Filing::default()),
            watcher::Event::InitApply(o) => match filings.relisting.as_mut() {
                Some(relisting) => relisting.file(o, kept(o)),
                None => filings.live.file(o, kept(o)),
            },
            watcher::Event::InitDone => {
                if let Some(relisted) = filings.relisting.take() {
                    filings.live = relisted;
                }
            }
            watcher::Event::Apply(o) => filings.live.file(o, kept(o)),
            watcher::Event::Delete(o) => filings.live.remove(o),
        }
    }

    /// `each(name, kept)` of the objects filed under `owner` in `ns`, in the order of their names.
    fn shelf<T>(&self, ns: &str, owner: Option<&str>, each: impl Fn(&str, &V) -> T) -> Vec<T> {
        let filings = self.filings.read().unwrap_or_else(PoisonError::into_inner);
        filings
            .live
            .spaces
            .get(ns)
            .map(|space| space.shelf(owner).map(|(n, v)| each(n, v)).collect())
            .unwrap_or_default()
    }
}

impl ByModel<()> {
    /// Files the names of what a watch event says.
    pub fn apply<K: Owned>(&self, event: &watcher::Event<K>) {
        self.apply_with(event, |_| ());
    }

    /// The watch `events`, filed here as they pass.
    pub fn follow<K, S>(&self, events: S) -> impl Stream<Item = S::Item> + Send + use<K, S>
    where
        K: Owned,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let index = self.clone();
        events.inspect(move |event| {
            if let Ok(event) = event {
                index.apply(event);
            }
        })
    }

    /// The names filed under `owner` in `ns`.
    fn names(&self, ns: &str, owner: Option<&str>) -> Vec<String> {
        self.shelf(ns, owner, |name, ()| name.to_string())
    }
}

/// What a kind's cache keeps of each watched object (for a packed kind, its packed JSON: not the
/// metadata the watch decoded, since the cache files it by namespace, Model and name already).
pub trait Keep: Owned {
    /// The form kept, shared by the cache and what a reconcile is handed.
    type Kept: Clone + std::fmt::Debug + Send + Sync + 'static;

    /// What is kept of `self`.
    fn kept(&self) -> Self::Kept;
}

/// A kind's cache: what is kept of its objects ([`Keep`]) by the Model they belong to, as its
/// watch delivers them. The index is the cache, with no reflector store beside it: a store would
/// hold every object a second time under a key of four strings (name, namespace, uid, resource
/// version), and finding a Model's objects would look each name up in it.
pub struct Indexed<K: Keep> {
    by_model: ByModel<K::Kept>,
    /// Whether the watch has listed once.
    listed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl<K: Keep> Clone for Indexed<K> {
    fn clone(&self) -> Self {
        Self { by_model: self.by_model.clone(), listed: self.listed.clone() }
    }
}

impl<K: Keep> Default for Indexed<K> {
    fn default() -> Self {
        Self { by_model: ByModel::default(), listed: Arc::new(tokio::sync::watch::Sender::new(false)) }
    }
}

impl<K: Keep> Indexed<K> {
    /// What is kept of the objects of `ns` filed under `owner` (`None`: those that name no
    /// Model), with their names, in the order of their names, shared with the cache.
    pub fn of(&self, ns: &str, owner: Option<&str>) -> Vec<(Box<str>, K::Kept)> {
        self.by_model.shelf(ns, owner, |name, kept| (name.into(), kept.clone()))
    }

    /// Caches what a watch event says.
    pub fn apply(&self, event: &watcher::Event<K>) {
        self.by_model.apply_with(event, K::kept);
        if let watcher::Event::InitDone = event {
            self.listed.send_replace(true);
        }
    }

    /// The watch `events` cached here, as the objects they change (applied, listed and deleted:
    /// a child deleted by hand wakes its Model too). Without errors: they end in the watch,
    /// which reports them and retries.
    pub fn follow<S>(&self, events: S) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K, S>
    where
        K: Send + Sync,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let cache = self.clone();
        events.filter_map(move |event| {
            let changed = match event {
                Ok(event) => {
                    cache.apply(&event);
                    match event {
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
                            Some(Ok(o))
                        }
                        watcher::Event::Init | watcher::Event::InitDone => None,
                    }
                }
                Err(_) => None,
            };
            std::future::ready(changed)
        })
    }

    /// Whether the watch has listed its objects once (without waiting).
    pub fn is_listed(&self) -> bool {
        *self.listed.borrow()
    }

    /// Waits until the watch has listed its objects once.
    pub async fn wait_until_listed(&self) {
        // The sender lives as long as this cache, so the wait ends only when listed.
        let _ = self.listed.subscribe().wait_for(|listed| *listed).await;
    }

    /// A cache that has listed `objects`, as a watch's first list leaves it (for tests and
    /// benchmarks).
    pub fn listed(objects: Vec<K>) -> Self {
        let cache = Self::default();
        first_list(objects).for_each(|event| cache.apply(&event));
        cache
    }
}

/// A reflector store with its index by Model, for a kind whose store two controllers share
/// (RetrainPolicies): the index holds names, the store the objects.
#[derive(Clone)]
pub struct StoreIndex<K: Owned> {
    /// The store.
    pub store: Store<K>,
    /// Its objects' names by Model.
    pub by_model: ByModel,
}

impl<K: Owned> StoreIndex<K> {
    /// The objects of `ns` filed under `owner` (`None`: those that name no Model), shared with
    /// the store. A name filed before its object reaches the store is skipped.
    pub fn of(&self, ns: &str, owner: Option<&str>) -> Vec<Arc<K>> {
        self.by_model
            .names(ns, owner)
            .into_iter()
            .filter_map(|name| self.store.get(&ObjectRef::new(&name).within(ns)))
            .collect()
    }

    /// A store and index that have listed `objects`, as a watch's first list leaves them (for
    /// tests and benchmarks).
    pub fn listed(objects: Vec<K>) -> Self {
        let (store, mut writer) = kube::runtime::reflector::store();
        let by_model = ByModel::default();
        for event in first_list(objects) {
            by_model.apply(&event);
            writer.apply_watcher_event(&event);
        }
        Self { store, by_model }
    }
}

/// The events of a watch's first list of `objects`.
fn first_list<K>(objects: Vec<K>) -> impl Iterator<Item = watcher::Event<K>> {
    std::iter::once(watcher::Event::Init)
        .chain(objects.into_iter().map(watcher::Event::InitApply))
        .chain(std::iter::once(watcher::Event::InitDone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::packed::Packed;
    use kube::api::ObjectMeta;

    fn job(ns: &str, name: &str, model: Option<&str>) -> Job {
        let labels = model.map(|m| [(MODEL_LABEL.to_string(), m.to_string())].into());
        Job {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), labels, ..Default::default() },
            ..Default::default()
        }
    }

    fn names(index: &ByModel, ns: &str, owner: Option<&str>) -> Vec<String> {
        index.names(ns, owner)
    }

    #[test]
    fn objects_are_filed_under_their_model_and_namespace() {
        let index = ByModel::default();
        for j in [
            job("a", "churn-v1", Some("churn")),
            job("a", "fraud-v1", Some("fraud")),
            job("b", "churn-v1", Some("churn")),
            job("a", "a-stray", None),
            job("a", "churn2-v1", Some("churn2")),
            job("a", "churn-v0", Some("churn")),
        ] {
            index.apply(&watcher::Event::Apply(j));
        }
        assert_eq!(names(&index, "a", Some("churn")), ["churn-v0", "churn-v1"]);
        assert_eq!(names(&index, "b", Some("churn")), ["churn-v1"]);
        assert_eq!(names(&index, "a", Some("fraud")), ["fraud-v1"]);
        assert_eq!(names(&index, "a", Some("churn2")), ["churn2-v1"], "a Model whose name begins with another's");
        assert_eq!(names(&index, "a", None), ["a-stray"]);
        assert!(names(&index, "b", Some("fraud")).is_empty());
        // A Model's name is held once for all its objects in a namespace.
        let filings = index.filings.read().unwrap();
        let owners: Vec<&Owner> =
            filings.live.spaces["a"].owner_of.iter().filter(|(n, _)| n.starts_with("churn-")).map(|(_, o)| o).collect();
        assert_eq!(owners.len(), 2);
        let (first, second) = (owners[0].as_ref().unwrap(), owners[1].as_ref().unwrap());
        assert!(Arc::ptr_eq(first, second), "one copy of the Model's name");
        assert!(filings.live.spaces["a"].objects.keys().all(|(o, _)| o.as_ref().is_none_or(|o| o.len() > 2)));
    }

    #[test]
    fn a_changed_label_moves_the_object_and_a_deletion_removes_it() {
        let index = ByModel::default();
        index.apply(&watcher::Event::Apply(job("a", "x", Some("churn"))));
        index.apply(&watcher::Event::Apply(job("a", "x", Some("fraud"))));
        assert!(names(&index, "a", Some("churn")).is_empty(), "moved, not copied");
        assert_eq!(names(&index, "a", Some("fraud")), ["x"]);
        index.apply(&watcher::Event::Apply(job("a", "x", None)));
        assert_eq!(names(&index, "a", None), ["x"], "an object that names no Model is filed as such");
        index.apply(&watcher::Event::Delete(job("a", "x", None)));
        assert!(names(&index, "a", None).is_empty());
        let filings = index.filings.read().unwrap();
        assert!(filings.live.spaces.is_empty(), "nothing is left behind");
    }

    #[test]
    fn a_relist_replaces_the_filing_when_complete_and_forgets_what_vanished_meanwhile() {
        let index = ByModel::default();
        index.apply(&watcher::Event::Apply(job("a", "gone", Some("churn"))));
        index.apply(&watcher::Event::<Job>::Init);
        index.apply(&watcher::Event::InitApply(job("a", "kept", Some("churn"))));
        assert_eq!(names(&index, "a", Some("churn")), ["gone"], "until the list is complete the old filing answers");
        index.apply(&watcher::Event::<Job>::InitDone);
        assert_eq!(names(&index, "a", Some("churn")), ["kept"]);
    }

    fn with_status(mut job: Job, active: i32) -> Job {
        job.status = Some(k8s_openapi::api::batch::v1::JobStatus { active: Some(active), ..Default::default() });
        job
    }

    fn packed(job: Job) -> Packed<Job> {
        Packed::pack(job).unwrap()
    }

    fn active(jobs: &[Arc<Job>]) -> Vec<(String, Option<i32>)> {
        jobs.iter().map(|j| (j.name_any(), j.status.as_ref().and_then(|s| s.active))).collect()
    }

    #[tokio::test]
    async fn the_cache_holds_each_object_as_last_seen_and_wakes_on_every_change_deletion_included() {
        use futures::StreamExt;
        let cache = Indexed::<Packed<Job>>::default();
        assert!(!cache.is_listed());
        let events = futures::stream::iter([
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(packed(with_status(job("a", "churn-v1", Some("churn")), 1)))),
            Ok(watcher::Event::InitDone),
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Apply(packed(with_status(job("a", "churn-v1", Some("churn")), 0)))),
            Ok(watcher::Event::Apply(packed(job("a", "churn-v2", Some("churn"))))),
            Ok(watcher::Event::Delete(packed(job("a", "churn-v2", Some("churn"))))),
        ]);
        let woken: Vec<String> = cache.follow(events).map(|j| j.unwrap().name_any()).collect().await;
        assert_eq!(woken, ["churn-v1", "churn-v1", "churn-v2", "churn-v2"], "listed, changed, created, deleted");
        assert!(cache.is_listed());
        cache.wait_until_listed().await;
        assert_eq!(
            active(&cache.unpacked("a", "churn").unwrap()),
            [("churn-v1".to_string(), Some(0))],
            "the newest state"
        );
    }

    #[tokio::test]
    async fn a_cache_is_listed_once_its_first_list_is_complete_and_stays_listed_through_a_relist() {
        let cache = Indexed::<Packed<Job>>::default();
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(packed(job("a", "x", Some("churn")))));
        assert!(!cache.is_listed(), "half a list");
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_until_listed().await }
        });
        cache.apply(&watcher::Event::InitDone);
        waiting.await.unwrap();
        assert!(cache.is_listed());
        cache.apply(&watcher::Event::Init);
        assert!(cache.is_listed(), "a relist answers from the last list meanwhile");
        assert_eq!(cache.of("a", Some("churn")).len(), 1);
    }

    #[test]
    fn a_lookup_returns_the_objects_of_one_model_only_in_the_order_of_their_names() {
        let jobs = || {
            vec![
                job("a", "churn-v2-train", Some("churn")),
                job("a", "churn-v1-train", Some("churn")),
                job("a", "fraud-v1-train", Some("fraud")),
            ]
        };
        let names = |found: Vec<Arc<Job>>| found.iter().map(|j| j.name_any()).collect::<Vec<_>>();
        let (cached, stored) = (Indexed::listed(jobs().into_iter().map(packed).collect()), StoreIndex::listed(jobs()));
        for found in [cached.unpacked("a", "churn").unwrap(), stored.of("a", Some("churn"))] {
            assert_eq!(names(found), ["churn-v1-train", "churn-v2-train"]);
        }
        assert!(cached.of("b", Some("churn")).is_empty() && stored.of("b", Some("churn")).is_empty());
    }
}
