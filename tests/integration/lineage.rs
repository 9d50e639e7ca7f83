//! Data lineage that can be trusted: the digest a trainer reports of what it read is recorded,
//! and a dataset version whose content changed under the same name is flagged, or rejected with
//! `evaluation.requireStableData`.

use modelcycle::api::VersionPhase;
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

use crate::sim_support;
use sim_support::{MODEL, phase, version_status};

const POLICY: &str = "apiVersion: modelcycle.io/v1alpha1\nkind: RetrainPolicy\nmetadata: {name: churn, namespace: ml}\nspec:\n  modelRef: {name: churn}\n  manual: true\n  cooldown: 0s\n";

/// v1 trains on dataset version d1, retrain requests on days 1 and 2 train v2 and v3 on the same
/// d1, and d2 on day 3 trains v4; what each reads is scripted in `versions`.
fn run(require_stable: bool, versions: &str) -> Simulation {
    let model = if require_stable {
        MODEL.replace("  evaluation:\n", "  evaluation:\n    requireStableData: true\n")
    } else {
        MODEL.to_string()
    };
    let scenario = format!(
        "start: \"2026-01-01T00:00:00Z\"\nduration: 4d\ndefaults: {{metrics: {{auc: 0.9}}}}\nversions:\n{versions}changes:\n  - {{at: 1d, policy: churn, annotate: {{modelcycle.io/retrain-request: r1}}}}\n  - {{at: 2d, policy: churn, annotate: {{modelcycle.io/retrain-request: r2}}}}\n  - {{at: 3d, set: {{spec.training.dataset.version: d2}}}}\n"
    );
    let texts = [
        ("model.yaml".to_string(), model),
        ("policy.yaml".to_string(), POLICY.to_string()),
        ("scenario.yaml".to_string(), scenario),
    ];
    let mut sim = Simulation::new(Scenario::parse(&texts).expect("scenario parses"));
    sim.run();
    assert!(sim.cluster.violations.is_empty(), "{:?}", sim.cluster.violations);
    sim
}

const READS: &str = "  1: {dataset: {digest: 'sha256:aaa', rows: 1000}}\n  2: {dataset: {digest: 'sha256:bbb', rows: 1040}}\n  3: {dataset: {digest: 'sha256:bbb', rows: 1040}}\n  4: {dataset: {digest: 'sha256:ddd'}}\n";

#[test]
fn the_same_data_read_again_is_stable() {
    let sim = run(true, "  1: {dataset: {digest: 'sha256:aaa'}}\n  2: {dataset: {digest: 'sha256:aaa'}}\n");
    let (status, reason, message) = data_stable(&sim, 2);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "SameDigest"));
    assert!(message.contains("v1"), "{message}");
    assert!(matches!(phase(&sim, 2), Some(VersionPhase::Retired | VersionPhase::Serving)));
}

fn data_stable(sim: &Simulation, n: u32) -> (String, String, String) {
    let status = version_status(sim, n);
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "DataStable")
        .cloned()
        .unwrap_or_else(|| panic!("v{n} has no DataStable"));
    (c.status, c.reason, c.message)
}

#[test]
fn a_dataset_version_whose_content_changed_is_flagged_and_the_version_still_serves() {
    let sim = run(false, READS);
    let read = version_status(&sim, 1).dataset_read.unwrap();
    assert_eq!((read.digest.as_str(), read.rows), ("sha256:aaa", Some(1000)), "the digest is recorded");
    assert_eq!(data_stable(&sim, 1).1, "FirstRecord");

    let (status, reason, message) = data_stable(&sim, 2);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "DatasetChanged"));
    assert!(message.contains("sha256:bbb by v2") && message.contains("sha256:aaa by v1"), "{message}");
    let flag = version_status(&sim, 2).decisions.into_iter().find(|d| d.reason == "DatasetChanged").unwrap();
    assert_eq!(flag.evidence.as_ref().unwrap()["earlier"]["digest"], "sha256:aaa");
    let warned = sim.timeline.iter().find(|t| t.reason == "DatasetChanged").expect("a DatasetChanged Event");
    assert!(warned.warning && warned.version == Some(2), "{warned:?}");
    assert!(warned.message.contains("sha256:aaa") && warned.message.contains("sha256:bbb"), "{}", warned.message);
    assert!(matches!(phase(&sim, 2), Some(VersionPhase::Retired | VersionPhase::Serving)), "only flagged: it went on");

    // v3 reads what v2 read, which still differs from what v1 read under the same version.
    let (_, reason, message) = data_stable(&sim, 3);
    assert_eq!(reason, "DatasetChanged");
    assert!(message.contains("sha256:aaa by v1"), "{message}");
    // v4 trains on a new dataset version: its first read.
    assert_eq!(data_stable(&sim, 4).1, "FirstRecord");
}

#[test]
fn with_require_stable_data_a_changed_dataset_is_rejected_and_the_champion_keeps_serving() {
    let sim = run(true, READS);
    assert_eq!(phase(&sim, 2), Some(VersionPhase::Rejected));
    let rejected = version_status(&sim, 2).decisions.last().cloned().unwrap();
    assert_eq!(rejected.reason, "DatasetChanged");
    assert!(rejected.message.contains("requireStableData"), "{}", rejected.message);
    // v3 reads what v2 read: still not what v1 read under d1, so it is rejected too; a new
    // dataset version (d2) is judged on its own.
    assert_eq!(phase(&sim, 3), Some(VersionPhase::Rejected));
    assert_eq!(phase(&sim, 4), Some(VersionPhase::Serving));
    assert_eq!(phase(&sim, 1), Some(VersionPhase::Retired), "v1 served until v4 replaced it");
}

#[test]
fn a_trainer_that_reports_no_digest_is_not_judged() {
    let sim = run(true, "");
    assert!(version_status(&sim, 2).conditions.iter().all(|c| c.type_ != "DataStable"));
    assert_eq!(phase(&sim, 4), Some(VersionPhase::Serving));
}
