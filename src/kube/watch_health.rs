//! Whether the controller's watches reach the API server, and if not why, for `/readyz`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::watcher;

/// One watch that is failing now.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    since: Instant,
    unreachable: bool,
}

/// The watches that fail now, by what they watch.
#[derive(Default, Debug)]
pub struct WatchHealth {
    failing: Mutex<BTreeMap<String, Failure>>,
}

/// Whether a watch error means the API server could not be reached at all (it comes back by
/// itself), as opposed to an answer that refused the watch (RBAC, a missing CRD).
fn unreachable(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            !matches!(e, kube::Error::Api(_))
        }
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => false,
    }
}

impl WatchHealth {
    /// Notes one item of the watch of `what`: an error marks it failing (since its first error in
    /// a row), anything else healthy.
    pub fn observe<T>(&self, what: &str, item: &Result<T, watcher::Error>) {
        match item {
            Ok(_) => self.recovered(what),
            Err(e) => self.failed(what, e),
        }
    }

    /// The watch of `what` failed with `error`.
    pub fn failed(&self, what: &str, error: &watcher::Error) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let since = failing.get(what).map_or_else(Instant::now, |f| f.since);
        failing
            .insert(what.to_string(), Failure { message: error.to_string(), since, unreachable: unreachable(error) });
    }

    /// The watch of `what` delivered again.
    pub fn recovered(&self, what: &str) {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).remove(what);
    }

    /// The API server answered a request: the watches that failed only because it could not be
    /// reached resume by themselves (their retries are already scheduled).
    pub fn api_answered(&self) {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, f| !f.unreachable);
    }

    /// Whether some watch fails because the API server cannot be reached.
    pub fn unreachable(&self) -> bool {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).values().any(|f| f.unreachable)
    }

    /// Why the controller cannot work now, naming the first failing watch; `None` when every
    /// watch is healthy.
    pub fn problem(&self) -> Option<String> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let (what, failure) = failing.iter().min_by_key(|(_, f)| f.since)?;
        let secs = failure.since.elapsed().as_secs();
        let others = match failing.len() {
            1 => String::new(),
            n => format!(" (and {} other watches)", n - 1),
        };
        Some(if failure.unreachable {
            format!("cannot reach the Kubernetes API server for {secs}s: watching {what}: {}{others}", failure.message)
        } else {
            format!(
                "the Kubernetes API server refuses the watch of {what} for {secs}s: {}{others}; check the CRDs and the controller's RBAC",
                failure.message
            )
        })
    }

    /// How long the oldest failure has lasted.
    pub fn failing_for(&self) -> Option<Duration> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).values().map(|f| f.since.elapsed()).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> watcher::Error {
        let status = kube::core::Status::failure("models is forbidden", "Forbidden").with_code(403);
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    fn connection_refused() -> watcher::Error {
        watcher::Error::WatchFailed(kube::Error::Service("connection refused".into()))
    }

    #[test]
    fn an_unreachable_api_server_is_reported_until_it_answers_again() {
        let health = WatchHealth::default();
        assert_eq!(health.problem(), None);
        health.failed("Jobs", &connection_refused());
        health.failed("Pods", &connection_refused());
        let problem = health.problem().unwrap();
        assert!(problem.starts_with("cannot reach the Kubernetes API server"), "{problem}");
        assert!(problem.contains("connection refused") && problem.contains("and 1 other"), "{problem}");
        assert!(health.unreachable());
        health.api_answered();
        assert_eq!(health.problem(), None);
    }

    #[test]
    fn a_refused_watch_stays_reported_until_that_watch_delivers() {
        let health = WatchHealth::default();
        health.failed("Models", &refused());
        health.api_answered();
        let problem = health.problem().unwrap();
        assert!(problem.contains("refuses the watch of Models") && problem.contains("RBAC"), "{problem}");
        assert!(!health.unreachable());
        health.observe::<()>("Models", &Ok(()));
        assert_eq!(health.problem(), None);
    }

    #[test]
    fn a_failure_keeps_the_time_of_its_first_error() {
        let health = WatchHealth::default();
        health.failed("Jobs", &connection_refused());
        std::thread::sleep(Duration::from_millis(20));
        health.failed("Jobs", &connection_refused());
        assert!(health.failing_for().unwrap() >= Duration::from_millis(20));
    }
}
