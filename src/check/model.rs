//! Test-only: a simulated correct FHIR server and random histories against it, with
//! at most one injected anomaly. Each entity (one harness identifier) is created (with
//! retries), updated, read by its own process and by concurrent ones, and searched for;
//! every effect happens at a point inside its interaction's interval, and a read shows
//! the state at its own such point. Then the read-back reads everything back.

use std::collections::BTreeSet;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::history::{Event, Op, Record};

use super::Kind;

pub(super) const SYSTEM: &str = "urn:fhirsurge:sim";

/// One anomaly a faulty server (or client) adds to an otherwise correct history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inject {
    /// An acknowledged create is never stored.
    DropCreate,
    /// The last acknowledged update is never stored.
    DropUpdate,
    /// The last update is never stored, and acknowledged with the version in place (its
    /// `If-Match` version, or the current one): no new version.
    DropUpdateEcho,
    /// The last write is stored with an element changed.
    AlterContent,
    /// The create is stored with an element changed, then overwritten by acknowledged
    /// updates: only `_history` shows it.
    AlterOverwritten,
    /// A create that ended `info` took effect, and its retry created another.
    Duplicate,
    /// A read begun after an acknowledged update is served the version before it.
    ServeOld,
    /// A create that ended `info` took effect.
    CommitInfo,
    /// Two `If-Match` updates of one version are both applied and acknowledged.
    DoubleAck,
}

pub(super) const ALL: [Inject; 9] = [
    Inject::DropCreate,
    Inject::DropUpdate,
    Inject::DropUpdateEcho,
    Inject::AlterContent,
    Inject::AlterOverwritten,
    Inject::Duplicate,
    Inject::ServeOld,
    Inject::CommitInfo,
    Inject::DoubleAck,
];

impl Inject {
    pub(super) fn expected(self) -> Kind {
        match self {
            Self::DropCreate | Self::DropUpdate | Self::DropUpdateEcho => Kind::LostWrite,
            Self::AlterContent | Self::AlterOverwritten => Kind::CorruptedWrite,
            Self::Duplicate => Kind::DuplicateWrite,
            Self::ServeOld => Kind::StaleRead,
            Self::CommitInfo => Kind::CommittedDespiteError,
            Self::DoubleAck => Kind::LostUpdate,
        }
    }

    /// Kinds the anomaly may legitimately show up as, besides the expected one: none (a
    /// dropped update's stale reads are folded into its `lost_write`).
    pub(super) fn allowed(self) -> &'static [Kind] {
        &[]
    }
}

/// What the server stored for one entity: `(effect time, id, version, body)`.
#[derive(Default)]
struct Store {
    events: Vec<(u64, String, String, Value)>,
}

impl Store {
    /// The state of `id` at `t`.
    fn at(&self, id: &str, t: u64) -> Option<(&str, &Value)> {
        self.events
            .iter()
            .filter(|e| e.1 == id && e.0 <= t)
            .max_by_key(|e| e.0)
            .map(|e| (e.2.as_str(), &e.3))
    }

    fn ids_at(&self, t: u64) -> Vec<String> {
        let ids: BTreeSet<String> = self
            .events
            .iter()
            .filter(|e| e.0 <= t)
            .map(|e| e.1.clone())
            .collect();
        ids.into_iter().collect()
    }

    fn versions(&self, id: &str) -> Vec<(String, Value)> {
        let mut v: Vec<&(u64, String, String, Value)> =
            self.events.iter().filter(|e| e.1 == id).collect();
        v.sort_by_key(|e| e.0);
        v.into_iter().map(|e| (e.2.clone(), e.3.clone())).collect()
    }
}

/// One simulated interaction, before indexes are assigned.
struct SimOp {
    inv: u64,
    done: u64,
    process: u64,
    op: Op,
    outcome: Event,
    retry_of: Option<usize>,
}

/// A generated history.
pub(super) struct World {
    pub records: Vec<Record>,
    /// The identifier (`system|value`) of the entity the anomaly was injected into.
    pub injected: Option<String>,
    /// The server rewrites `Observation.code`: the options must declare it.
    pub rewrites_code: bool,
}

struct Sim {
    rng: ChaCha8Rng,
    ops: Vec<SimOp>,
    counter: u64,
    versions_on_reads: bool,
    /// Whether write responses carry a version (ETag).
    versions_on_writes: bool,
    /// Whether the server rewrites `code` (an EHR profile quirk, declared as expected).
    rewrites_code: bool,
    process: u64,
}

/// One entity's progress.
struct Entity {
    value: String,
    store: Store,
    t: u64,
    process: u64,
    id: Option<String>,
    version: Option<String>,
    inject: Option<Inject>,
    reported: BTreeSet<String>,
    updated: bool,
    created_done: u64,
}

pub(super) fn world(seed: u64, entities: usize, inject: Option<Inject>) -> World {
    let mut sim = Sim {
        rng: ChaCha8Rng::seed_from_u64(seed),
        ops: Vec::new(),
        counter: 0,
        versions_on_reads: false,
        versions_on_writes: true,
        rewrites_code: false,
        process: 0,
    };
    sim.versions_on_reads = sim.rng.random_bool(0.7);
    // A read's version is judged only when a write reported it: a stale read served
    // with versions on reads alone would go unseen, and that is by design.
    // So is a version `_history` shows altered: it is matched by the version its write
    // reported.
    // A version echoed is only seen when writes report versions.
    sim.versions_on_writes = matches!(
        inject,
        Some(Inject::ServeOld | Inject::AlterOverwritten | Inject::DropUpdateEcho)
    ) || sim.rng.random_bool(0.7);
    sim.rewrites_code = sim.rng.random_bool(0.3);
    let target = inject.map(|_| sim.rng.random_range(0..entities.max(1)));
    let mut done = Vec::new();
    for k in 0..entities.max(1) {
        let which = if target == Some(k) { inject } else { None };
        done.push(sim.entity(k, which));
    }
    let end = sim.ops.iter().map(|o| o.done).max().unwrap_or(0) + 15_000_000;
    let mut t = end;
    for e in &done {
        t = sim.read_back(e, t);
    }
    let rewrites_code = sim.rewrites_code;
    World {
        rewrites_code,
        records: sim.records(),
        injected: target.map(|k| format!("{SYSTEM}|{}", done[k].value)),
    }
}

fn body(value: &str, status: &str, note: &str, reading: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": status,
        "code": {"text": "heart rate"},
        "note": [{"text": note}],
        "valueQuantity": {"value": reading, "unit": "/min"},
    })
}

impl Sim {
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let salt: u16 = self.rng.random();
        format!("{prefix}{:04x}z{}", salt, self.counter)
    }

    fn latency(&mut self) -> u64 {
        self.rng.random_range(1_000..80_000)
    }

    fn new_process(&mut self) -> u64 {
        self.process += 1;
        self.process
    }

    fn push(&mut self, inv: u64, done: u64, process: u64, op: Op, outcome: Event) -> usize {
        self.ops.push(SimOp {
            inv,
            done,
            process,
            op,
            outcome,
            retry_of: None,
        });
        self.ops.len() - 1
    }

    fn entity(&mut self, k: usize, inject: Option<Inject>) -> Entity {
        let process = self.new_process();
        let mut e = Entity {
            value: format!("e-{k}"),
            store: Store::default(),
            t: self.rng.random_range(0..2_000_000),
            process,
            id: None,
            version: None,
            inject,
            reported: BTreeSet::new(),
            updated: false,
            created_done: 0,
        };
        let sent = body(&e.value, "preliminary", "created", 60.0 + k as f64);
        self.create(&mut e, &sent);
        if e.id.is_some() {
            self.updates(&mut e, k);
            self.concurrent_reads(&mut e);
        }
        if self.rng.random_bool(0.5) {
            self.load_search(&e);
        }
        e
    }
}

mod steps;
