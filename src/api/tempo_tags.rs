//! Tempo's tag autocomplete on the query port: `/api/search/tags`, `/api/v2/search/tags`,
//! `/api/search/tag/{name}/values` and `/api/v2/search/tag/{name}/values`. A thin face: parameters to a
//! [`TagsRequest`], the answer from `search`, Tempo's JSON shapes here.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::query::tenant_of;
use super::tempo_search::search_error_response;
use crate::ids::TenantId;
use crate::search::{INTRINSIC_TAGS, SearchError, TagNames, TagParams, TagsRequest};
use crate::storage::block::TagScope;

/// The tenant and the checked request, or the refusal to send.
// The refusal is the response itself, sent at once; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn accept(
    state: &AppState,
    headers: &HeaderMap,
    params: Result<Query<TagParams>, QueryRejection>,
) -> Result<(TenantId, TagsRequest), Response> {
    let tenant = tenant_of(state, headers)?;
    let Query(params) = params.map_err(|e| search_error_response(&SearchError::Parameter(e.body_text())))?;
    let request = TagsRequest::from_params(&params).map_err(|e| search_error_response(&e))?;
    Ok((tenant, request))
}

/// `GET /api/search/tags`: `{"tagNames": [...]}`, span and resource attribute names merged (Tempo v1
/// lists no intrinsics).
pub async fn tags_v1(
    State(state): State<AppState>,
    params: Result<Query<TagParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let (tenant, request) = match accept(&state, &headers, params) {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    // v1 takes no query: names are never narrowed there.
    let request = TagsRequest { q: None, ..request };
    match state.search.tag_names(&tenant, &request).await {
        Ok(names) => Json(json!({ "tagNames": v1_names(&names, request.limit) })).into_response(),
        Err(error) => search_error_response(&error),
    }
}

/// `GET /api/v2/search/tags`: `{"scopes": [{"name": …, "tags": [...]}, …]}`, narrowed by `q`.
pub async fn tags_v2(
    State(state): State<AppState>,
    params: Result<Query<TagParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let (tenant, request) = match accept(&state, &headers, params) {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    match state.search.tag_names(&tenant, &request).await {
        Ok(names) => Json(json!({ "scopes": v2_scopes(&names) })).into_response(),
        Err(error) => search_error_response(&error),
    }
}

/// `GET /api/search/tag/{name}/values`: `{"tagValues": ["a", …]}`.
pub async fn values_v1(
    state: State<AppState>,
    name: Path<String>,
    params: Result<Query<TagParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    values(state, name, params, headers, false).await
}

/// `GET /api/v2/search/tag/{name}/values`: `{"tagValues": [{"type": "string", "value": "a"}, …]}`.
pub async fn values_v2(
    state: State<AppState>,
    name: Path<String>,
    params: Result<Query<TagParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    values(state, name, params, headers, true).await
}

/// Both values endpoints: v1 takes no query (values are never narrowed there) and lists bare strings.
async fn values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<TagParams>, QueryRejection>,
    headers: HeaderMap,
    typed: bool,
) -> Response {
    let (tenant, request) = match accept(&state, &headers, params) {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    let request = if typed { request } else { TagsRequest { q: None, ..request } };
    match state.search.tag_values(&tenant, &name, &request).await {
        Ok(values) if typed => {
            let typed: Vec<Value> = values.iter().map(|v| json!({ "type": v.value_type, "value": v.value })).collect();
            Json(json!({ "tagValues": typed })).into_response()
        }
        Ok(values) => {
            let mut texts: Vec<String> = values.into_iter().map(|v| v.value).collect();
            texts.dedup();
            Json(json!({ "tagValues": texts })).into_response()
        }
        Err(error) => search_error_response(&error),
    }
}

/// Span and resource names, merged, sorted, each once.
fn v1_names(names: &TagNames, limit: usize) -> Vec<String> {
    let mut merged: Vec<String> = [TagScope::Span, TagScope::Resource]
        .iter()
        .filter_map(|scope| names.scopes.get(scope))
        .flatten()
        .cloned()
        .collect();
    merged.sort();
    merged.dedup();
    merged.truncate(limit);
    merged
}

/// The scopes asked for, in Tempo's order; an empty scope is left out except `resource` and `span`.
fn v2_scopes(names: &TagNames) -> Vec<Value> {
    let mut scopes: Vec<Value> = names
        .scopes
        .iter()
        .filter(|(scope, tags)| !tags.is_empty() || matches!(scope, TagScope::Resource | TagScope::Span))
        .map(|(scope, tags)| json!({ "name": scope.name(), "tags": tags }))
        .collect();
    scopes.sort_by_key(|scope| TagScope::ALL.iter().position(|s| scope["name"] == s.name()));
    if names.intrinsics {
        scopes.push(json!({ "name": "intrinsic", "tags": INTRINSIC_TAGS }));
    }
    scopes
}
