//! Picking rows out of span batches: the rows of one trace (the ingester's answer to "spans of trace
//! X"), and each (trace ID, span ID) once (the same span read from the buffer and a block, or from two
//! blocks a retried upload or a replica wrote).

use std::collections::HashSet;

use arrow::array::{Array, AsArray, BooleanArray, FixedSizeBinaryArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::SpanFormatError;
use super::schema::col;
use crate::ids::TraceId;

fn id_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a FixedSizeBinaryArray, SpanFormatError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| SpanFormatError::MissingColumn(name.to_owned()))?
        .as_fixed_size_binary_opt()
        .ok_or_else(|| SpanFormatError::Corrupt(format!("{name} is not fixed-size binary")))
}

/// The batches with every (trace ID, span ID) pair after its first occurrence removed, in order.
/// Batches left empty are dropped.
pub fn distinct_spans(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, SpanFormatError> {
    let mut seen: HashSet<([u8; 16], [u8; 8])> = HashSet::new();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let (trace_ids, span_ids) = (id_column(batch, col::TRACE_ID)?, id_column(batch, col::SPAN_ID)?);
        let mask: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                let trace: [u8; 16] = trace_ids.value(row).try_into().unwrap_or_default();
                let span: [u8; 8] = span_ids.value(row).try_into().unwrap_or_default();
                Some(seen.insert((trace, span)))
            })
            .collect();
        let kept =
            if mask.true_count() == batch.num_rows() { batch.clone() } else { filter_record_batch(batch, &mask)? };
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    Ok(out)
}

/// The rows of `batch` whose `trace_id` is `trace_id` (possibly none).
pub fn rows_of_trace(batch: &RecordBatch, trace_id: &TraceId) -> Result<RecordBatch, SpanFormatError> {
    let ids = id_column(batch, col::TRACE_ID)?;
    let wanted = trace_id.as_bytes().as_slice();
    let mask: BooleanArray = (0..ids.len()).map(|row| Some(ids.value(row) == wanted)).collect();
    Ok(filter_record_batch(batch, &mask)?)
}
