//! The collector: the one task that owns the history writer and the metrics. Every
//! interaction's records and samples arrive here over the recorder's channel; every
//! record goes on to the run's live judge, and the history budget (`keep`) decides which
//! also go into the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::Interrupt;
use super::hlog::Hlogs;
use super::judge::Feed;
use super::keep::Filter;
use crate::fhir::Note;
use crate::fhir::recorder::{Kind, Line};
use crate::history::{self, Outcome, Phase};
use crate::metrics::Metrics;
use crate::metrics::growth::{Growth, Window};
use crate::report::HistoryKept;

/// Live counters the progress line reads.
#[derive(Clone, Debug, Default)]
pub struct Live {
    inner: Arc<Mutex<LiveCounts>>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LiveCounts {
    pub completions: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl Live {
    pub fn snapshot(&self) -> LiveCounts {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, outcome: Outcome) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.completions += 1;
        match outcome {
            Outcome::Ok => c.ok += 1,
            Outcome::Fail => c.fail += 1,
            Outcome::Info => c.info += 1,
        }
    }
}

/// What the collector hands back when the channel closes.
pub struct Collected {
    /// The load phase.
    pub metrics: Metrics,
    /// The final read-back.
    pub readback: Metrics,
    /// Whole encounters, one sample each (op `encounter`), apart from the interactions.
    pub encounters: Metrics,
    /// Per user group (its index): its load-phase interactions and its encounters.
    pub groups: BTreeMap<u16, (Metrics, Metrics)>,
    /// The visibility probes' samples.
    pub probes: Metrics,
    pub records: u64,
    /// Load-phase invocations that re-sent an earlier one.
    pub retries: u64,
    /// The load phase's growth windows (p99 and throughput per operation against the
    /// resources held), and their length.
    pub growth: Vec<Window>,
    pub growth_window: Duration,
    /// Resources the harness counted as held at the end (acknowledged creates).
    pub resources: u64,
    /// What the history file kept.
    pub history: HistoryKept,
    /// When writing the history failed (the disk filled): why, and where it ends.
    pub cut: Option<Cut>,
}

/// A history whose writing failed: the run stopped, and the file ends here.
#[derive(Clone, Debug)]
pub struct Cut {
    /// The write error (`No space left on device`, `File too large`).
    pub error: String,
    /// Where the history on disk ends; `None` when it could not be read back.
    pub end: Option<history::End>,
}

/// Where the collector writes and how its clock runs.
pub struct Sinks {
    /// The run directory: `history.jsonl.zst` and `hlog/` go in it.
    pub dir: PathBuf,
    /// The run clock's start, and the same moment on the wall clock.
    pub start: Instant,
    pub wall_start: SystemTime,
    /// The length of a growth window.
    pub growth_window: Duration,
    /// Halted when the history cannot be written: load that is not recorded proves
    /// nothing.
    pub stop: Interrupt,
    /// Whether answers' bodies are written too (`bodies.jsonl.zst`, `--store-bodies`).
    pub bodies: bool,
    /// What the history file keeps.
    pub filter: Filter,
    /// The run's live judge, which gets every record.
    pub judge: Option<Feed>,
}

/// The collector's state.
struct Collector {
    /// `None` once a write failed: the rest is not recorded.
    writer: Option<history::FileWriter>,
    path: PathBuf,
    /// The bodies file, when bodies are stored (and until a write fails).
    bodies: Option<history::FileWriter>,
    cut: Option<Cut>,
    stop: Interrupt,
    hlogs: Hlogs,
    metrics: Metrics,
    readback: Metrics,
    encounters: Metrics,
    groups: BTreeMap<u16, (Metrics, Metrics)>,
    probes: Metrics,
    growth: Growth,
    records: u64,
    retries: u64,
    flushed: Instant,
    live: Live,
    filter: Filter,
    judge: Option<Feed>,
    /// Lines taken since the judge was last fed.
    judging: Vec<Vec<u8>>,
}

/// Drains the channel into the history, the metrics and the interval logs until told to
/// finish or every sender is gone. Latency intervals roll once a second.
pub async fn collect(
    mut rx: mpsc::Receiver<Note>,
    mut sinks: Sinks,
    live: Live,
) -> Result<Collected, history::Error> {
    let judge = sinks.judge.take();
    let filter = std::mem::replace(&mut sinks.filter, Filter::new(Default::default(), 0));
    let path = sinks.dir.join(history::FILE);
    let mut c = Collector {
        writer: Some(history::FileWriter::create(&path)?),
        bodies: match sinks.bodies {
            true => Some(history::FileWriter::create(
                &sinks.dir.join(history::bodies::FILE),
            )?),
            false => None,
        },
        path,
        cut: None,
        stop: sinks.stop.clone(),
        hlogs: Hlogs::new(&sinks.dir, sinks.wall_start),
        metrics: Metrics::new(),
        readback: Metrics::new(),
        encounters: Metrics::new(),
        groups: BTreeMap::new(),
        probes: Metrics::new(),
        growth: Growth::new(sinks.growth_window),
        records: 0,
        retries: 0,
        flushed: Instant::now(),
        live,
        filter,
        judge,
        judging: Vec::with_capacity(BATCH),
    };
    let mut tick = tokio::time::interval_at((sinks.start + INTERVAL).into(), INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    'collect: loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                for note in batch.drain(..) {
                    if matches!(note, Note::Finish) {
                        c.judge().await;
                        break 'collect;
                    }
                    c.take(note);
                }
                c.judge().await;
                c.idle(rx.is_empty());
                if n < BATCH {
                    // Let notes gather instead of waking once per request; nothing is
                    // waiting on the collector but a flush, and it waits this long at most.
                    tokio::time::sleep(COALESCE).await;
                }
            }
            _ = tick.tick() => {
                c.roll(sinks.start.elapsed());
                c.flush();
            }
        }
    }
    c.roll(sinks.start.elapsed());
    c.flush();
    c.judge().await;
    c.log_readback(&sinks);
    let history = c.filter.tally();
    if let Some(writer) = c.writer.take()
        && let Err(e) = writer.finish()
    {
        c.failed(FILE_HISTORY, e);
    }
    if let Some(bodies) = c.bodies.take()
        && let Err(e) = bodies.finish()
    {
        c.failed(history::bodies::FILE, e);
    }
    if let Some(cut) = &mut c.cut {
        cut.end = end_of(c.path.clone()).await;
    }
    let Collector {
        cut,
        metrics,
        readback,
        encounters,
        groups,
        probes,
        growth,
        records,
        retries,
        ..
    } = c;
    let growth_window = growth.window();
    let resources = growth.resources();
    Ok(Collected {
        growth: growth.finish(sinks.start.elapsed().as_micros() as u64),
        growth_window,
        resources,
        metrics,
        readback,
        encounters,
        groups,
        probes,
        records,
        retries,
        history,
        cut,
    })
}

/// Where the history at `path` ends, read on a blocking thread; `None` (said in the log)
/// when it cannot be read back.
async fn end_of(path: PathBuf) -> Option<history::End> {
    let read = tokio::task::spawn_blocking(move || history::end_of(&path)).await;
    match read {
        Ok(Ok(end)) => {
            tracing::error!("the history ends {end}");
            Some(end)
        }
        Ok(Err(e)) => {
            tracing::error!("the history cannot be read back: {e}");
            None
        }
        Err(e) => {
            tracing::error!("the history cannot be read back: {e}");
            None
        }
    }
}

/// Whether an operation label names a create (single or conditional): an acknowledged
/// one is a resource more the target holds. A conditional create that matched an
/// existing resource counts too (the sample does not say which), so the count is an
/// upper bound; transaction entries are not counted.
fn creates(op: &str) -> bool {
    op.starts_with("create ") || op.starts_with("conditional_create ")
}

/// The folder (in the run directory) of the read-back's interval logs.
pub const READBACK_DIR: &str = "readback";

/// How often latency intervals roll (and the history is flushed at the latest).
const INTERVAL: Duration = Duration::from_secs(1);

/// Notes taken from the channel at once.
const BATCH: usize = 1024;

/// How long the collector lets notes gather after draining the channel.
const COALESCE: Duration = Duration::from_millis(2);

/// When the channel runs dry, the history is flushed if the last flush is this old, so
/// that what is on disk stays close to what happened without a write per request.
const IDLE_FLUSH: Duration = Duration::from_millis(50);

impl Collector {
    fn take(&mut self, note: Note) {
        match note {
            Note::Line(line) => self.line(line),
            Note::Done(line, sample) => {
                self.line(line);
                match sample.phase {
                    Phase::Readback | Phase::Audit | Phase::ScopeProbe => {
                        self.readback.record(&sample)
                    }
                    Phase::Probe => self.probes.record(&sample),
                    Phase::Load => {
                        self.metrics.record(&sample);
                        if sample.outcome == Outcome::Ok && creates(&sample.op) {
                            self.growth.wrote(1);
                        }
                        if let Some(g) = sample.group {
                            self.groups.entry(g).or_default().0.record(&sample);
                        }
                    }
                }
            }
            Note::Encounter(sample) => {
                self.encounters.record(&sample);
                if let Some(g) = sample.group {
                    self.groups.entry(g).or_default().1.record(&sample);
                }
            }
            Note::Flush(done) => {
                self.flush();
                let _ = done.send(());
            }
            Note::Body(line) => self.body(&line),
            Note::Finish => {}
        }
    }

    fn line(&mut self, line: Line) {
        match line.kind {
            Kind::Completion(outcome) => self.live.add(outcome),
            Kind::Invoke { load_retry: true } => self.retries += 1,
            _ => {}
        }
        self.records += 1;
        if self.filter.keeps(line.shed)
            && let Some(Err(e)) = self.writer.as_mut().map(|w| w.write_line(&line.bytes))
        {
            self.failed(FILE_HISTORY, e);
        }
        if self.judge.is_some() {
            self.judging.push(line.bytes);
        }
    }

    /// Hands the lines taken since the last call to the judge.
    async fn judge(&mut self) {
        if let Some(feed) = &self.judge
            && !self.judging.is_empty()
        {
            let lines = std::mem::replace(&mut self.judging, Vec::with_capacity(BATCH));
            feed.send(lines).await;
        }
    }

    fn body(&mut self, line: &[u8]) {
        if let Some(Err(e)) = self.bodies.as_mut().map(|w| w.write_line(line)) {
            self.failed(history::bodies::FILE, e);
        }
    }

    /// Flushes when the channel has run dry and the last flush is old enough.
    fn idle(&mut self, dry: bool) {
        if dry && self.flushed.elapsed() >= IDLE_FLUSH {
            self.flush();
        }
    }

    /// A history write failed: the writers are dropped (nothing more is written) and the
    /// run is halted.
    fn failed(&mut self, file: &str, error: std::io::Error) {
        drop(self.writer.take());
        drop(self.bodies.take());
        if self.cut.is_some() {
            return; // the first failure said where the history ends
        }
        let error = format!("{file}: {error}");
        tracing::error!("{error}; stopping the run");
        // Where the history ends is read once the collector is done (off the runtime's
        // threads: a long history takes a while to decompress).
        self.cut = Some(Cut { error, end: None });
        self.stop.halt(DISK_FULL);
    }

    /// Closes the latency interval; a failing interval log costs the log, not the run.
    fn roll(&mut self, now: Duration) {
        let rolled = self.metrics.roll(now.as_micros() as u64);
        for r in &rolled {
            self.growth.absorb(&r.op, &r.histogram);
        }
        self.growth.tick(now.as_micros() as u64);
        if let Err(e) = self.hlogs.write(&rolled, now, INTERVAL) {
            tracing::warn!("interval log: {e}");
        }
    }

    /// The read-back's histograms, one interval each from the run's start, in
    /// `readback/hlog/`: what `merge` adds up losslessly across shards.
    fn log_readback(&mut self, sinks: &Sinks) {
        let now = sinks.start.elapsed();
        let rolled = self.readback.roll(now.as_micros() as u64);
        let mut logs = Hlogs::new(&sinks.dir.join(READBACK_DIR), sinks.wall_start);
        if let Err(e) = logs.write(&rolled, now, now).and_then(|()| logs.flush()) {
            tracing::warn!("read-back interval log: {e}");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.hlogs.flush() {
            tracing::warn!("interval log: {e}");
        }
        self.flushed = Instant::now();
        if let Some(Err(e)) = self.writer.as_mut().map(history::Writer::flush) {
            self.failed(FILE_HISTORY, e);
        }
        if let Some(Err(e)) = self.bodies.as_mut().map(history::Writer::flush) {
            self.failed(history::bodies::FILE, e);
        }
    }
}

const FILE_HISTORY: &str = history::FILE;

/// What a run stopped because its history could not be written was stopped by.
pub const DISK_FULL: &str = "disk full";
