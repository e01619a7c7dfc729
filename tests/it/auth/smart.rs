//! SMART Backend Services end to end: discovery, a valid assertion, the bearer token
//! sent, cached, renewed, shared by concurrent callers, one re-authentication on a 401,
//! and token requests in the history with no secret anywhere.

use std::time::{Duration, Instant};

use fhirsurge::fhir::auth::{self, Alg};
use fhirsurge::history::{ErrorClass, Event, Interaction, Record};

use super::ehr::{Ehr, check_assertion};
use super::{CLIENT_ID, assert_no_secret, client, drain, key_lines, key_pair, read};

#[tokio::test]
async fn smart_rs384_discovers_signs_a_valid_assertion_and_sends_the_token() {
    let ehr = Ehr::start(300.0, Duration::ZERO).await;
    let (private, public) = key_pair(Alg::Rs384);
    let scopes = ["system/Patient.read", "system/Observation.read"];
    let (c, _rx) = client(
        &ehr.base(),
        auth::Config::Smart(Box::new(ehr.smart(Alg::Rs384, &private, &scopes))),
    );
    c.authenticate().await.unwrap();
    let reply = read(&c, "p1").await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(reply.status, Some(200));
    let forms = ehr.state.forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 1);
    let form = &forms[0];
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form["scope"], "system/Patient.read system/Observation.read");
    check_assertion(
        &form["client_assertion"],
        Alg::Rs384,
        &public,
        &ehr.token_url(),
    );
    let token = ehr.state.issued.lock().unwrap()[0].clone();
    let requests = ehr.server.received_requests().await.unwrap();
    let fhir = requests
        .iter()
        .find(|r| r.url.path() == "/fhir/Patient/p1")
        .unwrap();
    assert_eq!(
        fhir.headers["authorization"],
        format!("Bearer {token}").as_str()
    );
}

#[tokio::test]
async fn smart_es384_with_a_given_token_url_v2_scopes_and_jku() {
    let ehr = Ehr::start(300.0, Duration::ZERO).await;
    let (private, public) = key_pair(Alg::Es384);
    let mut smart = ehr.smart(Alg::Es384, &private, &["system/Patient.rs"]);
    smart.token_url = Some(url::Url::parse(&ehr.token_url()).unwrap());
    smart.jku = Some(url::Url::parse("https://keys.example.test/jwks.json").unwrap());
    let (c, _rx) = client(&ehr.base(), auth::Config::Smart(Box::new(smart)));
    assert!(read(&c, "p2").await.is_ok());
    assert!(read(&c, "p3").await.is_ok());
    let requests = ehr.server.received_requests().await.unwrap();
    assert!(
        !requests
            .iter()
            .any(|r| r.url.path().contains(".well-known")),
        "no discovery when token_url is given"
    );
    let form = ehr.state.forms.lock().unwrap()[0].clone();
    assert_eq!(form["scope"], "system/Patient.rs");
    let jwt = &form["client_assertion"];
    check_assertion(jwt, Alg::Es384, &public, &ehr.token_url());
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(
        header.jku.as_deref(),
        Some("https://keys.example.test/jwks.json")
    );
}

#[tokio::test]
async fn a_token_is_fetched_once_for_many_requests_and_without_scope_when_none_given() {
    let ehr = Ehr::start(300.0, Duration::ZERO).await;
    let (private, _) = key_pair(Alg::Es384);
    let (c, _rx) = client(
        &ehr.base(),
        auth::Config::Smart(Box::new(ehr.smart(Alg::Es384, &private, &[]))),
    );
    for i in 0..25 {
        assert!(read(&c, &format!("p{i}")).await.is_ok());
    }
    assert_eq!(ehr.token_calls(), 1);
    let form = ehr.state.forms.lock().unwrap()[0].clone();
    assert!(!form.contains_key("scope"), "no scope parameter: {form:?}");
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    let ehr = Ehr::start(300.0, Duration::from_millis(300)).await;
    let (private, _) = key_pair(Alg::Es384);
    let (c, _rx) = client(
        &ehr.base(),
        auth::Config::Smart(Box::new(ehr.smart(Alg::Es384, &private, &[]))),
    );
    let replies = futures::future::join_all((0..40).map(|i| {
        let c = c.clone();
        async move { read(&c, &format!("p{i}")).await }
    }))
    .await;
    assert!(replies.iter().all(|r| r.is_ok()));
    assert_eq!(ehr.token_calls(), 1, "one fetch for 40 concurrent callers");
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires_without_a_401() {
    // 1 s tokens: renewal is due after half their life.
    let ehr = Ehr::start(1.0, Duration::ZERO).await;
    let (private, _) = key_pair(Alg::Es384);
    let (c, mut rx) = client(
        &ehr.base(),
        auth::Config::Smart(Box::new(ehr.smart(Alg::Es384, &private, &[]))),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reads = 0;
    while ehr.token_calls() < 2 && Instant::now() < deadline && reads < 2_000 {
        assert!(read(&c, "p1").await.is_ok());
        reads += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ehr.token_calls() >= 2, "renewed after {reads} reads");
    let (records, _) = drain(&mut rx);
    let unauthorized = records
        .iter()
        .filter(|r| matches!(&r.event, Event::Fail(c) if c.status == Some(401)))
        .count();
    assert_eq!(unauthorized, 0, "renewal came before the server refused");
}

#[tokio::test]
async fn a_401_mid_run_re_authenticates_once_and_re_sends_once() {
    let ehr = Ehr::start(300.0, Duration::ZERO).await;
    let (private, _) = key_pair(Alg::Rs384);
    let (c, mut rx) = client(
        &ehr.base(),
        auth::Config::Smart(Box::new(ehr.smart(Alg::Rs384, &private, &[]))),
    );
    for _ in 0..3 {
        assert!(read(&c, "p1").await.is_ok());
    }
    assert_eq!(ehr.token_calls(), 1);
    drain(&mut rx);
    ehr.revoke_issued();
    let reply = read(&c, "p1").await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(reply.attempts, 2);
    assert_eq!(ehr.token_calls(), 2);
    let (records, _) = drain(&mut rx);
    let kinds: Vec<String> = records.iter().map(describe).collect();
    assert_eq!(
        kinds,
        [
            "invoke read",
            "fail 401",
            "invoke token",
            "ok 200",
            "invoke read",
            "ok 200"
        ]
    );
    let Event::Invoke(resend) = &records[4].event else {
        unreachable!()
    };
    assert_eq!(resend.retry_of, Some(records[0].index));
    // A server that refuses every token: one re-authentication, then the 401 stands.
    *ehr.state.refuse_all.lock().unwrap() = true;
    let reply = read(&c, "p1").await;
    assert_eq!(
        (reply.status, reply.error),
        (Some(401), Some(ErrorClass::Auth))
    );
    assert_eq!(reply.attempts, 2);
    assert_eq!(ehr.token_calls(), 3);
}

fn describe(r: &Record) -> String {
    match &r.event {
        Event::Invoke(op) => format!("invoke {}", op.f),
        Event::Ok(c) => format!("ok {}", c.status.unwrap_or(0)),
        Event::Fail(c) => format!("fail {}", c.status.unwrap_or(0)),
        Event::Info(c) => format!("info {}", c.status.unwrap_or(0)),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn token_requests_are_history_interactions_and_nothing_secret_is_recorded() {
    let ehr = Ehr::start(300.0, Duration::ZERO).await;
    let (private, _) = key_pair(Alg::Rs384);
    let (c, mut rx) = client(
        &ehr.base(),
        auth::Config::Smart(Box::new(ehr.smart(
            Alg::Rs384,
            &private,
            &["system/Patient.read"],
        ))),
    );
    c.authenticate().await.unwrap();
    for i in 0..5 {
        assert!(read(&c, &format!("p{i}")).await.is_ok());
    }
    ehr.revoke_issued();
    assert!(read(&c, "p9").await.is_ok());
    let (records, samples) = drain(&mut rx);
    let tokens: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(&r.event, Event::Invoke(op) if op.f == Interaction::Token))
        .collect();
    assert_eq!(tokens.len(), 2);
    for t in &tokens {
        let Event::Invoke(op) = &t.event else {
            unreachable!()
        };
        assert!(op.resource_type.is_empty() && op.identifier.is_none() && op.query.is_none());
        let done = records.iter().find(
            |r| matches!(&r.event, Event::Ok(c) if c.invoke == t.index && c.status == Some(200)),
        );
        assert!(done.is_some(), "token {} completed ok", t.index);
    }
    let token_samples = samples.iter().filter(|s| s.op == "token").count();
    assert_eq!(token_samples, 2);
    assert!(
        samples
            .iter()
            .all(|s| s.op == "token" || s.op == "read Patient")
    );
    // The secret scan: no record, sample or debug print holds a secret.
    let mut secrets: Vec<String> = ehr.state.issued.lock().unwrap().clone();
    secrets.push(CLIENT_ID.to_owned());
    secrets.extend(
        ehr.state
            .forms
            .lock()
            .unwrap()
            .iter()
            .map(|f| f["client_assertion"].clone()),
    );
    secrets.extend(key_lines(&private));
    let mut texts: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    texts.extend(samples.iter().map(|s| format!("{s:?}")));
    texts.push(format!("{c:?}"));
    assert_no_secret(&texts, &secrets);
}
