//! Tempo's search (issue 24) through `GET /api/search` of a real server: TraceQL and tags, over spans in
//! blocks and in the ingester.

mod common;

use common::Backend;
use common::search::{search, trace_ids};
use common::server::{TestServer, send};
use common::sql::load_fixture;
use serde_json::Value;

fn q(traceql: &str) -> String {
    format!("q={}", common::search::url_encode(traceql))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    load_fixture(&server, None).await;
    let (status, _, body) = search(&server, &q("{}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        trace_ids(&body),
        ["eee19b7ec3c1b174a1b2c3d4e5f60718", "abc", "5b8efff798038103d269b633813fc60c"],
        "{body:#}"
    );
    let (status, _, body) = search(&server, &q(r#"{resource.service.name = "payments"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(trace_ids(&body), ["5b8efff798038103d269b633813fc60c"], "{body:#}");
    println!("{body:#}");
    let (status, _, body) = search(&server, &q(r#"{name = "GET /checkout"} >> {status = error}"#)).await;
    assert_eq!(status, 200, "{body}");
    println!("{body:#}");
    let (status, _, body) = search(&server, &q("{.a = 1 && 2}")).await;
    assert_eq!(status, 400, "{body}");
}

/// Sends one synthetic trace (OTLP protobuf) and returns its ID and whether a span of `service` is in it.
async fn send_trace(
    server: &TestServer,
    generator: &mut spanlake::synth::TraceGenerator,
    service: &str,
) -> (String, bool) {
    let trace = generator.next_trace();
    let id = hex::encode(&trace[0].scope_spans[0].spans[0].trace_id);
    let has_service = trace.iter().any(|rs| {
        rs.resource.as_ref().is_some_and(|r| {
            r.attributes.iter().any(|kv| {
                kv.key == "service.name"
                    && matches!(&kv.value, Some(v) if matches!(&v.value, Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) if s == service))
            })
        })
    });
    let body =
        prost::Message::encode_to_vec(&opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: trace,
        });
    let headers = [("content-type", "application/x-protobuf")];
    assert_eq!(send("POST", &server.traces_url(), &headers, body).await.status, 200);
    (id, has_service)
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Tempo's search may miss traces or change its answer while blocks move (its issues #2659, #3777):
/// here the answer for a fixed window stays the same while spans are ingested, flushed and compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_for_a_fixed_window_stay_exact_during_ingest_flush_and_compaction() {
    let folder = tempfile::tempdir().unwrap();
    let storage = spanlake::storage::Storage::open(&common::url_of(folder.path())).unwrap();
    let server = TestServer::start(storage.clone(), |config| {
        config.compaction_interval = std::time::Duration::from_millis(300);
        config.compaction_deletion_grace = std::time::Duration::from_secs(1);
    })
    .await;
    // The window's traces: two hours ago, in four blocks and the ingester.
    let mut generator = spanlake::synth::TraceGenerator::new(7);
    generator.set_clock(common::hours_ago_unix_nano(2));
    let (mut all, mut checkout) = (Vec::new(), Vec::new());
    for round in 0..5 {
        for _ in 0..8 {
            let (id, has) = send_trace(&server, &mut generator, "checkout").await;
            if has {
                checkout.push(id.trim_start_matches('0').to_owned());
            }
            all.push(id.trim_start_matches('0').to_owned());
        }
        if round < 4 {
            assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
        }
    }
    assert!(!checkout.is_empty() && checkout.len() < all.len(), "the service filter selects some traces");
    let seconds = |ns: u64| ns / 1_000_000_000;
    let window =
        format!("start={}&end={}", seconds(common::hours_ago_unix_nano(3)), seconds(common::hours_ago_unix_nano(1)));
    let everything = format!("{}&limit=1000&{window}", q("{}"));
    let service = format!("{}&limit=1000&{window}", q(r#"{resource.service.name="checkout"}"#));
    let newest_five = format!("{}&limit=5&{window}", q("{}"));

    let (status, _, first) = search(&server, &everything).await;
    assert_eq!(status, 200, "{first}");
    let first_order = trace_ids(&first);
    assert_eq!(sorted(first_order.clone()), sorted(all.clone()), "every trace of the window");
    let (_, _, by_service) = search(&server, &service).await;
    assert_eq!(sorted(trace_ids(&by_service)), sorted(checkout.clone()));

    // Meanwhile: new traces outside the window, flushed, and the compactor merging every block.
    let tenant = spanlake::ids::TenantId::single_tenant();
    let blocks_at_start: std::collections::HashSet<_> =
        spanlake::storage::list_blocks(&storage, &tenant).await.unwrap().committed.into_iter().collect();
    let mut now_generator = spanlake::synth::TraceGenerator::new(8);
    // Spans of this hour: the generator's own clock starts on a fixed past date, whose blocks retention
    // would only delete once they have been stored for the retention period.
    now_generator.set_clock(common::hours_ago_unix_nano(0));
    let started = std::time::Instant::now();
    let mut rounds = 0;
    loop {
        send_trace(&server, &mut now_generator, "checkout").await;
        if rounds % 3 == 0 {
            assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
        }
        let (status, _, body) = search(&server, &everything).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(trace_ids(&body), first_order, "round {rounds}: the same traces in the same order");
        let (_, _, body) = search(&server, &service).await;
        assert_eq!(sorted(trace_ids(&body)), sorted(checkout.clone()), "round {rounds}");
        let (_, _, body) = search(&server, &newest_five).await;
        assert_eq!(trace_ids(&body), first_order[..5], "round {rounds}: the newest five");
        rounds += 1;
        // Done once the window's blocks have been merged and deleted after their grace period.
        let stored = spanlake::storage::list_blocks(&storage, &tenant).await.unwrap().committed;
        let left = stored.iter().filter(|block| blocks_at_start.contains(block)).count();
        if rounds >= 10 && left == 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "the compactor merged the window's blocks ({left} of {} left)",
            blocks_at_start.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_never_sees_another_tenants_spans() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |config| config.multitenancy = true).await;
    load_fixture(&server, Some("tenant-a")).await;
    let url = |tenant: &str| (server.query_url(&format!("/api/search?{}", q("{}"))), tenant.to_owned());
    for (tenant, expected) in [("tenant-a", 3), ("tenant-b", 0)] {
        let (url, tenant) = url(tenant);
        let reply = send("GET", &url, &[("x-scope-orgid", &tenant)], "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(trace_ids(&body).len(), expected, "{tenant}: {body}");
    }
    let (url, _) = url("");
    let missing = send("GET", &url, &[], "").await;
    assert_eq!(missing.status, 401, "{}", missing.text());
}

/// Grafana keeps every trace a streamed message showed, so each partial answer must be a prefix of the
/// final one: only traces no later slice can push out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_answers_hold_only_traces_the_final_answer_keeps() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    let mut generator = spanlake::synth::TraceGenerator::new(11);
    generator.set_clock(common::hours_ago_unix_nano(2));
    let mut all = Vec::new();
    for _ in 0..6 {
        for _ in 0..5 {
            all.push(send_trace(&server, &mut generator, "checkout").await.0);
        }
        assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    }
    // Streamed answers only ever show traces the final answer keeps, in its order (Grafana keeps every
    // trace a message showed).
    let engine = spanlake::sql::SqlEngine::new(server.server.querier().clone(), Default::default()).unwrap();
    let searcher = spanlake::search::Searcher::new(engine);
    let mut request = spanlake::search::SearchRequest::traceql("{}").unwrap();
    request.limit = 1000;
    let messages: Vec<_> = futures::StreamExt::collect::<Vec<_>>(
        searcher.search_progress(spanlake::ids::TenantId::single_tenant(), request),
    )
    .await;
    let messages: Vec<spanlake::search::SearchResponse> = messages.into_iter().map(Result::unwrap).collect();
    let last = messages.last().unwrap();
    assert!(messages.len() >= 2, "the walk reports between slices: {} messages, {:?}", messages.len(), last.metrics);
    assert!(messages.iter().any(|m| !m.traces.is_empty() && m.traces.len() < last.traces.len()), "partial answers");
    assert_eq!(last.traces.len(), all.len());
    for partial in &messages {
        assert_eq!(partial.traces[..], last.traces[..partial.traces.len()], "a prefix of the final answer");
    }
}
