//! The binary: `serve-mock --auth smart` with its flags, SMART flags without
//! `--auth smart` (exit 2), a run whose token endpoint refuses (exit 3, the OAuth code
//! on stderr, no key material), a key that does not fit the algorithm (exit 2), and a
//! wrong client secret at `serve-mock --profile oracle-health --client-secret-env` (exit 3).

use std::process::Stdio;
use std::time::Duration;

use fhirsurge::mock::smart::{self, Algorithm};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{CLIENT, Keys, RSA_KID, Served, claims, sign, write};

fn fhirsurge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fhirsurge"));
    c.kill_on_drop(true);
    c
}

/// Runs the binary to the end (bounded): (exit code, stderr).
async fn output(cmd: &mut Command) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the binary finishes")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_mock_with_auth_smart_takes_its_flags() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks = write(
        dir.path(),
        "jwks.json",
        &serde_json::to_string(&keys.jwks).unwrap(),
    );
    let mut child = fhirsurge()
        .args([
            "serve-mock",
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "smart",
            "--jwks",
        ])
        .arg(&jwks)
        .args([
            "--client-id",
            CLIENT,
            "--token-lifetime",
            "2s",
            "--scopes",
            "system/Patient.rs",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the mock says where it listens")
        .unwrap()
        .unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{first}"))
        .trim_end_matches(',')
        .to_owned();
    assert!(first.contains("SMART"), "{first}");
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{base}.well-known/smart-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = doc["token_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(token_url, format!("{base}auth/token"));
    let jwt = sign(
        &keys.ec,
        Algorithm::ES384,
        super::EC_KID,
        &claims(&token_url),
    );
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt.as_str()),
    ];
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let body: Value = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["expires_in"], 2, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs", "{body}");
    let status = http
        .get(format!("{base}Patient"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    child.kill().await.unwrap();

    let (code, stderr) = output(
        fhirsurge()
            .args(["serve-mock", "--listen", "127.0.0.1:0", "--jwks"])
            .arg(&jwks),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--auth smart"), "{stderr}");
    let (code, stderr) =
        output(fhirsurge().args(["serve-mock", "--listen", "127.0.0.1:0", "--auth", "smart"]))
            .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no trusted key"), "{stderr}");
}

/// A scenario file authenticating with `key` against `target`.
fn scenario_file(dir: &std::path::Path, target: &str, key: &str, alg: &str) -> std::path::PathBuf {
    write(dir, "client_id", CLIENT);
    write(dir, "key.pem", key);
    let text = format!(
        "name = \"refused\"\n[target]\nurl = \"{target}\"\ntimeout = \"5s\"\n\
         [load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n\
         [auth]\nkind = \"smart_backend\"\nclient_id_file = \"client_id\"\n\
         private_key_file = \"key.pem\"\nalg = \"{alg}\"\nkid = \"{RSA_KID}\"\n"
    );
    write(dir, "refused.toml", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_run_exits_3_with_the_oauth_error_and_no_key_material() {
    let keys = Keys::new();
    // The key is trusted, the client id is not registered.
    let m = Served::start(smart::Config {
        clients: vec!["somebody-else".into()],
        keys: keys.jwks.clone(),
        ..smart::Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), &m.base, &keys.rsa, "RS384");
    let out = dir.path().join("out");
    let (code, stderr) = output(
        fhirsurge()
            .env("FHIRSURGE_LOG", "debug")
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(&out),
    )
    .await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("invalid_client") && stderr.contains("not registered"),
        "{stderr}"
    );
    let assertions = m.smart().received_assertions();
    assert_eq!(assertions.len(), 1);
    assert!(m.smart().issued_tokens().is_empty());
    let mut secrets = keys.secret_lines();
    secrets.extend(assertions);
    secrets.push(CLIENT.to_owned());
    for s in &secrets {
        assert!(
            !stderr.contains(s.as_str()),
            "a secret is on stderr: {stderr}"
        );
    }
    assert!(!stderr.contains("eyJ"), "no JWT on stderr: {stderr}");
    assert!(!out.exists(), "a refused run writes no run folder");
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_algorithm_exits_2() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "mock", &keys.rsa, "ES384");
    let (code, stderr) = output(
        fhirsurge()
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("out")),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("auth.private_key"), "{stderr}");
    for s in keys.secret_lines() {
        assert!(!stderr.contains(s.as_str()), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_against_serve_mock_emulating_oracle_health_exits_3() {
    let secret = super::secret::SECRET;
    let mut child = fhirsurge()
        .env("FHIRSURGE_IT_MOCK_SECRET", secret)
        .args(["serve-mock", "--listen", "127.0.0.1:0", "--auth", "smart"])
        .args(["--profile", "oracle-health", "--client-id", CLIENT])
        .args(["--client-secret-env", "FHIRSURGE_IT_MOCK_SECRET"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the mock says where it listens")
        .unwrap()
        .unwrap();
    assert!(!first.contains(secret), "{first}");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{first}"))
        .trim_end_matches(',')
        .to_owned();
    let doc: Value = reqwest::get(format!("{base}.well-known/smart-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "private_key_jwt"])
    );
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrong-a8f3c1-not-the-secret";
    write(dir.path(), "client_id", CLIENT);
    write(dir.path(), "client_secret", wrong);
    let text = format!(
        "name = \"wrong-secret\"\nprofile = \"oracle-health\"\n[target]\nurl = \"{base}\"\n\
         timeout = \"5s\"\n[load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n\
         [auth]\nkind = \"smart_backend\"\nclient_id_file = \"client_id\"\n\
         client_secret_file = \"client_secret\"\n"
    );
    let path = write(dir.path(), "wrong.toml", &text);
    let out = dir.path().join("out");
    let (code, stderr) = output(
        fhirsurge()
            .env("FHIRSURGE_LOG", "debug")
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(&out),
    )
    .await;
    child.kill().await.unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("invalid_client"),
        "{stderr}"
    );
    assert!(
        stderr.contains("client_auth = client_secret_basic"),
        "{stderr}"
    );
    for s in [wrong, secret, CLIENT] {
        assert!(!stderr.contains(s), "a secret is on stderr: {stderr}");
    }
    assert!(!out.exists(), "a refused run writes no run folder");
}
