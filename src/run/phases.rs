//! The steps `execute_with` strings together, each with what it needs and what it leaves:
//! where the run records (its folder, the collector, the live judge), the workflow it
//! drives, the load phase, the wind-down after the load (scope probe, heal, settle, late notifications)
//! and the shard record a merge reads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    Bodies, Control, Error, HARNESS_PREFIX, Options, Stack, bounded, collector, io, judge, keep,
    load, progress, scope, shard, subscriptions, visibility, workflow,
};
use crate::fhir::{Client, Note, Recorder};
use crate::history;
use crate::profile::Profile;
use crate::report::Report;
use crate::scenario::Scenario;
use crate::synth::CodeTables;

/// Where the run's records go while it runs.
pub(super) struct Recording {
    pub(super) dir: PathBuf,
    pub(super) history_path: PathBuf,
    pub(super) live: collector::Live,
    /// The run clock's zero on the wall clock.
    pub(super) wall_start: SystemTime,
    /// Gets every record as it is taken.
    pub(super) judge: judge::Judge,
    pub(super) collector: JoinHandle<Result<collector::Collected, history::Error>>,
}

/// Creates the run folder and starts the collector (which writes what `keep` keeps) and
/// the live judge (which sees every record).
pub(super) fn record(
    scenario: &Scenario,
    profile: &Profile,
    (options, control): (&Options, &Control),
    folder: String,
    (start, rx): (Instant, mpsc::Receiver<Note>),
) -> Result<Recording, Error> {
    let dir = options.out.join(folder);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    let live = collector::Live::default();
    let wall_start = SystemTime::now() - start.elapsed();
    // The calls are kept only for an audit trail that will be fetched.
    let audit = scenario.audit.enabled && profile.audit.not_exposed(&profile.name).is_none();
    let judge = judge::Judge::start(super::recheck::options(profile), audit).map_err(io)?;
    let sinks = collector::Sinks {
        dir: dir.clone(),
        start,
        wall_start,
        growth_window: scenario.growth.window_for(scenario.load.duration()),
        stop: control.interrupt.clone(),
        bodies: options.bodies == Bodies::Store,
        filter: keep::Filter::new(scenario.keep, scenario.seed),
        judge: Some(judge.feed()),
    };
    let collector = tokio::spawn(bounded::collect_or_stop(
        collector::collect(rx, sinks, live.clone()),
        control.interrupt.clone(),
    ));
    Ok(Recording {
        history_path: dir.join(history::FILE),
        dir,
        live,
        wall_start,
        judge,
        collector,
    })
}

/// The workflow the load drives, with its dialect and its visibility prober.
pub(super) struct Driving {
    pub(super) namespace: String,
    pub(super) mapper: Arc<workflow::Mapper>,
    pub(super) flow: Arc<workflow::Workflow>,
    pub(super) prober: visibility::Prober,
}

/// Builds the workflow over this part's slice of the synthetic population, speaking the
/// EHR's dialect as its CapabilityStatement allows.
pub(super) async fn driving(
    scenario: &Scenario,
    (profile, stack): (&Profile, &Stack),
    (client, part): (&Client, &shard::Part),
    run_id: &str,
    tables: CodeTables,
) -> Driving {
    let namespace = scenario
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{HARNESS_PREFIX}{run_id}"));
    let population = part.population(scenario.seed, &namespace, tables);
    let mapper = Arc::new(workflow::Mapper::new(
        profile.clone(),
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
    Driving {
        namespace,
        mapper,
        flow,
        prober,
    }
}

/// After the load: the scope probe (while the faults are still on: the mock's
/// `scope_bypass` is ground truth only while it can fire), then the faults healed, the
/// settle time waited (a stop ends it) and the late notifications awaited.
pub(super) async fn wind_down(
    (scenario, profile, stack): (&Scenario, &Profile, &Stack),
    (client, recorder): (&Client, &Recorder),
    (d, rec): (&Driving, &Recording),
    subs: Option<&subscriptions::Live>,
    control: &Control,
) -> scope::Probed {
    let probed = bounded::probe_scopes(
        scope::Setup {
            scenario,
            profile,
            settings: stack.client_settings(scenario, profile),
            recorder,
            client,
            targets: Vec::new(),
            process: d.flow.processes.load(Ordering::Relaxed) + 1 + (2 << 32),
        },
        &rec.history_path,
        control,
    )
    .await;
    stack.heal();
    if let Some(s) = subs {
        s.heal();
    }
    stack.mark_faults(recorder, false).await;
    if !control.interrupt.is_stopped() {
        // A stop during the settle time ends it: the read-back's budget starts.
        let settle = tokio::time::sleep(scenario.readback.settle);
        let _ = control
            .interrupt
            .bounded(std::time::Duration::ZERO, settle)
            .await;
    }
    if let Some(s) = subs {
        s.finish(
            client,
            recorder,
            scenario.readback.settle,
            &control.interrupt,
        )
        .await;
    }
    probed
}

/// What the load phase left.
pub(super) struct Loaded {
    pub(super) driven: load::Driven,
    pub(super) load_start: Instant,
    pub(super) load_s: f64,
    /// When the first stop request came, seconds into the load.
    pub(super) stop_at: Arc<OnceLock<f64>>,
    /// How late the load began after `--start-at`.
    pub(super) start_late_ms: Option<f64>,
}

/// Drives the load (from `--start-at` when given) with the progress line on, until its
/// duration or a stop; a load that could not start any encounter is an error.
pub(super) async fn load(
    scenario: &Scenario,
    stack: &Stack,
    (d, rec): (&Driving, &Recording),
    control: &Control,
    part: &shard::Part,
) -> Result<Loaded, Error> {
    let active = Arc::new(AtomicU64::new(0));
    let progress = progress::spawn(progress::Gauges {
        live: rec.live.clone(),
        active: active.clone(),
        ledgers: stack.ledgers(),
        planned: scenario.load.duration(),
    });
    let start_late_ms = part.wait_start().await;
    let load_start = Instant::now();
    let stop_at = bounded::stop_clock(&control.interrupt, load_start);
    let limits = load::Limits {
        max_encounters: scenario.max_encounters,
        interrupt: control.interrupt.clone(),
        grace: control.bounds.grace,
    };
    let driven = load::drive(
        d.flow.clone(),
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
    Ok(Loaded {
        driven,
        load_start,
        load_s,
        stop_at,
        start_late_ms,
    })
}

/// Writes the shard record beside a shard's report: what `merge` checks and aligns by.
pub(super) fn write_shard_record(
    scenario: &Scenario,
    part: &shard::Part,
    report: &Report,
    dir: &std::path::Path,
    ((start, wall_start), l): ((Instant, SystemTime), &Loaded),
) -> Result<(), Error> {
    let Some(s) = &part.shard else {
        return Ok(());
    };
    let record = shard::Record {
        run_id: report.run.id.clone(),
        scenario: scenario.name.clone(),
        scenario_digest: shard::digest(&s.scenario_text),
        scenario_text: s.scenario_text.clone(),
        shard: s.shard,
        run_seed: s.run_seed,
        seed: scenario.seed,
        clock_zero_unix_us: shard::unix_us(wall_start),
        load_start_s: l.load_start.duration_since(start).as_secs_f64(),
        load_s: report.summary.load_s,
        start_at: part.start_at.map(|t| t.to_rfc3339()),
        start_late_ms: l.start_late_ms,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    record.write(dir).map_err(io)
}
