//! One run, wired end to end: start the mock EHR and the fault proxy when the scenario
//! asks, check the target answers, drive the load, heal the faults, wait the settle
//! time, read everything back, check the history, write the report. The only module
//! that knows all the others (besides `cli`).

pub mod access;
mod assemble;
mod bounded;
pub mod collector;
mod hlog;
pub mod interrupt;
pub mod judge;
pub mod keep;
pub mod load;
pub mod merge;
pub mod open;
mod phases;
mod progress;
pub mod readback;
pub mod recheck;
mod scope;
pub mod shard;
pub mod stack;
pub mod subscriptions;
pub mod visibility;
pub mod workflow;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::fault::Ledger;
use crate::fhir::{Client, Recorder, auth};
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::scenario::Scenario;
use crate::synth::CodeTables;

pub use interrupt::{Bounds, Interrupt};
pub use stack::Stack;

pub use crate::HARNESS_PREFIX;

/// How one run is set up beyond its scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// Folder under which the run directory is created.
    pub out: PathBuf,
    /// Whether answers' bodies are kept (`--store-bodies`).
    pub bodies: Bodies,
}

impl Options {
    /// Runs under `out`, storing no body.
    pub fn new(out: PathBuf) -> Self {
        Self {
            out,
            bodies: Bodies::Discard,
        }
    }
}

/// What becomes of the answers' bodies. They may hold PHI: none is stored unless asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bodies {
    /// Read, judged, and dropped (the history keeps digests only).
    #[default]
    Discard,
    /// Also written, credentials redacted, to `bodies.jsonl.zst` in the run directory;
    /// every output then says so at its top.
    Store,
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
    /// A run output (the report, the ledger) could not be written: the disk is full.
    #[error(
        "{what} could not be written ({error}); the history ends {end}: `fhirsurge check {}` reads it up to there",
        history.display()
    )]
    Output {
        what: String,
        error: String,
        end: String,
        history: PathBuf,
    },
    /// The load generator stopped before any encounter began.
    #[error("the load phase could not start: {0}")]
    Load(String),
    /// Authenticating before the load failed (a refusal carries the OAuth error).
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// The in-process mock EHR refused its settings.
    #[error(transparent)]
    Mock(#[from] crate::mock::Error),
    /// The fault proxy refused its settings.
    #[error(transparent)]
    Proxy(#[from] crate::fault::proxy::Error),
    /// The notification receiver refused its faults.
    #[error(transparent)]
    Receiver(#[from] crate::notify::Error),
    /// The notification receiver's certificate or key cannot be used.
    #[error(transparent)]
    ReceiverTls(#[from] crate::notify::tls::TlsError),
    /// The CA certificates given for the target cannot be used.
    #[error(transparent)]
    Ca(#[from] crate::fhir::tls::CaError),
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
    let profile_name = scenario.profile.as_str();
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
    let recorder = match options.bodies {
        Bodies::Store => recorder.storing_bodies(),
        Bodies::Discard => recorder,
    };
    let client = authenticated_client(&stack, scenario, &profile, &recorder).await?;

    let rec = phases::record(
        scenario,
        &profile,
        (options, control),
        part.dir_name(&run_id),
        (start, rx),
    )?;
    let d = phases::driving(
        scenario,
        (&profile, &stack),
        (&client, part),
        &run_id,
        tables,
    )
    .await;
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
    let l = phases::load(scenario, &stack, (&d, &rec), control, part).await?;
    let probed = phases::wind_down(
        (scenario, &profile, &stack),
        (&client, &recorder),
        (&d, &rec),
        subs.as_ref(),
        control,
    )
    .await;
    let probes = d.prober.stop().await;
    recorder.flush().await;
    let first = d.flow.processes.load(Ordering::Relaxed) + 1;
    let ended = bounded::read_back(
        &client,
        scenario,
        &rec.history_path,
        first,
        &d.mapper,
        control,
    )
    .await?;
    // The audit reconciliation needs the trail as the server has it by now.
    let audit_process = d.flow.processes.load(Ordering::Relaxed) + 1 + (1 << 32);
    let trail = bounded::audit_trail(
        &client,
        (audit_process, started_at),
        scenario,
        &profile,
        &control.interrupt,
    )
    .await;
    recorder.finish().await;
    let dir = rec.dir;
    let collected = rec
        .collector
        .await
        .map_err(|e| Error::Io(e.to_string()))?
        .map_err(|e| {
            Error::Io(format!(
                "the history could not be written ({e}); it ends at its last flushed block, which `fhirsurge check {}` reads",
                dir.display()
            ))
        })?;
    let judged = rec.judge.finish().await.map_err(io)?;

    let phases = assemble::Phases {
        run_id,
        namespace: d.namespace,
        started_at,
        load_s: l.load_s,
        encounters: l.driven.encounters,
        peak_concurrency: l.driven.peak_concurrency,
        abandoned: d.flow.abandoned.load(Ordering::Relaxed),
        skipped: d.flow.skipped.load(Ordering::Relaxed),
        cut_off: l.driven.cut_off,
        interrupted: l.driven.interrupted || control.interrupt.is_stopped(),
        stop: control.interrupt.reason().map(|signal| report::Stop {
            signal,
            at_s: l.stop_at.get().copied().unwrap_or(l.load_s),
            grace_s: control.bounds.grace.as_secs_f64(),
            readback_budget_s: control.bounds.readback_budget.as_secs_f64(),
            readback: ended,
            history_end: collected.cut.as_ref().map(|c| report::HistoryEnd {
                error: c.error.clone(),
                lines: c.end.map(|e| e.lines),
                bytes: c.end.map(|e| e.bytes),
            }),
        }),
        mapping: d.mapper.report(),
        open: l.driven.open.clone(),
        races: assemble::races(scenario, &d.flow.races),
        probes,
        bodies_stored: options.bodies == Bodies::Store,
    };
    let cut = collected.cut.clone();
    let output_failed = |what: &str, e: &dyn std::fmt::Display| {
        bounded::output_failed(what, e, &rec.history_path, cut.as_ref())
    };
    stack
        .write_ledger(&dir)
        .map_err(|e| output_failed("the ledger", &e))?;
    let report = assemble::assemble(
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
        .map_err(|e| output_failed("the report", &e))?;
    let clock = (start, rec.wall_start);
    phases::write_shard_record(scenario, part, &report, &dir, (clock, &l))?;
    Ok(Outcome { dir, report })
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
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
