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
use crate::receive::{self, BodyError, OtlpEncoding, ReceiveError};
use crate::telemetry;

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

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    encoding: OtlpEncoding,
) -> Result<Response, Refusal> {
    let tenant = receive::resolve_tenant(header_text(headers, receive::TENANT_HEADER), state.multitenancy)
        .map_err(|e| Refusal::from(&e))?;
    let limits = state.body_limits;
    let body = axum::body::to_bytes(body, limits.max_compressed_bytes).await.map_err(|error| {
        let too_large =
            std::error::Error::source(&error).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            Refusal::from(&ReceiveError::TooLarge { limit: limits.max_compressed_bytes, stage: "as sent" })
        } else if let Some(timed_out) = BodyTimedOut::find(&error) {
            Refusal::from(&ReceiveError::SlowBody(timed_out.0))
        } else {
            Refusal::from(&ReceiveError::Undecodable { encoding: "HTTP", source: BodyError::Read(error.into()) })
        }
    })?;
    metrics::counter!(telemetry::RECEIVED_BYTES, "protocol" => "http").increment(body.len() as u64);
    let content_encoding = header_text(headers, header::CONTENT_ENCODING.as_str()).map(str::to_owned);
    let converted = tokio::task::spawn_blocking(move || -> Result<NewSpans, ReceiveError> {
        let body = receive::decompress(body, content_encoding.as_deref(), limits)?;
        match encoding {
            OtlpEncoding::Protobuf => NewSpans::from_protobuf(body).map_err(receive::undecodable_protobuf),
            OtlpEncoding::Json => NewSpans::from_request(receive::decode_json(&body)?)
                .map_err(|e| ReceiveError::Undecodable { encoding: "JSON", source: e.into() }),
        }
    })
    .await;
    let spans = match converted {
        Ok(result) => result.map_err(|e| Refusal::from(&e))?,
        Err(join_error) => {
            return Err(Refusal::from(&ReceiveError::Undecodable { encoding: "HTTP", source: join_error.into() }));
        }
    };
    let outcome = state.ingester.push(&tenant, spans).await.map_err(|e| Refusal::from(&e))?;
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
