//! Tempo's search (issue 24) through `GET /api/search` of a real server: TraceQL and tags, over spans in
//! blocks and in the ingester.

mod common;

use common::Backend;
use common::server::{TestServer, send};
use common::sql::load_fixture;
use serde_json::Value;

async fn search(server: &TestServer, query: &str) -> (u16, Value) {
    let url = server.query_url(&format!("/api/search?{query}"));
    let reply = send("GET", &url, &[], "").await;
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
}

fn q(traceql: &str) -> String {
    format!("q={}", urlencoding(traceql))
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn trace_ids(body: &Value) -> Vec<String> {
    body["traces"].as_array().unwrap().iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    load_fixture(&server, None).await;
    let (status, body) = search(&server, &q("{}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        trace_ids(&body),
        ["eee19b7ec3c1b174a1b2c3d4e5f60718", "abc", "5b8efff798038103d269b633813fc60c"],
        "{body:#}"
    );
    let (status, body) = search(&server, &q(r#"{resource.service.name = "payments"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(trace_ids(&body), ["5b8efff798038103d269b633813fc60c"], "{body:#}");
    println!("{body:#}");
    let (status, body) = search(&server, &q(r#"{name = "GET /checkout"} >> {status = error}"#)).await;
    assert_eq!(status, 200, "{body}");
    println!("{body:#}");
    let (status, body) = search(&server, &q("{.a = 1 && 2}")).await;
    assert_eq!(status, 400, "{body}");
}
