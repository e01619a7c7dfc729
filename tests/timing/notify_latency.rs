//! Notification latency under an injected delay: the mock holds every notification
//! 200 ms (`notify_delay`), and the reported latency is that delay, with one user and
//! with eight.

use crate::run::{Ran, run, scenario};
use crate::support::SUBSCRIPTIONS;

/// A run with `notify_delay = 200ms` and `users` closed-model users (no think time).
async fn delayed(users: usize) -> Ran {
    let faults = r#"
[[faults]]
kind = "notify_delay"
delay = "200ms"
"#;
    let mut s = scenario(&format!("{SUBSCRIPTIONS}{faults}"));
    s.apply(&fhirsurge::scenario::Overrides {
        users: std::num::NonZeroUsize::new(users),
        ..Default::default()
    })
    .unwrap();
    run(&s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_delay_under_eight_users_is_measured_and_no_finding() {
    let _alone = crate::support::alone().await;
    let ran = delayed(8).await;
    let n = ran.report.notifications.as_ref().unwrap();
    eprintln!("notify_delay 200 ms, 8 users: {:?}", n.latency);
    assert!(n.measured && n.latency.samples > 20, "{n:?}");
    assert!(
        ran.report.finding_counts.is_empty(),
        "{:?}",
        ran.report.findings
    );
}

/// The accuracy goal: the reported p50 within [delay, delay + 10 ms]. A wall-clock
/// bound, so it runs here, alone: it holds on a quiet 2-core machine with 1 and 8 users
/// (p50 200.9-201.9 ms with 8), not when the machine itself is late (inside the `it`
/// binary's parallel suite plus other builds, load average 13: 210 ms with 1 user,
/// 213-219 ms with 8 — a paced open model at 25/s did no better, so the machine, not
/// the load the test makes, was late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_delay_is_the_reported_latency_with_one_and_eight_users() {
    let _alone = crate::support::alone().await;
    for users in [1, 8] {
        let ran = delayed(users).await;
        let n = ran.report.notifications.as_ref().unwrap();
        let p50 = n.latency.p50_ms.unwrap();
        eprintln!("notify_delay 200 ms, {users} users: {:?}", n.latency);
        assert!(n.latency.samples > 20, "{n:?}");
        assert!(
            (200.0..=210.0).contains(&p50),
            "{users} users: p50 {p50} ms for an injected 200 ms ({:?})",
            n.latency
        );
        assert!(
            ran.report.finding_counts.is_empty(),
            "{:?}",
            ran.report.findings
        );
    }
}
