//! The block metadata object: what a reader needs to rule a block in or out without opening it, and the
//! commit point of a block (a block without it does not exist).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::tags::TagSummary;
use crate::ids::{BlockId, TenantId, TraceId};
use crate::storage::StorageError;

/// The block format this spanlake writes.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest block format this spanlake still reads: version 1 stored `end_time` as a column, which
/// readers skip (version 2 derives it from start and duration). See `docs/storage-format.md`.
pub const OLDEST_READABLE_FORMAT_VERSION: u32 = 1;

/// Whether blocks of format `version` can be read by this build.
pub fn readable_format_version(version: u64) -> bool {
    (u64::from(OLDEST_READABLE_FORMAT_VERSION)..=u64::from(FORMAT_VERSION)).contains(&version)
}

/// Metadata of one block. Serialized as JSON so operators can read it with `cat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockMeta {
    /// [`FORMAT_VERSION`] for blocks this version writes; readers refuse versions they do not know
    /// ([`readable_format_version`]).
    pub format_version: u32,
    pub tenant: TenantId,
    pub block_id: BlockId,
    /// Unix time (ms) the block was committed: replaced blocks wait out the deletion grace from the
    /// commit of the block replacing them.
    pub created_unix_ms: u64,
    /// Unix time (ms) the oldest spans of this block were first written to a block: absent for a block
    /// cut by an ingester (its own `created_unix_ms`), the earliest of its inputs' for a compacted one.
    /// Retention keeps a block at least that long after this, whatever time its spans claim, so spans a
    /// client stamped in 1970 are not deleted seconds after they were acknowledged, and a merge does not
    /// restart the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_written_unix_ms: Option<u64>,
    /// Earliest and latest span start, so time-bounded queries skip the block.
    pub min_start_unix_nano: u64,
    pub max_start_unix_nano: u64,
    /// Latest span end: a span that started before a query window may still overlap it.
    pub max_end_unix_nano: u64,
    /// Lowest and highest trace ID (lowercase hex in JSON): a cheap first filter before the bloom.
    pub min_trace_id: TraceId,
    pub max_trace_id: TraceId,
    pub span_count: u64,
    pub trace_count: u64,
    /// Size of `data.parquet`, so readers skip a HEAD request before reading the footer.
    pub data_bytes: u64,
    pub bloom_bytes: u64,
    pub row_groups: u32,
    /// The false-positive rate the bloom was sized for.
    pub bloom_false_positive_rate: f64,
    /// How many times the spans of this block have been compacted (0 = cut by an ingester).
    pub compaction_level: u32,
    /// Blocks whose spans this (compacted) block holds. Readers that see this block hide those, so each
    /// span is counted once from the instant this metadata exists, while the inputs still wait out the
    /// deletion grace period for in-flight queries. Absent (empty) for blocks cut by an ingester.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<BlockId>,
    /// The epoch of the tenant's compactor lease this (compacted) block was committed under, checked
    /// right before the commit. Of two compacted blocks replacing a block in common, readers keep the one
    /// with the higher epoch: a compactor that lost its lease while committing (a stall longer than the
    /// lease) is fenced off instead of doubling spans (`replacements`). Absent for ingesters' blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<u64>,
    /// Attribute keys, few-valued attribute values and span/service names, bounded (`tags.rs`): tag
    /// autocomplete and SQL pruning read them from here, at no request. Absent in blocks written before
    /// summaries existed; readers then scan the block instead.
    /// Shared: the querier's catalogue keeps one copy of equal summaries ([`super::tags::TagInterner`]).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::tags::shared::option")]
    pub tags: Option<Arc<TagSummary>>,
}

/// Only the version, read first so a future format is refused with a clear error rather than a
/// confusing "unknown field".
#[derive(Deserialize)]
struct VersionProbe {
    format_version: u64,
}

impl BlockMeta {
    /// Parses a metadata object, refusing versions this build does not understand.
    pub fn from_json(bytes: &[u8], path: &str) -> Result<Self, StorageError> {
        let invalid = |source| StorageError::InvalidMeta { path: path.to_owned(), source };
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(invalid)?;
        if !readable_format_version(probe.format_version) {
            return Err(StorageError::UnsupportedFormatVersion {
                block: path.to_owned(),
                found: probe.format_version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(bytes).map_err(invalid)
    }

    /// Serializes for the object store, pretty-printed: it is small and read by humans.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("BlockMeta has only plain fields")
    }

    /// When this block's oldest spans were first written to a block (unix ms; see
    /// [`first_written_unix_ms`](Self::first_written_unix_ms)).
    pub fn first_written(&self) -> u64 {
        self.first_written_unix_ms.unwrap_or(self.created_unix_ms)
    }

    /// The latest instant any span of the block touches (unix ns): retention deletes the block once this
    /// is older than the tenant's retention (and the block was first written longer ago than that; span
    /// times far ahead of that write are not believed, `compaction::plan::MAX_CLOCK_AHEAD`).
    pub fn max_time_unix_nano(&self) -> u64 {
        self.max_end_unix_nano.max(self.max_start_unix_nano)
    }

    /// Whether a trace ID could be in this block by its ID range alone.
    pub fn may_contain_trace_id(&self, trace_id: &TraceId) -> bool {
        (self.min_trace_id..=self.max_trace_id).contains(trace_id)
    }

    /// Whether any span of the block may overlap `[start, end]` (unix ns, inclusive).
    pub fn overlaps_time(&self, start_unix_nano: u64, end_unix_nano: u64) -> bool {
        self.min_start_unix_nano <= end_unix_nano
            && self.max_end_unix_nano.max(self.max_start_unix_nano) >= start_unix_nano
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> BlockMeta {
        BlockMeta {
            format_version: FORMAT_VERSION,
            tenant: TenantId::single_tenant(),
            block_id: BlockId::from_u128(1),
            created_unix_ms: 0,
            first_written_unix_ms: None,
            min_start_unix_nano: 100,
            max_start_unix_nano: 200,
            max_end_unix_nano: 300,
            min_trace_id: TraceId::from_hex(&"10".repeat(16)).unwrap(),
            max_trace_id: TraceId::from_hex(&"20".repeat(16)).unwrap(),
            span_count: 1,
            trace_count: 1,
            data_bytes: 1,
            bloom_bytes: 1,
            row_groups: 1,
            bloom_false_positive_rate: 0.01,
            compaction_level: 0,
            replaces: Vec::new(),
            lease_epoch: None,
            tags: None,
        }
    }

    #[test]
    fn time_overlap_counts_spans_that_started_before_the_window_but_end_in_it() {
        let meta = meta();
        assert!(meta.overlaps_time(250, 400), "ends at 300, after the window starts");
        assert!(meta.overlaps_time(0, 100));
        assert!(!meta.overlaps_time(301, 400));
        assert!(!meta.overlaps_time(0, 99));
    }

    #[test]
    fn trace_id_range_is_inclusive_and_byte_ordered() {
        let meta = meta();
        assert!(meta.may_contain_trace_id(&TraceId::from_hex(&"10".repeat(16)).unwrap()));
        assert!(meta.may_contain_trace_id(&TraceId::from_hex(&"1a".repeat(16)).unwrap()));
        assert!(!meta.may_contain_trace_id(&TraceId::from_hex(&"20".repeat(15)).unwrap()), "left-padded: 0020…");
        assert!(!meta.may_contain_trace_id(&TraceId::from_hex(&"21".repeat(16)).unwrap()));
    }

    #[test]
    fn metadata_round_trips_and_refuses_unknown_fields_of_its_own_version() {
        let meta = meta();
        assert_eq!(BlockMeta::from_json(&meta.to_json(), "m").unwrap(), meta);
        assert_eq!(serde_json::to_value(&meta).unwrap()["min_trace_id"], "10".repeat(16), "IDs are hex in JSON");
        let mut extra = serde_json::to_value(&meta).unwrap();
        extra["surprise"] = 1.into();
        let error = BlockMeta::from_json(&serde_json::to_vec(&extra).unwrap(), "m").unwrap_err();
        assert!(error.to_string().contains("surprise"), "{error}");
    }

    #[test]
    fn replaced_blocks_are_written_only_for_compacted_blocks() {
        let meta = meta();
        assert!(!String::from_utf8(meta.to_json()).unwrap().contains("replaces"), "ingester blocks stay as before");
        let compacted = BlockMeta { replaces: vec![BlockId::from_u128(7), BlockId::from_u128(8)], ..meta };
        let json = serde_json::to_value(&compacted).unwrap();
        assert_eq!(json["replaces"][1], BlockId::from_u128(8).to_string());
        assert_eq!(BlockMeta::from_json(&compacted.to_json(), "m").unwrap(), compacted);
    }
}
