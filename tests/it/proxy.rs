//! The fault proxy on real loopback sockets: each toxic and HTTP fault against a real
//! upstream (an axum server, a raw TCP server, a TLS server with a test CA), the ledger,
//! determinism, healing, and the refusals of bad input.

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

// ---------------------------------------------------------------- forwarding

#[tokio::test]
async fn forwards_paths_unchanged_and_rewrites_only_the_host() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &[]).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(p.url("/fhir/host")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), up.to_string());
    }
    let r = c
        .post(p.url("/fhir/Patient"))
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "Patient/1/_history/1");
    assert!(r.text().await.unwrap().contains("\"received\":7"));
    assert_eq!(
        c.get(p.url("/fhir/chunked"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "abcdef"
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 5);
    assert!(
        seen.hosts
            .lock()
            .unwrap()
            .iter()
            .all(|h| *h == up.to_string())
    );
    assert!(p.ledger.entries().is_empty());
}

#[tokio::test]
async fn framing_keeps_a_keepalive_connection_in_sync() {
    // A fault that never fires still makes the proxy frame every response.
    let (up, seen) = upstream().await;
    let p = start_on(up, &["http_status,status=503,probability=0"]).await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(
            c.get(p.url("/fhir/chunked"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "abcdef"
        );
        let head = c.head(p.url("/fhir/big")).send().await.unwrap();
        assert_eq!(head.headers()["content-length"], BIG.to_string().as_str());
        assert_eq!(
            c.get(p.url("/fhir/big"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len(),
            BIG
        );
    }
    // A chunked request body on a raw keep-alive connection, then a second request.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let chunked = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: p\r\n{REQUEST_HEADER}: c1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{{\"a\r\n4\r\n\":1}}\r\n0\r\n\r\n"
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 201);
    assert!(String::from_utf8(body).unwrap().contains("\"received\":7"));
    s.write_all(get("/fhir/Patient/1", "c2").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    assert_eq!(seen.hits.load(Ordering::SeqCst), 8);
    assert!(p.ledger.entries().is_empty());
}

// ---------------------------------------------------------------- TCP toxics

#[tokio::test]
async fn latency_delays_the_response_by_at_least_the_latency() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["latency,latency=300ms"]).await;
    let sent = Instant::now();
    let r = client()
        .get(p.url("/fhir/Patient/1"))
        .header(REQUEST_HEADER, "lat-1")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    // The fault's definition: no byte of the response arrives before the latency.
    assert!(sent.elapsed() >= Duration::from_millis(300));
    assert!(body.contains("Patient"));
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.fault.as_str(), e.kind.as_str()),
        ("latency#0", "latency")
    );
    assert_eq!(e.request.as_deref(), Some("lat-1"));
    assert_eq!(e.resource_type.as_deref(), Some("Patient"));
    assert_eq!(e.detail, "latency 300ms downstream");
}

#[tokio::test]
async fn slicer_delivers_the_request_in_slices() {
    let (up, reads) = raw_upstream(false).await;
    let p = start_on(
        up,
        &["slicer,stream=upstream,average_size=64,size_variation=16,delay=5ms"],
    )
    .await;
    let body = "y".repeat(2000);
    let r = client()
        .post(p.url("/fhir/Patient"))
        .header(REQUEST_HEADER, "s-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "2000");
    let reads = reads.lock().unwrap().clone();
    assert!(
        reads.len() >= 2,
        "the upstream got the request in {} read(s)",
        reads.len()
    );
    let e = only(&p.entries(1).await).clone();
    assert_eq!(e.request.as_deref(), Some("s-1"));
    assert!(e.detail.starts_with("slicer 64±16 bytes"), "{}", e.detail);
}

#[tokio::test]
async fn limit_data_cuts_after_exactly_the_bytes() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["limit_data,bytes=100"]).await;
    let (got, error) = raw(p.addr, &get("/fhir/big", "ld-1")).await;
    assert_eq!(error, None, "a clean EOF");
    assert_eq!(got.len(), 100);
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let e = only(&p.entries(1).await).clone();
    assert_eq!(e.request.as_deref(), Some("ld-1"));
    assert_eq!(e.detail, "limit_data after 100 bytes downstream");
}

#[tokio::test]
async fn bandwidth_paces_the_response() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["bandwidth,rate=50"]).await;
    let sent = Instant::now();
    let r = client()
        .get(p.url("/fhir/big"))
        .header(REQUEST_HEADER, "bw-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), BIG);
    // 20 KB at 50 KB/s: the body alone takes 400 ms by definition.
    assert!(sent.elapsed() >= Duration::from_millis(400));
    let e = p.entries(1).await[0].clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("bw-1"), "bandwidth 50 KB/s downstream")
    );
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let (up, _) = raw_upstream(true).await;
    let p = start_on(up, &["slow_close,delay=300ms"]).await;
    let sent = Instant::now();
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "sc-1")).await;
    assert_eq!(error, None);
    assert!(
        got.ends_with(b"\r\n\r\n2"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The upstream closed at once; the client's EOF comes only after the delay.
    assert!(sent.elapsed() >= Duration::from_millis(300));
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("sc-1"), "slow_close: close delayed 300ms downstream")
    );
}

#[tokio::test]
async fn timeout_zero_blackholes_until_healed() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["timeout,timeout=0s"]).await;
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .get(p.url("/fhir/Patient/1"))
        .header(REQUEST_HEADER, "bh-1")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("bh-1"), "timeout: dropped the data downstream")
    );
    assert_eq!(
        seen.hits.load(Ordering::SeqCst),
        1,
        "downstream blackhole: the request went through"
    );
    p.proxy.set_enabled(false);
    let r = client().get(p.url("/fhir/Patient/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn timeout_closes_the_connection_after_the_timeout() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["timeout,stream=upstream,timeout=1s"]).await;
    let (got, error) = raw(p.addr, &get("/fhir/Patient/1", "to-1")).await;
    assert_eq!((got.len(), error), (0, None), "no data, then a clean close");
    let details: Vec<String> = p.entries(2).await.into_iter().map(|e| e.detail).collect();
    assert_eq!(
        details,
        [
            "timeout: dropped the data upstream",
            "timeout: connection closed after 1s upstream"
        ]
    );
}

#[tokio::test]
async fn reset_peer_upstream_stops_the_request_and_downstream_stops_the_response() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["reset_peer,stream=upstream"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "rp-1")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    assert_eq!(
        seen.hits.load(Ordering::SeqCst),
        0,
        "upstream reset: the server never saw it"
    );
    assert_eq!(only(&p.entries(1).await).request.as_deref(), Some("rp-1"));

    let p = start_on(up, &["reset_peer"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "rp-2")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    eventually("the upstream to see the request", || {
        seen.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    let e = only(&p.entries(1).await).clone();
    assert_eq!(e.request.as_deref(), Some("rp-2"));
    assert!(
        e.detail.starts_with("reset_peer: connection reset"),
        "{}",
        e.detail
    );
}

#[tokio::test]
async fn down_refuses_new_connections_and_resets_open_ones_until_healed() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["down"]).await;
    p.proxy.set_enabled(false);
    let mut open = TcpStream::connect(p.addr).await.unwrap();
    open.write_all(get("/fhir/Patient/1", "d-1").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut open).await.0, 200);

    p.proxy.set_enabled(true);
    let (rest, error) = read_to_end(&mut open).await;
    assert_eq!(
        (rest.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset)),
        "the open connection"
    );
    let (got, error) = raw(p.addr, &get("/fhir/Patient/1", "d-2")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset)),
        "a new connection"
    );
    let details: Vec<String> = p.entries(2).await.into_iter().map(|e| e.detail).collect();
    assert_eq!(
        details,
        [
            "down: open connection reset",
            "down: connection reset on accept"
        ]
    );

    p.proxy.set_enabled(false);
    assert_eq!(
        client()
            .get(p.url("/fhir/Patient/1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

// ---------------------------------------------------------------- HTTP faults

#[tokio::test]
async fn reset_before_means_the_upstream_never_saw_the_request() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["reset_before"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "rb-1")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.fault.as_str(), e.request.as_deref()),
        ("reset_before#0", Some("rb-1"))
    );
    assert_eq!(e.resource_type.as_deref(), Some("Patient"));
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn reset_after_means_the_upstream_applied_it_and_the_client_got_no_status() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["reset_after"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "ra-1")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("ra-1"), "reset after 201 from upstream")
    );
}

async fn status_case(fault: &str) -> (reqwest::Response, Arc<Seen>, Running) {
    let (up, seen) = upstream().await;
    let p = start_on(up, &[fault]).await;
    let c = client();
    let r = c
        .post(p.url("/fhir/Patient"))
        .header(REQUEST_HEADER, "h-1")
        .body("{\"x\":2}")
        .send()
        .await
        .unwrap();
    (r, seen, p)
}

async fn outcome(r: reqwest::Response) -> serde_json::Value {
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["resourceType"], "OperationOutcome");
    json
}

#[tokio::test]
async fn http_429_and_503_are_answered_without_the_upstream() {
    let (r, seen, p) = status_case("http_status,status=429,retry_after=7s").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(outcome(r).await["issue"][0]["code"], "throttled");
    // The connection stays usable: a body was skipped, the next request is answered too.
    let again = client().get(p.url("/fhir/Patient/1")).send().await.unwrap();
    assert_eq!(again.status(), 429);
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0);
    let e = p.entries(1).await[0].clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("h-1"), "answered 429 without forwarding the request")
    );

    // A client waiting for `100 Continue` never sends its body: answer, then close.
    let expect = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: p\r\n{REQUEST_HEADER}: h-2\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    );
    let (got, error) = raw(p.addr, &expect).await;
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 429 ") && text.contains("Connection: close\r\n"),
        "{text}"
    );
    assert_eq!(error, None);

    let (r, seen, _) = status_case("http_status,status=429").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    outcome(r).await;
    let (r, seen503, _) = status_case("http_status,status=503").await;
    assert_eq!(r.status(), 503);
    assert_eq!(outcome(r).await["issue"][0]["code"], "transient");
    assert_eq!(
        seen.hits.load(Ordering::SeqCst) + seen503.hits.load(Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn http_502_and_504_come_after_the_upstream_committed() {
    for status in [502u16, 504] {
        let (r, seen, p) = status_case(&format!("http_status,status={status}")).await;
        assert_eq!(r.status().as_u16(), status);
        outcome(r).await;
        assert_eq!(
            seen.hits.load(Ordering::SeqCst),
            1,
            "{status}: the upstream was called once"
        );
        let e = only(&p.entries(1).await).clone();
        assert_eq!(e.detail, format!("{status} after 201 from upstream"));
        assert_eq!(e.request.as_deref(), Some("h-1"));
    }
}

#[tokio::test]
async fn stall_holds_the_response_until_healed() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["stall,latency=60s"]).await;
    let url = p.url("/fhir/Patient");
    let pending = tokio::spawn(async move {
        client()
            .post(url)
            .header(REQUEST_HEADER, "st-1")
            .body("{}")
            .send()
            .await
    });
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("st-1"), "held the 201 response from upstream for 1m")
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
    assert!(!pending.is_finished());
    p.proxy.set_enabled(false);
    let r = tokio::time::timeout(BOUND, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 201);
}

// ---------------------------------------------------------------- determinism, healing

async fn injected(up: SocketAddr, seed: u64) -> BTreeSet<String> {
    let p = start(
        &format!("http://{up}/fhir/"),
        &["http_status,status=503,probability=0.3"],
        seed,
        None,
    )
    .await;
    let c = client();
    let mut refused = BTreeSet::new();
    for i in 0..60 {
        let r = c
            .get(p.url("/fhir/Patient/1"))
            .header(REQUEST_HEADER, i.to_string())
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            refused.insert(i.to_string());
        }
    }
    let recorded: BTreeSet<String> = p
        .ledger
        .entries()
        .into_iter()
        .filter_map(|e| e.request)
        .collect();
    assert_eq!(
        recorded, refused,
        "the ledger names exactly the requests that got the fault"
    );
    recorded
}

#[tokio::test]
async fn the_same_seed_and_order_inject_the_same_requests() {
    let (up, _) = upstream().await;
    let first = injected(up, 7).await;
    assert_eq!(injected(up, 7).await, first);
    assert!(
        (5..=35).contains(&first.len()),
        "{} of 60 at 0.3",
        first.len()
    );
    assert_ne!(injected(up, 8).await, first);
}

#[tokio::test]
async fn healing_stops_every_fault_at_once() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["latency,latency=60s", "http_status,status=503"]).await;
    let url = p.url("/fhir/Patient/1");
    let pending = tokio::spawn(async move {
        client()
            .get(url)
            .header(REQUEST_HEADER, "in-flight")
            .send()
            .await
    });
    // The 503 is answered by the proxy, then held by the latency toxic.
    p.entries(2).await;
    p.proxy.set_enabled(false);
    let r = tokio::time::timeout(BOUND, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 503, "the held bytes are released");
    let before = p.ledger.entries().len();
    for _ in 0..3 {
        assert_eq!(
            client()
                .get(p.url("/fhir/Patient/1"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        p.ledger.entries().len(),
        before,
        "nothing injected once healed"
    );
}

// ---------------------------------------------------------------- https upstream

/// A TLS server for `localhost` signed by a fresh test CA; answers with the Host it got.
async fn tls_upstream() -> (u16, tempfile::NamedTempFile, Arc<AtomicUsize>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fhirsurge test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::from(leaf_key),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        async move { Ok::<_, Infallible>(hyper::Response::new(Body::from(host))) }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (port, pem, hits)
}

#[tokio::test]
async fn https_upstream_is_verified_against_the_given_ca() {
    let (port, ca, hits) = tls_upstream().await;
    let upstream = format!("https://localhost:{port}/fhir/");
    let p = start(&upstream, &[], 1, Some(ca.path().to_owned())).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(p.url("/fhir/Patient/1")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), format!("localhost:{port}"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Without the CA the certificate does not verify: the client sees a network failure.
    let untrusting = start(&upstream, &[], 1, None).await;
    let err = c
        .get(untrusting.url("/fhir/Patient/1"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_faults_and_listen_addresses_are_refused_naming_the_field() {
    let unknown = proxy::validate_fault(&Spec::parse_flag("jitterbug").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("`jitterbug`") && unknown.contains("limit_data"),
        "{unknown}"
    );
    let unexpected = proxy::validate_fault(&Spec::parse_flag("reset_before,bytes=3").unwrap())
        .unwrap_err()
        .to_string();
    assert!(unexpected.contains("`bytes`"), "{unexpected}");
    let missing = proxy::validate_fault(&Spec::parse_flag("stall").unwrap())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("`latency`"), "{missing}");
    let status = proxy::validate_fault(&Spec::parse_flag("http_status,status=418").unwrap())
        .unwrap_err()
        .to_string();
    assert!(status.contains("`status`"), "{status}");
    let probability = Spec::parse_flag("latency,latency=1s,probability=1.5")
        .unwrap_err()
        .to_string();
    assert!(probability.contains("`probability`"), "{probability}");
    let negative = Spec::parse_flag("latency,latency=-5ms")
        .unwrap_err()
        .to_string();
    assert!(negative.contains("latency=-5ms"), "{negative}");

    let remote: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let refused = proxy::check_listen(remote, false).unwrap_err().to_string();
    assert!(
        refused.contains("0.0.0.0:8080") && refused.contains("loopback"),
        "{refused}"
    );
    assert!(proxy::check_listen(remote, true).is_ok());
    assert!(proxy::check_listen("127.0.0.1:0".parse().unwrap(), false).is_ok());
    assert!(proxy::check_listen("[::1]:0".parse().unwrap(), false).is_ok());
}

#[test]
fn a_proxy_is_not_built_from_bad_config() {
    let config = |upstream: &str, fault: &str| Config {
        upstream: url::Url::parse(upstream).unwrap(),
        faults: vec![(3, Spec::parse_flag(fault).unwrap())],
        seed: 0,
        ledger: Ledger::new(Instant::now()),
        ca_cert: None,
    };
    let scheme = Proxy::new(config("ftp://h/", "down"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        scheme.contains("ftp://h/") && scheme.contains("scheme"),
        "{scheme}"
    );
    let fault = Proxy::new(config("http://h/", "slicer,average_size=0"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        fault.contains("slicer#3") && fault.contains("`average_size`"),
        "{fault}"
    );
    let mut bad_ca = config("https://h/", "down");
    bad_ca.ca_cert = Some("/nonexistent/ca.pem".into());
    let ca = Proxy::new(bad_ca).err().unwrap().to_string();
    assert!(ca.contains("/nonexistent/ca.pem"), "{ca}");
    assert!(proxy::kinds().contains(&"reset_after"));
}
