//! Publishing a Model's versions to its MLflow registry: the shell half of
//! `lifecycle::registry` — allowlist, token, client, the writes, and the outcome as a reading.

use kube::ResourceExt;

use crate::api::Model;
use crate::lifecycle::reading::address_allowed;
use crate::lifecycle::registry::{Intent, Synced};
use crate::sources::mlflow::Mlflow;

use super::context::Context;
use super::readings::secret_token;

/// The value of `modelcycle.io/secret-type` that allows a Secret's use as an MLflow token.
pub const MLFLOW_TOKEN_SECRET_TYPE: &str = "mlflow-token";

/// Publishes `intent` to the Model's MLflow; never fails the reconcile: a failure is the outcome.
pub async fn publish(ctx: &Context, model: &Model, intent: &Intent) -> Synced {
    let result = attempt(ctx, model, intent).await;
    ctx.metrics.registry_publish(result.is_ok());
    if let Err(why) = &result {
        tracing::warn!(registry = %intent.tracking_uri, %why, "publishing to MLflow failed; retrying later");
    }
    Synced { hash: intent.hash.clone(), result }
}

async fn attempt(ctx: &Context, model: &Model, intent: &Intent) -> Result<usize, String> {
    if !address_allowed(&intent.tracking_uri, &ctx.mlflow_allowed) {
        return Err(format!(
            "{} is not among the MLflow URIs this controller may publish to ({}); see --mlflow-allowed-uris",
            intent.tracking_uri,
            ctx.mlflow_allowed.join(", ")
        ));
    }
    let spec = model.spec.registry.as_ref().and_then(|r| r.mlflow.as_ref());
    let token = match spec.and_then(|m| m.token_secret.as_ref()) {
        None => None,
        Some(selector) => {
            let secret = (selector.name.as_str(), selector.key.as_str());
            let about = ("tokenSecret", MLFLOW_TOKEN_SECRET_TYPE, "mlflow.tokenSecrets");
            let namespace = model.namespace().unwrap_or_default();
            Some(secret_token(ctx, &namespace, secret, about).await.map_err(|e| e.to_string())?)
        }
    };
    let client = Mlflow::new(&intent.tracking_uri, token).map_err(|e| e.to_string())?;
    client.publish(intent).await.map_err(|e| e.to_string())
}
