//! The collector: the one task that owns the history writer and the metrics. Every
//! interaction's records and samples arrive here over the recorder's channel.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::hlog::Hlogs;
use crate::fhir::Note;
use crate::history::{self, Event, Outcome, Phase};
use crate::metrics::Metrics;

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
    pub records: u64,
    /// Load-phase invocations that re-sent an earlier one.
    pub retries: u64,
}

/// Where the collector writes and how its clock runs.
pub struct Sinks {
    /// The run directory: `history.jsonl` and `hlog/` go in it.
    pub dir: PathBuf,
    /// The run clock's start, and the same moment on the wall clock.
    pub start: Instant,
    pub wall_start: SystemTime,
}

/// The collector's state.
struct Collector {
    writer: history::Writer<std::fs::File>,
    path: PathBuf,
    hlogs: Hlogs,
    metrics: Metrics,
    readback: Metrics,
    records: u64,
    retries: u64,
    since_flush: u32,
    live: Live,
}

/// Drains the channel into the history, the metrics and the interval logs until told to
/// finish or every sender is gone. Latency intervals roll once a second.
pub async fn collect(
    mut rx: mpsc::Receiver<Note>,
    sinks: Sinks,
    live: Live,
) -> Result<Collected, history::Error> {
    let path = sinks.dir.join("history.jsonl");
    let mut c = Collector {
        writer: history::Writer::create(&path)?,
        path,
        hlogs: Hlogs::new(&sinks.dir, sinks.wall_start),
        metrics: Metrics::new(),
        readback: Metrics::new(),
        records: 0,
        retries: 0,
        since_flush: 0,
        live,
    };
    let mut tick = tokio::time::interval_at((sinks.start + INTERVAL).into(), INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            note = rx.recv() => match note {
                None | Some(Note::Finish) => break,
                Some(note) => c.take(note, rx.is_empty())?,
            },
            _ = tick.tick() => c.roll(sinks.start.elapsed()),
        }
    }
    c.roll(sinks.start.elapsed());
    c.flush()?;
    Ok(Collected {
        metrics: c.metrics,
        readback: c.readback,
        records: c.records,
        retries: c.retries,
    })
}

/// How often latency intervals roll.
const INTERVAL: Duration = Duration::from_secs(1);

impl Collector {
    fn take(&mut self, note: Note, idle: bool) -> Result<(), history::Error> {
        match note {
            Note::Record(record) => {
                match &record.event {
                    Event::Ok(_) | Event::Fail(_) | Event::Info(_) => {
                        self.live.add(outcome_of(&record.event));
                    }
                    Event::Invoke(op) if op.retry_of.is_some() && op.phase == Phase::Load => {
                        self.retries += 1;
                    }
                    _ => {}
                }
                self.writer.write(&record).map_err(|e| self.io(e))?;
                self.records += 1;
                self.since_flush += 1;
            }
            Note::Sample(s) if s.phase == Phase::Readback => self.readback.record(&s),
            Note::Sample(s) => self.metrics.record(&s),
            Note::Flush(done) => {
                self.flush()?;
                let _ = done.send(());
            }
            Note::Finish => {}
        }
        // Keep what is on disk close to what happened, so a crash loses little.
        if self.since_flush >= 4096 || idle {
            self.writer.flush().map_err(|e| self.io(e))?;
            self.since_flush = 0;
        }
        Ok(())
    }

    /// Closes the latency interval; a failing interval log costs the log, not the run.
    fn roll(&mut self, now: Duration) {
        let rolled = self.metrics.roll(now.as_micros() as u64);
        if let Err(e) = self.hlogs.write(&rolled, now, INTERVAL) {
            tracing::warn!("interval log: {e}");
        }
    }

    fn flush(&mut self) -> Result<(), history::Error> {
        if let Err(e) = self.hlogs.flush() {
            tracing::warn!("interval log: {e}");
        }
        self.writer.flush().map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> history::Error {
        history::Error::Io {
            path: self.path.clone(),
            source,
        }
    }
}

fn outcome_of(event: &Event) -> Outcome {
    match event {
        Event::Ok(_) => Outcome::Ok,
        Event::Fail(_) => Outcome::Fail,
        _ => Outcome::Info,
    }
}
