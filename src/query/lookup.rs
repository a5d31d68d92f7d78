//! Trace by ID: the ingester's recent spans, plus every block that may hold the trace by time range,
//! ID range and bloom filter (all decided in memory), read concurrently; duplicates removed.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;
use futures::StreamExt;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use super::{CatalogBlock, CatalogView, Querier, QueryError};
use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::{decode_resource_spans, distinct_spans};
use crate::storage::block::{ReadTally, find_traces_tallied};
use crate::storage::{StorageError, read_block_meta};
use crate::telemetry;

/// Blocks read at once for one lookup: enough to hide S3 latency when a trace spans several blocks.
const BLOCK_READ_CONCURRENCY: usize = 8;

/// The span start times a lookup searches, inclusive, in unix nanoseconds. Narrows the blocks only:
/// a block whose spans all lie outside it is skipped; the ingester's recent spans are always searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    start_unix_nano: u64,
    end_unix_nano: u64,
}

impl Default for TimeWindow {
    fn default() -> Self {
        Self { start_unix_nano: 0, end_unix_nano: u64::MAX }
    }
}

impl TimeWindow {
    /// From Tempo's `start` and `end` parameters (unix seconds, either optional); `end` covers its
    /// whole second. Refuses `end` before `start`.
    pub fn from_unix_seconds(start: Option<u64>, end: Option<u64>) -> Result<Self, QueryError> {
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            return Err(QueryError::BadRequest(format!("end ({end}) is before start ({start})")));
        }
        Ok(Self {
            start_unix_nano: start.map_or(0, |s| s.saturating_mul(1_000_000_000)),
            end_unix_nano: end
                .map_or(u64::MAX, |e| e.saturating_add(1).saturating_mul(1_000_000_000).saturating_sub(1)),
        })
    }

    /// From unix nanoseconds, either optional (Jaeger's microseconds and RFC 3339 times arrive this way).
    pub fn from_unix_nanos(start: Option<u64>, end: Option<u64>) -> Self {
        Self { start_unix_nano: start.unwrap_or(0), end_unix_nano: end.unwrap_or(u64::MAX) }
    }

    fn admits(&self, block: &CatalogBlock) -> bool {
        block.meta.overlaps_time(self.start_unix_nano, self.end_unix_nano)
    }
}

/// What a lookup cost, for the v2 response's metrics and for benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupCost {
    /// Blocks known for the tenant when the lookup started.
    pub blocks_known: usize,
    /// Blocks whose bloom filter was asked (time and ID range passed).
    pub bloom_checks: usize,
    /// Blocks read because their bloom said "maybe".
    pub blocks_read: usize,
    /// Blocks read that held none of the trace.
    pub bloom_false_positives: usize,
    /// Read calls to the object store (footer and pages) and bytes they returned.
    pub backend_reads: u64,
    pub backend_bytes: u64,
    /// Spans found in the ingester (before duplicates were removed).
    pub recent_spans: usize,
}

/// A trace as found: OTLP resource groups plus the cost of finding it.
#[derive(Clone, Debug, Default)]
pub struct TraceLookup {
    pub resource_spans: Vec<ResourceSpans>,
    pub span_count: usize,
    pub cost: LookupCost,
    /// Why some blocks could not be read (the object store failed): the spans above may be incomplete.
    /// Tempo's v2 answer carries this as `status: PARTIAL`.
    pub incomplete: Option<String>,
    /// The trace passed `max_trace_bytes` and only a part of it was read (`incomplete` says so too).
    pub truncated: bool,
    /// Every block was read and only ingesters of other processes did not answer (`incomplete` says
    /// which): the spans are every stored one, and an answer without a partial status (v1) can still
    /// carry them with a warning.
    pub only_recent_missing: bool,
}

impl TraceLookup {
    /// True when no span of the trace was found anywhere.
    pub fn is_empty(&self) -> bool {
        self.span_count == 0
    }
}

/// What could not be read, as (the reply's words, the log's): the reply says what failed, not where.
fn failure(what: impl std::fmt::Display, error: &QueryError) -> (String, String) {
    (format!("{what}: {}", error.public_message()), format!("{what}: {error}"))
}

/// One block's part of a lookup: its rows, `None` when it vanished from the store, or why it failed.
type BlockOutcome = Result<Option<Vec<RecordBatch>>, (BlockId, QueryError)>;

impl Querier {
    /// Every span of a trace the tenant stored, each (trace ID, span ID) once. The ingester is read
    /// before the catalogue: a block committed in between is then in the catalogue already (the
    /// ingester announces blocks before dropping their spans), so a span can be found twice (and is
    /// deduplicated) but never missed.
    pub async fn find_trace(
        &self,
        tenant: &TenantId,
        trace_id: &TraceId,
        window: TimeWindow,
    ) -> Result<TraceLookup, QueryError> {
        let limited = |reason: &'static str| {
            metrics::counter!(telemetry::TRACE_LOOKUPS_LIMITED, "reason" => reason).increment(1);
        };
        let Ok(_permit) = self.lookups.clone().try_acquire_owned() else {
            limited("busy");
            let running = self.options.max_concurrent_trace_lookups;
            return Err(QueryError::Busy(format!("{running} trace lookups are running already; retry shortly")));
        };
        let timeout = self.options.trace_lookup_timeout;
        let lookup = tokio::time::timeout(timeout, self.find_trace_within_limits(tenant, trace_id, window)).await;
        let lookup = lookup.map_err(|_| {
            limited("timeout");
            QueryError::Timeout(timeout)
        })??;
        if lookup.truncated {
            limited("too_large");
        }
        Ok(lookup)
    }

    /// [`find_trace`](Self::find_trace) once admitted: reads until the trace's rows pass
    /// `max_trace_bytes`, then stops.
    async fn find_trace_within_limits(
        &self,
        tenant: &TenantId,
        trace_id: &TraceId,
        window: TimeWindow,
    ) -> Result<TraceLookup, QueryError> {
        let started = Instant::now();
        let max_bytes = usize::try_from(self.options.max_trace_bytes).unwrap_or(usize::MAX);
        let mut batches: Vec<RecordBatch> = match &self.ingester {
            Some(ingester) => ingester.recent_trace(tenant, trace_id)?,
            None => Vec::new(),
        };
        let mut cost =
            LookupCost { recent_spans: batches.iter().map(RecordBatch::num_rows).sum(), ..Default::default() };
        let mut bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        let mut failures: Vec<(String, String)> = Vec::new();
        let mut blocks = match self.catalog.blocks(tenant).await {
            Ok(blocks) => blocks,
            Err(error) => {
                failures.push(failure("cannot list the tenant's blocks", &error));
                Default::default()
            }
        };
        // Other processes' ingesters: asked with the blocks of one catalogue view, whose known blocks
        // their copies are dropped for (read from the store instead), so each span comes once.
        let mut peer_failures: Vec<String> = Vec::new();
        if self.peers.is_some() {
            let view = self.catalog.view(tenant).unwrap_or_else(|| CatalogView {
                all: blocks.clone(),
                visible: blocks.clone(),
                listed: true,
            });
            blocks = view.visible.clone();
            let filter = crate::ingest::RecentFilter { traces: Some(vec![*trace_id]), ..Default::default() };
            let (rows, failed) = self.peer_rows(tenant, &filter, &view).await;
            cost.recent_spans += rows.iter().map(RecordBatch::num_rows).sum::<usize>();
            bytes += rows.iter().map(RecordBatch::get_array_memory_size).sum::<usize>();
            batches.extend(rows);
            peer_failures.extend(failed.iter().map(ToString::to_string));
        }
        cost.blocks_known = blocks.len();
        let tally = Arc::new(ReadTally::default());
        let misses = AtomicU64::new(0);
        let mut read: HashSet<BlockId> = HashSet::new();
        // At most two rounds: a block that vanished since the catalogue saw it was replaced by compaction
        // (or expired); its spans may be in a block the catalogue does not know yet, so the catalogue is
        // refreshed and the blocks it adds are read too. Never a silent subset.
        for round in 0..2 {
            let candidates: Vec<Arc<CatalogBlock>> = blocks
                .iter()
                .filter(|block| !read.contains(&block.meta.block_id))
                .filter(|block| window.admits(block) && block.meta.may_contain_trace_id(trace_id))
                .filter(|block| {
                    cost.bloom_checks += 1;
                    block.may_hold_trace(trace_id)
                })
                .cloned()
                .collect();
            cost.blocks_read += candidates.len();
            read.extend(candidates.iter().map(|block| block.meta.block_id));
            let mut found = futures::stream::iter(candidates)
                .map(|block| {
                    let (tally, misses) = (tally.clone(), &misses);
                    async move {
                        let rows = self
                            .read_block(&block, std::slice::from_ref(trace_id), tally)
                            .await
                            .map_err(|e| (block.meta.block_id, e))?;
                        if rows.as_ref().is_some_and(Vec::is_empty) {
                            misses.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(rows)
                    }
                })
                .buffered(BLOCK_READ_CONCURRENCY);
            let mut vanished = 0;
            while bytes <= max_bytes {
                let Some(outcome): Option<BlockOutcome> = found.next().await else { break };
                match outcome {
                    Ok(Some(rows)) => {
                        bytes += rows.iter().map(RecordBatch::get_array_memory_size).sum::<usize>();
                        batches.extend(rows);
                    }
                    Ok(None) => vanished += 1,
                    Err((block, error)) => failures.push(failure(format!("block {block}"), &error)),
                }
            }
            if vanished == 0 || round == 1 || bytes > max_bytes {
                break;
            }
            blocks = match self.catalog.refresh(tenant).await {
                Ok(blocks) => blocks,
                Err(error) => {
                    failures.push(failure("a block vanished and the tenant's blocks cannot be listed again", &error));
                    break;
                }
            };
        }
        cost.bloom_false_positives = misses.into_inner() as usize;
        (cost.backend_reads, cost.backend_bytes) = tally.totals();
        metrics::counter!(telemetry::BLOOM_CHECKS).increment(cost.bloom_checks as u64);
        metrics::counter!(telemetry::BLOOM_FALSE_POSITIVES).increment(cost.bloom_false_positives as u64);

        // Past the limit the answer is what was read (the blocks not read yet are left alone), as Tempo
        // answers a trace over its `max_bytes_per_trace`.
        let truncated = bytes > max_bytes;
        let distinct = distinct_spans(&batches)?;
        let span_count = distinct.iter().map(RecordBatch::num_rows).sum();
        let resource_spans = decode_resource_spans(&distinct)?;
        metrics::histogram!(telemetry::QUERY_SECONDS, "endpoint" => "trace_by_id")
            .record(started.elapsed().as_secs_f64());
        let unread = (!failures.is_empty()).then(|| {
            let (public, detail): (Vec<String>, Vec<String>) = failures.into_iter().unzip();
            tracing::warn!(tenant = %tenant, trace = %trace_id, failures = ?detail, "trace lookup incomplete");
            format!("{} of the blocks that may hold the trace could not be read: {}", public.len(), public.join("; "))
        });
        let too_large = truncated.then(|| {
            tracing::warn!(tenant = %tenant, trace = %trace_id, bytes, max_bytes, "trace lookup stopped at its size limit");
            format!("the trace passes the {max_bytes}-byte limit of one lookup (max_trace_bytes): a part of it is returned")
        });
        let unasked = (!peer_failures.is_empty()).then(|| {
            format!(
                "the recent spans of {} ingester(s) could not be read: {}",
                peer_failures.len(),
                peer_failures.join("; ")
            )
        });
        let only_recent_missing = unasked.is_some() && too_large.is_none() && unread.is_none();
        let reasons: Vec<String> = [too_large, unread, unasked].into_iter().flatten().collect();
        let incomplete = (!reasons.is_empty()).then(|| reasons.join("; "));
        Ok(TraceLookup { resource_spans, span_count, cost, incomplete, truncated, only_recent_missing })
    }

    /// The rows of `trace_ids` in one catalogued block, read as [`find_trace`](Self::find_trace) reads
    /// one trace (footer cache, row groups, page index, row filter) but in one pass for all of them;
    /// none when the block has been deleted since the catalogue saw it. SQL point queries and searches
    /// read through here so they cost what lookups cost, and a page shared by several of the traces is
    /// decoded once.
    pub async fn traces_rows_in_block(
        &self,
        block: &CatalogBlock,
        trace_ids: &[TraceId],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let rows = self.read_block(block, trace_ids, Arc::default()).await?;
        Ok(rows.unwrap_or_default())
    }

    /// The traces' rows in one block; `None` when the block has been deleted since the catalogue saw it
    /// (the catalogue then forgets it).
    async fn read_block(
        &self,
        block: &CatalogBlock,
        trace_ids: &[TraceId],
        tally: Arc<ReadTally>,
    ) -> Result<Option<Vec<RecordBatch>>, QueryError> {
        let outcome = async {
            let footer = self.footers.get(&self.storage, &block.meta, &tally).await?;
            find_traces_tallied(&self.storage, &block.meta, &footer, trace_ids, tally).await
        }
        .await;
        match outcome {
            Ok(rows) => Ok(Some(rows)),
            Err(error) if is_not_found(&error) => {
                // Deleted (its metadata goes first), or a committed block missing a file: only the first
                // may be passed over.
                let (tenant, id) = (&block.meta.tenant, block.meta.block_id);
                match read_block_meta(&self.storage, tenant, id).await {
                    Err(StorageError::BlockNotFound(_)) => {
                        tracing::info!(block = %id, "block disappeared from the store; forgetting it");
                        self.catalog.remove(tenant, id);
                        self.footers.remove(tenant, id);
                        Ok(None)
                    }
                    _ => {
                        tracing::error!(%tenant, block = %id, %error, "a committed block is missing a file");
                        Err(error.into())
                    }
                }
            }
            Err(error) => Err(error.into()),
        }
    }
}

fn is_not_found(error: &StorageError) -> bool {
    match error {
        StorageError::ObjectStore(object_store::Error::NotFound { .. }) => true,
        StorageError::Parquet(parquet::errors::ParquetError::External(inner)) => {
            matches!(inner.downcast_ref::<object_store::Error>(), Some(object_store::Error::NotFound { .. }))
        }
        _ => false,
    }
}
