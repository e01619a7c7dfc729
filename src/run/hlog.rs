//! Per-operation HdrHistogram interval logs (`hlog/<operation>.hlog`), the format the
//! standard HdrHistogram tools read (HistogramLogProcessor, HdrHistogramVisualizer):
//! one compressed V2 histogram per interval, values in microseconds, written as the run
//! goes so a long soak keeps no interval histograms in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::metrics::interval::Rolled;

/// The open interval logs of one run.
pub struct Hlogs {
    dir: PathBuf,
    started: SystemTime,
    files: HashMap<String, BufWriter<File>>,
    serializer: V2DeflateSerializer,
}

impl Hlogs {
    /// Logs go into `dir/hlog/`; `started` is the run's start on the wall clock.
    pub fn new(dir: &Path, started: SystemTime) -> Hlogs {
        Hlogs {
            dir: dir.join("hlog"),
            started,
            files: HashMap::new(),
            serializer: V2DeflateSerializer::new(),
        }
    }

    /// Appends one interval `[end - length, end)` (run clock) per rolled operation.
    pub fn write(&mut self, rolled: &[Rolled], end: Duration, length: Duration) -> io::Result<()> {
        let start = end.saturating_sub(length);
        for r in rolled {
            let started = self.started;
            let out = match self.files.get_mut(&r.op) {
                Some(out) => out,
                None => {
                    let out = open(&self.dir, &r.op, started)?;
                    self.files.entry(r.op.clone()).or_insert(out)
                }
            };
            let name = slug(&r.op);
            let tag = Tag::new(&name);
            IntervalLogWriterBuilder::new()
                .begin_log_with(out, &mut self.serializer)?
                .write_histogram(&r.histogram, start, end - start, tag)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.files.values_mut().try_for_each(Write::flush)
    }
}

fn open(dir: &Path, op: &str, started: SystemTime) -> io::Result<BufWriter<File>> {
    std::fs::create_dir_all(dir)?;
    let mut out = BufWriter::new(File::create(dir.join(format!("{}.hlog", slug(op))))?);
    let mut sink = Vec::new();
    let mut header = IntervalLogWriterBuilder::new();
    header
        .add_comment(&format!("fhirsurge interval log: {op}"))
        .add_comment("values in microseconds; max column in milliseconds")
        .with_start_time(started)
        .with_base_time(started)
        .with_max_value_divisor(1000.0);
    header.begin_log_with(&mut sink, &mut V2DeflateSerializer::new())?;
    out.write_all(&sink)?;
    out.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
    Ok(out)
}

/// `create Observation` → `create-Observation`: safe as a file name and a log tag.
fn slug(op: &str) -> String {
    op.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Outcome, Phase};
    use crate::metrics::{Metrics, Sample};
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn writes_a_log_standard_readers_parse_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Metrics::new();
        let mut logs = Hlogs::new(dir.path(), SystemTime::now());
        for second in 1..=3u64 {
            for i in 1..=50u64 {
                m.record(&Sample {
                    op: "create Observation".into(),
                    outcome: Outcome::Ok,
                    error: None,
                    at_us: second * 1_000_000,
                    latency_us: i * 100 * second,
                    phase: Phase::Load,
                    group: None,
                });
            }
            let rolled = m.roll(second * 1_000_000);
            let end = Duration::from_secs(second);
            logs.write(&rolled, end, Duration::from_secs(1)).unwrap();
        }
        logs.flush().unwrap();
        let text = std::fs::read(dir.path().join("hlog/create-Observation.hlog")).unwrap();
        let mut histograms = 0;
        for entry in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    h.encoded_histogram(),
                )
                .unwrap();
                let hist: hdrhistogram::Histogram<u64> =
                    Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(hist.len(), 50);
                assert_eq!(h.tag().map(|t| t.as_str()), Some("create-Observation"));
                histograms += 1;
            }
        }
        assert_eq!(histograms, 3);
    }
}
