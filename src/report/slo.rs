//! The SLO verdict: each objective of the scenario's `[slo]` judged against what the run
//! measured. An objective that could not be measured fails — an instrument that cannot
//! see never reports success.

use serde::{Deserialize, Serialize};

use super::workload::CheckRan;
use crate::check::Kind;
use crate::check::notify::Notifications;
use crate::vocab::finding::{FINDING_KINDS, NOTIFICATION_KINDS};
use crate::vocab::slo::Slo;

/// One judged objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// `latency`, `error_rate`, `throughput`, `findings` or `visibility_lag`.
    pub kind: String,
    /// What was promised, in words: `p99 of create Observation <= 500 ms`.
    pub name: String,
    pub target: f64,
    /// `None`: not measured.
    pub observed: Option<f64>,
    pub unit: String,
    pub passed: bool,
    pub detail: String,
    /// Why the objective was not measured in this run (its check did not run): neither
    /// passed nor failed. `None`: it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_measured: Option<String>,
}

/// Why a finding kind's check did not run in a run, or `None` when it ran. A check that
/// depends on what the run did says so in `ran` (the workload's `checks`); a kind it does
/// not name is measured unless it is one whose check this run cannot make.
pub fn unchecked(kind: Kind, ran: &[CheckRan]) -> Option<String> {
    if let Some(c) = ran.iter().find(|c| c.kind == kind.name()) {
        return (!c.measured).then(|| c.detail.clone());
    }
    never_checked(kind).map(str::to_owned)
}

/// The kinds no check of this run measured unless a `CheckRan` says otherwise.
fn never_checked(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::AuditGap | Kind::AuditMismatch => {
            Some("no audit reconciliation ran in this run (AuditEvents were not fetched)")
        }
        Kind::ScopeLeak => Some("no scope check ran in this run"),
        Kind::ScopeNotEnforced => Some("no narrower-token scope probe ran in this run"),
        Kind::LostUpdate => Some(
            "no contended_update step ran in this run (each resource is updated by one process), so no lost update can occur",
        ),
        _ => None,
    }
}

/// What the verdict needs of a run.
pub struct Measured<'a> {
    /// Latency percentile of an operation (or `all`) in ms; `None` without samples.
    pub percentile: &'a dyn Fn(&str, f64) -> Option<f64>,
    pub interactions: u64,
    pub not_ok: u64,
    pub throughput: f64,
    pub findings: &'a dyn Fn(Kind) -> u64,
    pub lag_p99_ms: Option<f64>,
    /// Why a kind's check did not run (`None`: it ran); usually [`unchecked`].
    pub not_measured: &'a dyn Fn(Kind) -> Option<String>,
}

/// Judges every objective; finding kinds are always judged (0 allowed unless raised).
pub fn judge(slo: &Slo, m: &Measured<'_>) -> Vec<SloResult> {
    let mut out = Vec::new();
    for l in &slo.latency {
        let target = l.max.as_secs_f64() * 1000.0;
        let observed = (m.percentile)(&l.op, l.percentile);
        let name = format!("p{} of {} <= {target} ms", l.percentile, l.op);
        out.push(result("latency", name, target, observed, "ms", |o| {
            o <= target
        }));
    }
    if let Some(max) = slo.error_rate {
        let observed = (m.interactions > 0).then(|| m.not_ok as f64 / m.interactions as f64);
        let name = format!("error rate <= {:.3} %", max * 100.0);
        let r = result("error_rate", name, max, observed, "fraction", |o| o <= max);
        out.push(SloResult {
            detail: format!("{} of {} interactions not ok", m.not_ok, m.interactions),
            ..r
        });
    }
    if let Some(min) = slo.min_throughput {
        let observed = (m.interactions > 0).then_some(m.throughput);
        let name = format!("throughput >= {min} interactions/s");
        out.push(result("throughput", name, min, observed, "1/s", |o| {
            o >= min
        }));
    }
    for kind in FINDING_KINDS
        .iter()
        .filter(|k| !NOTIFICATION_KINDS.contains(k))
    {
        let Some(k) = kind_of(kind) else { continue };
        let max = slo.max_findings(kind) as f64;
        let name = format!("{kind} <= {max}");
        if let Some(why) = (m.not_measured)(k) {
            // Asked for by name, an unmeasured objective fails: the scenario's author
            // wanted it judged. Left implicit, it neither passes nor fails.
            let asked = slo.findings.contains_key(*kind);
            out.push(SloResult {
                passed: false,
                detail: if asked {
                    format!("not measured, though [slo.findings] asks for it: {why}")
                } else {
                    format!("not measured: {why}")
                },
                not_measured: (!asked).then_some(why),
                ..result("findings", name, max, None, "count", |_| false)
            });
            continue;
        }
        let observed = Some((m.findings)(k) as f64);
        out.push(result("findings", name, max, observed, "count", |o| {
            o <= max
        }));
    }
    if let Some(max) = slo.visibility_lag_p99 {
        let target = max.as_secs_f64() * 1000.0;
        let name = format!("visibility lag p99 <= {target} ms");
        let r = result("visibility_lag", name, target, m.lag_p99_ms, "ms", |o| {
            o <= target
        });
        out.push(r);
    }
    out
}

/// The notification objectives, for a run with `[subscriptions]`: each notification
/// finding kind (0 allowed unless raised) and `notification_latency_p99`. Not measured
/// (no subscription could be judged), an objective the scenario names fails; an implicit
/// one neither passes nor fails.
pub fn judge_notifications(slo: &Slo, n: Option<&Notifications>) -> Vec<SloResult> {
    let measured = n.filter(|n| n.measured);
    let reason = n
        .and_then(|n| n.reason.clone())
        .unwrap_or_else(|| "no subscription was judged".into());
    let mut out = Vec::new();
    for kind in NOTIFICATION_KINDS {
        let max = slo.max_findings(kind) as f64;
        let observed = measured.map(|n| match kind {
            "missed_notification" => n.missed as f64,
            "duplicate_notification" => n.duplicated as f64,
            _ => n.unexpected as f64,
        });
        let r = result(
            "findings",
            format!("{kind} <= {max}"),
            max,
            observed,
            "count",
            |o| o <= max,
        );
        let asked = slo.findings.contains_key(kind);
        out.push(not_measured_because(r, &reason, asked));
    }
    if let Some(max) = slo.notification_latency_p99 {
        let target = max.as_secs_f64() * 1000.0;
        let observed = measured.and_then(|n| n.latency.p99_ms);
        let name = format!("notification latency p99 <= {target} ms");
        let r = result("notification_latency", name, target, observed, "ms", |o| {
            o <= target
        });
        out.push(not_measured_because(r, &reason, true));
    }
    out
}

fn not_measured_because(r: SloResult, reason: &str, asked: bool) -> SloResult {
    match r.observed {
        None if asked => SloResult {
            detail: format!("not measured, though the scenario asks for it: {reason}"),
            ..r
        },
        None => SloResult {
            detail: format!("not measured: {reason}"),
            not_measured: Some(reason.to_owned()),
            ..r
        },
        Some(_) => r,
    }
}

fn result(
    kind: &str,
    name: String,
    target: f64,
    observed: Option<f64>,
    unit: &str,
    ok: impl Fn(f64) -> bool,
) -> SloResult {
    let passed = observed.is_some_and(ok);
    let detail = match observed {
        None => "not measured: no samples, so it cannot pass".to_owned(),
        Some(o) if passed => format!("observed {} {unit}", round(o)),
        Some(o) => format!(
            "observed {} {unit}, target {} {unit}",
            round(o),
            round(target)
        ),
    };
    SloResult {
        kind: kind.to_owned(),
        name,
        target,
        observed,
        unit: unit.to_owned(),
        passed,
        detail,
        not_measured: None,
    }
}

/// Whether every measured objective passed (not measured ones neither pass nor fail).
pub fn all_passed(results: &[SloResult]) -> bool {
    results.iter().all(|r| r.passed || r.not_measured.is_some())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The checker's kind for a contract name.
pub fn kind_of(name: &str) -> Option<Kind> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::slo::LatencySlo;
    use std::time::Duration;

    #[test]
    fn judges_each_objective_and_an_unmeasured_one_fails() {
        let slo = Slo {
            latency: vec![
                LatencySlo {
                    op: "read Patient".into(),
                    percentile: 99.0,
                    max: Duration::from_millis(100),
                },
                LatencySlo {
                    op: "create Claim".into(),
                    percentile: 50.0,
                    max: Duration::from_millis(100),
                },
            ],
            error_rate: Some(0.01),
            min_throughput: Some(10.0),
            findings: [("stale_read".to_owned(), 2)].into(),
            visibility_lag_p99: Some(Duration::from_secs(1)),
            notification_latency_p99: None,
        };
        let pct = |op: &str, _p: f64| (op == "read Patient").then_some(120.0);
        let findings = |k: Kind| if k == Kind::StaleRead { 2 } else { 0 };
        let m = Measured {
            percentile: &pct,
            interactions: 1000,
            not_ok: 5,
            throughput: 50.0,
            findings: &findings,
            lag_p99_ms: None,
            not_measured: &|k| unchecked(k, &[]),
        };
        let r = judge(&slo, &m);
        let by = |name: &str| r.iter().find(|r| r.name.starts_with(name)).unwrap();
        assert!(!by("p99 of read Patient").passed);
        assert!(!by("p50 of create Claim").passed, "no samples cannot pass");
        assert!(by("error rate").passed);
        assert!(by("throughput").passed);
        assert!(by("stale_read").passed);
        assert!(by("lost_write").passed);
        let audit = by("audit_gap");
        assert!(!audit.passed && audit.not_measured.is_some(), "{audit:?}");
        assert!(by("lost_update").not_measured.is_some());
        assert!(!by("visibility lag").passed);
        assert!(by("scope_not_enforced").not_measured.is_some());
        // Notification kinds are judged apart, for runs that subscribe.
        assert_eq!(r.iter().filter(|r| r.kind == "findings").count(), 11);
        let asked = Slo {
            findings: [("audit_gap".to_owned(), 0)].into(),
            ..Slo::default()
        };
        let asked = judge(&asked, &m);
        let gap = asked
            .iter()
            .find(|r| r.name.starts_with("audit_gap"))
            .unwrap();
        assert!(
            !gap.passed && gap.not_measured.is_none() && !all_passed(&asked),
            "an unmeasured objective the scenario names fails: {gap:?}"
        );
        assert!(!all_passed(&r), "a measured failure fails");
        let unmeasured_only: Vec<SloResult> =
            r.into_iter().filter(|s| s.not_measured.is_some()).collect();
        assert!(all_passed(&unmeasured_only), "not measured is no failure");
    }
}
