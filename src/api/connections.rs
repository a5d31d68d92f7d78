//! The HTTP connections of the query and OTLP/HTTP ports, with read deadlines (CONTRACTS §7: slow
//! clients must not make the server unresponsive).
//!
//! `axum::serve` gives hyper no timer, so hyper's header timeout never fires and nothing bounds a body
//! either. A client that sends half a header, or a body one byte at a time, then held its connection,
//! its file descriptor and its buffer for as long as it liked. Here a request's headers must arrive within
//! the read timeout (else the connection is closed), and its body within the same time after them (else
//! reading it fails with [`BodyTimedOut`], which handlers answer with 408), like the read timeouts of Go's
//! `http.Server` that Tempo sets to 30 s. hyper's header timer also runs while a kept-alive connection
//! waits for its next request, so idle connections close after the same time (clients reconnect).
//!
//! The query port also speaks HTTP/2 without TLS (h2c, by prior knowledge), as Tempo's port 3200 does, so
//! Grafana's streaming search (gRPC) shares the listener with the HTTP API ([`Protocols::Http1AndH2c`]).
//! Until a connection's first bytes tell HTTP/1 from the HTTP/2 preface, [`PrefaceDeadline`] bounds the
//! wait; an HTTP/2 connection then gets keep-alive pings instead of a header timer.
//!
//! Every connection's writes are bounded too: one that makes no progress for the read timeout (the
//! client stopped reading its answer) fails and the connection closes ([`PrefaceDeadline`]).
//!
//! The gRPC port is served by tonic, which has no header timeout either: its connections get
//! [`PrefaceDeadline`] (the HTTP/2 preface within the read timeout) and HTTP/2 keep-alive pings, and its
//! request bodies the same deadline in `otlp_grpc`.
//!
//! Every port holds at most `max_connections` connections open ([`accept`] waits for one to close before
//! accepting the next) and each HTTP/2 connection at most `max_concurrent_streams` requests at once (the
//! gRPC port's are set in `api`), so a client opening many cannot take every socket and task.
//!
//! Every port accepts through [`accept`], which turns off Nagle's algorithm (`TCP_NODELAY`) on each
//! socket before anything is served on it. Without it a small response write waits for the client's
//! delayed ACK: ~40 ms per gRPC export, a fifth of HTTP's throughput (issue 25).
//!
//! With TLS on (`tls.rs`), every port's connections are served after their handshake, which must finish
//! within the read timeout too.
//!
//! Owns accepting, serving and draining connections. Calls nothing of spanlake's but the router it serves.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use super::tls::{Alpn, MaybeTls, Tls};

/// Pause after a failed accept (most likely out of file descriptors) before the next one, so the loop
/// does not spin while connections close.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Reading a request body took longer than the read timeout allows.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} of its headers")]
pub struct BodyTimedOut(pub Duration);

impl BodyTimedOut {
    /// The deadline error somewhere in `error`'s chain of sources (body errors arrive wrapped by axum
    /// and by size limiters).
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimedOut> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
                return Some(timed_out);
            }
            current = error.source();
        }
        None
    }
}

/// Which HTTP versions a port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.1 only (OTLP/HTTP, the compactor's probes).
    Http1,
    /// HTTP/1.1 and cleartext HTTP/2 by prior knowledge, told apart by the connection's first bytes (the
    /// query port, for gRPC beside HTTP).
    Http1AndH2c,
}

/// What every connection of a port is held to (CONTRACTS §7: no client makes the server unresponsive).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Headers, then the body, must arrive within it; a write stalled this long closes the connection.
    pub read_timeout: Duration,
    /// Connections the port holds open at once (`max_connections`); more wait in the listen backlog.
    pub max_connections: usize,
    /// HTTP/2 streams one connection may have open at once (`max_concurrent_streams`).
    pub max_concurrent_streams: u32,
}

/// A connection's place under the port's `max_connections`, given back when the connection closes.
#[derive(Debug)]
pub struct ConnectionSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// The connections `listener` accepts, at most `max_connections` open at once: once that many are open
/// the next is accepted only when one closes, so the rest wait in the kernel's listen backlog (as Go's
/// `netutil.LimitListener`, which Tempo's servers use) instead of costing a socket and buffers each.
/// Each has `TCP_NODELAY` set before it is handed out (so no response of any port waits on Nagle's
/// algorithm). A failed accept (most likely out of file descriptors) is logged and retried after a
/// pause; the stream never ends.
pub fn accept(
    listener: TcpListener,
    max_connections: usize,
) -> impl futures::Stream<Item = (TcpStream, SocketAddr, ConnectionSlot)> + Send {
    let slots = Arc::new(Semaphore::new(max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    futures::stream::unfold((listener, slots), move |(listener, slots)| async move {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    port = listener.local_addr().map(|a| a.port()).unwrap_or_default(),
                    max_connections,
                    "the port holds its most connections (max_connections); new ones wait until one closes"
                );
                slots.clone().acquire_owned().await.ok()?
            }
        };
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY on an accepted connection");
                    }
                    return Some(((stream, peer, ConnectionSlot(slot)), (listener, slots)));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; trying again");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    })
}

impl Protocols {
    /// What the port offers in a TLS handshake.
    fn alpn(self) -> Alpn {
        match self {
            Self::Http1 => Alpn::Http1,
            Self::Http1AndH2c => Alpn::Http2AndHttp1,
        }
    }
}

/// The connections of a port served by tonic (OTLP/gRPC), ready to serve: accepted as [`accept`] does,
/// through their TLS handshake when `tls` is set (each in its own task, so one stalled handshake holds up
/// no other connection), and under [`PrefaceDeadline`]. Ends, letting the listener go, once the server
/// drops the stream.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    tls: Option<Tls>,
    alpn: Alpn,
) -> impl futures::Stream<Item = std::io::Result<PrefaceDeadline<MaybeTls>>> + Send {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut accepted = std::pin::pin!(accept(listener, limits.max_connections));
        loop {
            let (stream, _peer, slot) = tokio::select! {
                () = sender.closed() => return,
                Some(next) = futures::StreamExt::next(&mut accepted) => next,
            };
            let (sender, tls) = (sender.clone(), tls.clone());
            tokio::spawn(async move {
                let Some(io) = secure(stream, tls.as_ref(), alpn, limits.read_timeout).await else {
                    return;
                };
                let _ = sender.send(Ok(PrefaceDeadline::new(io, limits.read_timeout, slot))).await;
            });
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) })
}

/// The connection in clear, or after its TLS handshake (`None`: the handshake failed or took too long).
async fn secure(stream: TcpStream, tls: Option<&Tls>, alpn: Alpn, timeout: Duration) -> Option<MaybeTls> {
    match tls {
        None => Some(MaybeTls::Plain(stream)),
        Some(tls) => tls.handshake(stream, alpn, timeout).await,
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stop` turns true, then lets in-flight
/// requests finish and closes idle connections. Each connection is a task of this one, so aborting this
/// task closes them all.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    protocols: Protocols,
    limits: ConnectionLimits,
    tls: Option<Tls>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut incoming = std::pin::pin!(accept(listener, limits.max_connections));
    loop {
        let (stream, peer, slot) = tokio::select! {
            () = until_stopped(&mut stop) => break,
            Some(accepted) = futures::StreamExt::next(&mut incoming) => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (app, tls, stop) = (app.clone(), tls.clone(), stop.clone());
        connections.spawn(async move {
            let Some(io) = secure(stream, tls.as_ref(), protocols.alpn(), limits.read_timeout).await else {
                return;
            };
            let io = PrefaceDeadline::new(io, limits.read_timeout, slot);
            serve_connection(io, peer, app, protocols, limits, stop).await;
        });
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    io: PrefaceDeadline<MaybeTls>,
    peer: SocketAddr,
    app: axum::Router,
    protocols: Protocols,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let read_timeout = limits.read_timeout;
    let app = app.map_request(move |request: hyper::Request<Incoming>| {
        request.map(|body| Body::new(DeadlineBody::new(body, read_timeout)))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
    // Idle HTTP/2 clients answer pings; half-open connections and clients that stall mid-frame do not.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(read_timeout)
        .keep_alive_timeout(read_timeout)
        .max_concurrent_streams(limits.max_concurrent_streams);
    if protocols == Protocols::Http1 {
        builder = builder.http1_only();
    }
    let io = TokioIo::new(io);
    let connection = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut connection = std::pin::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = until_stopped(&mut stop) => {
            // Finishes the request in flight, if any, then closes.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match outcome {
        Err(error) if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) => {
            tracing::info!(%peer, "closed a connection whose request headers did not arrive within {read_timeout:?}");
        }
        // Clients that hang up mid-request are routine.
        Err(error) => tracing::debug!(%peer, %error, "connection ended with an error"),
        Ok(()) => {}
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// A request body that must arrive whole within a deadline set when its headers arrived.
struct DeadlineBody {
    body: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self { body, deadline: Box::pin(tokio::time::sleep(timeout)), timeout }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The HTTP/2 client connection preface, which every gRPC client sends first.
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection whose client must show which protocol it speaks within the read timeout: the whole
/// HTTP/2 preface, or a first byte that departs from it (HTTP/1, whose header timer then takes over).
/// hyper would otherwise wait for the preface forever. Once it is in, HTTP/2 keep-alive pings look after
/// the rest.
///
/// It also bounds writes: a write (or flush) that makes no progress for the same timeout fails, which
/// closes the connection. A client that stops reading a large answer (an SQL result, a search stream)
/// then no longer holds its connection, its socket buffers and the answer's query for as long as it
/// likes (Go's `http.Server` `WriteTimeout` bounds the same, but for the whole response; here only a
/// stall counts, so a long answer read steadily is never cut).
pub struct PrefaceDeadline<IO> {
    io: IO,
    /// Running until the protocol is known.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Running while a write waits for the client to read.
    write_stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes of the preface received so far.
    matched: usize,
    timeout: Duration,
    /// The connection's place under `max_connections`, given back when it closes (is dropped).
    _slot: ConnectionSlot,
}

impl<IO> PrefaceDeadline<IO> {
    /// Starts the clock on an accepted connection.
    pub fn new(io: IO, timeout: Duration, slot: ConnectionSlot) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            write_stalled: None,
            matched: 0,
            timeout,
            _slot: slot,
        }
    }

    /// Polls a write-side operation; fails it once it has made no progress for the timeout.
    fn within_write_deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        operation: impl FnOnce(Pin<&mut IO>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>>
    where
        IO: Unpin,
    {
        if let Poll::Ready(result) = operation(Pin::new(&mut self.io), cx) {
            self.write_stalled = None;
            return Poll::Ready(result);
        }
        let timeout = self.timeout;
        let stalled = self.write_stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::info!("closed a connection whose client read nothing of its answer for {timeout:?}");
                Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Follows the preface through newly read bytes; stops the clock once the protocol is known.
    fn observe(&mut self, received: &[u8]) {
        if self.deadline.is_none() {
            return;
        }
        for byte in received {
            if HTTP2_PREFACE.get(self.matched) != Some(byte) {
                self.deadline = None;
                return;
            }
            self.matched += 1;
            if self.matched == HTTP2_PREFACE.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for PrefaceDeadline<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Poll::Ready(result) = Pin::new(&mut this.io).poll_read(cx, buf) {
            this.observe(&buf.filled()[before..]);
            return Poll::Ready(result);
        }
        match this.deadline.as_mut().map(|deadline| deadline.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                tracing::info!("closed a connection that sent no request or HTTP/2 preface within {:?}", this.timeout);
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request or HTTP/2 preface in time",
                )))
            }
            _ => Poll::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for PrefaceDeadline<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().within_write_deadline(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().within_write_deadline(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().within_write_deadline(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for PrefaceDeadline<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
