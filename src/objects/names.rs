//! Deterministic, Kubernetes-valid names and label values for everything modelcycle creates.

use std::io::Write;

use sha2::{Digest, Sha256};

/// Longest name a Job may have: its name becomes the `job-name` label of its pods.
pub const JOB_NAME_MAX: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX: usize = 63;
/// Longest object name (DNS subdomain).
pub const OBJECT_NAME_MAX: usize = 253;

/// `base` + `suffix`, cut to `max` characters; a cut name ends in a short hash of the full
/// name so two long names that share a prefix stay distinct.
pub fn bounded(base: &str, suffix: &str, max: usize) -> String {
    let mut full = String::with_capacity(base.len() + suffix.len());
    full.push_str(base);
    full.push_str(suffix);
    fit(full, base.len(), max)
}

/// [`bounded`] with a formatted suffix (a version number), written straight after `base` in
/// one string: most names fit and need no other.
fn bounded_with(base: &str, suffix: std::fmt::Arguments, max: usize) -> String {
    use std::fmt::Write as _;
    let mut full = String::with_capacity(base.len() + 16);
    full.push_str(base);
    // Writing into a String cannot fail.
    let _ = full.write_fmt(suffix);
    fit(full, base.len(), max)
}

/// `full` (a base of `base_len` bytes, then a suffix) as it is if it fits in `max`, else cut to
/// `max` with a short hash of `full` before the suffix.
fn fit(full: String, base_len: usize, max: usize) -> String {
    if full.len() <= max {
        return full;
    }
    let (base, suffix) = full.split_at(base_len);
    let hash = &short_hash(&full)[..8];
    let keep = max.saturating_sub(suffix.len() + hash.len() + 1);
    let mut prefix: String = base.chars().take(keep).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    format!("{prefix}-{hash}{suffix}")
}

/// Name of the ModelVersion for version `n` of `model`.
pub fn version_name(model: &str, n: u32) -> String {
    bounded_with(model, format_args!("-v{n}"), OBJECT_NAME_MAX)
}

/// Name of the training Job of version `n` of `model`.
pub fn job_name(model: &str, n: u32) -> String {
    bounded_with(model, format_args!("-v{n}-train"), JOB_NAME_MAX)
}

/// Longest TrainJob name: JobSet names its pods `<name>-node-<job>-<index>-<5 random>`, which
/// must fit in 63 characters for up to 1,024 nodes.
pub const TRAINJOB_NAME_MAX: usize = 44;
/// Longest RayJob name: KubeRay's own limit, so that its RayCluster's names fit.
pub const RAYJOB_NAME_MAX: usize = 47;

/// Name of what trains version `n` of `model` on `backend`: the Job's name, cut shorter where an
/// engine names its own objects after it.
pub fn run_name(backend: crate::api::engines::TrainingBackend, model: &str, n: u32) -> String {
    use crate::api::engines::TrainingBackend;
    let max = match backend {
        TrainingBackend::Job => JOB_NAME_MAX,
        TrainingBackend::TrainJob => TRAINJOB_NAME_MAX,
        TrainingBackend::RayJob => RAYJOB_NAME_MAX,
    };
    bounded_with(model, format_args!("-v{n}-train"), max)
}

/// Name of the serving Deployment and Service of `model`.
pub fn serving_name(model: &str) -> String {
    bounded(model, "", JOB_NAME_MAX)
}

/// A label value for `value` (model names may be longer than label values allow).
pub fn label_value(value: &str) -> String {
    bounded(value, "", LABEL_VALUE_MAX)
}

/// Why `name` is not a DNS-1035 label (what Kubernetes requires of a Service's name), if it is not.
pub fn dns_label_problem(name: &str) -> Option<String> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || name.len() > 63 {
        Some(format!("{name:?} must be 1 to 63 characters long"))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some(format!("{name:?} must start with a lowercase letter"))
    } else if let Some(c) = name.chars().find(|c| !valid_char(*c)) {
        Some(format!("{name:?} may hold only lowercase letters, digits and '-', not {c:?}"))
    } else if name.ends_with('-') {
        Some(format!("{name:?} must end with a letter or digit"))
    } else {
        None
    }
}

/// Why `name` is not a DNS-1123 subdomain (what Kubernetes requires of most object names).
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.is_empty() || name.len() > OBJECT_NAME_MAX {
        Some(format!("{name:?} must be 1 to {OBJECT_NAME_MAX} characters long"))
    } else if let Some(c) = name.chars().find(|c| !alnum(*c) && *c != '-' && *c != '.') {
        Some(format!("{name:?} may hold only lowercase letters, digits, '-' and '.', not {c:?}"))
    } else if !name.starts_with(alnum) || !name.ends_with(alnum) {
        Some(format!("{name:?} must start and end with a lowercase letter or digit"))
    } else {
        None
    }
}

/// Hex SHA-256 of a string.
pub fn short_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Hex SHA-256 of a value's JSON. The values hashed here (specs of string-keyed maps, numbers
/// and strings) always serialize; were one ever not to, its hash would be that of an empty text
/// and the object merely applied again, never a panic.
pub fn json_hash(value: &impl serde::Serialize) -> String {
    // Written into the hasher (an `io::Write`) through a small buffer: the JSON text of a pod
    // template is never held whole, and the hasher takes it in blocks rather than in the
    // serializer's many writes of a few bytes each.
    let mut hasher = Sha256::new();
    let mut buffered = std::io::BufWriter::with_capacity(1024, &mut hasher);
    if serde_json::to_writer(&mut buffered, value).is_err() || buffered.flush().is_err() {
        return short_hash("");
    }
    drop(buffered);
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_json_hash_is_the_hash_of_the_json_text() {
        // Written objects carry these hashes: hashing the JSON as it is written must give what
        // hashing its text gave, or an upgrade would apply every child again.
        let value = serde_json::json!({"image": "trainer:1", "args": ["--epochs", "3"], "env": {"A": "é\"x"}});
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(json_hash(&value), short_hash(&text));
        assert_eq!(json_hash(&value).len(), 64);
        // A pod template is longer than the buffer the JSON passes through on its way.
        let long = serde_json::json!({"args": (0..500).map(|i| format!("--flag-{i}")).collect::<Vec<_>>(), "x": "y".repeat(3000)});
        let text = serde_json::to_string(&long).unwrap();
        assert!(text.len() > 4 * 1024);
        assert_eq!(json_hash(&long), short_hash(&text));
    }

    #[test]
    fn short_names_are_kept_as_they_are() {
        assert_eq!(job_name("churn", 3), "churn-v3-train");
        assert_eq!(version_name("churn", 12), "churn-v12");
        assert_eq!(serving_name("churn"), "churn");
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_keep_their_suffix() {
        let long = "a".repeat(100);
        let name = job_name(&long, 7);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-v7-train"), "{name}");
        assert_ne!(job_name(&format!("{long}x"), 7), name, "different models get different names");
    }

    fn dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    proptest! {
        #[test]
        fn job_names_are_valid_dns_labels(model in "[a-z]([-a-z0-9]{0,200}[a-z0-9])?", n in 1u32..100_000) {
            let name = job_name(&model, n);
            prop_assert!(dns_label(&name), "{name}");
            let suffix = format!("-v{}-train", n);
            prop_assert!(name.ends_with(&suffix));
        }

        #[test]
        fn numbered_names_are_those_bounded_always_made(model in "[-a-z0-9.]{0,300}", n in 0u32..=u32::MAX) {
            // Objects that exist carry these names: writing the number in place must not change one.
            use crate::api::engines::TrainingBackend;
            prop_assert_eq!(version_name(&model, n), bounded(&model, &format!("-v{n}"), OBJECT_NAME_MAX));
            prop_assert_eq!(job_name(&model, n), bounded(&model, &format!("-v{n}-train"), JOB_NAME_MAX));
            for (backend, max) in [
                (TrainingBackend::Job, JOB_NAME_MAX),
                (TrainingBackend::TrainJob, TRAINJOB_NAME_MAX),
                (TrainingBackend::RayJob, RAYJOB_NAME_MAX),
            ] {
                prop_assert_eq!(run_name(backend, &model, n), bounded(&model, &format!("-v{n}-train"), max));
            }
        }

        #[test]
        fn label_values_fit(model in "[a-z]([-a-z0-9]{0,250}[a-z0-9])?") {
            prop_assert!(label_value(&model).len() <= 63);
        }
    }
}
