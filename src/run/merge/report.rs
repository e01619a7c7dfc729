//! The merged report: the shards' metrics put together on one clock, the merged
//! history's findings, and the SLOs of the scenario the shards ran, judged on the merged
//! figures.

use std::path::Path;

use super::latency::Intervals;
use super::{Error, Notes, Part};
use crate::check;
use crate::metrics::{Metrics, OpSummary};
use crate::report::{self, Faults, LoadInfo, Report, RunInfo, Summary};
use crate::scenario::Scenario;

/// Builds the merged report; `origin` is the merged run's clock zero (µs since epoch).
pub fn assemble(
    parts: &[Part],
    origin: i64,
    (checked, unmeasured): (
        check::Outcome,
        &std::collections::BTreeMap<check::Kind, String>,
    ),
    notes: &mut Notes,
) -> Result<Report, Error> {
    let first = &parts[0];
    let path = Path::new(&first.report.run.scenario_path);
    let scenario = Scenario::from_str(&first.record.scenario_text, path)
        .map_err(|e| Error::Refused(format!("the shards' scenario: {e}")))?;
    let (metrics, readback) = metrics(parts, origin, notes)?;
    let load_start = parts.iter().map(|p| p.record.load_start_unix_us()).min();
    let load_end = parts.iter().map(|p| p.record.load_end_unix_us()).max();
    let load_s = match (load_start, load_end) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e6,
        _ => 0.0,
    };
    let all = metrics.total(load_s);
    let counts = &checked.counts;
    let percentile = |op: &str, q: f64| metrics.percentile(op, q);
    let findings = |k: check::Kind| counts.get(&k).copied().unwrap_or(0);
    let mut workload = workload(parts, &checked.counts, load_s);
    workload.checks.extend(report::workload::transactions_check(
        checked.stats.transactions,
    ));
    let access = access(parts);
    let slo = report::slo::judge(
        &scenario.slo,
        &report::slo::Measured {
            percentile: &percentile,
            interactions: all.count,
            not_ok: all.fail + all.info,
            throughput: all.throughput,
            findings: &findings,
            lag_p99_ms: checked.visibility_lag.p99_ms,
            not_measured: &|k| {
                if let Some(why) = unmeasured.get(&k) {
                    return Some(why.clone());
                }
                crate::run::access::unmeasured(&access, k)
                    .unwrap_or_else(|| report::slo::unchecked(k, &workload.checks))
            },
        },
    );
    let growth = growth(parts);
    let mut slo = slo;
    slo.extend(report::slo::judge_growth(&scenario.slo, Some(&growth)));
    let sum = |f: fn(&Summary) -> u64| parts.iter().map(|p| f(&p.report.summary)).sum::<u64>();
    let summary = Summary {
        encounters: sum(|s| s.encounters),
        // The shards' peaks need not coincide: their sum bounds the run's from above.
        peak_concurrency: sum(|s| s.peak_concurrency),
        abandoned_encounters: sum(|s| s.abandoned_encounters),
        cut_off_encounters: sum(|s| s.cut_off_encounters),
        skipped_writes: sum(|s| s.skipped_writes),
        retries: sum(|s| s.retries),
        interactions: all.count,
        ok: all.ok,
        fail: all.fail,
        info: all.info,
        load_s,
        throughput: all.throughput,
        all,
        readback: readback_total(parts, &readback),
    };
    let mut report = Report {
        schema: report::SCHEMA.to_owned(),
        run: run_info(parts, origin, notes),
        passed: report::slo::all_passed(&slo) && notes.missing.is_empty(),
        scorecard: Vec::new(),
        slo,
        summary,
        operations: metrics.summaries(load_s),
        series: metrics.series().to_vec(),
        latency_series: metrics
            .points()
            .map(|(op, p)| (op.to_owned(), p.to_vec()))
            .collect(),
        distribution: metrics.distributions(),
        faults: faults(parts),
        mapping: first.report.mapping.clone(),
        findings: checked.findings,
        finding_counts: checked.counts,
        visibility_lag: visibility_lag(parts, checked.visibility_lag),
        checked: checked.stats,
        notifications: checked.notifications,
        workload,
        partial: parts.iter().any(|p| p.report.partial) || !notes.missing.is_empty(),
        partial_reason: partial_reason(parts, notes),
        stop: None,
        bodies_stored: parts.iter().any(|p| p.report.bodies_stored),
        access,
        growth: Some(growth),
        history: history(parts),
    };
    report.scorecard = report::scorecard::score(&report);
    Ok(report)
}

/// The merged run's growth: not recomputed (each shard counted only the resources it
/// wrote, on its own windows), so not measured, with the shards' resources added up.
/// The shards' history budgets added up (absent when a shard's report has none).
fn history(parts: &[Part]) -> Option<report::HistoryKept> {
    let mut sum = report::HistoryKept {
        keep: parts.first()?.report.history.as_ref()?.keep,
        ..report::HistoryKept::default()
    };
    for h in parts.iter().map(|p| p.report.history.as_ref()) {
        let h = h?;
        sum.records += h.records;
        sum.kept += h.kept;
        sum.dropped += h.dropped;
    }
    Some(sum)
}

fn growth(parts: &[Part]) -> report::growth::Growth {
    let held = parts
        .iter()
        .filter_map(|p| p.report.growth.as_ref())
        .map(|g| g.resources_held)
        .sum();
    let window_s = parts
        .iter()
        .find_map(|p| p.report.growth.as_ref().map(|g| g.window_s))
        .unwrap_or(0.0);
    report::growth::Growth {
        reason: Some(
            "not recomputed for a merged run: each shard counted only the resources it wrote, in its own windows; each shard's report.json has its own growth section".into(),
        ),
        ..report::growth::build(Vec::new(), window_s, held)
    }
}

/// The merged history's lag with the probes the shards made added up.
fn visibility_lag(parts: &[Part], lag: check::Lag) -> report::VisibilityLag {
    let mut probes = report::ProbeLoad::default();
    for p in parts {
        let s = &p.report.visibility_lag.probes;
        probes.probed += s.probed;
        probes.not_sampled += s.not_sampled;
        probes.busy += s.busy;
        probes.unsearchable += s.unsearchable;
        probes.requests += s.requests;
        probes.per_second += s.per_second;
        // The slowest shard's p99 bounds the merged p99 from above.
        probes.latency_p99_ms = probes.latency_p99_ms.max(s.latency_p99_ms);
    }
    report::VisibilityLag {
        lag,
        interval_ms: parts[0].report.visibility_lag.interval_ms,
        probes,
    }
}

/// The access checks are not re-run on a merge (they need each shard's audit trail as
/// fetched): the merged report says so and points at the shards' own verdicts.
fn access(parts: &[Part]) -> report::access::Access {
    let ran: Vec<String> = parts
        .iter()
        .filter(|p| p.report.access.audit.status == report::access::Status::Measured)
        .map(|p| p.record.shard.index.to_string())
        .collect();
    let why = if ran.is_empty() {
        "not re-run on a merge, and no shard measured it".to_owned()
    } else {
        format!(
            "not re-run on a merge (it needs each shard's fetched audit trail); shards {} measured it in their own reports",
            ran.join(", ")
        )
    };
    let mut a = report::access::Access::default();
    a.audit.reason = Some(why.clone());
    a.leak.reason = Some(why.clone());
    a.scope.reason = Some(why);
    a
}

/// Why the merged report is partial: shards missing, or shards stopped by a signal.
fn partial_reason(parts: &[Part], notes: &Notes) -> Option<String> {
    let mut why = Vec::new();
    if !notes.missing.is_empty() {
        why.push(format!(
            "shards {:?} of the run were not given",
            notes.missing
        ));
    }
    for p in parts {
        if p.report.partial {
            why.push(format!(
                "shard {}: {}",
                p.record.shard.index,
                p.report
                    .partial_reason
                    .as_deref()
                    .unwrap_or("stopped early")
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The shards' workload sections added up: the open model's starts per second (the
/// shards share one clock through `--start-at`), the races, and which checks they let
/// run. Whole-encounter and per-group latency stay in the shards' reports: their
/// histograms are not kept, and percentiles are never averaged.
fn workload(
    parts: &[Part],
    counts: &std::collections::BTreeMap<check::Kind, u64>,
    load_s: f64,
) -> report::Workload {
    use report::workload::{OpenLoad, Races};
    let mut seconds: Vec<crate::metrics::RateSecond> = Vec::new();
    let mut users_reached = 0;
    let mut opened = false;
    let mut races: Option<Races> = None;
    for p in parts {
        let w = &p.report.workload;
        if let Some(open) = &w.open {
            opened = true;
            users_reached += open.users_reached;
            for s in &open.series {
                let i = s.t_s as usize;
                if seconds.len() <= i {
                    seconds.resize_with(i + 1, Default::default);
                }
                let m = &mut seconds[i];
                m.t_s = s.t_s;
                m.offered += s.offered;
                m.started += s.started;
                m.dropped += s.dropped;
            }
        }
        if let Some(r) = &w.races {
            let t = races.get_or_insert_with(Races::default);
            t.run += r.run;
            t.refused += r.refused;
            t.both_acknowledged += r.both_acknowledged;
            t.loser_retries += r.loser_retries;
            t.loser_retries_ok += r.loser_retries_ok;
        }
    }
    let races = races.map(|r| Races {
        lost_updates: counts.get(&check::Kind::LostUpdate).copied().unwrap_or(0),
        ..r
    });
    report::Workload {
        encounter: None,
        open: opened.then(|| OpenLoad::of(seconds, users_reached, load_s)),
        checks: races.iter().map(Races::check).collect(),
        races,
        groups: Vec::new(),
    }
}

/// The load phase's and the read-back's metrics of every shard, on the merged clock.
fn metrics(parts: &[Part], origin: i64, notes: &mut Notes) -> Result<(Metrics, Metrics), Error> {
    let mut load = Intervals::default();
    let mut back = Intervals::default();
    let mut metrics = Metrics::new();
    let mut readback = Metrics::new();
    for p in parts {
        let offset = p.record.clock_zero_unix_us - origin;
        load.add_dir(&p.dir.join("hlog"), offset)?;
        back.add_dir(
            &p.dir.join(crate::run::collector::READBACK_DIR).join("hlog"),
            offset,
        )?;
        for op in &p.report.operations {
            metrics.absorb_counts(op);
        }
        for (k, second) in p.report.series.iter().enumerate() {
            let at = offset + k as i64 * 1_000_000;
            metrics.absorb_second((at.max(0) / 1_000_000) as usize, second);
        }
    }
    notes.latency_short.extend(load.into_metrics(&mut metrics));
    back.into_metrics(&mut readback);
    for op in metrics.summaries(1.0) {
        if metrics.samples(&op.op) < op.count && !notes.latency_short.contains(&op.op) {
            notes.latency_short.push(op.op.clone());
        }
    }
    Ok((metrics, readback))
}

/// The read-back, all operations together: latency from the merged histograms, counts
/// summed from the shards.
fn readback_total(parts: &[Part], readback: &Metrics) -> OpSummary {
    let mut total = readback.total(0.0);
    let (mut ok, mut fail, mut info) = (0, 0, 0);
    total.errors.clear();
    for p in parts {
        let r = &p.report.summary.readback;
        ok += r.ok;
        fail += r.fail;
        info += r.info;
        for (k, v) in &r.errors {
            *total.errors.entry(*k).or_default() += v;
        }
    }
    total.count = ok + fail + info;
    (total.ok, total.fail, total.info) = (ok, fail, info);
    total
}

fn run_info(parts: &[Part], origin: i64, notes: &Notes) -> RunInfo {
    let first = &parts[0].report.run;
    let time = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    let ended = parts
        .iter()
        .map(|p| p.report.run.ended_at.clone())
        .max()
        .unwrap_or_default();
    let rate: Option<f64> = parts.iter().map(|p| p.report.run.load.rate).sum();
    RunInfo {
        id: parts[0].record.run_id.clone(),
        seed: parts[0].record.run_seed,
        started_at: time(origin),
        ended_at: ended,
        load: LoadInfo {
            model: first.load.model.clone(),
            users: parts.iter().map(|p| p.report.run.load.users).sum(),
            rate,
            test_plan: first.load.test_plan.clone(),
            duration_s: first.load.duration_s,
            rate_plan: first.load.rate_plan.clone(),
            max_users: parts.iter().map(|p| p.report.run.load.max_users).sum(),
        },
        interrupted: parts.iter().any(|p| p.report.run.interrupted) || !notes.missing.is_empty(),
        tls_insecure: parts.iter().any(|p| p.report.run.tls_insecure),
        ..first.clone()
    }
}

/// Injections summed over the shards' ledgers; the windows are the scenario's.
fn faults(parts: &[Part]) -> Faults {
    let mut f = Faults {
        windows: parts[0].report.faults.windows.clone(),
        ..Faults::default()
    };
    for p in parts {
        for (k, v) in &p.report.faults.injected {
            *f.injected.entry(k.clone()).or_default() += v;
        }
    }
    f
}
