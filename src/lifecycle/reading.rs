//! Readings of live metrics as the core sees them: the errors a reading can end in, the query
//! placeholders, and the analysis queries the shells run with their typed answers. No HTTP
//! here; `sources::prometheus` takes the readings.

use std::collections::BTreeMap;

use crate::stats::Histogram;

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

names! {
    /// Why a reading gave no value, as written in a measurement or condition.
    pub enum ReadingReason {
        /// Prometheus could not be reached.
        PrometheusUnreachable,
        /// Prometheus refused the query.
        QueryRejected,
        /// The query returned no series.
        NoData,
        /// The result is not of the expected shape.
        UnexpectedResult,
        /// The server is not a Prometheus API.
        NotPrometheus,
        /// The address is outside the controller's allowlist.
        PrometheusAddressNotAllowed,
        /// The bearer token's Secret cannot be used.
        BearerTokenRefused,
    }
}

impl ReadingReason {
    /// True for reasons that only a change of the object (or of the controller's settings) can
    /// clear, as opposed to an outage or a query with no data yet.
    pub fn needs_a_fix(self) -> bool {
        !matches!(self, ReadingReason::PrometheusUnreachable | ReadingReason::NoData)
    }
}

impl ReadingError {
    /// True for errors that only a change of the object (or of the controller's settings) can
    /// fix, as opposed to an outage or a query with no data yet.
    pub fn needs_a_fix(&self) -> bool {
        self.reason().needs_a_fix()
    }

    /// The reason of a condition or measurement caused by this error.
    pub fn reason(&self) -> ReadingReason {
        match self {
            ReadingError::Unreachable { .. } => ReadingReason::PrometheusUnreachable,
            ReadingError::Rejected { .. } => ReadingReason::QueryRejected,
            ReadingError::NoData => ReadingReason::NoData,
            ReadingError::Unexpected(_) => ReadingReason::UnexpectedResult,
            ReadingError::NotPrometheus { .. } => ReadingReason::NotPrometheus,
            ReadingError::NotAllowed { .. } => ReadingReason::PrometheusAddressNotAllowed,
            ReadingError::TokenRefused(_) => ReadingReason::BearerTokenRefused,
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

/// The placeholders of a rollout analysis query.
pub const ANALYSIS_PLACEHOLDERS: [&str; 4] = ["model", "namespace", "version", "stableVersion"];
/// The placeholders of a drift or performance query: those of analysis, and `window`.
pub const CHECK_PLACEHOLDERS: [&str; 5] = ["model", "namespace", "version", "stableVersion", "window"];

/// The values a query's placeholders are filled with. One type for every query, so what is
/// filled and what validation accepts ([`ANALYSIS_PLACEHOLDERS`], [`CHECK_PLACEHOLDERS`]) are
/// the same lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryVars {
    /// The Model's name.
    pub model: String,
    /// The Model's namespace.
    pub namespace: String,
    /// The version the query is about.
    pub version: String,
    /// The version it is compared with (analysis), or the serving version (checks).
    pub stable_version: String,
    /// The PromQL range of a drift or performance query; analysis queries have none.
    pub window: Option<String>,
}

impl QueryVars {
    /// `template` with every placeholder this query has filled in.
    pub fn render(&self, template: &str) -> String {
        let mut values = vec![
            ("model", self.model.as_str()),
            ("namespace", self.namespace.as_str()),
            ("version", self.version.as_str()),
            ("stableVersion", self.stable_version.as_str()),
        ];
        if let Some(window) = &self.window {
            values.push(("window", window));
        }
        render_query(template, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_reason_reads_back_as_the_error_that_wrote_it() {
        let errors = [
            ReadingError::Unreachable { address: "a".into(), message: "m".into() },
            ReadingError::Rejected { kind: "bad_data".into(), message: "m".into() },
            ReadingError::NoData,
            ReadingError::Unexpected("u".into()),
            ReadingError::NotPrometheus { address: "a".into(), status: 200, content_type: "t".into(), bytes: 1 },
            ReadingError::NotAllowed { address: "a".into(), allowed: "b".into() },
            ReadingError::TokenRefused("t".into()),
        ];
        let reasons: Vec<ReadingReason> = errors.iter().map(ReadingError::reason).collect();
        assert_eq!(reasons, ReadingReason::ALL, "one reason per error, in order");
        for e in &errors {
            let written = e.reason().as_str();
            assert_eq!(ReadingReason::parse(written).map(ReadingReason::needs_a_fix), Some(e.needs_a_fix()));
        }
        let waits: Vec<_> = errors.iter().filter(|e| !e.needs_a_fix()).map(ReadingError::reason).collect();
        assert_eq!(waits, [ReadingReason::PrometheusUnreachable, ReadingReason::NoData], "only these wait");
    }

    #[test]
    fn every_placeholder_validation_accepts_is_filled() {
        let vars = QueryVars {
            model: "m".into(),
            namespace: "n".into(),
            version: "2".into(),
            stable_version: "1".into(),
            window: Some("5m".into()),
        };
        for p in CHECK_PLACEHOLDERS {
            let rendered = vars.render(&format!("x{{{{{p}}}}}y"));
            assert!(!rendered.contains("{{"), "{p} is not filled: {rendered}");
        }
        let analysis = QueryVars { window: None, ..vars };
        for p in ANALYSIS_PLACEHOLDERS {
            assert!(!analysis.render(&format!("{{{{{p}}}}}")).contains("{{"), "{p}");
        }
        assert_eq!(analysis.render("{{window}}"), "{{window}}", "analysis queries have no window");
    }

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

/// One query the shell must run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisQuery {
    /// The analysis metric's name.
    pub metric: String,
    /// The version whose traffic it measures.
    pub version: u32,
    /// The PromQL, placeholders filled.
    pub query: String,
    /// What the answer must be.
    pub shape: Shape,
}

/// What an analysis query must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One number.
    Number,
    /// A histogram (series with an `le` label).
    Histogram,
}

/// The answers to the analysis queries that were due, by query text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisAnswers {
    /// Answers to [`Shape::Number`] queries.
    pub numbers: BTreeMap<String, Result<f64, ReadingError>>,
    /// Answers to [`Shape::Histogram`] queries.
    pub histograms: BTreeMap<String, Result<Histogram, ReadingError>>,
}

impl AnalysisAnswers {
    /// Every query answered with the same error.
    pub fn failed(queries: &[AnalysisQuery], error: &ReadingError) -> Self {
        let mut out = Self::default();
        for q in queries {
            match q.shape {
                Shape::Number => {
                    out.numbers.insert(q.query.clone(), Err(error.clone()));
                }
                Shape::Histogram => {
                    out.histograms.insert(q.query.clone(), Err(error.clone()));
                }
            }
        }
        out
    }

    /// Whether `q` has an answer.
    pub(super) fn answered(&self, q: &AnalysisQuery) -> bool {
        match q.shape {
            Shape::Number => self.numbers.contains_key(&q.query),
            Shape::Histogram => self.histograms.contains_key(&q.query),
        }
    }

    /// Whether every answer is empty.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty() && self.histograms.is_empty()
    }

    /// The failures among the answers, for counting.
    pub fn results(&self) -> impl Iterator<Item = Result<(), &ReadingError>> {
        let numbers = self.numbers.values().map(|a| a.as_ref().map(|_| ()));
        numbers.chain(self.histograms.values().map(|a| a.as_ref().map(|_| ())))
    }
}
