//! The simulated interactions: creates with retries, updates (with a rival `If-Match`
//! now and then), reads, searches, the read-back, and the records they become.

use rand::RngExt;
use serde_json::{Value, json};

use super::{Entity, Inject, Sim, SimOp, body};
use crate::history::{
    Completion, Content, ErrorClass, Event, Interaction, Op, Phase, Record, Seen,
};

const RT: &str = "Observation";

fn ident(value: &str) -> String {
    format!("{}|{value}", super::SYSTEM)
}

fn write_op(
    f: Interaction,
    value: &str,
    sent: &Value,
    id: Option<&str>,
    if_match: Option<&str>,
) -> Op {
    Op {
        f,
        resource_type: RT.into(),
        id: id.map(str::to_owned),
        version: if_match.map(str::to_owned),
        identifier: Some(ident(value)),
        content: Some(Content::of(sent)),
        ..Op::default()
    }
}

fn ok(status: u16, id: Option<&str>, version: Option<&str>, seen: Vec<Seen>) -> Event {
    ok_with(status, id, version, seen)
}

fn ok_with(status: u16, id: Option<&str>, version: Option<&str>, seen: Vec<Seen>) -> Event {
    Event::Ok(Completion {
        status: Some(status),
        id: id.map(str::to_owned),
        version: version.map(str::to_owned),
        seen,
        ..Completion::default()
    })
}

fn fail(status: u16) -> Event {
    Event::Fail(Completion {
        status: Some(status),
        error: Some(ErrorClass::Conflict),
        ..Completion::default()
    })
}

fn info() -> Event {
    Event::Info(Completion {
        error: Some(ErrorClass::Timeout),
        ..Completion::default()
    })
}

/// How an attempt ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    Fail,
    Info,
}

impl Sim {
    fn end(&mut self) -> End {
        match self.rng.random_range(0..100) {
            0..75 => End::Ok,
            75..85 => End::Fail,
            _ => End::Info,
        }
    }

    /// A write's acknowledgement, with its version when the server reports versions.
    fn acked(&self, status: u16, id: &str, version: Option<&str>) -> Event {
        let version = version.filter(|_| self.versions_on_writes);
        ok_with(status, Some(id), version, vec![])
    }

    fn seen(&mut self, id: &str, version: &str, shown: &Value) -> Seen {
        let mut with_id = shown.clone();
        with_id["id"] = json!(id);
        let mut s = crate::history::seen(&with_id, "urn:fhirsurge:").unwrap_or_default();
        s.version = self.versions_on_reads.then(|| version.to_owned());
        s
    }

    pub(super) fn create(&mut self, e: &mut Entity, sent: &Value) {
        let conditional = self.rng.random_bool(0.5);
        let f = if conditional {
            Interaction::ConditionalCreate
        } else {
            Interaction::Create
        };
        let mut first: Option<usize> = None;
        for attempt in 0..3 {
            let inv = e.t;
            let done = inv + self.latency();
            let eff = self.rng.random_range(inv..=done);
            let end = match (e.inject, attempt) {
                (Some(Inject::CommitInfo | Inject::Duplicate), 0) => End::Info,
                (Some(_), _) => End::Ok,
                (None, _) => self.end(),
            };
            let commits_anyway =
                matches!(e.inject, Some(Inject::CommitInfo | Inject::Duplicate)) && attempt == 0;
            let existing = e.store.ids_at(eff);
            let op = write_op(f, &e.value, sent, None, None);
            let outcome = match end {
                End::Ok
                    if conditional
                        && !existing.is_empty()
                        && e.inject != Some(Inject::Duplicate) =>
                {
                    let id = existing[0].clone();
                    let version = e.store.at(&id, eff).map(|s| s.0.to_owned());
                    e.version = version.clone();
                    e.id = Some(id.clone());
                    self.acked(200, &id, version.as_deref())
                }
                End::Ok => {
                    let id = self.fresh("r");
                    let version = self.fresh("v");
                    if e.inject != Some(Inject::DropCreate) {
                        self.store(e, eff, &id, &version, sent, true);
                    }
                    e.id = Some(id.clone());
                    e.version = Some(version.clone());
                    self.acked(201, &id, Some(&version))
                }
                End::Fail => fail(400),
                End::Info => {
                    if commits_anyway {
                        let (id, version) = (self.fresh("r"), self.fresh("v"));
                        self.store(e, eff, &id, &version, sent, true);
                    }
                    info()
                }
            };
            let index = self.push(inv, done, e.process, op, outcome);
            self.ops[index].retry_of = first;
            first.get_or_insert(index);
            e.t = done + self.rng.random_range(1..20_000);
            if end == End::Info {
                e.process = self.new_process();
            }
            if let Some(id) = e.id.clone() {
                e.reported.insert(id);
                e.created_done = done;
                return;
            }
            let retry = match e.inject {
                Some(Inject::CommitInfo) => conditional && self.rng.random_bool(0.5),
                Some(_) => true,
                None => self.rng.random_bool(0.5),
            };
            if !retry {
                return;
            }
        }
    }

    /// Stores a version; `last` says whether an injected alteration may apply to it.
    fn store(
        &mut self,
        e: &mut Entity,
        eff: u64,
        id: &str,
        version: &str,
        sent: &Value,
        last: bool,
    ) {
        let mut kept = sent.clone();
        if self.rewrites_code {
            kept["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4"}]});
        }
        let first = e.store.events.is_empty();
        if (e.inject == Some(Inject::AlterContent) && last)
            || (e.inject == Some(Inject::AlterOverwritten) && first)
        {
            kept["valueQuantity"] = json!({"value": 999.0, "unit": "/min"});
        }
        e.store
            .events
            .push((eff, id.to_owned(), version.to_owned(), kept));
    }

    pub(super) fn updates(&mut self, e: &mut Entity, k: usize) {
        let forced = match e.inject {
            Some(
                Inject::DropUpdate
                | Inject::DropUpdateEcho
                | Inject::ServeOld
                | Inject::DoubleAck
                | Inject::AlterOverwritten,
            ) => self.rng.random_range(1..=2),
            Some(Inject::DropCreate) => 0,
            Some(Inject::AlterContent) => self.rng.random_range(0..=2),
            _ => self.rng.random_range(0..=2),
        };
        if e.inject == Some(Inject::AlterContent) && forced > 0 {
            // The alteration applies to the last write: undo it on the create.
            if let Some(first) = e.store.events.first_mut() {
                first.3["valueQuantity"] = json!({"value": 60.0 + k as f64, "unit": "/min"});
            }
        }
        let statuses = ["final", "amended", "corrected"];
        for u in 0..forced {
            let last = u + 1 == forced;
            let sent = body(
                &e.value,
                statuses[u % 3],
                &format!("update {u}"),
                60.0 + k as f64,
            );
            self.update(e, &sent, last);
            if self.rng.random_bool(0.4) {
                self.own_read(e);
            }
        }
    }

    fn update(&mut self, e: &mut Entity, sent: &Value, last: bool) {
        let Some(id) = e.id.clone() else { return };
        e.updated = true;
        let conditional = e.inject == Some(Inject::DoubleAck) || self.rng.random_bool(0.6);
        let if_match = if conditional { e.version.clone() } else { None };
        let mut first: Option<usize> = None;
        for _attempt in 0..2 {
            let inv = e.t;
            let done = inv + self.latency();
            let eff = self.rng.random_range(inv..=done);
            let end = if e.inject.is_some() {
                End::Ok
            } else {
                self.end()
            };
            let exists = e.store.at(&id, eff).is_some();
            let op = write_op(
                Interaction::Update,
                &e.value,
                sent,
                Some(&id),
                if_match.as_deref(),
            );
            let outcome = match end {
                End::Ok if !exists => fail(404),
                End::Ok if e.inject == Some(Inject::DropUpdateEcho) && last => {
                    // Not stored; answered with the version in place.
                    let kept = e.store.at(&id, eff).map(|s| s.0.to_owned());
                    let version = if_match.clone().or(kept);
                    self.acked(200, &id, version.as_deref())
                }
                End::Ok => {
                    let version = self.fresh("v");
                    let dropped = e.inject == Some(Inject::DropUpdate) && last;
                    if !dropped {
                        self.store(e, eff, &id, &version, sent, last);
                    }
                    e.version = Some(version.clone());
                    self.acked(200, &id, Some(&version))
                }
                // A refusal that says nothing of the version: a 412 to an `If-Match` of
                // the current version would say it changed.
                End::Fail => fail(422),
                End::Info => info(),
            };
            let index = self.push(inv, done, e.process, op, outcome);
            self.ops[index].retry_of = first;
            first.get_or_insert(index);
            e.t = done + self.rng.random_range(1..20_000);
            if last && conditional && end == End::Ok {
                self.rival(e, &id, if_match.as_deref(), inv, done, eff);
            }
            if last && e.inject == Some(Inject::ServeOld) {
                self.serve_old(e, &id, eff);
            }
            if end != End::Info || if_match.is_none() || !self.rng.random_bool(0.5) {
                break;
            }
            e.process = self.new_process();
        }
    }

    /// A second process's `If-Match` update of the same version, overlapping and applied
    /// later: a correct server refuses it; a double-acknowledging one applies it too.
    fn rival(
        &mut self,
        e: &mut Entity,
        id: &str,
        if_match: Option<&str>,
        inv: u64,
        done: u64,
        eff: u64,
    ) {
        let double = e.inject == Some(Inject::DoubleAck);
        // A server that kept the version would accept the rival: not modelled.
        let echo = e.inject == Some(Inject::DropUpdateEcho);
        if echo || (!double && !self.rng.random_bool(0.3)) {
            return;
        }
        let r_inv = self.rng.random_range(inv..done);
        let r_done = r_inv.max(eff) + self.latency();
        let r_eff = self.rng.random_range(eff.max(r_inv) + 1..=r_done);
        let sent = body(&e.value, "entered-in-error", "rival", 1.0);
        let op = write_op(Interaction::Update, &e.value, &sent, Some(id), if_match);
        let outcome = if double {
            let version = self.fresh("v");
            self.store(e, r_eff, id, &version, &sent, false);
            self.acked(200, id, Some(&version))
        } else {
            fail(412)
        };
        let process = self.new_process();
        self.push(r_inv, r_done, process, op, outcome);
        e.t = e.t.max(r_done + 1);
    }

    /// A read begun after the update completed, served the version before it.
    fn serve_old(&mut self, e: &mut Entity, id: &str, eff: u64) {
        let Some((version, shown)) = e
            .store
            .at(id, eff - 1)
            .map(|(v, b)| (v.to_owned(), b.clone()))
        else {
            return;
        };
        let inv = e.t;
        let done = inv + self.latency();
        let seen = vec![self.seen(id, &version, &shown)];
        self.push(
            inv,
            done,
            e.process,
            read_op(id, Phase::Load),
            ok(200, None, None, seen),
        );
        e.t = done + 1;
    }

    fn read_at(&mut self, e: &Entity, id: &str, inv: u64, done: u64, process: u64) {
        let lin = self.rng.random_range(inv..=done);
        let shown = e.store.at(id, lin).map(|(v, b)| (v.to_owned(), b.clone()));
        let seen = match shown {
            Some((version, b)) => vec![self.seen(id, &version, &b)],
            None => vec![],
        };
        let status = if seen.is_empty() { 404 } else { 200 };
        self.push(
            inv,
            done,
            process,
            read_op(id, Phase::Load),
            ok(status, None, None, seen),
        );
    }

    fn own_read(&mut self, e: &mut Entity) {
        let Some(id) = e.id.clone() else { return };
        let inv = e.t;
        let done = inv + self.latency();
        self.read_at(e, &id, inv, done, e.process);
        e.t = done + 1;
    }

    /// Reads by other processes, begun any time after the create was acknowledged.
    pub(super) fn concurrent_reads(&mut self, e: &mut Entity) {
        let Some(id) = e.id.clone() else { return };
        let from = e.created_done;
        for _ in 0..self.rng.random_range(0..3) {
            let inv = self.rng.random_range(from..e.t + 100_000);
            let done = inv + self.latency();
            let process = self.new_process();
            self.read_at(e, &id, inv, done, process);
        }
    }

    pub(super) fn load_search(&mut self, e: &Entity) {
        let inv = e.t + self.rng.random_range(0..50_000);
        let done = inv + self.latency();
        let lin = self.rng.random_range(inv..=done);
        let seen = self.found(e, lin);
        let by_identifier = self.rng.random_bool(0.5);
        let op = search_op(&e.value, by_identifier, Phase::Load);
        let process = self.new_process();
        self.push(inv, done, process, op, ok(200, None, None, seen));
    }

    /// What a search by the entity's identifier shows at `t`.
    fn found(&mut self, e: &Entity, t: u64) -> Vec<Seen> {
        let mut seen = Vec::new();
        for id in e.store.ids_at(t) {
            if let Some((version, b)) = e.store.at(&id, t).map(|(v, b)| (v.to_owned(), b.clone())) {
                seen.push(self.seen(&id, &version, &b));
            }
        }
        seen
    }

    /// Reads the entity back: search by identifier, read by every reported id,
    /// `_history` of what was updated. Returns the time it ended.
    pub(super) fn read_back(&mut self, e: &Entity, mut t: u64) -> u64 {
        let process = self.new_process();
        let seen = self.found(e, u64::MAX);
        self.push(
            t,
            t + 1_000,
            process,
            search_op(&e.value, true, Phase::Readback),
            ok(200, None, None, seen),
        );
        t += 2_000;
        for id in &e.reported {
            let shown = e
                .store
                .at(id, u64::MAX)
                .map(|(v, b)| (v.to_owned(), b.clone()));
            let seen = match shown {
                Some((version, b)) => vec![self.seen(id, &version, &b)],
                None => vec![],
            };
            let status = if seen.is_empty() { 404 } else { 200 };
            self.push(
                t,
                t + 1_000,
                process,
                read_op(id, Phase::Readback),
                ok(status, None, None, seen),
            );
            t += 2_000;
            if e.updated {
                let mut versions = Vec::new();
                for (version, b) in e.store.versions(id) {
                    let mut s = self.seen(id, &version, &b);
                    s.version = Some(version);
                    versions.push(s);
                }
                let op = Op {
                    f: Interaction::History,
                    resource_type: RT.into(),
                    id: Some(id.clone()),
                    phase: Phase::Readback,
                    ..Op::default()
                };
                self.push(t, t + 1_000, process, op, ok(200, None, None, versions));
                t += 2_000;
            }
        }
        t
    }

    /// The history: every interaction's invocation and completion in time order.
    pub(super) fn records(self) -> Vec<Record> {
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(self.ops.len() * 2);
        for (i, o) in self.ops.iter().enumerate() {
            events.push((o.inv, 0, i));
            events.push((o.done, 1, i));
        }
        events.sort_unstable();
        let mut invoke_index = vec![0u64; self.ops.len()];
        let mut records = Vec::with_capacity(events.len());
        for (time, kind, i) in events {
            let o: &SimOp = &self.ops[i];
            let index = records.len() as u64;
            let event = if kind == 0 {
                invoke_index[i] = index;
                let mut op = o.op.clone();
                op.retry_of = o.retry_of.map(|r| invoke_index[r]);
                Event::Invoke(op)
            } else {
                complete(o.outcome.clone(), invoke_index[i], o.done - o.inv)
            };
            records.push(Record {
                index,
                time_us: time,
                process: o.process,
                event,
            });
        }
        records
    }
}

fn complete(event: Event, invoke: u64, latency_us: u64) -> Event {
    let fill = |mut c: Completion| {
        c.invoke = invoke;
        c.latency_us = latency_us;
        c
    };
    match event {
        Event::Ok(c) => Event::Ok(fill(c)),
        Event::Fail(c) => Event::Fail(fill(c)),
        Event::Info(c) => Event::Info(fill(c)),
        other => other,
    }
}

fn read_op(id: &str, phase: Phase) -> Op {
    Op {
        f: Interaction::Read,
        resource_type: RT.into(),
        id: Some(id.to_owned()),
        phase,
        ..Op::default()
    }
}

fn search_op(value: &str, by_identifier: bool, phase: Phase) -> Op {
    Op {
        f: Interaction::Search,
        resource_type: RT.into(),
        identifier: by_identifier.then(|| ident(value)),
        query: Some(format!("identifier={}", ident(value))),
        phase,
        ..Op::default()
    }
}
