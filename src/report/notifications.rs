//! The scorecard's notification question — "Do alerts arrive exactly once, in time?" —
//! answered from the report's `notifications` section and its notification objectives
//! alone (asked only of runs with `[subscriptions]`): counts of missed, duplicated and unexpected notifications, the write → delivery
//! latency, what the receiver refused and the server redelivered, gaps in event numbers
//! and what `$events` recovered. Not measured (no subscription, none active, an empty
//! payload) says why; an objective the scenario asked for that could not be measured
//! fails, as it does in the SLO table and JUnit.

use super::scorecard::{Question, Verdict};
use super::{Report, SloResult};
use crate::check::notify::{Gap, Notifications};
use crate::vocab::finding::NOTIFICATION_KINDS;
use crate::vocab::notification::Recovery;

/// The question's id in `report.json`.
pub const ID: &str = "notification_integrity";
const TEXT: &str = "Notifications: do alerts arrive exactly once, in time?";

/// Answers the question for a run with `[subscriptions]`; `None` for one without (no
/// notification was owed, so the question is not asked).
pub fn question(r: &Report) -> Option<Question> {
    let n = r.notifications.as_ref()?;
    let (verdict, evidence) = match n.measured {
        false => unmeasured(r, n),
        true => measured(r, n),
    };
    Some(Question {
        id: ID.to_owned(),
        question: TEXT.to_owned(),
        verdict,
        evidence,
    })
}

/// The notification objectives of the report.
fn objectives(r: &Report) -> impl Iterator<Item = &SloResult> {
    r.slo.iter().filter(|s| {
        s.kind == "notification_latency"
            || (s.kind == "findings"
                && NOTIFICATION_KINDS
                    .iter()
                    .any(|k| s.name.starts_with(&format!("{k} "))))
    })
}

/// Failed objectives: measured and over target, or asked for and not measured.
fn failed(r: &Report) -> Vec<&SloResult> {
    objectives(r)
        .filter(|s| !s.passed && s.not_measured.is_none())
        .collect()
}

fn unmeasured(r: &Report, n: &Notifications) -> (Verdict, Vec<String>) {
    let why = n
        .reason
        .clone()
        .unwrap_or_else(|| "no subscription was judged".into());
    let mut evidence = vec![format!("not measured: {why}")];
    let asked = failed(r);
    if asked.is_empty() {
        return (Verdict::NotMeasured, evidence);
    }
    let names: Vec<&str> = asked.iter().map(|s| s.name.as_str()).collect();
    evidence.push(format!(
        "the scenario asks for {} but it could not be measured",
        names.join(", ")
    ));
    (Verdict::Fail, evidence)
}

fn measured(r: &Report, n: &Notifications) -> (Verdict, Vec<String>) {
    let judged = n.subscriptions.iter().filter(|s| s.measured).count();
    let mut evidence = vec![format!(
        "{} notifications owed by {judged} of {} subscriptions; {} arrived in time; {} missed, {} duplicated, {} unexpected",
        n.expected,
        n.subscriptions.len(),
        n.notified,
        n.missed,
        n.duplicated,
        n.unexpected
    )];
    let l = &n.latency;
    evidence.push(match (l.p50_ms, l.p99_ms, l.max_ms) {
        (Some(p50), Some(p99), Some(max)) => format!(
            "latency (write acknowledged → delivered): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {} notifications",
            l.samples
        ),
        _ => "latency: no notification arrived, so none measured".into(),
    });
    if n.refused > 0 || n.redelivered > 0 {
        evidence.push(format!(
            "{} deliveries refused by the receiver; {} redelivered by the server",
            n.refused, n.redelivered
        ));
    }
    if n.unattributed > 0 {
        evidence.push(format!(
            "{} notifications for resources a transaction or batch Bundle may have written, not judged",
            n.unattributed
        ));
    }
    if !n.gaps.is_empty() {
        evidence.push(gaps(&n.gaps));
    }
    for s in &n.subscriptions {
        let Some(h) = &s.heartbeat else { continue };
        let silence = h
            .longest_silence_ms
            .map_or("no delivery at all".to_owned(), |ms| {
                format!("longest silence {ms:.0} ms")
            });
        let kept = if h.kept { "kept" } else { "not kept" };
        evidence.push(format!(
            "{}: heartbeat every {} ms asked, {kept}: {} heartbeats, {silence}",
            s.name, h.period_ms, h.received
        ));
    }
    for s in n.subscriptions.iter().filter(|s| !s.measured) {
        evidence.push(format!("{}: {}", s.name, s.reason));
    }
    let over = failed(r);
    for s in &over {
        evidence.push(format!("objective not met: {} ({})", s.name, s.detail));
    }
    let bad = n.missed + n.duplicated + n.unexpected > 0;
    let verdict = if bad || !over.is_empty() {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    (verdict, evidence)
}

/// "3 gaps in event numbers (5 events): 2 recovered by $events, 1 unrecoverable".
fn gaps(gaps: &[Gap]) -> String {
    let events: u64 = gaps.iter().map(|g| g.to - g.from + 1).sum();
    let of = |want: Option<Recovery>| gaps.iter().filter(|g| g.recovery == want).count();
    let mut parts = vec![
        format!("{} recovered by $events", of(Some(Recovery::Recovered))),
        format!("{} unrecoverable", of(Some(Recovery::Unrecoverable))),
    ];
    let unsupported = of(Some(Recovery::Unsupported));
    if unsupported > 0 {
        parts.push(format!("{unsupported} where $events is unsupported"));
    }
    let not_asked = of(None);
    if not_asked > 0 {
        parts.push(format!("{not_asked} not asked (the run was cut short)"));
    }
    format!(
        "{} gaps in event numbers ({events} events): {}",
        gaps.len(),
        parts.join(", ")
    )
}
