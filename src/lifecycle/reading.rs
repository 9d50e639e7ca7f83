//! Readings of live metrics as the core sees them: the errors a reading can end in, and the
//! query placeholders. No HTTP here; `sources::prometheus` takes the readings.

/// Why a query gave no usable number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadingError {
    /// Prometheus could not be reached or did not answer in time.
    #[error("Prometheus at {address} is unreachable: {message}")]
    Unreachable {
        /// The address.
        address: String,
        /// What failed.
        message: String,
    },
    /// Prometheus refused the query (e.g. a PromQL syntax error), with its own error text.
    #[error("Prometheus rejected the query ({kind}): {message}")]
    Rejected {
        /// Prometheus' `errorType`.
        kind: String,
        /// Prometheus' `error`.
        message: String,
    },
    /// The query returned no series.
    #[error("the query returned no data")]
    NoData,
    /// The result is not of the expected shape.
    #[error("unexpected result: {0}")]
    Unexpected(String),
    /// The server answered, but not as a Prometheus API does. Its body is never repeated: the
    /// address may point at any server the controller can reach (a metadata endpoint, an admin
    /// page), and whoever wrote the object would read the answer back from its status.
    #[error("{address} answered HTTP {status} with {bytes} bytes of {content_type}, not a Prometheus API answer")]
    NotPrometheus {
        /// The address.
        address: String,
        /// HTTP status code.
        status: u16,
        /// The Content-Type header, or `no content type`.
        content_type: String,
        /// Size of the body.
        bytes: usize,
    },
    /// The address is outside the addresses the controller may query (its allowlist).
    #[error("the controller may not query {address}: it is outside --prometheus-allowed-addresses ({allowed})")]
    NotAllowed {
        /// The address.
        address: String,
        /// The allowed prefixes, joined.
        allowed: String,
    },
    /// The bearer token's Secret cannot be used.
    #[error("{0}")]
    TokenRefused(String),
}

impl ReadingError {
    /// True for errors that only a change of the object (or of the controller's settings) can
    /// fix, as opposed to an outage or a query with no data yet.
    pub fn needs_a_fix(&self) -> bool {
        !matches!(self, ReadingError::Unreachable { .. } | ReadingError::NoData)
    }

    /// The CamelCase reason of a condition or measurement caused by this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ReadingError::Unreachable { .. } => "PrometheusUnreachable",
            ReadingError::Rejected { .. } => "QueryRejected",
            ReadingError::NoData => "NoData",
            ReadingError::Unexpected(_) => "UnexpectedResult",
            ReadingError::NotPrometheus { .. } => "NotPrometheus",
            ReadingError::NotAllowed { .. } => "PrometheusAddressNotAllowed",
            ReadingError::TokenRefused(_) => "BearerTokenRefused",
        }
    }
}

/// Whether the controller may query `address`: every address when `allowed` is empty, else an
/// address equal to an allowed prefix or continuing it at a `/` (so `http://prom:9090` allows
/// `http://prom:9090/api` but not `http://prom:9090.example.com`).
pub fn address_allowed(address: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|prefix| {
            let prefix = prefix.trim_end_matches('/');
            address.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// Fills the placeholders of a query: `{{model}}`, `{{namespace}}`, `{{version}}`,
/// `{{stableVersion}}`, `{{window}}`.
pub fn render_query(template: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(template.to_string(), |q, (k, v)| q.replace(&format!("{{{{{k}}}}}"), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowlist_matches_whole_addresses_and_paths_only() {
        let allowed = vec!["http://prometheus.monitoring:9090".to_string(), "https://thanos/".to_string()];
        assert!(address_allowed("http://prometheus.monitoring:9090", &allowed));
        assert!(address_allowed("http://prometheus.monitoring:9090/prom", &allowed));
        assert!(address_allowed("https://thanos", &allowed));
        assert!(!address_allowed("http://prometheus.monitoring:9090.evil.example", &allowed));
        assert!(!address_allowed("http://169.254.169.254/latest/meta-data", &allowed));
        assert!(address_allowed("http://anything", &[]), "no allowlist: every address");
    }
}
