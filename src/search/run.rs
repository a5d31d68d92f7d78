//! The search itself: the newest-first walk over the store that stops once `limit` traces are certain.

use futures::stream::BoxStream;

use super::{SearchError, SearchRequest, SearchResponse};
use crate::ids::TenantId;
use crate::query::Querier;
use crate::sql::SqlEngine;

/// Answers searches for one process, over the same engine (limits, sandbox, catalogue) as SQL. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Searcher {
    sql: SqlEngine,
}

impl Searcher {
    /// A searcher running its plans on `sql`.
    pub fn new(sql: SqlEngine) -> Self {
        Self { sql }
    }

    /// The querier underneath (its catalogue, its ingester's buffers).
    pub fn querier(&self) -> &Querier {
        self.sql.querier()
    }

    /// The SQL engine underneath.
    pub fn sql(&self) -> &SqlEngine {
        &self.sql
    }

    /// The answer to `request` over `tenant`'s spans.
    pub async fn search(&self, tenant: &TenantId, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        let _ = (tenant, request);
        Err(SearchError::Internal("search is not implemented yet".into()))
    }

    /// The answer as it grows: each item is the whole answer so far (traces newest first, metrics
    /// cumulative), the last one final. For Grafana's streaming search.
    pub fn search_progress(
        &self,
        tenant: TenantId,
        request: SearchRequest,
    ) -> BoxStream<'static, Result<SearchResponse, SearchError>> {
        let searcher = self.clone();
        Box::pin(futures::stream::once(async move { searcher.search(&tenant, &request).await }))
    }
}
