//! What `kubectl modelcycle promote|abort|retrain|pin|unpin` write, decided from the objects
//! alone. Every action is one of the ways the controller already reads (its annotations, or
//! `spec.pinnedVersion`); the plugin never invents another.

use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::{Model, ModelVersion, VersionPhase};
use crate::lifecycle::analysis::{ABORT_ANNOTATION, PROMOTE_ANNOTATION};
use crate::lifecycle::triggers::RETRAIN_REQUEST;

/// A merge patch for the Model and what it does, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The JSON merge patch.
    pub patch: Value,
    /// What was done, printed after the write.
    pub done: String,
}

fn annotate(model: &Model, key: &str, value: &str, why: &str) -> Edit {
    Edit {
        patch: json!({"metadata": {"annotations": {key: value}}}),
        done: format!("model.modelcycle.io/{} annotated {key}={value}: {why}", model.name_any()),
    }
}

fn phase(versions: &[ModelVersion], n: u32) -> Option<VersionPhase> {
    versions.iter().find(|v| v.spec.version == n).and_then(|v| v.status.as_ref()?.phase)
}

fn candidate(model: &Model) -> Option<u32> {
    model.status.as_ref().and_then(|s| s.candidate_version)
}

fn serving(model: &Model) -> Option<u32> {
    model.status.as_ref().and_then(|s| s.serving_version)
}

/// `promote NAME [VERSION]`: approves the remaining manual gates of the version on its way
/// (default: the Model's candidate). Only that version can be promoted: the controller would
/// ignore any other value and report it stale.
pub fn promote(model: &Model, versions: &[ModelVersion], version: Option<u32>) -> Result<Edit, String> {
    let name = model.name_any();
    let candidate = candidate(model).filter(|n| {
        matches!(phase(versions, *n), Some(VersionPhase::Ready | VersionPhase::RollingOut | VersionPhase::Evaluating))
    });
    let Some(waiting) = candidate else {
        return Err(format!("nothing to promote: no version of {name} is rolling out or waiting for promotion"));
    };
    let n = version.unwrap_or(waiting);
    if n != waiting {
        let what = phase(versions, n).map(|p| format!("is {p:?}")).unwrap_or_else(|| "does not exist".into());
        return Err(format!("v{n} of {name} {what}; only the version on its way (v{waiting}) can be promoted"));
    }
    Ok(annotate(model, PROMOTE_ANNOTATION, &n.to_string(), &format!("v{n} passes its manual gates")))
}

/// `abort NAME [VERSION]`: rolls back the version on its way (rolling out or waiting for
/// promotion), or (when none is) the serving one,
/// which brings back the version it replaced at once (inside `rollbackWindow`).
pub fn abort(model: &Model, versions: &[ModelVersion], version: Option<u32>) -> Result<Edit, String> {
    let name = model.name_any();
    let rolling = candidate(model)
        .filter(|n| matches!(phase(versions, *n), Some(VersionPhase::RollingOut | VersionPhase::Ready)));
    let n = match (version, rolling, serving(model)) {
        (Some(n), _, _) => n,
        (None, Some(n), _) | (None, None, Some(n)) => n,
        (None, None, None) => return Err(format!("nothing to abort: no version of {name} serves or rolls out")),
    };
    let why = match phase(versions, n) {
        Some(VersionPhase::RollingOut) => format!("v{n}'s rollout is rolled back"),
        Some(VersionPhase::Serving) => {
            format!("v{n} is rolled back and the version it replaced serves again (within the rollback window)")
        }
        Some(VersionPhase::Ready) if candidate(model) == Some(n) => format!("v{n} is rolled back before it rolls out"),
        Some(p) => return Err(format!("v{n} of {name} is {p:?}: only a version serving or on its way can be aborted")),
        None => return Err(format!("v{n} of {name} does not exist")),
    };
    Ok(annotate(model, ABORT_ANNOTATION, &n.to_string(), &why))
}

/// `retrain NAME [--reason R]`: asks for one training. Each request carries the time so that
/// asking twice trains twice (a new value of the annotation retrains once). Refused for a Model
/// that takes its versions from a registry: nothing would train.
pub fn retrain(model: &Model, reason: Option<&str>, now: Timestamp) -> Result<Edit, String> {
    if let Some(source) = &model.spec.source {
        return Err(format!(
            "{} takes its versions from MLflow registered model {:?} (spec.source) and trains nothing; register a new version there{}",
            model.name_any(),
            source.mlflow.name,
            source.mlflow.alias.as_deref().map_or(String::new(), |a| format!(" and point alias {a} at it"))
        ));
    }
    let now = now.round(jiff::Unit::Second).unwrap_or(now);
    let value = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => format!("{now} {reason}"),
        None => now.to_string(),
    };
    Ok(annotate(model, RETRAIN_REQUEST, &value, "a new version trains once"))
}

/// Which GitOps tool manages `model`, read from its field managers, labels and annotations.
pub fn gitops_owner(model: &Model) -> Option<String> {
    let managers: Vec<String> = model.managed_fields().iter().filter_map(|m| m.manager.clone()).collect();
    let known = [
        ("argocd-controller", "Argo CD"),
        ("argocd-application-controller", "Argo CD"),
        ("kustomize-controller", "Flux"),
        ("helm-controller", "Flux"),
    ];
    for (manager, tool) in known {
        if managers.iter().any(|m| m == manager) {
            return Some(format!("{tool} (field manager {manager})"));
        }
    }
    let annotations = model.annotations();
    if annotations.contains_key("argocd.argoproj.io/tracking-id") {
        return Some("Argo CD (annotation argocd.argoproj.io/tracking-id)".into());
    }
    let labels = model.labels();
    for key in ["kustomize.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/name"] {
        if labels.contains_key(key) {
            return Some(format!("Flux (label {key})"));
        }
    }
    if labels.contains_key("argocd.argoproj.io/instance") {
        return Some("Argo CD (label argocd.argoproj.io/instance)".into());
    }
    None
}

/// The warning printed before `pin` and `unpin` edit the spec.
pub fn spec_warning(model: &Model) -> String {
    let name = model.name_any();
    let owner = gitops_owner(model)
        .map(|o| format!("{name} is managed by {o}: it will undo this edit or report drift"))
        .unwrap_or_else(|| format!("if a GitOps tool (Argo CD, Flux) applies {name}, it will undo this edit"));
    format!(
        "warning: this edits spec.pinnedVersion, which the Model's owner (a GitOps repository) owns; {owner}. \
         Without editing the spec: `kubectl modelcycle abort {name}` rolls the serving version back at once, \
         `kubectl modelcycle promote {name}` approves the version on its way."
    )
}

/// `pin NAME VERSION`: serves that version (spec.pinnedVersion). The version must exist and
/// have passed its gates once.
pub fn pin(model: &Model, versions: &[ModelVersion], n: u32) -> Result<Edit, String> {
    let name = model.name_any();
    match phase(versions, n) {
        None => Err(format!("v{n} of {name} does not exist (or was pruned)")),
        Some(p @ (VersionPhase::Rejected | VersionPhase::Failed | VersionPhase::Pending | VersionPhase::Training)) => {
            Err(format!("v{n} of {name} is {p:?}: only a version that passed its gates can be pinned"))
        }
        Some(_) => Ok(Edit {
            patch: json!({"spec": {"pinnedVersion": n}}),
            done: format!("model.modelcycle.io/{name} pinned to v{n} (spec.pinnedVersion)"),
        }),
    }
}

/// `unpin NAME`: the newest version that passes its gates serves again.
pub fn unpin(model: &Model) -> Result<Edit, String> {
    let name = model.name_any();
    if model.spec.pinned_version.is_none() {
        return Err(format!("{name} is not pinned"));
    }
    Ok(Edit {
        patch: json!({"spec": {"pinnedVersion": null}}),
        done: format!("model.modelcycle.io/{name} unpinned (spec.pinnedVersion removed)"),
    })
}
