//! The consistency checker: a pure function from a run's history to findings (lost,
//! corrupted, duplicated and stale writes, writes committed despite an error, lost
//! updates, transactions applied in part) and the visibility lag of acknowledged creates; and notification judging (`notify`)
//! for runs with subscriptions. No I/O: records come in as
//! an iterator, findings go out as data.
//!
//! It streams. Each record updates compact per-identifier and per-resource state
//! (interned strings, content digests in an arena); an interaction's own state is dropped
//! once it completes, and a load-phase read is judged once the history has moved a few
//! seconds past it. What cannot be judged until the read-back (every write's effect) is
//! judged when the records end. Ids and versions stay opaque: order is learned only from
//! the history's real time, and a version string only ever equals another. Every write
//! that reported a version is also judged by that version's read-back `_history` entry,
//! so a write later overwritten is still seen as stored. One anomaly is one finding: a
//! stale read that a lost write explains becomes part of that `lost_write`. Uses
//! `history` (the records) and `vocab` (the finding kinds); nothing else.

pub mod access;
mod altered;
pub mod audit;
mod content;
mod detail;
mod echo;
mod ident;
mod ingest;
mod intern;
#[cfg(test)]
mod model;
pub mod notify;
mod resource;
mod stale;
mod state;
#[cfg(test)]
mod tests;
mod transaction;
mod versions;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::Record;

/// What the checker needs to know about the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Per resource type, top-level element names the EHR profile declares it drops or
    /// rewrites: a difference in these is expected, not corruption.
    pub expected_changes: BTreeMap<String, Vec<String>>,
    /// Identifier systems of harness writes start with this (`urn:fhirsurge:`).
    pub harness_system_prefix: String,
    /// Resource types whose writes the EHR profile declares may land in a holding area,
    /// readable by id but kept out of searches: not `invisible_write`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_from_search: Vec<String>,
}

/// Everything the checker found and measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub counts: BTreeMap<Kind, u64>,
    pub visibility_lag: Lag,
    pub stats: Stats,
    /// Notification judging; `None` when the history has no subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<notify::Notifications>,
}

/// One anomaly, with the history indexes that prove it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub resource_type: String,
    /// The server id, when known.
    pub id: Option<String>,
    /// The `system|value` the harness wrote.
    pub identifier: Option<String>,
    /// What was expected, what was seen, and when (run-relative times).
    pub detail: String,
    /// History indexes of the invocations and completions that prove it, ascending.
    pub evidence: Vec<u64>,
}

pub use crate::vocab::finding::Kind;

/// Time from a probed create's acknowledgement until a search (a visibility probe, or
/// any other load-phase search) first showed it. Only creates the visibility prober
/// looked for count: a create no one searched for until the read-back says nothing of
/// how fast the server makes writes visible.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    /// Probed creates a search saw.
    pub samples: u64,
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Probed creates no search showed before the read-back.
    #[serde(alias = "never_seen")]
    pub never_visible: u64,
}

/// What was checked. Every count is of history records or of things they name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Records read.
    pub records: u64,
    pub invocations: u64,
    pub completions_ok: u64,
    pub completions_fail: u64,
    pub completions_info: u64,
    /// Invocations the history never completed (a crash): treated as `info`.
    pub incomplete: u64,
    /// Completions naming no known invocation: ignored.
    pub orphan_completions: u64,
    /// Create, conditional-create and update attempts.
    pub writes: u64,
    pub writes_ok: u64,
    pub writes_fail: u64,
    /// Writes that ended `info` or never completed.
    pub writes_info: u64,
    /// Conditional creates answered 200: an existing match, nothing created.
    pub conditional_existing: u64,
    /// Harness identifiers created (or attempted).
    pub identifiers: u64,
    /// Identifiers whose read-back was complete enough to judge.
    pub identifiers_verified: u64,
    /// Identifiers whose read-back failed or never happened, so that what became of
    /// their creates could not be judged.
    pub identifiers_unverified: u64,
    /// Resources whose state was seen at read-back and judged.
    pub resources_read_back: u64,
    /// Resources with acknowledged writes whose read-back failed or never happened.
    pub resources_unverified: u64,
    /// Load-phase reads by id judged for staleness.
    pub reads_checked: u64,
    /// Load-phase reads answering 404 for a resource whose create had been acknowledged
    /// before the read began (read-your-writes misses; not a finding by themselves).
    pub reads_absent_after_create: u64,
    /// Search completions whose matches were taken as evidence.
    pub searches: u64,
    /// `_history` reads taken at read-back.
    pub histories: u64,
    /// Transaction and batch interactions: not modelled, and what they may touch is not judged.
    pub bundles: u64,
    /// Findings withheld because a transaction or batch may explain them.
    pub withheld_for_bundles: u64,
    /// Transactions whose entries the history records, each entry judged as a write.
    #[serde(default)]
    pub transactions: u64,
}

impl Stats {
    /// Written resources (by harness identifier) whose read-back could be judged.
    pub fn writes_checked(&self) -> u64 {
        self.identifiers_verified
    }

    /// Written resources whose read-back failed or never happened.
    pub fn writes_unverified(&self) -> u64 {
        self.identifiers_unverified
    }
}

/// Checks a history. Records must come in history order (the order of the file); a
/// history cut off by a crash is checked as far as it goes.
pub fn check(records: impl IntoIterator<Item = Record>, options: &Options) -> Outcome {
    let mut live = Live::new(options);
    for record in records {
        live.see(record);
    }
    live.finish()
}

/// The checker fed one record at a time, as a run produces them (the run's live judge);
/// [`check`] is this over an iterator.
pub struct Live {
    state: state::State,
    abandoned: std::collections::HashSet<u64>,
    notifications: notify::Judge,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    pub fn new(options: &Options) -> Live {
        Live {
            state: state::State::new(options),
            abandoned: std::collections::HashSet::new(),
            notifications: notify::Judge::default(),
        }
    }

    /// Takes the next record, in history order.
    pub fn see(&mut self, record: Record) {
        if let crate::history::Event::Info(c) = &record.event
            && c.detail.as_deref() == Some(crate::history::ABANDONED)
        {
            self.abandoned.insert(c.invoke);
        }
        self.notifications.see(&record);
        self.state.ingest(record);
    }

    /// Judges what could only be judged at the end.
    pub fn finish(self) -> Outcome {
        let mut outcome = self.state.finish();
        withhold_abandoned(&mut outcome, &self.abandoned);
        if let Some((judged, findings)) = self.notifications.finish() {
            for f in &findings {
                *outcome.counts.entry(f.kind).or_default() += 1;
            }
            outcome.findings.extend(findings);
            outcome.notifications = Some(judged);
        }
        outcome
    }
}

/// A write the harness gave up waiting for (a stopped run, the drain after the load
/// phase) was never reported failed to anyone: that it took effect is no finding.
fn withhold_abandoned(outcome: &mut Outcome, abandoned: &std::collections::HashSet<u64>) {
    if abandoned.is_empty() {
        return;
    }
    let before = outcome.findings.len();
    outcome.findings.retain(|f| {
        f.kind != Kind::CommittedDespiteError || !f.evidence.iter().any(|e| abandoned.contains(e))
    });
    let removed = (before - outcome.findings.len()) as u64;
    if let Some(n) = outcome.counts.get_mut(&Kind::CommittedDespiteError) {
        *n = n.saturating_sub(removed);
    }
}
