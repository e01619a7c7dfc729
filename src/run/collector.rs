//! The collector: the one task that owns the history writer and the metrics. Every
//! interaction's records and samples arrive here over the recorder's channel.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

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
}

/// Drains the channel into `path` and the metrics until every sender is gone.
pub async fn collect(
    mut rx: mpsc::Receiver<Note>,
    path: &Path,
    live: Live,
) -> Result<Collected, history::Error> {
    let mut writer = history::Writer::create(path)?;
    let mut metrics = Metrics::new();
    let mut readback = Metrics::new();
    let mut records = 0;
    let io_err = |source| history::Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut since_flush = 0u32;
    while let Some(note) = rx.recv().await {
        match note {
            Note::Record(record) => {
                if let Event::Ok(_) | Event::Fail(_) | Event::Info(_) = &record.event {
                    live.add(outcome_of(&record.event));
                }
                writer.write(&record).map_err(io_err)?;
                records += 1;
                since_flush += 1;
            }
            Note::Sample(sample) if sample.phase == Phase::Readback => readback.record(&sample),
            Note::Sample(sample) => metrics.record(&sample),
            Note::Flush(done) => {
                writer.flush().map_err(io_err)?;
                let _ = done.send(());
            }
            Note::Finish => break,
        }
        // Keep what is on disk close to what happened, so a crash loses little.
        if since_flush >= 4096 || rx.is_empty() {
            writer.flush().map_err(io_err)?;
            since_flush = 0;
        }
    }
    writer.flush().map_err(io_err)?;
    Ok(Collected {
        metrics,
        readback,
        records,
    })
}

fn outcome_of(event: &Event) -> Outcome {
    match event {
        Event::Ok(_) => Outcome::Ok,
        Event::Fail(_) => Outcome::Fail,
        _ => Outcome::Info,
    }
}
