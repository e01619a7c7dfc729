//! The notification receiver: during a run, an HTTP endpoint the server POSTs
//! subscription notifications to. Every delivery is checked for the run's shared secret
//! (the [`SECRET_HEADER`] the harness put in `channel.header`), read for what it names
//! (`parse`), answered (2xx, or as a scheduled receiver fault says: `faults`) and handed
//! to the run over a bounded channel as a [`history::Notification`] (received at, the
//! subscription from the path `/<name>`, event numbers, resources named, the body's
//! digest — never the body). Receiver faults go in the ledger.
//!
//! Plain HTTP on loopback (or wherever `listen` says), or HTTPS with the certificate and
//! key of `[subscriptions.tls]` (`tls`, rustls). Uses `history` (the record it
//! produces) and `vocab` (fault specs and the ledger); nothing that runs a load.

mod conn;
pub mod criteria;
pub mod faults;
pub mod parse;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::history::{self, Notification};
use crate::vocab::fault::{Spec, SpecError};
use crate::vocab::ledger::{Entry, Ledger};
pub use conn::{serve, spawn};
pub use criteria::Criteria;

/// The header carrying the run's shared secret on every delivery.
pub const SECRET_HEADER: &str = "x-fhirsurge-notify-secret";

/// How to build the receiver.
#[derive(Debug)]
pub struct Config {
    pub seed: u64,
    /// Run clock start: `received_us` and fault windows count from it.
    pub start: Instant,
    /// The shared secret every delivery must carry.
    pub secret: String,
    /// Identifier systems of harness writes start with this.
    pub prefix: String,
    /// Receiver faults with their position in the scenario.
    pub faults: Vec<(usize, Spec)>,
    pub ledger: Ledger,
    /// Where deliveries go (bounded: a slow consumer slows the answers, never grows memory).
    pub deliveries: mpsc::Sender<Notification>,
    /// Serve HTTPS with this (`tls::acceptor`); `None`: plain HTTP.
    pub tls: Option<tls::Acceptor>,
}

/// A running receiver. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Receiver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seed: u64,
    start: Instant,
    secret: String,
    prefix: String,
    faults: Vec<faults::Fault>,
    faults_on: AtomicBool,
    ledger: Ledger,
    tx: mpsc::Sender<Notification>,
    tls: Option<tls::Acceptor>,
}

/// Why a receiver cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("receiver: fault `{label}`: {source}")]
pub struct Error {
    label: String,
    source: SpecError,
}

impl Receiver {
    pub fn new(config: Config) -> Result<Receiver, Error> {
        let faults = config
            .faults
            .into_iter()
            .map(|(p, spec)| {
                let label = spec.label(p);
                faults::Fault::new(p, spec).map_err(|source| Error { label, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Receiver {
            inner: Arc::new(Inner {
                seed: config.seed,
                start: config.start,
                secret: config.secret,
                prefix: config.prefix,
                faults,
                faults_on: AtomicBool::new(true),
                ledger: config.ledger,
                tx: config.deliveries,
                tls: config.tls,
            }),
        })
    }

    /// `false` heals: no receiver fault fires any more.
    pub fn set_faults_enabled(&self, on: bool) {
        self.inner.faults_on.store(on, Ordering::Relaxed);
    }

    fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(deliver)
            .with_state(self.clone())
    }

    /// Whether a `receiver_down` fault refuses the connection just accepted.
    fn down(&self) -> bool {
        let s = &self.inner;
        if !s.faults_on.load(Ordering::Relaxed) {
            return false;
        }
        let elapsed = s.start.elapsed();
        let Some(f) = s
            .faults
            .iter()
            .filter(|f| f.kind == faults::Kind::Down)
            .find(|f| f.decide(s.seed, elapsed))
        else {
            return false;
        };
        self.record(f, "connection reset on accept: receiver down".into());
        true
    }

    fn record(&self, f: &faults::Fault, detail: String) {
        self.inner.ledger.record(Entry {
            fault: f.label.clone(),
            kind: f.name.clone(),
            detail,
            observable: true,
            ..Entry::default()
        });
    }
}

/// Checks a receiver fault spec.
pub fn validate_fault(spec: &Spec) -> Result<(), SpecError> {
    faults::parse(spec).map(|_| ())
}

/// One delivery: read, record, answer.
async fn deliver(
    State(rx): State<Receiver>,
    abort: Option<Extension<conn::Abort>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = &rx.inner;
    let received_us = s.start.elapsed().as_micros() as u64;
    let secret_ok = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == s.secret);
    let parsed = parse::parse(&body, &s.prefix);
    let fault = match secret_ok && s.faults_on.load(Ordering::Relaxed) {
        true => faults::choose(&s.faults, |f| f.decide(s.seed, s.start.elapsed())),
        false => None,
    };
    let answered = match (secret_ok, fault.map(|f| f.kind)) {
        (false, _) => Some(401),
        (true, Some(faults::Kind::Error(status))) => Some(status),
        (true, Some(faults::Kind::Reset)) => None,
        (true, _) => Some(200),
    };
    let numbers = parsed.event_numbers.clone();
    if let Some(f) = fault {
        let what = match f.kind {
            faults::Kind::Error(status) => format!("answered {status}"),
            faults::Kind::Reset => "reset the connection".to_owned(),
            faults::Kind::Slow(d) => format!("answered after {}", humantime::format_duration(d)),
            faults::Kind::Down => "refused".to_owned(),
        };
        rx.record(f, format!("delivery {what} (events {numbers:?})"));
    }
    let note = Notification {
        received_us,
        subscription: name_of(&uri),
        kind: parsed.kind,
        answered,
        secret_ok,
        events_since_start: parsed.events_since_start,
        event_numbers: parsed.event_numbers,
        focus: parsed.focus,
        digest: blake3::hash(&body).to_hex().to_string(),
        bytes: body.len() as u64,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        fault: fault.map(|f| f.label.clone()),
        problem: parsed.problem,
    };
    // A run that stopped listening is being torn down: nothing left to keep.
    let _ = s.tx.send(note).await;
    if let Some(faults::Kind::Slow(d)) = fault.map(|f| f.kind) {
        tokio::time::sleep(d).await;
    }
    match answered {
        Some(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        None => {
            if let Some(Extension(a)) = abort {
                a.abort();
            }
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The subscription's name: the last path segment (`/notify/<name>`), decoded.
fn name_of(uri: &Uri) -> String {
    let last = uri
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    percent_encoding::percent_decode_str(last)
        .decode_utf8_lossy()
        .into_owned()
}

/// The history record of a delivery (what the run appends).
pub fn event(n: Notification) -> history::Event {
    history::Event::Notification(n)
}
