//! Grafana's streaming search (CONTRACTS §4): `tempopb.StreamingQuerier/Search` over gRPC, h2c on the
//! query port beside the HTTP API, called by a client built from the same `tempo.proto` (Grafana, a Go
//! program, cannot run here; its client sends exactly these messages). Refusals match the HTTP API's.

mod common;

use std::collections::BTreeSet;

use common::Backend;
use common::server::{TestServer, send, send_synthetic_traces};
use spanlake::query::tempopb;
use spanlake::search::tempo_trace_id;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const SEARCH: &str = "/tempopb.StreamingQuerier/Search";

/// Every message of one streaming search, or the status that ended it.
async fn stream_search(
    server: &TestServer,
    path: &'static str,
    request: tempopb::SearchRequest,
    tenant: Option<&str>,
) -> Result<Vec<tempopb::SearchResponse>, tonic::Status> {
    stream_search_with(server, path, request, tenant, false).await
}

/// [`stream_search`], with the request and the answers gzip-compressed when `gzip`.
async fn stream_search_with(
    server: &TestServer,
    path: &'static str,
    request: tempopb::SearchRequest,
    tenant: Option<&str>,
    gzip: bool,
) -> Result<Vec<tempopb::SearchResponse>, tonic::Status> {
    // An `http://` URL: tonic speaks HTTP/2 by prior knowledge (h2c), as Grafana does without TLS.
    let channel = Channel::from_shared(server.query_url("")).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    if gzip {
        client = client
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(request);
    if let Some(tenant) = tenant {
        request.metadata_mut().insert("x-scope-orgid", tenant.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<tempopb::SearchRequest, tempopb::SearchResponse>::default();
    let mut stream = client.server_streaming(request, PathAndQuery::from_static(path), codec).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// The `error` of an HTTP search's JSON reply, with its status.
async fn http_search_error(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let encoded = common::search::url_encode(query);
    let reply = send("GET", &server.query_url(&format!("/api/search?q={encoded}")), headers, Vec::new()).await;
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    (reply.status, body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_search_over_h2c_finds_the_traces_sent_over_otlp() {
    let backend = Backend::s3();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    // Some traces in a block on S3, some still in the ingester: search covers both.
    let mut sent = send_synthetic_traces(&server, 1, 6).await;
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    sent.extend(send_synthetic_traces(&server, 2, 4).await);

    // HTTP/1 on the same port keeps working beside gRPC.
    assert_eq!(send("GET", &server.query_url("/api/echo"), &[], Vec::new()).await.text(), "echo");

    let request =
        tempopb::SearchRequest { query: "{}".into(), limit: 100, spans_per_span_set: 2, ..Default::default() };
    let answer = stream_search(&server, SEARCH, request, Some("ignored-without-multitenancy")).await;

    let messages = answer.expect("the search succeeds");
    assert!(!messages.is_empty(), "at least one message");
    for message in &messages {
        assert!(message.metrics.is_some(), "every message carries the metrics so far");
    }
    let last = messages.last().unwrap();
    let found: BTreeSet<&str> = last.traces.iter().map(|trace| trace.trace_id.as_str()).collect();
    let expected: Vec<String> = sent.iter().map(tempo_trace_id).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(found, expected, "the final message is the whole answer: every trace sent, once");
    for earlier in &messages[..messages.len() - 1] {
        for trace in &earlier.traces {
            assert!(found.contains(trace.trace_id.as_str()), "a partial message's trace is in the answer");
        }
    }
    let starts: Vec<u64> = last.traces.iter().map(|trace| trace.start_time_unix_nano).collect();
    assert!(starts.windows(2).all(|pair| pair[0] >= pair[1]), "newest first: {starts:?}");
    for trace in &last.traces {
        assert!(!trace.root_service_name.is_empty() && !trace.root_trace_name.is_empty(), "{trace:?}");
        assert!(trace.start_time_unix_nano > 0, "{trace:?}");
        assert!(!trace.span_sets.is_empty(), "{{}} matches every span: {trace:?}");
        assert_eq!(trace.span_set.as_ref(), trace.span_sets.first(), "the deprecated spanSet is the first");
        for set in &trace.span_sets {
            assert!(set.matched >= 1 && set.spans.len() <= 2, "SpansPerSpanSet bounds the spans shown: {set:?}");
            for span in &set.spans {
                assert_eq!(span.span_id.len(), 16, "{span:?}");
            }
        }
        assert!(!trace.service_stats.is_empty(), "{trace:?}");
    }
    let metrics = last.metrics.as_ref().unwrap();
    assert!(metrics.inspected_traces as usize >= sent.len(), "{metrics:?}");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_searches_are_invalid_argument_with_the_http_apis_message() {
    let server = TestServer::start(Backend::memory().storage, |_| {}).await;
    let query = "{.a = 1 && 2}";
    let request = tempopb::SearchRequest { query: query.into(), ..Default::default() };
    let status = stream_search(&server, SEARCH, request, None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let (http_status, http_message) = http_search_error(&server, query, &[]).await;
    assert_eq!(http_status, 400);
    assert_eq!(status.message(), http_message, "the same refusal on both faces");
    assert!(status.message().contains("invalid TraceQL query"), "{status:?}");

    let compressed = tempopb::SearchRequest { query: query.into(), ..Default::default() };
    let status = stream_search_with(&server, SEARCH, compressed, None, true).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "a gzip-compressed request is read: {status:?}");

    let backwards = tempopb::SearchRequest { min_duration_ms: 10, max_duration_ms: 5, ..Default::default() };
    let status = stream_search(&server, SEARCH, backwards, None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Tempo's other streaming calls are not served: a clear UNIMPLEMENTED, not an HTTP 404.
    let status =
        stream_search(&server, "/tempopb.StreamingQuerier/SearchTags", Default::default(), None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_multitenancy_a_search_without_a_tenant_is_refused_as_http_refuses_it() {
    let server = TestServer::start(Backend::memory().storage, |config| config.multitenancy = true).await;
    let status = stream_search(&server, SEARCH, Default::default(), None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let (http_status, http_message) = http_search_error(&server, "{}", &[]).await;
    assert_eq!(http_status, 401);
    assert_eq!(status.message(), http_message);

    let status = stream_search(&server, SEARCH, Default::default(), Some("..")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "a malformed tenant: {status:?}");

    // With the tenant in the metadata the call gets past the tenant check (to the stub's error on a
    // branch without the real search, to an answer with it).
    let answer = stream_search(&server, SEARCH, Default::default(), Some("team-a")).await;
    if let Err(status) = answer {
        assert!(!matches!(status.code(), Code::Unauthenticated | Code::InvalidArgument), "{status:?}");
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_port_closes_connections_that_never_show_their_protocol() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read_timeout = std::time::Duration::from_millis(300);
    let server = TestServer::start(Backend::memory().storage, |config| config.read_timeout = read_timeout).await;
    let mut silent = tokio::net::TcpStream::connect(server.server.http_addr()).await.unwrap();
    let mut half_preface = tokio::net::TcpStream::connect(server.server.http_addr()).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for (what, stream) in [("silent", &mut silent), ("half an HTTP/2 preface", &mut half_preface)] {
        let mut reply = Vec::new();
        let closed = tokio::time::timeout(read_timeout * 20, stream.read_to_end(&mut reply)).await;
        assert!(closed.is_ok(), "{what}: the server still holds the connection");
    }
    assert_eq!(send("GET", &server.query_url("/api/echo"), &[], Vec::new()).await.text(), "echo");
    server.server.shutdown().await.unwrap();
}
