//! The per-block trace-ID bloom filter: small enough to keep every block's in a querier's memory
//! (~1.2 bytes per trace at 1 % false positives), so an unknown trace ID costs no object-store request.

use bloomfilter::Bloom;

use crate::ids::TraceId;

/// The `bloomfilter` crate's refusal of a size, rate or stored form: the cause of
/// [`StorageError::InvalidBloom`](crate::storage::StorageError::InvalidBloom).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BloomError(&'static str);

/// A bloom filter over the trace IDs of one block.
#[derive(Clone, Debug)]
pub struct TraceBloom(Bloom<[u8; 16]>);

/// Filters are sized for at least this many traces. The `bloomfilter` crate derives all its probes from
/// two hashes, and in a bitmap of a few hundred bits they collide: sized for 8 traces at 1e-5 it measured
/// 2e-3 false positives (200× the rate asked), for 80 traces 1e-4. A low-traffic tenant cuts such small
/// blocks every few minutes, and every lookup asks every block. Sized for 1,024 traces the bitmap is
/// ~3 KB, nothing beside the block's Parquet.
const MIN_SIZED_TRACES: usize = 1024;

impl TraceBloom {
    /// A filter sized for `expected_traces` (at least `MIN_SIZED_TRACES`) at `false_positive_rate`.
    pub fn new(expected_traces: usize, false_positive_rate: f64) -> Result<Self, BloomError> {
        Bloom::new_for_fp_rate(expected_traces.max(MIN_SIZED_TRACES), false_positive_rate).map(Self).map_err(BloomError)
    }

    /// Records a trace ID.
    pub fn insert(&mut self, trace_id: &TraceId) {
        self.0.set(trace_id.as_bytes());
    }

    /// False means the trace is certainly not in the block; true means it may be.
    pub fn may_contain(&self, trace_id: &TraceId) -> bool {
        self.0.check(trace_id.as_bytes())
    }

    /// The stored form (the `bloomfilter` crate's own versioned encoding, seed included).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BloomError> {
        Bloom::from_bytes(bytes).map(Self).map_err(BloomError)
    }

    /// Memory held by the filter's bitmap.
    pub fn size_bytes(&self) -> usize {
        self.0.as_slice().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_of_few_traces_keeps_close_to_the_configured_rate() {
        let (mut false_positives, checks) = (0, 200 * 5_000);
        for block in 0..200u128 {
            let mut bloom = TraceBloom::new(8, 1e-5).unwrap();
            (1..=8u128).for_each(|i| bloom.insert(&TraceId::from_slice(&(block << 64 | i).to_be_bytes()).unwrap()));
            false_positives += (0..5_000u128)
                .filter(|i| {
                    bloom.may_contain(&TraceId::from_slice(&(u128::MAX - (block << 32) - i).to_be_bytes()).unwrap())
                })
                .count();
        }
        // 1e-5 of 1 M checks is 10; unfloored, 8-trace filters gave ~2,000.
        assert!(false_positives < 60, "{false_positives} false positives in {checks} checks");
    }

    #[test]
    fn has_no_false_negatives_and_roughly_the_configured_false_positive_rate() {
        let ids: Vec<TraceId> = (1..=10_000u128).map(|i| TraceId::from_slice(&i.to_be_bytes()).unwrap()).collect();
        let mut bloom = TraceBloom::new(ids.len(), 0.01).unwrap();
        ids.iter().for_each(|id| bloom.insert(id));
        assert!(ids.iter().all(|id| bloom.may_contain(id)));
        let restored = TraceBloom::from_bytes(bloom.to_bytes()).unwrap();
        let false_positives = (1_000_000..1_020_000u128)
            .filter(|i| restored.may_contain(&TraceId::from_slice(&i.to_be_bytes()).unwrap()))
            .count();
        // 1 % of 20 000 is 200; allow generous slack for randomness of the seed.
        assert!(false_positives < 400, "{false_positives} false positives");
        assert!(ids.iter().all(|id| restored.may_contain(id)));
    }
}
