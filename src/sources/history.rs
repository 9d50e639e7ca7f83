//! Reads the history a backtest replays from Prometheus: the drift query's histogram and the
//! performance query's number at every step of a past period, with range queries.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::prometheus::{Prometheus, ReadingError, Series, histogram_of};
use crate::backtest::history::{DriftPoint, History, QualityPoint};

/// What to read and over which period.
#[derive(Clone, Debug)]
pub struct HistoryQuery {
    /// The drift query, placeholders filled in.
    pub drift: Option<String>,
    /// The performance query, placeholders filled in.
    pub quality: Option<String>,
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Time between two drift readings (the drift check's interval).
    pub drift_step: SignedDuration,
    /// Time between two quality readings (the performance check's interval).
    pub quality_step: SignedDuration,
}

/// Reads the period's readings; a time at which a query had no data is left out (and the
/// history marks the silence), a query that fails or answers in the wrong shape is an error.
pub async fn fetch(prometheus: &Prometheus, query: &HistoryQuery) -> Result<History, ReadingError> {
    let mut history =
        History { from: query.from, to: query.to, source: Some(describe(query)), drift: vec![], quality: vec![] };
    if let Some(drift) = &query.drift {
        let series = prometheus.range(drift, query.from, query.to, query.drift_step).await?;
        history.drift = histograms(series)?;
    }
    if let Some(quality) = &query.quality {
        let series = prometheus.range(quality, query.from, query.to, query.quality_step).await?;
        history.quality = numbers(series)?;
    }
    Ok(history)
}

fn describe(query: &HistoryQuery) -> String {
    let mut parts = vec![];
    if let Some(q) = &query.drift {
        parts.push(format!("drift: {q} every {:#}", query.drift_step));
    }
    if let Some(q) = &query.quality {
        parts.push(format!("quality: {q} every {:#}", query.quality_step));
    }
    format!("Prometheus range queries; {}", parts.join("; "))
}

/// A series' labels.
type Labels = BTreeMap<String, String>;

/// One histogram per time from bucket series (summed per `le`, as an instant drift reading is).
fn histograms(series: Vec<Series>) -> Result<Vec<DriftPoint>, ReadingError> {
    if let Some(s) = series.iter().find(|s| !s.labels.contains_key("le")) {
        // The same refusal an instant reading gives.
        histogram_of([(&s.labels, 0.0)])?;
    }
    let mut by_time: BTreeMap<Timestamp, Vec<(&Labels, f64)>> = BTreeMap::new();
    for s in &series {
        for (time, value) in &s.samples {
            if value.is_finite() {
                by_time.entry(*time).or_default().push((&s.labels, *value));
            }
        }
    }
    let most = by_time.values().map(Vec::len).max().unwrap_or(0);
    Ok(by_time
        .into_iter()
        // A time at which some buckets had no sample is not a whole histogram: no data then.
        .filter(|(_, buckets)| buckets.len() == most)
        .filter_map(|(at, buckets)| Some(DriftPoint { at, histogram: Some(histogram_of(buckets).ok()?) }))
        .collect())
}

/// One number per time from a query that must return one series.
fn numbers(series: Vec<Series>) -> Result<Vec<QualityPoint>, ReadingError> {
    match series.as_slice() {
        [] => Ok(vec![]),
        [one] => Ok(one
            .samples
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(at, v)| QualityPoint { at: *at, value: Some(*v) })
            .collect()),
        many => Err(ReadingError::Unexpected(format!(
            "{} series; the performance query must return one number (aggregate it, e.g. with sum)",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(le: &str, samples: &[(i64, f64)]) -> Series {
        Series {
            labels: [("le".to_string(), le.to_string())].into(),
            samples: samples.iter().map(|(s, v)| (Timestamp::from_second(*s).unwrap(), *v)).collect(),
        }
    }

    #[test]
    fn buckets_become_one_histogram_per_time_and_incomplete_times_are_left_out() {
        let points = histograms(vec![
            series("0.5", &[(0, 3.0), (60, 4.0)]),
            series("+Inf", &[(0, 10.0), (60, 10.0), (120, 2.0)]),
        ])
        .unwrap();
        assert_eq!(points.len(), 2, "{points:?}");
        assert_eq!(points[0].histogram.as_ref().unwrap().counts, vec![3.0, 7.0]);
        assert_eq!(points[1].histogram.as_ref().unwrap().counts, vec![4.0, 6.0]);
    }

    #[test]
    fn a_quality_query_with_two_series_is_refused() {
        let error = numbers(vec![series("a", &[(0, 1.0)]), series("b", &[(0, 1.0)])]).unwrap_err();
        assert!(error.to_string().contains("2 series"), "{error}");
    }
}
