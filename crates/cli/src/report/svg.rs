//! Inline SVG charts for the report: bars with intervals, and lines / points on linear or log
//! axes. Hand-written (a few hundred bytes of markup each) so the report needs no script and no
//! network, and opens anywhere.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 32.0;
const BOTTOM: f64 = 56.0;
/// Legend entries per row, and a row's height.
const LEGEND_COLUMNS: usize = 3;
const LEGEND_ROW: f64 = 16.0;
const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Where series `i`'s legend entry goes: rows under the plot and its axis label.
fn legend_position(i: usize) -> (f64, f64) {
    let column_width = (W - LEFT - RIGHT) / LEGEND_COLUMNS as f64;
    let (row, column) = (i / LEGEND_COLUMNS, i % LEGEND_COLUMNS);
    (LEFT + column_width * column as f64, H + 2.0 + LEGEND_ROW * row as f64)
}

/// A colour per series index.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for XML/HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A short number for axis ticks.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        // Up to four significant digits, so that ticks a small step apart differ (4.2e5, 4.4e5).
        let text = format!("{v:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa =
            if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
        format!("{mantissa}e{exponent}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{v:.3}").trim_end_matches('0').to_owned()
    }
}

/// Axis bounds padded a little, never empty.
fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (l, h) = (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
        (10f64.powf(l), 10f64.powf(h))
    } else {
        let span = (hi - lo).max(hi.abs() * 1e-3).max(1e-12);
        let low = lo - 0.05 * span;
        // Non-negative data (times, memory, CPU %) keeps a non-negative axis.
        let low = if lo >= 0.0 { low.max(0.0) } else { low };
        // Out to whole ticks, so every tick is a round number.
        let step = nice_step((hi + 0.05 * span - low) / 4.0);
        ((low / step).floor() * step, ((hi + 0.05 * span) / step).ceil() * step)
    }
}

/// The round step (1, 2 or 5 × 10ⁿ) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.max(1e-12).log10().floor());
    let m = raw / power;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.log10().round() as i32, self.hi.log10().round() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            // Round steps from a bound that is a multiple of the step (see `bounds`).
            let step = nice_step((self.hi - self.lo) / 5.0);
            let first = (self.lo / step - 1e-9).ceil() as i64;
            let last = (self.hi / step + 1e-9).floor() as i64;
            (first..=last).map(|k| k as f64 * step).collect()
        }
    }
}

/// Starts a chart `height` tall (the plot is always `H`; a legend adds rows below it).
fn open(out: &mut String, id: &str, title: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img"><title>{t}</title><text x="{x}" y="20" text-anchor="middle" class="title">{t}</text>"#,
        t = esc(title),
        x = W / 2.0
    );
}

fn axes(out: &mut String, x_label: &str, y: &Axis, y_label: &str) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let _ = write!(
        out,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>"##
    );
    for t in y.ticks() {
        let py = y0 - y.frac(t) * (y0 - y1);
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            x0 - 4.0,
            py + 4.0,
            tick_label(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="label">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" class="label">{}</text>"#,
        (x0 + x1) / 2.0,
        H - 8.0,
        esc(x_label),
        (y0 + y1) / 2.0,
        esc(y_label)
    );
}

/// One bar with an optional interval.
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Height.
    pub value: f64,
    /// 95 % interval, when there are several seeds.
    pub interval: Option<(f64, f64)>,
    /// Series index (colour).
    pub series: usize,
}

/// Vertical bars, value written above each.
pub fn bar_chart(id: &str, title: &str, y_label: &str, bars: &[Bar], zero_based: bool) -> String {
    let mut out = String::new();
    open(&mut out, id, title, H);
    let values = bars.iter().flat_map(|b| [Some(b.value), b.interval.map(|i| i.0), b.interval.map(|i| i.1)]).flatten();
    let (mut lo, hi) = bounds(values, false);
    if zero_based {
        lo = 0.0;
    }
    let y = Axis { lo, hi, log: false };
    axes(&mut out, "", &y, y_label);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let slot = (x1 - x0) / bars.len().max(1) as f64;
    for (i, b) in bars.iter().enumerate() {
        let cx = x0 + slot * (i as f64 + 0.5);
        let top = y0 - y.frac(b.value).clamp(0.0, 1.0) * (y0 - y1);
        let bw = (slot * 0.6).min(60.0);
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{top:.1}" width="{bw:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
            cx - bw / 2.0,
            (y0 - top).max(0.0),
            color(b.series),
            esc(&b.label),
            tick_label(b.value)
        );
        if let Some((l, h)) = b.interval {
            let (pl, ph) = (y0 - y.frac(l).clamp(0.0, 1.0) * (y0 - y1), y0 - y.frac(h).clamp(0.0, 1.0) * (y0 - y1));
            let _ = write!(
                out,
                r##"<line x1="{cx:.1}" y1="{pl:.1}" x2="{cx:.1}" y2="{ph:.1}" stroke="#000"/><line x1="{:.1}" y1="{pl:.1}" x2="{:.1}" y2="{pl:.1}" stroke="#000"/><line x1="{:.1}" y1="{ph:.1}" x2="{:.1}" y2="{ph:.1}" stroke="#000"/>"##,
                cx - 5.0,
                cx + 5.0,
                cx - 5.0,
                cx + 5.0
            );
        }
        let _ = write!(
            out,
            r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" class="value">{}</text><text x="{cx:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            top - 4.0,
            tick_label(b.value),
            y0 + 16.0,
            esc(&b.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// A named series of (x, y) points.
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// Lines (or points only, for `markers_only`) with a legend; axes linear or log10.
pub fn line_chart(
    id: &str,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
    (log_x, log_y): (bool, bool),
    markers_only: bool,
) -> String {
    let mut out = String::new();
    // The legend goes under the plot, where it covers no data.
    let legend_rows = series.len().div_ceil(LEGEND_COLUMNS);
    open(&mut out, id, title, H + LEGEND_ROW * legend_rows as f64 + 6.0);
    let (xl, xh) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), log_x);
    let (yl, yh) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), log_y);
    let (x, y) = (Axis { lo: xl, hi: xh, log: log_x }, Axis { lo: yl, hi: yh, log: log_y });
    axes(&mut out, x_label, &y, y_label);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    for t in x.ticks() {
        let px = x0 + x.frac(t) * (x1 - x0);
        let _ = write!(
            out,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            y0 + 16.0,
            tick_label(t)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0) && (!log_y || p.1 > 0.0))
            .map(|&(px, py)| (x0 + x.frac(px) * (x1 - x0), y0 - y.frac(py) * (y0 - y1)))
            .collect();
        if !markers_only && pts.len() > 1 {
            let path: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                color(i),
                path.join(" ")
            );
        }
        if markers_only || pts.len() <= 30 {
            for (a, b) in &pts {
                let _ = write!(out, r#"<circle cx="{a:.1}" cy="{b:.1}" r="3.5" fill="{}"/>"#, color(i));
            }
        }
        let (lx, ly) = legend_position(i);
        let _ = write!(
            out,
            r#"<rect x="{lx:.1}" y="{ly:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"#,
            color(i),
            lx + 14.0,
            ly + 9.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// The mean of the points within `window` before each point (a trailing moving average), for
/// sampled measures whose raw samples jump.
pub fn smooth(points: &[(f64, f64)], window: f64) -> Vec<(f64, f64)> {
    let (mut start, mut sum) = (0, 0.0);
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        while points[start].0 < x - window {
            sum -= points[start].1;
            start += 1;
        }
        out.push((x, sum / (i + 1 - start) as f64));
    }
    out
}

/// Panel size and layout of [`small_multiples`].
const PANEL_W: f64 = W / 2.0;
const PANEL_H: f64 = 150.0;
const PANEL_LEFT: f64 = 48.0;
const PANEL_BOTTOM: f64 = 28.0;
const PANEL_TOP: f64 = 22.0;

/// One small panel per series, two to a row, on a shared y axis (from 0) so panels compare
/// at a glance: for sampled measures such as CPU use, where several runs' lines on one plot
/// hide each other. Each panel's x axis runs over its own series.
pub fn small_multiples(id: &str, title: &str, (x_label, y_label): (&str, &str), series: &[Series]) -> String {
    let mut out = String::new();
    let rows = series.len().div_ceil(2).max(1);
    open(&mut out, id, title, TOP + PANEL_H * rows as f64 + 20.0);
    let (_, y_hi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain([0.0]), false);
    let y = Axis { lo: 0.0, hi: y_hi, log: false };
    for (i, s) in series.iter().enumerate() {
        let (ox, oy) = (PANEL_W * (i % 2) as f64, TOP + PANEL_H * (i / 2) as f64);
        let (x0, x1, y0, y1) = (ox + PANEL_LEFT, ox + PANEL_W - RIGHT, oy + PANEL_H - PANEL_BOTTOM, oy + PANEL_TOP);
        let (xl, xh) = bounds(s.points.iter().map(|p| p.0).chain([0.0]), false);
        let x = Axis { lo: xl, hi: xh, log: false };
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="legend">{}</text><line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}" stroke="#333"/><line x1="{x0:.1}" y1="{y0:.1}" x2="{x0:.1}" y2="{y1:.1}" stroke="#333"/>"##,
            (x0 + x1) / 2.0,
            oy + 14.0,
            esc(&s.name)
        );
        for t in y.ticks() {
            let py = y0 - y.frac(t) * (y0 - y1);
            let _ = write!(
                out,
                r##"<line x1="{x0:.1}" y1="{py:.1}" x2="{x1:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
                x0 - 3.0,
                py + 4.0,
                tick_label(t)
            );
        }
        for t in x.ticks() {
            let px = x0 + x.frac(t) * (x1 - x0);
            let _ = write!(
                out,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                y0 + 14.0,
                tick_label(t)
            );
        }
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(px, py)| format!("{:.1},{:.1}", x0 + x.frac(px) * (x1 - x0), y0 - y.frac(py) * (y0 - y1)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            color(i),
            path.join(" ")
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="label">{} against {}</text>"#,
        W / 2.0,
        TOP + PANEL_H * rows as f64 + 14.0,
        esc(y_label),
        esc(x_label)
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers of every `attribute="..."` of `tag` elements in `svg`.
    fn attributes(svg: &str, tag: &str, attribute: &str) -> Vec<f64> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter_map(|e| e.split(&format!(" {attribute}=\"")).nth(1)?.split('"').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn large_and_small_tick_labels_keep_their_digits() {
        assert_eq!(tick_label(420_000.0), "4.2e5");
        assert_eq!(tick_label(440_000.0), "4.4e5");
        assert_eq!(tick_label(2_000_000.0), "2e6");
        assert_eq!(tick_label(0.0005), "5e-4");
        assert_eq!(tick_label(1234.0), "1234");
    }

    #[test]
    fn ticks_are_round_numbers_covering_the_data() {
        for (lo, hi) in [(0.0, 0.93), (0.731, 0.768), (12.0, 187.0), (0.0, 2.0e6), (-3.2, 7.9)] {
            let (a, b) = bounds([lo, hi].into_iter(), false);
            assert!(a <= lo && b >= hi, "{lo}..{hi} in {a}..{b}");
            let ticks = Axis { lo: a, hi: b, log: false }.ticks();
            assert!((3..=9).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            let step = ticks[1] - ticks[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6), "{lo}..{hi}: step {step}");
            for t in &ticks {
                assert!((t / step - (t / step).round()).abs() < 1e-6, "{t} is not a multiple of {step}");
            }
        }
    }

    #[test]
    fn the_legend_is_under_the_plot() {
        let series: Vec<Series> = (0..5)
            .map(|i| Series { name: format!("run {i}"), points: vec![(0.0, 1.0), (1.0, 0.5 + i as f64)] })
            .collect();
        let svg = line_chart("c", "t", ("x", "y"), &series, (false, false), false);
        let legend_tops = attributes(&svg, "rect", "y");
        assert_eq!(legend_tops.len(), 5);
        // Below the x axis and its label, inside the chart.
        let height = attributes(&svg, "svg", "height")[0];
        assert!(legend_tops.iter().all(|&y| y >= H && y + 10.0 <= height), "{legend_tops:?} in {height}");
        // Every data point is inside the plot area, above the legend.
        assert!(attributes(&svg, "circle", "cy").iter().all(|&y| (TOP..=H - BOTTOM).contains(&y)));
    }

    #[test]
    fn small_multiples_draw_one_smoothed_panel_per_series() {
        let raw: Vec<(f64, f64)> = (0..40).map(|i| (i as f64 * 0.05, if i % 2 == 0 { 0.0 } else { 200.0 })).collect();
        let smoothed = smooth(&raw, 0.5);
        // Over a full window the alternating samples average to 100.
        assert!(smoothed[20..].iter().all(|p| (p.1 - 100.0).abs() <= 10.0), "{smoothed:?}");
        let series: Vec<Series> =
            (0..3).map(|i| Series { name: format!("run {i}"), points: smoothed.clone() }).collect();
        let svg = small_multiples("cpu", "CPU", ("seconds", "%"), &series);
        assert_eq!(svg.matches("<polyline").count(), 3);
        for name in ["run 0", "run 1", "run 2"] {
            assert!(svg.contains(&format!(">{name}</text>")), "{name}");
        }
    }
}
