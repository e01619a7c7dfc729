//! The accept loop: HTTP/1.1 keep-alive connections served by hyper, each over a socket
//! wrapper a handler can tell to abort. An aborted connection refuses its next write and
//! is dropped with `SO_LINGER 0`, so the kernel sends RST before any byte of the answer:
//! the client sees a connection reset, not a truncated body (`commit_then_reset`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use super::Ehr;

/// How long in-flight requests get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// Request extension: lets a handler abort the connection its request came on.
#[derive(Clone, Debug)]
pub struct ConnHandle(Arc<AtomicBool>);

impl ConnHandle {
    /// The connection is reset instead of answering.
    pub fn abort(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Request extension: the client's address, as the socket saw it (the audit trail's
/// `agent.network.address`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

/// Serves the mock on `listener` until `shutdown` is cancelled, then lets open requests
/// finish (graceful) and returns.
pub async fn serve(listener: TcpListener, ehr: Ehr, shutdown: CancellationToken) -> io::Result<()> {
    let router = ehr.router();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(connection(stream, router.clone(), shutdown.clone()));
            }
            Err(e) if transient(&e) => {
                tracing::warn!(error = %e, "mock: accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
    Ok(())
}

/// Accept errors that concern one connection or a passing shortage, not the listener.
fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}

async fn connection(stream: TcpStream, router: axum::Router, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let abort = Arc::new(AtomicBool::new(false));
    let handle = ConnHandle(abort.clone());
    let peer = stream.peer_addr().ok().map(Peer);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(handle.clone());
        if let Some(peer) = peer {
            req.extensions_mut().insert(peer);
        }
        router.clone().call(req)
    });
    let io = TokioIo::new(Abortable { stream, abort });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "mock: connection ended");
    }
}

/// A socket that fails its next write once aborted, with linger 0 so that dropping it
/// sends RST.
struct Abortable {
    stream: TcpStream,
    abort: Arc<AtomicBool>,
}

impl Abortable {
    fn aborted(&self) -> Option<io::Error> {
        if !self.abort.load(Ordering::Acquire) {
            return None;
        }
        let _ = self.stream.set_zero_linger();
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "mock: commit_then_reset",
        ))
    }
}

impl AsyncRead for Abortable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Abortable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
