//! Compaction and retention (issue 6): answers stay exact while blocks are merged on the real S3 test
//! server, a compactor that dies at any write loses and duplicates nothing and its lease is taken over,
//! retention follows a clock the test controls, and `spanlake compact` does a pass by hand.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use common::encoding::block_write_options;
use common::faulty::{FaultyStore, check_between_writes};
use common::s3::S3Server;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use spanlake::compaction::{CompactionOptions, Compactor, PlanRules, unix_ms_now};
use spanlake::ids::{BlockId, TenantId, TraceId};
use spanlake::query::{Querier, QueryOptions};
use spanlake::spans::encode_resource_spans;
use spanlake::sql::{SqlEngine, SqlLimits};
use spanlake::storage::block::write_block;
use spanlake::storage::{RangeReads, Storage, layout, list_blocks};
use spanlake::synth::TraceGenerator;

const DAY_MS: u64 = 86_400_000;

/// What was written: span count per trace.
type Expected = BTreeMap<TraceId, usize>;

/// Writes `blocks` blocks of a few traces each, their spans starting at `start_unix_nano`, their traces
/// drawn from `seed`; every third trace is split across two neighbouring blocks, so merges must join
/// one trace's rows from several inputs.
async fn write_blocks(
    storage: &Storage,
    tenant: &TenantId,
    blocks: usize,
    seed: u64,
    start_unix_nano: u64,
) -> Expected {
    let mut expected = Expected::new();
    let mut carried: Option<RecordBatch> = None;
    for index in 0..blocks {
        let mut generator = TraceGenerator::new(seed + index as u64);
        generator.set_clock(start_unix_nano + index as u64 * 1_000_000);
        let mut batches: Vec<RecordBatch> = carried.take().into_iter().collect();
        for trace_index in 0..4 {
            let trace = generator.next_trace();
            let (batch, _) = encode_resource_spans(&trace).unwrap();
            let id = TraceId::from_slice(&trace[0].scope_spans[0].spans[0].trace_id).unwrap();
            *expected.entry(id).or_default() += batch.num_rows();
            if trace_index == 3 && index + 1 < blocks && batch.num_rows() > 1 {
                let half = batch.num_rows() / 2;
                batches.push(batch.slice(0, half));
                carried = Some(batch.slice(half, batch.num_rows() - half));
            } else {
                batches.push(batch);
            }
        }
        write_block(storage, tenant, BlockId::new_random(), batches, &block_write_options()).await.unwrap();
    }
    expected
}

fn options(rules: impl FnOnce(&mut PlanRules)) -> CompactionOptions {
    let mut options = CompactionOptions {
        lease_ttl: Duration::from_secs(60),
        block: block_write_options(),
        ..CompactionOptions::default()
    };
    options.rules.max_inputs = 4;
    rules(&mut options.rules);
    options
}

async fn sql_count(engine: &SqlEngine, tenant: &TenantId, query: &str) -> i64 {
    let mut rows = engine.query(tenant, query).await.unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut value = None;
    while let Some(batch) = rows.next().await {
        let batch = batch.unwrap();
        if batch.num_rows() > 0 {
            value = Some(arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batch.column(0)).value(0));
        }
    }
    value.expect("one row")
}

/// Every answer a querier gives matches what was written: the span count, the distinct (trace, span)
/// pairs, and every fifth trace found whole by ID.
async fn assert_exact(querier: &Querier, tenant: &TenantId, expected: &Expected, context: &str) {
    assert_exact_finding(querier, tenant, expected, expected.iter().step_by(5), context).await;
}

/// Like [`assert_exact`], finding the given traces.
async fn assert_exact_finding<'a>(
    querier: &Querier,
    tenant: &TenantId,
    expected: &Expected,
    traces: impl Iterator<Item = (&'a TraceId, &'a usize)>,
    context: &str,
) {
    let engine = SqlEngine::new(querier.clone(), SqlLimits::default()).expect("SQL engine");
    let total: usize = expected.values().sum();
    assert_eq!(sql_count(&engine, tenant, "SELECT count(*) FROM spans").await, total as i64, "{context}: count(*)");
    let distinct = "SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM spans)";
    assert_eq!(sql_count(&engine, tenant, distinct).await, total as i64, "{context}: no duplicate");
    for (trace, spans) in traces {
        let found = querier.find_trace(tenant, trace, Default::default()).await.unwrap();
        assert_eq!(found.span_count, *spans, "{context}: trace {trace}");
    }
}

fn visible_blocks(querier: &Querier, tenant: &TenantId) -> usize {
    querier.catalog().snapshot(tenant).map_or(0, |blocks| blocks.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_exact_while_compaction_runs_on_s3() {
    // Writes wait for the test, so queries run at every step of every merge, switch and deletion.
    let faulty = FaultyStore::new(S3Server::shared().new_storage("compaction").object_store());
    let storage = Storage::from_store(faulty.clone(), "faulty(s3)", RangeReads::Exact);
    let tenant = TenantId::new("team-c").unwrap();
    let expected = write_blocks(&storage, &tenant, 20, 1_000, common::hours_ago_unix_nano(1)).await;
    let grace = Duration::from_secs(4);
    // Two merges at a time, as a dedicated compactor would run.
    let compactor = Compactor::new(
        storage.clone(),
        CompactionOptions { concurrency: 2, ..options(|rules| rules.deletion_grace = grace) },
    );

    // One querier in the compactor's process (told of each switch at once), one elsewhere (which learns
    // of blocks by listing the store).
    let local = Querier::new(storage.clone(), QueryOptions::default());
    local.catalog().follow(&compactor);
    let remote = Querier::new(storage.clone(), QueryOptions::default());
    assert_exact(&local, &tenant, &expected, "before").await;
    assert_eq!(visible_blocks(&local, &tenant), 20);

    let compacting = {
        let (compactor, tenant, storage) = (compactor.clone(), tenant.clone(), storage.clone());
        async move {
            let mut report = spanlake::compaction::PassReport::default();
            // Passes until nothing is left to merge and every replaced block is gone.
            loop {
                let pass = compactor.compact_tenant_at(&tenant, unix_ms_now(), &|_| {}).await.unwrap();
                report.add(&pass);
                let listing = list_blocks(&storage, &tenant).await.unwrap();
                if pass.jobs == 0 && listing.committed.len() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            report
        }
    };
    let mut rounds = 0;
    let (report, rounds_mid_write) = check_between_writes(&faulty, compacting, async || {
        remote.catalog().refresh(&tenant).await.unwrap();
        // Two traces a round, others each round, so every trace is looked up at many steps.
        let traces = || expected.iter().cycle().skip(rounds).step_by(expected.len() / 2).take(2);
        assert_exact_finding(&local, &tenant, &expected, traces(), &format!("round {rounds}, in-process querier"))
            .await;
        assert_exact_finding(&remote, &tenant, &expected, traces(), &format!("round {rounds}, other querier")).await;
        rounds += 1;
    })
    .await;
    assert!(report.jobs >= 6, "20 blocks, 4 inputs per merge: several levels of merges ({report:?})");
    assert_eq!(report.deleted_replaced, 20 + report.jobs as u64 - 1, "every input is deleted after the grace");
    // Each merge writes its output's objects, and each deletion of a replaced block is a write: queries
    // ran before every one of them.
    let writes_at_least = 3 * report.jobs as u64 + report.deleted_replaced;
    assert!(
        rounds_mid_write as u64 >= writes_at_least,
        "queries ran between the writes ({rounds_mid_write} rounds mid-write, {rounds} in all, {report:?})"
    );
    remote.catalog().refresh(&tenant).await.unwrap();
    assert_exact(&remote, &tenant, &expected, "after").await;
    assert_eq!(visible_blocks(&local, &tenant), 1);
    assert_eq!(visible_blocks(&remote, &tenant), 1);
    let last = list_blocks(&storage, &tenant).await.unwrap().committed[0];
    let meta = spanlake::storage::read_block_meta(&storage, &tenant, last).await.unwrap();
    assert!(meta.lease_epoch.is_some(), "a merge records the lease epoch it committed under (readers fence by it)");
}

/// A block this build cannot read (metadata of a newer format version, or metadata that does not parse)
/// is skipped, counted and left alone: compaction, retention and the catalogue go on for the tenant's
/// other blocks and for the tenants after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_block_stops_nothing_for_the_blocks_and_tenants_after_it() {
    let storage = S3Server::shared().new_storage("unreadable");
    // "a-…" lists before "b-…": its bad blocks come first.
    let (first, second) = (TenantId::new("a-first").unwrap(), TenantId::new("b-second").unwrap());
    let hour_ago = common::hours_ago_unix_nano(1);
    let mut first_expected = write_blocks(&storage, &first, 4, 500, hour_ago).await;
    let second_expected = write_blocks(&storage, &second, 4, 600, hour_ago).await;
    // Two more of the first tenant's blocks become unreadable: one from a newer spanlake, one damaged.
    let readable = list_blocks(&storage, &first).await.unwrap().committed;
    let unreadable = write_blocks(&storage, &first, 2, 700, hour_ago).await;
    let listed = list_blocks(&storage, &first).await.unwrap().committed;
    let newer: Vec<BlockId> = listed.into_iter().filter(|block| !readable.contains(block)).collect();
    let store = storage.object_store();
    let meta_path = layout::meta_path(&first, newer[0]);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&store.get(&meta_path).await.unwrap().bytes().await.unwrap()).unwrap();
    meta["format_version"] = 99.into();
    store.put(&meta_path, serde_json::to_vec(&meta).unwrap().into()).await.unwrap();
    store.put(&layout::meta_path(&first, newer[1]), b"{ not json".to_vec().into()).await.unwrap();
    // The traces of the good blocks alone: a trace split into an unreadable block is left out.
    first_expected.retain(|trace, _| !unreadable.contains_key(trace));

    let querier = Querier::new(storage.clone(), QueryOptions::default());
    querier.catalog().refresh_all().await.unwrap();
    assert_eq!(visible_blocks(&querier, &first), 4, "the readable blocks of the first tenant");
    assert_eq!(visible_blocks(&querier, &second), 4, "the tenant after it");
    assert_exact(&querier, &first, &first_expected, "first tenant, before compaction").await;
    assert_exact(&querier, &second, &second_expected, "second tenant, before compaction").await;

    let compactor = Compactor::new(storage.clone(), options(|_| {}));
    let report = compactor.pass_at(unix_ms_now(), &|_| {}).await.unwrap();
    assert_eq!(report.blocks_skipped, 2, "{report:?}");
    assert_eq!(report.tenants_failed, 0, "{report:?}");
    assert_eq!(report.jobs, 2, "one merge per tenant ({report:?})");
    let first_left = list_blocks(&storage, &first).await.unwrap().committed;
    assert!(newer.iter().all(|block| first_left.contains(block)), "unreadable blocks are left alone");

    let after = Querier::new(storage.clone(), QueryOptions::default());
    after.catalog().refresh_all().await.unwrap();
    assert_exact(&after, &second, &second_expected, "second tenant, after compaction").await;
    assert_exact(&after, &first, &first_expected, "first tenant, after compaction").await;
    assert_eq!(visible_blocks(&after, &first), 1, "its four readable blocks merged into one");
}

/// A fresh in-memory store wrapped in a fault injector, with `blocks` blocks written through it.
async fn faulty_storage(tenant: &TenantId, blocks: usize) -> (Arc<FaultyStore>, Storage, Expected) {
    let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    let storage = Storage::from_store(faulty.clone(), "faulty(memory)", RangeReads::Exact);
    let expected = write_blocks(&storage, tenant, blocks, 1_000, common::hours_ago_unix_nano(1)).await;
    (faulty, storage, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compactor_dying_at_any_write_loses_and_duplicates_nothing() {
    let tenant = TenantId::new("team-k").unwrap();
    let grace = Duration::from_secs(60);
    let rules = |rules: &mut PlanRules| {
        rules.deletion_grace = grace;
        rules.leftover_grace = Duration::from_secs(600);
    };
    let (mut crash_points, mut blocked_by_dead_lease) = (0, 0);
    for writes in 0.. {
        let (faulty, storage, expected) = faulty_storage(&tenant, 6).await;
        let now = unix_ms_now();
        // The dying compactor: a merging pass, then a pass after the grace period that deletes the
        // replaced blocks and merges again; its process "dies" at the write numbered `writes`.
        faulty.fail_writes_after(writes);
        let dying = Compactor::new(storage.clone(), options(rules));
        let mut last_pass = now;
        let first = dying.compact_tenant_at(&tenant, now, &|_| {}).await;
        if first.is_ok() {
            last_pass = now + grace.as_millis() as u64 + 1_000;
            let _ = dying.compact_tenant_at(&tenant, last_pass, &|_| {}).await;
        }
        let crashed = faulty.writes_exhausted();
        faulty.fail_writes_after(i64::MAX);
        let context = format!("died before write {writes}");
        assert_exact(&Querier::new(storage.clone(), QueryOptions::default()), &tenant, &expected, &context).await;

        // Another compactor waits for the dead one's lease to expire, then finishes the work.
        let successor = Compactor::new(storage.clone(), options(rules));
        let early = successor.compact_tenant_at(&tenant, last_pass + 1_000, &|_| {}).await.unwrap();
        blocked_by_dead_lease += early.tenants_leased_elsewhere;
        let mut at = last_pass + 11 * 60_000;
        for _ in 0..10 {
            let pass = successor.compact_tenant_at(&tenant, at, &|_| {}).await.unwrap();
            assert_eq!(pass.tenants_leased_elsewhere, 0, "{context}: the expired lease is taken over");
            let listing = list_blocks(&storage, &tenant).await.unwrap();
            if pass.jobs == 0 && listing.committed.len() == 1 && listing.uncommitted.is_empty() {
                break;
            }
            at += grace.as_millis() as u64 + 1_000;
        }
        let listing = list_blocks(&storage, &tenant).await.unwrap();
        assert_eq!(listing.committed.len(), 1, "{context}: everything ends in one block");
        assert!(listing.uncommitted.is_empty(), "{context}: leftovers are cleaned: {:?}", listing.uncommitted);
        assert_exact(&Querier::new(storage.clone(), QueryOptions::default()), &tenant, &expected, &context).await;
        if !crashed {
            break;
        }
        crash_points += 1;
    }
    assert!(crash_points >= 20, "every write of two passes was a crash point ({crash_points})");
    assert!(blocked_by_dead_lease > 0, "a dead compactor's unexpired lease held its successor off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_follows_the_clock_per_tenant_and_cleans_leftovers_after_their_grace() {
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let (short, long) = (TenantId::new("short").unwrap(), TenantId::new("long").unwrap());
    // Day 0 is 40 days ago: the passes below run at chosen days after it, the last one at the wall clock.
    let day_ns = DAY_MS * 1_000_000;
    let day_0_ns = common::hours_ago_unix_nano(40 * 24);
    // Each block written on the day its spans start: retention also keeps a block its retention after
    // it was written (see `..._whatever_time_its_spans_claim` below).
    let day_ms = |ns: u64| ns / 1_000_000;
    let old_short = write_blocks(&storage, &short, 2, 1_000, day_0_ns).await;
    common::backdate_blocks(&storage, &short, day_ms(day_0_ns)).await;
    let new_short = write_blocks(&storage, &short, 2, 2_000, day_0_ns + 20 * day_ns).await;
    common::backdate_blocks(&storage, &short, day_ms(day_0_ns + 20 * day_ns)).await;
    let old_long = write_blocks(&storage, &long, 2, 1_000, day_0_ns).await;
    common::backdate_blocks(&storage, &long, day_ms(day_0_ns)).await;
    let leftover = BlockId::new_random();
    let data = layout::data_path(&short, leftover);
    storage.object_store().put(&data, bytes::Bytes::from_static(b"crashed upload").into()).await.unwrap();

    let mut options = options(|rules| rules.retention = Duration::from_millis(14 * DAY_MS));
    options.tenant_retention.insert(long.clone(), Duration::from_millis(30 * DAY_MS));
    let compactor = Compactor::new(storage.clone(), options);
    let day_21 = day_0_ns / 1_000_000 + 21 * DAY_MS;
    let report = compactor.pass_at(day_21, &|_| {}).await.unwrap();
    assert_eq!(report.deleted_expired, 2, "the short tenant's two blocks from day 0 ({report:?})");
    assert_eq!(report.deleted_leftovers, 0, "the leftover was written just now");
    assert_exact(&Querier::new(storage.clone(), QueryOptions::default()), &short, &new_short, "short, day 21").await;
    assert_exact(&Querier::new(storage.clone(), QueryOptions::default()), &long, &old_long, "long, day 21").await;
    let querier = Querier::new(storage.clone(), QueryOptions::default());
    let old_trace = old_short.keys().next().unwrap();
    assert!(querier.find_trace(&short, old_trace, Default::default()).await.unwrap().is_empty(), "expired");

    let report = compactor.pass_at(day_0_ns / 1_000_000 + 31 * DAY_MS, &|_| {}).await.unwrap();
    assert_eq!(report.deleted_expired, 3, "day 31: the long tenant's merged day-0 block and the two it replaced");
    assert!(storage.object_store().head(&data).await.is_ok(), "a leftover younger than its grace stays");

    let report = compactor.pass_at(unix_ms_now() + 2 * 3_600_000, &|_| {}).await.unwrap();
    assert_eq!(report.deleted_leftovers, 1);
    assert!(storage.object_store().head(&data).await.is_err(), "the crashed upload's objects are gone");
    let remaining: HashSet<_> = list_blocks(&storage, &short).await.unwrap().committed.into_iter().collect();
    assert!(remaining.is_empty(), "two hours past now, 14-day retention has taken everything: {remaining:?}");
}

/// Issue 26, defect 9: spans a client stamped long ago are kept their retention after they arrived,
/// and merging them does not restart that clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_block_its_retention_after_it_was_written_whatever_time_its_spans_claim() {
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let tenant = TenantId::new("stamped-1970").unwrap();
    let expected = write_blocks(&storage, &tenant, 2, 3_000, 1_000_000_000).await;
    let compactor = Compactor::new(storage.clone(), options(|rules| rules.retention = Duration::from_millis(DAY_MS)));

    let report = compactor.pass_at(unix_ms_now(), &|_| {}).await.unwrap();
    assert_eq!(report.deleted_expired, 0, "written just now ({report:?})");
    assert_eq!(report.jobs, 1, "merged instead ({report:?})");
    let querier = Querier::new(storage.clone(), QueryOptions::default());
    assert_exact(&querier, &tenant, &expected, "spans of 1970, a minute after they arrived").await;

    let report = compactor.pass_at(unix_ms_now() + DAY_MS / 2, &|_| {}).await.unwrap();
    assert_eq!(report.deleted_expired, 0, "half a day later, the merged block still holds them ({report:?})");
    let querier = Querier::new(storage.clone(), QueryOptions::default());
    assert_exact(&querier, &tenant, &expected, "spans of 1970, half a day after they arrived").await;
    let report = compactor.pass_at(unix_ms_now() + DAY_MS + 60_000, &|_| {}).await.unwrap();
    assert!(report.deleted_expired >= 1, "a day after they were written, the merged block goes ({report:?})");
    assert!(list_blocks(&storage, &tenant).await.unwrap().committed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_compacts_its_own_blocks_while_answering_and_reports_it_in_metrics() {
    use common::server::{TestServer, send};
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let server = TestServer::start(storage.clone(), |config| {
        config.compaction_interval = Duration::from_millis(300);
        config.compaction_deletion_grace = Duration::from_secs(1);
    })
    .await;
    let mut spans = 0;
    for seed in 0..3 {
        let mut generator = TraceGenerator::new(seed);
        generator.set_clock(common::hours_ago_unix_nano(1));
        let trace = generator.next_trace();
        spans += spanlake::spans::span_count(&trace);
        let body = prost::Message::encode_to_vec(
            &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest { resource_spans: trace },
        );
        let headers = [("content-type", "application/x-protobuf")];
        assert_eq!(send("POST", &server.traces_url(), &headers, body).await.status, 200);
        assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    }
    let tenant = TenantId::single_tenant();
    let querier = server.server.querier();
    let started = std::time::Instant::now();
    loop {
        let engine = SqlEngine::new(querier.clone(), SqlLimits::default()).expect("SQL engine");
        assert_eq!(sql_count(&engine, &tenant, "SELECT count(*) FROM spans").await, spans as i64, "exact meanwhile");
        let stored = list_blocks(&storage, &tenant).await.unwrap().committed.len();
        if stored == 1 && visible_blocks(querier, &tenant) == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "3 flushed blocks end as 1 ({stored} stored)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = send("GET", &server.query_url("/metrics"), &[], "").await.text();
    for line in ["spanlake_compaction_blocks_total{direction=\"out\"}", "spanlake_compaction_blocks_outstanding{"] {
        assert!(metrics.contains(line), "/metrics reports {line}: {metrics}");
    }
    server.server.shutdown().await.unwrap();
}

/// Issue 26, item 8: a querier whose catalogue still lists blocks another process's compactor has
/// merged and deleted (its refresh has not run since) answers SQL in full: the scan finds a block gone,
/// the tenant's blocks are listed again and the query runs once more. Before, the query failed with 503
/// until the next periodic refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_blocks_another_compactor_deleted_refreshes_and_answers_in_full() {
    let storage = S3Server::shared().new_storage("sql-after-compaction");
    let tenant = TenantId::single_tenant();
    let expected = write_blocks(&storage, &tenant, 4, 500, common::hours_ago_unix_nano(1)).await;
    let server = common::server::TestServer::start(storage.clone(), |config| {
        config.block_refresh_interval = Duration::from_secs(3600);
    })
    .await;
    let searcher = common::server::TestServer::start(storage.clone(), |config| {
        config.block_refresh_interval = Duration::from_secs(3600);
    })
    .await;
    assert_eq!(searcher.server.querier().catalog().blocks(&tenant).await.unwrap().len(), 4);
    let count = || async {
        let reply = common::server::send(
            "POST",
            &server.query_url("/api/sql"),
            &[],
            "SELECT count(*) AS n FROM spans WHERE duration_ns >= 0",
        )
        .await;
        (reply.status, reply.text())
    };
    let total: usize = expected.values().sum();
    // A filter on a column makes the scan read every block's data (a bare count(*) is answered from
    // the blocks' metadata).
    let whole = (200, format!("{{\"columns\":[{{\"name\":\"n\",\"type\":\"Int64\"}}],\"rows\":[[{total}]]}}"));
    assert_eq!(count().await, whole, "the catalogue knows the four blocks");

    // Another process merges them and deletes the inputs at once (no grace).
    let compactor = Compactor::new(storage.clone(), options(|rules| rules.deletion_grace = Duration::ZERO));
    for _ in 0..2 {
        compactor.compact_tenant_at(&tenant, unix_ms_now(), &|_| {}).await.unwrap();
    }
    assert_eq!(list_blocks(&storage, &tenant).await.unwrap().committed.len(), 1, "merged, inputs deleted");
    assert_eq!(server.server.querier().catalog().snapshot(&tenant).unwrap().len(), 4, "not refreshed yet");

    assert_eq!(count().await, whole, "the scan's missing blocks make it refresh and run again");
    assert_eq!(server.server.querier().catalog().snapshot(&tenant).unwrap().len(), 1);

    // Search, on a second querier whose catalogue is as stale as the first one's was.
    let traces =
        searcher.query_url(&format!("/api/search?q=%7B%7D&limit={}&start=0&end=4102444800", expected.len() + 1));
    let found = common::server::send("GET", &traces, &[], Vec::new()).await;
    assert_eq!(found.status, 200, "{}", found.text());
    let answer: serde_json::Value = serde_json::from_slice(&found.body).unwrap();
    assert_eq!(answer["traces"].as_array().unwrap().len(), expected.len(), "every trace found: {answer}");
    assert_eq!(searcher.server.querier().catalog().snapshot(&tenant).unwrap().len(), 1);
    searcher.server.shutdown().await.unwrap();
    server.server.shutdown().await.unwrap();
}
