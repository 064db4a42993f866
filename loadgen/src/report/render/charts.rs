//! The charts of `report.html`, drawn with plotters as inline SVG: latency percentiles and
//! throughput/errors per second with the fault phases shaded, and one small chart per
//! leak-checked resource with its baseline band (baseline to baseline + allowed growth).
//!
//! Series are downsampled to [`MAX_POINTS`] (peaks kept); missing data leaves gaps; empty or
//! flat data still gets an axis with some height, and no data at all a note instead of a chart.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::format::{mark, value};
use super::html::{escape, mark_span, opt};
use crate::report::Check;
use crate::report::Report;
use crate::report::sample::RESOURCES;
use crate::report::thousands;

/// Points per chart series, at most (a longer series is bucketed).
pub const MAX_POINTS: usize = 600;
/// The size of the latency and throughput charts.
const WIDE: (u32, u32) = (860, 260);
/// The size of one resource chart.
const SMALL: (u32, u32) = (424, 210);

type Res<T> = Result<T, Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

const FONT: &str = "sans-serif";
const INK: RGBColor = RGBColor(31, 35, 40);
const GRID: RGBColor = RGBColor(234, 238, 242);
const AXIS: RGBColor = RGBColor(140, 149, 159);
const P50: RGBColor = RGBColor(9, 105, 218);
const P90: RGBColor = RGBColor(130, 80, 223);
const P99: RGBColor = RGBColor(191, 135, 0);
const MAX: RGBColor = RGBColor(110, 119, 129);
const OK: RGBColor = RGBColor(9, 105, 218);
const ERR: RGBColor = RGBColor(207, 34, 46);
const SERIES: RGBColor = RGBColor(9, 105, 218);
const BAND: RGBColor = RGBColor(26, 127, 55);
const MARKER: RGBColor = RGBColor(87, 96, 106);
/// Phase shading, in turn.
const PHASES: [RGBColor; 4] = [
    RGBColor(251, 143, 68),
    RGBColor(130, 80, 223),
    RGBColor(27, 163, 163),
    RGBColor(212, 167, 44),
];

/// A fault phase (`from`..`to`, s into the load), or SIGTERM (`to` = `from`).
struct Span {
    from: f64,
    to: f64,
    name: String,
    sigterm: bool,
}

/// The end of the measured load, s after its start.
fn load_end_s(r: &Report) -> f64 {
    let p = &r.probe;
    let probed = (p.load_end_t_ms > p.load_start_t_ms)
        .then(|| (p.load_end_t_ms - p.load_start_t_ms) as f64 / 1000.0);
    let measured = r.load.wall_seconds.max(r.seconds.len() as f64);
    match probed {
        Some(v) if measured <= 0.0 => v,
        _ => finite(measured).unwrap_or(0.0),
    }
}

/// Each phase lasts until the next one (or the end of the load).
fn spans(r: &Report, end_s: f64) -> Vec<Span> {
    let mut phases: Vec<_> = r.phases.iter().collect();
    phases.sort_by_key(|p| p.at_ms);
    phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let from = p.at_ms as f64 / 1000.0;
            let to = phases
                .get(i + 1)
                .map(|n| n.at_ms as f64 / 1000.0)
                .unwrap_or(end_s)
                .max(from);
            let sigterm = p.action == "sigterm";
            Span {
                from,
                to: if sigterm { from } else { to },
                name: if p.name.is_empty() {
                    p.action.clone()
                } else {
                    p.name.clone()
                },
                sigterm,
            }
        })
        .collect()
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[derive(Clone, Copy)]
enum Agg {
    Max,
    Mean,
}

/// At most `max` points: consecutive buckets reduced to one point at their first x (gaps,
/// `None`, stay gaps when a whole bucket is one); the last point is always kept as it is.
fn downsample(points: &[(f64, Option<f64>)], max: usize, agg: Agg) -> Vec<(f64, Option<f64>)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let size = points.len().div_ceil(max - 1);
    let (body, last) = points.split_at(points.len() - 1);
    let mut out: Vec<_> = body
        .chunks(size)
        .map(|chunk| {
            let vals: Vec<f64> = chunk.iter().filter_map(|(_, v)| *v).collect();
            let y = (!vals.is_empty()).then(|| match agg {
                Agg::Max => vals.iter().copied().fold(f64::MIN, f64::max),
                Agg::Mean => vals.iter().sum::<f64>() / vals.len() as f64,
            });
            (chunk[0].0, y)
        })
        .collect();
    out.extend_from_slice(last);
    out
}

/// The runs of consecutive defined points.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        match y {
            Some(y) => out.last_mut().expect("never empty").push((x, y)),
            None if out.last().is_some_and(|s| !s.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A y range with some height, whatever the data (empty, one value, all equal).
fn y_range(lo: f64, hi: f64, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = match (finite(lo), finite(hi)) {
        (Some(a), Some(b)) if a <= b => (a, b),
        _ => (0.0, 1.0),
    };
    if hi - lo < 1e-9 {
        let pad = (hi.abs() * 0.05).max(1.0);
        lo -= pad;
        hi += pad;
    } else {
        let pad = (hi - lo) * 0.08;
        lo -= pad;
        hi += pad;
    }
    if floor_zero && lo < 0.0 {
        lo = 0.0;
    }
    (lo, hi)
}

fn x_range(lo: f64, hi: f64) -> (f64, f64) {
    match (finite(lo), finite(hi)) {
        (Some(a), Some(b)) if b - a > 1e-9 => (a, b),
        (Some(a), _) => (a - 0.5, a + 0.5),
        _ => (0.0, 1.0),
    }
}

/// An axis tick: as many decimals as a tick needs.
fn tick(v: f64) -> String {
    let a = v.abs();
    if (v - v.round()).abs() < 1e-6 || a >= 100.0 {
        thousands(v)
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draws an SVG of `size` with `draw` and returns it, ready to inline (no XML namespace:
/// HTML does not need one).
fn svg(size: (u32, u32), title: &str, draw: impl FnOnce(&Area<'_>) -> Res<()>) -> Res<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        draw(&root)?;
        root.present()?;
    }
    let buf = buf.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    Ok(buf.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(title)),
        1,
    ))
}

fn chart<'a, 'b>(
    root: &'a Area<'b>,
    x: (f64, f64),
    y: (f64, f64),
    x_desc: &str,
    y_desc: &str,
    small: bool,
) -> Res<Chart<'a, 'b>> {
    let mut c = ChartBuilder::on(root)
        .margin_top(8)
        .margin_right(14)
        .margin_left(4)
        .margin_bottom(4)
        .x_label_area_size(if small { 36 } else { 38 })
        .y_label_area_size(if small { 52 } else { 60 })
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    let labels = (FONT, if small { 14 } else { 15 }).into_font().color(&INK);
    c.configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .x_labels(if small { 7 } else { 14 })
        .y_labels(if small { 5 } else { 6 })
        .label_style(labels.clone())
        .axis_desc_style(labels)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(c)
}

/// Shades the fault phases (labelled with their names when `names`), SIGTERM as a line.
fn shade(c: &mut Chart<'_, '_>, spans: &[Span], y: (f64, f64), names: bool) -> Res<()> {
    let (x0, x1) = {
        let r = c.x_range();
        (r.start, r.end)
    };
    // a label reads from its line into the chart, unless that would run off the edge
    let edge = (x1 - x0) * 0.15;
    let mut colour = 0;
    for (i, p) in spans.iter().enumerate() {
        let from = p.from.clamp(x0, x1);
        let to = p.to.clamp(x0, x1);
        let row = (i % 3) as i32 * 15;
        if p.sigterm {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(from, y.0), (from, y.1)],
                ERR.stroke_width(2),
            )))?;
            if names {
                let (h, dx) = if from - x0 < edge {
                    (HPos::Left, 4)
                } else {
                    (HPos::Right, -4)
                };
                let style = (FONT, 14)
                    .into_font()
                    .color(&ERR)
                    .pos(Pos::new(h, VPos::Top));
                c.draw_series(std::iter::once(
                    EmptyElement::at((from, y.1)) + Text::new("SIGTERM", (dx, 3 + row), style),
                ))?;
            }
            continue;
        }
        let base = PHASES[colour % PHASES.len()];
        colour += 1;
        if to > from {
            c.draw_series(std::iter::once(Rectangle::new(
                [(from, y.0), (to, y.1)],
                base.mix(0.16).filled(),
            )))?;
        }
        c.draw_series(std::iter::once(PathElement::new(
            vec![(from, y.0), (from, y.1)],
            base.mix(0.7).stroke_width(1),
        )))?;
        if names {
            let (at, h, dx) = if x1 - from < edge {
                (x1, HPos::Right, -4)
            } else {
                (from, HPos::Left, 4)
            };
            let style = (FONT, 14)
                .into_font()
                .color(&RGBColor(base.0 / 2, base.1 / 2, base.2 / 2))
                .pos(Pos::new(h, VPos::Top));
            c.draw_series(std::iter::once(
                EmptyElement::at((at, y.1)) + Text::new(p.name.clone(), (dx, 3 + row), style),
            ))?;
        }
    }
    Ok(())
}

/// Draws a series as lines over its defined runs (a lone point as a dot).
fn line(
    c: &mut Chart<'_, '_>,
    points: &[(f64, Option<f64>)],
    colour: RGBColor,
    width: u32,
) -> Res<()> {
    let style = colour.stroke_width(width);
    for seg in segments(points) {
        let dots = if seg.len() == 1 { 3 } else { 0 };
        c.draw_series(LineSeries::new(seg, style).point_size(dots))?;
    }
    Ok(())
}

/// The legend, in the caption (HTML lays text out better than the SVG's guessed metrics; a
/// border, not a background, so that it prints).
fn key(series: &[(&str, RGBColor)]) -> String {
    series
        .iter()
        .map(|(name, c)| {
            format!(
                "<span class=\"key\"><i style=\"border-color:#{:02x}{:02x}{:02x}\"></i>{}</span>",
                c.0,
                c.1,
                c.2,
                escape(name)
            )
        })
        .collect()
}

fn figure(title: &str, body: Res<String>) -> String {
    let body = match body {
        Ok(svg) => svg,
        Err(e) => format!(
            "<p class=\"nodata\">the chart could not be drawn: {}</p>",
            escape(&e.to_string())
        ),
    };
    format!("<figure>\n<figcaption>{title}</figcaption>\n{body}</figure>\n")
}

fn nodata(title: &str, why: &str) -> String {
    format!(
        "<figure>\n<figcaption>{title}</figcaption>\n<p class=\"nodata\">{}</p>\n</figure>\n",
        escape(why)
    )
}

pub(super) fn charts(s: &mut String, r: &Report) {
    let end = load_end_s(r);
    let spans = spans(r, end);
    s.push_str("<h2>Over time</h2>\n");
    s.push_str(&latency_chart(r, &spans, end));
    s.push_str(&throughput_chart(r, &spans, end));
    let checked: Vec<&Check> = r.leak_checks().filter(|c| c.skipped.is_none()).collect();
    if checked.is_empty() {
        return;
    }
    s.push_str(
        "<h2>Resources</h2>\n<p class=\"muted\">Seconds from the load start: the warm-up and \
         baseline before 0, the settle window after the load end. Green: the baseline and its \
         allowed growth.</p>\n<div class=\"grid\">\n",
    );
    for c in checked {
        s.push_str(&resource_chart(r, c, &spans));
    }
    s.push_str("</div>\n");
}

/// Room above the data for the phase labels (up to three rows of them).
fn headroom(spans: &[Span]) -> f64 {
    1.06 + 0.09 * spans.len().min(3) as f64
}

fn latency_chart(r: &Report, spans: &[Span], end: f64) -> String {
    let title = "Latency per second <span class=\"muted\">(ms; fault phases shaded)</span>";
    let series = |f: fn(&crate::report::Percentiles) -> u64| -> Vec<(f64, Option<f64>)> {
        let points: Vec<_> = r
            .seconds
            .iter()
            .map(|x| {
                let p = &x.percentiles;
                let v = (p.count > 0).then(|| f(p) as f64 / 1000.0).and_then(finite);
                (x.t_s as f64 + 0.5, v)
            })
            .collect();
        downsample(&points, MAX_POINTS, Agg::Max)
    };
    let p50 = series(|p| p.p50_us);
    let p90 = series(|p| p.p90_us);
    let p99 = series(|p| p.p99_us);
    let max = series(|p| p.max_us);
    let peak = |v: &[(f64, Option<f64>)]| v.iter().filter_map(|p| p.1).fold(0.0, f64::max);
    if max.iter().all(|p| p.1.is_none()) {
        return nodata(title, "no data: no request completed during the load");
    }
    let (p99_peak, max_peak) = (peak(&p99), peak(&max));
    // the max may spike far above the rest: clip it at twice the p99's peak
    let top = if p99_peak > 0.0 && max_peak > 2.0 * p99_peak {
        2.0 * p99_peak
    } else {
        max_peak
    };
    let clipped = max_peak > top;
    let clip = |v: Vec<(f64, Option<f64>)>| -> Vec<(f64, Option<f64>)> {
        v.into_iter()
            .map(|(x, y)| (x, y.map(|y| y.min(top))))
            .collect()
    };
    let y = y_range(0.0, top * headroom(spans), true);
    let x = x_range(0.0, end.max(r.seconds.len() as f64));
    let title = if clipped {
        format!(
            "{title} <span class=\"muted\">— max clipped at {} ms (peak {} ms)</span>",
            tick(top),
            tick(max_peak)
        )
    } else {
        title.to_string()
    };
    let body = svg(WIDE, "latency per second", |root| {
        let mut c = chart(root, x, y, "s since the load start", "ms", false)?;
        shade(&mut c, spans, y, true)?;
        line(&mut c, &clip(max), MAX, 1)?;
        line(&mut c, &p99, P99, 2)?;
        line(&mut c, &p90, P90, 2)?;
        line(&mut c, &p50, P50, 2)
    });
    let title = format!(
        "{title}{}",
        key(&[("p50", P50), ("p90", P90), ("p99", P99), ("max", MAX)])
    );
    figure(&title, body)
}

fn throughput_chart(r: &Report, spans: &[Span], end: f64) -> String {
    let title = "Throughput and errors per second <span class=\"muted\">(req/s)</span>";
    if r.seconds.is_empty() {
        return nodata(title, "no data: the load recorded no seconds");
    }
    // the last second is usually partial: its count is a rate over the part it covers
    let covered = |t_s: u64| (r.load.wall_seconds - t_s as f64).clamp(0.1, 1.0);
    let series = |f: fn(&crate::report::SecondFigures) -> u64| -> Vec<(f64, Option<f64>)> {
        let points: Vec<_> = r
            .seconds
            .iter()
            .map(|x| (x.t_s as f64 + 0.5, Some(f(x) as f64 / covered(x.t_s))))
            .collect();
        downsample(&points, MAX_POINTS, Agg::Mean)
    };
    let ok = series(|x| x.ok);
    let failed = series(|x| x.failed);
    let top = ok
        .iter()
        .chain(&failed)
        .filter_map(|p| p.1)
        .fold(0.0, f64::max);
    let y = y_range(0.0, top * headroom(spans), true);
    let x = x_range(0.0, end.max(r.seconds.len() as f64));
    let body = svg(WIDE, "throughput and errors per second", |root| {
        let mut c = chart(root, x, y, "s since the load start", "req/s", false)?;
        shade(&mut c, spans, y, true)?;
        let area: Vec<(f64, f64)> = failed
            .iter()
            .filter_map(|(x, y)| Some((*x, (*y)?)))
            .collect();
        if failed.iter().any(|p| p.1.is_some_and(|v| v > 0.0)) {
            c.draw_series(AreaSeries::new(area, 0.0, ERR.mix(0.25)))?;
        }
        line(&mut c, &ok, OK, 2)?;
        line(&mut c, &failed, ERR, 2)
    });
    let worst = r.seconds.iter().map(|x| x.failed).max().unwrap_or(0);
    let title = format!(
        "{title}{}{}",
        key(&[("ok", OK), ("failed", ERR)]),
        if worst > 0 {
            format!(
                " <span class=\"muted\">— {} failed in all, at most {}/s</span>",
                thousands(r.load.failed as f64),
                thousands(worst as f64)
            )
        } else {
            " <span class=\"muted\">— no failures</span>".to_string()
        }
    );
    figure(&title, body)
}

fn resource_chart(r: &Report, c: &Check, spans: &[Span]) -> String {
    let m = mark(c);
    let title = format!(
        "<code>{}</code> {} <span class=\"muted\">baseline {}, peak {}, final {}; allowed +{}</span>",
        escape(&c.name),
        mark_span(m),
        escape(&opt(&c.unit, c.baseline)),
        escape(&opt(&c.unit, c.peak)),
        escape(&opt(&c.unit, c.value)),
        escape(&value(&c.unit, c.limit))
    );
    let Some(res) = RESOURCES.iter().find(|x| x.name == c.name) else {
        return nodata(&title, "no data: not a resource the probe samples");
    };
    let p = &r.probe;
    let start = p.load_start_t_ms as f64;
    let points: Vec<(f64, Option<f64>)> = p
        .samples
        .iter()
        .map(|x| {
            let v = if x.gone { None } else { (res.read)(x) };
            ((x.t_ms as f64 - start) / 1000.0, v.and_then(finite))
        })
        .collect();
    if points.iter().all(|p| p.1.is_none()) {
        return nodata(&title, "no data: no sample has this figure");
    }
    let points = downsample(&points, MAX_POINTS, Agg::Max);
    let vals: Vec<f64> = points.iter().filter_map(|p| p.1).collect();
    let base = c.baseline.and_then(finite);
    let limit = finite(c.limit).unwrap_or(0.0).max(0.0);
    let band = base.map(|b| (b, b + limit));
    let lo = vals
        .iter()
        .copied()
        .chain(band.map(|b| b.0))
        .fold(f64::INFINITY, f64::min);
    let hi = vals
        .iter()
        .copied()
        .chain(band.map(|b| b.1))
        .fold(f64::NEG_INFINITY, f64::max);
    let y = y_range(lo, hi, lo >= 0.0);
    let first = points.first().map(|p| p.0).unwrap_or(0.0);
    let last = points.last().map(|p| p.0).unwrap_or(0.0);
    let load_end = if p.load_end_t_ms > p.load_start_t_ms {
        (p.load_end_t_ms - p.load_start_t_ms) as f64 / 1000.0
    } else {
        load_end_s(r)
    };
    let x = x_range(first.min(0.0), last.max(load_end));
    let final_point = points.iter().rev().find_map(|(x, y)| Some((*x, (*y)?)));
    let failed = m == "FAIL";
    let body = svg(SMALL, &c.name, |root| {
        let mut ch = chart(root, x, y, "s from the load start", &c.unit, true)?;
        shade(&mut ch, spans, y, false)?;
        if let Some((b, t)) = band {
            if t > b {
                ch.draw_series(std::iter::once(Rectangle::new(
                    [(x.0, b), (x.1, t)],
                    BAND.mix(0.14).filled(),
                )))?;
                ch.draw_series(std::iter::once(PathElement::new(
                    vec![(x.0, t), (x.1, t)],
                    BAND.mix(0.5).stroke_width(1),
                )))?;
            }
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(x.0, b), (x.1, b)],
                BAND.mix(0.8).stroke_width(2),
            )))?;
        }
        let tag = (FONT, 13).into_font().color(&MARKER);
        // "load start" right of its line, "load end" left of its one (the settle may be short)
        for (at, name, h, dx) in [
            (0.0, "load start", HPos::Left, 3),
            (load_end, "load end", HPos::Right, -3),
        ] {
            if at < x.0 || at > x.1 {
                continue;
            }
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(at, y.0), (at, y.1)],
                MARKER.stroke_width(1),
            )))?;
            ch.draw_series(std::iter::once(
                EmptyElement::at((at, y.1))
                    + Text::new(name, (dx, 2), tag.clone().pos(Pos::new(h, VPos::Top))),
            ))?;
        }
        let colour = if failed { ERR } else { SERIES };
        for seg in segments(&points) {
            let dots = if seg.len() == 1 { 3 } else { 0 };
            ch.draw_series(LineSeries::new(seg, colour.stroke_width(2)).point_size(dots))?;
        }
        if let Some(pt) = final_point {
            ch.draw_series(std::iter::once(Circle::new(pt, 3, colour.filled())))?;
        }
        Ok(())
    });
    figure(&title, body)
}

#[cfg(test)]
#[path = "charts_tests.rs"]
mod tests;
