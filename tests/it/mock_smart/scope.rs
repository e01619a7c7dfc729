//! The scope-enforcement probe, scored against the mock's ledger: authenticated runs on
//! the in-process mock, whose guard refuses out-of-scope requests unless the
//! `scope_bypass` fault lets one through. Every request let through that succeeded is
//! reported as `scope_not_enforced` (and nothing else is); without the fault the probe
//! is measured with no finding; the probe's requests are in the history under their own
//! phase and the report names the scopes held, never a token.

use std::collections::HashSet;
use std::path::Path;

use fhirsurge::check::Kind;
use fhirsurge::fault::Entry;
use fhirsurge::history::{Event, Interaction, Phase};
use fhirsurge::mock::smart::Algorithm;
use fhirsurge::report::access::Status;
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;

use super::run::history;
use super::{CLIENT, private_key, write};

async fn run_with(dir: &Path, extra: &str) -> run::Outcome {
    let id = write(dir, "client_id", &format!("{CLIENT}\n"));
    let key = write(dir, "key.pem", &private_key(Algorithm::ES384));
    let text = format!(
        r#"
name = "scope-it"
seed = 11
[target]
url = "mock"
timeout = "5s"
[load]
model = "closed"
users = 2
duration = "2s"
[readback]
settle = "100ms"
[auth]
kind = "smart_backend"
client_id_file = "{}"
private_key_file = "{}"
alg = "ES384"
kid = "it-es384"
scopes = ["system/*.cruds"]
{extra}
"#,
        id.display(),
        key.display()
    );
    let s = Scenario::from_str(&text, Path::new("scope-it.toml")).unwrap();
    let out = dir.join("out");
    run::execute(&s, &Options::new(out)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_out_of_scope_request_let_through_is_reported_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let faults = "[[faults]]\nkind = \"scope_bypass\"\nprobability = 0.3\n";
    let o = run_with(dir.path(), faults).await;
    let ledger: Vec<Entry> =
        serde_json::from_slice(&std::fs::read(o.dir.join("ledger.json")).unwrap()).unwrap();
    let bypassed: Vec<&Entry> = ledger.iter().filter(|e| e.kind == "scope_bypass").collect();
    let expected: HashSet<u64> = bypassed
        .iter()
        .filter(|e| e.observable)
        .map(|e| e.request.as_deref().unwrap().parse().unwrap())
        .collect();
    let found: HashSet<u64> = o
        .report
        .findings
        .iter()
        .filter(|f| f.kind == Kind::ScopeNotEnforced)
        .map(|f| f.evidence[0])
        .collect();
    let scope = &o.report.access.scope;
    assert_eq!(scope.status, Status::Measured, "{scope:?}");
    assert!(!expected.is_empty(), "nothing let through: {scope:?}");
    assert!(scope.refused > 0, "nothing refused: {scope:?}");
    assert_eq!(found, expected, "{scope:?} {bypassed:?}");
    assert_eq!(scope.accepted, expected.len() as u64);
    assert_eq!(scope.scopes.as_deref(), Some("system/Patient.rs"));
    for f in o
        .report
        .findings
        .iter()
        .filter(|f| f.kind == Kind::ScopeNotEnforced)
    {
        assert!(
            f.detail.contains("system/Patient.rs") && f.detail.contains("HTTP 2"),
            "{f:?}"
        );
    }
    let tokens = o.dir.join("report.json");
    let text = std::fs::read_to_string(tokens).unwrap();
    assert!(!text.contains(CLIENT), "the client id is not in the report");
    crate::run::assert_valid_report(&o.dir.join("report.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fault_the_probe_is_measured_refused_and_recorded_in_its_own_phase() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_with(dir.path(), "").await;
    let scope = &o.report.access.scope;
    let found = o
        .report
        .findings
        .iter()
        .filter(|f| f.kind == Kind::ScopeNotEnforced)
        .count();
    assert_eq!(found, 0);
    assert_eq!(scope.status, Status::Measured, "{scope:?}");
    assert_eq!((scope.accepted, scope.inconclusive), (0, 0), "{scope:?}");
    assert_eq!(scope.refused, scope.probes);
    assert!(scope.probes >= 3, "{scope:?}");
    // The control request (in scope) went through; every probe was refused with 403.
    assert!(scope.tried[0].in_scope && scope.tried[0].status == Some(200));
    assert!(
        scope.tried[1..]
            .iter()
            .all(|t| !t.in_scope && t.status == Some(403))
    );
    // In the history: the narrower token's request and every probe, under scope_probe.
    let records = history(&o.dir);
    let probe_ops: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Invoke(op) if op.phase == Phase::ScopeProbe => Some(op),
            _ => None,
        })
        .collect();
    assert!(probe_ops.iter().any(|op| op.f == Interaction::Token));
    for t in &scope.tried {
        assert!(
            records.iter().any(|r| r.index == t.invoke
                && matches!(&r.event, Event::Invoke(op) if op.phase == Phase::ScopeProbe)),
            "{t:?}"
        );
    }
    let row = o
        .report
        .scorecard
        .iter()
        .find(|q| q.id == "minimum_necessary")
        .unwrap();
    assert!(
        row.evidence.iter().any(|e| e.contains("0 accepted")),
        "{row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_token_the_server_refuses_leaves_the_probe_not_measured() {
    let dir = tempfile::tempdir().unwrap();
    // The mock grants only system/ scopes: a patient/ scope grants nothing.
    let o = run_with(
        dir.path(),
        "[scope_probe]\nscopes = [\"system/Claim.rs\"]\n",
    )
    .await;
    let scope = &o.report.access.scope;
    assert_eq!(scope.status, Status::Measured, "{scope:?}");
    let dir2 = tempfile::tempdir().unwrap();
    let off = run_with(dir2.path(), "[scope_probe]\nenabled = false\n").await;
    let s = &off.report.access.scope;
    assert_eq!(s.status, Status::NotMeasured);
    assert!(
        s.reason.as_deref().unwrap().contains("enabled = false"),
        "{s:?}"
    );
}
