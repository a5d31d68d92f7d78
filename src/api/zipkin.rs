//! The Zipkin v2 receiver on its own port (9411): `POST /api/v2/spans`, JSON or protobuf, gzip accepted,
//! 202 once the spans are in the WAL (the same acknowledgement as OTLP). The body takes the OTLP/HTTP
//! receiver's road (tenant and auth, the in-flight byte budget, size limits, decoding off the async
//! threads) with Zipkin decoding (`receive::zipkin`) in the middle. Refusals carry the OTLP receivers'
//! statuses with a plain-text message, as Zipkin's server and the Collector answer (docs/zipkin.md).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use super::status::{RETRY_AFTER, Refusal, export_reply};
use crate::ingest::NewSpans;
use crate::receive::zipkin::{self, ZipkinEncoding, ZipkinError};
use crate::receive::{self, Admitted, ReceiveError};

/// Bytes a decoded request is taken to hold per byte of Zipkin body while it is decoded and mapped, held
/// against the request budget up front: the Zipkin spans and their OTLP form are alive together, and a
/// protobuf body's strings and IDs grow into separately allocated ones.
const DECODE_FACTOR: usize = 4;

/// Label of this receiver in logs and metrics.
const PROTOCOL: &str = "zipkin";

/// The Zipkin port's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v2/spans", post(report))
        .fallback(|| async {
            plain(StatusCode::NOT_FOUND, "no such endpoint: this port takes Zipkin v2 spans, POST /api/v2/spans")
        })
        // The receiver enforces its own limits while reading the body.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn report(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match accept(&state, &headers, body).await {
        // Zipkin's answer to a report: 202 and nothing else.
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(refusal) => refuse(refusal),
    }
}

async fn accept(state: &AppState, headers: &HeaderMap, body: Body) -> Result<(), Refusal> {
    let encoding =
        ZipkinEncoding::from_content_type(header_text(headers, &header::CONTENT_TYPE)).map_err(|unsupported| {
            refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, tonic::Code::InvalidArgument, "unsupported", &unsupported)
        })?;
    let (tenant, body, mut admitted) = super::otlp_http::receive_body(state, headers, body, PROTOCOL).await?;
    let limits = state.body_limits;
    let content_encoding = header_text(headers, &header::CONTENT_ENCODING).map(str::to_owned);
    let converted = tokio::task::spawn_blocking(move || -> Result<(NewSpans, Admitted), Refusal> {
        let received = |e: ReceiveError| Refusal::from(&e);
        let body = receive::decompress(body, content_encoding.as_deref(), limits, &mut admitted).map_err(received)?;
        let before = admitted.held_bytes();
        admitted.hold(body.len().saturating_mul(DECODE_FACTOR)).map_err(received)?;
        let request = zipkin::decode(&body, encoding).map_err(|error| undecodable(&error))?;
        drop(body);
        let spans = NewSpans::from_request(request)
            .map_err(|e| received(ReceiveError::Undecodable { encoding: encoding.name(), source: e.into() }))?;
        admitted
            .hold_exactly(before + spans.batch.get_array_memory_size() + spans.wal_payload.len())
            .map_err(received)?;
        Ok((spans, admitted))
    })
    .await;
    let (spans, _admitted) = match converted {
        Ok(result) => result?,
        Err(join_error) => {
            return Err(refusal(StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal, "internal", &join_error));
        }
    };
    let outcome = state.ingester()?.push(&tenant, spans).await.map_err(|e| Refusal::from(&e))?;
    // Zipkin's reply has no room for partial success: spans refused by the per-span limits are logged
    // (and counted in spanlake_spans_rejected_total) here, as for OTLP.
    export_reply(&tenant, &outcome.rejected, PROTOCOL);
    Ok(())
}

fn refusal(http: StatusCode, grpc: tonic::Code, reason: &'static str, error: &dyn std::fmt::Display) -> Refusal {
    Refusal { http, grpc, message: error.to_string(), detail: None, reason }
}

fn undecodable(error: &ZipkinError) -> Refusal {
    refusal(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, "invalid", error)
}

/// A plain-text answer, as Zipkin clients log it.
fn plain(status: StatusCode, message: &str) -> Response {
    let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
    (status, [(header::CONTENT_TYPE, content_type)], format!("{message}\n")).into_response()
}

fn refuse(refusal: Refusal) -> Response {
    refusal.record(PROTOCOL);
    let mut response = plain(refusal.http, &refusal.message);
    if refusal.is_retryable() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
    }
    response
}
