//! The querier's block catalogue: every committed block's metadata and bloom filter, per tenant, in
//! memory. Blocks are immutable, so each is loaded once; a refresh lists a tenant's blocks (one LIST) and
//! loads only the new ones. Lookups read a snapshot and never touch the object store to decide which
//! blocks may hold a trace.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::{StreamExt, TryStreamExt};

use super::QueryError;
use crate::ids::{BlockId, TenantId};
use crate::storage::block::load_bloom;
use crate::storage::{BlockMeta, Storage, StorageError, TraceBloom, list_blocks, list_tenants, read_block_meta};

/// Metadata and bloom loads in flight at once while a refresh catches up with new blocks.
const LOAD_CONCURRENCY: usize = 16;

/// One committed block as the querier knows it.
#[derive(Debug)]
pub struct CatalogBlock {
    pub meta: BlockMeta,
    pub bloom: TraceBloom,
    /// The catalogue generation in which the block was added; a refresh whose LIST started earlier must
    /// not drop it just because that LIST could not see it yet.
    added_in: u64,
}

/// The blocks of one tenant at one instant, oldest first. Cheap to clone and to hold during a lookup.
pub type TenantBlocks = Arc<Vec<Arc<CatalogBlock>>>;

/// Every known tenant's blocks. Cheap to clone; clones share the same catalogue.
#[derive(Clone, Debug)]
pub struct BlockCatalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    tenants: RwLock<HashMap<TenantId, TenantBlocks>>,
    generation: AtomicU64,
    /// One refresh at a time, so two refreshes of a tenant cannot load the same blocks twice.
    refreshing: tokio::sync::Mutex<()>,
}

impl BlockCatalog {
    /// An empty catalogue over `storage`; tenants load on first use or on [`BlockCatalog::refresh_all`].
    pub fn new(storage: Storage) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                tenants: RwLock::new(HashMap::new()),
                generation: AtomicU64::new(0),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The tenant's blocks, loading them first if this catalogue has never seen the tenant.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<TenantBlocks, QueryError> {
        if let Some(blocks) = self.snapshot(tenant) {
            return Ok(blocks);
        }
        let _refreshing = self.inner.refreshing.lock().await;
        if let Some(blocks) = self.snapshot(tenant) {
            return Ok(blocks);
        }
        self.refresh_locked(tenant).await
    }

    /// The tenant's blocks as currently known, without any request.
    pub fn snapshot(&self, tenant: &TenantId) -> Option<TenantBlocks> {
        self.inner.tenants.read().ok()?.get(tenant).cloned()
    }

    /// Adds a block this process just committed, with the bloom it already has in memory: the block is
    /// visible to lookups before the ingester lets go of its spans, at no request.
    pub fn insert(&self, meta: BlockMeta, bloom: TraceBloom) {
        let added_in = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let block = Arc::new(CatalogBlock { meta, bloom, added_in });
        let Ok(mut tenants) = self.inner.tenants.write() else { return };
        let current = tenants.entry(block.meta.tenant.clone()).or_default();
        if current.iter().any(|known| known.meta.block_id == block.meta.block_id) {
            return;
        }
        let mut blocks: Vec<_> = current.iter().cloned().collect();
        blocks.push(block);
        blocks.sort_by_key(|b| b.meta.block_id);
        *current = Arc::new(blocks);
        drop(tenants);
    }

    /// Forgets a block that has disappeared from the store (deleted by retention or compaction).
    pub fn remove(&self, tenant: &TenantId, block: BlockId) {
        let Ok(mut tenants) = self.inner.tenants.write() else { return };
        if let Some(current) = tenants.get_mut(tenant) {
            *current = Arc::new(current.iter().filter(|b| b.meta.block_id != block).cloned().collect());
        }
        drop(tenants);
    }

    /// Lists every tenant in the store and brings each one's blocks up to date. Run on an interval.
    pub async fn refresh_all(&self) -> Result<(), QueryError> {
        let _refreshing = self.inner.refreshing.lock().await;
        let mut tenants = list_tenants(&self.inner.storage).await?;
        if let Ok(known) = self.inner.tenants.read() {
            tenants.extend(known.keys().cloned());
        }
        tenants.sort();
        tenants.dedup();
        for tenant in tenants {
            self.refresh_locked(&tenant).await?;
        }
        Ok(())
    }

    /// Brings one tenant's blocks up to date: one LIST, then metadata and bloom of new blocks only.
    pub async fn refresh(&self, tenant: &TenantId) -> Result<TenantBlocks, QueryError> {
        let _refreshing = self.inner.refreshing.lock().await;
        self.refresh_locked(tenant).await
    }

    async fn refresh_locked(&self, tenant: &TenantId) -> Result<TenantBlocks, QueryError> {
        let started_in = self.inner.generation.load(Ordering::SeqCst);
        let listed = list_blocks(&self.inner.storage, tenant).await?.committed;
        let known: BTreeMap<BlockId, Arc<CatalogBlock>> = self
            .snapshot(tenant)
            .map(|blocks| blocks.iter().map(|b| (b.meta.block_id, b.clone())).collect())
            .unwrap_or_default();
        let new_ids: Vec<BlockId> = listed.iter().filter(|id| !known.contains_key(id)).copied().collect();
        let loaded: Vec<Option<(BlockMeta, TraceBloom)>> = futures::stream::iter(new_ids)
            .map(|block| self.load(tenant, block))
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        let added_in = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let Ok(mut tenants) = self.inner.tenants.write() else {
            return Err(QueryError::Internal("block catalogue lock poisoned".into()));
        };
        let listed: std::collections::BTreeSet<BlockId> = listed.into_iter().collect();
        // Keep what is listed, plus what was inserted after the LIST began (it may not show in it yet).
        let current = tenants.get(tenant).cloned().unwrap_or_default();
        let mut blocks: Vec<Arc<CatalogBlock>> =
            current.iter().filter(|b| listed.contains(&b.meta.block_id) || b.added_in > started_in).cloned().collect();
        for (meta, bloom) in loaded.into_iter().flatten() {
            if !blocks.iter().any(|b| b.meta.block_id == meta.block_id) {
                blocks.push(Arc::new(CatalogBlock { meta, bloom, added_in }));
            }
        }
        blocks.sort_by_key(|b| b.meta.block_id);
        let blocks = Arc::new(blocks);
        tenants.insert(tenant.clone(), blocks.clone());
        drop(tenants);
        Ok(blocks)
    }

    /// Metadata then bloom of one block; `None` when it was deleted between the LIST and the load.
    async fn load(&self, tenant: &TenantId, block: BlockId) -> Result<Option<(BlockMeta, TraceBloom)>, QueryError> {
        let storage = &self.inner.storage;
        let meta = match read_block_meta(storage, tenant, block).await {
            Ok(meta) => meta,
            Err(StorageError::BlockNotFound(_)) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        match load_bloom(storage, &meta).await {
            Ok(bloom) => Ok(Some((meta, bloom))),
            Err(StorageError::ObjectStore(object_store::Error::NotFound { .. })) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Blocks and bloom bytes held, across tenants.
    pub fn size(&self) -> (usize, usize) {
        let Ok(tenants) = self.inner.tenants.read() else { return (0, 0) };
        tenants
            .values()
            .flat_map(|blocks| blocks.iter())
            .fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.bloom.size_bytes()))
    }
}
