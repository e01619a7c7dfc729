//! Who accessed which patient's data, from the history alone: every interaction the
//! harness made (compactly, for the audit reconciliation), which harness patient each
//! concerns, and the cross-patient leak check. Pure: records in, an [`Access`] out.
//!
//! Scope leak: a search that names one patient (`patient`, `subject`, `beneficiary`,
//! or `_id` of a Patient search) must answer only that patient's resources. A resource
//! in the answer whose patient reference (or, for a Patient, whose own id) is another
//! of the harness's patients is a `scope_leak`, naming both by harness identifier.
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
}

/// What the history says about access.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Every load and read-back interaction, in invocation order.
    pub calls: Vec<Call>,
    /// `Patient/<id>` → the harness identifier of that patient.
    pub patients: HashMap<String, String>,
    /// `Type/id` → `Patient/<id>` the resource is about, as answers showed it.
    pub owners: HashMap<Box<str>, Box<str>>,
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
struct Suspect {
    invoke: u64,
    done: u64,
    time_us: u64,
    scope: String,
    other: String,
    resource_type: String,
    id: String,
    identifier: Option<String>,
}

/// Reads the history once.
pub fn collect(records: impl IntoIterator<Item = Record>) -> Access {
    let mut access = Access::default();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut patient_idents: HashMap<u64, String> = HashMap::new();
    let mut suspects = Vec::new();
    for r in records {
        match r.event {
            // A transaction's entries are the transaction's one access (not covered).
            Event::Invoke(op) if op.phase != Phase::Audit && op.entry_of.is_none() => {
                let patient_create = matches!(op.f, F::Create | F::ConditionalCreate)
                    && op.resource_type == "Patient";
                if let (true, Some(i)) = (patient_create, &op.identifier) {
                    patient_idents.insert(r.index, i.clone());
                }
                open.insert(r.index, access.calls.len());
                access.calls.push(call(r.index, r.time_us, op));
            }
            Event::Ok(c) => done(
                &mut access,
                &mut open,
                &mut patient_idents,
                &mut suspects,
                (r.index, r.time_us),
                Outcome::Ok,
                c,
            ),
            Event::Fail(c) => done(
                &mut access,
                &mut open,
                &mut patient_idents,
                &mut suspects,
                (r.index, r.time_us),
                Outcome::Fail,
                c,
            ),
            Event::Info(c) => done(
                &mut access,
                &mut open,
                &mut patient_idents,
                &mut suspects,
                (r.index, r.time_us),
                Outcome::Info,
                c,
            ),
            _ => {}
        }
    }
    access.judge(suspects);
    access
}

/// Settles a completion.
fn done(
    access: &mut Access,
    open: &mut HashMap<u64, usize>,
    patient_idents: &mut HashMap<u64, String>,
    suspects: &mut Vec<Suspect>,
    (index, time_us): (u64, u64),
    outcome: Outcome,
    c: Completion,
) {
    let Some(at) = open.remove(&c.invoke) else {
        return;
    };
    let ident = patient_idents.remove(&c.invoke);
    access.complete(at, outcome, time_us, &c, ident);
    if outcome == Outcome::Ok {
        suspects.extend(access.scan(at, index, time_us, &c));
    }
}
fn call(index: u64, time_us: u64, op: Op) -> Call {
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
        resource_type: op.resource_type.into_boxed_str(),
        what,
        query: op
            .query
            .filter(|_| op.f == F::Search)
            .map(String::into_boxed_str),
        patient,
        outcome: None,
        phase: op.phase,
    }
}

impl Access {
    fn complete(
        &mut self,
        at: usize,
        outcome: Outcome,
        time_us: u64,
        c: &Completion,
        patient_ident: Option<String>,
    ) {
        let call = &mut self.calls[at];
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
    fn scan(&mut self, at: usize, index: u64, time_us: u64, c: &Completion) -> Vec<Suspect> {
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
            }
        }
        let call = &self.calls[at];
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
                    format!("Patient/{}", s.id)
                } else {
                    s.patient.clone()?
                };
                (owner != *scope).then(|| Suspect {
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
        for s in suspects {
            let (Some(mine), Some(theirs)) =
                (self.patients.get(&s.scope), self.patients.get(&s.other))
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
                s.other
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
