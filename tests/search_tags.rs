//! Tag autocomplete (issue 24, CONTRACTS §4): `/api/search/tags`, `/api/v2/search/tags`,
//! `/api/search/tag/{name}/values` and `/api/v2/search/tag/{name}/values` of a real server over the S3
//! test server. Names and values come from the blocks' tag summaries and the ingester's spans; blocks
//! without a summary, and value lists a summary cut short, are scanned instead.

mod common;

use common::s3;
use common::server::{TestServer, send};
use common::tagged::{Spec, flush, i, request, s, send_spans};
use serde_json::{Value, json};
use spanlake::ids::{BlockId, TenantId};
use spanlake::storage::{BlockWriteOptions, Storage, encode_block, upload_block};

/// GETs a query-port path (as `tenant`, if any): the status and the JSON body.
async fn get(server: &TestServer, path: &str, tenant: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = tenant.map(|t| ("x-scope-orgid", t)).into_iter().collect();
    let reply = send("GET", &server.query_url(path), &headers, "").await;
    let body = serde_json::from_slice(&reply.body).unwrap_or_else(|_| Value::String(reply.text()));
    (reply.status, body)
}

/// The JSON of a GET that must succeed.
async fn ok(server: &TestServer, path: &str, tenant: Option<&str>) -> Value {
    let (status, body) = get(server, path, tenant).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The tags of one scope in a v2 tag-names answer (`None` if the scope is not listed).
fn scope_tags(answer: &Value, scope: &str) -> Option<Vec<String>> {
    let scopes = answer["scopes"].as_array()?;
    let found = scopes.iter().find(|s| s["name"] == scope)?;
    Some(found["tags"].as_array()?.iter().map(|t| t.as_str().unwrap_or_default().to_owned()).collect())
}

/// The values of a v1 values answer.
fn texts(answer: &Value) -> Vec<String> {
    answer["tagValues"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Writes a block of `body`'s spans as a spanlake without tag summaries did: no `tags` in `meta.json`.
async fn write_block_without_summary(storage: &Storage, body: &str) {
    let decoded = spanlake::receive::decode_json(body.as_bytes()).unwrap();
    let (batch, rejected) = spanlake::spans::encode_resource_spans(&decoded.resource_spans).unwrap();
    assert!(rejected.is_empty());
    let tenant = TenantId::single_tenant();
    let mut block = encode_block(&tenant, BlockId::new_random(), &[batch], &BlockWriteOptions::default()).unwrap();
    assert!(block.meta.tags.is_some(), "blocks are written with a summary");
    block.meta.tags = None;
    upload_block(storage, &block).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_names_come_from_block_summaries_and_unflushed_spans_without_reading_blocks() {
    let storage = s3::S3Server::shared().new_storage("tags-names");
    let server = TestServer::start(storage.clone(), |_| {}).await;
    let flushed = [Spec::named("op").with("http.method", s("GET")).with_event("exception.type", s("Boom"))];
    send_spans(&server, None, request("alpha", &[("region".into(), s("eu"))], &flushed)).await;
    flush(&server).await;
    let fresh = [Spec::named("op").with("fresh.key", s("x"))];
    send_spans(&server, None, request("beta", &[("zone".into(), s("z1"))], &fresh)).await;

    let before = storage.request_counts();
    let all = ok(&server, "/api/v2/search/tags", None).await;
    assert_eq!(storage.request_counts().since(&before).get, 0, "summaries answer without reading a block");
    assert_eq!(scope_tags(&all, "resource").unwrap(), strings(&["region", "service.name", "zone"]));
    assert_eq!(scope_tags(&all, "span").unwrap(), strings(&["fresh.key", "http.method"]));
    assert_eq!(scope_tags(&all, "event").unwrap(), strings(&["exception.type"]));
    assert_eq!(scope_tags(&all, "instrumentation").unwrap(), strings(&["lib.kind"]));
    assert_eq!(scope_tags(&all, "link"), None, "an empty scope other than resource and span is left out");
    let intrinsic = scope_tags(&all, "intrinsic").unwrap();
    assert!(intrinsic.contains(&"rootServiceName".to_owned()) && intrinsic.len() == 25, "{intrinsic:?}");
    let order: Vec<&str> = all["scopes"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(order, ["resource", "span", "event", "instrumentation", "intrinsic"]);

    let span_only = ok(&server, "/api/v2/search/tags?scope=span", None).await;
    assert_eq!(span_only, json!({"scopes": [{"name": "span", "tags": ["fresh.key", "http.method"]}]}));
    let intrinsic_only = ok(&server, "/api/v2/search/tags?scope=intrinsic", None).await;
    assert_eq!(intrinsic_only["scopes"].as_array().unwrap().len(), 1);

    let v1 = ok(&server, "/api/search/tags", None).await;
    assert_eq!(v1, json!({"tagNames": ["fresh.key", "http.method", "region", "service.name", "zone"]}));
    let limited = ok(&server, "/api/search/tags?limit=2", None).await;
    assert_eq!(limited, json!({"tagNames": ["fresh.key", "http.method"]}));

    // A window long before every span holds no tag.
    let past = ok(&server, "/api/v2/search/tags?start=1000&end=2000", None).await;
    assert_eq!(scope_tags(&past, "span").unwrap(), Vec::<String>::new());
    assert_eq!(scope_tags(&past, "resource").unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_come_from_summaries_and_from_blocks_written_without_one() {
    let storage = s3::S3Server::shared().new_storage("tags-old-block");
    let old = [Spec::named("legacy")
        .with("http.method", s("PATCH"))
        .with("old.only", s("kept"))
        .with_event("exception.type", s("Legacy"))];
    write_block_without_summary(&storage, &request("old-svc", &[], &old)).await;
    let server = TestServer::start(storage.clone(), |_| {}).await;
    let new = [
        Spec::named("op").with("http.method", s("GET")).with("http.status_code", i(500)),
        Spec::named("op").with("http.method", s("POST")).with("http.status_code", i(200)),
    ];
    send_spans(&server, None, request("alpha", &[], &new)).await;
    flush(&server).await;

    // The old block's names and values are found by scanning it.
    let v1 = ok(&server, "/api/search/tags", None).await;
    assert_eq!(v1, json!({"tagNames": ["http.method", "http.status_code", "old.only", "service.name"]}));
    let methods = ok(&server, "/api/search/tag/http.method/values", None).await;
    assert_eq!(texts(&methods), strings(&["GET", "PATCH", "POST"]));
    // The scan keeps to the window too.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let around_now = format!("/api/search/tag/http.method/values?start={}&end={}", now - 3600, now + 3600);
    assert_eq!(texts(&ok(&server, &around_now, None).await), strings(&["GET", "PATCH", "POST"]));
    let around_now = format!("/api/search/tags?start={}&end={}", now - 3600, now + 3600);
    assert_eq!(ok(&server, &around_now, None).await, v1);
    let services = ok(&server, "/api/v2/search/tag/resource.service.name/values", None).await;
    let expected = json!([{"type": "string", "value": "alpha"}, {"type": "string", "value": "old-svc"}]);
    assert_eq!(services["tagValues"], expected);
    let names = ok(&server, "/api/search/tag/name/values", None).await;
    assert_eq!(texts(&names), strings(&["legacy", "op"]));
    let events = ok(&server, "/api/v2/search/tags?scope=event", None).await;
    assert_eq!(events, json!({"scopes": [{"name": "event", "tags": ["exception.type"]}]}));
    let event_values = ok(&server, "/api/search/tag/event.exception.type/values", None).await;
    assert_eq!(texts(&event_values), strings(&["Legacy"]));
    let roots = ok(&server, "/api/search/tag/rootServiceName/values", None).await;
    assert_eq!(texts(&roots), strings(&["alpha", "old-svc"]));
    let root_names = ok(&server, "/api/v2/search/tag/trace:rootName/values", None).await;
    assert_eq!(
        root_names["tagValues"],
        json!([{"type": "string", "value": "legacy"}, {"type": "string", "value": "op"}])
    );
    let libraries = ok(&server, "/api/search/tag/instrumentation:name/values", None).await;
    assert_eq!(texts(&libraries), strings(&["lib"]));
    // Ints keep their type, known from the summary.
    let codes = ok(&server, "/api/v2/search/tag/span.http.status_code/values", None).await;
    assert_eq!(codes["tagValues"], json!([{"type": "int", "value": "200"}, {"type": "int", "value": "500"}]));

    // With every block summarised, values are answered without reading any block.
    let storage = s3::S3Server::shared().new_storage("tags-summaries");
    let server = TestServer::start(storage.clone(), |_| {}).await;
    send_spans(&server, None, request("alpha", &[], &new)).await;
    flush(&server).await;
    let before = storage.request_counts();
    let methods = ok(&server, "/api/v2/search/tag/.http.method/values", None).await;
    assert_eq!(storage.request_counts().since(&before).get, 0, "answered from the summary");
    assert_eq!(methods["tagValues"], json!([{"type": "string", "value": "GET"}, {"type": "string", "value": "POST"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_more_values_than_a_summary_keeps_still_lists_them_all() {
    let storage = s3::S3Server::shared().new_storage("tags-many");
    let server = TestServer::start(storage, |_| {}).await;
    let many: Vec<Spec> = (0..70).map(|n| Spec::named("op").with("order.id", s(&format!("o{n:03}")))).collect();
    send_spans(&server, None, request("alpha", &[], &many)).await;
    flush(&server).await;
    // And a few more still in the ingester.
    let more: Vec<Spec> = (70..75).map(|n| Spec::named("op").with("order.id", s(&format!("o{n:03}")))).collect();
    send_spans(&server, None, request("alpha", &[], &more)).await;

    let all = ok(&server, "/api/search/tag/span.order.id/values", None).await;
    let expected: Vec<String> = (0..75).map(|n| format!("o{n:03}")).collect();
    assert_eq!(texts(&all), expected);
    let limited = ok(&server, "/api/v2/search/tag/span.order.id/values?limit=5", None).await;
    assert_eq!(limited["tagValues"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_narrows_names_and_values_to_matching_spans_and_an_unparsable_q_is_ignored() {
    let storage = s3::S3Server::shared().new_storage("tags-q");
    let server = TestServer::start(storage, |_| {}).await;
    let a = [Spec::named("a-list").with("http.method", s("GET")), Spec::named("a-get").with("http.method", s("PUT"))];
    send_spans(&server, None, request("a", &[], &a)).await;
    flush(&server).await;
    send_spans(&server, None, request("b", &[], &[Spec::named("b-pay").with("http.method", s("POST"))])).await;

    let names = |q: &str| format!("/api/v2/search/tag/name/values?q={}", common::search::url_encode(q));
    let values = |answer: &Value| -> Vec<String> {
        answer["tagValues"].as_array().unwrap().iter().map(|v| v["value"].as_str().unwrap().to_owned()).collect()
    };
    let narrowed = ok(&server, &names(r#"{resource.service.name="a"}"#), None).await;
    assert_eq!(values(&narrowed), strings(&["a-get", "a-list"]));
    let unfinished = ok(&server, &names(r#"{resource.service.name="b" && span.http"#), None).await;
    assert_eq!(values(&unfinished), strings(&["b-pay"]), "cut after its last complete condition");
    let two = ok(&server, &names(r#"{resource.service.name="a" && span.http.method="PUT"}"#), None).await;
    assert_eq!(values(&two), strings(&["a-get"]));
    for ignored in ["{}", "{{{ not traceql", ""] {
        let all = ok(&server, &names(ignored), None).await;
        assert_eq!(values(&all), strings(&["a-get", "a-list", "b-pay"]), "q = {ignored:?}");
    }
    let methods = ok(&server, "/api/v2/search/tag/span.http.method/values?q=%7Bname%3D%22b-pay%22%7D", None).await;
    assert_eq!(methods["tagValues"], json!([{"type": "string", "value": "POST"}]));
    // Tag names narrow the same way (v2 only).
    send_spans(&server, None, request("c", &[], &[Spec::named("c-op").with("c.only", s("1"))])).await;
    let path =
        format!("/api/v2/search/tags?scope=span&q={}", common::search::url_encode(r#"{resource.service.name="c"}"#));
    assert_eq!(ok(&server, &path, None).await, json!({"scopes": [{"name": "span", "tags": ["c.only"]}]}));
    let path = format!("/api/search/tags?q={}", common::search::url_encode(r#"{resource.service.name="c"}"#));
    assert_eq!(ok(&server, &path, None).await["tagNames"], json!(["c.only", "http.method", "service.name"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_kind_values_are_built_in() {
    let storage = s3::S3Server::shared().new_storage("tags-builtin");
    let server = TestServer::start(storage, |_| {}).await;
    let status = ok(&server, "/api/v2/search/tag/status/values", None).await;
    let keywords = |values: &[&str]| -> Value {
        values.iter().map(|v| json!({"type": "keyword", "value": v})).collect::<Vec<_>>().into()
    };
    assert_eq!(status["tagValues"], keywords(&["error", "ok", "unset"]));
    let kind = ok(&server, "/api/v2/search/tag/kind/values", None).await;
    assert_eq!(kind["tagValues"], keywords(&["client", "consumer", "internal", "producer", "server", "unspecified"]));
    let v1 = ok(&server, "/api/search/tag/status/values", None).await;
    assert_eq!(v1, json!({"tagValues": ["error", "ok", "unset"]}));
    let code = ok(&server, "/api/search/tag/status.code/values", None).await;
    assert_eq!(code, v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_never_cross_tenants() {
    let storage = s3::S3Server::shared().new_storage("tags-tenants");
    let server = TestServer::start(storage, |config| config.multitenancy = true).await;
    let a = [Spec::named("a-op").with("a.secret", s("hush"))];
    send_spans(&server, Some("team-a"), request("a-svc", &[], &a)).await;
    flush(&server).await;
    let b = [Spec::named("b-op").with("b.key", s("open"))];
    send_spans(&server, Some("team-b"), request("b-svc", &[], &b)).await;

    let a_names = ok(&server, "/api/search/tags", Some("team-a")).await;
    assert_eq!(a_names, json!({"tagNames": ["a.secret", "service.name"]}));
    let b_names = ok(&server, "/api/search/tags", Some("team-b")).await;
    assert_eq!(b_names, json!({"tagNames": ["b.key", "service.name"]}));
    let b_services = ok(&server, "/api/search/tag/service.name/values", Some("team-b")).await;
    assert_eq!(b_services, json!({"tagValues": ["b-svc"]}));
    let leaked = ok(&server, "/api/v2/search/tag/span.a.secret/values", Some("team-b")).await;
    assert_eq!(leaked, json!({"tagValues": []}));
    let names = ok(&server, "/api/search/tag/name/values", Some("team-c")).await;
    assert_eq!(names, json!({"tagValues": []}));
    let (status, _) = get(&server, "/api/search/tags", None).await;
    assert_eq!(status, 401, "no tenant header with multitenancy on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_with_400() {
    let storage = s3::S3Server::shared().new_storage("tags-bad");
    let server = TestServer::start(storage, |_| {}).await;
    for path in [
        "/api/search/tags?start=yesterday",
        "/api/v2/search/tags?start=yesterday",
        "/api/search/tag/name/values?start=yesterday",
        "/api/v2/search/tag/name/values?end=soon",
        "/api/v2/search/tags?scope=trace",
        "/api/v2/search/tags?start=20&end=10",
        "/api/v2/search/tag/name/values?limit=many",
    ] {
        let (status, body) = get(&server, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.starts_with("invalid")), "{path}: {body}");
    }
}
