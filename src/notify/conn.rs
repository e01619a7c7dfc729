//! The receiver's accept loop: HTTP/1.1 connections served by hyper over a socket a
//! delivery can abort (`receiver_reset`: linger 0, so dropping it sends RST), inside TLS
//! when the receiver has a certificate (the handshake in the connection's own task,
//! bounded by [`HANDSHAKE`]), and connections reset as soon as accepted while
//! `receiver_down` holds.

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

use super::Receiver;
use super::tls::Acceptor;

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// Request extension: lets a delivery reset its connection instead of answering.
#[derive(Clone, Debug)]
pub struct Abort(Arc<AtomicBool>);

impl Abort {
    pub fn abort(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Serves the receiver on a thread of its own, with its own single-threaded runtime,
/// until `shutdown` is cancelled: a delivery is answered and time-stamped when it
/// arrives, not when a runtime busy with the load gets to it (on the shared runtime,
/// under eight users, stamps were seen tens of ms late).
pub fn spawn(
    listener: TcpListener,
    receiver: Receiver,
    shutdown: CancellationToken,
) -> io::Result<std::thread::JoinHandle<()>> {
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("notify-receiver".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => {
                        let _ = serve(l, receiver, shutdown).await;
                    }
                    Err(e) => tracing::error!(error = %e, "receiver: cannot listen"),
                }
            });
        })
}

/// Serves the receiver on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    receiver: Receiver,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let router = receiver.router();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) if receiver.down() => {
                let _ = stream.set_zero_linger();
                drop(stream);
            }
            Ok((stream, _)) => {
                let tls = receiver.inner.tls.clone();
                connections.spawn(connection(stream, tls, router.clone(), shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "receiver: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
    Ok(())
}

async fn connection(
    stream: TcpStream,
    tls: Option<Acceptor>,
    router: axum::Router,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let flag = Arc::new(AtomicBool::new(false));
    let handle = Abort(flag.clone());
    let io = Abortable { stream, flag };
    match tls {
        None => http(io, handle, router, shutdown).await,
        Some(Acceptor(acceptor)) => {
            match tokio::time::timeout(HANDSHAKE, acceptor.accept(io)).await {
                Ok(Ok(tls)) => http(tls, handle, router, shutdown).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "receiver: TLS handshake failed"),
                Err(_) => tracing::debug!("receiver: TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection until it ends or the run shuts down.
async fn http<I>(io: I, handle: Abort, router: axum::Router, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(handle.clone());
        router.clone().call(req)
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "receiver: connection ended");
    }
}

/// A socket that fails its next write once aborted, with linger 0 so dropping it sends
/// RST.
struct Abortable {
    stream: TcpStream,
    flag: Arc<AtomicBool>,
}

impl Abortable {
    fn aborted(&self) -> Option<io::Error> {
        if !self.flag.load(Ordering::Acquire) {
            return None;
        }
        let _ = self.stream.set_zero_linger();
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "receiver: receiver_reset",
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
