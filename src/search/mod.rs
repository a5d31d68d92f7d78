//! Finding traces: Tempo's search (TraceQL or logfmt tags) and tag autocomplete, planned onto the same
//! DataFusion `spans` table, block catalogue and pruning that SQL uses.
//!
//! Owns the search request as a value ([`SearchRequest`], from Tempo's parameters), the planner that
//! turns a TraceQL query into SQL over `spans` (`plan.rs`), the evaluation of a query over whole traces
//! (`eval.rs`), the newest-first walk that stops once `limit` traces are certain (`run.rs`), the answer as
//! a value and its Tempo JSON (`answer.rs`), and tag names and values (`tags/`). Calls `traceql`, `sql`
//! and `query`; called by `api` and the CLI. Does no HTTP.

mod answer;
#[cfg(test)]
pub(crate) use answer::sample_match;
mod eval;
mod plan;
mod request;
mod run;
mod tags;
mod trace;

pub use answer::{
    AttributeValue, MatchedSpan, ROOT_NOT_RECEIVED, SearchMetrics, SearchResponse, ServiceStats, SpanSet, TraceMatch,
    tempo_trace_id,
};
/// Public for the fuzz targets (tests/fuzz), which plan every query that passes TraceQL's checks.
pub use plan::span_condition;
pub use request::{SearchParams, SearchRequest, pairs_to_traceql, parse_go_duration, tags_to_traceql};
pub use run::Searcher;
pub use tags::{DEFAULT_TAG_LIMIT, INTRINSIC_TAGS, ScopeFilter, Tag, TagNames, TagParams, TagValue, TagsRequest};

use crate::sql::SqlError;
use crate::traceql::TraceqlError;

/// Why a search was not answered. The API maps each to one status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The TraceQL query does not parse or is meaningless. 400.
    #[error("invalid TraceQL query: {0}")]
    Query(#[from] TraceqlError),
    /// A parameter is malformed or the combination is refused (both `q` and `tags`, `start` after `end`). 400.
    #[error("{0}")]
    Parameter(String),
    /// The engine underneath failed (limits, storage, a bug): its own status. Boxed, as DataFusion's
    /// errors are large and every search result would carry their size.
    #[error(transparent)]
    Sql(Box<SqlError>),
    /// The block catalogue could not be read. 503.
    #[error("cannot read the block catalogue: {0}")]
    Unavailable(#[source] Box<crate::query::QueryError>),
    /// Rows came back in a shape the search did not ask for: a bug. 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SearchError {
    /// The reply's text: what failed, never where (the log has local paths and object names).
    pub fn public_message(&self) -> String {
        match self {
            SearchError::Sql(error) => error.public_message(),
            SearchError::Unavailable(error) => format!("cannot read the block catalogue: {}", error.public_message()),
            other => other.to_string(),
        }
    }
}

impl From<SqlError> for SearchError {
    fn from(error: SqlError) -> Self {
        Self::Sql(Box::new(error))
    }
}
