//! The ingester's in-memory state: per tenant, the open buffer of acknowledged spans and the blocks cut
//! from it that are not committed yet. Also the two numbers everything else is decided from: the bytes
//! held (the memory limit) and the oldest WAL segment still needed (WAL truncation).
//!
//! Plain data behind one mutex held for short, non-blocking sections; no I/O happens here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;

use crate::ids::{BlockId, TenantId};
use crate::storage::EncodedBlock;
use crate::wal::{SequenceRanges, WalPosition};

/// A span's identity within its tenant: (trace ID, span ID). A client that resends a request whose
/// acknowledgement it never got sends the same keys again.
pub type SpanKey = (u128, u64);

/// How span keys are hashed: foldhash with a per-process random seed, several times faster than the
/// standard library's SipHash on these 24-byte keys (every span is looked up two or three times and
/// inserted twice), while keys a client chooses still cannot be aimed at one bucket.
pub type KeyHasher = foldhash::fast::RandomState;

/// Bytes one held span key costs in memory (the key, its count and the hash table's share), counted in
/// the buffer's bytes.
pub const KEY_BYTES: usize = 48;

/// The key of a span by its ID bytes as OTLP carries them (a wrong length, never stored, keys as 0).
pub fn span_key(trace_id: &[u8], span_id: &[u8]) -> SpanKey {
    let trace = trace_id.try_into().map_or(0, u128::from_be_bytes);
    let span = span_id.try_into().map_or(0, u64::from_be_bytes);
    (trace, span)
}

/// The keys of a batch's rows, in row order.
pub fn span_keys(batch: &RecordBatch) -> Vec<SpanKey> {
    use arrow::array::AsArray;
    let column = |name| batch.column_by_name(name).and_then(|c| c.as_fixed_size_binary_opt());
    let (Some(traces), Some(spans)) =
        (column(crate::spans::schema::col::TRACE_ID), column(crate::spans::schema::col::SPAN_ID))
    else {
        return Vec::new();
    };
    (0..batch.num_rows()).map(|row| span_key(traces.value(row), spans.value(row))).collect()
}

/// Acknowledged spans of one request, with where they sit in the WAL.
pub struct BufferedBatch {
    pub batch: RecordBatch,
    pub position: WalPosition,
    /// The batch's Arrow memory size and its keys' cost, counted in the buffer's bytes.
    pub bytes: usize,
    /// The keys of its rows, held in the tenant's [`TenantBuffer::held_keys`].
    keys: Vec<SpanKey>,
}

/// A block cut from a tenant's buffer, on its way to the object store.
pub struct PendingBlock {
    pub block: BlockId,
    /// The WAL records it holds; written to the WAL in a cut record before the upload.
    pub sequences: SequenceRanges,
    /// Lowest WAL segment holding one of its records: the WAL keeps that segment until the block commits.
    pub min_segment: u64,
    pub stage: PendingStage,
    pub bytes: usize,
    /// The keys of its rows, held in the tenant's [`TenantBuffer::held_keys`] until it commits (a block
    /// the replay encodes again from its cut record's spans holds them too).
    pub keys: Vec<SpanKey>,
}

/// How far a pending block has come; each stage holds its spans in the form the next step needs, and
/// queries read every stage.
pub enum PendingStage {
    /// Cut from the buffer, waiting for its cut record and its encoding.
    Cut(Vec<RecordBatch>),
    /// Encoded as Parquet (about a tenth of the Arrow size) and waiting for, or retrying, its upload.
    /// Shared, so the uploader takes it without copying the bloom filter.
    Encoded(Arc<EncodedBlock>),
}

/// One tenant's open buffer and pending blocks.
#[derive(Default)]
pub struct TenantBuffer {
    pub open: Vec<BufferedBatch>,
    pub open_bytes: usize,
    pub open_since: Option<Instant>,
    pub pending: Vec<PendingBlock>,
    /// Bytes each trace holds in the open buffer since the last cut (`max_bytes_per_trace`).
    pub trace_bytes: HashMap<crate::ids::TraceId, usize>,
    /// Every span the tenant holds here (open or pending), by key, with how many rows carry it: a resent
    /// span already held is not taken twice (issue 26, "Add" 6).
    pub held_keys: HashMap<SpanKey, u32, KeyHasher>,
}

impl TenantBuffer {
    fn min_segment(&self) -> Option<u64> {
        let open = self.open.iter().map(|b| b.position.segment);
        let pending = self.pending.iter().map(|p| p.min_segment);
        open.chain(pending).min()
    }

    /// True when the open buffer holds a full block's worth: it is cut now, as many times as it stays full.
    pub fn is_full(&self, max_bytes: usize) -> bool {
        self.open_bytes >= max_bytes
    }

    /// True when nothing is buffered or pending: the tenant's entry can go.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.pending.is_empty()
    }
}

/// Lets go of the handed-off blocks kept until before `now`.
fn forget_handed_off(handed_off: &mut HashMap<TenantId, Vec<(Instant, Arc<EncodedBlock>)>>, now: Instant) {
    handed_off.retain(|_, blocks| {
        blocks.retain(|(until, _)| *until > now);
        !blocks.is_empty()
    });
}

/// Every tenant's buffer and the total bytes held.
#[derive(Default)]
pub struct Buffers {
    pub tenants: HashMap<TenantId, TenantBuffer>,
    /// Bytes held in memory: open Arrow batches plus pending blocks in whatever stage they are.
    pub bytes: usize,
    /// WAL appends under way whose spans no buffer holds yet, by the segment that was active when each
    /// began (their records land there or later): those segments are still needed.
    appending: std::collections::BTreeMap<u64, usize>,
    /// Keys of the spans in blocks committed recently: a resend arriving after its first copy's block
    /// committed is still found.
    pub committed: super::committed::CommittedKeys,
    /// Blocks committed recently, kept until the instant beside each (`handoff_retention`) so queriers in
    /// other processes, which learn of blocks by listing, see their spans meanwhile.
    pub handed_off: HashMap<TenantId, Vec<(Instant, Arc<EncodedBlock>)>>,
}

impl Buffers {
    /// Adds an acknowledged batch to its tenant's open buffer.
    pub fn add(&mut self, tenant: &TenantId, batch: RecordBatch, position: WalPosition) {
        let keys = span_keys(&batch);
        self.add_keyed(tenant, batch, keys, position);
    }

    /// [`Buffers::add`] with the batch's [`span_keys`] already at hand (a request's were taken to
    /// screen it).
    pub fn add_keyed(&mut self, tenant: &TenantId, batch: RecordBatch, keys: Vec<SpanKey>, position: WalPosition) {
        let bytes = batch.get_array_memory_size() + keys.len() * KEY_BYTES;
        let buffer = self.tenants.entry(tenant.clone()).or_default();
        for key in &keys {
            *buffer.held_keys.entry(*key).or_default() += 1;
        }
        buffer.open_since.get_or_insert_with(Instant::now);
        buffer.open_bytes += bytes;
        buffer.open.push(BufferedBatch { batch, position, bytes, keys });
        self.bytes += bytes;
    }

    /// Adds the bytes a buffered batch brought to its traces' counts (`max_bytes_per_trace`).
    pub fn count_trace_bytes(&mut self, tenant: &TenantId, added: HashMap<crate::ids::TraceId, usize>) {
        if added.is_empty() {
            return;
        }
        let counts = &mut self.tenants.entry(tenant.clone()).or_default().trace_bytes;
        for (trace, bytes) in added {
            *counts.entry(trace).or_default() += bytes;
        }
    }

    /// Moves a tenant's oldest open batches, at most `max_bytes` of them (but at least one batch), into a
    /// new pending block; `None` when the buffer is empty. The cap keeps a block near `--max-block-bytes`
    /// when spans arrive faster than blocks are encoded: otherwise everything buffered during one
    /// encoding became the next block, up to the whole memory limit, each block slower to encode than
    /// the last and held twice while encoding (see `encode_block`).
    pub fn cut(&mut self, tenant: &TenantId, max_bytes: usize) -> Option<(BlockId, SequenceRanges)> {
        let buffer = self.tenants.get_mut(tenant)?;
        if buffer.open.is_empty() {
            return None;
        }
        let (mut taken, mut bytes) = (0, 0);
        for batch in &buffer.open {
            if taken > 0 && bytes + batch.bytes > max_bytes {
                break;
            }
            (taken, bytes) = (taken + 1, bytes + batch.bytes);
        }
        let open: Vec<BufferedBatch> = buffer.open.drain(..taken).collect();
        buffer.open_bytes -= bytes;
        // Each block starts every trace's count afresh, as Tempo's ingester does once it cuts a trace.
        buffer.trace_bytes = HashMap::new();
        // A remainder keeps the older arrival time, so it is cut no later than the age limit.
        if buffer.open.is_empty() {
            buffer.open_since = None;
        }
        let min_segment = open.iter().map(|b| b.position.segment).min().unwrap_or(0);
        let sequences = SequenceRanges::from_sequences(open.iter().map(|b| b.position.seq).collect());
        let block = BlockId::new_random();
        let mut keys = Vec::new();
        let mut batches = Vec::with_capacity(open.len());
        for batch in open {
            keys.extend(batch.keys);
            batches.push(batch.batch);
        }
        buffer.pending.push(PendingBlock {
            block,
            sequences: sequences.clone(),
            min_segment,
            stage: PendingStage::Cut(batches),
            bytes,
            keys,
        });
        Some((block, sequences))
    }

    /// Adds a pending block found during WAL replay (its cut record is already durable).
    pub fn add_replayed_pending(&mut self, tenant: &TenantId, block: PendingBlock) {
        self.bytes += block.bytes;
        let buffer = self.tenants.entry(tenant.clone()).or_default();
        for key in &block.keys {
            *buffer.held_keys.entry(*key).or_default() += 1;
        }
        buffer.pending.push(block);
    }

    /// The pending block, if it is still pending.
    pub fn pending_mut(&mut self, tenant: &TenantId, block: BlockId) -> Option<&mut PendingBlock> {
        self.tenants.get_mut(tenant)?.pending.iter_mut().find(|p| p.block == block)
    }

    /// Replaces a pending block's stage, keeping the byte count right.
    pub fn advance(&mut self, tenant: &TenantId, block: BlockId, stage: PendingStage, bytes: usize) {
        let Some(pending) = self.pending_mut(tenant, block) else { return };
        let previous = std::mem::replace(&mut pending.bytes, bytes);
        pending.stage = stage;
        self.bytes = self.bytes + bytes - previous;
    }

    /// Forgets a committed block; its span keys move to the resend window, and its encoding, when
    /// `keep_until` is given, to the handed-off blocks until then (in the same step, so a reader under the
    /// lock sees the spans in one place or the other).
    pub fn remove_committed(&mut self, tenant: &TenantId, block: BlockId, keep_until: Option<Instant>) {
        let Some(buffer) = self.tenants.get_mut(tenant) else { return };
        if let Some(index) = buffer.pending.iter().position(|p| p.block == block) {
            let removed = buffer.pending.remove(index);
            if let (Some(until), PendingStage::Encoded(encoded)) = (keep_until, &removed.stage) {
                // Each commit also lets go of the copies kept long enough, so an ingester no querier asks
                // holds at most the blocks of the last `handoff_retention`.
                forget_handed_off(&mut self.handed_off, Instant::now());
                self.handed_off.entry(tenant.clone()).or_default().push((until, encoded.clone()));
            }
            self.bytes -= removed.bytes;
            for key in &removed.keys {
                if let Some(count) = buffer.held_keys.get_mut(key) {
                    *count -= 1;
                    if *count == 0 {
                        buffer.held_keys.remove(key);
                    }
                }
            }
            self.committed.remember(tenant, removed.keys);
        }
        if buffer.is_idle() {
            self.tenants.remove(tenant);
        }
    }

    /// The blocks of `tenant` handed off and still kept at `now`; those kept long enough are let go.
    pub fn handed_off(&mut self, tenant: &TenantId, now: Instant) -> Vec<Arc<EncodedBlock>> {
        forget_handed_off(&mut self.handed_off, now);
        self.handed_off
            .get(tenant)
            .map(|blocks| blocks.iter().map(|(_, block)| block.clone()).collect())
            .unwrap_or_default()
    }

    /// Bytes of the handed-off blocks still kept (encoded Parquet and bloom), for `/metrics`.
    pub fn handed_off_bytes(&self) -> usize {
        self.handed_off.values().flatten().map(|(_, block)| block.data.len() + block.bloom.len()).sum()
    }

    /// The oldest WAL segment still holding spans not committed in a block (`None`: none is needed).
    pub fn min_needed_segment(&self) -> Option<u64> {
        let appending = self.appending.keys().next().copied();
        self.tenants.values().filter_map(TenantBuffer::min_segment).chain(appending).min()
    }

    /// An append into `segment` (or a later one) has begun; its spans are not in any buffer yet.
    pub fn begin_append(&mut self, segment: u64) {
        *self.appending.entry(segment).or_default() += 1;
    }

    /// The append begun at `segment` is over: its spans are in a buffer, or it failed.
    pub fn end_append(&mut self, segment: u64) {
        if let Some(count) = self.appending.get_mut(&segment) {
            *count -= 1;
            if *count == 0 {
                self.appending.remove(&segment);
            }
        }
    }

    /// Tenants whose open buffer should be cut now: big enough, old enough, holding spans in a WAL segment
    /// numbered below `pinning_before` (given when the WAL is filling up: such a buffer keeps that segment
    /// and every later one from being released, so a tenant that sent a little and went quiet would stop
    /// every tenant's ingest at the WAL limit until its buffer aged out), or (with `force`) not empty.
    pub fn due_for_cut(
        &self,
        max_bytes: usize,
        max_age: std::time::Duration,
        pinning_before: Option<u64>,
        force: bool,
    ) -> Vec<TenantId> {
        let pins = |b: &TenantBuffer| {
            pinning_before.is_some_and(|active| b.open.iter().any(|batch| batch.position.segment < active))
        };
        self.tenants
            .iter()
            .filter(|(_, b)| !b.open.is_empty())
            .filter(|(_, b)| {
                force || b.is_full(max_bytes) || b.open_since.is_some_and(|t| t.elapsed() >= max_age) || pins(b)
            })
            .map(|(tenant, _)| tenant.clone())
            .collect()
    }

    /// The rows of `keys` whose span `tenant` already holds: buffered, in a block not committed yet, or
    /// in a block committed within the resend window. The tenant's tables are found once, not per key.
    pub fn held_rows(&self, tenant: &TenantId, keys: &[SpanKey]) -> Vec<usize> {
        let held = self.tenants.get(tenant).map(|b| &b.held_keys).filter(|held| !held.is_empty());
        let committed = self.committed.sets_of(tenant);
        if held.is_none() && committed.is_empty() {
            return Vec::new();
        }
        (0..keys.len())
            .filter(|row| {
                let key = &keys[*row];
                held.is_some_and(|held| held.contains_key(key)) || committed.iter().any(|set| set.contains(key))
            })
            .collect()
    }

    /// Every pending block of every tenant, as (tenant, block) pairs.
    pub fn pending_blocks(&self) -> Vec<(TenantId, BlockId)> {
        self.tenants.iter().flat_map(|(tenant, b)| b.pending.iter().map(|p| (tenant.clone(), p.block))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::synth::TraceGenerator;

    #[test]
    fn a_cut_takes_the_oldest_batches_up_to_the_block_size_and_leaves_the_rest_open() {
        let tenant = TenantId::single_tenant();
        let mut generator = TraceGenerator::new(3);
        let mut buffers = Buffers::default();
        let mut sizes = Vec::new();
        for seq in 0..10 {
            let (batch, _) = encode_resource_spans(&generator.next_trace()).unwrap();
            sizes.push(batch.get_array_memory_size() + batch.num_rows() * KEY_BYTES);
            buffers.add(&tenant, batch, WalPosition { seq, segment: 0 });
        }
        let total: usize = sizes.iter().sum();
        let cut = |buffers: &mut Buffers, max| buffers.cut(&tenant, max).map(|(_, sequences)| sequences);

        // Room for two and a half batches: the two oldest.
        assert_eq!(
            cut(&mut buffers, sizes[0] + sizes[1] + sizes[2] / 2),
            Some(SequenceRanges::from_sequences(vec![0, 1]))
        );
        let open = &buffers.tenants[&tenant];
        assert_eq!((open.open.len(), open.open_bytes), (8, total - sizes[0] - sizes[1]));
        assert!(open.open_since.is_some(), "the rest is still open");
        // Room for less than one batch: still one, never an empty block.
        assert_eq!(cut(&mut buffers, 1), Some(SequenceRanges::from_sequences(vec![2])));
        // Room for everything: the buffer empties.
        assert_eq!(cut(&mut buffers, usize::MAX), Some(SequenceRanges::from_sequences((3..10).collect())));
        assert_eq!(cut(&mut buffers, usize::MAX), None);
        let buffer = &buffers.tenants[&tenant];
        assert_eq!((buffer.open_bytes, buffer.open_since), (0, None));
        let pending: Vec<usize> = buffer.pending.iter().map(|p| p.bytes).collect();
        assert_eq!(pending, [sizes[0] + sizes[1], sizes[2], sizes[3..].iter().sum()]);
        assert_eq!(buffers.bytes, total, "cut blocks count until they are released");
    }

    #[test]
    fn held_span_keys_follow_the_spans_from_the_open_buffer_to_their_commit() {
        let tenant = TenantId::single_tenant();
        let (batch, _) = encode_resource_spans(&TraceGenerator::new(5).next_trace()).unwrap();
        let keys = span_keys(&batch);
        assert_eq!(keys.len(), batch.num_rows());
        let mut buffers = Buffers::default();
        buffers.add(&tenant, batch.clone(), WalPosition { seq: 1, segment: 0 });
        buffers.add(&tenant, batch, WalPosition { seq: 2, segment: 0 });
        let held = |buffers: &Buffers| buffers.tenants.get(&tenant).map_or(0, |b| b.held_keys.len());
        assert_eq!(held(&buffers), keys.len(), "two copies, one key each");
        assert!(keys.iter().all(|key| buffers.tenants[&tenant].held_keys[key] == 2));
        let (block, _) = buffers.cut(&tenant, usize::MAX).unwrap();
        assert_eq!(held(&buffers), keys.len(), "pending spans are still held");
        buffers.remove_committed(&tenant, block, None);
        assert_eq!(held(&buffers), 0, "committed spans are no longer the ingester's");
        assert_eq!(buffers.bytes, 0);
    }

    #[test]
    fn a_committed_block_is_handed_off_until_its_time_and_let_go_then_or_at_a_later_commit() {
        let tenant = TenantId::single_tenant();
        let mut buffers = Buffers::default();
        let commit = |buffers: &mut Buffers, seq: u64, keep_until: Option<Instant>| {
            let (batch, _) = encode_resource_spans(&TraceGenerator::new(seq).next_trace()).unwrap();
            buffers.add(&tenant, batch.clone(), WalPosition { seq, segment: 0 });
            let (block, _) = buffers.cut(&tenant, usize::MAX).unwrap();
            let options = crate::storage::BlockWriteOptions::default();
            let encoded = crate::storage::encode_block(&tenant, block, &[batch], &options).unwrap();
            let bytes = encoded.data.len();
            buffers.advance(&tenant, block, PendingStage::Encoded(Arc::new(encoded)), bytes);
            buffers.remove_committed(&tenant, block, keep_until);
            block
        };
        let ids = |blocks: Vec<Arc<EncodedBlock>>| blocks.iter().map(|b| b.meta.block_id).collect::<Vec<_>>();
        let now = Instant::now();
        let (soon, later) = (now + std::time::Duration::from_millis(50), now + std::time::Duration::from_secs(600));

        let not_kept = commit(&mut buffers, 1, None);
        assert!(buffers.handed_off(&tenant, now).is_empty(), "no retention: nothing kept ({not_kept})");
        let short = commit(&mut buffers, 2, Some(soon));
        let long = commit(&mut buffers, 3, Some(later));
        assert_eq!(ids(buffers.handed_off(&tenant, now)), [short, long]);
        assert!(buffers.handed_off_bytes() > 0);
        assert_eq!(buffers.bytes, 0, "handed-off blocks are not buffered bytes");
        assert_eq!(ids(buffers.handed_off(&tenant, soon)), [long], "let go when its time is up");

        // Without a reader, the next commit lets go of what is due.
        let mut unread = Buffers::default();
        commit(&mut unread, 4, Some(Instant::now()));
        assert_eq!(unread.handed_off.values().flatten().count(), 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let next = commit(&mut unread, 5, Some(later));
        let kept: Vec<BlockId> = unread.handed_off.values().flatten().map(|(_, b)| b.meta.block_id).collect();
        assert_eq!(kept, [next]);
    }
}
