//! The mock EHR speaking SMART Backend Services over loopback: the token endpoint
//! (`token`: each assertion check, JWK Set files, URLs and `jku`), the guard in front of
//! the FHIR API (`guard`: 401, 403, expiry on the mock's clock), whole authenticated
//! runs and the secret scan (`run`), client-secret authentication at an emulated EHR's
//! front door (`secret`), one token shared by many users (`shared`), and the binary
//! (`cli`: `serve-mock --auth smart`, exit 3 on a refusal).

mod cli;
mod guard;
mod run;
mod scope;
mod secret;
mod shared;
mod token;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fhirsurge::mock::smart::{self, Algorithm, Jwk, Jwks};
use fhirsurge::mock::{self, Config, Ehr};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const CLIENT: &str = "client-5d2e71";
const RSA_KID: &str = "rsa-kid-1";
const EC_KID: &str = "ec-kid-1";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A fresh private key (PKCS#8 PEM) for `alg`.
fn private_key(alg: Algorithm) -> String {
    let kp = match alg {
        Algorithm::RS384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA384),
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
    }
    .unwrap();
    kp.serialize_pem()
}

/// A client's keys: one RSA and one EC, with their public JWK Set.
struct Keys {
    rsa: String,
    ec: String,
    jwks: Jwks,
}

impl Keys {
    fn new() -> Keys {
        let rsa = private_key(Algorithm::RS384);
        let ec = private_key(Algorithm::ES384);
        let jwks = Jwks {
            keys: vec![
                smart::public_jwk(&rsa, Algorithm::RS384, RSA_KID).unwrap(),
                smart::public_jwk(&ec, Algorithm::ES384, EC_KID).unwrap(),
            ],
        };
        Keys { rsa, ec, jwks }
    }

    /// The PEM body lines of both private keys: each a secret on its own.
    fn secret_lines(&self) -> Vec<String> {
        let mut lines = key_lines(&self.rsa);
        lines.extend(key_lines(&self.ec));
        lines
    }
}

fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims a correct client sends to `aud`.
fn claims(aud: &str) -> Value {
    json!({
        "iss": CLIENT, "sub": CLIENT, "aud": aud,
        "exp": now() + 240, "iat": now(),
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// Signs `claims` with `pem` for `alg` under `kid`.
fn sign(pem: &str, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS384 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_secret(pem.as_bytes()),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A mock with SMART on, served on loopback.
struct Served {
    base: String,
    ehr: Ehr,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Served {
    async fn start(smart: smart::Config) -> Served {
        Served::start_with(smart, None).await
    }

    /// SMART on, emulating `profile` when one is given.
    async fn start_with(
        smart: smart::Config,
        profile: Option<std::sync::Arc<fhirsurge::profile::Profile>>,
    ) -> Served {
        let ehr = Ehr::new(Config {
            seed: 3,
            smart: Some(smart),
            profile,
            ..Config::default()
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(mock::serve(listener, ehr.clone(), shutdown.clone()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Served {
            base,
            ehr,
            http,
            shutdown,
        }
    }

    /// Trusting `keys`, registering [`CLIENT`], tokens living `lifetime`.
    async fn with(keys: &Keys, scopes: &[&str], lifetime: Duration) -> Served {
        Served::start(smart::Config {
            clients: vec![CLIENT.into()],
            keys: keys.jwks.clone(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            token_lifetime: lifetime,
            ..smart::Config::default()
        })
        .await
    }

    fn token_url(&self) -> String {
        format!("{}auth/token", self.base)
    }

    fn smart(&self) -> &smart::Authority {
        self.ehr.smart().unwrap()
    }

    /// Posts a token request; (status, JSON body).
    async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .http
            .post(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Exchanges an assertion for a token, asking for `scope` if given.
    async fn exchange(&self, assertion: &str, scope: Option<&str>) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_request(&form).await
    }

    /// A token for the RSA key, asking for `scope`.
    async fn token(&self, keys: &Keys, scope: Option<&str>) -> String {
        let jwt = sign(
            &keys.rsa,
            Algorithm::RS384,
            RSA_KID,
            &claims(&self.token_url()),
        );
        let (status, body) = self.exchange(&jwt, scope).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// Writes a file into `dir`.
fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The JWK of `keys` with id `kid`.
fn jwk(keys: &Keys, kid: &str) -> Jwk {
    keys.jwks
        .keys
        .iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
        .unwrap()
        .clone()
}
