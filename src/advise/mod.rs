//! `modelcycle advise`: the value of data freshness. From a Model's versions (when each was
//! trained and when each served) and its live quality over the same period, it measures how fast
//! quality falls with the serving model's age, and recommends the retraining interval that costs
//! least: trainings against the quality lost between them.
//!
//! The fit: live quality is averaged per version and day of age (hourly readings are far from
//! independent; days are closer), and `quality = level(version) − rate × age` is fitted by least
//! squares with a level per version, so a better or worse version does not pass for decay. With
//! linear decay, retraining every `T` days costs `value × rate × T / 2 / point` in lost quality and
//! `cost × 30 / T` in trainings a month; the sum is least at `T* = sqrt(60 × cost × point /
//! (value × rate))`. When the history is too short or the decay not distinguishable from noise, it
//! says so and recommends nothing from the fit.

pub mod chart;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::api::{Goal, ModelVersion};

/// Days in the month the costs are given for.
pub const MONTH_DAYS: f64 = 30.0;
/// Daily points a fit needs at least.
pub const MIN_DAYS: usize = 10;
/// The retraining intervals the table shows, in days.
pub const INTERVALS: [f64; 9] = [1.0, 2.0, 3.0, 7.0, 14.0, 30.0, 45.0, 60.0, 90.0];

/// What the recommendation weighs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Economics {
    /// What one training costs.
    pub training_cost: f64,
    /// What one point of the quality metric is worth a month.
    pub value_per_point: f64,
    /// How much of the metric one point is (0.01: a percentage point of accuracy).
    pub point: f64,
    /// Whether higher quality is better (`Maximize`) or lower (`Minimize`, a loss).
    pub goal: Goal,
}

/// When a version was trained and when it served.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionLife {
    /// Version number.
    pub version: u32,
    /// When its training started: the freshness of its data.
    pub trained: Timestamp,
    /// The dataset version it was trained on.
    pub dataset: String,
    /// Its offline metrics, as the trainer reported them.
    pub metrics: BTreeMap<String, f64>,
    /// When it served, each interval from its start to the next version's.
    pub served: Vec<(Timestamp, Timestamp)>,
}

/// The versions' lives from their ModelVersion objects, up to `end`: a version serves from each
/// `Serve` decision until the next version's.
pub fn lives(versions: &[ModelVersion], end: Timestamp) -> Vec<VersionLife> {
    let mut starts: Vec<(Timestamp, u32)> = versions
        .iter()
        .flat_map(|v| {
            let decisions = v.status.as_ref().map(|s| s.decisions.as_slice()).unwrap_or_default();
            decisions.iter().filter(|d| d.action == "Serve").map(|d| (d.time.0, v.spec.version))
        })
        .collect();
    starts.sort();
    let mut lives: Vec<VersionLife> = versions
        .iter()
        .filter_map(|v| {
            let status = v.status.as_ref()?;
            Some(VersionLife {
                version: v.spec.version,
                trained: status.started_at.as_ref()?.0,
                dataset: v.spec.dataset().map(|d| d.version.clone()).unwrap_or_default(),
                metrics: status.metrics.clone(),
                served: vec![],
            })
        })
        .collect();
    for (i, (from, version)) in starts.iter().enumerate() {
        let to = starts.get(i + 1).map_or(end, |next| next.0).min(end);
        if let Some(life) = lives.iter_mut().find(|l| l.version == *version)
            && *from < to
        {
            life.served.push((*from, to));
        }
    }
    lives.sort_by_key(|l| l.version);
    lives
}

/// One day of one version's life: its mean live quality at that age.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayPoint {
    /// The version serving.
    pub version: u32,
    /// Its age in days (since its training started), the middle of the day.
    pub age: f64,
    /// Mean live quality that day.
    pub quality: f64,
}

/// The live readings as daily means per serving version and age; readings when no version with a
/// known training time served are left out, and so are days with fewer than half the readings of
/// a typical day (the partial days at a version's start and end).
pub fn daily(lives: &[VersionLife], quality: &[(Timestamp, f64)]) -> Vec<DayPoint> {
    let mut sums: BTreeMap<(u32, i64), (f64, f64, usize)> = BTreeMap::new();
    for (t, q) in quality {
        let serving = lives.iter().find(|l| l.served.iter().any(|(from, to)| from <= t && t < to));
        if let Some(life) = serving {
            let age = t.duration_since(life.trained).as_secs_f64() / 86_400.0;
            if age >= 0.0 && q.is_finite() {
                let day = sums.entry((life.version, age.floor() as i64)).or_default();
                day.0 += age;
                day.1 += q;
                day.2 += 1;
            }
        }
    }
    // A day a version only began or ended in holds a few readings: too few to weigh like the rest.
    let mut sizes: Vec<usize> = sums.values().map(|s| s.2).collect();
    sizes.sort_unstable();
    let typical = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    sums.into_iter()
        .filter(|(_, (_, _, n))| 2 * n >= typical)
        .map(|((version, _), (ages, qs, n))| DayPoint { version, age: ages / n as f64, quality: qs / n as f64 })
        .collect()
}

/// How quality falls with age.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decay {
    /// Quality lost per day of age, in the metric's units (positive: it gets worse).
    pub rate: f64,
    /// The 95% confidence interval of the rate.
    pub interval: (f64, f64),
    /// The quality of a fresh model (the versions' mean level at age 0).
    pub fresh: f64,
    /// Each version's own level at age 0.
    pub levels: BTreeMap<u32, f64>,
    /// Share of the day-to-day variation within versions that age explains.
    pub r_squared: f64,
    /// Daily points and versions behind the fit.
    pub days: usize,
    /// Versions with at least one day.
    pub versions: usize,
    /// The oldest age seen, in days.
    pub oldest: f64,
}

/// Why there is no fit.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
pub enum NoFit {
    /// Too few days of history.
    #[error("{days} days of quality while a version served; at least {MIN_DAYS} are needed to measure decay")]
    TooShort {
        /// Days found.
        days: usize,
    },
    /// Ages do not vary within any version.
    #[error("no version served at more than one age: nothing to compare")]
    NoSpread,
}

/// Fits `quality = level(version) − rate × age` (for a metric to minimise, `+ rate × age`).
pub fn fit(points: &[DayPoint], goal: Goal) -> Result<Decay, NoFit> {
    if points.len() < MIN_DAYS {
        return Err(NoFit::TooShort { days: points.len() });
    }
    let mut groups: BTreeMap<u32, Vec<&DayPoint>> = BTreeMap::new();
    for p in points {
        groups.entry(p.version).or_default().push(p);
    }
    let mean = |ps: &[&DayPoint], f: fn(&DayPoint) -> f64| ps.iter().map(|p| f(p)).sum::<f64>() / ps.len() as f64;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for ps in groups.values() {
        let (ma, mq) = (mean(ps, |p| p.age), mean(ps, |p| p.quality));
        for p in ps {
            sxx += (p.age - ma).powi(2);
            sxy += (p.age - ma) * (p.quality - mq);
            syy += (p.quality - mq).powi(2);
        }
    }
    if sxx <= f64::EPSILON {
        return Err(NoFit::NoSpread);
    }
    let slope = sxy / sxx;
    let residual = (syy - slope * sxy).max(0.0);
    let freedom = points.len().saturating_sub(groups.len() + 1).max(1) as f64;
    let se = (residual / freedom / sxx).sqrt();
    let t = StudentsT::new(0.0, 1.0, freedom).map(|d| d.inverse_cdf(0.975)).unwrap_or(1.96);
    let sign = if goal == Goal::Minimize { 1.0 } else { -1.0 };
    let rate = sign * slope;
    let levels: BTreeMap<u32, f64> =
        groups.iter().map(|(v, ps)| (*v, mean(ps, |p| p.quality) - slope * mean(ps, |p| p.age))).collect();
    let fresh = levels.values().sum::<f64>() / levels.len() as f64;
    Ok(Decay {
        rate,
        interval: (rate - t * se, rate + t * se),
        fresh,
        levels,
        r_squared: if syy > 0.0 { 1.0 - residual / syy } else { 0.0 },
        days: points.len(),
        versions: groups.len(),
        oldest: points.iter().map(|p| p.age).fold(0.0, f64::max),
    })
}

/// One row of the trade-off table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Retrain every this many days.
    pub interval_days: f64,
    /// Trainings a month.
    pub trainings_per_month: f64,
    /// The expected mean quality over a cycle.
    pub mean_quality: f64,
    /// Value a month against retraining at the table's longest interval: quality gained minus
    /// trainings paid.
    pub net_value: f64,
}

/// What `advise` concludes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Verdict {
    /// Retrain about this often.
    Retrain {
        /// The interval that costs least, in days.
        interval_days: f64,
        /// The range it lies in given the rate's uncertainty.
        range_days: (f64, f64),
    },
    /// Quality does not measurably fall with age: retrain rarely, on triggers.
    NoMeasurableDecay,
    /// The history cannot say.
    CannotTell {
        /// Why.
        why: String,
    },
}

/// The advice with its evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    /// The versions seen.
    pub versions: Vec<VersionLife>,
    /// The daily points fitted.
    pub points: Vec<DayPoint>,
    /// The fit, when there is one.
    pub decay: Option<Decay>,
    /// What it weighed.
    pub economics: Economics,
    /// The trade-off table (empty without a fit).
    pub table: Vec<Row>,
    /// The conclusion.
    pub verdict: Verdict,
    /// Things the reader should know about the conclusion.
    pub caveats: Vec<String>,
}

/// The interval (days) at which trainings and lost quality cost least, for a decay `rate`.
pub fn optimum(rate: f64, economics: &Economics) -> f64 {
    (2.0 * MONTH_DAYS * economics.training_cost * economics.point / (economics.value_per_point * rate)).sqrt()
}

fn row(interval: f64, decay: &Decay, economics: &Economics) -> Row {
    let longest = INTERVALS[INTERVALS.len() - 1];
    let sign = if economics.goal == Goal::Minimize { -1.0 } else { 1.0 };
    let loss = |t: f64| decay.rate * t / 2.0;
    let trainings = MONTH_DAYS / interval;
    let gained = (loss(longest) - loss(interval)) / economics.point * economics.value_per_point;
    Row {
        interval_days: interval,
        trainings_per_month: trainings,
        mean_quality: decay.fresh - sign * loss(interval),
        net_value: gained - (trainings - MONTH_DAYS / longest) * economics.training_cost,
    }
}

/// Advice from the versions' lives and the live quality readings.
pub fn advise(lives: Vec<VersionLife>, quality: &[(Timestamp, f64)], economics: Economics) -> Advice {
    let points = daily(&lives, quality);
    let mut caveats = vec![];
    let decay = fit(&points, economics.goal);
    let (decay, verdict) = match decay {
        Err(no) => (None, Verdict::CannotTell { why: no.to_string() }),
        Ok(decay) if decay.interval.0 <= 0.0 => {
            let verdict = if decay.interval.1 <= 0.0 || decay.rate <= 0.0 {
                Verdict::NoMeasurableDecay
            } else {
                Verdict::CannotTell {
                    why: format!(
                        "the decay rate is between {:.2e} and {:.2e} a day (95%): it may be zero; more history would tell",
                        decay.interval.0, decay.interval.1
                    ),
                }
            };
            (Some(decay), verdict)
        }
        Ok(decay) => {
            let best = optimum(decay.rate, &economics);
            let range = (optimum(decay.interval.1, &economics), optimum(decay.interval.0, &economics));
            caveats.push(format!(
                "rows for intervals beyond {:.1} days (the oldest age seen) extend the fitted line; nothing measured them",
                decay.oldest
            ));
            if best > decay.oldest {
                caveats.push(format!(
                    "the recommendation ({best:.1} days) is beyond the oldest age seen ({:.1} days): it assumes the decay goes on as it did",
                    decay.oldest
                ));
            }
            if decay.r_squared < 0.3 {
                caveats.push(format!(
                    "age explains {:.0}% of the day-to-day variation: quality moves for other reasons too (triggers on drift and quality catch those)",
                    decay.r_squared * 100.0
                ));
            }
            (Some(decay), Verdict::Retrain { interval_days: best, range_days: range })
        }
    };
    caveats.push(
        "the decay is taken as linear in age, and daily means as independent; seasonality in the period reads as decay or its absence"
            .into(),
    );
    let table = match (&decay, &verdict) {
        (Some(d), Verdict::Retrain { interval_days, .. }) => {
            let mut intervals: Vec<f64> = INTERVALS.to_vec();
            intervals.push((interval_days * 10.0).round() / 10.0);
            intervals.sort_by(f64::total_cmp);
            intervals.dedup();
            intervals.into_iter().map(|t| row(t, d, &economics)).collect()
        }
        (Some(d), _) => INTERVALS.iter().map(|t| row(*t, d, &economics)).collect(),
        _ => vec![],
    };
    Advice { versions: lives, points, decay, economics, table, verdict, caveats }
}

impl Advice {
    /// The report a person reads.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Versions:");
        let _ = writeln!(out, "  {:<8} {:<17} {:<16} {:<10} metrics", "version", "trained", "dataset", "served (d)");
        for v in &self.versions {
            let served: f64 = v.served.iter().map(|(a, b)| b.duration_since(*a).as_secs_f64() / 86_400.0).sum();
            let metrics: Vec<String> = v.metrics.iter().map(|(k, m)| format!("{k}={m}")).collect();
            let trained = v.trained.strftime("%Y-%m-%d %H:%M").to_string();
            let dataset: String = v.dataset.chars().take(16).collect();
            let _ =
                writeln!(out, "  v{:<7} {trained:<17} {dataset:<16} {served:<10.1} {}", v.version, metrics.join(" "));
        }
        match &self.decay {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "\nDecay: {:.3e} a day of age (95%: {:.3e} .. {:.3e}); fresh quality {:.4}; R² {:.2} over {} days of {} versions (oldest {:.1} days)",
                    d.rate, d.interval.0, d.interval.1, d.fresh, d.r_squared, d.days, d.versions, d.oldest
                );
            }
            None => {
                let _ = writeln!(out, "\nDecay: not measured");
            }
        }
        let e = &self.economics;
        let _ = writeln!(
            out,
            "Weighing: a training costs {}, a point ({}) of quality is worth {} a month",
            e.training_cost, e.point, e.value_per_point
        );
        if !self.table.is_empty() {
            let longest = INTERVALS[INTERVALS.len() - 1];
            let _ = writeln!(
                out,
                "\n  {:>9} {:>17} {:>13} {:>28}",
                "every (d)",
                "trainings/month",
                "mean quality",
                format!("net value/month vs {longest:.0} d")
            );
            for r in &self.table {
                let _ = writeln!(
                    out,
                    "  {:>9.1} {:>17.2} {:>13.4} {:>28.1}",
                    r.interval_days, r.trainings_per_month, r.mean_quality, r.net_value
                );
            }
        }
        let _ = writeln!(out);
        match &self.verdict {
            Verdict::Retrain { interval_days, range_days } => {
                let _ = writeln!(
                    out,
                    "Recommendation: retrain every {interval_days:.1} days (between {:.1} and {:.1} given the uncertainty of the decay), e.g. a schedule with that period; keep drift and quality triggers for surprises.",
                    range_days.0, range_days.1
                );
            }
            Verdict::NoMeasurableDecay => {
                let _ = writeln!(
                    out,
                    "Recommendation: quality does not measurably fall with age here; retrain rarely (the table's longest interval, or on drift and quality triggers only)."
                );
            }
            Verdict::CannotTell { why } => {
                let _ = writeln!(out, "No recommendation: {why}.");
            }
        }
        for c in &self.caveats {
            let _ = writeln!(out, "- {c}");
        }
        out
    }
}

#[cfg(test)]
mod tests;
