//! The RetrainPolicy controller: reports a policy whose Model does not exist. Once the Model
//! exists, the Model's reconcile decides the policy's triggers and writes its status.

use std::sync::Arc;

use crate::kube::decoded::Decoded;
use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use crate::api::RetrainPolicy;
use crate::error::{Error, Result};
use crate::lifecycle::policy::{PolicyWorld, plan_policy};

use super::apply::{apply_status_of, publish_events};
use super::children::listed;
use super::context::Context;
use super::index::{Owned, StoreIndex};
use super::invalid::report_invalid;
use super::model_controller::{CACHE_WAIT, CachedModel};
use super::packed::{Packed, unpacked_decoded};

/// Name of this controller in metrics and logs.
pub const NAME: &str = "retrainpolicy";

/// The caches the policy controller reads its world from.
pub struct PolicyStores {
    /// Every Model the controller watches.
    pub models: Store<CachedModel>,
    /// Every RetrainPolicy the controller watches, by the Model it names.
    pub policies: StoreIndex<CachedPolicy>,
}

/// A RetrainPolicy as the policy cache holds it: packed (a reconcile unpacks those it reads), or
/// why it does not decode.
pub type CachedPolicy = Decoded<Packed<RetrainPolicy>>;

/// Whether the cache holds `model` in `ns`.
fn model_exists(stores: &PolicyStores, ns: &str, model: &str) -> bool {
    stores.models.get(&ObjectRef::new(model).within(ns)).is_some()
}

/// The world of one policy, read from the caches.
pub fn world_of<'a>(
    policy: &RetrainPolicy,
    stores: &'a PolicyStores,
    same_model: &'a [Arc<RetrainPolicy>],
) -> PolicyWorld<'a> {
    let ns = policy.namespace().unwrap_or_default();
    let model = &policy.spec.model_ref.name;
    let model_exists = model_exists(stores, &ns, model);
    let policies_for_model = same_model
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && &p.spec.model_ref.name == model)
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), p.metadata.creation_timestamp.as_ref().map(|t| t.0)))
        .collect();
    // A Model that exists has its policies judged by its own reconcile.
    PolicyWorld { model_exists, policies_for_model, model_source: None }
}

/// Reconciles one RetrainPolicy, recording the CPU time it takes (`modelcycle_reconcile_cpu_seconds`).
pub async fn reconcile(guard: Arc<CachedPolicy>, ctx: Arc<(Context, PolicyStores)>) -> Result<Action> {
    let metrics = ctx.0.metrics.clone();
    metrics.on_cpu(NAME, reconcile_once(guard, ctx)).await
}

/// Reconciles one RetrainPolicy.
#[tracing::instrument(skip_all, fields(policy = %guard.name_any(), namespace = guard.namespace().unwrap_or_default()))]
async fn reconcile_once(guard: Arc<CachedPolicy>, ctx: Arc<(Context, PolicyStores)>) -> Result<Action> {
    let (ctx, stores) = (&ctx.0, &ctx.1);
    let _timer = ctx.metrics.reconcile_timer(NAME);
    let packed = match &guard.0 {
        Ok(packed) => packed,
        Err(invalid) => return Err(report_invalid::<RetrainPolicy>(invalid, ctx).await),
    };
    if !listed(&stores.models) {
        // An unlisted Model cache would make every policy look orphaned: a restart would stall
        // them all and write their statuses twice (the e2e suite's restart showed it).
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let ns = packed.namespace().unwrap_or_default();
    let model = packed.owner().unwrap_or_default();
    if model_exists(stores, &ns, model) {
        // The Model's reconcile owns the status of the policies that name it (one writer per
        // status, since server-side apply under one manager replaces what that manager set).
        // Known from what the cache keeps decoded: nothing is unpacked.
        ctx.metrics.reconciled(NAME, true);
        return Ok(Action::await_change());
    }
    let policy = &*packed.unpacked()?;
    let same_model = unpacked_decoded(&stores.policies.of(&ns, Some(model)))?;
    let world = world_of(policy, stores, &same_model);
    let plan = plan_policy(policy, &world, Timestamp::now());
    if let Some(status) = &plan.status {
        let api: Api<RetrainPolicy> = Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
        apply_status_of(&api, &policy.name_any(), policy.resource_version().as_deref(), status).await?;
    }
    publish_events(&ctx.events, &policy.object_ref(&()), &plan.events).await;
    ctx.metrics.reconciled(NAME, true);
    Ok(Action::await_change())
}

/// Waits for a change on invalid input, backs off on transient errors.
pub fn error_policy(guard: Arc<CachedPolicy>, error: &Error, ctx: Arc<(Context, PolicyStores)>) -> Action {
    let ctx = &ctx.0;
    ctx.metrics.reconciled(NAME, false);
    ctx.metrics.failed(NAME, error);
    if error.waits_for_change() {
        Action::await_change()
    } else {
        let key = format!("policy/{}/{}", guard.namespace().unwrap_or_default(), guard.name_any());
        Action::requeue(ctx.next_backoff(&key))
    }
}
