//! Writing a block: sort span rows by (trace ID, start time), encode Parquet and the bloom filter off the
//! async reactor, upload data and bloom, then commit by writing the metadata object last.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{BlockMeta, FORMAT_VERSION, TraceBloom};
use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::schema::{col, span_schema};
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
    /// Dictionary-encode attribute values. Off by default: the dictionary page of a high-cardinality
    /// column must be read whole by every lookup that touches its row group.
    pub dictionary_for_attribute_values: bool,
    /// False-positive rate the trace-ID bloom filter is sized for.
    pub bloom_false_positive_rate: f64,
}

impl Default for BlockWriteOptions {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            max_row_group_rows: 128 * 1024,
            data_page_rows: 1024,
            dictionary_for_attribute_values: false,
            bloom_false_positive_rate: 0.01,
        }
    }
}

/// A block encoded in memory, ready to upload.
#[derive(Clone, Debug)]
pub struct EncodedBlock {
    pub meta: BlockMeta,
    pub data: Bytes,
    pub bloom: Bytes,
}

/// Sorts and encodes span rows into a block. CPU-bound: call from `spawn_blocking` (as [`write_block`]
/// does) or a benchmark, never directly on the async reactor.
pub fn encode_block(
    tenant: &TenantId,
    block_id: BlockId,
    batches: &[RecordBatch],
    options: &BlockWriteOptions,
) -> Result<EncodedBlock, StorageError> {
    let unsorted = concat_batches(&span_schema(), batches)?;
    if unsorted.num_rows() == 0 {
        return Err(StorageError::EmptyBlock);
    }
    let sorted = sort_by_trace_then_start(&unsorted)?;
    drop(unsorted);
    let summary = summarize(&sorted, options.bloom_false_positive_rate)?;
    let (data, row_groups) = write_parquet(&sorted, options)?;
    let bloom = Bytes::from(summary.bloom.to_bytes());
    let meta = BlockMeta {
        format_version: FORMAT_VERSION,
        tenant: tenant.clone(),
        block_id,
        created_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        min_start_unix_nano: summary.min_start,
        max_start_unix_nano: summary.max_start,
        max_end_unix_nano: summary.max_end,
        min_trace_id: summary.min_trace.to_hex(),
        max_trace_id: summary.max_trace.to_hex(),
        span_count: sorted.num_rows() as u64,
        trace_count: summary.trace_count,
        data_bytes: data.len() as u64,
        bloom_bytes: bloom.len() as u64,
        row_groups,
        bloom_false_positive_rate: options.bloom_false_positive_rate,
        compaction_level: 0,
    };
    Ok(EncodedBlock { meta, data, bloom })
}

fn sort_by_trace_then_start(batch: &RecordBatch) -> Result<RecordBatch, StorageError> {
    let column = |name: &str| batch.column_by_name(name).cloned().expect("span schema has the sort columns");
    let sort_columns = [
        SortColumn { values: column(col::TRACE_ID), options: None },
        SortColumn { values: column(col::START_TIME), options: None },
    ];
    let indices = lexsort_to_indices(&sort_columns, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

struct Summary {
    bloom: TraceBloom,
    trace_count: u64,
    min_trace: TraceId,
    max_trace: TraceId,
    min_start: u64,
    max_start: u64,
    max_end: u64,
}

fn summarize(sorted: &RecordBatch, false_positive_rate: f64) -> Result<Summary, StorageError> {
    let corrupt = |what: &str| crate::spans::SpanFormatError::Corrupt(format!("{what} column has the wrong type"));
    let trace_ids = sorted
        .column_by_name(col::TRACE_ID)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .ok_or_else(|| corrupt(col::TRACE_ID))?;
    let times = |name: &str| {
        sorted
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .ok_or_else(|| corrupt(name))
    };
    let (starts, ends) = (times(col::START_TIME)?, times(col::END_TIME)?);
    let mut distinct: Vec<TraceId> = Vec::new();
    for row in 0..trace_ids.len() {
        let id = TraceId::from_slice(trace_ids.value(row)).map_err(|e| corrupt(&e.to_string()))?;
        if distinct.last() != Some(&id) {
            distinct.push(id);
        }
    }
    let mut bloom = TraceBloom::new(distinct.len(), false_positive_rate)
        .map_err(|reason| StorageError::InvalidBloom { block: "new block".into(), reason })?;
    distinct.iter().for_each(|id| bloom.insert(id));
    let as_u64 = |v: i64| v as u64;
    Ok(Summary {
        trace_count: distinct.len() as u64,
        min_trace: distinct[0],
        max_trace: distinct[distinct.len() - 1],
        bloom,
        min_start: starts.values().iter().copied().map(as_u64).min().unwrap_or(0),
        max_start: starts.values().iter().copied().map(as_u64).max().unwrap_or(0),
        max_end: ends.values().iter().copied().map(as_u64).max().unwrap_or(0),
    })
}

/// Parquet writer settings for the span schema.
pub fn writer_properties(options: &BlockWriteOptions) -> Result<WriterProperties, StorageError> {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(options.zstd_level)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(options.max_row_group_rows))
        .set_data_page_row_count_limit(options.data_page_rows)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            PARQUET_FORMAT_VERSION_KEY.to_owned(),
            FORMAT_VERSION.to_string(),
        )]));
    if !options.dictionary_for_attribute_values {
        let descriptor = ArrowSchemaConverter::new().convert(&span_schema())?;
        for column in descriptor.columns() {
            let path = column.path();
            if path.string().ends_with("key_value.value") {
                builder = builder.set_column_dictionary_enabled(path.clone(), false);
            }
        }
    }
    Ok(builder.build())
}

fn write_parquet(sorted: &RecordBatch, options: &BlockWriteOptions) -> Result<(Bytes, u32), StorageError> {
    let mut out = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, span_schema(), Some(writer_properties(options)?))?;
    writer.write(sorted)?;
    let row_groups = writer.close()?.num_row_groups() as u32;
    Ok((Bytes::from(out), row_groups))
}

/// Uploads an encoded block: data and bloom first, metadata last as the commit point. Safe to retry:
/// data and bloom are overwritten, and a metadata object that already exists means an earlier attempt
/// committed this block, which counts as success.
pub async fn upload_block(storage: &Storage, block: &EncodedBlock) -> Result<(), StorageError> {
    let store = storage.object_store();
    let (tenant, id) = (&block.meta.tenant, block.meta.block_id);
    let (data_path, bloom_path) = (layout::data_path(tenant, id), layout::bloom_path(tenant, id));
    futures::try_join!(
        upload(&store, &data_path, block.data.clone()),
        upload(&store, &bloom_path, block.bloom.clone())
    )?;
    let commit = PutOptions { mode: PutMode::Create, ..Default::default() };
    match store.put_opts(&layout::meta_path(tenant, id), PutPayload::from(block.meta.to_json()), commit).await {
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
    let mut upload = store.put_multipart(path).await?;
    let mut parts = Vec::new();
    for chunk in bytes.chunks(MULTIPART_PART_BYTES) {
        parts.push(upload.put_part(PutPayload::from_bytes(bytes.slice_ref(chunk))));
    }
    let sent = futures::future::try_join_all(parts).await;
    match sent {
        Ok(_) => {
            upload.complete().await?;
            Ok(())
        }
        Err(error) => {
            // Best effort: an abandoned upload is invisible to readers either way.
            let _ = upload.abort().await;
            Err(error.into())
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
