//! OTLP/HTTP on port 4318: `POST /v1/traces` with protobuf or JSON bodies, gzip accepted (CONTRACTS §2).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use prost::Message;

use super::AppState;
use super::connections::BodyTimedOut;
use super::status::{RETRY_AFTER, Refusal, export_reply};
use crate::ingest::NewSpans;
use crate::receive::{self, Admitted, BodyError, OtlpEncoding, ReceiveError};
use crate::telemetry;

/// Bytes an OTLP/JSON body's decoded request is taken to hold per byte of JSON, held against the request
/// budget while it is decoded (the protobuf structs with their strings; hex IDs and quoting make the
/// JSON larger than what it decodes to).
const JSON_DECODE_FACTOR: usize = 2;

/// The OTLP/HTTP router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        // The receiver enforces its own limits while reading the body.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn export(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let encoding = match OtlpEncoding::from_content_type(header_text(&headers, header::CONTENT_TYPE.as_str())) {
        Ok(encoding) => encoding,
        Err(error) => return refuse(Refusal::from(&error), OtlpEncoding::Json),
    };
    match accept(&state, &headers, body, encoding).await {
        Ok(reply) => reply,
        Err(refusal) => refuse(refusal, encoding),
    }
}

/// The first steps of every HTTP receiver (OTLP/HTTP, Zipkin): the tenant from the credentials and
/// headers, a place in the in-flight byte budget, the body as sent (within its size and time limits), and a
/// refusal before any decoding when the buffer or WAL is full.
pub(super) async fn receive_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    protocol: &'static str,
) -> Result<(crate::ids::TenantId, Bytes, Admitted), Refusal> {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    let tenant =
        state.tenant_of(authorization, header_text(headers, receive::TENANT_HEADER)).map_err(|e| Refusal::from(&e))?;
    state.admit_tenant(&tenant).map_err(|e| Refusal::from(&e))?;
    let mut admitted = state.admission.admit();
    let read_error = |error: axum::Error| match BodyTimedOut::find(&error) {
        Some(timed_out) => ReceiveError::SlowBody(timed_out.0),
        None => ReceiveError::Undecodable { encoding: "HTTP", source: BodyError::Read(error.into()) },
    };
    let body =
        receive::admission::collect_body(body, state.body_limits.max_compressed_bytes, &mut admitted, read_error)
            .await
            .map_err(|e| Refusal::from(&e))?;
    metrics::counter!(telemetry::RECEIVED_BYTES, "protocol" => protocol).increment(body.len() as u64);
    state.ingester()?.check_capacity().map_err(|e| Refusal::from(&e))?;
    Ok((tenant, body, admitted))
}

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    encoding: OtlpEncoding,
) -> Result<Response, Refusal> {
    let (tenant, body, mut admitted) = receive_body(state, headers, body, "http").await?;
    let limits = state.body_limits;
    let content_encoding = header_text(headers, header::CONTENT_ENCODING.as_str()).map(str::to_owned);
    let converted = tokio::task::spawn_blocking(move || -> Result<(NewSpans, Admitted), ReceiveError> {
        let body = receive::decompress(body, content_encoding.as_deref(), limits, &mut admitted)?;
        let spans = match encoding {
            OtlpEncoding::Protobuf => {
                let spans = NewSpans::from_protobuf(body).map_err(receive::undecodable_protobuf)?;
                admitted.hold(spans.memory_bytes())?;
                spans
            }
            OtlpEncoding::Json => {
                // The decoded request's structs, before they become spans: an estimate, held up front.
                let before = admitted.held_bytes();
                admitted.hold(body.len().saturating_mul(JSON_DECODE_FACTOR))?;
                let spans = NewSpans::from_request(receive::decode_json(&body)?)
                    .map_err(|e| ReceiveError::Undecodable { encoding: "JSON", source: e.into() })?;
                admitted.hold_exactly(before + spans.batch.get_array_memory_size() + spans.wal_payload.len())?;
                spans
            }
        };
        Ok((spans, admitted))
    })
    .await;
    let (spans, _admitted) = match converted {
        Ok(result) => result.map_err(|e| Refusal::from(&e))?,
        Err(join_error) => {
            return Err(Refusal::from(&ReceiveError::Undecodable { encoding: "HTTP", source: join_error.into() }));
        }
    };
    let outcome = state.ingester()?.push(&tenant, spans).await.map_err(|e| Refusal::from(&e))?;
    let response = export_reply(&tenant, &outcome.rejected, "http");
    Ok(reply(StatusCode::OK, encoding, Bytes::from(receive::encode_response(&response, encoding))))
}

fn reply(status: StatusCode, encoding: OtlpEncoding, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(encoding.content_type()))], body).into_response()
}

fn refuse(refusal: Refusal, encoding: OtlpEncoding) -> Response {
    refusal.record("http");
    let status = refusal.rpc_status();
    let body = match encoding {
        OtlpEncoding::Protobuf => Bytes::from(status.encode_to_vec()),
        OtlpEncoding::Json => {
            Bytes::from(serde_json::json!({ "code": status.code, "message": status.message }).to_string())
        }
    };
    let mut response = reply(refusal.http, encoding, body);
    if refusal.is_retryable() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
    }
    response
}
