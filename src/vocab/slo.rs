//! Service-level objective targets as validated from a scenario's `[slo]`: what the
//! scenario promises, what the verdict judges and the report shows. Only the targets;
//! parsing is the scenario's, judging the verdict's. Uses nothing else of the crate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The validated objectives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub latency: Vec<LatencySlo>,
    /// Most load-phase interactions that may end other than `ok`, as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Fewest interactions per second over the load phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_throughput: Option<f64>,
    /// Most findings allowed per kind. Kinds not named allow none.
    pub findings: BTreeMap<String, u64>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub visibility_lag_p99: Option<Duration>,
    /// Write acknowledgement → notification delivery, p99 (`[subscriptions]` runs).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_latency_p99: Option<Duration>,
    /// Most any operation's p99 may grow per 100,000 resources the target holds (the
    /// least-squares slope over the growth windows).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_p99_growth: Option<Duration>,
}

/// "`percentile` of `op` at most `max`".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySlo {
    /// An operation label (`create Observation`) or `all`.
    pub op: String,
    pub percentile: f64,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Slo {
    /// Most findings of `kind` allowed (0 unless the scenario says otherwise).
    pub fn max_findings(&self, kind: &str) -> u64 {
        self.findings.get(kind).copied().unwrap_or(0)
    }
}
