//! Trace by ID over HTTP as Tempo's clients see it (CONTRACTS §4): the OpenTelemetry Python SDK's spans
//! come back equal in JSON and protobuf, v1 and v2, decoded by the official OpenTelemetry proto package;
//! unknown IDs are 404 and malformed ones 400; a trace split across the buffer and two blocks comes back
//! whole and once; and a warm querier answers an unknown ID without a single object-store request.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::encoding::block_write_options;
use common::faulty::{Fault, FaultyStore, check_between_writes};
use common::server::{Reply, TestServer, metric, send};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message;
use serde_json::Value as Json;
use spanlake::ids::{BlockId, TenantId, TraceId};
use spanlake::spans::encode_resource_spans;
use spanlake::storage::block::write_block;
use spanlake::storage::{RangeReads, Storage};
use spanlake::synth::TraceGenerator;

const PROTOBUF_BODY: (&str, &str) = ("content-type", "application/x-protobuf");
const ACCEPT_PROTOBUF: (&str, &str) = ("accept", "application/protobuf");
const FORMATS: [&str; 4] = ["v1-json", "v2-json", "v1-proto", "v2-proto"];

/// Sends `traces` traces with the SDK's gRPC exporter; returns the request it put on the wire.
fn sdk_send(endpoint: &str, tenant: &str, traces: usize) -> ExportTraceServiceRequest {
    let report = common::sdk::send(common::sdk::Export { protocol: "grpc", endpoint, tenant, traces, gzip: false });
    let bytes = hex::decode(report["request_hex"].as_str().unwrap()).unwrap();
    ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap()
}

/// The spans of one trace out of a request, as their own resource groups.
fn only_trace(resource_spans: &[ResourceSpans], trace: &TraceId) -> Vec<ResourceSpans> {
    resource_spans
        .iter()
        .map(|rs| ResourceSpans {
            scope_spans: rs
                .scope_spans
                .iter()
                .map(|ss| ScopeSpans {
                    spans: ss.spans.iter().filter(|s| s.trace_id == trace.as_bytes()).cloned().collect(),
                    ..ss.clone()
                })
                .filter(|ss| !ss.spans.is_empty())
                .collect(),
            ..rs.clone()
        })
        .filter(|rs| !rs.scope_spans.is_empty())
        .collect()
}

fn trace_ids(resource_spans: &[ResourceSpans]) -> Vec<TraceId> {
    let mut ids: Vec<TraceId> = resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| TraceId::from_slice(&s.trace_id).unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn fetch(server: &TestServer, format: &str, trace: &str, tenant: &str) -> Reply {
    let (version, protobuf) = format.split_once('-').unwrap();
    let path = if version == "v1" { format!("/api/traces/{trace}") } else { format!("/api/v2/traces/{trace}") };
    let mut headers = vec![("x-scope-orgid", tenant)];
    if protobuf == "proto" {
        headers.push(ACCEPT_PROTOBUF);
    }
    send("GET", &server.query_url(&path), &headers, Vec::new()).await
}

/// Every body of every format for each trace, decoded by `tempo_decode.py` in one Python run.
async fn fetch_and_decode(server: &TestServer, traces: &[TraceId], tenant: &str) -> HashMap<(TraceId, String), Json> {
    let folder = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    let mut keys = Vec::new();
    for trace in traces {
        for format in FORMATS {
            let reply = fetch(server, format, &trace.to_hex(), tenant).await;
            assert_eq!(reply.status, 200, "{format} {trace}: {}", reply.text());
            let expected_type = if format.ends_with("proto") { "application/protobuf" } else { "application/json" };
            assert_eq!(reply.headers["content-type"], expected_type, "{format}");
            let path = folder.path().join(format!("{trace}.{format}"));
            std::fs::write(&path, &reply.body).unwrap();
            args.extend([format.to_owned(), path.display().to_string()]);
            keys.push((*trace, format.to_owned()));
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/tempo_decode.py");
    let output = Command::new(common::tools::tool("python")).arg(script).args(&args).output().unwrap();
    assert!(output.status.success(), "tempo_decode.py: {}", String::from_utf8_lossy(&output.stderr));
    let decoded: Vec<Json> = serde_json::from_slice(&output.stdout).unwrap();
    keys.into_iter().zip(decoded).collect()
}

fn decoded_spans(decoded: &Json) -> Vec<ResourceSpans> {
    let bytes = hex::decode(decoded["traces_data_hex"].as_str().unwrap()).unwrap();
    TracesData::decode(bytes.as_slice()).unwrap().resource_spans
}

async fn assert_every_format_equals_what_was_sent(server: &TestServer, sent: &ExportTraceServiceRequest, tenant: &str) {
    let traces = trace_ids(&sent.resource_spans);
    let decoded = fetch_and_decode(server, &traces, tenant).await;
    for trace in &traces {
        let expected = only_trace(&sent.resource_spans, trace);
        for format in FORMATS {
            let body = &decoded[&(*trace, format.to_owned())];
            let context = format!("{format} of trace {trace}");
            common::otlp::assert_same_spans(&decoded_spans(body), &expected, &context);
            if format == "v2-proto" {
                assert_eq!(body["status"], "COMPLETE");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_come_back_equal_in_json_and_protobuf_v1_and_v2_from_the_buffer_and_from_s3() {
    let server = TestServer::start(common::Backend::s3().storage, |config| config.multitenancy = true).await;
    let sent = sdk_send(&server.server.otlp_grpc_addr().expect("OTLP/gRPC").to_string(), "sdk", 3);
    assert_eq!(trace_ids(&sent.resource_spans).len(), 3);

    assert_every_format_equals_what_was_sent(&server, &sent, "sdk").await;
    let flushed = send("POST", &server.query_url("/flush"), &[], Vec::new()).await;
    assert_eq!(flushed.status, 204, "{}", flushed.text());
    assert!(
        server
            .server
            .ingester()
            .expect("an ingester")
            .recent_batches(&TenantId::new("sdk").unwrap())
            .unwrap()
            .is_empty()
    );
    assert_every_format_equals_what_was_sent(&server, &sent, "sdk").await;

    // Another tenant does not see the trace.
    let trace = trace_ids(&sent.resource_spans)[0].to_hex();
    assert_eq!(fetch(&server, "v2-json", &trace, "someone-else").await.status, 404);
    // Without a tenant, under multitenancy: 401.
    let anonymous = send("GET", &server.query_url(&format!("/api/traces/{trace}")), &[], Vec::new()).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_json_trace_can_be_posted_back_to_the_otlp_receiver_as_it_is() {
    let server = TestServer::start(common::Backend::local(), |config| config.multitenancy = true).await;
    let request = TraceGenerator::new(5).next_request(30);
    let post = |tenant: &'static str, body: Vec<u8>, content_type: &'static str| {
        let url = server.traces_url();
        async move { send("POST", &url, &[("content-type", content_type), ("x-scope-orgid", tenant)], body).await }
    };
    assert_eq!(post("a", request.encode_to_vec(), PROTOBUF_BODY.1).await.status, 200);
    for trace in trace_ids(&request.resource_spans) {
        let reply = fetch(&server, "v2-json", &trace.to_hex(), "a").await;
        let document: Json = serde_json::from_slice(&reply.body).unwrap();
        let reposted = post("b", serde_json::to_vec(&document["trace"]).unwrap(), "application/json").await;
        assert_eq!(reposted.status, 200, "{}", reposted.text());
        let back = fetch(&server, "v1-proto", &trace.to_hex(), "b").await;
        common::otlp::assert_same_spans(
            &TracesData::decode(back.body).unwrap().resource_spans,
            &only_trace(&request.resource_spans, &trace),
            "re-posted v2 JSON",
        );
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_traces_are_gzipped_for_clients_that_take_gzip_and_plain_for_the_rest() {
    let server = TestServer::start(common::Backend::local(), |config| config.multitenancy = true).await;
    // One trace of 2,000 spans: far past the size worth compressing, in JSON and in protobuf.
    let request = TraceGenerator::new(7).next_request(1).resource_spans;
    let trace = trace_ids(&request)[0];
    let mut big = ExportTraceServiceRequest { resource_spans: request };
    let template = big.resource_spans[0].scope_spans[0].spans[0].clone();
    for n in 0..2_000u64 {
        let mut span = template.clone();
        span.span_id = (n + 1).to_be_bytes().to_vec();
        big.resource_spans[0].scope_spans[0].spans.push(span);
    }
    let posted =
        send("POST", &server.traces_url(), &[PROTOBUF_BODY, ("x-scope-orgid", "a")], big.encode_to_vec()).await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    let url = server.query_url(&format!("/api/v2/traces/{}", trace.to_hex()));
    for accept in ["application/json", ACCEPT_PROTOBUF.1] {
        let plain = send("GET", &url, &[("x-scope-orgid", "a"), ("accept", accept)], Vec::new()).await;
        assert_eq!(plain.status, 200);
        assert!(plain.headers.get("content-encoding").is_none(), "{accept}: plain unless asked");
        let asked = [("x-scope-orgid", "a"), ("accept", accept), ("accept-encoding", "gzip, deflate, br")];
        let gzipped = send("GET", &url, &asked, Vec::new()).await;
        assert_eq!(gzipped.status, 200);
        assert_eq!(gzipped.headers["content-encoding"], "gzip", "{accept}");
        assert_eq!(gzipped.headers["content-type"], plain.headers["content-type"], "{accept}");
        assert!(gzipped.body.len() * 4 < plain.body.len(), "{accept}: {} vs {}", gzipped.body.len(), plain.body.len());
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped.body[..]), &mut unzipped).unwrap();
        // The metrics part of v2 counts bytes read, which a second lookup may read from cache: compare the trace.
        if accept == "application/json" {
            let trace = |body: &[u8]| serde_json::from_slice::<Json>(body).unwrap()["trace"].clone();
            assert_eq!(trace(&unzipped), trace(&plain.body));
        } else {
            let trace = |body: &[u8]| spanlake::query::tempopb::TraceByIdResponse::decode(body).unwrap().trace;
            assert_eq!(trace(&unzipped), trace(&plain.body));
        }
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_404_malformed_ones_400_and_short_ones_are_left_padded() {
    let server = TestServer::start(common::Backend::local(), |_| {}).await;
    let mut request = TraceGenerator::new(8).next_request(5);
    let short_id = TraceId::from_hex("abc123").unwrap();
    for span in request.resource_spans.iter_mut().flat_map(|rs| &mut rs.scope_spans).flat_map(|ss| &mut ss.spans) {
        span.trace_id = short_id.as_bytes().to_vec();
    }
    assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], request.encode_to_vec()).await.status, 200);

    for path in ["/api/traces/abc123", "/api/v2/traces/00abc123", &format!("/api/traces/{}", short_id.to_hex())] {
        let reply = send("GET", &server.query_url(path), &[], Vec::new()).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let unknown = TraceId::from_hex(&"5e".repeat(16)).unwrap();
    for path in [format!("/api/traces/{unknown}"), format!("/api/v2/traces/{unknown}")] {
        let reply = send("GET", &server.query_url(&path), &[ACCEPT_PROTOBUF], Vec::new()).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.text().contains("not found"), "{}", reply.text());
    }
    for (path, named) in [
        ("/api/traces/not-hex", "hex"),
        (&format!("/api/traces/{}", "a".repeat(33)), "32"),
        ("/api/v2/traces/0", "zero"),
        ("/api/traces/abc123?start=10&end=5", "before"),
        ("/api/traces/abc123?start=yesterday", "start"),
    ] {
        let reply = send("GET", &server.query_url(path), &[], Vec::new()).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        let error: Json = serde_json::from_slice(&reply.body).expect("JSON error body");
        assert!(error["error"].as_str().unwrap().contains(named), "{path}: {error}");
    }
    let ready = send("GET", &server.query_url("/ready"), &[], Vec::new()).await;
    assert_eq!(ready.status, 200, "the server keeps serving");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_split_across_the_buffer_and_two_blocks_comes_back_whole_and_once() {
    let server = TestServer::start(common::Backend::local(), |_| {}).await;
    let mut generator = TraceGenerator::new(21);
    let trace = std::iter::repeat_with(|| generator.next_trace())
        .find(|t| t.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum::<usize>() >= 9)
        .unwrap();
    let trace_id = trace_ids(&trace)[0];
    // Three parts of the trace; each later part repeats one span of the part before (a client retry).
    let spans: Vec<(usize, usize, usize)> = trace
        .iter()
        .enumerate()
        .flat_map(|(r, rs)| {
            rs.scope_spans.iter().enumerate().flat_map(move |(s, ss)| (0..ss.spans.len()).map(move |i| (r, s, i)))
        })
        .collect();
    let third = spans.len() / 3;
    let parts = [&spans[..third], &spans[third - 1..2 * third], &spans[2 * third - 1..]];
    let subset = |positions: &[(usize, usize, usize)]| -> Vec<ResourceSpans> {
        let mut out = trace.clone();
        for (r, rs) in out.iter_mut().enumerate() {
            for (s, ss) in rs.scope_spans.iter_mut().enumerate() {
                let keep: Vec<_> =
                    ss.spans.iter().enumerate().filter(|(i, _)| positions.contains(&(r, s, *i))).collect();
                ss.spans = keep.into_iter().map(|(_, span)| span.clone()).collect();
            }
        }
        out
    };
    for (index, part) in parts.iter().enumerate() {
        let body = ExportTraceServiceRequest { resource_spans: subset(part) }.encode_to_vec();
        assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], body).await.status, 200);
        if index < 2 {
            assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
        }
    }
    let tenant = TenantId::single_tenant();
    assert_eq!(server.server.querier().catalog().snapshot(&tenant).map(|b| b.len()), Some(2), "two blocks");
    assert!(
        !server.server.ingester().expect("an ingester").recent_trace(&tenant, &trace_id).unwrap().is_empty(),
        "part 3 is buffered"
    );

    let lookup = server.server.querier().find_trace(&tenant, &trace_id, Default::default()).await.unwrap();
    assert_eq!(lookup.cost.blocks_read, 2);
    assert_eq!(lookup.span_count, spans.len(), "every span once");
    let reply = fetch(&server, "v1-proto", &trace_id.to_hex(), "").await;
    let returned = TracesData::decode(reply.body).unwrap().resource_spans;
    common::otlp::assert_same_spans(&returned, &trace, "split trace");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_querier_answers_unknown_ids_with_zero_object_store_requests_on_s3() {
    let server = TestServer::start(common::Backend::s3().storage, |_| {}).await;
    let mut generator = TraceGenerator::new(3);
    let mut known = Vec::new();
    for _ in 0..4 {
        let request = generator.next_request(400);
        known.push(trace_ids(&request.resource_spans)[0]);
        assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], request.encode_to_vec()).await.status, 200);
        assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
    }
    // Warm: the catalogue knows the four blocks; one lookup per block has cached its footer.
    for trace in &known {
        assert_eq!(fetch(&server, "v2-proto", &trace.to_hex(), "").await.status, 200);
    }
    let requests = "spanlake_object_store_requests_total";
    let before = metric(&server, requests).await;
    let mut ids = TraceGenerator::new(77);
    let (mut checks, mut false_positives) = (0, 0);
    for _ in 0..200 {
        let unknown = trace_ids(&ids.next_trace())[0];
        assert_eq!(fetch(&server, "v1-json", &unknown.to_hex(), "").await.status, 404);
        // The same lookup in-process, for its own count of bloom checks and false positives.
        let tenant = TenantId::single_tenant();
        let cost = server.server.querier().find_trace(&tenant, &unknown, Default::default()).await.unwrap().cost;
        (checks, false_positives) = (checks + cost.bloom_checks, false_positives + cost.bloom_false_positives);
    }
    let used = metric(&server, requests).await - before;
    assert!(checks >= 400, "the blooms were asked: {checks} checks");
    // At the default 1e-5 rate, 400 bloom checks almost never meet a false positive; if one does, the
    // block read it causes (≤ 3 requests, twice: HTTP and in-process) is the only cost allowed.
    assert!(used <= 6.0 * false_positives as f64, "{used} requests for 400 unknown-ID lookups, {false_positives} FPs");
    assert!(false_positives <= 1, "{false_positives} bloom false positives in {checks} checks");
    assert!(metric(&server, "spanlake_bloom_checks_total").await >= checks as f64);

    // A known trace held by one block, footer cached: at most 3 requests on S3.
    for trace in &known {
        let before = metric(&server, requests).await;
        let reply = fetch(&server, "v2-json", &trace.to_hex(), "").await;
        let used = metric(&server, requests).await - before;
        assert!((1.0..=3.0).contains(&used), "{used} requests for trace {trace}");
        let document: Json = serde_json::from_slice(&reply.body).unwrap();
        assert_ne!(document["metrics"]["backendBytes"], "0", "{document:#}");
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_end_skip_blocks_outside_them_at_no_cost() {
    let server = TestServer::start(common::Backend::local(), |_| {}).await;
    let mut generator = TraceGenerator::new(4);
    let start_s = 1_700_000_000u64;
    generator.set_clock(start_s * 1_000_000_000);
    let request = generator.next_request(50);
    let trace = trace_ids(&request.resource_spans)[0].to_hex();
    assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], request.encode_to_vec()).await.status, 200);
    assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
    let storage = server.server.querier().storage().clone();
    let lookup = |query: String| {
        let url = server.query_url(&format!("/api/traces/{trace}{query}"));
        async move { send("GET", &url, &[], Vec::new()).await.status }
    };
    assert_eq!(lookup(format!("?start={}&end={}", start_s - 10, start_s + 3600)).await, 200);
    let before = storage.request_counts();
    assert_eq!(lookup(format!("?start={}&end={}", start_s + 7200, start_s + 9000)).await, 404, "after the trace");
    assert_eq!(lookup(format!("?end={}", start_s - 1)).await, 404, "before the trace");
    assert_eq!(storage.request_counts().since(&before).total(), 0);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_written_by_another_process_are_found_after_the_refresh_interval() {
    let backend = common::Backend::local();
    let server = TestServer::start(backend.storage.clone(), |config| {
        config.block_refresh_interval = Duration::from_millis(100);
    })
    .await;
    let trace = TraceGenerator::new(12).next_trace();
    let trace_id = trace_ids(&trace)[0];
    let url = server.query_url(&format!("/api/traces/{trace_id}"));
    assert_eq!(send("GET", &url, &[], Vec::new()).await.status, 404);

    // Another writer (a second ingester, a compactor) commits a block straight to the store.
    let (batch, _) = encode_resource_spans(&trace).unwrap();
    let tenant = TenantId::single_tenant();
    write_block(&backend.storage, &tenant, BlockId::new_random(), vec![batch], &block_write_options()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = send("GET", &url, &[ACCEPT_PROTOBUF], Vec::new()).await;
        if reply.status == 200 {
            let returned = TracesData::decode(reply.body).unwrap().resource_spans;
            common::otlp::assert_same_spans(&returned, &trace, "block from another writer");
            break;
        }
        assert_eq!(reply.status, 404);
        assert!(Instant::now() < deadline, "the block was not found within 10 s of a 100 ms refresh interval");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_during_flushes_never_miss_a_span() {
    let faulty = FaultyStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    let server = TestServer::start(Storage::from_store(faulty.clone(), "faulty", RangeReads::Exact), |_| {}).await;
    let tenant = TenantId::single_tenant();
    let mut generator = TraceGenerator::new(40);
    let trace = generator.next_trace();
    let trace_id = trace_ids(&trace)[0];
    let mut expected = 0;
    for round in 0..15 {
        // Each round adds spans of the same trace (fresh span IDs) and flushes them into a new block
        // while lookups run: the spans move from the buffer to a block under the lookups' feet.
        let mut part = generator.next_trace();
        for span in part.iter_mut().flat_map(|rs| &mut rs.scope_spans).flat_map(|ss| &mut ss.spans) {
            span.trace_id = trace_id.as_bytes().to_vec();
        }
        expected += part.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum::<usize>();
        let body = ExportTraceServiceRequest { resource_spans: part }.encode_to_vec();
        assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], body).await.status, 200);
        let ingester = server.server.ingester().expect("an ingester").clone();
        let mut lookups = 0;
        let (flushed, lookups_mid_flush) =
            check_between_writes(&faulty, async move { ingester.flush().await }, async || {
                let found = server.server.querier().find_trace(&tenant, &trace_id, Default::default()).await.unwrap();
                assert_eq!(found.span_count, expected, "round {round}, lookup {lookups}");
                lookups += 1;
            })
            .await;
        flushed.unwrap();
        assert!(lookups_mid_flush >= 3, "round {round}: one lookup before each of the data, bloom and metadata writes");
    }
    assert_eq!(server.server.querier().catalog().snapshot(&tenant).unwrap().len(), 15);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_blocks_cannot_be_read_v2_answers_partial_and_nothing_claims_a_stored_trace_is_unknown() {
    let folder = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(folder.path()).unwrap();
    let faulty = FaultyStore::new(std::sync::Arc::new(local));
    let server = TestServer::start(Storage::from_store(faulty.clone(), "faulty", RangeReads::Exact), |_| {}).await;
    let mut generator = TraceGenerator::new(61);
    let (stored, buffered) = (generator.next_trace(), generator.next_trace());
    let split_id = trace_ids(&buffered)[0];
    // `stored` and half of `buffered` go into a block; the other half of `buffered` stays in the buffer.
    let mut in_block = buffered.clone();
    let mut in_buffer = buffered.clone();
    for (rs_block, rs_buffer) in in_block.iter_mut().zip(in_buffer.iter_mut()) {
        for (ss_block, ss_buffer) in rs_block.scope_spans.iter_mut().zip(rs_buffer.scope_spans.iter_mut()) {
            let half = ss_block.spans.len() / 2;
            ss_buffer.spans = ss_block.spans.split_off(half);
        }
    }
    let post = |spans: Vec<ResourceSpans>| {
        let url = server.traces_url();
        async move {
            send("POST", &url, &[PROTOBUF_BODY], ExportTraceServiceRequest { resource_spans: spans }.encode_to_vec())
                .await
        }
    };
    assert_eq!(post([stored.clone(), in_block].concat()).await.status, 200);
    assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
    assert_eq!(post(in_buffer.clone()).await.status, 200);

    faulty.set(Fault::Failing);
    let v2 = fetch(&server, "v2-json", &split_id.to_hex(), "").await;
    assert_eq!(v2.status, 200, "{}", v2.text());
    let document: Json = serde_json::from_slice(&v2.body).unwrap();
    assert_eq!(document["status"], "PARTIAL", "{document}");
    assert!(document["message"].as_str().unwrap().contains("could not be read"), "{document}");
    let partial: ExportTraceServiceRequest = serde_json::from_value(document["trace"].clone()).unwrap();
    common::otlp::assert_same_spans(&partial.resource_spans, &in_buffer, "the buffered half");
    let v2_proto = fetch(&server, "v2-proto", &split_id.to_hex(), "").await;
    let response = spanlake::query::tempopb::TraceByIdResponse::decode(v2_proto.body).unwrap();
    assert_eq!(response.status, spanlake::query::tempopb::PartialStatus::Partial as i32);
    assert_eq!(fetch(&server, "v1-json", &split_id.to_hex(), "").await.status, 503, "v1 cannot say partial");
    let only_stored = fetch(&server, "v2-json", &trace_ids(&stored)[0].to_hex(), "").await;
    assert_eq!(only_stored.status, 503, "a stored trace is not reported unknown: {}", only_stored.text());
    let unknown = TraceId::from_hex(&"7".repeat(32)).unwrap();
    assert_eq!(fetch(&server, "v1-json", &unknown.to_hex(), "").await.status, 404, "blooms decide without the store");

    faulty.set(Fault::Healthy);
    let whole = fetch(&server, "v1-proto", &split_id.to_hex(), "").await;
    assert_eq!(whole.status, 200);
    common::otlp::assert_same_spans(&TracesData::decode(whole.body).unwrap().resource_spans, &buffered, "healed");
    server.server.shutdown().await.unwrap();
}

/// A failure on our side says what failed, never where on disk (issue 26, item 18): with the local
/// block folder unreadable, trace by ID and SQL answer 503 saying the object store failed, and neither
/// body holds a local path (the server's log has them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_say_what_failed_without_local_paths() {
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let server = TestServer::start(storage, |_| {}).await;
    let traces = common::server::send_synthetic_traces(&server, 31, 5).await;
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    let data_files: Vec<std::path::PathBuf> =
        walk(folder.path()).into_iter().filter(|p| p.ends_with("data.parquet")).collect();
    assert!(!data_files.is_empty(), "the flush wrote blocks");
    // Each data file becomes a symbolic link to itself: still listed, but every read of it fails with
    // an I/O error (too many levels of links) that names the file's absolute path.
    for file in &data_files {
        std::fs::remove_file(file).unwrap();
        std::os::unix::fs::symlink(file, file).unwrap();
    }
    let locations =
        [folder.path().to_string_lossy().into_owned(), server.data_dir.path().to_string_lossy().into_owned()];
    let leaks = |body: &str| locations.iter().any(|location| body.contains(location.as_str()));

    let trace = send("GET", &server.query_url(&format!("/api/traces/{}", traces[0].to_hex())), &[], "").await;
    assert_eq!(trace.status, 503, "{}", trace.text());
    assert!(trace.text().contains("could not be read") && trace.text().contains("object store"), "{}", trace.text());
    assert!(!leaks(&trace.text()), "trace by ID reply names a local path: {}", trace.text());

    let sql = send("POST", &server.query_url("/api/sql"), &[], "SELECT count(*) FROM spans").await;
    assert_eq!(sql.status, 503, "{}", sql.text());
    assert!(sql.text().contains("cannot read spans"), "{}", sql.text());
    assert!(!leaks(&sql.text()), "SQL reply names a local path: {}", sql.text());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// Issue 26, item 8: a committed block whose data file is missing (its metadata still there) never
/// gives a silently incomplete trace: v2 answers the spans it found with status PARTIAL, v1 (which has
/// no way to say partial) answers 503, and the lookup names the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_missing_its_data_file_makes_the_trace_partial_never_silently_short() {
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let server = TestServer::start(storage, |_| {}).await;
    let mut generator = TraceGenerator::new(77);
    let trace = std::iter::repeat_with(|| generator.next_trace()).find(|t| t.len() >= 2).unwrap();
    let trace_id = trace_ids(&trace)[0];
    let (first, second) = trace.split_at(trace.len() / 2);
    let mut data_files = Vec::new();
    for part in [first, second] {
        let body = ExportTraceServiceRequest { resource_spans: part.to_vec() }.encode_to_vec();
        assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], body).await.status, 200);
        assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
        let files: Vec<_> = walk(folder.path()).into_iter().filter(|p| p.ends_with("data.parquet")).collect();
        data_files.push(files.into_iter().find(|file| !data_files.contains(file)).expect("a new block"));
    }
    let spans = |part: &[ResourceSpans]| part.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum();
    let (lost, kept): (usize, usize) = (spans(first), spans(second));
    std::fs::remove_file(&data_files[0]).unwrap();

    let tenant = TenantId::single_tenant();
    let lookup = server.server.querier().find_trace(&tenant, &trace_id, Default::default()).await.unwrap();
    assert_eq!(lookup.span_count, kept, "the other block's spans ({lost} lost)");
    let why = lookup.incomplete.expect("the lookup says it is incomplete");
    assert!(why.contains("1 of the blocks") && why.contains("not found"), "{why}");

    let v2 = fetch(&server, "v2-json", &trace_id.to_hex(), "").await;
    assert_eq!(v2.status, 200);
    let body: Json = serde_json::from_slice(&v2.body).unwrap();
    assert_eq!(body["status"], "PARTIAL", "{body}");
    let v1 = fetch(&server, "v1-json", &trace_id.to_hex(), "").await;
    assert_eq!(v1.status, 503, "{}", v1.text());
    server.server.shutdown().await.unwrap();
}

/// One trace of `spans_per_part × parts` spans (synthetic spans given one trace ID), in `parts` requests.
fn one_large_trace(seed: u64, parts: usize) -> (TraceId, Vec<Vec<ResourceSpans>>) {
    let trace_id = TraceId::from_hex(&format!("{seed:032x}")).unwrap();
    let mut generator = TraceGenerator::new(seed);
    let requests = (0..parts)
        .map(|_| {
            let mut part: Vec<ResourceSpans> = (0..40).flat_map(|_| generator.next_trace()).collect();
            for scope in part.iter_mut().flat_map(|rs| rs.scope_spans.iter_mut()) {
                scope.spans.iter_mut().for_each(|span| span.trace_id = trace_id.as_bytes().to_vec());
            }
            part
        })
        .collect();
    (trace_id, requests)
}

/// Issue 26, item 6: trace by ID is bounded. A trace whose rows pass `max_trace_bytes` is read only up
/// to it and answered in part (v2: PARTIAL, naming the limit; v1: 422), as Tempo answers a trace over
/// its `max_bytes_per_trace`; a lookup that takes longer than `trace_lookup_timeout` gets 504; past
/// `max_concurrent_trace_lookups` lookups at once, 429 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_lookups_are_bounded_in_size_time_and_number() {
    let folder = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(folder.path()).unwrap();
    let faulty = FaultyStore::new(std::sync::Arc::new(local));
    let server = TestServer::start(Storage::from_store(faulty.clone(), "faulty", RangeReads::Exact), |config| {
        config.max_trace_bytes = spanlake::config::ByteSize(256 * 1024);
        config.trace_lookup_timeout = Duration::from_secs(5);
        config.max_concurrent_trace_lookups = 1;
    })
    .await;
    let (large, parts) = one_large_trace(0x5eed, 4);
    let sent: usize = parts.iter().flatten().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum();
    for part in parts {
        let body = ExportTraceServiceRequest { resource_spans: part }.encode_to_vec();
        assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF_BODY], body).await.status, 200);
        assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
    }
    let small = common::server::send_synthetic_traces(&server, 3, 1).await[0];
    assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);

    let v2 = fetch(&server, "v2-json", &large.to_hex(), "").await;
    assert_eq!(v2.status, 200, "{}", v2.text());
    let body: Json = serde_json::from_slice(&v2.body).unwrap();
    assert_eq!(body["status"], "PARTIAL", "{}", body["message"]);
    assert!(body["message"].as_str().unwrap().contains("max_trace_bytes"), "{}", body["message"]);
    let part: ExportTraceServiceRequest = serde_json::from_value(body["trace"].clone()).unwrap();
    let returned: usize = part.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum();
    assert!(returned > 0 && returned < sent, "{returned} of {sent} spans: a part, read up to the limit");
    let v1 = fetch(&server, "v1-json", &large.to_hex(), "").await;
    assert_eq!(v1.status, 422, "{}", v1.text());
    assert!(v1.text().contains("max_trace_bytes"), "{}", v1.text());
    let whole = fetch(&server, "v2-json", &small.to_hex(), "").await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let body: Json = serde_json::from_slice(&whole.body).unwrap();
    assert!(body["status"].is_null() && body["message"].is_null(), "a trace under the limit is whole: {body}");
    assert!(metric(&server, "spanlake_trace_lookups_limited_total").await >= 2.0);

    // A store that hangs: the one lookup allowed at once holds its slot until its 5 s deadline.
    faulty.set(Fault::Stalling);
    let url = server.query_url(&format!("/api/v2/traces/{}", small.to_hex()));
    let hanging = tokio::spawn(async move {
        let started = Instant::now();
        (send("GET", &url, &[], Vec::new()).await, started.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while faulty.requests_stalled() == 0 {
        assert!(Instant::now() < deadline, "the lookup never reached the store");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = fetch(&server, "v2-json", &small.to_hex(), "").await;
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert_eq!(busy.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    let answered = tokio::time::timeout(Duration::from_secs(60), hanging).await;
    let (timed_out, took) = answered.expect("the lookup's deadline fired while the store still hangs").unwrap();
    assert_eq!(timed_out.status, 504, "{}", timed_out.text());
    assert!(took >= Duration::from_secs(5), "not before its deadline ({took:?})");
    assert_eq!(faulty.requests_stalled(), 0, "the deadline dropped the stalled reads");
    faulty.set(Fault::Healthy);
    assert_eq!(fetch(&server, "v2-json", &small.to_hex(), "").await.status, 200, "the slot is free again");
    server.server.shutdown().await.unwrap();
}
