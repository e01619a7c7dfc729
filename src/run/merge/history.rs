//! The shards' histories as one: records from every shard interleaved by real time on
//! the merged run's clock, re-indexed densely from 0, each shard's logical processes
//! kept apart (process `p` of shard `i` of `n` becomes `p·n + i`), and every reference
//! to an invocation (a completion's, a retry's) carried to its new index. The checker
//! then sees one history, as if one run had written it.

use std::path::{Path, PathBuf};

use super::Error;
use crate::history::{self, Event, Record};

/// One shard's history and where it sits.
pub struct Input {
    pub path: PathBuf,
    /// The shard's clock zero after the merged run's, µs.
    pub offset_us: u64,
    pub index: u64,
    pub count: u64,
}

/// What merging the histories did.
#[derive(Debug, Default)]
pub struct Merged {
    pub records: u64,
    /// Per shard (by position in the inputs): where its history stopped early, if it
    /// did (a malformed line), with why. Records after it are not in the merge.
    pub cut: Vec<(usize, String)>,
}

type Stream = Box<dyn Iterator<Item = Result<Record, history::Error>> + Send>;

struct Source {
    input: Input,
    records: Stream,
    head: Option<Record>,
    /// Old index → new index (dense old indexes; `u64::MAX` when unseen).
    map: Vec<u64>,
}

impl Source {
    fn advance(&mut self, cut: &mut Vec<(usize, String)>, at: usize) {
        self.head = match self.records.next() {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                cut.push((at, e.to_string()));
                None
            }
            None => None,
        };
    }

    fn key(&self) -> Option<u64> {
        self.head
            .as_ref()
            .map(|r| r.time_us.saturating_add(self.input.offset_us))
    }

    fn remap(&self, old: u64) -> u64 {
        self.map.get(old as usize).copied().unwrap_or(u64::MAX)
    }
}

/// Writes the merged history to `out`.
pub fn merge(inputs: Vec<Input>, out: &Path) -> Result<Merged, Error> {
    let mut merged = Merged::default();
    let mut sources = Vec::with_capacity(inputs.len());
    for (at, input) in inputs.into_iter().enumerate() {
        let reader = history::Reader::open(&input.path)?;
        let mut s = Source {
            input,
            records: Box::new(reader),
            head: None,
            map: Vec::new(),
        };
        s.advance(&mut merged.cut, at);
        sources.push(s);
    }
    let mut writer = history::FileWriter::create(out)?;
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", out.display()));
    while let Some(at) = earliest(&sources) {
        let s = &mut sources[at];
        let Some(mut record) = s.head.take() else {
            break;
        };
        let old = record.index as usize;
        if s.map.len() <= old {
            s.map.resize(old + 1, u64::MAX);
        }
        s.map[old] = merged.records;
        record.index = merged.records;
        record.time_us = record.time_us.saturating_add(s.input.offset_us);
        record.process = record.process * s.input.count + s.input.index;
        relink(&mut record.event, |i| s.remap(i));
        writer.write(&record).map_err(io)?;
        merged.records += 1;
        s.advance(&mut merged.cut, at);
    }
    writer.finish().map_err(io)?;
    Ok(merged)
}

/// The source whose next record is earliest (the first such, so ties keep shard order).
fn earliest(sources: &[Source]) -> Option<usize> {
    sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.key().map(|k| (k, i)))
        .min()
        .map(|(_, i)| i)
}

/// Carries the invocation indexes an event refers to into the merged history.
fn relink(event: &mut Event, remap: impl Fn(u64) -> u64) {
    match event {
        Event::Invoke(op) => {
            if let Some(r) = op.retry_of.as_mut() {
                *r = remap(*r);
            }
        }
        Event::Ok(c) | Event::Fail(c) | Event::Info(c) => c.invoke = remap(c.invoke),
        Event::FaultStart(_)
        | Event::FaultStop(_)
        | Event::Subscription(_)
        | Event::Notification(_)
        | Event::EventsQuery(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Completion, Interaction, Op};

    fn write(dir: &Path, name: &str, records: &[Record]) -> PathBuf {
        let path = dir.join(name);
        let mut w = history::FileWriter::create(&path).unwrap();
        for r in records {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn pair(first: u64, time_us: u64, process: u64) -> [Record; 2] {
        let op = Op {
            f: Interaction::Create,
            resource_type: "Patient".into(),
            ..Op::default()
        };
        let done = Completion {
            invoke: first,
            status: Some(201),
            ..Completion::default()
        };
        [
            Record {
                index: first,
                time_us,
                process,
                event: Event::Invoke(op),
            },
            Record {
                index: first + 1,
                time_us: time_us + 10,
                process,
                event: Event::Ok(done),
            },
        ]
    }

    #[test]
    fn interleaves_by_time_and_relinks_completions() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<Record> = [pair(0, 100, 0), pair(2, 300, 1)].concat();
        let b: Vec<Record> = pair(0, 150, 0).to_vec();
        let inputs = vec![
            Input {
                path: write(dir.path(), "a.jsonl.zst", &a),
                offset_us: 0,
                index: 0,
                count: 2,
            },
            Input {
                path: write(dir.path(), "b.jsonl.zst", &b),
                offset_us: 100,
                index: 1,
                count: 2,
            },
        ];
        let out = dir.path().join("m.jsonl.zst");
        let m = merge(inputs, &out).unwrap();
        assert_eq!(m.records, 6);
        assert!(m.cut.is_empty());
        let got: Vec<Record> = history::Reader::open(&out)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let times: Vec<u64> = got.iter().map(|r| r.time_us).collect();
        assert_eq!(times, [100, 110, 250, 260, 300, 310]);
        assert!(got.iter().enumerate().all(|(i, r)| r.index == i as u64));
        // b's invocation (now 2) completes at 3, from b's process 0 → 1.
        let Event::Ok(c) = &got[3].event else {
            panic!("{:?}", got[3])
        };
        assert_eq!((c.invoke, got[3].process), (2, 1));
        let Event::Ok(c) = &got[5].event else {
            panic!()
        };
        assert_eq!((c.invoke, got[5].process), (4, 2));
    }
}
