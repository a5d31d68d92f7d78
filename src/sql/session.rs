//! The sandbox: a DataFusion session per query that can read one tenant's spans and nothing else.
//!
//! What it leaves out is the point: no table factories (so no `CREATE EXTERNAL TABLE` even if the
//! statement check were bypassed), no file formats, no URL tables, no object store but the tenant's blocks
//! prefix (DataFusion's default registry would hand out the local file system), and no spilling to disk
//! (a query over its memory limit fails with a clear error instead of filling a disk). DDL, DML and
//! statements are refused when the SQL is planned (`SQLOptions` in `mod.rs`).
//!
//! The parts that are the same for every query are built once ([`SessionTemplate`]) and cloned per query;
//! the tenant's tables, memory pool and object store are the query's own ([`QuerySession`]).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider, TableProvider,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateDefaults;
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::{ObjectStoreRegistry, ObjectStoreUrl};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use url::Url;

use super::SqlLimits;
use super::bounded::bound_functions;
use super::id_hex::IdHex;
use super::ids::IdLiterals;
use super::schema::IdKind;
use super::table::SpansTable;
use crate::ids::TenantId;
use crate::query::Querier;
use crate::spans::schema::col;
use crate::storage::layout;

/// The URL under which a session finds its tenant's blocks. The only store it has.
const BLOCKS_URL: &str = "spanlake://blocks/";

/// The `traces` view (CONTRACTS §5): one row per trace. The root is the earliest span without a
/// parent; a trace whose root has not arrived has NULL root columns, as Tempo shows "root span not yet
/// received".
pub const TRACES_VIEW: &str = "SELECT
    trace_id,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) AS duration_ns,
    first_value(service_name ORDER BY start_time) FILTER (WHERE parent_span_id IS NULL) AS root_service_name,
    first_value(name ORDER BY start_time) FILTER (WHERE parent_span_id IS NULL) AS root_span_name,
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 'error') AS error_count
FROM spans
GROUP BY trace_id";

/// An object-store registry that knows at most one store and refuses to learn others.
#[derive(Debug)]
struct Stores {
    only: Option<(Url, Arc<dyn ObjectStore>)>,
}

impl Stores {
    fn none() -> Self {
        Self { only: None }
    }

    fn one(url: Url, store: Arc<dyn ObjectStore>) -> Self {
        Self { only: Some((url, store)) }
    }
}

impl ObjectStoreRegistry for Stores {
    fn register_store(&self, _url: &Url, _store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        None
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match &self.only {
            Some((only, store)) if url.scheme() == only.scheme() && url.host_str() == only.host_str() => {
                Ok(store.clone())
            }
            _ => Err(DataFusionError::Plan(format!("{url}: SQL here reads only the spans and traces tables"))),
        }
    }
}

/// What every query's session has in common, whatever the tenant: configuration, functions, analyzer
/// and optimizer rules. Built once per engine, because building it (registering some 400 functions,
/// creating every rule) cost about 0.2 ms of each query; a query clones it instead.
#[derive(Clone, Debug)]
pub struct SessionTemplate {
    /// Its catalogue is empty and its runtime refuses every object store and every byte of memory: a
    /// query gets both from [`SessionTemplate::session`], so nothing can run against the template itself.
    state: SessionState,
    /// [`BLOCKS_URL`], parsed once: the registry's key and the scans' store URL.
    blocks_url: Url,
    store_url: ObjectStoreUrl,
}

impl SessionTemplate {
    /// The template for sessions split into `partitions` partitions, whose functions refuse results
    /// above `memory_bytes` (`bounded.rs`).
    pub fn new(partitions: usize, memory_bytes: u64) -> Result<Self> {
        let refusing = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(0)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .with_object_store_registry(Arc::new(Stores::none()))
            .build_arc()?;
        let config = SessionConfig::new().with_information_schema(true).with_target_partitions(partitions);
        let table_functions = SessionStateDefaults::default_table_functions()
            .into_iter()
            .map(|function| (function.name().to_owned(), function))
            .collect::<HashMap<_, _>>();
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(refusing)
            .with_scalar_functions(bound_functions(SessionStateDefaults::default_scalar_functions(), memory_bytes))
            .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
            .with_window_functions(SessionStateDefaults::default_window_functions())
            .with_higher_order_functions(SessionStateDefaults::default_higher_order_functions())
            .with_expr_planners(SessionStateDefaults::default_expr_planners())
            .with_table_functions(table_functions)
            .with_analyzer_rules(IdLiterals::with_default_rules())
            .build();
        let blocks_url = Url::parse(BLOCKS_URL).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Self { state, blocks_url, store_url: ObjectStoreUrl::parse(BLOCKS_URL)? })
    }

    /// The same template with Parquet row filters on for every filter of a scan, not only ID filters
    /// (`table.rs`): for an engine whose queries are mostly selective, such as search's.
    pub fn with_row_filters(&self) -> Self {
        let mut template = self.clone();
        template.state.config_mut().options_mut().execution.parquet.pushdown_filters = true;
        template
    }

    /// A session for one query of `tenant`, with `spans` registered (`traces` is added by
    /// [`QuerySession::add_traces`] when the query may read it: planning the view is work that a point
    /// query should not pay for, about 0.5 ms of a trace-ID query in the SQL benchmark).
    pub fn session(&self, querier: &Querier, tenant: &TenantId, limits: &SqlLimits) -> Result<QuerySession> {
        let tenant_store: Arc<dyn ObjectStore> =
            Arc::new(PrefixStore::new(querier.storage().object_store(), layout::blocks_prefix(tenant)));
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX)),
            NonZeroUsize::new(3).expect("3 is not zero"),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .with_object_store_registry(Arc::new(Stores::one(self.blocks_url.clone(), tenant_store.clone())))
            .build_arc()?;

        let spans = Arc::new(
            SpansTable::new(tenant.clone(), querier.clone(), self.store_url.clone(), tenant_store)
                .with_memory_pool(runtime.memory_pool.clone()),
        );
        let (mut state, schema) = with_spans(&self.state, spans.clone())?;
        // `now()` is this query's start.
        state.mark_start_execution();
        Ok(QuerySession { state, schema, spans, runtime })
    }
}

/// `state` with a catalogue of one schema holding `spans` (under that name), and that schema, where the
/// `traces` view is added when a query needs it.
fn with_spans(state: &SessionState, spans: Arc<SpansTable>) -> Result<(SessionState, Arc<MemorySchemaProvider>)> {
    let schema = Arc::new(MemorySchemaProvider::new());
    schema.register_table("spans".to_owned(), spans)?;
    let catalog = MemoryCatalogProvider::new();
    let options = state.config().options();
    catalog.register_schema(&options.catalog.default_schema, schema.clone())?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(options.catalog.default_catalog.clone(), Arc::new(catalog));
    let mut state = state.clone();
    state.register_catalog_list(Arc::new(catalogs));
    Ok((state, schema))
}

/// One query's session: the template's state with this tenant's tables, and the runtime (memory pool,
/// object store) its plan executes with.
pub struct QuerySession {
    state: SessionState,
    schema: Arc<MemorySchemaProvider>,
    spans: Arc<SpansTable>,
    runtime: Arc<RuntimeEnv>,
}

impl QuerySession {
    /// The state to plan with.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The state to plan with, to adjust its configuration for this query.
    pub fn state_mut(&mut self) -> &mut SessionState {
        &mut self.state
    }

    /// The session's `spans`.
    pub fn spans(&self) -> &SpansTable {
        &self.spans
    }

    /// Registers the `traces` view over the session's `spans`: planned over the binary twin of `spans`
    /// (grouping on the stored 16-byte IDs), with hex made of each trace's ID afterwards (`id_hex.rs`).
    pub async fn add_traces(&self) -> Result<()> {
        let (binary, _) = with_spans(&self.state, Arc::new(self.spans.with_binary_ids()))?;
        let grouped = binary.create_logical_plan(TRACES_VIEW).await?;
        let columns: Vec<Expr> = grouped
            .schema()
            .columns()
            .into_iter()
            .map(|column| match column.name() == col::TRACE_ID {
                true => IdHex::call(IdKind::Trace, Expr::Column(column)).alias(col::TRACE_ID),
                false => Expr::Column(column),
            })
            .collect();
        let traces = LogicalPlanBuilder::from(grouped).project(columns)?.build()?;
        let traces: Arc<dyn TableProvider> = Arc::new(ViewTable::new(traces, Some(TRACES_VIEW.to_owned())));
        self.schema.register_table("traces".to_owned(), traces)?;
        Ok(())
    }

    /// What a plan of this session executes with: the query's own memory pool and tenant store.
    pub fn task_ctx(&self) -> Arc<TaskContext> {
        Arc::new(TaskContext::from(&self.state).with_runtime(self.runtime.clone()))
    }
}

/// Whether a statement may read the `traces` view: it names it, lists tables (information schema, SHOW,
/// DESCRIBE), or is anything but a plain query (EXPLAIN of one, say), where being exact beats being quick.
pub fn needs_traces(
    statement: &datafusion::sql::parser::Statement,
    references: &[datafusion::common::TableReference],
) -> bool {
    use datafusion::sql::parser::Statement;
    use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
    let plain_query = matches!(statement, Statement::Statement(inner) if matches!(**inner, SqlStatement::Query(_)));
    !plain_query
        || references
            .iter()
            .any(|reference| reference.table() == "traces" || reference.schema() == Some("information_schema"))
}
