//! Pruning finished versions beyond `versionHistoryLimit`.

use kube::ResourceExt;

use super::ledger::Ledger;
use crate::api::VersionPhase;

/// Names of the ModelVersions to delete: the oldest finished (Rejected, Failed, Retired,
/// RolledBack) beyond `limit`. Never the serving version, the wanted one, the one a rollback
/// would return to (the newest Retired), nor the newest version (its inputs hash is what tells
/// whether the Model needs a new version).
pub fn versions_to_prune(ledger: &Ledger, limit: u32, wanted: Option<u32>) -> Vec<String> {
    let newest = ledger.latest().map(|e| e.number());
    let rollback_target = ledger.in_phase(VersionPhase::Retired).last().map(|e| e.number());
    let keep = |n: u32| Some(n) == newest || Some(n) == wanted || Some(n) == rollback_target;
    let finished: Vec<_> =
        ledger.entries.iter().filter(|e| e.phase().is_terminal()).filter(|e| !keep(e.number())).collect();
    let excess = finished.len().saturating_sub(limit as usize);
    finished.iter().take(excess).map(|e| e.version.name_any()).collect()
}
