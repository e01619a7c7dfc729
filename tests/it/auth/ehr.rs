//! A fake EHR for the SMART tests: discovery, a token endpoint that issues and counts
//! tokens, and `Patient` reads that need a live token; plus the assertion checks.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fhirsurge::fhir::auth::{self, Alg, SecretSource, SmartConfig};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{CLIENT_ID, unique, write};

/// What the fake authorization server and EHR saw and did.
#[derive(Default)]
pub struct State {
    pub token_calls: AtomicUsize,
    pub forms: Mutex<Vec<HashMap<String, String>>>,
    /// Tokens issued, in order.
    pub issued: Mutex<Vec<String>>,
    /// Tokens the EHR no longer accepts.
    pub revoked: Mutex<HashSet<String>>,
    /// Refuse every token (a 401 for all).
    pub refuse_all: Mutex<bool>,
    pub fhir_calls: AtomicUsize,
}

pub struct Ehr {
    pub server: MockServer,
    pub state: Arc<State>,
    pub dir: tempfile::TempDir,
}

impl Ehr {
    /// A FHIR base at `/fhir/` with discovery, a token endpoint at `/auth/token` that
    /// answers after `delay` with tokens valid for `expires_in` seconds, and
    /// `Patient/{id}` reads that need a live token.
    pub async fn start(expires_in: f64, delay: Duration) -> Ehr {
        let server = MockServer::start().await;
        let state = Arc::new(State::default());
        let token_url = format!("{}/auth/token", server.uri());
        Mock::given(method("GET"))
            .and(path("/fhir/.well-known/smart-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "token_endpoint": token_url,
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "scopes_supported": ["system/Patient.read", "system/Patient.rs"],
            })))
            .mount(&server)
            .await;
        let s = state.clone();
        Mock::given(method("POST"))
            .and(path("/auth/token"))
            .respond_with(move |req: &Request| {
                let n = s.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
                let form = url::form_urlencoded::parse(&req.body)
                    .into_owned()
                    .collect();
                s.forms.lock().unwrap().push(form);
                let token = format!("tok-{n}-{}", uuid::Uuid::new_v4().simple());
                s.issued.lock().unwrap().push(token.clone());
                ResponseTemplate::new(200)
                    .set_delay(delay)
                    .set_body_json(json!({
                        "access_token": token, "token_type": "Bearer",
                        "expires_in": expires_in, "scope": "system/Patient.read",
                    }))
            })
            .mount(&server)
            .await;
        let s = state.clone();
        Mock::given(method("GET"))
            .and(path_regex("^/fhir/Patient/[^/]+$"))
            .respond_with(move |req: &Request| {
                s.fhir_calls.fetch_add(1, Ordering::SeqCst);
                let bearer = req
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                let live = s.issued.lock().unwrap().iter().any(|t| t == bearer)
                    && !s.revoked.lock().unwrap().contains(bearer)
                    && !*s.refuse_all.lock().unwrap();
                if !live {
                    return ResponseTemplate::new(401);
                }
                let id = req.url.path().rsplit('/').next().unwrap_or_default();
                ResponseTemplate::new(200).set_body_json(
                    json!({"resourceType": "Patient", "id": id, "meta": {"versionId": "1"}}),
                )
            })
            .mount(&server)
            .await;
        Ehr {
            server,
            state,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn base(&self) -> String {
        format!("{}/fhir/", self.server.uri())
    }

    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.server.uri())
    }

    /// Writes a secret file into the test's folder.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        write(self.dir.path(), name, content)
    }

    /// SMART settings with the key and client id in files.
    pub fn smart(&self, alg: Alg, private_pem: &str, scopes: &[&str]) -> SmartConfig {
        SmartConfig {
            client_id: SecretSource::File(self.file("client_id", &format!("{CLIENT_ID}\n"))),
            private_key: Some(SecretSource::File(
                self.file(&unique("key.pem"), private_pem),
            )),
            alg,
            kid: "test-kid-1".into(),
            jku: None,
            token_url: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            client_secret: None,
            hmac: auth::Hmac::default(),
            method: None,
            ehr: auth::EhrAuth::default(),
        }
    }

    pub fn token_calls(&self) -> usize {
        self.state.token_calls.load(Ordering::SeqCst)
    }

    pub fn revoke_issued(&self) {
        let issued = self.state.issued.lock().unwrap().clone();
        self.state.revoked.lock().unwrap().extend(issued);
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
}

/// Checks an assertion's signature and every claim SMART requires.
pub fn check_assertion(jwt: &str, alg: Alg, public_pem: &str, token_url: &str) -> Claims {
    let (algorithm, key) = match alg {
        Alg::Rs384 => (
            jsonwebtoken::Algorithm::RS384,
            DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap(),
        ),
        Alg::Es384 => (
            jsonwebtoken::Algorithm::ES384,
            DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap(),
        ),
    };
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, algorithm);
    assert_eq!(header.kid.as_deref(), Some("test-kid-1"));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let mut v = Validation::new(algorithm);
    v.set_audience(&[token_url]);
    v.set_issuer(&[CLIENT_ID]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &v)
        .unwrap()
        .claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(claims.sub, CLIENT_ID);
    assert_eq!(claims.iss, CLIENT_ID);
    assert_eq!(claims.aud, token_url);
    assert!(claims.exp <= now + 300, "exp more than 5 min ahead");
    assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 300);
    assert!(
        uuid::Uuid::parse_str(&claims.jti).is_ok(),
        "jti {}",
        claims.jti
    );
    claims
}
