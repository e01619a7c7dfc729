//! The FHIR client against wiremock: outcomes are classified the way the checker needs
//! them, ids and versions are read from whatever the server sends, retries follow policy.

use std::time::{Duration, Instant};

use fhirsurge::fhir::{Client, Ctx, Note, Recorder, Retry, RetryPolicy, Settings};
use fhirsurge::history::{ErrorClass, Event, Interaction, Outcome, Record};
use serde_json::json;
use tokio::sync::mpsc;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn settings(base: &str, retry: Retry) -> Settings {
    Settings {
        base: url::Url::parse(base).unwrap(),
        timeout: Duration::from_millis(500),
        retry,
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: None,
        ledger: None,
        auth: Default::default(),
        tls: Default::default(),
    }
}

fn client(base: &str, retry: Retry) -> (Client, mpsc::Receiver<Note>) {
    let (recorder, rx) = Recorder::new(Instant::now(), 1024);
    (Client::new(settings(base, retry), recorder).unwrap(), rx)
}

fn records(rx: &mut mpsc::Receiver<Note>) -> Vec<Record> {
    let mut out = Vec::new();
    while let Ok(note) = rx.try_recv() {
        if let Some(r) = note.record() {
            out.push(r);
        }
    }
    out
}

fn observation() -> serde_json::Value {
    json!({"resourceType": "Observation", "status": "final",
           "identifier": [{"system": "urn:fhirsurge:t", "value": "o-1"}]})
}

#[tokio::test]
async fn a_201_with_no_body_and_a_relative_location_is_ok_with_its_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fhir/Observation"))
        .and(header_exists("x-fhirsurge-request"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("Location", "Observation/x-9.a/_history/v7")
                .insert_header("ETag", "W/\"v7\""),
        )
        .mount(&server)
        .await;
    let (c, mut rx) = client(&format!("{}/fhir/", server.uri()), Retry::default());
    let reply = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert!(reply.is_ok());
    assert_eq!(reply.id.as_deref(), Some("x-9.a"));
    assert_eq!(reply.version.as_deref(), Some("v7"));
    let recs = records(&mut rx);
    assert!(
        matches!(&recs[0].event, Event::Invoke(op) if op.f == Interaction::Create && op.content.is_some())
    );
    assert!(
        matches!(&recs[1].event, Event::Ok(c) if c.id.as_deref() == Some("x-9.a") && c.invoke == recs[0].index)
    );
}

#[tokio::test]
async fn a_500_after_a_write_is_info_and_a_422_is_fail() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/Observation"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Observation"))
        .respond_with(ResponseTemplate::new(422))
        .mount(&server)
        .await;
    let (c, mut rx) = client(&server.uri(), Retry::default());
    let first = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert_eq!(first.outcome, Some(Outcome::Info));
    assert_eq!(first.error, Some(ErrorClass::ServerError));
    let second = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert_eq!(second.outcome, Some(Outcome::Fail));
    let recs = records(&mut rx);
    assert!(matches!(recs[1].event, Event::Info(_)));
    assert!(matches!(recs[3].event, Event::Fail(_)));
}

#[tokio::test]
async fn a_refused_connection_is_fail_and_a_timeout_is_info() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let (c, _rx) = client(&closed, Retry::default());
    let reply = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert_eq!(
        (reply.outcome, reply.error),
        (Some(Outcome::Fail), Some(ErrorClass::Connect))
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let (c, _rx) = client(&server.uri(), Retry::default());
    let reply = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert_eq!(
        (reply.outcome, reply.error),
        (Some(Outcome::Info), Some(ErrorClass::Timeout))
    );
}

#[tokio::test]
async fn a_404_read_is_an_ok_absent_answer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let (c, _rx) = client(&server.uri(), Retry::default());
    let reply = c.read(Ctx::default(), "Observation", "gone").await;
    assert!(reply.is_ok());
    assert!(reply.seen.is_empty());
}

#[tokio::test]
async fn naive_retries_a_plain_create_but_idempotent_only_does_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let retry = |policy| Retry {
        policy,
        max_attempts: 3,
        backoff: Duration::from_millis(1),
        ..Retry::default()
    };
    let (c, mut rx) = client(&server.uri(), retry(RetryPolicy::Naive));
    let reply = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert_eq!(reply.attempts, 3);
    let recs = records(&mut rx);
    let retries: Vec<Option<u64>> = recs
        .iter()
        .filter_map(|r| match &r.event {
            Event::Invoke(op) => Some(op.retry_of),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        vec![None, Some(recs[0].index), Some(recs[0].index)]
    );

    let (c, _rx) = client(&server.uri(), retry(RetryPolicy::IdempotentOnly));
    let plain = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", false)
        .await;
    assert_eq!(plain.attempts, 1);
    let conditional = c
        .create(Ctx::default(), &observation(), "urn:fhirsurge:t|o-1", true)
        .await;
    assert_eq!(conditional.attempts, 3);
}

#[tokio::test]
async fn search_records_what_it_saw_and_follows_next_as_given() {
    let server = MockServer::start().await;
    let next = format!("{}/weird/page?token=abc", server.uri());
    Mock::given(method("GET"))
        .and(path("/Observation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "next", "url": next}],
            "entry": [{"resource": {"resourceType": "Observation", "id": "a", "meta": {"versionId": "1"},
                        "identifier": [{"system": "urn:fhirsurge:t", "value": "o-1"}]}}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/weird/page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"resourceType": "Bundle", "type": "searchset"})),
        )
        .mount(&server)
        .await;
    let (c, _rx) = client(&server.uri(), Retry::default());
    let reply = c
        .search(
            Ctx::default(),
            "Observation",
            &[("identifier", "urn:fhirsurge:t|o-1")],
            Some("urn:fhirsurge:t|o-1"),
        )
        .await;
    assert_eq!(reply.seen.len(), 1);
    assert_eq!(
        reply.seen[0].identifiers,
        vec!["urn:fhirsurge:t|o-1".to_string()]
    );
    let page = c
        .next_page(
            Ctx::default(),
            "Observation",
            reply.next.as_deref().unwrap(),
        )
        .await;
    assert!(page.is_ok());
}
