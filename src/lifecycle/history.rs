//! Pruning finished versions beyond `versionHistoryLimit`.

use kube::ResourceExt;

use super::ledger::Ledger;
use crate::api::VersionPhase;

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
