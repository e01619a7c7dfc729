//! Whole runs through a hostile front that forwards to the built-in mock and spoils some
//! of its answers: the run ends, the report is written, and nothing the front spoiled
//! becomes a finding.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fhirsurge::history::{self, Event};
use fhirsurge::mock::{self, Config, Ehr};
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::server::{self, Action, Behaviour, Hostile};

/// The mock on loopback; stops when the token drops.
async fn mock() -> (String, tokio_util::sync::DropGuard) {
    let ehr = Ehr::new(Config::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(mock::serve(listener, ehr, shutdown.clone()));
    (base, shutdown.drop_guard())
}

/// Runs 2 s with 2 users against `front`; returns the outcome and every completion detail.
async fn run_against(front: &Hostile) -> (run::Outcome, Vec<String>, tempfile::TempDir) {
    run_with(front, &run::Control::default()).await
}

async fn run_with(
    front: &Hostile,
    control: &run::Control,
) -> (run::Outcome, Vec<String>, tempfile::TempDir) {
    let text = format!(
        r#"
name = "hostile"
seed = 3
[target]
url = "{}"
timeout = "10s"
[load]
model = "closed"
users = 2
duration = "2s"
[readback]
settle = "100ms"
[slo]
error_rate = 1.0
"#,
        front.base
    );
    let scenario = Scenario::from_str(&text, Path::new("hostile.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = Options::new(out.path().to_owned());
    let outcome = run::execute_with(&scenario, &options, control, &Default::default())
        .await
        .unwrap();
    let details = history::Reader::open(&outcome.dir.join(history::FILE))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|r| match r.event {
            Event::Ok(c) | Event::Fail(c) | Event::Info(c) => c.detail,
            _ => None,
        })
        .collect();
    (outcome, details, out)
}

fn no_findings(outcome: &run::Outcome) {
    let r = &outcome.report;
    assert!(r.findings.is_empty(), "false findings: {:#?}", r.findings);
    super::super::run::assert_valid_report(&outcome.dir.join("report.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_spoiled_with_operation_outcomes_and_other_types_are_unverified_never_lost() {
    let (upstream, _mock) = mock().await;
    let n = Arc::new(AtomicU64::new(0));
    let behaviour: Behaviour = Arc::new(move |req| {
        if req.method != "GET" || req.target.contains("metadata") {
            return Action::Forward;
        }
        match n.fetch_add(1, Ordering::Relaxed) % 6 {
            0 | 3 => Action::Send(server::json(
                200,
                &json!({"resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "exception"}]}),
            )),
            1 => Action::Send(server::json(
                200,
                &json!({"resourceType": "Practitioner", "id": "x"}),
            )),
            _ => Action::Forward,
        }
    });
    let front = server::start(behaviour, Some(upstream)).await;
    let (outcome, details, _dir) = run_against(&front).await;
    no_findings(&outcome);
    let checked = &outcome.report.checked;
    assert!(checked.writes_ok > 0, "{checked:?}");
    assert!(checked.identifiers_unverified > 0, "{checked:?}");
    assert!(details.iter().any(|d| d.contains("OperationOutcome, not")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_looping_back_stop_and_links_off_the_target_are_never_followed() {
    let (upstream, _mock) = mock().await;
    let trap = server::start(Arc::new(|_| Action::Forward), None).await;
    let trap_base = trap.base.clone();
    let paged = Arc::new(AtomicU64::new(0));
    let p = paged.clone();
    let behaviour: Behaviour = Arc::new(move |req| {
        // The encounter's own read-back pages through the patient's records.
        if !(req.method == "GET" && req.target.contains("_count=50")) {
            return Action::Forward;
        }
        let next = if req.target.starts_with("/fhir/Condition") {
            format!("{trap_base}Condition?page=2")
        } else {
            // Back to this very page.
            p.fetch_add(1, Ordering::Relaxed);
            format!("http://{}{}", req_host(req), req.target)
        };
        Action::ForwardWith(Box::new(move |mut bundle| {
            bundle["link"] = json!([{"relation": "next", "url": next}]);
            bundle
        }))
    });
    let front = server::start(behaviour, Some(upstream)).await;
    let (outcome, details, _dir) = run_against(&front).await;
    no_findings(&outcome);
    assert_eq!(
        trap.connections.load(Ordering::Relaxed),
        0,
        "followed off the target"
    );
    let off = details
        .iter()
        .filter(|d| d.contains("another origin"))
        .count();
    let looped = details.iter().filter(|d| d.contains("loops back")).count();
    assert!(off > 0 && looped > 0, "off {off}, looped {looped}");
    // Each looping search was read twice (the page and its one repeat), not to the cap.
    let paged = paged.load(Ordering::Relaxed);
    assert!(
        paged <= 2 * looped as u64 + 2,
        "{paged} pages, {looped} loops, {details:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_server_cannot_hold_the_load_phase_past_its_end_plus_the_grace() {
    let (upstream, _mock) = mock().await;
    let behaviour: Behaviour = Arc::new(|req| {
        if req.method == "POST" && req.target.contains("Condition") {
            Action::Trickle {
                head: server::head(201, &[], Some(100)),
                len: 100,
                every: std::time::Duration::from_secs(1),
            }
        } else {
            Action::Forward
        }
    });
    let front = server::start(behaviour, Some(upstream)).await;
    let control = run::Control {
        bounds: run::Bounds {
            grace: std::time::Duration::from_millis(500),
            ..run::Bounds::default()
        },
        ..run::Control::default()
    };
    let (outcome, details, _dir) = run_with(&front, &control).await;
    no_findings(&outcome);
    let r = &outcome.report;
    // Every user sat in a 10 s trickle when the phase ended: cut off, not waited out.
    assert!(r.summary.cut_off_encounters > 0, "{:?}", r.summary);
    assert!(!r.partial, "the run went its course");
    assert!(details.iter().any(|d| d == fhirsurge::fhir::UNANSWERED));
}

fn req_host(req: &server::Req) -> String {
    req.headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}
