//! Whole runs against the built-in mock EHR on loopback: the foundation's promise.

use std::path::Path;

use fhirsurge::run::Options;
use fhirsurge::scenario::Scenario;

pub use crate::support::{assert_valid_report, run, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_exercises_every_step_and_finds_nothing() {
    let outcome = run(&scenario("")).await;
    let r = &outcome.report;
    // The default retry policy (none) writes with plain creates.
    for op in [
        "create Patient",
        "create Encounter",
        "search Patient",
        "search Observation",
        "create Observation",
        "create Condition",
        "create MedicationRequest",
        "create DocumentReference",
        "create Claim",
        "update Encounter",
        "read Encounter",
        "search Claim",
        "search Encounter",
    ] {
        let found = r.operations.iter().find(|o| o.op == op).unwrap_or_else(|| {
            let ops: Vec<_> = r.operations.iter().map(|o| &o.op).collect();
            panic!("no `{op}` in {ops:?}")
        });
        assert!(found.count > 0 && found.ok > 0, "{op}: {found:?}");
    }
    assert!(r.summary.encounters > 0);
    assert_eq!(r.summary.fail + r.summary.info, 0, "{:?}", r.summary);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(outcome.dir.join(fhirsurge::history::FILE).exists());
    assert!(outcome.dir.join("report.json").exists());
}

#[tokio::test]
async fn a_target_that_is_not_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/fhir/", listener.local_addr().unwrap());
    drop(listener);
    let mut s = scenario("");
    s.target = fhirsurge::scenario::Target::Url(url::Url::parse(&url).unwrap());
    let out = tempfile::tempdir().unwrap();
    let err = fhirsurge::run::execute(&s, &Options::new(out.path().to_owned()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, fhirsurge::run::Error::Unreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_matches_the_schema_and_a_broken_one_does_not() {
    let outcome = run(&scenario("")).await;
    let path = outcome.dir.join("report.json");
    assert_valid_report(&path);
    let mut broken: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    broken["findings"] = serde_json::json!([{"kind": "lost_writes", "resource_type": "Observation", "id": null, "identifier": null, "detail": "x", "evidence": []}]);
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema.json")).unwrap(),
    )
    .unwrap();
    assert!(
        !jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(&broken)
    );
}

/// The shipped monday-surge scenario, its test plan shortened to seconds: goose takes the
/// plan (it refuses some options next to one), the ramp reaches its users, and the run
/// judges what it drove. Guards the README's main command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monday_surge_with_its_test_plan_ramps_to_its_users() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/monday-surge.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let shipped = r#"test_plan = "200,10s;200,50s;0,0s""#;
    assert!(
        text.contains(shipped),
        "monday-surge's plan changed: update this test"
    );
    let text = text.replace(shipped, r#"test_plan = "12,1s;12,2s;0,0s""#);
    let s = Scenario::from_str(&text, &path).unwrap();
    let outcome = run(&s).await;
    let r = &outcome.report;
    assert!(r.summary.encounters >= 12, "{:?}", r.summary);
    assert_eq!(r.summary.peak_concurrency, 12, "{:?}", r.summary);
    assert_eq!(r.summary.fail + r.summary.info, 0, "{:?}", r.summary);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(fhirsurge::report::slo::all_passed(&r.slo), "{:#?}", r.slo);
}
