//! The ingester: takes decoded OTLP requests, makes their spans durable in the WAL, buffers them per
//! tenant, cuts blocks by size or age and uploads them in the background; answers queries about the
//! spans it still holds, in its own process and, narrowed by a filter, for queriers of others
//! (`peer.rs`), keeping each committed block's spans for `handoff_retention` so those see them until
//! they list the block.
//!
//! Owns the buffers, the WAL handle and the flush tasks. Calls `wal`, `spans` and `storage`; the
//! receivers (`api`) and the query side call it, never the other way round.

mod buffer;
mod committed;
mod flush;
pub mod limits;
mod peer;
mod quarantine;
mod refill;
mod replay;
#[doc(hidden)]
pub mod testing;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arrow::array::RecordBatch;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::ids::{BlockId, TenantId, TraceId};
use crate::spans::{
    ProtobufError, SpanFormatError, SpanRejection, encode_resource_spans, protobuf_to_batch, rows_of_trace,
    validate_span,
};
use crate::storage::{BlockMeta, BlockWriteOptions, EncodedBlock, Storage, StorageError, TraceBloom, read_encoded};
use crate::telemetry;
use crate::wal::{Record, Wal, WalError, WalOptions};
use buffer::{Buffers, PendingStage, SpanKey};
pub use peer::{HeldRows, RecentFilter};

/// Why a push or a flush did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("the ingester holds {used} bytes, at its limit of {limit} bytes; retry later")]
    MemoryFull { used: usize, limit: usize },
    #[error(
        "the WAL holds {used} bytes, at its limit of {limit} bytes (blocks are not reaching the object store); retry later"
    )]
    WalFull { used: u64, limit: u64 },
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    SpanFormat(#[from] SpanFormatError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("WAL record {seq} does not hold a valid OTLP request: {source}")]
    BadWalRecord { seq: u64, source: ProtobufError },
    #[error("the ingester is shutting down")]
    ShuttingDown,
    /// A request for an ingester reached a process that runs none (`--target querier`).
    #[error("this process does not ingest spans (its target is not ingester or all)")]
    NotAnIngester,
    /// Spans that could not be replayed or uploaded could not be kept on disk either.
    #[error("cannot keep spans in the quarantine folder: {0}")]
    Quarantine(#[source] std::io::Error),
}

impl IngestError {
    /// What failed, for a reply to a client (no local paths or object names; the log has them).
    pub fn public_message(&self) -> String {
        match self {
            IngestError::Wal(error) => error.public_message(),
            IngestError::Storage(error) => error.public_message(),
            other => other.to_string(),
        }
    }

    /// True for the limits a client should back off from and retry (HTTP 429, gRPC RESOURCE_EXHAUSTED).
    pub fn is_backpressure(&self) -> bool {
        matches!(self, IngestError::MemoryFull { .. } | IngestError::WalFull { .. })
    }
}

/// A request's rows after [`Ingester::screen`]: what goes into the WAL and the buffer.
struct Screened {
    batch: RecordBatch,
    /// The span key of each row of `batch`.
    keys: Vec<SpanKey>,
    payload: Bytes,
    /// The rows' bytes by trace, for `max_bytes_per_trace`.
    trace_bytes: HashMap<TraceId, usize>,
}

/// Settings of the ingester; `config` fills them in with their defaults.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Folder of the WAL segments.
    pub wal_dir: PathBuf,
    pub wal: WalOptions,
    /// A tenant's open buffer is cut into a block once it holds this many bytes (Arrow, in memory).
    pub max_block_bytes: usize,
    /// ... or once its oldest span has been buffered this long.
    pub max_block_age: Duration,
    /// Past this many bytes held (open buffers and blocks not yet uploaded), ingest answers 429.
    pub max_buffer_bytes: usize,
    /// Past this many bytes of WAL on disk (blocks not reaching the object store), ingest answers 429.
    pub max_wal_bytes: u64,
    /// Longest single upload attempt before it counts as failed and is retried.
    pub upload_timeout: Duration,
    /// Cut and upload every buffer on shutdown (bounded by `shutdown_flush_timeout`); the WAL keeps
    /// the spans either way.
    pub flush_on_shutdown: bool,
    pub shutdown_flush_timeout: Duration,
    pub block: BlockWriteOptions,
    /// Attribute and per-trace size limits, checked before the WAL append.
    pub limits: limits::SpanLimits,
    /// How long the span keys of committed blocks are remembered, so a client resending a request
    /// whose acknowledgement it lost is not stored twice (at least half of this; zero: off).
    pub resend_window: Duration,
    /// Memory those keys may take (about 50 bytes each); past it the oldest are forgotten sooner.
    pub resend_window_bytes: usize,
    /// How long a committed block's spans stay readable here (`held_for_peer`) for queriers in other
    /// processes that have not listed the block yet; zero when the only querier is in this process.
    pub handoff_retention: Duration,
}

impl IngestOptions {
    /// The defaults, for a WAL in `wal_dir`: sized for a 2-core machine with a few GiB.
    pub fn new(wal_dir: PathBuf) -> Self {
        Self {
            wal_dir,
            wal: WalOptions::default(),
            max_block_bytes: 64 * 1024 * 1024,
            max_block_age: Duration::from_secs(300),
            max_buffer_bytes: 512 * 1024 * 1024,
            max_wal_bytes: 4 * 1024 * 1024 * 1024,
            upload_timeout: Duration::from_secs(120),
            flush_on_shutdown: true,
            shutdown_flush_timeout: Duration::from_secs(30),
            block: BlockWriteOptions::default(),
            limits: limits::SpanLimits::default(),
            resend_window: Duration::from_secs(600),
            resend_window_bytes: 128 * 1024 * 1024,
            handoff_retention: Duration::ZERO,
        }
    }
}

/// The spans an ingester still holds for a tenant: rows in memory, and blocks encoded but not yet
/// uploaded (decoded by whoever needs their rows: [`Held::decoded`]).
#[derive(Debug, Default)]
pub struct Held {
    pub batches: Vec<RecordBatch>,
    pub pending: Vec<Arc<EncodedBlock>>,
}

impl Held {
    /// The rows in memory and those of the pending blocks `decode` picks, decoded.
    pub fn decoded(self, decode: impl Fn(&EncodedBlock) -> bool) -> Result<Vec<RecordBatch>, IngestError> {
        let mut batches = self.batches;
        for block in self.pending.iter().filter(|block| decode(block)) {
            batches.extend(read_encoded(block.data.clone())?);
        }
        Ok(batches)
    }
}

/// What happened to the spans of one request.
#[derive(Debug, Default, PartialEq)]
pub struct PushOutcome {
    /// Spans now durable in the WAL.
    pub accepted: usize,
    /// Spans refused for invalid IDs, with their reasons (OTLP partial success).
    pub rejected: Vec<SpanRejection>,
}

/// Called with the stored metadata and bloom of every block this ingester commits, before its spans leave
/// the buffers (the querier's catalogue listens, so a span is always visible in one place or the other).
/// For a block committed before a restart these are read back from the store: the re-encoding the WAL
/// replay made of it may differ byte for byte from what the store holds.
pub type CommitListener = Box<dyn Fn(&BlockMeta, &TraceBloom) + Send + Sync>;

/// A handle to the running ingester; cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    inner: Arc<Inner>,
}

struct Inner {
    options: IngestOptions,
    wal: Wal,
    storage: Storage,
    buffers: Mutex<Buffers>,
    wake_flusher: Notify,
    /// Forced cuts asked for (by `/flush` and shutdown) and forced passes the flusher has completed: the
    /// flusher, not the asking request, does the work, so a caller that goes away leaves no block half
    /// prepared.
    forced_cuts_requested: std::sync::atomic::AtomicU64,
    forced_cuts_done: watch::Sender<u64>,
    /// Bumped on every commit (and quarantine), so `/flush` can wait for its blocks.
    commits: watch::Sender<u64>,
    /// Blocks committed by uploads: a block that keeps failing while this grows is the block's problem,
    /// not the store's.
    uploads_committed: std::sync::atomic::AtomicU64,
    uploads: mpsc::UnboundedSender<(TenantId, crate::ids::BlockId)>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    listeners: Mutex<Vec<CommitListener>>,
    quarantine: quarantine::Quarantine,
}

impl Ingester {
    /// Opens the WAL, replays it (spans of blocks already committed are skipped; cut blocks not yet
    /// committed are re-encoded under their recorded IDs), and starts the flush tasks.
    pub async fn start(options: IngestOptions, storage: Storage) -> Result<Self, IngestError> {
        // The active segment is never removed, so segments must be well below the WAL limit for
        // committed spans to free space before the limit is reached.
        let segment_bytes = options.wal.segment_bytes.min((options.max_wal_bytes / 8).max(64 * 1024));
        let wal = Wal::open(&options.wal_dir, WalOptions { segment_bytes })?;
        testing::wait_if_held(&options.wal_dir, testing::Point::Replay).await;
        let quarantine = quarantine::Quarantine::open(&options.wal_dir);
        let mut replayed = replay::replay(&wal, &options.block, &quarantine).await?;
        replayed.committed = committed::CommittedKeys::new(options.resend_window, options.resend_window_bytes);
        refill::refill(&storage, &mut replayed.committed, options.resend_window).await;
        let (uploads, upload_queue) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            options,
            wal,
            storage,
            buffers: Mutex::new(replayed),
            wake_flusher: Notify::new(),
            forced_cuts_requested: std::sync::atomic::AtomicU64::new(0),
            forced_cuts_done: watch::channel(0).0,
            commits: watch::channel(0).0,
            uploads_committed: std::sync::atomic::AtomicU64::new(0),
            uploads,
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            quarantine,
        });
        let ingester = Self { inner };
        ingester.inner.release_wal_segments();
        for (tenant, block) in ingester.inner.lock().pending_blocks() {
            let _ = ingester.inner.uploads.send((tenant, block));
        }
        let flusher = tokio::spawn(flush::run_flusher(ingester.inner.clone()));
        let uploader = tokio::spawn(flush::run_uploader(ingester.inner.clone(), upload_queue));
        ingester.inner.tasks.lock().map_err(|_| IngestError::ShuttingDown)?.extend([flusher, uploader]);
        Ok(ingester)
    }

    /// Registers a function called with each block this ingester commits.
    pub fn on_commit(&self, listener: CommitListener) {
        if let Ok(mut listeners) = self.inner.listeners.lock() {
            listeners.push(listener);
        }
    }

    /// Refuses (buffer or WAL full) before a receiver spends CPU decoding a request: under overload the
    /// decoding of requests that are then refused took the CPU that cutting blocks needs, and the spans
    /// acknowledged fell to half of capacity. [`Ingester::push`] checks again.
    pub fn check_capacity(&self) -> Result<(), IngestError> {
        self.inner.check_capacity()
    }

    /// Makes the valid spans of a request durable and buffers them.
    pub async fn push(&self, tenant: &TenantId, spans: NewSpans) -> Result<PushOutcome, IngestError> {
        self.inner.check_capacity()?;
        if *self.inner.stop.borrow() {
            return Err(IngestError::ShuttingDown);
        }
        let NewSpans { batch, mut rejected, wal_payload: payload } = spans;
        metrics::counter!(telemetry::SPANS_RECEIVED, "tenant" => tenant.to_string())
            .increment((batch.num_rows() + rejected.len()) as u64);
        let Screened { batch, keys, payload, trace_bytes } = self.screen(tenant, batch, payload, &mut rejected)?;
        let accepted = batch.num_rows();
        for rejection in &rejected {
            metrics::counter!(telemetry::SPANS_REJECTED, "tenant" => tenant.to_string(), "reason" => rejection.reason())
                .increment(1);
        }
        if accepted == 0 {
            return Ok(PushOutcome { accepted, rejected });
        }
        // The append and the buffer's taking of the spans run as a task of their own: a request cancelled
        // while it waits (its client went away) cannot leave a record in the WAL that the buffer never
        // took, which a restart would then replay as spans the running server never had.
        let (inner, owner) = (self.inner.clone(), tenant.clone());
        let appended = tokio::spawn(async move {
            let in_flight = AppendInFlight::register(&inner);
            let position = inner.wal.append(Record::Spans { tenant: owner.clone(), payload }).await?;
            testing::wait_if_held(&inner.options.wal_dir, testing::Point::Registration).await;
            let mut buffers = inner.lock();
            in_flight.finish(&mut buffers);
            buffers.add_keyed(&owner, batch, keys, position);
            buffers.count_trace_bytes(&owner, trace_bytes);
            Ok::<_, IngestError>(
                buffers.tenants.get(&owner).is_some_and(|b| b.open_bytes >= inner.options.max_block_bytes),
            )
        });
        let cut_now = appended.await.map_err(|_| IngestError::ShuttingDown)??;
        if cut_now {
            self.inner.wake_flusher.notify_one();
        }
        metrics::counter!(telemetry::SPANS_ACCEPTED, "tenant" => tenant.to_string()).increment(accepted as u64);
        Ok(PushOutcome { accepted, rejected })
    }

    /// Screens a request's rows before the WAL append. Spans over the attribute and per-trace limits are
    /// refused (added to `rejected`, reported as partial success). Spans the tenant already holds in
    /// this ingester, or committed within the resend window (a client resending a request whose
    /// acknowledgement it lost: after a `kill -9` and the replay that brought the first copy back, or
    /// after its own deadline passed while the first copy was stored) are dropped as already stored, counted in
    /// `spanlake_spans_deduplicated_total`. The batch loses both kinds of rows and the WAL payload their
    /// spans, so neither holds anything twice or anything refused. Returns the kept rows with their
    /// span keys (taken once, here, and held by the buffer) and their bytes by trace, counted once the
    /// batch is buffered. Two requests screened at the same instant are each
    /// checked against what was held before either: a trace can pass its limit by one request's worth,
    /// and two copies sent at once are both kept (compaction removes such duplicates).
    fn screen(
        &self,
        tenant: &TenantId,
        batch: RecordBatch,
        payload: Bytes,
        rejected: &mut Vec<SpanRejection>,
    ) -> Result<Screened, IngestError> {
        let limits = self.inner.options.limits;
        let measured = (!limits.is_off()).then(|| limits.measure(&batch));
        let keys = buffer::span_keys(&batch);
        let (mut verdict, duplicates) = {
            let buffers = self.inner.lock();
            let verdict = match &measured {
                Some(measured) => {
                    let held = buffers.tenants.get(tenant).map(|buffer| &buffer.trace_bytes);
                    limits.judge(measured, held.unwrap_or(&HashMap::new()))
                }
                None => limits::Verdict::default(),
            };
            let duplicates = buffers.held_rows(tenant, &keys);
            (verdict, duplicates)
        };
        if verdict.refused.is_empty() && duplicates.is_empty() {
            return Ok(Screened { batch, keys, payload, trace_bytes: verdict.kept_bytes });
        }
        limits::refuse_duplicates(&keys, &mut verdict.refused);
        let refused_rows: std::collections::HashSet<usize> = verdict.refused.iter().map(|(row, _)| *row).collect();
        let duplicates: Vec<usize> = duplicates.into_iter().filter(|row| !refused_rows.contains(row)).collect();
        if !duplicates.is_empty() {
            tracing::info!(tenant = %tenant, spans = duplicates.len(), "resent spans already held: stored once");
            metrics::counter!(telemetry::SPANS_DEDUPLICATED, "tenant" => tenant.to_string())
                .increment(duplicates.len() as u64);
        }
        let dropped: std::collections::HashSet<usize> = refused_rows.into_iter().chain(duplicates).collect();
        let dropped_keys: std::collections::HashSet<SpanKey> = dropped.iter().map(|row| keys[*row]).collect();
        let kept = limits::without_rows(&batch, dropped.iter().copied()).map_err(SpanFormatError::from)?;
        let kept_keys = keys.into_iter().enumerate().filter(|(row, _)| !dropped.contains(row)).map(|(_, key)| key);
        // The payload is the body these rows were just decoded from.
        let mut request = ExportTraceServiceRequest::decode(payload.as_ref())
            .map_err(|e| SpanFormatError::Undecodable { what: "request", source: e.into() })?;
        for resource_spans in &mut request.resource_spans {
            for scope_spans in &mut resource_spans.scope_spans {
                scope_spans
                    .spans
                    .retain(|span| !dropped_keys.contains(&buffer::span_key(&span.trace_id, &span.span_id)));
            }
        }
        if let Some((_, first)) = verdict.refused.first() {
            tracing::info!(tenant = %tenant, refused = verdict.refused.len(), %first, "spans over the size limits refused");
        }
        rejected.extend(verdict.refused.into_iter().map(|(_, why)| why));
        Ok(Screened {
            batch: kept,
            keys: kept_keys.collect(),
            payload: Bytes::from(request.encode_to_vec()),
            trace_bytes: verdict.kept_bytes,
        })
    }

    /// The spans of one trace that this ingester still holds (not yet committed in a block). Blocks
    /// waiting for upload are decoded only when their ID range and bloom filter admit the trace.
    pub fn recent_trace(&self, tenant: &TenantId, trace_id: &TraceId) -> Result<Vec<RecordBatch>, IngestError> {
        let (held, ()) = self.held_with(tenant, || (), |_, _| false)?;
        let mut found = Vec::new();
        for batch in held.decoded(|block| block.may_contain_trace(trace_id))? {
            let rows = rows_of_trace(&batch, trace_id)?;
            if rows.num_rows() > 0 {
                found.push(rows);
            }
        }
        Ok(found)
    }

    /// Every span this ingester still holds for a tenant.
    pub fn recent_batches(&self, tenant: &TenantId) -> Result<Vec<RecordBatch>, IngestError> {
        self.held_with(tenant, || (), |_, _| false).and_then(|(held, ())| held.decoded(|_| true))
    }

    /// Every span this ingester holds for a tenant and, taken under the same lock, whatever `observe`
    /// returns (the querier's block list). Pending blocks that `committed` says are already in that list
    /// are left out. A block is announced before its spans leave the buffer, and they leave under this
    /// lock, so the two together hold each span exactly once: what exact SQL answers need. Blocks waiting
    /// for upload are handed over encoded: a reader decodes those it needs.
    pub fn held_with<T>(
        &self,
        tenant: &TenantId,
        observe: impl FnOnce() -> T,
        committed: impl Fn(&T, BlockId) -> bool,
    ) -> Result<(Held, T), IngestError> {
        let buffers = self.inner.lock();
        let observed = observe();
        let Some(buffer) = buffers.tenants.get(tenant) else { return Ok((Held::default(), observed)) };
        let mut held = Held { batches: buffer.open.iter().map(|b| b.batch.clone()).collect(), pending: Vec::new() };
        for pending in buffer.pending.iter().filter(|p| !committed(&observed, p.block)) {
            match &pending.stage {
                PendingStage::Cut(rows) => held.batches.extend(rows.iter().cloned()),
                PendingStage::Encoded(block) => held.pending.push(block.clone()),
            }
        }
        Ok((held, observed))
    }

    /// Cuts every buffer into blocks and returns once those blocks (and any cut earlier) are committed.
    pub async fn flush(&self) -> Result<(), IngestError> {
        let mut commits = self.inner.commits.subscribe();
        let ticket = self.inner.forced_cuts_requested.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.inner.wake_flusher.notify_one();
        let mut done = self.inner.forced_cuts_done.subscribe();
        let mut stop = self.inner.stop.subscribe();
        tokio::select! {
            passed = done.wait_for(|done| *done >= ticket) => { passed.map_err(|_| IngestError::ShuttingDown)?; }
            _ = stop.wait_for(|stopped| *stopped) => return Err(IngestError::ShuttingDown),
        }
        let waiting = self.inner.lock().pending_blocks();
        loop {
            let still_pending = {
                let buffers = self.inner.lock();
                waiting.iter().any(|(tenant, block)| {
                    buffers.tenants.get(tenant).is_some_and(|b| b.pending.iter().any(|p| p.block == *block))
                })
            };
            if !still_pending {
                return Ok(());
            }
            if *self.inner.stop.borrow() {
                return Err(IngestError::ShuttingDown);
            }
            if commits.changed().await.is_err() {
                return Err(IngestError::ShuttingDown);
            }
        }
    }

    /// Why the WAL cannot take appends right now, if it cannot (see [`Wal::problem`]).
    pub fn wal_problem(&self) -> Option<String> {
        self.inner.wal.problem()
    }

    /// Bytes of WAL on disk.
    pub fn wal_bytes(&self) -> u64 {
        self.inner.wal.disk_bytes()
    }

    /// `<tenant>/<name>` of every quarantined item: spans kept on local disk because they could not be
    /// replayed or uploaded (`/ready` names them).
    pub fn quarantined(&self) -> Vec<String> {
        self.inner.quarantine.items()
    }

    /// Tenants whose spans this ingester holds (buffered or in blocks not committed yet).
    pub fn tenants(&self) -> Vec<TenantId> {
        self.inner.lock().tenants.keys().cloned().collect()
    }

    /// Whether this ingester holds spans of `tenant`.
    pub fn holds_tenant(&self, tenant: &TenantId) -> bool {
        self.inner.lock().tenants.contains_key(tenant)
    }

    /// Span keys of committed blocks remembered for resends, and the memory they hold.
    pub fn resend_window_size(&self) -> (usize, usize) {
        self.inner.lock().committed.size()
    }

    /// Bytes of committed blocks kept for queriers that have not listed them yet (`handoff_retention`);
    /// on top of `buffered_bytes`, and not counted against `max_buffer_bytes`: they are in the store.
    pub fn handed_off_bytes(&self) -> usize {
        self.inner.lock().handed_off_bytes()
    }

    /// Bytes held in memory by buffers and uncommitted blocks.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Stops the ingester: flushes if configured (bounded by the shutdown timeout), stops the flush
    /// tasks and closes the WAL. Spans not flushed stay in the WAL for the next start.
    pub async fn shutdown(&self) {
        if self.inner.options.flush_on_shutdown {
            match tokio::time::timeout(self.inner.options.shutdown_flush_timeout, self.flush()).await {
                Ok(Ok(())) => tracing::info!("flushed every buffer before stopping"),
                Ok(Err(error)) => tracing::warn!(%error, "flush on shutdown failed; the WAL keeps the spans"),
                Err(_) => tracing::warn!("flush on shutdown timed out; the WAL keeps the spans"),
            }
        }
        self.inner.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.inner.wal.close();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Buffers> {
        // A panic while holding the lock leaves plain data behind; keep serving with it.
        self.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_capacity(&self) -> Result<(), IngestError> {
        let used = self.lock().bytes;
        if used >= self.options.max_buffer_bytes {
            return Err(IngestError::MemoryFull { used, limit: self.options.max_buffer_bytes });
        }
        let wal = self.wal.disk_bytes();
        if wal >= self.options.max_wal_bytes {
            return Err(IngestError::WalFull { used: wal, limit: self.options.max_wal_bytes });
        }
        Ok(())
    }

    /// Removes WAL segments whose spans are all committed.
    fn release_wal_segments(&self) {
        let needed = self.lock().min_needed_segment().unwrap_or(u64::MAX);
        match self.wal.remove_segments_before(needed) {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "WAL segments removed"),
            Err(error) => tracing::warn!(%error, "cannot remove WAL segments; will retry after the next commit"),
        }
    }
}

/// A WAL append whose spans the buffer has not taken yet. Its segment (the active one when it began, or a
/// later one) counts as needed from before the append until the buffer holds the spans, under the lock
/// the release of WAL segments takes: otherwise a rotation and another block's commit in between could
/// delete the segment holding an acknowledged span (issue 26, item 12).
struct AppendInFlight<'a> {
    inner: &'a Inner,
    segment: Option<u64>,
}

impl<'a> AppendInFlight<'a> {
    fn register(inner: &'a Inner) -> Self {
        let mut buffers = inner.lock();
        // Read under the lock: a release that runs after this sees the append.
        let segment = inner.wal.active_segment();
        buffers.begin_append(segment);
        Self { inner, segment: Some(segment) }
    }

    /// The buffer takes the spans now, under the same lock.
    fn finish(mut self, buffers: &mut Buffers) {
        if let Some(segment) = self.segment.take() {
            buffers.end_append(segment);
        }
    }
}

impl Drop for AppendInFlight<'_> {
    /// A failed append leaves nothing to keep.
    fn drop(&mut self) {
        if let Some(segment) = self.segment.take() {
            self.inner.lock().end_append(segment);
        }
    }
}

/// The spans of one request, converted and ready for the WAL: the rows of the valid spans, the refused
/// ones, and the protobuf that holds exactly the valid ones.
pub struct NewSpans {
    pub batch: RecordBatch,
    pub rejected: Vec<SpanRejection>,
    pub wal_payload: Bytes,
}

impl NewSpans {
    /// From a protobuf body, decoded straight into Arrow; the body itself goes into the WAL unless
    /// spans were refused (then the valid rest is encoded again).
    pub fn from_protobuf(raw: Bytes) -> Result<Self, ProtobufError> {
        let (batch, rejected) = protobuf_to_batch(&raw)?;
        if rejected.is_empty() {
            return Ok(Self { batch, rejected, wal_payload: raw });
        }
        let request = ExportTraceServiceRequest::decode(raw.as_ref())?;
        Ok(Self { batch, rejected, wal_payload: valid_spans_only(request) })
    }

    /// Bytes the decoded spans hold in memory (their Arrow buffers), counted against the receivers'
    /// request budget until they are in the WAL and the buffer. The WAL payload is the request's own
    /// body, already counted, unless spans were refused and the rest encoded again.
    pub fn memory_bytes(&self) -> usize {
        let reencoded = if self.rejected.is_empty() { 0 } else { self.wal_payload.len() };
        self.batch.get_array_memory_size() + reencoded
    }

    /// From a request decoded elsewhere (OTLP/JSON).
    pub fn from_request(request: ExportTraceServiceRequest) -> Result<Self, SpanFormatError> {
        let (batch, rejected) = encode_resource_spans(&request.resource_spans)?;
        Ok(Self { batch, rejected, wal_payload: valid_spans_only(request) })
    }
}

/// The request's protobuf without its invalid spans.
fn valid_spans_only(mut request: ExportTraceServiceRequest) -> Bytes {
    for resource_spans in &mut request.resource_spans {
        for scope_spans in &mut resource_spans.scope_spans {
            scope_spans.spans.retain(|span| validate_span(span).is_ok());
        }
    }
    Bytes::from(request.encode_to_vec())
}

/// Decodes a WAL payload back into span rows (replay).
fn payload_to_batch(seq: u64, payload: &Bytes) -> Result<RecordBatch, IngestError> {
    protobuf_to_batch(payload).map(|(batch, _)| batch).map_err(|source| IngestError::BadWalRecord { seq, source })
}

#[cfg(test)]
mod tests;
