//! The fault proxy: a TCP proxy between the harness (an HTTP/1.1 client) and a FHIR server
//! (http or https) that moves real bytes and injects faults on the way — toxiproxy's TCP
//! toxics with toxiproxy's names and semantics, and HTTP-aware faults (reset before or
//! after the upstream saw a request, injected 429/502/503/504, stalled responses) — and
//! records every injection in the ground-truth [`Ledger`](crate::fault::Ledger).
//!
//! It forwards request-targets unchanged and rewrites only `Host` (to the upstream's).
//! One upstream connection per client connection, opened when the first request to forward
//! arrives. If the upstream cannot be reached the proxy resets the client connection, so
//! the harness sees a network failure, not an answer the server never gave.
//! A client that closes its sending side is taken as gone (as nginx does by default).
//!
//! Layout: `faults` (typed faults, validation), `toxics` (pure delivery plans), `framing`
//! (HTTP/1.1 boundaries), `answer` (injected responses), `upstream` (plain/TLS connection),
//! `conn` (one client connection), `chain` (toxics applied to a stream), `requests` and
//! `responses` (the two directions), `watchdog` (connection-wide faults).
//! Uses `vocab` (fault specs, the ledger, seeds) only.

mod answer;
mod chain;
mod conn;
mod faults;
mod framing;
mod requests;
mod responses;
mod toxics;
mod upstream;
mod watchdog;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use faults::{kinds, validate_fault};

use crate::fault::{Entry, Ledger, SpecError};
use faults::{Fault, HttpAction, Kind};
use upstream::Upstream;

/// What a proxy needs.
pub struct Config {
    /// `http://` or `https://`, may have a path (`https://ehr.example/fhir/R4/`).
    pub upstream: url::Url,
    /// (position in the scenario, spec); the label is `spec.label(position)`.
    pub faults: Vec<(usize, crate::fault::Spec)>,
    pub seed: u64,
    /// Shared; its clock start is the run start. Every injection is recorded here.
    pub ledger: Ledger,
    /// An extra root CA (PEM) for an https upstream.
    pub ca_cert: Option<PathBuf>,
    /// Answer `GET /__fhirsurge/ledger` itself with the ledger (the standalone proxy):
    /// every request is then framed, so the answer can come in order on any connection.
    pub serve_ledger: bool,
    /// Who may use `/__fhirsurge/…` (the ledger) when the proxy serves it.
    pub control: crate::vocab::control::Access,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("proxy: upstream `{0}`: the scheme must be http or https")]
    Scheme(String),
    #[error("proxy: upstream `{0}` has no host")]
    NoHost(String),
    #[error("proxy: fault {label}: {source}")]
    Fault { label: String, source: SpecError },
    #[error("proxy: ca_cert `{}`: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("proxy: TLS: {0}")]
    Tls(String),
    #[error(
        "proxy: listen address {0} is not loopback; allow remote clients explicitly to expose the proxy"
    )]
    NotLoopback(SocketAddr),
}

/// A configured proxy; clones share it.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Validates every fault and the upstream, and loads the TLS roots for https.
    pub fn new(config: Config) -> Result<Proxy, Error> {
        let upstream = Upstream::new(&config.upstream, config.ca_cert.as_deref())?;
        let faults = config
            .faults
            .iter()
            .map(|(position, spec)| {
                Fault::new(*position, spec).map_err(|source| Error::Fault {
                    label: spec.label(*position),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let framing = config.serve_ledger || faults.iter().any(|f| matches!(f.kind, Kind::Http(_)));
        Ok(Proxy {
            shared: Arc::new(Shared {
                upstream,
                counters: faults.iter().map(|_| AtomicU64::new(0)).collect(),
                faults,
                seed: config.seed,
                ledger: config.ledger,
                on: AtomicBool::new(true),
                heal: watch::Sender::new(true),
                framing,
                serve_ledger: config.serve_ledger,
                control: config.control,
            }),
        })
    }

    /// `false` heals: every fault stops at once — a `down` proxy accepts again, held
    /// responses and delayed bytes are released, blackholed connections are closed.
    /// `true` puts the faults back in force.
    pub fn set_enabled(&self, on: bool) {
        self.shared.on.store(on, Ordering::SeqCst);
        self.shared.heal.send_replace(on);
    }
}

/// Serves client connections from `listener` until `shutdown`; open connections end then too.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let shared = proxy.shared.clone();
                tokio::spawn(conn::run(stream, shared, shutdown.child_token()));
            }
            Err(e) => {
                // Per-connection failures (aborted handshakes, fd exhaustion): keep serving.
                tracing::warn!("fault proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Refuses a listen address off loopback unless `allow_remote`: the proxy has no
/// authentication and forwards to a real server.
pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<(), Error> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(Error::NotLoopback(addr))
    }
}

/// The request a fault touched, as the ledger names it.
#[derive(Clone, Debug, Default)]
struct Tag {
    /// The harness's request header value.
    request: Option<String>,
    resource_type: Option<String>,
    method: Option<String>,
    /// The request-target as sent.
    path: Option<String>,
    /// The business identifier (`system|value`) of the resource in the request body.
    identifier: Option<String>,
}

/// Where the standalone proxy serves its ledger.
pub const LEDGER_PATH: &str = "/__fhirsurge/ledger";

/// What every connection of one proxy shares.
struct Shared {
    upstream: Upstream,
    faults: Vec<Fault>,
    /// Per fault: decisions taken so far (connections for TCP toxics, requests for HTTP faults).
    counters: Vec<AtomicU64>,
    seed: u64,
    ledger: Ledger,
    /// Whether faults are in force (fast check)…
    on: AtomicBool,
    /// …and the same, to wait on.
    heal: watch::Sender<bool>,
    /// Some fault is HTTP-aware (or the ledger is served): responses must be framed,
    /// not just copied.
    framing: bool,
    serve_ledger: bool,
    control: crate::vocab::control::Access,
}

impl Shared {
    fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The next decision number of fault `i`.
    fn next(&self, i: usize) -> u64 {
        self.counters[i].fetch_add(1, Ordering::Relaxed)
    }

    /// Which HTTP fault, if any, acts on this request. Every fault that covers the request
    /// takes a decision number, so the same seed and request order give the same choices;
    /// when several fire, the first in scenario order acts.
    fn decide(&self, tag: &Tag) -> Option<(usize, HttpAction)> {
        let elapsed = self.ledger.elapsed();
        let on = self.enabled();
        let mut chosen = None;
        for (i, f) in self.faults.iter().enumerate() {
            let Kind::Http(action) = f.kind else { continue };
            if !f.covers(tag.resource_type.as_deref()) {
                continue;
            }
            let n = self.next(i);
            if chosen.is_none() && on && f.spec.fires(self.seed, f.position, n, elapsed) {
                chosen = Some((i, action));
            }
        }
        chosen
    }

    fn record(&self, fault: usize, tag: &Tag, detail: String) {
        let f = &self.faults[fault];
        tracing::debug!(fault = %f.label, request = ?tag.request, "fault proxy: {detail}");
        self.ledger.record(Entry {
            fault: f.label.clone(),
            kind: f.spec.kind.name().to_owned(),
            resource_type: tag.resource_type.clone(),
            request: tag.request.clone(),
            method: tag.method.clone(),
            path: tag.path.clone(),
            identifier: tag.identifier.clone(),
            detail,
            ..Entry::default()
        });
    }

    /// Sleeps `d`, or less if the faults are healed meanwhile: true when it slept it all.
    async fn sleep_unless_healed(&self, d: Duration) -> bool {
        if d.is_zero() {
            return true;
        }
        let mut heal = self.heal.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = heal.wait_for(|on| !*on) => false,
        }
    }
}
