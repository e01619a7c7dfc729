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

/// Findings of `kind` as (type, id) pairs, and ledger entries of `fault` likewise.
fn pairs_found(r: &fhirsurge::report::Report, kind: Kind) -> Vec<(String, String)> {
    let mut v: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| (f.resource_type.clone(), f.id.clone().unwrap_or_default()))
        .collect();
    v.sort();
    v
}

fn pairs_injected(entries: &[Entry], kind: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| {
            (
                e.resource_type.clone().unwrap_or_default(),
                e.id.clone().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_duplicated_notifications_are_each_reported_and_nothing_else() {
    let faults = r#"
[[faults]]
kind = "notify_drop"
probability = 0.2
[[faults]]
kind = "notify_dup"
probability = 0.2
"#;
    let ran = run(&scenario(&format!("{SUBSCRIPTIONS}{faults}"))).await;
    let r = &ran.report;
    let truth = ledger(&ran.dir);
    let dropped = pairs_injected(&truth, "notify_drop");
    let duplicated = pairs_injected(&truth, "notify_dup");
    assert!(!dropped.is_empty() && !duplicated.is_empty(), "{truth:?}");
    assert_eq!(pairs_found(r, Kind::MissedNotification), dropped);
    assert_eq!(pairs_found(r, Kind::DuplicateNotification), duplicated);
    assert_eq!(pairs_found(r, Kind::UnexpectedNotification), vec![]);
    let n = r.notifications.as_ref().unwrap();
    // Drops in the topic subscription leave gaps in its event numbers; the mock keeps
    // every event, so `$events` recovers each gap it was asked about.
    let recovered = Some(fhirsurge::vocab::notification::Recovery::Recovered);
    assert!(!n.gaps.is_empty());
    assert!(
        n.gaps.iter().all(|g| g.recovery == recovered),
        "{:?}",
        n.gaps
    );
    assert!(!r.passed, "missed notifications fail the SLO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_makes_the_server_retry_and_nothing_is_lost() {
    let faults = r#"
[[faults]]
kind = "receiver_error"
probability = 0.1
[[faults]]
kind = "receiver_reset"
probability = 0.05
"#;
    // A timeout longer than the mock's retry span (0.1 + 0.2 + 0.4 + 0.8 + 1.6 s): a
    // notification is lost only if all six attempts fail (0.15^6 each).
    let subs = SUBSCRIPTIONS.replace("1500ms", "4s");
    let ran = run(&scenario(&format!("{subs}{faults}"))).await;
    let r = &ran.report;
    let n = r.notifications.as_ref().unwrap();
    let truth = ledger(&ran.dir);
    let injected = truth
        .iter()
        .filter(|e| e.kind.starts_with("receiver_"))
        .count() as u64;
    assert!(injected > 0);
    assert_eq!(
        n.refused, injected,
        "every refused delivery is in the ledger"
    );
    assert!(n.redelivered > 0, "{n:?}");
    assert_eq!(n.notified, n.expected, "{n:?}");
    assert!(counts(r).is_empty(), "{:?}", r.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_alerts_scenario_rides_out_its_receiver_outage() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/alerts.toml");
    let mut s = fhirsurge::scenario::Scenario::load(&path).unwrap();
    s.apply(&fhirsurge::scenario::Overrides {
        duration: Some(std::time::Duration::from_secs(4)),
        ..Default::default()
    })
    .unwrap();
    let ran = run(&s).await;
    let r = &ran.report;
    let n = r.notifications.as_ref().unwrap();
    assert!(n.measured && n.expected > 0, "{n:?}");
    assert!(counts(r).is_empty(), "{:?}", r.findings);
    assert!(r.passed, "{:?}", r.slo);
    crate::run::assert_valid_report(&ran.dir.join("report.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_gives_up_after_one_failure_loses_exactly_those_notifications() {
    let faults = r#"
[[faults]]
kind = "notify_give_up"
[[faults]]
kind = "receiver_error"
probability = 0.2
"#;
    let ran = run(&scenario(&format!("{SUBSCRIPTIONS}{faults}"))).await;
    let r = &ran.report;
    let given_up = pairs_injected(&ledger(&ran.dir), "notify_give_up");
    assert!(!given_up.is_empty());
    assert_eq!(pairs_found(r, Kind::MissedNotification), given_up);
    assert_eq!(pairs_found(r, Kind::DuplicateNotification), vec![]);
    assert_eq!(pairs_found(r, Kind::UnexpectedNotification), vec![]);
}

/// A test CA and a receiver certificate it signed for `localhost` and `127.0.0.1`, as
/// PEM files in `dir`: (cert, key, ca).
fn receiver_certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "fhirsurge receiver test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let files = [
        ("receiver.pem", cert.pem()),
        ("receiver-key.pem", key.serialize_pem()),
        ("ca.pem", ca_cert.pem()),
    ];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    })
}

fn with_tls(cert: &std::path::Path, key: &std::path::Path, ca: Option<&std::path::Path>) -> String {
    let mut tls = format!(
        "tls = {{ cert_file = {:?}, key_file = {:?}",
        cert.display().to_string(),
        key.display().to_string()
    );
    if let Some(ca) = ca {
        tls.push_str(&format!(", ca_file = {:?}", ca.display().to_string()));
    }
    tls.push_str(" }\n");
    SUBSCRIPTIONS.replace("[subscriptions]\n", &format!("[subscriptions]\n{tls}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_delivers_over_https_to_a_receiver_whose_ca_it_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, ca] = receiver_certificates(dir.path());
    let ran = run(&short(&with_tls(&cert, &key, Some(&ca)), 1.0)).await;
    let r = &ran.report;
    let n = r.notifications.as_ref().expect("judged");
    assert!(n.measured && n.expected > 5, "{n:?}");
    assert_eq!(n.notified, n.expected, "{n:?}");
    assert!(counts(r).is_empty(), "{:?}", r.findings);
    let row = r
        .scorecard
        .iter()
        .find(|q| q.id == "notification_integrity");
    assert_eq!(
        row.map(|q| q.verdict),
        Some(fhirsurge::report::Verdict::Pass)
    );
    assert!(row.unwrap().evidence[1].contains("p50"), "{row:?}");
    assert_eq!(junit_case(&ran.dir, "notification_integrity"), "pass");
}

/// A scenario of [`SUBSCRIPTIONS`] and `extra`, with a load of `seconds`.
fn short(text: &str, seconds: f64) -> fhirsurge::scenario::Scenario {
    let mut s = scenario(text);
    s.apply(&fhirsurge::scenario::Overrides {
        duration: Some(std::time::Duration::from_secs_f64(seconds)),
        ..Default::default()
    })
    .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_receiver_s_ca_nothing_is_measured_and_an_asked_objective_fails() {
    // Without the CA the mock cannot verify the receiver: the handshake never succeeds,
    // no subscription becomes active, and notifications are not measured (never passed).
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, _] = receiver_certificates(dir.path());
    let plain =
        with_tls(&cert, &key, None).replace("activation = \"3s\"", "activation = \"500ms\"");
    let ran = run(&short(&plain, 0.3)).await;
    let n = ran.report.notifications.as_ref().expect("judged");
    assert!(!n.measured, "{n:?}");
    assert!(
        n.reason.as_deref().unwrap().contains("never became active"),
        "{n:?}"
    );
    let row = ran
        .report
        .scorecard
        .iter()
        .find(|q| q.id == "notification_integrity");
    assert_eq!(
        row.map(|q| q.verdict),
        Some(fhirsurge::report::Verdict::NotMeasured)
    );
    assert_eq!(junit_case(&ran.dir, "notification_integrity"), "skipped");
    assert_eq!(junit_case(&ran.dir, "missed_notification <= 0"), "skipped");

    // Asked for by name, an objective that could not be measured fails: in the SLO
    // table, the scorecard and JUnit alike.
    let asked = format!("{plain}\n[slo]\nfindings = {{ missed_notification = 0 }}\n");
    let ran = run(&short(&asked, 0.3)).await;
    let row = ran
        .report
        .scorecard
        .iter()
        .find(|q| q.id == "notification_integrity");
    assert_eq!(
        row.map(|q| q.verdict),
        Some(fhirsurge::report::Verdict::Fail),
        "{row:?}"
    );
    assert!(!ran.report.passed);
    assert_eq!(junit_case(&ran.dir, "notification_integrity"), "failure");
    assert_eq!(junit_case(&ran.dir, "missed_notification <= 0"), "failure");
    assert_eq!(
        junit_case(&ran.dir, "duplicate_notification <= 0"),
        "skipped"
    );
}

/// How the JUnit test case whose name starts with `name` ended: failure, skipped or pass.
fn junit_case(dir: &std::path::Path, name: &str) -> &'static str {
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .find(|n| {
            let full = n.attribute("name").unwrap_or_default();
            full.starts_with(name) && n.attribute("classname") != Some("fhirsurge.consistency")
        })
        .unwrap_or_else(|| panic!("no test case `{name}` in {xml}"));
    let has = |tag: &str| case.children().any(|c| c.has_tag_name(tag));
    match (has("failure"), has("skipped")) {
        (true, _) => "failure",
        (_, true) => "skipped",
        _ => "pass",
    }
}

/// A run with `notify_delay = 200ms` and `users` closed-model users (no think time).
async fn delayed(users: usize) -> crate::run::Ran {
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
    let ran = delayed(8).await;
    let n = ran.report.notifications.as_ref().unwrap();
    eprintln!("notify_delay 200 ms, 8 users: {:?}", n.latency);
    assert!(n.measured && n.latency.samples > 20, "{n:?}");
    assert!(counts(&ran.report).is_empty(), "{:?}", ran.report.findings);
}

/// The accuracy goal: the reported p50 within [delay, delay + 10 ms]. A wall-clock
/// bound, so not in the default suite: it holds on a quiet 2-core machine with 1 and 8
/// users (p50 200.9-201.9 ms with 8), not when the machine itself is late (a full
/// parallel suite plus other builds, load average 13: 210 ms with 1 user, 213-219 ms
/// with 8 — a paced open model at 25/s did no better, so the machine, not the load the
/// test makes, was late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing accuracy, needs a quiet machine: cargo test --test it -- --ignored notify::an_injected_delay_is"]
async fn an_injected_delay_is_the_reported_latency_with_one_and_eight_users() {
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
        assert!(counts(&ran.report).is_empty(), "{:?}", ran.report.findings);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_lost_after_the_last_delivered_one_are_found_by_status_and_replayed() {
    // Every Condition event from 1 s on is lost: no later event number shows the gap,
    // only `$status` (events since the start) does.
    let faults = r#"
[[faults]]
kind = "notify_drop"
resource_types = ["Condition"]
from = "1s"
"#;
    let ran = run(&scenario(&format!("{SUBSCRIPTIONS}{faults}"))).await;
    let r = &ran.report;
    let dropped = pairs_injected(&ledger(&ran.dir), "notify_drop");
    assert!(!dropped.is_empty());
    assert_eq!(pairs_found(r, Kind::MissedNotification), dropped);
    let n = r.notifications.as_ref().unwrap();
    let tail: Vec<_> = n
        .gaps
        .iter()
        .filter(|g| g.detail.contains("$status reported"))
        .collect();
    assert_eq!(tail.len(), 1, "{:?}", n.gaps);
    let lost: u64 = n.gaps.iter().map(|g| g.to - g.from + 1).sum();
    assert_eq!(lost, dropped.len() as u64, "{:?}", n.gaps);
    assert_eq!(
        tail[0].recovery,
        Some(fhirsurge::vocab::notification::Recovery::Recovered),
        "{:?}",
        n.gaps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_subscription_that_asks_for_heartbeats_gets_them() {
    let subs = SUBSCRIPTIONS
        .replace(
            "payload = \"id_only\"",
            "payload = \"id_only\"\nheartbeat_period = \"1s\"",
        )
        .replace("1500ms", "3s");
    let ran = run(&short(&subs, 1.0)).await;
    let r = &ran.report;
    let n = r.notifications.as_ref().unwrap();
    let topic = n
        .subscriptions
        .iter()
        .find(|s| s.name == "conditions")
        .unwrap();
    let h = topic.heartbeat.as_ref().expect("asked for heartbeats");
    assert_eq!(h.period_ms, 1000);
    // The load writes Conditions without pause; once it stops, the subscription is
    // quiet for the 3 s timeout and the server owes a heartbeat every second of it.
    assert!(h.received >= 1, "{h:?}");
    assert!(h.kept, "{h:?}");
    let finished = n
        .subscriptions
        .iter()
        .find(|s| s.name == "finished")
        .unwrap();
    assert!(finished.heartbeat.is_none(), "not asked");
    assert!(counts(r).is_empty(), "{:?}", r.findings);
    crate::run::assert_valid_report(&ran.dir.join("report.json"));
}

/// An Encounter with a harness identifier.
fn encounter(value: &str, status: &str) -> serde_json::Value {
    serde_json::json!({"resourceType": "Encounter", "status": status,
        "class": {"code": "AMB"},
        "identifier": [{"system": "urn:fhirsurge:it", "value": value}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_write_is_tagged_entry_by_entry_as_the_server_notifies() {
    use fhirsurge::fhir::{Client, Recorder, Settings, Tls, manage::Tagger};
    use fhirsurge::notify::{self, Criteria};
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let ehr = fhirsurge::mock::Ehr::new(fhirsurge::mock::Config::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(fhirsurge::mock::serve(listener, ehr, shutdown.clone()));
    let (tx, mut deliveries) = tokio::sync::mpsc::channel(64);
    let receiver = notify::Receiver::new(notify::Config {
        seed: 1,
        start,
        secret: "s3cret".into(),
        prefix: "urn:fhirsurge:".into(),
        faults: Vec::new(),
        ledger: fhirsurge::fault::Ledger::new(start),
        deliveries: tx,
        tls: None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/notify/finished", listener.local_addr().unwrap());
    notify::spawn(listener, receiver, shutdown.clone()).unwrap();
    let (recorder, _notes) = Recorder::new(start, 1024);
    let client = Client::new(
        Settings {
            base: url::Url::parse(&base).unwrap(),
            timeout: Duration::from_secs(5),
            retry: Default::default(),
            harness_prefix: "urn:fhirsurge:".into(),
            prefer: None,
            ledger: None,
            auth: fhirsurge::fhir::auth::Config::None,
            tls: Tls::default(),
        },
        recorder,
    )
    .unwrap();
    let criteria = "Encounter?status=finished";
    let subscription = serde_json::json!({"resourceType": "Subscription", "status": "requested",
        "criteria": criteria, "channel": {"type": "rest-hook", "endpoint": hook,
        "payload": "application/fhir+json", "header": [format!("{}: s3cret", notify::SECRET_HEADER)]}});
    let created = client
        .manage(reqwest::Method::POST, "Subscription", Some(&subscription))
        .await;
    let id = created.body.unwrap()["id"].as_str().unwrap().to_owned();
    // The classic rest-hook handshake is an empty POST; wait for it to activate.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = client
            .manage(reqwest::Method::GET, &format!("Subscription/{id}"), None)
            .await;
        if s.body.as_ref().and_then(|b| b["status"].as_str()) == Some("active") {
            break;
        }
        assert!(Instant::now() < deadline, "never active: {:?}", s.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = Criteria::parse(criteria).unwrap();
    client.set_tagger(Tagger(std::sync::Arc::new(
        move |rt: &str, r: &serde_json::Value| match c.matches(rt, r) {
            true => vec!["finished".to_owned()],
            false => Vec::new(),
        },
    )));
    // A hand-built transaction: two finished Encounters and one in progress.
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": encounter("e1", "finished"), "request": {"method": "POST", "url": "Encounter"}},
        {"resource": encounter("e2", "in-progress"), "request": {"method": "POST", "url": "Encounter"}},
        {"resource": encounter("e3", "finished"), "request": {"method": "POST", "url": "Encounter"}},
    ]});
    let tags = client.entry_tags(&bundle);
    let answer = client
        .manage(reqwest::Method::POST, "", Some(&bundle))
        .await;
    assert!(answer.is_success(), "{answer:?}");
    let entries = answer.body.unwrap()["entry"].as_array().unwrap().clone();
    // What each entry owes, from its resource (the tags) and its response (the id).
    let mut owed: Vec<String> = entries
        .iter()
        .zip(&tags)
        .filter(|(_, t)| t.contains(&"finished".to_owned()))
        .map(|(e, _)| {
            let location = e["response"]["location"].as_str().unwrap();
            location.split('/').nth(1).unwrap().to_owned()
        })
        .collect();
    owed.sort();
    assert_eq!(owed.len(), 2, "{tags:?}");
    let mut notified = Vec::new();
    while notified.len() < owed.len() {
        let n = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
            .await
            .expect("a notification within 10 s")
            .unwrap();
        notified.extend(n.focus.into_iter().map(|f| f.id));
    }
    notified.sort();
    assert_eq!(notified, owed);
    // Nothing else arrives for the in-progress entry.
    let more = tokio::time::timeout(Duration::from_millis(300), deliveries.recv()).await;
    assert!(more.is_err(), "{more:?}");
}
