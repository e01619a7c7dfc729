//! Building the metrics of a run from parts measured elsewhere (the shards of a sharded
//! run): interval histograms added losslessly into each operation's whole histogram,
//! outcome counts and per-second buckets summed. No percentile is ever averaged.

use hdrhistogram::Histogram;

use super::{Metrics, OpStats, OpSummary, Point, Second};

impl Metrics {
    /// Adds one interval histogram of `op` ending `end_us` after the run start: into the
    /// operation's whole histogram, and as the point of that interval (intervals are
    /// given in time order, one per operation and interval, already summed across
    /// parts). Returns false when the histogram did not fit (values beyond an hour).
    pub fn absorb_interval(&mut self, op: &str, end_us: u64, h: &Histogram<u64>) -> bool {
        let stats = self.ops.entry(op.to_owned()).or_insert_with(OpStats::new);
        let fitted = stats.latency.add(h).is_ok();
        if !h.is_empty() {
            stats.points.push(Point {
                t_s: end_us as f64 / 1e6,
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
            });
        }
        fitted
    }

    /// Adds an operation's outcome and error counts (the latency is absorbed apart).
    pub fn absorb_counts(&mut self, s: &OpSummary) {
        let stats = self.ops.entry(s.op.clone()).or_insert_with(OpStats::new);
        stats.ok += s.ok;
        stats.fail += s.fail;
        stats.info += s.info;
        for (k, v) in &s.errors {
            *stats.errors.entry(*k).or_default() += v;
        }
    }

    /// Adds one second's counts at `second` of the run.
    pub fn absorb_second(&mut self, second: usize, s: &Second) {
        if self.series.len() <= second {
            self.series.resize_with(second + 1, Second::default);
        }
        let bucket = &mut self.series[second];
        bucket.ok += s.ok;
        bucket.fail += s.fail;
        bucket.info += s.info;
        for (k, v) in &s.errors {
            *bucket.errors.entry(*k).or_default() += v;
        }
    }

    /// Latency samples held for `op` (or for every operation with `all`).
    pub fn samples(&self, op: &str) -> u64 {
        match op {
            "all" => self.ops.values().map(|s| s.latency.len()).sum(),
            _ => self.ops.get(op).map_or(0, |s| s.latency.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Sample;
    use crate::vocab::interaction::{Outcome, Phase};

    #[test]
    fn absorbing_two_halves_equals_recording_the_whole() {
        let mut whole = Metrics::new();
        let mut halves = [Metrics::new(), Metrics::new()];
        for i in 1..=2000u64 {
            let s = Sample {
                op: "read Patient".into(),
                outcome: Outcome::Ok,
                error: None,
                at_us: i * 100,
                latency_us: (i * 7919) % 50_000 + 1,
                phase: Phase::Load,
                group: None,
            };
            whole.record(&s);
            halves[(i % 2) as usize].record(&s);
        }
        let mut merged = Metrics::new();
        for h in &mut halves {
            let summary = h.summaries(1.0).remove(0);
            let rolled = h.roll(1_000_000);
            assert!(merged.absorb_interval("read Patient", 1_000_000, &rolled[0].histogram));
            merged.absorb_counts(&summary);
        }
        assert_eq!(merged.summaries(1.0), whole.summaries(1.0));
        assert_eq!(merged.samples("all"), 2000);
    }
}
