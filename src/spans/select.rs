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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::synth::TraceGenerator;

    #[test]
    fn distinct_spans_keeps_the_first_copy_of_each_span_across_batches() {
        let trace = TraceGenerator::new(3).next_trace();
        let (batch, _) = encode_resource_spans(&trace).unwrap();
        let rows = batch.num_rows();
        assert!(rows >= 3);
        let tail = batch.slice(1, rows - 1);
        let distinct = distinct_spans(&[batch.clone(), tail, batch.clone()]).unwrap();
        assert_eq!(distinct.len(), 1, "the later batches held only repeats and are dropped");
        assert_eq!(distinct[0], batch);

        // The same span ID under another trace ID is a different span.
        let other = TraceGenerator::new(4).next_trace();
        let mut renamed = other.clone();
        for span in renamed.iter_mut().flat_map(|rs| &mut rs.scope_spans).flat_map(|ss| &mut ss.spans) {
            span.span_id = trace[0].scope_spans[0].spans[0].span_id.clone();
        }
        let (renamed, _) = encode_resource_spans(&renamed[..1]).unwrap();
        let kept: usize = distinct_spans(&[batch, renamed]).unwrap().iter().map(RecordBatch::num_rows).sum();
        assert_eq!(kept, rows + 1, "only the first span of the renamed trace is new; its siblings repeat its ID");
    }
}
