//! Publishing a Model's versions to its MLflow registry: the shell half of
//! `lifecycle::registry` — allowlist, token, client, the writes, and the outcome as a reading.

use kube::ResourceExt;

use crate::api::{Model, SecretKeyRef};
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
    let spec = model.spec.registry.as_ref().and_then(|r| r.mlflow.as_ref());
    let token_secret = spec.and_then(|m| m.token_secret.as_ref());
    let client = client(ctx, model, &intent.tracking_uri, token_secret).await.map_err(|e| e.to_string())?;
    client.publish(intent).await.map_err(|e| e.to_string())
}

/// Why the controller will not talk to a Model's MLflow: only a change of the Model or of the
/// controller's settings fixes it.
#[derive(Debug, thiserror::Error)]
pub enum ClientRefused {
    /// The tracking URI is outside `--mlflow-allowed-uris`.
    #[error("{uri} is not among the MLflow URIs this controller may use ({allowed}); see --mlflow-allowed-uris")]
    NotAllowed {
        /// The tracking URI.
        uri: String,
        /// The allowed prefixes, joined.
        allowed: String,
    },
    /// The token Secret cannot be used.
    #[error("{0}")]
    Token(String),
    /// No HTTP client could be built.
    #[error("{0}")]
    Client(String),
}

/// A client for the Model's MLflow at `uri`, with the token of `token_secret`, if the controller
/// may use both.
pub async fn client(
    ctx: &Context,
    model: &Model,
    uri: &str,
    token_secret: Option<&SecretKeyRef>,
) -> Result<Mlflow, ClientRefused> {
    if !address_allowed(uri, &ctx.mlflow_allowed) {
        return Err(ClientRefused::NotAllowed { uri: uri.to_string(), allowed: ctx.mlflow_allowed.join(", ") });
    }
    let token = match token_secret {
        None => None,
        Some(selector) => {
            let secret = (selector.name.as_str(), selector.key.as_str());
            let about = ("tokenSecret", MLFLOW_TOKEN_SECRET_TYPE, "mlflow.tokenSecrets");
            let namespace = model.namespace().unwrap_or_default();
            Some(secret_token(ctx, &namespace, secret, about).await.map_err(|e| ClientRefused::Token(e.to_string()))?)
        }
    };
    Mlflow::new(uri, token).map_err(|e| ClientRefused::Client(e.to_string()))
}
