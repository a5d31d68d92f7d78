//! The streaming merge: blocks already sorted by (trace ID, start time) become one block in the same
//! order, one trace at a time, with duplicate (trace ID, span ID) pairs kept once. Memory is one
//! decoded batch per input plus the output's current chunk, whatever the inputs' size, as long as the
//! inputs and the output are files (what the compactor passes); tests pass bytes in memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::io::Write;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::compute::interleave_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

use super::CompactionError;
use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::schema::{col, end_time_nanos, span_schema};
use crate::storage::block::TagSummaryBuilder;
use crate::storage::block::reader::span_columns;
use crate::storage::block::writer::{BlockSummary, assemble, writer_properties};
use crate::storage::{BlockMeta, BlockSidecar, BlockWriteOptions, StorageError};

/// Rows decoded at a time from each input: small, because a merge holds one batch per input.
const INPUT_BATCH_ROWS: usize = 1024;
/// Rows gathered into one output batch before it goes to the Parquet writer.
const OUTPUT_CHUNK_ROWS: usize = 8 * 1024;

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
}

/// Where one input stands: its current batch (an index into the merge's held batches) and row.
struct Cursor {
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
}

/// The merge's state: inputs, the batches output rows still point into, and what the output holds.
struct Merge<W: Write + Send> {
    cursors: Vec<Option<Cursor>>,
    held: Vec<RecordBatch>,
    positions: Vec<(usize, usize)>,
    writer: ArrowWriter<W>,
    traces: Vec<TraceId>,
    spans_out: u64,
    duplicates: u64,
    min_start: u64,
    max_start: u64,
    max_end: u64,
    /// The output's tag summary, built from the rows it keeps.
    tags: TagSummaryBuilder,
}

/// Merges sorted blocks into one block that replaces them (and `replaces`, the blocks they replace),
/// writing its Parquet data to `output`. CPU-bound: run it on a blocking thread.
pub fn merge_blocks<R: ChunkReader + 'static, W: Write + Send>(
    tenant: &TenantId,
    block_id: BlockId,
    inputs: Vec<MergeInput<R>>,
    replaces: Vec<BlockId>,
    output: W,
    options: &BlockWriteOptions,
) -> Result<Merged, CompactionError> {
    let spans_in: u64 = inputs.iter().map(|input| input.meta.span_count).sum();
    let bytes_in: u64 = inputs.iter().map(|input| input.meta.data_bytes + input.meta.bloom_bytes).sum();
    let level = inputs.iter().map(|input| input.meta.compaction_level).max().unwrap_or(0) + 1;
    let first_written = inputs.iter().map(|input| input.meta.first_written()).min();
    let mut merge = Merge {
        cursors: Vec::with_capacity(inputs.len()),
        held: Vec::new(),
        positions: Vec::with_capacity(OUTPUT_CHUNK_ROWS * 2),
        writer: ArrowWriter::try_new(output, span_schema(), Some(writer_properties(options)?))?,
        traces: Vec::new(),
        spans_out: 0,
        duplicates: 0,
        min_start: u64::MAX,
        max_start: 0,
        max_end: 0,
        tags: TagSummaryBuilder::new(),
    };
    for input in inputs {
        let file = ParquetRecordBatchReaderBuilder::try_new(input.data)?;
        // Rows of this build's span schema whatever format version the input block has.
        let columns = span_columns(file.parquet_schema(), file.schema());
        let reader = file.with_projection(columns).with_batch_size(INPUT_BATCH_ROWS).build()?;
        let cursor = merge.open(reader)?;
        merge.cursors.push(cursor);
    }
    merge.run()?;
    let duplicates = merge.duplicates;
    let mut block = merge.finish(tenant, block_id, level, replaces, options)?;
    block.meta.first_written_unix_ms = first_written;
    Ok(Merged { block, spans_in, duplicates, bytes_in })
}

impl<W: Write + Send> Merge<W> {
    /// Reads the reader's first non-empty batch; `None` when the input has no rows.
    fn open(&mut self, mut reader: ParquetRecordBatchReader) -> Result<Option<Cursor>, CompactionError> {
        for batch in reader.by_ref() {
            let batch = with_span_schema(batch?)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let (trace_ids, span_ids, starts, durations) = key_columns(&batch)?;
            self.held.push(batch);
            let held = self.held.len() - 1;
            return Ok(Some(Cursor { reader, held, trace_ids, span_ids, starts, durations, row: 0 }));
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
        self.cursors[index] = self.open(cursor.reader)?;
        Ok(())
    }

    fn run(&mut self) -> Result<(), CompactionError> {
        let mut heap: BinaryHeap<Reverse<([u8; 16], usize)>> = self
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(index, cursor)| cursor.as_ref().map(|c| Reverse((c.trace_id(), index))))
            .collect();
        let mut rows: Vec<(i64, [u8; 8], usize, usize)> = Vec::new();
        let mut seen: HashSet<[u8; 8]> = HashSet::new();
        while let Some(Reverse((trace, first))) = heap.pop() {
            // Every input whose current trace is this one gives all its rows of it.
            let mut sources = vec![first];
            while let Some(Reverse((next, index))) = heap.peek().copied() {
                if next != trace {
                    break;
                }
                heap.pop();
                sources.push(index);
            }
            rows.clear();
            for index in sources {
                while let Some(cursor) = self.cursors[index].as_ref() {
                    if cursor.trace_id() != trace {
                        heap.push(Reverse((cursor.trace_id(), index)));
                        break;
                    }
                    let row = cursor.row;
                    let span: [u8; 8] = cursor.span_ids.value(row).try_into().unwrap_or_default();
                    rows.push((cursor.starts.value(row), span, cursor.held, row));
                    let end = end_time_nanos(cursor.starts.value(row), cursor.durations.value(row));
                    self.max_end = self.max_end.max(end as u64);
                    self.advance(index)?;
                }
            }
            rows.sort_unstable_by_key(|&(start, span, held, row)| (start, span, held, row));
            seen.clear();
            for &(start, span, held, row) in &rows {
                if !seen.insert(span) {
                    self.duplicates += 1;
                    continue;
                }
                self.positions.push((held, row));
                self.min_start = self.min_start.min(start as u64);
                self.max_start = self.max_start.max(start as u64);
                self.spans_out += 1;
            }
            self.traces.push(TraceId::from_slice(&trace).map_err(CompactionError::InvalidTraceId)?);
            if self.positions.len() >= OUTPUT_CHUNK_ROWS {
                self.flush()?;
            }
        }
        self.flush()
    }

    /// Writes the gathered rows, then lets go of every batch no cursor is still reading.
    fn flush(&mut self) -> Result<(), CompactionError> {
        if !self.positions.is_empty() {
            let batches: Vec<&RecordBatch> = self.held.iter().collect();
            let chunk = interleave_record_batch(&batches, &self.positions)?;
            self.tags.add_batch(&chunk).map_err(StorageError::from)?;
            self.writer.write(&chunk)?;
            self.positions.clear();
        }
        let mut kept = Vec::with_capacity(self.cursors.len());
        for cursor in self.cursors.iter_mut().flatten() {
            kept.push(self.held[cursor.held].clone());
            cursor.held = kept.len() - 1;
        }
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
        let mut writer = self.writer;
        writer.finish()?;
        let row_groups = writer.flushed_row_groups().len() as u32;
        let data_bytes = writer.bytes_written() as u64;
        let summary = BlockSummary {
            traces: self.traces,
            span_count: self.spans_out,
            min_start: self.min_start,
            max_start: self.max_start,
            max_end: self.max_end,
            tags: Some(self.tags.finish()),
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
        #[test]
        fn merge_is_the_sorted_union_without_repeats(ranges in prop::collection::vec((0u64..6, 1u64..4), 1..5)) {
            let mut inputs: Vec<MergeInput<Bytes>> = ranges.iter().map(|&(from, len)| block(from..from + len, 3)).collect();
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
            let merged = merge_blocks(&tenant, BlockId::new_random(), inputs, replaced.clone(), &mut data, &BlockWriteOptions::default()).unwrap();
            prop_assert_eq!(merged.block.meta.data_bytes, data.len() as u64);
            let mut actual = keys(Bytes::from(data));
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
        let input = block(1..3, 20);
        let before = read_encoded(input.data.clone()).unwrap();
        let input_tags = input.meta.tags.clone();
        let tenant = TenantId::new("t").unwrap();
        let mut data = Vec::new();
        let merged = merge_blocks(
            &tenant,
            BlockId::new_random(),
            vec![input],
            Vec::new(),
            &mut data,
            &BlockWriteOptions::default(),
        )
        .unwrap();
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

    /// The compactor merges downloaded files into a file: the block is the one a merge in memory writes.
    #[test]
    fn a_merge_from_files_into_a_file_writes_what_a_merge_in_memory_writes() {
        use std::io::{Read, Seek};
        let inputs = vec![block(0..3, 4), block(2..5, 4)];
        let tenant = TenantId::new("t").unwrap();
        let block_id = BlockId::new_random();
        let mut in_memory = Vec::new();
        let from_memory =
            merge_blocks(&tenant, block_id, inputs.clone(), Vec::new(), &mut in_memory, &BlockWriteOptions::default())
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
            merge_blocks(&tenant, block_id, files, Vec::new(), &mut output, &BlockWriteOptions::default()).unwrap();
        let mut on_disk = Vec::new();
        output.rewind().unwrap();
        output.read_to_end(&mut on_disk).unwrap();
        assert!(from_memory.duplicates > 0, "the inputs overlap");
        assert_eq!(on_disk, in_memory);
        assert_eq!(from_files.block.meta.data_bytes, on_disk.len() as u64);
        assert_eq!(from_files.block.meta.span_count, from_memory.block.meta.span_count);
    }
}
