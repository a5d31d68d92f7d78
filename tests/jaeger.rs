//! Jaeger's query API (issue 28) on a real server over the S3 test server: Grafana's Jaeger data source's
//! exact requests and the JSON shapes it and Jaeger's tools read, checked against fixtures written by hand
//! from Jaeger's query service and UI model (`tests/fixtures/jaeger/`): field names, types, microseconds,
//! ID forms, reference types, process deduplication, tag types, error bodies.

mod common;

use common::Backend;
use common::server::{Reply, TestServer, send};
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TENANT: (&str, &str) = ("x-scope-orgid", "team-a");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/jaeger/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A multitenant server on S3 holding the fixture's spans for team-a.
async fn server_with_fixture() -> TestServer {
    let server = TestServer::start(Backend::s3(), |config| config.multitenancy = true).await;
    let posted = send(
        "POST",
        &server.traces_url(),
        &[("content-type", "application/json"), TENANT],
        fixture("otlp_request.json"),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    server
}

fn jaeger_url(server: &TestServer, path_and_query: &str) -> String {
    format!("http://{}{path_and_query}", server.server.jaeger_addr().expect("the Jaeger port is on"))
}

async fn get(server: &TestServer, path_and_query: &str) -> (u16, Value) {
    let reply: Reply = send("GET", &jaeger_url(server, path_and_query), &[TENANT], "").await;
    let body =
        serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {}", reply.text()));
    (reply.status, body)
}

async fn flush(server: &TestServer) {
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_comes_back_in_jaegers_json_from_the_buffer_and_from_blocks() {
    let server = server_with_fixture().await;
    let expected: Value = serde_json::from_str(&fixture("trace_4bf92f.json")).unwrap();
    for from in ["buffer", "blocks"] {
        let (status, body) = get(&server, &format!("/api/traces/{TRACE}")).await;
        assert_eq!(status, 200, "{from}: {body}");
        assert_eq!(body, expected, "{from}: the whole answer, field by field");
        // Grafana's trace-ID time parameters are milliseconds; Jaeger's own are microseconds.
        for (start, end) in [("1767225500000", "1767225700000"), ("1767225500000000", "1767225700000000")] {
            let (status, body) = get(&server, &format!("/api/traces/{TRACE}?start={start}&end={end}")).await;
            assert_eq!((status, &body), (200, &expected), "{from}: start={start}");
        }
        // A 64-bit trace ID is written in 16 characters and found by them.
        let (status, body) = get(&server, "/api/traces/abcd").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["traceID"], "000000000000abcd");
        assert_eq!(
            body["data"][0]["spans"][0]["tags"],
            json!([{"key": "span.kind", "type": "string", "value": "consumer"}])
        );
        assert_eq!(body["data"][0]["processes"], json!({"p1": {"serviceName": "batch", "tags": []}}));
        flush(&server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_jaegers_envelope_with_their_status() {
    let server = server_with_fixture().await;
    let (status, body) = get(&server, "/api/traces/0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 404, "msg": "trace not found"}]})
    );
    let (status, body) = get(&server, "/api/traces/not-hex").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], 400);
    assert!(body["errors"][0]["msg"].as_str().unwrap().contains("trace ID"), "{body}");
    let (status, body) = get(&server, "/api/traces?service=frontend&minDuration=2s&maxDuration=1s").await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["msg"], "'maxDuration' should be greater than 'minDuration'");
    let (status, body) = get(&server, "/api/traces?service=frontend&minDuration=100").await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["msg"], "unable to parse param 'minDuration': time: invalid duration \"100\"");
    let (status, body) = get(&server, "/api/operations").await;
    assert_eq!((status, &body["errors"][0]["msg"]), (400, &json!("parameter 'service' is required")));
    let (status, _) = get(&server, "/api/nope").await;
    assert_eq!(status, 404);
    // No tenant under multitenancy: refused as on every port, in Jaeger's envelope.
    let reply = send("GET", &jaeger_url(&server, "/api/services"), &[], "").await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(reply.status, 401, "{body}");
    assert_eq!(body["errors"][0]["code"], 401);
    // v3's own error body.
    let (status, body) = get(&server, "/api/v3/traces/0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!((status, body), (404, json!({"error": {"httpCode": 404, "message": "No traces found"}})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafanas_requests_for_services_operations_search_and_dependencies_get_what_it_reads() {
    let server = server_with_fixture().await;
    flush(&server).await;
    // Grafana's connection test and service list.
    let (status, body) = get(&server, "/api/services").await;
    assert_eq!(status, 200);
    let mut services: Vec<String> = serde_json::from_value(body["data"].clone()).unwrap();
    services.sort();
    assert_eq!(services, ["batch", "cart", "frontend"]);
    assert_eq!((body["total"].clone(), body["errors"].clone()), (json!(3), Value::Null));
    // Operations, the legacy route Grafana calls and the one with kinds.
    let (_, body) = get(&server, "/api/services/cart/operations").await;
    let mut names: Vec<String> = serde_json::from_value(body["data"].clone()).unwrap();
    names.sort();
    assert_eq!(names, ["decode", "redis GET"]);
    let (_, body) = get(&server, "/api/operations?service=cart").await;
    assert_eq!(body["data"], json!([{"name": "decode", "spanKind": ""}, {"name": "redis GET", "spanKind": "client"}]));
    let (_, body) = get(&server, "/api/operations?service=cart&spanKind=client").await;
    assert_eq!(body["data"], json!([{"name": "redis GET", "spanKind": "client"}]));

    // Search exactly as Grafana writes it (keys sorted, `+` for spaces, µs times, tags as JSON).
    let window = "end=1767225700000000&limit=20&maxDuration=2s&minDuration=1ms&operation=GET+%2Fcart&service=frontend\
                  &start=1767225500000000";
    let (status, body) = get(&server, &format!("/api/traces?{window}&tags=%7B%22error%22%3A%22true%22%7D")).await;
    assert_eq!(status, 200, "{body}");
    let expected: Value = serde_json::from_str(&fixture("trace_4bf92f.json")).unwrap();
    assert_eq!(body["data"], expected["data"], "search results are whole traces in the same shape");
    let expected_found = [
        ("tags=%7B%22http.response.status_code%22%3A%22500%22%7D", 1), // an int attribute, asked as text
        ("tags=%7B%22host.name%22%3A%22node-7%22%7D", 1),              // a process tag
        ("tags=%7B%22error%22%3A%22false%22%7D", 0),
        ("tags=%7B%22http.request.method%22%3A%22POST%22%7D", 0),
        ("tag=http.request.method:GET", 1),
    ];
    for (tags, traces) in expected_found {
        let (status, body) = get(&server, &format!("/api/traces?{window}&{tags}")).await;
        assert_eq!(status, 200, "{tags}: {body}");
        assert_eq!(body["data"].as_array().unwrap().len(), traces, "{tags}: {body}");
    }
    let (_, body) =
        get(&server, "/api/traces?service=cart&minDuration=20ms&start=1767225500000000&end=1767225700000000").await;
    assert_eq!(body["data"], json!([]), "nothing lasts 20 ms: no trace, never one without spans");
    // A service's spans anywhere in the trace find the whole trace.
    let (_, body) =
        get(&server, "/api/traces?service=cart&operation=decode&start=1767225500000000&end=1767225700000000").await;
    assert_eq!(body["data"][0]["spans"].as_array().unwrap().len(), 3);
    // Multi-get by trace ID, one of them unknown.
    let (status, body) = get(
        &server,
        &format!("/api/traces?traceID={TRACE}&traceID=0af7651916cd43dd8448eb211c80319c&start=1767225500000000&end=1767225700000000"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["errors"], json!([{"msg": "trace not found", "traceID": "0af7651916cd43dd8448eb211c80319c"}]));

    // The dependency graph: calls between different services, from parent/child spans.
    let (status, body) = get(&server, "/api/dependencies?endTs=1767225700000&lookback=3600000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([{"parent": "frontend", "child": "cart", "callCount": 1}]));
    let (_, body) = get(&server, "/api/dependencies?endTs=1767225000000&lookback=3600000").await;
    assert_eq!(body["data"], json!([]), "nothing before the spans");

    // The v3 routes Grafana uses behind its flag.
    let (_, body) = get(&server, "/api/v3/services").await;
    assert_eq!(body["services"].as_array().unwrap().len(), 3);
    let (_, body) = get(&server, "/api/v3/operations?service=cart").await;
    assert_eq!(
        body,
        json!({"operations": [{"name": "decode", "spanKind": "internal"}, {"name": "redis GET", "spanKind": "client"}]})
    );
    let (status, body) = get(
        &server,
        &format!("/api/v3/traces/{TRACE}?start_time=2026-01-01T00:00:00Z&end_time=2026-01-01T00:01:00.5Z"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(common::otlp::json_span_count(&body["result"]["resourceSpans"]), 3);
    assert_eq!(body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"], TRACE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_never_sees_anothers_services_or_traces_on_the_jaeger_port() {
    let server = server_with_fixture().await;
    let other = [("x-scope-orgid", "team-b")];
    let reply = send("GET", &jaeger_url(&server, "/api/services"), &other, "").await;
    assert_eq!(serde_json::from_slice::<Value>(&reply.body).unwrap()["data"], json!([]));
    let reply = send("GET", &jaeger_url(&server, &format!("/api/traces/{TRACE}")), &other, "").await;
    assert_eq!(reply.status, 404);
    let reply = send("GET", &jaeger_url(&server, "/api/dependencies?endTs=1767225700000"), &other, "").await;
    assert_eq!(serde_json::from_slice::<Value>(&reply.body).unwrap()["data"], json!([]));
}
