//! Latency and throughput: one HdrHistogram per operation (`create Observation`), outcome
//! and error-class counts, a per-second time series, and growth curves (`growth`). Owned by the single collector
//! task; workers never touch it. Uses `vocab` (outcomes, phases, error
//! classes) only.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::vocab::interaction::{ErrorClass, Outcome, Phase};

mod absorb;
pub mod growth;
pub mod interval;
pub use interval::{Point, distribution};

/// Highest latency tracked exactly: one hour, in microseconds.
const MAX_US: u64 = 3_600_000_000;

/// One completed interaction, as the collector sees it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// `create Observation`, `search Patient`, …
    pub op: String,
    pub outcome: Outcome,
    pub error: Option<ErrorClass>,
    /// Completion time, µs since the run started.
    pub at_us: u64,
    pub latency_us: u64,
    /// Read-back samples are kept apart from the load phase's.
    pub phase: Phase,
    /// The user group (its index in the scenario), when the scenario has groups.
    pub group: Option<u16>,
}

/// Everything measured so far.
pub struct Metrics {
    ops: BTreeMap<String, OpStats>,
    /// Per-second buckets: index = second of the run.
    series: Vec<Second>,
}

struct OpStats {
    latency: Histogram<u64>,
    /// Since the last [`Metrics::roll`].
    interval: Histogram<u64>,
    /// One point per rolled interval that had samples.
    points: Vec<Point>,
    ok: u64,
    fail: u64,
    info: u64,
    errors: BTreeMap<ErrorClass, u64>,
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Error classes seen in this second.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<ErrorClass, u64>,
}

/// One second of an open-model run: encounter starts the rate plan offered, the starts
/// users began, and the starts dropped because no user was free.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateSecond {
    /// Second of the run clock.
    pub t_s: u64,
    pub offered: u64,
    pub started: u64,
    pub dropped: u64,
}

/// The summary of one operation, as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    pub op: String,
    pub count: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<ErrorClass, u64>,
    pub latency_ms: Percentiles,
    /// Completions per second over the measured time.
    pub throughput: f64,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            ops: BTreeMap::new(),
            series: Vec::new(),
        }
    }

    pub fn record(&mut self, s: &Sample) {
        let stats = match self.ops.get_mut(&s.op) {
            Some(stats) => stats,
            None => self.ops.entry(s.op.clone()).or_insert_with(OpStats::new),
        };
        // Latencies past an hour are clamped, never dropped.
        let _ = stats.latency.record(s.latency_us.clamp(1, MAX_US));
        let _ = stats.interval.record(s.latency_us.clamp(1, MAX_US));
        let second = (s.at_us / 1_000_000) as usize;
        if self.series.len() <= second {
            self.series.resize_with(second + 1, Second::default);
        }
        let bucket = &mut self.series[second];
        match s.outcome {
            Outcome::Ok => {
                stats.ok += 1;
                bucket.ok += 1;
            }
            Outcome::Fail => {
                stats.fail += 1;
                bucket.fail += 1;
            }
            Outcome::Info => {
                stats.info += 1;
                bucket.info += 1;
            }
        }
        if let Some(class) = s.error {
            *stats.errors.entry(class).or_default() += 1;
            *bucket.errors.entry(class).or_default() += 1;
        }
    }

    /// Per-operation summaries; throughput over `elapsed_s` seconds.
    pub fn summaries(&self, elapsed_s: f64) -> Vec<OpSummary> {
        self.ops
            .iter()
            .map(|(op, s)| s.summary(op, elapsed_s))
            .collect()
    }

    /// All operations together.
    pub fn total(&self, elapsed_s: f64) -> OpSummary {
        let mut all = OpStats::new();
        for s in self.ops.values() {
            let _ = all.latency.add(&s.latency);
            all.ok += s.ok;
            all.fail += s.fail;
            all.info += s.info;
            for (k, v) in &s.errors {
                *all.errors.entry(*k).or_default() += v;
            }
        }
        all.summary("all", elapsed_s)
    }

    /// The `(percentile, ms)` distribution of every operation, and of `all` together.
    pub fn distributions(&self) -> BTreeMap<String, Vec<(f64, f64)>> {
        let mut all = histogram();
        let mut out = BTreeMap::new();
        for (op, s) in &self.ops {
            let _ = all.add(&s.latency);
            out.insert(op.clone(), distribution(&s.latency));
        }
        out.insert("all".to_owned(), distribution(&all));
        out
    }

    /// The latency at `percentile` (0–100] of one operation, or of `all` together, in
    /// milliseconds; `None` without samples.
    pub fn percentile(&self, op: &str, percentile: f64) -> Option<f64> {
        let q = (percentile / 100.0).clamp(0.0, 1.0);
        let value = if op == "all" {
            let mut all = OpStats::new().latency;
            for s in self.ops.values() {
                let _ = all.add(&s.latency);
            }
            (!all.is_empty()).then(|| all.value_at_quantile(q))
        } else {
            let h = &self.ops.get(op)?.latency;
            (!h.is_empty()).then(|| h.value_at_quantile(q))
        };
        value.map(|us| us as f64 / 1000.0)
    }

    /// The per-second time series.
    pub fn series(&self) -> &[Second] {
        &self.series
    }

    /// The histogram of one operation, for interval logs.
    pub fn histogram(&self, op: &str) -> Option<&Histogram<u64>> {
        self.ops.get(op).map(|s| &s.latency)
    }
}

impl OpStats {
    fn new() -> Self {
        Self {
            latency: histogram(),
            interval: histogram(),
            points: Vec::new(),
            ok: 0,
            fail: 0,
            info: 0,
            errors: BTreeMap::new(),
        }
    }

    fn summary(&self, op: &str, elapsed_s: f64) -> OpSummary {
        let count = self.ok + self.fail + self.info;
        let h = &self.latency;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = if h.is_empty() {
            Percentiles::default()
        } else {
            Percentiles {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p95: ms(h.value_at_quantile(0.95)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            }
        };
        OpSummary {
            op: op.to_owned(),
            count,
            ok: self.ok,
            fail: self.fail,
            info: self.info,
            errors: self.errors.clone(),
            latency_ms,
            throughput: if elapsed_s > 0.0 {
                count as f64 / elapsed_s
            } else {
                0.0
            },
        }
    }
}

/// 3 significant digits, 1 µs to 1 h: auto-resize is off so memory is fixed.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_hist()))
}

/// `Histogram::new(3)` cannot fail for 3 significant digits; this keeps `unwrap` out.
fn unreachable_hist() -> Histogram<u64> {
    Histogram::new_with_max(MAX_US, 2).unwrap_or_else(|_| unreachable!("valid bounds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: &str, outcome: Outcome, at_us: u64, latency_us: u64) -> Sample {
        Sample {
            op: op.into(),
            outcome,
            error: (outcome != Outcome::Ok).then_some(ErrorClass::Io),
            at_us,
            latency_us,
            phase: Phase::Load,
            group: None,
        }
    }

    #[test]
    fn percentiles_and_counts_per_operation() {
        let mut m = Metrics::new();
        for i in 1..=100u64 {
            m.record(&sample("read Patient", Outcome::Ok, i * 10_000, i * 1000));
        }
        m.record(&sample(
            "create Observation",
            Outcome::Info,
            2_500_000,
            5_000,
        ));
        let s = m.summaries(2.0);
        let read = s.iter().find(|s| s.op == "read Patient").unwrap();
        assert_eq!(read.count, 100);
        assert!(
            (read.latency_ms.p50 - 50.0).abs() < 0.1,
            "{}",
            read.latency_ms.p50
        );
        assert!((read.latency_ms.p99 - 99.0).abs() < 0.1);
        assert!((read.latency_ms.max - 100.0).abs() < 0.1);
        assert_eq!(read.throughput, 50.0);
        let total = m.total(2.0);
        assert_eq!((total.ok, total.info), (100, 1));
        assert_eq!(m.series().len(), 3);
        assert_eq!(m.series()[2].info, 1);
        assert_eq!(m.series()[2].errors[&ErrorClass::Io], 1);
    }

    #[test]
    fn an_hour_long_stall_is_clamped_not_lost() {
        let mut m = Metrics::new();
        m.record(&sample("read Patient", Outcome::Info, 0, 10 * MAX_US));
        assert_eq!(m.total(1.0).count, 1);
    }
}
