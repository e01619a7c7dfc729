//! Baseline comparison of two reports: p99 per operation and of `all`, and overall
//! throughput, judged against allowed margins (`p99=10%,throughput=5%` by default); p50
//! and error rate as informative deltas. Pure: reports in, a [`Comparison`] out; the
//! caller prints it and decides what a regression means.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;

use super::{Report, figures};
use crate::metrics::OpSummary;

/// The regressions tolerated, in percent of the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Margins {
    /// p99 may rise by this much.
    pub p99_pct: f64,
    /// Throughput may fall by this much.
    pub throughput_pct: f64,
}

impl Default for Margins {
    fn default() -> Self {
        Margins {
            p99_pct: 10.0,
            throughput_pct: 5.0,
        }
    }
}

/// Why a `--max-regression` value was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum MarginError {
    #[error("no margin given: expected e.g. p99=10%,throughput=5%")]
    Empty,
    #[error("`{0}`: expected METRIC=PERCENT, e.g. p99=10%")]
    Syntax(String),
    #[error("unknown metric `{0}`: expected p99 or throughput")]
    UnknownMetric(String),
    #[error("`{0}`: not a percentage (a number from 0 to 100, e.g. 10% or 12.5)")]
    BadPercent(String),
    #[error("`{0}` is given twice")]
    Twice(String),
}

impl FromStr for Margins {
    type Err = MarginError;

    /// `p99=10%,throughput=5%`; a metric left out keeps its default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(MarginError::Empty);
        }
        let mut m = Margins::default();
        let mut seen = BTreeSet::new();
        for part in s.split(',').map(str::trim) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| MarginError::Syntax(part.to_owned()))?;
            let (key, value) = (key.trim(), value.trim());
            let pct: f64 = value
                .strip_suffix('%')
                .unwrap_or(value)
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && (0.0..=100.0).contains(p))
                .ok_or_else(|| MarginError::BadPercent(part.to_owned()))?;
            if !seen.insert(key.to_owned()) {
                return Err(MarginError::Twice(key.to_owned()));
            }
            match key {
                "p99" => m.p99_pct = pct,
                "throughput" => m.throughput_pct = pct,
                other => return Err(MarginError::UnknownMetric(other.to_owned())),
            }
        }
        Ok(m)
    }
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    P99,
    P50,
    Throughput,
    ErrorRate,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::P99 => "p99",
            Metric::P50 => "p50",
            Metric::Throughput => "throughput",
            Metric::ErrorRate => "error rate",
        }
    }

    fn value(self, v: f64) -> String {
        match self {
            Metric::P99 | Metric::P50 => format!("{} ms", figures::ms(v)),
            Metric::Throughput => format!("{}/s", figures::rate(v)),
            Metric::ErrorRate => figures::percent(v),
        }
    }

    fn delta(self, d: f64) -> String {
        let sign = if d > 0.0 { "+" } else { "" };
        match self {
            Metric::P99 | Metric::P50 => format!("{sign}{} ms", figures::ms(d)),
            Metric::Throughput => format!("{sign}{}/s", figures::rate(d)),
            Metric::ErrorRate => format!("{sign}{:.3} pp", d * 100.0),
        }
    }
}

/// The judgement of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Within the margin.
    Ok,
    /// Worse than the margin allows.
    Regressed,
    /// Shown, not judged.
    Info,
    /// The baseline is zero: no relative change to judge.
    NotComparable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Regressed => "REGRESSED",
            Status::Info => "info",
            Status::NotComparable => "n/a",
        }
    }
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// An operation or `all`.
    pub subject: String,
    pub metric: Metric,
    pub baseline: f64,
    pub current: f64,
    /// The allowed change in percent (`+10` for p99, `-5` for throughput); `None` when
    /// the row is informative.
    pub allowed_pct: Option<f64>,
    pub status: Status,
}

impl Row {
    /// The relative change in percent; `None` when the baseline is zero.
    pub fn delta_pct(&self) -> Option<f64> {
        (self.baseline != 0.0).then(|| (self.current - self.baseline) / self.baseline * 100.0)
    }
}

/// Which report an operation is missing from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Baseline,
    Current,
}

/// An operation only one report has: listed, never a failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Missing {
    pub op: String,
    pub only_in: Side,
}

/// The comparison of a current report with its baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub margins: Margins,
    pub rows: Vec<Row>,
    pub missing: Vec<Missing>,
}

/// Relative slack so that a figure exactly on the margin is within it.
const EPSILON: f64 = 1e-9;

fn p99_row(subject: &str, base: f64, cur: f64, margins: &Margins) -> Row {
    let status = if base <= 0.0 {
        Status::NotComparable
    } else if cur > base * (1.0 + margins.p99_pct / 100.0) * (1.0 + EPSILON) {
        Status::Regressed
    } else {
        Status::Ok
    };
    Row {
        subject: subject.to_owned(),
        metric: Metric::P99,
        baseline: base,
        current: cur,
        allowed_pct: Some(margins.p99_pct),
        status,
    }
}

fn info_row(subject: &str, metric: Metric, baseline: f64, current: f64) -> Row {
    Row {
        subject: subject.to_owned(),
        metric,
        baseline,
        current,
        allowed_pct: None,
        status: Status::Info,
    }
}

fn error_rate(o: &OpSummary) -> f64 {
    if o.count == 0 {
        0.0
    } else {
        (o.fail + o.info) as f64 / o.count as f64
    }
}

/// The overall rows: throughput, p99, p50 and error rate of `all`.
fn overall(b: &Report, c: &Report, margins: &Margins) -> Vec<Row> {
    let (bt, ct) = (b.summary.throughput, c.summary.throughput);
    let status = if bt <= 0.0 {
        Status::NotComparable
    } else if ct < bt * (1.0 - margins.throughput_pct / 100.0) * (1.0 - EPSILON) {
        Status::Regressed
    } else {
        Status::Ok
    };
    let (ba, ca) = (&b.summary.all, &c.summary.all);
    vec![
        Row {
            subject: "all".to_owned(),
            metric: Metric::Throughput,
            baseline: bt,
            current: ct,
            allowed_pct: Some(-margins.throughput_pct),
            status,
        },
        p99_row("all", ba.latency_ms.p99, ca.latency_ms.p99, margins),
        info_row("all", Metric::P50, ba.latency_ms.p50, ca.latency_ms.p50),
        info_row("all", Metric::ErrorRate, error_rate(ba), error_rate(ca)),
    ]
}

/// Compares `current` with `baseline`.
pub fn compare(baseline: &Report, current: &Report, margins: &Margins) -> Comparison {
    let mut rows = overall(baseline, current, margins);
    let mut missing = Vec::new();
    let ops: BTreeSet<&str> = baseline
        .operations
        .iter()
        .chain(&current.operations)
        .map(|o| o.op.as_str())
        .collect();
    let find = |r: &'_ Report, op: &str| r.operations.iter().find(|o| o.op == op).cloned();
    for op in ops {
        match (find(baseline, op), find(current, op)) {
            (Some(b), Some(c)) => {
                rows.push(p99_row(op, b.latency_ms.p99, c.latency_ms.p99, margins));
                rows.push(info_row(
                    op,
                    Metric::P50,
                    b.latency_ms.p50,
                    c.latency_ms.p50,
                ));
            }
            (Some(_), None) => missing.push(Missing {
                op: op.to_owned(),
                only_in: Side::Baseline,
            }),
            (None, _) => missing.push(Missing {
                op: op.to_owned(),
                only_in: Side::Current,
            }),
        }
    }
    Comparison {
        baseline: baseline.run.id.clone(),
        current: current.run.id.clone(),
        margins: *margins,
        rows,
        missing,
    }
}

impl Comparison {
    /// Whether any judged figure is worse than its margin allows.
    pub fn regressed(&self) -> bool {
        self.regressions().next().is_some()
    }

    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.status == Status::Regressed)
    }

    /// The table for the terminal, ending with the verdict line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "baseline {} · current {} · allowed: p99 +{} %, throughput -{} %\n",
            self.baseline, self.current, self.margins.p99_pct, self.margins.throughput_pct
        );
        let width = self
            .rows
            .iter()
            .map(|r| r.subject.chars().count())
            .max()
            .unwrap_or(0)
            .max(9);
        let _ = writeln!(
            out,
            "{:<width$}  {:<10}  {:>12}  {:>12}  {:>12}  {:>9}  {:>8}  verdict",
            "operation", "metric", "baseline", "current", "Δ", "Δ%", "allowed"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:<10}  {:>12}  {:>12}  {:>12}  {:>9}  {:>8}  {}",
                r.subject,
                r.metric.as_str(),
                r.metric.value(r.baseline),
                r.metric.value(r.current),
                r.metric.delta(r.current - r.baseline),
                r.delta_pct()
                    .map_or_else(|| "n/a".to_owned(), figures::signed_percent),
                r.allowed_pct
                    .map_or_else(|| "-".to_owned(), |a| format!("{a:+} %")),
                r.status.as_str()
            );
        }
        for m in &self.missing {
            let side = match m.only_in {
                Side::Baseline => "baseline",
                Side::Current => "current",
            };
            let _ = writeln!(out, "only in the {side} report (not compared): {}", m.op);
        }
        let n = self.regressions().count();
        let _ = writeln!(
            out,
            "\n{}",
            if n == 0 {
                "verdict: no regression beyond the allowed margins".to_owned()
            } else {
                format!("verdict: REGRESSED: {n} figure(s) beyond the allowed margins")
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_parse_with_defaults_and_refuse_nonsense() {
        assert_eq!("p99=10%,throughput=5%".parse(), Ok(Margins::default()));
        let m: Margins = "p99 = 25 %".parse().unwrap();
        assert_eq!((m.p99_pct, m.throughput_pct), (25.0, 5.0));
        let m: Margins = "throughput=0,p99=2.5%".parse().unwrap();
        assert_eq!((m.p99_pct, m.throughput_pct), (2.5, 0.0));
        assert_eq!("".parse::<Margins>(), Err(MarginError::Empty));
        assert_eq!(
            "p99".parse::<Margins>(),
            Err(MarginError::Syntax("p99".into()))
        );
        assert!(
            matches!("p95=10%".parse::<Margins>(), Err(MarginError::UnknownMetric(k)) if k == "p95")
        );
        assert!(matches!(
            "p99=-1%".parse::<Margins>(),
            Err(MarginError::BadPercent(_))
        ));
        assert!(matches!(
            "p99=ten".parse::<Margins>(),
            Err(MarginError::BadPercent(_))
        ));
        assert!(matches!(
            "p99=1%,p99=2%".parse::<Margins>(),
            Err(MarginError::Twice(_))
        ));
    }

    #[test]
    fn p99_is_judged_against_its_margin_exactly_on_the_edge_passing() {
        let m = Margins::default();
        assert_eq!(
            p99_row("x", 1.0, 1.1, &m).status,
            Status::Ok,
            "exactly +10 %"
        );
        assert_eq!(p99_row("x", 100.0, 110.5, &m).status, Status::Regressed);
        assert_eq!(
            p99_row("x", 100.0, 50.0, &m).status,
            Status::Ok,
            "faster is fine"
        );
        assert_eq!(p99_row("x", 0.0, 5.0, &m).status, Status::NotComparable);
        assert_eq!(p99_row("x", 100.0, 120.0, &m).delta_pct(), Some(20.0));
    }
}
