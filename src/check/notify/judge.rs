//! The notification verdict over what [`Judge`] kept: deliveries split into the events
//! they name, each event attributed to the write it is for (by type, id and version; by
//! harness identifier for writes whose id is unknown), then per write: missed, late,
//! duplicated; per event: unexpected or foreign; per topic subscription: gaps and what
//! `$events` recovered.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Gap, Judge, Latency, Notifications, SubscriptionSummary, Write};
use crate::check::{Finding, Kind};
use crate::history::{
    Form, Named, NotificationType, Outcome as Said, Payload, Recovery, SubscriptionState,
};

/// One event a delivery named.
#[derive(Clone, Debug)]
struct Unit {
    index: u64,
    received_us: u64,
    named: Named,
}

/// A write owed a notification on one subscription.
struct Owed<'a> {
    write: &'a Write,
    resource_type: String,
    id: Option<String>,
    units: Vec<Unit>,
}

pub(super) fn judge(j: Judge) -> (Notifications, Vec<Finding>) {
    let mut out = Notifications::default();
    let mut findings = Vec::new();
    let mut latencies = Vec::new();
    count_deliveries(&j, &mut out);
    for (name, mark) in &j.subs {
        let mut summary = SubscriptionSummary {
            name: name.clone(),
            form: mark.form,
            payload: mark.payload,
            criteria: mark.criteria.clone(),
            state: mark.state,
            measured: false,
            reason: mark.detail.clone(),
            expected: 0,
            notified: 0,
            heartbeat: mark
                .heartbeat_ms
                .filter(|_| mark.state == SubscriptionState::Active)
                .map(|ms| super::heartbeat::judge(&j, name, ms)),
        };
        if mark.state != SubscriptionState::Active {
            summary.reason = format!(
                "not measured: the subscription never became active ({})",
                mark.detail
            );
        } else if mark.payload == Payload::Empty {
            summary.reason = "not measured: an empty payload names no resource, so no notification can be tied to its write".into();
        } else {
            summary.measured = true;
            judge_one(
                &j,
                name,
                mark.form,
                &mut summary,
                &mut out,
                &mut findings,
                &mut latencies,
            );
        }
        out.subscriptions.push(summary);
    }
    out.measured = out.subscriptions.iter().any(|s| s.measured);
    if !out.measured {
        let reasons: Vec<String> = out
            .subscriptions
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect();
        out.reason = Some(reasons.join("; "));
    }
    out.latency = percentiles(latencies);
    (out, findings)
}

fn count_deliveries(j: &Judge, out: &mut Notifications) {
    let events = |n: &crate::history::Notification| -> BTreeSet<String> {
        match n.event_numbers.is_empty() {
            false => n.event_numbers.iter().map(|e| format!("#{e}")).collect(),
            true => n
                .focus
                .iter()
                .map(|f| format!("{}/{}/{:?}", f.resource_type, f.id, f.version))
                .collect(),
        }
    };
    let mut refused: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (_, n) in &j.notes {
        if n.accepted() {
            out.deliveries += 1;
            let keys = events(n);
            let before = refused.len();
            refused.retain(|(s, k)| !(s == &n.subscription && !k.is_empty() && k.is_subset(&keys)));
            out.redelivered += (before - refused.len()) as u64;
        } else {
            out.refused += 1;
            refused.push((n.subscription.clone(), events(n)));
        }
    }
}

/// The events the accepted deliveries for `name` named, in arrival order.
fn units(j: &Judge, name: &str) -> Vec<Unit> {
    j.notes
        .iter()
        .filter(|(_, n)| n.subscription == name && n.accepted())
        .filter(|(_, n)| {
            matches!(
                n.kind,
                NotificationType::EventNotification | NotificationType::Empty
            )
        })
        .flat_map(|(index, n)| {
            n.focus.iter().map(move |f| Unit {
                index: *index,
                received_us: n.received_us,
                named: f.clone(),
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn judge_one(
    j: &Judge,
    name: &str,
    form: Form,
    summary: &mut SubscriptionSummary,
    out: &mut Notifications,
    findings: &mut Vec<Finding>,
    latencies: &mut Vec<u64>,
) {
    let mut owed: Vec<Owed> = Vec::new();
    for w in j
        .writes
        .iter()
        .filter(|w| w.notify.iter().any(|n| n == name))
    {
        match (w.said, &w.id) {
            (Said::Ok, _) => owed.push(Owed {
                write: w,
                resource_type: w.resource_type.clone(),
                id: w.id.clone(),
                units: Vec::new(),
            }),
            (Said::Info, _) => match w.identifier.as_ref().and_then(|i| j.seen.get(i)) {
                Some((rt, id)) => owed.push(Owed {
                    write: w,
                    resource_type: rt.clone(),
                    id: Some(id.clone()),
                    units: Vec::new(),
                }),
                None => out.unjudged += 1,
            },
            (Said::Fail, _) => {}
        }
    }
    let all = units(j, name);
    let numbers: Vec<u64> = all.iter().filter_map(|u| u.named.event).collect();
    for unit in all {
        match attribute(j, &owed, &unit) {
            Ok(at) => owed[at].units.push(unit),
            Err(true) if bundled(j, name, &unit) => out.unattributed += 1,
            Err(true) => findings.push(unexpected(j, name, &unit)),
            Err(false) => out.foreign += 1,
        }
    }
    let replayed = replayed(j, name);
    for o in &owed {
        summary.expected += 1;
        verdict(j, name, o, &replayed, summary, findings, latencies);
    }
    if form == Form::Topic {
        gaps(j, name, &numbers, out);
    }
    out.expected += summary.expected;
    out.notified += summary.notified;
    out.missed = count(findings, Kind::MissedNotification);
    out.duplicated = count(findings, Kind::DuplicateNotification);
    out.unexpected = count(findings, Kind::UnexpectedNotification);
}

fn count(findings: &[Finding], kind: Kind) -> u64 {
    findings.iter().filter(|f| f.kind == kind).count() as u64
}

/// The owed write a unit is for; `Err(true)`: a harness resource's notification that no
/// owed write explains; `Err(false)`: a resource the harness never wrote.
fn attribute(j: &Judge, owed: &[Owed], u: &Unit) -> Result<usize, bool> {
    let n = &u.named;
    let same: Vec<usize> = (0..owed.len())
        .filter(|&i| {
            owed[i].resource_type == n.resource_type && owed[i].id.as_deref() == Some(n.id.as_str())
        })
        .collect();
    if let Some(v) = &n.version {
        if let Some(&i) = same
            .iter()
            .find(|&&i| owed[i].write.version.as_deref() == Some(v))
        {
            return Ok(i);
        }
        let key = (n.resource_type.clone(), n.id.clone());
        let other_write = j
            .written
            .get(&key)
            .is_some_and(|ws| ws.iter().any(|(wv, _)| wv.as_deref() == Some(v)));
        if other_write {
            return Err(true);
        }
    }
    if let Some(&i) = same
        .iter()
        .find(|&&i| owed[i].units.is_empty())
        .or(same.last())
    {
        return Ok(i);
    }
    let by_identifier = (0..owed.len()).find(|&i| {
        owed[i]
            .write
            .identifier
            .as_ref()
            .is_some_and(|w| n.identifiers.contains(w))
    });
    if let Some(i) = by_identifier {
        return Ok(i);
    }
    let ours = j
        .written
        .contains_key(&(n.resource_type.clone(), n.id.clone()))
        || !n.identifiers.is_empty();
    Err(ours)
}

/// Events `$events` replayed for `name`: (type, id, version) → event number.
fn replayed(j: &Judge, name: &str) -> HashMap<(String, String), (u64, Recovery)> {
    let mut out = HashMap::new();
    for q in j.queries.iter().filter(|q| q.name == name) {
        for e in &q.events {
            if let Some(n) = e.event {
                out.insert((e.resource_type.clone(), e.id.clone()), (n, q.recovery));
            }
        }
    }
    out
}

fn verdict(
    j: &Judge,
    name: &str,
    o: &Owed,
    replayed: &HashMap<(String, String), (u64, Recovery)>,
    summary: &mut SubscriptionSummary,
    findings: &mut Vec<Finding>,
    latencies: &mut Vec<u64>,
) {
    let w = o.write;
    let what = format!(
        "{} {} (subscription `{name}`)",
        w.resource_type,
        o.id.as_deref().unwrap_or("?")
    );
    let mut units = o.units.clone();
    units.sort_by_key(|u| u.received_us);
    let mut evidence = vec![w.invoke, w.done];
    evidence.extend(units.iter().map(|u| u.index));
    let finding = |kind, detail: String, evidence: &[u64]| {
        let mut evidence = evidence.to_vec();
        evidence.sort_unstable();
        evidence.dedup();
        Finding {
            kind,
            resource_type: w.resource_type.clone(),
            id: o.id.clone(),
            identifier: w.identifier.clone(),
            detail,
            evidence,
        }
    };
    let ms = |us: u64| us as f64 / 1000.0;
    let Some(first) = units.first() else {
        if j.end_us < w.ack_us + j.timeout_us {
            summary.expected -= 1;
            return;
        }
        let mut detail = format!(
            "{what}: acknowledged at {:.3} s, no notification within {} ms",
            ms(w.ack_us) / 1000.0,
            j.timeout_us / 1000
        );
        let key = (w.resource_type.clone(), o.id.clone().unwrap_or_default());
        if let Some((n, r)) = replayed.get(&key) {
            detail.push_str(&format!("; event {n} was missing, $events: {r:?}"));
        }
        findings.push(finding(Kind::MissedNotification, detail, &evidence));
        return;
    };
    let latency = first.received_us.saturating_sub(w.ack_us);
    latencies.push(latency);
    if latency > j.timeout_us {
        let detail = format!(
            "{what}: notified {:.1} ms after the acknowledgement, later than the {} ms timeout",
            ms(latency),
            j.timeout_us / 1000
        );
        findings.push(finding(Kind::MissedNotification, detail, &evidence));
    } else {
        summary.notified += 1;
    }
    if units.len() > 1 {
        let mut by_event: BTreeMap<Option<u64>, u64> = BTreeMap::new();
        for u in &units {
            *by_event.entry(u.named.event).or_default() += 1;
        }
        let parts: Vec<String> = by_event
            .iter()
            .map(|(e, k)| match e {
                Some(e) => format!("event {e} × {k}"),
                None => format!("{k} deliveries"),
            })
            .collect();
        let detail = format!(
            "{what}: delivered {} times ({})",
            units.len(),
            parts.join(", ")
        );
        findings.push(finding(Kind::DuplicateNotification, detail, &evidence));
    }
}

/// Whether a Bundle may have written what `u` names: `name` was owed notifications by a
/// transaction or batch that did not fail, and no write of the resource is known to
/// have failed.
fn bundled(j: &Judge, name: &str, u: &Unit) -> bool {
    let key = (u.named.resource_type.clone(), u.named.id.clone());
    let failed = j
        .written
        .get(&key)
        .is_some_and(|ws| ws.iter().all(|(_, s)| *s == Said::Fail));
    j.bundled.contains(name) && !failed
}

fn unexpected(j: &Judge, name: &str, u: &Unit) -> Finding {
    let n = &u.named;
    let history = j.written.get(&(n.resource_type.clone(), n.id.clone()));
    let why = match history {
        Some(ws) if ws.iter().all(|(_, s)| *s == Said::Fail) => "a write that failed",
        Some(_) => "a write that did not match its criteria",
        None => "a resource with a harness identifier the run did not write",
    };
    Finding {
        kind: Kind::UnexpectedNotification,
        resource_type: n.resource_type.clone(),
        id: Some(n.id.clone()),
        identifier: n.identifiers.first().cloned(),
        detail: format!(
            "subscription `{name}` notified {}/{} version {} (event {}): {why}",
            n.resource_type,
            n.id,
            n.version.as_deref().unwrap_or("?"),
            n.event.map_or("-".into(), |e| e.to_string())
        ),
        evidence: vec![u.index],
    }
}

fn gaps(j: &Judge, name: &str, numbers: &[u64], out: &mut Notifications) {
    let seen: BTreeSet<u64> = numbers.iter().copied().collect();
    let mut next = 1;
    for &n in &seen {
        if n > next {
            let (from, to) = (next, n - 1);
            let q = j
                .queries
                .iter()
                .find(|q| q.name == name && q.from <= from && q.to >= to);
            out.gaps.push(Gap {
                subscription: name.to_owned(),
                from,
                to,
                recovery: q.map(|q| q.recovery),
                detail: q.map(|q| q.detail.clone()).unwrap_or_default(),
            });
        }
        next = next.max(n + 1);
    }
    // Events lost after the last one delivered: known from `$status`, asked of `$events`.
    let last = seen.last().copied().unwrap_or(0);
    for q in j.queries.iter().filter(|q| q.name == name && q.from > last) {
        out.gaps.push(Gap {
            subscription: name.to_owned(),
            from: q.from,
            to: q.to,
            recovery: Some(q.recovery),
            detail: q.detail.clone(),
        });
    }
}

fn percentiles(mut us: Vec<u64>) -> Latency {
    us.sort_unstable();
    let at = |q: f64| -> Option<f64> {
        let n = us.len();
        (n > 0).then(|| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            us[rank - 1] as f64 / 1000.0
        })
    };
    Latency {
        samples: us.len() as u64,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}
