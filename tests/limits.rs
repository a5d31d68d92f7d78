//! Size limits at ingest (issue 26, item 6): a span with an attribute over `max_attribute_bytes` and the
//! spans of a trace past `max_bytes_per_trace` are refused with OTLP partial success and counted; the
//! rest of the request is acknowledged, and neither the buffer nor the WAL holds a refused span (a
//! restart replays exactly what was acknowledged).

mod common;

use common::server::{TestServer, loopback_config, metric, send};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use spanlake::synth::TraceGenerator;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

fn spans_in(request: &ExportTraceServiceRequest) -> usize {
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

async fn export(server: &TestServer, request: &ExportTraceServiceRequest) -> ExportTraceServiceResponse {
    let reply = send("POST", &server.traces_url(), &[PROTOBUF], request.encode_to_vec()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    ExportTraceServiceResponse::decode(reply.body).unwrap()
}

async fn span_count(server: &TestServer) -> String {
    send("POST", &server.query_url("/api/sql"), &[], "SELECT count(*) AS n FROM spans").await.text()
}

fn rows(n: usize) -> String {
    format!("\"rows\":[[{n}]]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_over_the_size_limits_are_refused_by_partial_success_and_never_reach_the_wal() {
    let data = tempfile::tempdir().unwrap();
    let backend = common::Backend::local();
    let settings = || {
        let mut config = loopback_config(data.path());
        config.max_attribute_bytes = spanlake::config::ByteSize(10_000);
        config.max_bytes_per_trace = spanlake::config::ByteSize(20_000);
        config
    };
    let server = TestServer {
        server: spanlake::api::Server::start_with_storage(settings(), backend.storage.clone()).await.unwrap(),
        data_dir: tempfile::tempdir().unwrap(),
        backend: common::Backend::local(),
    };

    // One span with a 12 kB attribute among ordinary ones: only it is refused, with the reason.
    let mut request = TraceGenerator::new(1).next_request(4);
    let total = spans_in(&request);
    request.resource_spans[0].scope_spans[0].spans[0].attributes.push(KeyValue {
        key: "db.statement".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("x".repeat(12_000))) }),
        ..Default::default()
    });
    let response = export(&server, &request).await;
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1, "{partial:?}");
    assert!(partial.error_message.contains("max_attribute_bytes"), "{}", partial.error_message);
    assert!(span_count(&server).await.contains(&rows(total - 1)));

    // One trace sent piece by piece: the pieces that fit under 20 kB are kept, the rest refused.
    let trace = TraceGenerator::new(2).next_trace();
    let trace_id = hex::encode(&trace[0].scope_spans[0].spans[0].trace_id);
    let mut kept = 0;
    let mut refused = 0;
    let mut first_refusal = String::new();
    for round in 0..40 {
        let mut piece = ExportTraceServiceRequest { resource_spans: trace.clone() };
        // Each round the same trace's spans again, under new span IDs (a long trace arriving in batches).
        for span in piece.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
            span.span_id[0] = round as u8 + 1;
        }
        let response = export(&server, &piece).await;
        let rejected = response.partial_success.map_or(0, |p| {
            if first_refusal.is_empty() {
                first_refusal = p.error_message;
            }
            p.rejected_spans as usize
        });
        kept += spans_in(&piece) - rejected;
        refused += rejected;
    }
    assert!(kept > 0 && refused > 0, "kept {kept}, refused {refused}");
    assert!(first_refusal.contains("max_bytes_per_trace") && first_refusal.contains(&trace_id), "{first_refusal}");
    let sql = format!("SELECT count(*) AS n FROM spans WHERE trace_id = '{trace_id}'");
    let reply = send("POST", &server.query_url("/api/sql"), &[], sql.clone()).await;
    assert!(reply.text().contains(&rows(kept)), "{} vs {kept}", reply.text());
    assert!(metric(&server, "spanlake_spans_rejected_total").await >= (refused + 1) as f64);
    let text = send("GET", &server.query_url("/metrics"), &[], "").await.text();
    assert!(text.contains("reason=\"trace_too_large\"") && text.contains("reason=\"attribute_too_large\""));

    // Once the trace's spans are cut into a block, the trace may grow again.
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    let mut piece = ExportTraceServiceRequest { resource_spans: trace.clone() };
    for span in piece.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
        span.span_id[0] = 200;
    }
    assert_eq!(export(&server, &piece).await.partial_success, None, "a new block, a new count");
    kept += spans_in(&piece);

    // A restart replays the WAL: exactly the acknowledged spans come back, none of the refused.
    server.server.shutdown().await.unwrap();
    let restarted = spanlake::api::Server::start_with_storage(settings(), backend.storage.clone()).await.unwrap();
    let url = format!("http://{}/api/sql", restarted.http_addr());
    let reply = send("POST", &url, &[], sql).await;
    assert!(reply.text().contains(&rows(kept)), "after replay: {} vs {kept}", reply.text());
    let reply = send("POST", &url, &[], "SELECT count(*) AS n FROM spans").await;
    assert!(reply.text().contains(&rows(total - 1 + kept)), "{}", reply.text());
    restarted.shutdown().await.unwrap();
}
