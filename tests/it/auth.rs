//! Authentication and TLS against loopback servers: SMART Backend Services (discovery,
//! a signed client assertion checked with the public key, the token sent as a bearer,
//! cached, renewed, shared by concurrent callers, one re-authentication on a 401),
//! static bearer and basic, typed errors with exit codes that never show a secret, a
//! secret scan of the history, and rustls certificate verification with a test CA.

mod ehr;
mod errors;
mod smart;
pub(crate) mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fhirsurge::fhir::auth::{self, Alg};
use fhirsurge::fhir::{Client, Ctx, Note, Recorder, Retry, Settings, Tls};
use fhirsurge::history::Record;
use fhirsurge::metrics::Sample;
use tokio::sync::mpsc;

const CLIENT_ID: &str = "client-7f3a9c";

/// A test key pair, generated now: (private PKCS#8 PEM, public SPKI PEM).
fn key_pair(alg: Alg) -> (String, String) {
    let kp = match alg {
        Alg::Rs384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA384),
        Alg::Es384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
    }
    .unwrap();
    (kp.serialize_pem(), kp.public_key_pem())
}

/// A file name no other call gets.
fn unique(name: &str) -> String {
    format!("{}-{name}", uuid::Uuid::new_v4().simple())
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn settings(base: &str, auth: auth::Config, tls: Tls) -> Settings {
    Settings {
        base: url::Url::parse(base).unwrap(),
        timeout: Duration::from_secs(5),
        retry: Retry::default(),
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: None,
        ledger: None,
        auth,
        tls,
    }
}

fn client(base: &str, auth: auth::Config) -> (Client, mpsc::Receiver<Note>) {
    let (recorder, rx) = Recorder::new(Instant::now(), 100_000);
    let c = Client::new(settings(base, auth, Tls::default()), recorder).unwrap();
    (c, rx)
}

/// Everything recorded so far.
fn drain(rx: &mut mpsc::Receiver<Note>) -> (Vec<Record>, Vec<Sample>) {
    let (mut records, mut samples) = (Vec::new(), Vec::new());
    while let Ok(note) = rx.try_recv() {
        if let Some(r) = note.record() {
            records.push(r);
        }
        if let Some(s) = note.sample() {
            samples.push(s.clone());
        }
    }
    (records, samples)
}

async fn read(c: &Client, id: &str) -> fhirsurge::fhir::Reply {
    c.read(Ctx::default(), "Patient", id).await
}

/// The body lines of a PEM (its base64), each a secret on its own.
fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

fn assert_no_secret(texts: &[String], secrets: &[String]) {
    assert!(!secrets.is_empty());
    for text in texts {
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into: {text}"
            );
        }
    }
}
