//! The `spans` table: one tenant's blocks (from the querier's catalogue, never a LIST per query) and the
//! ingester's spans not yet in a block, taken at one instant.
//!
//! Blocks are pruned before DataFusion sees them, in memory: by their start/end time range for
//! `start_time`/`end_time` filters, by their tag summary for name, service and attribute equalities
//! (`summary.rs`), and for `trace_id = …` / `IN (…)` exactly as a trace-by-ID lookup
//! prunes (ID range, then bloom filter). What survives is read by the lookup's own reader when the query
//! names a few trace IDs (`point.rs`), and otherwise scanned by DataFusion's Parquet reader with
//! statistics, page index and row filters on, fed the same filters translated to the stored column types.
//! Every filter is also re-applied above the scan (`Inexact`), so pruning can only ever save work.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, expr::InList};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::StreamExt;
use object_store::ObjectStore;
use tokio::sync::OnceCell;

use super::id_hex::IdHex;
use super::pending::pending_reads;
use super::point::{PointQuery, few_enough, trace_reads};
use super::reader::BlockReaderFactory;
use super::schema::{IdKind, StoredProjection, binary_ids_schema, cast_batch, scan_schema, sql_schema};
use super::summary::SummaryFilter;
use crate::ids::{SpanId, TenantId, TraceId};
use crate::ingest::Held;
use crate::query::{CatalogBlock, CatalogView, Querier, TenantBlocks};
use crate::spans::schema::col;
use crate::storage::{BlockMeta, EncodedBlock, layout};
use crate::telemetry;

/// How a `spans` table shows the ID columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdForm {
    /// Lowercase hex text: the `spans` table users query (CONTRACTS §5).
    Hex,
    /// As stored (fixed-size binary): the twin the `traces` view groups on, never registered by name.
    Binary,
}

/// One tenant's `spans`, for one query.
#[derive(Debug)]
pub struct SpansTable {
    tenant: TenantId,
    querier: Querier,
    /// Where the session's object-store registry has the tenant's blocks prefix.
    store_url: ObjectStoreUrl,
    tenant_store: Arc<dyn ObjectStore>,
    /// Taken at the first scan and shared by every scan of the query and by the binary twin (a
    /// self-join, or a join of `spans` with `traces`, sees one instant).
    view: Arc<OnceCell<Arc<View>>>,
    ids: IdForm,
    /// Why the query's answer may lack spans (an ingester of another process did not answer), shared by
    /// every scan of the query and read by whoever sends the answer.
    partial: Partial,
    /// The query's memory pool, which the rows fetched from ingesters are checked against (none: unchecked).
    pool: Option<Arc<dyn datafusion::execution::memory_pool::MemoryPool>>,
}

/// The reasons an answer is partial, collected while a query plans its scans. Cheap to clone; clones
/// share the list.
#[derive(Clone, Debug, Default)]
pub struct Partial(Arc<std::sync::Mutex<Vec<String>>>);

impl Partial {
    /// Adds reasons (each once).
    pub fn note(&self, reasons: impl IntoIterator<Item = String>) {
        let mut noted = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for reason in reasons {
            if !noted.contains(&reason) {
                noted.push(reason);
            }
        }
    }

    /// The reasons so far; empty when the answer is whole.
    pub fn reasons(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[derive(Debug)]
struct View {
    blocks: TenantBlocks,
    recent: Held,
    /// What the catalogue knew at that instant: the blocks whose rows other processes' ingesters must not
    /// add again.
    known: CatalogView,
}

impl SpansTable {
    /// The table of `tenant`'s spans; blocks are read through `tenant_store`, registered at `store_url`.
    pub fn new(
        tenant: TenantId,
        querier: Querier,
        store_url: ObjectStoreUrl,
        tenant_store: Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            tenant,
            querier,
            store_url,
            tenant_store,
            view: Arc::new(OnceCell::new()),
            ids: IdForm::Hex,
            partial: Partial::default(),
            pool: None,
        }
    }

    /// The same spans, at the same instant, with the IDs as stored ([`IdForm::Binary`]).
    pub fn with_binary_ids(&self) -> Self {
        Self {
            tenant: self.tenant.clone(),
            querier: self.querier.clone(),
            store_url: self.store_url.clone(),
            tenant_store: self.tenant_store.clone(),
            view: self.view.clone(),
            ids: IdForm::Binary,
            partial: self.partial.clone(),
            pool: self.pool.clone(),
        }
    }

    /// The same table, checking the rows it fetches from ingesters against the query's memory `pool`.
    pub fn with_memory_pool(self, pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool>) -> Self {
        Self { pool: Some(pool), ..self }
    }

    /// Why the query's answer may lack spans, as its scans find out.
    pub fn partial(&self) -> &Partial {
        &self.partial
    }

    /// The rows of a [`PointQuery`], exactly: the scan for a few trace IDs reads only those traces' rows
    /// (point reads of the blocks the pruning kept, the ingester's rows filtered by ID), so unlike a
    /// DataFusion plan, which re-applies its filters above the scan, nothing is needed on top.
    pub async fn point_rows(&self, state: &dyn Session, point: &PointQuery) -> Result<Arc<dyn ExecutionPlan>> {
        let ids = point.traces.iter().map(|id| Expr::Literal(ScalarValue::Utf8(Some(id.to_hex())), None)).collect();
        let filter = Expr::InList(InList::new(Box::new(Expr::Column(Column::from_name(col::TRACE_ID))), ids, false));
        self.scan(state, Some(&point.columns), &[filter], None).await
    }

    async fn view(&self) -> Result<Arc<View>> {
        self.view
            .get_or_try_init(|| async {
                let (blocks, recent, known) = self
                    .querier
                    .consistent_view(&self.tenant)
                    .await
                    .map_err(|error| DataFusionError::External(Box::new(error)))?;
                Ok(Arc::new(View { blocks, recent, known }))
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        match self.ids {
            IdForm::Hex => sql_schema(),
            IdForm::Binary => binary_ids_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let view = self.view().await?;
        let conjuncts: Vec<&Expr> = filters.iter().flat_map(split_conjunction).collect();
        let wanted_traces = trace_ids_wanted(&conjuncts);
        let time = TimeBounds::from_filters(&conjuncts);
        let by_summary = SummaryFilter::from_conjuncts(&conjuncts);
        let Pruned { blocks, point_reads, pruning } = prune(&view.blocks, wanted_traces.as_ref(), &time, &by_summary);

        let sql_columns: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..sql_schema().fields().len()).collect(),
        };
        let projection = Arc::new(StoredProjection::of(&sql_columns));
        let stored_columns = projection.columns.clone();
        let schema = Arc::new(self.schema().project(&sql_columns)?);

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let few_traces = wanted_traces.as_deref().is_some_and(few_enough);
        if few_traces && !blocks.is_empty() {
            let scan_schema = Arc::new(scan_schema().project(&stored_columns)?);
            let reads = trace_reads(self.querier.clone(), point_reads, stored_columns.clone(), scan_schema);
            inputs.push(Arc::new(reads));
        } else if !blocks.is_empty() {
            let factory = BlockReaderFactory::new(
                self.tenant_store.clone(),
                self.querier.storage().clone(),
                self.querier.footers().clone(),
            );
            // Row filters (decode the filter columns, then the rest of the matching rows only) pay off
            // for a filter on an ID, which few rows pass; for `service_name = …` or a status they cost
            // more than decoding every row and filtering above (BENCHMARKS.md, issue 25 item 3), unless
            // the engine says its filters are selective (`SqlEngine::with_row_filters`). Either way the
            // predicate prunes row groups and pages.
            let mut source = ParquetSource::new(scan_schema())
                .with_parquet_file_reader_factory(Arc::new(factory))
                .with_enable_page_index(true)
                .with_pushdown_filters(
                    filters_on_ids(&conjuncts) || state.config_options().execution.parquet.pushdown_filters,
                )
                .with_reorder_filters(true);
            if let Some(predicate) = stored_predicate(state, &conjuncts)? {
                source = source.with_predicate(predicate);
            }
            let groups = file_groups(&blocks, state.config().target_partitions());
            let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(Some(stored_columns.clone()))?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        let pending: Vec<_> = view
            .recent
            .pending
            .iter()
            .filter(|block| time.admits_meta(&block.meta) && may_hold_traces(block, wanted_traces.as_deref()))
            .cloned()
            .collect();
        let pending_pruned = view.recent.pending.len() - pending.len();
        let pending_blocks = pending.len();
        if !pending.is_empty() {
            let scanned = Arc::new(scan_schema().project(&stored_columns)?);
            inputs.push(Arc::new(pending_reads(pending, wanted_traces.clone(), stored_columns.clone(), scanned)));
        }
        let recent = match &wanted_traces {
            Some(ids) => {
                view.recent.batches.iter().map(|batch| rows_of_traces(batch, ids)).collect::<Result<Vec<_>>>()?
            }
            None => view.recent.batches.clone(),
        };
        // Other processes' ingesters: their rows come narrowed and projected already.
        let from_peers = match self.querier.peers() {
            Some(_) => {
                let mut filter = time.recent_filter(wanted_traces.clone(), &stored_columns);
                // Service and span-name conditions narrow the ingesters' rows as they narrow blocks.
                for (service, values) in by_summary.iter().filter_map(SummaryFilter::service_or_name) {
                    let narrowed = if service { &mut filter.services } else { &mut filter.names };
                    narrowed.get_or_insert_with(|| values.to_vec());
                }
                let (batches, failures) = self.querier.peer_rows(&self.tenant, &filter, &view.known).await;
                self.partial.note(failures.iter().map(ToString::to_string));
                // Checked against the query's memory limit while planning: a query whose ingesters' rows
                // alone pass it fails as any query over it does (507), instead of holding them unchecked.
                // (They are not kept counted while the query runs, as the local buffer's rows are not.)
                if let Some(pool) = &self.pool {
                    let bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum();
                    let consumer = datafusion::execution::memory_pool::MemoryConsumer::new("IngesterRows");
                    consumer.register(pool).try_grow(bytes)?;
                }
                batches
            }
            None => Vec::new(),
        };
        let recent_rows = recent.iter().chain(&from_peers).map(RecordBatch::num_rows).sum();
        if recent_rows > 0 || inputs.is_empty() {
            let scanned = Arc::new(scan_schema().project(&stored_columns)?);
            let recent = recent
                .iter()
                .map(|batch| batch.project(&stored_columns))
                .chain(from_peers.into_iter().map(Ok))
                .map(|batch| Ok(cast_batch(&batch?, &scanned)?))
                .collect::<Result<Vec<_>>>()?;
            inputs.push(MemorySourceConfig::try_new_exec(&[recent], scanned, None)?);
        }
        let input = UnionExec::try_new(inputs)?;
        metrics::counter!(telemetry::BLOOM_CHECKS).increment(pruning.bloom_checks as u64);
        let pruning = Pruning { recent_rows, pending_blocks, pending_pruned, ..pruning };
        Ok(Arc::new(SpansExec::new(input, schema, projection, pruning)))
    }
}

/// Whether every table `plan` reads is `spans` restricted to at most [`MAX_POINT_TRACES`](super::point::MAX_POINT_TRACES) trace IDs, so
/// the whole query is a few point reads and the rows of a few traces. Such a plan is best run on one
/// partition: splitting it costs more (a round-robin repartition above the reads, a merge, a second
/// task) than so few rows repay (BENCHMARKS.md, SQL (d)). `plan` must be optimised, so that the
/// filters sit on the scans.
pub fn reads_only_points(plan: &LogicalPlan) -> bool {
    let mut scans = 0;
    let mut all_points = true;
    let walked = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans += 1;
            let conjuncts: Vec<&Expr> = scan.filters.iter().flat_map(split_conjunction).collect();
            let point =
                scan.table_name.table() == "spans" && trace_ids_wanted(&conjuncts).as_deref().is_some_and(few_enough);
            if !point {
                all_points = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    walked.is_ok() && all_points && scans > 0
}

/// The trace IDs a query is restricted to by `trace_id = '…'` or `trace_id IN (…)`, if any. The literals
/// are already canonical (see `ids.rs`); one that is not an ID matches nothing.
fn trace_ids_wanted(conjuncts: &[&Expr]) -> Option<Vec<TraceId>> {
    conjuncts.iter().find_map(|expr| {
        let literals = id_literals(expr, col::TRACE_ID)?;
        let mut ids: Vec<TraceId> = literals.iter().filter_map(|text| TraceId::from_hex(text).ok()).collect();
        // `IN ('abc', '0ABC')` names one trace: read it once.
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    })
}

/// The literals of `column = 'x'` or `column IN ('x', …)`, where `column` may also be the hex of a
/// binary ID column (the `traces` view's `trace_id` pushed down to the binary twin of `spans`).
fn id_literals<'a>(expr: &'a Expr, column: &str) -> Option<Vec<&'a str>> {
    let is_column = |e: &Expr| match e {
        Expr::Column(c) => c.name == column,
        other => IdHex::column_of(other) == Some(column),
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            if is_column(left) {
                Some(vec![string_literal(right)?])
            } else if is_column(right) {
                Some(vec![string_literal(left)?])
            } else {
                None
            }
        }
        Expr::InList(InList { expr, list, negated: false }) if is_column(expr) => {
            list.iter().map(string_literal).collect()
        }
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _) => Some(text),
        Expr::Literal(ScalarValue::LargeUtf8(Some(text)), _) => Some(text),
        _ => None,
    }
}

/// Bounds on span start and end times (unix ns) implied by the filters; `None` is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct TimeBounds {
    start_min: Option<i128>,
    start_max: Option<i128>,
    end_min: Option<i128>,
    end_max: Option<i128>,
}

impl TimeBounds {
    fn from_filters(conjuncts: &[&Expr]) -> Self {
        let mut bounds = Self::default();
        for expr in conjuncts {
            match expr {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    if let (Expr::Column(c), Some(at)) = (left.as_ref(), unix_nanos(right)) {
                        bounds.narrow(&c.name, *op, at);
                    } else if let (Some(at), Expr::Column(c), Some(op)) = (unix_nanos(left), right.as_ref(), op.swap())
                    {
                        bounds.narrow(&c.name, op, at);
                    }
                }
                Expr::Between(between) if !between.negated => {
                    if let (Expr::Column(c), Some(low), Some(high)) =
                        (between.expr.as_ref(), unix_nanos(&between.low), unix_nanos(&between.high))
                    {
                        bounds.narrow(&c.name, Operator::GtEq, low);
                        bounds.narrow(&c.name, Operator::LtEq, high);
                    }
                }
                _ => {}
            }
        }
        bounds
    }

    fn narrow(&mut self, column: &str, op: Operator, at: i128) {
        let (min, max) = match column {
            col::START_TIME => (&mut self.start_min, &mut self.start_max),
            col::END_TIME => (&mut self.end_min, &mut self.end_max),
            _ => return,
        };
        let raise = |bound: &mut Option<i128>| *bound = Some(bound.map_or(at, |b| b.max(at)));
        let lower = |bound: &mut Option<i128>| *bound = Some(bound.map_or(at, |b| b.min(at)));
        match op {
            Operator::Gt | Operator::GtEq => raise(min),
            Operator::Lt | Operator::LtEq => lower(max),
            Operator::Eq => {
                raise(min);
                lower(max);
            }
            _ => {}
        }
    }

    /// What an ingester of another process is asked for: these bounds (widened to whole nanoseconds
    /// that fit), the traces, the stored columns.
    fn recent_filter(&self, traces: Option<Vec<TraceId>>, columns: &[usize]) -> crate::ingest::RecentFilter {
        let fit = |bound: Option<i128>| bound.and_then(|ns| i64::try_from(ns).ok());
        let stored = crate::spans::schema::span_schema();
        crate::ingest::RecentFilter {
            traces,
            start_min: fit(self.start_min),
            start_max: fit(self.start_max),
            end_min: fit(self.end_min),
            columns: Some(columns.iter().map(|index| stored.field(*index).name().clone()).collect()),
            services: None,
            names: None,
            known_blocks: Vec::new(),
        }
    }

    /// Whether any span of `block` may satisfy the bounds.
    fn admits(&self, block: &CatalogBlock) -> bool {
        self.admits_meta(&block.meta)
    }

    /// Whether any span of the block `meta` describes may satisfy the bounds. A span ends no earlier
    /// than it starts, so an upper bound on the end also bounds the start.
    fn admits_meta(&self, meta: &BlockMeta) -> bool {
        let (min_start, max_start) = (i128::from(meta.min_start_unix_nano), i128::from(meta.max_start_unix_nano));
        let max_end = i128::from(meta.max_end_unix_nano.max(meta.max_start_unix_nano));
        self.start_max.is_none_or(|t| min_start <= t)
            && self.start_min.is_none_or(|t| max_start >= t)
            && self.end_max.is_none_or(|t| min_start <= t)
            && self.end_min.is_none_or(|t| max_end >= t)
    }
}

/// A timestamp literal as unix nanoseconds.
fn unix_nanos(expr: &Expr) -> Option<i128> {
    let Expr::Literal(value, _) = expr else { return None };
    let value = match value {
        ScalarValue::TimestampSecond(Some(v), _) => i128::from(*v) * 1_000_000_000,
        ScalarValue::TimestampMillisecond(Some(v), _) => i128::from(*v) * 1_000_000,
        ScalarValue::TimestampMicrosecond(Some(v), _) => i128::from(*v) * 1_000,
        ScalarValue::TimestampNanosecond(Some(v), _) => i128::from(*v),
        _ => return None,
    };
    Some(value)
}

/// What block pruning did, shown by `EXPLAIN` and reported as `EXPLAIN ANALYZE` metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pruning {
    pub blocks: usize,
    pub pruned_by_time: usize,
    pub pruned_by_trace_id_range: usize,
    pub pruned_by_bloom: usize,
    /// Blocks whose tag summary proves they hold no value a name, service or attribute filter asks for.
    pub pruned_by_summary: usize,
    pub bloom_checks: usize,
    pub scanned: usize,
    pub recent_rows: usize,
    /// Blocks waiting for upload that the scan decodes when it runs, and those its filters ruled out.
    pub pending_blocks: usize,
    pub pending_pruned: usize,
}

impl Pruning {
    /// Adds another scan's figures to these.
    pub fn add(&mut self, other: &Pruning) {
        self.blocks += other.blocks;
        self.pruned_by_time += other.pruned_by_time;
        self.pruned_by_trace_id_range += other.pruned_by_trace_id_range;
        self.pruned_by_bloom += other.pruned_by_bloom;
        self.pruned_by_summary += other.pruned_by_summary;
        self.bloom_checks += other.bloom_checks;
        self.scanned += other.scanned;
        self.recent_rows += other.recent_rows;
        self.pending_blocks += other.pending_blocks;
        self.pending_pruned += other.pending_pruned;
    }
}

/// The blocks that may hold rows the filters admit: time range first, then the tag summary (name, service
/// and attribute equalities), then (for trace-ID queries) the block's ID range and its bloom filter, the
/// same checks and order as a trace-by-ID lookup. For a trace-ID query, also each (block, ID) pair those
/// checks admit: the point reads of `point.rs`.
fn prune(blocks: &TenantBlocks, traces: Option<&Vec<TraceId>>, time: &TimeBounds, summary: &[SummaryFilter]) -> Pruned {
    let mut pruned = Pruned {
        blocks: Vec::new(),
        point_reads: Vec::new(),
        pruning: Pruning { blocks: blocks.len(), ..Pruning::default() },
    };
    let pruning = &mut pruned.pruning;
    for block in blocks.iter() {
        if !time.admits(block) {
            pruning.pruned_by_time += 1;
            continue;
        }
        if let Some(tags) = &block.meta.tags
            && !summary.iter().all(|filter| filter.admits(tags))
        {
            pruning.pruned_by_summary += 1;
            continue;
        }
        if let Some(traces) = traces {
            let in_range: Vec<&TraceId> = traces.iter().filter(|id| block.meta.may_contain_trace_id(id)).collect();
            if in_range.is_empty() {
                pruning.pruned_by_trace_id_range += 1;
                continue;
            }
            pruning.bloom_checks += in_range.len();
            let admitted: Vec<TraceId> = in_range.into_iter().filter(|id| block.may_hold_trace(id)).copied().collect();
            if admitted.is_empty() {
                pruning.pruned_by_bloom += 1;
                continue;
            }
            pruned.point_reads.push((block.clone(), admitted));
        }
        pruned.blocks.push(block.clone());
    }
    pruning.scanned = pruned.blocks.len();
    pruned
}

/// What [`prune`] kept.
struct Pruned {
    blocks: Vec<Arc<CatalogBlock>>,
    /// Each block with the traces its ID range and bloom admit; empty unless the query names IDs.
    point_reads: Vec<(Arc<CatalogBlock>, Vec<TraceId>)>,
    pruning: Pruning,
}

/// Blocks spread over `partitions` groups of similar size, biggest first.
fn file_groups(blocks: &[Arc<CatalogBlock>], partitions: usize) -> Vec<FileGroup> {
    let mut by_size: Vec<&Arc<CatalogBlock>> = blocks.iter().collect();
    by_size.sort_by_key(|block| std::cmp::Reverse(block.meta.data_bytes));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); partitions.clamp(1, blocks.len().max(1))];
    for block in by_size {
        let path = format!("{}/{}", block.meta.block_id, layout::DATA_FILE);
        let file = PartitionedFile::new(path, block.meta.data_bytes).with_extension(block.clone());
        let lightest = groups.iter_mut().min_by_key(|(bytes, _)| *bytes).expect("at least one group");
        lightest.0 += block.meta.data_bytes;
        lightest.1.push(file);
    }
    groups.into_iter().map(|(_, files)| FileGroup::new(files)).collect()
}

/// Columns whose stored values are their SQL values, so filters on them apply to stored rows unchanged.
fn stored_as_shown(name: &str) -> bool {
    !matches!(
        name,
        col::TRACE_ID
            | col::SPAN_ID
            | col::PARENT_SPAN_ID
            | col::STATUS_CODE
            | col::END_TIME
            | col::EVENTS
            | col::LINKS
    )
}

/// The filters that can be evaluated on stored rows, as one predicate for the Parquet scan (row-group
/// statistics, page index, row filter). ID comparisons become binary comparisons; filters on `events`,
/// `links` or other uses of IDs are left to the filter above the scan.
fn stored_predicate(state: &dyn Session, conjuncts: &[&Expr]) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let stored: Vec<Expr> = conjuncts.iter().filter_map(|expr| to_stored(expr)).collect();
    let Some(predicate) = conjunction(stored) else { return Ok(None) };
    let schema = DFSchema::try_from(scan_schema().as_ref().clone())?;
    state.create_physical_expr(predicate, &schema).map(Some)
}

/// Whether a filter restricts an ID column to given values (the filters [`to_stored`] turns binary).
fn filters_on_ids(conjuncts: &[&Expr]) -> bool {
    conjuncts.iter().any(|expr| {
        [col::TRACE_ID, col::SPAN_ID, col::PARENT_SPAN_ID].iter().any(|name| id_literals(expr, name).is_some())
    })
}

fn to_stored(expr: &Expr) -> Option<Expr> {
    for (name, kind) in
        [(col::TRACE_ID, IdKind::Trace), (col::SPAN_ID, IdKind::Span), (col::PARENT_SPAN_ID, IdKind::Span)]
    {
        if let Some(literals) = id_literals(expr, name) {
            let values: Vec<Expr> = literals.iter().filter_map(|text| binary_id(kind, text)).collect();
            let column = Box::new(Expr::Column(Column::new_unqualified(name)));
            return Some(match values.len() {
                1 => Expr::BinaryExpr(BinaryExpr {
                    left: column,
                    op: Operator::Eq,
                    right: Box::new(values.into_iter().next()?),
                }),
                _ => Expr::InList(InList { expr: column, list: values, negated: false }),
            });
        }
    }
    if !expr.column_refs().iter().all(|c| stored_as_shown(&c.name)) {
        return None;
    }
    expr.clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))),
            other => Ok(Transformed::no(other)),
        })
        .ok()
        .map(|t| t.data)
}

fn binary_id(kind: IdKind, text: &str) -> Option<Expr> {
    let bytes = match kind {
        IdKind::Trace => TraceId::from_hex(text).ok()?.as_bytes().to_vec(),
        IdKind::Span => SpanId::from_hex(text).ok()?.as_bytes().to_vec(),
    };
    Some(Expr::Literal(ScalarValue::FixedSizeBinary(kind.len() as i32, Some(bytes)), None))
}

/// Whether a block waiting for upload may hold one of `traces` (any block, without a trace filter).
fn may_hold_traces(block: &EncodedBlock, traces: Option<&[TraceId]>) -> bool {
    traces.is_none_or(|ids| ids.iter().any(|id| block.may_contain_trace(id)))
}

/// The rows of `batch` (stored columns, `trace_id` first) whose trace is one of `ids`.
pub(super) fn rows_of_traces(batch: &RecordBatch, ids: &[TraceId]) -> Result<RecordBatch> {
    let wanted: HashSet<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
    let column = batch.column(0).as_fixed_size_binary();
    let mask: BooleanArray = (0..column.len()).map(|row| Some(wanted.contains(column.value(row)))).collect();
    Ok(filter_record_batch(batch, &mask)?)
}

/// Turns stored rows into the SQL columns, and carries the pruning figures into plans and metrics.
#[derive(Debug)]
pub struct SpansExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    /// How the input's stored columns become `schema`'s.
    projection: Arc<StoredProjection>,
    pruning: Pruning,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl SpansExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        projection: Arc<StoredProjection>,
        pruning: Pruning,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        let metrics = ExecutionPlanMetricsSet::new();
        for (name, value) in [
            ("blocks", pruning.blocks),
            ("blocks_pruned_by_time", pruning.pruned_by_time),
            ("blocks_pruned_by_trace_id_range", pruning.pruned_by_trace_id_range),
            ("blocks_pruned_by_bloom", pruning.pruned_by_bloom),
            ("blocks_pruned_by_summary", pruning.pruned_by_summary),
            ("blocks_scanned", pruning.scanned),
            ("recent_rows", pruning.recent_rows),
            ("pending_blocks", pruning.pending_blocks),
            ("pending_blocks_pruned", pruning.pending_pruned),
        ] {
            MetricBuilder::new(&metrics).global_counter(name).add(value);
        }
        Self { input, schema, projection, pruning, properties: Arc::new(properties), metrics }
    }

    /// What block pruning did for this scan.
    pub fn pruning(&self) -> Pruning {
        self.pruning
    }
}

impl DisplayAs for SpansExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.pruning;
        write!(
            f,
            "SpansExec: blocks={}, pruned_by_time={}, pruned_by_summary={}, pruned_by_trace_id_range={}, \
             pruned_by_bloom={}, scanned={}, recent_rows={}",
            p.blocks,
            p.pruned_by_time,
            p.pruned_by_summary,
            p.pruned_by_trace_id_range,
            p.pruned_by_bloom,
            p.scanned,
            p.recent_rows
        )
    }
}

impl ExecutionPlan for SpansExec {
    fn name(&self) -> &str {
        "SpansExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("SpansExec needs its input".into()))?;
        Ok(Arc::new(Self::new(input, self.schema.clone(), self.projection.clone(), self.pruning)))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let stored = self.input.execute(partition, context)?;
        let (schema, projection) = (self.schema.clone(), self.projection.clone());
        let converted = stored.map(move |batch| Ok(projection.to_sql_batch(&batch?, &schema)?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), converted)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col as column, lit};

    #[test]
    fn time_bounds_come_from_comparisons_either_way_round_and_between() {
        let at = |ns: i64| Expr::Literal(ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into())), None);
        let filters = [
            column("start_time").gt_eq(at(100)),
            at(500).gt(column("start_time")),
            column("end_time").between(at(150), at(400)),
        ];
        let conjuncts: Vec<&Expr> = filters.iter().collect();
        let bounds = TimeBounds::from_filters(&conjuncts);
        assert_eq!(
            bounds,
            TimeBounds { start_min: Some(100), start_max: Some(500), end_min: Some(150), end_max: Some(400) }
        );
    }

    #[test]
    fn only_equality_and_in_lists_on_trace_id_restrict_the_traces() {
        let id = "0000000000000000000000000000abcd";
        let eq = column("trace_id").eq(lit(id));
        assert_eq!(trace_ids_wanted(&[&eq]), Some(vec![TraceId::from_hex(id).unwrap()]));
        let not_eq = column("trace_id").not_eq(lit(id));
        assert_eq!(trace_ids_wanted(&[&not_eq]), None);
        let negated = column("trace_id").in_list(vec![lit(id)], true);
        assert_eq!(trace_ids_wanted(&[&negated]), None);
        let like = column("trace_id").like(lit("abc%"));
        assert_eq!(trace_ids_wanted(&[&like]), None);
        let twice = column("trace_id").in_list(vec![lit(id), lit("ef"), lit(id)], false);
        let ids = [TraceId::from_hex("ef").unwrap(), TraceId::from_hex(id).unwrap()];
        assert_eq!(trace_ids_wanted(&[&twice]), Some(ids.to_vec()), "each ID once");
    }

    #[test]
    fn id_filters_become_binary_and_filters_on_nested_ids_stay_above_the_scan() {
        let id = "0000000000000000000000000000abcd";
        let stored = to_stored(&column("trace_id").eq(lit(id))).unwrap();
        let Expr::BinaryExpr(BinaryExpr { right, .. }) = stored else { panic!("{stored}") };
        assert!(matches!(right.as_ref(), Expr::Literal(ScalarValue::FixedSizeBinary(16, Some(b)), _) if b[15] == 0xcd));
        assert!(to_stored(&column("trace_id").like(lit("ab%"))).is_none());
        assert!(to_stored(&column("events").is_not_null()).is_none());
        assert!(to_stored(&column("duration_ns").gt(lit(5i64))).is_some());
    }
}
