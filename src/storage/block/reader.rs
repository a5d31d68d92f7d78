//! Reading a block: the bloom filter, the footer (with page index) once per block, then a trace by ID
//! (bloom → ID range → row-group statistics → page index → row filter) or all rows with a projection.
//!
//! A lookup is planned entirely from in-memory metadata, then fetches only the pages that may hold the
//! trace in every projected column, in one batch of coalesced range reads.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::file_reader::BlockFileReader;
pub use super::file_reader::ReadTally;
use arrow::datatypes::Schema;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::SchemaDescriptor;

use super::meta::readable_format_version;
use super::writer::PARQUET_FORMAT_VERSION_KEY;
use super::{BlockMeta, FORMAT_VERSION, TraceBloom};
use crate::ids::TraceId;
use crate::spans::schema::span_schema;
use crate::storage::{Storage, StorageError, layout};

/// Bytes read from the end of the file in the first footer request; big enough that the footer and the
/// page index of a typical block arrive in one or two requests.
const FOOTER_PREFETCH_BYTES: usize = 512 * 1024;

/// Position of `trace_id` among the Parquet leaf columns (it is the first field of the span schema).
const TRACE_ID_LEAF: usize = 0;

/// The decoded Parquet footer and page index of one block. Immutable blocks make it safe to cache.
#[derive(Clone, Debug)]
pub struct BlockFooter {
    arrow: ArrowReaderMetadata,
    /// The top-level columns of the span schema of this build, which every read returns: all of the
    /// file's except those an older format stored and this one derives (version 1's `end_time`).
    span_columns: ProjectionMask,
}

impl BlockFooter {
    fn new(arrow: ArrowReaderMetadata) -> Self {
        let span_columns = span_columns(arrow.parquet_schema(), arrow.schema());
        Self { arrow, span_columns }
    }

    /// The Parquet metadata, for statistics and tests.
    pub fn parquet(&self) -> &Arc<ParquetMetaData> {
        self.arrow.metadata()
    }

    /// Approximate memory held, for cache budgets.
    pub fn memory_size(&self) -> usize {
        self.arrow.metadata().memory_size()
    }
}

/// The columns of a block file that make up this build's span schema, in its order: every column but
/// those an older format stored and this one derives (format version 1's `end_time`). Reading a block
/// through this projection gives rows of [`span_schema`] whatever version wrote it.
pub fn span_columns(parquet: &SchemaDescriptor, arrow: &Schema) -> ProjectionMask {
    let current = span_schema();
    let kept = arrow
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| current.field_with_name(field.name()).is_ok())
        .map(|(index, _)| index);
    ProjectionMask::roots(parquet, kept)
}

fn reader(storage: &Storage, meta: &BlockMeta) -> BlockFileReader {
    let path = layout::data_path(&meta.tenant, meta.block_id);
    BlockFileReader::new(storage.object_store(), path, meta.data_bytes, FOOTER_PREFETCH_BYTES)
}

/// Fetches and parses a block's bloom filter.
pub async fn load_bloom(storage: &Storage, meta: &BlockMeta) -> Result<TraceBloom, StorageError> {
    let path = layout::bloom_path(&meta.tenant, meta.block_id);
    let bytes = storage.object_store().get(&path).await?.bytes().await?;
    TraceBloom::from_bytes(bytes.to_vec())
        .map_err(|source| StorageError::InvalidBloom { block: meta.block_id.to_string(), source })
}

/// Fetches and parses a block's footer and page index, refusing a file of another format version.
pub async fn load_footer(storage: &Storage, meta: &BlockMeta) -> Result<BlockFooter, StorageError> {
    load_footer_tallied(storage, meta, Arc::default()).await
}

/// [`load_footer`], adding the reads it makes to `tally`.
pub async fn load_footer_tallied(
    storage: &Storage,
    meta: &BlockMeta,
    tally: Arc<ReadTally>,
) -> Result<BlockFooter, StorageError> {
    let mut reader = reader(storage, meta).with_tally(tally);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let arrow = ArrowReaderMetadata::load_async(&mut reader, options).await?;
    let version = arrow
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|pairs| pairs.iter().find(|kv| kv.key == PARQUET_FORMAT_VERSION_KEY))
        .and_then(|kv| kv.value.as_deref())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if !readable_format_version(version) {
        return Err(StorageError::UnsupportedFormatVersion {
            block: meta.block_id.to_string(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(BlockFooter::new(arrow))
}

/// The rows of one trace in a block. The caller has usually checked the bloom filter already; this
/// function still checks the ID range and statistics, so it is correct (just slower) without it.
pub async fn find_trace(
    storage: &Storage,
    meta: &BlockMeta,
    footer: &BlockFooter,
    trace_id: &TraceId,
) -> Result<Vec<RecordBatch>, StorageError> {
    find_traces_tallied(storage, meta, footer, std::slice::from_ref(trace_id), Arc::default()).await
}

/// The rows of several traces in a block, in one pass: the pages that may hold any of them are read
/// and decoded once, where one lookup per trace would decode a page shared by several traces once per
/// trace (a search fetching its 20–60 candidates from the newest block, an SQL `IN` list).
pub async fn find_traces_tallied(
    storage: &Storage,
    meta: &BlockMeta,
    footer: &BlockFooter,
    trace_ids: &[TraceId],
    tally: Arc<ReadTally>,
) -> Result<Vec<RecordBatch>, StorageError> {
    let mut wanted: Vec<[u8; 16]> =
        trace_ids.iter().filter(|id| meta.may_contain_trace_id(id)).map(|id| *id.as_bytes()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let wanted = Wanted(wanted);
    let Some(plan) = plan_lookup(footer.parquet(), &wanted) else {
        return Ok(Vec::new());
    };
    let reader = reader(storage, meta).with_tally(tally);
    let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer.arrow.clone())
        .with_projection(footer.span_columns.clone())
        .with_row_groups(plan.row_groups)
        .with_row_selection(plan.selection)
        .with_row_filter(trace_id_filter(footer, wanted))
        .build()?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(batches.into_iter().filter(|batch| batch.num_rows() > 0).collect())
}

/// The trace IDs a lookup reads, sorted and distinct, so that "is one of them in `[min, max]`" and "is
/// this one of them" are binary searches.
struct Wanted(Vec<[u8; 16]>);

impl Wanted {
    /// Whether some wanted ID lies in `[min, max]` (byte order, as Parquet's statistics compare).
    fn any_between(&self, min: &[u8], max: &[u8]) -> bool {
        let first_not_below = self.0.partition_point(|id| id.as_slice() < min);
        self.0.get(first_not_below).is_some_and(|id| id.as_slice() <= max)
    }

    fn contains(&self, id: &[u8]) -> bool {
        self.0.binary_search_by(|wanted| wanted.as_slice().cmp(id)).is_ok()
    }
}

struct LookupPlan {
    row_groups: Vec<usize>,
    selection: RowSelection,
}

/// Picks the row groups whose statistics admit a wanted ID, and inside them the pages whose page-index
/// min/max admit one. `None` when nothing can match.
fn plan_lookup(parquet: &ParquetMetaData, wanted: &Wanted) -> Option<LookupPlan> {
    if wanted.0.is_empty() {
        return None;
    }
    let mut row_groups = Vec::new();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut rows_before = 0usize;
    for (index, row_group) in parquet.row_groups().iter().enumerate() {
        if !statistics_admit(row_group.column(TRACE_ID_LEAF).statistics(), wanted) {
            continue;
        }
        let group_rows = row_group.num_rows() as usize;
        let pages = page_ranges_admitting(parquet, index, group_rows, wanted);
        if pages.is_empty() {
            continue;
        }
        row_groups.push(index);
        ranges.extend(pages.into_iter().map(|r| r.start + rows_before..r.end + rows_before));
        rows_before += group_rows;
    }
    if row_groups.is_empty() {
        return None;
    }
    Some(LookupPlan { row_groups, selection: RowSelection::from_consecutive_ranges(ranges.into_iter(), rows_before) })
}

fn statistics_admit(statistics: Option<&Statistics>, wanted: &Wanted) -> bool {
    match statistics {
        Some(Statistics::FixedLenByteArray(stats)) => match (stats.min_bytes_opt(), stats.max_bytes_opt()) {
            (Some(min), Some(max)) => wanted.any_between(min, max),
            _ => true,
        },
        _ => true,
    }
}

/// Row ranges (relative to the row group) of the `trace_id` pages whose min/max admit a wanted ID.
/// Without a page index every row of the group is a candidate.
fn page_ranges_admitting(
    parquet: &ParquetMetaData,
    row_group: usize,
    group_rows: usize,
    wanted: &Wanted,
) -> Vec<Range<usize>> {
    let column_index = parquet.column_index().and_then(|index| index.get(row_group)?.get(TRACE_ID_LEAF));
    let offset_index = parquet.offset_index().and_then(|index| index.get(row_group)?.get(TRACE_ID_LEAF));
    let (Some(ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(pages)), Some(offsets)) = (column_index, offset_index) else {
        return std::iter::once(0..group_rows).collect();
    };
    let locations = offsets.page_locations();
    (0..locations.len())
        .filter(|&page| match (pages.min_value(page), pages.max_value(page)) {
            (Some(min), Some(max)) => wanted.any_between(min, max),
            _ => true,
        })
        .map(|page| {
            let start = locations[page].first_row_index as usize;
            let end = locations.get(page + 1).map_or(group_rows, |next| next.first_row_index as usize);
            start..end
        })
        .collect()
}

/// Keeps only the rows of the wanted traces. The reader decodes `trace_id` for the selected pages first
/// and then decodes the other columns for the matching rows only, instead of whole pages of every column.
fn trace_id_filter(footer: &BlockFooter, wanted: Wanted) -> RowFilter {
    let mask = ProjectionMask::leaves(footer.arrow.parquet_schema(), [TRACE_ID_LEAF]);
    let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let ids = batch.column(0).as_fixed_size_binary();
        Ok((0..ids.len()).map(|row| Some(wanted.contains(ids.value(row)))).collect::<BooleanArray>())
    });
    RowFilter::new(vec![Box::new(predicate)])
}

/// Every row of a block, restricted to the named top-level columns (`None` = all), e.g. for compaction
/// or a full scan.
pub async fn read_all(
    storage: &Storage,
    meta: &BlockMeta,
    footer: &BlockFooter,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, StorageError> {
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader(storage, meta), footer.arrow.clone())
        .with_projection(footer.span_columns.clone());
    if let Some(columns) = columns {
        let schema = footer.arrow.schema();
        let indices = columns.iter().map(|name| schema.index_of(name)).collect::<Result<Vec<_>, _>>()?;
        builder = builder.with_projection(ProjectionMask::roots(footer.arrow.parquet_schema(), indices));
    }
    Ok(builder.build()?.try_collect().await?)
}

/// Every row of a block that is still in memory (encoded but not yet uploaded), so spans waiting for
/// their upload stay visible to queries.
pub fn read_encoded(data: bytes::Bytes) -> Result<Vec<RecordBatch>, StorageError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}
