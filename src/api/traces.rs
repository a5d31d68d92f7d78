//! Trace by ID on the query port, as Tempo serves it (CONTRACTS §4): `GET /api/traces/{id}` (v1,
//! `tempopb.Trace`) and `GET /api/v2/traces/{id}` (`tempopb.TraceByIDResponse`), OTLP/JSON by default and
//! protobuf when the client accepts it (Grafana's Tempo data source does).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use prost::Message;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::query::error_response;
use crate::ids::TraceId;
use crate::query::tempopb;
use crate::query::{LookupCost, QueryError, TimeWindow, TraceLookup};

/// The protobuf media type Grafana sends in `Accept`; `application/x-protobuf` is accepted too.
const PROTOBUF: &str = "application/protobuf";
const JSON: &str = "application/json";

/// Tempo's optional block-narrowing parameters, unix seconds.
#[derive(Debug, Default, Deserialize)]
pub struct TimeParams {
    start: Option<u64>,
    end: Option<u64>,
}

/// Which response shape a route answers with.
#[derive(Clone, Copy)]
enum Version {
    V1,
    V2,
}

/// `GET /api/traces/{id}`.
pub async fn trace_v1(
    state: State<AppState>,
    id: Path<String>,
    params: Result<Query<TimeParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    trace_by_id(state, id, params, headers, Version::V1).await
}

/// `GET /api/v2/traces/{id}`.
pub async fn trace_v2(
    state: State<AppState>,
    id: Path<String>,
    params: Result<Query<TimeParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    trace_by_id(state, id, params, headers, Version::V2).await
}

async fn trace_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<TimeParams>, QueryRejection>,
    headers: HeaderMap,
    version: Version,
) -> Response {
    let tenant = match super::query::tenant_of(&state, &headers) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let found = async {
        let trace_id = TraceId::from_hex(&id).map_err(|source| QueryError::BadTraceId { id: id.clone(), source })?;
        let Query(params) = params.map_err(|e| QueryError::BadRequest(e.body_text()))?;
        let window = TimeWindow::from_unix_seconds(params.start, params.end)?;
        let lookup = state.querier.find_trace(&tenant, &trace_id, window).await?;
        tracing::debug!(tenant = %tenant, trace = %trace_id, spans = lookup.span_count, cost = ?lookup.cost, "trace by ID");
        Ok::<_, QueryError>((trace_id, lookup))
    }
    .await;
    match found {
        // A lookup that found nothing because blocks were unreadable must not claim the trace is unknown.
        Ok((trace_id, lookup)) if lookup.is_empty() => match &lookup.incomplete {
            Some(why) => error_response(StatusCode::SERVICE_UNAVAILABLE, &format!("trace {trace_id}: {why}")),
            None => error_response(StatusCode::NOT_FOUND, &format!("trace {trace_id} not found")),
        },
        // Only the recent spans of an ingester elsewhere are missing: every stored span is here, so v1
        // answers with them and says what is missing in a `Warning` header.
        Ok((_, lookup)) if lookup.only_recent_missing && matches!(version, Version::V1) => {
            let warning = super::query::partial_warning(&[lookup.incomplete.clone().unwrap_or_default()]);
            let mut response = trace_answer(lookup, version, &headers).await;
            if let Some(warning) = warning {
                response.headers_mut().insert(header::WARNING, warning);
            }
            response
        }
        // v1 has no way to say "partial": refuse rather than hand back a trace with holes (a trace too
        // large to read whole is refused for good; unreadable blocks may come back).
        Ok((trace_id, lookup)) if lookup.incomplete.is_some() && matches!(version, Version::V1) => {
            let status =
                if lookup.truncated { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::SERVICE_UNAVAILABLE };
            let why = lookup.incomplete.unwrap_or_default();
            error_response(status, &format!("trace {trace_id}: {why}"))
        }
        Ok((_, lookup)) => trace_answer(lookup, version, &headers).await,
        Err(error) => query_error_response(&error),
    }
}

/// A found trace in the body the client asked for (Tempo's protobuf or OTLP/JSON), gzip'd when it takes it.
async fn trace_answer(lookup: TraceLookup, version: Version, headers: &HeaderMap) -> Response {
    match wants_protobuf(headers) {
        true => super::gzip::response(PROTOBUF, protobuf_body(lookup, version), headers).await,
        false => super::gzip::response(JSON, json_body(lookup, version), headers).await,
    }
}

/// The status of a failed lookup: 400 for what the client got wrong, 429 when too many run, 504 past the
/// time limit, 500 for what went wrong here or in the store. Trace by ID on every port answers with it.
pub fn query_error_status(error: &QueryError) -> StatusCode {
    match error {
        QueryError::BadRequest(_) | QueryError::BadTraceId { .. } => StatusCode::BAD_REQUEST,
        QueryError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error answer of a failed lookup, with its [`query_error_status`]; server errors are logged.
fn query_error_response(error: &QueryError) -> Response {
    let status = query_error_status(error);
    let message = match error {
        QueryError::BadRequest(message) | QueryError::Busy(message) => message.clone(),
        QueryError::BadTraceId { .. } | QueryError::Timeout(_) => error.to_string(),
        other => {
            tracing::warn!(error = %other, "query failed");
            other.public_message()
        }
    };
    let mut response = error_response(status, &message);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|media| {
        let media = media.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case(PROTOBUF) || media.eq_ignore_ascii_case("application/x-protobuf")
    })
}

fn metrics_of(cost: &LookupCost) -> tempopb::TraceByIdMetrics {
    tempopb::TraceByIdMetrics {
        inspected_bytes: cost.backend_bytes,
        backend_reads: cost.backend_reads,
        backend_bytes: cost.backend_bytes,
    }
}

fn protobuf_body(lookup: TraceLookup, version: Version) -> Vec<u8> {
    let trace = tempopb::Trace { resource_spans: lookup.resource_spans };
    match version {
        Version::V1 => trace.encode_to_vec(),
        Version::V2 => tempopb::TraceByIdResponse {
            trace: Some(trace),
            metrics: Some(metrics_of(&lookup.cost)),
            status: if lookup.incomplete.is_some() {
                tempopb::PartialStatus::Partial.into()
            } else {
                tempopb::PartialStatus::Complete.into()
            },
            message: lookup.incomplete.unwrap_or_default(),
        }
        .encode_to_vec(),
    }
}

fn json_body(lookup: TraceLookup, version: Version) -> Vec<u8> {
    let body = match version {
        Version::V1 => json!({ "batches": lookup.resource_spans }),
        Version::V2 => {
            let cost = &lookup.cost;
            // proto3 JSON writes 64-bit integers as strings.
            let mut body = json!({
                "trace": { "resourceSpans": lookup.resource_spans },
                "metrics": {
                    "inspectedBytes": cost.backend_bytes.to_string(),
                    "backendReads": cost.backend_reads.to_string(),
                    "backendBytes": cost.backend_bytes.to_string(),
                },
            });
            if let Some(why) = lookup.incomplete {
                body["status"] = "PARTIAL".into();
                body["message"] = why.into();
            }
            body
        }
    };
    // Serialising a `Value` into memory cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}
