//! Per-tenant block listing and deletion. A block is listed only once its metadata object exists, so a
//! reader never sees a half-written block; deletion removes the metadata first for the same reason.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::block::BlockMeta;
use super::{Storage, StorageError, layout};
use crate::ids::{BlockId, TenantId};
use crate::telemetry;

/// What a listing found under a tenant's block prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlockListing {
    /// Blocks whose metadata exists, oldest first (block IDs are time-ordered).
    pub committed: Vec<BlockId>,
    /// Prefixes holding objects but no metadata: uploads in progress or abandoned, for later clean-up.
    pub uncommitted: Vec<UncommittedBlock>,
}

/// A block prefix without metadata: an upload in progress, or the leftover of one that crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UncommittedBlock {
    pub block: BlockId,
    /// When its newest object was written (unix ms): an upload still retrying keeps this recent, so only
    /// prefixes untouched for a grace period are treated as abandoned.
    pub last_modified_unix_ms: u64,
}

/// Lists a tenant's blocks with one (paginated) LIST request.
pub async fn list_blocks(storage: &Storage, tenant: &TenantId) -> Result<BlockListing, StorageError> {
    let prefix = layout::blocks_prefix(tenant);
    let objects: Vec<_> = storage.object_store().list(Some(&prefix)).try_collect().await?;
    let mut found: BTreeMap<BlockId, (bool, u64)> = BTreeMap::new();
    for object in objects {
        let Some((block, file)) = block_and_file(&prefix, &object.location) else {
            continue;
        };
        let entry = found.entry(block).or_default();
        entry.0 |= file == layout::META_FILE;
        entry.1 = entry.1.max(object.last_modified.timestamp_millis().max(0) as u64);
    }
    let mut listing = BlockListing::default();
    for (block, (committed, last_modified_unix_ms)) in found {
        if committed {
            listing.committed.push(block)
        } else {
            listing.uncommitted.push(UncommittedBlock { block, last_modified_unix_ms })
        }
    }
    Ok(listing)
}

/// Which blocks readers must not read, and since when (unix ms) each has been hidden.
#[derive(Debug, Default)]
pub struct Replacements {
    /// Blocks whose spans a committed compacted block holds, and compacted blocks fenced off.
    pub hidden: HashSet<BlockId>,
    /// For each hidden block, the earliest commit of a block that hides it: it may be deleted once that
    /// is the deletion grace in the past.
    pub since_unix_ms: HashMap<BlockId, u64>,
}

/// The blocks a set of committed blocks hides: every block a compacted block replaces, so each span
/// counts once from the instant the compacted block exists; and a compacted block *fenced off* by a
/// merge committed under a later lease epoch that replaces a block in common (issue 26, item 17: a
/// compactor that lost its lease mid-commit and committed anyway). A fenced block's own replacements do
/// not count, so nothing it alone replaced disappears.
pub fn replacements<'a>(metas: impl IntoIterator<Item = &'a BlockMeta>) -> Replacements {
    let compacted: Vec<&BlockMeta> = metas.into_iter().filter(|meta| !meta.replaces.is_empty()).collect();
    let epoch = |meta: &BlockMeta| meta.lease_epoch.unwrap_or(0);
    let mut highest: HashMap<BlockId, u64> = HashMap::new();
    for meta in &compacted {
        for input in &meta.replaces {
            let top = highest.entry(*input).or_default();
            *top = (*top).max(epoch(meta));
        }
    }
    let is_fenced = |meta: &BlockMeta| meta.replaces.iter().any(|input| highest[input] > epoch(meta));
    let (fenced, kept): (Vec<&BlockMeta>, Vec<&BlockMeta>) = compacted.into_iter().partition(|meta| is_fenced(meta));
    let mut replacements = Replacements::default();
    for meta in kept {
        for input in &meta.replaces {
            let since = replacements.since_unix_ms.entry(*input).or_insert(meta.created_unix_ms);
            *since = (*since).min(meta.created_unix_ms);
        }
    }
    // Fenced blocks are rare (a lease lost mid-commit); each is hidden since the block that fences it.
    for meta in fenced {
        let fenced_since = meta.replaces.iter().filter_map(|input| replacements.since_unix_ms.get(input)).min();
        let since = fenced_since.copied().unwrap_or(meta.created_unix_ms);
        tracing::debug!(block = %meta.block_id, "a compacted block committed under a lost lease is hidden");
        replacements.since_unix_ms.insert(meta.block_id, since);
    }
    replacements.hidden = replacements.since_unix_ms.keys().copied().collect();
    replacements
}

/// The blocks readers must not read ([`replacements`]).
pub fn replaced_blocks<'a>(metas: impl IntoIterator<Item = &'a BlockMeta>) -> HashSet<BlockId> {
    replacements(metas).hidden
}

fn block_and_file(prefix: &Path, location: &Path) -> Option<(BlockId, String)> {
    let mut parts = location.prefix_match(prefix)?;
    let block = parts.next()?.as_ref().parse().ok()?;
    let file = parts.next()?.as_ref().to_owned();
    parts.next().is_none().then_some((block, file))
}

/// Tenants that have at least one object in the store. A top-level prefix that is not a tenant's
/// (something else shares the bucket) is logged and counted, never dropped unsaid: compaction, retention
/// and the catalogue all start from this list, so a tenant missing from it would silently never be
/// compacted, expired or read.
pub async fn list_tenants(storage: &Storage) -> Result<Vec<TenantId>, StorageError> {
    let listing = storage.object_store().list_with_delimiter(None).await?;
    let mut tenants = Vec::with_capacity(listing.common_prefixes.len());
    for prefix in &listing.common_prefixes {
        let name = prefix.filename().unwrap_or_default();
        match tenant_of_prefix(name) {
            Some(tenant) => tenants.push(tenant),
            None => {
                metrics::counter!(telemetry::FOREIGN_PREFIXES).increment(1);
                tracing::warn!(prefix = %name, "a top-level prefix of the bucket is not a tenant's; it is left alone");
            }
        }
    }
    tenants.sort();
    Ok(tenants)
}

/// The tenant whose objects live under the top-level prefix `name`, as the store lists it. Object names
/// percent-encode the characters a path part may not hold as such (a tenant `team*` is stored under
/// `team%2A`, `..` under `%2E%2E`), so the listed name is decoded before it is checked.
pub fn tenant_of_prefix(name: &str) -> Option<TenantId> {
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8().ok()?;
    TenantId::new(&decoded).ok()
}

/// Reads and validates one block's metadata.
pub async fn read_block_meta(storage: &Storage, tenant: &TenantId, block: BlockId) -> Result<BlockMeta, StorageError> {
    let path = layout::meta_path(tenant, block);
    let bytes = match storage.object_store().get(&path).await {
        Ok(result) => result.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(StorageError::BlockNotFound(block.to_string()));
        }
        Err(error) => return Err(error.into()),
    };
    BlockMeta::from_json(&bytes, path.as_ref())
}

/// Deletes a block: metadata first (the block stops existing for readers), then its other objects.
/// Deleting a block that is already gone succeeds.
pub async fn delete_block(storage: &Storage, tenant: &TenantId, block: BlockId) -> Result<(), StorageError> {
    let store = storage.object_store();
    for path in [layout::meta_path(tenant, block), layout::bloom_path(tenant, block), layout::data_path(tenant, block)]
    {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Deletes the objects an upload left without committing, unless the block has committed or been
/// written to since the listing that called it a leftover: the prefix is listed again right before the
/// deletion, and it is left alone if it holds a `meta.json` (a commit: never deleted as a leftover) or an
/// object written after `untouched_before_unix_ms` (an upload, such as a WAL replay re-uploading the
/// same block, is under way). Returns whether anything was deleted.
pub async fn delete_leftover(
    storage: &Storage,
    tenant: &TenantId,
    block: BlockId,
    untouched_before_unix_ms: u64,
) -> Result<bool, StorageError> {
    let store = storage.object_store();
    let prefix = layout::block_prefix(tenant, block);
    let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    let committed = objects.iter().any(|object| object.location.filename() == Some(layout::META_FILE));
    let written_since =
        objects.iter().any(|object| object.last_modified.timestamp_millis() >= untouched_before_unix_ms as i64);
    if committed || written_since {
        tracing::info!(%tenant, %block, committed, written_since, "not a leftover any more; left alone");
        return Ok(false);
    }
    for object in &objects {
        match store.delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(!objects.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{PutPayload, memory::InMemory};

    #[tokio::test]
    async fn a_leftover_that_committed_or_was_written_since_is_left_alone() {
        let storage =
            Storage::from_store(std::sync::Arc::new(InMemory::new()), "memory", super::super::RangeReads::Exact);
        let store = storage.object_store();
        let tenant = TenantId::new("t").unwrap();
        let block = BlockId::from_u128(7);
        store.put(&layout::data_path(&tenant, block), PutPayload::from_static(b"data")).await.unwrap();
        let listing = list_blocks(&storage, &tenant).await.unwrap();
        assert_eq!(listing.uncommitted.len(), 1, "a leftover by the listing");
        let later = |millis: i64| (now_ms() + millis) as u64;

        // The upload commits after the listing: nothing is deleted, meta.json least of all.
        store.put(&layout::meta_path(&tenant, block), PutPayload::from_static(b"{}")).await.unwrap();
        assert!(!delete_leftover(&storage, &tenant, block, later(60_000)).await.unwrap());
        assert!(store.head(&layout::data_path(&tenant, block)).await.is_ok());
        assert!(store.head(&layout::meta_path(&tenant, block)).await.is_ok());

        // An object written after the grace began: an upload under way.
        let other = BlockId::from_u128(8);
        store.put(&layout::data_path(&tenant, other), PutPayload::from_static(b"data")).await.unwrap();
        assert!(!delete_leftover(&storage, &tenant, other, later(-60_000)).await.unwrap());
        assert!(store.head(&layout::data_path(&tenant, other)).await.is_ok());
        // Untouched since before the grace: deleted.
        assert!(delete_leftover(&storage, &tenant, other, later(60_000)).await.unwrap());
        assert!(store.head(&layout::data_path(&tenant, other)).await.is_err());
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    }

    #[test]
    fn listed_prefixes_are_decoded_before_they_are_checked() {
        let tenant = |name: &str| tenant_of_prefix(name).map(|tenant| tenant.as_str().to_owned());
        assert_eq!(tenant("team-a").as_deref(), Some("team-a"));
        assert_eq!(tenant("team%2A").as_deref(), Some("team*"));
        assert_eq!(tenant("%2A").as_deref(), Some("*"));
        assert_eq!(tenant("%2E%2E%2E").as_deref(), Some("..."));
        // Not tenants: `..`, characters a tenant may not hold, bytes that are not UTF-8, nothing.
        for name in ["%2E%2E", "a%2Fb", "a%20b", "%FF", "", "100%"] {
            assert_eq!(tenant(name), None, "{name}");
        }
    }

    #[test]
    fn every_tenant_name_survives_object_naming() {
        for name in ["a!b", "a-b", "a_b", "a.b", "*", "a'b", "(x)", "...", ".x"] {
            let tenant = TenantId::new(name).unwrap();
            let prefix = layout::blocks_prefix(&tenant);
            let first = prefix.parts().next().unwrap();
            assert_eq!(tenant_of_prefix(first.as_ref()), Some(tenant), "{name} stored as {prefix}");
        }
    }
}
