//! A small hostile HTTP/1.1 server on loopback, written on raw sockets so it can do what a
//! well-behaved framework would refuse to: lie about lengths, cut bodies short, trickle,
//! close kept-alive connections, or forward to the built-in mock and spoil some answers.
//! Each test parameterises it with a function from a request to an [`Action`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One parsed request.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the server does with a request.
pub enum Action {
    /// Writes these bytes and keeps the connection.
    Send(Vec<u8>),
    /// Writes these bytes and closes the connection (without saying so).
    SendClose(Vec<u8>),
    /// Writes the head, then the body one byte per `every`, up to `len` bytes.
    Trickle {
        head: Vec<u8>,
        len: usize,
        every: Duration,
    },
    /// Writes the head, then `total` bytes of body in 64 KiB pieces.
    Flood { head: Vec<u8>, total: usize },
    /// Passes the request to the upstream and its answer back.
    Forward,
    /// Passes the request on and changes the upstream's JSON answer before sending it.
    ForwardWith(Rewrite),
}

pub type Rewrite = Box<dyn FnOnce(serde_json::Value) -> serde_json::Value + Send>;

pub type Behaviour = Arc<dyn Fn(&Req) -> Action + Send + Sync>;

/// A running server; stops when dropped.
pub struct Hostile {
    pub base: String,
    /// Requests read.
    pub requests: Arc<AtomicU64>,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    shutdown: CancellationToken,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a server answering under `/fhir/`; `upstream` is where `Forward` goes.
pub async fn start(behaviour: Behaviour, upstream: Option<String>) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir/", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let requests = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let ctx = Arc::new(Shared {
        behaviour,
        upstream,
        own: base.clone(),
        http: reqwest::Client::new(),
        requests: requests.clone(),
    });
    let (stop, conns) = (shutdown.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let socket = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(_) => continue,
                },
            };
            conns.fetch_add(1, Ordering::Relaxed);
            let (ctx, stop) = (ctx.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = serve(socket, &ctx) => {}
                }
            });
        }
    });
    Hostile {
        base,
        requests,
        connections,
        shutdown,
    }
}

struct Shared {
    behaviour: Behaviour,
    upstream: Option<String>,
    /// This server's base: the upstream's links are rewritten to it.
    own: String,
    http: reqwest::Client,
    requests: Arc<AtomicU64>,
}

async fn serve(mut socket: TcpStream, ctx: &Shared) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut socket, &mut buf).await {
        ctx.requests.fetch_add(1, Ordering::Relaxed);
        let done = match (ctx.behaviour)(&req) {
            Action::Send(bytes) => socket.write_all(&bytes).await.is_err(),
            Action::SendClose(bytes) => {
                let _ = socket.write_all(&bytes).await;
                true
            }
            Action::Trickle { head, len, every } => {
                let _ = socket.write_all(&head).await;
                for _ in 0..len {
                    tokio::time::sleep(every).await;
                    if socket.write_all(b" ").await.is_err() {
                        break;
                    }
                }
                true
            }
            Action::Flood { head, total } => {
                let _ = socket.write_all(&head).await;
                let piece = vec![b' '; 64 << 10];
                for _ in 0..total / piece.len() {
                    if socket.write_all(&piece).await.is_err() {
                        break;
                    }
                }
                true
            }
            Action::Forward => match forward(ctx, &req, None).await {
                Some(bytes) => socket.write_all(&bytes).await.is_err(),
                None => true,
            },
            Action::ForwardWith(rewrite) => match forward(ctx, &req, Some(rewrite)).await {
                Some(bytes) => socket.write_all(&bytes).await.is_err(),
                None => true,
            },
        };
        if done {
            return;
        }
    }
}

/// Reads one request (head and `Content-Length` body); `None` at EOF or on garbage.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Req> {
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    buf.drain(..end);
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    Some(Req {
        method,
        target,
        headers,
        body,
    })
}

/// The upstream's answer to the same request, as bytes; `None` if it cannot be had.
async fn forward(ctx: &Shared, req: &Req, rewrite: Option<Rewrite>) -> Option<Vec<u8>> {
    let upstream = ctx.upstream.as_ref()?;
    let path = req.target.strip_prefix("/fhir/").unwrap_or(&req.target);
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).ok()?;
    let mut r = ctx.http.request(method, format!("{upstream}{path}"));
    for (k, v) in &req.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            r = r.header(k, v);
        }
    }
    let resp = r.body(req.body.clone()).send().await.ok()?;
    let status = resp.status().as_u16();
    let mut headers = Vec::new();
    for (k, v) in resp.headers() {
        if matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        let v = v.to_str().ok()?;
        // Keep what the upstream said, re-rooted at this server.
        let v = v.replace(upstream.as_str(), "/fhir/");
        headers.push((k.as_str().to_owned(), v));
    }
    let body = resp.bytes().await.ok()?;
    let body = String::from_utf8_lossy(&body).replace(upstream.as_str(), &ctx.own);
    let body = match rewrite {
        Some(f) => serde_json::to_string(&f(serde_json::from_str(&body).ok()?)).ok()?,
        None => body,
    };
    let body = body.as_bytes();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Some(http(status, &refs, body))
}

/// A whole response with a correct `Content-Length`.
pub fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = head(status, headers, Some(body.len()));
    out.extend_from_slice(body);
    out
}

/// A response head; `len` becomes `Content-Length` (absent: the body runs to the close).
pub fn head(status: u16, headers: &[(&str, &str)], len: Option<usize>) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(len) = len {
        out.push_str(&format!("content-length: {len}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A JSON response.
pub fn json(status: u16, body: &serde_json::Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(body).unwrap();
    http(status, &[("content-type", "application/fhir+json")], &bytes)
}
