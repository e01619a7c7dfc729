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
    for must in [Must::Appear, Must::Maybe] {
        for w in wants.iter().filter(|w| w.must == must) {
            if let Some(e) = m.exact(w) {
                status.insert(w.call.invoke, Status::Matched(e));
            }
        }
    }
    let mut findings = Vec::new();
    for w in wants.iter().filter(|w| w.must == Must::NotSucceed) {
        stats.refused_checked += 1;
        if let Some(e) = m.success_of_refused(w) {
            findings.push(finding(
                Kind::AuditMismatch,
                w,
                &events[e],
                "ended `fail` but was audited as a success".into(),
            ));
        }
    }
    for w in wants.iter().filter(|w| w.must == Must::Appear) {
        if status.contains_key(&w.call.invoke) {
            stats.matched += 1;
            continue;
        }
        let found = m.same_entity(w).or_else(|| m.other_entity(w));
        let s = match found {
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
                by_key.entry(k.as_str()).or_default().push(i);
            }
            if let (None, Some(p)) = (&e.query, &e.patient) {
                by_patient.entry(p.as_str()).or_default().push(i);
            }
        }
        let keys: HashSet<&str> = wants.iter().map(|w| w.key.as_str()).collect();
        let mut orphans: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            for k in e.entities.iter().chain(&e.query) {
                if keys.contains(k.as_str())
                    || k.starts_with("Patient/") && e.query.is_none() && e.entities.len() > 1
                {
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
                    "agent {} (expected {agent})",
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

    fn take(&mut self, i: usize) -> usize {
        self.used[i] = true;
        i
    }

    fn exact(&mut self, w: &Want) -> Option<usize> {
        let tol = self.options.tolerance_us;
        let hit = self
            .candidates(w, tol)
            .into_iter()
            .find(|&i| self.problems(w, &self.events[i]).is_empty())?;
        Some(self.take(hit))
    }

    fn success_of_refused(&mut self, w: &Want) -> Option<usize> {
        let tol = self.options.tolerance_us;
        let hit = self.candidates(w, tol).into_iter().find(|&i| {
            let e = &self.events[i];
            e.outcome == Some(0) && self.problems(w, e).is_empty()
        })?;
        Some(self.take(hit))
    }

    /// An unused event on the call's own entity that differs, or lies outside the
    /// tolerance (up to ten times it, at least 30 s).
    fn same_entity(&mut self, w: &Want) -> Option<(usize, String)> {
        let tol = self.options.tolerance_us;
        let wide = (tol * 10).max(30_000_000);
        let i = self.candidates(w, wide).into_iter().next()?;
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
        Some((self.take(i), why.join(", ")))
    }

    /// An unused event that fits the call in every way but names an entity of the same
    /// type that no call touched: the closest in time.
    fn other_entity(&mut self, w: &Want) -> Option<(usize, String)> {
        let tol = self.options.tolerance_us as i64;
        let (lo, hi) = (w.call.invoke_us as i64 - tol, w.call.done_us as i64 + tol);
        let rt = &*w.call.resource_type;
        let fits = |i: usize, e: &Event| {
            !self.used[i]
                && (lo..=hi).contains(&e.at_us)
                && e.pattern != Pattern::Authentication
                && self.problems(w, e).is_empty()
        };
        let best = self
            .orphans
            .get(rt)?
            .iter()
            .copied()
            .filter(|&i| fits(i, &self.events[i]))
            .min_by_key(|&i| (self.events[i].at_us - w.call.invoke_us as i64).abs())?;
        let named = self.events[best]
            .entities
            .iter()
            .chain(&self.events[best].query)
            .find(|k| same_type(k, rt) && !self.keys.contains(k.as_str()))
            .cloned()
            .unwrap_or_default();
        Some((
            self.take(best),
            format!("entity {named} (expected {})", w.key),
        ))
    }
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
