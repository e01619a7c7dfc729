//! The hand-off from every FHIR interaction to the collector: history records and
//! latency samples go over one bounded channel to the single task that owns the history
//! writer and the metrics. Indexes and times are assigned here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::history::{Event, Op, Record};
use crate::metrics::Sample;

/// What the collector receives.
#[derive(Debug)]
pub enum Note {
    Record(Record),
    /// A completion's latency sample; follows its completion record.
    Sample(Sample),
    /// Flush the history to disk, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Flush and stop collecting.
    Finish,
}

/// Cheap to clone; every clone feeds the same collector.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Note>,
    next: Arc<AtomicU64>,
    start: Instant,
}

impl Recorder {
    /// A recorder whose clock starts at `start`, and the receiving end for the collector.
    pub fn new(start: Instant, capacity: usize) -> (Recorder, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(capacity);
        let recorder = Recorder {
            tx,
            next: Arc::new(AtomicU64::new(0)),
            start,
        };
        (recorder, rx)
    }

    /// The run clock's start.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Microseconds from the run start to `at`.
    pub fn us_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    /// Appends an event and returns its history index.
    pub async fn record(&self, process: u64, event: Event) -> u64 {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let record = Record {
            index,
            time_us: self.now_us(),
            process,
            event,
        };
        // A closed collector means the run is being torn down; nothing left to keep.
        let _ = self.tx.send(Note::Record(record)).await;
        index
    }

    /// Records an invocation.
    pub async fn invoke(&self, process: u64, op: Op) -> u64 {
        self.record(process, Event::Invoke(op)).await
    }

    /// Waits until everything recorded so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Note::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Tells the collector to finish once what is queued is written.
    pub async fn finish(&self) {
        let _ = self.tx.send(Note::Finish).await;
    }

    /// Hands a latency sample to the collector.
    pub async fn sample(&self, sample: Sample) {
        let _ = self.tx.send(Note::Sample(sample)).await;
    }
}
