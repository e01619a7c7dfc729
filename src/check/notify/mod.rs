//! Notification judging: every acknowledged write that matched an active subscription is
//! owed one notification within the subscription's timeout. Fed the same records as the
//! consistency checker (by reference), it keeps only what notifications need: the writes
//! tagged with subscriptions (and, once a subscription exists, the ids of every write, to
//! tell a notification for a write that did not match from one for a stranger's
//! resource), what read-back saw of identifiers, the deliveries and `$events` replays.
//! Findings: `missed_notification`, `duplicate_notification` (with event numbers, the
//! repeated numbers named), `unexpected_notification`; the ack → delivery latency; gaps
//! in event numbers with what `$events` recovered. A transaction or batch is not one
//! write: its entries, recorded as writes of their own and tagged from their resources,
//! are judged one by one; a notification no write explains on a subscription such a
//! Bundle was tagged with is `unattributed`, not unexpected. Pure.

mod heartbeat;
mod judge;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use heartbeat::Heartbeat;

use crate::history::{
    Completion, Event, EventsQuery, Form, Interaction, Notification, Op, Outcome as Said, Payload,
    Phase, Record, Recovery, SubscriptionMark, SubscriptionState,
};

/// What was judged of notifications (absent when the run had no subscriptions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Notifications {
    /// Whether any subscription could be judged; when not, `reason` says why.
    pub measured: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub subscriptions: Vec<SubscriptionSummary>,
    /// Acknowledged (or read-back-confirmed) writes owed a notification.
    pub expected: u64,
    /// Of those, notified within the timeout.
    pub notified: u64,
    pub missed: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    /// Writes ended `info` whose effect read-back could not confirm: not judged.
    pub unjudged: u64,
    /// Deliveries the receiver accepted / refused (its faults, a bad secret).
    pub deliveries: u64,
    pub refused: u64,
    /// Notifications the server delivered again after the receiver refused them.
    pub redelivered: u64,
    /// Accepted notifications naming resources the harness never wrote.
    pub foreign: u64,
    /// Notifications for a harness resource no single write explains, on a subscription
    /// a transaction or batch Bundle wrote for without its entries being judged one by
    /// one: not called unexpected (the Bundle may well have written it), not judged.
    #[serde(default)]
    pub unattributed: u64,
    /// Write acknowledgement → first delivery.
    pub latency: Latency,
    /// Gaps in backport event numbers and what `$events` did for each.
    pub gaps: Vec<Gap>,
}

/// One subscription, as judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionSummary {
    pub name: String,
    pub form: Form,
    pub payload: Payload,
    pub criteria: String,
    pub state: SubscriptionState,
    pub measured: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub expected: u64,
    pub notified: u64,
    /// For a subscription that asked for heartbeats: what arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<heartbeat::Heartbeat>,
}

/// Latency percentiles in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Missing event numbers of a topic subscription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub subscription: String,
    pub from: u64,
    pub to: u64,
    /// `None`: the harness did not ask (the run was cut short).
    pub recovery: Option<Recovery>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A version a write reported (if any) and how the write ended.
type Version = (Option<String>, Said);

/// A write with subscriptions, completed.
#[derive(Clone, Debug)]
struct Write {
    invoke: u64,
    done: u64,
    ack_us: u64,
    said: Said,
    resource_type: String,
    id: Option<String>,
    version: Option<String>,
    identifier: Option<String>,
    notify: Vec<String>,
}

/// The records notification judging keeps.
#[derive(Debug, Default)]
pub struct Judge {
    subs: BTreeMap<String, SubscriptionMark>,
    timeout_us: u64,
    pending: HashMap<u64, (Op, u64)>,
    writes: Vec<Write>,
    /// Every write's (type, id) → outcomes and versions, once a subscription exists.
    written: HashMap<(String, String), Vec<Version>>,
    readback: HashMap<u64, ()>,
    /// Harness identifier → (type, id) read-back saw.
    seen: HashMap<String, (String, String)>,
    notes: Vec<(u64, Notification)>,
    queries: Vec<EventsQuery>,
    /// Subscriptions a transaction or batch Bundle was tagged with (its entries' union)
    /// and that did not fail.
    bundled: std::collections::BTreeSet<String>,
    end_us: u64,
}

impl Judge {
    /// Takes in one record (in history order).
    pub fn see(&mut self, r: &Record) {
        self.end_us = self.end_us.max(r.time_us);
        match &r.event {
            Event::Subscription(m) => self.subscription(m),
            _ if self.subs.is_empty() => {}
            Event::Invoke(op) => self.invoke(r, op),
            Event::Ok(c) => self.complete(r, c, Said::Ok),
            Event::Fail(c) => self.complete(r, c, Said::Fail),
            Event::Info(c) => self.complete(r, c, Said::Info),
            Event::Notification(n) => self.notes.push((r.index, n.clone())),
            Event::EventsQuery(q) => self.queries.push(q.clone()),
            Event::FaultStart(_) | Event::FaultStop(_) => {}
        }
    }

    fn subscription(&mut self, m: &SubscriptionMark) {
        if let Some(t) = m.timeout_ms {
            self.timeout_us = self.timeout_us.max(t * 1000);
        }
        let keep = match self.subs.get(&m.name) {
            // Deleted at the end: what counts is whether it was ever active.
            Some(old) => {
                m.state != SubscriptionState::Deleted || old.state != SubscriptionState::Active
            }
            None => true,
        };
        if keep {
            self.subs.insert(m.name.clone(), m.clone());
        }
    }

    fn invoke(&mut self, r: &Record, op: &Op) {
        if op.f.is_write() {
            self.pending.insert(r.index, (op.clone(), r.time_us));
        } else if op.phase == Phase::Readback {
            self.readback.insert(r.index, ());
        }
    }

    fn complete(&mut self, r: &Record, c: &Completion, said: Said) {
        if self.readback.remove(&c.invoke).is_some() {
            for s in &c.seen {
                for i in &s.identifiers {
                    self.seen
                        .insert(i.clone(), (s.resource_type.clone(), s.id.clone()));
                }
            }
            return;
        }
        let Some((op, _)) = self.pending.remove(&c.invoke) else {
            return;
        };
        if matches!(op.f, Interaction::Transaction | Interaction::Batch) {
            // Not one write: its entries are judged where they are recorded one by one.
            if said != Said::Fail {
                self.bundled.extend(op.notify);
            }
            return;
        }
        let id = c.id.clone().or(op.id.clone());
        if let Some(id) = &id {
            let key = (op.resource_type.clone(), id.clone());
            self.written
                .entry(key)
                .or_default()
                .push((c.version.clone(), said));
        }
        if op.notify.is_empty() {
            return;
        }
        self.writes.push(Write {
            invoke: c.invoke,
            done: r.index,
            ack_us: r.time_us,
            said,
            resource_type: op.resource_type,
            id,
            version: c.version.clone(),
            identifier: op.identifier,
            notify: op.notify,
        });
    }

    /// Judges what was seen; `None` when the history has no subscriptions.
    pub fn finish(self) -> Option<(Notifications, Vec<crate::check::Finding>)> {
        if self.subs.is_empty() {
            return None;
        }
        Some(judge::judge(self))
    }
}

#[cfg(test)]
mod tests;
