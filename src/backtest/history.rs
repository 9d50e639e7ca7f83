//! Recorded history of the live readings a RetrainPolicy takes: what a backtest replays. It comes
//! from a Prometheus range query (see `sources::history`) or from a file written by an earlier
//! backtest (`--record`), so a replay needs no Prometheus.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sim::scenario::LONGEST;
use crate::stats::Histogram;

/// Readings over a past period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct History {
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Where the readings came from (the queries and the step), for the reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The drift query's answers over time; a point without a histogram had no data.
    #[serde(default)]
    pub drift: Vec<DriftPoint>,
    /// The performance query's answers over time; a point without a value had no data.
    #[serde(default)]
    pub quality: Vec<QualityPoint>,
}

/// The drift query's answer at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftPoint {
    /// When.
    pub at: Timestamp,
    /// The live histogram over the drift window then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// The performance query's answer at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QualityPoint {
    /// When.
    pub at: Timestamp,
    /// The live metric then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl History {
    /// How long the period is.
    pub fn length(&self) -> SignedDuration {
        self.to.duration_since(self.from)
    }

    /// Checks the period and puts the readings in time order, each a point of its own; an error
    /// says what is wrong.
    pub fn validated(mut self) -> Result<History, String> {
        if self.to <= self.from {
            return Err(format!("the history ends ({}) before it starts ({})", self.to, self.from));
        }
        if self.length() > LONGEST {
            return Err("the history is longer than ten years".into());
        }
        self.drift.sort_by_key(|p| p.at);
        self.quality.sort_by_key(|p| p.at);
        self.drift.dedup_by_key(|p| p.at);
        self.quality.dedup_by_key(|p| p.at);
        for p in &self.drift {
            if let Some(h) = &p.histogram {
                h.validate().map_err(|e| format!("the drift reading at {}: {e}", p.at))?;
            }
        }
        if self.quality.iter().any(|p| p.value.is_some_and(|v| !v.is_finite())) {
            return Err("a quality reading is not a finite number".into());
        }
        Ok(self)
    }

    /// Readings closer together than `gap` run on; after a longer silence a point with no data is
    /// put in where the next reading was due, so a replay does not take the last reading before
    /// an outage as still true.
    pub fn with_gaps_marked(mut self, drift_step: SignedDuration, quality_step: SignedDuration) -> History {
        self.drift = mark_gaps(self.drift, drift_step, |at| DriftPoint { at, histogram: None });
        self.quality = mark_gaps(self.quality, quality_step, |at| QualityPoint { at, value: None });
        self
    }
}

trait Timed {
    fn at(&self) -> Timestamp;
}

impl Timed for DriftPoint {
    fn at(&self) -> Timestamp {
        self.at
    }
}

impl Timed for QualityPoint {
    fn at(&self) -> Timestamp {
        self.at
    }
}

fn mark_gaps<P: Timed>(points: Vec<P>, step: SignedDuration, none: impl Fn(Timestamp) -> P) -> Vec<P> {
    let gap = step.checked_mul(3).map_or(step, |d| d / 2);
    let mut out: Vec<P> = Vec::with_capacity(points.len());
    for p in points {
        if let Some(last) = out.last()
            && p.at().duration_since(last.at()) > gap
            && let Ok(due) = last.at().checked_add(step)
        {
            out.push(none(due));
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH.checked_add(SignedDuration::from_mins(minutes)).unwrap()
    }

    #[test]
    fn a_silence_longer_than_a_step_and_a_half_becomes_no_data() {
        let point = |m: i64| QualityPoint { at: t(m), value: Some(1.0) };
        let history = History {
            from: t(0),
            to: t(100),
            source: None,
            drift: vec![],
            quality: vec![point(0), point(5), point(12), point(40)],
        };
        let marked = history.with_gaps_marked(SignedDuration::from_mins(5), SignedDuration::from_mins(5));
        let times: Vec<_> = marked.quality.iter().map(|p| (p.at, p.value.is_some())).collect();
        assert_eq!(times, vec![(t(0), true), (t(5), true), (t(12), true), (t(17), false), (t(40), true)]);
    }

    #[test]
    fn a_period_that_ends_before_it_starts_is_refused() {
        let history = History { from: t(10), to: t(10), source: None, drift: vec![], quality: vec![] };
        assert!(history.validated().unwrap_err().contains("before it starts"));
    }
}
