//! Blocks the ingester has encoded but not yet uploaded (an object-store outage can keep hundreds of
//! them): the `spans` scan reads only those its time bounds and trace IDs admit, and decodes them when the
//! query runs, with the decoded rows counted against the query's memory pool (507 past it), instead of
//! decoding every one of them while planning every query, outside any limit.
//!
//! May call: the block reader for in-memory blocks, `leaf.rs`. Owns how pending blocks are read.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use super::leaf::LeafExec;
use super::schema::cast_batch;
use crate::ids::TraceId;
use crate::storage::{EncodedBlock, read_encoded};

/// Decodes the given pending blocks when the plan runs, keeping the rows of `traces` only (all rows
/// without), projected to the stored columns `projection` and typed as `schema` (the projected scan
/// schema).
pub fn pending_reads(
    blocks: Vec<Arc<EncodedBlock>>,
    traces: Option<Vec<TraceId>>,
    projection: Vec<usize>,
    schema: SchemaRef,
) -> LeafExec {
    let shown = format!("PendingReadExec: blocks={}", blocks.len());
    let (traces, projection, out) = (traces.map(Arc::new), Arc::new(projection), schema.clone());
    let open = move |context: Arc<TaskContext>| -> Result<SendableRecordBatchStream> {
        let (traces, projection, schema) = (traces.clone(), projection.clone(), out.clone());
        // Held by the stream: the decoded rows stay counted until the query lets go of them.
        let reservation = MemoryConsumer::new("PendingReadExec").register(context.memory_pool());
        let batches = futures::stream::iter(blocks.clone())
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
                        Ok(cast_batch(&rows.project(&projection)?, &schema)?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(out.clone(), batches)) as SendableRecordBatchStream)
    };
    LeafExec::new("PendingReadExec", shown, schema, Arc::new(open))
}
