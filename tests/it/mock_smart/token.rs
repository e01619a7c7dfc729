//! The token endpoint: discovery, valid RS384 and ES384 assertions, each rejection
//! with its OAuth code and a description, and keys from a JWK Set file, a JWK Set URL
//! (fetched once, cached) and an allowed `jku`.

use std::time::Duration;

use fhirsurge::mock::smart::{self, Algorithm, Jwks};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{CLIENT, EC_KID, Keys, RSA_KID, Served, claims, jwk, now, private_key, sign, write};

#[tokio::test]
async fn discovery_names_the_token_endpoint_and_what_it_takes() {
    let keys = Keys::new();
    let m = Served::with(&keys, &["system/Patient.rs"], Duration::from_secs(60)).await;
    let url = format!("{}.well-known/smart-configuration", m.base);
    let doc: Value = m.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["token_endpoint"], m.token_url());
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["system/Patient.rs", "system/Patient.read"])
    );
    let caps = doc["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("client-confidential-asymmetric")));
}

#[tokio::test]
async fn valid_rs384_and_es384_assertions_get_tokens() {
    let keys = Keys::new();
    let m = Served::with(&keys, &[], Duration::from_secs(60)).await;
    let mut tokens = Vec::new();
    for (pem, alg, kid) in [
        (&keys.rsa, Algorithm::RS384, RSA_KID),
        (&keys.ec, Algorithm::ES384, EC_KID),
    ] {
        let jwt = sign(pem, alg, kid, &claims(&m.token_url()));
        let (status, body) = m
            .exchange(&jwt, Some("system/Patient.read system/Observation.cruds"))
            .await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 60);
        assert_eq!(body["scope"], "system/Observation.cruds system/Patient.rs");
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(token.len() >= 32 && !token.contains(CLIENT), "{token}");
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(m.smart().issued_tokens(), tokens);
    // No scope asked: everything the client may have.
    let jwt = sign(
        &keys.rsa,
        Algorithm::RS384,
        RSA_KID,
        &claims(&m.token_url()),
    );
    let (_, body) = m.exchange(&jwt, None).await;
    assert_eq!(body["scope"], "system/*.cruds");
}

/// A change to an otherwise valid assertion, and what the refusal must say.
struct Case {
    name: &'static str,
    needle: &'static str,
    jwt: String,
}

fn cases(m: &Served, keys: &Keys) -> Vec<Case> {
    let url = m.token_url();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(&url);
        change(&mut c);
        sign(&keys.rsa, Algorithm::RS384, RSA_KID, &c)
    };
    let stranger = private_key(Algorithm::RS384);
    let case = |name, needle, jwt| Case { name, needle, jwt };
    vec![
        case(
            "expired exp",
            "expired",
            with(&|c| c["exp"] = json!(now() - 120)),
        ),
        case(
            "exp too far",
            "five minutes",
            with(&|c| c["exp"] = json!(now() + 900)),
        ),
        case(
            "future iat",
            "`iat` is in the future",
            with(&|c| c["iat"] = json!(now() + 300)),
        ),
        case(
            "wrong aud",
            "`aud`",
            with(&|c| c["aud"] = json!(format!("{}token", m.base))),
        ),
        case(
            "iss != sub",
            "`iss` and `sub`",
            with(&|c| c["sub"] = json!("someone-else")),
        ),
        case(
            "unknown client",
            "not registered",
            with(&|c| {
                c["iss"] = json!("client-unknown-9f");
                c["sub"] = json!("client-unknown-9f");
            }),
        ),
        case("no jti", "`jti`", with(&|c| c["jti"] = Value::Null)),
        case(
            "unknown kid",
            "no trusted key has kid `kid-nobody`",
            sign(&keys.rsa, Algorithm::RS384, "kid-nobody", &claims(&url)),
        ),
        case(
            "bad signature",
            "signature does not verify",
            sign(&stranger, Algorithm::RS384, RSA_KID, &claims(&url)),
        ),
        // An HMAC assertion is client_secret_jwt, which this server does not take.
        case(
            "HS256",
            "client_secret_jwt is not accepted; this server takes private_key_jwt",
            sign("shared-secret", Algorithm::HS256, RSA_KID, &claims(&url)),
        ),
        case(
            "RS384 header on the EC key",
            "is not a RS384 key",
            sign(&keys.rsa, Algorithm::RS384, EC_KID, &claims(&url)),
        ),
        case("not a JWT", "not a JWT", "abc.def".to_owned()),
    ]
}

#[tokio::test]
async fn each_bad_assertion_is_invalid_client_with_a_description() {
    let keys = Keys::new();
    let m = Served::with(&keys, &[], Duration::from_secs(60)).await;
    for c in cases(&m, &keys) {
        let (status, body) = m.exchange(&c.jwt, None).await;
        assert_eq!(status, 400, "{}: {body}", c.name);
        assert_eq!(body["error"], "invalid_client", "{}: {body}", c.name);
        let d = body["error_description"].as_str().unwrap();
        assert!(d.contains(c.needle), "{}: {d}", c.name);
        assert!(
            !d.contains("client-unknown-9f") && !d.contains(&c.jwt),
            "{}: {d}",
            c.name
        );
    }
    // A replayed jti: the same valid assertion twice.
    let jwt = sign(
        &keys.rsa,
        Algorithm::RS384,
        RSA_KID,
        &claims(&m.token_url()),
    );
    assert_eq!(m.exchange(&jwt, None).await.0, 200);
    let (status, body) = m.exchange(&jwt, None).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay"),
        "{body}"
    );
    assert_eq!(
        m.smart().issued_tokens().len(),
        1,
        "only the first was granted"
    );
}

#[tokio::test]
async fn bad_requests_get_their_own_oauth_codes() {
    let keys = Keys::new();
    let m = Served::with(&keys, &["system/Patient.rs"], Duration::from_secs(60)).await;
    let jwt = sign(
        &keys.rsa,
        Algorithm::RS384,
        RSA_KID,
        &claims(&m.token_url()),
    );
    let t = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let checks: [(&[(&str, &str)], &str); 4] = [
        (
            &[("grant_type", "authorization_code")],
            "unsupported_grant_type",
        ),
        (&[("client_assertion", &jwt)], "invalid_request"),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "basic"),
                ("client_assertion", &jwt),
            ],
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", t),
            ],
            "invalid_client",
        ),
    ];
    for (form, code) in checks {
        let (status, body) = m.token_request(form).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!(code)),
            "{form:?}: {body}"
        );
    }
    for scope in ["system/Observation.rs", "system/Patient.frob"] {
        let jwt = sign(
            &keys.rsa,
            Algorithm::RS384,
            RSA_KID,
            &claims(&m.token_url()),
        );
        let (status, body) = m.exchange(&jwt, Some(scope)).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("invalid_scope")),
            "{scope}: {body}"
        );
    }
}

#[tokio::test]
async fn keys_come_from_a_jwks_file_a_jwks_url_and_an_allowed_jku() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    // A JWK Set file, as `serve-mock --jwks` reads it.
    let file = write(
        dir.path(),
        "jwks.json",
        &serde_json::to_string(&keys.jwks).unwrap(),
    );
    let from_file = smart::read_jwks(&file).unwrap();
    assert_eq!(from_file, keys.jwks);
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
    );
    assert!(
        smart::read_jwks(&bad)
            .unwrap_err()
            .to_string()
            .contains("kid")
    );

    let server = MockServer::start().await;
    let rsa_only = Jwks {
        keys: vec![jwk(&keys, RSA_KID)],
    };
    let ec_only = Jwks {
        keys: vec![jwk(&keys, EC_KID)],
    };
    Mock::given(method("GET"))
        .and(path("/registered/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&rsa_only))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jku/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&ec_only))
        .expect(1)
        .mount(&server)
        .await;
    let jwks_url = url::Url::parse(&format!("{}/registered/jwks.json", server.uri())).unwrap();
    let jku = format!("{}/jku/jwks.json", server.uri());
    let m = Served::start(smart::Config {
        jwks_url: Some(jwks_url),
        jku_allow: vec![url::Url::parse(&jku).unwrap()],
        ..smart::Config::default()
    })
    .await;
    // Two RS384 assertions: the JWK Set URL is fetched once, then cached.
    for _ in 0..2 {
        let jwt = sign(
            &keys.rsa,
            Algorithm::RS384,
            RSA_KID,
            &claims(&m.token_url()),
        );
        let (status, body) = m.exchange(&jwt, None).await;
        assert_eq!(status, 200, "{body}");
    }
    // The EC key is only behind the jku.
    let ec = |jku: &str| {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES384);
        header.kid = Some(EC_KID.into());
        header.jku = Some(jku.to_owned());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(keys.ec.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims(&m.token_url()), &key).unwrap()
    };
    let (status, body) = m.exchange(&ec(&jku), None).await;
    assert_eq!(status, 200, "{body}");
    let other = format!("{}/evil/jwks.json", server.uri());
    let (status, body) = m.exchange(&ec(&other), None).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"].as_str().unwrap().contains("jku"),
        "{body}"
    );
    // Any client id goes when no client is registered: the key is the registration.
    let mut c = claims(&m.token_url());
    c["iss"] = json!("another-client");
    c["sub"] = json!("another-client");
    let (status, _) = m
        .exchange(&sign(&keys.rsa, Algorithm::RS384, RSA_KID, &c), None)
        .await;
    assert_eq!(status, 200);
}
