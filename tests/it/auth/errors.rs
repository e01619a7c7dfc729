//! Static bearer and basic headers, and the typed errors: bad keys and algorithms and a
//! discovery document without a token endpoint are exit 2, a refusing token endpoint is
//! exit 3 with its OAuth error; no message or record shows a key, token or assertion.

use std::time::{Duration, Instant};

use fhirsurge::cli::exit::{self, Failure};
use fhirsurge::fhir::auth::{self, Alg, SecretSource, SmartConfig};
use fhirsurge::fhir::{BuildError, Client, Recorder, Tls};
use fhirsurge::history::{ErrorClass, Event, Outcome};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::ehr::Ehr;
use super::{
    CLIENT_ID, assert_no_secret, client, drain, key_lines, key_pair, read, settings, write,
};

#[tokio::test]
async fn static_bearer_and_basic_send_their_header_and_a_401_is_not_retried() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "static-tok-5b1e";
    let basic = "Basic dXNlcjE6cGFzcyB3b3Jk"; // user1:pass word
    for (value, status) in [(format!("Bearer {token}"), 200), (basic.to_owned(), 200)] {
        Mock::given(method("GET"))
            .and(path("/Patient/p1"))
            .and(wiremock::matchers::header("authorization", value.as_str()))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"resourceType": "Patient", "id": "p1"})),
            )
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let bearer = auth::Config::Bearer {
        token: SecretSource::File(write(dir.path(), "t", &format!("{token}\n"))),
    };
    let basic_auth = auth::Config::Basic {
        username: "user1".into(),
        password: SecretSource::File(write(dir.path(), "p", "pass word")),
    };
    for config in [bearer, basic_auth] {
        let (c, mut rx) = client(&server.uri(), config);
        c.authenticate().await.unwrap();
        assert!(read(&c, "p1").await.is_ok());
        let refused = read(&c, "p2").await;
        assert_eq!((refused.status, refused.attempts), (Some(401), 1));
        let (records, _) = drain(&mut rx);
        let mut texts: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        texts.push(format!("{c:?}"));
        assert_no_secret(
            &texts,
            &[
                token.into(),
                "pass word".into(),
                "dXNlcjE6cGFzcyB3b3Jk".into(),
            ],
        );
    }
}

/// The error of building a client with these settings.
/// The process exit code `fhirsurge` gives for `e`.
fn exit_code(e: auth::Error) -> u8 {
    exit::code(&Failure::from(e).into())
}

fn build_error(base: &str, config: auth::Config) -> auth::Error {
    let what = format!("{config:?}");
    let (recorder, _rx) = Recorder::new(Instant::now(), 16);
    match Client::new(settings(base, config, Tls::default()), recorder) {
        Err(BuildError::Auth(e)) => e,
        Err(e) => panic!("not an auth error: {e}"),
        Ok(_) => panic!("built with {what}"),
    }
}

#[tokio::test]
async fn bad_keys_and_algorithms_are_exit_2_and_never_show_the_key() {
    let ehr = Ehr::start(300.0, Duration::ZERO).await;
    let (rsa_private, rsa_public) = key_pair(Alg::Rs384);
    let (ec_private, _) = key_pair(Alg::Es384);
    let mut secrets = key_lines(&rsa_private);
    secrets.extend(key_lines(&ec_private));
    let mut messages = Vec::new();
    let mut missing = ehr.smart(Alg::Rs384, &rsa_private, &[]);
    missing.private_key = Some(SecretSource::File(ehr.dir.path().join("no-such-key.pem")));
    let cases = [
        (missing, "no-such-key.pem"),
        (ehr.smart(Alg::Rs384, &rsa_public, &[]), "private key"),
        (ehr.smart(Alg::Rs384, "just some text\n", &[]), "PEM"),
        // An RSA key for ES384, and an EC key for RS384.
        (ehr.smart(Alg::Es384, &rsa_private, &[]), "ES384"),
        (ehr.smart(Alg::Rs384, &ec_private, &[]), "RS384"),
    ];
    for (config, needle) in cases {
        let e = build_error(&ehr.base(), auth::Config::Smart(Box::new(config)));
        let m = e.to_string();
        assert_eq!(exit_code(e), 2, "{m}");
        assert!(m.contains(needle), "{m}");
        messages.push(m);
    }
    let e = "RS256".parse::<Alg>().unwrap_err();
    let m = e.to_string();
    assert_eq!(exit_code(e), 2);
    assert!(m.contains("RS256"));
    messages.push(m);
    assert_eq!(ehr.token_calls(), 0, "nothing was sent");
    assert_no_secret(&messages, &secrets);
}

#[tokio::test]
async fn discovery_without_a_token_endpoint_is_exit_2() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fhir/.well-known/smart-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issuer": "x"})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = key_pair(Alg::Es384);
    let smart = SmartConfig {
        client_id: SecretSource::File(write(dir.path(), "id", CLIENT_ID)),
        private_key: Some(SecretSource::File(write(dir.path(), "k", &private))),
        alg: Alg::Es384,
        kid: "k1".into(),
        jku: None,
        token_url: None,
        scopes: vec![],
        client_secret: None,
        hmac: auth::Hmac::default(),
        method: None,
        ehr: auth::EhrAuth::default(),
    };
    let (c, _rx) = client(
        &format!("{}/fhir/", server.uri()),
        auth::Config::Smart(Box::new(smart)),
    );
    let e = c.authenticate().await.unwrap_err();
    assert!(matches!(e, auth::Error::Discovery { .. }), "{e}");
    assert!(e.to_string().contains("token_endpoint"), "{e}");
    assert_eq!(exit_code(e), 2);
}

#[tokio::test]
async fn a_refusing_token_endpoint_is_exit_3_with_the_oauth_error() {
    let server = MockServer::start().await;
    let description = "client assertion signature invalid";
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"error": "invalid_client", "error_description": description}),
            ),
        )
        .mount(&server)
        .await;
    let fhir = Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0);
    server.register(fhir).await;
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = key_pair(Alg::Rs384);
    let smart = SmartConfig {
        client_id: SecretSource::File(write(dir.path(), "id", CLIENT_ID)),
        private_key: Some(SecretSource::File(write(dir.path(), "k", &private))),
        alg: Alg::Rs384,
        kid: "k1".into(),
        jku: None,
        token_url: Some(url::Url::parse(&format!("{}/token", server.uri())).unwrap()),
        scopes: vec!["system/Patient.read".into()],
        client_secret: None,
        hmac: auth::Hmac::default(),
        method: None,
        ehr: auth::EhrAuth::default(),
    };
    let (c, mut rx) = client(&server.uri(), auth::Config::Smart(Box::new(smart)));
    let e = c.authenticate().await.unwrap_err();
    let m = e.to_string();
    assert_eq!(exit_code(e), 3, "{m}");
    assert!(
        m.contains("invalid_client") && m.contains(description),
        "{m}"
    );
    let (records, _) = drain(&mut rx);
    assert!(records.iter().any(|r| matches!(&r.event,
        Event::Fail(c) if c.status == Some(400) && c.error == Some(ErrorClass::Auth)
            && c.detail.as_deref() == Some("invalid_client"))));
    // Mid-run, a request that gets no token is recorded as failed, never sent.
    let reply = read(&c, "p1").await;
    assert_eq!(
        (reply.outcome, reply.error),
        (Some(Outcome::Fail), Some(ErrorClass::Auth))
    );
    let mut texts = vec![m];
    texts.extend(
        drain(&mut rx)
            .0
            .iter()
            .map(|r| serde_json::to_string(r).unwrap()),
    );
    let assertions: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(assertions.len(), 2);
    let mut secrets = key_lines(&private);
    secrets.extend(assertions);
    secrets.push(CLIENT_ID.into());
    assert_no_secret(&texts, &secrets);
}
