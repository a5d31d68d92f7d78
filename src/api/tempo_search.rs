//! Tempo's search on the query port: `GET /api/search` (TraceQL in `q`, or logfmt `tags`). A thin face:
//! the request and the answer are `search`'s values; this file maps them to HTTP.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::query::{error_response, tenant_of};
use crate::search::{SearchError, SearchParams, SearchRequest};

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
        Ok(response) => {
            let mut answer = Json(response.to_json()).into_response();
            if let Some(warning) = super::query::partial_warning(&response.partial) {
                answer.headers_mut().insert(axum::http::header::WARNING, warning);
            }
            answer
        }
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
