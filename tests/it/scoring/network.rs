//! Scoring network faults injected by the proxy in front of the mock, whose ledger
//! names only the request touched; and a run without faults.

use fhirsurge::check::Kind;

use super::{COMMITTED, ENOUGH, Must, Rule, Run, Score, Shape, rule, run, score};

/// Network faults in front of the mock, as in `scenarios/flaky-network.toml`: resets
/// after the server answered and 502s after it committed. Every write the upstream
/// committed under a fault is found, and every finding is explained by the fault that
/// touched its request.
async fn flaky(retry: &str) -> (Run, Score) {
    let faults = r#"
[[faults]]
kind = "reset_before"
probability = 0.02
[[faults]]
kind = "reset_after"
probability = 0.03
[[faults]]
kind = "http_status"
status = 502
probability = 0.03
"#;
    let r = run(&Shape {
        retry,
        faults,
        ..Shape::default()
    })
    .await;
    let found_as: &'static [Kind] = if retry == "naive" {
        &[Kind::DuplicateWrite, Kind::CommittedDespiteError]
    } else {
        COMMITTED
    };
    let proxy = |kind| Rule {
        kind,
        found_as,
        must: Must::Committed,
    };
    let s = score(
        &r,
        &[
            rule("reset_before", &[]),
            proxy("reset_after"),
            proxy("http_status"),
        ],
    );
    s.assert_exact(&format!("flaky network, {retry} retries"));
    let committed = r
        .ledger
        .iter()
        .filter(|e| r.must_find(e, &r.touched(e), Must::Committed))
        .count();
    eprintln!("proxy injections on committed writes: {committed}");
    assert!(
        committed >= ENOUGH,
        "{committed} committed writes touched: {s}"
    );
    (r, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_network_with_idempotent_retries_duplicates_nothing() {
    let (r, _) = flaky("idempotent-only").await;
    let duplicates = r
        .findings
        .iter()
        .filter(|f| f.kind == Kind::DuplicateWrite)
        .count();
    assert_eq!(duplicates, 0, "{:#?}", r.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_network_with_naive_retries_duplicates_and_each_is_explained() {
    let (r, _) = flaky("naive").await;
    let duplicates = r
        .findings
        .iter()
        .filter(|f| f.kind == Kind::DuplicateWrite)
        .count();
    assert!(duplicates > 0, "{:#?}", r.findings);
}

/// No faults: a short run shaped like `scenarios/monday-surge.toml` (many users,
/// `idempotent-only` retries) finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_a_surge_finds_nothing() {
    let r = run(&Shape {
        users: 50,
        seconds: 5,
        retry: "idempotent-only",
        settle: "500ms",
        ..Shape::default()
    })
    .await;
    assert!(r.ledger.is_empty(), "{:?}", r.ledger);
    assert!(r.encounters >= 50, "{} encounters", r.encounters);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    eprintln!("scoring no faults: {} encounters, 0 findings", r.encounters);
}
