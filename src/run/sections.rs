//! The report's sections a run builds beside its checker's and metrics' figures: the
//! workload (encounters, open model, races, groups), the visibility lag with the probes'
//! own load, the run's identity, and why a stopped run is partial.

use std::sync::atomic::Ordering;

use super::{Phases, load, stack, workflow};
use crate::check;
use crate::profile::Profile;
use crate::report;
use crate::scenario::Scenario;

use super::Stack;

/// The workload section: whole encounters' latency, the open model's schedule, the
/// races and which checks they let run.
pub(super) fn workload(
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
pub(super) fn groups(
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

/// Why a stopped run's report is partial, in words.
pub(super) fn partial_reason(stop: &report::Stop, checked: &check::Stats) -> String {
    let readback = match stop.readback {
        report::ReadbackEnd::Complete => "the read-back completed".to_owned(),
        report::ReadbackEnd::Cut => format!(
            "the read-back was cut off (budget {:.0} s or a second signal)",
            stop.readback_budget_s
        ),
        report::ReadbackEnd::Skipped => "the read-back was skipped (second signal)".to_owned(),
    };
    format!(
        "stopped by {} {:.1} s into the load phase; {readback}; {} written resources unchecked (not read back), never counted as lost",
        stop.signal,
        stop.at_s,
        checked.writes_unverified()
    )
}

/// The checker's lag figures with their resolution and the probes' own load.
pub(super) fn visibility_lag(
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

pub(super) fn run_info(
    scenario: &Scenario,
    profile: &Profile,
    stack: &Stack,
    p: &Phases,
) -> report::RunInfo {
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
        load: stack::load_info(&scenario.load),
        retry_policy: serde_json::to_value(scenario.retry.policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        namespace: p.namespace.clone(),
        interrupted: p.interrupted,
        tls_insecure: scenario.tls.is_insecure(),
    }
}
