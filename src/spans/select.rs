//! Picking the rows of one trace out of span batches, for the ingester's answer to "spans of trace X".

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::SpanFormatError;
use super::schema::col;
use crate::ids::TraceId;

/// The rows of `batch` whose `trace_id` is `trace_id` (possibly none).
pub fn rows_of_trace(batch: &RecordBatch, trace_id: &TraceId) -> Result<RecordBatch, SpanFormatError> {
    let ids = batch
        .column_by_name(col::TRACE_ID)
        .ok_or_else(|| SpanFormatError::MissingColumn(col::TRACE_ID.to_owned()))?
        .as_fixed_size_binary_opt()
        .ok_or_else(|| SpanFormatError::Corrupt("trace_id is not fixed-size binary".into()))?;
    let wanted = trace_id.as_bytes().as_slice();
    let mask: BooleanArray = (0..ids.len()).map(|row| Some(ids.value(row) == wanted)).collect();
    Ok(filter_record_batch(batch, &mask)?)
}
