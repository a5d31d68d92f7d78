//! Retries are idempotent (issue 26, "Add" 6): a client that resends a request whose acknowledgement it
//! lost (the server was killed after the fsync) must not create duplicate spans. The server drops
//! spans the tenant already holds in the ingester, including the ones the WAL replay brought back, so
//! SQL counts stay exact; what was dropped is counted.

mod common;

use common::server::{loopback_config, send};
use prost::Message;
use spanlake::api::Server;
use spanlake::synth::TraceGenerator;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

async fn count(server: &Server) -> String {
    let url = format!("http://{}/api/sql", server.http_addr());
    send("POST", &url, &[], "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans").await.text()
}

/// `spanlake_spans_deduplicated_total` over every tenant.
async fn deduplicated(server: &Server) -> f64 {
    common::server::metric_at(server.http_addr(), "spanlake_spans_deduplicated_total").await
}

async fn export(server: &Server, body: &[u8]) -> u16 {
    let url = format!("http://{}/v1/traces", server.otlp_http_addr().expect("OTLP/HTTP"));
    send("POST", &url, &[PROTOBUF], body.to_vec()).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resent_after_a_restart_is_stored_once() {
    let data = tempfile::tempdir().unwrap();
    let backend = common::Backend::local();
    let first = TraceGenerator::new(7).next_request(5);
    let spans: usize = first.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    let body = first.encode_to_vec();
    let once = format!("\"rows\":[[{spans},{spans}]]");

    let server = Server::start_with_storage(loopback_config(data.path()), backend.storage.clone()).await.unwrap();
    assert_eq!(export(&server, &body).await, 200);
    // The same request again while its spans are buffered: nothing is added.
    assert_eq!(export(&server, &body).await, 200);
    assert!(count(&server).await.contains(&once), "{}", count(&server).await);
    // The server stops without flushing (as after kill -9, the WAL holds the spans), and the client, never
    // having seen its acknowledgement, sends the request again to the restarted server.
    server.shutdown().await.unwrap();
    let restarted = Server::start_with_storage(loopback_config(data.path()), backend.storage.clone()).await.unwrap();
    assert_eq!(export(&restarted, &body).await, 200);
    assert!(count(&restarted).await.contains(&once), "{}", count(&restarted).await);
    // A request with some new spans beside the resent ones keeps the new ones.
    let mut mixed = first.clone();
    mixed.resource_spans.extend(TraceGenerator::new(8).next_request(2).resource_spans);
    let more: usize = mixed.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(export(&restarted, &mixed.encode_to_vec()).await, 200);
    assert!(count(&restarted).await.contains(&format!("\"rows\":[[{more},{more}]]")), "{}", count(&restarted).await);
    // The WAL record of the mixed request holds only its new spans: a second restart replays nothing twice.
    restarted.shutdown().await.unwrap();
    let again = Server::start_with_storage(loopback_config(data.path()), backend.storage.clone()).await.unwrap();
    assert!(count(&again).await.contains(&format!("\"rows\":[[{more},{more}]]")), "{}", count(&again).await);
    let deduplicated = deduplicated(&again).await;
    assert!(deduplicated >= (3 * spans) as f64, "{deduplicated}");
    again.shutdown().await.unwrap();
}

async fn flush(server: &Server) {
    let url = format!("http://{}/flush", server.http_addr());
    assert_eq!(send("POST", &url, &[], "").await.status, 204);
}

/// A resend that arrives after the first copy's block committed (the client's deadline passed while the
/// server worked, then it retried; or the server was killed after the commit and the WAL no longer holds
/// the spans): the ingester remembers the keys of recently committed blocks, and refills that memory
/// from the store's newest blocks after a restart. With the window off, the same resends are stored
/// twice: the window, not something else, is what keeps the count exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resent_after_its_block_committed_is_stored_once_across_restarts() {
    let backend = common::Backend::s3();
    let first = TraceGenerator::new(21).next_request(6);
    let spans: usize = first.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    let body = first.encode_to_vec();
    let rows = |n: usize, d: usize| format!("\"rows\":[[{n},{d}]]");

    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_storage(loopback_config(data.path()), backend.storage.clone()).await.unwrap();
    assert_eq!(export(&server, &body).await, 200);
    flush(&server).await;
    // The first copy is in a committed block; the WAL has let go of it.
    assert_eq!(export(&server, &body).await, 200);
    assert!(count(&server).await.contains(&rows(spans, spans)), "{}", count(&server).await);
    server.shutdown().await.unwrap();

    // The process starts again with a WAL that no longer holds the spans (once a block commits its
    // segments are released as soon as the WAL has rotated past them; here, a fresh WAL folder, as for a
    // replaced pod): the replay brings nothing back, the refill from the store's newest blocks does.
    let fresh = tempfile::tempdir().unwrap();
    let restarted = Server::start_with_storage(loopback_config(fresh.path()), backend.storage.clone()).await.unwrap();
    assert_eq!(export(&restarted, &body).await, 200);
    flush(&restarted).await;
    assert!(count(&restarted).await.contains(&rows(spans, spans)), "{}", count(&restarted).await);
    let gauge = |name| common::server::metric_at(restarted.http_addr(), name);
    assert_eq!(gauge("spanlake_ingester_resend_window_keys").await, spans as f64);
    assert!(gauge("spanlake_ingester_resend_window_bytes").await > 0.0);
    restarted.shutdown().await.unwrap();

    // With the window off, the resend after the commit is stored a second time.
    let other = common::Backend::s3();
    let off = |dir: &std::path::Path| spanlake::config::ServeConfig {
        resend_window: std::time::Duration::ZERO,
        ..loopback_config(dir)
    };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_storage(off(data.path()), other.storage.clone()).await.unwrap();
    assert_eq!(export(&server, &body).await, 200);
    flush(&server).await;
    assert_eq!(export(&server, &body).await, 200);
    flush(&server).await;
    assert!(count(&server).await.contains(&rows(2 * spans, spans)), "{}", count(&server).await);
    server.shutdown().await.unwrap();
}

/// The shape the resend window is for, end to end: a client whose deadline passes before its answer
/// comes (an SDK's 10 s, the Collector's 5 s; here 10 ms, against a WAL whose every sync takes 40 ms, so
/// every request is given up on after its spans were made durable) resends the same bytes a second later
/// (the SDKs' first backoff), while the server stores the first copy all the same and, with blocks cut
/// every 50 ms, has committed it by then. Every span is stored exactly once (with the window off, a run
/// stored 1,141 spans twice). The slow sync makes this independent of how fast the machine is: with a
/// 2 ms deadline and no delay, the test passed beside the other tests and failed alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_waiting_and_resends_stores_each_span_once() {
    let backend = common::Backend::s3();
    let data = tempfile::tempdir().unwrap();
    let config = spanlake::config::ServeConfig {
        max_block_age: std::time::Duration::from_millis(50),
        max_block_bytes: spanlake::config::ByteSize(256 * 1024),
        ..loopback_config(data.path())
    };
    let server = Server::start_with_storage(config, backend.storage.clone()).await.unwrap();
    spanlake::wal::testing::inject_sync_delay(&data.path().join("wal"), std::time::Duration::from_millis(40));
    let ids = tempfile::NamedTempFile::new().unwrap();
    let report = spanlake::loadgen::run(spanlake::loadgen::LoadOptions {
        endpoint: format!("http://{}", server.otlp_grpc_addr().expect("OTLP/gRPC")),
        protocol: spanlake::loadgen::Protocol::Grpc,
        rate: 0,
        duration: std::time::Duration::from_secs(4),
        spans_per_request: 200,
        concurrency: 4,
        connections: 0,
        seed: 3,
        tenant: None,
        token: None,
        verify_file: Some(ids.path().to_owned()),
        retry: true,
        timeout: Some(std::time::Duration::from_millis(10)),
        progress: false,
    })
    .await
    .unwrap();
    let gave_up: u64 = report.errors.iter().filter(|(kind, _)| kind == "client timeout").map(|(_, n)| n).sum();
    assert!(gave_up > 0, "the client gave up on some requests: {:?}", report.errors);
    flush(&server).await;

    let deduplicated = deduplicated(&server).await;
    assert!(deduplicated > 0.0, "some resends found their first copy stored: {deduplicated} {report:?}");
    let stored =
        spanlake::loadgen::verify::verify(ids.path(), &backend.storage, &spanlake::ids::TenantId::single_tenant())
            .await
            .unwrap();
    assert_eq!((stored.missing, stored.duplicated), (0, 0), "{stored:?}");
    assert!(stored.stored as u64 >= report.acked_spans, "{stored:?} {report:?}");
    server.shutdown().await.unwrap();
}
