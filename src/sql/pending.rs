//! Blocks the ingester has encoded but not yet uploaded (an object-store outage can keep hundreds of
//! them): the `spans` scan reads only those its time bounds and trace IDs admit, and decodes them when the
//! query runs, with the decoded rows counted against the query's memory pool (507 past it), instead of
//! decoding every one of them while planning every query, outside any limit.
//!
//! May call: the block reader for in-memory blocks. Owns the plan node.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};

use super::schema::cast_batch;
use crate::ids::TraceId;
use crate::storage::{EncodedBlock, read_encoded};

/// Decodes the given pending blocks when executed, keeping the rows of `traces` only (all rows without),
/// projected to the stored columns `projection` and typed as `schema` (the projected scan schema).
#[derive(Debug)]
pub struct PendingReadExec {
    blocks: Vec<Arc<EncodedBlock>>,
    traces: Option<Arc<Vec<TraceId>>>,
    projection: Arc<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl PendingReadExec {
    pub fn new(
        blocks: Vec<Arc<EncodedBlock>>,
        traces: Option<Vec<TraceId>>,
        projection: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            blocks,
            traces: traces.map(Arc::new),
            projection: Arc::new(projection),
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for PendingReadExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PendingReadExec: blocks={}", self.blocks.len())
    }
}

impl ExecutionPlan for PendingReadExec {
    fn name(&self) -> &str {
        "PendingReadExec"
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
            Err(DataFusionError::Internal("PendingReadExec has no inputs".into()))
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("PendingReadExec has one partition, not {partition}")));
        }
        let schema = self.properties.eq_properties.schema().clone();
        let (traces, projection, out_schema) = (self.traces.clone(), self.projection.clone(), schema.clone());
        // Held by the stream: the decoded rows stay counted until the query lets go of them.
        let reservation = MemoryConsumer::new("PendingReadExec").register(context.memory_pool());
        let batches = futures::stream::iter(self.blocks.clone())
            .map(move |block| {
                let decoded = read_encoded(block.data.clone()).map_err(|e| DataFusionError::External(Box::new(e)))?;
                reservation.try_grow(decoded.iter().map(RecordBatch::get_array_memory_size).sum())?;
                decoded
                    .iter()
                    .map(|batch| {
                        let rows = match &traces {
                            Some(ids) => super::table::rows_of_traces(batch, ids)?,
                            None => batch.clone(),
                        };
                        Ok(cast_batch(&rows.project(&projection)?, &out_schema)?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}
