//! Client-secret authentication, end to end: the mock's front door emulating a profile
//! (Oracle Health takes `client_secret_basic` and `private_key_jwt`, nothing else; a
//! wrong secret is 401 `invalid_client` with `WWW-Authenticate: Basic`), whole runs
//! against Oracle Health's emulation with `client_secret_basic` (chosen from the profile
//! and the SMART configuration) and athenahealth's with `client_secret_post` (the
//! in-process mock takes the run's secret) that find nothing and leave no 401
//! unhandled, a wrong secret that stops the run with the token endpoint's error, and
//! the secret scan of every output file and log line.

use std::path::Path;
use std::sync::Arc;

use fhirsurge::cli::exit::{self, Failure};
use fhirsurge::fhir::auth;
use fhirsurge::history::{Event, Interaction};
use fhirsurge::mock::smart::{self, Algorithm};
use fhirsurge::profile::{ClientAuth, Profile};
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;
use serde_json::{Value, json};

use super::run::{LOGS, capture_logs, every_401_was_handled, files, history};
use super::{CLIENT, Served, claims, write};
use crate::run::assert_valid_report;

/// The registered secret: long enough that no other text holds it by chance.
pub(super) const SECRET: &str = "s3cr3t-7c1e0d9b4a-oracle+athena/ok";

impl Served {
    /// A mock emulating `profile`, its SMART front door open to [`CLIENT`] with
    /// [`SECRET`] (no trusted key).
    pub(super) async fn emulating(profile: &str) -> Served {
        let p = Profile::load(profile).unwrap();
        let config = smart::Config {
            clients: vec![CLIENT.into()],
            methods: smart::methods_for(Some(&p), true),
            client_secret: Some(SECRET.into()),
            token_lifetime: smart::lifetime_for(Some(&p)).unwrap_or(smart::DEFAULT_LIFETIME),
            ..smart::Config::default()
        };
        Served::start_with(config, Some(Arc::new(p))).await
    }

    /// Posts a token request with an optional `Authorization` header.
    async fn token_with(&self, authorization: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status,
            challenge,
            body: resp.json().await.unwrap_or(Value::Null),
        }
    }
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

#[tokio::test]
async fn oracle_healths_front_door_takes_basic_and_refuses_other_methods_as_it_would() {
    let m = Served::emulating("oracle-health").await;
    let doc: Value = m
        .http
        .get(format!("{}.well-known/smart-configuration", m.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "private_key_jwt"])
    );
    assert!(
        doc["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("client-confidential-symmetric"))
    );
    let ok = m.token_with(Some(&basic(CLIENT, SECRET)), &[GRANT]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Oracle Health's token lifetime, from the profile.
    assert_eq!(ok.body["expires_in"], 570, "{}", ok.body);
    let wrong = m.token_with(Some(&basic(CLIENT, "not-it")), &[GRANT]).await;
    assert_eq!(
        (wrong.status, &wrong.body["error"]),
        (401, &json!("invalid_client"))
    );
    assert!(wrong.challenge.unwrap().starts_with("Basic"));
    let post = [GRANT, ("client_id", CLIENT), ("client_secret", SECRET)];
    let refused = m.token_with(None, &post).await;
    assert_eq!(
        (refused.status, &refused.body["error"]),
        (400, &json!("invalid_client"))
    );
    let d = refused.body["error_description"].as_str().unwrap();
    assert!(d.contains("client_secret_post is not accepted"), "{d}");
    let jwt = hmac_assertion(&m.token_url(), SECRET);
    let assertion = [
        GRANT,
        ("client_assertion_type", super::ASSERTION_TYPE),
        ("client_assertion", jwt.as_str()),
    ];
    let refused = m.token_with(None, &assertion).await;
    assert_eq!(refused.body["error"], "invalid_client", "{}", refused.body);
    let two = m.token_with(Some(&basic(CLIENT, SECRET)), &post).await;
    assert_eq!(two.body["error"], "invalid_request", "{}", two.body);
    for a in [&wrong.body, &refused.body] {
        assert!(!a.to_string().contains(SECRET) && !a.to_string().contains(CLIENT));
    }
    assert_eq!(
        m.smart().issued_methods(),
        [ClientAuth::ClientSecretBasic],
        "only the good request got a token"
    );
}

#[tokio::test]
async fn athenahealths_front_door_takes_post_and_an_hs256_client_secret_jwt() {
    let m = Served::emulating("athenahealth").await;
    let scope = ("scope", "system/Patient.read");
    let post = [
        GRANT,
        ("client_id", CLIENT),
        ("client_secret", SECRET),
        scope,
    ];
    assert_eq!(m.token_with(None, &post).await.status, 200);
    let jwt = hmac_assertion(&m.token_url(), SECRET);
    let form = [
        GRANT,
        ("client_assertion_type", super::ASSERTION_TYPE),
        ("client_assertion", jwt.as_str()),
        scope,
    ];
    let ok = m.token_with(None, &form).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let replayed = m.token_with(None, &form).await;
    assert!(
        replayed.body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay")
    );
    let forged = hmac_assertion(&m.token_url(), "a-guess");
    let form = [
        GRANT,
        ("client_assertion_type", super::ASSERTION_TYPE),
        ("client_assertion", forged.as_str()),
        scope,
    ];
    let refused = m.token_with(None, &form).await;
    assert_eq!(
        (refused.status, &refused.body["error"]),
        (400, &json!("invalid_client"))
    );
    assert_eq!(
        m.smart().issued_methods(),
        [ClientAuth::ClientSecretPost, ClientAuth::ClientSecretJwt]
    );
}

/// A `client_secret_jwt` assertion signed HS256 with `secret`.
fn hmac_assertion(aud: &str, secret: &str) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = None;
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&header, &claims(aud), &key).unwrap()
}

/// A scenario authenticating with the client secret (in a file) against `target`.
pub(super) fn scenario(dir: &Path, target: &str, secret: &str, extra_auth: &str) -> Scenario {
    let id = write(dir, "client_id", &format!("{CLIENT}\n"));
    let secret = write(dir, "client_secret", &format!("{secret}\n"));
    let text = format!(
        r#"
name = "smart-secret-it"
seed = 17
[target]
url = "{target}"
timeout = "5s"
[load]
model = "closed"
users = 3
duration = "3s"
[retry]
policy = "idempotent-only"
[readback]
settle = "100ms"
[auth]
kind = "smart_backend"
client_id_file = "{}"
client_secret_file = "{}"
scopes = ["system/*.cruds"]
{extra_auth}
"#,
        id.display(),
        secret.display()
    );
    Scenario::from_str(&text, Path::new("smart-secret-it.toml")).unwrap()
}

/// No output file and no log line holds any of `secrets`.
fn assert_nothing_holds(dir: &Path, secrets: &[String]) {
    for file in files(dir) {
        let bytes = std::fs::read(&file).unwrap();
        let bytes = if file.extension().is_some_and(|e| e == "zst") {
            zstd::decode_all(&bytes[..]).unwrap()
        } else {
            bytes
        };
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret is in {}",
                file.display()
            );
        }
    }
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    for line in logs.lines() {
        for s in secrets {
            assert!(!line.contains(s.as_str()), "a secret is in the log: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_oracle_health_chooses_client_secret_basic_and_finds_nothing() {
    capture_logs();
    let m = Served::emulating("oracle-health").await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(dir.path(), &m.base, SECRET, "");
    s.profile = "oracle-health".into();
    let out = dir.path().join("out");
    let outcome = run::execute(&s, &Options::new(out)).await.unwrap();
    let r = &outcome.report;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.summary.encounters > 0);
    let (unauthorized, tokens) = every_401_was_handled(&history(&outcome.dir));
    assert_eq!(unauthorized, 0, "570 s tokens: no 401 in a 3 s run");
    let methods = m.smart().issued_methods();
    // The scope probe's narrower token is issued by the same endpoint.
    let probe_token = usize::from(r.access.scope.scopes.is_some());
    assert_eq!(tokens + probe_token, methods.len());
    assert!(
        !methods.is_empty() && methods.iter().all(|m| *m == ClientAuth::ClientSecretBasic),
        "{methods:?}"
    );
    let token_op = r.operations.iter().find(|o| o.op == "token").unwrap();
    assert!(
        token_op.ok >= 1 && token_op.fail + token_op.info == 0,
        "{token_op:?}"
    );
    assert_valid_report(&outcome.dir.join("report.json"));
    let mut secrets = vec![SECRET.to_owned(), CLIENT.to_owned()];
    secrets.extend(m.smart().issued_tokens());
    assert_nothing_holds(&outcome.dir, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_athenahealths_in_process_emulation_uses_client_secret_post() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(
        dir.path(),
        "mock",
        SECRET,
        "client_auth = \"client_secret_post\"",
    );
    s.profile = "athenahealth".into();
    let out = dir.path().join("out");
    let outcome = run::execute(&s, &Options::new(out)).await.unwrap();
    let r = &outcome.report;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    // athenahealth refuses what it lacks (400s, declared); no request met a 401.
    let records = history(&outcome.dir);
    let unauthorized = records
        .iter()
        .filter(|r| matches!(&r.event, Event::Fail(c) | Event::Info(c) if c.status == Some(401)))
        .count();
    let tokens = records
        .iter()
        .filter(|r| matches!(&r.event, Event::Invoke(op) if op.f == Interaction::Token))
        .count();
    assert_eq!(
        (unauthorized, tokens),
        (0, 1),
        "one token for the whole run"
    );
    assert_eq!(r.summary.info, 0, "{:?}", r.summary);
    assert_valid_report(&outcome.dir.join("report.json"));
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(
        logs.contains("token issued (client_secret_post)"),
        "the in-process mock took the run's secret in the form"
    );
    assert_nothing_holds(&outcome.dir, &[SECRET.to_owned(), CLIENT.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_stops_the_run_with_the_token_endpoints_error_and_no_secret() {
    capture_logs();
    let m = Served::emulating("oracle-health").await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrong-0d1f5e2a9c-secret";
    let mut s = scenario(
        dir.path(),
        &m.base,
        wrong,
        "client_auth = \"client_secret_basic\"",
    );
    s.profile = "oracle-health".into();
    let out = dir.path().join("out");
    let Err(e) = run::execute(&s, &Options::new(out.clone())).await else {
        panic!("a wrong secret must stop the run");
    };
    assert!(
        matches!(
            &e,
            run::Error::Auth(auth::Error::Refused { status: 401, error: Some(code), .. })
                if code == "invalid_client"
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(!text.contains(wrong) && !text.contains(SECRET) && !text.contains(CLIENT));
    assert_eq!(exit::code(&Failure::from(e).into()), 3, "{text}");
    assert!(m.smart().issued_tokens().is_empty());
    assert!(!out.exists(), "a refused run writes no run folder");
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    for line in logs.lines() {
        assert!(!line.contains(wrong) && !line.contains(SECRET), "{line}");
    }
}

#[test]
fn a_secret_method_without_a_secret_and_a_literal_secret_are_located_bad_input() {
    let head = "name = \"t\"\n[target]\nurl = \"mock\"\n[load]\nmodel = \"closed\"\nusers = 1\n\
                duration = \"1s\"\n[auth]\nkind = \"smart_backend\"\nclient_id_env = \"ID\"\n";
    let parse = |tail: &str| {
        Scenario::from_str(&format!("{head}{tail}"), Path::new("s.toml"))
            .unwrap_err()
            .to_string()
    };
    let m = parse("private_key_env = \"K\"\nkid = \"k\"\nclient_auth = \"client_secret_basic\"\n");
    assert!(
        m.contains("s.toml:13") && m.contains("client_secret_env"),
        "{m}"
    );
    let m = parse("client_secret = \"hunter2-literal\"\n");
    assert!(
        m.contains("s.toml:11") && m.contains("client_secret_env") && !m.contains("hunter2"),
        "{m}"
    );
    let m = parse("client_secret_env = \"S\"\nalg = \"RS384\"\n");
    assert!(m.contains("auth.alg") && m.contains("private_key"), "{m}");
    let m = parse("client_secret_env = \"S\"\nclient_auth = \"client_secret\"\n");
    assert!(m.contains("client_secret_basic"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_secret_surge_runs_shortened_through_oracle_healths_front_door() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smart-secret-surge.toml");
    let mut s = Scenario::load(&path).unwrap();
    let Some(auth::Config::Smart(smart)) = Some(&s.auth) else {
        panic!("{:?}", s.auth)
    };
    assert!(smart.private_key.is_none() && smart.client_secret.is_some() && smart.method.is_none());
    let short = fhirsurge::scenario::Overrides {
        users: std::num::NonZeroUsize::new(5),
        duration: Some(std::time::Duration::from_secs(2)),
        ..Default::default()
    };
    s.apply(&short).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outcome = run::execute(&s, &Options::new(dir.path().to_owned()))
        .await
        .unwrap();
    let r = &outcome.report;
    assert_eq!(r.run.profile, "oracle-health");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let (unauthorized, tokens) = every_401_was_handled(&history(&outcome.dir));
    assert_eq!((unauthorized, tokens), (0, 1), "one token for the run");
}
