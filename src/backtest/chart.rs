//! The backtest's chart: the drift score and the live quality over the period, with the
//! thresholds and every firing marked (trainings in red, firings hygiene held back in grey).

use plotters::prelude::*;

use super::{Backtest, Reading};

/// Width and height of the chart, in pixels.
const SIZE: (u32, u32) = (1000, 620);

/// The chart as an SVG document.
pub fn svg(backtest: &Backtest) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title = format!("Backtest of {} over {} days", backtest.policy, days(backtest, backtest.to).round());
        let root = root.titled(&title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
        let panels: Vec<Panel> = [drift_panel(backtest), quality_panel(backtest)].into_iter().flatten().collect();
        if panels.is_empty() {
            return Err("the policy has neither a drift nor a performance trigger: nothing to draw".into());
        }
        let areas = root.split_evenly((panels.len(), 1));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            draw(backtest, panel, area)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

struct Panel {
    title: String,
    values: Vec<(f64, f64)>,
    /// Threshold lines: their name and points.
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

fn days(backtest: &Backtest, t: jiff::Timestamp) -> f64 {
    t.duration_since(backtest.from).as_secs_f64() / 86_400.0
}

fn points(backtest: &Backtest, readings: &[Reading], pick: impl Fn(&Reading) -> Option<f64>) -> Vec<(f64, f64)> {
    readings.iter().filter_map(|r| Some((days(backtest, r.time), pick(r)?))).collect()
}

fn drift_panel(backtest: &Backtest) -> Option<Panel> {
    let method = backtest.drift_method.as_ref()?;
    Some(Panel {
        title: format!("drift ({method}) against the serving version's reference"),
        values: points(backtest, &backtest.drift_readings, |r| r.value),
        lines: vec![("threshold".into(), points(backtest, &backtest.drift_readings, |r| r.threshold))],
    })
}

fn quality_panel(backtest: &Backtest) -> Option<Panel> {
    if backtest.quality_readings.is_empty() {
        return None;
    }
    let (min, max) = backtest.quality_bounds;
    let span = |v: f64| vec![(0.0, v), (days(backtest, backtest.to), v)];
    let lines = [("min", min), ("max", max)].into_iter().filter_map(|(n, v)| Some((n.to_string(), span(v?)))).collect();
    Some(Panel {
        title: "live quality".into(),
        values: points(backtest, &backtest.quality_readings, |r| r.value),
        lines,
    })
}

fn draw<DB: DrawingBackend>(
    backtest: &Backtest,
    panel: &Panel,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let all = panel.values.iter().chain(panel.lines.iter().flat_map(|(_, l)| l.iter())).map(|p| p.1);
    let (low, high) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low.is_finite() && high.is_finite() { (low, high) } else { (0.0, 1.0) };
    let pad = ((high - low) * 0.1).max(1e-3);
    let end = days(backtest, backtest.to).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end, (low - pad)..(high + pad))
        .map_err(err)?;
    chart.configure_mesh().x_desc("days since the start").light_line_style(WHITE.mix(0.0)).draw().map_err(err)?;
    chart
        .draw_series(LineSeries::new(panel.values.iter().copied(), BLUE.stroke_width(1)))
        .map_err(err)?
        .label("reading")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    for (name, line) in &panel.lines {
        chart
            .draw_series(LineSeries::new(line.iter().copied(), BLACK.mix(0.6).stroke_width(1)))
            .map_err(err)?
            .label(name.as_str())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.6)));
    }
    let (y0, y1) = (low - pad, high + pad);
    let at = |held: bool| -> Vec<f64> {
        backtest.fired.iter().filter(|f| f.held_back.is_some() == held).map(|f| days(backtest, f.time)).collect()
    };
    // Held-back firings: small crosses along the bottom (they come every check while a hold lasts).
    let held = at(true);
    let crosses =
        chart.draw_series(held.iter().map(|x| Cross::new((*x, y0 + pad * 0.4), 4, BLACK.mix(0.45)))).map_err(err)?;
    if !held.is_empty() {
        crosses.label("held back").legend(|(x, y)| Cross::new((x + 8, y), 4, BLACK.mix(0.45)));
    }
    // Trainings: red lines across the panel, drawn last so nothing hides them.
    let trained = at(false);
    let lines = chart
        .draw_series(trained.iter().map(|x| PathElement::new(vec![(*x, y0), (*x, y1)], RED.stroke_width(2))))
        .map_err(err)?;
    if !trained.is_empty() {
        lines.label("retrain").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}
