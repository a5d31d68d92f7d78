//! Finding traces: Tempo's search (TraceQL or logfmt tags) and tag autocomplete, planned onto the same
//! DataFusion `spans` table, block catalogue and pruning that SQL uses.
//!
//! Owns the search request as a value ([`SearchRequest`], from Tempo's parameters), the planner that
//! turns a TraceQL query into SQL over `spans` (`plan.rs`), the evaluation of a query over whole traces
//! (`eval.rs`), the newest-first walk that stops once `limit` traces are certain (`run.rs`), the answer as
//! a value and its Tempo JSON (`answer.rs`), and tag names and values (`tags/`). Calls `traceql`, `sql`
//! and `query`; called by `api` and the CLI. Does no HTTP.

mod answer;
mod eval;
mod plan;
mod request;
mod run;
mod tags;

pub use answer::{AttributeValue, MatchedSpan, SearchMetrics, SearchResponse, ServiceStats, SpanSet, TraceMatch};
pub use request::{SearchParams, SearchRequest};
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
    /// The engine underneath failed (limits, storage, a bug): its own status.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Rows came back in a shape the search did not ask for: a bug. 500.
    #[error("internal error: {0}")]
    Internal(String),
}
