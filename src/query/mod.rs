//! The querier: answers "which spans belong to trace X" from the ingester's recent spans and the blocks
//! on object storage, at a cost that does not grow with the number of blocks.
//!
//! Owns the block catalogue (every block's metadata and bloom filter in memory, refreshed on an
//! interval and at once after this process's own flushes), the footer cache and the trace lookup
//! (drawing a trace is the CLI's job, `src/cli/waterfall.rs`), and, in a querier of its own
//! (`--target querier`), the ingesters of other processes and the client that asks them (`peers.rs`).
//! Calls `storage`, `spans`, `ids`, reads the ingester's recent spans and follows an in-process
//! compactor's commits; never calls `api` (which calls it).

pub mod catalog;
mod footers;
mod lookup;
pub mod peers;
pub mod remote;
pub mod tempopb;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use catalog::{BlockCatalog, CatalogBlock, CatalogView, TenantBlocks};
pub use footers::FooterCache;
pub use lookup::{LookupCost, TimeWindow, TraceLookup};
pub use peers::{PeerFailure, PeerOptions, PeerRows, Peers};

use crate::ids::TenantId;
use crate::ingest::{Held, IngestError, Ingester};
use crate::spans::SpanFormatError;
use crate::storage::{Storage, StorageError};

/// Why a query could not be answered. The API maps each to a status code in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("{0}")]
    BadRequest(String),
    /// The trace ID of a request is not one. 400, like `BadRequest`.
    #[error("trace ID {id:?}: {source}")]
    BadTraceId { id: String, source: crate::ids::IdError },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    SpanFormat(#[from] SpanFormatError),
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many lookups at once: retry shortly (429).
    #[error("{0}")]
    Busy(String),
    /// The lookup took longer than its limit (504).
    #[error("the lookup took longer than its {} s limit", .0.as_secs_f64())]
    Timeout(Duration),
}

impl QueryError {
    /// What failed, for a reply to a client (no local paths or object names; the log has them).
    pub fn public_message(&self) -> String {
        match self {
            QueryError::Storage(error) => error.public_message(),
            QueryError::Ingest(error) => error.public_message(),
            other => other.to_string(),
        }
    }
}

/// Settings of the querier.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// How often the catalogue lists the store for blocks written by other processes.
    pub block_refresh_interval: Duration,
    /// Memory for decoded Parquet footers of recently hit blocks.
    pub footer_cache_bytes: u64,
    /// Decoded span rows one trace-by-ID lookup may hold (Tempo's `max_bytes_per_trace`, on the read
    /// side): past it the lookup stops reading blocks and answers with the spans it has, marked partial.
    pub max_trace_bytes: u64,
    /// How long one trace-by-ID lookup may take.
    pub trace_lookup_timeout: Duration,
    /// Trace-by-ID lookups running at once; one more is refused as busy (HTTP 429), not queued.
    pub max_concurrent_trace_lookups: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            block_refresh_interval: Duration::from_secs(15),
            footer_cache_bytes: 256 * 1024 * 1024,
            max_trace_bytes: 64 * 1024 * 1024,
            trace_lookup_timeout: Duration::from_secs(30),
            max_concurrent_trace_lookups: 64,
        }
    }
}

/// How far back a querier names the blocks it knows to the ingesters (block IDs carry their creation
/// time): beyond any sensible `handoff_retention`, so what an ingester still holds is named.
const RECENT_BLOCKS_MS: u64 = 10 * 60 * 1000;

/// The query side of one process: catalogue, footer cache and (in a server) the ingester's recent
/// spans. Cheap to clone.
#[derive(Clone)]
pub struct Querier {
    storage: Storage,
    catalog: BlockCatalog,
    footers: Arc<FooterCache>,
    ingester: Option<Ingester>,
    /// The ingesters of other processes (`--target querier`), whose recent spans every answer includes.
    peers: Option<Peers>,
    options: QueryOptions,
    /// Permits of the trace-by-ID lookups running at once.
    lookups: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Querier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Querier")
            .field("storage", &self.storage)
            .field("catalog", &self.catalog)
            .field("footers", &self.footers)
            .field("with_ingester", &self.ingester.is_some())
            .field("peers", &self.peers)
            .finish()
    }
}

impl Querier {
    /// A querier over the blocks in `storage` only (the CLI's embedded mode).
    pub fn new(storage: Storage, options: QueryOptions) -> Self {
        Self {
            catalog: BlockCatalog::new(storage.clone()),
            footers: Arc::new(FooterCache::new(options.footer_cache_bytes)),
            storage,
            ingester: None,
            peers: None,
            lookups: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_trace_lookups.max(1))),
            options,
        }
    }

    /// A querier that also sees `ingester`'s spans not yet in blocks, and learns of the blocks it commits
    /// before the ingester lets go of their spans, so a span is never in neither place.
    pub fn with_ingester(storage: Storage, options: QueryOptions, ingester: Ingester) -> Self {
        let querier = Self { ingester: Some(ingester.clone()), ..Self::new(storage, options) };
        let catalog = querier.catalog.clone();
        ingester.on_commit(Box::new(move |meta, bloom| catalog.insert(meta.clone(), bloom.clone())));
        querier
    }

    /// The same querier, also reading the recent spans of the ingesters `peers` finds.
    pub fn with_peers(self, peers: Peers) -> Self {
        Self { peers: Some(peers), ..self }
    }

    /// The ingesters of other processes this querier asks, if any.
    pub fn peers(&self) -> Option<&Peers> {
        self.peers.as_ref()
    }

    /// The spans the other processes' ingesters hold that `filter` keeps and `view` does not already
    /// read from the store (rows of a block the view knows are left out), and the ingesters that did not
    /// answer. Nothing without peers.
    pub async fn peer_rows(
        &self,
        tenant: &TenantId,
        filter: &crate::ingest::RecentFilter,
        view: &CatalogView,
    ) -> (Vec<arrow::array::RecordBatch>, Vec<PeerFailure>) {
        let Some(peers) = &self.peers else { return (Vec::new(), Vec::new()) };
        // The blocks an ingester may still hold (made within the last minutes) that the view reads from
        // the store: named, so the ingester does not decode and send what would be dropped here.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        let recent_since = now_ms.saturating_sub(RECENT_BLOCKS_MS);
        let known_blocks = view
            .all
            .iter()
            .map(|block| block.meta.block_id)
            .filter(|id| id.created_unix_ms().is_some_and(|made| made >= recent_since))
            .collect();
        let filter = crate::ingest::RecentFilter { known_blocks, ..filter.clone() };
        peers.recent(tenant, &filter).await.not_in(|block| view.knows(block))
    }

    /// The block catalogue.
    pub fn catalog(&self) -> &BlockCatalog {
        &self.catalog
    }

    /// What this querier holds in memory, for `/metrics`.
    pub fn gauges(&self) -> [crate::telemetry::Gauge; 5] {
        use crate::telemetry::{
            CATALOG_BLOCKS, CATALOG_BLOOM_BYTES, CATALOG_TAG_BYTES, CATALOG_TENANTS, FOOTER_CACHE_BYTES, Gauge,
        };
        let size = self.catalog.size();
        [
            Gauge { name: CATALOG_BLOCKS, help: "Blocks in the querier's catalogue.", value: size.blocks as f64 },
            Gauge {
                name: CATALOG_TENANTS,
                help: "Tenants with blocks in the querier's catalogue.",
                value: self.catalog.tenant_count() as f64,
            },
            Gauge { name: CATALOG_BLOOM_BYTES, help: "Bloom filter bytes in memory.", value: size.bloom_bytes as f64 },
            Gauge {
                name: CATALOG_TAG_BYTES,
                help: "Estimated bytes of the distinct tag summaries the catalogue holds.",
                value: size.tag_bytes as f64,
            },
            Gauge {
                name: FOOTER_CACHE_BYTES,
                help: "Cached Parquet footer bytes.",
                value: self.footers.bytes() as f64,
            },
        ]
    }

    /// The footer cache, shared with SQL scans.
    pub fn footers(&self) -> &Arc<FooterCache> {
        &self.footers
    }

    /// The tenant's blocks and the ingester's spans not in any of them, taken at one instant: every
    /// span is in exactly one of the two (what `SELECT count(*)` needs to be exact during flushes).
    /// The view is returned too: the blocks it knows are the ones whose spans other processes' ingesters
    /// must not add again ([`peer_rows`](Self::peer_rows)).
    pub async fn consistent_view(&self, tenant: &TenantId) -> Result<(TenantBlocks, Held, CatalogView), QueryError> {
        let loaded = self.catalog.blocks(tenant).await?;
        let observe = || {
            self.catalog.view(tenant).unwrap_or(CatalogView {
                all: loaded.clone(),
                visible: loaded.clone(),
                listed: true,
            })
        };
        let Some(ingester) = &self.ingester else {
            let view = observe();
            return Ok((view.visible.clone(), Held::default(), view));
        };
        // A pending block the catalogue knows is left out even when a compacted block already hides it:
        // its spans are then counted in the compacted block.
        let (recent, view) = ingester.held_with(tenant, observe, CatalogView::knows)?;
        Ok((view.visible.clone(), recent, view))
    }

    /// The storage queried.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Resolves the ingesters' names every `ingester_refresh_interval` until `stop` turns true (`None`
    /// without peers). An ingester that is gone from the names stopped, and a graceful stop flushed its
    /// spans into blocks first: the catalogue lists the store before the ingester is dropped, so those
    /// blocks are read from then on and no answer between misses its spans unmarked.
    pub fn spawn_peer_resolver(&self, mut stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
        let (peers, catalog) = (self.peers.clone()?, self.catalog.clone());
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(peers.refresh_interval());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                let next = peers.look_up().await;
                if peers.loses_an_ingester(&next)
                    && let Err(error) = catalog.refresh_all().await
                {
                    tracing::warn!(%error, "an ingester left and the store cannot be listed; its recent blocks wait for the next refresh");
                }
                peers.install(next);
            }
        }))
    }

    /// Refreshes the catalogue every `block_refresh_interval` until `stop` turns true; the first
    /// refresh runs at once so the first queries find the catalogue warm.
    pub fn spawn_refresher(&self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let catalog = self.catalog.clone();
        let interval = self.options.block_refresh_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                let started = std::time::Instant::now();
                match catalog.refresh_all().await {
                    Ok(()) => {
                        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "block catalogue refreshed")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "block catalogue refresh failed; keeping the blocks known so far")
                    }
                }
            }
        })
    }
}
