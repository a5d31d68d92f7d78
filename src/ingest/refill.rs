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
