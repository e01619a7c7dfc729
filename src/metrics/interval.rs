//! Latency over time: each operation's histogram of the last interval, rolled once a
//! second into a compact [`Point`] for the report's charts and handed out whole for the
//! HdrHistogram interval logs; and the percentile distribution of a whole histogram.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Metrics, histogram};

/// One operation over one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// End of the interval, seconds since the run started.
    pub t_s: f64,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// An interval's histogram of one operation, for the interval log.
pub struct Rolled {
    pub op: String,
    pub histogram: Histogram<u64>,
}

impl Metrics {
    /// Closes the interval ending `end_us` after the run start: records a point per
    /// operation that had samples and returns those histograms (now reset).
    pub fn roll(&mut self, end_us: u64) -> Vec<Rolled> {
        let mut out = Vec::new();
        for (op, stats) in &mut self.ops {
            if stats.interval.is_empty() {
                continue;
            }
            let h = std::mem::replace(&mut stats.interval, histogram());
            stats.points.push(Point {
                t_s: end_us as f64 / 1e6,
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
            });
            out.push(Rolled {
                op: op.clone(),
                histogram: h,
            });
        }
        out
    }

    /// Every operation's points over time.
    pub fn points(&self) -> impl Iterator<Item = (&str, &[Point])> {
        self.ops
            .iter()
            .map(|(op, s)| (op.as_str(), s.points.as_slice()))
    }

    /// The whole run's histogram of one operation.
    pub fn whole(&self, op: &str) -> Option<&Histogram<u64>> {
        self.ops.get(op).map(|s| &s.latency)
    }
}

/// Percentiles HdrHistogram plots use (log-spaced toward the tail).
const PERCENTILES: [f64; 13] = [
    0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

/// `(percentile, latency ms)` pairs of a histogram, for the distribution chart.
pub fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    PERCENTILES
        .iter()
        .map(|p| (*p, h.value_at_quantile(p / 100.0) as f64 / 1000.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Sample;
    use crate::vocab::interaction::{Outcome, Phase};

    #[test]
    fn rolling_makes_one_point_per_busy_interval_and_resets() {
        let mut m = Metrics::new();
        for i in 1..=10u64 {
            m.record(&Sample {
                op: "read Patient".into(),
                outcome: Outcome::Ok,
                error: None,
                at_us: i * 1000,
                latency_us: i * 1000,
                phase: Phase::Load,
                group: None,
            });
        }
        let rolled = m.roll(1_000_000);
        assert_eq!(rolled.len(), 1);
        assert_eq!(rolled[0].histogram.len(), 10);
        assert!(
            m.roll(2_000_000).is_empty(),
            "an idle interval has no point"
        );
        let (_, points) = m.points().next().unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].count, 10);
        assert!((points[0].max_ms - 10.0).abs() < 0.01);
        let d = distribution(m.whole("read Patient").unwrap());
        assert_eq!(d.first().map(|p| p.0), Some(0.0));
        assert!(d.windows(2).all(|w| w[0].1 <= w[1].1), "monotone");
    }
}
