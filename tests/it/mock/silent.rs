//! Each silent write-back failure at probability 1: its effect as the harness sees it,
//! and its ledger entry; then determinism and healing.

use std::time::{Duration, Instant};

use fhirsurge::fault::{Entry, Spec};
use fhirsurge::mock::{self, Config, Ehr};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{SYSTEM, observation, patient, spec, start, start_with, transaction, typed};

fn only(entries: &[Entry], kind: &str) -> Entry {
    let found: Vec<&Entry> = entries.iter().filter(|e| e.kind == kind).collect();
    assert_eq!(found.len(), 1, "{entries:#?}");
    found[0].clone()
}

#[tokio::test]
async fn ack_and_drop_answers_201_and_stores_nothing() {
    let m = start(vec![spec("ack_and_drop,probability=1.0")]).await;
    let a = m.post("Patient", &patient("d1"), 17).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.etag.as_deref(), Some("W/\"1\""));
    let id = a.id();
    assert_eq!(
        m.get(&format!("Patient/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|d1")).await, 0);
    let e = only(&m.ledger(), "ack_and_drop");
    assert_eq!(e.fault, "ack_and_drop#0");
    assert_eq!(e.id.as_deref(), Some(id.as_str()));
    assert_eq!(e.identifier.as_deref(), Some("urn:fhirsurge:it|d1"));
    assert_eq!(e.request.as_deref(), Some("17"));
    assert_eq!(e.resource_type.as_deref(), Some("Patient"));
    let over_http = m.get("__fhirsurge/ledger").await.body;
    assert_eq!(over_http[0]["kind"], "ack_and_drop");
    m.ehr.set_faults_enabled(false);
    let later = m.post("Patient", &patient("d2"), 18).await;
    assert_ne!(later.id(), id, "a dropped id is never reused");
    assert_eq!(
        m.get(&format!("Patient/{}", later.id())).await.status,
        StatusCode::OK
    );
    assert_eq!(m.ledger().len(), 1, "healed: no more faults");
}

#[tokio::test]
async fn ack_and_drop_of_an_update_keeps_the_old_version() {
    let m = start(vec![spec("ack_and_drop,probability=1.0")]).await;
    m.ehr.set_faults_enabled(false);
    let id = m.post("Patient", &patient("u1"), 1).await.id();
    m.ehr.set_faults_enabled(true);
    let mut body = m.get(&format!("Patient/{id}")).await.body;
    body["gender"] = json!("male");
    let a = m
        .put(&format!("Patient/{id}"), &body, Some("W/\"1\""))
        .await;
    assert_eq!(
        (a.status, a.etag.as_deref()),
        (StatusCode::OK, Some("W/\"2\""))
    );
    let read = m.get(&format!("Patient/{id}")).await;
    assert_eq!(
        (read.etag.as_deref(), &read.body["gender"]),
        (Some("W/\"1\""), &json!("female"))
    );
}

#[tokio::test]
async fn strip_removes_the_clinical_element() {
    let m = start(vec![spec("strip,probability=1.0")]).await;
    let a = m
        .post("Observation", &observation("s1", "Patient/x", "8867-4"), 5)
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let stored = m.get(&format!("Observation/{}", a.id())).await.body;
    assert!(stored.get("valueQuantity").is_none(), "{stored}");
    assert_eq!(stored["status"], "final");
    let e = only(&m.ledger(), "strip");
    assert_eq!(e.detail, "removed valueQuantity");
    assert_eq!(e.request.as_deref(), Some("5"));
}

#[tokio::test]
async fn remap_changes_the_code() {
    let m = start(vec![spec("remap,probability=1.0")]).await;
    let a = m
        .post("Observation", &observation("r1", "Patient/x", "8867-4"), 6)
        .await;
    let stored = m.get(&format!("Observation/{}", a.id())).await.body;
    assert_eq!(stored["code"]["coding"][0]["code"], "8868-4");
    assert_eq!(only(&m.ledger(), "remap").detail, "code 8867-4 → 8868-4");
    assert_eq!(
        m.total("Observation?code=8868-4").await,
        1,
        "indexed as stored"
    );
}

#[tokio::test]
async fn delayed_visibility_hides_from_search_until_the_delay_passes_or_heal() {
    let m = start(vec![typed("delayed_visibility,delay=1s", &["Observation"])]).await;
    let quick = m
        .post(
            "Observation",
            &observation("v1", "Patient/vis", "8867-4"),
            7,
        )
        .await
        .id();
    assert_eq!(
        m.get(&format!("Observation/{quick}")).await.status,
        StatusCode::OK,
        "readable by id at once"
    );
    let e = only(&m.ledger(), "delayed_visibility");
    assert_eq!(e.id.as_deref(), Some(quick.as_str()));
    assert_eq!(e.detail, "hidden from search for 1s");
    assert_eq!(
        m.total(&format!("Observation?identifier={SYSTEM}|v1"))
            .await,
        0,
        "hidden from search"
    );
    let patient = m.post("Patient", &patient("vis"), 8).await;
    assert!(
        m.get(&format!("Patient/{}", patient.id())).await.status == StatusCode::OK
            && m.ledger().len() == 1,
        "Patient is not filtered in"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while m
        .total(&format!("Observation?identifier={SYSTEM}|v1"))
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "never became visible");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let m = start(vec![spec("delayed_visibility,delay=1h")]).await;
    let slow = m
        .post(
            "Observation",
            &observation("v2", "Patient/vis", "8867-4"),
            8,
        )
        .await
        .id();
    assert_eq!(m.total("Observation?patient=vis").await, 0);
    assert_eq!(
        m.get(&format!("Observation/{slow}")).await.status,
        StatusCode::OK
    );
    let cond = m
        .send(
            m.http
                .post(m.url("Observation"))
                .header("if-none-exist", format!("identifier={SYSTEM}%7Cv2"))
                .json(&observation("v2", "Patient/vis", "8867-4")),
        )
        .await;
    assert_eq!(
        cond.status,
        StatusCode::OK,
        "conditional create still sees it"
    );
    m.ehr.set_faults_enabled(false);
    assert_eq!(
        m.total("Observation?patient=vis").await,
        1,
        "healed: visible at once"
    );
}

#[tokio::test]
async fn stale_read_serves_the_previous_version_and_records_each_serving() {
    let m = start(vec![spec("stale_read,delay=1h")]).await;
    let id = m.post("Patient", &patient("st1"), 1).await.id();
    let mut body = m.get(&format!("Patient/{id}")).await.body;
    body["gender"] = json!("male");
    assert_eq!(
        m.put(&format!("Patient/{id}"), &body, Some("W/\"1\""))
            .await
            .etag
            .as_deref(),
        Some("W/\"2\"")
    );
    assert!(m.ledger().is_empty(), "nothing reached the harness yet");
    for request in [21, 22] {
        let r = m
            .send(
                m.http
                    .get(m.url(&format!("Patient/{id}")))
                    .header("x-fhirsurge-request", request.to_string()),
            )
            .await;
        assert_eq!(
            (r.etag.as_deref(), &r.body["gender"]),
            (Some("W/\"1\""), &json!("female"))
        );
    }
    let entries = m.ledger();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e.kind == "stale_read" && e.detail == "served v1 while v2 is current")
    );
    assert_eq!(
        entries
            .iter()
            .map(|e| e.request.clone().unwrap())
            .collect::<Vec<_>>(),
        ["21", "22"]
    );
    assert_eq!(
        entries[0].identifier.as_deref(),
        Some("urn:fhirsurge:it|st1")
    );
    assert_eq!(
        m.get(&format!("Patient/{id}/_history/2")).await.status,
        StatusCode::OK,
        "vread is not stale"
    );
    m.ehr.set_faults_enabled(false);
    assert_eq!(
        m.get(&format!("Patient/{id}")).await.etag.as_deref(),
        Some("W/\"2\"")
    );
    assert_eq!(m.ledger().len(), 2);
}

/// A stale read served after an update whose answer the mock destroyed (500) is in the
/// ledger, marked unobservable: the client never learned of the newer version.
#[tokio::test]
async fn stale_read_after_a_destroyed_answer_is_unobservable() {
    let m = start(vec![spec("stale_read,delay=1h"), spec("commit_then_500")]).await;
    m.ehr.set_faults_enabled(false);
    let id = m.post("Patient", &patient("st2"), 1).await.id();
    m.ehr.set_faults_enabled(true);
    let mut body = m.get(&format!("Patient/{id}")).await.body;
    body["gender"] = json!("male");
    let answered = m
        .put(&format!("Patient/{id}"), &body, Some("W/\"1\""))
        .await;
    assert_eq!(answered.status, StatusCode::INTERNAL_SERVER_ERROR);
    let read = m.get(&format!("Patient/{id}")).await;
    assert_eq!(read.etag.as_deref(), Some("W/\"1\""), "served stale");
    let stale = only(&m.ledger(), "stale_read");
    assert!(!stale.observable, "{stale:?}");
    assert!(only(&m.ledger(), "commit_then_500").observable);
    let over_http = m.get("__fhirsurge/ledger").await.body;
    let flags: Vec<&Value> = over_http
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["observable"])
        .collect();
    assert!(flags.contains(&&json!(false)) && flags.contains(&&json!(true)));
}

#[tokio::test]
async fn commit_then_reset_resets_the_connection_after_storing() {
    let m = start(vec![spec("commit_then_reset")]).await;
    let err = m
        .http
        .post(m.url("Patient"))
        .header("x-fhirsurge-request", "31")
        .json(&patient("cr1"))
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none() && !err.is_timeout(), "{err:?}");
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|cr1")).await,
        1,
        "committed"
    );
    let e = only(&m.ledger(), "commit_then_reset");
    assert_eq!(e.request.as_deref(), Some("31"));

    // On the wire: not one byte, then RST.
    let addr = m.base.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = patient("cr2").to_string();
    let request = format!(
        "POST /Patient HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|cr2")).await,
        1
    );
}

#[tokio::test]
async fn commit_then_500_stores_and_answers_500() {
    let m = start(vec![spec("commit_then_500")]).await;
    let a = m.post("Patient", &patient("c5"), 41).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.issue(), "exception");
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|c5")).await, 1);
    let e = only(&m.ledger(), "commit_then_500");
    assert_eq!(e.identifier.as_deref(), Some("urn:fhirsurge:it|c5"));
}

#[tokio::test]
async fn partial_transaction_skips_one_create_but_claims_it() {
    let m = start(vec![spec("partial_transaction")]).await;
    let entries: Vec<Value> = (0..3).map(|i| json!({"resource": patient(&format!("pt{i}")), "request": {"method": "POST", "url": "Patient"}})).collect();
    let a = m.post("", &transaction(Value::Array(entries)), 51).await;
    assert_eq!(a.status, StatusCode::OK);
    let mut missing = Vec::new();
    for e in a.body["entry"].as_array().unwrap() {
        assert!(e["response"]["status"].as_str().unwrap().starts_with("201"));
        let id = e["response"]["location"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
            .to_owned();
        if m.get(&format!("Patient/{id}")).await.status == StatusCode::NOT_FOUND {
            missing.push(id);
        }
    }
    assert_eq!(missing.len(), 1);
    let e = only(&m.ledger(), "partial_transaction");
    assert_eq!(e.id.as_ref(), missing.first());
    assert_eq!(e.request.as_deref(), Some("51"));
}

/// Which of `n` sequential creates a fault touched.
async fn touched(seed: u64, n: u64) -> Vec<u64> {
    let spec = Spec::parse_flag("ack_and_drop,probability=0.3").unwrap();
    let m = start_with(Config {
        seed,
        faults: vec![(0, spec)],
        ..Config::default()
    })
    .await;
    for i in 0..n {
        m.post("Patient", &patient(&format!("det{i}")), i).await;
    }
    m.ledger()
        .iter()
        .map(|e| e.request.as_ref().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn the_same_seed_makes_the_same_decisions() {
    let first = touched(42, 60).await;
    assert_eq!(first, touched(42, 60).await);
    assert!((5..=35).contains(&first.len()), "{first:?}");
    assert_ne!(first, touched(43, 60).await);
}

#[tokio::test]
async fn faults_respect_their_resource_types_and_stop_when_healed() {
    let m = start(vec![typed("ack_and_drop", &["Observation"])]).await;
    let p = m.post("Patient", &patient("h1"), 1).await.id();
    assert_eq!(m.get(&format!("Patient/{p}")).await.status, StatusCode::OK);
    let o = m
        .post("Observation", &observation("h1", "Patient/x", "8867-4"), 2)
        .await
        .id();
    assert_eq!(
        m.get(&format!("Observation/{o}")).await.status,
        StatusCode::NOT_FOUND
    );
    m.ehr.set_faults_enabled(false);
    let o = m
        .post("Observation", &observation("h2", "Patient/x", "8867-4"), 3)
        .await
        .id();
    assert_eq!(
        m.get(&format!("Observation/{o}")).await.status,
        StatusCode::OK
    );
    assert_eq!(m.ledger().len(), 1);
}

#[tokio::test]
async fn invalid_fault_specs_are_refused() {
    for flag in [
        "delayed_visibility",
        "stale_read,delay=0s",
        "strip,latency=1s",
        "reset_peer",
    ] {
        // Refused when read, or (a checked fault of another injector) by the mock.
        let Ok(spec) = Spec::parse_flag(flag) else {
            continue;
        };
        assert_eq!(flag, "reset_peer");
        assert!(mock::validate_fault(&spec).is_err(), "{flag}");
        assert!(
            Ehr::new(Config {
                faults: vec![(0, spec)],
                ..Config::default()
            })
            .is_err(),
            "{flag}"
        );
    }
    assert_eq!(
        mock::silent_kinds(),
        [
            "ack_and_drop",
            "ack_and_drop_echo",
            "strip",
            "remap",
            "delayed_visibility",
            "stale_read",
            "commit_then_reset",
            "commit_then_500",
            "partial_transaction",
            "stale_if_match",
            "audit_drop",
            "audit_wrong",
            "leak",
            "fill_latency",
            "scope_bypass",
        ]
    );
}
