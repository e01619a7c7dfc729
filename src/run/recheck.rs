//! Re-checking a recorded history offline (`fhirsurge check`), with the same judgement the
//! run used: the run leaves its checker options (the profile's declared transformations,
//! the harness identifier prefix) in `check.json` beside `history.jsonl.zst`, so a history
//! judged again gives the same findings, and a declared quirk never turns into a false
//! alarm on the second look.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::check;
use crate::history;
use crate::profile::Profile;
use crate::vocab::keep::Keep;

/// The checker options file in a run directory.
pub const OPTIONS_FILE: &str = "check.json";

/// The checker options a run judges with, for `profile`.
pub fn options(profile: &Profile) -> check::Options {
    check::Options {
        expected_changes: profile.expected_changes(),
        harness_system_prefix: crate::HARNESS_PREFIX.to_owned(),
        held_from_search: profile
            .resources
            .iter()
            .filter(|(_, r)| r.write.landing != crate::profile::Landing::Immediately)
            .map(|(rt, _)| rt.clone())
            .collect(),
    }
}

/// What `check.json` holds: the checker options and what the history file kept (a
/// file written before `keep` existed kept everything).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub options: check::Options,
    #[serde(default)]
    pub keep: Keep,
}

/// Writes the options and the keep mode into the run directory.
pub fn write_recorded(dir: &Path, recorded: &Recorded) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(recorded).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(OPTIONS_FILE), json)
}

/// Marks the kinds a history not kept whole cannot measure: their findings are withheld
/// (a dropped read must not become a false finding) and the reasons returned, by kind.
pub fn unmeasured(keep: Keep, outcome: &mut check::Outcome) -> BTreeMap<check::Kind, String> {
    let reasons: BTreeMap<_, _> = check::Kind::ALL
        .into_iter()
        .filter_map(|k| keep.unmeasured(k).map(|why| (k, why)))
        .collect();
    outcome.findings.retain(|f| !reasons.contains_key(&f.kind));
    outcome.counts.retain(|k, _| !reasons.contains_key(k));
    if !keep.is_full() {
        // The lag is measured by the probes' searches, which the file did not keep whole.
        outcome.visibility_lag = check::Lag::default();
    }
    reasons
}

/// Where the options for a re-check came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The profile named on the command line.
    Profile(String),
    /// The run's own `check.json`.
    File(PathBuf),
    /// Neither: no transformation is expected.
    Default,
}

/// The options to re-check `history` with: `profile` when given, else the `check.json`
/// beside the history, else the defaults; the keep mode always from `check.json`.
pub fn options_for(
    history: &Path,
    profile: Option<&Profile>,
) -> Result<(Recorded, Source), String> {
    let file = history
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(OPTIONS_FILE);
    let recorded: Option<Recorded> = match std::fs::read(&file) {
        Ok(bytes) => {
            Some(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", file.display()))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let keep = recorded.as_ref().map(|r| r.keep).unwrap_or_default();
    Ok(match (profile, recorded) {
        (Some(p), _) => (
            Recorded {
                options: options(p),
                keep,
            },
            Source::Profile(p.name.clone()),
        ),
        (None, Some(r)) => (r, Source::File(file)),
        (None, None) => {
            let options = check::Options {
                harness_system_prefix: crate::HARNESS_PREFIX.to_owned(),
                ..check::Options::default()
            };
            (Recorded { options, keep }, Source::Default)
        }
    })
}

/// Checks a history file up to its last complete line (a crash may have cut it).
pub fn recheck(history: &Path, options: &check::Options) -> Result<check::Outcome, history::Error> {
    recheck_to_end(history, options).map(|(outcome, _)| outcome)
}

/// Where a history read by [`recheck_to_end`] ended.
#[derive(Clone, Debug, serde::Serialize)]
pub struct End {
    /// Complete lines read.
    pub lines: u64,
    /// What was cut off after them, if anything (a crash).
    pub cut: Option<String>,
}

/// [`recheck`], also saying where the history ended and what was cut.
pub fn recheck_to_end(
    history: &Path,
    options: &check::Options,
) -> Result<(check::Outcome, End), history::Error> {
    let mut reader = history::Reader::open(history)?;
    let mut error = None;
    let records = reader
        .by_ref()
        .map_while(|r| r.map_err(|e| error = Some(e)).ok());
    let outcome = check::check(records, options);
    if let Some(e) = error {
        return Err(e);
    }
    let end = End {
        lines: reader.lines(),
        cut: reader.cut().map(str::to_owned),
    };
    Ok((outcome, end))
}

/// The history of a run folder (`history.jsonl.zst`, or a plain `history.jsonl`), or the
/// path itself when it is not a folder.
pub fn history_in(path: &Path) -> std::path::PathBuf {
    if !path.is_dir() {
        return path.to_owned();
    }
    let compressed = path.join(history::FILE);
    let plain = path.join("history.jsonl");
    if !compressed.exists() && plain.exists() {
        plain
    } else {
        compressed
    }
}
