//! SVG plotting primitives for the HTML report: linear and log axes with nice ticks, a
//! plot frame with gridlines, tick labels and axis titles, line paths with gaps, bars,
//! shaded bands and legends. Pure string building; knows nothing of reports.

use std::fmt::Write as _;

use super::escape;

/// How values map onto an axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear,
    Log,
}

/// One axis: its domain, ticks and title.
#[derive(Clone, Debug)]
pub struct Axis {
    pub scale: Scale,
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<(f64, String)>,
    pub title: String,
}

/// At most this many ticks on any axis, whatever the data.
const MAX_TICKS: usize = 40;

impl Axis {
    /// A linear axis covering `lo..=hi` with about `n` ticks at round values.
    pub fn linear(lo: f64, hi: f64, n: usize, title: &str, label: impl Fn(f64) -> String) -> Axis {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
        let step = nice_step(hi - lo, n);
        let min = (lo / step).floor() * step;
        let max = (hi / step).ceil() * step;
        let count = (((max - min) / step).round() as usize).min(MAX_TICKS);
        let ticks = (0..=count)
            .map(|k| min + k as f64 * step)
            .map(|v| (v, label(v)))
            .collect();
        Axis {
            scale: Scale::Linear,
            min,
            max,
            ticks,
            title: title.to_owned(),
        }
    }

    /// A log axis covering `lo..=hi` (both > 0) in whole decades; 2 and 5 ticks too when
    /// the range is short.
    pub fn log(lo: f64, hi: f64, title: &str, label: impl Fn(f64) -> String) -> Axis {
        let lo = lo.max(1e-6);
        let hi = hi.max(lo * 10.0);
        let first = lo.log10().floor() as i32;
        let last = (hi.log10().ceil() as i32).max(first + 1);
        let short = last - first <= 3;
        let mut ticks = Vec::new();
        for d in first..=last {
            let base = 10f64.powi(d);
            let steps: &[f64] = if short && d < last {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            ticks.extend(steps.iter().map(|m| (m * base, label(m * base))));
        }
        ticks.truncate(MAX_TICKS);
        Axis {
            scale: Scale::Log,
            min: 10f64.powi(first),
            max: 10f64.powi(last),
            ticks,
            title: title.to_owned(),
        }
    }

    /// Where `v` falls, 0 at `min` and 1 at `max`, clamped.
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (v - self.min) / (self.max - self.min),
            Scale::Log => {
                let v = v.max(self.min);
                (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) giving about `n` intervals.
pub fn nice_step(range: f64, n: usize) -> f64 {
    let raw = range.abs().max(1e-9) / n.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = match norm {
        x if x <= 1.0 => 1.0,
        x if x <= 2.0 => 2.0,
        x if x <= 2.5 => 2.5,
        x if x <= 5.0 => 5.0,
        _ => 10.0,
    };
    nice * magnitude
}

/// A chart: its pixel size, margins and two axes.
#[derive(Clone, Debug)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub x: Axis,
    pub y: Axis,
}

impl Frame {
    pub fn px(&self, v: f64) -> f64 {
        self.left + self.x.fraction(v) * (self.width - self.left - self.right)
    }

    pub fn py(&self, v: f64) -> f64 {
        self.height - self.bottom - self.y.fraction(v) * (self.height - self.top - self.bottom)
    }

    /// Opens the `<svg>`: `chart` names it for tests and styles, `label` is its text
    /// alternative.
    pub fn begin(&self, out: &mut String, chart: &str, label: &str) {
        let _ = write!(
            out,
            r#"<svg class="chart" data-chart="{chart}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{l}" preserveAspectRatio="xMidYMid meet"><title>{l}</title>"#,
            chart = escape(chart),
            w = self.width,
            h = self.height,
            l = escape(label),
        );
    }

    pub fn end(out: &mut String) {
        out.push_str("</svg>");
    }

    /// Gridlines, tick labels, the axis lines and their titles.
    pub fn axes(&self, out: &mut String) {
        let (x0, x1) = (self.left, self.width - self.right);
        let (y0, y1) = (self.top, self.height - self.bottom);
        out.push_str(r#"<g class="grid">"#);
        for (v, _) in &self.y.ticks {
            let y = self.py(*v);
            let _ = write!(
                out,
                r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}"/>"#
            );
        }
        out.push_str(r#"</g><g class="ticks">"#);
        for (v, text) in &self.y.ticks {
            let y = self.py(*v);
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 6.0,
                y + 3.5,
                escape(text)
            );
        }
        for (v, text) in &self.x.ticks {
            let x = self.px(*v);
            let _ = write!(
                out,
                r#"<line class="tick" x1="{x:.1}" y1="{y1:.1}" x2="{x:.1}" y2="{:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                y1 + 4.0,
                y1 + 16.0,
                escape(text)
            );
        }
        let _ = write!(
            out,
            r#"</g><path class="axis" d="M{x0:.1} {y0:.1}V{y1:.1}H{x1:.1}"/><text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="axis-title" transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            self.height - 4.0,
            escape(&self.x.title),
            (y0 + y1) / 2.0,
            escape(&self.y.title),
        );
    }

    /// A line through `points` (data coordinates), broken where consecutive x values are
    /// more than `max_gap` apart.
    pub fn line(&self, out: &mut String, points: &[(f64, f64)], style: &Stroke, max_gap: f64) {
        let mut d = String::new();
        let mut last: Option<f64> = None;
        for (x, y) in points {
            let cmd = match last {
                Some(prev) if x - prev <= max_gap => 'L',
                _ => 'M',
            };
            let _ = write!(d, "{cmd}{:.1} {:.1}", self.px(*x), self.py(*y));
            last = Some(*x);
        }
        if d.is_empty() {
            return;
        }
        let dash = style
            .dash
            .map(|s| format!(r#" stroke-dasharray="{s}""#))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<path class="series" d="{d}" stroke="{}" stroke-width="{}"{dash}><title>{}</title></path>"#,
            style.colour,
            style.width,
            escape(&style.label)
        );
    }

    /// A filled rectangle between data coordinates, with a tooltip.
    pub fn rect(&self, out: &mut String, x: (f64, f64), y: (f64, f64), fill: &str, tip: &str) {
        let (left, right) = (self.px(x.0), self.px(x.1));
        let (top, bottom) = (self.py(y.1), self.py(y.0));
        let _ = write!(
            out,
            r#"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"#,
            (right - left).max(0.5),
            (bottom - top).max(0.0),
            escape(tip)
        );
    }

    /// A full-height shaded band from `x0` to `x1`, with a tooltip.
    pub fn band(&self, out: &mut String, x0: f64, x1: f64, class: &str, tip: &str) {
        let (left, right) = (self.px(x0), self.px(x1));
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{left:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
            self.top,
            (right - left).max(1.0),
            self.height - self.top - self.bottom,
            escape(tip)
        );
    }

    /// A label just inside the top left of a band starting at `x0`.
    pub fn band_label(&self, out: &mut String, x0: f64, text: &str) {
        let _ = write!(
            out,
            r#"<text class="band-label" x="{:.1}" y="{:.1}">{}</text>"#,
            self.px(x0) + 4.0,
            self.top + 12.0,
            escape(text)
        );
    }

    /// A note in the middle of the plot area (e.g. "no errors recorded").
    pub fn note(&self, out: &mut String, text: &str) {
        let _ = write!(
            out,
            r#"<text class="note" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (self.left + self.width - self.right) / 2.0,
            (self.top + self.height - self.bottom) / 2.0,
            escape(text)
        );
    }
}

/// How a line is drawn and named.
#[derive(Clone, Debug)]
pub struct Stroke {
    pub colour: &'static str,
    pub width: f64,
    pub dash: Option<&'static str>,
    pub label: String,
}

/// What a legend entry shows next to its label.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Swatch {
    Line,
    Dashed,
    Box,
    Band,
}

/// One legend entry.
#[derive(Clone, Debug)]
pub struct Key {
    pub colour: &'static str,
    pub swatch: Swatch,
    pub label: String,
}

/// Approximate width of `text` at the legend's 11 px font.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.4
}

/// Where each key goes when laid out left to right from `x`, wrapping at `max_x`: its
/// x and its row.
fn layout(x: f64, max_x: f64, keys: &[Key]) -> Vec<(f64, usize)> {
    let (mut cx, mut row) = (x, 0);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let w = 22.0 + text_width(&key.label) + 14.0;
        if cx + w > max_x && cx > x {
            cx = x;
            row += 1;
        }
        out.push((cx, row));
        cx += w;
    }
    out
}

/// Rows a legend takes between `x` and `max_x`.
pub fn legend_rows(x: f64, max_x: f64, keys: &[Key]) -> usize {
    layout(x, max_x, keys).last().map_or(0, |(_, row)| row + 1)
}

/// Draws the legend from (`x`, `y`) (the first row's baseline), wrapping at `max_x`,
/// rows 16 px apart.
pub fn legend(out: &mut String, x: f64, y: f64, max_x: f64, keys: &[Key]) {
    out.push_str(r#"<g class="legend">"#);
    for (key, (cx, row)) in keys.iter().zip(layout(x, max_x, keys)) {
        let cy = y + row as f64 * 16.0;
        let mid = cy - 4.0;
        let swatch = match key.swatch {
            Swatch::Line | Swatch::Dashed => format!(
                r#"<line x1="{cx:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="{}" stroke-width="2.5"{}/>"#,
                cx + 16.0,
                key.colour,
                if key.swatch == Swatch::Dashed {
                    r#" stroke-dasharray="4 3""#
                } else {
                    ""
                }
            ),
            Swatch::Box => format!(
                r#"<rect x="{cx:.1}" y="{:.1}" width="12" height="10" fill="{}"/>"#,
                cy - 9.0,
                key.colour
            ),
            Swatch::Band => format!(
                r#"<rect class="fault" x="{cx:.1}" y="{:.1}" width="16" height="10"/>"#,
                cy - 9.0
            ),
        };
        let _ = write!(
            out,
            r#"{swatch}<text x="{:.1}" y="{cy:.1}">{}</text>"#,
            cx + 22.0,
            escape(&key.label)
        );
    }
    out.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_axes_land_on_round_numbers_covering_the_data() {
        let a = Axis::linear(0.0, 87.0, 5, "t", |v| format!("{v}"));
        assert_eq!((a.min, a.max), (0.0, 100.0));
        let values: Vec<f64> = a.ticks.iter().map(|t| t.0).collect();
        assert_eq!(values, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(a.fraction(50.0), 0.5);
        assert_eq!(a.fraction(500.0), 1.0, "clamped");
        let flat = Axis::linear(0.0, 0.0, 4, "t", |v| format!("{v}"));
        assert!(flat.max > flat.min, "an all-zero series still has an axis");
    }

    #[test]
    fn log_axes_span_whole_decades() {
        let a = Axis::log(0.7, 340.0, "ms", |v| format!("{v}"));
        assert_eq!((a.min, a.max), (0.1, 1000.0));
        assert!((a.fraction(10.0) - 2.0 / 4.0).abs() < 1e-9);
        assert_eq!(a.ticks.len(), 5, "decades only on a long range");
        let short = Axis::log(0.7, 34.0, "ms", |v| format!("{v}"));
        assert!(
            short.ticks.iter().any(|t| (t.0 - 0.5).abs() < 1e-12),
            "2-5 ticks on a short range"
        );
        assert_eq!(a.fraction(0.0), 0.0, "zero clamps to the bottom");
    }

    #[test]
    fn lines_break_at_gaps_and_frames_map_into_the_plot_area() {
        let f = Frame {
            width: 200.0,
            height: 100.0,
            left: 20.0,
            right: 10.0,
            top: 10.0,
            bottom: 20.0,
            x: Axis::linear(0.0, 10.0, 5, "x", |v| format!("{v}")),
            y: Axis::linear(0.0, 10.0, 5, "y", |v| format!("{v}")),
        };
        assert_eq!((f.px(0.0), f.px(10.0)), (20.0, 190.0));
        assert_eq!((f.py(0.0), f.py(10.0)), (80.0, 10.0));
        let mut out = String::new();
        let stroke = Stroke {
            colour: "#000",
            width: 1.0,
            dash: None,
            label: "<s>".into(),
        };
        f.line(
            &mut out,
            &[(0.0, 1.0), (1.0, 2.0), (5.0, 3.0)],
            &stroke,
            1.5,
        );
        assert_eq!(out.matches('M').count(), 2, "{out}");
        assert!(out.contains("&lt;s&gt;"));
    }
}
