//! Pruning finished versions beyond `versionHistoryLimit`, and finished training runs beyond
//! `runHistoryLimit`.

use kube::ResourceExt;

use super::backends::{Engine, Runs, of_version, run_name};
use super::ledger::Ledger;
use super::plan::Kind;
use crate::api::VersionPhase;
use crate::objects::meta::is_named;

/// Names of the ModelVersions to delete so that at most `limit` finished (Rejected, Failed,
/// Retired, RolledBack) versions remain, oldest first. Protected versions count towards the
/// limit but are never deleted: the wanted one, the one a rollback would return to (the newest
/// Retired), and the newest version (its inputs hash tells whether the Model needs a new one).
pub fn versions_to_prune(ledger: &Ledger, limit: u32, wanted: Option<u32>) -> Vec<String> {
    let newest = ledger.latest().map(|e| e.number());
    let rollback_target = ledger.in_phase(VersionPhase::Retired).last().map(|e| e.number());
    let keep = |n: u32| Some(n) == newest || Some(n) == wanted || Some(n) == rollback_target;
    let finished = ledger.entries.iter().filter(|e| e.phase().is_terminal());
    let excess = finished.clone().count().saturating_sub(limit as usize);
    finished.filter(|e| !keep(e.number())).take(excess).map(|e| e.version.name_any()).collect()
}

/// The training runs (kind and name) to delete so that at most `limit` runs of versions that
/// have left training remain, the newest kept. Only runs that exist are named (deleting one that
/// is gone would be a write on every reconcile), and not those of versions pruned in the same
/// plan (`pruned`): the garbage collector takes those with their version.
///
/// A version counts as having left training by its *observed* phase, the one already written:
/// a run whose outcome this very plan records stays until that record is on the cluster, so a
/// controller stopped between the two writes never finds a version in training without its run
/// (which would train it again).
pub fn runs_to_delete(ledger: &Ledger, runs: &Runs, limit: u32, pruned: &[String]) -> Vec<(Kind, String)> {
    // Every run named below exists, so with no more runs than the limit none is in excess (and
    // no run's name needs to be made to find out).
    let watched = |engine: Engine<usize>| if let Engine::Watched(n) = engine { n } else { 0 };
    let existing = runs.jobs.len() + watched(runs.train_jobs.map(<[_]>::len)) + watched(runs.ray_jobs.map(<[_]>::len));
    if existing <= limit as usize {
        return vec![];
    }
    let left_training = |phase: Option<VersionPhase>| {
        !matches!(phase.unwrap_or(VersionPhase::Pending), VersionPhase::Pending | VersionPhase::Training)
    };
    let finished: Vec<(Kind, String)> = ledger
        .entries
        .iter()
        .filter(|e| left_training(e.version.status.as_ref().and_then(|s| s.phase)))
        // A version taken from a registry trained elsewhere: it has no run here.
        .filter(|e| e.version.spec.source.is_none())
        .filter(|e| !pruned.iter().any(|p| is_named(e.version, p)))
        .filter_map(|e| {
            let backend = of_version(e.version);
            let name = run_name(e.version);
            backend.exists(&name, runs).then(|| (backend.kind(), name))
        })
        .collect();
    let excess = finished.len().saturating_sub(limit as usize);
    finished.into_iter().take(excess).collect()
}
