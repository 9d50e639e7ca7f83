//! Hashes of what a Model's spec derives, remembered per generation of that spec.
//!
//! Every reconcile builds the objects a Model wants (its Deployments, Service, training inputs)
//! and compares their spec hashes with what is observed. The hash is SHA-256 over the JSON of
//! the object's spec, pod template included, and computing it was most of what deciding cost
//! while nothing changed. A Model's spec cannot change without its `metadata.generation` moving
//! (the API server counts every change of a custom resource's spec, and the simulator does as
//! it does), so a hash derived from the spec of one generation of one Model (its uid), and from
//! the other inputs its key names, stays right until the generation moves.
//!
//! What is remembered is a cache in the calling thread, never a decision: the hash is the same
//! with or without it, as long as no two specs are ever seen under one uid and generation. The
//! API server never shows two; the simulator gives every simulated cluster its own uids and
//! moves a Model's generation when a scenario changes its spec; a unit test that changes a
//! Model's spec moves its generation too. A Model without a uid or a generation is never
//! remembered, and the cache forgets everything once it holds [`CAPACITY`] hashes.

use std::cell::RefCell;
use std::collections::HashMap;

use kube::api::ObjectMeta;

use super::names::json_hash;

/// Hashes a thread remembers before it starts again (about 150 bytes each).
pub const CAPACITY: usize = 16_384;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    uid: String,
    generation: i64,
    /// What is hashed, and every input besides the Model's spec it depends on.
    what: String,
}

thread_local! {
    static HASHES: RefCell<HashMap<Key, String>> = RefCell::new(HashMap::new());
}

/// [`json_hash`] of `value`, a function of the spec of the Model whose metadata is `model` and of
/// what `what` names (which must name every other input of `value`).
pub fn spec_json_hash<T: serde::Serialize>(model: &ObjectMeta, what: impl FnOnce() -> String, value: &T) -> String {
    let (Some(uid), Some(generation)) = (model.uid.as_ref(), model.generation) else { return json_hash(value) };
    let key = Key { uid: uid.clone(), generation, what: what() };
    if let Some(hash) = HASHES.with_borrow(|hashes| hashes.get(&key).cloned()) {
        return hash;
    }
    let hash = json_hash(value);
    HASHES.with_borrow_mut(|hashes| {
        if hashes.len() >= CAPACITY {
            hashes.clear();
        }
        hashes.insert(key, hash.clone());
    });
    hash
}

/// How many hashes this thread remembers.
pub fn remembered() -> usize {
    HASHES.with_borrow(HashMap::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: Option<&str>, generation: Option<i64>) -> ObjectMeta {
        ObjectMeta { uid: uid.map(Into::into), generation, ..Default::default() }
    }

    #[test]
    fn a_hash_is_remembered_per_generation_and_key_and_is_the_hash_of_the_value() {
        let value = serde_json::json!({"image": "server:1"});
        let m = meta(Some("u1"), Some(1));
        assert_eq!(spec_json_hash(&m, || "a".into(), &value), json_hash(&value));
        // Within one generation the remembered hash answers, whatever the value (this is what
        // makes it cheap: the value is not serialized again).
        let other = serde_json::json!({"image": "server:2"});
        assert_eq!(spec_json_hash(&m, || "a".into(), &other), json_hash(&value));
        // Another generation, another key or another Model is hashed afresh.
        assert_eq!(spec_json_hash(&meta(Some("u1"), Some(2)), || "a".into(), &other), json_hash(&other));
        assert_eq!(spec_json_hash(&m, || "b".into(), &other), json_hash(&other));
        assert_eq!(spec_json_hash(&meta(Some("u2"), Some(1)), || "a".into(), &other), json_hash(&other));
    }

    #[test]
    fn a_model_without_uid_or_generation_is_never_remembered() {
        let before = remembered();
        for m in [meta(None, Some(1)), meta(Some("u"), None)] {
            let one = serde_json::json!(1);
            let two = serde_json::json!(2);
            assert_eq!(spec_json_hash(&m, || "a".into(), &one), json_hash(&one));
            assert_eq!(spec_json_hash(&m, || "a".into(), &two), json_hash(&two));
        }
        assert_eq!(remembered(), before);
    }

    #[test]
    fn the_cache_starts_again_when_full() {
        let value = serde_json::json!(1);
        for g in 0..=CAPACITY as i64 {
            spec_json_hash(&meta(Some("full"), Some(g)), || "a".into(), &value);
        }
        assert!(remembered() <= CAPACITY, "{} hashes remembered", remembered());
        assert_eq!(remembered(), 1, "the one hashed after the cache filled");
    }
}
