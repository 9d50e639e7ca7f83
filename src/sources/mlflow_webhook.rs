//! MLflow registry webhooks (MLflow 3): checking a delivery's signature and reading which
//! registered model it is about. MLflow signs `<delivery id>.<timestamp>.<body>` with HMAC-SHA256
//! under the webhook's secret and sends `v1,<base64>` in `X-MLflow-Signature`, the id in
//! `X-MLflow-Delivery-Id` and the Unix time in `X-MLflow-Timestamp`.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "x-mlflow-signature";
/// The header with the delivery's id.
pub const DELIVERY_ID_HEADER: &str = "x-mlflow-delivery-id";
/// The header with the delivery's Unix time.
pub const TIMESTAMP_HEADER: &str = "x-mlflow-timestamp";
/// How far a delivery's time may be from the controller's: older ones are refused as replays.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header is missing.
    #[error("the delivery has no {0} header")]
    MissingHeader(&'static str),
    /// The signature is not MLflow's `v1,<base64>`, or does not match.
    #[error("the signature does not match the body under the configured secret")]
    BadSignature,
    /// The timestamp is too far from now.
    #[error("the delivery is from {0}s away from now, more than the {MAX_SKEW_SECONDS}s allowed")]
    Stale(i64),
    /// The body is not a webhook payload.
    #[error("the body is not an MLflow webhook payload: {0}")]
    BadPayload(String),
}

/// The parts of a delivery the signature covers.
pub struct Delivery<'a> {
    /// `X-MLflow-Delivery-Id`.
    pub id: Option<&'a str>,
    /// `X-MLflow-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-MLflow-Signature`.
    pub signature: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// What a verified delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `model_version`, `model_version_alias`, `registered_model`, ...
    pub entity: String,
    /// `created`, `deleted`, `set`, ...
    pub action: String,
    /// The registered model it is about, if it names one.
    pub name: Option<String>,
}

impl Event {
    /// True for the events that can offer a Model a new version: a version registered, an alias
    /// set.
    pub fn offers_a_version(&self) -> bool {
        self.action == "created" && matches!(self.entity.as_str(), "model_version" | "model_version_alias")
    }
}

#[derive(Deserialize)]
struct Payload {
    entity: String,
    action: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// The signature MLflow sends for a delivery under `secret` (empty if the key is refused,
/// which HMAC never does).
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let Some(mut mac) = mac(secret, id, timestamp) else { return String::new() };
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn mac(secret: &str, id: &str, timestamp: &str) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    Some(mac)
}

/// Checks `delivery` against `secret` at Unix time `now` and reads it.
pub fn verify(secret: &str, delivery: &Delivery, now: i64) -> Result<Event, WebhookError> {
    let id = delivery.id.ok_or(WebhookError::MissingHeader("X-MLflow-Delivery-Id"))?;
    let timestamp = delivery.timestamp.ok_or(WebhookError::MissingHeader("X-MLflow-Timestamp"))?;
    let signature = delivery.signature.ok_or(WebhookError::MissingHeader("X-MLflow-Signature"))?;
    let encoded = signature.strip_prefix("v1,").ok_or(WebhookError::BadSignature)?;
    let claimed =
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = mac(secret, id, timestamp).ok_or(WebhookError::BadSignature)?;
    mac.update(delivery.body);
    // Constant-time comparison.
    mac.verify_slice(&claimed).map_err(|_| WebhookError::BadSignature)?;
    let sent: i64 = timestamp.parse().map_err(|_| WebhookError::BadSignature)?;
    let skew = now.saturating_sub(sent);
    if skew.abs() > MAX_SKEW_SECONDS {
        return Err(WebhookError::Stale(skew));
    }
    let payload: Payload =
        serde_json::from_slice(delivery.body).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
    let name = payload.data.get("name").and_then(|n| n.as_str()).map(String::from);
    Ok(Event { entity: payload.entity, action: payload.action, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"entity": "model_version", "action": "created", "timestamp": "2026-11-30T00:00:00+00:00", "data": {"name": "fraud", "version": "3", "source": "models:/m-1", "run_id": "r", "tags": {}, "description": null}}"#;

    fn delivery<'a>(signature: &'a str, timestamp: &'a str, body: &'a [u8]) -> Delivery<'a> {
        Delivery { id: Some("d-1"), timestamp: Some(timestamp), signature: Some(signature), body }
    }

    #[test]
    fn a_delivery_signed_with_the_secret_is_read_and_anything_else_is_refused() {
        let now = 1_800_000_000;
        let good = sign("s3cret", "d-1", "1800000000", BODY);
        let event = verify("s3cret", &delivery(&good, "1800000000", BODY), now).unwrap();
        assert_eq!(event.name.as_deref(), Some("fraud"));
        assert!(event.offers_a_version());
        assert_eq!(verify("other", &delivery(&good, "1800000000", BODY), now), Err(WebhookError::BadSignature));
        let tampered = BODY.to_vec().into_iter().map(|b| if b == b'3' { b'4' } else { b }).collect::<Vec<_>>();
        assert_eq!(verify("s3cret", &delivery(&good, "1800000000", &tampered), now), Err(WebhookError::BadSignature));
        // The timestamp is signed: moving it breaks the signature; an old signed one is stale.
        assert_eq!(verify("s3cret", &delivery(&good, "1800000001", BODY), now), Err(WebhookError::BadSignature));
        let old = sign("s3cret", "d-1", "1799999000", BODY);
        assert_eq!(verify("s3cret", &delivery(&old, "1799999000", BODY), now), Err(WebhookError::Stale(1000)));
        assert_eq!(verify("s3cret", &delivery("sha256=abc", "1800000000", BODY), now), Err(WebhookError::BadSignature));
        assert_eq!(verify("s3cret", &delivery("v1,@@@", "1800000000", BODY), now), Err(WebhookError::BadSignature));
        let unsigned = Delivery { signature: None, ..delivery("", "1800000000", BODY) };
        assert_eq!(verify("s3cret", &unsigned, now), Err(WebhookError::MissingHeader("X-MLflow-Signature")));
        let junk = sign("s3cret", "d-1", "1800000000", b"[1,2]");
        assert!(matches!(
            verify("s3cret", &delivery(&junk, "1800000000", b"[1,2]"), now),
            Err(WebhookError::BadPayload(_))
        ));
    }

    #[test]
    fn only_a_new_version_or_a_set_alias_offers_a_version() {
        let event = |entity: &str, action: &str| Event { entity: entity.into(), action: action.into(), name: None };
        assert!(event("model_version_alias", "created").offers_a_version());
        assert!(!event("model_version_alias", "deleted").offers_a_version());
        assert!(!event("model_version_tag", "set").offers_a_version());
        assert!(!event("registered_model", "created").offers_a_version());
    }
}
