//! One run, wired end to end: start the mock EHR and the fault proxy when the scenario
//! asks, check the target answers, drive the load, heal the faults, wait the settle
//! time, read everything back, check the history, write the report. The only module
//! that knows all the others (besides `cli`).

pub mod access;
pub mod collector;
mod hlog;
pub mod interrupt;
pub mod judge;
pub mod keep;
pub mod load;
pub mod merge;
pub mod open;
mod progress;
pub mod readback;
pub mod recheck;
mod scope;
mod sections;
pub mod shard;
pub mod stack;
pub mod subscriptions;
pub mod visibility;
pub mod workflow;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::check;
use crate::fault::Ledger;
use crate::fhir::{Client, Recorder, auth};
use crate::history;
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::scenario::Scenario;
use crate::synth::CodeTables;

pub use interrupt::{Bounds, Interrupt};
pub use stack::Stack;

use sections::{groups, partial_reason, races, run_info, visibility_lag, workload};

pub use crate::HARNESS_PREFIX;

/// How one run is set up beyond its scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// Folder under which the run directory is created.
    pub out: PathBuf,
}

/// How a run can be stopped early, and how it then winds down.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// Stop requests (signals, turned into requests by the caller).
    pub interrupt: Interrupt,
    pub bounds: Bounds,
}

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadInput(String),
    #[error("the target {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Io(String),
    /// The load generator stopped before any encounter began.
    #[error("the load phase could not start: {0}")]
    Load(String),
    /// Authenticating before the load failed: exit `e.exit_code()` (3 for a refusal,
    /// with the OAuth error; 2 for a key, algorithm or discovery problem).
    #[error(transparent)]
    Auth(#[from] auth::Error),
}

impl Error {
    /// The process exit code: 2 bad input, 3 the run could not execute.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadInput(_) => 2,
            Error::Unreachable { .. } | Error::Io(_) | Error::Load(_) => 3,
            Error::Auth(e) => e.exit_code(),
        }
    }
}

/// The run's result.
pub struct Outcome {
    pub dir: PathBuf,
    pub report: Report,
}

impl Outcome {
    /// Whether every SLO (consistency included) was met.
    pub fn passed(&self) -> bool {
        self.report.passed
    }
}

/// What the load phase left behind, for the report.
struct Phases {
    run_id: String,
    namespace: String,
    started_at: chrono::DateTime<chrono::Utc>,
    load_s: f64,
    encounters: u64,
    peak_concurrency: u64,
    abandoned: u64,
    skipped: u64,
    cut_off: u64,
    interrupted: bool,
    /// How a stopped run was wound down.
    stop: Option<report::Stop>,
    /// How the EHR's dialect was spoken.
    mapping: report::Mapping,
    /// The open model's schedule as it went.
    open: Option<load::Opened>,
    /// The races, when the workflow has them.
    races: Option<report::workload::Races>,
    /// What the visibility prober did.
    probes: visibility::Tally,
}

/// Executes the scenario; nothing stops it early.
pub async fn execute(scenario: &Scenario, options: &Options) -> Result<Outcome, Error> {
    execute_with(
        scenario,
        options,
        &Control::default(),
        &shard::Part::default(),
    )
    .await
}

/// Executes the scenario as one part of a run (a shard of it, a load that begins at a
/// set instant); a stop request through `control` ends it early with a partial report.
pub async fn execute_with(
    scenario: &Scenario,
    options: &Options,
    control: &Control,
    part: &shard::Part,
) -> Result<Outcome, Error> {
    let profile_name = scenario.profile.as_deref().unwrap_or("us-core");
    let profile = Profile::load_with_overlay(profile_name, scenario.profile_overlay.as_deref())
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let profile = std::sync::Arc::new(profile);
    let tables = CodeTables::builtin().map_err(|e| Error::BadInput(e.to_string()))?;
    let start = Instant::now();
    let started_at = chrono::Utc::now();
    let run_id = part.run_id(&scenario.name, started_at);
    let shutdown = CancellationToken::new();
    let _stop_servers = shutdown.clone().drop_guard();
    let ledger = Ledger::new(start);
    let stack = Stack::start(scenario, &profile, &ledger, start, &shutdown).await?;
    stack.probe(scenario.timeout, &scenario.tls).await?;

    let (recorder, rx) = Recorder::new(start, 1 << 16);
    let client = authenticated_client(&stack, scenario, &profile, &recorder).await?;

    let dir = options.out.join(part.dir_name(&run_id));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    let history_path = dir.join(history::FILE);
    let live = collector::Live::default();
    let wall_start = std::time::SystemTime::now() - start.elapsed();
    // The calls are kept only for an audit trail that will be fetched.
    let audit = scenario.audit.enabled && profile.audit.not_exposed(&profile.name).is_none();
    let judge = judge::Judge::start(recheck::options(&profile), audit).map_err(io)?;
    let sinks = collector::Sinks {
        dir: dir.clone(),
        start,
        wall_start,
        growth_window: scenario.growth.window_for(scenario.load.duration()),
        filter: keep::Filter::new(scenario.keep, scenario.seed),
        judge: Some(judge.feed()),
    };
    let collector = tokio::spawn(collect_or_stop(
        collector::collect(rx, sinks, live.clone()),
        control.interrupt.clone(),
    ));
    let namespace = scenario
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{HARNESS_PREFIX}{run_id}"));
    let population = part.population(scenario.seed, &namespace, tables);
    let mapper = Arc::new(workflow::Mapper::new(
        (*profile).clone(),
        stack.capabilities(scenario).await,
    ));
    let flow = workflow::Workflow::with_write_back(
        client.clone(),
        population,
        scenario.workflow.clone(),
        scenario.groups.clone(),
        mapper.clone(),
        scenario.write_back,
    );

    let prober = visibility::Prober::new(
        client.clone(),
        mapper.clone(),
        scenario.visibility,
        scenario.seed,
    );
    let _ = flow.prober.set(prober.clone());
    let subs = match &scenario.subscriptions {
        Some(config) => {
            let setup = subscriptions::Setup {
                config,
                profile: &profile,
                seed: scenario.seed,
                start,
                faults: stack.receiver_faults.clone(),
                ledger: ledger.clone(),
                shutdown: &shutdown,
            };
            Some(subscriptions::Live::start(setup, &client, &recorder).await?)
        }
        None => None,
    };
    stack.mark_faults(&recorder, true).await;
    let active = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = progress::spawn(progress::Gauges {
        live: live.clone(),
        active: active.clone(),
        ledgers: stack.ledgers(),
        planned: scenario.load.duration(),
    });
    let start_late_ms = part.wait_start().await;
    let load_start = Instant::now();
    let stop_at = stop_clock(&control.interrupt, load_start);
    let limits = load::Limits {
        max_encounters: scenario.max_encounters,
        interrupt: control.interrupt.clone(),
        grace: control.bounds.grace,
    };
    let driven = load::drive(
        flow.clone(),
        &scenario.load,
        stack.base.as_str(),
        limits,
        active,
    )
    .await;
    let load_s = load_start.elapsed().as_secs_f64();
    progress.abort();
    if let Some(e) = &driven.goose_error {
        if driven.encounters == 0 && !driven.interrupted {
            // Nothing ran: a report of zero interactions would only mislead.
            return Err(Error::Load(e.clone()));
        }
        tracing::warn!("load phase: {e}");
    }
    // The scope probe runs while the faults are still on: the mock's `scope_bypass` is
    // ground truth only while it can fire.
    let probed = probe_scopes(
        scope::Setup {
            scenario,
            profile: &profile,
            settings: stack.client_settings(scenario, &profile),
            recorder: &recorder,
            client: &client,
            targets: Vec::new(),
            process: flow.processes.load(Ordering::Relaxed) + 1 + (2 << 32),
        },
        &history_path,
        control,
    )
    .await;
    stack.heal();
    if let Some(s) = &subs {
        s.heal();
    }
    stack.mark_faults(&recorder, false).await;
    if !control.interrupt.is_stopped() {
        // A stop during the settle time ends it: the read-back's budget starts.
        let settle = tokio::time::sleep(scenario.readback.settle);
        let _ = control
            .interrupt
            .bounded(std::time::Duration::ZERO, settle)
            .await;
    }
    if let Some(s) = &subs {
        let settled = scenario.readback.settle;
        s.finish(&client, &recorder, settled, driven.interrupted)
            .await;
    }

    let probes = prober.stop().await;
    recorder.flush().await;
    let first = flow.processes.load(Ordering::Relaxed) + 1;
    let ended =
        read_back_bounded(&client, scenario, &history_path, first, &mapper, control).await?;
    // The audit reconciliation needs the trail as the server has it by now; after a stop
    // request it is not fetched (the report says not measured).
    let trail = if control.interrupt.is_stopped() {
        access::Trail::Unreadable("the run was stopped before the audit trail was fetched".into())
    } else {
        if scenario.audit.enabled && profile.audit.not_exposed(&profile.name).is_none() {
            let catch_up = tokio::time::sleep(access::catch_up(scenario));
            let _ = control
                .interrupt
                .bounded(std::time::Duration::ZERO, catch_up)
                .await;
        }
        let audit_process = flow.processes.load(Ordering::Relaxed) + 1 + (1 << 32);
        access::fetch(&client, audit_process, started_at, scenario, &profile).await
    };
    recorder.finish().await;
    let collected = collector
        .await
        .map_err(|e| Error::Io(e.to_string()))?
        .map_err(|e| {
            Error::Io(format!(
                "the history could not be written ({e}); it ends at its last flushed block, which `fhirsurge check {}` reads",
                dir.display()
            ))
        })?;
    let judged = judge.finish().await.map_err(io)?;

    let phases = Phases {
        run_id,
        namespace,
        started_at,
        load_s,
        encounters: driven.encounters,
        peak_concurrency: driven.peak_concurrency,
        abandoned: flow.abandoned.load(Ordering::Relaxed),
        skipped: flow.skipped.load(Ordering::Relaxed),
        cut_off: driven.cut_off,
        interrupted: driven.interrupted || control.interrupt.is_stopped(),
        stop: control.interrupt.reason().map(|signal| report::Stop {
            signal,
            at_s: stop_at.get().copied().unwrap_or(load_s),
            grace_s: control.bounds.grace.as_secs_f64(),
            readback_budget_s: control.bounds.readback_budget.as_secs_f64(),
            readback: ended,
        }),
        mapping: mapper.report(),
        open: driven.open,
        races: races(scenario, &flow.races),
        probes,
    };
    stack
        .write_ledger(&dir)
        .map_err(|e| Error::Io(e.to_string()))?;
    let report = assemble(
        scenario,
        &profile,
        &stack,
        &dir,
        (collected, judged),
        phases,
        (trail, probed),
    )?;
    report
        .write_all(&dir)
        .map_err(|e| Error::Io(e.to_string()))?;
    if let Some(s) = &part.shard {
        let record = shard::Record {
            run_id: report.run.id.clone(),
            scenario: scenario.name.clone(),
            scenario_digest: shard::digest(&s.scenario_text),
            scenario_text: s.scenario_text.clone(),
            shard: s.shard,
            run_seed: s.run_seed,
            seed: scenario.seed,
            clock_zero_unix_us: shard::unix_us(wall_start),
            load_start_s: load_start.duration_since(start).as_secs_f64(),
            load_s: report.summary.load_s,
            start_at: part.start_at.map(|t| t.to_rfc3339()),
            start_late_ms,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        record.write(&dir).map_err(|e| Error::Io(e.to_string()))?;
    }
    Ok(Outcome { dir, report })
}

/// The scope probe, over what the history says the run wrote; after a stop request it
/// does not run.
async fn probe_scopes(
    mut setup: scope::Setup<'_>,
    history_path: &std::path::Path,
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
    scope::probe(setup).await
}

/// Runs the collector; if it fails (a full disk, no file descriptors), stops the run:
/// driving load that can no longer be recorded proves nothing.
async fn collect_or_stop(
    collect: impl Future<Output = Result<collector::Collected, history::Error>>,
    interrupt: Interrupt,
) -> Result<collector::Collected, history::Error> {
    let result = collect.await;
    if let Err(e) = &result {
        tracing::error!("history: {e}; stopping the run");
        interrupt.request("history write failed");
    }
    result
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

/// Notes when the first stop request comes, in seconds after `load_start`.
fn stop_clock(interrupt: &Interrupt, load_start: Instant) -> Arc<std::sync::OnceLock<f64>> {
    let at = Arc::new(std::sync::OnceLock::new());
    let (i, a) = (interrupt.clone(), at.clone());
    tokio::spawn(async move {
        i.stopped().await;
        let _ = a.set(load_start.elapsed().as_secs_f64());
    });
    at
}

/// Reads back everything the history says was written; after a stop request only within
/// the budget, and not at all after a second one. What is not read back stays unchecked.
async fn read_back_bounded(
    client: &Client,
    scenario: &Scenario,
    history_path: &std::path::Path,
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

/// The run's client, authenticated once: a refused client stops the run before any load
/// and before the run folder exists (the token request waits in the recorder's channel
/// for the collector).
async fn authenticated_client(
    stack: &Stack,
    scenario: &Scenario,
    profile: &Profile,
    recorder: &Recorder,
) -> Result<Client, Error> {
    let settings = stack.client_settings(scenario, profile);
    let client = Client::new(settings, recorder.clone())
        .map_err(|e| Error::BadInput(e.to_string()))?
        .with_max_body(scenario.max_body);
    client.authenticate().await?;
    Ok(client)
}

/// Builds the report from what the live judge found over every record.
fn assemble(
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
        access: judged.access,
        notifications: checked.notifications,
        growth: Some(growth),
        history: Some(collected.history.clone()),
    };
    report.scorecard = report::scorecard::score(&report);
    if let Some(stop) = &p.stop {
        report.partial = true;
        report.partial_reason = Some(partial_reason(stop, &report.checked));
        // A partial run proves nothing about what did not run.
        report.passed = false;
        report.stop = Some(stop.clone());
    }
    Ok(report)
}
