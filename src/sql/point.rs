//! Point reads for `trace_id = …` and `trace_id IN (…)`: the blocks left after pruning are read with
//! the trace-by-ID lookup's own reader (footer cache, row-group statistics, page index, row filter on
//! the ID) instead of DataFusion's Parquet scan. Both read the same pages, but the scan's per-file
//! set-up (pruning predicates, page-index evaluation, the row filter's predicate cache) cost a
//! one-trace query about three times what the whole lookup costs (BENCHMARKS.md, SQL (d)).
//!
//! May call the querier's block reads; owns nothing but the plan node.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};

use crate::ids::TraceId;
use crate::query::{CatalogBlock, Querier};

/// Up to this many IDs a query is answered by point reads; a longer `IN` list is a scan's job (each
/// ID is one lookup per block its bloom admits).
pub const MAX_POINT_TRACES: usize = 64;

/// Blocks read at once, as a trace-by-ID lookup does.
const CONCURRENT_READS: usize = 4;

/// Reads the given traces from the given blocks, stored schema, projected.
#[derive(Debug)]
pub struct TraceReadExec {
    querier: Querier,
    /// (block, trace) pairs whose ID range and bloom admit the trace.
    reads: Vec<(Arc<CatalogBlock>, TraceId)>,
    /// Stored columns to keep, by index.
    projection: Vec<usize>,
    properties: Arc<PlanProperties>,
}

impl TraceReadExec {
    /// The given point reads (from pruning); `schema` is the stored schema projected by `projection`.
    pub fn new(
        querier: Querier,
        reads: Vec<(Arc<CatalogBlock>, TraceId)>,
        projection: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self { querier, reads, projection, properties: Arc::new(properties) }
    }
}

impl DisplayAs for TraceReadExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TraceReadExec: point_reads={}", self.reads.len())
    }
}

impl ExecutionPlan for TraceReadExec {
    fn name(&self) -> &str {
        "TraceReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("TraceReadExec has no inputs".into()))
        }
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("TraceReadExec has one partition, not {partition}")));
        }
        let (querier, projection) = (self.querier.clone(), Arc::new(self.projection.clone()));
        let batches = futures::stream::iter(self.reads.clone())
            .map(move |(block, id)| {
                let (querier, projection) = (querier.clone(), projection.clone());
                async move {
                    let rows = querier
                        .trace_rows_in_block(&block, &id)
                        .await
                        .map_err(|error| DataFusionError::External(Box::new(error)))?;
                    let projected: Vec<Result<RecordBatch>> =
                        rows.iter().map(|batch| Ok(batch.project(&projection)?)).collect();
                    Ok::<_, DataFusionError>(futures::stream::iter(projected))
                }
            })
            .buffered(CONCURRENT_READS)
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.properties.eq_properties.schema().clone(), batches)))
    }
}
