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

async fn export(server: &Server, body: &[u8]) -> u16 {
    let url = format!("http://{}/v1/traces", server.otlp_http_addr());
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
    let metrics = send("GET", &format!("http://{}/metrics", again.http_addr()), &[], "").await.text();
    let deduplicated: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("spanlake_spans_deduplicated_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(deduplicated >= (3 * spans) as f64, "{deduplicated}");
    again.shutdown().await.unwrap();
}
