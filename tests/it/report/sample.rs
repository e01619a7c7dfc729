//! A fabricated but realistic report: a dozen operations, 60 s of per-second series and
//! latency points, a reset_peer fault window and an open-ended silent-drop window,
//! findings of several kinds (one carrying an HTML injection attempt), SLOs met and not.

use std::collections::BTreeMap;
use std::time::Duration;

use fhirsurge::check::{Finding, Kind, Lag, Stats};
use fhirsurge::history::ErrorClass;
use fhirsurge::metrics::{OpSummary, Percentiles, Point, Second};
use fhirsurge::report::{
    self, FaultWindow, Faults, LoadInfo, Report, RunInfo, SCHEMA, Summary, slo,
};
use fhirsurge::scenario::{LatencySlo, Slo};

pub const SECONDS: usize = 60;
pub const MALICIOUS: &str = "<script>alert('pwned')</script><img src=x onerror=alert(1)>";

/// Operations with their median latency (ms) and share of the traffic.
const OPS: [(&str, f64, f64); 12] = [
    ("conditional_create Patient", 38.0, 0.06),
    ("create Encounter", 31.0, 0.06),
    ("search Patient", 22.0, 0.06),
    ("search Observation", 47.0, 0.12),
    ("read Observation", 9.0, 0.12),
    ("create Observation", 64.0, 0.24),
    ("create Condition", 29.0, 0.06),
    ("create MedicationRequest", 33.0, 0.06),
    ("create DocumentReference", 88.0, 0.06),
    ("create Claim", 41.0, 0.06),
    ("update Encounter", 27.0, 0.06),
    ("read Patient", 7.5, 0.04),
];

fn in_reset_window(t: usize) -> bool {
    (20..35).contains(&t)
}

/// A smooth, deterministic wobble in [0.9, 1.1].
fn wobble(i: usize, salt: usize) -> f64 {
    1.0 + 0.1 * ((i * 7 + salt * 13) as f64 * 0.37).sin()
}

fn series() -> Vec<Second> {
    (0..SECONDS)
        .map(|t| {
            let total = (140.0 * wobble(t, 1)).round() as u64;
            let mut errors = BTreeMap::new();
            let (fail, info) = if in_reset_window(t) {
                errors.insert(ErrorClass::Io, 4 + (t % 3) as u64);
                errors.insert(ErrorClass::Timeout, 1 + (t % 2) as u64);
                (1, 5 + (t % 3) as u64 + (t % 2) as u64)
            } else if t % 17 == 5 {
                errors.insert(ErrorClass::ServerError, 1);
                (0, 1)
            } else {
                (0, 0)
            };
            if fail > 0 {
                errors.insert(ErrorClass::RateLimited, fail);
            }
            Second {
                ok: total - fail - info,
                fail,
                info,
                errors,
            }
        })
        .collect()
}

fn latency_points(salt: usize, p50: f64) -> Vec<Point> {
    (1..=SECONDS)
        .filter(|t| !(salt == 11 && (44..48).contains(t)))
        .map(|t| {
            let slow = if in_reset_window(t - 1) { 3.5 } else { 1.0 };
            let p50_ms = p50 * wobble(t, salt) * (1.0 + (slow - 1.0) * 0.3);
            Point {
                t_s: t as f64,
                count: (10 + salt % 5) as u64,
                p50_ms,
                p99_ms: p50_ms * 3.2 * slow * wobble(t, salt + 3),
                max_ms: p50_ms * 5.0 * slow,
            }
        })
        .collect()
}

fn distribution(p50: f64) -> Vec<(f64, f64)> {
    let factors = [
        (0.0, 0.2),
        (50.0, 1.0),
        (75.0, 1.4),
        (90.0, 2.1),
        (95.0, 2.8),
        (99.0, 4.6),
        (99.5, 6.0),
        (99.9, 9.5),
        (99.95, 11.0),
        (99.99, 14.0),
        (99.995, 15.0),
        (99.999, 16.0),
        (100.0, 16.0),
    ];
    factors.iter().map(|(p, f)| (*p, p50 * f)).collect()
}

fn op_summary(op: &str, count: u64, p50: f64, errors: BTreeMap<ErrorClass, u64>) -> OpSummary {
    let fail = errors.get(&ErrorClass::RateLimited).copied().unwrap_or(0);
    let info: u64 = errors.values().sum::<u64>() - fail;
    OpSummary {
        op: op.to_owned(),
        count,
        ok: count - fail - info,
        fail,
        info,
        errors,
        latency_ms: Percentiles {
            p50,
            p90: p50 * 2.1,
            p95: p50 * 2.8,
            p99: p50 * 4.6,
            p999: p50 * 9.5,
            max: p50 * 16.0,
            mean: p50 * 1.3,
        },
        throughput: count as f64 / SECONDS as f64,
    }
}

fn operations(series: &[Second]) -> Vec<OpSummary> {
    let total: u64 = series.iter().map(|s| s.ok + s.fail + s.info).sum();
    let mut all_errors: BTreeMap<ErrorClass, u64> = BTreeMap::new();
    for s in series {
        for (c, n) in &s.errors {
            *all_errors.entry(*c).or_default() += n;
        }
    }
    let mut ops: Vec<OpSummary> = OPS
        .iter()
        .enumerate()
        .map(|(i, (op, p50, share))| {
            let count = (total as f64 * share).round() as u64;
            // Errors land on the writes of Observation (the busiest).
            let errors = if i == 5 {
                all_errors.clone()
            } else {
                BTreeMap::new()
            };
            op_summary(op, count, *p50, errors)
        })
        .collect();
    ops.sort_by(|a, b| a.op.cmp(&b.op));
    ops
}

fn finding(kind: Kind, n: usize, detail: &str) -> Finding {
    Finding {
        kind,
        resource_type: "Observation".to_owned(),
        id: Some(format!("obs-{}", 1000 + n)),
        identifier: Some(format!("urn:fhirsurge:monday-surge|obs-{n:05}")),
        detail: detail.to_owned(),
        evidence: vec![n as u64 * 10, n as u64 * 10 + 1],
    }
}

fn findings() -> Vec<Finding> {
    let mut out = vec![
        finding(
            Kind::LostWrite,
            1,
            "create acknowledged 201 at 21.4 s; absent from read-back by id and by identifier",
        ),
        finding(Kind::LostWrite, 2, MALICIOUS),
        finding(
            Kind::LostWrite,
            3,
            "create acknowledged 201 at 40.2 s; absent from read-back",
        ),
        finding(
            Kind::DuplicateWrite,
            4,
            "2 resources carry the identifier; 1 create acknowledged",
        ),
        finding(
            Kind::DuplicateWrite,
            5,
            "3 resources carry the identifier; 1 create acknowledged",
        ),
        finding(
            Kind::CommittedDespiteError,
            6,
            "create answered 503 (fail) yet the resource is stored",
        ),
    ];
    for n in 7..11 {
        out.push(finding(
            Kind::StaleRead,
            n,
            "read returned version 1 after version 2 was acknowledged",
        ));
    }
    out[1].id = Some("\"><svg onload=alert(1)>".to_owned());
    out
}

fn slo_spec() -> Slo {
    Slo {
        latency: vec![
            LatencySlo {
                op: "all".into(),
                percentile: 99.0,
                max: Duration::from_millis(1000),
            },
            LatencySlo {
                op: "create Observation".into(),
                percentile: 99.0,
                max: Duration::from_millis(250),
            },
        ],
        error_rate: Some(0.01),
        min_throughput: Some(100.0),
        findings: [("stale_read".to_owned(), 5)].into(),
        visibility_lag_p99: Some(Duration::from_secs(2)),
        notification_latency_p99: None,
        max_p99_growth: None,
    }
}

/// The fabricated report.
pub fn sample() -> Report {
    let series = series();
    let operations = operations(&series);
    let mut all_errors = BTreeMap::new();
    for o in &operations {
        for (c, n) in &o.errors {
            *all_errors.entry(*c).or_default() += n;
        }
    }
    let total: u64 = operations.iter().map(|o| o.count).sum();
    let all = op_summary("all", total, 36.0, all_errors);
    let findings = findings();
    let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
    for f in &findings {
        *counts.entry(f.kind).or_default() += 1;
    }
    let lag = Lag {
        samples: 1480,
        p50_ms: Some(120.0),
        p99_ms: Some(870.0),
        max_ms: Some(1900.0),
        p90_ms: Some(400.0),
        never_visible: 0,
    };
    let lag = report::VisibilityLag {
        lag,
        interval_ms: Some(25.0),
        probes: Default::default(),
    };
    let mut r = Report {
        schema: SCHEMA.to_owned(),
        run: run_info(),
        passed: false,
        scorecard: Vec::new(),
        slo: Vec::new(),
        summary: summary(&all, &operations),
        latency_series: OPS
            .iter()
            .enumerate()
            .map(|(i, (op, p50, _))| ((*op).to_owned(), latency_points(i, *p50)))
            .collect(),
        distribution: OPS
            .iter()
            .map(|(op, p50, _)| ((*op).to_owned(), distribution(*p50)))
            .chain(std::iter::once(("all".to_owned(), distribution(36.0))))
            .collect(),
        operations,
        series,
        faults: faults(),
        mapping: Default::default(),
        findings,
        finding_counts: counts,
        visibility_lag: lag,
        checked: checked(),
        workload: Default::default(),
        partial: false,
        partial_reason: None,
        bodies_stored: false,
        stop: None,
        access: Default::default(),
        notifications: None,
        growth: None,
        history: None,
    };
    judge(&mut r);
    r
}

// The checker's counters grow over time; the update keeps this building whatever they are.
#[allow(clippy::needless_update)]
fn checked() -> Stats {
    let interactions: u64 = series().iter().map(|s| s.ok + s.fail + s.info).sum();
    Stats {
        records: 2 * interactions,
        ..Stats::default()
    }
}

/// Judges the SLOs and scores the scorecard from the figures, as a run does.
pub fn judge(r: &mut Report) {
    let all = r.summary.all.clone();
    let ops = r.operations.clone();
    let counts = r.finding_counts.clone();
    let percentile = |op: &str, _p: f64| {
        ops.iter()
            .chain(std::iter::once(&all))
            .find(|o| o.op == op)
            .map(|o| o.latency_ms.p99)
    };
    let findings = |k: Kind| counts.get(&k).copied().unwrap_or(0);
    r.slo = slo::judge(
        &slo_spec(),
        &slo::Measured {
            percentile: &percentile,
            interactions: all.count,
            not_ok: all.fail + all.info,
            throughput: r.summary.throughput,
            findings: &findings,
            lag_p99_ms: r.visibility_lag.lag.p99_ms,
            not_measured: &|k| slo::unchecked(k, &[]),
        },
    );
    r.passed = slo::all_passed(&r.slo);
    r.scorecard = report::scorecard::score(r);
}

fn summary(all: &OpSummary, ops: &[OpSummary]) -> Summary {
    let readback = op_summary("readback", 1620, 12.0, BTreeMap::new());
    Summary {
        encounters: ops
            .iter()
            .find(|o| o.op == "create Encounter")
            .map_or(0, |o| o.count),
        peak_concurrency: 200,
        abandoned_encounters: 3,
        cut_off_encounters: 0,
        skipped_writes: 2,
        retries: 41,
        interactions: all.count,
        ok: all.ok,
        fail: all.fail,
        info: all.info,
        load_s: SECONDS as f64,
        throughput: all.count as f64 / SECONDS as f64,
        all: all.clone(),
        readback,
    }
}

fn faults() -> Faults {
    Faults {
        injected: [
            ("reset_peer".to_owned(), 57),
            ("ack_and_drop".to_owned(), 12),
        ]
        .into(),
        windows: vec![
            FaultWindow {
                fault: "proxy".to_owned(),
                kind: "reset_peer".to_owned(),
                probability: 0.02,
                from_s: 20.0,
                until_s: Some(35.0),
            },
            FaultWindow {
                fault: "mock".to_owned(),
                kind: "ack_and_drop".to_owned(),
                probability: 0.01,
                from_s: 40.0,
                until_s: None,
            },
        ],
    }
}

fn run_info() -> RunInfo {
    RunInfo {
        id: "monday-surge-20250106T080000.000Z".to_owned(),
        scenario: "monday-surge".to_owned(),
        scenario_path: "scenarios/monday-surge.toml".to_owned(),
        target: "https://ehr.example.test/fhir/r4/".to_owned(),
        profile: "epic".to_owned(),
        seed: 42,
        version: "0.1.0".to_owned(),
        started_at: "2025-01-06T08:00:00.000+00:00".to_owned(),
        ended_at: "2025-01-06T08:01:12.000+00:00".to_owned(),
        load: LoadInfo {
            model: "closed".to_owned(),
            users: 200,
            rate: None,
            test_plan: None,
            duration_s: SECONDS as f64,
            rate_plan: None,
            max_users: None,
        },
        retry_policy: "idempotent-only".to_owned(),
        namespace: "urn:fhirsurge:monday-surge-20250106T080000.000Z".to_owned(),
        interrupted: false,
        tls_insecure: false,
    }
}
