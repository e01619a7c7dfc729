//! Who accessed which patient's data, from the history alone: every interaction the
//! harness made (compactly, for the audit reconciliation), which harness patient each
//! concerns, and the cross-patient leak check. Pure: records in, an [`Access`] out.
//!
//! Scope leak: a search that names one patient (`patient`, `subject`, `beneficiary`,
//! or `_id` of a Patient search) must answer only that patient's resources. A resource
//! in the answer whose patient reference (or, for a Patient, whose own id) is another
//! of the harness's patients is a `scope_leak`, naming both by harness identifier; so is
//! a resource naming no patient whose harness identifier the run's answers showed on a
//! resource of another of its patients.
//! Resources that point at no harness patient are not the harness's to judge.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::detail::secs;
use super::{Finding, Kind};
use crate::history::{Completion, Event, Interaction as F, Op, Outcome, Phase, Record};

/// One interaction of the run, as the reconciliation needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub invoke: u64,
    pub invoke_us: u64,
    /// When it completed (the invocation time when it never did).
    pub done_us: u64,
    pub f: F,
    pub resource_type: Box<str>,
    /// `Type/id` addressed, or created (from the completion).
    pub what: Option<Box<str>>,
    /// The query string as sent, for a search.
    pub query: Option<Box<str>>,
    /// `Patient/<id>` the call concerns, when the history says.
    pub patient: Option<Box<str>>,
    /// `None` while incomplete; an incomplete call counts as `info`.
    pub outcome: Option<Outcome>,
    pub phase: Phase,
}

impl Call {
    pub fn outcome(&self) -> Outcome {
        self.outcome.unwrap_or(Outcome::Info)
    }

    /// Moves the call out, leaving an empty one (no allocation) in its place.
    fn take(&mut self) -> Call {
        let empty = Call {
            invoke: self.invoke,
            invoke_us: self.invoke_us,
            done_us: self.done_us,
            f: self.f,
            resource_type: Box::default(),
            what: None,
            query: None,
            patient: None,
            outcome: None,
            phase: self.phase,
        };
        std::mem::replace(self, empty)
    }
}

/// What the history says about access.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Every load and read-back interaction, in invocation order (none when collected
    /// [`Collecting::without_calls`]).
    pub calls: Vec<Call>,
    /// `Patient/<id>` → the harness identifier of that patient.
    pub patients: HashMap<String, String>,
    /// `Type/id` → `Patient/<id>` the resource is about, as answers showed it.
    pub owners: HashMap<Box<str>, Box<str>>,
    /// Harness identifier → `Patient/<id>` the resource carrying it is about, as answers
    /// showed it (with a patient reference) anywhere in the run.
    pub ident_owners: HashMap<String, String>,
    pub leaks: Vec<Finding>,
    pub leak_stats: LeakStats,
}

/// What the leak check covered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakStats {
    /// Successful searches scoped to one patient, whose answers were checked.
    pub searches_checked: u64,
    /// Resources in those answers.
    pub resources_checked: u64,
    /// Successful searches naming no patient (by MRN, say): not checked.
    pub searches_unscoped: u64,
}

/// A resource in a scoped answer that points at another patient than the scope.
#[derive(Debug)]
struct Suspect {
    invoke: u64,
    done: u64,
    time_us: u64,
    scope: String,
    /// `None`: the resource names no patient; its harness identifier may.
    other: Option<String>,
    resource_type: String,
    id: String,
    identifier: Option<String>,
}

/// Reads the history once.
pub fn collect(records: impl IntoIterator<Item = Record>) -> Access {
    let mut collecting = Collecting::default();
    for r in records {
        collecting.see(&r);
    }
    collecting.finish()
}

/// [`collect`] one record at a time, as a run produces them (the run's live judge).
#[derive(Debug, Default)]
pub struct Collecting {
    access: Access,
    open: HashMap<u64, Open>,
    patient_idents: HashMap<u64, String>,
    suspects: Vec<Suspect>,
    /// Completed calls are not kept (no audit reconciliation will read them): what this
    /// collector holds then grows with patients and resources, not with interactions.
    forget_calls: bool,
}

/// Where an uncompleted call is.
#[derive(Debug)]
enum Open {
    /// In `Access::calls`, at this position.
    Kept(usize),
    /// Only here, until it completes.
    Here(Box<Call>),
}

impl Collecting {
    /// A collector for the leak check alone: [`Access::calls`] stays empty.
    pub fn without_calls() -> Collecting {
        Collecting {
            forget_calls: true,
            ..Collecting::default()
        }
    }

    /// Takes the next record, in history order.
    pub fn see(&mut self, r: &Record) {
        let outcome = match &r.event {
            // A transaction's entries are the transaction's one access (not covered).
            Event::Invoke(op) if op.phase != Phase::Audit && op.entry_of.is_none() => {
                let patient_create = matches!(op.f, F::Create | F::ConditionalCreate)
                    && op.resource_type == "Patient";
                if let (true, Some(i)) = (patient_create, &op.identifier) {
                    self.patient_idents.insert(r.index, i.clone());
                }
                let call = call(r.index, r.time_us, op);
                let open = if self.forget_calls {
                    Open::Here(Box::new(call))
                } else {
                    self.access.calls.push(call);
                    Open::Kept(self.access.calls.len() - 1)
                };
                self.open.insert(r.index, open);
                return;
            }
            Event::Ok(c) => (Outcome::Ok, c),
            Event::Fail(c) => (Outcome::Fail, c),
            Event::Info(c) => (Outcome::Info, c),
            _ => return,
        };
        self.done((r.index, r.time_us), outcome.0, outcome.1);
    }

    /// Runs the leak check over what was seen.
    pub fn finish(mut self) -> Access {
        self.access.judge(self.suspects);
        self.access
    }

    /// Settles a completion.
    fn done(&mut self, (index, time_us): (u64, u64), outcome: Outcome, c: &Completion) {
        let (at, mut call) = match self.open.remove(&c.invoke) {
            None => return,
            Some(Open::Here(call)) => (None, *call),
            Some(Open::Kept(at)) => (Some(at), self.access.calls[at].take()),
        };
        let ident = self.patient_idents.remove(&c.invoke);
        self.access.complete(&mut call, outcome, time_us, c, ident);
        if outcome == Outcome::Ok {
            let found = self.access.scan(&call, index, time_us, c);
            self.suspects.extend(found);
        }
        if let Some(at) = at {
            self.access.calls[at] = call;
        }
    }
}

fn call(index: u64, time_us: u64, op: &Op) -> Call {
    let what = match op.f {
        F::Read | F::Vread | F::Update | F::History => op
            .id
            .as_ref()
            .map(|id| format!("{}/{id}", op.resource_type).into_boxed_str()),
        _ => None,
    };
    let patient = match (&what, op.resource_type.as_str()) {
        (Some(w), "Patient") => Some(w.clone()),
        _ if op.f == F::Search => op
            .query
            .as_deref()
            .and_then(|q| scoped_patient(&op.resource_type, q))
            .map(String::into_boxed_str),
        _ => None,
    };
    Call {
        invoke: index,
        invoke_us: time_us,
        done_us: time_us,
        f: op.f,
        resource_type: op.resource_type.as_str().into(),
        what,
        query: op
            .query
            .as_deref()
            .filter(|_| op.f == F::Search)
            .map(Into::into),
        patient,
        outcome: None,
        phase: op.phase,
    }
}

impl Access {
    fn complete(
        &mut self,
        call: &mut Call,
        outcome: Outcome,
        time_us: u64,
        c: &Completion,
        patient_ident: Option<String>,
    ) {
        call.outcome = Some(outcome);
        call.done_us = time_us;
        if call.what.is_none() && matches!(call.f, F::Create | F::ConditionalCreate) {
            call.what =
                c.id.as_ref()
                    .map(|id| format!("{}/{id}", call.resource_type).into_boxed_str());
            if &*call.resource_type == "Patient" {
                call.patient.clone_from(&call.what);
            }
        }
        if let (Some(ident), Some(what), Outcome::Ok) = (patient_ident, &call.what, outcome) {
            self.patients.insert(what.to_string(), ident);
        }
    }

    /// Learns owners and patients from an answer; returns what points elsewhere.
    fn scan(&mut self, call: &Call, index: u64, time_us: u64, c: &Completion) -> Vec<Suspect> {
        for s in &c.seen {
            if s.resource_type == "Patient" {
                if let Some(i) = s.identifiers.first() {
                    self.patients
                        .entry(format!("Patient/{}", s.id))
                        .or_insert_with(|| i.clone());
                }
            } else if let Some(p) = &s.patient {
                let key = format!("{}/{}", s.resource_type, s.id).into_boxed_str();
                self.owners.entry(key).or_insert_with(|| p.as_str().into());
                for i in &s.identifiers {
                    self.ident_owners
                        .entry(i.clone())
                        .or_insert_with(|| p.clone());
                }
            }
        }
        if call.f != F::Search {
            return Vec::new();
        }
        let Some(scope) = call.patient.clone() else {
            self.leak_stats.searches_unscoped += 1;
            return Vec::new();
        };
        self.leak_stats.searches_checked += 1;
        self.leak_stats.resources_checked += c.seen.len() as u64;
        let invoke = call.invoke;
        c.seen
            .iter()
            .filter_map(|s| {
                let owner = if s.resource_type == "Patient" {
                    Some(format!("Patient/{}", s.id))
                } else {
                    s.patient.clone()
                };
                if owner.is_none() && s.identifiers.is_empty() {
                    return None;
                }
                (owner.as_deref() != Some(&*scope)).then(|| Suspect {
                    invoke,
                    done: index,
                    time_us,
                    scope: scope.to_string(),
                    other: owner,
                    resource_type: s.resource_type.clone(),
                    id: s.id.clone(),
                    identifier: s.identifiers.first().cloned(),
                })
            })
            .collect()
    }

    /// A suspect is a leak when both patients are the harness's and differ.
    fn judge(&mut self, suspects: Vec<Suspect>) {
        let mut seen = BTreeSet::new();
        for mut s in suspects {
            // Without a patient reference, the harness identifier says whose it is.
            let Some(other) = s.other.take().or_else(|| self.owner_by_identifier(&s)) else {
                continue;
            };
            let (Some(mine), Some(theirs)) =
                (self.patients.get(&s.scope), self.patients.get(&other))
            else {
                continue;
            };
            if mine == theirs || !seen.insert((s.invoke, s.resource_type.clone(), s.id.clone())) {
                continue;
            }
            let detail = format!(
                "a search scoped to patient {mine} ({}) answered at {} with {}/{} of patient {theirs} ({})",
                s.scope,
                secs(s.time_us),
                s.resource_type,
                s.id,
                other
            );
            self.leaks.push(Finding {
                kind: Kind::ScopeLeak,
                resource_type: s.resource_type,
                id: Some(s.id),
                identifier: s.identifier,
                detail,
                evidence: vec![s.invoke, s.done],
            });
        }
    }

    /// Whose resource a suspect is by its harness identifiers: the patient another answer
    /// showed a resource with that identifier to be about, or the patient carrying it.
    fn owner_by_identifier(&self, s: &Suspect) -> Option<String> {
        let i = s.identifier.as_ref()?;
        self.ident_owners.get(i).cloned().or_else(|| {
            self.patients
                .iter()
                .find(|(_, ident)| *ident == i)
                .map(|(p, _)| p.clone())
        })
    }

    /// The harness patient a call concerns (`Patient/<id>`), directly or through the
    /// resource it addressed.
    pub fn patient_of<'a>(&'a self, call: &'a Call) -> Option<&'a str> {
        let p = call
            .patient
            .as_deref()
            .or_else(|| self.owners.get(call.what.as_deref()?).map(|p| &**p))?;
        self.patients.contains_key(p).then_some(p)
    }
}

/// `Patient/<id>` a search names, if it names one.
pub fn scoped_patient(rt: &str, query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| {
        let name = k.split(':').next().unwrap_or(&k).to_owned();
        match name.as_str() {
            "patient" | "subject" | "beneficiary" => patient_ref(&v),
            "_id" if rt == "Patient" => Some(format!("Patient/{v}")),
            _ => None,
        }
    })
}

/// `Patient/<id>` from a reference or a bare id; `None` for another type.
pub fn patient_ref(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.iter().rposition(|p| *p == "Patient") {
        Some(at) => parts
            .get(at + 1)
            .filter(|id| !id.is_empty())
            .map(|id| format!("Patient/{id}")),
        None if parts.len() == 1 && !value.is_empty() => Some(format!("Patient/{value}")),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Seen;

    fn rec(index: u64, event: Event) -> Record {
        Record {
            index,
            time_us: index * 1000,
            process: 1,
            event,
        }
    }

    fn create_patient(index: u64, ident: &str) -> Record {
        rec(
            index,
            Event::Invoke(Op {
                f: F::Create,
                resource_type: "Patient".into(),
                identifier: Some(ident.into()),
                ..Op::default()
            }),
        )
    }

    fn done(index: u64, invoke: u64, id: Option<&str>, seen: Vec<Seen>) -> Record {
        rec(
            index,
            Event::Ok(Completion {
                invoke,
                status: Some(200),
                id: id.map(str::to_owned),
                seen,
                ..Completion::default()
            }),
        )
    }

    fn search(index: u64, query: &str) -> Record {
        rec(
            index,
            Event::Invoke(Op {
                f: F::Search,
                resource_type: "Observation".into(),
                query: Some(query.into()),
                ..Op::default()
            }),
        )
    }

    fn obs(id: &str, ident: &str, patient: Option<&str>) -> Seen {
        Seen {
            resource_type: "Observation".into(),
            id: id.into(),
            identifiers: vec![ident.into()],
            patient: patient.map(str::to_owned),
            ..Seen::default()
        }
    }

    #[test]
    fn a_resource_without_a_patient_reference_leaks_by_its_harness_identifier() {
        let a = "urn:fhirsurge:t|pat-a";
        let b = "urn:fhirsurge:t|pat-b";
        let obs_b = "urn:fhirsurge:t|obs-b";
        let obs_a = "urn:fhirsurge:t|obs-a";
        let records = vec![
            create_patient(0, a),
            done(1, 0, Some("pa"), vec![]),
            create_patient(2, b),
            done(3, 2, Some("pb"), vec![]),
            // B's own search shows whose obs-b is.
            search(4, "patient=Patient%2Fpb"),
            done(5, 4, None, vec![obs("ob", obs_b, Some("Patient/pb"))]),
            // A's search answers obs-b with no subject, and A's own obs-a without one.
            search(6, "patient=Patient%2Fpa"),
            done(
                7,
                6,
                None,
                vec![obs("ob", obs_b, None), obs("oa", obs_a, None)],
            ),
        ];
        let access = collect(records);
        assert_eq!(access.leaks.len(), 1, "{:?}", access.leaks);
        let leak = &access.leaks[0];
        assert_eq!(leak.kind, Kind::ScopeLeak);
        assert_eq!(leak.id.as_deref(), Some("ob"));
        assert_eq!(leak.evidence, [6, 7]);
        assert!(
            leak.detail.contains(a) && leak.detail.contains(b),
            "{leak:?}"
        );
        // An identifier the run never saw on anyone's resource proves nothing.
        let records = vec![
            create_patient(0, a),
            done(1, 0, Some("pa"), vec![]),
            search(2, "patient=Patient%2Fpa"),
            done(3, 2, None, vec![obs("ox", "urn:fhirsurge:t|other", None)]),
        ];
        assert!(collect(records).leaks.is_empty());
    }
}
