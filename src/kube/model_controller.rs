//! The Model controller: observe a Model, ask the core for a plan, apply it.

use std::sync::Arc;
use std::time::Instant;

use crate::kube::decoded::Decoded;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::api::Model;
use crate::error::{Error, Result};
use crate::lifecycle::model::plan_model;
use crate::lifecycle::monitor;

use super::readings::{take, take_analysis};

use super::apply::apply_model_plan;
use super::children::{ChildStores, fill_latest_version};
use super::context::Context;
use super::invalid::report_invalid;
use super::lanes::Turns;
use super::packed::Packed;

/// A Model as the Model cache holds it: packed (a reconcile unpacks its own), or why it does
/// not decode.
pub type CachedModel = Decoded<Packed<Model>>;

/// What the Model controller shares between reconciles.
pub struct ModelContext {
    /// Client, Event publisher, metrics.
    pub shared: Context,
    /// Caches of the children.
    pub children: ChildStores,
    /// Which Models a lane reconciles now.
    turns: Turns,
}

impl ModelContext {
    /// The context of both lanes.
    pub fn new(shared: Context, children: ChildStores) -> Self {
        Self { shared, children, turns: Turns::default() }
    }
}

/// How long a reconcile that found the caches still listing waits before it looks again.
pub const CACHE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Name of this controller in metrics and logs.
pub const NAME: &str = "model";

/// Reconciles one Model, recording the CPU time it takes (`modelcycle_reconcile_cpu_seconds`).
pub async fn reconcile(guard: Arc<CachedModel>, model_ctx: Arc<ModelContext>) -> Result<Action> {
    let metrics = model_ctx.shared.metrics.clone();
    metrics.on_cpu(NAME, reconcile_once(guard, model_ctx)).await
}

/// Reconciles one Model: the pipeline is observe → plan (pure) → apply.
#[tracing::instrument(skip_all, fields(model = %guard.name_any(), namespace = guard.namespace().unwrap_or_default()))]
async fn reconcile_once(guard: Arc<CachedModel>, model_ctx: Arc<ModelContext>) -> Result<Action> {
    let ctx = &model_ctx.shared;
    let _turn = model_ctx.turns.take(&key(&guard)).await;
    let _timer = ctx.metrics.reconcile_timer(NAME);
    let model = match &guard.0 {
        Ok(packed) => packed.unpacked()?,
        Err(invalid) => return Err(report_invalid::<Model>(invalid, ctx).await),
    };
    let model = &*model;
    if !model_ctx.children.synced() {
        // A plan made from half-listed caches could number a version that exists already.
        tracing::debug!("waiting for the caches of the Model's children to list once");
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let now = Timestamp::now();
    let deciding = Instant::now();
    let mut children = model_ctx.children.observe(model)?;
    let mut decided = deciding.elapsed();
    fill_latest_version(&ctx.client, model, &mut children).await?;
    let deciding = Instant::now();
    let due = children.due(model, now);
    decided += deciding.elapsed();
    let mut readings = match &due.checks {
        Some((policy, checks)) => take(ctx, policy, checks).await,
        None => Default::default(),
    };
    if !due.analysis.is_empty() {
        readings.analysis = take_analysis(ctx, model, &due.analysis).await;
        readings.analysis.results().for_each(|answer| ctx.metrics.analysis_query(answer));
    }
    if let Some(intent) = &due.registry {
        readings.registry = Some(super::registry::publish(ctx, model, intent).await);
    }
    readings.source = super::source::read(ctx, model).await;
    children.readings = readings;
    let deciding = Instant::now();
    let plan = plan_model(children.observed(model), now);
    ctx.metrics.decided(decided + deciding.elapsed());
    apply_model_plan(&ctx.client, &ctx.events, model, &plan).await?;
    let (gauges, counted) = monitor::after(&children, &plan);
    ctx.metrics.models.record(&model.namespace().unwrap_or_default(), &model.name_any(), gauges, counted);
    ctx.metrics.reconciled(NAME, true);
    ctx.reset_backoff(&key(&guard));
    // Level-based: even with nothing to wait for, look again after the resync period.
    Ok(Action::requeue(plan.requeue_after.map_or(ctx.resync, |wake| wake.min(ctx.resync))))
}

/// Waits for a change on invalid input, backs off on transient errors.
pub fn error_policy(guard: Arc<CachedModel>, error: &Error, model_ctx: Arc<ModelContext>) -> Action {
    let ctx = &model_ctx.shared;
    ctx.metrics.reconciled(NAME, false);
    ctx.metrics.failed(NAME, error);
    if error.waits_for_change() {
        tracing::warn!(%error, "waiting for the object to change");
        Action::await_change()
    } else {
        let wait = ctx.next_backoff(&key(&guard));
        tracing::warn!(%error, retry_in = ?wait, "reconcile failed");
        Action::requeue(wait)
    }
}

/// The pickup lane's reconcile: the same work, but what comes next (a requeue, a retry after
/// an error) is left to the main lane, which saw the same change.
pub async fn pick_up(guard: Arc<CachedModel>, model_ctx: Arc<ModelContext>) -> Result<Action> {
    if let Err(error) = reconcile(guard, model_ctx.clone()).await {
        // Counted as the main lane counts its failures; the retry is the main lane's.
        model_ctx.shared.metrics.reconciled(NAME, false);
        model_ctx.shared.metrics.failed(NAME, &error);
        tracing::debug!(%error, "the main lane retries");
    }
    Ok(Action::await_change())
}

fn key(guard: &CachedModel) -> String {
    format!("model/{}/{}", guard.namespace().unwrap_or_default(), guard.name_any())
}
