//! Reading the MLflow registry a Model takes its versions from: the shell half of
//! `lifecycle::source`. Each Model's last reading is kept for its poll interval, so a reconcile
//! for any other reason asks MLflow nothing; a registry webhook marks the readings of its
//! registered model stale and wakes the Models that follow it.

use std::time::{Duration, Instant};

use kube::ResourceExt;

use crate::api::{MlflowSource, Model};
use crate::lifecycle::source::{Offered, SourceError, reading_holds, sourced};
use crate::sources::mlflow::MlflowError;

use super::context::Context;
use super::reading_clients::Kept;

/// How much earlier than its interval a reading may be taken again: a reconcile the core asked
/// for at the interval arrives a little before a reading of exactly that age.
const SLACK: Duration = Duration::from_secs(1);

type Reading = Result<Offered, SourceError>;

/// What the Model's registry offers: the kept reading while it is fresh, else a new one.
pub async fn read(ctx: &Context, model: &Model) -> Option<Reading> {
    let key = format!("{}/{}", model.namespace().unwrap_or_default(), model.name_any());
    let Some(source) = sourced(model) else {
        // A Model that trains again keeps no reading (nothing is kept for one that never read).
        ctx.sources.forget(&key);
        return None;
    };
    let of = (source.tracking_uri.clone(), source.name.clone(), source.alias.clone());
    // Taken before the reading: a webhook that arrives while it is on its way leaves it stale.
    let marks = ctx.sources.marks(&source.name);
    let known = {
        let kept = ctx.sources.lock();
        match kept.get(&key) {
            Some(k) if k.fresh(&of, marks, reading_holds(source, &k.reading).saturating_sub(SLACK)) => {
                return Some(k.reading.clone());
            }
            Some(k) if k.of == of => k.reading.clone().ok(),
            _ => None,
        }
    };
    let reading = attempt(ctx, model, source, known.as_ref()).await;
    ctx.metrics.registry_read(match &reading {
        Ok(_) => "ok",
        Err(SourceError::Unreachable(_)) => "unreachable",
        Err(SourceError::Missing(_)) => "missing",
        Err(SourceError::Refused(_)) => "refused",
    });
    if let Err(why) = &reading {
        tracing::debug!(registry = %source.tracking_uri, %why, "reading the MLflow registry gave no version");
    }
    let kept = Kept { of, at: Instant::now(), reading: reading.clone(), marks };
    ctx.sources.lock().insert(key, kept);
    Some(reading)
}

async fn attempt(ctx: &Context, model: &Model, source: &MlflowSource, known: Option<&Offered>) -> Reading {
    let client = super::registry::client(ctx, model, &source.tracking_uri, source.token_secret.as_ref())
        .await
        .map_err(|e| SourceError::Refused(e.to_string()))?;
    client.offered(&source.name, source.alias.as_deref(), known).await.map_err(classify)
}

/// What an MLflow error means for a reading: an outage waits, a missing model or alias waits
/// quietly, a refusal of the credentials or an answer that is not MLflow's needs a fix.
pub fn classify(error: MlflowError) -> SourceError {
    match &error {
        MlflowError::Unreachable { .. } => SourceError::Unreachable(error.to_string()),
        MlflowError::Refused { status: 404, .. } => SourceError::Missing(error.to_string()),
        MlflowError::Refused { code, .. } if code == "RESOURCE_DOES_NOT_EXIST" => {
            SourceError::Missing(error.to_string())
        }
        MlflowError::Refused { status, .. } if *status >= 500 || *status == 429 => {
            SourceError::Unreachable(error.to_string())
        }
        MlflowError::Refused { .. } | MlflowError::Unexpected { .. } => SourceError::Refused(error.to_string()),
    }
}
