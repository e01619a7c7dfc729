//! The guard in front of the FHIR API: 401 with `WWW-Authenticate: Bearer` without a
//! live token (none, unknown, expired on the mock's clock), 403 with an OperationOutcome
//! outside the granted scopes, 200 inside; the open endpoints stay open, the ledger
//! stays empty; and the harness's own client gets past an expiry with one 401 and one
//! re-authentication.

use std::time::{Duration, Instant};

use fhirsurge::fhir::auth::{self as client_auth, Alg, SecretSource, SmartConfig};
use fhirsurge::fhir::{Client, Ctx, Recorder, Retry, Settings};
use fhirsurge::history::{Event, Interaction};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{CLIENT, Keys, RSA_KID, Served, write};

fn patient(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:fhirsurge:it", "value": mrn}],
           "name": [{"family": "Guard"}], "gender": "female"})
}

impl Served {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/fhir+json").json(b);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }
}

fn challenge(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_fhir_api_needs_a_live_token_with_the_right_scopes() {
    use reqwest::Method;
    let keys = Keys::new();
    let m = Served::with(&keys, &[], Duration::from_secs(60)).await;
    // Open without a token.
    for path in [
        "metadata",
        "__fhirsurge/health",
        ".well-known/smart-configuration",
    ] {
        let (status, _, _) = m.call(Method::GET, path, None, None).await;
        assert_eq!(status, 200, "{path}");
    }
    // 401 without a token, or with one the mock never issued.
    for token in [None, Some("made-up-token")] {
        let (status, headers, body) = m.call(Method::GET, "Patient", token, None).await;
        assert_eq!(status, 401, "{token:?}");
        assert!(challenge(&headers).starts_with("Bearer"), "{headers:?}");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    let (status, _, _) = m
        .call(Method::POST, "Patient", None, Some(&patient("g0")))
        .await;
    assert_eq!(status, 401);

    let read_only = m.token(&keys, Some("system/Patient.read")).await;
    let (status, _, _) = m
        .call(
            Method::GET,
            "Patient?identifier=urn:fhirsurge:it|g1",
            Some(&read_only),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = m
        .call(
            Method::POST,
            "Patient",
            Some(&read_only),
            Some(&patient("g1")),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    let text = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(text.contains("create (c) on Patient"), "{body}");
    let (status, _, _) = m
        .call(Method::GET, "Observation?patient=x", Some(&read_only), None)
        .await;
    assert_eq!(status, 403, "no scope for Observation");

    let writer = m
        .token(&keys, Some("system/Patient.cu system/Patient.rs"))
        .await;
    let (status, _, created) = m
        .call(Method::POST, "Patient", Some(&writer), Some(&patient("g2")))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _, _) = m
        .call(
            Method::GET,
            &format!("Patient/{id}"),
            Some(&read_only),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = m
        .call(
            Method::PUT,
            &format!("Patient/{id}"),
            Some(&read_only),
            Some(&created),
        )
        .await;
    assert_eq!(status, 403, "read-only cannot update");
    let (status, _, _) = m
        .call(
            Method::PUT,
            &format!("Patient/{id}"),
            Some(&writer),
            Some(&created),
        )
        .await;
    assert_eq!(status, 200);
    // A transaction is refused whole when one entry is outside the scopes.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("g3"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}}]});
    let (status, _, body) = m.call(Method::POST, "", Some(&writer), Some(&bundle)).await;
    assert_eq!(status, 403, "{body}");

    // Expiry on the mock's clock, without waiting.
    m.smart().advance_clock(Duration::from_secs(61));
    let (status, headers, _) = m
        .call(
            Method::GET,
            &format!("Patient/{id}"),
            Some(&read_only),
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert!(challenge(&headers).contains("invalid_token"), "{headers:?}");
    assert!(
        m.ehr.ledger().entries().is_empty(),
        "auth refusals are not faults"
    );
}

#[tokio::test]
async fn the_harness_client_reauthenticates_once_when_the_mock_expires_its_token() {
    let keys = Keys::new();
    let m = Served::with(&keys, &[], Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let smart = SmartConfig {
        client_id: SecretSource::File(write(dir.path(), "id", CLIENT)),
        private_key: Some(SecretSource::File(write(dir.path(), "key.pem", &keys.rsa))),
        alg: Alg::Rs384,
        kid: RSA_KID.into(),
        jku: None,
        token_url: None,
        scopes: vec!["system/*.rs".into()],
        client_secret: None,
        hmac: client_auth::Hmac::default(),
        method: None,
        ehr: client_auth::EhrAuth::default(),
    };
    let (recorder, mut rx) = Recorder::new(Instant::now(), 10_000);
    let settings = Settings {
        base: url::Url::parse(&m.base).unwrap(),
        timeout: Duration::from_secs(5),
        retry: Retry::default(),
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: None,
        ledger: None,
        auth: client_auth::Config::Smart(Box::new(smart)),
        tls: Default::default(),
    };
    let c = Client::new(settings, recorder).unwrap();
    c.authenticate().await.unwrap();
    let ctx = Ctx::default();
    let search = |c: Client| async move {
        c.search(
            ctx,
            "Patient",
            &[("identifier", "urn:fhirsurge:it|x")],
            None,
        )
        .await
    };
    let first = search(c.clone()).await;
    assert!(first.is_ok(), "{first:?}");
    // The client still thinks its token fresh; the mock does not.
    m.smart().advance_clock(Duration::from_secs(61));
    let reply = search(c.clone()).await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(reply.attempts, 2);
    assert_eq!(m.smart().issued_tokens().len(), 2);
    let mut statuses = Vec::new();
    while let Ok(note) = rx.try_recv() {
        if let Some(r) = note.record() {
            match r.event {
                Event::Invoke(op) if op.f == Interaction::Token => statuses.push("token".into()),
                Event::Ok(c) | Event::Fail(c) | Event::Info(c) => {
                    statuses.push(c.status.map(|s| s.to_string()).unwrap_or_default())
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        statuses,
        ["token", "200", "200", "401", "token", "200", "200"]
    );
}
