//! The advice's chart: live quality by the serving model's age with the fitted decay and its
//! uncertainty, and the net value of each retraining interval with the recommendation marked.

use plotters::prelude::*;

use super::{Advice, INTERVALS, Verdict};

const SIZE: (u32, u32) = (1000, 460);

/// The chart as an SVG document.
pub fn svg(advice: &Advice) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled("How quality falls with model age, and what retraining is worth", ("sans-serif", 20))
            .map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        decay(advice, &left)?;
        value(advice, &right)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn decay<DB: DrawingBackend>(advice: &Advice, area: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let oldest = advice.points.iter().map(|p| p.age).fold(1.0, f64::max);
    // Each version's level taken out, so what is left is age (and noise).
    let level = |v: u32| advice.decay.as_ref().and_then(|d| Some(d.levels.get(&v)? - d.fresh)).unwrap_or(0.0);
    let points: Vec<(f64, f64)> = advice.points.iter().map(|p| (p.age, p.quality - level(p.version))).collect();
    let (lo, hi) =
        points.iter().map(|p| p.1).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), q| (lo.min(q), hi.max(q)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption("daily live quality by age (each version's level taken out)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..oldest * 1.05, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart.configure_mesh().light_line_style(WHITE).x_desc("age of the serving model (days)").draw().map_err(err)?;
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 2, BLUE.mix(0.5).filled())))
        .map_err(err)?
        .label("day mean")
        .legend(|(x, y)| Circle::new((x + 8, y), 3, BLUE.filled()));
    if let Some(d) = &advice.decay {
        let sign = if advice.economics.goal == crate::api::Goal::Minimize { 1.0 } else { -1.0 };
        let line = |rate: f64| vec![(0.0, d.fresh), (oldest, d.fresh + sign * rate * oldest)];
        chart
            .draw_series(LineSeries::new(line(d.rate), RED.stroke_width(2)))
            .map_err(err)?
            .label(format!("fit: {:.2e}/day", d.rate))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
        for bound in [d.interval.0, d.interval.1] {
            chart.draw_series(LineSeries::new(line(bound), RED.mix(0.4).stroke_width(1))).map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(err)
}

fn value<DB: DrawingBackend>(advice: &Advice, area: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let longest = INTERVALS[INTERVALS.len() - 1];
    let shown = match &advice.verdict {
        Verdict::Retrain { interval_days, .. } => (interval_days * 3.0).clamp(30.0, longest),
        _ => longest,
    };
    let curve: Vec<(f64, f64)> = match &advice.decay {
        Some(d) if !advice.table.is_empty() => (1..=(shown as usize * 4))
            .map(|i| i as f64 / 4.0)
            .map(|t| (t, super::row(t, d, &advice.economics).net_value))
            .collect(),
        _ => vec![],
    };
    let (lo, hi) = curve.iter().fold((0.0f64, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad = ((hi - lo) * 0.1).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("net value a month by retraining interval", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..shown, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("retrain every (days)")
        .y_desc(format!("vs every {longest:.0} days"))
        .draw()
        .map_err(err)?;
    if curve.is_empty() {
        let why = match &advice.verdict {
            Verdict::CannotTell { why } => why.clone(),
            _ => "no measurable decay: retraining buys no quality".into(),
        };
        chart.draw_series(std::iter::once(Text::new(why, (1.0, hi), ("sans-serif", 13)))).map_err(err)?;
        return Ok(());
    }
    chart
        .draw_series(LineSeries::new(curve, BLUE.stroke_width(2)))
        .map_err(err)?
        .label("net value")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    if let (Verdict::Retrain { interval_days, range_days }, Some(d)) = (&advice.verdict, &advice.decay) {
        let best = super::row(*interval_days, d, &advice.economics).net_value;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(range_days.0.min(shown), best), (range_days.1.min(shown), best)],
                RED.mix(0.5).stroke_width(6),
            )))
            .map_err(err)?
            .label("95% range")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.mix(0.5).stroke_width(6)));
        chart
            .draw_series(std::iter::once(Circle::new((*interval_days, best), 5, RED.filled())))
            .map_err(err)?
            .label(format!("recommended: every {interval_days:.1} d"))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)
}
