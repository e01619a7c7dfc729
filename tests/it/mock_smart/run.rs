//! Whole authenticated runs: against the in-process mock (`url = "mock"`, which trusts
//! the scenario's key) with 3 s tokens, where every 401 is followed by a re-sent request
//! that succeeds and nothing is found; and against a served mock whose issued tokens
//! and received assertions are known, where no file of the run folder and no log line
//! holds the key, an assertion or a token.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Duration;

use fhirsurge::cli::exit::{self, Failure};
use fhirsurge::fhir::Tls;
use fhirsurge::history::{Event, Interaction, Op, Phase, Reader, Record};
use fhirsurge::mock::smart::Algorithm;
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::{Overrides, Scenario};

use super::{CLIENT, Keys, RSA_KID, Served, private_key, write};
use crate::run::assert_valid_report;

/// Log lines captured from every test of this binary once [`capture_logs`] ran.
pub(super) static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Beyond this the capture stops (the scan covers what was kept).
const LOG_CAP: usize = 256 << 20;

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
        if logs.len() + buf.len() <= LOG_CAP {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every `tracing` event, debug and up, to [`LOGS`].
pub(super) fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new("debug,goose=info,h2=info");
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| Capture)
            .finish();
        // Only the `tracing` dispatcher: goose installs its own `log` logger when an
        // attack starts, so bridging `log` here would race with it.
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test sets a global tracing subscriber");
    });
}

/// A scenario authenticating with `key` (written into `dir`) against `target`.
fn scenario(dir: &Path, target: &str, key: &str, alg: &str, kid: &str, extra: &str) -> Scenario {
    let id = write(dir, "client_id", &format!("{CLIENT}\n"));
    let key = write(dir, "key.pem", key);
    let text = format!(
        r#"
name = "smart-it"
seed = 11
[target]
url = "{target}"
timeout = "5s"
{extra}
[load]
model = "closed"
users = 3
duration = "8s"
[readback]
settle = "100ms"
[auth]
kind = "smart_backend"
client_id_file = "{}"
private_key_file = "{}"
alg = "{alg}"
kid = "{kid}"
scopes = ["system/*.cruds"]
"#,
        id.display(),
        key.display()
    );
    Scenario::from_str(&text, Path::new("smart-it.toml")).unwrap()
}

pub(super) fn history(dir: &Path) -> Vec<Record> {
    Reader::open(&dir.join(fhirsurge::history::FILE))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every 401 is followed by a re-sent request that ends `ok`, after a token request;
/// no completion fails otherwise. Returns (401s, tokens fetched), leaving the scope
/// probe's requests aside.
pub(super) fn every_401_was_handled(records: &[Record]) -> (usize, usize) {
    let mut ops: HashMap<u64, &Op> = HashMap::new();
    let mut ok = HashMap::new();
    let mut unauthorized = Vec::new();
    let mut tokens = 0;
    // The scope probe's requests (its own token, its 403s) are judged by the probe.
    let probe: std::collections::HashSet<u64> = records
        .iter()
        .filter(|r| matches!(&r.event, Event::Invoke(op) if op.phase == Phase::ScopeProbe))
        .map(|r| r.index)
        .collect();
    for r in records {
        match &r.event {
            Event::Invoke(op) if op.phase == Phase::ScopeProbe => {}
            Event::Ok(c) | Event::Fail(c) | Event::Info(c) if probe.contains(&c.invoke) => {}
            Event::Invoke(op) => {
                ops.insert(r.index, op);
            }
            Event::Ok(c) => {
                ok.insert(c.invoke, r.index);
                tokens += usize::from(ops[&c.invoke].f == Interaction::Token);
            }
            Event::Fail(c) | Event::Info(c) => {
                assert_eq!(c.status, Some(401), "only 401s may fail: {r:?}");
                unauthorized.push((c.invoke, r.index));
            }
            _ => {}
        }
    }
    for (invoke, at) in &unauthorized {
        let first = ops[invoke].retry_of.unwrap_or(*invoke);
        let resent = records.iter().find(|r| {
            r.index > *at && matches!(&r.event, Event::Invoke(op) if op.retry_of == Some(first))
        });
        let resent = resent.unwrap_or_else(|| panic!("the 401 of {invoke} was not re-sent"));
        assert!(
            ok.contains_key(&resent.index),
            "the re-send of {invoke} did not succeed"
        );
        let token_between = records.iter().any(|r| {
            r.index > *at
                && r.index < resent.index
                && matches!(&r.event, Event::Invoke(op) if op.f == Interaction::Token)
        });
        assert!(
            token_between,
            "no re-authentication after the 401 of {invoke}"
        );
    }
    (unauthorized.len(), tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_run_against_the_mock_renews_3s_tokens_and_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = private_key(Algorithm::ES384);
    let s = scenario(
        dir.path(),
        "mock",
        &key,
        "ES384",
        "it-es384",
        "token_lifetime = \"3s\"",
    );
    let out = dir.path().join("out");
    let outcome = run::execute(&s, &Options::new(out)).await.unwrap();
    let r = &outcome.report;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.summary.encounters > 0);
    let (unauthorized, tokens) = every_401_was_handled(&history(&outcome.dir));
    assert!(
        tokens >= 3,
        "8 s on 3 s tokens needs renewals: {tokens} tokens"
    );
    // The load phase's token requests (read-back ones are counted apart) all succeeded.
    let token_op = r.operations.iter().find(|o| o.op == "token").unwrap();
    assert!(
        token_op.ok >= 1 && token_op.fail + token_op.info == 0,
        "{token_op:?}"
    );
    eprintln!("{tokens} tokens, {unauthorized} 401s");
    assert!(!r.run.tls_insecure);
    assert_valid_report(&outcome.dir.join("report.json"));
}

/// Every file under `dir`, recursively (bounded).
pub(super) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
        assert!(out.len() < 10_000, "runaway folder");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_authenticated_run_no_file_and_no_log_line_holds_a_secret() {
    capture_logs();
    let keys = Keys::new();
    let m = Served::with(&keys, &[], Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(dir.path(), &m.base, &keys.rsa, "RS384", RSA_KID, "");
    let insecure = Overrides {
        tls: Some(Tls::Insecure),
        ..Overrides::default()
    };
    s.apply(&insecure).unwrap();
    let out = dir.path().join("out");
    let outcome = run::execute(&s, &Options::new(out)).await.unwrap();
    assert!(outcome.report.findings.is_empty());
    assert!(outcome.report.run.tls_insecure, "--insecure is recorded");
    assert_valid_report(&outcome.dir.join("report.json"));

    let mut secrets = keys.secret_lines();
    let tokens = m.smart().issued_tokens();
    let assertions = m.smart().received_assertions();
    assert!(
        tokens.len() >= 3 && assertions.len() == tokens.len(),
        "{}",
        tokens.len()
    );
    secrets.extend(tokens);
    secrets.extend(assertions);
    secrets.push(CLIENT.to_owned());
    let names: Vec<String> = files(&outcome.dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "report.json",
        fhirsurge::history::FILE,
        "ledger.json",
        "report.html",
        "junit.xml",
        "summary.md",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.ends_with(".hlog")), "{names:?}");
    for file in files(&outcome.dir) {
        let bytes = std::fs::read(&file).unwrap();
        // The history is compressed: a secret in it would not show in its bytes.
        let bytes = if file.extension().is_some_and(|e| e == "zst") {
            zstd::decode_all(&bytes[..]).unwrap()
        } else {
            bytes
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in {}",
                file.display()
            );
        }
    }
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(
        logs.contains("mock SMART: token issued"),
        "the capture works"
    );
    for line in logs.lines() {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret is in the log line: {line}"
            );
        }
    }
}

#[tokio::test]
async fn the_probe_checks_certificates_as_the_client_does() {
    let (ca_pem, chain, key) = crate::auth::tls::certificates();
    let port = crate::auth::tls::serve(chain, key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_cert = write(dir.path(), "ca.pem", &ca_pem);
    let text = format!(
        "name = \"probe\"\n[target]\nurl = \"https://localhost:{port}/\"\n\
         [load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n"
    );
    let s = Scenario::from_str(&text, Path::new("probe.toml")).unwrap();
    let start = std::time::Instant::now();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ledger = fhirsurge::fault::Ledger::new(start);
    let profile = std::sync::Arc::new(fhirsurge::profile::Profile::load("us-core").unwrap());
    let stack = run::Stack::start(&s, &profile, &ledger, start, &shutdown)
        .await
        .unwrap();
    let timeout = Duration::from_secs(5);
    let refused = stack.probe(timeout, &Tls::default()).await.unwrap_err();
    assert!(
        matches!(refused, run::Error::Unreachable { .. }),
        "{refused}"
    );
    let with_ca = Tls::Verify {
        ca_cert: Some(ca_cert),
    };
    stack.probe(timeout, &with_ca).await.unwrap();
    stack.probe(timeout, &Tls::Insecure).await.unwrap();
    let missing = Tls::Verify {
        ca_cert: Some(dir.path().join("missing.pem")),
    };
    let bad = stack.probe(timeout, &missing).await.unwrap_err();
    let message = bad.to_string();
    let code = exit::code(&Failure::from(bad).into());
    assert_eq!(code, 2, "{message}");
}
