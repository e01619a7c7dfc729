//! Service-level objectives a run is judged by (`[slo]`): latency percentiles per
//! operation, error rate, minimum throughput, a maximum count per finding kind and the
//! visibility lag p99: parsing and validating `[slo]` into the shared target types
//! (`vocab::slo`). The verdict is the report's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::file::Locator;
use crate::source::SourceError;
use crate::vocab::finding::FINDING_KINDS;
pub use crate::vocab::slo::{LatencySlo, Slo};

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
    #[serde(default, with = "humantime_serde")]
    max_p99_growth: Option<Duration>,
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
            max_p99_growth: raw.max_p99_growth,
        })
    }
}
