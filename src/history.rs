//! The run's history: every FHIR interaction as an invocation followed by one completion
//! (`ok`, `fail` or `info`, after Jepsen), plus the fault intervals injected around them.
//!
//! One JSON object per line (`history.jsonl.zst`, zstd-compressed), streamed to disk by
//! [`Writer`] and read back lazily by [`Reader`], which stops cleanly at a line (or a
//! compressed block) cut off by a crash. The
//! checker is a pure function of these records. Uses `vocab` (interaction kinds and
//! outcomes) and no other module of the crate.
//!
//! No response body is stored in the history: what the checker needs of a resource is
//! its [`Content`] digest (whole, and per top-level element), which tells *that* and
//! *where* two versions differ without keeping the clinical text. Only when asked
//! (`run --store-bodies`) are bodies written, redacted, to a file of their own
//! ([`bodies`]).

use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod bodies;
mod content;
mod end;
mod seen;
pub use crate::vocab::interaction::{ErrorClass, Interaction, Outcome, Phase};
pub use crate::vocab::notification::{
    EventsQuery, Form, Named, Notification, NotificationType, Payload, Recovery, SubscriptionMark,
    SubscriptionState,
};
pub use content::{Content, ElementDiff, SERVER_OWNED};
pub use end::{End, end_of};
pub use seen::{harness_identifiers, seen};

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the history, dense from 0.
    pub index: u64,
    /// Microseconds since the run started (monotonic clock).
    pub time_us: u64,
    /// The logical process (virtual user). A process whose operation ended `info` is
    /// crashed and continues under a new process id, as in Jepsen.
    pub process: u64,
    pub event: Event,
}

/// What happened at this point of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An interaction was sent (or is about to be).
    Invoke(Op),
    /// It took effect; the completion carries what the server said.
    Ok(Completion),
    /// It definitely did not take effect (refused before sending, a 4xx before commit).
    Fail(Completion),
    /// Unknown: it may or may not have taken effect (timeout, reset after sending, 5xx).
    Info(Completion),
    /// A fault interval began.
    FaultStart(FaultMark),
    /// A fault interval ended.
    FaultStop(FaultMark),
    /// A subscription was created, became active, failed or was deleted.
    Subscription(SubscriptionMark),
    /// The notification receiver got a delivery.
    Notification(Notification),
    /// The harness asked the server's `$events` to replay a gap.
    EventsQuery(EventsQuery),
}

/// The `detail` of an `info` completion the harness itself gave up on: a request still
/// unanswered when the run stopped waiting for it (grace period or read-back budget over).
/// Whether it took effect is unknown, and no one told the integration it failed, so it is
/// never a `committed_despite_error`.
pub const ABANDONED: &str =
    "unanswered when the run stopped waiting (grace period or read-back budget over)";

/// An invocation: what the harness asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub f: Interaction,
    /// FHIR resource type (`Observation`), or empty for system-level interactions.
    pub resource_type: String,
    /// Server id addressed (read, vread, update, history), opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The version addressed: vread's version, or the `If-Match` version of an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The business identifier (`system|value`) the harness wrote or searched for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Digest of what a write sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Search parameters as sent (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "is_load")]
    pub phase: Phase,
    /// The invocation index this one re-sends, when the client retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<u64>,
    /// The workflow step that issued it (`write_back`, `close_encounter`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// For writes: the scenario's subscriptions whose criteria what was sent matches
    /// (a notification is due for each once the write takes effect).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// For a transaction whose entries are recorded as invocations of their own: how
    /// many there are. A transaction without it is opaque to the checker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u32>,
    /// For one entry of a transaction Bundle: which transaction, and where in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_of: Option<EntryOf>,
}

/// Where a transaction entry sits. An entry is recorded as an invocation of its own
/// (a create or conditional create, with its identifier and content digest) right after
/// its transaction's invocation, and completed right after the transaction's completion
/// with what the transaction-response said of it: the entry's `response.status`, the id
/// and version of its `location` (absolute or relative) and `etag`. The HTTP request is
/// the transaction's: entries carry no latency sample of their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryOf {
    /// The transaction's invocation index.
    pub transaction: u64,
    /// The entry's position in the Bundle, from 0.
    pub entry: u32,
}

fn is_load(p: &Phase) -> bool {
    *p == Phase::Load
}

/// A completion: what came back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Index of the invocation this completes.
    pub invoke: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorClass>,
    /// For writes: the server id assigned or addressed (from `Location` or the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For writes: the version the server reported (`ETag`, `Location`, `meta.versionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Resources the response showed: one for a read, the matches of a search, the
    /// versions of a `_history`. Only resources carrying a harness identifier keep content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<Seen>,
    /// For a search: the total the server reported, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The injected fault that touched this interaction, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// A short human-readable reason (never a body, never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Latency in microseconds, measured from the intended start when paced.
    pub latency_us: u64,
}

/// One resource as a response showed it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Harness identifiers (`system|value`) on the resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// The Patient the resource is about (`Patient/<id>`, from its `subject`, `patient`
    /// or `beneficiary` reference), when it names one; what the scope-leak check reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

/// A fault interval marker (Jepsen's nemesis op).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultMark {
    /// Identifies the interval: the same on start and stop.
    pub fault: String,
    /// The fault kind (`reset_peer`, `ack_and_drop`, …).
    pub kind: String,
    /// Its parameters, as configured.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
}

/// Errors reading or writing a history file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not a history record: {source}")]
    Parse {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// Streams records to a JSONL file, one line each, flushed on [`Writer::flush`].
pub struct Writer<W: Write> {
    out: BufWriter<W>,
}

/// The history file's name in a run directory: JSON lines, zstd-compressed (a run of
/// the main scenario writes ~1 GB of JSON a minute; compressed, a tenth of it).
/// `zstdcat history.jsonl.zst` shows the lines.
pub const FILE: &str = "history.jsonl.zst";

/// zstd's level for the history: its fastest, a few percent of one core at full load.
const ZSTD_LEVEL: i32 = 1;

/// The writer a run uses: compressed, into a file.
pub type FileWriter = Writer<zstd::stream::write::Encoder<'static, std::fs::File>>;

impl FileWriter {
    /// Creates the compressed history file. Each [`Writer::flush`] ends a zstd block, so
    /// everything flushed can be read back (also by a reader while the run goes on, and
    /// after a crash); [`FileWriter::finish`] ends the frame.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let encoder = zstd::stream::write::Encoder::new(file, ZSTD_LEVEL).map_err(io)?;
        Ok(Self::new(encoder))
    }

    /// Flushes and ends the compressed frame.
    pub fn finish(self) -> io::Result<()> {
        let encoder = self.out.into_inner().map_err(|e| e.into_error())?;
        encoder.finish()?.sync_data()
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
        }
    }

    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    /// Appends a record already serialized, newline included.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads records lazily. A final line without its newline (a crash mid-write) is
/// ignored; a malformed complete line is an error naming its line number.
pub struct Reader<R: BufRead> {
    input: R,
    path: PathBuf,
    line: u64,
    buf: String,
    /// Set when the records ended before a clean end of file: what was cut.
    cut: Option<String>,
}

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Reader<Box<dyn BufRead + Send>> {
    /// Opens a history, compressed (zstd, as runs write it) or plain JSON lines.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut input = io::BufReader::with_capacity(1 << 16, file);
        let compressed = input.fill_buf().map_err(io)?.starts_with(&ZSTD_MAGIC);
        let input: Box<dyn BufRead + Send> = if compressed {
            let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(io)?;
            Box::new(io::BufReader::with_capacity(1 << 16, decoder))
        } else {
            Box::new(input)
        };
        Ok(Self::new(input, path))
    }
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R, path: &Path) -> Self {
        Self {
            input,
            path: path.to_owned(),
            line: 0,
            buf: String::new(),
            cut: None,
        }
    }

    /// Complete lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Once the records have ended: what was cut off at the end (a crash, or a run still
    /// writing), `None` for a clean end.
    pub fn cut(&self) -> Option<&str> {
        self.cut.as_deref()
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            let n = match self.input.read_line(&mut self.buf) {
                Ok(n) => n,
                // A compressed history whose frame is not finished (the run is still
                // writing it, or crashed): what was flushed has been read.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.cut = Some(format!(
                        "an unfinished compressed block after line {} (the run crashed or is still writing; {} bytes of it decoded)",
                        self.line,
                        self.buf.len()
                    ));
                    return None;
                }
                Err(source) => {
                    return Some(Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            if n == 0 {
                return None;
            }
            if !self.buf.ends_with('\n') {
                self.cut = Some(format!(
                    "a partial line of {} bytes after line {}",
                    self.buf.len(),
                    self.line
                ));
                return None; // a line cut off by a crash
            }
            self.line += 1;
            if self.buf.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(&self.buf).map_err(|source| Error::Parse {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<Record> {
        let sent = json!({"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 98.6}});
        vec![
            Record {
                index: 0,
                time_us: 10,
                process: 1,
                event: Event::Invoke(Op {
                    f: Interaction::Create,
                    resource_type: "Observation".into(),
                    identifier: Some("urn:fhirsurge:run|o-1".into()),
                    content: Some(Content::of(&sent)),
                    ..Op::default()
                }),
            },
            Record {
                index: 1,
                time_us: 900,
                process: 1,
                event: Event::Ok(Completion {
                    invoke: 0,
                    status: Some(201),
                    id: Some("a9f3-x".into()),
                    version: Some("1".into()),
                    latency_us: 890,
                    ..Completion::default()
                }),
            },
        ]
    }

    /// What a run flushed can be read while it goes on, after a crash cut the file
    /// anywhere, and whole once the frame is finished; nothing flushed is lost.
    #[test]
    fn a_compressed_history_reads_while_written_cut_and_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let records: Vec<Record> = (0..300)
            .flat_map(|i| {
                sample().into_iter().map(move |mut r| {
                    r.index += 2 * i;
                    r
                })
            })
            .collect();
        let mut w = FileWriter::create(&path).unwrap();
        for r in &records[..200] {
            w.write(r).unwrap();
        }
        w.flush().unwrap();
        let read = |p: &Path| -> Vec<Record> {
            Reader::open(p).unwrap().collect::<Result<_, _>>().unwrap()
        };
        assert_eq!(read(&path), records[..200], "flushed, frame still open");
        let flushed = std::fs::read(&path).unwrap();
        for r in &records[200..] {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(read(&path), records, "finished");
        let whole = std::fs::read(&path).unwrap();
        assert!(whole.len() < 4 * 1024, "{} bytes", whole.len());
        // Cut after the first flush, and inside the rest: a prefix, never an error.
        let cut = dir.path().join("cut.jsonl.zst");
        for at in [
            flushed.len(),
            flushed.len() + (whole.len() - flushed.len()) / 2,
        ] {
            std::fs::write(&cut, &whole[..at]).unwrap();
            let got = read(&cut);
            assert!(
                got.len() >= 200 && got.len() <= records.len(),
                "{at}: {}",
                got.len()
            );
            assert_eq!(got, records[..got.len()]);
        }
    }

    #[test]
    fn round_trips_through_jsonl() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for r in sample() {
            w.write(&r).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let back: Vec<Record> = Reader::new(&buf[..], Path::new("h.jsonl"))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn a_line_cut_off_by_a_crash_is_ignored() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for r in sample() {
            w.write(&r).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        buf.extend_from_slice(br#"{"index":2,"time_us":9"#);
        let back: Vec<Record> = Reader::new(&buf[..], Path::new("h.jsonl"))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn a_malformed_line_names_its_number() {
        let input = b"{\"index\":0}\n";
        let err = Reader::new(&input[..], Path::new("h.jsonl"))
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().starts_with("h.jsonl:1:"), "{err}");
    }

    #[test]
    fn content_ignores_server_owned_elements_and_key_order() {
        let sent = json!({"resourceType": "Condition", "code": {"text": "x", "coding": []}, "subject": {"reference": "Patient/1"}});
        let back = json!({"id": "7", "meta": {"versionId": "3"}, "resourceType": "Condition",
                          "subject": {"reference": "Patient/1"}, "code": {"coding": [], "text": "x"}});
        assert_eq!(Content::of(&sent), Content::of(&back));
    }

    #[test]
    fn content_locates_a_changed_and_a_missing_element() {
        let sent = Content::of(
            &json!({"code": {"text": "a"}, "note": [{"text": "n"}], "status": "final"}),
        );
        let back = Content::of(&json!({"code": {"text": "b"}, "status": "final"}));
        let diffs = sent.differences(&back, &[]);
        assert_eq!(
            diffs,
            vec![ElementDiff::Changed("code"), ElementDiff::Missing("note")]
        );
        assert!(sent.differences(&back, &["code", "note"]).is_empty());
    }

    #[test]
    fn decimal_spelling_does_not_change_the_digest() {
        let a: Value = serde_json::from_str(r#"{"v": 98.60}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"v": 98.6}"#).unwrap();
        assert_eq!(Content::of(&a), Content::of(&b));
    }
}
