//! Racing writers scored: two `If-Match` updates of one encounter from one version, sent
//! at once. The mock honouring `If-Match` refuses one (no finding); with `stale_if_match`
//! it applies the stale one at a known rate, and every such acceptance is a
//! `lost_update` with both writes' evidence — and nothing else is reported.

use fhirsurge::check::Kind;

use super::{ENOUGH, Shape, rule, run, score};

const RACE: &str = r#"workflow = [{ step = "admit" }, { step = "contended_update" }]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_honouring_if_match_refuses_one_writer_and_the_loser_retries() {
    let r = run(&Shape {
        users: 4,
        seconds: 2,
        retry: "idempotent-only",
        top: RACE,
        ..Shape::default()
    })
    .await;
    let races = r.workload.races.as_ref().expect("races counted");
    assert!(races.run >= ENOUGH as u64, "{races:?}");
    assert_eq!(races.both_acknowledged, 0, "{races:?}");
    assert_eq!(races.lost_updates, 0);
    // Sent at once, one writer is usually refused (or the two did not overlap at all).
    assert!(races.refused > 0, "{races:?}");
    assert!(races.loser_retries_ok > 0, "{races:?}");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let check = &r.workload.checks[0];
    assert_eq!((check.kind.as_str(), check.measured), ("lost_update", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stale_if_match_accepted_is_a_lost_update_and_nothing_else() {
    let r = run(&Shape {
        users: 4,
        seconds: 3,
        top: RACE,
        faults: "[[faults]]\nkind = \"stale_if_match\"\nprobability = 0.3\n",
        ..Shape::default()
    })
    .await;
    let s = score(&r, &[rule("stale_if_match", &[Kind::LostUpdate])]);
    s.assert_exact("stale_if_match");
    assert!(s.injected("stale_if_match") >= ENOUGH, "{s}");
    let races = r.workload.races.as_ref().unwrap();
    assert!(races.both_acknowledged >= ENOUGH as u64, "{races:?}");
    assert_eq!(races.lost_updates as usize, r.findings.len());
    for f in &r.findings {
        // Both writes: each one's invocation and completion.
        assert!(f.evidence.len() >= 4, "{f:?}");
    }
}
