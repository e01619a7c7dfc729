//! The readiness scorecard at the top of every report: the five questions a hospital
//! should ask before signing, each answered pass / fail / not measured with the evidence
//! next to it. Derived from the rest of the report only, so a re-rendered report gives
//! the same answers.

use serde::{Deserialize, Serialize};

use super::Report;
use crate::check::Kind;

/// One answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    NotMeasured,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One of the five questions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// `real_time_access`, `write_back`, `under_load`, `ehr_mapping`, `failure_handling`.
    pub id: String,
    pub question: String,
    pub verdict: Verdict,
    /// Short lines of evidence, figures included.
    pub evidence: Vec<String>,
}

/// Finding kinds that mean a write did not land as acknowledged, exactly once, unaltered.
const WRITE_BACK: [Kind; 4] = [
    Kind::LostWrite,
    Kind::CorruptedWrite,
    Kind::DuplicateWrite,
    Kind::LostUpdate,
];

/// Answers the five questions from a report.
pub fn score(r: &Report) -> Vec<Question> {
    let mut questions = vec![
        real_time(r),
        write_back(r),
        under_load(r),
        ehr_mapping(r),
        failure_handling(r),
        super::access::audit_question(
            &r.access.audit,
            count(r, Kind::AuditGap),
            count(r, Kind::AuditMismatch),
        ),
        super::access::minimum_necessary_question(&r.access),
    ];
    // Like the notification consistency cases: asked only of runs that subscribe.
    questions.extend(super::notifications::question(r));
    questions
}

fn question(id: &str, text: &str, verdict: Verdict, evidence: Vec<String>) -> Question {
    Question {
        id: id.to_owned(),
        question: text.to_owned(),
        verdict,
        evidence,
    }
}

fn count(r: &Report, kind: Kind) -> u64 {
    r.finding_counts.get(&kind).copied().unwrap_or(0)
}

/// Whether every SLO of these kinds passed; `None` when there is none.
fn slos_pass(r: &Report, kinds: &[&str], about: impl Fn(&str) -> bool) -> Option<bool> {
    let mut relevant = r
        .slo
        .iter()
        .filter(|s| kinds.contains(&s.kind.as_str()) && about(&s.name))
        .peekable();
    relevant.peek()?;
    Some(relevant.all(|s| s.passed))
}

fn real_time(r: &Report) -> Question {
    let reads: Vec<_> = r
        .operations
        .iter()
        .filter(|o| o.op.starts_with("read ") || o.op.starts_with("search "))
        .collect();
    let mut evidence: Vec<String> = reads
        .iter()
        .map(|o| format!("{}: p99 {:.1} ms over {}", o.op, o.latency_ms.p99, o.count))
        .collect();
    let lag = &r.visibility_lag.lag;
    if let (Some(p50), Some(p99)) = (lag.p50_ms, lag.p99_ms) {
        evidence.push(format!(
            "visibility lag (write → seen by search): p50 {p50:.1} ms, p99 {p99:.1} ms over {} writes",
            lag.samples
        ));
    }
    let slo = slos_pass(r, &["latency", "visibility_lag"], |n| {
        n.contains("read ")
            || n.contains("search ")
            || n.contains("visibility")
            || n.contains(" all ")
    });
    let stale = count(r, Kind::StaleRead);
    if stale > 0 {
        evidence.push(format!(
            "{stale} stale reads (an older version served after a newer one was acknowledged)"
        ));
    }
    let verdict = match (reads.is_empty(), slo) {
        (true, _) => Verdict::NotMeasured,
        (false, Some(false)) => Verdict::Fail,
        _ if stale > 0 => Verdict::Fail,
        _ => Verdict::Pass,
    };
    question(
        "real_time_access",
        "Real-time data access: are reads fast and is new data visible at once?",
        verdict,
        evidence,
    )
}

fn write_back(r: &Report) -> Question {
    let bad: u64 = WRITE_BACK.iter().map(|k| count(r, *k)).sum();
    let mut evidence = vec![format!(
        "{} writes checked at read-back; {} lost, {} corrupted, {} duplicated, {} lost updates",
        r.checked.writes_checked(),
        count(r, Kind::LostWrite),
        count(r, Kind::CorruptedWrite),
        count(r, Kind::DuplicateWrite),
        count(r, Kind::LostUpdate),
    )];
    let unverified = r.checked.writes_unverified();
    if unverified > 0 {
        evidence.push(format!(
            "{unverified} writes could not be verified (read-back failed)"
        ));
    }
    let verdict = if r.checked.writes_checked() == 0 {
        Verdict::NotMeasured
    } else if bad > 0 {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    question(
        "write_back",
        "Write-back: is every acknowledged write found again, exactly once, unaltered?",
        verdict,
        evidence,
    )
}

fn under_load(r: &Report) -> Question {
    let s = &r.summary;
    let mut evidence = vec![
        format!(
            "{} concurrent encounters reached ({} users planned), {} encounters, {:.0} interactions/s",
            s.peak_concurrency, r.run.load.users, s.encounters, s.throughput
        ),
        format!(
            "error rate {:.3} % ({} fail, {} info of {})",
            if s.interactions > 0 {
                (s.fail + s.info) as f64 * 100.0 / s.interactions as f64
            } else {
                0.0
            },
            s.fail,
            s.info,
            s.interactions
        ),
    ];
    let mut slowest: Vec<_> = r.operations.iter().collect();
    slowest.sort_by(|a, b| b.latency_ms.p99.total_cmp(&a.latency_ms.p99));
    for o in slowest.iter().take(3) {
        evidence.push(format!("{}: p99 {:.1} ms", o.op, o.latency_ms.p99));
    }
    let verdict = match (
        s.interactions,
        slos_pass(r, &["latency", "error_rate", "throughput"], |_| true),
    ) {
        (0, _) => Verdict::NotMeasured,
        (_, Some(false)) => Verdict::Fail,
        (_, Some(true)) => Verdict::Pass,
        (_, None) => Verdict::NotMeasured,
    };
    question(
        "under_load",
        "Behaviour under load: does it hold the concurrency with acceptable latency and errors?",
        verdict,
        evidence,
    )
}

fn ehr_mapping(r: &Report) -> Question {
    let mut evidence = vec![format!(
        "profile {} against {}",
        r.run.profile, r.run.target
    )];
    let m = &r.mapping;
    evidence.extend(m.decisions.iter().map(|d| d.line()));
    let adjusted: u64 = m.adjustments.iter().map(|a| a.count).sum();
    if adjusted > 0 {
        evidence.push(format!(
            "{} changes made to what was sent so the EHR accepts it ({} kinds)",
            super::mapping::thousands(adjusted),
            m.adjustments.len()
        ));
    }
    evidence.extend(
        m.quirks_observed
            .iter()
            .filter(|q| q.count > 0)
            .map(|q| q.line()),
    );
    if r.summary.skipped_writes > 0 {
        evidence.push(format!(
            "{} writes skipped (a resource they reference was never created)",
            r.summary.skipped_writes
        ));
    }
    let rejected: u64 = r
        .operations
        .iter()
        .filter(|o| !o.op.starts_with("read ") && !o.op.starts_with("search "))
        .map(|o| {
            o.errors
                .get(&crate::vocab::interaction::ErrorClass::ClientError)
                .copied()
                .unwrap_or(0)
        })
        .sum();
    if rejected > 0 {
        evidence.push(format!(
            "{rejected} writes refused by the server as invalid (4xx)"
        ));
    }
    let verdict = if r.summary.interactions == 0 {
        Verdict::NotMeasured
    } else if rejected > 0 {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    question(
        "ehr_mapping",
        "EHR-specific mapping: are the writes accepted in this EHR's dialect?",
        verdict,
        evidence,
    )
}

fn failure_handling(r: &Report) -> Question {
    let injected: u64 = r.faults.injected.values().sum();
    let mut evidence: Vec<String> = r
        .faults
        .injected
        .iter()
        .map(|(k, v)| format!("{k}: {v} injected"))
        .collect();
    let dup = count(r, Kind::DuplicateWrite);
    let committed = count(r, Kind::CommittedDespiteError);
    let lost = count(r, Kind::LostWrite);
    evidence.push(format!(
        "{} retries; {dup} duplicates, {committed} writes committed despite an error, {lost} lost",
        r.summary.retries
    ));
    let verdict = if injected == 0 {
        Verdict::NotMeasured
    } else if dup + committed + lost > 0 {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    question(
        "failure_handling",
        "Failure handling: under injected faults, does the integration avoid losing or duplicating data?",
        verdict,
        evidence,
    )
}
