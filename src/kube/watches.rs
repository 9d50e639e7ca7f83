//! The controller's watches: one per kind, retried quickly after a failure, reported to
//! `/readyz`, and error-free by the time a controller sees them.
//!
//! Found against a real API server stopped for 30 s: with kube-runtime's defaults a watch backs
//! off for up to a minute, the controller's merged trigger stream backs off again on top, and the
//! `410 Expired` that follows the restart (the API server's watch cache starts over) costs one
//! more full backoff before the relist. The controller then ignored changes for over two
//! minutes. Here a 410 is no failure (the watcher lists again at once), the backoff is short, and
//! errors end at the watch, so a controller never backs off as a whole.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, future};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::{self, ExponentialBackoff};
use kube::runtime::{WatchStreamExt, watcher as watch_of};
use kube::{Api, Client};
use tokio::sync::watch as signal;

use super::http::Health;
use super::index::{Indexed, Keep};
use super::trim::Trim;

/// Objects a shared watch may hold back for a slow subscriber before the watch waits for it.
pub const SHARED_BUFFER: usize = 1024;

/// The wait between failed attempts of a watch: 0.5 s doubling to 5 s, plus up to as much again
/// of jitter (so at most 10 s), starting over after a minute without failure. Seven watches
/// retrying every few seconds are no load for a struggling API server, and a watch resumes
/// within seconds of the server's return.
pub fn backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(ExponentialBackoff::from(exponential), Duration::from_secs(60))
}

/// Whether a watch item is the API server saying the watch's resource version expired: the
/// watcher has already dropped it and lists again on its next poll.
fn expired<K>(item: &Result<watcher::Event<K>, watcher::Error>) -> bool {
    matches!(item, Err(watcher::Error::WatchError(status)) if status.code == 410)
}

/// What a watch of `kind` in `scope` is called in `/readyz`.
pub fn watch_name(kind: &str, scope: &Option<String>) -> String {
    match scope {
        None => kind.to_string(),
        Some(ns) => format!("{kind} in {ns}"),
    }
}

/// A watch of `api` that relists at once after `410 Expired`, reports its failures and
/// recoveries to `health` as `what`, waits [`backoff`] after a failure, and trims each object
/// to what the controller reads ([`Trim`]) before anything keeps it.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    health: Arc<Health>,
    what: String,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Trim
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watch_of(api, config)
        .modify(Trim::trim)
        .filter(|item| future::ready(!expired(item)))
        .inspect(move |item| health.watches.observe(&what, item))
        .backoff(backoff())
}

/// A [`watch`] of a kind whose objects belong to Models, cached by Model ([`Indexed`]), and
/// the stream of changed objects a controller is woken by.
pub fn cached_by_model<K>(
    api: Api<K>,
    config: watcher::Config,
    health: Arc<Health>,
    what: String,
) -> (Indexed<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Keep + Trim + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync,
{
    let cache = Indexed::default();
    let changes = cache.follow(watch(api, config, health, what));
    (cache, changes)
}

/// A watch whose store and changes two controllers share: the store, two subscriptions, and the
/// stream that feeds them (poll it, or nothing arrives).
pub struct Shared<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    /// The store.
    pub store: Store<K>,
    /// Changed objects, one stream for each reader asked for. Every one must be read: the
    /// watch waits for the slowest.
    pub readers: Vec<reflector::ReflectHandle<K>>,
}

/// One watch's `events` for `readers` controllers; `None` if the store cannot be shared (it
/// always can).
pub fn shared<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    readers: usize,
) -> Option<(Shared<K>, impl Future<Output = ()> + Send + 'static)>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store_shared(SHARED_BUFFER);
    let readers = (0..readers).map(|_| writer.subscribe()).collect::<Option<Vec<_>>>()?;
    let feed = events.reflect_shared(writer).for_each(|_| future::ready(()));
    Some((Shared { store, readers }, feed))
}

/// While a watch fails because the API server cannot be reached, asks the server for its version
/// every 2 s; once it answers, `/readyz` stops reporting the outage (the watches' own retries,
/// at most [`backoff`]'s 10 s apart, resume them).
pub async fn probe_while_unreachable(client: Client, health: Arc<Health>, mut shutdown: signal::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if health.watches.unreachable() && client.apiserver_version().await.is_ok() {
            tracing::info!("the Kubernetes API server answers again");
            health.watches.api_answered();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn a_watch_retries_within_ten_seconds_and_never_gives_up() {
        let mut b = backoff();
        let waits: Vec<Duration> = (0..10).map_while(|_| b.next()).collect();
        assert_eq!(waits.len(), 10, "a watch never gives up");
        assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= Duration::from_secs(1), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(10)), "jitter at most doubles 5 s: {waits:?}");
        b.reset();
        assert!(b.next().is_some_and(|w| w <= Duration::from_secs(1)));
    }

    #[test]
    fn an_expired_resource_version_is_no_failure() {
        let gone = kube::core::Status::failure("too old resource version: 1 (2)", "Expired").with_code(410);
        let item: Result<watcher::Event<()>, _> = Err(watcher::Error::WatchError(Box::new(gone)));
        assert!(expired(&item));
        let forbidden = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        assert!(!expired::<()>(&Err(watcher::Error::WatchError(Box::new(forbidden)))));
    }
}
