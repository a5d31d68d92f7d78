//! Rebuilding the ingester's state from the WAL at start-up.
//!
//! Records are read in order, one segment at a time. Span records wait as raw protobuf (their smallest
//! form) until a cut record claims them; a claimed group is decoded and encoded straight into a block
//! under the ID the cut record names, so a block that was committed before the crash is recognised by
//! that ID (the uploader checks) and never written twice. Spans no cut record claims go back into the
//! open buffers.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::buffer::{Buffers, KEY_BYTES, PendingBlock, PendingStage, SpanKey, span_keys};
use super::quarantine::Quarantine;
use super::{IngestError, payload_to_batch};
use crate::ids::TenantId;
use crate::storage::{BlockWriteOptions, StorageError, encode_block};
use crate::wal::{Record, Wal, WalPosition};

/// Replays every record of the WAL into fresh buffers. Records that cannot become rows, and cut groups
/// that cannot become a block, are quarantined (kept on disk, named) rather than stopping the start.
pub(super) async fn replay(
    wal: &Wal,
    block_options: &BlockWriteOptions,
    quarantine: &Quarantine,
) -> Result<Buffers, IngestError> {
    let mut unclaimed: BTreeMap<u64, (TenantId, WalPosition, Bytes)> = BTreeMap::new();
    let mut buffers = Buffers::default();
    let (mut span_records, mut cut_blocks) = (0usize, 0usize);
    for replayed in wal.replay() {
        let (position, record) = replayed?;
        match record {
            Record::Spans { tenant, payload } => {
                span_records += 1;
                unclaimed.insert(position.seq, (tenant, position, payload));
            }
            Record::Cut { tenant, block, sequences } => {
                let claimed: Vec<(u64, WalPosition, Bytes)> = sequences
                    .iter()
                    .filter_map(|seq| unclaimed.remove(&seq).map(|(_, position, payload)| (seq, position, payload)))
                    .collect();
                if claimed.is_empty() {
                    // Its spans' segments are gone: the block was committed and the WAL released them.
                    continue;
                }
                cut_blocks += 1;
                let min_segment = claimed.iter().map(|(_, p, _)| p.segment).min().unwrap_or(0);
                let (encoded, keys) = match encode_claimed(&tenant, block, &claimed, block_options).await {
                    Ok(encoded) => encoded,
                    Err(error) => {
                        let records: Vec<(u64, Bytes)> =
                            claimed.into_iter().map(|(seq, _, payload)| (seq, payload)).collect();
                        let reason = format!("the WAL replay could not make block {block} of them: {error}");
                        quarantine
                            .keep_records(&tenant, &block.to_string(), &records, &reason)
                            .map_err(IngestError::Quarantine)?;
                        continue;
                    }
                };
                let bytes = encoded.data.len() + encoded.bloom.len() + keys.len() * KEY_BYTES;
                buffers.add_replayed_pending(
                    &tenant,
                    PendingBlock {
                        block,
                        sequences,
                        min_segment,
                        stage: PendingStage::Encoded(Arc::new(encoded)),
                        bytes,
                        keys,
                    },
                );
            }
        }
    }
    let open_records = unclaimed.len();
    for (seq, (tenant, position, payload)) in unclaimed {
        match payload_to_batch(seq, &payload) {
            Ok(batch) => buffers.add(&tenant, batch, position),
            Err(error) => {
                let reason = format!("the WAL replay could not read the record: {error}");
                quarantine
                    .keep_records(&tenant, &format!("record-{seq}"), &[(seq, payload)], &reason)
                    .map_err(IngestError::Quarantine)?;
            }
        }
    }
    if span_records > 0 {
        tracing::info!(span_records, cut_blocks, open_records, "WAL replayed");
    }
    Ok(buffers)
}

/// The block a cut record's spans make, and their span keys: held until the block commits, so a client
/// resending those spans after the restart is not stored twice (issue 26, Add 6).
async fn encode_claimed(
    tenant: &TenantId,
    block: crate::ids::BlockId,
    claimed: &[(u64, WalPosition, Bytes)],
    options: &BlockWriteOptions,
) -> Result<(crate::storage::EncodedBlock, Vec<SpanKey>), IngestError> {
    let batches =
        claimed.iter().map(|(seq, _, payload)| payload_to_batch(*seq, payload)).collect::<Result<Vec<_>, _>>()?;
    let keys = batches.iter().flat_map(span_keys).collect();
    let (options, owner) = (options.clone(), tenant.clone());
    let encoded = tokio::task::spawn_blocking(move || encode_block(&owner, block, &batches, &options))
        .await
        .map_err(StorageError::from)??;
    Ok((encoded, keys))
}
