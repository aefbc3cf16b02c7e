//! The two SVG charts of a bench run: the latency CDF per scenario and the cost against latency.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::*;
use crate::bench::results::{Results, Scenario};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 600;
const FONT: &str = "sans-serif";

/// A line colour for each scenario or series (Tableau 10).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
    RGBColor(140, 86, 75),
];

/// The powers of ten around `values` (clamped at `floor`), at least one decade apart.
fn log_range(values: impl IntoIterator<Item = f64>, floor: f64, empty: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .map(|v| v.max(floor))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || !hi.is_finite() {
        return empty;
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil());
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

/// Labels a log axis at 1, 2 and 5 times the powers of ten, leaving the other grid lines bare.
fn log_label(v: f64, show: fn(f64) -> String) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    let near = |m: f64| (mantissa - m).abs() < 1e-6 * m;
    if near(1.0) || near(2.0) || near(5.0) || near(10.0) {
        show(v)
    } else {
        String::new()
    }
}

fn axis_ms(v: f64) -> String {
    if v < 1.0 {
        let decimals = (-v.log10().floor()).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        ms(v).trim_end_matches(".0").to_owned()
    }
}

/// `(ms, percent of samples at most ms)` for the sorted positive trigger latencies of a
/// scenario, at most [`CDF_POINTS`] of them.
fn cdf(scenario: &Scenario) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = scenario
        .samples
        .iter()
        .filter_map(|s| s.trigger_ms)
        .filter(|x| x.is_finite())
        .map(|x| x.max(LOG_FLOOR_MS))
        .collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let step = n.div_ceil(CDF_POINTS).max(1);
    let mut points: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i], (i + 1) as f64 * 100.0 / n as f64))
        .collect();
    if n > 0 && points.last().is_some_and(|p| p.1 < 100.0) {
        points.push((v[n - 1], 100.0));
    }
    points
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart failed: {e}")
}

/// Writes `note` in the middle of the plotting area (for an empty chart).
fn note(root: &DrawingArea<SVGBackend<'_>, Shift>, text: &str) -> anyhow::Result<()> {
    let grey = BLACK.mix(0.6);
    let style = TextStyle::from((FONT, 18).into_font())
        .color(&grey)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        text.to_owned(),
        ((w / 2) as i32, (h / 2) as i32),
        style,
    ))
    .map_err(draw_err)
}

/// The CDF of trigger latency, one line per scenario, as SVG text.
fn latency_cdf(results: &Results) -> anyhow::Result<String> {
    /// One scenario's line.
    struct Line {
        name: &'static str,
        color: RGBColor,
        points: Vec<(f64, f64)>,
    }
    let lines: Vec<Line> = CDF_SCENARIOS
        .iter()
        .zip(PALETTE)
        .filter_map(|(name, color)| {
            let points = cdf(scenario(results, name)?);
            (!points.is_empty()).then_some(Line {
                name,
                color,
                points,
            })
        })
        .collect();
    let (lo, hi) = log_range(
        lines.iter().flat_map(|l| l.points.iter().map(|(x, _)| *x)),
        LOG_FLOOR_MS,
        (1.0, 1_000.0),
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("push → pipeline start", (FONT, 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..100f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("trigger latency, ms (log scale)")
            .y_desc("pushes whose pipeline started, %")
            .x_label_formatter(&|v| log_label(*v, axis_ms))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(draw_err)?;
        for line in &lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(line.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if lines.is_empty() {
            note(&root, "no trigger latency measured")?;
        } else {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .label_font((FONT, 15))
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The style and offset of a point's label: to its right, or to its left near the right end
/// of the log axis `lo..hi`, so that it stays in the chart.
fn beside<'a>(
    font: &TextStyle<'a>,
    x: f64,
    (lo, hi): (f64, f64),
    dy: i32,
) -> (TextStyle<'a>, (i32, i32)) {
    let at = (x.ln() - lo.ln()) / (hi.ln() - lo.ln());
    if at > 0.75 {
        (font.pos(Pos::new(HPos::Right, VPos::Top)), (-8, dy))
    } else {
        (font.clone(), (8, dy))
    }
}

/// The vertical offset of a point's label: p99 above the point, p50 below.
fn label_dy(series: &str) -> i32 {
    if series == "p99" { -16 } else { 4 }
}

/// A labelled point of the cost chart.
struct CostPoint {
    x: f64,
    y: f64,
    label: String,
}

/// Cost (requests per hour, extrapolated) against trigger latency, as SVG text.
fn cost_vs_latency(results: &Results) -> anyhow::Result<String> {
    let mut sweep: Vec<_> = results
        .sweep
        .iter()
        .filter(|p| p.trigger_ms.n > 0)
        .collect();
    sweep.sort_by_key(|p| p.interval_ms);
    let series = |pick: fn(&Summary) -> f64| -> Vec<CostPoint> {
        sweep
            .iter()
            .map(|p| CostPoint {
                x: p.git_requests_per_hour_extrapolated.max(LOG_FLOOR_RATE),
                y: pick(&p.trigger_ms).max(LOG_FLOOR_MS),
                label: interval(p.interval_ms),
            })
            .collect()
    };
    let p50 = series(|t| t.p50);
    let p99 = series(|t| t.p99);
    // Webhooks and events make (almost) no git requests: their cost is the AWS and git requests
    // together, at least 1 for the log axis.
    let pushed: Vec<(&str, f64, &Summary)> = PUSH_SCENARIOS
        .iter()
        .filter_map(|name| {
            let s = scenario(results, name).filter(|s| s.trigger_ms.n > 0)?;
            let x = s.git_requests_per_hour_extrapolated + s.aws_requests_per_hour_extrapolated;
            Some((*name, x.max(LOG_FLOOR_RATE), &s.trigger_ms))
        })
        .collect();
    let (x_lo, x_hi) = log_range(
        p50.iter()
            .map(|p| p.x)
            .chain(pushed.iter().map(|(_, x, _)| *x)),
        LOG_FLOOR_RATE,
        (1.0, 1e6),
    );
    let (y_lo, y_hi) = log_range(
        p50.iter()
            .chain(&p99)
            .map(|p| p.y)
            .chain(pushed.iter().flat_map(|(_, _, t)| [t.p50, t.p99])),
        LOG_FLOOR_MS,
        (1.0, 10_000.0),
    );
    let at = match results.settings.extrapolate_repos {
        0 => String::new(),
        n => format!(" at {} repositories", count(n)),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("cost against latency", (FONT, 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "requests per hour{at} (log; polling: git; webhook, events: git + AWS, at least 1)"
            ))
            .y_desc("push → pipeline start, ms (log)")
            .x_label_formatter(&|v| log_label(*v, rate))
            .y_label_formatter(&|v| log_label(*v, axis_ms))
            .draw()
            .map_err(draw_err)?;
        let ink = BLACK.mix(0.8);
        let label_font = (FONT, 13).into_font().color(&ink);
        for (name, points, color) in [("p50", &p50, PALETTE[0]), ("p99", &p99, PALETTE[4])] {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.x, p.y)),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(format!("polling {name}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            let font = label_font.clone();
            let dy = label_dy(name);
            chart
                .draw_series(points.iter().map(|p| {
                    EmptyElement::at((p.x, p.y)) + Circle::new((0, 0), 4, color.filled()) + {
                        let (style, offset) = beside(&font, p.x, (x_lo, x_hi), dy);
                        Text::new(p.label.clone(), offset, style)
                    }
                }))
                .map_err(draw_err)?;
        }
        for ((name, x, t), color) in pushed.iter().zip([PALETTE[2], PALETTE[3]]) {
            let font = label_font.clone();
            chart
                .draw_series(
                    [(t.p50, "p50"), (t.p99, "p99")]
                        .into_iter()
                        .map(move |(y, which)| {
                            EmptyElement::at((*x, y.max(LOG_FLOOR_MS)))
                                + Circle::new((0, 0), 5, color.filled())
                                + {
                                    let (style, offset) =
                                        beside(&font, *x, (x_lo, x_hi), label_dy(which));
                                    Text::new(format!("{name} {which}"), offset, style)
                                }
                        }),
                )
                .map_err(draw_err)?
                .label(*name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        if p50.is_empty() && pushed.is_empty() {
            note(
                &root,
                "nothing to plot: no sweep point and no webhook or events scenario started a pipeline",
            )?;
        } else {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .label_font((FONT, 15))
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Writes `latency-cdf.svg` (the CDF of trigger latency by scenario) and
/// `cost-vs-latency.svg` (the polling sweep's cost against its latency, with webhooks and
/// events as single points) into `dir`, creating it, and returns their paths.
pub fn plots(results: &Results, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the plot directory", dir.display()))?;
    let charts = [
        ("latency-cdf.svg", latency_cdf(results)?),
        ("cost-vs-latency.svg", cost_vs_latency(results)?),
    ];
    let mut paths = Vec::with_capacity(charts.len());
    for (name, svg) in charts {
        let path = dir.join(name);
        std::fs::write(&path, svg)
            .with_context(|| format!("{}: cannot write the plot", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
