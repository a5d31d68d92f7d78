//! The footer cache: decoded Parquet footers and page indexes of recently hit blocks, within a byte
//! budget. A warm lookup then fetches only the pages that hold the trace; a cold one pays one footer read.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::ids::{BlockId, TenantId};
use crate::storage::block::{BlockFooter, ReadTally, load_footer_tallied};
use crate::storage::{BlockMeta, Storage, StorageError};
use crate::telemetry;

/// Footers are a few hundred KB for a 64 MiB block; this is the guess the cache sizes its table with.
const TYPICAL_FOOTER_BYTES: u64 = 256 * 1024;

#[derive(Clone)]
struct FooterWeight;

impl Weighter<(TenantId, BlockId), Arc<BlockFooter>> for FooterWeight {
    fn weight(&self, _key: &(TenantId, BlockId), footer: &Arc<BlockFooter>) -> u64 {
        footer.memory_size() as u64
    }
}

/// Least-recently-used footers, bounded by the memory they hold. Concurrent misses on one block share
/// a single read.
pub struct FooterCache {
    cache: Cache<(TenantId, BlockId), Arc<BlockFooter>, FooterWeight>,
}

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterCache").field("bytes", &self.cache.weight()).field("len", &self.cache.len()).finish()
    }
}

impl FooterCache {
    /// A cache holding at most `budget_bytes` of decoded footers.
    pub fn new(budget_bytes: u64) -> Self {
        let items = (budget_bytes / TYPICAL_FOOTER_BYTES).clamp(16, 1 << 20) as usize;
        Self { cache: Cache::with_weighter(items, budget_bytes, FooterWeight) }
    }

    /// The block's footer, read from the store (reads added to `tally`) on a miss.
    pub async fn get(
        &self,
        storage: &Storage,
        meta: &BlockMeta,
        tally: &Arc<ReadTally>,
    ) -> Result<Arc<BlockFooter>, StorageError> {
        let key = (meta.tenant.clone(), meta.block_id);
        if let Some(footer) = self.cache.get(&key) {
            metrics::counter!(telemetry::FOOTER_CACHE, "result" => "hit").increment(1);
            return Ok(footer);
        }
        metrics::counter!(telemetry::FOOTER_CACHE, "result" => "miss").increment(1);
        self.cache
            .get_or_insert_async(&key, async { load_footer_tallied(storage, meta, tally.clone()).await.map(Arc::new) })
            .await
    }

    /// Drops a block's footer (the block is gone).
    pub fn remove(&self, tenant: &TenantId, block: BlockId) {
        self.cache.remove(&(tenant.clone(), block));
    }

    /// Bytes of footers held.
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }
}
