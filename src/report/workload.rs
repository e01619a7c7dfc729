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
