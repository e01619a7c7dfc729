//! The latency charts: one small panel per operation (p50 and p99 over run time, slowest
//! operations first, fault windows shaded) and the HdrHistogram-style percentile
//! distribution (x = percentile on a log scale of 1/(1-p), y = ms on a log scale).
//! Built from `latency_series`, `distribution` and `operations` only.

use std::fmt::Write as _;

use super::charts::{Clock, fault_bands};
use super::escape;
use super::svg::{self, Axis, Frame, Key, Scale, Stroke, Swatch};
use crate::metrics::Point;
use crate::report::{Report, figures};

/// Panels drawn at most; the rest are in the operations table.
pub const MAX_PANELS: usize = 24;
/// Operations drawn in the distribution chart besides `all`.
pub const MAX_DISTRIBUTION_OPS: usize = 7;

const P50: &str = "#4e79a7";
const P99: &str = "#e15759";
const ALL: &str = "#1f2937";
const PALETTE: [&str; MAX_DISTRIBUTION_OPS] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#9c755f",
];

/// Operations with a latency series, slowest p99 first (then by name).
pub fn panel_order(r: &Report) -> Vec<&str> {
    let p99 = |op: &str| {
        r.operations
            .iter()
            .find(|o| o.op == op)
            .map_or(0.0, |o| o.latency_ms.p99)
    };
    let mut ops: Vec<&str> = r.latency_series.keys().map(String::as_str).collect();
    ops.sort_by(|a, b| p99(b).total_cmp(&p99(a)).then_with(|| a.cmp(b)));
    ops
}

/// One value per bin: the count-weighted mean of p50 and the worst p99.
fn binned(points: &[Point], clock: &Clock) -> Vec<(f64, f64, f64)> {
    let mut out: Vec<(f64, f64, f64, u64)> = Vec::new();
    for p in points {
        let bin = ((p.t_s - 1e-9).max(0.0) / clock.bin).floor();
        let t = (bin + 1.0) * clock.bin;
        let weight = p.count.max(1);
        match out.last_mut() {
            Some(last) if last.0 == t => {
                last.1 += p.p50_ms * weight as f64;
                last.2 = last.2.max(p.p99_ms);
                last.3 += weight;
            }
            _ => out.push((t, p.p50_ms * weight as f64, p.p99_ms, weight)),
        }
    }
    out.into_iter()
        .map(|(t, sum, p99, n)| (t.min(clock.span), sum / n as f64, p99))
        .collect()
}

/// The small multiples: one panel per operation.
pub fn panels(out: &mut String, r: &Report, clock: &Clock) {
    let ops = panel_order(r);
    for op in ops.iter().take(MAX_PANELS) {
        let points = r.latency_series.get(*op).map_or(&[][..], Vec::as_slice);
        panel(out, r, clock, op, &binned(points, clock));
    }
    if ops.len() > MAX_PANELS {
        let _ = write!(
            out,
            r#"<p class="hint">{} more operations are in the operations table.</p>"#,
            ops.len() - MAX_PANELS
        );
    }
}

fn panel(out: &mut String, r: &Report, clock: &Clock, op: &str, bins: &[(f64, f64, f64)]) {
    let peak = bins.iter().map(|b| b.2).fold(0.0, f64::max);
    let f = Frame {
        width: 380.0,
        height: 200.0,
        left: 52.0,
        right: 20.0,
        top: 30.0,
        bottom: 36.0,
        x: clock.axis(4),
        y: Axis::linear(0.0, peak.max(0.01), 4, "ms", figures::tick),
    };
    let label = format!("Latency over time of {op}: p50 and p99 per second");
    f.begin(out, "latency", &label);
    fault_bands(out, &f, r, clock, false);
    f.axes(out);
    let gap = clock.bin * 1.5 + 1e-6;
    let p50: Vec<(f64, f64)> = bins.iter().map(|b| (b.0, b.1)).collect();
    let p99: Vec<(f64, f64)> = bins.iter().map(|b| (b.0, b.2)).collect();
    f.line(out, &p50, &stroke(P50, 1.6, format!("{op} p50")), gap);
    f.line(out, &p99, &stroke(P99, 1.6, format!("{op} p99")), gap);
    if bins.is_empty() {
        f.note(out, "no samples");
    }
    let shown: String = if op.chars().count() > 34 {
        op.chars().take(33).chain(std::iter::once('…')).collect()
    } else {
        op.to_owned()
    };
    let _ = write!(
        out,
        r#"<text class="panel-title" x="{}" y="16">{}</text>"#,
        f.left,
        escape(&shown)
    );
    let keys = [key(P50, "p50"), key(P99, "p99")];
    svg::legend(out, f.width - 118.0, 16.0, f.width, &keys);
    Frame::end(out);
}

fn stroke(colour: &'static str, width: f64, label: String) -> Stroke {
    Stroke {
        colour,
        width,
        dash: None,
        label,
    }
}

fn key(colour: &'static str, label: &str) -> Key {
    Key {
        colour,
        swatch: Swatch::Line,
        label: label.to_owned(),
    }
}

/// Where a percentile sits on the x axis: log10(1/(1-p)); 100 (the max) one half-decade
/// past 99.999.
pub fn percentile_x(p: f64) -> f64 {
    if p >= 100.0 {
        return 5.5;
    }
    (100.0 / (100.0 - p.max(0.0))).log10().min(5.5)
}

fn percentile_axis() -> Axis {
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    let mut ticks: Vec<(f64, String)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i as f64, (*l).to_owned()))
        .collect();
    ticks.push((5.5, "max".to_owned()));
    Axis {
        scale: Scale::Linear,
        min: 0.0,
        max: 5.5,
        ticks,
        title: "percentile".to_owned(),
    }
}

/// The operations the distribution chart draws: `all`, then the slowest by p99.
pub fn distribution_series(r: &Report) -> Vec<&str> {
    let mut ops: Vec<&str> = panel_order(r)
        .into_iter()
        .chain(r.distribution.keys().map(String::as_str))
        .filter(|op| *op != "all" && r.distribution.get(*op).is_some_and(|d| !d.is_empty()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    ops.retain(|op| seen.insert(*op));
    ops.truncate(MAX_DISTRIBUTION_OPS);
    if r.distribution.get("all").is_some_and(|d| !d.is_empty()) {
        ops.insert(0, "all");
    }
    ops
}

/// The percentile distribution of `all` and the slowest operations.
pub fn distribution(out: &mut String, r: &Report) {
    let ops = distribution_series(r);
    let values = ops
        .iter()
        .flat_map(|op| r.distribution.get(*op).into_iter().flatten())
        .map(|(_, ms)| *ms)
        .filter(|ms| *ms > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 { (lo, hi) } else { (0.1, 1.0) };
    let keys: Vec<Key> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| match i {
            0 if *op == "all" => key(ALL, "all operations"),
            _ => key(PALETTE[(i + PALETTE.len() - 1) % PALETTE.len()], op),
        })
        .collect();
    let rows = svg::legend_rows(64.0, 1076.0, &keys).max(1);
    let f = Frame {
        width: 1100.0,
        height: 340.0 + rows as f64 * 16.0,
        left: 64.0,
        right: 24.0,
        top: 18.0 + rows as f64 * 16.0,
        bottom: 40.0,
        x: percentile_axis(),
        y: Axis::log(lo, hi, "latency (ms, log scale)", figures::tick),
    };
    let label = "Latency by percentile over the whole load phase (HdrHistogram style)";
    f.begin(out, "distribution", label);
    f.axes(out);
    for (op, k) in ops.iter().zip(&keys).rev() {
        let points: Vec<(f64, f64)> = r
            .distribution
            .get(*op)
            .into_iter()
            .flatten()
            .map(|(p, ms)| (percentile_x(*p), *ms))
            .collect();
        let width = if *op == "all" { 2.8 } else { 1.6 };
        f.line(
            out,
            &points,
            &stroke(k.colour, width, k.label.clone()),
            f64::MAX,
        );
    }
    if ops.is_empty() {
        f.note(out, "no samples");
    }
    svg::legend(out, 64.0, 16.0, 1076.0, &keys);
    Frame::end(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_spread_one_decade_per_nine() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_x(100.0), 5.5);
    }

    #[test]
    fn bins_keep_the_worst_p99_and_weigh_p50_by_count() {
        let clock = Clock {
            span: 600.0,
            bin: 3.0,
        };
        let pt = |t_s: f64, count: u64, p50_ms: f64, p99_ms: f64| Point {
            t_s,
            count,
            p50_ms,
            p99_ms,
            max_ms: p99_ms,
        };
        let b = binned(
            &[
                pt(1.0, 1, 10.0, 20.0),
                pt(2.0, 3, 2.0, 90.0),
                pt(4.0, 1, 5.0, 5.0),
            ],
            &clock,
        );
        assert_eq!(b.len(), 2);
        assert_eq!(b[0], (3.0, 4.0, 90.0));
        assert_eq!(b[1], (6.0, 5.0, 5.0));
    }
}
