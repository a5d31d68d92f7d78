//! The streaming merge: blocks already sorted by (trace ID, start time) become one block in the same
//! order, one trace at a time, with duplicate (trace ID, span ID) pairs kept once. Memory is a few
//! decoded batches per input (sized from a byte budget) plus the output's current row group, whatever
//! the inputs' or a trace's size, as long as the inputs and the output are files (what the compactor
//! passes); tests pass bytes in memory.
//!
//! The output is encoded by the block writer ingest uses ([`SortedRowsWriter`]): each row group's rows
//! are read where they sit in the inputs' decoded batches, with no gathered copy, by spanlake's direct
//! encoders (or parquet's writer, when `direct_encoding` is off). The merged block's tag summary is the
//! union of the inputs' summaries, so no attribute is read twice.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, RecordBatch, TimestampNanosecondArray};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::ChunkReader;

use super::CompactionError;
use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::schema::{col, end_time_nanos, span_schema};
use crate::storage::block::reader::span_columns;
use crate::storage::block::writer::{BlockSummary, SortedRowsWriter, assemble};
use crate::storage::block::{TagSummary, TagSummaryBuilder};
use crate::storage::{BlockMeta, BlockSidecar, BlockWriteOptions, StorageError};

/// Most rows decoded at a time from one input (fewer when the memory budget asks for it): past a few
/// thousand, larger batches decode no faster.
const MAX_INPUT_BATCH_ROWS: usize = 8192;
/// Rows decoded from each input first, to measure what a decoded row takes in memory.
const PROBE_ROWS: usize = 256;

/// An input's data, opened twice: once to measure its decoded rows, once to merge them.
pub trait MergeSource: ChunkReader + Sized + 'static {
    /// A second handle on the same data.
    fn reopen(&self) -> std::io::Result<Self>;
}

impl MergeSource for std::fs::File {
    fn reopen(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

impl MergeSource for bytes::Bytes {
    fn reopen(&self) -> std::io::Result<Self> {
        Ok(self.clone())
    }
}

/// One block to merge: its metadata and its Parquet data (a downloaded file, or bytes in tests).
#[derive(Clone, Debug)]
pub struct MergeInput<R> {
    pub meta: BlockMeta,
    pub data: R,
}

/// The merged block's metadata and bloom (its data went to the merge's output) and what the merge removed.
#[derive(Debug)]
pub struct Merged {
    pub block: BlockSidecar,
    /// Spans read from the inputs.
    pub spans_in: u64,
    /// Spans dropped as repeats of a (trace ID, span ID) pair already kept.
    pub duplicates: u64,
    /// Data and bloom bytes of the inputs.
    pub bytes_in: u64,
    /// The most bytes of decoded input batches held at once: what the merge's memory grows with,
    /// bounded by its `memory_bytes`.
    pub peak_bytes_held: u64,
}

/// Where one input stands: its current batch (an index into the merge's held batches) and row.
struct Cursor {
    /// The input has no tag summary (a block written before summaries): its rows are summarized as read.
    summarize: bool,
    reader: ParquetRecordBatchReader,
    held: usize,
    trace_ids: FixedSizeBinaryArray,
    span_ids: FixedSizeBinaryArray,
    starts: TimestampNanosecondArray,
    durations: Int64Array,
    row: usize,
}

impl Cursor {
    fn trace_id(&self) -> [u8; 16] {
        self.trace_ids.value(self.row).try_into().unwrap_or_default()
    }

    fn span_id(&self) -> [u8; 8] {
        self.span_ids.value(self.row).try_into().unwrap_or_default()
    }
}

/// The merge's state: inputs, the batches output rows still point into, and what the output holds.
struct Merge<W: Write + Send> {
    cursors: Vec<Option<Cursor>>,
    held: Vec<RecordBatch>,
    /// Bytes of the held batches, now and at the most.
    held_bytes: usize,
    peak_bytes_held: usize,
    /// The rows of the output not yet written, as (held batch, row), in output order.
    positions: Vec<(usize, usize)>,
    rows_per_group: usize,
    writer: SortedRowsWriter<W>,
    traces: Vec<TraceId>,
    spans_out: u64,
    duplicates: u64,
    min_start: u64,
    max_start: u64,
    max_end: u64,
    /// The summaries of the inputs that have one…
    input_tags: Vec<Arc<TagSummary>>,
    /// … and of the rows of those that do not.
    scanned_tags: TagSummaryBuilder,
}

/// Merges sorted blocks into one block that replaces them (and `replaces`, the blocks they replace),
/// writing its Parquet data to `output`. CPU-bound: run it on a blocking thread.
///
/// `memory_bytes` bounds the decoded rows held at once: each input is read in batches sized so that three
/// batches of every input (the one being read, and earlier ones that rows not yet written point into)
/// and one output row group fit in it. A batch has one row at the least, so a budget smaller than one
/// row group of the inputs' rows is exceeded by that much.
pub fn merge_blocks<R: MergeSource, W: Write + Send>(
    tenant: &TenantId,
    block_id: BlockId,
    inputs: Vec<MergeInput<R>>,
    replaces: Vec<BlockId>,
    output: W,
    options: &BlockWriteOptions,
    memory_bytes: u64,
) -> Result<Merged, CompactionError> {
    let spans_in: u64 = inputs.iter().map(|input| input.meta.span_count).sum();
    let bytes_in: u64 = inputs.iter().map(|input| input.meta.data_bytes + input.meta.bloom_bytes).sum();
    let level = inputs.iter().map(|input| input.meta.compaction_level).max().unwrap_or(0) + 1;
    let first_written = inputs.iter().map(|input| input.meta.first_written()).min();
    let rows_per_group = options.max_row_group_rows.max(1);
    let mut merge = Merge {
        cursors: Vec::with_capacity(inputs.len()),
        held: Vec::new(),
        held_bytes: 0,
        peak_bytes_held: 0,
        positions: Vec::with_capacity(rows_per_group * 2),
        rows_per_group,
        writer: SortedRowsWriter::new(output, options)?,
        traces: Vec::new(),
        spans_out: 0,
        duplicates: 0,
        min_start: u64::MAX,
        max_start: 0,
        max_end: 0,
        input_tags: Vec::new(),
        scanned_tags: TagSummaryBuilder::new(),
    };
    let mut opened = Vec::with_capacity(inputs.len());
    for input in inputs {
        let metadata = ArrowReaderMetadata::load(&input.data, ArrowReaderOptions::default())?;
        // Rows of this build's span schema whatever format version the input block has.
        let columns = span_columns(metadata.parquet_schema(), metadata.schema());
        let probe = ParquetRecordBatchReaderBuilder::new_with_metadata(
            input.data.reopen().map_err(CompactionError::Reopen)?,
            metadata.clone(),
        )
        .with_projection(columns.clone())
        .with_batch_size(PROBE_ROWS)
        .with_limit(PROBE_ROWS)
        .build()?;
        let mut row_bytes = 1;
        for batch in probe {
            let batch = batch?;
            row_bytes = row_bytes.max(batch.get_array_memory_size().div_ceil(batch.num_rows().max(1)));
        }
        opened.push((input, metadata, columns, row_bytes));
    }
    let largest_row = opened.iter().map(|(.., row_bytes)| *row_bytes).max().unwrap_or(1);
    let memory_bytes = usize::try_from(memory_bytes).unwrap_or(usize::MAX);
    let for_batches = memory_bytes.saturating_sub(rows_per_group * largest_row) / 3 / opened.len().max(1);
    for (input, metadata, columns, row_bytes) in opened {
        let batch_rows = (for_batches / row_bytes).clamp(1, MAX_INPUT_BATCH_ROWS);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input.data, metadata)
            .with_projection(columns)
            .with_batch_size(batch_rows)
            .build()?;
        let summarize = input.meta.tags.is_none();
        merge.input_tags.extend(input.meta.tags);
        let cursor = merge.open(reader, summarize)?;
        merge.cursors.push(cursor);
    }
    merge.run()?;
    let (duplicates, peak_bytes_held) = (merge.duplicates, merge.peak_bytes_held as u64);
    let mut block = merge.finish(tenant, block_id, level, replaces, options)?;
    block.meta.first_written_unix_ms = first_written;
    Ok(Merged { block, spans_in, duplicates, bytes_in, peak_bytes_held })
}

impl<W: Write + Send> Merge<W> {
    /// Reads the reader's first non-empty batch; `None` when the input has no rows.
    fn open(
        &mut self,
        mut reader: ParquetRecordBatchReader,
        summarize: bool,
    ) -> Result<Option<Cursor>, CompactionError> {
        for batch in reader.by_ref() {
            let batch = with_span_schema(batch?)?;
            if batch.num_rows() == 0 {
                continue;
            }
            if summarize {
                self.scanned_tags.add_batch(&batch).map_err(StorageError::from)?;
            }
            let (trace_ids, span_ids, starts, durations) = key_columns(&batch)?;
            self.held_bytes += batch.get_array_memory_size();
            self.peak_bytes_held = self.peak_bytes_held.max(self.held_bytes);
            self.held.push(batch);
            let held = self.held.len() - 1;
            return Ok(Some(Cursor { summarize, reader, held, trace_ids, span_ids, starts, durations, row: 0 }));
        }
        Ok(None)
    }

    /// Moves a cursor one row on, to its next batch when the current one is done.
    fn advance(&mut self, index: usize) -> Result<(), CompactionError> {
        let Some(cursor) = self.cursors[index].as_mut() else { return Ok(()) };
        cursor.row += 1;
        if cursor.row < cursor.trace_ids.len() {
            return Ok(());
        }
        let Some(cursor) = self.cursors[index].take() else { return Ok(()) };
        self.cursors[index] = self.open(cursor.reader, cursor.summarize)?;
        Ok(())
    }

    /// Takes the traces in ID order; the rows of one trace from all the inputs that hold it are merged
    /// by start time as they are read, so a trace of any size streams through (full row groups are
    /// written mid-trace) and memory does not depend on it, except the span IDs of the current trace
    /// (16 bytes each) that catch repeats.
    fn run(&mut self) -> Result<(), CompactionError> {
        let mut heap: BinaryHeap<Reverse<([u8; 16], usize)>> = self
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(index, cursor)| cursor.as_ref().map(|c| Reverse((c.trace_id(), index))))
            .collect();
        let mut within: BinaryHeap<Reverse<(i64, [u8; 8], usize)>> = BinaryHeap::new();
        let mut seen: HashSet<[u8; 8]> = HashSet::new();
        while let Some(Reverse((trace, first))) = heap.pop() {
            seen.clear();
            within.clear();
            within.extend(self.row_key(first).map(Reverse));
            while let Some(Reverse((next, index))) = heap.peek().copied() {
                if next != trace {
                    break;
                }
                heap.pop();
                within.extend(self.row_key(index).map(Reverse));
            }
            // Inputs hold a trace's rows in start order: taking the earliest current row of the inputs
            // that hold the trace merges them.
            while let Some(Reverse((_, _, index))) = within.pop() {
                self.take_row(index, &mut seen)?;
                self.advance(index)?;
                if self.positions.len() >= self.rows_per_group {
                    self.flush(false)?;
                }
                match self.cursors[index].as_ref() {
                    Some(cursor) if cursor.trace_id() == trace => within.extend(self.row_key(index).map(Reverse)),
                    Some(cursor) => heap.push(Reverse((cursor.trace_id(), index))),
                    None => {}
                }
            }
            self.traces.push(TraceId::from_slice(&trace).map_err(CompactionError::InvalidTraceId)?);
        }
        self.flush(true)
    }

    /// (start time, span ID, input) of an input's current row.
    fn row_key(&self, index: usize) -> Option<(i64, [u8; 8], usize)> {
        let cursor = self.cursors[index].as_ref()?;
        Some((cursor.starts.value(cursor.row), cursor.span_id(), index))
    }

    /// Adds an input's current row to the output, unless its span ID was already taken for this trace.
    fn take_row(&mut self, index: usize, seen: &mut HashSet<[u8; 8]>) -> Result<(), CompactionError> {
        let Some(cursor) = self.cursors[index].as_ref() else { return Ok(()) };
        let (row, start) = (cursor.row, cursor.starts.value(cursor.row));
        let end = end_time_nanos(start, cursor.durations.value(row));
        self.max_end = self.max_end.max(end as u64);
        if !seen.insert(cursor.span_id()) {
            self.duplicates += 1;
            return Ok(());
        }
        self.positions.push((cursor.held, row));
        self.min_start = self.min_start.min(start as u64);
        self.max_start = self.max_start.max(start as u64);
        self.spans_out += 1;
        Ok(())
    }

    /// Writes full row groups of the rows gathered (and, when `last`, the rest), then lets go of every
    /// batch that neither a cursor nor a row still to be written points into.
    fn flush(&mut self, last: bool) -> Result<(), CompactionError> {
        let full = self.positions.len() / self.rows_per_group * self.rows_per_group;
        let written = if last { self.positions.len() } else { full };
        if written > 0 {
            let batches: Vec<&RecordBatch> = self.held.iter().collect();
            for group in self.positions[..written].chunks(self.rows_per_group) {
                self.writer.write_row_group(&batches, group)?;
            }
            self.positions.drain(..written);
        }
        // Keep the batches still needed, in the order they were held, and renumber what points into them.
        let mut needed = vec![false; self.held.len()];
        for cursor in self.cursors.iter().flatten() {
            needed[cursor.held] = true;
        }
        for &(held, _) in &self.positions {
            needed[held] = true;
        }
        let mut new_index = vec![0; self.held.len()];
        let mut kept = Vec::with_capacity(self.cursors.len());
        for (index, batch) in self.held.drain(..).enumerate() {
            if needed[index] {
                new_index[index] = kept.len();
                kept.push(batch);
            }
        }
        for cursor in self.cursors.iter_mut().flatten() {
            cursor.held = new_index[cursor.held];
        }
        for position in &mut self.positions {
            position.0 = new_index[position.0];
        }
        self.held_bytes = kept.iter().map(RecordBatch::get_array_memory_size).sum();
        self.held = kept;
        Ok(())
    }

    /// Closes the output and builds the merged block's metadata and bloom.
    fn finish(
        self,
        tenant: &TenantId,
        block_id: BlockId,
        compaction_level: u32,
        replaces: Vec<BlockId>,
        options: &BlockWriteOptions,
    ) -> Result<BlockSidecar, CompactionError> {
        if self.traces.is_empty() {
            return Err(CompactionError::Corrupt("the blocks to merge hold no spans".into()));
        }
        let (_, row_groups, data_bytes) = self.writer.finish()?;
        let scanned = self.scanned_tags.finish();
        let tags = self.input_tags.iter().map(|tags| &**tags).chain([&scanned]);
        let summary = BlockSummary {
            traces: self.traces,
            span_count: self.spans_out,
            min_start: self.min_start,
            max_start: self.max_start,
            max_end: self.max_end,
            tags: Some(TagSummary::union(tags)),
        };
        let mut block = assemble(tenant, block_id, summary, data_bytes, row_groups, options)?;
        block.meta.compaction_level = compaction_level;
        block.meta.replaces = replaces;
        Ok(block)
    }
}

/// The batch under the span schema itself (same columns; the reader's copy may differ in metadata).
fn with_span_schema(batch: RecordBatch) -> Result<RecordBatch, CompactionError> {
    Ok(RecordBatch::try_new(span_schema(), batch.columns().to_vec())?)
}

type KeyColumns = (FixedSizeBinaryArray, FixedSizeBinaryArray, TimestampNanosecondArray, Int64Array);

fn key_columns(batch: &RecordBatch) -> Result<KeyColumns, CompactionError> {
    Ok((
        typed(batch, col::TRACE_ID)?,
        typed(batch, col::SPAN_ID)?,
        typed(batch, col::START_TIME)?,
        typed(batch, col::DURATION_NS)?,
    ))
}

/// Column `name` of `batch` as the array type the span schema gives it.
fn typed<T: Array + Clone + 'static>(batch: &RecordBatch, name: &str) -> Result<T, CompactionError> {
    let array = batch.column_by_name(name).ok_or_else(|| CompactionError::Corrupt(format!("no {name} column")))?;
    array
        .as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| CompactionError::Corrupt(format!("{name} has type {}", array.data_type())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::storage::{encode_block, read_encoded};
    use crate::synth::TraceGenerator;
    use arrow::array::AsArray;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// The compactor's default memory budget.
    const MEMORY: u64 = 256 * 1024 * 1024;

    fn block(seeds: std::ops::Range<u64>, traces_each: usize) -> MergeInput<Bytes> {
        let mut traces = Vec::new();
        for seed in seeds {
            let mut generator = TraceGenerator::new(seed);
            traces.extend((0..traces_each).flat_map(|_| generator.next_trace()));
        }
        let (batch, _) = encode_resource_spans(&traces).unwrap();
        let tenant = TenantId::new("t").unwrap();
        let encoded = encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
        MergeInput { meta: encoded.meta, data: encoded.data }
    }

    /// (trace ID, span ID) of every row, in stored order.
    fn keys(data: Bytes) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
        let mut keys = Vec::new();
        for batch in read_encoded(data).unwrap() {
            let (traces, spans, starts, _) = key_columns(&batch).unwrap();
            for row in 0..batch.num_rows() {
                keys.push((traces.value(row).to_vec(), spans.value(row).to_vec(), starts.value(row)));
            }
        }
        keys
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Any set of blocks, overlapping or not, merges into their sorted union with each span once.
        /// Whatever the encoder and the row-group size, and whether the inputs carry tag summaries.
        #[test]
        fn merge_is_the_sorted_union_without_repeats(
            ranges in prop::collection::vec((0u64..6, 1u64..4), 1..5),
            rows_per_group in prop::sample::select(vec![7usize, 100, 16 * 1024]),
            direct_encoding: bool,
            summarized in prop::collection::vec(any::<bool>(), 5),
        ) {
            let mut inputs: Vec<MergeInput<Bytes>> = ranges.iter().map(|&(from, len)| block(from..from + len, 3)).collect();
            // Blocks written before tag summaries existed have none.
            for (input, &keep) in inputs.iter_mut().zip(&summarized) {
                if !keep {
                    input.meta.tags = None;
                }
            }
            let options = BlockWriteOptions { max_row_group_rows: rows_per_group, direct_encoding, ..Default::default() };
            // Inputs first written at different times, one of them a merge itself.
            for (at, input) in inputs.iter_mut().enumerate() {
                input.meta.created_unix_ms = 10_000 + at as u64;
            }
            inputs[0].meta.first_written_unix_ms = Some(5_000);
            let mut expected: Vec<_> = inputs.iter().flat_map(|input| keys(input.data.clone())).collect();
            let spans_in = expected.len() as u64;
            expected.sort();
            expected.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
            let replaced: Vec<BlockId> = inputs.iter().map(|input| input.meta.block_id).collect();
            let tenant = TenantId::new("t").unwrap();
            let mut data = Vec::new();
            let merged = merge_blocks(&tenant, BlockId::new_random(), inputs, replaced.clone(), &mut data, &options, MEMORY).unwrap();
            prop_assert_eq!(merged.block.meta.data_bytes, data.len() as u64);
            let data = Bytes::from(data);
            let stored = read_encoded(data.clone()).unwrap();
            let mut scanned = TagSummaryBuilder::new();
            stored.iter().for_each(|batch| scanned.add_batch(batch).unwrap());
            prop_assert_eq!(merged.block.meta.tags.as_deref(), Some(&scanned.finish()), "the summary of the rows kept");
            let groups: Vec<usize> = ParquetRecordBatchReaderBuilder::try_new(data.clone()).unwrap().metadata()
                .row_groups().iter().map(|group| group.num_rows() as usize).collect();
            prop_assert_eq!(groups.len(), merged.block.meta.row_groups as usize);
            let (last, full) = groups.split_last().unwrap();
            prop_assert!(full.iter().all(|&rows| rows == rows_per_group) && *last <= rows_per_group, "{:?}", groups);
            let mut actual = keys(data);
            let stored_order: Vec<_> = actual.iter().map(|(trace, _, start)| (trace.clone(), *start)).collect();
            prop_assert!(stored_order.windows(2).all(|pair| pair[0] <= pair[1]), "sorted by trace ID, then start");
            actual.sort();
            prop_assert_eq!(&actual, &expected);
            let meta = &merged.block.meta;
            prop_assert_eq!(meta.span_count, expected.len() as u64);
            prop_assert_eq!(merged.spans_in - merged.duplicates, meta.span_count);
            prop_assert_eq!(merged.spans_in, spans_in);
            prop_assert_eq!(&meta.replaces, &replaced);
            prop_assert_eq!(meta.compaction_level, 1);
            prop_assert_eq!(meta.first_written_unix_ms, Some(5_000), "the earliest input's first write");
            let mut distinct: Vec<_> = expected.iter().map(|k| k.0.clone()).collect();
            distinct.dedup();
            prop_assert_eq!(meta.trace_count, distinct.len() as u64);
            for trace in &distinct {
                prop_assert!(merged.block.filter.may_contain(&TraceId::from_slice(trace).unwrap()));
            }
            prop_assert_eq!(meta.min_trace_id.as_bytes().to_vec(), distinct[0].clone());
            prop_assert_eq!(meta.max_start_unix_nano, expected.iter().map(|k| k.2 as u64).max().unwrap());
        }
    }

    #[test]
    fn every_column_survives_the_merge() {
        for direct_encoding in [true, false] {
            every_column_survives_a_merge_written_by(BlockWriteOptions { direct_encoding, ..Default::default() });
        }
    }

    fn every_column_survives_a_merge_written_by(options: BlockWriteOptions) {
        let input = block(1..3, 20);
        let before = read_encoded(input.data.clone()).unwrap();
        let input_tags = input.meta.tags.clone();
        let tenant = TenantId::new("t").unwrap();
        let mut data = Vec::new();
        let merged =
            merge_blocks(&tenant, BlockId::new_random(), vec![input], Vec::new(), &mut data, &options, MEMORY).unwrap();
        assert!(input_tags.is_some());
        assert_eq!(merged.block.meta.tags, input_tags, "the same rows have the same tag summary");
        let after = read_encoded(Bytes::from(data)).unwrap();
        // Spans of a trace that start at the same instant may come out in either order: compare in one.
        let canonical = |batches: &[RecordBatch]| {
            let all = arrow::compute::concat_batches(&span_schema(), batches).unwrap();
            let by = |name: &str| arrow::compute::SortColumn {
                values: all.column_by_name(name).unwrap().clone(),
                options: None,
            };
            let order =
                arrow::compute::lexsort_to_indices(&[by(col::TRACE_ID), by(col::START_TIME), by(col::SPAN_ID)], None)
                    .unwrap();
            arrow::compute::take_record_batch(&all, &order).unwrap()
        };
        let (before, after) = (canonical(&before), canonical(&after));
        assert!(before.num_rows() > 100);
        assert_eq!(before.column(0).as_fixed_size_binary(), after.column(0).as_fixed_size_binary());
        assert_eq!(before, after, "one sorted input comes out with the same rows, column for column");
    }

    /// A trace larger than anything the merge holds streams through: the rows decoded and held at once
    /// stay near one batch per input plus one row group, not the trace's size.
    #[test]
    fn a_huge_trace_streams_through_the_merge() {
        let one_trace = |seeds: std::ops::Range<u64>| {
            let mut traces = Vec::new();
            for seed in seeds {
                let mut generator = TraceGenerator::new(seed);
                traces.extend((0..60).flat_map(|_| generator.next_trace()));
            }
            for resource in &mut traces {
                for scope in &mut resource.scope_spans {
                    scope.spans.iter_mut().for_each(|span| span.trace_id = vec![7; 16]);
                }
            }
            let (batch, _) = encode_resource_spans(&traces).unwrap();
            let tenant = TenantId::new("t").unwrap();
            let encoded =
                encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
            MergeInput { meta: encoded.meta, data: encoded.data }
        };
        let inputs = vec![one_trace(0..4), one_trace(3..8)];
        let spans: u64 = inputs.iter().map(|input| input.meta.span_count).sum();
        let rows_per_group = 1000;
        let options = BlockWriteOptions { max_row_group_rows: rows_per_group, ..Default::default() };
        let mut data = Vec::new();
        let tenant = TenantId::new("t").unwrap();
        let memory = 2 << 20;
        let merged =
            merge_blocks(&tenant, BlockId::new_random(), inputs, Vec::new(), &mut data, &options, memory).unwrap();
        let meta = &merged.block.meta;
        assert_eq!(meta.trace_count, 1);
        assert!(merged.duplicates > 0, "seed 3 is in both inputs");
        assert_eq!(meta.span_count + merged.duplicates, spans);
        assert!(meta.span_count > 8 * rows_per_group as u64, "{} spans", meta.span_count);
        let whole: u64 =
            read_encoded(Bytes::from(data.clone())).unwrap().iter().map(|b| b.get_array_memory_size() as u64).sum();
        assert!(whole > 4 * memory, "the trace takes {whole} bytes decoded");
        assert!(merged.peak_bytes_held <= memory, "held {} bytes at once (budget {memory})", merged.peak_bytes_held);
        let starts: Vec<i64> = keys(Bytes::from(data)).into_iter().map(|(_, _, start)| start).collect();
        assert!(starts.windows(2).all(|pair| pair[0] <= pair[1]), "in start order");
        assert_eq!(starts.len() as u64, meta.span_count);
    }

    /// The compactor merges downloaded files into a file: the block is the one a merge in memory writes.
    #[test]
    fn a_merge_from_files_into_a_file_writes_what_a_merge_in_memory_writes() {
        use std::io::{Read, Seek};
        let inputs = vec![block(0..3, 4), block(2..5, 4)];
        let tenant = TenantId::new("t").unwrap();
        let block_id = BlockId::new_random();
        let mut in_memory = Vec::new();
        let from_memory =
            merge_blocks(&tenant, block_id, inputs.clone(), Vec::new(), &mut in_memory, &Default::default(), MEMORY)
                .unwrap();
        let files: Vec<MergeInput<std::fs::File>> = inputs
            .into_iter()
            .map(|input| {
                let mut file = tempfile::tempfile().unwrap();
                file.write_all(&input.data).unwrap();
                MergeInput { meta: input.meta, data: file }
            })
            .collect();
        let mut output = tempfile::tempfile().unwrap();
        let from_files =
            merge_blocks(&tenant, block_id, files, Vec::new(), &mut output, &Default::default(), MEMORY).unwrap();
        let mut on_disk = Vec::new();
        output.rewind().unwrap();
        output.read_to_end(&mut on_disk).unwrap();
        assert!(from_memory.duplicates > 0, "the inputs overlap");
        assert_eq!(on_disk, in_memory);
        assert_eq!(from_files.block.meta.data_bytes, on_disk.len() as u64);
        assert_eq!(from_files.block.meta.span_count, from_memory.block.meta.span_count);
    }
}
