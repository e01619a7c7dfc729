//! The phases after the load, each bounded by a stop request: the scope probe, the
//! late-notification wait (in `subscriptions`), the read-back and the audit fetch. A
//! stop cuts what is still running (the scope probe and the audit fetch at once, the
//! read-back within its budget); what was cut is *not measured* or *unchecked*, never
//! a pass or a loss. Also how a stopped run's report says why it is partial.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Control, Error, Interrupt, access, collector, readback, scope, workflow};
use crate::check;
use crate::fhir::Client;
use crate::history;
use crate::profile::Profile;
use crate::report;
use crate::scenario::Scenario;

/// The scope probe, over what the history says the run wrote; after a stop request it
/// does not run, and a stop while it runs cuts it.
pub(super) async fn probe_scopes(
    mut setup: scope::Setup<'_>,
    history_path: &Path,
    control: &Control,
) -> scope::Probed {
    if control.interrupt.is_stopped() {
        return scope::not_measured("the run was stopped before the scope probe");
    }
    setup.recorder.flush().await;
    match readback::targets(history_path) {
        Ok(t) => setup.targets = t,
        Err(e) => return scope::not_measured(format!("the history could not be read: {e}")),
    }
    match control
        .interrupt
        .bounded(Duration::ZERO, scope::probe(setup))
        .await
    {
        Some(probed) => probed,
        None => scope::not_measured("the run was stopped during the scope probe"),
    }
}

/// The audit trail as the server has it by now; after a stop request it is not fetched,
/// and a stop during the fetch cuts it (the report says not measured).
pub(super) async fn audit_trail(
    client: &Client,
    (process, started_at): (u64, DateTime<Utc>),
    scenario: &Scenario,
    profile: &Profile,
    interrupt: &Interrupt,
) -> access::Trail {
    let stopped = || {
        access::Trail::Unreadable("the run was stopped before the audit trail was fetched".into())
    };
    if interrupt.is_stopped() {
        return stopped();
    }
    if scenario.audit.enabled && profile.audit.not_exposed(&profile.name).is_none() {
        let catch_up = tokio::time::sleep(access::catch_up(scenario));
        let _ = interrupt.bounded(Duration::ZERO, catch_up).await;
    }
    let fetch = access::fetch(client, process, started_at, scenario, profile);
    match interrupt.bounded(Duration::ZERO, fetch).await {
        Some(trail) if !interrupt.is_stopped() => trail,
        _ => stopped(),
    }
}

/// Reads back everything the history says was written; after a stop request only within
/// the budget, and not at all after a second one. What is not read back stays unchecked.
pub(super) async fn read_back(
    client: &Client,
    scenario: &Scenario,
    history_path: &Path,
    first: u64,
    mapper: &workflow::Mapper,
    control: &Control,
) -> Result<report::ReadbackEnd, Error> {
    if control.interrupt.is_aborted() {
        return Ok(report::ReadbackEnd::Skipped);
    }
    let targets = readback::targets(history_path).map_err(|e| Error::Io(e.to_string()))?;
    let work = readback::read_back(
        client,
        targets,
        scenario.readback.concurrency,
        first,
        mapper,
    );
    let budget = control.bounds.readback_budget;
    Ok(match control.interrupt.bounded(budget, work).await {
        Some(_) => report::ReadbackEnd::Complete,
        None => report::ReadbackEnd::Cut,
    })
}

/// Runs the collector; if it fails (no file descriptors, say), stops the run: driving
/// load that can no longer be recorded proves nothing.
pub(super) async fn collect_or_stop(
    collect: impl Future<Output = Result<collector::Collected, history::Error>>,
    interrupt: Interrupt,
) -> Result<collector::Collected, history::Error> {
    let result = collect.await;
    if let Err(e) = &result {
        tracing::error!("history: {e}; stopping the run");
        interrupt.halt(&format!("history write failed: {e}"));
    }
    result
}

/// Notes when the first stop request comes, in seconds after `load_start`.
pub(super) fn stop_clock(interrupt: &Interrupt, load_start: Instant) -> Arc<OnceLock<f64>> {
    let at = Arc::new(OnceLock::new());
    let (i, a) = (interrupt.clone(), at.clone());
    tokio::spawn(async move {
        i.stopped().await;
        let _ = a.set(load_start.elapsed().as_secs_f64());
    });
    at
}

/// Why a stopped run's report is partial, in words.
pub(super) fn partial_reason(stop: &report::Stop, checked: &check::Stats) -> String {
    let readback = match stop.readback {
        report::ReadbackEnd::Complete => "the read-back completed".to_owned(),
        report::ReadbackEnd::Cut => format!(
            "the read-back was cut off (budget {:.0} s or a second signal)",
            stop.readback_budget_s
        ),
        report::ReadbackEnd::Skipped if stop.history_end.is_some() => {
            "the read-back was skipped".to_owned()
        }
        report::ReadbackEnd::Skipped => "the read-back was skipped (second signal)".to_owned(),
    };
    let by = match &stop.history_end {
        Some(h) if stop.signal == collector::DISK_FULL => {
            format!(
                "{}: {}; history ends {}",
                stop.signal,
                h.error,
                h.position()
            )
        }
        Some(h) => format!(
            "{}, then the disk filled ({}; history ends {})",
            stop.signal,
            h.error,
            h.position()
        ),
        None => stop.signal.clone(),
    };
    format!(
        "stopped by {by}, {:.1} s into the load phase; {readback}; {} written resources unchecked (not read back), never counted as lost",
        stop.at_s,
        checked.writes_unverified()
    )
}

/// A run output that could not be written (the disk filled): the error says where the
/// history ends, read back now unless the collector already had to.
pub(super) fn output_failed(
    what: &str,
    error: impl std::fmt::Display,
    history_path: &Path,
    cut: Option<&collector::Cut>,
) -> Error {
    let end = match cut.and_then(|c| c.end) {
        Some(end) => end.to_string(),
        None => match history::end_of(history_path) {
            Ok(end) => end.to_string(),
            Err(e) => format!("at an unknown point ({e})"),
        },
    };
    Error::Output {
        what: what.to_owned(),
        error: error.to_string(),
        end,
        history: history_path.to_owned(),
    }
}
