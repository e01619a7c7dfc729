//! Where a history on disk ends: after a crash or a failed write (a full disk), the
//! complete lines a reader gets from it and the file's size — what a run stopped by a
//! full disk reports, and what `fhirsurge check` then reads.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Error, Reader};

/// Where a history on disk ends: the complete lines a reader gets from it (what
/// `fhirsurge check` checks) and the file's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub lines: u64,
    pub bytes: u64,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "after line {} (byte {})", self.lines, self.bytes)
    }
}

/// Reads the history at `path` to its end (a crash or a failed write may have cut it).
pub fn end_of(path: &Path) -> Result<End, Error> {
    let bytes = std::fs::metadata(path)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut reader = Reader::open(path)?;
    for record in reader.by_ref() {
        record?;
    }
    Ok(End {
        lines: reader.lines(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Completion, Event, FILE, FileWriter, Record, Writer};
    use super::*;

    fn sample() -> Vec<Record> {
        (0..2)
            .map(|i| Record {
                index: i,
                time_us: 10 * i,
                process: 1,
                event: Event::Ok(Completion {
                    invoke: i,
                    status: Some(200),
                    latency_us: 5,
                    ..Completion::default()
                }),
            })
            .collect()
    }

    /// A full device: the writer's error comes back (on the write or the flush), never
    /// a panic, and never a silent success.
    #[test]
    fn a_full_device_fails_the_history_writer() {
        let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("no /dev/full here: nothing to test");
            return;
        };
        let encoder = zstd::stream::write::Encoder::new(file, 1).unwrap();
        let mut w = Writer::new(encoder);
        let records = sample();
        let mut failed = None;
        for r in records.iter().cycle().take(10_000) {
            if let Err(e) = w.write(r) {
                failed = Some(e);
                break;
            }
        }
        let failed = match failed {
            Some(e) => e,
            None => w.flush().expect_err("a flush to /dev/full fails"),
        };
        assert_eq!(failed.raw_os_error(), Some(28), "ENOSPC: {failed}");
    }

    #[test]
    fn the_end_of_a_cut_history_is_its_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut w = FileWriter::create(&path).unwrap();
        for r in sample() {
            w.write(&r).unwrap();
        }
        w.flush().unwrap();
        let flushed = std::fs::metadata(&path).unwrap().len();
        drop(w);
        let end = end_of(&path).unwrap();
        assert_eq!(
            end,
            End {
                lines: 2,
                bytes: flushed
            }
        );
        assert_eq!(end.to_string(), format!("after line 2 (byte {flushed})"));
    }
}
