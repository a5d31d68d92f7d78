//! The query port (3200, Tempo's): trace by ID (`traces.rs`), SQL (`sql.rs`), search (`tempo_search.rs`,
//! tag autocomplete in `tempo_tags.rs`, and Grafana's streaming search over gRPC, `tempo_grpc.rs`), readiness, build information, `/flush` and
//! `/metrics`, and the web UI that uses them (`ui.rs`). Every HTTP error body is JSON `{"error": "…"}`; gRPC calls get gRPC statuses.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::status::Refusal;
use super::tempo_grpc;
use super::traces::{trace_v1, trace_v2};
use super::{AppState, build_info};
use crate::ids::TenantId;
use crate::receive::{self, ReceiveError};
use crate::telemetry::{self, Gauge};

/// The query-port router of a process that answers queries (`all`, `querier`); a querier has no
/// `/flush` of its own (it holds no spans).
pub fn router(state: AppState) -> Router {
    let flush_route = match state.ingester {
        Some(_) => post(flush),
        None => post(super::internal::not_an_ingester),
    };
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(|| async { Json(build_info()) }))
        .route("/flush", flush_route)
        .route("/metrics", get(metrics))
        .route("/api/traces/{trace_id}", get(trace_v1))
        .route("/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/api/sql", post(super::sql::sql))
        .route("/api/search", get(super::tempo_search::search))
        .route("/api/search/tags", get(super::tempo_tags::tags_v1))
        .route("/api/v2/search/tags", get(super::tempo_tags::tags_v2))
        .route("/api/search/tag/{name}/values", get(super::tempo_tags::values_v1))
        .route("/api/v2/search/tag/{name}/values", get(super::tempo_tags::values_v2))
        .route_service(tempo_grpc::SEARCH_PATH, tempo_grpc::service(state.clone()))
        .merge(super::ui::router())
        .fallback(|request: Request| async move {
            let path = request.uri().path();
            if tempo_grpc::is_grpc(request.headers()) {
                return tempo_grpc::status_response(tonic::Status::unimplemented(format!("no such method: {path}")));
            }
            error_response(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}"))
        })
        .with_state(state)
}

/// The HTTP port of an ingester (`--target ingester`): probes, metrics, `/flush`, and the endpoint
/// queriers read its recent spans from. No user queries: those go to the queriers.
pub fn ingester_router(state: AppState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(|| async { Json(build_info()) }))
        .route("/flush", post(flush))
        .route("/metrics", get(metrics))
        .route(crate::query::peers::RECENT_PATH, post(super::internal::recent))
        .fallback(|request: Request| async move {
            let path = request.uri().path().to_owned();
            error_response(StatusCode::NOT_FOUND, &format!("no such endpoint on an ingester: {path} (ask a querier)"))
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
                if tempo_grpc::is_grpc(request.headers()) {
                    return tempo_grpc::status_response(tempo_grpc::starting());
                }
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

/// The tenant of a query-port request (from its credentials and X-Scope-OrgID), or the refusal to send:
/// a 401 carries the challenge that makes browsers and `curl --anyauth` offer credentials.
// The refusal is sent at once, per request: its size costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
pub fn tenant_of(state: &AppState, headers: &HeaderMap) -> Result<TenantId, Response> {
    let authorization = headers.get(header::AUTHORIZATION).map(|value| value.as_bytes());
    let asked = headers.get(receive::TENANT_HEADER).and_then(|v| v.to_str().ok());
    state.tenant_of(authorization, asked).map_err(|error| refusal_response(&Refusal::from(&error)))
}

/// The HTTP answer to a refusal on the query port.
pub fn refusal_response(refusal: &Refusal) -> Response {
    let mut response = error_response(refusal.http, &refusal.message);
    if refusal.http == StatusCode::UNAUTHORIZED && refusal.reason == "unauthenticated" {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(crate::auth::CHALLENGE));
    }
    response
}

/// Refuses a request to an operator's route (`/flush`, `/metrics`, `/ready`'s details) unless its
/// credentials are an admin's (or auth is off).
// The refusal is sent at once, per request: its size costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
pub(super) fn admin_only(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let authorization = headers.get(header::AUTHORIZATION).map(|value| value.as_bytes());
    state.require_admin(authorization).map_err(|error| refusal_response(&Refusal::from(&ReceiveError::Auth(error))))
}

/// The `Warning` header of an answer that may lack spans (CONTRACTS §4: partial answers are marked):
/// `199 spanlake "partial: …"` with every reason, or `None` when the answer is whole.
pub fn partial_warning(reasons: &[String]) -> Option<HeaderValue> {
    if reasons.is_empty() {
        return None;
    }
    // A quoted-string of printable ASCII: quotes and backslashes, control and non-ASCII characters out.
    let text: String = format!("partial: {}", reasons.join("; "))
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '?' })
        .collect();
    HeaderValue::from_str(&format!("199 spanlake \"{text}\"")).ok()
}

/// A JSON error body with its status.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = readiness(&state, &headers);
    response.headers_mut().insert(TARGET_HEADER, HeaderValue::from_static(state.target.name()));
    response
}

/// The header of `/ready` that says which roles answered (`--target`).
const TARGET_HEADER: &str = "x-spanlake-target";

/// `/ready`'s answer: 200 once serving; the body says `ready`, and which roles for a process that does not
/// run them all.
fn readiness(state: &AppState, headers: &HeaderMap) -> Response {
    if !state.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting or shutting down").into_response();
    }
    let ready = match state.target {
        crate::config::Target::All => "ready".to_owned(),
        target => format!("ready\ntarget: {}", target.name()),
    };
    let Some(ingester) = &state.ingester else { return (StatusCode::OK, ready).into_response() };
    // A WAL that cannot write cannot acknowledge spans: the process is alive but should get no traffic.
    match ingester.wal_problem() {
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: the write-ahead log failed: {problem}"))
            .into_response(),
        None => {
            // Quarantined spans need an operator, not a restart: still ready, but say so.
            let quarantined = ingester.quarantined();
            // The names say which tenants hold what: with auth on, only an admin reads them.
            if quarantined.is_empty() || admin_only(state, headers).is_err() {
                return (StatusCode::OK, ready).into_response();
            }
            let named = quarantined.join(", ");
            let text = format!(
                "{ready}\nquarantined on local disk (spans that could not be replayed or uploaded; see the log): {named}"
            );
            (StatusCode::OK, text).into_response()
        }
    }
}

/// Cuts every buffer into blocks and answers once they are committed (like Tempo's `/flush`).
async fn flush(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = admin_only(&state, &headers) {
        return refused;
    }
    let Some(ingester) = &state.ingester else {
        return super::internal::not_an_ingester().await;
    };
    match ingester.flush().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            tracing::warn!(%error, "flush failed");
            error_response(StatusCode::SERVICE_UNAVAILABLE, &error.public_message())
        }
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Per-tenant series and the server's internals are the operator's.
    if let Err(refused) = admin_only(&state, &headers) {
        return refused;
    }
    let gauges: Vec<Gauge> = match &state.ingester {
        Some(ingester) => ingester_gauges(&state, ingester).into_iter().collect(),
        None => Vec::new(),
    };
    // An ingester's catalogue is never filled (it answers no queries): its gauges would say nothing.
    let querier = state.target.queries_blocks().then(|| state.querier.gauges()).into_iter().flatten();
    let gauges: Vec<Gauge> = gauges.into_iter().chain(querier).collect();
    let text = telemetry::render(state.target.name(), &state.storage, &gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// What an ingester holds, for `/metrics`.
fn ingester_gauges(state: &AppState, ingester: &crate::ingest::Ingester) -> [Gauge; 6] {
    let (resend_keys, resend_bytes) = ingester.resend_window_size();
    [
        Gauge {
            name: telemetry::WAL_BYTES,
            help: "Bytes of WAL segments on disk.",
            value: ingester.wal_bytes() as f64,
        },
        Gauge {
            name: telemetry::BUFFER_BYTES,
            help: "Bytes held by the ingester: open buffers and blocks not yet committed.",
            value: ingester.buffered_bytes() as f64,
        },
        Gauge {
            name: telemetry::REQUEST_BYTES_IN_FLIGHT,
            help: "Bytes held by OTLP requests between their first byte and the WAL (max_inflight_request_bytes).",
            value: state.admission.held_bytes() as f64,
        },
        Gauge {
            name: telemetry::RESEND_WINDOW_KEYS,
            help: "Span keys of recently committed blocks remembered to recognise resent spans.",
            value: resend_keys as f64,
        },
        Gauge {
            name: telemetry::RESEND_WINDOW_BYTES,
            help: "Memory those keys hold (resend_window_bytes).",
            value: resend_bytes as f64,
        },
        Gauge {
            name: telemetry::HANDOFF_BYTES,
            help: "Bytes of committed blocks kept for queriers that have not listed them yet (handoff_retention).",
            value: ingester.handed_off_bytes() as f64,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grpc_calls_during_start_up_are_unavailable_and_http_calls_503() {
        let starting = starting_router(Arc::new(OnceLock::new()));
        let grpc = Request::post(tempo_grpc::SEARCH_PATH)
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(starting.clone(), grpc).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "gRPC errors travel in headers");
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable);

        let http = Request::get("/api/search").body(axum::body::Body::empty()).unwrap();
        let response = tower::ServiceExt::oneshot(starting, http).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
