//! The querier's block catalogue: every committed block's metadata and bloom filter, per tenant, in
//! memory. Blocks are immutable, so each is loaded once; a refresh lists a tenant's blocks (one LIST) and
//! loads only the new ones. Lookups read a snapshot and never touch the object store to decide which
//! blocks may hold a trace.
//!
//! A compacted block names the blocks it replaces; the catalogue keeps those (they are still stored for
//! a grace period) but leaves them out of every snapshot from the moment it knows the compacted block,
//! in the same swap that adds it, so each span is counted exactly once at every instant. What queries never
//! read of a replaced block (its bloom, its tag summary) is dropped in that swap, and blocks share equal tag
//! summaries and value lists ([`TagInterner`]): a busy tenant has thousands of blocks waiting to be merged or
//! deleted, and the catalogue's memory must not grow by a full summary and bloom for each.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::{StreamExt, TryStreamExt};

use super::QueryError;
use crate::ids::{BlockId, TenantId, TraceId};
use crate::storage::block::{TagInterner, load_bloom};
use crate::storage::{
    BlockMeta, Storage, StorageError, TraceBloom, list_blocks, list_tenants, read_block_meta, replaced_blocks,
};
use crate::telemetry;

/// Metadata and bloom loads in flight at once while a refresh catches up with new blocks.
const LOAD_CONCURRENCY: usize = 16;

/// One committed block as the querier knows it.
#[derive(Debug)]
pub struct CatalogBlock {
    /// A replaced block's has no tag summary (readers treat that as "may hold anything").
    pub meta: BlockMeta,
    /// `None` once a known compacted block replaces this one: no query reads it then.
    bloom: Option<TraceBloom>,
    /// The catalogue generation in which the block was added; a refresh whose LIST started earlier must
    /// not drop it just because that LIST could not see it yet.
    added_in: u64,
}

impl CatalogBlock {
    /// Whether the block may hold spans of the trace: its bloom's answer, and yes when the bloom was dropped
    /// (a replaced block), so a block that became visible again is read rather than silently missed.
    pub fn may_hold_trace(&self, trace_id: &TraceId) -> bool {
        self.bloom.as_ref().is_none_or(|bloom| bloom.may_contain(trace_id))
    }

    /// Bytes of the bloom filter held (none for a replaced block).
    pub fn bloom_bytes(&self) -> usize {
        self.bloom.as_ref().map_or(0, TraceBloom::size_bytes)
    }

    /// The same block without what only queries read, once a compacted block replaces it.
    fn slimmed(self: &Arc<Self>) -> Arc<Self> {
        if self.bloom.is_none() && self.meta.tags.is_none() {
            return Arc::clone(self);
        }
        let meta = BlockMeta { tags: None, ..self.meta.clone() };
        Arc::new(Self { meta, bloom: None, added_in: self.added_in })
    }
}

/// What a refresh's requests found, before it is applied to the catalogue.
struct Listing {
    /// The catalogue generation when the LIST began.
    started_in: u64,
    listed: BTreeSet<BlockId>,
    loaded: Vec<(BlockMeta, TraceBloom)>,
}

/// The blocks of one tenant at one instant, oldest first. Cheap to clone and to hold during a lookup.
pub type TenantBlocks = Arc<Vec<Arc<CatalogBlock>>>;

/// One tenant's blocks at one instant: every stored block the catalogue knows, and the ones queries read
/// (all but those a known compacted block replaces).
#[derive(Clone, Debug, Default)]
pub struct CatalogView {
    pub all: TenantBlocks,
    pub visible: TenantBlocks,
    /// Whether the tenant's blocks have been listed at least once. A tenant first seen through this
    /// process's own commits (a WAL replay at start-up, before the first refresh) knows only those blocks
    /// until then, so it must still be listed before it answers a query.
    pub listed: bool,
}

impl CatalogView {
    fn of(mut blocks: Vec<Arc<CatalogBlock>>) -> Self {
        blocks.sort_by_key(|b| b.meta.block_id);
        let hidden = replaced_blocks(blocks.iter().map(|b| &b.meta));
        for block in blocks.iter_mut().filter(|b| hidden.contains(&b.meta.block_id)) {
            *block = block.slimmed();
        }
        let visible = blocks.iter().filter(|b| !hidden.contains(&b.meta.block_id)).cloned().collect();
        Self { all: Arc::new(blocks), visible: Arc::new(visible), listed: false }
    }

    /// Whether the catalogue knows the block, visible or replaced, or knows a compacted block that
    /// replaces it (the block itself may be deleted already): either way its spans are in the view.
    pub fn knows(&self, block: BlockId) -> bool {
        self.all.iter().any(|known| known.meta.block_id == block || known.meta.replaces.contains(&block))
    }
}

/// Every known tenant's blocks. Cheap to clone; clones share the same catalogue.
#[derive(Clone, Debug)]
pub struct BlockCatalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    tenants: RwLock<HashMap<TenantId, CatalogView>>,
    generation: AtomicU64,
    /// One refresh at a time, so two refreshes of a tenant cannot load the same blocks twice.
    refreshing: tokio::sync::Mutex<()>,
    /// Blocks found unreadable (a newer format, damaged metadata): blocks never change, so they are
    /// logged once and not read again at every refresh.
    unreadable: std::sync::Mutex<std::collections::HashSet<(TenantId, BlockId)>>,
    /// The tenants the last whole refresh found in the store; `None` until one has succeeded. Once
    /// known, a query for any other tenant is answered from what this process committed itself,
    /// without a LIST and without keeping anything for it (issue 26, item 11: any `X-Scope-OrgID` used to
    /// leave a tenant behind that every refresh listed again).
    stored_tenants: RwLock<Option<BTreeSet<TenantId>>>,
    /// One copy of each distinct tag summary and value list the blocks hold.
    tags: std::sync::Mutex<TagInterner>,
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
                unreadable: Default::default(),
                stored_tenants: RwLock::new(None),
                tags: Default::default(),
            }),
        }
    }

    /// The tenant's blocks. Once a whole refresh has listed the store, this makes no request: a tenant
    /// the store did not hold then has only the blocks this process committed since (the next refresh
    /// finds other processes' blocks). Before that, a tenant never listed is listed first.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<TenantBlocks, QueryError> {
        let listed = |catalog: &Self| catalog.view(tenant).filter(|view| view.listed).map(|view| view.visible);
        if let Some(blocks) = listed(self) {
            return Ok(blocks);
        }
        if self.is_unknown_to_the_store(tenant) {
            return Ok(self.snapshot(tenant).unwrap_or_default());
        }
        let _refreshing = self.inner.refreshing.lock().await;
        if let Some(blocks) = listed(self) {
            return Ok(blocks);
        }
        self.refresh_locked(tenant).await
    }

    /// True when a whole refresh has listed the store's tenants and `tenant` was not among them.
    fn is_unknown_to_the_store(&self, tenant: &TenantId) -> bool {
        let stored = self.inner.stored_tenants.read();
        stored.ok().is_some_and(|stored| stored.as_ref().is_some_and(|stored| !stored.contains(tenant)))
    }

    /// Tenants the catalogue keeps blocks for.
    pub fn tenant_count(&self) -> usize {
        self.inner.tenants.read().map(|tenants| tenants.len()).unwrap_or_default()
    }

    /// Whether the catalogue keeps blocks for `tenant` (it has data in the store, or committed here).
    pub fn has_tenant(&self, tenant: &TenantId) -> bool {
        self.inner.tenants.read().is_ok_and(|tenants| tenants.contains_key(tenant))
    }

    /// The tenant's visible blocks as currently known, without any request.
    pub fn snapshot(&self, tenant: &TenantId) -> Option<TenantBlocks> {
        self.view(tenant).map(|view| view.visible)
    }

    /// The tenant's blocks as currently known, replaced ones included, without any request.
    pub fn view(&self, tenant: &TenantId) -> Option<CatalogView> {
        self.inner.tenants.read().ok()?.get(tenant).cloned()
    }

    /// Adds a block this process just committed, with the bloom it already has in memory: the block is
    /// visible to lookups before the ingester lets go of its spans, at no request.
    pub fn insert(&self, meta: BlockMeta, bloom: TraceBloom) {
        let added_in = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let block = Arc::new(CatalogBlock { meta: self.shared_tags(meta), bloom: Some(bloom), added_in });
        let Ok(mut tenants) = self.inner.tenants.write() else { return };
        let current = tenants.entry(block.meta.tenant.clone()).or_default();
        if current.knows(block.meta.block_id) {
            return;
        }
        let mut blocks: Vec<_> = current.all.iter().cloned().collect();
        blocks.push(block);
        *current = CatalogView { listed: current.listed, ..CatalogView::of(blocks) };
    }

    /// Follows a compactor of this process: its commits switch queries over the moment they happen, its
    /// deletions are forgotten, both without waiting for a refresh.
    pub fn follow(&self, compactor: &crate::compaction::Compactor) {
        use crate::compaction::BlockChange;
        let catalog = self.clone();
        compactor.on_change(Box::new(move |change| match change {
            BlockChange::Committed(block) => catalog.insert(block.meta.clone(), block.filter.clone()),
            BlockChange::Deleted(tenant, block) => catalog.remove(tenant, *block),
        }));
    }

    /// Forgets a block that has disappeared from the store (deleted by retention or compaction).
    pub fn remove(&self, tenant: &TenantId, block: BlockId) {
        let Ok(mut tenants) = self.inner.tenants.write() else { return };
        if let Some(current) = tenants.get_mut(tenant) {
            let kept = current.all.iter().filter(|b| b.meta.block_id != block).cloned().collect();
            *current = CatalogView { listed: current.listed, ..CatalogView::of(kept) };
        }
    }

    /// Whether a refresh of every tenant ([`refresh_all`](Self::refresh_all)) has completed since start:
    /// from then on the catalogue holds what the store held, and changes only by later refreshes.
    pub fn listed_once(&self) -> bool {
        self.inner.stored_tenants.read().is_ok_and(|stored| stored.is_some())
    }

    /// Lists every tenant in the store and brings each one's blocks up to date, and forgets tenants that
    /// have no block left (deleted by retention). Run on an interval, off the request path.
    pub async fn refresh_all(&self) -> Result<(), QueryError> {
        let _refreshing = self.inner.refreshing.lock().await;
        let stored: BTreeSet<TenantId> = list_tenants(&self.inner.storage).await?.into_iter().collect();
        let mut tenants = stored.clone();
        if let Ok(known) = self.inner.tenants.read() {
            tenants.extend(known.keys().cloned());
        }
        // One tenant's failure (its LIST timing out, say) is logged and counted; the others refresh.
        for tenant in &tenants {
            if let Err(error) = self.refresh_locked(tenant).await {
                metrics::counter!(telemetry::TENANT_FAILURES, "component" => "catalog").increment(1);
                tracing::warn!(%tenant, %error, "block catalogue refresh of a tenant failed; the other tenants go on");
            }
        }
        if let Ok(mut known) = self.inner.tenants.write() {
            known.retain(|_, view| !view.all.is_empty());
        }
        if let Ok(mut tags) = self.inner.tags.lock() {
            tags.forget_unused();
        }
        if let Ok(mut known) = self.inner.stored_tenants.write() {
            *known = Some(stored);
        }
        Ok(())
    }

    /// Brings one tenant's blocks up to date: one LIST, then metadata and bloom of new blocks only.
    pub async fn refresh(&self, tenant: &TenantId) -> Result<TenantBlocks, QueryError> {
        let _refreshing = self.inner.refreshing.lock().await;
        self.refresh_locked(tenant).await
    }

    async fn refresh_locked(&self, tenant: &TenantId) -> Result<TenantBlocks, QueryError> {
        let listing = self.list_and_load(tenant).await?;
        self.apply(tenant, listing)
    }

    /// The request half of a refresh: one LIST, then metadata and bloom of the blocks not known yet.
    async fn list_and_load(&self, tenant: &TenantId) -> Result<Listing, QueryError> {
        let started_in = self.inner.generation.load(Ordering::SeqCst);
        let listed = list_blocks(&self.inner.storage, tenant).await?.committed;
        let known: BTreeSet<BlockId> =
            self.view(tenant).map(|view| view.all.iter().map(|b| b.meta.block_id).collect()).unwrap_or_default();
        let new_ids: Vec<BlockId> = {
            let unreadable = self.inner.unreadable.lock().ok();
            let skip = |id: BlockId| unreadable.as_ref().is_some_and(|set| set.contains(&(tenant.clone(), id)));
            listed.iter().filter(|id| !known.contains(id) && !skip(**id)).copied().collect()
        };
        let loaded: Vec<Option<(BlockMeta, TraceBloom)>> = futures::stream::iter(new_ids)
            .map(|block| self.load(tenant, block))
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Listing { started_in, listed: listed.into_iter().collect(), loaded: loaded.into_iter().flatten().collect() })
    }

    /// The in-memory half: keeps what was listed plus what was inserted after the LIST began (it may not
    /// show in it yet), adds what was loaded.
    fn apply(&self, tenant: &TenantId, listing: Listing) -> Result<TenantBlocks, QueryError> {
        let added_in = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let Ok(mut tenants) = self.inner.tenants.write() else {
            return Err(QueryError::Internal("block catalogue lock poisoned".into()));
        };
        let current = tenants.get(tenant).cloned().unwrap_or_default();
        let mut blocks: Vec<Arc<CatalogBlock>> = current
            .all
            .iter()
            .filter(|b| listing.listed.contains(&b.meta.block_id) || b.added_in > listing.started_in)
            .cloned()
            .collect();
        for (meta, bloom) in listing.loaded {
            if !blocks.iter().any(|b| b.meta.block_id == meta.block_id) {
                blocks.push(Arc::new(CatalogBlock { meta, bloom: Some(bloom), added_in }));
            }
        }
        let view = CatalogView { listed: true, ..CatalogView::of(blocks) };
        tenants.insert(tenant.clone(), view.clone());
        Ok(view.visible)
    }

    /// Metadata then bloom of one block; `None` when it was deleted between the LIST and the load.
    async fn load(&self, tenant: &TenantId, block: BlockId) -> Result<Option<(BlockMeta, TraceBloom)>, QueryError> {
        let storage = &self.inner.storage;
        let skip = |error: StorageError| {
            metrics::counter!(telemetry::BLOCKS_SKIPPED, "component" => "catalog", "reason" => error.skip_reason())
                .increment(1);
            tracing::warn!(%tenant, %block, %error, "block skipped by the catalogue: it cannot be read");
            if let Ok(mut unreadable) = self.inner.unreadable.lock() {
                unreadable.insert((tenant.clone(), block));
            }
            Ok(None)
        };
        let meta = match read_block_meta(storage, tenant, block).await {
            Ok(meta) => meta,
            Err(StorageError::BlockNotFound(_)) => return Ok(None),
            Err(error) if error.is_unreadable_block() => return skip(error),
            Err(error) => return Err(error.into()),
        };
        match load_bloom(storage, &meta).await {
            Ok(bloom) => Ok(Some((self.shared_tags(meta), bloom))),
            Err(StorageError::ObjectStore(object_store::Error::NotFound { .. })) => Ok(None),
            Err(error) if error.is_unreadable_block() => skip(error),
            Err(error) => Err(error.into()),
        }
    }

    /// `meta` with its tag summary replaced by the shared copy of an equal one.
    fn shared_tags(&self, mut meta: BlockMeta) -> BlockMeta {
        if let Some(tags) = meta.tags.take() {
            meta.tags = Some(match self.inner.tags.lock() {
                Ok(mut interner) => interner.intern(tags),
                Err(_) => tags,
            });
        }
        meta
    }

    /// What the catalogue holds in memory, across tenants.
    pub fn size(&self) -> CatalogSize {
        let tag_bytes = self.inner.tags.lock().map(|tags| tags.bytes()).unwrap_or_default();
        let Ok(tenants) = self.inner.tenants.read() else { return CatalogSize::default() };
        let blocks = tenants.values().flat_map(|view| view.all.iter());
        let (blocks, bloom_bytes) = blocks.fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.bloom_bytes()));
        CatalogSize { blocks, bloom_bytes, tag_bytes }
    }
}

/// What [`BlockCatalog::size`] reports for the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CatalogSize {
    /// Blocks known, replaced ones included.
    pub blocks: usize,
    /// Bloom filters held (replaced blocks hold none).
    pub bloom_bytes: usize,
    /// Estimated bytes of the distinct tag summaries and value lists held.
    pub tag_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::storage::block::{BlockWriteOptions, encode_block, upload_block, write_block};
    use crate::storage::delete_block;
    use crate::synth::TraceGenerator;

    async fn write(storage: &Storage, tenant: &TenantId, seed: u64) -> BlockMeta {
        let (batch, _) = encode_resource_spans(&TraceGenerator::new(seed).next_trace()).unwrap();
        write_block(storage, tenant, BlockId::new_random(), vec![batch], &BlockWriteOptions::default()).await.unwrap()
    }

    fn ids(blocks: &TenantBlocks) -> Vec<BlockId> {
        blocks.iter().map(|b| b.meta.block_id).collect()
    }

    #[tokio::test]
    async fn a_tenant_loads_once_then_lookups_cost_nothing_and_refresh_follows_the_store() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::new("t").unwrap();
        let first = write(&storage, &tenant, 1).await;
        let catalog = BlockCatalog::new(storage.clone());
        assert!(catalog.snapshot(&tenant).is_none());

        let before = storage.request_counts();
        assert_eq!(ids(&catalog.blocks(&tenant).await.unwrap()), [first.block_id]);
        let load = storage.request_counts().since(&before);
        assert_eq!((load.list, load.get), (1, 2), "one LIST, then the block's metadata and bloom");
        let before = storage.request_counts();
        catalog.blocks(&tenant).await.unwrap();
        assert_eq!(storage.request_counts().since(&before).total(), 0, "known tenant: no request");

        let second = write(&storage, &tenant, 2).await;
        delete_block(&storage, &tenant, first.block_id).await.unwrap();
        let before = storage.request_counts();
        assert_eq!(ids(&catalog.refresh(&tenant).await.unwrap()), [second.block_id]);
        let refresh = storage.request_counts().since(&before);
        assert_eq!((refresh.list, refresh.get), (1, 2), "only the new block is loaded");
        assert_eq!(catalog.size().blocks, 1);
    }

    #[tokio::test]
    async fn an_inserted_block_is_visible_at_once_and_kept_by_a_refresh_that_started_before_it() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::new("t").unwrap();
        let catalog = BlockCatalog::new(storage.clone());
        catalog.refresh(&tenant).await.unwrap();

        let (batch, _) = encode_resource_spans(&TraceGenerator::new(7).next_trace()).unwrap();
        let block = encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
        // A refresh's LIST runs before this process commits a block, so it cannot see it…
        let listing = catalog.list_and_load(&tenant).await.unwrap();
        catalog.insert(block.meta.clone(), block.filter.clone());
        assert_eq!(ids(&catalog.snapshot(&tenant).unwrap()), [block.meta.block_id], "visible at once");
        // …and applying that refresh must not drop the block (its spans have left the ingester).
        assert_eq!(ids(&catalog.apply(&tenant, listing).unwrap()), [block.meta.block_id]);

        // Once uploaded, a later refresh finds it listed and keeps the same entry (no reload).
        upload_block(&storage, &block).await.unwrap();
        let before = storage.request_counts();
        assert_eq!(ids(&catalog.refresh(&tenant).await.unwrap()), [block.meta.block_id]);
        assert_eq!(storage.request_counts().since(&before).get, 0);

        // A block inserted but never stored (and older than the refresh) is dropped by the next refresh.
        let (batch, _) = encode_resource_spans(&TraceGenerator::new(8).next_trace()).unwrap();
        let ghost = encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
        catalog.insert(ghost.meta.clone(), ghost.filter.clone());
        assert_eq!(catalog.snapshot(&tenant).unwrap().len(), 2);
        assert_eq!(ids(&catalog.refresh(&tenant).await.unwrap()), [block.meta.block_id]);
    }

    /// A restarted server commits its WAL replay's blocks before its first refresh: the tenant is then
    /// known through those alone, and its first query must still list the blocks stored before.
    #[tokio::test]
    async fn a_tenant_known_only_by_own_commits_is_listed_before_it_answers() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::new("t").unwrap();
        let stored = [write(&storage, &tenant, 1).await.block_id, write(&storage, &tenant, 2).await.block_id];
        let catalog = BlockCatalog::new(storage.clone());
        let (batch, _) = encode_resource_spans(&TraceGenerator::new(3).next_trace()).unwrap();
        let replayed = encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
        upload_block(&storage, &replayed).await.unwrap();
        catalog.insert(replayed.meta.clone(), replayed.filter.clone());
        let mut expected = vec![stored[0], stored[1], replayed.meta.block_id];
        expected.sort();
        assert_eq!(ids(&catalog.blocks(&tenant).await.unwrap()), expected);
    }

    #[tokio::test]
    async fn blocks_with_equal_tag_summaries_share_one_copy_until_none_is_left() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::new("t").unwrap();
        // The same spans in two blocks: equal summaries.
        let (a, b) = (write(&storage, &tenant, 1).await, write(&storage, &tenant, 1).await);
        let catalog = BlockCatalog::new(storage.clone());
        let blocks = catalog.blocks(&tenant).await.unwrap();
        let tags: Vec<_> = blocks.iter().map(|block| block.meta.tags.clone().unwrap()).collect();
        assert_eq!(*tags[0], *a.tags.unwrap());
        assert!(Arc::ptr_eq(&tags[0], &tags[1]), "one copy for both blocks");
        let held = catalog.size().tag_bytes;
        assert!(held > 0);

        // A third, different block adds its own summary; once all are deleted the copies are freed.
        let c = write(&storage, &tenant, 2).await;
        catalog.refresh_all().await.unwrap();
        assert!(catalog.size().tag_bytes > held);
        for block in [a.block_id, b.block_id, c.block_id] {
            delete_block(&storage, &tenant, block).await.unwrap();
        }
        drop((blocks, tags));
        catalog.refresh_all().await.unwrap();
        assert_eq!(catalog.size().tag_bytes, 0);
    }

    #[tokio::test]
    async fn a_compacted_block_hides_what_it_replaces_in_the_same_swap_that_adds_it() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::new("t").unwrap();
        let (a, b) = (write(&storage, &tenant, 1).await, write(&storage, &tenant, 2).await);
        let catalog = BlockCatalog::new(storage.clone());
        assert_eq!(ids(&catalog.blocks(&tenant).await.unwrap()).len(), 2);

        let (batch, _) = encode_resource_spans(&TraceGenerator::new(3).next_trace()).unwrap();
        let mut compacted =
            encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
        compacted.meta.replaces = vec![a.block_id, b.block_id];
        catalog.insert(compacted.meta.clone(), compacted.filter.clone());
        assert_eq!(ids(&catalog.snapshot(&tenant).unwrap()), [compacted.meta.block_id]);
        let view = catalog.view(&tenant).unwrap();
        assert!(view.knows(a.block_id) && view.all.len() == 3, "replaced blocks stay known, so no reload");
        // What no query reads of a replaced block is dropped; were it visible again, it would be read.
        let replaced: Vec<_> = view.all.iter().filter(|block| block.meta.block_id != compacted.meta.block_id).collect();
        assert!(replaced.iter().all(|block| block.bloom_bytes() == 0 && block.meta.tags.is_none()));
        assert!(replaced.iter().all(|block| block.may_hold_trace(&TraceId::from_slice(&[7; 16]).unwrap())));
        assert_eq!(catalog.size().bloom_bytes, compacted.filter.size_bytes(), "only the visible block's bloom");

        // Another process learns of the switch by listing: the replaced blocks are still stored.
        upload_block(&storage, &compacted).await.unwrap();
        let other = BlockCatalog::new(storage.clone());
        assert_eq!(ids(&other.blocks(&tenant).await.unwrap()), [compacted.meta.block_id]);
        // Once they are deleted, nothing changes for readers.
        delete_block(&storage, &tenant, a.block_id).await.unwrap();
        assert_eq!(ids(&other.refresh(&tenant).await.unwrap()), [compacted.meta.block_id]);
        let view = other.view(&tenant).unwrap();
        assert!(view.all.iter().all(|block| block.meta.block_id != a.block_id), "the deleted block is forgotten");
        // ... but its spans are in the view, in the block that replaces it: an ingester's copy of it
        // (handed off after its commit) must be left out, not added.
        assert!(view.knows(a.block_id));
        assert!(!view.knows(BlockId::new_random()));
    }
}
