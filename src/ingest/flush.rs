//! Cutting buffers into blocks and getting them committed: the flusher task cuts and encodes, the
//! uploader task uploads with retries and exponential backoff, and a commit releases WAL segments.
//!
//! Cutting keeps going while uploads fail: encoded blocks are about a tenth of their buffered size,
//! so a failing object store fills the WAL (and then answers 429) long before it fills memory.
//!
//! Blocks upload side by side (each its own task, [`UPLOAD_CONCURRENCY`] attempts at once), so one block
//! that keeps failing holds up no other. A block that fails [`BAD_BLOCK_ATTEMPTS`] times while other
//! blocks commit (the store works, this block does not), or with a fault of its own (rows that cannot be
//! encoded), is quarantined: kept on local disk, named on `/ready`, and let go of, so its WAL segments
//! can be released. A store that is down quarantines nothing: every block waits for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use super::Inner;
use super::buffer::PendingStage;
use crate::ids::{BlockId, TenantId};
use crate::storage::block::load_bloom;
use crate::storage::{BlockMeta, EncodedBlock, StorageError, TraceBloom, encode_block, read_block_meta, upload_block};
use crate::telemetry;
use crate::wal::Record;

/// First wait after a failed step; doubled after each further failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often buffers are checked for their age limit.
const AGE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Failed attempts after which a block whose failures are its own (or that fails while others commit)
/// is quarantined.
const BAD_BLOCK_ATTEMPTS: u32 = 5;
/// Upload attempts in flight at once, across tenants and blocks.
const UPLOAD_CONCURRENCY: usize = 4;

/// Cuts buffers that reached their size or age limit, until the ingester stops.
pub(super) async fn run_flusher(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut ticks = tokio::time::interval(AGE_CHECK_INTERVAL.min(inner.options.max_block_age));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = inner.wake_flusher.notified() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        inner.lock().committed.age();
        let requested = inner.forced_cuts_requested.load(Ordering::SeqCst);
        let force = requested > *inner.forced_cuts_done.borrow();
        cut_and_prepare(&inner, force).await;
        if force {
            inner.forced_cuts_done.send_replace(requested);
        }
    }
}

/// Cuts the buffers that are due (all non-empty ones with `force`), records each cut in the WAL,
/// encodes it and queues it for upload.
async fn cut_and_prepare(inner: &Arc<Inner>, force: bool) {
    let max_bytes = inner.options.max_block_bytes;
    // Past half its limit the WAL is not being released fast enough: cut every open buffer that still holds
    // spans in a segment before the active one (at most once per tenant per segment), so none pins it.
    let wal_pressure = inner.wal.disk_bytes() >= inner.options.max_wal_bytes / 2;
    let pinning_before = wal_pressure.then(|| inner.wal.active_segment());
    let cuts: Vec<(TenantId, BlockId)> = {
        let mut buffers = inner.lock();
        let mut cuts = Vec::new();
        for tenant in buffers.due_for_cut(max_bytes, inner.options.max_block_age, pinning_before, force) {
            // Every full block now; with `force`, everything.
            while let Some((block, _)) = buffers.cut(&tenant, max_bytes) {
                cuts.push((tenant.clone(), block));
                let full = buffers.tenants.get(&tenant).is_some_and(|b| b.is_full(max_bytes));
                if !force && !full {
                    break;
                }
            }
        }
        cuts
    };
    for (tenant, block) in cuts {
        if prepare(inner, &tenant, block).await.is_some() {
            let _ = inner.uploads.send((tenant, block));
        }
    }
}

/// Takes a cut block through its cut record and its encoding; `None` if the ingester stopped first
/// (the WAL still holds its spans).
async fn prepare(inner: &Arc<Inner>, tenant: &TenantId, block: BlockId) -> Option<()> {
    let (sequences, rows) = {
        let mut buffers = inner.lock();
        let pending = buffers.pending_mut(tenant, block)?;
        match &pending.stage {
            PendingStage::Cut(rows) => (pending.sequences.clone(), rows.clone()),
            _ => return Some(()),
        }
    };
    let cut = Record::Cut { tenant: tenant.clone(), block, sequences };
    retry(inner, "record the cut in the WAL", Patience::Forever, || inner.wal.append(cut.clone())).await.done()?;
    let encode = || {
        let (tenant, rows, options) = (tenant.clone(), rows.clone(), inner.options.block.clone());
        async move {
            tokio::task::spawn_blocking(move || encode_block(&tenant, block, &rows, &options))
                .await
                .map_err(StorageError::from)?
        }
    };
    let encoded = match retry(inner, "encode the block", Patience::BadBlock, encode).await {
        Retried::Done(encoded) => encoded,
        Retried::Stopped => return None,
        Retried::GaveUp(error) => {
            let reason = format!("block {block} could not be encoded: {error}");
            match inner.quarantine.keep_rows(tenant, &block.to_string(), &rows, &reason) {
                Ok(()) => {
                    forget_pending(inner, tenant, block, None);
                    return None;
                }
                Err(kept) => {
                    tracing::error!(%tenant, %block, error = %kept, "cannot quarantine a block's rows; retrying its encoding");
                    retry(inner, "encode the block", Patience::Forever, encode).await.done()?
                }
            }
        }
    };
    let encoded_bytes = encoded.data.len() + encoded.bloom.len();
    inner.lock().advance(tenant, block, PendingStage::Encoded(Arc::new(encoded)), encoded_bytes);
    Some(())
}

/// Forgets a pending block whose spans are elsewhere now (committed in the store, or quarantined on
/// local disk): its WAL segments may go, and `/flush` callers waiting for it are woken.
fn forget_pending(inner: &Inner, tenant: &TenantId, block: BlockId, keep_until: Option<std::time::Instant>) {
    inner.lock().remove_committed(tenant, block, keep_until);
    inner.release_wal_segments();
    inner.commits.send_modify(|count| *count += 1);
}

/// Uploads queued blocks, each in a task of its own, until the ingester stops; then waits for the
/// uploads under way to end (each stops at its next retry).
pub(super) async fn run_uploader(inner: Arc<Inner>, mut queue: mpsc::UnboundedReceiver<(TenantId, BlockId)>) {
    let mut stop = inner.stop.subscribe();
    let slots = Arc::new(Semaphore::new(UPLOAD_CONCURRENCY));
    let mut uploads = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            _ = stop.wait_for(|stopped| *stopped) => None,
            Some(_) = uploads.join_next(), if !uploads.is_empty() => continue,
        };
        let Some((tenant, block)) = next else { break };
        uploads.spawn(upload(inner.clone(), slots.clone(), tenant, block));
    }
    while uploads.join_next().await.is_some() {}
}

/// Uploads one block, retried until it commits, the ingester stops, or it is quarantined.
async fn upload(inner: Arc<Inner>, slots: Arc<Semaphore>, tenant: TenantId, block: BlockId) {
    let encoded = {
        let mut buffers = inner.lock();
        match buffers.pending_mut(&tenant, block).map(|p| &p.stage) {
            Some(PendingStage::Encoded(encoded)) => encoded.clone(),
            _ => return,
        }
    };
    let started = Instant::now();
    let attempt = || async {
        let Ok(_slot) = slots.acquire().await else { return Err(StorageError::Timeout(Duration::ZERO)) };
        match tokio::time::timeout(inner.options.upload_timeout, upload_unless_committed(&inner, &encoded)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StorageError::Timeout(inner.options.upload_timeout)),
        }
    };
    let stored = match retry(&inner, "upload the block", Patience::BadBlock, attempt).await {
        Retried::Done(stored) => stored,
        Retried::Stopped => return,
        Retried::GaveUp(error) => {
            let reason = format!("block {block} could not be uploaded: {error}");
            match inner.quarantine.keep_block(&encoded, &reason) {
                Ok(()) => return forget_pending(&inner, &tenant, block, None),
                Err(kept) => {
                    tracing::error!(%tenant, %block, error = %kept, "cannot quarantine a block; retrying its upload");
                    let Some(stored) = retry(&inner, "upload the block", Patience::Forever, attempt).await.done()
                    else {
                        return;
                    };
                    stored
                }
            }
        }
    };
    commit(&inner, &tenant, &encoded, stored);
    metrics::histogram!(telemetry::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
}

/// How a pending block came to be committed in the store.
enum Stored {
    /// Uploaded now: the store holds exactly the block in memory.
    Uploaded,
    /// Committed before a restart: the store holds an earlier encoding of the same spans, which may differ
    /// byte for byte from the one the WAL replay made, so readers must use the stored metadata and bloom.
    Earlier(Box<(BlockMeta, TraceBloom)>),
}

/// Uploads a block unless its metadata object already exists (then reads back what the store holds): a
/// block re-encoded after a crash must not be overwritten under its committed metadata.
async fn upload_unless_committed(inner: &Inner, block: &EncodedBlock) -> Result<Stored, StorageError> {
    match read_block_meta(&inner.storage, &block.meta.tenant, block.meta.block_id).await {
        Ok(meta) => {
            let bloom = load_bloom(&inner.storage, &meta).await?;
            return Ok(Stored::Earlier(Box::new((meta, bloom))));
        }
        Err(StorageError::BlockNotFound(_)) => {}
        Err(error) => return Err(error),
    }
    upload_block(&inner.storage, block).await?;
    Ok(Stored::Uploaded)
}

/// Forgets a committed block, releases the WAL segments nobody needs any more and tells listeners what
/// the store holds.
fn commit(inner: &Inner, tenant: &TenantId, block: &EncodedBlock, stored: Stored) {
    let (meta, bloom) = match &stored {
        Stored::Uploaded => (&block.meta, &block.filter),
        Stored::Earlier(earlier) => (&earlier.0, &earlier.1),
    };
    if let Ok(listeners) = inner.listeners.lock() {
        for listener in listeners.iter() {
            listener(meta, bloom);
        }
    }
    inner.uploads_committed.fetch_add(1, Ordering::SeqCst);
    match stored {
        Stored::Uploaded => {
            metrics::counter!(telemetry::BLOCKS_WRITTEN).increment(1);
            metrics::counter!(telemetry::BLOCK_SPANS_WRITTEN).increment(meta.span_count);
            metrics::counter!(telemetry::BLOCK_BYTES_WRITTEN).increment(meta.data_bytes + meta.bloom_bytes);
            tracing::info!(
                tenant = %tenant,
                block = %meta.block_id,
                spans = meta.span_count,
                bytes = meta.data_bytes + meta.bloom_bytes,
                "block committed"
            );
        }
        Stored::Earlier(_) => {
            tracing::info!(tenant = %tenant, block = %meta.block_id, "block was committed before the restart");
        }
    }
    // Queriers in other processes learn of the block when they next list the store: its spans stay
    // readable here until then (`handoff_retention`).
    let retention = inner.options.handoff_retention;
    let keep_until = (!retention.is_zero()).then(|| std::time::Instant::now() + retention);
    forget_pending(inner, tenant, meta.block_id, keep_until);
}

/// A failed step's error, as [`retry`] judges it.
trait StepError: std::fmt::Display {
    /// Whether the failure is the block's own and would come back on every attempt.
    fn is_block_fault(&self) -> bool;
}

impl StepError for StorageError {
    fn is_block_fault(&self) -> bool {
        StorageError::is_block_fault(self)
    }
}

impl StepError for crate::wal::WalError {
    fn is_block_fault(&self) -> bool {
        false
    }
}

/// How long a failing step is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Patience {
    /// Until it succeeds or the ingester stops: the WAL, and a store that is down, which the WAL limit
    /// turns into backpressure.
    Forever,
    /// A block's encoding or upload: given up after [`BAD_BLOCK_ATTEMPTS`] failures if they are the
    /// block's own fault or other blocks committed meanwhile.
    BadBlock,
}

/// How a retried step ended.
enum Retried<T, E> {
    Done(T),
    /// The ingester stopped first.
    Stopped,
    /// [`Patience::BadBlock`] ran out; the last failure.
    GaveUp(E),
}

impl<T, E> Retried<T, E> {
    /// The value, if the step succeeded.
    fn done(self) -> Option<T> {
        match self {
            Retried::Done(value) => Some(value),
            _ => None,
        }
    }
}

/// Runs `step` until it succeeds, backing off exponentially between failures, or until `patience` runs
/// out or the ingester stops.
async fn retry<T, E, F, Fut>(inner: &Inner, what: &str, patience: Patience, mut step: F) -> Retried<T, E>
where
    E: StepError,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut stop = inner.stop.subscribe();
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0;
    let committed_before = inner.uploads_committed.load(Ordering::SeqCst);
    loop {
        if *stop.borrow() {
            return Retried::Stopped;
        }
        match step().await {
            Ok(value) => return Retried::Done(value),
            Err(error) => {
                failures += 1;
                metrics::counter!(telemetry::FLUSH_FAILURES).increment(1);
                let others_commit = inner.uploads_committed.load(Ordering::SeqCst) > committed_before;
                if patience == Patience::BadBlock
                    && failures >= BAD_BLOCK_ATTEMPTS
                    && (error.is_block_fault() || others_commit)
                {
                    tracing::error!(%error, failures, "cannot {what}; giving up on this block");
                    return Retried::GaveUp(error);
                }
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "cannot {what}; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return Retried::Stopped,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
