//! The hand-off from every FHIR interaction to the collector: history lines and latency
//! samples go over one bounded channel to the single task that owns the history writer
//! and the metrics. Indexes and times are assigned here, and each record is serialized
//! here, on the sender's thread, so the collector only appends bytes and nothing is
//! cloned to cross the channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::history::{Completion, Event, Op, Outcome, Record};
use crate::metrics::Sample;

/// What the collector receives.
#[derive(Debug)]
pub enum Note {
    /// One history line.
    Line(Line),
    /// A completion's line and its latency sample.
    Done(Line, Sample),
    /// A whole encounter's latency (no history line): from its intended start (open
    /// model) or its start (closed) to its end.
    Encounter(Sample),
    /// Flush the history to disk, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Flush and stop collecting.
    Finish,
    /// A stored answer's line for the bodies file (`--store-bodies`), redacted.
    Body(Vec<u8>),
}

impl Note {
    /// The history record this note carries, parsed back (for tests and tools).
    pub fn record(&self) -> Option<Record> {
        match self {
            Note::Line(line) | Note::Done(line, _) => serde_json::from_slice(&line.bytes).ok(),
            _ => None,
        }
    }

    /// The latency sample this note carries.
    pub fn sample(&self) -> Option<&Sample> {
        match self {
            Note::Done(_, sample) | Note::Encounter(sample) => Some(sample),
            _ => None,
        }
    }
}

/// A serialized history record (JSON and its newline) and what the collector counts.
#[derive(Debug)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub kind: Kind,
    /// What a bounded history (`[history] keep`) may leave out of the file.
    pub shed: Shed,
}

/// Whether a line may be left out of a bounded history file; the run's checker gets
/// every line regardless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// Always kept: writes, their completions, the read-back, marks.
    Never,
    /// The invocation (this history index) of a load-phase or visibility-probe read or
    /// search: kept only in the sample.
    Read(u64),
    /// A completion of the invocation at this index: kept when that invocation was.
    Completes(u64),
}

impl Shed {
    /// The classification of a record's event, at history `index`.
    fn of(index: u64, event: &EventRef<'_>) -> Shed {
        use crate::history::{Interaction as F, Phase};
        match event {
            EventRef::Invoke(op)
                if matches!(op.phase, Phase::Load | Phase::Probe)
                    && matches!(op.f, F::Read | F::Vread | F::Search | F::History) =>
            {
                Shed::Read(index)
            }
            EventRef::Ok(c) | EventRef::Fail(c) | EventRef::Info(c) => Shed::Completes(c.invoke),
            _ => Shed::Never,
        }
    }
}

/// What kind of record a line holds, as far as the live counters care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An invocation; `load_retry` when it re-sends an earlier one in the load phase.
    Invoke {
        load_retry: bool,
    },
    Completion(Outcome),
    Other,
}

/// The shape of [`Record`], borrowing its event: serializes to the same bytes.
#[derive(Serialize)]
struct RecordRef<'a> {
    index: u64,
    time_us: u64,
    process: u64,
    event: EventRef<'a>,
}

/// The events a sender serializes without owning them; tagged like [`Event`].
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum EventRef<'a> {
    Invoke(&'a Op),
    Ok(&'a Completion),
    Fail(&'a Completion),
    Info(&'a Completion),
    #[serde(untagged)]
    Other(&'a Event),
}

impl<'a> EventRef<'a> {
    fn kind(&self) -> Kind {
        match self {
            EventRef::Invoke(op) => Kind::Invoke {
                load_retry: op.retry_of.is_some() && op.phase == crate::history::Phase::Load,
            },
            EventRef::Ok(_) => Kind::Completion(Outcome::Ok),
            EventRef::Fail(_) => Kind::Completion(Outcome::Fail),
            EventRef::Info(_) => Kind::Completion(Outcome::Info),
            EventRef::Other(_) => Kind::Other,
        }
    }

    fn of(event: &'a Event) -> EventRef<'a> {
        match event {
            Event::Invoke(op) => EventRef::Invoke(op),
            Event::Ok(c) => EventRef::Ok(c),
            Event::Fail(c) => EventRef::Fail(c),
            Event::Info(c) => EventRef::Info(c),
            other => EventRef::Other(other),
        }
    }
}

/// Cheap to clone; every clone feeds the same collector.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Note>,
    next: Arc<AtomicU64>,
    start: Instant,
    /// Whether answers' bodies are handed over too (`--store-bodies`).
    bodies: bool,
}

impl Recorder {
    /// A recorder whose clock starts at `start`, and the receiving end for the collector.
    pub fn new(start: Instant, capacity: usize) -> (Recorder, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(capacity);
        let recorder = Recorder {
            tx,
            next: Arc::new(AtomicU64::new(0)),
            start,
            bodies: false,
        };
        (recorder, rx)
    }

    /// This recorder (and its clones made after) also hands answers' bodies over.
    pub fn storing_bodies(mut self) -> Self {
        self.bodies = true;
        self
    }

    /// Whether answers' bodies are handed over.
    pub fn stores_bodies(&self) -> bool {
        self.bodies
    }

    /// Hands the answer to invocation `invoke` over for the bodies file, redacted; does
    /// nothing unless bodies are stored.
    pub async fn body(
        &self,
        invoke: u64,
        (method, url): (&str, &str),
        status: Option<u16>,
        body: &[u8],
    ) {
        if self.bodies {
            let line = crate::history::bodies::line(invoke, method, url, status, body);
            self.send(Note::Body(line)).await;
        }
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

    /// Assigns the next index and time and serializes the record.
    fn line(&self, process: u64, event: EventRef<'_>) -> (u64, Line) {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let kind = event.kind();
        let shed = Shed::of(index, &event);
        let record = RecordRef {
            index,
            time_us: self.now_us(),
            process,
            event,
        };
        let mut bytes = Vec::with_capacity(256);
        // Serializing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut bytes, &record);
        bytes.push(b'\n');
        (index, Line { bytes, kind, shed })
    }

    /// Hands a note to the collector.
    pub async fn send(&self, note: Note) {
        // A closed collector means the run is being torn down; nothing left to keep.
        let _ = self.tx.send(note).await;
    }

    /// Hands a note over without waiting (from a `Drop`); `false` when the channel is
    /// full or closed and the note is lost.
    pub fn try_send(&self, note: Note) -> bool {
        self.tx.try_send(note).is_ok()
    }

    /// Appends an event and returns its history index.
    pub async fn record(&self, process: u64, event: &Event) -> u64 {
        let (index, line) = self.line(process, EventRef::of(event));
        self.send(Note::Line(line)).await;
        index
    }

    /// Records an invocation.
    pub async fn invoke(&self, process: u64, op: &Op) -> u64 {
        let (index, line) = self.line(process, EventRef::Invoke(op));
        self.send(Note::Line(line)).await;
        index
    }

    /// Records a transaction entry's invocation. Its HTTP exchange is the transaction's,
    /// so the live counters do not count it again.
    pub async fn invoke_entry(&self, process: u64, op: &Op) -> u64 {
        let (index, mut line) = self.line(process, EventRef::Invoke(op));
        line.kind = Kind::Other;
        self.send(Note::Line(line)).await;
        index
    }

    /// Records a transaction entry's completion: no latency sample, not counted live.
    pub async fn complete_entry(&self, process: u64, outcome: Outcome, completion: &Completion) {
        let event = match outcome {
            Outcome::Ok => EventRef::Ok(completion),
            Outcome::Fail => EventRef::Fail(completion),
            Outcome::Info => EventRef::Info(completion),
        };
        let (_, mut line) = self.line(process, event);
        line.kind = Kind::Other;
        self.send(Note::Line(line)).await;
    }

    /// Records a completion (`outcome` says which) and its latency sample, in one
    /// message.
    pub async fn complete(
        &self,
        process: u64,
        outcome: Outcome,
        completion: &Completion,
        sample: Sample,
    ) {
        let note = self.done(process, outcome, completion, sample);
        self.send(note).await;
    }

    /// The message [`Recorder::complete`] sends, serialized now (the completion is only
    /// borrowed until this returns), to be handed to [`Recorder::send`].
    pub fn done(
        &self,
        process: u64,
        outcome: Outcome,
        completion: &Completion,
        sample: Sample,
    ) -> Note {
        let event = match outcome {
            Outcome::Ok => EventRef::Ok(completion),
            Outcome::Fail => EventRef::Fail(completion),
            Outcome::Info => EventRef::Info(completion),
        };
        Note::Done(self.line(process, event).1, sample)
    }

    /// Records a whole encounter's latency.
    pub async fn encounter(&self, sample: Sample) {
        self.send(Note::Encounter(sample)).await;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultMark, Interaction, Seen};

    /// The borrowed form must write exactly what `Record`'s own serialization writes,
    /// or histories would not read back.
    #[tokio::test]
    async fn lines_are_records() {
        let (recorder, mut rx) = Recorder::new(Instant::now(), 16);
        let op = Op {
            f: Interaction::Read,
            resource_type: "Patient".into(),
            id: Some("a b".into()),
            ..Op::default()
        };
        let completion = Completion {
            invoke: 0,
            status: Some(200),
            error: None,
            id: None,
            version: None,
            seen: vec![Seen {
                resource_type: "Patient".into(),
                id: "a b".into(),
                version: Some("W/\"1\"".into()),
                ..Seen::default()
            }],
            total: None,
            fault: Some("f1".into()),
            detail: None,
            latency_us: 12,
        };
        let mark = FaultMark::default();
        let sample = Sample {
            op: "read Patient".into(),
            outcome: Outcome::Ok,
            error: None,
            at_us: 1,
            latency_us: 12,
            phase: Default::default(),
            group: None,
        };
        recorder.invoke(3, &op).await;
        recorder
            .complete(3, Outcome::Info, &completion, sample)
            .await;
        recorder.record(0, &Event::FaultStart(mark.clone())).await;
        let expected = [
            (Event::Invoke(op), Kind::Invoke { load_retry: false }),
            (Event::Info(completion), Kind::Completion(Outcome::Info)),
            (Event::FaultStart(mark), Kind::Other),
        ];
        for (i, (event, kind)) in expected.into_iter().enumerate() {
            let note = rx.try_recv().unwrap();
            let (Note::Line(line) | Note::Done(line, _)) = &note else {
                panic!("not a line: {note:?}");
            };
            let record = note.record().unwrap();
            assert_eq!(record.index, i as u64);
            assert_eq!(record.event, event);
            let mut own = serde_json::to_vec(&record).unwrap();
            own.push(b'\n');
            assert_eq!(line.bytes, own);
            assert_eq!(line.kind, kind);
        }
    }
}
