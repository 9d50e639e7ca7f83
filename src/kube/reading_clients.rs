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
    pub(crate) stale: bool,
}

/// The last reading of each Model's registry.
#[derive(Default)]
pub struct SourceReadings {
    kept: Mutex<HashMap<String, Kept>>,
}

impl std::fmt::Debug for SourceReadings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.kept.lock().map(|k| k.len()).unwrap_or_default();
        f.debug_struct("SourceReadings").field("kept", &n).finish()
    }
}

impl SourceReadings {
    /// Marks every reading of registered model `name` stale; true if a Model follows it.
    pub fn stale(&self, name: &str) -> bool {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let mut any = false;
        for k in kept.values_mut().filter(|k| k.of.1 == name) {
            k.stale = true;
            any = true;
        }
        any
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
