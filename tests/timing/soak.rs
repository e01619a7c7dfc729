//! Growth-aware soak, short: a run against a mock that slows as it fills (`fill_latency`)
//! shows a significant positive p99 slope per operation and fails `max_p99_growth`; the
//! plain mock shows none. Each load phase lasts 8 s in 1 s windows, with 8 closed-model
//! users: an open model's backlog on a machine too loaded to keep up would itself look
//! like a server slowing down (the nightly soak runs open against a real server).

use std::path::Path;

use fhirsurge::scenario::Scenario;

use crate::run::{assert_valid_report, run};

fn scenario(faults: &str) -> Scenario {
    let text = format!(
        r#"
name = "soak"
seed = 11
workflow = [{{ step = "admit" }}]
[target]
url = "mock"
timeout = "10s"
[load]
model = "closed"
users = 8
duration = "8s"
[readback]
settle = "50ms"
concurrency = 32
[growth]
window = "1s"
[slo]
max_p99_growth = "1ms"
{faults}
"#
    );
    Scenario::from_str(&text, Path::new("soak.toml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_slows_as_it_fills_shows_a_positive_slope() {
    let _alone = crate::support::alone().await;
    let ran = run(&scenario(
        "[[faults]]\nkind = \"fill_latency\"\nlatency = \"1s\"\n",
    ))
    .await;
    let r = &ran.report;
    assert!(r.faults.injected.get("fill_latency").copied().unwrap_or(0) > 0);
    let g = r.growth.as_ref().expect("a growth section");
    assert!(g.measured, "{:?}", g.reason);
    assert_eq!(g.resources_source, "harness");
    assert!(g.resources_held > 0);
    let rising: Vec<&str> = g
        .slopes
        .iter()
        .filter(|s| s.significant && s.p99_ms_per_100k > 0.0)
        .map(|s| s.line.as_str())
        .collect();
    assert!(!rising.is_empty(), "no significant slope: {:#?}", g.slopes);
    let slo = r.slo.iter().find(|s| s.kind == "p99_growth").unwrap();
    assert!(!slo.passed && slo.not_measured.is_none(), "{slo:?}");
    assert!(!r.passed);
    assert_valid_report(&ran.dir.join("report.json"));
    let md = std::fs::read_to_string(ran.dir.join("summary.md")).unwrap();
    assert!(
        md.contains("## Growth") && md.contains("per 100k resources"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_mock_claims_no_significant_growth() {
    let _alone = crate::support::alone().await;
    let ran = run(&scenario("")).await;
    let g = ran.report.growth.as_ref().expect("a growth section");
    assert!(g.measured, "{:?}", g.reason);
    let claimed: Vec<&str> = g
        .slopes
        .iter()
        .filter(|s| s.significant)
        .map(|s| s.line.as_str())
        .collect();
    assert!(claimed.is_empty(), "{claimed:#?}");
}
