//! The growth section: one chart of every operation's p99 per window against the
//! resources the target held (the fitted line dashed beside it), the slopes in words, and
//! "not measured" with the reason. Built from the report's `growth` section only.

use std::fmt::Write as _;

use super::escape;
use super::svg::{self, Axis, Frame, Key, Stroke, Swatch};
use crate::report::growth::Growth;
use crate::report::{Report, figures};

const PALETTE: [&str; 7] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#9c755f",
];

/// The section, when the report has one.
pub fn section(out: &mut String, r: &Report) {
    let Some(g) = &r.growth else { return };
    let _ = write!(
        out,
        r#"<section id="growth"><h2>Growth: latency as the target fills</h2><p class="hint">Resources held: {} ({} at the end). Server count: {}. Windows of {:.0} s; a slope needs {} windows with {} samples of an operation.</p>"#,
        escape(&g.resources_detail),
        g.resources_held,
        escape(&g.server_count),
        g.window_s,
        g.min_windows,
        g.min_samples,
    );
    if let Some(reason) = &g.reason {
        let _ = write!(
            out,
            r#"<p class="hint">{}{}</p>"#,
            if g.measured { "" } else { "Not measured: " },
            escape(reason)
        );
    }
    if !g.slopes.is_empty() {
        chart(out, g);
        out.push_str("<ul>");
        for s in &g.slopes {
            let _ = write!(
                out,
                r#"<li class="{}">{}</li>"#,
                if s.significant { "bad" } else { "ok" },
                escape(&s.line)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

fn chart(out: &mut String, g: &Growth) {
    let xs = g.windows.iter().map(|w| w.resources());
    let x_hi = xs.fold(1.0, f64::max);
    let y_hi = g
        .windows
        .iter()
        .flat_map(|w| w.ops.values().map(|o| o.p99_ms))
        .fold(0.01, f64::max);
    let f = Frame {
        width: 760.0,
        height: 280.0,
        left: 56.0,
        right: 20.0,
        top: 30.0,
        bottom: 40.0,
        x: Axis::linear(0.0, x_hi, 5, "resources held", figures::tick),
        y: Axis::linear(0.0, y_hi, 4, "p99 ms", figures::tick),
    };
    f.begin(
        out,
        "growth",
        "p99 per window against the resources held, per operation",
    );
    f.axes(out);
    let mut keys = Vec::new();
    for (i, s) in g.slopes.iter().enumerate().take(PALETTE.len()) {
        let colour = PALETTE[i];
        let points: Vec<(f64, f64)> = g
            .windows
            .iter()
            .filter_map(|w| {
                let o = w.ops.get(&s.op).filter(|o| o.count >= g.min_samples)?;
                Some((w.resources(), o.p99_ms))
            })
            .collect();
        let line = |dash, label: String| Stroke {
            colour,
            width: 1.6,
            dash,
            label,
        };
        f.line(out, &points, &line(None, format!("{} p99", s.op)), f64::MAX);
        if let (Some(first), Some(last)) = (points.first(), points.last()) {
            let fitted = [(first.0, s.p99_from_ms), (last.0, s.p99_to_ms)];
            f.line(out, &fitted, &line(Some("4 3"), s.line.clone()), f64::MAX);
        }
        keys.push(Key {
            colour,
            swatch: Swatch::Line,
            label: s.op.clone(),
        });
    }
    svg::legend(out, f.left, 16.0, f.width, &keys);
    Frame::end(out);
}
