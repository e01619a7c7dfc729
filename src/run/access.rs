//! The access checks of a run: after the read-back, fetch the target's audit trail
//! (AuditEvent searches over the run's time window, recorded in the history under the
//! `audit` phase; none when the EHR profile says AuditEvent is not served), then, once
//! the live judge has seen every record, reconcile every access with it and run the
//! cross-patient leak check (both pure, in `check`). Decides what the
//! report says of each: measured, not exposed, or not measured with the reason.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::check::{Finding, Kind, access, audit};
use crate::fhir::{Client, Ctx};
use crate::history::{self, Phase};
use crate::report::access::{Access, Audit, Leak, Status};
use crate::scenario::Scenario;

/// Most pages of AuditEvents fetched (200 events each).
const MAX_PAGES: usize = 20_000;

/// What fetching the audit trail gave.
pub enum Trail {
    /// `[audit]` is not enabled.
    Off,
    /// The events of the run's window.
    Events(Vec<audit::Event>),
    /// Why the trail could not be read.
    Unreadable(String),
}

/// The agent events must name: `[audit] agent`, else the SMART client id.
pub fn expected_agent(scenario: &Scenario) -> Option<String> {
    if let Some(a) = &scenario.audit.agent {
        return Some(a.clone());
    }
    match &scenario.auth {
        crate::fhir::auth::Config::Smart(s) => s
            .client_id
            .load("auth.client_id")
            .ok()
            .map(|s| s.expose().to_owned()),
        _ => None,
    }
}

/// Fetches every AuditEvent recorded from `from` (less the tolerance) until now.
pub async fn fetch(
    client: &Client,
    process: u64,
    from: DateTime<Utc>,
    scenario: &Scenario,
    profile: &crate::profile::Profile,
) -> Trail {
    if !scenario.audit.enabled {
        return Trail::Off;
    }
    // Not asked at all when the EHR is documented not to serve it.
    if let Some(why) = profile.audit.not_exposed(&profile.name) {
        return Trail::Unreadable(why);
    }
    let tolerance = chrono::Duration::from_std(scenario.audit.tolerance).unwrap_or_default();
    let ctx = Ctx {
        process,
        phase: Phase::Audit,
        step: Some("audit_fetch"),
        intended: None,
        group: None,
    };
    let since = (from - tolerance).to_rfc3339_opts(SecondsFormat::Secs, true);
    let until = (Utc::now() + tolerance).to_rfc3339_opts(SecondsFormat::Secs, true);
    let ge = format!("ge{since}");
    let le = format!("le{until}");
    let params = [
        ("date", ge.as_str()),
        ("date", le.as_str()),
        ("_count", "200"),
    ];
    let wall_start_ms = from.timestamp_millis();
    let mut reply = client.search(ctx, "AuditEvent", &params, None).await;
    let mut events = Vec::new();
    for page in 0..MAX_PAGES {
        if !reply.is_ok() {
            return Trail::Unreadable(refusal(page, reply.status));
        }
        let Some(body) = reply
            .body
            .as_ref()
            .filter(|b| b["resourceType"] == "Bundle")
        else {
            return Trail::Unreadable("the AuditEvent search did not answer a Bundle".into());
        };
        let entries = body.get("entry").and_then(|e| e.as_array());
        for r in entries
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource"))
        {
            events.extend(audit::parse(r, wall_start_ms));
        }
        let Some(next) = reply.next.take() else {
            return Trail::Events(events);
        };
        reply = client.next_page(ctx, "AuditEvent", &next).await;
    }
    Trail::Unreadable(format!(
        "more than {MAX_PAGES} pages of AuditEvents: the trail was not read to its end"
    ))
}

fn refusal(page: usize, status: Option<u16>) -> String {
    let status = status.map_or("no answer".to_owned(), |s| format!("HTTP {s}"));
    if page == 0 {
        format!("the target does not serve AuditEvent searches ({status})")
    } else {
        format!(
            "page {} of the AuditEvent search failed ({status}): the trail was not read to its end",
            page + 1
        )
    }
}

/// How long to let a remote target's audit writers catch up before fetching.
pub fn catch_up(scenario: &Scenario) -> Duration {
    match scenario.target {
        crate::scenario::Target::Mock => Duration::ZERO,
        crate::scenario::Target::Url(_) => scenario.audit.tolerance.min(Duration::from_secs(30)),
    }
}

/// The access section and its findings.
pub struct Judged {
    pub access: Access,
    pub findings: Vec<Finding>,
}

/// Runs the leak check over what the live judge collected and, with a trail, reconciles.
pub fn judge(
    collected: access::Access,
    scenario: &Scenario,
    trail: Trail,
    probed: super::scope::Probed,
    consistency: &[Finding],
) -> Judged {
    let mut findings = collected.leaks.clone();
    let leak = Leak {
        status: if collected.leak_stats.searches_checked > 0 {
            Status::Measured
        } else {
            Status::NotMeasured
        },
        reason: (collected.leak_stats.searches_checked == 0)
            .then(|| "no successful search named one patient".to_owned()),
        leaks: collected.leaks.len() as u64,
        stats: collected.leak_stats.clone(),
    };
    let expected = expected_agent(scenario);
    // A SMART client id is treated as a secret: the report names where it came from.
    let label = match (&scenario.audit.agent, &expected) {
        (Some(a), _) => Some(a.clone()),
        (None, Some(_)) => Some("the SMART client id (auth.client_id)".to_owned()),
        (None, None) => None,
    };
    let mut audit = Audit {
        tolerance_s: scenario.audit.tolerance.as_secs_f64(),
        agent: label,
        ..Audit::default()
    };
    match trail {
        Trail::Off => audit.reason = Some("[audit] enabled = false in the scenario".into()),
        Trail::Unreadable(why) => audit.reason = Some(why),
        Trail::Events(events) => {
            let options = audit::Options {
                tolerance_us: scenario.audit.tolerance.as_micros() as u64,
                agent: expected,
            };
            let r = audit::reconcile(&collected, &events, &effective(consistency), &options);
            audit.status = if r.exposed {
                Status::Measured
            } else {
                Status::NotExposed
            };
            if !r.exposed {
                audit.reason = Some("audit trail not exposed over the FHIR API".into());
            }
            audit.stats = r.stats;
            audit.patients = r.patients;
            findings.extend(r.findings);
        }
    }
    let scope = probed.scope;
    findings.extend(probed.findings);
    Judged {
        access: Access { audit, leak, scope },
        findings,
    }
}

/// The cross-patient leak check alone, over a history (`fhirsurge check`): it needs no
/// audit trail, so it is re-run offline; the audit reconciliation is not.
pub fn leaks(history_path: &Path) -> Result<(Vec<Finding>, access::LeakStats), history::Error> {
    let mut failed = None;
    let records =
        history::Reader::open(history_path)?.map_while(|r| r.map_err(|e| failed = Some(e)).ok());
    let collected = access::collect(records);
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((collected.leaks, collected.leak_stats))
}

/// `fail`/`info` writes the checker found committed: invocation (and completion)
/// index → the server id it found.
fn effective(consistency: &[Finding]) -> HashMap<u64, Option<String>> {
    consistency
        .iter()
        .filter(|f| f.kind == Kind::CommittedDespiteError)
        .flat_map(|f| f.evidence.iter().map(|&i| (i, f.id.clone())))
        .collect()
}

/// Why a finding kind's check did not run, per the access section: `Some(None)` it ran,
/// `Some(Some(why))` it did not, `None` the kind is not an access kind.
pub fn unmeasured(access: &Access, kind: Kind) -> Option<Option<String>> {
    let (status, reason) = match kind {
        Kind::AuditGap | Kind::AuditMismatch => (access.audit.status, &access.audit.reason),
        Kind::ScopeLeak => (access.leak.status, &access.leak.reason),
        Kind::ScopeNotEnforced => (access.scope.status, &access.scope.reason),
        _ => return None,
    };
    Some(match status {
        Status::Measured => None,
        Status::NotExposed => Some(reason.clone().unwrap_or_else(|| {
            "the target answers AuditEvent searches but exposes no event of this run's accesses"
                .into()
        })),
        Status::NotMeasured => Some(
            reason
                .clone()
                .unwrap_or_else(|| "the check did not run".into()),
        ),
    })
}

/// Counts by kind, after adding `findings`.
pub fn add(
    findings: &mut Vec<Finding>,
    counts: &mut std::collections::BTreeMap<Kind, u64>,
    more: Vec<Finding>,
) {
    for f in &more {
        *counts.entry(f.kind).or_default() += 1;
    }
    findings.extend(more);
}
