//! SQL over spans (CONTRACTS §5): DataFusion over one tenant's blocks and the ingester's recent spans.
//!
//! Owns the `spans` table provider and its block pruning (`table.rs`), the SQL column shapes
//! (`schema.rs`), the ID-literal rule (`ids.rs`), the per-query sandbox (`session.rs`), how blocks are
//! read through the footer cache (`reader.rs`) and the result encodings (`format.rs`). The engine here
//! enforces the limits: concurrency, time and memory. Calls `query` (catalogue, footers, the ingester's
//! consistent view), `storage` and `spans`; called by `api` and the CLI.

mod bounded;
mod format;
mod id_hex;
mod ids;
mod leaf;
mod pending;
mod point;
mod reader;
mod schema;
mod session;
mod summary;
mod table;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::Stream;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub use format::{ResultFormat, ResultWriter, render_table};
use point::PointQuery;
pub use schema::sql_schema;
use session::SessionTemplate;
pub use session::TRACES_VIEW;
pub use table::{Partial, Pruning, SpansExec};

use crate::ids::TenantId;
use crate::query::{Querier, QueryError};
use crate::telemetry;

/// Why a query was not answered. The API maps each to one status (CONTRACTS §4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// SQL that does not parse or plan, or fails on its own terms (a bad cast, a division by zero): the
    /// client's to fix. 400.
    #[error("{}", root_message(.0))]
    Invalid(#[source] DataFusionError),
    /// A statement other than a query (named as the user would: `COPY`, `a CreateTable statement`). 400.
    #[error("read-only SQL: {0} is not allowed; run SELECT, WITH, EXPLAIN, DESCRIBE or SHOW over spans and traces")]
    NotReadOnly(String),
    /// Ran past the per-query time limit. 504.
    #[error("query exceeded its time limit of {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Needed more memory than the per-query limit. 507.
    #[error("query exceeded its memory limit of {limit} bytes (sql_memory_limit): {}", root_message(source))]
    Memory { limit: u64, source: DataFusionError },
    /// Too many queries at once. 429.
    #[error("{0} queries are already running (sql_max_concurrent); retry shortly")]
    Busy(usize),
    /// Blocks could not be read. 503.
    #[error("cannot read spans: {}", root_message(.0))]
    Unavailable(#[source] DataFusionError),
    /// A bug or an unexpected state. 500.
    #[error("internal error: {}", root_message(.0))]
    Internal(#[source] DataFusionError),
}

impl SqlError {
    /// True when blocks could not be read because an object of one is gone from the store (a block the
    /// catalogue still knew was deleted: compaction's switch seen late): a refresh of the tenant's blocks
    /// and a second run answers in full (issue 26, item 8).
    pub fn is_missing_object(&self) -> bool {
        let SqlError::Unavailable(error) = self else { return false };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = cause {
            if matches!(current.downcast_ref::<object_store::Error>(), Some(object_store::Error::NotFound { .. }))
                || matches!(
                    current.downcast_ref::<crate::storage::StorageError>(),
                    Some(crate::storage::StorageError::BlockNotFound(_))
                )
                || matches!(
                    current.downcast_ref::<DataFusionError>(),
                    Some(DataFusionError::ObjectStore(inner)) if matches!(**inner, object_store::Error::NotFound { .. })
                )
            {
                return true;
            }
            cause = current.source();
        }
        false
    }
}

/// What a user is shown of a DataFusion error: the message of the error at its root (one of ours, such as
/// a [`QueryError`], when DataFusion wraps it), without DataFusion's wrappers; for exhausted memory, the
/// detail alone.
fn root_message(error: &DataFusionError) -> String {
    if let Some(query) = error.find_root_external::<QueryError>() {
        return query.to_string();
    }
    match error.find_root() {
        DataFusionError::ResourcesExhausted(detail) => detail.clone(),
        root => root.to_string(),
    }
}

impl SqlError {
    /// The reply's text: the same as the error's for what the client can act on (its SQL, the limits),
    /// and for a failure of ours what failed without where (the log has local paths and object names).
    pub fn public_message(&self) -> String {
        match self {
            SqlError::Unavailable(error) => format!("cannot read spans: {}", public_root_message(error)),
            SqlError::Internal(error) => format!("internal error: {}", public_root_message(error)),
            other => other.to_string(),
        }
    }
}

/// [`root_message`] without local paths or object names.
fn public_root_message(error: &DataFusionError) -> String {
    if let Some(query) = error.find_root_external::<QueryError>() {
        return query.public_message();
    }
    if let Some(storage) = error.find_root_external::<crate::storage::StorageError>() {
        return storage.public_message();
    }
    match error.find_root() {
        DataFusionError::ObjectStore(error) => crate::storage::object_store_failure(error),
        DataFusionError::IoError(error) => format!("I/O: {}", error.kind()),
        DataFusionError::ParquetError(_) => "a block could not be decoded".to_owned(),
        root => root_message(root),
    }
}

/// Per-query limits (CONTRACTS §5).
#[derive(Clone, Debug, PartialEq)]
pub struct SqlLimits {
    /// Longest a query may run, planning and streaming included.
    pub timeout: Duration,
    /// Memory a query's operators may reserve (sorts, aggregations, joins); nothing spills to disk.
    pub memory_bytes: u64,
    /// Queries running at once; one more is refused with 429 rather than queued.
    pub max_concurrent: usize,
    /// Partitions a scan is split into (DataFusion's `target_partitions`).
    pub partitions: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            max_concurrent: 4,
            partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Runs user SQL against one process's querier. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlEngine {
    querier: Querier,
    limits: SqlLimits,
    permits: Arc<Semaphore>,
    template: Arc<SessionTemplate>,
}

/// What user SQL may be: queries only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE).
fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

impl SqlEngine {
    /// An engine over `querier`'s blocks (and its ingester's spans, if it has one).
    pub fn new(querier: Querier, limits: SqlLimits) -> Result<Self, SqlError> {
        let permits = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
        let template = SessionTemplate::new(limits.partitions, limits.memory_bytes).map_err(SqlError::Internal)?;
        Ok(Self { querier, limits, permits, template: Arc::new(template) })
    }

    /// The same engine (same querier, limits and concurrency slots) with Parquet row filters for every
    /// filter: the filter columns are decoded first and the other columns only for the rows that pass.
    /// That wins when few rows pass (search's conditions: BENCHMARKS.md, issue 25 item 3) and loses
    /// when most do, so user SQL uses them only for ID filters.
    pub fn with_row_filters(&self) -> Self {
        Self { template: Arc::new(self.template.with_row_filters()), ..self.clone() }
    }

    /// The querier whose blocks and buffers the engine reads.
    pub fn querier(&self) -> &Querier {
        &self.querier
    }

    /// The limits in force.
    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// Plans `sql` for `tenant` and starts it. The rows stream within the same time limit, and the
    /// query's concurrency slot is held until the stream is dropped.
    pub async fn query(&self, tenant: &TenantId, sql: &str) -> Result<SqlRows, SqlError> {
        let permit =
            self.permits.clone().try_acquire_owned().map_err(|_| SqlError::Busy(self.limits.max_concurrent))?;
        let deadline = Instant::now() + self.limits.timeout;
        let started = async {
            let mut session =
                self.template.session(&self.querier, tenant, &self.limits).map_err(|e| self.classify(e))?;
            let state = session.state();
            let dialect = state.config().options().sql_parser.dialect;
            let statement = state.sql_to_statement(sql, &dialect).map_err(|e| self.classify(e))?;
            check_read_only(&statement)?;
            if let Some(point) = PointQuery::recognise(&statement) {
                metrics::counter!(telemetry::SQL_POINT_QUERIES).increment(1);
                let rows = session.spans().point_rows(session.state(), &point).await.map_err(|e| self.classify(e))?;
                let stream = execute_stream(rows.clone(), session.task_ctx()).map_err(|e| self.classify(e))?;
                return Ok((stream, rows, session.spans().partial().reasons()));
            }
            let references = state.resolve_table_references(&statement).map_err(|e| self.classify(e))?;
            if session::needs_traces(&statement, &references) {
                session.add_traces().await.map_err(|e| self.classify(e))?;
            }
            let plan = session.state().statement_to_plan(statement).await.map_err(|e| self.classify(e))?;
            // Defence in depth: DataFusion's own check of the plan.
            read_only().verify_plan(&plan).map_err(|e| self.classify(e))?;
            let batch_rows = session.state().config().batch_size();
            bounded::check_literals(&plan, self.limits.memory_bytes, batch_rows).map_err(|e| self.classify(e))?;
            let plan = session.state().optimize(&plan).map_err(|e| self.classify(e))?;
            // Again after constant folding, which may have built a long literal (`repeat('x', 100000)`).
            bounded::check_literals(&plan, self.limits.memory_bytes, batch_rows).map_err(|e| self.classify(e))?;
            if table::reads_only_points(&plan) {
                session.state_mut().config_mut().options_mut().execution.target_partitions = 1;
            }
            let state = session.state();
            let physical =
                state.query_planner().create_physical_plan(&plan, state).await.map_err(|e| self.classify(e))?;
            let stream = execute_stream(physical.clone(), session.task_ctx()).map_err(|e| self.classify(e))?;
            Ok((stream, physical, session.spans().partial().reasons()))
        };
        let (stream, plan, partial) =
            tokio::time::timeout_at(deadline, started).await.map_err(|_| SqlError::Timeout(self.limits.timeout))??;
        let mut rows = SqlRows::new(stream, deadline, self.clone(), permit);
        rows.plan = Some(plan);
        rows.partial = partial;
        Ok(rows)
    }

    /// Which of our errors a DataFusion error is.
    fn classify(&self, error: DataFusionError) -> SqlError {
        if error.find_root_external::<QueryError>().is_some() {
            return SqlError::Unavailable(error);
        }
        match error.find_root() {
            DataFusionError::ResourcesExhausted(_) => {
                SqlError::Memory { limit: self.limits.memory_bytes, source: error }
            }
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Execution(_)
            | DataFusionError::Configuration(_)
            | DataFusionError::ArrowError(..) => SqlError::Invalid(error),
            DataFusionError::ObjectStore(_) | DataFusionError::ParquetError(_) | DataFusionError::IoError(_) => {
                SqlError::Unavailable(error)
            }
            _ => SqlError::Internal(error),
        }
    }
}

/// Refuses, before planning, anything but a query, with the statement named: planning some statements
/// (`COPY … TO 'x.csv'`) fails for unrelated reasons first, and the user should learn the real one.
fn check_read_only(statement: &DfStatement) -> Result<(), SqlError> {
    let refused = |what: &str| Err(SqlError::NotReadOnly(what.to_owned()));
    match statement {
        DfStatement::Statement(inner) => check_read_only_sql(inner),
        DfStatement::Explain(explain) => check_read_only(&explain.statement),
        DfStatement::CreateExternalTable(_) => refused("CREATE EXTERNAL TABLE"),
        DfStatement::CopyTo(_) => refused("COPY"),
        DfStatement::Reset(_) => refused("RESET"),
    }
}

fn check_read_only_sql(statement: &SqlStatement) -> Result<(), SqlError> {
    match statement {
        SqlStatement::Query(_)
        | SqlStatement::ExplainTable { .. }
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowFunctions { .. } => Ok(()),
        SqlStatement::Explain { statement, .. } => check_read_only_sql(statement),
        other => {
            // The statement's kind, as sqlparser names it: "Insert", "CreateTable", "SetVariable"…
            let debug = format!("{other:?}");
            let kind: String = debug.chars().take_while(char::is_ascii_alphanumeric).collect();
            Err(SqlError::NotReadOnly(format!("a {kind} statement")))
        }
    }
}

/// Extension of `DataFusionError` to find one of our errors wrapped inside it.
trait FindExternal {
    fn find_root_external<E: std::error::Error + 'static>(&self) -> Option<&E>;
}

impl FindExternal for DataFusionError {
    fn find_root_external<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut current: &(dyn std::error::Error + 'static) = self;
        loop {
            if let Some(found) = current.downcast_ref::<E>() {
                return Some(found);
            }
            if let Some(DataFusionError::External(inner)) = current.downcast_ref::<DataFusionError>() {
                current = inner.as_ref();
                continue;
            }
            current = current.source()?;
        }
    }
}

/// A query between two polls of its rows; `None` once it ended or the deadline reaper dropped it.
struct Running {
    query: std::sync::Mutex<Option<(SendableRecordBatchStream, OwnedSemaphorePermit)>>,
}

/// A running query's rows. Dropping it cancels the query and frees its concurrency slot.
pub struct SqlRows {
    schema: SchemaRef,
    rows: BoxStream<'static, Result<RecordBatch, SqlError>>,
    /// The plan the rows come from, for what its scans pruned.
    plan: Option<Arc<dyn ExecutionPlan>>,
    /// Why the rows may lack spans (an ingester of another process did not answer); empty: they do not.
    partial: Vec<String>,
}

impl SqlRows {
    fn new(
        stream: SendableRecordBatchStream,
        deadline: Instant,
        engine: SqlEngine,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let schema = stream.schema();
        let timeout = engine.limits.timeout;
        // The running query (its plan, its memory, its concurrency slot) lives here between polls. At the
        // deadline a reaper drops it whether or not anyone polls: a client that stops reading must not
        // hold a slot (and every other query's 429) for as long as its connection stays open.
        let running = Arc::new(Running { query: std::sync::Mutex::new(Some((stream, permit))) });
        let reaper = Arc::downgrade(&running);
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(running) = reaper.upgrade() {
                let query = running.query.lock().ok().and_then(|mut query| query.take());
                if query.is_some() {
                    tracing::info!(?timeout, "SQL query dropped at its deadline while its client was not reading");
                }
            }
        });
        let rows = futures::stream::unfold(Some(running), move |state| {
            let engine = engine.clone();
            async move {
                let running = state?;
                let taken = running.query.lock().ok().and_then(|mut query| query.take());
                let Some((mut stream, permit)) = taken else {
                    // Reaped (or a poisoned lock): say so once, then end.
                    return Some((Err(SqlError::Timeout(timeout)), None));
                };
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Err(_) => Some((Err(SqlError::Timeout(timeout)), None)),
                    Ok(None) => None,
                    Ok(Some(Ok(batch))) => {
                        if let Ok(mut query) = running.query.lock() {
                            *query = Some((stream, permit));
                        }
                        Some((Ok(batch), Some(running)))
                    }
                    Ok(Some(Err(error))) => Some((Err(engine.classify(error)), None)),
                }
            }
        })
        // Callers may ask again after the end (the HTTP encoder does when there were no rows at all).
        .fuse()
        .boxed();
        Self { schema, rows, plan: None, partial: Vec::new() }
    }

    /// The result's columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Why the rows may lack spans, known once planned (an ingester of another process did not answer):
    /// the answer says so (a `Warning` header), never a quiet subset. Empty when the rows are whole.
    pub fn partial(&self) -> &[String] {
        &self.partial
    }

    /// What block pruning did in every scan of `spans` in the query (summed), known once planned.
    pub fn pruning(&self) -> Pruning {
        let mut total = Pruning::default();
        let mut stack: Vec<&Arc<dyn ExecutionPlan>> = self.plan.iter().collect();
        while let Some(node) = stack.pop() {
            if let Some(spans) = node.downcast_ref::<SpansExec>() {
                total.add(&spans.pruning());
            }
            stack.extend(node.children());
        }
        total
    }

    /// Every remaining row, for callers that print a table.
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>, SqlError> {
        let mut batches = Vec::new();
        while let Some(batch) = self.rows.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }
}

impl Stream for SqlRows {
    type Item = Result<RecordBatch, SqlError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.poll_next_unpin(cx)
    }
}
