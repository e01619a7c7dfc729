//! Hostile servers, one behaviour each, against the real client and whole runs: every
//! answer is a classified outcome with its reason in the history — never a panic, a hang
//! or a false finding.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fhirsurge::fhir::{Client, Ctx, Note, Recorder, Reply, Retry, Settings};
use fhirsurge::history::{Completion, ErrorClass, Event, Outcome};
use serde_json::{Value, json};
use tokio::sync::mpsc;

mod runs;
mod server;

use server::{Action, Hostile, Req, head, http};

fn client(base: &str, timeout: Duration) -> (Client, mpsc::Receiver<Note>) {
    let (recorder, rx) = Recorder::new(Instant::now(), 1 << 16);
    let settings = Settings {
        base: url::Url::parse(base).unwrap(),
        timeout,
        retry: Retry::default(),
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: None,
        ledger: None,
        auth: Default::default(),
        tls: Default::default(),
    };
    (Client::new(settings, recorder).unwrap(), rx)
}

/// The completions recorded so far.
fn completions(rx: &mut mpsc::Receiver<Note>) -> Vec<(Outcome, Completion)> {
    let mut out = Vec::new();
    while let Ok(note) = rx.try_recv() {
        match note.record().map(|r| r.event) {
            Some(Event::Ok(c)) => out.push((Outcome::Ok, c)),
            Some(Event::Fail(c)) => out.push((Outcome::Fail, c)),
            Some(Event::Info(c)) => out.push((Outcome::Info, c)),
            _ => {}
        }
    }
    out
}

async fn serve(f: impl Fn(&Req) -> Action + Send + Sync + 'static) -> Hostile {
    server::start(Arc::new(f), None).await
}

fn observation() -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "identifier": [{"system": "urn:fhirsurge:h", "value": "o-1"}]})
}

const ID: &str = "urn:fhirsurge:h|o-1";

/// A write and a read against the same behaviour.
async fn write_and_read(c: &Client) -> (Reply, Reply) {
    let ctx = Ctx::default();
    let write = c.create(ctx, &observation(), ID, false).await;
    let read = c.read(ctx, "Observation", "o1").await;
    (write, read)
}

/// The detail of the completion of the invocation `index`.
fn detail(done: &[(Outcome, Completion)], index: u64) -> String {
    done.iter()
        .find(|(_, c)| c.invoke == index)
        .and_then(|(_, c)| c.detail.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_body_that_is_not_json_makes_a_write_info_and_a_read_fail_with_the_reason() {
    let s = serve(|req| {
        let status = if req.method == "POST" { 201 } else { 200 };
        Action::Send(http(status, &[], b"<html>gateway says hi</html>"))
    })
    .await;
    let (c, mut rx) = client(&s.base, Duration::from_secs(5));
    let (write, read) = write_and_read(&c).await;
    assert_eq!(write.outcome, Some(Outcome::Info));
    assert_eq!(write.error, Some(ErrorClass::BadResponse));
    assert_eq!(read.outcome, Some(Outcome::Fail));
    assert_eq!(read.error, Some(ErrorClass::BadResponse));
    let done = completions(&mut rx);
    assert!(detail(&done, write.index).contains("not JSON"), "{done:?}");
    assert!(detail(&done, read.index).contains("not JSON"), "{done:?}");
}

#[tokio::test]
async fn a_truncated_body_makes_a_write_info_and_a_read_fail() {
    let s = serve(|req| {
        let status = if req.method == "POST" { 201 } else { 200 };
        let mut bytes = head(status, &[], Some(400));
        bytes.extend_from_slice(br#"{"resourceType": "Observation", "id": "o1", "sta"#);
        Action::SendClose(bytes)
    })
    .await;
    let (c, mut rx) = client(&s.base, Duration::from_secs(5));
    let (write, read) = write_and_read(&c).await;
    assert_eq!(write.outcome, Some(Outcome::Info), "{write:?}");
    assert_eq!(read.outcome, Some(Outcome::Fail), "{read:?}");
    assert_eq!(read.error, Some(ErrorClass::Io));
    let done = completions(&mut rx);
    assert!(detail(&done, write.index).contains("broke off"), "{done:?}");
}

#[tokio::test]
async fn a_body_over_max_body_drops_the_connection_whether_announced_or_not() {
    let announced = serve(|_| Action::Flood {
        head: head(201, &[], Some(8 << 20)),
        total: 8 << 20,
    })
    .await;
    let unannounced = serve(|_| Action::Flood {
        head: head(200, &[("connection", "close")], None),
        total: 8 << 20,
    })
    .await;
    for s in [&announced, &unannounced] {
        let (c, mut rx) = client(&s.base, Duration::from_secs(10));
        let c = c.with_max_body(256 << 10);
        let (write, read) = write_and_read(&c).await;
        assert_eq!(write.outcome, Some(Outcome::Info), "{write:?}");
        assert_eq!(write.error, Some(ErrorClass::BadResponse));
        assert_eq!(read.outcome, Some(Outcome::Fail), "{read:?}");
        let done = completions(&mut rx);
        assert!(detail(&done, read.index).contains("max_body"), "{done:?}");
    }
}

#[tokio::test]
async fn a_server_trickling_a_byte_at_a_time_is_a_timeout_not_io() {
    let s = serve(|_| Action::Trickle {
        head: head(200, &[], Some(1000)),
        len: 1000,
        every: Duration::from_millis(200),
    })
    .await;
    let (c, _rx) = client(&s.base, Duration::from_millis(800));
    let (write, read) = write_and_read(&c).await;
    assert_eq!(
        (write.outcome, write.error),
        (Some(Outcome::Info), Some(ErrorClass::Timeout))
    );
    assert_eq!(
        (read.outcome, read.error),
        (Some(Outcome::Fail), Some(ErrorClass::Timeout))
    );
}

#[tokio::test]
async fn a_2xx_operation_outcome_or_another_type_is_a_bad_response_never_an_empty_result() {
    let outcome = json!({"resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing"}]});
    let s = serve(move |req| {
        if req.target.contains("Patient") {
            Action::Send(server::json(
                200,
                &json!({"resourceType": "Patient", "id": "p"}),
            ))
        } else {
            Action::Send(server::json(200, &outcome))
        }
    })
    .await;
    let (c, mut rx) = client(&s.base, Duration::from_secs(5));
    let ctx = Ctx::default();
    let search = c
        .search(ctx, "Observation", &[("identifier", ID)], Some(ID))
        .await;
    assert_eq!(
        (search.outcome, search.error),
        (Some(Outcome::Fail), Some(ErrorClass::BadResponse))
    );
    assert!(search.seen.is_empty());
    let read = c.read(ctx, "Observation", "o1").await;
    assert_eq!(read.outcome, Some(Outcome::Fail));
    let wrong = c
        .search(ctx, "Patient", &[("identifier", ID)], Some(ID))
        .await;
    assert_eq!(wrong.outcome, Some(Outcome::Fail));
    let done = completions(&mut rx);
    assert!(
        detail(&done, search.index).contains("OperationOutcome, not Bundle"),
        "{done:?}"
    );
    assert!(detail(&done, wrong.index).contains("a Patient, not Bundle"));
}

#[tokio::test]
async fn malformed_location_and_etag_are_noted_and_never_taken_as_a_version() {
    let s = serve(|req| {
        let (location, etag) = if req.method == "POST" {
            ("not a location at all", "3")
        } else {
            ("Observation/o1/_history/2", "W/\"1\"2\"")
        };
        Action::Send(http(201, &[("location", location), ("etag", etag)], b""))
    })
    .await;
    let (c, mut rx) = client(&s.base, Duration::from_secs(5));
    let ctx = Ctx::default();
    let created = c.create(ctx, &observation(), ID, false).await;
    assert_eq!(created.outcome, Some(Outcome::Ok));
    assert_eq!(
        (created.id.as_deref(), created.version.as_deref()),
        (None, None)
    );
    let mut body = observation();
    body["id"] = "o1".into();
    let updated = c.update(ctx, &body, "o1", Some("1")).await;
    // The Location's version stands; the broken ETag is not used.
    assert_eq!(updated.version.as_deref(), Some("2"));
    let done = completions(&mut rx);
    let d = detail(&done, created.index);
    assert!(
        d.contains("malformed Location") && d.contains("malformed ETag"),
        "{d}"
    );
    assert!(detail(&done, updated.index).contains("malformed ETag"));
}

#[tokio::test]
async fn ten_thousand_entries_in_one_page_are_read() {
    let entries: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"resource": {"resourceType": "Observation", "id": format!("o{i}"),
                "identifier": [{"system": "urn:fhirsurge:h", "value": format!("o-{i}")}]},
                "search": {"mode": "match"}})
        })
        .collect();
    let page = server::json(
        200,
        &json!({"resourceType": "Bundle", "type": "searchset", "entry": entries}),
    );
    let s = serve(move |_| Action::Send(page.clone())).await;
    let (c, _rx) = client(&s.base, Duration::from_secs(10));
    let reply = c
        .search(Ctx::default(), "Observation", &[("_count", "10000")], None)
        .await;
    assert_eq!(reply.outcome, Some(Outcome::Ok));
    assert_eq!(reply.seen.len(), 10_000);
}

#[tokio::test]
async fn a_server_closing_every_connection_after_one_answer_is_still_read() {
    let s = serve(|_| {
        Action::SendClose(server::json(
            200,
            &json!({"resourceType": "Observation", "id": "o1"}),
        ))
    })
    .await;
    let (c, _rx) = client(&s.base, Duration::from_secs(5));
    for _ in 0..20 {
        let read = c.read(Ctx::default(), "Observation", "o1").await;
        assert_eq!(read.outcome, Some(Outcome::Ok), "{read:?}");
    }
    assert_eq!(s.connections.load(Ordering::Relaxed), 20);
    assert_eq!(s.requests.load(Ordering::Relaxed), 20);
}

#[tokio::test]
async fn a_dead_server_gets_backoff_not_a_storm_of_connection_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/fhir/", listener.local_addr().unwrap());
    drop(listener);
    let (c, mut rx) = client(&base, Duration::from_secs(2));
    let until = Instant::now() + Duration::from_secs(1);
    let users: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = c.read(Ctx::default(), "Observation", "o1").await;
                    assert_eq!(
                        (r.outcome, r.error),
                        (Some(Outcome::Fail), Some(ErrorClass::Connect))
                    );
                }
            })
        })
        .collect();
    for u in users {
        u.await.unwrap();
    }
    let attempts = completions(&mut rx).len();
    // Without backoff eight loops make thousands of attempts in a second on loopback.
    assert!((8..400).contains(&attempts), "{attempts} attempts");
}
