//! Refilling the resend window at start-up: after a restart the window is empty, but a client may still
//! resend requests whose first copies reached blocks just before the process stopped (their WAL
//! records already released, so the replay does not bring them back). The newest committed blocks of
//! every tenant, cut within the window, give their span keys back, as many as the window has room for.
//!
//! Reads the store (listings, metadata, the two ID columns); a store that cannot be read leaves the
//! window empty with a warning rather than keeping the ingester from starting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::buffer::{SpanKey, span_keys};
use super::committed::CommittedKeys;
use crate::ids::{BlockId, TenantId};
use crate::spans::schema::col;
use crate::storage::block::{load_footer, read_all};
use crate::storage::blocks::{list_blocks, list_tenants, replaced_blocks};
use crate::storage::{BlockMeta, Storage, StorageError, read_block_meta};

/// Longest the refill may take: a slow store delays the start by this much at most.
const REFILL_TIMEOUT: Duration = Duration::from_secs(60);

/// Fills `window` with the keys of the newest blocks cut within `span` of now.
pub(super) async fn refill(storage: &Storage, window: &mut CommittedKeys, span: Duration) {
    let room = window.room();
    if room == 0 {
        return;
    }
    let started = std::time::Instant::now();
    match tokio::time::timeout(REFILL_TIMEOUT, recent_keys(storage, span, room)).await {
        Ok(Ok(blocks)) => {
            let (count, keys) = (blocks.len(), blocks.iter().map(|(_, keys)| keys.len()).sum::<usize>());
            for (tenant, keys) in blocks {
                window.remember(&tenant, keys);
            }
            if count > 0 {
                tracing::info!(
                    blocks = count,
                    keys,
                    took_ms = started.elapsed().as_millis() as u64,
                    "resend window refilled from recent blocks"
                );
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not refill the resend window from recent blocks: resends of their spans may be stored twice until compaction");
        }
        Err(_) => {
            tracing::warn!(
                timeout_s = REFILL_TIMEOUT.as_secs(),
                "refilling the resend window took too long: resends of recent blocks' spans may be stored twice until compaction"
            );
        }
    }
}

/// The span keys of the newest blocks (not hidden by a compacted block) cut within `span` of now, at most
/// about `room` keys, oldest block first.
async fn recent_keys(
    storage: &Storage,
    span: Duration,
    room: usize,
) -> Result<Vec<(TenantId, Vec<SpanKey>)>, StorageError> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let since_ms = now_ms.saturating_sub(span.as_millis() as u64);
    let mut recent: Vec<(TenantId, BlockId)> = Vec::new();
    for tenant in list_tenants(storage).await? {
        let listing = list_blocks(storage, &tenant).await?;
        let cut_within =
            listing.committed.into_iter().filter(|block| block.created_unix_ms().is_some_and(|ms| ms >= since_ms));
        recent.extend(cut_within.map(|block| (tenant.clone(), block)));
    }
    // Newest first, so a full window keeps the blocks a resend is likeliest to hit.
    recent.sort_by_key(|(_, block)| std::cmp::Reverse(*block));
    let mut metas: Vec<BlockMeta> = Vec::new();
    let mut keys = 0;
    for (tenant, block) in recent {
        let meta = match read_block_meta(storage, &tenant, block).await {
            Ok(meta) => meta,
            // Deleted since the listing (compacted away): its spans are in the block that replaced it.
            Err(StorageError::BlockNotFound(_)) => continue,
            // A block no reader can read (a newer format, damaged metadata) holds no keys we could use.
            Err(error) if error.is_unreadable_block() => continue,
            Err(error) => return Err(error),
        };
        // A block that does not fit (a large compacted one) is passed over for older, smaller ones.
        if keys + meta.span_count as usize > room {
            continue;
        }
        keys += meta.span_count as usize;
        metas.push(meta);
    }
    let hidden = replaced_blocks(&metas);
    let mut found = Vec::new();
    for meta in metas.iter().rev().filter(|meta| !hidden.contains(&meta.block_id)) {
        let footer = load_footer(storage, meta).await?;
        let batches = read_all(storage, meta, &footer, Some(&[col::TRACE_ID, col::SPAN_ID])).await?;
        found.push((meta.tenant.clone(), batches.iter().flat_map(span_keys).collect()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::storage::block::write_block;
    use crate::synth::TraceGenerator;
    use arrow::array::RecordBatch;
    use object_store::ObjectStoreExt;

    async fn write(storage: &Storage, tenant: &TenantId, id: BlockId, rows: &RecordBatch) -> BlockId {
        write_block(storage, tenant, id, vec![rows.clone()], &Default::default()).await.unwrap().block_id
    }

    fn held(window: &CommittedKeys, tenant: &TenantId, keys: &[SpanKey]) -> usize {
        keys.iter().filter(|key| window.sets_of(tenant).iter().any(|set| set.contains(key))).count()
    }

    /// Blocks are errors one by one (issue 26, defect 7): a block whose metadata no reader can read keeps
    /// the refill from nothing else; blocks cut before the window are left out.
    #[tokio::test]
    async fn the_refill_takes_the_readable_blocks_cut_within_the_window() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::single_tenant();
        let batch = |seed| encode_resource_spans(&TraceGenerator::new(seed).next_trace()).unwrap().0;
        let (good, bad, old) = (batch(1), batch(2), batch(3));
        write(&storage, &tenant, BlockId::new_random(), &good).await;
        let damaged = write(&storage, &tenant, BlockId::new_random(), &bad).await;
        let meta = crate::storage::layout::meta_path(&tenant, damaged);
        storage.object_store().put(&meta, b"{ not json".to_vec().into()).await.unwrap();
        // An ID made an hour ago (a UUIDv7's first 48 bits are its unix milliseconds).
        let hour_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() - 3_600_000;
        write(&storage, &tenant, BlockId::from_u128(hour_ago << 80 | 7 << 76 | 1), &old).await;

        let mut window = CommittedKeys::new(Duration::from_secs(600), 64 << 20);
        refill(&storage, &mut window, Duration::from_secs(600)).await;
        assert_eq!(held(&window, &tenant, &span_keys(&good)), good.num_rows(), "the readable recent block");
        assert_eq!(held(&window, &tenant, &span_keys(&old)), 0, "a block cut an hour ago is outside the window");
        assert_eq!(window.size().0, good.num_rows());
    }
}
