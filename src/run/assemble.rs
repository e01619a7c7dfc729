//! The report of one run, assembled from what its phases left: what the live judge found
//! over every record (whatever the history file kept), the access checks judged, the SLOs judged, the workload,
//! growth and visibility figures, and why it is partial when it was stopped.

use std::sync::atomic::Ordering;

use super::{
    Error, Stack, access, bounded, collector, judge, load, recheck, scope, visibility, workflow,
};
use crate::check;
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::scenario::Scenario;

/// What the load phase left behind, for the report.
pub(super) struct Phases {
    pub(super) run_id: String,
    pub(super) namespace: String,
    pub(super) started_at: chrono::DateTime<chrono::Utc>,
    pub(super) load_s: f64,
    pub(super) encounters: u64,
    pub(super) peak_concurrency: u64,
    pub(super) abandoned: u64,
    pub(super) skipped: u64,
    pub(super) cut_off: u64,
    pub(super) interrupted: bool,
    /// How a stopped run was wound down.
    pub(super) stop: Option<report::Stop>,
    /// How the EHR's dialect was spoken.
    pub(super) mapping: report::Mapping,
    /// The open model's schedule as it went.
    pub(super) open: Option<load::Opened>,
    /// The races, when the workflow has them.
    pub(super) races: Option<report::workload::Races>,
    /// What the visibility prober did.
    pub(super) probes: visibility::Tally,
    /// Whether answers' bodies were written (`--store-bodies`).
    pub(super) bodies_stored: bool,
}

/// Builds the report from what the live judge found over every record.
pub(super) fn assemble(
    scenario: &Scenario,
    profile: &Profile,
    stack: &Stack,
    dir: &std::path::Path,
    (collected, live): (collector::Collected, judge::Judged),
    p: Phases,
    (trail, probed): (access::Trail, scope::Probed),
) -> Result<Report, Error> {
    let options = recheck::Recorded {
        options: recheck::options(profile),
        keep: scenario.keep,
    };
    // Without it, `fhirsurge check` would judge the history without the profile.
    if let Err(e) = recheck::write_recorded(dir, &options) {
        tracing::warn!("{}: {e}", recheck::OPTIONS_FILE);
    }
    let mut checked = live.outcome;
    let judged = access::judge(live.access, scenario, trail, probed, &checked.findings);
    access::add(&mut checked.findings, &mut checked.counts, judged.findings);
    let metrics = collected.metrics;
    let all = metrics.total(p.load_s);
    let counts = &checked.counts;
    let encounters = &collected.encounters;
    let percentile = |op: &str, q: f64| match op {
        load::ENCOUNTER => encounters.percentile(op, q),
        _ => metrics.percentile(op, q),
    };
    let findings = |k: check::Kind| counts.get(&k).copied().unwrap_or(0);
    let mut workload = workload(
        &collected.encounters,
        p.open.clone(),
        p.races.clone(),
        &checked.counts,
        p.load_s,
    );
    workload.groups = groups(scenario, &collected.groups, p.load_s);
    workload.checks.extend(report::workload::transactions_check(
        checked.stats.transactions,
    ));
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
                access::unmeasured(&judged.access, k)
                    .unwrap_or_else(|| report::slo::unchecked(k, &workload.checks))
            },
        },
    );
    let mut slo = slo;
    if scenario.subscriptions.is_some() {
        let n = checked.notifications.as_ref();
        slo.extend(report::slo::judge_notifications(&scenario.slo, n));
    }
    let growth = report::growth::build(
        collected.growth,
        collected.growth_window.as_secs_f64(),
        collected.resources,
    );
    slo.extend(report::slo::judge_growth(&scenario.slo, Some(&growth)));
    let summary = report::Summary {
        encounters: p.encounters,
        peak_concurrency: p.peak_concurrency,
        abandoned_encounters: p.abandoned,
        cut_off_encounters: p.cut_off,
        skipped_writes: p.skipped,
        retries: collected.retries,
        interactions: all.count,
        ok: all.ok,
        fail: all.fail,
        info: all.info,
        load_s: p.load_s,
        throughput: all.throughput,
        all,
        readback: collected.readback.total(0.0),
    };
    let lag = visibility_lag(scenario, checked.visibility_lag, &collected.probes, &p);
    let mut report = Report {
        schema: report::SCHEMA.to_owned(),
        run: run_info(scenario, profile, stack, &p),
        passed: report::slo::all_passed(&slo),
        scorecard: Vec::new(),
        slo,
        summary,
        operations: metrics.summaries(p.load_s),
        series: metrics.series().to_vec(),
        latency_series: metrics
            .points()
            .map(|(op, p)| (op.to_owned(), p.to_vec()))
            .collect(),
        distribution: metrics.distributions(),
        faults: stack.faults_summary(),
        mapping: p.mapping,
        findings: checked.findings,
        finding_counts: checked.counts,
        visibility_lag: lag,
        checked: checked.stats,
        workload,
        partial: false,
        partial_reason: None,
        stop: None,
        bodies_stored: p.bodies_stored,
        access: judged.access,
        notifications: checked.notifications,
        growth: Some(growth),
        history: Some(collected.history.clone()),
    };
    report.scorecard = report::scorecard::score(&report);
    if let Some(stop) = &p.stop {
        report.partial = true;
        report.partial_reason = Some(bounded::partial_reason(stop, &report.checked));
        // A partial run proves nothing about what did not run.
        report.passed = false;
        report.stop = Some(stop.clone());
    }
    Ok(report)
}

/// The workload section: whole encounters' latency, the open model's schedule, the
/// races and which checks they let run.
fn workload(
    encounters: &crate::metrics::Metrics,
    open: Option<load::Opened>,
    races: Option<report::workload::Races>,
    findings: &std::collections::BTreeMap<check::Kind, u64>,
    load_s: f64,
) -> report::Workload {
    let races = races.map(|r| report::workload::Races {
        lost_updates: findings.get(&check::Kind::LostUpdate).copied().unwrap_or(0),
        ..r
    });
    report::Workload {
        encounter: encounters.summaries(load_s).into_iter().next(),
        open: open.map(|o| report::workload::OpenLoad::of(o.seconds, o.users_reached, load_s)),
        checks: races.iter().map(report::workload::Races::check).collect(),
        races,
        groups: Vec::new(),
    }
}

/// Each user group's latency and counts.
fn groups(
    scenario: &Scenario,
    measured: &std::collections::BTreeMap<u16, (crate::metrics::Metrics, crate::metrics::Metrics)>,
    load_s: f64,
) -> Vec<report::workload::GroupLoad> {
    let empty = (
        crate::metrics::Metrics::new(),
        crate::metrics::Metrics::new(),
    );
    scenario
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (ops, encounters) = measured.get(&(i as u16)).unwrap_or(&empty);
            let mut encounter = encounters.total(load_s);
            encounter.op = load::ENCOUNTER.to_owned();
            report::workload::GroupLoad {
                name: g.name.clone(),
                weight: g.weight,
                encounter,
                all: ops.total(load_s),
                operations: ops.summaries(load_s),
            }
        })
        .collect()
}

/// What the races saw, when the workflow has a `contended_update` step.
pub(super) fn races(scenario: &Scenario, r: &workflow::Races) -> Option<report::workload::Races> {
    let raced = std::iter::once(&scenario.workflow)
        .chain(scenario.groups.iter().map(|g| &g.workflow))
        .flatten()
        .any(|(s, w)| *s == crate::scenario::Step::ContendedUpdate && *w > 0);
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    raced.then(|| report::workload::Races {
        run: n(&r.run),
        refused: n(&r.refused),
        both_acknowledged: n(&r.both_acknowledged),
        loser_retries: n(&r.retries),
        loser_retries_ok: n(&r.retries_ok),
        lost_updates: 0,
    })
}

/// The checker's lag figures with their resolution and the probes' own load.
fn visibility_lag(
    scenario: &Scenario,
    lag: check::Lag,
    probes: &crate::metrics::Metrics,
    p: &Phases,
) -> report::VisibilityLag {
    let load = probes.total(p.load_s);
    let t = &p.probes;
    report::VisibilityLag {
        lag,
        interval_ms: (t.probed > 0).then_some(scenario.visibility.interval.as_secs_f64() * 1000.0),
        probes: report::ProbeLoad {
            probed: t.probed,
            not_sampled: t.not_sampled,
            busy: t.busy,
            unsearchable: t.unsearchable,
            requests: load.count,
            per_second: load.throughput,
            latency_p99_ms: load.latency_ms.p99,
        },
    }
}

fn run_info(scenario: &Scenario, profile: &Profile, stack: &Stack, p: &Phases) -> report::RunInfo {
    report::RunInfo {
        id: p.run_id.clone(),
        scenario: scenario.name.clone(),
        scenario_path: scenario.path.display().to_string(),
        target: stack.target_label(),
        profile: profile.name.clone(),
        seed: scenario.seed,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: p.started_at.to_rfc3339(),
        ended_at: chrono::Utc::now().to_rfc3339(),
        load: super::stack::load_info(&scenario.load),
        retry_policy: serde_json::to_value(scenario.retry.policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        namespace: p.namespace.clone(),
        interrupted: p.interrupted,
        tls_insecure: scenario.tls.is_insecure(),
    }
}
