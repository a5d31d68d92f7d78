//! The HTTP faces of the server. So far: readiness, echo and build information on the query port
//! (CONTRACTS §4); trace lookup, SQL and OTLP receivers join here in later issues.
//!
//! Owns routing and the mapping of errors to status codes. May call every other module; none calls it.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::storage::{Storage, StorageError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// The version and git revision baked in at build time.
pub fn build_info() -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("SPANLAKE_GIT_REVISION").unwrap_or("unknown"),
        "branch": option_env!("SPANLAKE_GIT_BRANCH").unwrap_or("unknown"),
        "goVersion": "",
    })
}

/// The query-port router.
pub fn router() -> Router {
    Router::new()
        .route("/ready", get(|| async { "ready" }))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(|| async { Json(build_info()) }))
}

/// Runs the server until SIGINT or SIGTERM: opens the storage (creating the local folder on the embedded
/// default), binds the query port and logs the address it got (port 0 picks a free one).
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let storage = Storage::open(&config.storage_url()?)?;
    tracing::info!(storage = %storage.location(), "storage opened");
    let listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServeError::Bind { addr: config.http_addr, source })?;
    let local_addr = listener.local_addr()?;
    tracing::info!(http_addr = %local_addr, "query HTTP API listening");
    axum::serve(listener, router()).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
