//! The workload section of the report: how the load was actually shaped. Whole
//! encounters' latency (the `encounter` row: from the intended start under the open
//! model, so a stalled server shows in it), and for the open model the starts the rate
//! plan offered against those achieved and dropped, second by second. Renders nothing
//! and decides nothing; uses `metrics` result types.

use serde::{Deserialize, Serialize};

use crate::metrics::{OpSummary, RateSecond};

/// How the load went, beyond the interactions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Whole encounters: `ok` completed, `fail` abandoned (admission failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<OpSummary>,
    /// The open model's schedule, as offered and as achieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenLoad>,
    /// The `contended_update` races, when the workflow has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub races: Option<Races>,
    /// Per user group (`[[groups]]`): its latency and counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupLoad>,
    /// Which workload-driven checks ran: a check whose situation never arose is not
    /// measured, never a pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRan>,
}

/// One user group's share of the load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupLoad {
    pub name: String,
    /// Its weight (or fixed user count).
    pub weight: u32,
    /// Its whole encounters.
    pub encounter: OpSummary,
    /// Its interactions, all together.
    pub all: OpSummary,
    /// Its interactions per operation.
    pub operations: Vec<OpSummary>,
}

impl GroupLoad {
    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "group {} (weight {}): {} encounters (p95 {:.1} ms), {} interactions (p95 {:.1} ms, p99 {:.1} ms), {} fail, {} info",
            self.name,
            self.weight,
            self.encounter.count,
            self.encounter.latency_ms.p95,
            self.all.count,
            self.all.latency_ms.p95,
            self.all.latency_ms.p99,
            self.all.fail,
            self.all.info
        )
    }
}

/// Two writers updating one resource from one version with `If-Match`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Races {
    /// Races sent.
    pub run: u64,
    /// Races in which the server refused one writer (412 or 409): expected.
    pub refused: u64,
    /// Races in which the server acknowledged both writers.
    pub both_acknowledged: u64,
    /// Refused writers' re-read-and-retry attempts, and those acknowledged.
    pub loser_retries: u64,
    pub loser_retries_ok: u64,
    /// `lost_update` findings of the run (the checker's verdict, from the history).
    pub lost_updates: u64,
}

/// Whether the check of one finding kind had anything to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRan {
    /// The finding kind (`lost_update`).
    pub kind: String,
    pub measured: bool,
    /// What it was measured on, or why not.
    pub detail: String,
}

impl Races {
    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "races: {} run, {} refused one writer (412/409), {} acknowledged both, {} lost updates found; {} loser retries ({} ok)",
            self.run,
            self.refused,
            self.both_acknowledged,
            self.lost_updates,
            self.loser_retries,
            self.loser_retries_ok
        )
    }

    /// Whether `lost_update` was measured by races.
    pub fn check(&self) -> CheckRan {
        CheckRan {
            kind: "lost_update".into(),
            measured: self.run > 0,
            detail: if self.run > 0 {
                format!("{} races of two If-Match writers", self.run)
            } else {
                "no contended_update race ran".into()
            },
        }
    }
}

/// `partial_transaction` is measured when the history records at least one transaction
/// with its entries; `None` otherwise (the kind is then not measured, see
/// `report::slo::unchecked`).
pub fn transactions_check(transactions: u64) -> Option<CheckRan> {
    (transactions > 0).then(|| CheckRan {
        kind: "partial_transaction".into(),
        measured: true,
        detail: format!("{transactions} transaction Bundles, each entry read back"),
    })
}

impl Workload {
    /// Nothing measured (reports of older versions).
    pub fn is_empty(&self) -> bool {
        self == &Workload::default()
    }
}

/// Offered vs achieved under the open model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenLoad {
    /// Encounter starts the rate plan called for.
    pub offered: u64,
    /// Starts a user began.
    pub started: u64,
    /// Starts no user could serve: every user busy and the pool at `max_users`.
    pub dropped_starts: u64,
    /// The users the pool grew to.
    pub users_reached: u64,
    /// Starts per second offered and achieved, over the load phase.
    pub offered_rate: f64,
    pub achieved_rate: f64,
    /// Per second of the run.
    pub series: Vec<RateSecond>,
}

impl OpenLoad {
    /// The totals of a per-second series over `load_s` seconds.
    pub fn of(series: Vec<RateSecond>, users_reached: u64, load_s: f64) -> OpenLoad {
        let offered = series.iter().map(|s| s.offered).sum();
        let started = series.iter().map(|s| s.started).sum();
        let dropped_starts = series.iter().map(|s| s.dropped).sum();
        let rate = |n: u64| if load_s > 0.0 { n as f64 / load_s } else { 0.0 };
        OpenLoad {
            offered,
            started,
            dropped_starts,
            users_reached,
            offered_rate: rate(offered),
            achieved_rate: rate(started),
            series,
        }
    }

    /// One line for the terminal and the Markdown summary.
    pub fn line(&self) -> String {
        format!(
            "open model: {} starts offered ({:.1}/s), {} started ({:.1}/s), {} dropped (no user free, pool at {} users)",
            self.offered,
            self.offered_rate,
            self.started,
            self.achieved_rate,
            self.dropped_starts,
            self.users_reached
        )
    }
}
