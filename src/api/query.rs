//! The query port (3200, Tempo's): trace by ID (`traces.rs`), SQL (`sql.rs`), search (`tempo_search.rs`), tag autocomplete (`tempo_tags.rs`), readiness, build information, `/flush`
//! and `/metrics`. Every error body is JSON `{"error": "…"}`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::traces::{trace_v1, trace_v2};
use super::{AppState, build_info};
use crate::telemetry::{self, Gauge};

/// The query-port router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(|| async { Json(build_info()) }))
        .route("/flush", post(flush).get(flush))
        .route("/metrics", get(metrics))
        .route("/api/traces/{trace_id}", get(trace_v1))
        .route("/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/api/sql", post(super::sql::sql))
        .route("/api/search", get(super::tempo_search::search))
        .route("/api/search/tags", get(super::tempo_tags::tags_v1))
        .route("/api/v2/search/tags", get(super::tempo_tags::tags_v2))
        .route("/api/search/tag/{name}/values", get(super::tempo_tags::values_v1))
        .route("/api/v2/search/tag/{name}/values", get(super::tempo_tags::values_v2))
        .fallback(|uri: axum::http::Uri| async move {
            error_response(StatusCode::NOT_FOUND, &format!("no such endpoint: {}", uri.path()))
        })
        .with_state(state)
}

/// The query port while the server starts: until `started` holds the full [`router`], `/ready` and every
/// other path answer 503 (the WAL is still being replayed, so answers would miss acknowledged spans),
/// except `/api/echo`, the liveness probe, which a long replay must not fail; from then on every request
/// goes to the full router. Probes see "starting", not a connection that hangs until replay ends
/// (CONTRACTS §4).
pub fn starting_router(started: Arc<OnceLock<Router>>) -> Router {
    Router::new().route("/api/echo", get(|| async { "echo" })).fallback(move |request: Request| {
        let started = started.clone();
        async move {
            let Some(router) = started.get() else {
                let message = "not ready: starting (replaying the write-ahead log)";
                return match request.uri().path() {
                    "/ready" => (StatusCode::SERVICE_UNAVAILABLE, message).into_response(),
                    _ => error_response(StatusCode::SERVICE_UNAVAILABLE, message),
                };
            };
            match tower::ServiceExt::oneshot(router.clone(), request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// A JSON error body with its status.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
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
            error_response(StatusCode::SERVICE_UNAVAILABLE, &error.to_string())
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let ingester = [
        Gauge {
            name: telemetry::WAL_BYTES,
            help: "Bytes of WAL segments on disk.",
            value: state.ingester.wal_bytes() as f64,
        },
        Gauge {
            name: telemetry::BUFFER_BYTES,
            help: "Bytes held by the ingester: open buffers and blocks not yet committed.",
            value: state.ingester.buffered_bytes() as f64,
        },
    ];
    let gauges: Vec<Gauge> = ingester.into_iter().chain(state.querier.gauges()).collect();
    let text = telemetry::render(&state.storage, &gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
