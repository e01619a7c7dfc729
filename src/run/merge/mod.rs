//! Merge: the run directories of a sharded run's shards combined into one report, as if
//! it had been one run. Latency comes from the shards' HdrHistogram interval logs, added
//! losslessly (never an averaged percentile); per-second counts are summed on the merged
//! run's clock; the histories are interleaved into one and checked again, so a finding
//! needs no more than the evidence of any shard; the SLOs are judged on the merged
//! figures. Shards of different runs or scenarios are refused. Uses `shard` records,
//! `report`, `metrics`, `history`, `check` (through `recheck`) and `scenario`.

mod history;
mod latency;
mod report;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Outcome, recheck, shard};
use crate::report::Report;

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directories are not shards of one run.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(String),
    /// A shard's report cannot be read.
    #[error(transparent)]
    Report(#[from] crate::report::ReadError),
    /// A history cannot be read or the merged one written.
    #[error(transparent)]
    History(#[from] crate::history::Error),
    /// The merged report cannot be written.
    #[error(transparent)]
    Write(#[from] crate::report::WriteError),
    /// The merge notes cannot be serialised.
    #[error(transparent)]
    Notes(#[from] serde_json::Error),
}

/// One shard's run directory, read.
pub(crate) struct Part {
    pub dir: PathBuf,
    pub record: shard::Record,
    pub report: Report,
}

/// What the merge did beyond the report (`merge.json` in the merged directory).
#[derive(Debug, Default, Serialize)]
pub struct Notes {
    pub run_id: String,
    pub shards: u32,
    /// The shards merged, by index, with their directories.
    pub merged: Vec<(u32, String)>,
    /// Shards of the run not given: the merged report is partial.
    pub missing: Vec<u32>,
    /// Shards whose load began after `--start-at`, and by how much (ms).
    pub late_starts: Vec<(u32, f64)>,
    /// Shards whose history stopped early (a malformed line), and why.
    pub history_cut: Vec<(u32, String)>,
    /// Operations whose interval logs held fewer samples than the shards counted.
    pub latency_short: Vec<String>,
    pub records: u64,
}

/// The file the merge leaves beside the report.
pub const NOTES_FILE: &str = "merge.json";

/// Merges the shards in `dirs` into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Outcome, Error> {
    let parts = dirs
        .iter()
        .map(|d| read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let missing = agree(&parts)?;
    prepare(out)?;
    let origin = parts
        .iter()
        .map(|p| p.record.clock_zero_unix_us)
        .min()
        .unwrap_or(0);
    let offset = |p: &Part| (p.record.clock_zero_unix_us - origin).max(0);
    let mut notes = Notes {
        run_id: parts[0].record.run_id.clone(),
        shards: parts[0].record.shard.count,
        merged: parts
            .iter()
            .map(|p| (p.record.shard.index, p.dir.display().to_string()))
            .collect(),
        missing,
        late_starts: parts
            .iter()
            .filter_map(|p| {
                let late = p.record.start_late_ms?;
                (late > 0.0).then_some((p.record.shard.index, late))
            })
            .collect(),
        ..Notes::default()
    };
    let options = options(&parts)?;
    let inputs = parts
        .iter()
        .map(|p| history::Input {
            path: p.dir.join(crate::history::FILE),
            offset_us: offset(p) as u64,
            index: u64::from(p.record.shard.index),
            count: u64::from(p.record.shard.count),
        })
        .collect();
    let history_path = out.join(crate::history::FILE);
    let merged = history::merge(inputs, &history_path)?;
    notes.records = merged.records;
    notes.history_cut = merged
        .cut
        .into_iter()
        .map(|(at, why)| (parts[at].record.shard.index, why))
        .collect();
    recheck::write_recorded(out, &options)
        .map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    let mut checked = recheck::recheck(&history_path, &options.options)?;
    // Re-checked from files: what they did not keep is not measured, never passed.
    let unmeasured = recheck::unmeasured(options.keep, &mut checked);
    let report = report::assemble(&parts, origin, (checked, &unmeasured), &mut notes)?;
    warn(&notes);
    report.write_all(out)?;
    let text = serde_json::to_vec_pretty(&notes)?;
    std::fs::write(out.join(NOTES_FILE), text)
        .map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    Ok(Outcome {
        dir: out.to_owned(),
        report,
    })
}

/// Says on stderr what makes the merged report less than the whole run.
fn warn(notes: &Notes) {
    if !notes.missing.is_empty() {
        tracing::warn!(
            "shards {:?} of {} are missing: the merged report is partial",
            notes.missing,
            notes.shards
        );
    }
    for (i, why) in &notes.history_cut {
        tracing::warn!("shard {i}: its history stops early ({why}); later records are not checked");
    }
    for op in &notes.latency_short {
        tracing::warn!("{op}: the interval logs hold fewer samples than the shards counted");
    }
}

fn read(dir: &Path) -> Result<Part, Error> {
    let record = shard::Record::read(dir).map_err(Error::Refused)?;
    let report = Report::read(&dir.join("report.json"))?;
    Ok(Part {
        dir: dir.to_owned(),
        record,
        report,
    })
}

/// Refuses shards of different runs, scenarios or shard counts, and a shard given
/// twice; returns the shards of the run that are missing.
fn agree(parts: &[Part]) -> Result<Vec<u32>, Error> {
    let Some(first) = parts.first() else {
        return Err(Error::Refused("no shard directory given".into()));
    };
    let a = &first.record;
    let mut seen = vec![false; a.shard.count as usize];
    for p in parts {
        let b = &p.record;
        let refuse = |what: &str, x: &str, y: &str| {
            Err(Error::Refused(format!(
                "{} and {} are not shards of one run: {what} `{x}` and `{y}`",
                first.dir.display(),
                p.dir.display()
            )))
        };
        if b.run_id != a.run_id {
            return refuse("run ids", &a.run_id, &b.run_id);
        }
        if b.scenario != a.scenario {
            return refuse("scenarios", &a.scenario, &b.scenario);
        }
        if b.scenario_digest != a.scenario_digest {
            return refuse(
                "scenario files (blake3)",
                &a.scenario_digest,
                &b.scenario_digest,
            );
        }
        if b.shard.count != a.shard.count {
            return refuse(
                "shard counts",
                &a.shard.count.to_string(),
                &b.shard.count.to_string(),
            );
        }
        let slot = seen.get_mut(b.shard.index as usize).ok_or_else(|| {
            Error::Refused(format!("{}: shard index out of range", p.dir.display()))
        })?;
        if std::mem::replace(slot, true) {
            return Err(Error::Refused(format!(
                "shard {}/{} is given twice ({})",
                b.shard.index,
                b.shard.count,
                p.dir.display()
            )));
        }
    }
    Ok((0..a.shard.count).filter(|&i| !seen[i as usize]).collect())
}

/// The checker's options: every shard must have judged with the same ones.
fn options(parts: &[Part]) -> Result<recheck::Recorded, Error> {
    let mut found: Option<(recheck::Recorded, &Path)> = None;
    for p in parts {
        let history = p.dir.join(crate::history::FILE);
        let (o, _) = recheck::options_for(&history, None).map_err(Error::Refused)?;
        match &found {
            Some((first, dir)) if *first != o => {
                return Err(Error::Refused(format!(
                    "{} and {} were judged with different {} (profiles or history keep modes differ)",
                    dir.display(),
                    p.dir.display(),
                    recheck::OPTIONS_FILE
                )));
            }
            Some(_) => {}
            None => found = Some((o, &p.dir)),
        }
    }
    found
        .map(|(o, _)| o)
        .ok_or_else(|| Error::Refused("no shard directory given".into()))
}

/// Creates the merged directory; refuses one that already holds a report.
fn prepare(out: &Path) -> Result<(), Error> {
    if out.join("report.json").exists() {
        return Err(Error::Refused(format!(
            "{}: already holds a report; merge into a new directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Io(format!("{}: {e}", out.display())))
}
