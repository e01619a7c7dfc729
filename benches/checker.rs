//! Checker benchmark: synthetic histories of 1M, 3M and 10M records (a realistic mix of
//! encounters — conditional and plain creates, searches, an `If-Match` close, own reads —
//! 200 at a time, then the read-back, with a few anomalies), streamed from a generator
//! so the history itself never sits in memory. Prints, per size, the time spent
//! generating, the check's own time and rate, the peak resident memory, and whether the
//! findings are exactly the planted anomalies; for the largest size also the
//! parse+check time of the same history written as a run writes it (zstd JSON lines).
//!
//! `FHIRSURGE_BENCH_SIZES=100000,300000 cargo bench --bench checker` for a quick run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::Path;
use std::time::Instant;

use fhirsurge::check::{self, Options};
use fhirsurge::history::{
    Completion, Content, ErrorClass, Event, Interaction, Op, Phase, Reader, Record, Seen, Writer,
};

const LANES: usize = 200;
/// Records per encounter, load and read-back together (measured: about 72).
const PER_ENCOUNTER: u64 = 72;
const SYSTEM: &str = "urn:fhirsurge:bench";
const TYPES: [&str; 8] = [
    "Patient",
    "Encounter",
    "Observation",
    "Observation",
    "Observation",
    "Observation",
    "Condition",
    "DocumentReference",
];
const ELEMENTS: [&str; 8] = [
    "identifier",
    "status",
    "code",
    "subject",
    "encounter",
    "effectiveDateTime",
    "valueQuantity",
    "category",
];

/// The allocator the `fhirsurge` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn h(n: u64, k: u64, salt: u64) -> u64 {
    mix(mix(n).wrapping_add(k).wrapping_mul(31).wrapping_add(salt))
}

/// What became of one written resource (`k` of encounter `n`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Fail,
    /// `info`; `true` when it took effect anyway (committed despite error).
    Info(bool),
}

fn fate(n: u64, k: u64) -> Fate {
    match h(n, k, 1) % 1000 {
        0..10 => Fate::Info(h(n, k, 2).is_multiple_of(200)),
        10..15 => Fate::Fail,
        _ => Fate::Ok,
    }
}

fn lost(n: u64, k: u64) -> bool {
    h(n, k, 3).is_multiple_of(50_000)
}

fn corrupted(n: u64, k: u64) -> bool {
    h(n, k, 4).is_multiple_of(50_000)
}

fn stale(n: u64) -> bool {
    h(n, 1, 5).is_multiple_of(20_000)
}

fn identifier(n: u64, k: u64) -> String {
    format!("{SYSTEM}|e{n}-{k}")
}

fn id(n: u64, k: u64) -> String {
    format!("{:x}-{k}", h(n, k, 6) >> 16)
}

/// The content of resource `k` of encounter `n` in state `variant` (0 created, 1 closed,
/// 2 corrupted).
fn content(n: u64, k: u64, variant: u64) -> Content {
    let mut elements = BTreeMap::new();
    for (e, name) in ELEMENTS.iter().enumerate() {
        let v = if (e == 1 && variant >= 1) || (e == 6 && variant == 2) {
            variant
        } else {
            0
        };
        elements.insert(
            (*name).to_owned(),
            format!("{:016x}", h(n, k * 16 + e as u64, 7 + v)),
        );
    }
    Content {
        digest: format!("{:016x}", h(n, k, 10 + variant)),
        elements,
    }
}

fn seen(n: u64, k: u64, version: &str, variant: u64) -> Seen {
    Seen {
        resource_type: TYPES[k as usize].to_owned(),
        id: id(n, k),
        version: Some(version.to_owned()),
        identifiers: vec![identifier(n, k)],
        content: Some(content(n, k, variant)),
        patient: None,
    }
}

/// One interaction: what is sent, what comes back, and how long it takes.
struct Step {
    op: Op,
    end: Event,
    latency_us: u64,
}

fn done(status: u16, id: Option<String>, version: Option<&str>, seen: Vec<Seen>) -> Event {
    Event::Ok(Completion {
        status: Some(status),
        id,
        version: version.map(str::to_owned),
        seen,
        ..Completion::default()
    })
}

fn op(f: Interaction, k: u64, phase: Phase) -> Op {
    Op {
        f,
        resource_type: TYPES[k as usize].to_owned(),
        phase,
        ..Op::default()
    }
}

fn create(n: u64, k: u64) -> Step {
    let f = if k == 0 {
        Interaction::ConditionalCreate
    } else {
        Interaction::Create
    };
    let mut o = op(f, k, Phase::Load);
    o.identifier = Some(identifier(n, k));
    o.content = Some(content(n, k, 0));
    let end = match fate(n, k) {
        Fate::Ok => done(201, Some(id(n, k)), Some("1"), vec![]),
        Fate::Fail => Event::Fail(Completion {
            status: Some(400),
            error: Some(ErrorClass::ClientError),
            ..Completion::default()
        }),
        Fate::Info(_) => Event::Info(Completion {
            error: Some(ErrorClass::Timeout),
            ..Completion::default()
        }),
    };
    Step {
        op: o,
        end,
        latency_us: 2_000 + h(n, k, 20) % 40_000,
    }
}

/// The load-phase interactions of encounter `n`, in order.
fn encounter(n: u64) -> VecDeque<Step> {
    let mut steps = VecDeque::with_capacity(20);
    steps.push_back(create(n, 0));
    steps.push_back(create(n, 1));
    for k in [0, 2] {
        let mut o = op(Interaction::Search, k, Phase::Load);
        o.query = Some("identifier=mrn".into());
        let shown = if fate(n, 0) == Fate::Ok && k == 0 {
            vec![seen(n, 0, "1", 0)]
        } else {
            vec![]
        };
        steps.push_back(Step {
            op: o,
            end: done(200, None, None, shown),
            latency_us: 3_000 + h(n, k, 21) % 30_000,
        });
    }
    for k in 2..8 {
        steps.push_back(create(n, k));
    }
    let closed = fate(n, 1) == Fate::Ok;
    if closed {
        let mut o = op(Interaction::Update, 1, Phase::Load);
        o.id = Some(id(n, 1));
        o.version = Some("1".into());
        o.identifier = Some(identifier(n, 1));
        o.content = Some(content(n, 1, 1));
        steps.push_back(Step {
            op: o,
            end: done(200, Some(id(n, 1)), Some("2"), vec![]),
            latency_us: 2_000 + h(n, 1, 22) % 40_000,
        });
    }
    for k in (0..8).filter(|&k| fate(n, k) == Fate::Ok) {
        let mut o = op(Interaction::Read, k, Phase::Load);
        o.id = Some(id(n, k));
        let (version, variant) = match (k, closed && !stale(n)) {
            (1, true) => ("2", 1),
            _ => ("1", 0),
        };
        steps.push_back(Step {
            op: o,
            end: done(200, None, None, vec![seen(n, k, version, variant)]),
            latency_us: 1_000 + h(n, k, 23) % 20_000,
        });
    }
    steps
}

/// The read-back interactions of encounter `n`.
fn read_back(n: u64) -> Vec<Step> {
    let mut steps = Vec::with_capacity(17);
    let closed = fate(n, 1) == Fate::Ok;
    for k in 0..8 {
        let fate = fate(n, k);
        let present = matches!(fate, Fate::Ok | Fate::Info(true)) && !lost(n, k);
        let variant = match (corrupted(n, k), k == 1 && closed) {
            (true, _) => 2,
            (false, true) => 1,
            (false, false) => 0,
        };
        let version = if k == 1 && closed { "2" } else { "1" };
        let shown = || {
            if present {
                vec![seen(n, k, version, variant)]
            } else {
                vec![]
            }
        };
        let mut o = op(Interaction::Search, k, Phase::Readback);
        o.identifier = Some(identifier(n, k));
        o.query = Some("identifier=x".into());
        steps.push(Step {
            op: o,
            end: done(200, None, None, shown()),
            latency_us: 1_500,
        });
        if fate != Fate::Ok {
            continue;
        }
        let mut o = op(Interaction::Read, k, Phase::Readback);
        o.id = Some(id(n, k));
        let status = if present { 200 } else { 404 };
        steps.push(Step {
            op: o,
            end: done(status, None, None, shown()),
            latency_us: 1_000,
        });
        if k == 1 && closed {
            let mut o = op(Interaction::History, k, Phase::Readback);
            o.id = Some(id(n, k));
            let versions = vec![seen(n, k, "1", 0), seen(n, k, "2", 1)];
            steps.push(Step {
                op: o,
                end: done(200, None, None, versions),
                latency_us: 1_500,
            });
        }
    }
    steps
}

/// Streams a history: encounters `LANES` at a time, then the read-back.
struct History {
    encounters: u64,
    next_encounter: u64,
    lanes: Vec<Lane>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    readback_n: u64,
    readback: VecDeque<Step>,
    out: VecDeque<Record>,
    index: u64,
    time_us: u64,
}

#[derive(Default)]
struct Lane {
    steps: VecDeque<Step>,
    /// The invocation index and the completion of the step in flight.
    inflight: Option<(u64, Event, u64)>,
    process: u64,
}

impl History {
    fn new(records: u64) -> History {
        let mut hist = History {
            encounters: (records / PER_ENCOUNTER).max(1),
            next_encounter: 0,
            lanes: (0..LANES).map(|_| Lane::default()).collect(),
            heap: BinaryHeap::new(),
            readback_n: 0,
            readback: VecDeque::new(),
            out: VecDeque::new(),
            index: 0,
            time_us: 0,
        };
        for lane in 0..LANES {
            hist.heap.push(Reverse(((lane as u64) * 997, lane)));
        }
        hist
    }

    fn emit(&mut self, time_us: u64, process: u64, event: Event) -> u64 {
        let index = self.index;
        self.index += 1;
        self.time_us = self.time_us.max(time_us);
        self.out.push_back(Record {
            index,
            time_us: self.time_us,
            process,
            event,
        });
        index
    }

    /// Advances one lane by one record; `false` when every lane is done.
    fn step_load(&mut self) -> bool {
        let Some(Reverse((t, lane))) = self.heap.pop() else {
            return false;
        };
        if let Some((invoke, end, latency_us)) = self.lanes[lane].inflight.take() {
            let end = finish(end, invoke, latency_us);
            let process = self.lanes[lane].process;
            self.emit(t, process, end);
            self.heap.push(Reverse((t + 500 + (invoke % 5_000), lane)));
            return true;
        }
        if self.lanes[lane].steps.is_empty() {
            if self.next_encounter >= self.encounters {
                return true; // this lane is done
            }
            self.lanes[lane].steps = encounter(self.next_encounter);
            self.lanes[lane].process = self.next_encounter;
            self.next_encounter += 1;
        }
        if let Some(step) = self.lanes[lane].steps.pop_front() {
            let process = self.lanes[lane].process;
            let invoke = self.emit(t, process, Event::Invoke(step.op));
            self.lanes[lane].inflight = Some((invoke, step.end, step.latency_us));
            self.heap.push(Reverse((t + step.latency_us, lane)));
        }
        true
    }

    fn step_readback(&mut self) -> bool {
        if self.readback.is_empty() {
            if self.readback_n >= self.encounters {
                return false;
            }
            self.readback = read_back(self.readback_n).into();
            self.readback_n += 1;
        }
        let Some(step) = self.readback.pop_front() else {
            return true;
        };
        let t = self.time_us + 100;
        let process = u64::MAX / 2;
        let invoke = self.emit(t, process, Event::Invoke(step.op));
        let end = finish(step.end, invoke, step.latency_us);
        self.emit(t + step.latency_us, process, end);
        true
    }
}

fn finish(end: Event, invoke: u64, latency_us: u64) -> Event {
    let fill = |mut c: Completion| {
        c.invoke = invoke;
        c.latency_us = latency_us;
        c
    };
    match end {
        Event::Ok(c) => Event::Ok(fill(c)),
        Event::Fail(c) => Event::Fail(fill(c)),
        Event::Info(c) => Event::Info(fill(c)),
        other => other,
    }
}

impl Iterator for History {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        while self.out.is_empty() {
            if !self.heap.is_empty() {
                self.step_load();
            } else if !self.step_readback() {
                return None;
            }
        }
        self.out.pop_front()
    }
}

/// Wraps the generator, timing it in batches so the check's own time can be told apart.
struct Timed {
    inner: History,
    buffer: VecDeque<Record>,
    generating: std::time::Duration,
}

impl Timed {
    fn new(records: u64) -> Timed {
        Timed {
            inner: History::new(records),
            buffer: VecDeque::with_capacity(4096),
            generating: std::time::Duration::ZERO,
        }
    }
}

impl Iterator for &mut Timed {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.buffer.is_empty() {
            let started = Instant::now();
            self.buffer.extend(self.inner.by_ref().take(4096));
            self.generating += started.elapsed();
        }
        self.buffer.pop_front()
    }
}

/// The findings the generator planted, by kind, for `records` records.
fn planted(records: u64) -> BTreeMap<check::Kind, u64> {
    let mut out = BTreeMap::new();
    let mut add = |k: check::Kind| *out.entry(k).or_insert(0) += 1;
    for n in 0..(records / PER_ENCOUNTER).max(1) {
        if fate(n, 1) == Fate::Ok && stale(n) {
            add(check::Kind::StaleRead);
        }
        for k in 0..8 {
            let f = fate(n, k);
            let present = matches!(f, Fate::Ok | Fate::Info(true)) && !lost(n, k);
            if f == Fate::Ok && lost(n, k) {
                add(check::Kind::LostWrite);
            }
            if present && corrupted(n, k) {
                add(check::Kind::CorruptedWrite);
            }
            if present && f == Fate::Info(true) {
                add(check::Kind::CommittedDespiteError);
            }
        }
    }
    out
}

fn options() -> Options {
    Options {
        held_from_search: Vec::new(),
        expected_changes: BTreeMap::new(),
        harness_system_prefix: "urn:fhirsurge:".into(),
    }
}

/// Resets the peak resident set size (Linux), so each measurement has its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn sizes() -> Vec<u64> {
    std::env::var("FHIRSURGE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![1_000_000, 3_000_000, 10_000_000])
}

fn main() {
    let sizes = sizes();
    println!(
        "{:>11} {:>9} {:>9} {:>12} {:>9} {:>9} {:>9}",
        "records", "gen s", "check s", "check rec/s", "peak MiB", "findings", "idents"
    );
    for &n in &sizes {
        reset_peak();
        let mut timed = Timed::new(n);
        let started = Instant::now();
        let out = check::check(&mut timed, &options());
        let total = started.elapsed().as_secs_f64();
        let gen_s = timed.generating.as_secs_f64();
        let check_s = (total - gen_s).max(1e-9);
        let count = out.stats.records;
        println!(
            "{count:>11} {gen_s:>9.2} {check_s:>9.2} {:>12.0} {:>9.0} {:>9} {:>9}",
            count as f64 / check_s,
            peak_mib(),
            out.findings.len(),
            out.stats.identifiers,
        );
        let planted = planted(n);
        let verdict = if planted == out.counts {
            "as planted"
        } else {
            "MISMATCH"
        };
        eprintln!("  found {:?} ({verdict}: planted {planted:?})", out.counts);
    }
    if let Some(&largest) = sizes.iter().max() {
        parse_and_check(largest);
    }
}

/// Writes the largest history the way a run does (zstd-compressed JSON lines), then times
/// reading it back and checking it.
fn parse_and_check(n: u64) {
    let dir = std::env::temp_dir().join(format!("fhirsurge-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(fhirsurge::history::FILE);
    let written = write_history(&path, n);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    reset_peak();
    let started = Instant::now();
    let Ok(reader) = Reader::open(&path) else {
        return;
    };
    let read = std::cell::Cell::new(0u64);
    let records = reader
        .map_while(Result::ok)
        .inspect(|_| read.set(read.get() + 1));
    let out = check::check(records, &options());
    let s = started.elapsed().as_secs_f64();
    let read = read.get();
    println!(
        "parse+check of {read} records ({:.2} GB compressed history): {s:.2} s, {:.0} records/s, peak {:.0} MiB, {} findings{}",
        bytes as f64 / 1e9,
        read as f64 / s,
        peak_mib(),
        out.findings.len(),
        if read == written {
            String::new()
        } else {
            format!(" — MISMATCH: {written} written")
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn write_history(path: &Path, n: u64) -> u64 {
    let Ok(mut w) = Writer::create(path) else {
        return 0;
    };
    let mut count = 0;
    for r in History::new(n) {
        if w.write(&r).is_err() {
            break;
        }
        count += 1;
    }
    let _ = w.finish();
    count
}
