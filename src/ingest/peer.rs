//! What an ingester serves to queriers in other processes (`--target ingester`): the spans it holds for a
//! tenant, narrowed by what the querier's plan already knows it wants (trace IDs, a span start and end
//! window, the columns), each batch with the block that holds its rows, if one does.
//!
//! The narrowing only ever drops rows no answer needs: the querier applies its full filters again above
//! (DataFusion re-checks every filter it pushed down as inexact), so a condition this cannot check is
//! simply not sent. Calls `spans` and `storage` for the held blocks' rows; `api` serves the result.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Int64Type};
use serde::{Deserialize, Serialize};

use super::{IngestError, Ingester};
use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::SpanFormatError;
use crate::spans::schema::{col, span_schema};
use crate::storage::{EncodedBlock, read_encoded};

/// What a querier asks an ingester for. Every field narrows; none set: every span held.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentFilter {
    /// Only the spans of these traces (32 hex characters each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<Vec<TraceId>>,
    /// Only spans starting at or after this instant (unix ns)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_min: Option<i64>,
    /// ... and at or before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_max: Option<i64>,
    /// Only spans ending at or after this instant (unix ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_min: Option<i64>,
    /// Only these stored columns, in this order (`docs/storage-format.md` names); none: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Only spans whose service name is one of these...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// ... and whose name is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Blocks the querier reads from the store already: their rows are not sent (it would drop them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_blocks: Vec<BlockId>,
}

/// Rows an ingester holds, and where: `block` is the block they were cut into (uploaded or not), `None`
/// for rows still in the open buffer. A querier that already reads that block from the store leaves
/// them out; one that does not yet know it keeps them, so each span is counted once.
#[derive(Debug)]
pub struct HeldRows {
    pub block: Option<BlockId>,
    pub batch: RecordBatch,
}

impl RecentFilter {
    /// The stored columns' indices this filter keeps (all when it names none); an unknown name is refused.
    pub fn column_indices(&self) -> Result<Vec<usize>, SpanFormatError> {
        let schema = span_schema();
        match &self.columns {
            None => Ok((0..schema.fields().len()).collect()),
            Some(names) => names
                .iter()
                .map(|name| schema.index_of(name).map_err(|_| SpanFormatError::MissingColumn(name.clone())))
                .collect(),
        }
    }

    /// Whether a block's time range and trace IDs may hold a row this filter keeps.
    fn admits_block(&self, block: &EncodedBlock) -> bool {
        let meta = &block.meta;
        let max_end = meta.max_end_unix_nano.max(meta.max_start_unix_nano);
        let as_u64 = |ns: i64| u64::try_from(ns).unwrap_or(0);
        self.start_max.is_none_or(|t| meta.min_start_unix_nano <= as_u64(t))
            && self.start_min.is_none_or(|t| meta.max_start_unix_nano >= as_u64(t))
            && self.end_min.is_none_or(|t| max_end >= as_u64(t))
            && self.traces.as_ref().is_none_or(|ids| ids.iter().any(|id| block.may_contain_trace(id)))
    }

    /// The rows of `batch` (stored schema, every column) this filter keeps, projected to `columns`.
    fn apply(&self, batch: &RecordBatch, columns: &[usize]) -> Result<RecordBatch, SpanFormatError> {
        let rows = batch.num_rows();
        let mut keep: Vec<bool> = vec![true; rows];
        if let Some(ids) = &self.traces {
            let wanted: std::collections::HashSet<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
            let index = span_schema().index_of(col::TRACE_ID)?;
            let trace_ids = batch
                .column(index)
                .as_fixed_size_binary_opt()
                .ok_or_else(|| SpanFormatError::Corrupt("trace_id is not a fixed-size binary column".to_owned()))?;
            keep.iter_mut().enumerate().for_each(|(row, kept)| *kept &= wanted.contains(trace_ids.value(row)));
        }
        if self.start_min.is_some() || self.start_max.is_some() || self.end_min.is_some() {
            let schema = span_schema();
            let start = cast(batch.column(schema.index_of(col::START_TIME)?), &DataType::Int64)?;
            let start = start.as_primitive::<Int64Type>();
            let duration = batch.column(schema.index_of(col::DURATION_NS)?).as_primitive::<Int64Type>();
            for (row, kept) in keep.iter_mut().enumerate() {
                let (begins, lasts) = (start.value(row), duration.value(row));
                let ends = crate::spans::schema::end_time_nanos(begins, lasts);
                *kept &= self.start_min.is_none_or(|t| begins >= t)
                    && self.start_max.is_none_or(|t| begins <= t)
                    && self.end_min.is_none_or(|t| ends.max(begins) >= t);
            }
        }
        for (column, values) in [(col::SERVICE_NAME, &self.services), (col::NAME, &self.names)] {
            let Some(values) = values else { continue };
            let wanted: std::collections::HashSet<&str> = values.iter().map(String::as_str).collect();
            let text = cast(batch.column(span_schema().index_of(column)?), &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            for (row, kept) in keep.iter_mut().enumerate() {
                *kept &= text.is_valid(row) && wanted.contains(text.value(row));
            }
        }
        let kept = match keep.iter().all(|kept| *kept) {
            true => batch.clone(),
            false => filter_record_batch(batch, &BooleanArray::from(keep))?,
        };
        Ok(kept.project(columns)?)
    }
}

impl Ingester {
    /// The spans of `tenant` this ingester holds that `filter` keeps: the open buffer, blocks cut and not
    /// yet committed, and blocks committed within `handoff_retention`, taken at one instant (under the
    /// buffers' lock, where a block moves from one to the next), so each span is in exactly one batch.
    pub fn held_for_peer(&self, tenant: &TenantId, filter: &RecentFilter) -> Result<Vec<HeldRows>, IngestError> {
        let columns = filter.column_indices()?;
        let mut rows: Vec<(Option<BlockId>, RecordBatch)> = Vec::new();
        let mut blocks: Vec<Arc<EncodedBlock>> = Vec::new();
        {
            let mut buffers = self.inner.lock();
            if let Some(buffer) = buffers.tenants.get(tenant) {
                rows.extend(buffer.open.iter().map(|open| (None, open.batch.clone())));
                for pending in &buffer.pending {
                    match &pending.stage {
                        super::PendingStage::Cut(batches) => {
                            rows.extend(batches.iter().map(|batch| (Some(pending.block), batch.clone())))
                        }
                        super::PendingStage::Encoded(block) => blocks.push(block.clone()),
                    }
                }
            }
            blocks.extend(buffers.handed_off(tenant, std::time::Instant::now()));
        }
        let known = |block: &BlockId| filter.known_blocks.contains(block);
        rows.retain(|(block, _)| !block.as_ref().is_some_and(known));
        blocks.retain(|block| !known(&block.meta.block_id));
        let mut held = Vec::new();
        for (block, batch) in rows {
            let batch = filter.apply(&batch, &columns)?;
            if batch.num_rows() > 0 {
                held.push(HeldRows { block, batch });
            }
        }
        for block in blocks.iter().filter(|block| filter.admits_block(block)) {
            for batch in read_encoded(block.data.clone())? {
                let batch = filter.apply(&batch, &columns)?;
                if batch.num_rows() > 0 {
                    held.push(HeldRows { block: Some(block.meta.block_id), batch });
                }
            }
        }
        Ok(held)
    }
}

/// Whether a column of `batch` is all nulls or absent: used by tests of the projection.
#[cfg(test)]
fn column_named<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a Arc<dyn Array>> {
    batch.schema().index_of(name).ok().map(|index| batch.column(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_travels_as_json_and_refuses_what_it_does_not_know() {
        let filter = RecentFilter {
            traces: Some(vec![TraceId::from_hex("0123456789abcdef0123456789abcdef").unwrap()]),
            start_min: Some(5),
            columns: Some(vec!["trace_id".to_owned(), "name".to_owned()]),
            ..Default::default()
        };
        let text = serde_json::to_string(&filter).unwrap();
        assert_eq!(serde_json::from_str::<RecentFilter>(&text).unwrap(), filter);
        assert!(serde_json::from_str::<RecentFilter>(r#"{"trace": []}"#).is_err(), "unknown fields are refused");
        assert!(serde_json::from_str::<RecentFilter>(r#"{"traces": ["xyz"]}"#).is_err(), "bad IDs are refused");
        let unknown = RecentFilter { columns: Some(vec!["nope".to_owned()]), ..Default::default() };
        assert!(unknown.column_indices().is_err());
        assert_eq!(filter.column_indices().unwrap().len(), 2);
    }

    #[test]
    fn rows_outside_the_traces_or_the_window_are_dropped_and_columns_projected() {
        let mut generator = crate::synth::TraceGenerator::new(7);
        let traces: Vec<_> = (0..4).map(|_| generator.next_trace()).collect();
        let spans: Vec<_> = traces.iter().flatten().cloned().collect();
        let (batch, _) = crate::spans::encode_resource_spans(&spans).unwrap();
        let first = TraceId::from_slice(&traces[0][0].scope_spans[0].spans[0].trace_id).unwrap();
        let only_first = RecentFilter { traces: Some(vec![first]), ..Default::default() };
        let all = only_first.column_indices().unwrap();
        let kept = only_first.apply(&batch, &all).unwrap();
        let expected = traces[0].iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum::<usize>();
        assert_eq!(kept.num_rows(), expected);

        let start = cast(column_named(&batch, col::START_TIME).unwrap(), &DataType::Int64).unwrap();
        let starts: Vec<i64> = start.as_primitive::<Int64Type>().values().to_vec();
        let middle = {
            let mut sorted = starts.clone();
            sorted.sort_unstable();
            sorted[sorted.len() / 2]
        };
        let services = batch.column(span_schema().index_of(col::SERVICE_NAME).unwrap()).as_string::<i32>().clone();
        let first_service = services.value(0).to_owned();
        let one_service = RecentFilter { services: Some(vec![first_service.clone()]), ..Default::default() };
        let kept = one_service.apply(&batch, &all).unwrap();
        assert_eq!(kept.num_rows(), services.iter().filter(|s| *s == Some(first_service.as_str())).count());
        assert!(kept.num_rows() < batch.num_rows(), "the synthetic traces span several services");
        let names = RecentFilter { names: Some(vec!["no such span".to_owned()]), ..Default::default() };
        assert_eq!(names.apply(&batch, &all).unwrap().num_rows(), 0);
        let later =
            RecentFilter { start_min: Some(middle), columns: Some(vec!["name".to_owned()]), ..Default::default() };
        let kept = later.apply(&batch, &later.column_indices().unwrap()).unwrap();
        assert_eq!(kept.num_rows(), starts.iter().filter(|start| **start >= middle).count());
        assert_eq!(kept.num_columns(), 1);
        assert_eq!(kept.schema().field(0).name(), "name");
    }
}
