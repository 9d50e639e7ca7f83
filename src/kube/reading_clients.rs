//! What the controller keeps between readings: one Prometheus client (one connection pool) per
//! address, timeout and TLS setting, bearer tokens read from Secrets for a while, and the last
//! reading of each Model's source registry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::PrometheusSource;
use crate::lifecycle::source::{Offered, SourceError};
use crate::sources::prometheus::{Prometheus, ReadingError};

/// How long a bearer token read from a Secret is used before the Secret is read again (a
/// rotated token is picked up within this time, as the kubelet's Secret cache does).
pub const TOKEN_TTL: Duration = Duration::from_secs(60);

/// The Prometheus clients and bearer tokens the controller keeps between reconciles: one
/// client (one connection pool) per address, timeout and TLS setting, and each token for
/// [`TOKEN_TTL`], so a reading neither builds a client nor reads a Secret every time.
#[derive(Default)]
pub struct ReadingClients {
    clients: Mutex<HashMap<ClientKey, Prometheus>>,
    tokens: Mutex<HashMap<TokenKey, (Instant, String)>>,
}

/// A client's address, timeout and whether it skips TLS verification.
pub(super) type ClientKey = (String, Option<Duration>, bool);
/// A token's namespace, Secret name and key.
pub(super) type TokenKey = (String, String, String);

impl ReadingClients {
    /// How many Prometheus clients are kept.
    pub fn clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub(super) fn client(&self, source: &PrometheusSource) -> Result<Prometheus, ReadingError> {
        let timeout = source.timeout.map(crate::api::Duration::as_std);
        let key = (source.address.trim_end_matches('/').to_string(), timeout, source.insecure_skip_verify);
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = Prometheus::new(&source.address, timeout, source.insecure_skip_verify, None)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    pub(super) fn token(&self, key: &TokenKey) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.get(key).filter(|(read, _)| read.elapsed() < TOKEN_TTL).map(|(_, token)| token.clone())
    }

    pub(super) fn keep_token(&self, key: TokenKey, token: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|_, (read, _)| read.elapsed() < TOKEN_TTL);
        tokens.insert(key, (Instant::now(), token.to_string()));
    }
}

pub(crate) struct Kept {
    /// `(tracking URI, name, alias)` the reading is of.
    pub(crate) of: (String, String, Option<String>),
    pub(crate) at: Instant,
    pub(crate) reading: Result<Offered, SourceError>,
    /// The registered model's webhook count when the reading started: a webhook since (even
    /// one that arrived while the reading was on its way) makes it stale.
    pub(crate) marks: u64,
}

impl Kept {
    /// True while this reading still answers for `of`: nothing changed where it points, no
    /// webhook came since it started (`marks`), and it is younger than `holds`.
    pub(crate) fn fresh(&self, of: &(String, String, Option<String>), marks: u64, holds: Duration) -> bool {
        &self.of == of && self.marks == marks && self.at.elapsed() < holds
    }
}

/// The last reading of each Model's registry, and how many webhooks each registered model had.
#[derive(Default)]
pub struct SourceReadings {
    kept: Mutex<HashMap<String, Kept>>,
    marks: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for SourceReadings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.kept.lock().map(|k| k.len()).unwrap_or_default();
        f.debug_struct("SourceReadings").field("kept", &n).finish()
    }
}

impl SourceReadings {
    /// Makes every reading of registered model `name` stale, including one on its way now.
    pub fn stale(&self, name: &str) {
        *self.marks.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default() += 1;
    }

    /// How many webhooks registered model `name` had so far.
    pub fn marks(&self, name: &str) -> u64 {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).get(name).copied().unwrap_or_default()
    }

    /// The kept readings, by `namespace/name` of the Model.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a Model that is gone.
    pub fn forget(&self, key: &str) {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn a_webhook_during_a_reading_leaves_it_stale() {
        let readings = SourceReadings::default();
        let of = ("http://m".to_string(), "fraud".to_string(), Some("staging".to_string()));
        let hour = Duration::from_secs(3600);
        // A reading starts, a webhook arrives while it is on its way, then it is kept.
        let started = readings.marks("fraud");
        readings.stale("fraud");
        let kept = Kept {
            of: of.clone(),
            at: Instant::now(),
            reading: Err(SourceError::Missing("alias not found yet".into())),
            marks: started,
        };
        assert!(!kept.fresh(&of, readings.marks("fraud"), hour), "the webhook's news is not in it");
        let again = Kept { marks: readings.marks("fraud"), ..kept };
        assert!(again.fresh(&of, readings.marks("fraud"), hour));
        readings.stale("other-model");
        assert!(again.fresh(&of, readings.marks("fraud"), hour), "another model's webhook changes nothing");
        let moved = ("http://m".to_string(), "fraud".to_string(), Some("prod".to_string()));
        assert!(!again.fresh(&moved, readings.marks("fraud"), hour), "the Model follows another alias now");
        assert!(!again.fresh(&of, readings.marks("fraud"), Duration::ZERO), "older than its interval");
    }
}
