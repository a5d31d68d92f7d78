//! Jaeger's query HTTP API on its own port (16686): what Grafana's Jaeger data source and scripts written
//! against Jaeger call — services, operations, trace search, trace by ID, dependencies, and the v3 routes
//! Grafana uses behind its `jaegerEnableGrpcEndpoint` flag. A port of its own because `/api/traces/{id}`
//! means one thing to Tempo's clients and another to Jaeger's.
//!
//! Answers come from the same search, tag values, trace lookups and SQL as the query port (no private
//! store). Owns the Jaeger routes, their parameters (`params.rs`) and their JSON shapes (`model.rs`).

mod model;
mod params;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};

use super::AppState;
use super::status::Refusal;
use crate::ids::TenantId;
use crate::query::TimeWindow;
use crate::search::{DEFAULT_TAG_LIMIT, ScopeFilter, SearchError, SearchRequest, TagsRequest};
use params::{ParamError, Params, quoted};

/// Traces whose spans a search fetches at once.
const TRACE_FETCH_CONCURRENCY: usize = 8;

/// Span kinds as TraceQL and Jaeger's `spanKind` name them (`unspecified` is Jaeger's empty kind).
const KINDS: [&str; 6] = ["unspecified", "internal", "server", "client", "producer", "consumer"];

/// The Jaeger port's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(service_operations))
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace_by_id))
        .route("/api/dependencies", get(dependencies))
        .route("/api/v3/services", get(services_v3))
        .route("/api/v3/operations", get(operations_v3))
        .route("/api/v3/traces/{trace_id}", get(trace_by_id_v3))
        .fallback(|request: axum::extract::Request| async move {
            error(StatusCode::NOT_FOUND, &format!("no such endpoint: {}", request.uri().path()))
        })
        .with_state(state)
}

/// Jaeger's answer envelope. `total`, `limit` and `offset` are Jaeger's own (counts only for lists).
fn envelope(data: Value, total: usize) -> Response {
    axum::Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": Value::Null })).into_response()
}

/// Jaeger's error envelope with its HTTP status: `errors[0]` carries the code and the message.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "data": Value::Null, "total": 0, "limit": 0, "offset": 0,
        "errors": [{ "code": status.as_u16(), "msg": message }],
    });
    (status, axum::Json(body)).into_response()
}

/// The v3 API's error body.
fn error_v3(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": { "httpCode": status.as_u16(), "message": message } }))).into_response()
}

/// The tenant of a request (credentials and X-Scope-OrgID, as on every port), or the refusal in `shape`.
#[allow(clippy::result_large_err)] // the refusal is the response itself, sent at once
fn tenant(
    state: &AppState,
    headers: &HeaderMap,
    shape: fn(StatusCode, &str) -> Response,
) -> Result<TenantId, Response> {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    let asked = headers.get(crate::receive::TENANT_HEADER).and_then(|v| v.to_str().ok());
    state.tenant_of(authorization, asked).map_err(|refused| {
        let refusal = Refusal::from(&refused);
        let mut response = shape(refusal.http, &refusal.message);
        if refusal.http == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(crate::auth::CHALLENGE));
        }
        response
    })
}

fn search_failed(error: &SearchError, shape: fn(StatusCode, &str) -> Response) -> Response {
    let status = super::tempo_search::search_error_status(error);
    if status.is_server_error() {
        tracing::warn!(%error, "Jaeger API: search failed");
    }
    shape(status, &error.public_message())
}

fn bad_parameter(wrong: &ParamError) -> Response {
    error(StatusCode::BAD_REQUEST, &wrong.to_string())
}

/// Every service with spans stored (the values of `resource.service.name`).
async fn service_names(state: &AppState, tenant: &TenantId) -> Result<Vec<String>, SearchError> {
    let request = tag_request(None);
    let values = state.search.tag_values(tenant, "resource.service.name", &request).await?;
    Ok(values.into_iter().map(|value| value.value).collect())
}

fn tag_request(q: Option<String>) -> TagsRequest {
    TagsRequest {
        scope: ScopeFilter::All,
        q,
        start_unix_nano: None,
        end_unix_nano: None,
        limit: DEFAULT_TAG_LIMIT.max(10_000),
    }
}

/// Span names of `service`, by kind when `kinds` names them: `(name, kind)` pairs, sorted.
async fn operation_names(
    state: &AppState,
    tenant: &TenantId,
    service: &str,
    kinds: &[&'static str],
) -> Result<Vec<(String, &'static str)>, SearchError> {
    let mut found = Vec::new();
    for kind in kinds {
        let q = format!("{{ resource.service.name = {} && kind = {kind} }}", quoted(service));
        for value in state.search.tag_values(tenant, "name", &tag_request(Some(q))).await? {
            found.push((value.value, *kind));
        }
    }
    found.sort();
    Ok(found)
}

/// `GET /api/services`: `{"data": [names], "total": n, …}` (Grafana's connection test).
async fn services(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers, error) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    match service_names(&state, &tenant).await {
        Ok(names) => {
            let total = names.len();
            envelope(json!(names), total)
        }
        Err(failed) => search_failed(&failed, error),
    }
}

/// `GET /api/services/{service}/operations`: the service's span names, whatever their kind.
async fn service_operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant(&state, &headers, error) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let q = format!("{{ resource.service.name = {} }}", quoted(&service));
    match state.search.tag_values(&tenant, "name", &tag_request(Some(q))).await {
        Ok(values) => {
            let names: Vec<String> = values.into_iter().map(|value| value.value).collect();
            let total = names.len();
            envelope(json!(names), total)
        }
        Err(failed) => search_failed(&failed, error),
    }
}

/// The kinds a `spanKind` parameter asks for: all of them when empty.
fn kinds_asked(span_kind: Option<&str>) -> Result<Vec<&'static str>, String> {
    match span_kind.map(str::trim).unwrap_or_default() {
        "" => Ok(KINDS.to_vec()),
        asked => {
            KINDS.iter().find(|kind| **kind == asked.to_ascii_lowercase()).map(|kind| vec![*kind]).ok_or_else(|| {
                format!("unsupported span kind {asked:?}: expected server, client, producer, consumer or internal")
            })
        }
    }
}

/// `GET /api/operations?service=&spanKind=`: `{"data": [{"name", "spanKind"}], …}`; Jaeger's empty kind
/// for spans without one.
async fn operations(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers, error) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let params = Params::parse(query.as_deref());
    let Some(service) = params.first("service").filter(|s| !s.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let kinds = match kinds_asked(params.first("spanKind")) {
        Ok(kinds) => kinds,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match operation_names(&state, &tenant, service, &kinds).await {
        Ok(found) => {
            let data: Vec<Value> = found
                .iter()
                .map(|(name, kind)| json!({ "name": name, "spanKind": if *kind == "unspecified" { "" } else { kind } }))
                .collect();
            let total = data.len();
            envelope(Value::Array(data), total)
        }
        Err(failed) => search_failed(&failed, error),
    }
}

/// `GET /api/v3/services`: `{"services": [names]}`.
async fn services_v3(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers, error_v3) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    match service_names(&state, &tenant).await {
        Ok(names) => axum::Json(json!({ "services": names })).into_response(),
        Err(failed) => search_failed(&failed, error_v3),
    }
}

/// `GET /api/v3/operations?service=&spanKind=` (or `span_kind`): `{"operations": [{"name", "spanKind"}]}`;
/// v3 reports spans without a kind as `internal`.
async fn operations_v3(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers, error_v3) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let params = Params::parse(query.as_deref());
    let service = params.first("service").unwrap_or_default();
    let kinds = match kinds_asked(params.first("spanKind").or_else(|| params.first("span_kind"))) {
        Ok(kinds) => kinds,
        Err(message) => return error_v3(StatusCode::BAD_REQUEST, &message),
    };
    match operation_names(&state, &tenant, service, &kinds).await {
        Ok(found) => {
            let mut operations: Vec<(String, &str)> = found
                .into_iter()
                .map(|(name, kind)| (name, if kind == "unspecified" { "internal" } else { kind }))
                .collect();
            operations.dedup();
            let operations: Vec<Value> =
                operations.into_iter().map(|(name, kind)| json!({ "name": name, "spanKind": kind })).collect();
            axum::Json(json!({ "operations": operations })).into_response()
        }
        Err(failed) => search_failed(&failed, error_v3),
    }
}

/// `GET /api/traces/{id}?start=&end=`: `{"data": [trace]}`, 404 when unknown.
async fn trace_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant(&state, &headers, error) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let params = Params::parse(query.as_deref());
    let window = match params.lookup_window() {
        Ok(window) => window,
        Err(wrong) => return bad_parameter(&wrong),
    };
    let trace_id = match params::trace_id(&id) {
        Ok(trace_id) => trace_id,
        Err(wrong) => return bad_parameter(&wrong),
    };
    match state.querier.find_trace(&tenant, &trace_id, window).await {
        Ok(lookup) => match model::trace(&lookup.resource_spans) {
            Some(trace) => {
                let mut response = envelope(json!([trace]), 0);
                if let Some(why) = lookup.incomplete {
                    mark_partial(&mut response, &why);
                }
                response
            }
            None => match lookup.incomplete {
                Some(why) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
                None => error(StatusCode::NOT_FOUND, "trace not found"),
            },
        },
        Err(failed) => lookup_failed(&failed, error),
    }
}

/// A partial trace (some blocks unreadable) is sent with a `Warning` header, as the query port's v1 SQL
/// answers do: Jaeger's JSON has no place to say it.
fn mark_partial(response: &mut Response, why: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("199 spanlake \"partial trace: {}\"", why.replace('"', "'"))) {
        response.headers_mut().insert(header::WARNING, value);
    }
}

fn lookup_failed(failed: &crate::query::QueryError, shape: fn(StatusCode, &str) -> Response) -> Response {
    let status = super::traces::query_error_status(failed);
    if status.is_server_error() {
        tracing::warn!(error = %failed, "Jaeger API: trace lookup failed");
    }
    shape(status, &failed.public_message())
}

/// `GET /api/v3/traces/{id}?startTime=&endTime=`: `{"result": {"resourceSpans": […]}}` in OTLP/JSON.
async fn trace_by_id_v3(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant(&state, &headers, error_v3) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let params = Params::parse(query.as_deref());
    let window = match params.rfc3339_window() {
        Ok(window) => window,
        Err(wrong) => return error_v3(StatusCode::BAD_REQUEST, &wrong.to_string()),
    };
    let trace_id = match params::trace_id(&id) {
        Ok(trace_id) => trace_id,
        Err(wrong) => return error_v3(StatusCode::BAD_REQUEST, &wrong.to_string()),
    };
    match state.querier.find_trace(&tenant, &trace_id, window).await {
        Ok(lookup) if lookup.is_empty() => match lookup.incomplete {
            Some(why) => error_v3(StatusCode::SERVICE_UNAVAILABLE, &why),
            None => error_v3(StatusCode::NOT_FOUND, "No traces found"),
        },
        Ok(lookup) => {
            let body = json!({ "result": { "resourceSpans": lookup.resource_spans } });
            let mut response = axum::Json(body).into_response();
            if let Some(why) = lookup.incomplete {
                mark_partial(&mut response, &why);
            }
            response
        }
        Err(failed) => lookup_failed(&failed, error_v3),
    }
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&limit=&start=&end=`: Jaeger's
/// search — traces with a span of `service` (named `operation`, with every tag, lasting within the
/// bounds), newest first, each whole. Or, with `traceID=` parameters, those traces.
async fn search(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers, error) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let params = Params::parse(query.as_deref());
    let search = match params.search(now_micros()) {
        Ok(search) => search,
        Err(wrong) => return bad_parameter(&wrong),
    };
    let window = TimeWindow::from_unix_nanos(
        u64::try_from(search.start_micros.saturating_mul(1_000)).ok(),
        u64::try_from(search.end_micros.saturating_mul(1_000)).ok(),
    );
    // Multi-get: the traces named, each found or reported missing.
    if !search.trace_ids.is_empty() {
        let lookups = futures::stream::iter(search.trace_ids.iter().copied().map(|id| {
            let (querier, tenant) = (state.querier.clone(), tenant.clone());
            async move { (id, querier.find_trace(&tenant, &id, window).await) }
        }))
        .buffered(TRACE_FETCH_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        let mut traces = Vec::new();
        let mut missing = Vec::new();
        for (id, lookup) in lookups {
            match lookup.map(|lookup| model::trace(&lookup.resource_spans)) {
                Ok(Some(trace)) => traces.push(trace),
                Ok(None) => {
                    missing.push(json!({ "msg": "trace not found", "traceID": model::trace_id_text(id.as_bytes()) }))
                }
                Err(failed) => return lookup_failed(&failed, error),
            }
        }
        let errors = if missing.is_empty() { Value::Null } else { Value::Array(missing) };
        return axum::Json(json!({ "data": traces, "total": 0, "limit": 0, "offset": 0, "errors": errors }))
            .into_response();
    }
    let Some(service) = search.service.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let traceql = search.traceql(service);
    let mut request = match SearchRequest::traceql(&traceql) {
        Ok(request) => request,
        Err(failed) => return search_failed(&failed, error),
    };
    request.start_unix_nano = Some(search.start_micros.saturating_mul(1_000));
    request.end_unix_nano = Some(search.end_micros.saturating_mul(1_000));
    request.limit = search.limit;
    let found = match state.search.search(&tenant, &request).await {
        Ok(found) => found,
        Err(failed) => return search_failed(&failed, error),
    };
    // Partial answers are marked, never silent (CONTRACTS §4): Jaeger's way is an entry in `errors`.
    let mut partial: Vec<String> = found.partial.clone();
    let found: Vec<_> = found.traces.iter().map(|matched| matched.trace_id).collect();
    let lookups = futures::stream::iter(found.into_iter().map(|trace_id| {
        let (querier, tenant) = (state.querier.clone(), tenant.clone());
        async move { querier.find_trace(&tenant, &trace_id, TimeWindow::default()).await }
    }))
    .buffered(TRACE_FETCH_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut traces = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        match lookup {
            // Never a trace without spans (a trace compacted away between search and lookup is left out).
            Ok(lookup) => {
                partial.extend(lookup.incomplete.iter().cloned());
                traces.extend(model::trace(&lookup.resource_spans))
            }
            Err(failed) => return lookup_failed(&failed, error),
        }
    }
    partial.dedup();
    let errors = match partial.is_empty() {
        true => Value::Null,
        false => partial.iter().map(|why| json!({ "code": 503, "msg": format!("partial: {why}") })).collect(),
    };
    axum::Json(json!({ "data": traces, "total": 0, "limit": 0, "offset": 0, "errors": errors })).into_response()
}

/// `GET /api/dependencies?endTs=&lookback=` (milliseconds; lookback 24 h by default): calls between
/// services — a span whose parent belongs to another service is one call from the parent's service to
/// its own — as `{"data": [{"parent", "child", "callCount"}]}`.
async fn dependencies(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers, error) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let params = Params::parse(query.as_deref());
    let (start_ms, end_ms) = match params.dependency_window(now_micros() / 1_000) {
        Ok(window) => window,
        Err(wrong) => return bad_parameter(&wrong),
    };
    let service = params.first("service").filter(|s| !s.is_empty()).map(str::to_owned);
    // Parents may start before the window (a long request whose calls fall inside it): an hour of slack.
    let sql = format!(
        "SELECT p.service_name AS parent, c.service_name AS child, count(*) AS calls \
         FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
         WHERE c.start_time >= to_timestamp_millis({start_ms}) AND c.start_time <= to_timestamp_millis({end_ms}) \
         AND p.start_time >= to_timestamp_millis({}) AND p.start_time <= to_timestamp_millis({end_ms}) \
         AND p.service_name <> c.service_name \
         GROUP BY p.service_name, c.service_name ORDER BY parent, child",
        start_ms.saturating_sub(3_600_000)
    );
    let batches = match state.sql.query(&tenant, &sql).await {
        Ok(rows) => rows.collect().await,
        Err(failed) => Err(failed),
    };
    let batches = match batches {
        Ok(batches) => batches,
        Err(failed) => {
            tracing::warn!(error = %failed, "Jaeger API: dependencies failed");
            return error(super::sql::status_of(&failed), &failed.public_message());
        }
    };
    let mut links = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let text = |column: usize| {
                arrow::util::display::array_value_to_string(batch.column(column), row).unwrap_or_default()
            };
            let (parent, child) = (text(0), text(1));
            if service.as_ref().is_some_and(|s| *s != parent && *s != child) {
                continue;
            }
            let calls: u64 = text(2).parse().unwrap_or(0);
            links.push(json!({ "parent": parent, "child": child, "callCount": calls }));
        }
    }
    let total = links.len();
    envelope(Value::Array(links), total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_kinds_are_checked() {
        assert_eq!(kinds_asked(None).unwrap().len(), 6);
        assert_eq!(kinds_asked(Some("SERVER")).unwrap(), ["server"]);
        assert!(kinds_asked(Some("sideways")).is_err());
    }

    #[test]
    fn traceql_strings_are_quoted_and_escaped() {
        assert_eq!(quoted(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
