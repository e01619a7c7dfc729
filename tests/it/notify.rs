//! Notification integrity, whole runs against the mock EHR on loopback: the mock delivers
//! rest-hook and Backport IG notifications over real HTTP to the run's receiver; its
//! `notify_*` faults and the receiver's own faults are the ground truth the judged
//! findings are scored against.

use std::collections::BTreeMap;

use fhirsurge::check::Kind;
use fhirsurge::fault::Entry;

use crate::run::{run, scenario};

const SUBSCRIPTIONS: &str = r#"
[subscriptions]
timeout = "1500ms"
activation = "3s"
[[subscriptions.subscribe]]
name = "finished"
criteria = "Encounter?status=finished"
payload = "full_resource"
[[subscriptions.subscribe]]
name = "conditions"
form = "topic"
topic = "http://example.org/fhir/SubscriptionTopic/condition-written"
criteria = "Condition"
payload = "id_only"
"#;

fn ledger(dir: &std::path::Path) -> Vec<Entry> {
    serde_json::from_slice(&std::fs::read(dir.join("ledger.json")).unwrap()).unwrap()
}

fn counts(r: &fhirsurge::report::Report) -> BTreeMap<Kind, u64> {
    r.finding_counts.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_every_notification_arrives_once_and_nothing_else() {
    let ran = run(&scenario(SUBSCRIPTIONS)).await;
    let r = &ran.report;
    let n = r.notifications.as_ref().expect("judged");
    assert!(n.measured, "{n:?}");
    assert!(n.expected > 5, "{n:?}");
    assert_eq!(n.notified, n.expected, "{n:?}");
    assert!(counts(r).is_empty(), "{:?}", r.findings);
    assert!(n.latency.p50_ms.is_some());
    assert!(n.gaps.is_empty());
    assert!(r.passed, "{:?}", r.slo);
}
