//! The one error type of the controller, with a short label for metrics.

/// Everything that can go wrong while reconciling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be read as its type; it is reported and skipped until it changes.
    #[error("{kind} {namespace}/{name} cannot be read: {message}")]
    InvalidObject {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What the deserializer said.
        message: String,
    },
    /// An object in a cache did not read back as it was stored (a defect: it was stored as it
    /// decoded); the reconcile is retried rather than decide without it.
    #[error("the cached {kind} {namespace}/{name} does not read back: {message}")]
    Cache {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What the deserializer said.
        message: String,
    },
}

impl Error {
    /// A low-cardinality label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(_)) => "api_error",
            Self::Kube(_) => "client_error",
            Self::InvalidObject { .. } => "invalid_object",
            Self::Cache { .. } => "cache",
        }
    }

    /// True when retrying cannot help until the object changes.
    pub fn waits_for_change(&self) -> bool {
        matches!(self, Self::InvalidObject { .. })
    }
}

/// Result of the controller's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
