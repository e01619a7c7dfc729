//! Audit reconciliation: can every access the harness made be found in the target's
//! audit trail? Pure: the run's calls (from `access`) and the AuditEvents fetched (by
//! `run`) in, findings and counts out.
//!
//! Each call known to have taken effect (`ok`, or a `fail`/`info` write the checker
//! found committed) must have an event with the same agent (when one is expected),
//! action, entity (or query, for a search; the named patient when the event keeps no
//! query) and a time within the tolerance of the call. Matching goes in passes, each
//! event used once: exact matches; then an event on the same entity that differs
//! (action, interaction, agent, outcome, or time outside the tolerance) is an
//! `audit_mismatch`; then an event like the call's but naming an entity no call touched
//! is an `audit_mismatch` (wrong entity); what is left is an `audit_gap`. An `info`
//! call that is not known to have taken effect is matched if it can be and never a gap.
//! A `fail` call must not have a success event. When no event at all pairs with any
//! call, the trail is judged not exposed over the FHIR API: one verdict, no findings.

mod event;
mod history;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use event::{Event, Pattern, normalize_search, parse};
pub use history::{Example, Patients};

use super::access::{Access, Call};
use super::detail::secs;
use super::{Finding, Kind};
use crate::history::{Interaction as F, Outcome};

/// What the reconciliation is told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// How far an event's `recorded` may be from its call.
    pub tolerance_us: u64,
    /// The agent every event must name; `None`: agents are not compared.
    pub agent: Option<String>,
}

/// What the reconciliation found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciled {
    /// `false`: no event paired with any call (the trail is not exposed over FHIR).
    pub exposed: bool,
    pub findings: Vec<Finding>,
    pub stats: Stats,
    pub patients: Patients,
}

/// Counts of what was reconciled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// AuditEvents fetched.
    pub events: u64,
    /// Calls known to have taken effect, each needing an event.
    pub expected: u64,
    pub matched: u64,
    pub gaps: u64,
    pub mismatches: u64,
    /// Calls that ended `fail`, checked for a success event.
    pub refused_checked: u64,
    /// `info` calls not known to have taken effect: matched when possible, never a gap.
    pub unknown: u64,
    /// Calls reconciliation does not cover (capabilities, token, transaction, batch;
    /// a create whose id the server never said).
    pub not_covered: u64,
}

/// How a call must appear in the trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Must {
    Appear,
    Maybe,
    NotSucceed,
}

/// A call to reconcile: its key in the event index and what it must show.
struct Want<'a> {
    call: &'a Call,
    key: String,
    /// The named patient, for events that keep no query.
    patient: Option<&'a str>,
    must: Must,
}

/// Reconciles. `effective` maps the invocation index of a `fail`/`info` write the
/// checker found committed to the server id it found (when known).
pub fn reconcile(
    access: &Access,
    events: &[Event],
    effective: &HashMap<u64, Option<String>>,
    options: &Options,
) -> Reconciled {
    let mut stats = Stats {
        events: events.len() as u64,
        ..Stats::default()
    };
    let wants = wants(access, effective, &mut stats);
    let mut m = Matcher::new(events, options, &wants);
    let mut status: HashMap<u64, Status> = HashMap::new();
    let tol = options.tolerance_us;
    let wide = (tol * 10).max(30_000_000);
    for must in [Must::Appear, Must::Maybe] {
        let list: Vec<&Want> = wants.iter().filter(|w| w.must == must).collect();
        for (w, e) in m.assign(&list, |m, w| m.fitting(w, tol, |_| true)) {
            status.insert(list[w].call.invoke, Status::Matched(e));
        }
    }
    let mut findings = Vec::new();
    let refused: Vec<&Want> = wants
        .iter()
        .filter(|w| w.must == Must::NotSucceed)
        .collect();
    stats.refused_checked = refused.len() as u64;
    for (w, e) in m.assign(&refused, |m, w| m.fitting(w, tol, |e| e.outcome == Some(0))) {
        let why = "ended `fail` but was audited as a success".to_owned();
        findings.push(finding(Kind::AuditMismatch, refused[w], &events[e], why));
    }
    let open: Vec<&Want> = wants
        .iter()
        .filter(|w| w.must == Must::Appear && !status.contains_key(&w.call.invoke))
        .collect();
    stats.matched = stats.expected - open.len() as u64;
    let mut found: HashMap<usize, (usize, String)> = HashMap::new();
    for (w, e) in m.assign(&open, |m, w| m.on_entity(w, wide)) {
        found.insert(w, (e, m.why_same(open[w], e)));
    }
    let rest: Vec<usize> = (0..open.len()).filter(|w| !found.contains_key(w)).collect();
    let rest_wants: Vec<&Want> = rest.iter().map(|&w| open[w]).collect();
    for (w, e) in m.assign(&rest_wants, |m, w| m.orphans_for(w)) {
        found.insert(rest[w], (e, m.why_other(rest_wants[w], e)));
    }
    for (k, w) in open.iter().enumerate() {
        let s = match found.remove(&k) {
            Some((e, why)) => {
                findings.push(finding(Kind::AuditMismatch, w, &events[e], why));
                stats.mismatches += 1;
                Status::Mismatch(e)
            }
            None => {
                findings.push(gap(w, options));
                stats.gaps += 1;
                Status::Gap
            }
        };
        status.insert(w.call.invoke, s);
    }
    let paired = stats.matched + stats.mismatches > 0 || m.used.iter().any(|u| *u);
    if !paired {
        return Reconciled {
            exposed: false,
            findings: Vec::new(),
            stats,
            patients: Patients::default(),
        };
    }
    let patients = history::patients(access, &wants_view(&wants), &status, events);
    Reconciled {
        exposed: true,
        findings,
        stats,
        patients,
    }
}

/// What became of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Matched(usize),
    Mismatch(usize),
    Gap,
}

fn wants_view<'a>(wants: &'a [Want<'a>]) -> Vec<(&'a Call, bool)> {
    wants
        .iter()
        .map(|w| (w.call, w.must == Must::Appear))
        .collect()
}

fn wants<'a>(
    access: &'a Access,
    effective: &HashMap<u64, Option<String>>,
    stats: &mut Stats,
) -> Vec<Want<'a>> {
    let mut out = Vec::new();
    for call in &access.calls {
        let covered = matches!(
            call.f,
            F::Create
                | F::ConditionalCreate
                | F::Read
                | F::Vread
                | F::Update
                | F::Search
                | F::History
        );
        let committed = effective.get(&call.invoke);
        let must = match call.outcome() {
            Outcome::Ok => Must::Appear,
            _ if committed.is_some() => Must::Appear,
            Outcome::Fail => Must::NotSucceed,
            Outcome::Info => Must::Maybe,
        };
        let what = call.what.as_deref().map(str::to_owned).or_else(|| {
            committed
                .cloned()
                .flatten()
                .map(|id| format!("{}/{id}", call.resource_type))
        });
        let key = match (call.f, &call.query, what) {
            (F::Search, Some(q), _) => Some(normalize_search(Some(&call.resource_type), q)),
            (F::Search, None, _) => Some(format!("{}?", call.resource_type)),
            (_, _, Some(w)) => Some(w),
            _ => None,
        };
        let Some(key) = key.filter(|_| covered) else {
            stats.not_covered += 1;
            continue;
        };
        if must == Must::Maybe {
            stats.unknown += 1;
        } else if must == Must::Appear {
            stats.expected += 1;
        }
        let patient = (call.f == F::Search)
            .then_some(call.patient.as_deref())
            .flatten();
        out.push(Want {
            call,
            key,
            patient,
            must,
        });
    }
    out
}

/// The action and the restful-interaction codes a call is audited with.
fn expected(f: F) -> (u8, &'static [&'static str]) {
    match f {
        F::Create | F::ConditionalCreate => (b'C', &["create"]),
        F::Read => (b'R', &["read"]),
        F::Vread => (b'R', &["vread", "read"]),
        F::History => (b'R', &["history-instance", "history", "history-type"]),
        F::Update => (b'U', &["update"]),
        _ => (b'E', &["search-type", "search", "search-system"]),
    }
}

/// The event index and which events are spent.
struct Matcher<'a> {
    events: &'a [Event],
    options: &'a Options,
    by_key: HashMap<&'a str, Vec<usize>>,
    by_patient: HashMap<&'a str, Vec<usize>>,
    /// Keys some call reconciles against: an event on another key names a wrong entity.
    keys: HashSet<&'a str>,
    /// By resource type, events naming an entity of that type no call reconciles
    /// against (a falsified entity, or someone else's traffic).
    orphans: HashMap<String, Vec<usize>>,
    used: Vec<bool>,
}

impl<'a> Matcher<'a> {
    fn new(events: &'a [Event], options: &'a Options, wants: &'a [Want<'a>]) -> Self {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_patient: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if e.pattern == Pattern::Authentication {
                continue;
            }
            for k in e.entities.iter().chain(&e.query) {
                // The patient entity of an event about another resource is not its subject.
                if secondary_patient(e, k) {
                    continue;
                }
                by_key.entry(k.as_str()).or_default().push(i);
            }
            // A search event that keeps no query names only the patient.
            let only_patient = e.entities.len() == 1 && e.action.is_none_or(|a| a == b'E');
            if let (None, Some(p), true) = (&e.query, &e.patient, only_patient) {
                by_patient.entry(p.as_str()).or_default().push(i);
            }
        }
        let keys: HashSet<&str> = wants.iter().map(|w| w.key.as_str()).collect();
        let mut orphans: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            for k in e.entities.iter().chain(&e.query) {
                if keys.contains(k.as_str()) || secondary_patient(e, k) {
                    continue;
                }
                if let Some(rt) = k.split(['/', '?']).next().filter(|rt| !rt.is_empty()) {
                    orphans.entry(rt.to_owned()).or_default().push(i);
                }
            }
        }
        Matcher {
            events,
            options,
            by_key,
            by_patient,
            keys,
            orphans,
            used: vec![false; events.len()],
        }
    }

    /// Unused events on the call's key (or its patient, for a search the event keeps
    /// no query of) within `slack` of it, closest first.
    fn candidates(&self, w: &Want, slack: u64) -> Vec<usize> {
        let lo = w.call.invoke_us as i64 - slack as i64;
        let hi = (w.call.done_us + slack) as i64;
        let on_key = self.by_key.get(w.key.as_str()).into_iter().flatten();
        let by_patient = w
            .patient
            .and_then(|p| self.by_patient.get(p))
            .into_iter()
            .flatten();
        let mut c: Vec<usize> = on_key
            .chain(by_patient)
            .copied()
            .filter(|&i| !self.used[i] && (lo..=hi).contains(&self.events[i].at_us))
            .collect();
        let mid = (w.call.invoke_us + w.call.done_us) as i64 / 2;
        c.sort_by_key(|&i| (self.events[i].at_us - mid).abs());
        c.dedup();
        c
    }

    /// What is wrong with an event for this call (empty: it fits).
    fn problems(&self, w: &Want, e: &Event) -> Vec<String> {
        let (action, codes) = expected(w.call.f);
        let mut out = Vec::new();
        if let Some(a) = e.action.filter(|a| *a != action) {
            out.push(format!(
                "action {} (expected {})",
                char::from(a),
                char::from(action)
            ));
        }
        let rest = e.pattern == Pattern::Balp;
        if let Some(s) = e.subtype.as_deref().filter(|s| rest && !codes.contains(s)) {
            out.push(format!("interaction {s} (expected {})", codes[0]));
        }
        if let Some(agent) = &self.options.agent {
            let named = e
                .agents
                .iter()
                .any(|a| a == agent || a.rsplit(['/', '|']).next() == Some(agent));
            if !named {
                out.push(format!(
                    "agent {} (not the expected agent)",
                    e.agents.first().map_or("none", String::as_str)
                ));
            }
        }
        if w.must == Must::Appear && e.outcome.is_some_and(|o| o != 0) {
            out.push(format!(
                "outcome {} for a call that succeeded",
                e.outcome.unwrap_or(0)
            ));
        }
        out
    }

    /// Pairs calls with events, closest in time first, each event and call used once:
    /// `pairs` lists a call's acceptable events with their distance in time.
    fn assign(
        &mut self,
        wants: &[&Want],
        pairs: impl Fn(&Self, &Want) -> Vec<(usize, i64)>,
    ) -> Vec<(usize, usize)> {
        let mut all: Vec<(i64, usize, usize)> = Vec::new();
        for (w, want) in wants.iter().enumerate() {
            all.extend(pairs(self, want).into_iter().map(|(e, d)| (d, w, e)));
        }
        all.sort_unstable();
        let mut taken = vec![false; wants.len()];
        let mut out = Vec::new();
        for (_, w, e) in all {
            if !taken[w] && !self.used[e] {
                taken[w] = true;
                self.used[e] = true;
                out.push((w, e));
            }
        }
        out
    }

    /// 0 inside the call (a server records while it handles the request), else the
    /// distance to it; ties go to the call that started closest.
    fn distance(w: &Want, e: &Event) -> i64 {
        let (lo, hi) = (w.call.invoke_us as i64, w.call.done_us as i64);
        let outside = (lo - e.at_us).max(e.at_us - hi).max(0);
        outside * 4 + (e.at_us - lo).abs().min(1_000_000_000) / 1_000_000
    }

    /// Events on the call's key within the tolerance that fit it in every way.
    fn fitting(&self, w: &Want, tol: u64, also: impl Fn(&Event) -> bool) -> Vec<(usize, i64)> {
        self.candidates(w, tol)
            .into_iter()
            .filter(|&i| also(&self.events[i]) && self.problems(w, &self.events[i]).is_empty())
            .map(|i| (i, Self::distance(w, &self.events[i])))
            .collect()
    }

    /// Any event on the call's own entity within the wide window.
    fn on_entity(&self, w: &Want, wide: u64) -> Vec<(usize, i64)> {
        self.candidates(w, wide)
            .into_iter()
            .map(|i| (i, Self::distance(w, &self.events[i])))
            .collect()
    }

    /// What differs in an event on the call's own entity (time included).
    fn why_same(&self, w: &Want, i: usize) -> String {
        let tol = self.options.tolerance_us;
        let e = &self.events[i];
        let mut why = self.problems(w, e);
        let lo = w.call.invoke_us as i64 - tol as i64;
        let hi = (w.call.done_us + tol) as i64;
        if !(lo..=hi).contains(&e.at_us) {
            why.push(format!(
                "recorded at {:.3} s, outside the tolerance",
                e.at_us as f64 / 1e6
            ));
        }
        why.join(", ")
    }

    /// Events that fit the call in every way but name an entity of its type that no
    /// call touched, within the tolerance.
    fn orphans_for(&self, w: &Want) -> Vec<(usize, i64)> {
        let tol = self.options.tolerance_us as i64;
        let (lo, hi) = (w.call.invoke_us as i64 - tol, w.call.done_us as i64 + tol);
        let Some(list) = self.orphans.get(&*w.call.resource_type) else {
            return Vec::new();
        };
        list.iter()
            .copied()
            .filter(|&i| {
                let e = &self.events[i];
                !self.used[i]
                    && (lo..=hi).contains(&e.at_us)
                    && e.pattern != Pattern::Authentication
                    && self.problems(w, e).is_empty()
            })
            .map(|i| (i, Self::distance(w, &self.events[i])))
            .collect()
    }

    fn why_other(&self, w: &Want, i: usize) -> String {
        let rt = &*w.call.resource_type;
        let e = &self.events[i];
        let named = e
            .entities
            .iter()
            .chain(&e.query)
            .find(|k| same_type(k, rt) && !self.keys.contains(k.as_str()))
            .cloned()
            .unwrap_or_default();
        format!("entity {named} (expected {})", w.key)
    }
}

/// Whether `k` is the Patient entity of an event whose subject is something else.
fn secondary_patient(e: &Event, k: &str) -> bool {
    e.patient.as_deref() == Some(k) && (e.query.is_some() || e.entities.iter().any(|o| o != k))
}

fn same_type(key: &str, rt: &str) -> bool {
    key.strip_prefix(rt)
        .is_some_and(|rest| rest.starts_with(['/', '?']))
}

fn subject(w: &Want) -> (String, Option<String>) {
    let rt = w.call.resource_type.to_string();
    let id = w
        .call
        .what
        .as_deref()
        .and_then(|x| x.split_once('/'))
        .map(|(_, id)| id.to_owned());
    (rt, id)
}

fn describe(w: &Want) -> String {
    let what = match w.call.f {
        F::Search => w.key.clone(),
        _ => w.call.what.as_deref().unwrap_or(&w.key).to_owned(),
    };
    format!(
        "{} {what} (history #{}, {} at {})",
        w.call.f,
        w.call.invoke,
        w.call.outcome().as_str(),
        secs(w.call.invoke_us)
    )
}

fn finding(kind: Kind, w: &Want, e: &Event, why: String) -> Finding {
    let (resource_type, id) = subject(w);
    Finding {
        kind,
        resource_type,
        id,
        identifier: None,
        detail: format!("{}: AuditEvent {} has {why}", describe(w), e.id),
        evidence: vec![w.call.invoke],
    }
}

fn gap(w: &Want, options: &Options) -> Finding {
    let (resource_type, id) = subject(w);
    Finding {
        kind: Kind::AuditGap,
        resource_type,
        id,
        identifier: None,
        detail: format!(
            "{}: no AuditEvent within {} s",
            describe(w),
            options.tolerance_us as f64 / 1e6
        ),
        evidence: vec![w.call.invoke],
    }
}
