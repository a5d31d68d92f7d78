//! The query port (3200, Tempo's): readiness, build information, `/flush` and `/metrics` so far;
//! trace-by-ID and SQL join here.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{AppState, build_info};
use crate::telemetry;

/// The query-port router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(|| async { Json(build_info()) }))
        .route("/flush", post(flush).get(flush))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting or shutting down").into_response()
    }
}

/// Cuts every buffer into blocks and answers once they are committed (like Tempo's `/flush`).
async fn flush(State(state): State<AppState>) -> Response {
    match state.ingester.flush().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            tracing::warn!(%error, "flush failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": error.to_string() }))).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = telemetry::render(&state.storage, state.ingester.wal_bytes(), state.ingester.buffered_bytes());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
