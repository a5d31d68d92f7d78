use std::collections::HashMap;

use super::*;
use crate::storage::block::{find_trace, load_footer};
use crate::storage::{list_blocks, read_block_meta};
use crate::synth::TraceGenerator;

fn tenant() -> TenantId {
    TenantId::new("team-a").unwrap()
}

fn options(wal_dir: &std::path::Path) -> IngestOptions {
    IngestOptions { flush_on_shutdown: false, ..IngestOptions::new(wal_dir.to_owned()) }
}

fn new_spans(request: ExportTraceServiceRequest) -> NewSpans {
    NewSpans::from_request(request).unwrap()
}

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    crate::spans::span_count(&request.resource_spans)
}

fn first_trace_id(request: &ExportTraceServiceRequest) -> TraceId {
    TraceId::from_slice(&request.resource_spans[0].scope_spans[0].spans[0].trace_id).unwrap()
}

/// Every (trace, span) pair in the tenant's committed blocks, with how often it occurs.
async fn stored_spans(storage: &Storage) -> HashMap<crate::loadgen::verify::SpanKey, u32> {
    crate::loadgen::verify::stored_span_counts(storage, &tenant()).await.unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test]
async fn pushed_spans_are_visible_at_once_and_in_a_block_after_flush() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let ingester = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    let request = TraceGenerator::new(1).next_request(500);
    let (sent, trace) = (span_count(&request), first_trace_id(&request));

    let outcome = ingester.push(&tenant(), new_spans(request)).await.unwrap();
    assert_eq!(outcome, PushOutcome { accepted: sent, rejected: vec![] });
    assert!(rows(&ingester.recent_trace(&tenant(), &trace).unwrap()) > 0);
    assert_eq!(rows(&ingester.recent_batches(&tenant()).unwrap()), sent);

    ingester.flush().await.unwrap();
    assert_eq!(rows(&ingester.recent_batches(&tenant()).unwrap()), 0, "committed spans leave the buffer");
    assert_eq!(ingester.buffered_bytes(), 0);
    let stored = stored_spans(&storage).await;
    assert_eq!(stored.len(), sent);
    assert!(stored.values().all(|count| *count == 1));
    let meta = read_block_meta(&storage, &tenant(), list_blocks(&storage, &tenant()).await.unwrap().committed[0])
        .await
        .unwrap();
    let footer = load_footer(&storage, &meta).await.unwrap();
    assert!(rows(&find_trace(&storage, &meta, &footer, &trace).await.unwrap()) > 0);
    ingester.shutdown().await;
}

#[tokio::test]
async fn unflushed_spans_come_back_from_the_wal_after_a_restart() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let ingester = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    let request = TraceGenerator::new(2).next_request(300);
    let sent = span_count(&request);
    ingester.push(&tenant(), new_spans(request)).await.unwrap();
    ingester.shutdown().await;

    let restarted = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    assert_eq!(rows(&restarted.recent_batches(&tenant()).unwrap()), sent);
    restarted.flush().await.unwrap();
    assert_eq!(stored_spans(&storage).await.len(), sent);
    restarted.shutdown().await;
}

/// Pushes one request, commits it in a block and stops. The spans and the cut record stay in the active
/// WAL segment, which is never released: exactly the state a crash right after the commit leaves behind.
/// Returns the spans sent and the request's first trace.
async fn committed_but_not_released(wal: &std::path::Path, storage: &Storage, seed: u64) -> (usize, TraceId) {
    let ingester = Ingester::start(options(wal), storage.clone()).await.unwrap();
    let request = TraceGenerator::new(seed).next_request(300);
    let (sent, trace) = (span_count(&request), first_trace_id(&request));
    ingester.push(&tenant(), new_spans(request)).await.unwrap();
    ingester.flush().await.unwrap();
    ingester.shutdown().await;
    (sent, trace)
}

#[tokio::test]
async fn a_block_committed_before_the_wal_was_released_is_not_written_again() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let (sent, _) = committed_but_not_released(wal.path(), &storage, 3).await;
    let restarted = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    restarted.flush().await.unwrap();
    assert_eq!(list_blocks(&storage, &tenant()).await.unwrap().committed.len(), 1);
    let stored = stored_spans(&storage).await;
    assert_eq!(stored.len(), sent);
    assert!(stored.values().all(|count| *count == 1), "no span stored twice");
    assert_eq!(rows(&restarted.recent_batches(&tenant()).unwrap()), 0);
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_block_committed_before_a_restart_is_announced_as_stored_not_as_re_encoded() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let (sent, trace) = committed_but_not_released(wal.path(), &storage, 6).await;
    let block = list_blocks(&storage, &tenant()).await.unwrap().committed[0];
    let stored = read_block_meta(&storage, &tenant(), block).await.unwrap();

    // Restarted with other block settings (as after an upgrade), the replay re-encodes the committed
    // block into other bytes; readers must still be told what the store holds.
    let mut other = options(wal.path());
    other.block.zstd_level = 9;
    other.block.data_page_rows = 64;
    let restarted = Ingester::start(other, storage.clone()).await.unwrap();
    let querier = crate::query::Querier::with_ingester(storage.clone(), Default::default(), restarted.clone());
    restarted.flush().await.unwrap();
    let known = querier.catalog().snapshot(&tenant()).expect("the commit was announced");
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].meta, stored, "the catalogue holds the stored block's metadata");
    let found = querier.find_trace(&tenant(), &trace, Default::default()).await.unwrap();
    assert!(found.incomplete.is_none(), "{:?}", found.incomplete);
    assert!(found.span_count > 0 && found.cost.recent_spans == 0, "found in the stored block");
    assert_eq!(stored.span_count as usize, sent);
    restarted.shutdown().await;
}

/// Issue 26, item 12: a push held between its WAL append and the buffer while another tenant's pushes
/// rotate the WAL and commit a block: the commit's release of WAL segments must keep the held push's
/// segment, so its spans (acknowledged once the push returns) come back after a restart. Before, the
/// segment was deleted and they were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_between_its_wal_append_and_the_buffer_keeps_its_wal_segment() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let small_segments = IngestOptions { max_wal_bytes: 512 * 1024, ..options(wal.path()) };
    let ingester = Ingester::start(small_segments.clone(), storage.clone()).await.unwrap();
    let other = TenantId::new("team-b").unwrap();
    let held_request = TraceGenerator::new(40).next_request(300);
    let held_spans = span_count(&held_request);

    let hold = testing::hold_registration(wal.path());
    let pushing = tokio::spawn({
        let (ingester, other) = (ingester.clone(), other.clone());
        async move { ingester.push(&other, new_spans(held_request)).await }
    });
    hold.reached().await;
    let first_segment = ingester.inner.wal.active_segment();
    for seed in 41..44 {
        ingester.push(&tenant(), new_spans(TraceGenerator::new(seed).next_request(300))).await.unwrap();
    }
    assert!(ingester.inner.wal.active_segment() > first_segment, "the WAL rotated meanwhile");
    ingester.flush().await.unwrap();
    hold.release();
    assert_eq!(pushing.await.unwrap().unwrap().accepted, held_spans, "acknowledged");
    ingester.shutdown().await;

    let restarted = Ingester::start(small_segments, storage).await.unwrap();
    assert_eq!(rows(&restarted.recent_batches(&other).unwrap()), held_spans, "the held push's spans survive");
    restarted.shutdown().await;
}

/// Issue 26, item 12: a push whose request is cancelled after its WAL append (the client went away) still
/// puts its spans in the buffer, so the running server holds what a restart replays, each span once.
/// Before, the record stayed in the WAL only, and the spans appeared only after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_cancelled_after_its_wal_append_holds_what_a_replay_would() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let ingester = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    let request = TraceGenerator::new(45).next_request(50);
    let sent = span_count(&request);
    let hold = testing::hold_registration(wal.path());
    let pushing = tokio::spawn({
        let ingester = ingester.clone();
        async move { ingester.push(&tenant(), new_spans(request)).await }
    });
    hold.reached().await;
    pushing.abort();
    assert!(pushing.await.unwrap_err().is_cancelled());
    hold.release();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rows(&ingester.recent_batches(&tenant()).unwrap()) < sent {
        assert!(std::time::Instant::now() < deadline, "the cancelled push's spans never reached the buffer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ingester.flush().await.unwrap();
    ingester.shutdown().await;
    let restarted = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    restarted.flush().await.unwrap();
    let stored = stored_spans(&storage).await;
    assert_eq!(stored.len(), sent);
    assert!(stored.values().all(|count| *count == 1), "each span stored once");
    restarted.shutdown().await;
}

/// Issue 26, item 13: WAL records that cannot be replayed (an unreadable record, and a cut group whose
/// block cannot be made) are quarantined, kept on disk as the requests they hold, and the ingester
/// starts with the rest. Before, one such record stopped the server from starting.
#[tokio::test]
async fn records_the_replay_cannot_read_are_quarantined_and_the_ingester_starts() {
    let dir = tempfile::tempdir().unwrap();
    let valid = TraceGenerator::new(50).next_request(20);
    let sent = span_count(&valid);
    let garbage = Bytes::from_static(b"\xff\xff not an OTLP request");
    let block = BlockId::new_random();
    {
        let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let spans = |payload: Bytes| Record::Spans { tenant: tenant(), payload };
        wal.append(spans(Bytes::from(valid.encode_to_vec()))).await.unwrap();
        let unreadable = wal.append(spans(garbage.clone())).await.unwrap();
        let claimed = wal.append(spans(garbage.clone())).await.unwrap();
        let sequences = crate::wal::SequenceRanges::from_sequences(vec![claimed.seq]);
        wal.append(Record::Cut { tenant: tenant(), block, sequences }).await.unwrap();
        assert_eq!((unreadable.seq, claimed.seq), (1, 2));
        wal.close();
    }
    let storage = Storage::open("memory://").unwrap();
    let ingester = Ingester::start(options(dir.path()), storage).await.expect("starts despite the bad records");
    assert_eq!(rows(&ingester.recent_batches(&tenant()).unwrap()), sent, "the readable record is replayed");
    let mut expected = vec![format!("team-a/{block}"), "team-a/record-1".to_owned()];
    expected.sort();
    let mut quarantined = ingester.quarantined();
    quarantined.sort();
    assert_eq!(quarantined, expected);
    let kept = dir.path().join("quarantine/team-a");
    assert_eq!(std::fs::read(kept.join("record-1/1.pb")).unwrap(), garbage.as_ref(), "kept as it was");
    assert_eq!(std::fs::read(kept.join(block.to_string()).join("2.pb")).unwrap(), garbage.as_ref());
    ingester.shutdown().await;
}

#[tokio::test]
async fn invalid_spans_are_refused_one_by_one_and_never_reach_the_wal() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let ingester = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    let mut request = TraceGenerator::new(4).next_request(50);
    let sent = span_count(&request);
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
    request.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1; 3];
    let outcome = ingester.push(&tenant(), new_spans(request)).await.unwrap();
    assert_eq!(outcome.accepted, sent - 2);
    assert_eq!(outcome.rejected.len(), 2);
    ingester.shutdown().await;
    let restarted = Ingester::start(options(wal.path()), storage).await.unwrap();
    assert_eq!(rows(&restarted.recent_batches(&tenant()).unwrap()), sent - 2);
    restarted.shutdown().await;
}

#[tokio::test]
async fn past_its_limits_the_ingester_refuses_with_backpressure() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let tight_memory = IngestOptions { max_buffer_bytes: 1, ..options(wal.path()) };
    let ingester = Ingester::start(tight_memory, storage.clone()).await.unwrap();
    ingester.push(&tenant(), new_spans(TraceGenerator::new(5).next_request(10))).await.unwrap();
    let refused = ingester.push(&tenant(), new_spans(TraceGenerator::new(6).next_request(10))).await.unwrap_err();
    assert!(matches!(refused, IngestError::MemoryFull { .. }) && refused.is_backpressure(), "{refused}");
    ingester.shutdown().await;

    let tight_wal = IngestOptions { max_wal_bytes: 1, ..options(wal.path()) };
    let ingester = Ingester::start(tight_wal, storage).await.unwrap();
    let refused = ingester.push(&tenant(), new_spans(TraceGenerator::new(7).next_request(10))).await.unwrap_err();
    assert!(matches!(refused, IngestError::WalFull { .. }) && refused.is_backpressure(), "{refused}");
    ingester.shutdown().await;
}

#[tokio::test]
async fn a_buffer_is_cut_by_age_without_being_asked() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let quick = IngestOptions { max_block_age: Duration::from_millis(50), ..options(wal.path()) };
    let ingester = Ingester::start(quick, storage.clone()).await.unwrap();
    let committed = Arc::new(Notify::new());
    let signal = committed.clone();
    ingester.on_commit(Box::new(move |_, _| signal.notify_one()));
    ingester.push(&tenant(), new_spans(TraceGenerator::new(8).next_request(20))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), committed.notified()).await.expect("a block is committed");
    assert_eq!(list_blocks(&storage, &tenant()).await.unwrap().committed.len(), 1);
    ingester.shutdown().await;
}

#[tokio::test]
async fn a_full_buffer_is_cut_by_size_and_its_wal_segments_released() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let small = IngestOptions {
        max_block_bytes: 1,
        wal: crate::wal::WalOptions { segment_bytes: 1024 },
        ..options(wal.path())
    };
    let ingester = Ingester::start(small, storage.clone()).await.unwrap();
    let committed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, signal) = (committed.clone(), Arc::new(Notify::new()));
    let wake = signal.clone();
    ingester.on_commit(Box::new(move |_, _| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        wake.notify_one();
    }));
    let mut sent = 0;
    for seed in 0..3 {
        let request = TraceGenerator::new(10 + seed).next_request(50);
        sent += span_count(&request);
        ingester.push(&tenant(), new_spans(request)).await.unwrap();
    }
    // Nothing asks for a flush: the size limit alone cuts the buffers.
    while ingester.buffered_bytes() > 0 {
        tokio::time::timeout(Duration::from_secs(10), signal.notified()).await.expect("blocks are committed");
    }
    assert!(committed.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(stored_spans(&storage).await.len(), sent);
    let segments = std::fs::read_dir(wal.path()).unwrap().count();
    assert!(segments <= 2, "released segments are deleted, {segments} left");
    ingester.shutdown().await;
}

#[tokio::test]
async fn a_flush_whose_caller_goes_away_leaves_no_block_behind() {
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let ingester = Ingester::start(options(wal.path()), storage.clone()).await.unwrap();
    let request = TraceGenerator::new(20).next_request(2_000);
    let sent = span_count(&request);
    ingester.push(&tenant(), new_spans(request)).await.unwrap();
    // An HTTP client that hangs up drops its /flush future part-way (2,000 spans are not encoded and
    // uploaded in 50 µs: the flush was dropped, not finished).
    let dropped = tokio::time::timeout(Duration::from_micros(50), ingester.flush()).await;
    assert!(dropped.is_err(), "the first flush was dropped before it finished");
    tokio::time::timeout(Duration::from_secs(30), ingester.flush()).await.expect("a later flush completes").unwrap();
    assert_eq!(stored_spans(&storage).await.len(), sent);
    assert_eq!(ingester.buffered_bytes(), 0);
    ingester.shutdown().await;
}

/// Issue 26, Add 6: spans a cut record claims come back from the replay as a block waiting for its
/// upload; until it commits, a client resending them must find them held, or they would be stored twice.
/// Before, such a block held no span keys.
#[tokio::test]
async fn spans_replayed_into_a_block_awaiting_upload_are_still_held() {
    use crate::wal::{Record, SequenceRanges, Wal, WalOptions};
    let dir = tempfile::tempdir().unwrap();
    let payload = Bytes::from(TraceGenerator::new(12).next_request(50).encode_to_vec());
    let (batch, _) = crate::spans::protobuf_to_batch(&payload).unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let spans = wal.append(Record::Spans { tenant: tenant(), payload }).await.unwrap();
    let sequences = SequenceRanges::from_sequences(vec![spans.seq]);
    wal.append(Record::Cut { tenant: tenant(), block: crate::ids::BlockId::new_random(), sequences }).await.unwrap();
    wal.close();

    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let quarantine = quarantine::Quarantine::open(dir.path());
    let buffers = replay::replay(&wal, &Default::default(), &quarantine).await.unwrap();
    let held = &buffers.tenants[&tenant()];
    assert_eq!(held.pending.len(), 1, "the cut block waits for its upload");
    assert!(held.open.is_empty());
    let keys = buffer::span_keys(&batch);
    assert_eq!(held.held_keys.len(), keys.len());
    assert!(keys.iter().all(|key| held.held_keys.contains_key(key)), "every replayed span is held");
}

/// A tenant that sent a little and went quiet keeps its spans in its open buffer until they age out
/// (`max_block_age`, 5 minutes by default). The WAL is shared, so that buffer held back the release of
/// every segment written after it: a busy tenant filled the WAL to its limit and every tenant was refused
/// until the quiet buffer aged out (found by benches/soak.py: no span acknowledged for a whole minute).
/// Once the WAL is half full, a buffer pinning old segments is cut.
#[tokio::test]
async fn a_quiet_tenants_open_buffer_does_not_hold_the_wal_back_from_a_busy_one() {
    const WAL_LIMIT: u64 = 1024 * 1024;
    let wal = tempfile::tempdir().unwrap();
    let storage = Storage::open("memory://").unwrap();
    let options = IngestOptions {
        max_wal_bytes: WAL_LIMIT,
        max_block_age: Duration::from_secs(3600),
        max_block_bytes: 1024 * 1024,
        ..options(wal.path())
    };
    let ingester = Ingester::start(options, storage.clone()).await.unwrap();
    let quiet = TenantId::new("quiet").unwrap();
    let mut one_span = TraceGenerator::new(40).next_request(1);
    one_span.resource_spans.truncate(1);
    one_span.resource_spans[0].scope_spans.truncate(1);
    one_span.resource_spans[0].scope_spans[0].spans.truncate(1);
    ingester.push(&quiet, new_spans(one_span)).await.unwrap();
    assert!(ingester.buffered_bytes() < 1024 * 1024, "the quiet buffer is far from full");

    // Ten times the WAL's limit from the busy tenant, each request retried while refused as a client would.
    let (mut sent_bytes, mut refusals) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for seed in 0.. {
        if sent_bytes >= 10 * WAL_LIMIT as usize {
            break;
        }
        let request = TraceGenerator::new(100 + seed).next_request(50);
        loop {
            match ingester.push(&tenant(), new_spans(request.clone())).await {
                Ok(_) => break,
                Err(error) if error.is_backpressure() => {
                    refusals += 1;
                    assert!(std::time::Instant::now() < deadline, "the WAL stayed full ({refusals} refusals): {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("{error}"),
            }
        }
        sent_bytes += request.encoded_len();
    }
    assert_eq!(
        list_blocks(&storage, &quiet).await.unwrap().committed.len(),
        1,
        "the quiet tenant's buffer was cut to release the WAL"
    );
    ingester.shutdown().await;
}
