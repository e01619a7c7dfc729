//! The shards' latency, put together losslessly: every interval histogram of every
//! shard's HdrHistogram interval logs (`hlog/*.hlog`, and the read-back's in
//! `readback/hlog/`) is decoded and added, placed on the merged run's clock by the
//! shard's clock zero. Intervals that fall in the same second of the merged run are one
//! point of the latency-over-time chart. Nothing is averaged.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::Error;
use crate::metrics::Metrics;

/// The comment `run` writes on the first line of each log, before the operation's name.
const OP_COMMENT: &str = "#fhirsurge interval log: ";

/// Per operation and second of the merged run (end of the interval, rounded up), the
/// summed interval histograms.
#[derive(Default)]
pub struct Intervals {
    by_op: BTreeMap<String, BTreeMap<u64, Histogram<u64>>>,
}

impl Intervals {
    /// Adds every interval of the logs in `dir` (a shard's `hlog/`), whose timestamps
    /// are on a clock starting `offset_us` after the merged run's.
    pub fn add_dir(&mut self, dir: &Path, offset_us: i64) -> Result<(), Error> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::Io(format!("{}: {e}", dir.display()))),
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "hlog"))
            .collect();
        paths.sort();
        for path in paths {
            self.add_log(&path, offset_us)?;
        }
        Ok(())
    }

    fn add_log(&mut self, path: &Path, offset_us: i64) -> Result<(), Error> {
        let bad = |what: String| Error::Refused(format!("{}: {what}", path.display()));
        let text =
            std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let op = operation(&text).ok_or_else(|| {
            bad(format!(
                "no `{}<operation>` line: not a fhirsurge interval log",
                OP_COMMENT.trim()
            ))
        })?;
        let by_second = self.by_op.entry(op).or_default();
        let mut decoder = Deserializer::new();
        for entry in IntervalLogIterator::new(&text) {
            let entry = entry.map_err(|e| bad(format!("unreadable interval: {e:?}")))?;
            let LogEntry::Interval(h) = entry else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| bad(format!("interval histogram is not base64: {e}")))?;
            let hist: Histogram<u64> = decoder
                .deserialize(&mut &bytes[..])
                .map_err(|e| bad(format!("interval histogram: {e:?}")))?;
            let end_us = (h.start_timestamp() + h.duration()).as_micros() as i64 + offset_us;
            let second = (end_us.max(0) as u64).div_ceil(1_000_000);
            match by_second.get_mut(&second) {
                Some(sum) => sum
                    .add(&hist)
                    .map_err(|e| bad(format!("interval histogram: {e:?}")))?,
                None => {
                    by_second.insert(second, hist);
                }
            }
        }
        Ok(())
    }

    /// Everything added, as metrics (latency only; counts are absorbed apart). Returns
    /// the operations whose histograms did not fit.
    pub fn into_metrics(self, metrics: &mut Metrics) -> Vec<String> {
        let mut unfit = Vec::new();
        for (op, seconds) in self.by_op {
            for (second, h) in seconds {
                if !metrics.absorb_interval(&op, second * 1_000_000, &h) && !unfit.contains(&op) {
                    unfit.push(op.clone());
                }
            }
        }
        unfit
    }
}

/// The operation a log is of, from its first comment line.
fn operation(text: &[u8]) -> Option<String> {
    let end = text.iter().position(|&b| b == b'\n')?;
    let first = std::str::from_utf8(&text[..end]).ok()?;
    first.strip_prefix(OP_COMMENT).map(str::to_owned)
}
