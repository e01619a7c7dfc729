//! Growth curves: each operation's p99 and throughput per window of the run, against the
//! number of resources the target held then (as the harness counts them: its acknowledged
//! creates), and the least-squares slope of those points. Windows are built from the
//! per-second interval histograms the collector rolls, so memory is one histogram per
//! operation for the open window plus a few numbers per closed one. Pure arithmetic; uses
//! nothing of the crate beyond its own `metrics` parent.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::histogram;

/// Fewest samples of an operation in a window for its p99 there to count.
pub const MIN_SAMPLES: u64 = 10;

/// Fewest windows a slope is fitted over; fewer: not measured.
pub const MIN_WINDOWS: usize = 5;

/// The resource unit slopes are stated in.
pub const PER: f64 = 100_000.0;

/// One closed window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Run clock, seconds.
    pub from_s: f64,
    pub to_s: f64,
    /// Resources held at the window's start and end (acknowledged creates so far).
    pub resources_from: u64,
    pub resources_to: u64,
    /// Per operation with samples in the window.
    pub ops: BTreeMap<String, OpWindow>,
}

impl Window {
    /// The x of this window: the resources held midway through it.
    pub fn resources(&self) -> f64 {
        (self.resources_from + self.resources_to) as f64 / 2.0
    }
}

/// One operation in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpWindow {
    pub count: u64,
    pub p99_ms: f64,
    /// Completions per second over the window.
    pub throughput: f64,
}

/// The windows being built during a run.
pub struct Growth {
    window_us: u64,
    from_us: u64,
    resources_from: u64,
    resources: u64,
    open: BTreeMap<String, Histogram<u64>>,
    closed: Vec<Window>,
}

impl Growth {
    /// Windows of `window` (at least a second), from the run clock's zero.
    pub fn new(window: Duration) -> Growth {
        Growth {
            window_us: (window.as_micros() as u64).max(1_000_000),
            from_us: 0,
            resources_from: 0,
            resources: 0,
            open: BTreeMap::new(),
            closed: Vec::new(),
        }
    }

    /// `n` more resources are held (acknowledged creates).
    pub fn wrote(&mut self, n: u64) {
        self.resources += n;
    }

    /// Resources counted so far.
    pub fn resources(&self) -> u64 {
        self.resources
    }

    /// Adds an interval histogram of `op` to the open window.
    pub fn absorb(&mut self, op: &str, h: &Histogram<u64>) {
        let entry = match self.open.get_mut(op) {
            Some(e) => e,
            None => self.open.entry(op.to_owned()).or_insert_with(histogram),
        };
        let _ = entry.add(h);
    }

    /// Closes the open window when `now_us` reached its end.
    pub fn tick(&mut self, now_us: u64) {
        if now_us >= self.from_us + self.window_us {
            self.close(now_us);
        }
    }

    /// Closes the last window (kept when it is at least half a window long) and hands
    /// back every window that had samples.
    pub fn finish(mut self, now_us: u64) -> Vec<Window> {
        if now_us.saturating_sub(self.from_us) * 2 >= self.window_us {
            self.close(now_us);
        }
        self.closed
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_micros(self.window_us)
    }

    fn close(&mut self, now_us: u64) {
        let secs = (now_us - self.from_us) as f64 / 1e6;
        let ops: BTreeMap<String, OpWindow> = std::mem::take(&mut self.open)
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(op, h)| {
                let w = OpWindow {
                    count: h.len(),
                    p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                    throughput: h.len() as f64 / secs.max(1e-9),
                };
                (op, w)
            })
            .collect();
        if !ops.is_empty() {
            self.closed.push(Window {
                from_s: self.from_us as f64 / 1e6,
                to_s: now_us as f64 / 1e6,
                resources_from: self.resources_from,
                resources_to: self.resources,
                ops,
            });
        }
        self.from_us = now_us;
        self.resources_from = self.resources;
    }
}

/// A straight line fitted by least squares, with the standard error of its slope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope (`None` with fewer than three points or no spread).
    pub slope_se: Option<f64>,
    pub points: usize,
}

/// Least squares over `(x, y)`; `None` with fewer than two points or no spread in x.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let slope_se = (n > 2).then(|| {
        let sse: f64 = points
            .iter()
            .map(|p| (p.1 - intercept - slope * p.0).powi(2))
            .sum();
        (sse / (nf - 2.0) / sxx).sqrt()
    });
    Some(Fit {
        slope,
        intercept,
        slope_se,
        points: n,
    })
}

/// `(x, y)` points.
pub type Points = Vec<(f64, f64)>;

/// One operation's `(resources, p99 ms)` and `(resources, throughput)` points: the windows
/// where it had at least [`MIN_SAMPLES`] samples.
pub fn points(windows: &[Window], op: &str) -> (Points, Points) {
    windows
        .iter()
        .filter_map(|w| {
            let o = w.ops.get(op).filter(|o| o.count >= MIN_SAMPLES)?;
            Some(((w.resources(), o.p99_ms), (w.resources(), o.throughput)))
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn a_line_is_fitted_exactly_and_noise_has_an_error() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        let f = fit(&line).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-9 && (f.intercept - 3.0).abs() < 1e-9);
        assert!(f.slope_se.unwrap() < 1e-9);
        let noisy: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let f = fit(&noisy).unwrap();
        assert!(f.slope.abs() < f.slope_se.unwrap() * 2.0, "{f:?}");
        assert!(fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none(), "no spread in x");
    }

    #[test]
    fn windows_close_on_time_and_carry_the_resources_held() {
        let mut g = Growth::new(Duration::from_secs(2));
        for s in 1..=7u64 {
            g.wrote(100);
            g.absorb("read Patient", &hist(&[s * 1000; 20]));
            g.tick(s * 1_000_000);
        }
        let w = g.finish(7_000_000);
        // Windows end at 2, 4, 6 s; the last second is half a window: kept.
        assert_eq!(w.len(), 4);
        assert!(
            Growth::new(Duration::from_secs(4))
                .finish(1_000_000)
                .is_empty()
        );
        assert_eq!((w[0].resources_from, w[0].resources_to), (0, 200));
        assert_eq!(w[1].resources(), 300.0);
        let op = &w[2].ops["read Patient"];
        assert_eq!(op.count, 40);
        assert!((op.throughput - 20.0).abs() < 1e-9);
        let (p99, _) = points(&w, "read Patient");
        let f = fit(&p99).unwrap();
        assert!(f.slope > 0.0, "p99 rises with the resources held: {f:?}");
    }
}
