//! Audit reconciliation and the scope-leak check, scored against the mock's ledger:
//! short real runs with `audit_drop`, `audit_wrong` and `leak` at known rates report
//! every injection under its kind and nothing else; with the faults off, none; against
//! a target whose audit trail is absent or hidden, the verdict says so.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use fhirsurge::check::Kind;
use fhirsurge::fault::Entry;
use fhirsurge::history::{Event, Outcome, Reader};
use fhirsurge::mock::{self, Ehr, audit};
use fhirsurge::report::access::Status;
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;
use tokio_util::sync::CancellationToken;

const KINDS: [Kind; 3] = [Kind::AuditGap, Kind::AuditMismatch, Kind::ScopeLeak];

async fn run_with(url: &str, faults: &str) -> (run::Outcome, tempfile::TempDir) {
    let text = format!(
        r#"
name = "access"
seed = 11
[target]
url = "{url}"
timeout = "5s"
[load]
model = "closed"
users = 2
duration = "3s"
[readback]
settle = "200ms"
[audit]
enabled = true
tolerance = "1s"
{faults}
"#
    );
    let scenario = Scenario::from_str(&text, Path::new("access.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = Options::new(out.path().to_owned());
    (run::execute(&scenario, &options).await.unwrap(), out)
}

/// Invocation index → outcome, from the run's history.
fn outcomes(dir: &Path) -> HashMap<u64, Outcome> {
    let mut out = HashMap::new();
    for r in Reader::open(&dir.join(fhirsurge::history::FILE)).unwrap() {
        match r.unwrap().event {
            Event::Ok(c) => _ = out.insert(c.invoke, Outcome::Ok),
            Event::Fail(c) => _ = out.insert(c.invoke, Outcome::Fail),
            Event::Info(c) => _ = out.insert(c.invoke, Outcome::Info),
            _ => {}
        }
    }
    out
}

fn kind_of(fault: &str) -> Kind {
    match fault {
        "audit_drop" => Kind::AuditGap,
        "audit_wrong" => Kind::AuditMismatch,
        _ => Kind::ScopeLeak,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dropped_or_falsified_event_and_every_leak_is_reported_under_its_kind() {
    let faults = r#"
[[faults]]
kind = "audit_drop"
probability = 0.03
[[faults]]
kind = "audit_wrong"
probability = 0.03
[[faults]]
kind = "leak"
probability = 0.2
"#;
    let (o, _dir) = run_with("mock", faults).await;
    let ledger: Vec<Entry> =
        serde_json::from_slice(&std::fs::read(o.dir.join("ledger.json")).unwrap()).unwrap();
    let ends = outcomes(&o.dir);
    // Injections a client can be held to: on interactions that ended ok.
    let expected: HashSet<(Kind, u64)> = ledger
        .iter()
        .filter_map(|e| {
            let r: u64 = e.request.as_deref()?.parse().ok()?;
            (ends.get(&r) == Some(&Outcome::Ok)).then(|| (kind_of(&e.kind), r))
        })
        .collect();
    let found: HashSet<(Kind, u64)> = o
        .report
        .findings
        .iter()
        .filter(|f| KINDS.contains(&f.kind))
        .map(|f| (f.kind, f.evidence[0]))
        .collect();
    for k in KINDS {
        let n = expected.iter().filter(|(kind, _)| *kind == k).count();
        assert!(n > 0, "no {k:?} injected: {ledger:?}");
    }
    // Every injected interaction is reported, and nothing else; each kind as often as
    // injected. Without a request id in the events, a dropped and a falsified event of
    // two concurrent calls of one type can swap which call is the gap and which the
    // mismatch; the counts still hold.
    let calls = |set: &HashSet<(Kind, u64)>| set.iter().map(|(_, r)| *r).collect::<HashSet<_>>();
    let missed: Vec<_> = calls(&expected)
        .difference(&calls(&found))
        .copied()
        .collect();
    let false_alarms: Vec<_> = calls(&found)
        .difference(&calls(&expected))
        .copied()
        .collect();
    assert!(missed.is_empty(), "missed {missed:?}");
    assert!(false_alarms.is_empty(), "not injected: {false_alarms:?}");
    for k in KINDS {
        let n = |set: &HashSet<(Kind, u64)>| set.iter().filter(|(kind, _)| *kind == k).count();
        assert_eq!(n(&found), n(&expected), "{k:?}");
    }
    // Offline (`fhirsurge check`), the leak check over the history finds the same leaks.
    let (offline, _) = run::access::leaks(&o.dir.join(fhirsurge::history::FILE)).unwrap();
    let online: Vec<_> = o
        .report
        .findings
        .iter()
        .filter(|f| f.kind == Kind::ScopeLeak)
        .cloned()
        .collect();
    assert_eq!(offline, online);
    // Collected without keeping the calls (a run with no audit trail to reconcile), the
    // leak check is the same and nothing is held per interaction.
    let mut lean = fhirsurge::check::access::Collecting::without_calls();
    for r in fhirsurge::history::Reader::open(&o.dir.join(fhirsurge::history::FILE)).unwrap() {
        lean.see(&r.unwrap());
    }
    let lean = lean.finish();
    assert!(lean.calls.is_empty());
    assert_eq!(lean.leaks, offline);
    assert_eq!(lean.leak_stats, o.report.access.leak.stats);
    let a = &o.report.access;
    assert_eq!(a.audit.status, Status::Measured);
    assert_eq!(a.leak.status, Status::Measured);
    assert!(a.audit.patients.touched > 0);
    assert!(a.audit.patients.reconstructable < a.audit.patients.touched);
    let row = o
        .report
        .scorecard
        .iter()
        .find(|q| q.id == "audit_trail")
        .unwrap();
    assert!(row.evidence[0].contains("reconstructable for"), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_faults_off_every_access_is_found_and_nothing_leaks() {
    let (o, _dir) = run_with("mock", "").await;
    let bad: Vec<_> = o
        .report
        .findings
        .iter()
        .filter(|f| KINDS.contains(&f.kind))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    let a = &o.report.access;
    assert_eq!(a.audit.status, Status::Measured);
    assert!(a.audit.stats.matched > 100, "{:?}", a.audit.stats);
    assert_eq!(a.audit.stats.matched, a.audit.stats.expected);
    assert_eq!(a.audit.patients.reconstructable, a.audit.patients.touched);
    let example = a.audit.patients.example.as_ref().unwrap();
    assert!(example.patient.starts_with("urn:fhirsurge:"), "{example:?}");
    assert!(example.accesses.iter().all(|x| x.audit == "found"));
    assert!(a.leak.stats.searches_checked > 0);
}

/// A mock with the given audit exposure on a loopback port; the scenario points at it.
async fn serve(exposure: audit::Exposure) -> (String, CancellationToken) {
    let ehr = Ehr::new(mock::Config {
        audit: audit::Config {
            exposure,
            ..audit::Config::default()
        },
        ..mock::Config::default()
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(mock::serve(listener, ehr, stop.clone()));
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_audit_event_is_not_measured_and_a_hidden_trail_is_not_exposed() {
    let (url, stop) = serve(audit::Exposure::Absent).await;
    let (o, _dir) = run_with(&url, "").await;
    stop.cancel();
    let a = &o.report.access.audit;
    assert_eq!(a.status, Status::NotMeasured);
    assert!(
        a.reason
            .as_deref()
            .unwrap()
            .contains("does not serve AuditEvent"),
        "{a:?}"
    );
    let row = o
        .report
        .scorecard
        .iter()
        .find(|q| q.id == "audit_trail")
        .unwrap();
    assert_eq!(row.verdict.as_str(), "not measured");
    assert!(!o.report.findings.iter().any(|f| f.kind == Kind::AuditGap));

    let (url, stop) = serve(audit::Exposure::Hidden).await;
    let (o, _dir) = run_with(&url, "").await;
    stop.cancel();
    let a = &o.report.access.audit;
    assert_eq!(a.status, Status::NotExposed, "{a:?}");
    assert!(!o.report.findings.iter().any(|f| f.kind == Kind::AuditGap));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_whose_profile_says_audit_is_not_served_is_not_queried() {
    // The mock serves AuditEvent; the Epic profile says Epic does not: it is not asked.
    let (url, stop) = serve(audit::Exposure::default()).await;
    let text = format!(
        r#"
name = "access-epic"
seed = 11
profile = "epic"
[target]
url = "{url}"
timeout = "5s"
[load]
model = "closed"
users = 1
duration = "1s"
[readback]
settle = "100ms"
[audit]
enabled = true
"#
    );
    let scenario = Scenario::from_str(&text, Path::new("access-epic.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = Options::new(out.path().to_owned());
    let o = run::execute(&scenario, &options).await.unwrap();
    stop.cancel();
    let a = &o.report.access.audit;
    assert_eq!(a.status, Status::NotMeasured);
    let reason = a.reason.as_deref().unwrap();
    assert!(
        reason.contains("`epic`") && reason.contains("EPIC-CS"),
        "{reason}"
    );
    let asked = Reader::open(&o.dir.join(fhirsurge::history::FILE))
        .unwrap()
        .filter_map(|r| match r.unwrap().event {
            Event::Invoke(op) => Some(op.resource_type),
            _ => None,
        })
        .filter(|rt| rt == "AuditEvent")
        .count();
    assert_eq!(asked, 0, "AuditEvent was queried");
    // No [auth]: the scope probe says why it did not run.
    let scope = &o.report.access.scope;
    assert_eq!(scope.status, Status::NotMeasured);
    assert!(
        scope.reason.as_deref().unwrap().contains("no [auth]"),
        "{scope:?}"
    );
}
