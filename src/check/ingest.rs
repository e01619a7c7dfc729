//! Reading the history, one record at a time, into the checker's state: an invocation
//! opens what it awaits, its completion settles it and is then forgotten. Nothing is
//! judged here except through the load-phase read queue (`stale`).

use crate::history::{Completion, Event, Interaction, Op, Phase, Record, Seen};

use super::content::{NO_CONTENT, Owned};
use super::intern::NO_SYM;
use super::state::{
    History, LoadRead, NEVER, NIL, Obs, Pending, Probe, State, Status, Write, WriteKind,
};

/// Where a record sits in the history (and, for a completion, when its invocation was).
#[derive(Clone, Copy)]
pub(crate) struct At {
    pub index: u64,
    pub time_us: u64,
    /// For a completion: its invocation's index and time.
    pub invoke: u64,
    pub invoke_us: u64,
}

impl At {
    fn since(self, invoke_us: u64) -> At {
        At { invoke_us, ..self }
    }
}

impl State {
    pub(crate) fn ingest(&mut self, record: Record) {
        self.stats.records += 1;
        self.now_us = self.now_us.max(record.time_us);
        let at = At {
            index: record.index,
            time_us: record.time_us,
            invoke: record.index,
            invoke_us: record.time_us,
        };
        match record.event {
            Event::Invoke(op) => self.invoke(at, op),
            Event::Ok(c) => {
                self.stats.completions_ok += 1;
                self.complete(at, Status::Ok, c);
            }
            Event::Fail(c) => {
                self.stats.completions_fail += 1;
                self.complete(at, Status::Fail, c);
            }
            Event::Info(c) => {
                self.stats.completions_info += 1;
                self.complete(at, Status::Info, c);
            }
            Event::FaultStart(_)
            | Event::FaultStop(_)
            | Event::Subscription(_)
            | Event::Notification(_)
            | Event::EventsQuery(_) => {}
        }
        self.judge_due_reads();
    }

    fn invoke(&mut self, at: At, op: Op) {
        self.stats.invocations += 1;
        let readback = op.phase == Phase::Readback;
        let pending = match op.f {
            Interaction::Create | Interaction::ConditionalCreate | Interaction::Update => {
                Pending::Write(self.add_write(at, op))
            }
            Interaction::Read => Pending::Read {
                res: self.op_res(&op),
                readback,
                invoke_us: at.time_us,
            },
            Interaction::Search => {
                let ident = op
                    .identifier
                    .as_deref()
                    .and_then(|i| {
                        let key = (self.strings.get(&op.resource_type)?, self.strings.get(i)?);
                        self.ident_of.get(&key).copied()
                    })
                    .unwrap_or(NIL);
                Pending::Search {
                    ident,
                    readback,
                    probe: op.phase == Phase::Probe,
                    invoke_us: at.time_us,
                }
            }
            Interaction::History => Pending::History {
                res: self.op_res(&op),
            },
            Interaction::Transaction if op.entries.is_some() => {
                self.stats.transactions += 1;
                let tx = super::transaction::Tx::new(at.index);
                self.transactions.insert(at.index, tx);
                Pending::Transaction
            }
            Interaction::Transaction | Interaction::Batch => {
                self.stats.bundles += 1;
                Pending::Bundle {
                    identifier: self.strings.intern_opt(op.identifier.as_deref()),
                    id: self.strings.intern_opt(op.id.as_deref()),
                }
            }
            Interaction::Vread | Interaction::Capabilities | Interaction::Token => {
                Pending::Untracked
            }
        };
        self.pending.insert(at.index, pending);
    }

    fn op_res(&self, op: &Op) -> u32 {
        op.id
            .as_deref()
            .and_then(|id| self.find_res(&op.resource_type, id))
            .unwrap_or(NIL)
    }

    fn add_write(&mut self, at: At, op: Op) -> u32 {
        self.stats.writes += 1;
        let w = self.writes.len() as u32;
        let kind = match op.f {
            Interaction::Create => WriteKind::Create,
            Interaction::ConditionalCreate => WriteKind::Conditional,
            _ => WriteKind::Update,
        };
        let rtype = self.strings.intern(&op.resource_type);
        let identifier = match op.identifier.as_deref() {
            Some(i) if self.is_harness(i) => self.strings.intern(i),
            _ => NO_SYM,
        };
        let content = match &op.content {
            Some(c) => self.contents.add(c, &mut self.strings),
            None => NO_CONTENT,
        };
        let mut write = Write {
            invoke: at.index,
            done: NEVER,
            invoke_us: at.time_us,
            done_us: NEVER,
            root: op.retry_of.unwrap_or(at.index),
            content,
            rtype,
            identifier,
            id: NO_SYM,
            version: NO_SYM,
            if_match: NO_SYM,
            next_ident: NIL,
            next_res: NIL,
            next_orphan: NIL,
            status: 0,
            kind,
            outcome: Status::Pending,
            error: None,
        };
        if kind == WriteKind::Update {
            write.if_match = self.strings.intern_opt(op.version.as_deref());
            if let Some(id) = op.id.as_deref() {
                write.id = self.strings.intern(id);
                let r = self.res_entry(rtype, write.id);
                write.next_res = std::mem::replace(&mut self.res[r as usize].first_write, w);
            }
        } else if identifier != NO_SYM {
            let i = self.ident_entry(rtype, identifier);
            write.next_ident = std::mem::replace(&mut self.idents[i as usize].first_write, w);
        }
        self.writes.push(write);
        if let Some(e) = op.entry_of {
            self.entry_of.insert(w, (e.transaction, e.entry));
            if let Some(t) = self.transactions.get_mut(&e.transaction) {
                t.writes.push(w);
            }
        }
        w
    }

    fn complete(&mut self, at: At, outcome: Status, c: Completion) {
        let Some(pending) = self.pending.remove(&c.invoke) else {
            self.stats.orphan_completions += 1;
            return;
        };
        let at = At {
            invoke: c.invoke,
            ..at
        };
        let ok = outcome == Status::Ok;
        let readback_probe = if ok { Probe::Present } else { Probe::Failed };
        match pending {
            Pending::Write(w) => self.complete_write(w, at, outcome, c),
            Pending::Read {
                res,
                readback,
                invoke_us,
            } => {
                if res != NIL {
                    self.complete_read(res, readback, at.since(invoke_us), ok, c);
                }
            }
            Pending::Search {
                ident,
                readback,
                probe,
                invoke_us,
            } => {
                let at = at.since(invoke_us);
                if ok {
                    self.stats.searches += 1;
                    self.observe(&c.seen, at, readback, true);
                    if probe && ident != NIL {
                        let i = &mut self.idents[ident as usize];
                        i.probes += 1;
                        i.last_probe = (at.invoke, at.index, at.time_us);
                    }
                }
                if readback && ident != NIL {
                    let obs = obs_at(at, readback_probe);
                    let s = &mut self.idents[ident as usize].search;
                    if s.probe != Probe::Present {
                        *s = obs;
                    }
                }
            }
            Pending::History { res } => {
                if ok && res != NIL {
                    self.complete_history(res, at, c);
                }
            }
            Pending::Bundle { identifier, id } => {
                if outcome != Status::Fail {
                    self.touch_bundle(identifier, id);
                }
            }
            Pending::Transaction => {
                if let Some(t) = self.transactions.get_mut(&at.invoke) {
                    t.done = at.index;
                    t.done_us = at.time_us;
                    t.outcome = outcome;
                    t.status = c.status.unwrap_or(0);
                }
            }
            Pending::Untracked => {}
        }
    }

    fn complete_write(&mut self, w: u32, at: At, outcome: Status, c: Completion) {
        let reported = self.strings.intern_opt(c.id.as_deref());
        let version = self.strings.intern_opt(c.version.as_deref());
        let write = &mut self.writes[w as usize];
        write.done = at.index;
        write.done_us = at.time_us;
        write.outcome = outcome;
        write.status = c.status.unwrap_or(0);
        write.error = c.error;
        write.version = version;
        if write.kind == WriteKind::Update {
            return;
        }
        if reported == NO_SYM {
            self.add_orphan(w);
            return;
        }
        write.id = reported;
        let rtype = write.rtype;
        let identifier = write.identifier;
        let r = self.res_entry(rtype, reported);
        let ident = match identifier {
            NO_SYM => NIL,
            i => self.ident_of.get(&(rtype, i)).copied().unwrap_or(NIL),
        };
        let res = &mut self.res[r as usize];
        if res.ident == NIL {
            res.ident = ident;
        }
        let next = std::mem::replace(&mut res.first_write, w);
        self.writes[w as usize].next_res = next;
    }

    fn complete_read(&mut self, res: u32, readback: bool, at: At, ok: bool, c: Completion) {
        if !ok {
            if readback && self.res[res as usize].read.probe == Probe::None {
                self.res[res as usize].read = obs_at(at, Probe::Failed);
            }
            return;
        }
        self.observe(&c.seen, at, readback, false);
        let seen = c.seen.first();
        if readback {
            let mut obs = obs_at(at, Probe::Absent);
            if let Some(s) = seen {
                obs.probe = Probe::Present;
                obs.version = self.version_of(s.version.as_deref());
                if let Some(content) = &s.content {
                    obs.content = self.keep_seen(res, content);
                }
            }
            self.res[res as usize].read = obs;
            return;
        }
        let read = LoadRead {
            res,
            invoke: at.invoke,
            done: at.index,
            invoke_us: at.invoke_us,
            done_us: at.time_us,
            absent: seen.is_none(),
            version: self.version_of(seen.and_then(|s| s.version.as_deref())),
            content: seen
                .and_then(|s| s.content.as_ref())
                .map(|c| Owned::new(c, &mut self.strings)),
        };
        self.reads.push_back(read);
    }

    fn complete_history(&mut self, res: u32, at: At, c: Completion) {
        self.stats.histories += 1;
        let mut entries = Vec::with_capacity(c.seen.len());
        for s in &c.seen {
            let content = match &s.content {
                Some(content) => self.keep_seen(res, content),
                None => NO_CONTENT,
            };
            entries.push((self.version_of(s.version.as_deref()), content));
        }
        let h = History {
            invoke: at.invoke,
            done: at.index,
            done_us: at.time_us,
            entries,
        };
        let slot = &mut self.res[res as usize].history;
        if *slot == NIL {
            *slot = self.histories.len() as u32;
            self.histories.push(h);
        } else {
            self.histories[*slot as usize] = h;
        }
    }

    /// Takes what a search or read showed as evidence: which ids carry which harness
    /// identifiers, when a search first showed a resource, what the read-back found.
    fn observe(&mut self, seen: &[Seen], at: At, readback: bool, search: bool) {
        for s in seen {
            let Some(rtype) = self.strings.get(&s.resource_type) else {
                continue;
            };
            let mut res = None;
            for identifier in &s.identifiers {
                if let Some(r) = self.carries(rtype, s, identifier, at, readback, search) {
                    res = Some(r);
                }
            }
            if !search {
                continue;
            }
            let Some(r) = res.or_else(|| self.find_res(&s.resource_type, &s.id)) else {
                continue;
            };
            let res = &mut self.res[r as usize];
            res.first_seen_us = res.first_seen_us.min(at.time_us);
            if readback {
                let mut obs = Obs {
                    probe: Probe::Present,
                    invoke: at.invoke,
                    done: at.index,
                    invoke_us: at.invoke_us,
                    done_us: at.time_us,
                    ..Obs::default()
                };
                obs.version = self.version_of(s.version.as_deref());
                if let Some(content) = &s.content {
                    obs.content = self.keep_seen(r, content);
                }
                self.res[r as usize].found = obs;
            }
        }
    }

    /// Records that a resource was seen carrying a harness identifier we wrote; returns
    /// the resource.
    fn carries(
        &mut self,
        rtype: u32,
        s: &Seen,
        identifier: &str,
        at: At,
        readback: bool,
        search: bool,
    ) -> Option<u32> {
        if !self.is_harness(identifier) {
            return None;
        }
        let isym = self.strings.get(identifier)?;
        let &ident = self.ident_of.get(&(rtype, isym))?;
        let id = self.strings.intern(&s.id);
        let r = self.res_entry(rtype, id);
        if self.res[r as usize].ident == NIL {
            self.res[r as usize].ident = ident;
        }
        self.add_seen(ident, id, at.index, readback);
        if search {
            let i = &mut self.idents[ident as usize];
            i.first_seen_us = i.first_seen_us.min(at.time_us);
            if !readback {
                i.load_seen_us = i.load_seen_us.min(at.time_us);
            }
        }
        Some(r)
    }

    pub(crate) fn touch_bundle(&mut self, identifier: u32, id: u32) {
        if identifier == NO_SYM && id == NO_SYM {
            self.bundles.opaque = true;
        }
        if identifier != NO_SYM {
            self.bundles.identifiers.insert(identifier);
        }
        if id != NO_SYM {
            self.bundles.ids.insert(id);
        }
    }
}

fn obs_at(at: At, probe: Probe) -> Obs {
    Obs {
        probe,
        invoke: at.invoke,
        done: at.index,
        invoke_us: at.invoke_us,
        done_us: at.time_us,
        ..Obs::default()
    }
}
