//! Unit tests of the checker: a small builder for hand-written histories, one test per
//! finding kind (`kinds`), anomalies that combine or hide behind a correct final state
//! (`combined`), the cases a naive checker gets wrong (`negative`), and property tests
//! against a simulated server (`props`).

mod combined;
mod dropped;
mod kinds;
mod negative;
mod props;
mod transactions;

use serde_json::{Value, json};

use crate::history::{Completion, Content, Event, Interaction, Op, Phase, Record, Seen};

use super::{Finding, Kind, Options, Outcome, check};

pub(super) const SYSTEM: &str = "urn:fhirsurge:run-1";

pub(super) fn options() -> Options {
    Options {
        expected_changes: Default::default(),
        harness_system_prefix: "urn:fhirsurge:".into(),
        held_from_search: Vec::new(),
    }
}

/// `system|value` of a harness identifier.
pub(super) fn ident(value: &str) -> String {
    format!("{SYSTEM}|{value}")
}

/// An Observation carrying a harness identifier.
pub(super) fn obs(value: &str, status: &str, reading: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": status,
        "code": {"text": "heart rate"},
        "valueQuantity": {"value": reading, "unit": "/min"},
    })
}

/// What a response shows of a resource.
pub(super) fn seen(id: &str, version: Option<&str>, body: &Value) -> Seen {
    let mut with_id = body.clone();
    with_id["id"] = json!(id);
    crate::history::seen(&with_id, "urn:fhirsurge:").map_or_else(Seen::default, |mut s| {
        s.version = version.map(str::to_owned);
        s
    })
}

/// A hand-written history; times in milliseconds.
#[derive(Default)]
pub(super) struct Hist {
    pub records: Vec<Record>,
}

impl Hist {
    fn push(&mut self, ms: u64, event: Event) -> u64 {
        let index = self.records.len() as u64;
        self.records.push(Record {
            index,
            time_us: ms * 1000,
            process: 1,
            event,
        });
        index
    }

    pub fn invoke(&mut self, ms: u64, op: Op) -> u64 {
        self.push(ms, Event::Invoke(op))
    }

    fn complete(
        &mut self,
        ms: u64,
        invoke: u64,
        make: fn(Completion) -> Event,
        mut c: Completion,
    ) -> u64 {
        c.invoke = invoke;
        let start = self.records[invoke as usize].time_us;
        c.latency_us = (ms * 1000).saturating_sub(start);
        self.push(ms, make(c))
    }

    /// Invokes a create (or conditional create) of `body`.
    pub fn create(&mut self, ms: u64, body: &Value, conditional: bool) -> u64 {
        let value = body["identifier"][0]["value"].as_str().unwrap_or_default();
        self.invoke(
            ms,
            Op {
                f: if conditional {
                    Interaction::ConditionalCreate
                } else {
                    Interaction::Create
                },
                resource_type: "Observation".into(),
                identifier: Some(ident(value)),
                content: Some(Content::of(body)),
                ..Op::default()
            },
        )
    }

    /// Invokes an update of `id`, conditional on `if_match`.
    pub fn update(&mut self, ms: u64, body: &Value, id: &str, if_match: Option<&str>) -> u64 {
        let value = body["identifier"][0]["value"].as_str().unwrap_or_default();
        self.invoke(
            ms,
            Op {
                f: Interaction::Update,
                resource_type: "Observation".into(),
                id: Some(id.into()),
                version: if_match.map(str::to_owned),
                identifier: Some(ident(value)),
                content: Some(Content::of(body)),
                ..Op::default()
            },
        )
    }

    /// Re-sends the request invoked at `first`.
    pub fn retry(&mut self, ms: u64, first: u64) -> u64 {
        let Event::Invoke(op) = &self.records[first as usize].event else {
            panic!("not an invoke")
        };
        let op = Op {
            retry_of: Some(first),
            ..op.clone()
        };
        self.invoke(ms, op)
    }

    pub fn ok(
        &mut self,
        ms: u64,
        invoke: u64,
        status: u16,
        id: Option<&str>,
        version: Option<&str>,
    ) -> u64 {
        let c = Completion {
            status: Some(status),
            id: id.map(str::to_owned),
            version: version.map(str::to_owned),
            ..Completion::default()
        };
        self.complete(ms, invoke, Event::Ok, c)
    }

    pub fn info(&mut self, ms: u64, invoke: u64) -> u64 {
        let c = Completion {
            error: Some(crate::history::ErrorClass::Timeout),
            ..Completion::default()
        };
        self.complete(ms, invoke, Event::Info, c)
    }

    pub fn fail(&mut self, ms: u64, invoke: u64, status: u16) -> u64 {
        let c = Completion {
            status: Some(status),
            error: Some(crate::history::ErrorClass::Conflict),
            ..Completion::default()
        };
        self.complete(ms, invoke, Event::Fail, c)
    }

    /// A read by id from `start` to `end`: `Some` shows a resource, `None` is a 404.
    pub fn read(
        &mut self,
        start: u64,
        end: u64,
        id: &str,
        shown: Option<Seen>,
        phase: Phase,
    ) -> [u64; 2] {
        let i = self.invoke(
            start,
            Op {
                f: Interaction::Read,
                resource_type: "Observation".into(),
                id: Some(id.into()),
                phase,
                ..Op::default()
            },
        );
        let c = Completion {
            status: Some(if shown.is_some() { 200 } else { 404 }),
            seen: shown.into_iter().collect(),
            ..Completion::default()
        };
        [i, self.complete(end, i, Event::Ok, c)]
    }

    /// A read by id that failed.
    pub fn read_failed(&mut self, start: u64, end: u64, id: &str, phase: Phase) -> [u64; 2] {
        let i = self.invoke(
            start,
            Op {
                f: Interaction::Read,
                resource_type: "Observation".into(),
                id: Some(id.into()),
                phase,
                ..Op::default()
            },
        );
        [i, self.complete(end, i, Event::Info, Completion::default())]
    }

    /// A search (by identifier `value` when given) showing `shown`.
    pub fn search(
        &mut self,
        start: u64,
        end: u64,
        value: Option<&str>,
        shown: Vec<Seen>,
        phase: Phase,
    ) -> [u64; 2] {
        let i = self.invoke(
            start,
            Op {
                f: Interaction::Search,
                resource_type: "Observation".into(),
                identifier: value.map(ident),
                query: Some("identifier=x".into()),
                phase,
                ..Op::default()
            },
        );
        let c = Completion {
            status: Some(200),
            seen: shown,
            ..Completion::default()
        };
        [i, self.complete(end, i, Event::Ok, c)]
    }

    /// A visibility probe: a search by identifier in the `probe` phase.
    pub fn probe(&mut self, start: u64, end: u64, value: &str, shown: Vec<Seen>) -> [u64; 2] {
        self.search(start, end, Some(value), shown, Phase::Probe)
    }

    /// A transaction Bundle naming no identifier or id.
    pub fn transaction(&mut self, start: u64, end: u64, failed: bool) -> [u64; 2] {
        let op = Op {
            f: Interaction::Transaction,
            ..Op::default()
        };
        let i = self.invoke(start, op);
        let c = Completion {
            status: Some(if failed { 400 } else { 200 }),
            ..Completion::default()
        };
        let make = if failed { Event::Fail } else { Event::Ok };
        [i, self.complete(end, i, make, c)]
    }

    /// A read-back `_history` of `id`.
    pub fn history(&mut self, start: u64, end: u64, id: &str, shown: Vec<Seen>) -> [u64; 2] {
        let i = self.invoke(
            start,
            Op {
                f: Interaction::History,
                resource_type: "Observation".into(),
                id: Some(id.into()),
                phase: Phase::Readback,
                ..Op::default()
            },
        );
        let c = Completion {
            status: Some(200),
            seen: shown,
            ..Completion::default()
        };
        [i, self.complete(end, i, Event::Ok, c)]
    }

    /// A create of `body` invoked at `ms`, acknowledged 201 at `ack` as `id` at `version`.
    pub fn created(
        &mut self,
        [ms, ack]: [u64; 2],
        body: &Value,
        id: &str,
        version: &str,
    ) -> [u64; 2] {
        let c = self.create(ms, body, false);
        [c, self.ok(ack, c, 201, Some(id), Some(version))]
    }

    /// An update of `id` to `body` (conditional on `if_match`) invoked at `ms`,
    /// acknowledged 200 at `ack` as `version`.
    pub fn updated(
        &mut self,
        [ms, ack]: [u64; 2],
        body: &Value,
        id: &str,
        if_match: &str,
        version: &str,
    ) -> [u64; 2] {
        let u = self.update(ms, body, id, Some(if_match));
        [u, self.ok(ack, u, 200, Some(id), Some(version))]
    }

    /// The read-back search by identifier `value` (30.000–30.010 s) showing `shown`.
    pub fn search_back(&mut self, value: &str, shown: Vec<Seen>) -> [u64; 2] {
        self.search(30_000, 30_010, Some(value), shown, Phase::Readback)
    }

    /// The read-back by id (30.020–30.030 s) showing `body` as `id` at `version`.
    pub fn read_back(&mut self, id: &str, version: &str, body: &Value) -> [u64; 2] {
        let shown = seen(id, Some(version), body);
        self.read(30_020, 30_030, id, Some(shown), Phase::Readback)
    }

    /// The read-back finding `body` (identifier `value`) as `id` at `version`: by
    /// identifier search (30.000–30.010 s), then by id.
    pub fn found(&mut self, value: &str, id: &str, version: &str, body: &Value) -> [[u64; 2]; 2] {
        let s = self.search_back(value, vec![seen(id, Some(version), body)]);
        [s, self.read_back(id, version, body)]
    }

    pub fn check(&self) -> Outcome {
        check(self.records.clone(), &options())
    }

    pub fn check_with(&self, options: &Options) -> Outcome {
        check(self.records.clone(), options)
    }
}

/// The one finding of a check, asserting there is exactly one.
pub(super) fn only(out: &Outcome) -> &Finding {
    assert_eq!(out.findings.len(), 1, "{:#?}", out.findings);
    &out.findings[0]
}

pub(super) fn kinds(out: &Outcome) -> Vec<Kind> {
    out.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn outcome_serializes_in_snake_case() {
    let f = Finding {
        kind: Kind::CommittedDespiteError,
        resource_type: "Observation".into(),
        id: Some("a".into()),
        identifier: None,
        detail: "d".into(),
        evidence: vec![1, 2],
    };
    let v = serde_json::to_value(Outcome {
        findings: vec![f],
        counts: [(Kind::LostWrite, 2)].into_iter().collect(),
        ..Outcome::default()
    })
    .unwrap();
    assert_eq!(v["findings"][0]["kind"], "committed_despite_error");
    assert_eq!(v["counts"]["lost_write"], 2);
    assert!(v["visibility_lag"]["never_visible"].is_u64());
    assert!(v["stats"]["writes_ok"].is_u64());
    let all = [
        Kind::AuditGap,
        Kind::AuditMismatch,
        Kind::ScopeLeak,
        Kind::LostUpdate,
        Kind::StaleRead,
        Kind::DuplicateWrite,
        Kind::CorruptedWrite,
    ];
    let names: Vec<Value> = all
        .iter()
        .map(|k| serde_json::to_value(k).unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            json!("audit_gap"),
            json!("audit_mismatch"),
            json!("scope_leak"),
            json!("lost_update"),
            json!("stale_read"),
            json!("duplicate_write"),
            json!("corrupted_write")
        ]
    );
}
