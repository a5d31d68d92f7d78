//! Writing a block: sort span rows by (trace ID, start time), encode Parquet and the bloom filter off the
//! async reactor, upload data and bloom, then commit by writing the metadata object last.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::compute::{concat, concat_batches, interleave};
use arrow::datatypes::{DataType, Schema};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use super::flat::FlatColumn;
use super::leaf::{EncodedLeaf, LeafLayout};
use super::string_map::{MapLeaves, StringMapColumn};
use super::{BlockMeta, FORMAT_VERSION, TagSummary, TagSummaryBuilder, TraceBloom};
use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::schema::{col, end_time_nanos, span_schema};
use crate::storage::{Storage, StorageError, layout};

/// Key under which every block's Parquet footer records its format version, so a Parquet file found
/// without its metadata object still says what it is.
pub const PARQUET_FORMAT_VERSION_KEY: &str = "spanlake.format_version";

/// Objects above this size are uploaded in parts, so a large block never has to be sent in one request.
const MULTIPART_THRESHOLD_BYTES: usize = 32 * 1024 * 1024;
const MULTIPART_PART_BYTES: usize = 16 * 1024 * 1024;

/// Layout choices of a block. The defaults come from `benches/blocks.rs` (see BENCHMARKS.md and
/// `docs/storage-format.md` for the reasoning).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockWriteOptions {
    /// ZSTD level of every column.
    pub zstd_level: i32,
    /// Rows per row group; row-group statistics are the first, coarse pruning step.
    pub max_row_group_rows: usize,
    /// Rows per data page; the page index prunes lookups to pages this size.
    pub data_page_rows: usize,
    /// Bytes per data page (before compression): keeps the pages of wide columns (attribute maps)
    /// small, since a lookup reads whole pages.
    pub data_page_bytes: usize,
    /// Bytes of a column chunk's dictionary page, parquet's default: a column whose distinct values pass
    /// it continues with plain-encoded pages, as parquet's writer does.
    pub dictionary_page_bytes: usize,
    /// Dictionary-encode span, event and link attribute values. Off by default: the dictionary page of
    /// a high-cardinality column must be read whole by every lookup that touches its row group. Resource
    /// and scope attributes repeat across spans and always keep their (small) dictionaries.
    pub dictionary_for_attribute_values: bool,
    /// False-positive rate the trace-ID bloom filter is sized for. A querier asks every block's bloom
    /// on each lookup, so an unknown ID reads `blocks × rate` blocks on average: 1e-5 keeps that near
    /// zero for thousands of blocks at ~3 bytes per trace (1 % would read 5 blocks per lookup at 500).
    pub bloom_false_positive_rate: f64,
    /// Compress the columns that are nearly always empty or constant (links, scope, dropped counts…).
    /// Off by default: they are a few bytes per page after run-length encoding anyway, and every
    /// compressed column chunk a lookup touches costs parquet a fresh ZSTD context.
    pub compress_sparse_columns: bool,
    /// Threads that gather and encode a block's columns. The bytes written do not depend on it; a
    /// block is ready that much sooner, which matters when encoding is what holds ingest back.
    pub encode_threads: usize,
    /// Encode the flat columns and the top-level attribute maps with spanlake's own encoders, straight from
    /// the request batches, instead of gathering them for parquet's Arrow writer (`leaf.rs`, `flat.rs`,
    /// `string_map.rs`); `events` and `links` always go through parquet's writer. Same rows, same layout
    /// and statistics; the write takes less than half the time (BENCHMARKS.md). Off to measure against
    /// parquet's writer, and the way back to it if a directly encoded block ever reads wrong (the server's
    /// `direct_encoding` setting, docs/storage-format.md).
    pub direct_encoding: bool,
}

/// The default false-positive rate of a block's trace-ID bloom (see `docs/storage-format.md`).
pub const DEFAULT_BLOOM_FALSE_POSITIVE_RATE: f64 = 1e-5;

impl Default for BlockWriteOptions {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            max_row_group_rows: 16 * 1024,
            data_page_rows: 1024,
            data_page_bytes: 1024 * 1024,
            dictionary_page_bytes: 1024 * 1024,
            dictionary_for_attribute_values: false,
            bloom_false_positive_rate: DEFAULT_BLOOM_FALSE_POSITIVE_RATE,
            compress_sparse_columns: false,
            encode_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            direct_encoding: true,
        }
    }
}

/// A block encoded in memory, ready to upload.
#[derive(Clone, Debug)]
pub struct EncodedBlock {
    pub meta: BlockMeta,
    pub data: Bytes,
    /// The bloom filter as uploaded…
    pub bloom: Bytes,
    /// … and as built, so readers of a block still in memory (the ingester's recent spans, the querier's
    /// catalogue) ask it without parsing the bytes back.
    pub filter: TraceBloom,
}

impl EncodedBlock {
    /// Whether the block may hold `trace_id`, by its ID range and bloom filter (without decoding it).
    pub fn may_contain_trace(&self, trace_id: &TraceId) -> bool {
        self.meta.may_contain_trace_id(trace_id) && self.filter.may_contain(trace_id)
    }
}

/// Consecutive input batches smaller than this are concatenated into batches of at least this many rows
/// before the sorted gather. The ingester hands over one batch per OTLP request (512 spans from an SDK's
/// default batch processor), and every gathered chunk visits the buffers of every input batch, so the
/// gather's cost grows with the square of the block size: for 1 M spans it took 4.9 s from 512-span
/// batches and 1.9 s from 16 k-span ones, and the concatenation 0.3 s (BENCHMARKS.md, issue 2).
const COALESCED_BATCH_ROWS: usize = 16 * 1024;

/// Sorts and encodes span rows into a block. CPU-bound: call from `spawn_blocking` (as [`write_block`]
/// does) or a benchmark, never directly on the async reactor.
pub fn encode_block(
    tenant: &TenantId,
    block_id: BlockId,
    batches: &[RecordBatch],
    options: &BlockWriteOptions,
) -> Result<EncodedBlock, StorageError> {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    let span_count: usize = batches.iter().map(|b| b.num_rows()).sum();
    if span_count == 0 {
        return Err(StorageError::EmptyBlock);
    }
    // Room for the whole file up front: growing it copies every byte written so far, into pages the
    // kernel must zero first.
    let writer = SortedRowsWriter::new(Vec::with_capacity(span_count * EXPECTED_BYTES_PER_SPAN), options)?;
    // Only the columns parquet's writer encodes are gathered, so only they are concatenated.
    let (jobs, projected) = writer.column_jobs(&batches)?;
    let coalesced = coalesce(&projected.iter().collect::<Vec<_>>())?;
    let inputs = Inputs { gathered: coalesced.iter().map(|b| b.as_ref()).collect(), jobs };
    let keys = SortKeys::gather(&batches)?;
    let order = keys.sorted_order()?;
    let mut summary = keys.summarize(&order)?;
    // The tag summary reads every attribute map once: done beside the Parquet encoding, not after it.
    let (tags, written) = std::thread::scope(|scope| {
        let tags = scope.spawn(|| tag_summary(&batches));
        let written = write_parquet(writer, &inputs, &keys, &order, options);
        (tags.join(), written)
    });
    let (data, row_groups) = written?;
    summary.tags = Some(tags.map_err(|_| StorageError::EncodeWorkerPanicked)??);
    let BlockSidecar { meta, bloom, filter } =
        assemble(tenant, block_id, summary, data.len() as u64, row_groups, options)?;
    Ok(EncodedBlock { meta, data, bloom, filter })
}

/// The same rows in the same order, with runs of small batches concatenated (see [`COALESCED_BATCH_ROWS`]).
/// Batches already large enough are borrowed, not copied. While the block is encoded this holds a second
/// copy of the small batches' rows: at most one block's Arrow size (64 MiB by default).
fn coalesce<'a>(batches: &[&'a RecordBatch]) -> Result<Vec<Cow<'a, RecordBatch>>, StorageError> {
    let mut coalesced = Vec::new();
    let mut run: Vec<&RecordBatch> = Vec::new();
    let mut run_rows = 0;
    let flush = |run: &mut Vec<&'a RecordBatch>, coalesced: &mut Vec<Cow<'a, RecordBatch>>| {
        match run.as_slice() {
            [] => {}
            [single] => coalesced.push(Cow::Borrowed(*single)),
            [first, ..] => coalesced.push(Cow::Owned(concat_batches(&first.schema(), run.iter().copied())?)),
        }
        run.clear();
        Ok::<_, StorageError>(())
    };
    for &batch in batches {
        if batch.num_rows() >= COALESCED_BATCH_ROWS {
            flush(&mut run, &mut coalesced)?;
            run_rows = 0;
            coalesced.push(Cow::Borrowed(batch));
            continue;
        }
        run.push(batch);
        run_rows += batch.num_rows();
        if run_rows >= COALESCED_BATCH_ROWS {
            flush(&mut run, &mut coalesced)?;
            run_rows = 0;
        }
    }
    flush(&mut run, &mut coalesced)?;
    Ok(coalesced)
}

/// The tag summary of a block's rows.
fn tag_summary(batches: &[&RecordBatch]) -> Result<TagSummary, StorageError> {
    let mut builder = TagSummaryBuilder::new();
    for batch in batches {
        builder.add_batch(batch)?;
    }
    Ok(builder.finish())
}

/// What a block's metadata says about its rows, gathered while they were put in order.
#[derive(Debug)]
pub struct BlockSummary {
    /// Every distinct trace ID, ascending (non-empty).
    pub traces: Vec<TraceId>,
    pub span_count: u64,
    pub min_start: u64,
    pub max_start: u64,
    pub max_end: u64,
    /// The block's tag summary (`None` only for blocks written to look like old ones, in tests).
    pub tags: Option<TagSummary>,
}

/// What a block commits besides its Parquet data: the metadata object (the commit point) and the bloom
/// filter. Compaction writes a block's data to a local file rather than memory, so the two travel apart.
#[derive(Clone, Debug)]
pub struct BlockSidecar {
    pub meta: BlockMeta,
    /// The bloom filter as uploaded…
    pub bloom: Bytes,
    /// … and as built, for the in-process catalogue.
    pub filter: TraceBloom,
}

/// The bloom filter and metadata of a block whose Parquet data is `data_bytes` long: the one place a
/// block's commit-point metadata is built, for ingester blocks and compacted ones alike (the compactor
/// then sets their level and what they replace).
pub fn assemble(
    tenant: &TenantId,
    block_id: BlockId,
    summary: BlockSummary,
    data_bytes: u64,
    row_groups: u32,
    options: &BlockWriteOptions,
) -> Result<BlockSidecar, StorageError> {
    let (Some(&min_trace), Some(&max_trace)) = (summary.traces.first(), summary.traces.last()) else {
        return Err(StorageError::EmptyBlock);
    };
    let mut filter = TraceBloom::new(summary.traces.len(), options.bloom_false_positive_rate)
        .map_err(|source| StorageError::InvalidBloom { block: block_id.to_string(), source })?;
    summary.traces.iter().for_each(|id| filter.insert(id));
    let bloom = Bytes::from(filter.to_bytes());
    let meta = BlockMeta {
        format_version: FORMAT_VERSION,
        tenant: tenant.clone(),
        block_id,
        created_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        first_written_unix_ms: None,
        min_start_unix_nano: summary.min_start,
        max_start_unix_nano: summary.max_start,
        max_end_unix_nano: summary.max_end,
        min_trace_id: min_trace,
        max_trace_id: max_trace,
        span_count: summary.span_count,
        trace_count: summary.traces.len() as u64,
        data_bytes,
        bloom_bytes: bloom.len() as u64,
        row_groups,
        bloom_false_positive_rate: options.bloom_false_positive_rate,
        compaction_level: 0,
        lease_epoch: None,
        replaces: Vec::new(),
        tags: summary.tags.map(Arc::new),
    };
    Ok(BlockSidecar { meta, bloom, filter })
}

/// The columns a block is sorted and summarized by, concatenated across the request batches; `rows`
/// finds a row of the concatenation in its request batch.
struct SortKeys {
    trace_ids: FixedSizeBinaryArray,
    starts: TimestampNanosecondArray,
    durations: Int64Array,
    rows: RowLocator,
}

/// Finds a row of the concatenation of some batches in the batch that holds it.
struct RowLocator {
    /// Row offset of each batch in the concatenation.
    batch_offsets: Vec<usize>,
}

impl RowLocator {
    fn new(batches: &[&RecordBatch]) -> Self {
        let mut batch_offsets = Vec::with_capacity(batches.len());
        let mut rows = 0;
        for batch in batches {
            batch_offsets.push(rows);
            rows += batch.num_rows();
        }
        Self { batch_offsets }
    }

    /// (batch, row) of a row of the concatenation.
    fn locate(&self, row: u32) -> (usize, usize) {
        let row = row as usize;
        let batch = self.batch_offsets.partition_point(|&offset| offset <= row) - 1;
        (batch, row - self.batch_offsets[batch])
    }
}

/// What a row group's columns are encoded from: the batches as they came (read by the direct encoders,
/// see the jobs) and the columns parquet's writer encodes (`gathered`: for a block from requests,
/// concatenated into fewer, larger batches).
struct Inputs<'a> {
    gathered: Vec<&'a RecordBatch>,
    jobs: Vec<ColumnJob<'a>>,
}

/// One column of every batch, concatenated and typed.
fn concat_column<T: Array + Clone + 'static>(batches: &[&RecordBatch], name: &str) -> Result<T, StorageError> {
    let missing = || crate::spans::SpanFormatError::MissingColumn(name.to_owned());
    let parts: Vec<&dyn Array> = batches
        .iter()
        .map(|b| b.column_by_name(name).map(|c| c.as_ref()))
        .collect::<Option<_>>()
        .ok_or_else(missing)?;
    let joined = concat(&parts)?;
    let typed = joined.as_any().downcast_ref::<T>().ok_or_else(|| {
        crate::spans::SpanFormatError::Corrupt(format!("{name} column has type {}", joined.data_type()))
    })?;
    Ok(typed.clone())
}

impl SortKeys {
    fn gather(batches: &[&RecordBatch]) -> Result<Self, StorageError> {
        Ok(Self {
            trace_ids: concat_column(batches, col::TRACE_ID)?,
            starts: concat_column(batches, col::START_TIME)?,
            durations: concat_column(batches, col::DURATION_NS)?,
            rows: RowLocator::new(batches),
        })
    }

    /// Row indices (into the concatenation) in (trace ID, start time) order, ties in input order.
    /// Sorting plain integer keys is about four times faster than Arrow's `lexsort` over the two columns
    /// (it compares through a dynamic comparator per pair), which was 7 % of a block write.
    fn sorted_order(&self) -> Result<Vec<u32>, StorageError> {
        if self.trace_ids.value_length() != 16 {
            let width = self.trace_ids.value_length();
            return Err(crate::spans::SpanFormatError::Corrupt(format!("trace IDs of {width} bytes")).into());
        }
        let ids = self.trace_ids.value_data().chunks_exact(16);
        let mut keyed: Vec<(u128, i64, u32)> = ids
            .zip(self.starts.values().iter())
            .zip(0u32..)
            .map(|((id, &start), row)| (u128::from_be_bytes(id.try_into().unwrap_or_default()), start, row))
            .collect();
        keyed.sort_unstable();
        Ok(keyed.into_iter().map(|(_, _, row)| row).collect())
    }

    fn summarize(&self, order: &[u32]) -> Result<BlockSummary, StorageError> {
        let corrupt = crate::spans::SpanFormatError::InvalidId;
        let mut distinct: Vec<TraceId> = Vec::new();
        for &row in order {
            let id = TraceId::from_slice(self.trace_ids.value(row as usize)).map_err(corrupt)?;
            if distinct.last() != Some(&id) {
                distinct.push(id);
            }
        }
        let as_u64 = |v: &i64| *v as u64;
        Ok(BlockSummary {
            span_count: order.len() as u64,
            traces: distinct,
            min_start: self.starts.values().iter().map(as_u64).min().unwrap_or(0),
            max_start: self.starts.values().iter().map(as_u64).max().unwrap_or(0),
            max_end: (self.starts.values().iter().zip(self.durations.values().iter()))
                .map(|(&start, &duration)| end_time_nanos(start, duration) as u64)
                .max()
                .unwrap_or(0),
            tags: None,
        })
    }
}

/// Columns that get page-level statistics (and so a column index): the ones lookups and time or
/// service filters prune by. Other top-level columns get chunk statistics only (which keeps the page
/// index a few hundred KB per million spans instead of megabytes), nested ones none.
const PAGE_STATISTICS_COLUMNS: [&str; 7] =
    [col::TRACE_ID, col::START_TIME, col::DURATION_NS, col::SERVICE_NAME, col::NAME, col::KIND, col::STATUS_CODE];

/// Columns whose values hardly repeat: a dictionary would only cost time, and a lookup would have to
/// read its (large) dictionary page.
fn is_high_cardinality(path: &str, options: &BlockWriteOptions) -> bool {
    let shared_attributes = path.starts_with("resource_") || path.starts_with("scope_");
    let attribute_value = path.ends_with("key_value.value") && !shared_attributes;
    (attribute_value && !options.dictionary_for_attribute_values)
        || [col::SPAN_ID, col::PARENT_SPAN_ID, col::START_TIME, col::DURATION_NS].contains(&path)
        || path.ends_with("element.time")
}

/// Columns stored `BYTE_STREAM_SPLIT` (then ZSTD): span durations. The eight bytes of every value go to
/// eight streams, so the high bytes (alike across a block's durations) become runs ZSTD removes:
/// 2.7 and 3.7 bytes per span on synthetic and SDK-shaped blocks against 3.2 and 4.1 plain, with
/// 1,024-row pages (BENCHMARKS.md, issue 25 item 4). Start times stay plain: the split saved them at most
/// 0.06 bytes per span and cost SQL scans a transpose per value (`date_bin` counts 5 % slower);
/// `DELTA_BINARY_PACKED` was larger than plain on both columns (rows are sorted by trace, so consecutive
/// start times jump). DuckDB and pyarrow read the encoding. The direct encoder writes plain values only,
/// so this column goes through parquet's own encoder.
fn is_split_into_byte_streams(path: &str) -> bool {
    path == col::DURATION_NS
}

/// Columns that are empty, NULL or constant for almost every span, so run-length encoding already
/// makes them tiny.
fn is_sparse(path: &str) -> bool {
    path.starts_with("links.")
        || path.starts_with("scope_")
        || path.contains("dropped_")
        || path.ends_with("attribute_nested")
        || path.ends_with("attribute_types")
        || [col::TRACE_STATE, col::FLAGS, col::RESOURCE_ENTITY_REFS, col::RESOURCE_SCHEMA_URL].contains(&path)
}

/// Parquet writer settings for the span schema.
pub fn writer_properties(options: &BlockWriteOptions) -> Result<WriterProperties, StorageError> {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(options.zstd_level)?))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(options.max_row_group_rows))
        .set_data_page_row_count_limit(options.data_page_rows)
        .set_data_page_size_limit(options.data_page_bytes)
        .set_dictionary_page_size_limit(options.dictionary_page_bytes)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            PARQUET_FORMAT_VERSION_KEY.to_owned(),
            FORMAT_VERSION.to_string(),
        )]));
    let descriptor = ArrowSchemaConverter::new().convert(&span_schema())?;
    for column in descriptor.columns() {
        let path = column.path();
        let name = path.string();
        if PAGE_STATISTICS_COLUMNS.contains(&name.as_str()) {
            builder = builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::Page);
        } else if path.parts().len() > 1 || name.ends_with("attribute_types") || name.ends_with("attribute_nested") {
            // Min/max of map entries, list elements or encoded blobs prune nothing and cost a byte
            // comparison per value, a fifth of the write time.
            builder = builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
        }
        if is_high_cardinality(&name, options) {
            builder = builder.set_column_dictionary_enabled(path.clone(), false);
        }
        if is_split_into_byte_streams(&name) {
            builder = builder.set_column_encoding(path.clone(), Encoding::BYTE_STREAM_SPLIT);
        }
        if !options.compress_sparse_columns && is_sparse(&name) {
            builder = builder.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
        }
    }
    Ok(builder.build())
}

/// Room reserved per span for a block's Parquet file: a little above the ~49 bytes/span of realistic
/// spans (BENCHMARKS.md). Blocks of larger spans grow the buffer as they go.
const EXPECTED_BYTES_PER_SPAN: usize = 64;

/// Writes the rows in `order` (indices into the concatenation of the input batches) one row group at a
/// time, gathering each column straight into sorted order so the sorted copy never exists whole in
/// memory (see [`SortedRowsWriter`]).
fn write_parquet(
    mut writer: SortedRowsWriter<Vec<u8>>,
    inputs: &Inputs<'_>,
    keys: &SortKeys,
    order: &[u32],
    options: &BlockWriteOptions,
) -> Result<(Bytes, u32), StorageError> {
    let gathered_rows = RowLocator::new(&inputs.gathered);
    let rows_per_group = options.max_row_group_rows.max(1);
    let mut gathered = Vec::with_capacity(rows_per_group.min(order.len()));
    let mut requests = Vec::with_capacity(rows_per_group.min(order.len()));
    for rows in order.chunks(rows_per_group) {
        gathered.clear();
        if !inputs.gathered.is_empty() {
            gathered.extend(rows.iter().map(|&row| gathered_rows.locate(row)));
        }
        requests.clear();
        requests.extend(rows.iter().map(|&row| keys.rows.locate(row)));
        writer.encode_row_group(inputs, &Positions { gathered: &gathered, requests: &requests })?;
    }
    let (out, row_groups, _) = writer.finish()?;
    Ok((Bytes::from(out), row_groups))
}

/// A block's Parquet file, written one row group at a time from rows that sit anywhere in a set of Arrow
/// batches, in the order given: how ingest writes a block from its request batches, and compaction a
/// merged block from its inputs' decoded batches, with the same encoders. A row group's columns are
/// gathered and encoded by up to `encode_threads` threads (the bytes do not depend on how many); the
/// columns the direct encoders write (`flat.rs`, `string_map.rs`) skip the gather: they are encoded
/// straight from the batches. With `direct_encoding` off every column goes through parquet's writer.
pub struct SortedRowsWriter<W: Write + Send> {
    file: SerializedFileWriter<Counted<W>>,
    factory: ArrowRowGroupWriterFactory,
    properties: WriterProperties,
    leaves_per_column: Vec<usize>,
    threads: usize,
    direct: bool,
}

impl<W: Write + Send> SortedRowsWriter<W> {
    /// A writer of the span schema with the block layout of `options`, into `out`.
    pub fn new(out: W, options: &BlockWriteOptions) -> Result<Self, StorageError> {
        let schema = span_schema();
        let properties = writer_properties(options)?;
        let out = Counted { inner: out, bytes: 0 };
        let arrow_writer = ArrowWriter::try_new(out, schema.clone(), Some(properties.clone()))?;
        // The Arrow writer is only used to set up the file (schema, Arrow schema in the footer); the row
        // groups are written column by column.
        let (file, factory) = arrow_writer.into_serialized_writer()?;
        let leaves_per_column = leaf_counts(file.schema_descr(), &schema);
        let threads = options.encode_threads.clamp(1, schema.fields().len());
        Ok(Self { file, factory, properties, leaves_per_column, threads, direct: options.direct_encoding })
    }

    /// Writes the rows at `positions` ((batch, row) of `batches`, in the order they are to be stored) as
    /// one row group. The batches have the span schema.
    pub fn write_row_group(
        &mut self,
        batches: &[&RecordBatch],
        positions: &[(usize, usize)],
    ) -> Result<(), StorageError> {
        if positions.is_empty() {
            return Ok(());
        }
        // Only the rows the positions reach: the direct encoders look at every row of the batches they
        // are given (for constant columns and repeated attribute lists), and a merge's batches hold
        // several row groups' worth of rows at once.
        let (sliced, positions) = reached_rows(batches, positions);
        let batches: Vec<&RecordBatch> = sliced.iter().collect();
        let batches = batches.as_slice();
        let positions = positions.as_slice();
        let (jobs, projected) = self.column_jobs(batches)?;
        let inputs = Inputs { gathered: projected.iter().collect(), jobs };
        self.encode_row_group(&inputs, &Positions { gathered: positions, requests: positions })
    }

    /// Each top-level column's encoder for rows of `batches` (see [`ColumnJob`]), and the batches
    /// projected to the columns parquet's writer encodes, which are gathered into sorted order.
    fn column_jobs<'a>(
        &self,
        batches: &[&'a RecordBatch],
    ) -> Result<(Vec<ColumnJob<'a>>, Vec<RecordBatch>), StorageError> {
        let jobs = column_jobs(batches, self.file.schema_descr(), &self.properties, self.direct);
        let gathered: Vec<usize> =
            jobs.iter().enumerate().filter(|(_, job)| matches!(job, ColumnJob::Arrow { .. })).map(|(i, _)| i).collect();
        let projected = if gathered.is_empty() {
            Vec::new()
        } else {
            batches.iter().map(|batch| batch.project(&gathered)).collect::<Result<Vec<_>, _>>()?
        };
        Ok((jobs, projected))
    }

    fn encode_row_group(&mut self, inputs: &Inputs<'_>, positions: &Positions<'_>) -> Result<(), StorageError> {
        let schema = span_schema();
        let index = self.file.flushed_row_groups().len();
        let mut writers = self.factory.create_column_writers(index)?.into_iter();
        // Each top-level column's leaf writers, moved out by the thread that encodes the column, which
        // leaves its chunks beside them.
        let pending: Vec<Mutex<Vec<ArrowColumnWriter>>> = (self.leaves_per_column.iter())
            .map(|&leaves| Mutex::new(writers.by_ref().take(leaves).collect()))
            .collect();
        let encoded: Vec<Mutex<Option<ColumnChunks>>> = pending.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let work = || run_column_jobs(inputs, positions, &schema, &pending, &encoded, &next);
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..self.threads).map(|_| scope.spawn(work)).collect();
            work()?;
            helpers.into_iter().try_for_each(|helper| helper.join().unwrap_or(Err(StorageError::EncodeWorkerPanicked)))
        })?;
        let mut row_group = self.file.next_row_group()?;
        for chunks in encoded {
            match chunks.into_inner().map_err(|_| StorageError::EncodeWorkerPanicked)? {
                Some(ColumnChunks::Arrow(chunks)) => {
                    for chunk in chunks {
                        chunk.append_to_row_group(&mut row_group)?;
                    }
                }
                Some(ColumnChunks::Direct(leaves)) => {
                    for leaf in leaves {
                        row_group.append_column(&leaf.data, leaf.close)?;
                    }
                }
                None => return Err(StorageError::EncodeWorkerPanicked),
            }
        }
        row_group.close()?;
        Ok(())
    }

    /// Writes the footer; returns the output, the file's row-group count and its length in bytes.
    pub fn finish(self) -> Result<(W, u32, u64), StorageError> {
        let row_groups = self.file.flushed_row_groups().len() as u32;
        let Counted { inner, bytes } = self.file.into_inner()?;
        Ok((inner, row_groups, bytes))
    }
}

/// A writer that counts the bytes written through it: the length of a block written to a file.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The part of each batch from the first to the last row `positions` reach (batches they do not reach
/// are left out, a slice shares its batch's buffers), and the positions in those slices.
fn reached_rows(batches: &[&RecordBatch], positions: &[(usize, usize)]) -> (Vec<RecordBatch>, Vec<(usize, usize)>) {
    let mut ranges = vec![(usize::MAX, 0); batches.len()];
    for &(batch, row) in positions {
        let range = &mut ranges[batch];
        *range = (range.0.min(row), range.1.max(row + 1));
    }
    let mut sliced = Vec::new();
    let mut renumbered = vec![0; batches.len()];
    for (index, &(first, end)) in ranges.iter().enumerate() {
        if first < end {
            renumbered[index] = sliced.len();
            sliced.push(batches[index].slice(first, end - first));
        }
    }
    let positions = positions.iter().map(|&(batch, row)| (renumbered[batch], row - ranges[batch].0)).collect();
    (sliced, positions)
}

/// Where a row group's rows are, in sorted order: in the concatenated batches of gathered columns, and
/// in the request batches.
struct Positions<'p> {
    gathered: &'p [(usize, usize)],
    requests: &'p [(usize, usize)],
}

/// How a top-level column is encoded: by parquet's Arrow writer after a gather into sorted order (from
/// column `input` of the gathered batches), or, for a flat column or a `map<string, string>` whose
/// settings [`LeafLayout`] covers, straight from the request batches. The lists of structs (`events`,
/// `links`) are gathered: a direct encoder for them measured no faster (BENCHMARKS.md, "events and links
/// through parquet's writer").
enum ColumnJob<'a> {
    Arrow { input: usize },
    Flat(FlatColumn<'a>),
    StringMap { column: StringMapColumn<'a>, leaves: MapLeaves },
}

/// The encoded chunks of one top-level column, in leaf order.
enum ColumnChunks {
    Arrow(Vec<ArrowColumnChunk>),
    Direct(Vec<EncodedLeaf>),
}

/// Picks each top-level column's encoder (see [`ColumnJob`]); `direct` allows the direct encoders.
fn column_jobs<'a>(
    requests: &[&'a RecordBatch],
    parquet: &SchemaDescriptor,
    properties: &WriterProperties,
    direct: bool,
) -> Vec<ColumnJob<'a>> {
    let schema = span_schema();
    let mut gathered = 0;
    let mut jobs = Vec::with_capacity(schema.fields().len());
    for (index, field) in schema.fields().iter().enumerate() {
        let layouts: Vec<_> =
            leaves_of(parquet, field.name()).map(|leaf| LeafLayout::for_leaf(properties, leaf)).collect();
        let columns: Vec<&dyn Array> = requests.iter().map(|batch| batch.column(index).as_ref()).collect();
        let job = match (field.data_type(), layouts.as_slice()) {
            _ if !direct => None,
            (DataType::Map(..), [Some(key), Some(value)]) => MapLeaves::new(key.clone(), value.clone())
                .and_then(|leaves| Some(ColumnJob::StringMap { column: StringMapColumn::new(&columns)?, leaves })),
            (_, [Some(leaf)]) => FlatColumn::new(&columns, leaf.clone()).map(ColumnJob::Flat),
            _ => None,
        };
        jobs.push(match job {
            Some(job) => job,
            None => {
                gathered += 1;
                ColumnJob::Arrow { input: gathered - 1 }
            }
        });
    }
    jobs
}

/// Takes columns in schema order until none are left: encodes each (see [`ColumnJob`]) and leaves the
/// chunks in `encoded`; a column gathered into sorted order is encoded with its leaf writers from
/// `pending`. The shared counter hands each column to exactly one thread. Schema order puts the wide
/// attribute maps early, so the threads finish at about the same time.
fn run_column_jobs(
    inputs: &Inputs<'_>,
    positions: &Positions<'_>,
    schema: &Schema,
    pending: &[Mutex<Vec<ArrowColumnWriter>>],
    encoded: &[Mutex<Option<ColumnChunks>>],
    next: &AtomicUsize,
) -> Result<(), StorageError> {
    loop {
        let column = next.fetch_add(1, Ordering::Relaxed);
        let (Some(job), Some(writers), Some(done)) =
            (inputs.jobs.get(column), pending.get(column), encoded.get(column))
        else {
            return Ok(());
        };
        let mut writers = std::mem::take(&mut *writers.lock().map_err(|_| StorageError::EncodeWorkerPanicked)?);
        let chunks = match job {
            ColumnJob::StringMap { column, leaves } => {
                ColumnChunks::Direct(column.encode(positions.requests, leaves)?.into())
            }
            ColumnJob::Flat(column) => ColumnChunks::Direct(vec![column.encode(positions.requests)?]),
            ColumnJob::Arrow { input } => {
                let columns: Vec<&dyn Array> =
                    inputs.gathered.iter().map(|batch| batch.column(*input).as_ref()).collect();
                let sorted = interleave(&columns, positions.gathered)?;
                let leaves = compute_leaves(schema.field(column), &sorted)?;
                for (writer, leaf) in writers.iter_mut().zip(&leaves) {
                    writer.write(leaf)?;
                }
                ColumnChunks::Arrow(writers.into_iter().map(ArrowColumnWriter::close).collect::<Result<Vec<_>, _>>()?)
            }
        };
        *done.lock().map_err(|_| StorageError::EncodeWorkerPanicked)? = Some(chunks);
    }
}

/// How many Parquet leaf columns each top-level Arrow field has, in schema order.
fn leaf_counts(parquet: &SchemaDescriptor, arrow: &Schema) -> Vec<usize> {
    arrow.fields().iter().map(|field| leaves_of(parquet, field.name()).count()).collect()
}

/// The Parquet leaf columns of the top-level field `name`, in schema order.
fn leaves_of<'s>(parquet: &'s SchemaDescriptor, name: &'s str) -> impl Iterator<Item = &'s ColumnDescPtr> {
    parquet.columns().iter().filter(move |leaf| leaf.path().parts().first().map(String::as_str) == Some(name))
}

/// Uploads an encoded block: data and bloom first, metadata last as the commit point. Safe to retry:
/// data and bloom are overwritten, and a metadata object that already exists means an earlier attempt
/// committed this block, which counts as success.
pub async fn upload_block(storage: &Storage, block: &EncodedBlock) -> Result<(), StorageError> {
    let store = storage.object_store();
    let data_path = layout::data_path(&block.meta.tenant, block.meta.block_id);
    let data = upload(&store, &data_path, block.data.clone());
    upload_with_bloom(storage, &block.meta, &block.bloom, data).await?;
    commit_block(storage, &block.meta).await
}

/// Uploads the data and bloom of a block whose Parquet data sits in a local file (a compaction's output),
/// in parts of `MULTIPART_PART_BYTES` read one after the other, so the upload holds a few parts in memory
/// whatever the block's size. The block does not exist for readers until [`commit_block`] writes its
/// metadata: the compactor checks its lease in between.
pub async fn upload_spooled_objects(
    storage: &Storage,
    sidecar: &BlockSidecar,
    data: std::fs::File,
) -> Result<(), StorageError> {
    let store = storage.object_store();
    let data_path = layout::data_path(&sidecar.meta.tenant, sidecar.meta.block_id);
    let sent = upload_file(&store, &data_path, data, MULTIPART_THRESHOLD_BYTES, MULTIPART_PART_BYTES);
    upload_with_bloom(storage, &sidecar.meta, &sidecar.bloom, sent).await
}

/// Uploads the bloom alongside `data` (the data object's upload); the block is not committed yet.
async fn upload_with_bloom(
    storage: &Storage,
    meta: &BlockMeta,
    bloom: &Bytes,
    data: impl Future<Output = Result<(), StorageError>>,
) -> Result<(), StorageError> {
    let store = storage.object_store();
    let bloom_path = layout::bloom_path(&meta.tenant, meta.block_id);
    futures::try_join!(data, upload(&store, &bloom_path, bloom.clone()))?;
    Ok(())
}

/// Writes a block's metadata object, which makes the block exist for readers: created only if absent,
/// so a block is never committed twice with different metadata.
pub async fn commit_block(storage: &Storage, meta: &BlockMeta) -> Result<(), StorageError> {
    let commit = PutOptions { mode: PutMode::Create, ..Default::default() };
    let path = layout::meta_path(&meta.tenant, meta.block_id);
    match storage.object_store().put_opts(&path, PutPayload::from(meta.to_json()), commit).await {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn upload(
    store: &Arc<dyn ObjectStore>,
    path: &object_store::path::Path,
    bytes: Bytes,
) -> Result<(), StorageError> {
    if bytes.len() <= MULTIPART_THRESHOLD_BYTES {
        store.put(path, PutPayload::from_bytes(bytes)).await?;
        return Ok(());
    }
    let parts = bytes.chunks(MULTIPART_PART_BYTES).map(|chunk| Ok(bytes.slice_ref(chunk))).collect::<Vec<_>>();
    upload_parts(store, path, futures::stream::iter(parts)).await
}

/// Uploads a local file: in one PUT up to `threshold` bytes, else in parts of `part_bytes`.
async fn upload_file(
    store: &Arc<dyn ObjectStore>,
    path: &object_store::path::Path,
    file: std::fs::File,
    threshold: usize,
    part_bytes: usize,
) -> Result<(), StorageError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::from_std(file);
    file.rewind().await.map_err(StorageError::Spool)?;
    let len = file.metadata().await.map_err(StorageError::Spool)?.len();
    if len <= threshold as u64 {
        let mut whole = Vec::with_capacity(len as usize);
        file.read_to_end(&mut whole).await.map_err(StorageError::Spool)?;
        store.put(path, PutPayload::from(whole)).await?;
        return Ok(());
    }
    let parts = futures::stream::try_unfold(file, move |file| async move {
        let mut part = Vec::with_capacity(part_bytes);
        let mut limited = file.take(part_bytes as u64);
        limited.read_to_end(&mut part).await.map_err(StorageError::Spool)?;
        Ok((!part.is_empty()).then(|| (Bytes::from(part), limited.into_inner())))
    });
    upload_parts(store, path, parts).await
}

/// Parts of one multipart upload sent at once: enough to keep a connection busy, few enough that an
/// upload from a file holds only this many parts in memory.
const PARTS_IN_FLIGHT: usize = 4;

/// A multipart upload of `parts` in order, [`PARTS_IN_FLIGHT`] at a time; aborted if any part fails.
async fn upload_parts(
    store: &Arc<dyn ObjectStore>,
    path: &object_store::path::Path,
    parts: impl futures::Stream<Item = Result<Bytes, StorageError>>,
) -> Result<(), StorageError> {
    use futures::{StreamExt, TryStreamExt};
    let mut upload = store.put_multipart(path).await?;
    let sent = async {
        let mut in_flight = futures::stream::FuturesUnordered::new();
        futures::pin_mut!(parts);
        while let Some(part) = parts.try_next().await? {
            if in_flight.len() >= PARTS_IN_FLIGHT {
                in_flight.next().await.transpose()?;
            }
            in_flight.push(upload.put_part(PutPayload::from_bytes(part)));
        }
        while in_flight.try_next().await?.is_some() {}
        Ok::<_, StorageError>(())
    }
    .await;
    match sent {
        Ok(()) => {
            upload.complete().await?;
            Ok(())
        }
        Err(error) => {
            // Best effort: an abandoned upload is invisible to readers either way.
            let _ = upload.abort().await;
            Err(error)
        }
    }
}

/// Encodes (on a blocking thread) and uploads a block of spans; returns its committed metadata.
pub async fn write_block(
    storage: &Storage,
    tenant: &TenantId,
    block_id: BlockId,
    batches: Vec<RecordBatch>,
    options: &BlockWriteOptions,
) -> Result<BlockMeta, StorageError> {
    let (tenant_owned, options_owned) = (tenant.clone(), options.clone());
    let encoded =
        tokio::task::spawn_blocking(move || encode_block(&tenant_owned, block_id, &batches, &options_owned)).await??;
    upload_block(storage, &encoded).await?;
    Ok(encoded.meta)
}

#[cfg(test)]
mod tests {
    use super::super::leaf::testing::chunks;
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::synth::TraceGenerator;

    /// ~40 k spans as one batch and as request-sized slices of it (1 to 700 rows), with one slice
    /// already larger than the coalescing size in the middle.
    fn spans_and_slices() -> (RecordBatch, Vec<RecordBatch>) {
        let mut generator = TraceGenerator::new(7);
        let traces: Vec<_> = (0..850).flat_map(|_| generator.next_trace()).collect();
        let (whole, rejected) = encode_resource_spans(&traces).expect("synthetic spans encode");
        assert!(rejected.is_empty());
        let mut slices = Vec::new();
        let (mut offset, mut size) = (0, 1);
        while offset < whole.num_rows() {
            let len = if slices.len() == 40 { COALESCED_BATCH_ROWS + 3 } else { size };
            let len = len.min(whole.num_rows() - offset);
            slices.push(whole.slice(offset, len));
            offset += len;
            size = size * 7 % 701 + 1;
        }
        (whole, slices)
    }

    /// A compaction's output goes up from its file in one PUT or in parts, and arrives byte for byte.
    #[tokio::test]
    async fn a_file_is_uploaded_whole_or_in_parts_byte_for_byte() {
        use std::io::Write;
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let content: Vec<u8> = (0..100_003u32).map(|i| (i * 31 % 251) as u8).collect();
        for (threshold, part_bytes) in [(1 << 20, 16 << 10), (10_000, 16 << 10), (10_000, 100_003), (0, 97)] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&content).unwrap();
            let path = object_store::path::Path::from(format!("t/{threshold}-{part_bytes}"));
            upload_file(&store, &path, file, threshold, part_bytes).await.unwrap();
            let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(stored.len(), content.len(), "threshold {threshold}, parts of {part_bytes}");
            assert!(stored.as_ref() == content.as_slice(), "threshold {threshold}, parts of {part_bytes}");
        }
    }

    #[test]
    fn coalescing_keeps_every_row_in_order_and_borrows_large_batches() {
        let (whole, slices) = spans_and_slices();
        let refs: Vec<&RecordBatch> = slices.iter().collect();
        let coalesced = coalesce(&refs).unwrap();
        assert!(coalesced.len() < slices.len() / 10, "{} batches from {}", coalesced.len(), slices.len());
        let large = slices.iter().find(|b| b.num_rows() > COALESCED_BATCH_ROWS).unwrap();
        assert!(
            coalesced.iter().any(|b| matches!(b, Cow::Borrowed(b) if std::ptr::eq(*b, large))),
            "a batch already large enough is used as it is"
        );
        // A concatenation is short only when it ends the input or a large batch interrupts it.
        for (index, pair) in coalesced.windows(2).enumerate() {
            if let [Cow::Owned(batch), Cow::Owned(_)] = pair {
                assert!(batch.num_rows() >= COALESCED_BATCH_ROWS, "batch {index} has {} rows", batch.num_rows());
            }
        }
        let rejoined = concat_batches(&whole.schema(), coalesced.iter().map(|b| b.as_ref())).unwrap();
        assert_eq!(rejoined, whole);
    }

    /// The rows of `batch` in (trace ID, start time) order, ties in input order, sorted by Arrow itself.
    fn sorted_by_arrow(batch: &RecordBatch) -> RecordBatch {
        use arrow::array::{ArrayRef, UInt32Array};
        use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
        let key = |values: ArrayRef| SortColumn { values, options: None };
        let row_numbers: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32));
        let keys = [
            key(batch.column_by_name(col::TRACE_ID).unwrap().clone()),
            key(batch.column_by_name(col::START_TIME).unwrap().clone()),
            key(row_numbers),
        ];
        take_record_batch(batch, &lexsort_to_indices(&keys, None).unwrap()).unwrap()
    }

    /// Without the direct encoders, a block is byte for byte what parquet's own writer writes for the
    /// sorted rows. With them (the default), the block holds the same rows, in the same pages, with the
    /// same statistics and page index. Either way the bytes do not depend on how many threads encode.
    #[test]
    fn a_block_holds_the_sorted_rows_whatever_the_encoder_and_the_thread_count() {
        let (whole, slices) = spans_and_slices();
        let (tenant, id) = (TenantId::single_tenant(), BlockId::new_random());
        let options = |threads, direct_encoding| BlockWriteOptions {
            encode_threads: threads,
            max_row_group_rows: 4096,
            direct_encoding,
            ..Default::default()
        };
        let sorted = sorted_by_arrow(&whole);
        let mut reference = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut reference, span_schema(), Some(writer_properties(&options(1, false)).unwrap()))
                .unwrap();
        writer.write(&sorted).unwrap();
        writer.close().unwrap();
        let direct = encode_block(&tenant, id, &slices, &options(1, true)).unwrap();
        assert!(direct.meta.row_groups >= 10, "{} row groups", direct.meta.row_groups);
        let read = super::super::read_encoded(direct.data.clone()).unwrap();
        assert_eq!(concat_batches(&span_schema(), &read).unwrap(), sorted, "the direct encoder's block holds the rows");
        assert_ne!(direct.data, reference, "the columns were encoded directly");
        // Same pages, statistics, column and offset indexes as parquet's writer, column by column (`events`
        // and `links` are parquet's own either way). Except where the top-level maps' pages start: parquet
        // checks its row limit once per 1,024 levels of a nested column, so its map pages hold ~1,140
        // rows; the direct encoder's hold 1,024, as the layout asks.
        let (described, reference_described) = (chunks(&direct.data), chunks(&Bytes::from(reference.clone())));
        assert_eq!(described.len(), reference_described.len());
        for (direct, parquet) in described.iter().zip(&reference_described) {
            if direct.contains(".key_value.") && !direct.contains(".list.element.") {
                assert_eq!(direct.split(", pages").next(), parquet.split(", pages").next());
            } else {
                assert_eq!(direct, parquet);
            }
        }
        for threads in [1, 2, 3, 200] {
            let block = encode_block(&tenant, id, std::slice::from_ref(&whole), &options(threads, false)).unwrap();
            assert_eq!(block.data, reference, "parquet's writer, {threads} encoding threads");
            let block = encode_block(&tenant, id, &slices, &options(threads, true)).unwrap();
            assert_eq!(block.data, direct.data, "direct encoders, {threads} encoding threads");
        }
    }

    /// Every block's metadata carries the tag summary of its rows; what it costs in `meta.json` is
    /// printed (`cargo test --lib tag_summary_in_its_metadata -- --nocapture`).
    #[test]
    fn a_block_carries_the_tag_summary_in_its_metadata() {
        let (whole, slices) = spans_and_slices();
        let block =
            encode_block(&TenantId::single_tenant(), BlockId::new_random(), &slices, &Default::default()).unwrap();
        let mut builder = TagSummaryBuilder::new();
        builder.add_batch(&whole).unwrap();
        assert_eq!(block.meta.tags.as_deref(), Some(&builder.finish()));
        let with = block.meta.to_json().len();
        let without = BlockMeta { tags: None, ..block.meta.clone() }.to_json().len();
        eprintln!(
            "{} spans: meta.json {with} bytes with the tag summary, {without} without, data {} bytes",
            block.meta.span_count,
            block.data.len()
        );
        assert!(with > without);
    }

    #[test]
    fn a_block_from_request_sized_batches_is_the_block_from_one_batch() {
        let (whole, slices) = spans_and_slices();
        let (tenant, id, options) = (TenantId::single_tenant(), BlockId::new_random(), BlockWriteOptions::default());
        let from_slices = encode_block(&tenant, id, &slices, &options).unwrap();
        let from_whole = encode_block(&tenant, id, &[whole], &options).unwrap();
        assert_eq!(from_slices.meta.span_count, from_whole.meta.span_count);
        assert_eq!(from_slices.data, from_whole.data, "same rows, same order, same bytes");
        assert_eq!(from_slices.meta.trace_count, from_whole.meta.trace_count);
        assert_eq!(
            (from_slices.meta.min_trace_id, from_slices.meta.max_trace_id),
            (from_whole.meta.min_trace_id, from_whole.meta.max_trace_id)
        );
    }
}
