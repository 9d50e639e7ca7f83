//! A Prometheus HTTP API client: instant queries as numbers or histograms. Every failure is a
//! reading with a reason, never a panic or a stuck reconcile.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::stats::Histogram;

/// Default time one query may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::lifecycle::reading::{ReadingError, render_query};

/// A client for one Prometheus.
#[derive(Clone, Debug)]
pub struct Prometheus {
    http: reqwest::Client,
    address: String,
    bearer_token: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// Points Prometheus answers for one series of a range query at most.
const RANGE_POINTS: i32 = 11_000;

/// One series of a range query.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its samples, oldest first.
    pub samples: Vec<(jiff::Timestamp, f64)>,
}

#[derive(Deserialize)]
struct RangeSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

impl Prometheus {
    /// A client for `address` (e.g. `http://prometheus:9090`).
    pub fn new(
        address: &str,
        timeout: Option<Duration>,
        insecure_skip_verify: bool,
        bearer_token: Option<String>,
    ) -> Result<Self, ReadingError> {
        let address = address.trim_end_matches('/').to_string();
        let http = http_client(timeout.unwrap_or(DEFAULT_TIMEOUT), insecure_skip_verify).map_err(|e| {
            ReadingError::Unreachable { address: address.clone(), message: format!("no HTTP client: {e}") }
        })?;
        Ok(Self { http, address, bearer_token })
    }

    /// The same client (one connection pool) sending `bearer_token` with every query.
    pub fn with_token(&self, bearer_token: Option<String>) -> Self {
        Self { bearer_token, ..self.clone() }
    }

    /// The samples of an instant query: each series' labels and value.
    pub async fn query(&self, promql: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>, ReadingError> {
        let data = self.get("query", &[("query", promql.to_string())]).await?;
        match data.result_type.as_str() {
            "vector" => {
                let samples: Vec<Sample> =
                    serde_json::from_value(data.result).map_err(|e| ReadingError::Unexpected(e.to_string()))?;
                samples.into_iter().map(|s| Ok((s.metric, parse_value(&s.value.1)?))).collect()
            }
            "scalar" => {
                let (_, value): (f64, String) =
                    serde_json::from_value(data.result).map_err(|e| ReadingError::Unexpected(e.to_string()))?;
                Ok(vec![(BTreeMap::new(), parse_value(&value)?)])
            }
            other => Err(ReadingError::Unexpected(format!(
                "a {other} result; the query must return an instant vector or scalar"
            ))),
        }
    }

    /// The series of a range query from `start` to `end` every `step`: each series' labels and
    /// its samples in time order. Longer ranges than Prometheus answers at once (11,000 points a
    /// series) are asked for in parts.
    pub async fn range(
        &self,
        promql: &str,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        step: jiff::SignedDuration,
    ) -> Result<Vec<Series>, ReadingError> {
        if step.as_secs() < 1 {
            return Err(ReadingError::Unexpected("a range query needs a step of at least a second".into()));
        }
        let part = step.checked_mul(RANGE_POINTS - 1).unwrap_or(jiff::SignedDuration::MAX);
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(jiff::Timestamp, f64)>> = BTreeMap::new();
        let mut from = start;
        while from <= end {
            let to = from.checked_add(part).map_or(end, |t| t.min(end));
            let data = self
                .get(
                    "query_range",
                    &[
                        ("query", promql.to_string()),
                        ("start", from.as_second().to_string()),
                        ("end", to.as_second().to_string()),
                        ("step", step.as_secs().to_string()),
                    ],
                )
                .await?;
            if data.result_type != "matrix" {
                return Err(ReadingError::Unexpected(format!("a {} result to a range query", data.result_type)));
            }
            let answered: Vec<RangeSample> =
                serde_json::from_value(data.result).map_err(|e| ReadingError::Unexpected(e.to_string()))?;
            for s in answered {
                let samples = series.entry(s.metric).or_default();
                for (t, v) in s.values {
                    let time = jiff::Timestamp::from_millisecond((t * 1000.0).round() as i64)
                        .map_err(|e| ReadingError::Unexpected(format!("a sample time {t}: {e}")))?;
                    samples.push((time, parse_value(&v)?));
                }
            }
            match to.checked_add(step) {
                Ok(next) if to < end => from = next,
                _ => break,
            }
        }
        Ok(series.into_iter().map(|(labels, samples)| Series { labels, samples }).collect())
    }

    async fn get(&self, endpoint: &str, params: &[(&str, String)]) -> Result<Data, ReadingError> {
        let url = format!("{}/api/v1/{endpoint}", self.address);
        let mut request = self.http.get(&url).query(params);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let unreachable =
            |e: reqwest::Error| ReadingError::Unreachable { address: self.address.clone(), message: e.to_string() };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or("no content type".to_string(), |v| v.chars().take(64).collect());
        let body = response.text().await.map_err(unreachable)?;
        let parsed: Response = serde_json::from_str(&body).map_err(|_| ReadingError::NotPrometheus {
            address: self.address.clone(),
            status: status.as_u16(),
            content_type,
            bytes: body.len(),
        })?;
        if parsed.status != "success" {
            return Err(ReadingError::Rejected {
                kind: parsed.error_type.unwrap_or_else(|| "error".into()),
                message: parsed.error.unwrap_or_default(),
            });
        }
        parsed.data.ok_or_else(|| ReadingError::Unexpected("no data in a successful answer".into()))
    }

    /// One number: the query must return exactly one series (or a scalar).
    pub async fn number(&self, promql: &str) -> Result<f64, ReadingError> {
        let samples = self.query(promql).await?;
        match samples.as_slice() {
            [] => Err(ReadingError::NoData),
            [(_, value)] if value.is_nan() => Err(ReadingError::NoData),
            [(_, value)] => Ok(*value),
            many => Err(ReadingError::Unexpected(format!(
                "{} series; the query must return one number (aggregate it, e.g. with sum)",
                many.len()
            ))),
        }
    }

    /// A histogram: the query must return series with an `le` label (summed per `le`).
    pub async fn histogram(&self, promql: &str) -> Result<Histogram, ReadingError> {
        let samples = self.query(promql).await?;
        if samples.is_empty() {
            return Err(ReadingError::NoData);
        }
        histogram_of(samples.iter().map(|(labels, value)| (labels, *value)))
    }
}

/// One histogram from bucket samples (each with an `le` label), summed per `le`.
pub fn histogram_of<'a>(
    samples: impl IntoIterator<Item = (&'a BTreeMap<String, String>, f64)>,
) -> Result<Histogram, ReadingError> {
    let mut by_le: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (labels, value) in samples {
        let le = labels.get("le").ok_or_else(|| {
            ReadingError::Unexpected("a series without an `le` label; the query must return histogram buckets".into())
        })?;
        let bound = parse_value(le)?;
        by_le.entry(le.as_str()).or_insert((bound, 0.0)).1 += value;
    }
    Histogram::from_cumulative(by_le.into_values().collect()).map_err(|e| ReadingError::Unexpected(e.to_string()))
}

/// An HTTP client with rustls on ring, the TLS stack kube already links.
pub fn http_client(timeout: Duration, insecure_skip_verify: bool) -> reqwest::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).danger_accept_invalid_certs(insecure_skip_verify).build()
}

fn parse_value(text: &str) -> Result<f64, ReadingError> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t => t.parse().map_err(|_| ReadingError::Unexpected(format!("{t:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let q = render_query(
            "sum(rate(errors{model=\"{{model}}\",version=\"{{version}}\"}[{{window}}]))",
            &[("model", "churn"), ("version", "3"), ("window", "5m")],
        );
        assert_eq!(q, "sum(rate(errors{model=\"churn\",version=\"3\"}[5m]))");
    }

    #[tokio::test]
    async fn an_unreachable_prometheus_is_a_reading_error_not_a_panic() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let p =
            Prometheus::new(&format!("http://127.0.0.1:{port}"), Some(Duration::from_secs(2)), false, None).unwrap();
        assert!(matches!(p.number("up").await, Err(ReadingError::Unreachable { .. })));
    }
}
