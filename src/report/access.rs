//! The access section of a report (HIPAA audit controls and minimum necessary): whether
//! the audit trail reconstructs every access, the cross-patient leak check, the scope
//! enforcement probe, each saying whether it ran; and the two scorecard questions they
//! answer. Renders what `run` decided; decides nothing.

use serde::{Deserialize, Serialize};

use super::scorecard::{Question, Verdict};
use crate::check::access::LeakStats;
use crate::check::audit::{Patients, Stats};

/// Whether a check ran and what it concluded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran; its findings are in the report.
    Measured,
    /// The target answers AuditEvent searches, but with no event for any access of the
    /// run: the trail is not exposed over the FHIR API.
    NotExposed,
    /// It did not run (`reason` says why): never a pass.
    #[default]
    NotMeasured,
}

/// The access section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub audit: Audit,
    pub leak: Leak,
    pub scope: Scope,
}

/// Audit reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tolerance_s: f64,
    /// The agent events had to name; `None`: agents not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub stats: Stats,
    pub patients: Patients,
}

/// The cross-patient leak check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub leaks: u64,
    pub stats: LeakStats,
}

/// The scope enforcement probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Out-of-scope requests sent.
    pub probes: u64,
    /// Of them, answered with a success: each a `scope_not_enforced` finding.
    pub accepted: u64,
    /// Of them, refused with 401 or 403.
    #[serde(default)]
    pub refused: u64,
    /// Of them, answered otherwise (404, 422, 5xx, no answer): neither a pass nor a
    /// finding.
    #[serde(default)]
    pub inconclusive: u64,
    /// The scopes the narrower token held (as granted, else as asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    /// Each request of the probe, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<Tried>,
}

/// One request of the scope probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// `create Observation`, `read Patient`, …
    pub request: String,
    /// The permission it needs (`system/Observation.c`).
    pub needs: String,
    /// Whether the held scopes allow it: `false` for the probes proper, `true` for the
    /// control request that shows the token works at all.
    pub in_scope: bool,
    /// The HTTP status, when one came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// History index of the invocation.
    pub invoke: u64,
}

/// "Audit trail: can every access be reconstructed?"
pub fn audit_question(a: &Audit, gaps: u64, mismatches: u64) -> Question {
    let p = &a.patients;
    let (verdict, mut evidence) = match a.status {
        Status::NotMeasured => (
            Verdict::NotMeasured,
            vec![format!(
                "not measured: {}",
                a.reason
                    .as_deref()
                    .unwrap_or("audit reconciliation did not run")
            )],
        ),
        Status::NotExposed => (
            Verdict::Fail,
            vec![format!(
                "audit trail not exposed over the FHIR API: {} AuditEvents returned, none for any of the run's {} accesses",
                a.stats.events, a.stats.expected
            )],
        ),
        Status::Measured => {
            let ok = gaps == 0 && mismatches == 0;
            let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
            let line = format!(
                "complete access history reconstructable for {} of {} patients touched",
                p.reconstructable, p.touched
            );
            let counts = format!(
                "{} of {} accesses found in the audit trail; {gaps} audit_gap, {mismatches} audit_mismatch; {} refused accesses checked for a success event",
                a.stats.matched, a.stats.expected, a.stats.refused_checked
            );
            (verdict, vec![line, counts])
        }
    };
    if a.stats.unknown > 0 && a.status == Status::Measured {
        evidence.push(format!(
            "{} accesses of unknown outcome (timeouts, resets) matched where possible, never counted as gaps",
            a.stats.unknown
        ));
    }
    Question {
        id: "audit_trail".into(),
        question: "Audit trail: can every access be reconstructed?".into(),
        verdict,
        evidence,
    }
}

/// "Minimum necessary: does the integration see only its patient's data?"
pub fn minimum_necessary_question(a: &Access) -> Question {
    let l = &a.leak;
    let s = &a.scope;
    let mut evidence = vec![match l.status {
        Status::Measured => format!(
            "{} scope_leak in {} patient-scoped searches ({} resources checked; {} unscoped searches not checked)",
            l.leaks, l.stats.searches_checked, l.stats.resources_checked, l.stats.searches_unscoped
        ),
        _ => format!(
            "leak check not measured: {}",
            l.reason.as_deref().unwrap_or("no patient-scoped search")
        ),
    }];
    evidence.push(match s.status {
        Status::Measured => format!(
            "scope enforcement probed with {} out-of-scope requests (token holding {}): {} accepted, {} refused, {} inconclusive",
            s.probes,
            s.scopes.as_deref().unwrap_or("narrower scopes"),
            s.accepted,
            s.refused,
            s.inconclusive
        ),
        _ => format!(
            "scope enforcement not measured: {}",
            s.reason.as_deref().unwrap_or("no probe ran")
        ),
    });
    let failed = (l.status == Status::Measured && l.leaks > 0)
        || (s.status == Status::Measured && s.accepted > 0);
    let verdict = if failed {
        Verdict::Fail
    } else if l.status == Status::Measured && l.stats.searches_checked > 0 {
        Verdict::Pass
    } else {
        Verdict::NotMeasured
    };
    Question {
        id: "minimum_necessary".into(),
        question: "Minimum necessary: does the integration see only its own patient's data?".into(),
        verdict,
        evidence,
    }
}
