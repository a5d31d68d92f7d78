//! `spanlake verify`: proves that every span a load run saw acknowledged is stored exactly once, by
//! reading the IDs of every committed block of the tenant.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use arrow::array::AsArray;

use super::LoadgenError;
use crate::ids::TenantId;
use crate::spans::schema::col;
use crate::storage::block::{load_footer, read_all};
use crate::storage::{Storage, StorageError, list_blocks, read_block_meta};

/// A trace ID and span ID side by side: the identity of a span.
pub(crate) type SpanKey = [u8; 24];

/// What the check found.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Distinct spans the load run recorded as acknowledged.
    pub acknowledged: usize,
    /// Spans in the tenant's blocks (duplicates counted each time).
    pub stored: usize,
    /// Acknowledged spans found in no block.
    pub missing: usize,
    /// Distinct spans stored more than once (acknowledged or not).
    pub duplicated: usize,
    /// A few missing spans as `trace_id span_id`, for the error message.
    pub missing_examples: Vec<String>,
}

impl VerifyReport {
    /// True when every acknowledged span is stored exactly once and nothing is stored twice.
    pub fn passed(&self) -> bool {
        self.missing == 0 && self.duplicated == 0
    }
}

fn parse_line(line: &str) -> Option<SpanKey> {
    let (trace, span) = line.trim().split_once(' ')?;
    let mut key = [0u8; 24];
    hex::decode_to_slice(trace, &mut key[..16]).ok()?;
    hex::decode_to_slice(span, &mut key[16..]).ok()?;
    Some(key)
}

/// Checks the acknowledged spans listed in `ids_file` against the tenant's committed blocks.
pub async fn verify(ids_file: &Path, storage: &Storage, tenant: &TenantId) -> Result<VerifyReport, LoadgenError> {
    let file_error = |source| LoadgenError::VerifyFile { path: ids_file.to_owned(), source };
    let reader = std::io::BufReader::new(std::fs::File::open(ids_file).map_err(file_error)?);
    let mut acknowledged = std::collections::HashSet::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(file_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let key = parse_line(&line).ok_or_else(|| {
            file_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {} is not `trace_id span_id` in hex: {line:?}", number + 1),
            ))
        })?;
        acknowledged.insert(key);
    }
    let stored = stored_span_counts(storage, tenant).await?;
    let missing_keys: Vec<&SpanKey> = acknowledged.iter().filter(|key| !stored.contains_key(*key)).collect();
    Ok(VerifyReport {
        acknowledged: acknowledged.len(),
        stored: stored.values().map(|n| *n as usize).sum(),
        missing: missing_keys.len(),
        duplicated: stored.values().filter(|n| **n > 1).count(),
        missing_examples: missing_keys
            .iter()
            .take(5)
            .map(|key| format!("{} {}", hex::encode(&key[..16]), hex::encode(&key[16..])))
            .collect(),
    })
}

/// How often each (trace ID, span ID) pair occurs in the tenant's committed blocks.
pub(crate) async fn stored_span_counts(
    storage: &Storage,
    tenant: &TenantId,
) -> Result<HashMap<SpanKey, u32>, StorageError> {
    let mut metas = Vec::new();
    for block in list_blocks(storage, tenant).await?.committed {
        metas.push(read_block_meta(storage, tenant, block).await?);
    }
    // Blocks a compacted block replaces stay stored for a grace period, but readers no longer read them:
    // counting them would call every compacted span a duplicate.
    let replaced = crate::storage::blocks::replaced_blocks(&metas);
    let mut counts = HashMap::new();
    for meta in metas.iter().filter(|meta| !replaced.contains(&meta.block_id)) {
        let footer = load_footer(storage, meta).await?;
        for batch in read_all(storage, meta, &footer, Some(&[col::TRACE_ID, col::SPAN_ID])).await? {
            let (traces, spans) = (batch.column(0).as_fixed_size_binary(), batch.column(1).as_fixed_size_binary());
            for row in 0..batch.num_rows() {
                let mut key = [0u8; 24];
                key[..16].copy_from_slice(traces.value(row));
                key[16..].copy_from_slice(spans.value(row));
                *counts.entry(key).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BlockId;
    use crate::storage::block::{upload_block, write_block};
    use crate::storage::encode_block;

    /// A compacted block and the blocks it replaces are both stored for a grace period; readers read the
    /// compacted one only, and so must the check, or every compacted span would count as stored twice.
    #[tokio::test]
    async fn spans_of_a_block_a_compacted_block_replaces_count_once() {
        let storage = Storage::open("memory://").unwrap();
        let tenant = TenantId::single_tenant();
        let request = crate::synth::TraceGenerator::new(4).next_request(40);
        let (batch, _) = crate::spans::encode_resource_spans(&request.resource_spans).unwrap();
        let options = Default::default();
        let input = write_block(&storage, &tenant, BlockId::new_random(), vec![batch.clone()], &options).await.unwrap();
        let mut compacted = encode_block(&tenant, BlockId::new_random(), &[batch], &options).unwrap();
        compacted.meta.replaces = vec![input.block_id];
        upload_block(&storage, &compacted).await.unwrap();
        let counts = stored_span_counts(&storage, &tenant).await.unwrap();
        assert_eq!(counts.len(), input.span_count as usize);
        assert!(counts.values().all(|count| *count == 1));
    }
}
