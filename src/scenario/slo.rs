//! Service-level objectives a run is judged by (`[slo]`): latency percentiles per
//! operation, error rate, minimum throughput, a maximum count per finding kind and the
//! visibility lag p99. Only the targets live here; the verdict is the report's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::file::Locator;
use crate::source::SourceError;

/// Finding kinds of the report contract (DESIGN.md), the keys `[slo.findings]` accepts.
pub const FINDING_KINDS: [&str; 12] = [
    "lost_write",
    "corrupted_write",
    "duplicate_write",
    "stale_read",
    "committed_despite_error",
    "lost_update",
    "audit_gap",
    "audit_mismatch",
    "scope_leak",
    "missed_notification",
    "duplicate_notification",
    "unexpected_notification",
];

/// The finding kinds of notification judging: judged only when the scenario subscribes.
pub const NOTIFICATION_KINDS: [&str; 3] = [
    "missed_notification",
    "duplicate_notification",
    "unexpected_notification",
];

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SloFile {
    #[serde(default)]
    latency: Vec<LatencyFile>,
    #[serde(default)]
    error_rate: Option<Spanned<f64>>,
    #[serde(default)]
    min_throughput: Option<Spanned<f64>>,
    #[serde(default)]
    findings: BTreeMap<Spanned<String>, u64>,
    #[serde(default, with = "humantime_serde")]
    visibility_lag_p99: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    notification_latency_p99: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyFile {
    op: String,
    percentile: Spanned<f64>,
    #[serde(with = "humantime_serde")]
    max: Duration,
}

impl Slo {
    pub(super) fn validate(raw: SloFile, at: &Locator<'_>) -> Result<Slo, SourceError> {
        let mut latency = Vec::new();
        for l in raw.latency {
            let p = *l.percentile.get_ref();
            if !(p > 0.0 && p <= 100.0) {
                let m = format!("slo.latency.percentile: {p} is not in (0, 100]");
                return Err(at.error(l.percentile.span(), m));
            }
            latency.push(LatencySlo {
                op: l.op,
                percentile: p,
                max: l.max,
            });
        }
        if let Some(e) = &raw.error_rate
            && !(0.0..=1.0).contains(e.get_ref())
        {
            let m = "slo.error_rate: a fraction between 0 and 1 (0.01 = 1 %)";
            return Err(at.error(e.span(), m));
        }
        if let Some(t) = &raw.min_throughput
            && !(t.get_ref().is_finite() && *t.get_ref() >= 0.0)
        {
            return Err(at.error(t.span(), "slo.min_throughput: must be 0 or more"));
        }
        let mut findings = BTreeMap::new();
        for (kind, max) in raw.findings {
            if !FINDING_KINDS.contains(&kind.get_ref().as_str()) {
                let m = format!(
                    "slo.findings: unknown finding kind `{}` (known: {})",
                    kind.get_ref(),
                    FINDING_KINDS.join(", ")
                );
                return Err(at.error(kind.span(), m));
            }
            findings.insert(kind.into_inner(), max);
        }
        Ok(Slo {
            latency,
            error_rate: raw.error_rate.map(Spanned::into_inner),
            min_throughput: raw.min_throughput.map(Spanned::into_inner),
            findings,
            visibility_lag_p99: raw.visibility_lag_p99,
            notification_latency_p99: raw.notification_latency_p99,
        })
    }

    /// Most findings of `kind` allowed (0 unless the scenario says otherwise).
    pub fn max_findings(&self, kind: &str) -> u64 {
        self.findings.get(kind).copied().unwrap_or(0)
    }
}
