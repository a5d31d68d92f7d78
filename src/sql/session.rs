//! The sandbox: a DataFusion session per query that can read one tenant's spans and nothing else.
//!
//! What it leaves out is the point: no table factories (so no `CREATE EXTERNAL TABLE` even if the
//! statement check were bypassed), no file formats, no URL tables, no object store but the tenant's blocks
//! prefix (DataFusion's default registry would hand out the local file system), and no spilling to disk
//! (a query over its memory limit fails with a clear error instead of filling a disk). DDL, DML and
//! statements are refused when the SQL is planned (`SQLOptions` in `mod.rs`).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateDefaults;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::{ObjectStoreRegistry, ObjectStoreUrl};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use url::Url;

use super::SqlLimits;
use super::ids::IdLiterals;
use super::table::SpansTable;
use crate::ids::TenantId;
use crate::query::Querier;
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

/// An object-store registry that knows exactly one store and refuses to learn others.
#[derive(Debug)]
struct OneStore {
    url: Url,
    store: Arc<dyn ObjectStore>,
}

impl ObjectStoreRegistry for OneStore {
    fn register_store(&self, _url: &Url, _store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        None
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if url.scheme() == self.url.scheme() && url.host_str() == self.url.host_str() {
            Ok(self.store.clone())
        } else {
            Err(DataFusionError::Plan(format!("{url}: SQL here reads only the spans and traces tables")))
        }
    }
}

/// A session for one query of `tenant`, with `spans` registered (`traces` is added by [`add_traces`] when
/// the query may read it: planning the view is work that a point query should not pay for, about 0.5 ms
/// of a trace-ID query in the SQL benchmark).
pub async fn session(querier: &Querier, tenant: &TenantId, limits: &SqlLimits) -> Result<SessionContext> {
    let url = Url::parse(BLOCKS_URL).map_err(|e| DataFusionError::Internal(e.to_string()))?;
    let tenant_store: Arc<dyn ObjectStore> =
        Arc::new(PrefixStore::new(querier.storage().object_store(), layout::blocks_prefix(tenant)));
    let pool = TrackConsumersPool::new(
        GreedyMemoryPool::new(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX)),
        NonZeroUsize::new(3).expect("3 is not zero"),
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .with_object_store_registry(Arc::new(OneStore { url: url.clone(), store: tenant_store.clone() }))
        .build_arc()?;
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(true)
        .with_target_partitions(limits.partitions);
    let table_functions = SessionStateDefaults::default_table_functions()
        .into_iter()
        .map(|function| (function.name().to_owned(), function))
        .collect::<HashMap<_, _>>();
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
        .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
        .with_window_functions(SessionStateDefaults::default_window_functions())
        .with_higher_order_functions(SessionStateDefaults::default_higher_order_functions())
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_table_functions(table_functions)
        .with_analyzer_rule(Arc::new(IdLiterals))
        .build();
    let context = SessionContext::new_with_state(state);
    let store_url = ObjectStoreUrl::parse(BLOCKS_URL)?;
    let spans = SpansTable::new(tenant.clone(), querier.clone(), store_url, tenant_store);
    context.register_table("spans", Arc::new(spans))?;
    Ok(context)
}

/// Registers the `traces` view over the session's `spans`.
pub async fn add_traces(context: &SessionContext) -> Result<()> {
    let traces = context.sql(TRACES_VIEW).await?.into_unoptimized_plan();
    let traces: Arc<dyn TableProvider> = Arc::new(ViewTable::new(traces, Some(TRACES_VIEW.to_owned())));
    context.register_table("traces", traces)?;
    Ok(())
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
