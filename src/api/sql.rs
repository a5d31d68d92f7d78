//! `POST /api/sql` (CONTRACTS §4): the body is the SQL (`text/plain`, `application/sql`) or
//! `{"query": "…"}`; the result streams as JSON, NDJSON, CSV or Arrow IPC, chosen by `?format=` or
//! `Accept`.
//!
//! The status line waits for the first batch, so a query that fails early (most do: planning, limits,
//! a bad cast on the first rows) gets its proper status and a JSON error. A failure after rows have been
//! sent can only cut the response short; it is logged.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::AppState;
use super::connections::BodyTimedOut;
use super::query::error_response;
use crate::sql::{ResultFormat, ResultWriter, SqlError, SqlRows};
use crate::telemetry;

/// `?format=json|ndjson|csv|arrow`.
#[derive(Debug, Default, Deserialize)]
pub struct SqlParams {
    format: Option<String>,
}

/// What is wrong with a request before its SQL runs: always a 400 with this message.
#[derive(Debug, thiserror::Error)]
enum SqlRequestError {
    #[error("{}", .0.body_text())]
    Params(#[source] QueryRejection),
    #[error("unknown result format {0:?}: use json, ndjson, csv or arrow")]
    UnknownFormat(String),
    #[error("a JSON body must be {{\"query\": \"…\"}}: {0}")]
    NotJsonQuery(#[source] serde_json::Error),
    #[error("the SQL text is not valid UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    #[error("no SQL given: send the query as the request body")]
    NoSql,
}

/// A JSON request body.
#[derive(Deserialize)]
struct SqlBody {
    query: String,
}

/// `POST /api/sql`.
pub async fn sql(
    State(state): State<AppState>,
    params: Result<Query<SqlParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => match BodyTimedOut::find(&rejection) {
            Some(timed_out) => {
                tracing::info!("SQL request refused: {timed_out}");
                return error_response(StatusCode::REQUEST_TIMEOUT, &timed_out.to_string());
            }
            None => return error_response(rejection.status(), &rejection.body_text()),
        },
    };
    let tenant = match super::query::tenant_of(&state, &headers) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let request = params
        .map_err(SqlRequestError::Params)
        .and_then(|Query(params)| result_format(params.format.as_deref(), &headers))
        .and_then(|format| Ok((format, query_text(&headers, &body)?)));
    let (format, text) = match request {
        Ok(request) => request,
        Err(refused) => return error_response(StatusCode::BAD_REQUEST, &refused.to_string()),
    };
    let started = Instant::now();
    let started_rows = match until_first_batch(&state, &tenant, &text).await {
        Err(error) if error.is_missing_object() => {
            // A block the catalogue knew is gone (compaction deleted it after its switch, which this
            // querier has not listed yet): refresh the tenant's blocks and run the query once more. Still
            // missing, it fails (503): never a silent subset.
            tracing::info!(%tenant, %error, "a block of the SQL scan is gone from the store; refreshing and running again");
            if let Err(error) = state.querier.catalog().refresh(&tenant).await {
                tracing::warn!(%tenant, %error, "block catalogue refresh failed");
            }
            until_first_batch(&state, &tenant, &text).await
        }
        other => other,
    };
    let (rows, first) = match started_rows {
        Ok(found) => found,
        Err(error) => return sql_error_response(&tenant.to_string(), &text, &error),
    };
    let warning = super::query::partial_warning(rows.partial());
    let writer = ResultWriter::new(rows.schema(), format);
    let body = Body::from_stream(encoded(writer, first, rows, started, tenant.to_string()));
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    if let Some(warning) = warning {
        response.headers_mut().insert(header::WARNING, warning);
    }
    response
}

/// Plans and starts a query, up to its first batch (the status line waits for it).
async fn until_first_batch(
    state: &AppState,
    tenant: &crate::ids::TenantId,
    text: &str,
) -> Result<(SqlRows, Option<arrow::array::RecordBatch>), SqlError> {
    let mut rows = state.sql.query(tenant, text).await?;
    let first = rows.next().await.transpose()?;
    Ok((rows, first))
}

/// The format asked for: `?format=` wins over `Accept`; JSON when neither names one.
fn result_format(name: Option<&str>, headers: &HeaderMap) -> Result<ResultFormat, SqlRequestError> {
    if let Some(name) = name {
        return ResultFormat::from_name(name).ok_or_else(|| SqlRequestError::UnknownFormat(name.to_owned()));
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    Ok(ResultFormat::from_accept(accept).unwrap_or_default())
}

/// The SQL text of the request body.
fn query_text(headers: &HeaderMap, body: &[u8]) -> Result<String, SqlRequestError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let text = if content_type.split(';').next().is_some_and(|t| t.trim() == "application/json") {
        serde_json::from_slice::<SqlBody>(body).map_err(SqlRequestError::NotJsonQuery)?.query
    } else {
        String::from_utf8(body.to_vec()).map_err(SqlRequestError::NotUtf8)?
    };
    if text.trim().is_empty() {
        return Err(SqlRequestError::NoSql);
    }
    Ok(text)
}

/// The status of an engine failure (CONTRACTS §4), for SQL and for the searches planned onto SQL.
pub fn status_of(error: &SqlError) -> StatusCode {
    match error {
        SqlError::Invalid(_) | SqlError::NotReadOnly(_) => StatusCode::BAD_REQUEST,
        SqlError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        SqlError::Memory { .. } => StatusCode::INSUFFICIENT_STORAGE,
        SqlError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        SqlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status each failure gets (CONTRACTS §4). Client errors are logged at debug, ours at warn.
fn sql_error_response(tenant: &str, sql: &str, error: &SqlError) -> Response {
    let status = status_of(error);
    if status.is_server_error() && status != StatusCode::INSUFFICIENT_STORAGE {
        tracing::warn!(tenant, sql, %error, "SQL query failed");
    } else {
        tracing::info!(tenant, sql, %error, status = status.as_u16(), "SQL query refused");
    }
    let mut response = error_response(status, &error.public_message());
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

enum Phase {
    Begin(Option<arrow::array::RecordBatch>),
    Rows,
    Done,
}

/// The response body: the writer's opening, every batch, its closing. A failure mid-stream ends the
/// body with an error, which the server turns into a cut connection the client cannot mistake for a
/// complete answer.
fn encoded(
    writer: ResultWriter,
    first: Option<arrow::array::RecordBatch>,
    rows: SqlRows,
    started: Instant,
    tenant: String,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold((writer, rows, Phase::Begin(first)), move |(mut writer, mut rows, phase)| {
        let tenant = tenant.clone();
        async move {
            let failed = |error: Box<dyn std::error::Error + Send + Sync>| {
                tracing::warn!(tenant, %error, "SQL result cut short");
                std::io::Error::other(error)
            };
            let (bytes, next) = match phase {
                Phase::Done => return None,
                Phase::Begin(first) => {
                    let mut bytes = match writer.begin() {
                        Ok(bytes) => bytes,
                        Err(error) => return Some((Err(failed(error.into())), (writer, rows, Phase::Done))),
                    };
                    match first.map(|batch| writer.batch(&batch)).transpose() {
                        Ok(more) => bytes.extend(more.unwrap_or_default()),
                        Err(error) => return Some((Err(failed(error.into())), (writer, rows, Phase::Done))),
                    }
                    (bytes, Phase::Rows)
                }
                Phase::Rows => match rows.next().await {
                    Some(Ok(batch)) => match writer.batch(&batch) {
                        Ok(bytes) => (bytes, Phase::Rows),
                        Err(error) => return Some((Err(failed(error.into())), (writer, rows, Phase::Done))),
                    },
                    Some(Err(error)) => return Some((Err(failed(error.into())), (writer, rows, Phase::Done))),
                    None => {
                        metrics::histogram!(telemetry::QUERY_SECONDS, "endpoint" => "sql")
                            .record(started.elapsed().as_secs_f64());
                        match writer.finish() {
                            Ok(bytes) => (bytes, Phase::Done),
                            Err(error) => return Some((Err(failed(error.into())), (writer, rows, Phase::Done))),
                        }
                    }
                },
            };
            Some((Ok(Bytes::from(bytes)), (writer, rows, next)))
        }
    })
}
