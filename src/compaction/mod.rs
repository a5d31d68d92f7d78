//! The compactor: per tenant, merges the blocks of a time window into few large ones (sorted by trace
//! ID, duplicate spans removed), switches readers over atomically, deletes what it replaced after a
//! grace period, applies retention and cleans up crashed uploads. One compactor at a time per tenant,
//! by a lease on the object store.
//!
//! Owns the compaction plan, the streaming merge and the lease. Calls `storage`, `spans` and `ids`;
//! never calls `ingest`, `query` or `api`: a server that also queries learns of commits and deletions
//! through [`Compactor::on_change`].
//!
//! The switch needs no coordination: a compacted block's metadata names the blocks it replaces, and
//! every reader leaves those out from the moment it knows the compacted block. Deletion waits
//! [`PlanRules::deletion_grace`] after that commit, so queries that started before it finish.

mod lease;
pub mod merge;
pub mod plan;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

pub use lease::{Lease, LeaseRecord, LeaseState};
pub use merge::{MergeInput, Merged, merge_blocks};
pub use plan::{Job, Plan, PlanRules};

use crate::ids::{BlockId, TenantId};
use crate::storage::{
    BlockMeta, BlockSidecar, BlockWriteOptions, Storage, StorageError, commit_block, delete_block, delete_leftover,
    layout, list_blocks, list_tenants, read_block_meta, upload_spooled_objects,
};
use crate::telemetry;

/// Why a compaction pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("corrupt block data: {0}")]
    Corrupt(String),
    /// A block to merge holds a trace ID that is not one.
    #[error("corrupt block data: {0}")]
    InvalidTraceId(#[source] crate::ids::IdError),
    #[error("corrupt block data: lease object of tenant {tenant}: {source}")]
    InvalidLease { tenant: crate::ids::TenantId, source: serde_json::Error },
    #[error("compactor lease lost: {0}")]
    LeaseLost(String),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("compaction scratch file in {path}: {source}")]
    Scratch { path: String, source: std::io::Error },
    #[error("opening a merge input again: {0}")]
    Reopen(#[source] std::io::Error),
}

/// Settings of the compactor and of retention.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionOptions {
    /// Time between two passes of the server's compactor.
    pub interval: Duration,
    /// Merge rules: window, target size, inputs, grace periods, default retention.
    pub rules: PlanRules,
    /// Retention of particular tenants, over `rules.retention`.
    pub tenant_retention: HashMap<TenantId, Duration>,
    /// How long a lease lasts without renewal: a dead compactor's tenants wait this long at most.
    pub lease_ttl: Duration,
    /// Merges of a tenant running at once, each on its own core (1 leaves the others to ingest and query).
    pub concurrency: usize,
    /// Decoded rows one merge holds in memory at once (see [`merge_blocks`]).
    pub merge_memory_bytes: u64,
    /// Layout of the blocks written (same as the ingester's).
    pub block: BlockWriteOptions,
    /// Local folder for a merge's inputs and output while it runs (unnamed files, gone when closed even
    /// after `kill -9`), so a merge's memory does not grow with the size of the blocks it merges. Needs
    /// room for about twice `rules.target_bytes` per merge running at once.
    pub scratch_dir: PathBuf,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            rules: PlanRules {
                window: Duration::from_secs(3600),
                target_bytes: 256 * 1024 * 1024,
                max_inputs: 64,
                deletion_grace: Duration::from_secs(300),
                leftover_grace: Duration::from_secs(3600),
                retention: Duration::from_secs(14 * 24 * 3600),
            },
            tenant_retention: HashMap::new(),
            lease_ttl: Duration::from_secs(120),
            concurrency: 1,
            merge_memory_bytes: 256 * 1024 * 1024,
            block: BlockWriteOptions::default(),
            scratch_dir: std::env::temp_dir(),
        }
    }
}

/// A change to the set of stored blocks, for an in-process catalogue to follow without a LIST.
#[derive(Debug)]
pub enum BlockChange<'a> {
    /// A compacted block was committed.
    Committed(&'a BlockSidecar),
    /// A block was deleted (replaced, expired or a leftover).
    Deleted(&'a TenantId, BlockId),
}

type ChangeListener = Box<dyn Fn(&BlockChange<'_>) + Send + Sync>;

/// What a pass (or a part of it) did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassReport {
    pub tenants: usize,
    /// Tenants skipped because another compactor holds their lease.
    pub tenants_leased_elsewhere: usize,
    /// Tenants whose work failed in this pass (logged; retried at the next).
    pub tenants_failed: usize,
    /// Blocks left alone because their own objects cannot be read (a newer format, damaged metadata).
    pub blocks_skipped: u64,
    pub jobs: usize,
    pub blocks_in: u64,
    pub blocks_out: u64,
    pub spans_in: u64,
    pub spans_out: u64,
    pub duplicates_removed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub deleted_replaced: u64,
    pub deleted_expired: u64,
    pub deleted_leftovers: u64,
}

impl PassReport {
    /// Adds another pass's (or step's) counts to these.
    pub fn add(&mut self, other: &PassReport) {
        self.tenants += other.tenants;
        self.tenants_leased_elsewhere += other.tenants_leased_elsewhere;
        self.tenants_failed += other.tenants_failed;
        self.blocks_skipped += other.blocks_skipped;
        self.jobs += other.jobs;
        self.blocks_in += other.blocks_in;
        self.blocks_out += other.blocks_out;
        self.spans_in += other.spans_in;
        self.spans_out += other.spans_out;
        self.duplicates_removed += other.duplicates_removed;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.deleted_replaced += other.deleted_replaced;
        self.deleted_expired += other.deleted_expired;
        self.deleted_leftovers += other.deleted_leftovers;
    }
}

/// Progress of a pass, for the CLI's progress bar.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A tenant's plan is made: this many merges and input bytes are ahead.
    Planned { tenant: TenantId, jobs: usize, bytes: u64 },
    /// One merge is committed.
    Merged { tenant: TenantId, bytes_in: u64, spans_out: u64 },
}

/// The compactor of one process. Cheap to clone.
#[derive(Clone)]
pub struct Compactor {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    options: CompactionOptions,
    /// Names this compactor in lease objects.
    holder: String,
    /// Metadata of blocks seen before (blocks are immutable), so a pass reads only new ones.
    metas: Mutex<HashMap<(TenantId, BlockId), BlockMeta>>,
    listeners: Mutex<Vec<ChangeListener>>,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor").field("holder", &self.inner.holder).finish()
    }
}

/// Unix ms now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Metadata reads in flight at once while a pass catches up with new blocks.
const META_CONCURRENCY: usize = 16;
/// Input downloads in flight at once for one merge.
const DOWNLOAD_CONCURRENCY: usize = 8;

/// Bytes of a download gathered before they are written to its scratch file in one blocking task.
/// Object-store bodies arrive in chunks of 8–64 KiB; a blocking task each would churn the runtime's
/// bounded blocking pool, which request decoding shares, tens of thousands of times per merge.
const DOWNLOAD_WRITE_BYTES: usize = 1024 * 1024;

/// The error of a failed read or write in the scratch folder `dir`.
fn scratch_error(dir: &Path) -> impl Fn(std::io::Error) -> CompactionError + '_ {
    move |source| CompactionError::Scratch { path: dir.display().to_string(), source }
}

/// An unnamed file in `dir`, which must exist: the OS removes the file once closed, crash or not.
fn scratch_file(dir: &Path) -> Result<std::fs::File, CompactionError> {
    tempfile::tempfile_in(dir).map_err(scratch_error(dir))
}

/// Copies an object into a scratch file, [`DOWNLOAD_WRITE_BYTES`] at a time.
async fn download(
    store: &Arc<dyn object_store::ObjectStore>,
    path: &object_store::path::Path,
    scratch: &Path,
) -> Result<std::fs::File, CompactionError> {
    let mut file = scratch_file(scratch)?;
    let mut body = store.get(path).await?.into_stream();
    let mut pending = Vec::with_capacity(DOWNLOAD_WRITE_BYTES);
    loop {
        let chunk = body.try_next().await?;
        let end = chunk.is_none();
        pending.extend_from_slice(chunk.as_deref().unwrap_or_default());
        if pending.len() >= DOWNLOAD_WRITE_BYTES || (end && !pending.is_empty()) {
            (file, pending) = tokio::task::spawn_blocking(move || {
                file.write_all(&pending)?;
                pending.clear();
                Ok::<_, std::io::Error>((file, pending))
            })
            .await?
            .map_err(scratch_error(scratch))?;
        }
        if end {
            return Ok(file);
        }
    }
}

impl Compactor {
    /// A compactor over `storage` with a fresh lease-holder name.
    pub fn new(storage: Storage, options: CompactionOptions) -> Self {
        let holder = format!("{}-{}", hostname(), BlockId::new_random());
        Self {
            inner: Arc::new(Inner {
                storage,
                options,
                holder,
                metas: Mutex::new(HashMap::new()),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Calls `listener` after each commit and deletion (a querier in the same process follows at once).
    pub fn on_change(&self, listener: ChangeListener) {
        if let Ok(mut listeners) = self.inner.listeners.lock() {
            listeners.push(listener);
        }
    }

    fn notify(&self, change: BlockChange<'_>) {
        if let Ok(listeners) = self.inner.listeners.lock() {
            listeners.iter().for_each(|listener| listener(&change));
        }
    }

    /// The options in force.
    pub fn options(&self) -> &CompactionOptions {
        &self.inner.options
    }

    /// One pass over every tenant at the current time.
    pub async fn pass(&self) -> Result<PassReport, CompactionError> {
        self.pass_at(unix_ms_now(), &|_| {}).await
    }

    /// One pass over every tenant, with the clock starting at `now_unix_ms` (tests control it) and
    /// progress reported as it goes. A tenant that fails is logged, counted (in the report and in
    /// `spanlake_tenant_failures_total`) and retried at the next pass; the other tenants' work goes on.
    /// Only a failure to list the tenants fails the pass.
    pub async fn pass_at(
        &self,
        now_unix_ms: u64,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<PassReport, CompactionError> {
        let mut report = PassReport::default();
        for tenant in list_tenants(&self.inner.storage).await? {
            match self.compact_tenant_at(&tenant, now_unix_ms, progress).await {
                Ok(tenant_report) => report.add(&tenant_report),
                Err(error) => {
                    report.tenants_failed += 1;
                    metrics::counter!(telemetry::TENANT_FAILURES, "component" => "compaction").increment(1);
                    tracing::warn!(%tenant, %error, "compaction of a tenant failed; the other tenants go on");
                }
            }
        }
        Ok(report)
    }

    /// One pass over one tenant: retention, grace-period deletions and leftovers, then the merges.
    pub async fn compact_tenant_at(
        &self,
        tenant: &TenantId,
        now_unix_ms: u64,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<PassReport, CompactionError> {
        let started = Instant::now();
        let clock = || now_unix_ms + started.elapsed().as_millis() as u64;
        let mut report = PassReport { tenants: 1, ..Default::default() };
        let lease = Lease::new(
            self.inner.storage.clone(),
            tenant.clone(),
            self.inner.holder.clone(),
            self.inner.options.lease_ttl,
        );
        if let LeaseState::HeldElsewhere { holder, expires_unix_ms } = lease.acquire(clock()).await? {
            tracing::debug!(%tenant, %holder, expires_unix_ms, "another compactor holds the lease; skipping tenant");
            report.tenants_leased_elsewhere = 1;
            return Ok(report);
        }
        let outcome = self.compact_leased(tenant, &lease, &clock, progress, &mut report).await;
        if outcome.is_ok() {
            lease.release(clock()).await?;
        }
        outcome.map(|()| report)
    }

    async fn compact_leased(
        &self,
        tenant: &TenantId,
        lease: &Lease,
        clock: &(dyn Fn() -> u64 + Send + Sync),
        progress: &(dyn Fn(Progress) + Send + Sync),
        report: &mut PassReport,
    ) -> Result<(), CompactionError> {
        let listing = list_blocks(&self.inner.storage, tenant).await?;
        let (metas, skipped) = self.metas(tenant, &listing.committed).await?;
        report.blocks_skipped += skipped;
        let mut rules = self.inner.options.rules.clone();
        if let Some(retention) = self.inner.options.tenant_retention.get(tenant) {
            rules.retention = *retention;
        }
        let plan = plan::plan(&metas, &listing.uncommitted, clock(), &rules);
        let tenant_label = tenant.as_str().to_owned();

        for &block in &plan.expired {
            self.delete(tenant, block).await?;
            report.deleted_expired += 1;
            metrics::counter!(telemetry::RETENTION_DELETED_BLOCKS, "tenant" => tenant_label.clone()).increment(1);
        }
        for &block in &plan.replaced_due {
            self.delete(tenant, block).await?;
            report.deleted_replaced += 1;
            metrics::counter!(telemetry::COMPACTION_DELETED_BLOCKS, "reason" => "replaced").increment(1);
        }
        let untouched_before = clock().saturating_sub(rules.leftover_grace.as_millis() as u64);
        for &block in &plan.leftovers_due {
            // Checked again right before: the listing may be stale (a WAL replay re-uploading the block).
            if delete_leftover(&self.inner.storage, tenant, block, untouched_before).await? {
                tracing::info!(%tenant, %block, "deleted the objects of an upload that never committed");
                report.deleted_leftovers += 1;
                metrics::counter!(telemetry::COMPACTION_DELETED_BLOCKS, "reason" => "leftover").increment(1);
            }
        }

        let lag_seconds = plan.oldest_waiting_unix_ms.map_or(0.0, |oldest| clock().saturating_sub(oldest) as f64 / 1e3);
        metrics::gauge!(telemetry::COMPACTION_LAG_SECONDS, "tenant" => tenant_label.clone()).set(lag_seconds);
        let mut outstanding = plan.outstanding();
        metrics::gauge!(telemetry::COMPACTION_OUTSTANDING_BLOCKS, "tenant" => tenant_label.clone())
            .set(outstanding as f64);
        let bytes: u64 = plan.jobs.iter().flat_map(|job| &job.inputs).map(|meta| meta.data_bytes).sum();
        progress(Progress::Planned { tenant: tenant.clone(), jobs: plan.jobs.len(), bytes });

        let merges = futures::stream::iter(plan.jobs)
            .map(|job| async move {
                lease.renew(clock()).await?;
                let inputs = job.inputs.len();
                let (mut merged, data) = self.merge(tenant, job).await?;
                upload_spooled_objects(&self.inner.storage, &merged.block, data).await?;
                // The lease is checked again right before the commit: a compactor that lost it while merging
                // or uploading leaves its output uncommitted (a leftover) instead of racing the new holder,
                // and the commit records the epoch, so one that loses it during the commit itself is fenced
                // off by readers (`storage::replacements`).
                let epoch = lease.renew(clock()).await?;
                merged.block.meta.lease_epoch = Some(epoch);
                commit_block(&self.inner.storage, &merged.block.meta).await?;
                self.remember(&merged.block.meta);
                self.notify(BlockChange::Committed(&merged.block));
                Ok::<_, CompactionError>((merged, inputs))
            })
            .buffer_unordered(self.inner.options.concurrency.max(1));
        futures::pin_mut!(merges);
        while let Some(merged) = merges.next().await {
            let (merged, inputs) = merged?;
            let step = self.record(&merged, inputs);
            tracing::info!(
                %tenant,
                block = %merged.block.meta.block_id,
                inputs,
                spans = merged.block.meta.span_count,
                duplicates = merged.duplicates,
                bytes_in = step.bytes_in,
                bytes_out = step.bytes_out,
                peak_bytes_held = merged.peak_bytes_held,
                "blocks compacted"
            );
            progress(Progress::Merged {
                tenant: tenant.clone(),
                bytes_in: step.bytes_in,
                spans_out: merged.block.meta.span_count,
            });
            report.add(&step);
            outstanding = outstanding.saturating_sub(inputs);
            metrics::gauge!(telemetry::COMPACTION_OUTSTANDING_BLOCKS, "tenant" => tenant_label.clone())
                .set(outstanding as f64);
        }
        Ok(())
    }

    /// Counts one committed merge in the metrics; returns it as a report.
    fn record(&self, merged: &Merged, inputs: usize) -> PassReport {
        let meta = &merged.block.meta;
        let bytes_out = meta.data_bytes + meta.bloom_bytes;
        let step = PassReport {
            jobs: 1,
            blocks_in: inputs as u64,
            blocks_out: 1,
            spans_in: merged.spans_in,
            spans_out: meta.span_count,
            duplicates_removed: merged.duplicates,
            bytes_in: merged.bytes_in,
            bytes_out,
            ..Default::default()
        };
        metrics::counter!(telemetry::COMPACTION_BYTES, "direction" => "in").increment(step.bytes_in);
        metrics::counter!(telemetry::COMPACTION_BYTES, "direction" => "out").increment(bytes_out);
        metrics::counter!(telemetry::COMPACTION_SPANS, "direction" => "in").increment(step.spans_in);
        metrics::counter!(telemetry::COMPACTION_SPANS, "direction" => "out").increment(step.spans_out);
        metrics::counter!(telemetry::COMPACTION_BLOCKS, "direction" => "in").increment(step.blocks_in);
        metrics::counter!(telemetry::COMPACTION_BLOCKS, "direction" => "out").increment(1);
        step
    }

    /// Downloads a job's inputs into scratch files and merges them on a blocking thread into another
    /// scratch file, returned with the merged block's metadata. Neither the inputs nor the output are
    /// held in memory: at the default 256 MiB target they would take about twice that.
    async fn merge(&self, tenant: &TenantId, job: Job) -> Result<(Merged, std::fs::File), CompactionError> {
        let store = self.inner.storage.object_store();
        let scratch = &self.inner.options.scratch_dir;
        tokio::fs::create_dir_all(scratch).await.map_err(scratch_error(scratch))?;
        let inputs: Vec<MergeInput<std::fs::File>> = futures::stream::iter(job.inputs)
            .map(|mut meta| {
                let store = store.clone();
                async move {
                    if meta.tags.is_none() {
                        // The cache keeps no summaries; without one the merge would scan the rows for it.
                        meta.tags = read_block_meta(&self.inner.storage, &meta.tenant, meta.block_id).await?.tags;
                    }
                    let data = download(&store, &layout::data_path(&meta.tenant, meta.block_id), scratch).await?;
                    Ok::<_, CompactionError>(MergeInput { meta, data })
                }
            })
            .buffered(DOWNLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        let mut output = scratch_file(scratch)?;
        let (tenant, options, replaces) = (tenant.clone(), self.inner.options.block.clone(), job.replaces);
        let memory = self.inner.options.merge_memory_bytes;
        tokio::task::spawn_blocking(move || {
            let id = BlockId::new_random();
            let merged = merge_blocks(&tenant, id, inputs, replaces, &mut output, &options, memory)?;
            Ok((merged, output))
        })
        .await?
    }

    async fn delete(&self, tenant: &TenantId, block: BlockId) -> Result<(), CompactionError> {
        delete_block(&self.inner.storage, tenant, block).await?;
        if let Ok(mut metas) = self.inner.metas.lock() {
            metas.remove(&(tenant.clone(), block));
        }
        self.notify(BlockChange::Deleted(tenant, block));
        Ok(())
    }

    /// Keeps a block's metadata for later passes, without its tag summary: that is most of a meta's
    /// memory (about 30 of 42 KB for a block of synthetic traces), the querier's catalogue holds it
    /// already, and only a merge needs it, which reads it again ([`Compactor::merge`]). With compaction
    /// behind, thousands of blocks wait, and each pass cloned every cached summary.
    fn remember(&self, meta: &BlockMeta) {
        if let Ok(mut metas) = self.inner.metas.lock() {
            metas.insert((meta.tenant.clone(), meta.block_id), BlockMeta { tags: None, ..meta.clone() });
        }
    }

    /// The metadata of `blocks`, from memory when seen before, else read (and then remembered), and how
    /// many were skipped as unreadable (never merged, expired or deleted by this compactor: it cannot
    /// know what they hold).
    async fn metas(&self, tenant: &TenantId, blocks: &[BlockId]) -> Result<(Vec<BlockMeta>, u64), CompactionError> {
        let (mut known, missing): (Vec<BlockMeta>, Vec<BlockId>) = {
            let metas = self.inner.metas.lock().map_err(|_| CompactionError::Corrupt("metadata cache lock".into()))?;
            let mut known = Vec::new();
            let mut missing = Vec::new();
            for &block in blocks {
                match metas.get(&(tenant.clone(), block)) {
                    Some(meta) => known.push(meta.clone()),
                    None => missing.push(block),
                }
            }
            (known, missing)
        };
        let loaded: Vec<Option<Result<BlockMeta, BlockId>>> = futures::stream::iter(missing)
            .map(|block| async move {
                match read_block_meta(&self.inner.storage, tenant, block).await {
                    Ok(meta) => Ok(Some(Ok(meta))),
                    // Deleted since the LIST: nothing to do with it.
                    Err(StorageError::BlockNotFound(_)) => Ok(None),
                    Err(error) if error.is_unreadable_block() => {
                        metrics::counter!(telemetry::BLOCKS_SKIPPED, "component" => "compaction", "reason" => error.skip_reason())
                            .increment(1);
                        tracing::warn!(%tenant, %block, %error, "block skipped by compaction: its metadata cannot be read");
                        Ok(Some(Err(block)))
                    }
                    Err(error) => Err(CompactionError::from(error)),
                }
            })
            .buffer_unordered(META_CONCURRENCY)
            .try_collect()
            .await?;
        let mut skipped = 0;
        for outcome in loaded.into_iter().flatten() {
            match outcome {
                Ok(meta) => {
                    self.remember(&meta);
                    known.push(meta);
                }
                Err(_) => skipped += 1,
            }
        }
        known.sort_by_key(|meta| meta.block_id);
        Ok((known, skipped))
    }

    /// Runs a pass every `interval` until `stop` turns true. A failed pass is logged and retried at the
    /// next tick; the work it committed stands.
    pub fn spawn(&self, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let compactor = self.clone();
        tokio::spawn(async move {
            // The first pass waits one interval: a starting server has other work first.
            let interval = compactor.inner.options.interval;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                let pass = compactor.pass();
                tokio::select! {
                    outcome = pass => match outcome {
                        Ok(report) if report.jobs > 0 || report.deleted_expired > 0 => {
                            tracing::info!(?report, "compaction pass done")
                        }
                        Ok(_) => {}
                        Err(error) => {
                            metrics::counter!(telemetry::COMPACTION_FAILURES).increment(1);
                            tracing::warn!(%error, "compaction pass failed; retrying at the next interval")
                        }
                    },
                    // Stopping mid-merge loses nothing: uncommitted output is a leftover, inputs stay.
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        })
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "compactor".into())
}
