//! Scoring the checker against the ground truth: short real runs against the built-in
//! mock EHR (and the fault proxy in front of it), each injection in the run's
//! `ledger.json` matched to a finding of the kind it must cause, and each finding to an
//! injection that explains it. The matching lives here, never in the library: the
//! checker must never read the ledger.
//!
//! An injection and a finding match when they are about the same resource (same
//! resource type, and the same harness identifier or the same server id) and the
//! request the injection touched is among the finding's evidence. A proxy entry names
//! only the request (its history invocation index); who it touched comes from that
//! invocation in the history.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use fhirsurge::check::{Finding, Kind};
use fhirsurge::fault::Entry;
use fhirsurge::history::{Event, Interaction, Op, Reader};
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;

mod network;
mod race;
mod silent;
mod transaction;

/// What one run left behind, for scoring.
struct Run {
    findings: Vec<Finding>,
    ledger: Vec<Entry>,
    /// Invocation index → what it asked for (without the content digest).
    ops: HashMap<u64, Op>,
    encounters: u64,
    workload: fhirsurge::report::Workload,
}

/// The shape of a scoring run.
struct Shape<'a> {
    users: u32,
    seconds: u32,
    seed: u64,
    retry: &'a str,
    settle: &'a str,
    faults: &'a str,
    /// Top-level scenario keys (a `workflow`), or nothing.
    top: &'a str,
}

impl Default for Shape<'_> {
    fn default() -> Self {
        Shape {
            users: 8,
            seconds: 5,
            seed: 7,
            retry: "none",
            settle: "300ms",
            faults: "",
            top: "",
        }
    }
}

/// Runs the scenario in a temporary folder (deleted after) and reads back what scoring
/// needs.
async fn run(shape: &Shape<'_>) -> Run {
    let text = format!(
        r#"
name = "scoring"
seed = {seed}
{top}
[target]
url = "mock"
timeout = "5s"
[load]
model = "closed"
users = {users}
duration = "{seconds}s"
[retry]
policy = "{retry}"
max_attempts = 3
backoff = "20ms"
[readback]
settle = "{settle}"
{faults}
"#,
        seed = shape.seed,
        users = shape.users,
        seconds = shape.seconds,
        retry = shape.retry,
        settle = shape.settle,
        faults = shape.faults,
        top = shape.top,
    );
    let scenario = Scenario::from_str(&text, Path::new("scoring.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = Options::new(out.path().to_owned());
    let outcome = run::execute(&scenario, &options).await.unwrap();
    let ledger_text = std::fs::read(outcome.dir.join("ledger.json")).unwrap();
    let ledger: Vec<Entry> = serde_json::from_slice(&ledger_text).unwrap();
    let mut ops = HashMap::new();
    for record in Reader::open(&outcome.dir.join(fhirsurge::history::FILE)).unwrap() {
        let record = record.unwrap();
        if let Event::Invoke(mut op) = record.event {
            op.content = None;
            ops.insert(record.index, op);
        }
    }
    Run {
        findings: outcome.report.findings,
        ledger,
        ops,
        encounters: outcome.report.summary.encounters,
        workload: outcome.report.workload,
    }
}

/// Who an injection touched.
#[derive(Debug)]
struct Touched {
    resource_type: String,
    identifier: Option<String>,
    id: Option<String>,
    /// The history invocation index of the request touched.
    request: Option<u64>,
}

impl Run {
    fn touched(&self, e: &Entry) -> Touched {
        let request = e.request.as_deref().and_then(|r| r.parse::<u64>().ok());
        let op = request.and_then(|r| self.ops.get(&r));
        Touched {
            resource_type: e
                .resource_type
                .clone()
                .or_else(|| op.map(|o| o.resource_type.clone()))
                .unwrap_or_default(),
            identifier: e
                .identifier
                .clone()
                .or_else(|| op.and_then(|o| o.identifier.clone())),
            id: e.id.clone().or_else(|| op.and_then(|o| o.id.clone())),
            request,
        }
    }
}

/// Whether a finding is about what an injection touched, and names the request.
fn matches(t: &Touched, f: &Finding) -> bool {
    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
    t.resource_type == f.resource_type
        && (same(&t.identifier, &f.identifier) || same(&t.id, &f.id))
        && t.request.is_none_or(|r| f.evidence.contains(&r))
}

/// Which injections of a kind must be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Must {
    Every,
    /// None: the kind causes no finding by itself (and explains none).
    None,
    /// A proxy fault: only those that touched a write the upstream committed (it
    /// answered 201, or 200 to an update). The others touched a read, a write that was
    /// refused, or a conditional create answered with an existing match.
    Committed,
}

/// What an injection kind must cause.
struct Rule {
    /// The ledger kind (`ack_and_drop`, `reset_after`, …).
    kind: &'static str,
    /// The finding kinds that report it.
    found_as: &'static [Kind],
    must: Must,
}

const fn rule(kind: &'static str, found_as: &'static [Kind]) -> Rule {
    let must = if found_as.is_empty() {
        Must::None
    } else {
        Must::Every
    };
    Rule {
        kind,
        found_as,
        must,
    }
}

impl Run {
    /// Whether this injection must be found under its rule.
    fn must_find(&self, e: &Entry, t: &Touched, must: Must) -> bool {
        match must {
            Must::Every => true,
            Must::None => false,
            Must::Committed => {
                let Some(op) = t.request.and_then(|r| self.ops.get(&r)) else {
                    return false;
                };
                let answered = |status: u16| e.detail.contains(&format!("after {status} from"));
                op.f.is_write() && (answered(201) || (op.f == Interaction::Update && answered(200)))
            }
        }
    }
}

const COMMITTED: &[Kind] = &[Kind::CommittedDespiteError];

/// The scoring figures of one ledger kind.
#[derive(Debug, Default)]
struct Figures {
    injected: usize,
    found: usize,
}

/// A run scored against its ledger.
#[derive(Debug, Default)]
struct Score {
    by_kind: BTreeMap<String, Figures>,
    /// Injections that had to be found and were not, with who they touched.
    missed: Vec<(Entry, String)>,
    /// Injections the mock's ledger marks unobservable: no client could judge them,
    /// so they are neither required nor allowed to explain a finding.
    unobservable: Vec<Entry>,
    /// Findings no injection explains.
    unexplained: Vec<Finding>,
    /// Findings per kind.
    findings: BTreeMap<String, usize>,
}

impl Score {
    fn injected(&self, kind: &str) -> usize {
        self.by_kind.get(kind).map_or(0, |f| f.injected)
    }

    /// Fails with everything that did not match.
    fn assert_exact(&self, what: &str) {
        eprintln!("scoring {what}: {self}");
        assert!(
            self.missed.is_empty(),
            "{what}: {} injection(s) not found: {:#?}",
            self.missed.len(),
            self.missed
        );
        assert!(
            self.unexplained.is_empty(),
            "{what}: {} finding(s) no injection explains: {:#?}",
            self.unexplained.len(),
            self.unexplained
        );
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (kind, n) in &self.by_kind {
            write!(f, "{kind}: injected {} found {}; ", n.injected, n.found)?;
        }
        write!(
            f,
            "findings {:?}; unobservable {}, missed {}, unexplained {}",
            self.findings,
            self.unobservable.len(),
            self.missed.len(),
            self.unexplained.len()
        )
    }
}

/// Scores a run: every injection of a kind the rules say must be found has a finding of
/// one of its kinds that matches it; every finding is matched by an injection whose rule
/// names its kind. A ledger kind with no rule fails the scoring: each test says what it
/// expects of every kind it injects. Only observable injections count (the ledger says
/// which are): they must all be found, and only they may explain a finding.
fn score(run: &Run, rules: &[Rule]) -> Score {
    let mut s = Score::default();
    let (observable, unobservable): (Vec<&Entry>, Vec<&Entry>) =
        run.ledger.iter().partition(|e| e.observable);
    s.unobservable = unobservable.into_iter().cloned().collect();
    let touched: Vec<(Touched, &Rule)> = observable
        .iter()
        .map(|e| {
            let r = rules
                .iter()
                .find(|r| r.kind == e.kind)
                .unwrap_or_else(|| panic!("no rule for ledger kind {}: {e:?}", e.kind));
            (run.touched(e), r)
        })
        .collect();
    for (e, (t, r)) in observable.iter().zip(&touched) {
        let fig = s.by_kind.entry(e.kind.clone()).or_default();
        fig.injected += 1;
        let found = run
            .findings
            .iter()
            .any(|f| r.found_as.contains(&f.kind) && matches(t, f));
        if found {
            fig.found += 1;
        } else if run.must_find(e, t, r.must) {
            s.missed.push(((*e).clone(), format!("{t:?}")));
        }
    }
    for f in &run.findings {
        let kind = serde_json::to_value(f.kind).unwrap();
        *s.findings
            .entry(kind.as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
        let explained = touched
            .iter()
            .any(|(t, r)| r.found_as.contains(&f.kind) && matches(t, f));
        if !explained {
            s.unexplained.push(f.clone());
        }
    }
    s
}

/// What each silent fault must cause; `commit`: what a committed write that answered
/// with an error is found as.
fn silent_rules(commit: &'static [Kind]) -> [Rule; 7] {
    [
        rule("ack_and_drop", &[Kind::LostWrite]),
        rule("strip", &[Kind::CorruptedWrite]),
        rule("remap", &[Kind::CorruptedWrite]),
        rule("delayed_visibility", &[]),
        rule("stale_read", &[Kind::StaleRead]),
        rule("commit_then_reset", commit),
        rule("commit_then_500", commit),
    ]
}

/// Fewest injections a scoring run must see to prove anything.
const ENOUGH: usize = 5;
