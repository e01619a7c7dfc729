//! One run, wired end to end: start the mock EHR and the fault proxy when the scenario
//! asks, check the target answers, drive the load, heal the faults, wait the settle
//! time, read everything back, check the history, write the report. The only module
//! that knows all the others (besides `cli`).

pub mod collector;
mod hlog;
pub mod load;
mod progress;
pub mod readback;
pub mod recheck;
pub mod stack;
pub mod subscriptions;
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
use crate::synth::{CodeTables, Population};

pub use stack::Stack;

pub use crate::HARNESS_PREFIX;

/// How one run is set up beyond its scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// Folder under which the run directory is created.
    pub out: PathBuf,
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
    interrupted: bool,
    /// How the EHR's dialect was spoken.
    mapping: report::Mapping,
}

/// Executes the scenario.
pub async fn execute(scenario: &Scenario, options: &Options) -> Result<Outcome, Error> {
    let profile_name = scenario.profile.as_deref().unwrap_or("us-core");
    let profile = Profile::load_with_overlay(profile_name, scenario.profile_overlay.as_deref())
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let profile = std::sync::Arc::new(profile);
    let tables = CodeTables::builtin().map_err(|e| Error::BadInput(e.to_string()))?;
    let start = Instant::now();
    let started_at = chrono::Utc::now();
    let run_id = format!(
        "{}-{}",
        scenario.name,
        started_at.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let shutdown = CancellationToken::new();
    let _stop_servers = shutdown.clone().drop_guard();
    let ledger = Ledger::new(start);
    let stack = Stack::start(scenario, &profile, &ledger, start, &shutdown).await?;
    stack.probe(scenario.timeout, &scenario.tls).await?;

    let (recorder, rx) = Recorder::new(start, 1 << 16);
    let client = authenticated_client(&stack, scenario, &profile, &recorder).await?;

    let dir = options.out.join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    let history_path = dir.join(history::FILE);
    let live = collector::Live::default();
    let sinks = collector::Sinks {
        dir: dir.clone(),
        start,
        wall_start: std::time::SystemTime::now() - start.elapsed(),
    };
    let collector = tokio::spawn(collector::collect(rx, sinks, live.clone()));
    let namespace = scenario
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{HARNESS_PREFIX}{run_id}"));
    let population = Population::new(scenario.seed, &namespace, tables);
    let mapper = Arc::new(workflow::Mapper::new(
        (*profile).clone(),
        stack.capabilities(scenario).await,
    ));
    let flow = workflow::Workflow::new(
        client.clone(),
        population,
        scenario.workflow.clone(),
        mapper.clone(),
    );

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
    let load_start = Instant::now();
    let driven = load::drive(
        flow.clone(),
        &scenario.load,
        stack.base.as_str(),
        scenario.max_encounters,
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
    stack.heal();
    if let Some(s) = &subs {
        s.heal();
    }
    stack.mark_faults(&recorder, false).await;
    if !driven.interrupted {
        tokio::time::sleep(scenario.readback.settle).await;
    }
    if let Some(s) = &subs {
        let settled = scenario.readback.settle;
        s.finish(&client, &recorder, settled, driven.interrupted)
            .await;
    }

    recorder.flush().await;
    let targets = readback::targets(&history_path).map_err(|e| Error::Io(e.to_string()))?;
    let first = flow.processes.load(Ordering::Relaxed) + 1;
    readback::read_back(
        &client,
        targets,
        scenario.readback.concurrency,
        first,
        &mapper,
    )
    .await;
    recorder.finish().await;
    let collected = collector
        .await
        .map_err(|e| Error::Io(e.to_string()))?
        .map_err(|e| Error::Io(e.to_string()))?;

    let phases = Phases {
        run_id,
        namespace,
        started_at,
        load_s,
        encounters: driven.encounters,
        peak_concurrency: driven.peak_concurrency,
        abandoned: flow.abandoned.load(Ordering::Relaxed),
        skipped: flow.skipped.load(Ordering::Relaxed),
        interrupted: driven.interrupted || goose::is_killswitch_triggered(),
        mapping: mapper.report(),
    };
    stack
        .write_ledger(&dir)
        .map_err(|e| Error::Io(e.to_string()))?;
    let report = assemble(scenario, &profile, &stack, &history_path, collected, phases)?;
    report
        .write_all(&dir)
        .map_err(|e| Error::Io(e.to_string()))?;
    Ok(Outcome { dir, report })
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
    let client =
        Client::new(settings, recorder.clone()).map_err(|e| Error::BadInput(e.to_string()))?;
    client.authenticate().await?;
    Ok(client)
}

/// Checks the history and builds the report.
fn assemble(
    scenario: &Scenario,
    profile: &Profile,
    stack: &Stack,
    history_path: &std::path::Path,
    collected: collector::Collected,
    p: Phases,
) -> Result<Report, Error> {
    let options = recheck::options(profile);
    if let Some(dir) = history_path.parent() {
        // Without it, `fhirsurge check` would judge the history without the profile.
        if let Err(e) = recheck::write_options(dir, &options) {
            tracing::warn!("{}: {e}", recheck::OPTIONS_FILE);
        }
    }
    let records = history::Reader::open(history_path)
        .map_err(|e| Error::Io(e.to_string()))?
        .map_while(Result::ok);
    let checked = check::check(records, &options);
    let metrics = collected.metrics;
    let all = metrics.total(p.load_s);
    let counts = &checked.counts;
    let percentile = |op: &str, q: f64| metrics.percentile(op, q);
    let findings = |k: check::Kind| counts.get(&k).copied().unwrap_or(0);
    let slo = report::slo::judge(
        &scenario.slo,
        &report::slo::Measured {
            percentile: &percentile,
            interactions: all.count,
            not_ok: all.fail + all.info,
            throughput: all.throughput,
            findings: &findings,
            lag_p99_ms: checked.visibility_lag.p99_ms,
        },
    );
    let mut slo = slo;
    if scenario.subscriptions.is_some() {
        let n = checked.notifications.as_ref();
        slo.extend(report::slo::judge_notifications(&scenario.slo, n));
    }
    let summary = report::Summary {
        encounters: p.encounters,
        peak_concurrency: p.peak_concurrency,
        abandoned_encounters: p.abandoned,
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
    let mut report = Report {
        schema: report::SCHEMA.to_owned(),
        run: run_info(scenario, profile, stack, &p),
        passed: slo.iter().all(|r| r.passed),
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
        visibility_lag: checked.visibility_lag,
        checked: checked.stats,
        notifications: checked.notifications,
    };
    report.scorecard = report::scorecard::score(&report);
    Ok(report)
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
