//! Drift statistics between a reference and a live binned distribution: PSI, KS on the binned
//! CDFs, and the Jensen–Shannon distance.
//!
//! Both distributions must share one bucket layout (the same upper bounds); comparing different
//! layouts is refused, never guessed at. The one exception is Prometheus' `+Inf` bucket, which a
//! reference written as JSON cannot carry: an empty one is ignored, a non-empty one refused. Counts are turned into proportions. Only PSI needs
//! smoothing, since it divides by and takes the log of proportions: a proportion below
//! [`PSI_FLOOR`] (an empty bin) counts as `PSI_FLOOR`, without renormalizing. KS and
//! Jensen–Shannon need none (`0·log 0 = 0`).

use serde::{Deserialize, Serialize};

/// The proportion an empty bin counts as in PSI.
pub const PSI_FLOOR: f64 = 1e-4;

/// A binned distribution: per bucket its upper bound and how many samples fell in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Upper bound of each bucket, ascending; the last may be infinite (Prometheus' `+Inf`).
    pub bounds: Vec<f64>,
    /// Samples in each bucket (not cumulative).
    pub counts: Vec<f64>,
}

/// Why two distributions could not be compared.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// The bucket bounds differ.
    #[error("the bucket layouts differ: reference {reference:?}, live {live:?}")]
    DifferentBuckets {
        /// Reference upper bounds.
        reference: Vec<f64>,
        /// Live upper bounds.
        live: Vec<f64>,
    },
    /// A distribution has no samples.
    #[error("the {0} distribution has no samples")]
    NoSamples(&'static str),
    /// Bounds and counts do not pair up, or a count is negative.
    #[error("malformed histogram: {0}")]
    Malformed(String),
}

impl Histogram {
    /// Total number of samples.
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// From Prometheus-style cumulative buckets `(le, count of samples <= le)`, in any order.
    pub fn from_cumulative(mut buckets: Vec<(f64, f64)>) -> Result<Histogram, StatsError> {
        if buckets.is_empty() {
            return Err(StatsError::Malformed("no buckets".into()));
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut counts = Vec::with_capacity(buckets.len());
        let mut previous = 0.0;
        for (le, cumulative) in &buckets {
            // Counters scraped a moment apart can dip by rounding; never below zero.
            counts.push((cumulative - previous).max(0.0));
            previous = previous.max(*cumulative);
            if le.is_nan() {
                return Err(StatsError::Malformed("a bucket bound is NaN".into()));
            }
        }
        Ok(Histogram { bounds: buckets.iter().map(|b| b.0).collect(), counts })
    }

    /// Checks that bounds and counts pair up and every count is a finite non-negative number.
    pub fn validate(&self) -> Result<(), StatsError> {
        if self.bounds.len() != self.counts.len() || self.bounds.is_empty() {
            return Err(StatsError::Malformed(format!(
                "{} bounds and {} counts",
                self.bounds.len(),
                self.counts.len()
            )));
        }
        if self.counts.iter().any(|c| *c < 0.0 || !c.is_finite()) {
            return Err(StatsError::Malformed("a count is negative or not finite".into()));
        }
        Ok(())
    }
}

/// The live histogram on the reference's layout: Prometheus always adds a `+Inf` bucket, which a
/// reference written as JSON cannot carry; an empty one is dropped, a non-empty one refused.
fn aligned<'a>(reference: &Histogram, live: &'a Histogram) -> Result<std::borrow::Cow<'a, Histogram>, StatsError> {
    let live_inf = live.bounds.last().is_some_and(|b| b.is_infinite());
    let reference_inf = reference.bounds.last().is_some_and(|b| b.is_infinite());
    if !live_inf || reference_inf || live.bounds.len() != reference.bounds.len() + 1 {
        return Ok(std::borrow::Cow::Borrowed(live));
    }
    let above = *live.counts.last().unwrap_or(&0.0);
    if above > 0.0 {
        let last = reference.bounds.last().copied().unwrap_or_default();
        return Err(StatsError::Malformed(format!("{above} live samples are above the reference's last bound {last}")));
    }
    let n = reference.bounds.len();
    Ok(std::borrow::Cow::Owned(Histogram { bounds: live.bounds[..n].to_vec(), counts: live.counts[..n].to_vec() }))
}

/// Proportions of both distributions, after checking they can be compared.
fn proportions(reference: &Histogram, live: &Histogram) -> Result<(Vec<f64>, Vec<f64>), StatsError> {
    reference.validate()?;
    live.validate()?;
    let live = aligned(reference, live)?;
    let live = live.as_ref();
    let same = reference.bounds.len() == live.bounds.len()
        && reference.bounds.iter().zip(&live.bounds).all(|(a, b)| a == b || (a - b).abs() <= 1e-9 * a.abs().max(1.0));
    if !same {
        return Err(StatsError::DifferentBuckets { reference: reference.bounds.clone(), live: live.bounds.clone() });
    }
    let p = normalized(reference, "reference")?;
    let q = normalized(live, "live")?;
    Ok((p, q))
}

fn normalized(h: &Histogram, which: &'static str) -> Result<Vec<f64>, StatsError> {
    let total = h.total();
    if total <= 0.0 {
        return Err(StatsError::NoSamples(which));
    }
    Ok(h.counts.iter().map(|c| c / total).collect())
}

/// Population Stability Index: `Σ (q − p) · ln(q / p)`, empty bins floored at [`PSI_FLOOR`].
pub fn psi(reference: &Histogram, live: &Histogram) -> Result<f64, StatsError> {
    let (p, q) = proportions(reference, live)?;
    Ok(p.iter()
        .zip(&q)
        .map(|(p, q)| {
            let (p, q) = (p.max(PSI_FLOOR), q.max(PSI_FLOOR));
            (q - p) * (q / p).ln()
        })
        .sum())
}

/// Kolmogorov–Smirnov statistic on the binned CDFs: the largest gap between the cumulative
/// proportions at any bucket bound, in 0..=1.
pub fn ks(reference: &Histogram, live: &Histogram) -> Result<f64, StatsError> {
    let (p, q) = proportions(reference, live)?;
    let (mut cp, mut cq, mut max) = (0.0, 0.0, 0.0f64);
    for (p, q) in p.iter().zip(&q) {
        cp += p;
        cq += q;
        max = max.max((cp - cq).abs());
    }
    Ok(max)
}

/// Jensen–Shannon distance with base-2 logarithms: `sqrt(½ KL(p‖m) + ½ KL(q‖m))`, `m = ½(p+q)`,
/// in 0..=1.
pub fn jensen_shannon(reference: &Histogram, live: &Histogram) -> Result<f64, StatsError> {
    let (p, q) = proportions(reference, live)?;
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter().zip(m).filter(|(a, _)| **a > 0.0).map(|(a, m)| a * (a / m).log2()).sum()
    };
    let m: Vec<f64> = p.iter().zip(&q).map(|(p, q)| (p + q) / 2.0).collect();
    let divergence = (0.5 * kl(&p, &m) + 0.5 * kl(&q, &m)).max(0.0);
    Ok(divergence.sqrt())
}

/// The sizes behind a comparison, for a critical value: samples in the reference and in the live
/// histogram, and the bins either has samples in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes {
    /// Samples in the reference.
    pub reference: f64,
    /// Samples in the live histogram.
    pub live: f64,
    /// Bins with a sample on either side.
    pub bins: usize,
}

impl Sizes {
    /// The sizes of comparing `live` with `reference`.
    pub fn of(reference: &Histogram, live: &Histogram) -> Sizes {
        let bins = reference.counts.iter().zip(&live.counts).filter(|(r, l)| **r + **l > 0.0).count();
        Sizes { reference: reference.total(), live: live.total(), bins }
    }

    /// `1/n + 1/m`: how much two samples of these sizes differ by chance alone, per unit.
    fn spread(&self) -> f64 {
        1.0 / self.reference + 1.0 / self.live
    }

    fn check(&self, significance: f64) -> Result<(), StatsError> {
        if !(significance > 0.0 && significance < 1.0) {
            return Err(StatsError::Malformed(format!("significance {significance} is not between 0 and 1")));
        }
        if self.reference <= 0.0 {
            return Err(StatsError::NoSamples("reference"));
        }
        if self.live <= 0.0 {
            return Err(StatsError::NoSamples("live"));
        }
        Ok(())
    }

    /// The chi-square quantile `1 − significance` with `bins − 1` degrees of freedom.
    fn chi_square(&self, significance: f64) -> Result<f64, StatsError> {
        use statrs::distribution::{ChiSquared, ContinuousCDF};
        self.check(significance)?;
        if self.bins < 2 {
            return Err(StatsError::Malformed(format!("{} bin(s) with samples; a comparison needs two", self.bins)));
        }
        let chi = ChiSquared::new((self.bins - 1) as f64).map_err(|e| StatsError::Malformed(e.to_string()))?;
        Ok(chi.inverse_cdf(1.0 - significance))
    }
}

/// The PSI that two samples of the same distribution exceed with probability `significance`:
/// `χ²(1 − α; bins − 1) · (1/n + 1/m)` (PSI times `nm/(n+m)` is asymptotically chi-square).
pub fn psi_critical(significance: f64, sizes: Sizes) -> Result<f64, StatsError> {
    Ok(sizes.chi_square(significance)? * sizes.spread())
}

/// The KS statistic that two samples of the same distribution exceed with probability
/// `significance`: `c(α) · sqrt((n + m)/(nm))`, `c(α) = sqrt(−ln(α/2)/2)` (the asymptotic
/// two-sample value; on binned CDFs the test is conservative).
pub fn ks_critical(significance: f64, sizes: Sizes) -> Result<f64, StatsError> {
    sizes.check(significance)?;
    Ok((-(significance / 2.0).ln() / 2.0).sqrt() * sizes.spread().sqrt())
}

/// The Jensen–Shannon distance (base 2) that two samples of the same distribution exceed with
/// probability `significance`: the divergence in nats is about `χ²/8 · (1/n + 1/m)` (for equal
/// sizes, 4n times it is the G-test statistic), so the distance is
/// `sqrt(χ²(1 − α; bins − 1) · (1/n + 1/m) / (8 ln 2))`.
pub fn js_critical(significance: f64, sizes: Sizes) -> Result<f64, StatsError> {
    Ok((sizes.chi_square(significance)? * sizes.spread() / (8.0 * std::f64::consts::LN_2)).sqrt())
}

#[cfg(test)]
mod tests;
