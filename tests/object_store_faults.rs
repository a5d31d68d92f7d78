//! An object store that fails, then stalls, delays flushes but loses nothing (CONTRACTS §7): ingest and
//! queries of recent data keep working until the WAL limit, then ingest answers 429; once the store
//! heals, every acknowledged span reaches a block exactly once.

mod common;

use std::io::Write;
use std::time::Duration;

use common::faulty::{Fault, FaultyStore};
use common::server::{TestServer, send};
use spanlake::ids::{TenantId, TraceId};
use spanlake::loadgen::{OtlpClient, Protocol, SendError};
use spanlake::storage::{RangeReads, Storage};
use spanlake::synth::TraceGenerator;

/// A server on the S3 test server behind a fault injector that fails every request, cutting a block
/// every 64 KiB and giving up on an upload after 200 ms; `adjust` changes the settings first.
async fn server_on_failing_s3(
    adjust: impl FnOnce(&mut spanlake::config::ServeConfig),
) -> (Storage, std::sync::Arc<FaultyStore>, TestServer) {
    let s3 = common::Backend::s3().storage;
    let faulty = FaultyStore::new(s3.object_store());
    let storage = Storage::from_store(faulty.clone(), "faulty S3", RangeReads::Exact);
    faulty.set(Fault::Failing);
    let server = TestServer::start(storage, |config| {
        config.max_block_bytes = spanlake::config::ByteSize(64 * 1024);
        config.upload_timeout = Duration::from_millis(200);
        adjust(config);
    })
    .await;
    (s3, faulty, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_then_stalling_store_loses_nothing_and_a_full_wal_answers_429() {
    let (s3, faulty, server) =
        server_on_failing_s3(|config| config.max_wal_bytes = spanlake::config::ByteSize(2 * 1024 * 1024)).await;
    let client = OtlpClient::connect(&server.grpc_url(), Protocol::Grpc, None).unwrap();
    let mut generator = TraceGenerator::new(42);
    let mut acked_ids = String::new();
    let mut refused = None;
    for round in 0..2_000 {
        if round == 10 {
            faulty.set(Fault::Stalling);
        }
        let request = generator.next_request(200);
        let ids: Vec<(String, String)> = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| (hex::encode(&s.trace_id), hex::encode(&s.span_id)))
            .collect();
        match client.export(request).await {
            Ok(0) => ids.iter().for_each(|(t, s)| acked_ids.push_str(&format!("{t} {s}\n"))),
            Err(error @ SendError::Refused { retryable: true, .. }) => {
                refused = Some(error);
                break;
            }
            other => panic!("unexpected export outcome {other:?}"),
        }
    }
    let refused = refused.expect("ingest answers RESOURCE_EXHAUSTED once the WAL is full");
    assert!(refused.to_string().contains("WAL"), "{refused}");
    let first_trace = TraceId::from_hex(acked_ids.split_whitespace().next().unwrap()).unwrap();
    let ingester = server.server.ingester().expect("an ingester").clone();
    assert!(
        !ingester.recent_trace(&TenantId::single_tenant(), &first_trace).unwrap().is_empty(),
        "recent spans stay queryable while the store is down"
    );
    assert_eq!(send("GET", &server.query_url("/ready"), &[], Vec::new()).await.status, 200);

    faulty.set(Fault::Healthy);
    let flushed =
        tokio::time::timeout(Duration::from_secs(120), send("POST", &server.query_url("/flush"), &[], Vec::new()))
            .await
            .expect("flush completes once the store heals");
    assert_eq!(flushed.status, 204, "{}", flushed.text());
    assert!(client.export(generator.next_request(10)).await.is_ok(), "ingest works again after the flush");

    let ids_file = tempfile::NamedTempFile::new().unwrap();
    ids_file.as_file().write_all(acked_ids.as_bytes()).unwrap();
    let report = spanlake::loadgen::verify::verify(ids_file.path(), &s3, &TenantId::single_tenant()).await.unwrap();
    assert!(report.acknowledged > 1000, "{report:?}");
    assert!(report.passed(), "{report:?}");
    server.server.shutdown().await.unwrap();
}

/// Issue 26, defect 14: while the store is down, blocks pile up encoded in the ingester. A query decodes
/// only those its trace IDs and time bounds admit, when it runs, and the decoded rows count against its
/// memory limit (an answer of 507, not gigabytes outside the pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_waiting_for_upload_are_decoded_only_when_a_query_needs_them_and_within_its_memory_limit() {
    use futures::StreamExt;
    use spanlake::sql::{SqlEngine, SqlError, SqlLimits};

    let (_s3, faulty, server) = server_on_failing_s3(|_| {}).await;
    let client = OtlpClient::connect(&server.grpc_url(), Protocol::Grpc, None).unwrap();
    let mut generator = TraceGenerator::new(7);
    let first = generator.next_request(200);
    let first_trace = first.resource_spans[0].scope_spans[0].spans[0].trace_id.clone();
    let first_trace_spans = first
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|span| span.trace_id == first_trace)
        .count();
    assert_eq!(client.export(first).await.unwrap(), 0);
    for _ in 0..20 {
        assert_eq!(client.export(generator.next_request(200)).await.unwrap(), 0);
    }

    let tenant = TenantId::single_tenant();
    let engine = SqlEngine::new(server.server.querier().clone(), SqlLimits::default()).unwrap();
    let run = |engine: SqlEngine, query: String| async move {
        let mut rows = engine.query(&TenantId::single_tenant(), &query).await.unwrap();
        let mut count = 0;
        while let Some(batch) = rows.next().await {
            let batch = batch.unwrap();
            count += arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batch.column(0)).value(0);
        }
        (count, rows.pruning())
    };
    // The cutter encodes blocks while uploads fail; wait for several of them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (all, pruning) = loop {
        let (all, pruning) = run(engine.clone(), "SELECT count(*) FROM spans".into()).await;
        if pruning.pending_blocks >= 3 || std::time::Instant::now() > deadline {
            break (all, pruning);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(pruning.pending_blocks >= 3, "blocks waiting for upload: {pruning:?}");
    assert!(all >= 21 * 200, "every acknowledged span is counted: {all}");

    let by_id = format!("SELECT count(*) FROM spans WHERE trace_id = '{}'", hex::encode(&first_trace));
    let (count, pruning) = run(engine.clone(), by_id).await;
    assert_eq!(count as usize, first_trace_spans);
    assert!(
        pruning.pending_blocks <= 1 && pruning.pending_pruned >= 2,
        "only the trace's block is decoded: {pruning:?}"
    );

    let future = "SELECT count(*) FROM spans WHERE start_time > now() + INTERVAL '1 day'";
    let (count, pruning) = run(engine.clone(), future.into()).await;
    assert_eq!(count, 0);
    assert_eq!(pruning.pending_blocks, 0, "no block waiting for upload holds tomorrow's spans: {pruning:?}");

    let small = SqlLimits { memory_bytes: 64 * 1024, ..SqlLimits::default() };
    let engine = SqlEngine::new(server.server.querier().clone(), small).unwrap();
    let mut rows = engine.query(&tenant, "SELECT count(*) FROM spans").await.unwrap();
    let mut failure = None;
    while let Some(batch) = rows.next().await {
        if let Err(error) = batch {
            failure = Some(error);
            break;
        }
    }
    let failure = failure.expect("decoding the waiting blocks passes a 64 KiB memory limit");
    assert!(matches!(failure, SqlError::Memory { .. }), "{failure}");

    faulty.set(Fault::Healthy);
    server.server.shutdown().await.unwrap();
}

/// Issue 26, item 13: a block the store keeps refusing while it takes other tenants' blocks holds up no
/// one: the other tenant's block commits meanwhile (uploads run side by side), and after a few attempts
/// the refused block is quarantined (its Parquet file kept on local disk, counted, named on /ready) and
/// let go of, so `/flush` returns. Before, uploads ran one at a time and retried the bad block forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_the_store_refuses_is_quarantined_and_holds_up_no_other_tenant() {
    let s3 = common::Backend::s3().storage;
    let faulty = FaultyStore::new(s3.object_store());
    let storage = Storage::from_store(faulty.clone(), "faulty S3", RangeReads::Exact);
    faulty.refuse_writes_under("team-bad/");
    let server = TestServer::start(storage.clone(), |config| config.multitenancy = true).await;
    for (tenant, seed) in [("team-bad", 1), ("team-good", 2)] {
        let body = prost::Message::encode_to_vec(&TraceGenerator::new(seed).next_request(50));
        let headers = [("x-scope-orgid", tenant), ("content-type", "application/x-protobuf")];
        assert_eq!(send("POST", &server.traces_url(), &headers, body).await.status, 200);
    }
    let flush_url = server.query_url("/flush");
    let flush = send("POST", &flush_url, &[("x-scope-orgid", "team-good")], Vec::new());
    let flushed = tokio::time::timeout(Duration::from_secs(60), flush).await.expect("the flush ends");
    assert_eq!(flushed.status, 204, "{}", flushed.text());

    let good = TenantId::new("team-good").unwrap();
    assert_eq!(spanlake::storage::list_blocks(&storage, &good).await.unwrap().committed.len(), 1);
    let ready = send("GET", &server.query_url("/ready"), &[], Vec::new()).await;
    assert_eq!(ready.status, 200);
    assert!(ready.text().contains("quarantined") && ready.text().contains("team-bad/"), "{}", ready.text());
    assert!(!ready.text().contains(server.data_dir.path().to_str().unwrap()), "no local path: {}", ready.text());
    let quarantined = server.server.ingester().expect("an ingester").quarantined();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let folder = server.data_dir.path().join("wal/quarantine").join(&quarantined[0]);
    let parquet = std::fs::read(folder.join("data.parquet")).unwrap();
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"), "a whole Parquet file is kept");
    let reason = std::fs::read_to_string(folder.join("reason.txt")).unwrap();
    assert!(reason.contains("could not be uploaded"), "{reason}");
    let metrics = send("GET", &server.query_url("/metrics"), &[], Vec::new()).await.text();
    assert!(metrics.contains("spanlake_quarantined_total{kind=\"block\"}"), "counted");
    assert_eq!(server.server.ingester().expect("an ingester").buffered_bytes(), 0, "let go of");

    // Still named after a restart, and ingest goes on for both tenants.
    let data_dir = server.data_dir;
    server.server.shutdown().await.unwrap();
    let mut config = common::server::loopback_config(data_dir.path());
    config.multitenancy = true;
    let restarted = spanlake::api::Server::start_with_storage(config, storage).await.unwrap();
    assert_eq!(restarted.ingester().expect("an ingester").quarantined(), quarantined);
    restarted.shutdown().await.unwrap();
}
