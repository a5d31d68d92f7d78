//! Tempo's search on the query port: `GET /api/search` (TraceQL in `q`, or logfmt `tags`). A thin face:
//! the request and the answer are `search`'s values; this file maps them to HTTP.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::query::error_response;
use super::status::Refusal;
use crate::ids::TenantId;
use crate::receive;
use crate::search::{SearchError, SearchParams, SearchRequest};

/// The tenant of a query-port request, or the refusal to send.
// The refusal is sent at once, per request: its size costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
pub fn tenant_of(state: &AppState, headers: &HeaderMap) -> Result<TenantId, Response> {
    receive::resolve_tenant(headers.get(receive::TENANT_HEADER).and_then(|v| v.to_str().ok()), state.multitenancy)
        .map_err(|error| {
            let refusal = Refusal::from(&error);
            error_response(refusal.http, &refusal.message)
        })
}

/// `GET /api/search`.
pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant_of(&state, &headers) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let answer = async {
        let Query(params) = params.map_err(|e| SearchError::Parameter(e.body_text()))?;
        let request = SearchRequest::from_params(&params)?;
        state.search.search(&tenant, &request).await
    }
    .await;
    match answer {
        Ok(response) => Json(response.to_json()).into_response(),
        Err(error) => search_error_response(&error),
    }
}

/// The status of a search error: the client's mistakes are 400, the engine's limits keep their own.
pub fn search_error_response(error: &SearchError) -> Response {
    let status = search_error_status(error);
    if status.is_server_error() {
        tracing::warn!(%error, "search failed");
    } else {
        tracing::info!(%error, "search refused");
    }
    error_response(status, &error.public_message())
}

/// The HTTP status for a search error.
pub fn search_error_status(error: &SearchError) -> StatusCode {
    match error {
        SearchError::Query(_) | SearchError::Parameter(_) => StatusCode::BAD_REQUEST,
        SearchError::Sql(sql) => super::sql::status_of(sql),
        SearchError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        SearchError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
