//! What one compaction pass over a tenant will do, decided from block metadata alone (no I/O, so every
//! rule is unit-tested): which blocks retention deletes, which replaced blocks and crash leftovers have
//! waited out their grace period, and which blocks merge together.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::ids::BlockId;
use crate::storage::{BlockMeta, Replacements, UncommittedBlock, replacements};

/// The rules of a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRules {
    /// Blocks whose spans start in the same window of this length merge together (Tempo's
    /// `compaction_window`); it also keeps retention working block by block.
    pub window: Duration,
    /// Inputs of one merge add up to at most this many data bytes, so outputs stay near this size.
    pub target_bytes: u64,
    /// Most blocks merged at once: the merge holds one decoded batch per input.
    pub max_inputs: usize,
    /// How long a replaced block stays stored after the block replacing it was committed: longer than
    /// any query that may have started reading it, and than a querier's catalogue refresh interval.
    pub deletion_grace: Duration,
    /// How long block objects without metadata stay before they count as a crashed upload's leftovers.
    pub leftover_grace: Duration,
    /// Blocks whose every span ended longer ago than this are deleted.
    pub retention: Duration,
}

/// One merge: these visible blocks become one block that replaces them and what they replace.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub inputs: Vec<BlockMeta>,
    pub replaces: Vec<BlockId>,
}

/// What a pass will do, in the order it does it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Past retention: replaced blocks first, so a block never reappears when its replacement goes.
    pub expired: Vec<BlockId>,
    /// Replaced blocks whose grace period is over.
    pub replaced_due: Vec<BlockId>,
    /// Block prefixes without metadata, untouched for longer than the leftover grace.
    pub leftovers_due: Vec<BlockId>,
    pub jobs: Vec<Job>,
    /// Commit time (unix ms) of the oldest block waiting in a job: the compaction lag.
    pub oldest_waiting_unix_ms: Option<u64>,
}

impl Plan {
    /// Blocks that the jobs will merge.
    pub fn outstanding(&self) -> usize {
        self.jobs.iter().map(|job| job.inputs.len()).sum()
    }
}

/// How far ahead of the time its spans were written a block's span times are believed, for retention:
/// client clocks run seconds or minutes ahead, not days, and a span stamped in the year 2500 (past `i64::MAX`
/// nanoseconds, which is stored as it came) must not keep its block forever.
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Plans a pass over one tenant's committed blocks and uncommitted prefixes at `now_unix_ms`.
pub fn plan(metas: &[BlockMeta], leftovers: &[UncommittedBlock], now_unix_ms: u64, rules: &PlanRules) -> Plan {
    let millis = |d: Duration| d.as_millis() as u64;
    let Replacements { hidden, since_unix_ms: replaced_since } = replacements(metas);
    let cutoff_unix_ms = now_unix_ms.saturating_sub(millis(rules.retention));
    let cutoff_unix_nano = cutoff_unix_ms.saturating_mul(1_000_000);
    // Both clocks: the spans' own times (retention as users mean it) and when the block's spans were first
    // written, which no client controls (spans stamped in the past are kept `retention` after arrival,
    // spans stamped far in the future count as written `MAX_CLOCK_AHEAD` after their arrival).
    let is_expired = |meta: &BlockMeta| {
        let written = meta.first_written();
        let latest_believed = written.saturating_add(millis(MAX_CLOCK_AHEAD)).saturating_mul(1_000_000);
        meta.max_time_unix_nano().min(latest_believed) < cutoff_unix_nano && written < cutoff_unix_ms
    };

    let mut expired: Vec<&BlockMeta> = metas.iter().filter(|meta| is_expired(meta)).collect();
    expired.sort_by_key(|meta| (!hidden.contains(&meta.block_id), meta.block_id));
    let expired_ids: HashSet<BlockId> = expired.iter().map(|meta| meta.block_id).collect();

    // A replaced (or fenced) block may go once the earliest block hiding it has been known for the grace
    // period.
    let replaced_due = metas
        .iter()
        .filter(|meta| !expired_ids.contains(&meta.block_id))
        .filter(|meta| {
            replaced_since
                .get(&meta.block_id)
                .is_some_and(|since| now_unix_ms >= since.saturating_add(millis(rules.deletion_grace)))
        })
        .map(|meta| meta.block_id)
        .collect();
    let leftovers_due = leftovers
        .iter()
        .filter(|leftover| now_unix_ms >= leftover.last_modified_unix_ms.saturating_add(millis(rules.leftover_grace)))
        .map(|leftover| leftover.block)
        .collect();

    let present: HashSet<BlockId> = metas.iter().map(|meta| meta.block_id).collect();
    let candidates = metas.iter().filter(|meta| !hidden.contains(&meta.block_id) && !is_expired(meta));
    let jobs = plan_jobs(candidates, &present, now_unix_ms, rules);
    let oldest_waiting_unix_ms = jobs.iter().flat_map(|job| &job.inputs).map(|meta| meta.created_unix_ms).min();
    Plan {
        expired: expired.iter().map(|meta| meta.block_id).collect(),
        replaced_due,
        leftovers_due,
        jobs,
        oldest_waiting_unix_ms,
    }
}

/// In a window still open, a block joins a merge only if it is at most this many times the inputs before
/// it (smaller ones):
/// otherwise the merge would rewrite a large block to absorb a few small ones, pass after pass, while
/// ingest keeps cutting new small blocks beside it. With the rule every rewrite of a block at least
/// grows it by half, so a span is rewritten a few times at most on its way to the target size
/// (BENCHMARKS.md, "Compaction keeps up with ingest").
const ABSORB_RATIO: u64 = 2;

/// Groups visible blocks by time window, then fills jobs smallest block first up to the size and input
/// limits; while a window is open (its end after `now`: ingest may still cut blocks for it), a block at
/// most [`ABSORB_RATIO`] times the job so far. Once it has closed, everything in it merges, so no block
/// is stranded beside a much larger one. A job needs two inputs; a block already at the target size is
/// left as it is.
fn plan_jobs<'a>(
    candidates: impl Iterator<Item = &'a BlockMeta>,
    present: &HashSet<BlockId>,
    now_unix_ms: u64,
    rules: &PlanRules,
) -> Vec<Job> {
    let window_nanos = rules.window.as_nanos().max(1) as u64;
    let now_nanos = now_unix_ms.saturating_mul(1_000_000);
    let mut windows: BTreeMap<u64, Vec<&BlockMeta>> = BTreeMap::new();
    for meta in candidates {
        windows.entry(meta.min_start_unix_nano / window_nanos).or_default().push(meta);
    }
    let mut jobs = Vec::new();
    for (window, mut blocks) in windows {
        let open = window.saturating_add(1).saturating_mul(window_nanos) > now_nanos;
        blocks.sort_by_key(|meta| (meta.data_bytes, meta.block_id));
        let mut current: Vec<&BlockMeta> = Vec::new();
        let mut bytes = 0u64;
        for meta in blocks {
            let fits = current.len() < rules.max_inputs.max(2)
                && bytes + meta.data_bytes <= rules.target_bytes
                && (!open || current.is_empty() || meta.data_bytes <= bytes.saturating_mul(ABSORB_RATIO));
            if !fits {
                push_job(&mut jobs, std::mem::take(&mut current), present);
                bytes = 0;
                if meta.data_bytes > rules.target_bytes {
                    continue;
                }
            }
            bytes += meta.data_bytes;
            current.push(meta);
        }
        push_job(&mut jobs, current, present);
    }
    jobs
}

fn push_job(jobs: &mut Vec<Job>, inputs: Vec<&BlockMeta>, present: &HashSet<BlockId>) {
    if inputs.len() < 2 {
        return;
    }
    let mut replaces: Vec<BlockId> = inputs.iter().map(|meta| meta.block_id).collect();
    // What the inputs replace and is still stored stays hidden after the inputs themselves are deleted.
    replaces.extend(inputs.iter().flat_map(|meta| meta.replaces.iter()).filter(|id| present.contains(id)));
    replaces.sort();
    replaces.dedup();
    jobs.push(Job { inputs: inputs.into_iter().cloned().collect(), replaces });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TenantId, TraceId};
    use crate::storage::FORMAT_VERSION;

    const HOUR_NS: u64 = 3_600_000_000_000;
    const DAY_MS: u64 = 86_400_000;

    fn rules() -> PlanRules {
        PlanRules {
            window: Duration::from_secs(3600),
            target_bytes: 1000,
            max_inputs: 4,
            deletion_grace: Duration::from_secs(60),
            leftover_grace: Duration::from_secs(3600),
            retention: Duration::from_millis(14 * DAY_MS),
        }
    }

    fn block(id: u128, start_ns: u64, bytes: u64) -> BlockMeta {
        BlockMeta {
            format_version: FORMAT_VERSION,
            tenant: TenantId::single_tenant(),
            block_id: BlockId::from_u128(id),
            // Written as its first span started.
            created_unix_ms: (start_ns / 1_000_000).max(1_000),
            first_written_unix_ms: None,
            min_start_unix_nano: start_ns,
            max_start_unix_nano: start_ns + 1_000,
            max_end_unix_nano: start_ns + 2_000,
            min_trace_id: TraceId::from_slice(&[1; 16]).unwrap(),
            max_trace_id: TraceId::from_slice(&[0xff; 16]).unwrap(),
            span_count: 10,
            trace_count: 2,
            data_bytes: bytes,
            bloom_bytes: 10,
            row_groups: 1,
            bloom_false_positive_rate: 0.01,
            compaction_level: 0,
            replaces: Vec::new(),
            lease_epoch: None,
            tags: None,
        }
    }

    fn ids(values: &[u128]) -> Vec<BlockId> {
        values.iter().map(|&v| BlockId::from_u128(v)).collect()
    }

    fn inputs(job: &Job) -> Vec<BlockId> {
        let mut ids: Vec<_> = job.inputs.iter().map(|m| m.block_id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn blocks_merge_within_their_window_up_to_the_size_and_input_limits() {
        let now = 20 * DAY_MS;
        let base = (now / 1000 - 3600) * 1_000_000_000 / HOUR_NS * HOUR_NS;
        let metas = vec![
            block(1, base, 100),
            block(2, base + 10, 200),
            block(3, base + 20, 300),
            block(4, base + 30, 450), // 100+200+300 = 600; +450 > 1000 → next job
            block(5, base + 40, 500),
            block(6, base + 50, 2_000),    // larger than the target: left alone
            block(7, base + HOUR_NS, 100), // the next window, alone: nothing to merge with
        ];
        let plan = plan(&metas, &[], now, &rules());
        assert_eq!(plan.jobs.iter().map(inputs).collect::<Vec<_>>(), [ids(&[1, 2, 3]), ids(&[4, 5])]);
        assert_eq!(plan.jobs[0].replaces, ids(&[1, 2, 3]));
        assert_eq!(plan.outstanding(), 5);
        assert_eq!(plan.oldest_waiting_unix_ms, Some(base / 1_000_000));

        let many: Vec<_> = (0..10).map(|i| block(i, base, 1)).collect();
        let plan = super::plan(&many, &[], now, &rules());
        assert_eq!(plan.jobs.iter().map(|job| job.inputs.len()).collect::<Vec<_>>(), [4, 4, 2], "max 4 inputs");
    }

    /// Ingest keeps cutting small blocks beside a merged one: they merge with each other, and the merged
    /// block joins only once they add up to half its size.
    #[test]
    fn a_large_block_is_not_rewritten_to_absorb_a_few_small_ones() {
        let base = 20 * DAY_MS * 1_000_000 / HOUR_NS * HOUR_NS;
        // A minute into the window: still open.
        let now = base / 1_000_000 + 60_000;
        let rules = PlanRules { max_inputs: 64, ..rules() };
        let mut metas = vec![block(100, base, 400)];
        metas.extend((0..5).map(|i| block(i, base + i as u64, 20)));
        let plan = plan(&metas, &[], now, &rules);
        assert_eq!(plan.jobs.iter().map(inputs).collect::<Vec<_>>(), [ids(&[0, 1, 2, 3, 4])], "100 < 400 / 2");
        metas.extend((5..10).map(|i| block(i, base + i as u64, 20)));
        let plan = super::plan(&metas, &[], now, &rules);
        assert_eq!(plan.jobs.iter().map(inputs).collect::<Vec<_>>(), [ids(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100])]);
        // Blocks of about the same size still merge, smallest first.
        let alike = [block(1, base, 300), block(2, base, 350), block(3, base, 320)];
        let plan = super::plan(&alike, &[], now, &rules);
        assert_eq!(plan.jobs.iter().map(inputs).collect::<Vec<_>>(), [ids(&[1, 2, 3])]);
        // Once the window has closed, nothing is left beside the large block.
        let closed = super::plan(&metas[..6], &[], now + HOUR_NS / 1_000_000, &rules);
        assert_eq!(closed.jobs.iter().map(inputs).collect::<Vec<_>>(), [ids(&[0, 1, 2, 3, 4, 100])]);
    }

    #[test]
    fn replaced_blocks_are_hidden_from_jobs_and_deleted_after_the_grace_period() {
        let now = 20 * DAY_MS;
        let start = (now - DAY_MS) * 1_000_000;
        let mut compacted = block(10, start, 200);
        compacted.replaces = ids(&[1, 2]);
        compacted.created_unix_ms = now - 30_000;
        let metas = vec![block(1, start, 100), block(2, start, 100), compacted.clone(), block(3, start, 100)];
        let plan = plan(&metas, &[], now, &rules());
        assert!(plan.replaced_due.is_empty(), "30 s after the switch, the 60 s grace is not over");
        assert_eq!(plan.jobs.len(), 1);
        assert_eq!(inputs(&plan.jobs[0]), ids(&[3, 10]), "replaced blocks are not merged again");
        assert_eq!(plan.jobs[0].replaces, ids(&[1, 2, 3, 10]), "still-stored blocks stay hidden through the chain");

        let later = super::plan(&metas, &[], now + 30_000, &rules());
        assert_eq!(later.replaced_due, ids(&[1, 2]));
    }

    /// Issue 26, item 17: a compactor that lost its lease while committing (its merge committed under
    /// epoch 5, the new holder's under 7) is fenced off: of two merges replacing a block in common, the
    /// earlier epoch's is hidden (its own inputs only where the later one holds them too) and deleted
    /// after the grace period, so no span counts twice. Before, both were visible.
    #[test]
    fn a_merge_committed_under_a_lost_lease_is_fenced_off_and_deleted() {
        let now = 20 * DAY_MS;
        let start = (now - DAY_MS) * 1_000_000;
        let merged = |id: u128, inputs: &[u128], epoch: Option<u64>| {
            let mut meta = block(id, start, 200);
            meta.replaces = ids(inputs);
            meta.lease_epoch = epoch;
            meta.created_unix_ms = now - 30_000;
            meta
        };
        let inputs = [block(1, start, 100), block(2, start, 100), block(3, start, 100)];
        let hidden = |metas: &[BlockMeta]| {
            let mut hidden: Vec<BlockId> = replacements(metas).hidden.into_iter().collect();
            hidden.sort();
            hidden
        };
        let stale = merged(10, &[1, 2], Some(5));
        let fresh = merged(11, &[2, 3], Some(7));
        let metas: Vec<BlockMeta> = inputs.iter().cloned().chain([stale.clone(), fresh.clone()]).collect();
        assert_eq!(hidden(&metas), ids(&[2, 3, 10]), "block 1 stays visible: only the fenced merge held it");
        let plan = plan(&metas, &[], now + 30_000, &rules());
        assert_eq!(plan.replaced_due, ids(&[2, 3, 10]), "the fenced merge goes after the grace, like an input");
        // Whichever commits last, the later epoch wins; merges from before epochs existed replace as always.
        let overlapping: Vec<BlockMeta> =
            inputs.iter().cloned().chain([merged(11, &[1, 2, 3], Some(7)), stale.clone()]).collect();
        assert_eq!(hidden(&overlapping), ids(&[1, 2, 3, 10]));
        let unfenced: Vec<BlockMeta> =
            inputs.iter().cloned().chain([merged(10, &[1, 2], None), merged(11, &[3], None)]).collect();
        assert_eq!(hidden(&unfenced), ids(&[1, 2, 3]));
    }

    #[test]
    fn retention_deletes_wholly_old_blocks_replaced_ones_first() {
        let now = 20 * DAY_MS;
        let old = (now - 15 * DAY_MS) * 1_000_000;
        let mut compacted = block(10, old, 300);
        compacted.replaces = ids(&[1]);
        let mut straddling = block(3, old, 100);
        straddling.max_end_unix_nano = (now - 13 * DAY_MS) * 1_000_000; // ends inside retention
        let metas = vec![compacted, block(1, old, 100), straddling, block(4, (now - DAY_MS) * 1_000_000, 1)];
        let plan = plan(&metas, &[], now, &rules());
        assert_eq!(plan.expired, ids(&[1, 10]), "the replaced block goes before its replacement");
        assert!(plan.replaced_due.is_empty(), "an expired block is deleted once, by retention");
        assert!(plan.jobs.is_empty(), "expired blocks are not merged; 3 and 4 are in different windows");
    }

    #[test]
    fn retention_keeps_a_block_its_retention_after_its_spans_were_first_written() {
        let now = 20 * DAY_MS;
        // Spans a client stamped in 1970, written a minute ago.
        let mut stamped_1970 = block(1, 0, 100);
        stamped_1970.created_unix_ms = now - 60_000;
        // A merge of old blocks, committed just now: its spans were first written 15 days ago.
        let mut merged_old = block(2, 0, 100);
        merged_old.created_unix_ms = now - 60_000;
        merged_old.first_written_unix_ms = Some(now - 15 * DAY_MS);
        let plan = plan(&[stamped_1970.clone(), merged_old], &[], now, &rules());
        assert_eq!(plan.expired, ids(&[2]), "only the block first written past retention goes");
        let later = super::plan(&[stamped_1970], &[], now - 60_000 + 14 * DAY_MS + 1, &rules());
        assert_eq!(later.expired, ids(&[1]), "14 days after it was written, the 1970 block goes");
    }

    #[test]
    fn spans_stamped_far_in_the_future_keep_their_block_one_day_past_retention_at_most() {
        let now = 20 * DAY_MS;
        let year_2500 = 16_725_225_600_000_000_000u64; // past i64::MAX nanoseconds
        let future = |id, written_days_ago: u64| {
            let mut meta = block(id, year_2500, 100);
            meta.max_end_unix_nano = u64::MAX;
            meta.created_unix_ms = now - written_days_ago * DAY_MS;
            meta
        };
        let metas = [future(1, 16), future(2, 14), future(3, 1)];
        assert_eq!(plan(&metas, &[], now, &rules()).expired, ids(&[1]), "14 days + 1 day of clock skew");
        let mut near = block(4, (now + 3_600_000) * 1_000_000, 100); // an hour ahead: believed
        near.created_unix_ms = now - 14 * DAY_MS - 1;
        assert!(plan(&[near], &[], now, &rules()).expired.is_empty());
    }

    #[test]
    fn leftovers_go_only_after_their_grace_period() {
        let now = 20 * DAY_MS;
        let leftovers = [
            UncommittedBlock { block: BlockId::from_u128(1), last_modified_unix_ms: now - 3_600_000 },
            UncommittedBlock { block: BlockId::from_u128(2), last_modified_unix_ms: now - 3_599_999 },
        ];
        assert_eq!(plan(&[], &leftovers, now, &rules()).leftovers_due, ids(&[1]));
    }
}
