//! The fault proxy on real loopback sockets: each toxic and HTTP fault against a real
//! upstream (an axum server, a raw TCP server, a TLS server with a test CA), the ledger,
//! determinism, healing, and the refusals of bad input. This file holds the upstreams and
//! the clients the submodules share.

mod forwarding;
mod http;
mod toxics;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fhirsurge::fault::proxy::{self, Config, Proxy};
use fhirsurge::fault::{Entry, Ledger, REQUEST_HEADER, Spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const BOUND: Duration = Duration::from_secs(10);
const BIG: usize = 20_000;

// ---------------------------------------------------------------- upstreams

/// What the axum upstream saw.
#[derive(Default)]
struct Seen {
    hits: AtomicUsize,
    hosts: Mutex<Vec<String>>,
}

async fn handle(
    State(seen): State<Arc<Seen>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.hosts.lock().unwrap().push(host.clone());
    match (method, uri.path()) {
        (Method::POST, "/fhir/Patient") => (
            StatusCode::CREATED,
            [
                ("content-type", "application/fhir+json"),
                ("location", "Patient/1/_history/1"),
            ],
            format!(
                r#"{{"resourceType":"Patient","id":"1","received":{}}}"#,
                body.len()
            ),
        )
            .into_response(),
        (_, "/fhir/big") => "x".repeat(BIG).into_response(),
        (_, "/fhir/host") => host.into_response(),
        (_, "/fhir/chunked") => {
            let parts = ["ab", "cd", "ef"].map(|p| Ok::<_, Infallible>(Bytes::from(p)));
            Body::from_stream(futures::stream::iter(parts)).into_response()
        }
        _ => r#"{"resourceType":"Patient","id":"1"}"#.into_response(),
    }
}

async fn upstream() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A raw HTTP/1.1 upstream that records the size of every read and answers each request
/// with the length of its body; closes after answering when `close`.
async fn raw_upstream(close: bool) -> (SocketAddr, Arc<Mutex<Vec<usize>>>) {
    let reads = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = reads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                while let Ok(n @ 1..) = s.read(&mut chunk).await {
                    log.lock().unwrap().push(n);
                    buf.extend_from_slice(&chunk[..n]);
                    let Some((head, body)) = split_message(&buf) else {
                        continue;
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{}",
                        body.to_string().len(),
                        if close { "Connection: close\r\n" } else { "" },
                        body
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                    if close {
                        return;
                    }
                    buf.drain(..head + body);
                }
            });
        }
    });
    (addr, reads)
}

/// (head length, Content-Length) once a whole request with a Content-Length body is in `buf`.
fn split_message(buf: &[u8]) -> Option<(usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = req.parse(buf).ok()? else {
        return None;
    };
    let length = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        });
    (buf.len() >= head + length).then_some((head, length))
}

// ---------------------------------------------------------------- the proxy

struct Running {
    proxy: Proxy,
    addr: SocketAddr,
    ledger: Ledger,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The ledger's entries once at least `n` are in.
    async fn entries(&self, n: usize) -> Vec<Entry> {
        eventually("ledger entries", || self.ledger.entries().len() >= n).await;
        self.ledger.entries()
    }
}

async fn start(
    upstream: &str,
    faults: &[&str],
    seed: u64,
    ca_cert: Option<std::path::PathBuf>,
) -> Running {
    launch(upstream, faults, seed, ca_cert, false).await
}

/// A proxy in front of `upstream`; `serve_ledger` as the standalone proxy does.
async fn launch(
    upstream: &str,
    faults: &[&str],
    seed: u64,
    ca_cert: Option<std::path::PathBuf>,
    serve_ledger: bool,
) -> Running {
    let faults = faults
        .iter()
        .enumerate()
        .map(|(i, f)| (i, Spec::parse_flag(f).unwrap()))
        .collect();
    let ledger = Ledger::new(Instant::now());
    let config = Config {
        upstream: url::Url::parse(upstream).unwrap(),
        faults,
        seed,
        ledger: ledger.clone(),
        ca_cert,
        serve_ledger,
        control: Default::default(),
    };
    let proxy = Proxy::new(config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy::serve(
        listener,
        proxy.clone(),
        CancellationToken::new(),
    ));
    Running {
        proxy,
        addr,
        ledger,
    }
}

async fn start_on(up: SocketAddr, faults: &[&str]) -> Running {
    start(&format!("http://{up}/fhir/"), faults, 42, None).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(BOUND).build().unwrap()
}

/// Waits, boundedly, for a condition.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends raw bytes on a new connection and reads until EOF or an error.
async fn raw(addr: SocketAddr, request: &str) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    read_to_end(&mut s).await
}

async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match tokio::time::timeout(BOUND, s.read(&mut chunk))
            .await
            .expect("read bounded")
        {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

/// Reads one response with a Content-Length body: (status, body).
async fn read_response(s: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = res.parse(&buf) {
            let length: usize = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
            if buf.len() >= head + length {
                return (res.code.unwrap(), buf[head..head + length].to_vec());
            }
        }
        let n = tokio::time::timeout(BOUND, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "EOF before a whole response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn post(path: &str, request: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: proxy\r\n{REQUEST_HEADER}: {request}\r\nContent-Type: application/fhir+json\r\nContent-Length: 2\r\n\r\n{{}}"
    )
}

fn get(path: &str, request: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n{REQUEST_HEADER}: {request}\r\n\r\n")
}

fn only(entries: &[Entry]) -> &Entry {
    assert_eq!(entries.len(), 1, "{entries:#?}");
    &entries[0]
}
