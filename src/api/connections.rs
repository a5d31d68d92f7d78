//! The HTTP/1.1 connections of the query and OTLP/HTTP ports, with read deadlines (CONTRACTS §7: slow
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
//! Owns accepting, serving and draining connections. Calls nothing of spanlake's but the router it serves.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

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

/// Serves `app` on `listener` until `stop` turns true, then lets in-flight requests finish and closes
/// idle connections. Each connection is a task of this one, so aborting this task closes them all.
pub async fn serve(listener: TcpListener, app: axum::Router, read_timeout: Duration, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; trying again");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = stream;
        connections.spawn(serve_connection(stream, peer, app.clone(), read_timeout, stop.clone()));
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let app = app.map_request(move |request: hyper::Request<Incoming>| {
        request.map(|body| Body::new(DeadlineBody::new(body, read_timeout)))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
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
        Err(error) if error.is_timeout() => {
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
