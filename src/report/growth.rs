//! The growth section: each operation's p99 and throughput per window against the
//! resources the target held, the least-squares slope per operation in words ("search
//! Observation p99 +0.8 ms per 100k resources over 12 windows"), whether the slope is
//! significant, and why growth was not measured when too few windows had samples. Uses
//! `metrics` (the windows and the fit).

use serde::{Deserialize, Serialize};

use crate::metrics::growth::{MIN_SAMPLES, MIN_WINDOWS, PER, Window, fit, points};

/// The least rise of the fitted p99, as a share of where it starts, that makes a slope
/// significant: it at least doubles.
pub const RELATIVE_RISE: f64 = 1.0;

/// The report's `growth` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// True when at least one operation had [`MIN_WINDOWS`] windows to fit a slope over.
    pub measured: bool,
    /// Why growth is not measured (or only partly: operations left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the resource counts come from: `harness` (acknowledged creates the run
    /// made) or `server` (`_summary=count`).
    pub resources_source: String,
    /// What that count includes and leaves out, in words.
    pub resources_detail: String,
    /// Resources counted at the end of the load phase.
    pub resources_held: u64,
    /// Whether the server's own `_summary=count` was sampled, and if not why.
    pub server_count: String,
    pub window_s: f64,
    pub min_windows: u64,
    /// Fewest samples of an operation in a window for the window to count for it.
    pub min_samples: u64,
    pub windows: Vec<Window>,
    pub slopes: Vec<Slope>,
}

/// One operation's fitted growth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slope {
    pub op: String,
    /// Windows fitted over.
    pub windows: u64,
    /// p99 change per 100,000 resources, ms (least squares), with its standard error.
    pub p99_ms_per_100k: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_se: Option<f64>,
    /// p99 the fit gives at the first and the last window's resources.
    pub p99_from_ms: f64,
    pub p99_to_ms: f64,
    /// Throughput change per 100,000 resources, completions per second.
    pub throughput_per_100k: f64,
    /// True when the p99 rise is at least three standard errors and at least 1 ms, and
    /// the fitted p99 at least doubles over the resources observed: a slowdown the run
    /// can stand behind, not noise. (A plain in-process mock sharing two cores with the
    /// harness drifted up 25-58 % over 8 s in about one run of four: a smaller rise is
    /// stated in the slope, and judged by `max_p99_growth`, but not claimed.)
    pub significant: bool,
    /// The slope in words.
    pub line: String,
}

/// Builds the section from the run's windows.
pub fn build(windows: Vec<Window>, window_s: f64, resources_held: u64) -> Growth {
    let mut ops: Vec<String> = windows.iter().flat_map(|w| w.ops.keys().cloned()).collect();
    ops.sort();
    ops.dedup();
    let mut slopes = Vec::new();
    let mut short = Vec::new();
    for op in &ops {
        match slope(&windows, op) {
            Some(s) => slopes.push(s),
            None => short.push(op.as_str()),
        }
    }
    let measured = !slopes.is_empty();
    let reason = if !measured {
        Some(format!(
            "too few windows: a slope needs {MIN_WINDOWS} windows of {window_s:.0} s with at least {MIN_SAMPLES} samples of an operation, and {} windows had samples",
            windows.len()
        ))
    } else if !short.is_empty() {
        Some(format!(
            "fewer than {MIN_WINDOWS} windows with {MIN_SAMPLES} samples: {}",
            short.join(", ")
        ))
    } else {
        None
    };
    Growth {
        measured,
        reason,
        resources_source: "harness".into(),
        resources_detail: "resources the harness's acknowledged creates and conditional creates added during the load phase (a conditional create that matched counts too; transaction entries and what the target held before the run do not)".into(),
        resources_held,
        server_count: "not sampled: this version counts what the harness wrote".into(),
        window_s,
        min_windows: MIN_WINDOWS as u64,
        min_samples: MIN_SAMPLES,
        windows,
        slopes,
    }
}

fn slope(windows: &[Window], op: &str) -> Option<Slope> {
    let (p99, throughput) = points(windows, op);
    if p99.len() < MIN_WINDOWS {
        return None;
    }
    let f = fit(&p99)?;
    let t = fit(&throughput)?;
    let (lo, hi) = p99.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (from, to) = (f.intercept + f.slope * lo, f.intercept + f.slope * hi);
    let rise = to - from;
    let significant = f.slope > 0.0
        && f.slope_se.is_some_and(|se| f.slope >= 3.0 * se)
        && rise >= 1.0
        && rise >= RELATIVE_RISE * from.max(0.0);
    let per = f.slope * PER;
    let line = format!(
        "{op} p99 {per:+.3} ms per 100k resources ({from:.1} → {to:.1} ms over {:.0} → {:.0} resources), throughput {:+.1}/s per 100k, least squares over {} windows{}",
        lo,
        hi,
        t.slope * PER,
        f.points,
        if significant {
            ""
        } else {
            " — not a significant rise"
        }
    );
    Some(Slope {
        op: op.to_owned(),
        windows: f.points as u64,
        p99_ms_per_100k: per,
        p99_se: f.slope_se.map(|se| se * PER),
        p99_from_ms: from,
        p99_to_ms: to,
        throughput_per_100k: t.slope * PER,
        significant,
        line,
    })
}

impl Growth {
    /// The steepest p99 slope of any operation, ms per 100k resources (`None`: none
    /// fitted).
    pub fn steepest(&self) -> Option<&Slope> {
        self.slopes
            .iter()
            .max_by(|a, b| a.p99_ms_per_100k.total_cmp(&b.p99_ms_per_100k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::growth::OpWindow;

    fn windows(p99: impl Fn(u64) -> f64) -> Vec<Window> {
        (0..8u64)
            .map(|i| Window {
                from_s: i as f64,
                to_s: i as f64 + 1.0,
                resources_from: i * 1000,
                resources_to: (i + 1) * 1000,
                ops: [(
                    "search Observation".to_owned(),
                    OpWindow {
                        count: 50,
                        p99_ms: p99(i),
                        throughput: 50.0,
                    },
                )]
                .into(),
            })
            .collect()
    }

    #[test]
    fn a_server_slowing_as_it_fills_has_a_significant_slope() {
        let g = build(windows(|i| 2.0 + 3.0 * i as f64), 1.0, 8000);
        assert!(g.measured);
        let s = &g.slopes[0];
        assert!((s.p99_ms_per_100k - 300.0).abs() < 1e-6, "{s:?}");
        assert!(s.significant, "{}", s.line);
        assert!(
            s.line
                .starts_with("search Observation p99 +300.000 ms per 100k")
        );
    }

    #[test]
    fn a_steady_rise_short_of_doubling_is_stated_not_claimed() {
        // 6.0 -> 9.5 ms, a clean line: well over three standard errors and 1 ms, +58 %.
        let g = build(windows(|i| 6.0 + 0.5 * i as f64), 1.0, 8000);
        let s = &g.slopes[0];
        assert!(s.p99_ms_per_100k > 0.0, "{s:?}");
        assert!(!s.significant, "{}", s.line);
        assert!(s.line.ends_with("not a significant rise"), "{}", s.line);
    }

    #[test]
    fn noise_is_not_a_significant_slope_and_few_windows_are_not_measured() {
        let g = build(windows(|i| if i % 2 == 0 { 2.0 } else { 2.4 }), 1.0, 8000);
        assert!(!g.slopes[0].significant, "{}", g.slopes[0].line);
        let few = build(windows(|_| 2.0).into_iter().take(3).collect(), 1.0, 3000);
        assert!(!few.measured);
        assert!(few.reason.unwrap().contains("too few windows"));
    }
}
